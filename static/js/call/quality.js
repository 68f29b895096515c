// "Verbindung: gut/mittel/schlecht" is measured from the live connection's getStats,
// never assumed from its state.
import { $, root, t } from "./page.js";

const STATS_INTERVAL_MS = 1000;
// No decoded frame and no audio packet for this long: the picture is frozen, whatever
// the connection's state says.
const STALL_MS = 2500;

export class Quality {
  // current() is the transport of the moment.
  // onStall() is called when stalled changes; onReport(report) gets every sample.
  constructor(current, onStall = () => {}, onReport = () => {}) {
    this.current = current;
    this.onStall = onStall;
    this.onReport = onReport;
    this.timer = null;
    this.last = null;
    this.stalled = false;
    this.flow = null;
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
      this.flow = null;
      this.#setStalled(false);
    }
  }

  #setStalled(stalled) {
    if (stalled === this.stalled) return;
    this.stalled = stalled;
    this.onStall();
  }

  // Media arriving is the truth about a call: frames decoded or audio packets received
  // must grow. What the other side switched off is not expected.
  #follow(pc, frames, audio) {
    const now = performance.now();
    const f = this.flow;
    if (!f || f.pc !== pc) {
      this.flow = { pc, frames, audio, at: now, ever: frames > 0 || audio > 0 };
      return;
    }
    const cameraOff = root.dataset.remoteCamera === "off";
    if ((frames > f.frames && !cameraOff) || audio > f.audio) {
      f.at = now;
      f.ever = true;
    }
    f.frames = frames;
    f.audio = audio;
    this.#setStalled(f.ever && now - f.at > STALL_MS);
  }

  async #sample() {
    const transport = this.current();
    const pc = transport.pc;
    const report = await transport.stats();
    if (!report) return;
    let rtt = null;
    let fps = null;
    let lost = 0;
    let received = 0;
    let frames = 0;
    let audio = 0;
    report.forEach((r) => {
      if (r.type === "candidate-pair" && r.nominated && r.state === "succeeded" && r.currentRoundTripTime !== undefined) {
        rtt = r.currentRoundTripTime;
      }
      if (r.type === "inbound-rtp") {
        lost += r.packetsLost || 0;
        received += r.packetsReceived || 0;
        if (r.kind === "video" && r.framesPerSecond !== undefined) fps = r.framesPerSecond;
        if (r.kind === "video") frames += r.framesDecoded || 0;
        if (r.kind === "audio") audio += r.packetsReceived || 0;
      }
    });
    // A report of a connection replaced meanwhile says nothing about the new one.
    if (transport !== this.current() || !transport.pc || transport.pc !== pc) return;
    this.onReport(report);
    this.#follow(transport.pc, frames, audio);
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
    if (transport.state === "reconnecting" || this.stalled) level = "lost";
    this.#show(level, {
      rtt: rtt === null ? "–" : Math.round(rtt * 1000),
      loss: (loss * 100).toFixed(1),
      fps: fps === null ? "–" : Math.round(fps),
    });
  }

  #show(level, figures) {
    const box = $("#call-quality");
    if (!box || !box.querySelector(".quality-text")) return;
    box.dataset.level = level === "lost" ? "poor" : level;
    const detail = t("qualityDetail", figures);
    box.querySelector(".quality-text").textContent = t("quality" + level.charAt(0).toUpperCase() + level.slice(1));
    box.title = detail;
    box.querySelector(".quality-detail").textContent = detail;
  }
}
