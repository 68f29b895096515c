// Two people: browser to browser, DTLS-SRTP end to end; the server only carries the
// signalling. Perfect negotiation: the staff page offers (impolite), the patient's page
// answers and yields in a collision (polite).
import { $, log } from "./page.js";
import { Transport, VIDEO_MAX_BITRATE } from "./transport.js";
import { playRemote } from "./view.js";

const remoteVideo = $("#remote-video");
// An offer unanswered this long is taken as lost.
const ANSWER_TIMEOUT_MS = 4000;
const remoteAudio = $("#remote-audio");

function fingerprint(sdp) {
  const m = /a=fingerprint:(\S+ \S+)/.exec(sdp || "");
  return m ? m[1] : null;
}

export class P2PTransport extends Transport {
  constructor(ctx) {
    super(ctx);
    this.mode = "p2p";
    this.polite = ctx.role !== "staff";
    this.#resetNegotiation();
  }

  #resetNegotiation() {
    this.makingOffer = false;
    this.ignoreOffer = false;
    this.settingRemoteAnswer = false;
    this.pendingRepair = false;
    clearTimeout(this.answerTimer);
    // One after another: a candidate must not overtake the description it belongs to.
    this.signals = Promise.resolve();
  }

  start({ reconnect } = {}) {
    if (!this.pc) {
      this.#open();
      if (!this.polite) this.useLocalMedia();
    } else if (reconnect) {
      // This page's socket is back. A working connection stays; a broken one, or an
      // offer that went out while the other side could not hear it, is made again.
      if (this.pendingRepair || this.state !== "connected" || this.pc.signalingState !== "stable") {
        this.restart("socket back");
      }
    }
  }

  // The other side's page is back (a new socket: reload, or back after a network gap).
  // Whatever went out meanwhile may be lost: the offerer makes a fresh offer. A fresh
  // page answers with a new DTLS fingerprint, which #onSignal turns into a fresh
  // connection.
  peerBack() {
    if (this.pc) this.restart("peer back");
    else if (!this.polite) this.start();
  }

  receive(message) {
    if (message.type === "signal") {
      this.signals = this.signals.then(() => this.#onSignal(message)).catch((e) => log("signal", e));
    } else if (message.type === "restart-ice" && !this.polite && this.pc) {
      this.restart("peer asked");
    }
  }

  // Repair: an ICE restart with a fresh offer from the offerer (staff). An offer still
  // waiting for its answer was lost with the gap: it is rolled back first, because
  // restartIce() alone makes no offer in "have-local-offer". While this page's socket
  // or the other side's page is away nothing can be delivered: the repair waits and
  // runs when both are back (start({reconnect}) and peerBack()).
  restart(why) {
    if (!this.pc || this.closed) return;
    if (!this.ctx.canSignal()) {
      log("repair waits for the other side:", why);
      this.pendingRepair = true;
      return;
    }
    this.pendingRepair = false;
    log("ICE restart:", why);
    this.signals = this.signals.then(() => this.#repair(why)).catch((e) => log("repair", e));
  }

  async #repair(why) {
    const pc = this.pc;
    if (!pc || this.closed) return;
    if (pc.signalingState === "have-local-offer") {
      log("rolling back an unanswered offer");
      await pc.setLocalDescription({ type: "rollback" });
    }
    if (this.polite) {
      // The staff page is the offerer; it restarts on this hint. Offering here as well
      // would only make both offer at once.
      this.ctx.send({ type: "restart-ice" });
      return;
    }
    if (pc.signalingState !== "stable") return; // an offer of the other side is being answered
    try {
      this.makingOffer = true;
      this.preferVp8();
      const offer = await pc.createOffer({ iceRestart: true });
      if (this.pc !== pc || pc.signalingState !== "stable") return;
      await pc.setLocalDescription(offer);
      this.#sendDescription(pc.localDescription);
      this.#awaitAnswer(pc, why);
    } finally {
      this.makingOffer = false;
    }
  }

  // An offer that got no answer (lost on the way although both sockets looked open) is
  // made again.
  #awaitAnswer(pc, why) {
    clearTimeout(this.answerTimer);
    const offer = pc.localDescription && pc.localDescription.sdp;
    this.answerTimer = setTimeout(() => {
      if (this.pc === pc && pc.signalingState === "have-local-offer" && pc.localDescription.sdp === offer) {
        this.restart("no answer to " + why);
      }
    }, ANSWER_TIMEOUT_MS);
  }

  audioSinks() {
    return [remoteAudio];
  }

  // Both kinds even without a device: the page still receives both.
  useLocalMedia() {
    if (!this.pc) return;
    const media = this.ctx.media;
    ["audio", "video"].forEach((kind) => {
      const track = kind === "audio" ? media.mic : media.video;
      const existing = this.transceiver(kind);
      if (existing) {
        // The patient's transceivers come from the staff offer: fill them in.
        if (existing.sender.track !== track) existing.sender.replaceTrack(track || null);
        if (existing.sender.setStreams) existing.sender.setStreams(media.stream);
        if (existing.direction === "recvonly" && (track || kind === "video")) existing.direction = "sendrecv";
        return;
      }
      const init = { direction: "sendrecv", streams: [media.stream] };
      if (kind === "video") init.sendEncodings = [{ maxBitrate: VIDEO_MAX_BITRATE }];
      this.pc.addTransceiver(track || kind, init);
    });
  }

  close() {
    super.close();
    remoteVideo.srcObject = null;
    remoteAudio.srcObject = null;
  }

  closePeer() {
    super.closePeer();
    this.#resetNegotiation();
    if (this.state !== "new") this.setState("new");
  }

  #open() {
    const peer = this.openPeer();
    const remote = new MediaStream();
    remoteVideo.srcObject = remote;
    remoteAudio.srcObject = remote;
    peer.onnegotiationneeded = async () => {
      if (this.pc !== peer) return;
      try {
        this.makingOffer = true;
        this.preferVp8();
        await peer.setLocalDescription();
        this.#sendDescription(peer.localDescription);
        if (!this.polite) this.#awaitAnswer(peer, "negotiation");
      } catch (e) {
        log("offer failed", e);
      } finally {
        this.makingOffer = false;
      }
    };
    peer.onicecandidate = (event) => {
      if (this.pc !== peer) return;
      const c = event.candidate;
      this.ctx.send({ type: "signal", candidate: c ? { candidate: c.candidate, sdpMid: c.sdpMid, sdpMLineIndex: c.sdpMLineIndex } : null });
    };
    peer.ontrack = (event) => {
      if (this.pc !== peer) return;
      remote.getTracks().filter((x) => x.kind === event.track.kind).forEach((x) => remote.removeTrack(x));
      remote.addTrack(event.track);
      playRemote(this.audioSinks());
    };
  }

  lost(why) {
    this.setState("reconnecting");
    this.restart(why);
  }

  #sendDescription(description) {
    this.ctx.send({ type: "signal", description: { type: description.type, sdp: description.sdp } });
  }

  async #onSignal(message) {
    if (message.description) {
      await this.#onDescription(message.description);
    } else if ("candidate" in message) {
      if (!this.pc) return;
      try {
        await this.pc.addIceCandidate(message.candidate || undefined);
      } catch (e) {
        if (!this.ignoreOffer) log("candidate", e);
      }
    }
  }

  async #onDescription(description) {
    if (description.type === "rollback" || this.closed) return;
    if (!this.pc) {
      if (description.type !== "offer") return;
      this.#open();
    }
    // A different fingerprint means the other side is a new page (reload): its old
    // DTLS session is gone, so this side starts afresh too.
    const known = this.pc.remoteDescription && fingerprint(this.pc.remoteDescription.sdp);
    if (known && fingerprint(description.sdp) && known !== fingerprint(description.sdp)) {
      log("peer is a new page, new connection");
      this.#open();
      if (description.type !== "offer") {
        // The offerer answers a new page with a new offer of its own.
        this.useLocalMedia();
        return;
      }
    }
    const pc = this.pc;
    const readyForOffer = !this.makingOffer && (pc.signalingState === "stable" || this.settingRemoteAnswer);
    const collision = description.type === "offer" && !readyForOffer;
    this.ignoreOffer = !this.polite && collision;
    if (this.ignoreOffer) return;
    this.settingRemoteAnswer = description.type === "answer";
    try {
      await pc.setRemoteDescription(description);
    } finally {
      this.settingRemoteAnswer = false;
    }
    if (description.type === "offer") {
      // Answer with the camera once it is ready (it was started when it rang).
      if (this.ctx.media.acquiring) await this.ctx.media.acquiring;
      if (this.pc !== pc) return;
      this.useLocalMedia();
      this.preferVp8();
      await pc.setLocalDescription();
      this.#sendDescription(pc.localDescription);
    }
    this.capBitrate();
    this.ctx.sendMediaState();
  }
}
