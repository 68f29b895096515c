// Three to five people (Premium): one connection to the practice's media relay
// (docs/signalling.md, "Group calls through the media relay"). The own microphone and
// camera (or screen) go out on two sendonly m-lines; everyone else's arrive on receive
// m-lines ("slots"), which the roster maps to people.
import { $, log } from "./page.js";
import { Backoff } from "./retry.js";
import { Transport, VIDEO_MAX_BITRATE } from "./transport.js";
import { playRemote } from "./view.js";

// aiortc (the relay) takes no trickled candidates: the offer waits for all of them.
const GATHERING_TIMEOUT_MS = 5000;
// An offer sent into a socket that was already dead (a network gone without the browser
// noticing) gets no answer: join again. The relay answers a join in ~1 s even when busy.
const ANSWER_TIMEOUT_MS = 10000;

const audioSinks = $("#relay-audio");

function gathered(peer) {
  if (peer.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, GATHERING_TIMEOUT_MS);
    peer.addEventListener("icegatheringstatechange", () => {
      if (peer.iceGatheringState === "complete") { clearTimeout(timer); resolve(); }
    });
  });
}

export class RelayTransport extends Transport {
  constructor(ctx) {
    super(ctx);
    this.mode = "relay";
    this.backoff = new Backoff();
    this.joining = false; // an offer is out and no answer (or error) came back yet
  }

  // A new page or socket joins (again); a working connection stays.
  start({ welcome } = {}) {
    if (!this.pc || welcome) this.#join();
  }

  receive(message) {
    if (message.type === "relay-answer") this.#onAnswer(message.sdp);
    else if (message.type === "error") this.#onError(message);
  }

  audioSinks() {
    return audioSinks ? Array.from(audioSinks.querySelectorAll("audio")) : [];
  }

  useLocalMedia() {
    if (!this.pc) return;
    const audio = this.transceiver("audio");
    if (audio && audio.sender.track !== this.ctx.media.mic) audio.sender.replaceTrack(this.ctx.media.mic);
    this.replaceVideo(this.ctx.media.video);
  }

  close() {
    clearTimeout(this.answerTimer);
    this.backoff.cancel();
    super.close();
    this.#clearRemoteMedia();
    this.ctx.grid.live = false;
    this.ctx.grid.update();
  }

  async #join() {
    this.backoff.cancel();
    const { media, grid, e2ee } = this.ctx;
    await Promise.all([media.ensure(), e2ee.ready]);
    if (this.closed || !this.ctx.isMember()) return;
    this.closePeer();
    this.#clearRemoteMedia();
    const peer = this.openPeer(e2ee.peerConfig());
    grid.live = true;
    this.joining = true;
    // A rejoin after a loss stays "reconnecting" (the page says "Verbindung unterbrochen")
    // until media can flow again.
    this.setState(this.state === "reconnecting" ? "reconnecting" : "connecting");
    peer.ontrack = (event) => {
      if (this.pc !== peer) return;
      if (event.track.kind === "audio") this.#addRemoteAudio(event.transceiver.mid, event.track);
      grid.addTrack(event.transceiver.mid, event.track);
    };
    // Every frame in and out passes the frame transform: the relay forwards ciphertext.
    e2ee.attach(peer.addTransceiver(media.mic || "audio", { direction: "sendonly", streams: [media.stream] }).sender,
      "send", "audio");
    e2ee.attach(peer.addTransceiver(media.video || "video", { direction: "sendonly", streams: [media.stream],
      sendEncodings: [{ maxBitrate: VIDEO_MAX_BITRATE }] }).sender, "send", "video");
    for (const kind of ["audio", "video"]) {
      for (let i = 1; i < this.ctx.max; i += 1) {
        e2ee.attach(peer.addTransceiver(kind, { direction: "recvonly" }).receiver, "receive", kind);
      }
    }
    this.preferVp8();
    e2ee.joining();
    e2ee.hello();
    try {
      await peer.setLocalDescription(await peer.createOffer());
      await gathered(peer);
    } catch (e) {
      log("relay offer", e);
      this.#retry("offer failed");
      return;
    }
    if (this.pc !== peer) return;
    this.ctx.send({ type: "relay-offer", sdp: peer.localDescription.sdp, e2ee: e2ee.supported });
    clearTimeout(this.answerTimer);
    this.answerTimer = setTimeout(() => {
      if (this.pc === peer && this.joining) {
        this.joining = false;
        this.#retry("no answer");
      }
    }, ANSWER_TIMEOUT_MS);
  }

  async #onAnswer(sdp) {
    clearTimeout(this.answerTimer);
    this.joining = false;
    const peer = this.pc;
    if (!peer) return;
    try {
      await peer.setRemoteDescription({ type: "answer", sdp: sdp });
    } catch (e) {
      log("relay answer", e);
      this.#retry("answer failed");
      return;
    }
    this.capBitrate();
    this.ctx.sendMediaState();
    this.ctx.grid.startSpeaker(() => (this.pc === peer ? peer.getStats() : Promise.resolve(null)));
  }

  // An error while this page's offer is out: the relay could not take it.
  #onError(message) {
    if (!this.joining || !this.pc) return;
    clearTimeout(this.answerTimer);
    this.joining = false;
    if (message.code === "relay") this.#retry("relay error");
    else this.ctx.onRefused(message);
  }

  #retry(why) {
    this.backoff.cancel();
    if (this.closed || !this.ctx.isMember()) return;
    // The tests look for this line to tell a rejoin from a connection that survived.
    log("joining the relay again:", why);
    this.setState("reconnecting");
    this.backoff.schedule(() => this.#join());
  }

  onConnectionState(state) {
    if (state === "connected") this.backoff.reset();
    super.onConnectionState(state);
  }

  // The relay restarted or dropped this page: join afresh.
  lost(why) {
    this.#retry(why);
  }

  #addRemoteAudio(mid, track) {
    if (!audioSinks) return;
    let element = audioSinks.querySelector('audio[data-mid="' + CSS.escape(mid) + '"]');
    if (!element) {
      element = document.createElement("audio");
      element.autoplay = true;
      element.dataset.mid = mid;
      audioSinks.appendChild(element);
    }
    element.srcObject = new MediaStream([track]);
    playRemote(this.audioSinks());
  }

  #clearRemoteMedia() {
    if (audioSinks) audioSinks.replaceChildren();
    this.ctx.grid.clearMedia();
  }
}
