// "Nur Ton": either side stops sending its picture (the camera goes off) and the other
// side is told so; offered by itself when the measured quality (quality.js, getStats)
// stays poor for a while. Also what the other side's media-state says beyond camera and
// microphone: "Kamera nicht freigegeben" instead of a look of having switched it off.
import { $, $$, onActions, root } from "./page.js";

// Poor for most of this long a stretch, the last sample poor: the offer comes. A bad line
// flickers to "fair" now and then; "without a break" would never offer on one.
const POOR_MS = 10000;
const POOR_SHARE = 0.8;
// "Nein, danke" holds for this long.
const DISMISS_MS = 5 * 60 * 1000;

// state: the other side's media-state.
export function showRemoteFlags(state) {
  const flag = state.cameraBlocked ? "cameraBlocked" : state.audioOnly ? "audioOnly" : null;
  $$("[data-remote-flag]").forEach((el) => { el.hidden = el.dataset.remoteFlag !== flag; });
  // Said instead of "camera off", not beside it.
  if (flag) $$('[data-remote-off="camera"]').forEach((el) => { el.hidden = true; });
}

export class AudioOnly {
  constructor(media) {
    this.media = media;
    this.samples = []; // [time, poor] of the last POOR_MS
    this.dismissedAt = -Infinity;
    this.offer = $("#audio-only-offer");
    onActions({
      "audio-only": () => this.set(!media.audioOnly),
      "audio-only-accept": () => this.set(true),
      "audio-only-dismiss": () => {
        this.dismissedAt = performance.now();
        this.#hideOffer();
      },
    });
    const box = $("#call-quality");
    if (box) new MutationObserver(() => this.#follow(box.dataset.level)).observe(box, { attributes: true, attributeFilter: ["data-level"] });
  }

  async set(on) {
    this.#hideOffer();
    await this.media.setAudioOnly(on);
  }

  // Called with every quality sample (quality.js sets data-level each second).
  #follow(level) {
    const now = performance.now();
    const view = root.dataset.view;
    // A moment of "reconnecting" on a bad line is part of the bad line, not a new call.
    if (view !== "connected" && view !== "reconnecting") {
      this.samples = [];
      this.#hideOffer();
      return;
    }
    this.samples.push([now, level === "poor" || view === "reconnecting"]);
    while (now - this.samples[0][0] > POOR_MS) this.samples.shift();
    const share = this.samples.filter((sample) => sample[1]).length / this.samples.length;
    if (share < POOR_SHARE) {
      this.#hideOffer();
      return;
    }
    // A full stretch measured (samples come each second), and poor right now.
    const full = now - this.samples[0][0] >= POOR_MS - 1500;
    if (full && level === "poor" && view === "connected" && !this.media.audioOnly && this.media.cameraOn
        && now - this.dismissedAt > DISMISS_MS && this.offer && this.offer.hidden) {
      this.offer.hidden = false;
    }
  }

  #hideOffer() {
    if (this.offer) this.offer.hidden = true;
  }
}
