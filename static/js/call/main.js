// The WebRTC client of a consultation, shared by the staff call page and the waiting
// room of patients and guests (docs/signalling.md). This module wires the parts: the
// socket's messages go to the call state, the transport (one at a time: browser to
// browser, or the media relay for groups) and the page.
import { addChat, resetFormAfterSending, toggleChat } from "./chat.js";
import { Grid } from "./grid.js";
import { LocalMedia } from "./media.js";
import { P2PTransport } from "./p2p.js";
import { LostWatch } from "./lost.js";
import { notice, onActions, role, root, t } from "./page.js";
import { Quality } from "./quality.js";
import { RelayTransport } from "./relay.js";
import { chime, keepRingDialogOpen, ringing, stopRingTone, unlockAudio, unlockOnFirstGesture } from "./ring.js";
import { ScreenShare } from "./screenshare.js";
import { Screenshots } from "./screenshot.js";
import { Socket } from "./socket.js";
import {
  followBrowserViews, playRemote, remoteVideo, render as show, resetStage, showRemoteMedia, toggleFullscreen,
  toggleMinimise, viewOf,
} from "./view.js";

// Guests (further participants, Premium) take part only in group calls, through the relay.
const guest = role === "guest";
// The other side of a 1:1 call; whose media-state and screen-share concern this page.
const peerKey = role === "staff" ? "patient" : "staff";
// A guest's accept that the server refused: back to the waiting room, the message says why.
const JOIN_REFUSALS = ["tariff", "relay", "invalid", "full"];

const call = {
  callState: "idle",
  peerOnline: false,
  deleted: false,
  ended: false,
  welcomed: false, // this page had a welcome once: later welcomes are reconnects
  joined: false, // guests: accepted and not left
  declined: false,
  left: false,
};

const socket = new Socket({ onMessage: handle, onRefused: deleted });
const send = (message) => socket.send(message);
const sendMediaState = () => send(Object.assign({ type: "media-state" }, media.state()));
const media = new LocalMedia({
  tracksChanged: () => transport.useLocalMedia(),
  videoChanged: (track) => transport.replaceVideo(track),
  stateChanged: sendMediaState,
});
const grid = new Grid();
const sharing = new ScreenShare({ media, send, sendMediaState });
const screenshots = new Screenshots({ send, patientVideo: () => grid.videoOf("patient") || remoteVideo });
const quality = new Quality(() => transport, () => render());

// What a transport may use; read when used, as a welcome brings new ICE servers.
const ctx = {
  role, media, grid, send, sendMediaState,
  iceServers: [],
  max: 2, // the tariff's participants: 1 own + (max - 1) receive slots per kind
  isMember,
  // Whether a signal can reach the other side now: this page's socket and the peer's are open.
  canSignal: () => socket.isOpen() && call.peerOnline,
  onState: (which) => {
    if (which !== transport || which.closed) return;
    quality.update();
    render();
  },
  onRefused: () => { if (guest) leave(); },
};
let transport = new P2PTransport(ctx);

function swap(Kind) {
  if (transport instanceof Kind) return;
  transport.close();
  transport = new Kind(ctx);
  quality.update();
}

function isMember() {
  if (call.callState !== "accepted" || call.deleted) return false;
  return guest ? call.joined : true;
}

// The connection as the user should see it: "connected" only while media arrives.
function connection() {
  return quality.stalled && transport.state === "connected" ? "reconnecting" : transport.state;
}

function render() {
  const current = viewOf(call, connection());
  watchLost(current);
  show(current, transport.mode, call.peerOnline);
  ringing(role !== "staff" && current === "ringing");
}

// ---- messages from the server ------------------------------------------------------

// A 1:1 page ignores what the members of a group call say about themselves ("from").
const fromPeer = (message) => !message.from || message.from === peerKey;

const handlers = {
  welcome: onWelcome,
  "call-state": (m) => onCallState(m.state, {}),
  presence: (m) => onPresence(!!m.peer_online),
  relay: onRelayActive,
  // Whoever is new learns this page's camera and microphone state.
  roster: (m) => { if (grid.setRoster(m)) sendMediaState(); },
  signal: (m) => transport.receive(m),
  "restart-ice": (m) => transport.receive(m),
  "relay-answer": (m) => transport.receive(m),
  "media-state": (m) => {
    if (m.from) grid.setMediaState(m.from, m);
    if (fromPeer(m)) showRemoteMedia(m);
  },
  "screen-share": (m) => { if (fromPeer(m)) root.dataset.remoteScreen = m.active ? "true" : "false"; },
  "screen-share-ok": () => sharing.allowed(),
  "screenshot-request": () => screenshots.ask(),
  "screenshot-consent": (m) => screenshots.consented(m.granted),
  "screenshot-taken": () => notice(t("screenshotTaken"), "info"),
  chat: (m) => addChat(m, grid.key || role, call.callState === "accepted"),
  error: onError,
  "appointment-deleted": deleted,
};

function handle(message) {
  if (Object.hasOwn(handlers, message.type)) handlers[message.type](message);
}

function onWelcome(message) {
  const reconnect = call.welcomed;
  call.welcomed = true;
  // Only the servers handed out for this call: never a public default.
  ctx.iceServers = Array.isArray(message.iceServers) ? message.iceServers : [];
  ctx.max = Number(message.maxParticipants) || 2;
  call.peerOnline = !!message.peer_online;
  grid.key = message.key || role;
  if (message.relay) swap(RelayTransport);
  onCallState(message.state, { welcome: true, reconnect });
  render();
}

function onError(message) {
  if (message.code === "tariff" && sharing.refused(message.message)) return;
  if (guest && call.joined && !transport.pc && JOIN_REFUSALS.includes(message.code)) {
    call.joined = false;
    call.declined = true;
    media.release();
    render();
  } else {
    transport.receive(message);
  }
  if (message.message) notice(message.message, "error");
}

function onPresence(online) {
  const wasOnline = call.peerOnline;
  call.peerOnline = online;
  render();
  // Every "online" is a new socket of the other side: what was sent before may be lost.
  if (online && call.callState === "accepted" && (!wasOnline || connection() !== "connected")) transport.peerBack();
}

// how: { welcome, reconnect } when the state comes with a (re)connected socket.
function onCallState(state, how) {
  if (guest) { onGuestCallState(state, how); return; }
  const before = call.callState;
  call.callState = state;
  if (state === "accepted") {
    if (before !== "accepted" || how.welcome) call.ended = false;
    media.ensure().then(() => { if (call.callState === "accepted") transport.start(how); });
  } else if (before === "accepted") {
    call.ended = true;
    endCall();
  } else if (role === "patient") {
    // The camera starts while it rings, so that Annehmen is quick; declined or
    // missed, it goes off again.
    if (state === "ringing") media.ensure();
    else media.release();
  }
  render();
}

function onGuestCallState(state, how) {
  const before = call.callState;
  call.callState = state;
  if (state === "accepted") {
    if (call.joined && how.welcome) {
      swap(RelayTransport);
      transport.start(how);
    } else if (!call.joined && !call.declined && !call.left) {
      media.ensure();
    }
  } else {
    if (before === "accepted" && (call.joined || call.left)) call.ended = true;
    call.joined = call.declined = call.left = false;
    endCall();
  }
  render();
}

// Said again whenever someone joins: a page already on the relay stays.
function onRelayActive() {
  if (transport.mode === "relay" && transport.pc) return;
  swap(RelayTransport);
  render();
  if (isMember()) transport.start({});
}

function deleted() {
  call.deleted = true;
  socket.stop();
  endCall();
  render();
}

// The call is over for this page; back to a browser-to-browser transport for the next.
function endCall() {
  transport.close();
  transport = new P2PTransport(ctx);
  sharing.stop(false);
  grid.reset();
  quality.update();
  resetStage();
  // The practice keeps its camera for the next call; patients and guests are done.
  if (role !== "staff" || call.deleted) media.release();
}

const lost = new LostWatch(gaveUp);

function watchLost(view) {
  lost.update(view, view === "reconnecting" || (view === "connecting" && call.welcomed && transport.pc
    && transport.state !== "new" && root.dataset.socket === "reconnecting"));
}

function gaveUp() {
  if (call.callState !== "accepted" || guest) return;
  send({ type: "hangup" });
  call.ended = true;
  call.callState = "ended";
  endCall();
  render();
  notice(t("callLost"), "error");
}

// ---- the user's actions ---------------------------------------------------------------

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
  // Show it at once; the server's call-state "ended" confirms it on both sides.
  call.ended = true;
  call.callState = "ended";
  endCall();
  render();
}

function accept() {
  stopRingTone();
  send({ type: "accept" });
  if (guest) {
    call.joined = true;
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
  ring: () => send({ type: "ring" }),
  cancel: () => send({ type: "cancel" }),
  accept,
  decline,
  "screenshot-allow": () => screenshots.answer(true),
  "screenshot-deny": () => screenshots.answer(false),
  "audio-unblock": () => playRemote(transport.audioSinks()),
  "ring-test": chime,
};

window.addEventListener("pagehide", () => {
  socket.stop();
  transport.close();
});

// For tests and the bench only: the live connection, to read getStats.
window.sprechzimmerCall = {
  get pc() { return transport.pc; },
  get state() { return viewOf(call, connection()); },
  get mode() { return transport.mode; },
  get slots() { return Object.assign({}, grid.slots); },
};

onActions(actions);
followBrowserViews();
keepRingDialogOpen();
unlockOnFirstGesture();
resetFormAfterSending();
if (role === "staff") media.ensure();
render();
socket.connect();
