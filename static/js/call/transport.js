// What main.js knows of a call's media path. P2PTransport (browser to browser) and
// RelayTransport (group calls through the practice's media relay) each own their one
// RTCPeerConnection; main.js holds one of them and swaps it when the call moves to the
// relay and back.
//
// The interface:
//   mode                 "p2p" | "relay"
//   pc                   the live peer connection or null (tests and the bench read it)
//   state                "new" | "connecting" | "connected" | "reconnecting"
//   start({welcome, reconnect})  connect, or repair what there is after a socket came back
//   receive(message)     the socket messages that belong to this path (signal, relay-answer …)
//   peerBack()           the other side's page is back online
//   useLocalMedia()      the local devices changed: send what there is now
//   replaceVideo(track)  send this picture (camera, screen or none); resolves when done
//   stats()              getStats() of the live connection, or null
//   audioSinks()         the <audio> elements that play the others
//   close()              for good; a transport is not started again
// The context (ctx) is shared and read at use time: ICE servers change with each welcome.
//   ctx.iceServers, ctx.iceTransportPolicy, ctx.max, ctx.media (LocalMedia), ctx.grid (Grid),
//   ctx.e2ee (FrameEncryption, e2ee.js),
//   ctx.send(message),
//   ctx.sendMediaState(), ctx.onState(transport), ctx.isMember(), ctx.onRefused(message)
// Each transport owns its negotiation and its senders and receivers, so what belongs to
// one path (perfect negotiation with rollback for P2P; a frame transform for end-to-end
// encryption on the relay's senders and receivers) goes into that class, not main.js.
import { log } from "./page.js";
import { Grace } from "./retry.js";

export const VIDEO_MAX_BITRATE = 600000;

export class Transport {
  constructor(ctx) {
    this.ctx = ctx;
    this.pc = null;
    this.state = "new";
    this.closed = false;
    this.grace = new Grace();
  }

  start() {}

  receive() {}

  peerBack() {}

  useLocalMedia() {}

  audioSinks() {
    return [];
  }

  stats() {
    return this.pc ? this.pc.getStats() : Promise.resolve(null);
  }

  replaceVideo(track) {
    const tr = this.videoTransceiver();
    if (!tr) return Promise.resolve();
    if (track && tr.direction === "recvonly") tr.direction = "sendrecv";
    return tr.sender.replaceTrack(track);
  }

  close() {
    this.closed = true;
    this.closePeer();
  }

  // ---- for the transports ----

  setState(state) {
    this.state = state;
    this.ctx.onState(this);
  }

  // Only the servers handed out for this call: never a browser's public default.
  // extra: more configuration (the frame transform's, e2ee.js).
  openPeer(extra = {}) {
    this.closePeer();
    const peer = new RTCPeerConnection(Object.assign({
      iceServers: this.ctx.iceServers,
      iceTransportPolicy: this.ctx.iceTransportPolicy,
      bundlePolicy: "max-bundle",
    }, extra));
    this.pc = peer;
    peer.onconnectionstatechange = () => {
      if (this.pc === peer) this.onConnectionState(peer.connectionState);
    };
    return peer;
  }

  closePeer() {
    this.grace.cancel();
    if (this.pc) {
      const old = this.pc;
      this.pc = null;
      try { old.close(); } catch (e) { /* already closed */ }
    }
  }

  // lost(why) repairs the connection; it is called at once on "failed", and on
  // "disconnected" only once that outlasted the grace period.
  onConnectionState(state) {
    this.grace.cancel();
    if (state === "connected") {
      this.capBitrate();
      this.ctx.sendMediaState();
      this.setState("connected");
      return;
    }
    if (state === "failed") {
      this.lost("failed");
    } else if (state === "disconnected") {
      const peer = this.pc;
      this.grace.start(() => {
        if (this.pc === peer && peer.connectionState === "disconnected") this.lost("disconnected");
      });
    }
    // A repair under way stays "reconnecting" until it is connected again.
    this.setState(state === "connecting" && this.state !== "reconnecting" ? "connecting" : this.state);
  }

  lost() {}

  transceiver(kind) {
    return this.pc && this.pc.getTransceivers().find((tr) => tr.receiver.track && tr.receiver.track.kind === kind);
  }

  videoTransceiver() {
    return this.transceiver("video");
  }

  // VP8 first: every browser has it, and the Premium relay forwards it unchanged.
  preferVp8() {
    if (!this.pc || !window.RTCRtpReceiver || !RTCRtpReceiver.getCapabilities) return;
    const caps = RTCRtpReceiver.getCapabilities("video");
    if (!caps) return;
    const vp8 = caps.codecs.filter((c) => c.mimeType.toLowerCase() === "video/vp8");
    const rest = caps.codecs.filter((c) => c.mimeType.toLowerCase() !== "video/vp8");
    this.pc.getTransceivers().forEach((tr) => {
      if (tr.receiver.track && tr.receiver.track.kind === "video" && tr.setCodecPreferences && tr.currentDirection !== "stopped") {
        try { tr.setCodecPreferences(vp8.concat(rest)); } catch (e) { log("codec preferences", e); }
      }
    });
  }

  capBitrate() {
    const tr = this.videoTransceiver();
    if (!tr || !tr.sender.getParameters) return;
    const params = tr.sender.getParameters();
    if (!params.encodings || !params.encodings.length) return;
    if (params.encodings.every((e) => e.maxBitrate === VIDEO_MAX_BITRATE)) return;
    params.encodings.forEach((e) => { e.maxBitrate = VIDEO_MAX_BITRATE; });
    tr.sender.setParameters(params).catch((e) => log("bitrate cap", e));
  }
}
