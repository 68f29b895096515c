// This page's camera and microphone, and the toolbar buttons that switch them.
import { $, $$, log, notice, root, setPressed, t } from "./page.js";
import { unavailable } from "./toolbar.js";

const localVideo = $("#local-video");

// The device check (device-check.js) remembers the chosen devices for this tab.
function stored(key) {
  try { return sessionStorage.getItem(key) || undefined; } catch (e) { return undefined; }
}

function videoConstraints(extra) {
  const c = { width: { ideal: 640 }, height: { ideal: 360 }, frameRate: { ideal: 15, max: 30 } };
  const id = stored("sprechzimmer.camera");
  if (id) c.deviceId = { ideal: id };
  return Object.assign(c, extra || {});
}

function audioConstraints() {
  const c = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
  const id = stored("sprechzimmer.mic");
  if (id) c.deviceId = { ideal: id };
  return c;
}

async function cameraTrack(constraints) {
  return (await navigator.mediaDevices.getUserMedia({ video: constraints })).getVideoTracks()[0];
}

export class LocalMedia {
  // tracksChanged(): new devices to send; videoChanged(track): the picture to send
  // now (camera, screen or none), resolves once it is sent; stateChanged(): what the
  // others should be told (camera, microphone, screen on or off).
  constructor({ tracksChanged, videoChanged, stateChanged }) {
    this.events = { tracksChanged, videoChanged, stateChanged };
    this.stream = new MediaStream();
    this.camera = null; // the camera track, also while a screen is shared
    this.mic = null;
    this.screen = null;
    this.cameraOn = true;
    this.micOn = true;
    this.facing = "user";
    this.acquiring = null;
    // Bumped on release: an acquisition that was under way then gives its devices back.
    this.generation = 0;
    this.cameraCount = 0;
    this.cameraBlocked = false; // the browser refused the camera (permission)
    this.audioOnly = false; // "Nur Ton": no video goes out, on purpose
  }

  // What goes out as video: the shared screen, else the camera unless it is off.
  get video() {
    return this.screen || (this.cameraOn ? this.camera : null);
  }

  state() {
    return {
      camera: !!(this.camera && this.cameraOn), mic: !!(this.mic && this.micOn), screen: !!this.screen,
      cameraBlocked: this.cameraBlocked && !this.camera, audioOnly: this.audioOnly,
    };
  }

  // Camera and microphone once per call; what fails is reported, the call goes on
  // with whatever is there (receiving works without sending).
  ensure() {
    if (!this.acquiring) this.acquiring = this.#acquire(this.generation);
    return this.acquiring;
  }

  release() {
    // Nothing held: the end of a call and the call state after it may both ask.
    if (!this.acquiring && !this.camera && !this.mic && !this.screen) return;
    [this.camera, this.mic, this.screen].forEach((track) => track && track.stop());
    this.camera = this.mic = this.screen = null;
    this.stream = new MediaStream();
    this.acquiring = null;
    this.generation += 1;
    localVideo.srcObject = null;
  }

  async #acquire(generation) {
    const tracks = [];
    if (navigator.mediaDevices && navigator.mediaDevices.getUserMedia) {
      const gum = (c) => navigator.mediaDevices.getUserMedia(c).then((s) => s.getTracks());
      try {
        tracks.push(...await gum({ video: videoConstraints(), audio: audioConstraints() }));
      } catch (err) {
        log("camera and microphone", err && err.name);
        const denied = err && (err.name === "NotAllowedError" || err.name === "SecurityError");
        // Denied is denied: asking again for each device would only prompt again; but
        // where only the camera was refused, the microphone is asked for alone.
        this.cameraBlocked = !!denied;
        const mic = denied ? await permission("microphone") : null;
        const alone = mic === "granted" || (mic !== "denied" && await permission("camera") === "denied");
        const fallbacks = !denied ? [{ audio: audioConstraints() }, { video: videoConstraints() }]
          : alone ? [{ audio: audioConstraints() }] : [];
        for (const c of fallbacks) {
          try { tracks.push(...await gum(c)); } catch (e) { log("fallback", e && e.name); }
        }
      }
    }
    if (generation !== this.generation) {
      // Released meanwhile (the ringing stopped): do not keep the devices.
      tracks.forEach((track) => track.stop());
      return;
    }
    tracks.forEach((track) => this.#use(track));
    this.cameraOn = !!this.camera;
    if (!tracks.length) notice(t("mediaFailed"), "error");
    else if (!this.camera) notice(t(this.cameraBlocked ? "cameraBlocked" : "cameraFailed"), "error");
    else if (!this.mic) notice(t("micFailed"), "error");
    localVideo.srcObject = this.stream;
    this.events.tracksChanged();
    this.updateToolbar();
    this.events.stateChanged();
    this.#countCameras();
  }

  #use(track) {
    if (track.kind === "audio") {
      this.mic = track;
      track.enabled = this.micOn;
    } else {
      this.camera = track;
      const facing = track.getSettings && track.getSettings().facingMode;
      if (facing) this.facing = facing;
    }
    this.stream.getTracks().filter((old) => old.kind === track.kind).forEach((old) => this.stream.removeTrack(old));
    this.stream.addTrack(track);
  }

  #countCameras() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return;
    navigator.mediaDevices.enumerateDevices().then((devices) => {
      this.cameraCount = devices.filter((d) => d.kind === "videoinput").length;
      this.updateToolbar();
    });
  }

  updateToolbar() {
    setPressed("camera", !this.cameraOn);
    setPressed("mic", !this.micOn);
    setPressed("screen", !!this.screen);
    setPressed("audio-only", this.audioOnly);
    const why = {
      "switch-camera": this.screen ? t("whySharing") : !this.cameraOn ? t("whyCameraOff")
        : this.cameraCount < 2 ? t("noOtherCamera") : null,
      screen: navigator.mediaDevices && navigator.mediaDevices.getDisplayMedia ? null
        : t(navigator.maxTouchPoints > 0 ? "whyScreenPhone" : "whyScreenBrowser"),
      mic: this.mic ? null : t("whyNoMic"),
      camera: this.cameraBlocked && !this.camera ? t("cameraBlocked") : null,
    };
    Object.entries(why).forEach(([action, reason]) => $$('[data-action="' + action + '"]').forEach((b) => unavailable(b, reason)));
    root.dataset.localCamera = this.cameraOn && this.camera ? "on" : "off";
  }

  async toggleCamera() {
    if (this.cameraOn) {
      this.cameraOn = false;
      // Stop the device, not only the picture: the camera light goes off.
      if (!this.screen) await this.events.videoChanged(null);
      if (this.camera) {
        this.camera.stop();
        this.stream.removeTrack(this.camera);
        this.camera = null;
      }
    } else {
      try {
        this.#use(await cameraTrack(videoConstraints({ facingMode: this.facing })));
        this.cameraOn = true;
        this.audioOnly = false; // the picture is back: no longer "Nur Ton"
        if (!this.screen) await this.events.videoChanged(this.camera);
        localVideo.srcObject = this.stream;
      } catch (e) {
        notice(t("cameraFailed"), "error");
      }
    }
    this.updateToolbar();
    this.events.stateChanged();
  }

  // "Nur Ton": the camera goes off (and its light), the others are told why; off again,
  // the camera comes back.
  async setAudioOnly(on) {
    if (on === this.audioOnly) return;
    if (on && this.screen) this.stopScreen();
    if (on) this.audioOnly = true; // before the camera goes: the others hear why at once
    if (on === this.cameraOn) await this.toggleCamera();
    this.audioOnly = on;
    this.updateToolbar();
    this.events.stateChanged();
  }

  toggleMic() {
    if (!this.mic) return;
    this.micOn = !this.micOn;
    this.mic.enabled = this.micOn;
    this.updateToolbar();
    this.events.stateChanged();
  }

  async switchCamera() {
    if (!this.camera) return;
    const devices = await navigator.mediaDevices.enumerateDevices();
    const cameras = devices.filter((d) => d.kind === "videoinput");
    const settings = this.camera.getSettings();
    let constraints;
    if (settings.facingMode) {
      // Phones and tablets: front and back.
      constraints = videoConstraints({ facingMode: { exact: settings.facingMode === "user" ? "environment" : "user" } });
      delete constraints.deviceId;
    } else {
      const index = cameras.findIndex((d) => d.deviceId === settings.deviceId);
      const next = cameras[(index + 1) % cameras.length];
      if (!next || next.deviceId === settings.deviceId) { notice(t("noOtherCamera"), "info"); return; }
      constraints = videoConstraints({ deviceId: { exact: next.deviceId } });
    }
    // Many phones open only one camera at a time: release the old one first.
    this.camera.stop();
    let track;
    try {
      track = await cameraTrack(constraints);
    } catch (e) {
      notice(t("noOtherCamera"), "info");
      track = await cameraTrack(videoConstraints({ facingMode: this.facing }));
    }
    this.#use(track);
    const id = track.getSettings().deviceId;
    try { if (id) sessionStorage.setItem("sprechzimmer.camera", id); } catch (e) { /* private mode */ }
    if (!this.screen) await this.events.videoChanged(track);
    localVideo.srcObject = this.stream;
    this.updateToolbar();
  }

  // The screen replaces the camera in what goes out; the camera keeps running for later.
  async shareScreen(track) {
    this.screen = track;
    localVideo.srcObject = new MediaStream([track]);
    root.dataset.localScreen = "true";
    await this.events.videoChanged(track);
    this.updateToolbar();
    this.events.stateChanged();
  }

  // False if no screen was shared.
  stopScreen() {
    if (!this.screen) return false;
    this.screen.onended = null;
    this.screen.stop();
    this.screen = null;
    root.dataset.localScreen = "false";
    localVideo.srcObject = this.stream;
    this.events.videoChanged(this.video);
    this.updateToolbar();
    return true;
  }
}

// "granted", "denied", "prompt", or null where the browser cannot say.
async function permission(name) {
  try {
    return (await navigator.permissions.query({ name })).state;
  } catch (e) {
    return null;
  }
}
