// The frame transforms of the relay's peer connection: one worker (e2ee-worker.js) on
// every sender and receiver, which encrypts and decrypts with the keys e2ee.js gives it.
// RTCRtpScriptTransform where the browser has it, createEncodedStreams where only that.
import { log } from "./page.js";

const STATS_INTERVAL_MS = 1000;

// Which API this browser offers for frame transforms, or null.
export function frameTransformApi() {
  if (!window.crypto || !crypto.subtle || !window.Worker) return null;
  if (window.RTCRtpScriptTransform) return "script";
  if (window.RTCRtpSender && RTCRtpSender.prototype.createEncodedStreams) return "streams";
  return null;
}

export class FrameTransforms {
  // onStats(): the worker counted its senders, receivers and frames anew (this.stats).
  constructor(api, onStats) {
    this.api = api;
    this.stats = null;
    this.mode = "encrypt";
    this.worker = new Worker(new URL("./e2ee-worker.js", import.meta.url), { type: "module" });
    this.worker.onmessage = (event) => {
      if (event.data.op === "stats") { this.stats = event.data.stats; onStats(); }
    };
    this.statsTimer = setInterval(() => this.worker.postMessage({ op: "stats" }), STATS_INTERVAL_MS);
  }

  attach(endpoint, side, kind) {
    if (this.api === "script") {
      endpoint.transform = new RTCRtpScriptTransform(this.worker, { side, kind });
    } else {
      const { readable, writable } = endpoint.createEncodedStreams();
      this.worker.postMessage({ op: "streams", readable, writable, side, kind }, [readable, writable]);
    }
  }

  // True while the transforms run on this page's senders (and receivers, where
  // anyone else is there to receive from).
  running(receiving) {
    return !!this.stats && this.stats.senders > 0 && (!receiving || this.stats.receivers > 0);
  }

  sendWith(kid, key) {
    this.worker.postMessage({ op: "send-key", kid, key });
  }

  receiveWith(kid, key) {
    this.worker.postMessage({ op: "receive-key", kid, key });
  }

  forget(kids) {
    this.worker.postMessage({ op: "forget", kids });
  }

  // "clear" where the practice lets a browser without frame encryption in and one is here.
  setMode(mode) {
    if (mode === this.mode) return;
    this.mode = mode;
    this.worker.postMessage({ op: "mode", mode });
    log("e2ee: frames are sent and received", mode === "clear" ? "in clear" : "encrypted");
  }
}
