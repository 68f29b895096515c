// Sharing the screen: the server decides (tariff), the browser asks the user only after
// the server's yes, and the screen then replaces the camera in what goes out.
import { notice, t } from "./page.js";

const SERVER_ANSWER_MS = 5000;

export class ScreenShare {
  constructor({ media, send, sendMediaState }) {
    this.media = media;
    this.send = send;
    this.sendMediaState = sendMediaState;
    this.pending = null; // the question to the server, while it is open
  }

  async toggle() {
    if (this.media.screen) { this.stop(true); return; }
    if (this.pending) return;
    try {
      await this.#askServer();
    } catch (text) {
      notice(text || t("error"), "error");
      return;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 10, max: 15 } }, audio: false });
    } catch (e) {
      notice(t("screenFailed"), "info");
      this.send({ type: "screen-share", active: false });
      return;
    }
    const track = stream.getVideoTracks()[0];
    if ("contentHint" in track) track.contentHint = "detail";
    // The browser's own "stop sharing" bar ends the track.
    track.onended = () => this.stop(true);
    await this.media.shareScreen(track);
  }

  // tell: the others are told (not when the whole call ends anyway).
  stop(tell) {
    if (!this.media.stopScreen() || !tell) return;
    this.send({ type: "screen-share", active: false });
    this.sendMediaState();
  }

  // The server's "screen-share-ok".
  allowed() {
    if (this.pending) this.pending.resolve();
  }

  // An error/tariff: true if it answered this page's question.
  refused(text) {
    if (!this.pending) return false;
    this.pending.reject(text);
    return true;
  }

  #askServer() {
    return new Promise((resolve, reject) => {
      const done = (fn) => (value) => { clearTimeout(timer); this.pending = null; fn(value); };
      this.pending = { resolve: done(resolve), reject: done(reject) };
      // No answer (socket gone): the question is closed, so a later click asks again.
      const timer = setTimeout(this.pending.reject, SERVER_ANSWER_MS, t("error"));
      this.send({ type: "screen-share", active: true });
    });
  }
}
