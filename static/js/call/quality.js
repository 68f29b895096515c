// "Verbindung: gut/mittel/schlecht" is measured from the live connection's getStats,
// never assumed from its state.
import { $, root, t } from "./page.js";

const STATS_INTERVAL_MS = 2000;

export class Quality {
  // current() is the transport of the moment.
  constructor(current) {
    this.current = current;
    this.timer = null;
    this.last = null;
  }

  // Samples while there is a connection under way, stops otherwise.
  update() {
    const transport = this.current();
    const active = transport.pc && transport.state !== "new";
    if (active && !this.timer) {
      this.timer = setInterval(() => this.#sample(), STATS_INTERVAL_MS);
    } else if (!active && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
      this.last = null;
    }
  }

  async #sample() {
    const transport = this.current();
    const report = await transport.stats();
    if (!report) return;
    let rtt = null;
    let fps = null;
    let lost = 0;
    let received = 0;
    report.forEach((r) => {
      if (r.type === "candidate-pair" && r.nominated && r.state === "succeeded" && r.currentRoundTripTime !== undefined) {
        rtt = r.currentRoundTripTime;
      }
      if (r.type === "inbound-rtp") {
        lost += r.packetsLost || 0;
        received += r.packetsReceived || 0;
        if (r.kind === "video" && r.framesPerSecond !== undefined) fps = r.framesPerSecond;
      }
    });
    let loss = 0;
    if (this.last) {
      const dLost = Math.max(0, lost - this.last.lost);
      const dAll = dLost + Math.max(0, received - this.last.received);
      loss = dAll ? dLost / dAll : 0;
    }
    this.last = { lost, received };
    // A switched-off camera sends no frames: that is no sign of a bad line.
    const cameraOff = root.dataset.remoteCamera === "off";
    let level = "good";
    if ((rtt !== null && rtt > 0.5) || loss > 0.08 || (!cameraOff && fps !== null && fps < 5)) level = "poor";
    else if ((rtt !== null && rtt > 0.25) || loss > 0.02 || (!cameraOff && fps !== null && fps < 12)) level = "fair";
    if (transport.state === "reconnecting") level = "poor";
    this.#show(level, {
      rtt: rtt === null ? "–" : Math.round(rtt * 1000),
      loss: (loss * 100).toFixed(1),
      fps: fps === null ? "–" : Math.round(fps),
    });
  }

  #show(level, figures) {
    const box = $("#call-quality");
    if (!box || !box.querySelector(".quality-text")) return;
    box.dataset.level = level;
    const detail = t("qualityDetail", figures);
    box.querySelector(".quality-text").textContent = t("quality" + level.charAt(0).toUpperCase() + level.slice(1));
    box.title = detail;
    box.querySelector(".quality-detail").textContent = detail;
  }
}
