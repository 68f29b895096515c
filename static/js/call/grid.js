// A group call on screen: one tile per other person (their video, name, camera and
// microphone state) and which of them is speaking. The roster says who is in the call
// and on which of this page's receive m-lines ("slots") their media arrives.
import { $, t } from "./page.js";

const SPEAKER_INTERVAL_MS = 500;
const SPEAKER_MIN_LEVEL = 0.02;
// No decoded frame and no audio packet from a member for this long: their tile says the
// connection is broken (as quality.js does for the whole page), not a frozen picture.
const STALL_MS = 2500;

export class Grid {
  constructor() {
    this.element = $("#call-grid");
    this.template = $("#tile-template");
    this.key = null; // this page's relay key: staff, patient, guest-<id>
    this.live = false; // a relay connection is there to fill the tiles
    this.speakerTimer = null;
    this.reset();
  }

  // The call ended: nobody is in it any more.
  reset() {
    this.roster = [];
    this.rosterVersion = 0;
    this.slots = {}; // mid -> key of whoever's media arrives on that receive m-line
    this.states = {}; // key -> last media-state
    this.seen = new Set(); // keys whose media arrived at least once in this call
    this.clearMedia();
    this.update();
  }

  // The connection that brought the media is gone; who is in the call stays.
  clearMedia() {
    this.tracks = {}; // mid -> remote track
    this.counters = {}; // mid -> frames decoded (video) or audio packets at the last sample
    this.arrived = {}; // key -> performance.now() when their media last grew
    if (this.element) this.element.querySelectorAll(".tile video").forEach((v) => { v.srcObject = null; });
    this.#stopSpeaker();
  }

  // True if somebody came or went. Members "away" (staff or patient off the relay for
  // now) keep their tile.
  setRoster(message) {
    // Rosters are built in several server threads: an older one may arrive last.
    const version = Number(message.version) || 0;
    if (version < this.rosterVersion) return false;
    this.rosterVersion = version;
    const keys = () => this.roster.filter((p) => !p.away).map((p) => p.key).sort().join(",");
    const before = keys();
    const away = Array.isArray(message.away) ? message.away.map((p) => Object.assign({}, p, { away: true })) : [];
    this.roster = (Array.isArray(message.participants) ? message.participants : []).concat(away);
    this.slots = (message.slots && message.slots[this.key]) || {};
    this.update();
    return keys() !== before;
  }

  setMediaState(key, state) {
    this.states[key] = state;
    this.update();
  }

  addTrack(mid, track) {
    this.tracks[mid] = track;
    this.update();
  }

  // The roster's people as tiles, each with the video of the slot that carries them.
  update() {
    if (!this.element) return;
    const others = this.live ? this.roster.filter((p) => p.key !== this.key) : [];
    const keep = new Set(others.map((p) => p.key));
    this.element.querySelectorAll(".tile").forEach((tile) => { if (!keep.has(tile.dataset.key)) tile.remove(); });
    others.forEach((person) => {
      let tile = this.#tile(person.key);
      if (!tile && this.template) {
        tile = this.template.content.firstElementChild.cloneNode(true);
        tile.dataset.key = person.key;
        this.element.appendChild(tile);
      }
      if (tile) this.#fill(tile, person);
    });
    this.element.dataset.count = String(others.length);
    this.element.hidden = !this.live;
  }

  // The video of one person's tile, or null (no such tile: not a group call).
  videoOf(key) {
    const tile = this.#tile(key);
    return tile ? tile.querySelector("video") : null;
  }

  // Who to show when the call is made small: the speaker, else `preferred`, else anyone.
  mainVideo(preferred) {
    if (!this.element) return null;
    const tile = this.element.querySelector('.tile[data-speaking="true"]') || this.#tile(preferred)
      || this.element.querySelector(".tile");
    return tile ? tile.querySelector("video") : null;
  }

  // stats() is the relay connection's getStats, or null once that connection is gone.
  startSpeaker(stats) {
    if (!this.speakerTimer) this.speakerTimer = setInterval(() => this.#sampleSpeaker(stats), SPEAKER_INTERVAL_MS);
  }

  #stopSpeaker() {
    clearInterval(this.speakerTimer);
    this.speakerTimer = null;
    this.energy = {}; // mid -> the audio energy and duration received at the last sample
    if (this.element) this.element.querySelectorAll(".tile[data-speaking]").forEach((tile) => tile.removeAttribute("data-speaking"));
  }

  #tile(key) {
    return this.element && key ? this.element.querySelector('.tile[data-key="' + CSS.escape(key) + '"]') : null;
  }

  #fill(tile, person) {
    tile.querySelector(".tile-name").textContent = person.name || "";
    const role = tile.querySelector(".tile-role");
    // A guest's role in the call (Dolmetscher/in, Angehörige/r ...), worded by this page.
    const code = String(person.call_role || "");
    if (role) role.textContent = code ? t("role" + code.charAt(0).toUpperCase() + code.slice(1)) : "";
    const state = this.states[person.key];
    if (state) {
      tile.dataset.camera = state.camera || state.screen ? "on" : "off";
      tile.dataset.mic = state.mic ? "on" : "off";
      tile.dataset.screen = state.screen ? "true" : "false";
      // "Kamera nicht freigegeben" rather than a look of having switched it off.
      tile.dataset.flag = state.cameraBlocked ? "camera-blocked" : state.audioOnly ? "audio-only" : "none";
    }
    tile.dataset.connection = this.#connection(person);
    const mid = Object.keys(this.slots).find((m) => this.slots[m] === person.key && this.tracks[m] && this.tracks[m].kind === "video");
    const video = tile.querySelector("video");
    const track = mid ? this.tracks[mid] : null;
    const current = video.srcObject && video.srcObject.getVideoTracks()[0];
    if (track && current !== track) {
      video.srcObject = new MediaStream([track]);
      video.play().catch(() => {});
    } else if (!track && current) {
      video.srcObject = null;
    }
  }

  // "live" while the member's media arrives; "lost" once it stopped, or whenever the
  // server says they are away (in the call, but off the relay); "connecting" before
  // their media ever came.
  #connection(person) {
    if (person.away) return "lost";
    const at = this.arrived[person.key];
    if (at !== undefined && performance.now() - at <= STALL_MS) return "live";
    return this.seen.has(person.key) ? "lost" : "connecting";
  }

  // Whose media grew since the last sample (quality.js hands over each getStats report of
  // the live connection): frames decoded (unless their camera is off) or audio packets
  // received (a muted microphone still sends silence).
  follow(report) {
    const now = performance.now();
    const counters = {};
    report.forEach((r) => {
      if (r.type !== "inbound-rtp" || !r.mid) return;
      const count = r.kind === "video" ? r.framesDecoded || 0 : r.packetsReceived || 0;
      counters[r.mid] = count;
      const key = this.slots[r.mid];
      if (!key || !(count > (this.counters[r.mid] || 0))) return;
      const state = this.states[key];
      if (r.kind === "video" && state && !state.camera && !state.screen) return;
      this.arrived[key] = now;
      this.seen.add(key);
    });
    this.counters = counters;
    this.update();
  }

  // The loudest remote audio slot above a floor, by its mean level since the last
  // sample: audioLevel is only the last moment's, and a sample that falls into a pause
  // between words (or beeps) would miss the speaker.
  async #sampleSpeaker(stats) {
    const timer = this.speakerTimer;
    const report = await stats();
    if (!report || timer !== this.speakerTimer) return;
    let loudest = null;
    let level = SPEAKER_MIN_LEVEL;
    const before = this.energy;
    this.energy = {};
    report.forEach((r) => {
      if (r.type !== "inbound-rtp" || r.kind !== "audio" || !r.mid || typeof r.totalAudioEnergy !== "number") return;
      this.energy[r.mid] = { energy: r.totalAudioEnergy, duration: r.totalSamplesDuration };
      const last = before[r.mid];
      if (!last || !(r.totalSamplesDuration > last.duration)) return;
      const mean = Math.sqrt(Math.max(0, r.totalAudioEnergy - last.energy) / (r.totalSamplesDuration - last.duration));
      const key = this.slots[r.mid];
      if (key && mean > level && !(this.states[key] && this.states[key].mic === false)) { loudest = key; level = mean; }
    });
    if (!this.element) return;
    this.element.querySelectorAll(".tile").forEach((tile) => {
      if (tile.dataset.key === loudest) tile.dataset.speaking = "true";
      else tile.removeAttribute("data-speaking");
    });
  }
}
