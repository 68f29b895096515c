// The WebRTC client of a consultation, shared by the staff call page and the waiting
// room of patients and guests (docs/signalling.md). This module wires the parts: the
// socket's messages go to the call state, the transport (one at a time: browser to
// browser, or the media relay for groups) and the page.
import { AudioOnly, showRemoteFlags } from "./audioonly.js";
import { callActions } from "./actions.js";
import { addChat, resetFormAfterSending } from "./chat.js";
import { FrameEncryption } from "./e2ee.js";
import { Grid } from "./grid.js";
import { LocalMedia } from "./media.js";
import { P2PTransport } from "./p2p.js";
import { LostWatch } from "./lost.js";
import { encryptionHandlers, showEncryption } from "./lock.js";
import { notice, noticeUnlessError, onActions, role, root, t } from "./page.js";
import { Quality } from "./quality.js";
import { RelayTransport } from "./relay.js";
import { showDelay } from "./delay.js";
import { keepRingDialogOpen, ringing, unlockOnFirstGesture } from "./ring.js";
import { ScreenShare } from "./screenshare.js";
import { Screenshots } from "./screenshot.js";
import { Socket } from "./socket.js";
import { initToolbar } from "./toolbar.js";
import { followBrowserViews, remoteVideo, render as show, resetStage, showRemoteMedia, viewOf } from "./view.js";

// Guests (further participants, Premium) take part only in group calls, through the relay.
const guest = role === "guest";
// The other side of a 1:1 call; whose media-state and screen-share concern this page.
const peerKey = role === "staff" ? "patient" : "staff";
// A guest's accept that the server refused: back to the waiting room, the message says why.
const JOIN_REFUSALS = ["tariff", "relay", "invalid", "full", "e2ee"];

const call = {
  callState: "idle",
  peerOnline: false,
  deleted: false,
  takenOver: false, // the link was opened on another device: this one is cut off
  ended: false,
  welcomed: false, // this page had a welcome once: later welcomes are reconnects
  // This page hung up and the server has not confirmed it yet: said again on every
  // welcome until the call is over (a hangup sent while Redis was away got no answer).
  hangupPending: false,
  joined: false, // guests: accepted and not left
  gaveUp: false, // this page ended the call after CALL_LOST_SECONDS without a connection
  declined: false,
  left: false,
};

const socket = new Socket({ onMessage: handle, onRefused: deleted, onTakenOver: takenOver, onNoConsent: noConsent });
const send = (message) => socket.send(message);
const sendMediaState = () => send(Object.assign({ type: "media-state" }, media.state()));
const media = new LocalMedia({
  tracksChanged: () => transport.useLocalMedia(),
  videoChanged: (track) => transport.replaceVideo(track),
  stateChanged: sendMediaState,
});
const grid = new Grid();
const e2ee = new FrameEncryption({ send, onChange: () => render() });
const sharing = new ScreenShare({ media, send, sendMediaState });
const screenshots = new Screenshots({ send, patientVideo: () => grid.videoOf("patient") || remoteVideo });
const quality = new Quality(() => transport, () => render(), (report) => grid.follow(report));

// What a transport may use; read when used, as a welcome brings new ICE servers.
const ctx = {
  role, media, grid, e2ee, send, sendMediaState,
  iceServers: [],
  // "relay": TURN candidates only, so no one learns this browser's address (the server's
  // ICE_TRANSPORT_POLICY, from the welcome).
  iceTransportPolicy: "all",
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
  if (call.callState !== "accepted" || call.deleted || call.takenOver) return false;
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
  showEncryption(e2ee, transport.mode, current === "connected");
  ringing(role !== "staff" && current === "ringing");
}

// ---- messages from the server ------------------------------------------------------

// A 1:1 page ignores what the members of a group call say about themselves ("from").
const fromPeer = (message) => !message.from || message.from === peerKey;

const handlers = {
  welcome: onWelcome,
  "call-state": (m) => { if (!hangingUp(m.state)) onCallState(m.state, {}); },
  presence: (m) => onPresence(!!m.peer_online),
  relay: onRelayActive,
  // Whoever is new learns this page's camera and microphone state.
  roster: (m) => {
    if (grid.setRoster(m)) sendMediaState();
    e2ee.setRequired(m.e2ee !== "warn");
    e2ee.setMembers(grid.roster.filter((p) => !p.away).map((p) => p.key));
  },
  ...encryptionHandlers(e2ee, ctx),
  signal: (m) => transport.receive(m),
  "restart-ice": (m) => transport.receive(m),
  "relay-answer": (m) => transport.receive(m),
  "media-state": (m) => {
    if (m.from) grid.setMediaState(m.from, m);
    if (fromPeer(m)) {
      showRemoteMedia(m);
      showRemoteFlags(m);
    }
  },
  "screen-share": (m) => { if (fromPeer(m)) root.dataset.remoteScreen = m.active ? "true" : "false"; },
  "screen-share-ok": () => sharing.allowed(),
  "screenshot-request": () => screenshots.ask(),
  "screenshot-consent": (m) => screenshots.consented(m.granted),
  "screenshot-taken": () => notice(t("screenshotTaken"), "info"),
  chat: (m) => addChat(m, grid.key || role, call.callState === "accepted"),
  error: onError,
  "appointment-deleted": deleted,
  "taken-over": takenOver,
  delay: showDelay, // the waiting room: the practice runs late
  // Staff: the patient or a guest opened the link on another device, which took it over.
  // Staff: the patient or a guest withdrew their consent (their pages closed).
  "consent-withdrawn": (m) => notice(t(m.key === "patient" ? "consentWithdrawnPatient" : "consentWithdrawnGuest"), "info"),
  "device-changed": (m) => notice(t(m.key === "patient" ? "deviceChangedPatient" : "deviceChangedGuest"), "info"),
};

// Staff in a group call: news after which the list of who is in the call and who waits
// may be out of date (its page or socket came or went, the call state, who is on the
// relay); the list (templates/consultation/_people.html) fetches itself again, and the
// server decides what it says. "people": a guest's page came or went, or was removed.
const PEOPLE_NEWS = new Set(["welcome", "presence", "call-state", "roster", "people"]);

function handle(message) {
  if (Object.hasOwn(handlers, message.type)) handlers[message.type](message);
  if (role === "staff" && PEOPLE_NEWS.has(message.type)) document.body.dispatchEvent(new CustomEvent("people-changed"));
}

function onWelcome(message) {
  const reconnect = call.welcomed;
  call.welcomed = true;
  // Only the servers handed out for this call: never a public default.
  ctx.iceServers = Array.isArray(message.iceServers) ? message.iceServers : [];
  ctx.iceTransportPolicy = message.iceTransportPolicy === "relay" ? "relay" : "all";
  ctx.max = Number(message.maxParticipants) || 2;
  ctx.group = !!message.group;
  call.peerOnline = !!message.peer_online;
  grid.key = message.key || role;
  e2ee.setSelf(grid.key, message.e2ee !== "warn");
  if (ctx.group) e2ee.hello();
  if (reconnect) document.body.dispatchEvent(new CustomEvent("socket-back")); // chat history again
  if (hangingUp(message.state)) {
    send({ type: "hangup" });
    render();
    return;
  }
  if (message.relay) swap(RelayTransport);
  const before = call.callState;
  onCallState(message.state, { welcome: true, reconnect });
  // The server forgot the call (restarted without its state, or both sides were away):
  // the page says why it ended instead of silently going back to the start.
  if (reconnect && !guest && message.state === "idle" && (before === "accepted" || before === "ringing")) {
    notice(t("callReset"), "error");
  }
  render();
}

// While this page's hangup is unconfirmed, the call it hung up is the past: a running one,
// or for staff a ringing one (a patient cannot hang up a ring; a new ring is not that call).
function hangingUp(state) {
  if (!call.hangupPending) return false;
  // A patient who gave up on a group call leaves the others their call (onCallState).
  if (call.gaveUp && role !== "staff") {
    call.hangupPending = false;
    return false;
  }
  if (state === "accepted" || (state === "ringing" && role === "staff")) return true;
  call.hangupPending = false;
  return false;
}

function onError(message) {
  if (message.code === "logged-out") {
    // The login ended (logout on another device, idle, 12 h): the reload leads to the login page.
    socket.stop();
    transport.close();
    location.reload();
    return;
  }
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
  if (state === "accepted" && call.gaveUp) {
    // Back after giving up while the call went on without this page (a group call): it
    // stays over here, as the page said. Staff's hang-up now reaches the server and ends
    // it for the others too; a patient leaves the others their call.
    if (how.welcome && role === "staff") send({ type: "hangup" });
    return;
  }
  call.gaveUp = false;
  const before = call.callState;
  call.callState = state;
  if (state === "accepted") {
    if (before !== "accepted" || how.welcome) call.ended = false;
    // KBV Anlage 31b: at the start, everyone present is introduced; nobody records.
    if (before !== "accepted" && !how.reconnect) noticeUnlessError(t("callRules"));
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

// No consent in force (withdrawn, here or in another tab): no media any more. The page
// that says so (and offers to consent again; without any consent it is the device check).
// Also where this page's own "Einwilligung widerrufen" form leads: the same page either way.
function noConsent() {
  socket.stop();
  endCall();
  media.release();
  if (root.dataset.consentUrl) location.assign(root.dataset.consentUrl);
}

function takenOver() {
  call.takenOver = true;
  socket.stop();
  endCall();
  media.release();
  render();
}

// The call is over for this page; back to a browser-to-browser transport for the next.
function endCall() {
  transport.close();
  transport = new P2PTransport(ctx);
  sharing.stop(false);
  grid.reset();
  e2ee.reset();
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
  call.hangupPending = true;
  send({ type: "hangup" });
  call.gaveUp = true;
  call.ended = true;
  call.callState = "ended";
  endCall();
  render();
  notice(t("callLost"), "error");
}

// ---- the user's actions (actions.js) ---------------------------------------------------

const { actions, leave } = callActions(call, {
  send, endCall, render, media, sharing, screenshots, grid, peerKey, transport: () => transport,
});

window.addEventListener("pagehide", () => {
  // A guest who closes the page leaves the call; a cut network only makes them "away".
  if (guest && call.joined) send({ type: "hangup" });
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
initToolbar();
new AudioOnly(media); // wires its buttons and the offer when the quality stays poor
followBrowserViews();
keepRingDialogOpen();
unlockOnFirstGesture();
resetFormAfterSending();
if (role === "staff") media.ensure();
render();
socket.connect();
