// What the page shows: which of its views (data-show-when), the other side's camera and
// microphone, autoplay, minimise and full screen.
import { $, $$, log, notice, role, root, setPressed, t } from "./page.js";

export const remoteVideo = $("#remote-video");
const stage = $("#call-stage");

function connectionView(connection) {
  if (connection === "connected") return "connected";
  if (connection === "reconnecting") return "reconnecting";
  return "connecting";
}

// call: { callState, deleted, ended, joined, declined, left } (the last three: guests);
// connection: the transport's state.
export function viewOf(call, connection) {
  if (call.takenOver) return "taken-over";
  if (call.deleted) return "deleted";
  const s = call.callState;
  if (role === "guest") {
    // A guest joins a call that runs already: "accepted" rings until the guest answers.
    if (s === "accepted" && call.joined) return connectionView(connection);
    if (call.left || (s === "ended" && call.ended)) return "ended";
    if (s === "accepted" && !call.declined) return "ringing";
    return "waiting";
  }
  if (s === "accepted") return connectionView(connection);
  if (role === "staff" && s === "offline" && call.peerOnline) {
    // Rung while the patient was away, and the patient has come since: the headline
    // says so (as the presence line does) and offers the call, instead of "nicht online".
    return "arrived";
  }
  if (role === "patient") {
    if (s === "ringing") return "ringing";
    if (s === "ended" && call.ended) return "ended";
    if (s === "timeout") return "missed";
    return "waiting";
  }
  return s;
}

// Every element with data-show-when="a b" is visible only in views a and b.
export function render(current, mode, peerOnline) {
  root.dataset.view = current;
  root.dataset.mode = mode;
  $$("[data-relay-note]").forEach((el) => { el.hidden = mode !== "relay"; });
  root.dataset.peerOnline = peerOnline ? "true" : "false";
  $$("[data-show-when]").forEach((el) => {
    el.hidden = !el.dataset.showWhen.split(/\s+/).includes(current);
  });
  $$("[data-peer-online]").forEach((el) => {
    el.hidden = (el.dataset.peerOnline === "true") !== peerOnline;
  });
}

// What the other side of a 1:1 call has switched off.
export function showRemoteMedia(state) {
  root.dataset.remoteCamera = state.camera ? "on" : "off";
  root.dataset.remoteMic = state.mic ? "on" : "off";
  root.dataset.remoteScreen = state.screen ? "true" : "false";
  $$("[data-remote-off]").forEach((el) => {
    el.hidden = !!state[el.dataset.remoteOff];
  });
}

// Autoplay with sound needs a gesture on this page; without one, a button offers it.
export function playRemote(sinks) {
  remoteVideo.play().catch(() => {});
  const blocked = $("#call-audio-blocked");
  Promise.all(sinks.map((sink) => sink.play())).then(() => {
    if (blocked) blocked.hidden = true;
  }).catch(() => {
    if (blocked) blocked.hidden = false;
  });
}

// The call is over: the stage goes back to how the page began.
export function resetStage() {
  if (document.pictureInPictureElement) document.exitPictureInPicture().catch(() => {});
  if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
  root.classList.remove("call-minimised");
  setPressed("minimise", false);
  setPressed("fullscreen", false);
  delete root.dataset.remoteCamera;
  delete root.dataset.remoteMic;
  delete root.dataset.remoteScreen;
}

// video: whom to show small (the speaker of a group call, else the other side).
export async function toggleMinimise(video) {
  if (document.pictureInPictureElement) {
    await document.exitPictureInPicture().catch(() => {});
    return;
  }
  if (root.classList.contains("call-minimised")) {
    root.classList.remove("call-minimised");
    setPressed("minimise", false);
    return;
  }
  if (document.pictureInPictureEnabled && video.readyState >= 1 && !video.disablePictureInPicture) {
    try {
      await video.requestPictureInPicture();
      setPressed("minimise", true);
      return;
    } catch (e) {
      log("picture-in-picture", e);
    }
  }
  // No Picture-in-Picture here: a small floating view on the page instead.
  root.classList.add("call-minimised");
  setPressed("minimise", true);
}

export function toggleFullscreen() {
  if (document.fullscreenElement) {
    document.exitFullscreen().catch(() => {});
  } else if (stage.requestFullscreen) {
    stage.requestFullscreen().catch(() => notice(t("fullscreenFailed"), "info"));
  } else if (remoteVideo.webkitEnterFullscreen) {
    // iPhone Safari: only the video element itself can go full screen.
    remoteVideo.webkitEnterFullscreen();
  }
}

// The browser ends Picture-in-Picture and full screen by itself too (Escape, its own button).
export function followBrowserViews() {
  root.addEventListener("leavepictureinpicture", () => setPressed("minimise", false), true);
  document.addEventListener("fullscreenchange", () => setPressed("fullscreen", !!document.fullscreenElement));
}
