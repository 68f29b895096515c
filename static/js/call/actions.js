// What the user's buttons do (toolbar, ring dialog, waiting room), to the call as this
// page knows it. main.js owns the call's state and the transport; it hands in what an
// action may touch.
import { toggleChat } from "./chat.js";
import { noticeUnlessError, role, t } from "./page.js";
import { chime, stopRingTone, unlockAudio } from "./ring.js";
import { playRemote, remoteVideo, toggleFullscreen, toggleMinimise } from "./view.js";

const guest = role === "guest";

// call: the state (main.js); the rest: { send, endCall, render, media, sharing,
// screenshots, grid, peerKey, transport() }.
export function callActions(call, { send, endCall, render, media, sharing, screenshots, grid, peerKey, transport }) {
  // A guest leaves; the call goes on for the others.
  function leave() {
    call.joined = false;
    call.left = true;
    endCall();
    render();
  }

  function hangup() {
    send({ type: "hangup" });
    if (guest) { leave(); return; }
    call.hangupPending = true;
    // Show it at once; the server's call-state "ended" confirms it on both sides.
    call.ended = true;
    call.callState = "ended";
    endCall();
    render();
  }

  function accept() {
    call.hangupPending = false;
    stopRingTone();
    send({ type: "accept" });
    if (guest) {
      call.joined = true;
      noticeUnlessError(t("callRules"));
      render();
    }
    media.ensure();
    // The sound of the call may start without another click.
    unlockAudio();
  }

  function decline() {
    send({ type: "decline" });
    if (guest) {
      call.declined = true;
      media.release();
      render();
    }
  }

  const actions = {
    camera: () => media.toggleCamera(),
    mic: () => media.toggleMic(),
    screen: () => sharing.toggle(),
    chat: toggleChat,
    minimise: () => toggleMinimise(grid.mainVideo(peerKey) || remoteVideo),
    "switch-camera": () => media.switchCamera(),
    screenshot: () => screenshots.request(),
    fullscreen: toggleFullscreen,
    hangup,
    ring: () => { call.hangupPending = false; send({ type: "ring" }); },
    cancel: () => send({ type: "cancel" }),
    accept,
    decline,
    "screenshot-allow": () => screenshots.answer(true),
    "screenshot-deny": () => screenshots.answer(false),
    "audio-unblock": () => playRemote(transport().audioSinks()),
    "ring-test": chime,
  };
  return { actions, leave };
}
