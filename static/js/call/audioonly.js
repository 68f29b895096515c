// "Nur Ton": either side stops sending its picture (the camera goes off) and the other
// side is told so; offered by itself when the measured quality (quality.js, getStats)
// stays poor for a while. Also what the other side's media-state says beyond camera and
// microphone: "Kamera nicht freigegeben" instead of a look of having switched it off.
import { $, $$, onActions, root } from "./page.js";

// Poor for this long without a break: the offer comes.
const POOR_MS = 10000;
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
    this.poorSince = null;
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
    if (level !== "poor" || root.dataset.view !== "connected") {
      this.poorSince = null;
      this.#hideOffer();
      return;
    }
    if (this.poorSince === null) this.poorSince = now;
    if (now - this.poorSince >= POOR_MS && !this.media.audioOnly && this.media.cameraOn
        && now - this.dismissedAt > DISMISS_MS && this.offer && this.offer.hidden) {
      this.offer.hidden = false;
    }
  }

  #hideOffer() {
    if (this.offer) this.offer.hidden = true;
  }
}
