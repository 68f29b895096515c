// The WebRTC client of a consultation, shared by the staff call page and the patient's
// waiting room (docs/signalling.md). No inline scripts (CSP): everything the page needs
// comes from data-* attributes on #call; German/English text is rendered by the server.
(function () {
  "use strict";

  const VIDEO_MAX_BITRATE = 600000;
  // Chromium reports "disconnected" for short gaps that heal by themselves; only a
  // longer gap is worth an ICE restart.
  const DISCONNECTED_GRACE_MS = 3000;
  const STATS_INTERVAL_MS = 2000;
  const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15000];
  // aiortc (the relay) takes no trickled candidates: the offer waits for all of them.
  const GATHERING_TIMEOUT_MS = 5000;
  const SPEAKER_INTERVAL_MS = 500;
  const SPEAKER_MIN_LEVEL = 0.02;

  const root = document.getElementById("call");
  if (!root) return;

  const role = root.dataset.role;
  // Guests (further participants, Premium) use the patient's page; they take part
  // only in group calls through the relay.
  const guest = root.dataset.guest === "true";
  const polite = role === "patient";
  const $ = (selector) => root.querySelector(selector);
  const $$ = (selector) => Array.from(root.querySelectorAll(selector));
  const remoteVideo = $("#remote-video");
  const remoteAudio = $("#remote-audio");
  const localVideo = $("#local-video");
  const stage = $("#call-stage");

  // data-t-quality-good="Verbindung: gut" -> t("qualityGood")
  function t(key, values) {
    const name = "t" + key.charAt(0).toUpperCase() + key.slice(1);
    let text = root.dataset[name] || "";
    Object.entries(values || {}).forEach(([k, v]) => { text = text.split("{" + k + "}").join(String(v)); });
    return text;
  }

  function log(...args) {
    if (window.console) console.info("[call]", ...args);
  }

  // ---- what the page shows --------------------------------------------------------

  const ui = {
    callState: "idle",
    peerOnline: false,
    connection: "new", // the peer connection's state, once there is one
    deleted: false,
    ended: false,
    welcomed: false, // this page had a welcome once: later welcomes are reconnects
  };

  // Every element with data-show-when="a b" is visible only in views a and b.
  function view() {
    if (ui.deleted) return "deleted";
    const s = ui.callState;
    if (guest) {
      if (s === "accepted" && group.joined) return connectionView();
      if (group.left || (s === "ended" && ui.ended)) return "ended";
      if (s === "accepted" && !group.declined) return "ringing";
      return "waiting";
    }
    if (s === "accepted") {
      if (ui.connection === "connected") return "connected";
      if (ui.connection === "reconnecting") return "reconnecting";
      return "connecting";
    }
    if (role === "patient") {
      if (s === "ringing") return "ringing";
      if (s === "ended" && ui.ended) return "ended";
      if (s === "timeout") return "missed";
      return "waiting";
    }
    return s;
  }

  function connectionView() {
    if (ui.connection === "connected") return "connected";
    if (ui.connection === "reconnecting") return "reconnecting";
    return "connecting";
  }

  function render() {
    const current = view();
    root.dataset.view = current;
    root.dataset.mode = group.mode;
    $$("[data-relay-note]").forEach((el) => { el.hidden = group.mode !== "relay"; });
    root.dataset.peerOnline = ui.peerOnline ? "true" : "false";
    $$("[data-show-when]").forEach((el) => {
      el.hidden = !el.dataset.showWhen.split(/\s+/).includes(current);
    });
    $$("[data-peer-online]").forEach((el) => {
      el.hidden = (el.dataset.peerOnline === "true") !== ui.peerOnline;
    });
    ringing(role === "patient" && current === "ringing");
  }

  let noticeTimer = null;
  function notice(text, kind) {
    const box = $("#call-notice");
    if (!box || !text) return;
    box.textContent = text;
    box.className = "call-notice call-notice-" + (kind || "info");
    box.hidden = false;
    clearTimeout(noticeTimer);
    if (kind !== "error") noticeTimer = setTimeout(() => { box.hidden = true; }, 8000);
  }

  function setPressed(action, pressed) {
    $$('[data-action="' + action + '"]').forEach((b) => b.setAttribute("aria-pressed", pressed ? "true" : "false"));
  }

  // ---- websocket with reconnect and backoff -------------------------------------------

  const socket = {
    ws: null,
    attempt: 0,
    timer: null,
    queue: [],
    stopped: false,
  };

  function connect() {
    clearTimeout(socket.timer);
    if (socket.stopped) return;
    if (navigator.onLine === false) {
      // No attempts while offline; the "online" event connects at once.
      root.dataset.socket = "reconnecting";
      return;
    }
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    // Only the path from the server: behind a TLS proxy the page's own scheme is the truth.
    const target = new URL(root.dataset.wsPath, location.href);
    const ws = new WebSocket(scheme + "//" + location.host + target.pathname + target.search);
    let greeted = false;
    socket.ws = ws;
    ws.onmessage = (event) => {
      let message;
      try { message = JSON.parse(event.data); } catch (e) { return; }
      if (message.type === "welcome") greeted = true;
      handle(message);
    };
    ws.onclose = (event) => {
      if (socket.ws !== ws) return;
      socket.ws = null;
      // 1008 before any welcome: this page may no longer enter (link resent, appointment
      // gone, logged out); retrying cannot help. After a welcome it was the rate limit.
      if (event.code === 1008 && !greeted) {
        ui.deleted = true;
        socket.stopped = true;
        endCall();
        render();
        return;
      }
      scheduleReconnect();
    };
    ws.onerror = () => { /* onclose follows and reconnects */ };
  }

  function scheduleReconnect() {
    if (socket.stopped) return;
    const base = BACKOFF_MS[Math.min(socket.attempt, BACKOFF_MS.length - 1)];
    socket.attempt += 1;
    // Jitter so that many pages of a restarted server do not return at the same instant.
    socket.timer = setTimeout(connect, base * (0.75 + Math.random() * 0.5));
    root.dataset.socket = "reconnecting";
  }

  // The browser knows before the socket does: a dropped network leaves a dead TCP
  // connection that can take minutes to close by itself.
  window.addEventListener("offline", () => {
    const ws = socket.ws;
    if (!ws) return;
    socket.ws = null;
    ws.onclose = null;
    ws.close();
    scheduleReconnect();
  });
  window.addEventListener("online", () => {
    if (!socket.ws && !socket.stopped) { socket.attempt = 0; connect(); }
  });

  function send(message) {
    const ws = socket.ws;
    if (ws && ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify(message));
    } else if (message.type === "signal" || message.type === "media-state") {
      // Sent once the socket is back; call control (accept, ring …) is not replayed
      // because the state may have moved on meanwhile.
      socket.queue.push(message);
    }
  }

  function flushQueue() {
    const pending = socket.queue;
    socket.queue = [];
    pending.forEach(send);
  }

  // ---- messages from the server -------------------------------------------------------

  let iceServers = [];
  let features = {};
  let pendingScreenShare = null;

  function handle(message) {
    switch (message.type) {
      case "welcome": {
        const reconnect = ui.welcomed;
        ui.welcomed = true;
        socket.attempt = 0;
        root.dataset.socket = "open";
        // Only the servers handed out for this call: never a public default.
        iceServers = Array.isArray(message.iceServers) ? message.iceServers : [];
        features = message.features || {};
        root.dataset.screenSharing = features.screen_sharing ? "true" : "false";
        ui.peerOnline = !!message.peer_online;
        group.key = message.key || role;
        group.max = Number(message.maxParticipants) || 2;
        if (message.relay) group.mode = "relay";
        flushQueue();
        onCallState(message.state, { welcome: true, reconnect });
        render();
        break;
      }
      case "relay":
        onRelayActive();
        break;
      case "relay-answer":
        onRelayAnswer(message.sdp);
        break;
      case "roster":
        onRoster(message);
        break;
      case "presence":
        onPresence(!!message.peer_online);
        break;
      case "call-state":
        onCallState(message.state, {});
        break;
      case "signal":
        queueSignal(message);
        break;
      case "media-state":
        onMediaState(message);
        break;
      case "chat":
        addChat(message);
        break;
      case "screen-share":
        if (!message.from || message.from === peerKey()) root.dataset.remoteScreen = message.active ? "true" : "false";
        break;
      case "screen-share-ok":
        if (pendingScreenShare) pendingScreenShare.resolve();
        break;
      case "screenshot-request":
        askScreenshotConsent();
        break;
      case "screenshot-consent":
        onScreenshotConsent(message.granted);
        break;
      case "screenshot-taken":
        notice(t("screenshotTaken"), "info");
        break;
      case "restart-ice":
        if (!polite && pc) restartIce("peer asked");
        break;
      case "error":
        if (message.code === "tariff" && pendingScreenShare) {
          pendingScreenShare.reject(message.message);
          break;
        }
        onGroupError(message);
        if (message.message) notice(message.message, "error");
        break;
      case "appointment-deleted":
        ui.deleted = true;
        socket.stopped = true;
        endCall();
        render();
        break;
      default:
        break;
    }
  }

  function onPresence(online) {
    const wasOnline = ui.peerOnline;
    ui.peerOnline = online;
    render();
    // The patient's page came back during the call (reload or a new socket): the
    // staff side, the offerer, renegotiates. A fresh page answers with a new DTLS
    // fingerprint, which onSignal turns into a fresh connection.
    if (online && !wasOnline && role === "staff" && ui.callState === "accepted" && group.mode !== "relay") {
      if (pc) restartIce("peer back"); else startConnection();
    }
  }

  function onCallState(state, how) {
    if (guest) { onGuestCallState(state, how); return; }
    const before = ui.callState;
    ui.callState = state;
    if (state === "accepted") {
      if (before !== "accepted" || how.welcome) ui.ended = false;
      ensureMedia().then(() => {
        if (group.mode === "relay") {
          // A new page or socket joins (again); a working connection stays.
          if (!pc || how.welcome) joinRelay();
        } else if (role === "staff") {
          // A reconnected socket keeps its working connection; a new page starts one.
          if (!pc) startConnection();
          else if (how.reconnect && ui.connection !== "connected") restartIce("socket back");
        } else if (!pc) {
          createPeer();
        }
      });
    } else {
      if (before === "accepted") {
        ui.ended = true;
        endCall();
      }
      if (role === "patient") {
        // The camera starts while it rings, so that Annehmen is quick; declined or
        // missed, it goes off again.
        if (state === "ringing") ensureMedia();
        else releaseMedia();
      }
    }
    render();
  }

  function onGuestCallState(state, how) {
    const before = ui.callState;
    ui.callState = state;
    if (state === "accepted") {
      if (group.joined && how.welcome) joinRelay();
      else if (!group.joined && !group.declined && !group.left) ensureMedia();
    } else {
      if (before === "accepted" && (group.joined || group.left)) ui.ended = true;
      group.joined = group.declined = group.left = false;
      endCall();
      releaseMedia();
    }
    render();
  }

  // ---- local media ---------------------------------------------------------------------

  const media = {
    stream: new MediaStream(),
    camera: null, // the camera track, also while a screen is shared
    mic: null,
    screen: null,
    cameraOn: true,
    micOn: true,
    facing: "user",
    acquiring: null,
    generation: 0,
  };

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

  // Camera and microphone once per call; what fails is reported, the call goes on
  // with whatever is there (receiving works without sending).
  function ensureMedia() {
    if (!media.acquiring) media.acquiring = acquireMedia(media.generation);
    return media.acquiring;
  }

  async function acquireMedia(generation) {
    const tracks = [];
    if (navigator.mediaDevices && navigator.mediaDevices.getUserMedia) {
      const gum = (c) => navigator.mediaDevices.getUserMedia(c).then((s) => s.getTracks());
      try {
        tracks.push(...await gum({ video: videoConstraints(), audio: audioConstraints() }));
      } catch (err) {
        log("camera and microphone", err && err.name);
        // Denied is denied: asking again for each device would only prompt again.
        if (err && err.name !== "NotAllowedError" && err.name !== "SecurityError") {
          for (const c of [{ audio: audioConstraints() }, { video: videoConstraints() }]) {
            try { tracks.push(...await gum(c)); } catch (e) { log("fallback", e && e.name); }
          }
        }
      }
    }
    if (generation !== media.generation) {
      // Released meanwhile (the ringing stopped): do not keep the devices.
      tracks.forEach((track) => track.stop());
      return;
    }
    tracks.forEach(useTrack);
    media.cameraOn = !!media.camera;
    if (!tracks.length) notice(t("mediaFailed"), "error");
    else if (!media.camera) notice(t("cameraFailed"), "error");
    else if (!media.mic) notice(t("micFailed"), "error");
    localVideo.srcObject = media.stream;
    if (pc) attachLocalTracks();
    updateToolbar();
    sendMediaState();
    countCameras();
  }

  function useTrack(track) {
    if (track.kind === "audio") {
      media.mic = track;
      track.enabled = media.micOn;
    } else {
      media.camera = track;
      const facing = track.getSettings && track.getSettings().facingMode;
      if (facing) media.facing = facing;
    }
    media.stream.getTracks().filter((t2) => t2.kind === track.kind).forEach((old) => media.stream.removeTrack(old));
    media.stream.addTrack(track);
  }

  function sendMediaState() {
    send({ type: "media-state", camera: !!(media.camera && media.cameraOn), mic: !!(media.mic && media.micOn), screen: !!media.screen });
  }

  // ---- the peer connection (perfect negotiation) ---------------------------------------

  let pc = null;
  let makingOffer = false;
  let ignoreOffer = false;
  let settingRemoteAnswer = false;
  let signalChain = Promise.resolve();
  let disconnectedTimer = null;
  let remoteStream = null;

  function videoTransceiver() {
    return pc && pc.getTransceivers().find((tr) => tr.receiver.track && tr.receiver.track.kind === "video");
  }

  function audioTransceiver() {
    return pc && pc.getTransceivers().find((tr) => tr.receiver.track && tr.receiver.track.kind === "audio");
  }

  // VP8 first: every browser has it, and the Premium relay forwards it unchanged.
  function preferVp8() {
    if (!pc || !window.RTCRtpReceiver || !RTCRtpReceiver.getCapabilities) return;
    const caps = RTCRtpReceiver.getCapabilities("video");
    if (!caps) return;
    const vp8 = caps.codecs.filter((c) => c.mimeType.toLowerCase() === "video/vp8");
    const rest = caps.codecs.filter((c) => c.mimeType.toLowerCase() !== "video/vp8");
    pc.getTransceivers().forEach((tr) => {
      if (tr.receiver.track && tr.receiver.track.kind === "video" && tr.setCodecPreferences && tr.currentDirection !== "stopped") {
        try { tr.setCodecPreferences(vp8.concat(rest)); } catch (e) { log("codec preferences", e); }
      }
    });
  }

  function capBitrate() {
    const tr = videoTransceiver();
    if (!tr || !tr.sender.getParameters) return;
    const params = tr.sender.getParameters();
    if (!params.encodings || !params.encodings.length) return;
    if (params.encodings.every((e) => e.maxBitrate === VIDEO_MAX_BITRATE)) return;
    params.encodings.forEach((e) => { e.maxBitrate = VIDEO_MAX_BITRATE; });
    tr.sender.setParameters(params).catch((e) => log("bitrate cap", e));
  }

  function createPeer() {
    closePeer();
    const peer = new RTCPeerConnection({ iceServers: iceServers, bundlePolicy: "max-bundle" });
    pc = peer;
    ui.connection = "new";
    remoteStream = new MediaStream();
    remoteVideo.srcObject = remoteStream;
    remoteAudio.srcObject = remoteStream;

    peer.onnegotiationneeded = async () => {
      if (pc !== peer) return;
      try {
        makingOffer = true;
        preferVp8();
        await peer.setLocalDescription();
        sendDescription(peer.localDescription);
      } catch (e) {
        log("offer failed", e);
      } finally {
        makingOffer = false;
      }
    };
    peer.onicecandidate = (event) => {
      if (pc !== peer) return;
      const c = event.candidate;
      send({ type: "signal", candidate: c ? { candidate: c.candidate, sdpMid: c.sdpMid, sdpMLineIndex: c.sdpMLineIndex } : null });
    };
    peer.ontrack = (event) => {
      if (pc !== peer) return;
      remoteStream.getTracks().filter((x) => x.kind === event.track.kind).forEach((x) => remoteStream.removeTrack(x));
      remoteStream.addTrack(event.track);
      playRemote();
    };
    peer.onconnectionstatechange = () => {
      if (pc !== peer) return;
      onConnectionState(peer.connectionState);
    };
    return peer;
  }

  function attachLocalTracks() {
    // Both kinds even without a device: the page still receives both.
    ["audio", "video"].forEach((kind) => {
      const track = kind === "audio" ? media.mic : (media.screen || (media.cameraOn ? media.camera : null));
      const existing = kind === "audio" ? audioTransceiver() : videoTransceiver();
      if (existing) {
        // The patient's transceivers come from the staff offer: fill them in.
        if (existing.sender.track !== track) existing.sender.replaceTrack(track || null);
        if (existing.sender.setStreams) existing.sender.setStreams(media.stream);
        if (existing.direction === "recvonly" && (track || kind === "video")) existing.direction = "sendrecv";
        return;
      }
      const init = { direction: "sendrecv", streams: [media.stream] };
      if (kind === "video") init.sendEncodings = [{ maxBitrate: VIDEO_MAX_BITRATE }];
      pc.addTransceiver(track || kind, init);
    });
  }

  function startConnection() {
    // Staff only: the offerer of the call.
    createPeer();
    attachLocalTracks();
  }

  function sendDescription(description) {
    send({ type: "signal", description: { type: description.type, sdp: description.sdp } });
  }

  function fingerprint(sdp) {
    const m = /a=fingerprint:(\S+ \S+)/.exec(sdp || "");
    return m ? m[1] : null;
  }

  function queueSignal(message) {
    if (group.mode === "relay") return; // a late message of the browser-to-browser call
    // One after another: a candidate must not overtake the description it belongs to.
    signalChain = signalChain.then(() => onSignal(message)).catch((e) => log("signal", e));
  }

  async function onSignal(message) {
    if (message.description) {
      const description = message.description;
      if (description.type === "rollback") return;
      if (!pc) {
        if (description.type !== "offer") return;
        createPeer();
      }
      // A different fingerprint means the other side is a new page (reload): its old
      // DTLS session is gone, so this side starts afresh too.
      const known = pc.remoteDescription && fingerprint(pc.remoteDescription.sdp);
      if (known && fingerprint(description.sdp) && known !== fingerprint(description.sdp)) {
        log("peer is a new page, new connection");
        if (description.type === "offer") {
          createPeer();
        } else {
          startConnection();
          return;
        }
      }
      const readyForOffer = !makingOffer && (pc.signalingState === "stable" || settingRemoteAnswer);
      const collision = description.type === "offer" && !readyForOffer;
      ignoreOffer = !polite && collision;
      if (ignoreOffer) return;
      settingRemoteAnswer = description.type === "answer";
      try {
        await pc.setRemoteDescription(description);
      } finally {
        settingRemoteAnswer = false;
      }
      if (description.type === "offer") {
        // Answer with the camera once it is ready (it was started when it rang).
        if (media.acquiring) await media.acquiring;
        if (!pc) return;
        attachLocalTracks();
        preferVp8();
        await pc.setLocalDescription();
        sendDescription(pc.localDescription);
      }
      capBitrate();
      sendMediaState();
    } else if ("candidate" in message) {
      if (!pc) return;
      try {
        await pc.addIceCandidate(message.candidate || undefined);
      } catch (e) {
        if (!ignoreOffer) log("candidate", e);
      }
    }
  }

  function restartIce(why) {
    if (!pc) return;
    if (group.mode === "relay") { scheduleRelayJoin(why); return; }
    log("ICE restart:", why);
    if (polite) {
      // The staff page is the offerer; it restarts on this hint. Restarting here as
      // well would only make both offer at once.
      send({ type: "restart-ice" });
    } else {
      pc.restartIce();
    }
  }

  function onConnectionState(state) {
    clearTimeout(disconnectedTimer);
    if (state === "connected") {
      ui.connection = "connected";
      capBitrate();
      sendMediaState();
    } else if (state === "failed") {
      ui.connection = "reconnecting";
      restartIce("failed");
    } else if (state === "disconnected") {
      disconnectedTimer = setTimeout(() => {
        if (pc && pc.connectionState === "disconnected") {
          ui.connection = "reconnecting";
          render();
          restartIce("disconnected");
        }
      }, DISCONNECTED_GRACE_MS);
    } else if (state === "connecting" && ui.connection !== "reconnecting") {
      ui.connection = "connecting";
    }
    updateQualityLoop();
    render();
  }

  function closePeer() {
    clearTimeout(disconnectedTimer);
    if (pc) {
      const old = pc;
      pc = null;
      try { old.close(); } catch (e) { /* already closed */ }
    }
    makingOffer = false;
    ignoreOffer = false;
    signalChain = Promise.resolve();
    ui.connection = "new";
    updateQualityLoop();
  }

  function endCall() {
    closePeer();
    leaveGroup();
    stopScreen(false);
    remoteVideo.srcObject = null;
    remoteAudio.srcObject = null;
    if (document.pictureInPictureElement) document.exitPictureInPicture().catch(() => {});
    if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
    root.classList.remove("call-minimised");
    setPressed("minimise", false);
    setPressed("fullscreen", false);
    delete root.dataset.remoteCamera;
    delete root.dataset.remoteMic;
    delete root.dataset.remoteScreen;
    if (role === "patient" || ui.deleted) releaseMedia();
  }

  function releaseMedia() {
    [media.camera, media.mic, media.screen].forEach((track) => track && track.stop());
    media.camera = media.mic = media.screen = null;
    media.stream = new MediaStream();
    media.acquiring = null;
    media.generation += 1;
    localVideo.srcObject = null;
  }

  function playRemote() {
    remoteVideo.play().catch(() => {});
    const blocked = $("#call-audio-blocked");
    const sinks = group.mode === "relay" && relayAudio ? Array.from(relayAudio.querySelectorAll("audio")) : [remoteAudio];
    Promise.all(sinks.map((sink) => sink.play())).then(() => {
      if (blocked) blocked.hidden = true;
    }).catch(() => {
      // Autoplay with sound needs a gesture on this page; one click on the button plays.
      if (blocked) blocked.hidden = false;
    });
  }

  // ---- group calls through the practice's media relay (docs/signalling.md) -------------

  const group = {
    key: null, // this page's relay key: staff, patient, guest-<id>
    max: 2, // the tariff's participants: 1 own + (max - 1) receive slots per kind
    mode: "p2p", // "relay" from the moment a guest joined until the call ends
    joined: false, // guests: accepted and not left
    declined: false,
    left: false,
    roster: [],
    rosterVersion: 0,
    slots: {}, // mid -> key of whoever's media arrives on that receive m-line
    tracks: {}, // mid -> remote track
    states: {}, // key -> last media-state
    attempt: 0,
    retryTimer: null,
    speakerTimer: null,
    energy: {}, // mid -> the audio energy and duration received at the last speaker sample
    joining: false,
  };
  const grid = $("#call-grid");
  const relayAudio = $("#relay-audio");

  function peerKey() {
    return role === "staff" ? "patient" : "staff";
  }

  function isMember() {
    if (ui.callState !== "accepted" || ui.deleted) return false;
    return guest ? group.joined : true;
  }

  function onRelayActive() {
    // Said again whenever someone else joins: a page already on the relay stays.
    if (group.mode === "relay" && pc) return;
    group.mode = "relay";
    render();
    if (isMember()) joinRelay();
  }

  function waitForGathering(peer) {
    if (peer.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, GATHERING_TIMEOUT_MS);
      peer.addEventListener("icegatheringstatechange", () => {
        if (peer.iceGatheringState === "complete") { clearTimeout(timer); resolve(); }
      });
    });
  }

  // One connection to the relay: the own microphone and camera (or screen) go out on
  // two sendonly m-lines, everyone else's arrive on receive m-lines ("slots").
  async function joinRelay() {
    clearTimeout(group.retryTimer);
    await ensureMedia();
    if (!isMember()) return;
    closePeer();
    clearRemoteMedia();
    const peer = new RTCPeerConnection({ iceServers: iceServers, bundlePolicy: "max-bundle" });
    pc = peer;
    ui.connection = "connecting";
    group.joining = true;
    peer.ontrack = (event) => {
      if (pc !== peer) return;
      group.tracks[event.transceiver.mid] = event.track;
      if (event.track.kind === "audio") addRemoteAudio(event.transceiver.mid, event.track);
      updateTiles();
    };
    peer.onconnectionstatechange = () => {
      if (pc === peer) onRelayConnectionState(peer.connectionState);
    };
    const video = media.screen || (media.cameraOn ? media.camera : null);
    peer.addTransceiver(media.mic || "audio", { direction: "sendonly", streams: [media.stream] });
    peer.addTransceiver(video || "video", { direction: "sendonly", streams: [media.stream],
      sendEncodings: [{ maxBitrate: VIDEO_MAX_BITRATE }] });
    for (let i = 1; i < group.max; i += 1) peer.addTransceiver("audio", { direction: "recvonly" });
    for (let i = 1; i < group.max; i += 1) peer.addTransceiver("video", { direction: "recvonly" });
    preferVp8();
    try {
      await peer.setLocalDescription(await peer.createOffer());
      await waitForGathering(peer);
    } catch (e) {
      log("relay offer", e);
      scheduleRelayJoin("offer failed");
      return;
    }
    if (pc !== peer) return;
    send({ type: "relay-offer", sdp: peer.localDescription.sdp });
    updateQualityLoop();
    render();
  }

  async function onRelayAnswer(sdp) {
    group.joining = false;
    if (!pc || group.mode !== "relay") return;
    try {
      await pc.setRemoteDescription({ type: "answer", sdp: sdp });
    } catch (e) {
      log("relay answer", e);
      scheduleRelayJoin("answer failed");
      return;
    }
    capBitrate();
    sendMediaState();
    startSpeakerLoop();
  }

  function scheduleRelayJoin(why) {
    clearTimeout(group.retryTimer);
    if (!isMember() || group.mode !== "relay") return;
    const base = BACKOFF_MS[Math.min(group.attempt, BACKOFF_MS.length - 1)];
    group.attempt += 1;
    log("joining the relay again:", why);
    ui.connection = "reconnecting";
    render();
    group.retryTimer = setTimeout(joinRelay, base * (0.75 + Math.random() * 0.5));
  }

  function onRelayConnectionState(state) {
    clearTimeout(disconnectedTimer);
    if (state === "connected") {
      ui.connection = "connected";
      group.attempt = 0;
      capBitrate();
      sendMediaState();
    } else if (state === "failed" || state === "closed") {
      // The relay restarted or dropped this page: join afresh.
      scheduleRelayJoin(state);
    } else if (state === "disconnected") {
      disconnectedTimer = setTimeout(() => {
        if (pc && pc.connectionState === "disconnected") scheduleRelayJoin("disconnected");
      }, DISCONNECTED_GRACE_MS);
    }
    updateQualityLoop();
    render();
  }

  function onGroupError(message) {
    if (guest && group.joined && !pc && ["tariff", "relay", "invalid", "full"].includes(message.code)) {
      // Joining did not work: back to the waiting room, the message says why.
      group.joined = false;
      group.declined = true;
      releaseMedia();
      render();
      return;
    }
    if (group.joining && pc && group.mode === "relay") {
      group.joining = false;
      if (message.code === "relay") {
        scheduleRelayJoin("relay error");
      } else if (guest) {
        // No place left (or no longer allowed): this guest stays out of the call.
        group.joined = false;
        group.left = true;
        endCall();
        releaseMedia();
        render();
      }
    }
  }

  function onRoster(message) {
    // Rosters are built in several server threads: an older one may arrive last.
    const version = Number(message.version) || 0;
    if (version < group.rosterVersion) return;
    group.rosterVersion = version;
    const before = group.roster.map((p) => p.key).sort().join(",");
    group.roster = Array.isArray(message.participants) ? message.participants : [];
    group.slots = (message.slots && message.slots[group.key]) || {};
    updateTiles();
    // Whoever is new learns this page's camera and microphone state.
    if (group.roster.map((p) => p.key).sort().join(",") !== before) sendMediaState();
  }

  function onMediaState(message) {
    if (message.from) group.states[message.from] = message;
    if (group.mode === "relay") updateTiles();
    if (!message.from || message.from === peerKey()) showRemoteMedia(message);
  }

  function tileFor(key) {
    return grid && grid.querySelector('.tile[data-key="' + CSS.escape(key) + '"]');
  }

  // The grid follows the roster: one tile per other person, the video of the slot
  // that carries their media, their name and camera/microphone state.
  function updateTiles() {
    if (!grid) return;
    const inCall = group.mode === "relay" && pc;
    const others = inCall ? group.roster.filter((p) => p.key !== group.key) : [];
    const keep = new Set(others.map((p) => p.key));
    grid.querySelectorAll(".tile").forEach((tile) => { if (!keep.has(tile.dataset.key)) tile.remove(); });
    const template = $("#tile-template");
    others.forEach((person) => {
      let tile = tileFor(person.key);
      if (!tile && template) {
        tile = template.content.firstElementChild.cloneNode(true);
        tile.dataset.key = person.key;
        grid.appendChild(tile);
      }
      if (!tile) return;
      tile.querySelector(".tile-name").textContent = person.name || "";
      const state = group.states[person.key];
      if (state) {
        tile.dataset.camera = state.camera || state.screen ? "on" : "off";
        tile.dataset.mic = state.mic ? "on" : "off";
        tile.dataset.screen = state.screen ? "true" : "false";
      }
      const mid = Object.keys(group.slots).find((m) => group.slots[m] === person.key && group.tracks[m] && group.tracks[m].kind === "video");
      const video = tile.querySelector("video");
      const track = mid ? group.tracks[mid] : null;
      const current = video.srcObject && video.srcObject.getVideoTracks()[0];
      if (track && current !== track) {
        video.srcObject = new MediaStream([track]);
        video.play().catch(() => {});
      } else if (!track && current) {
        video.srcObject = null;
      }
    });
    grid.dataset.count = String(others.length);
    grid.hidden = !inCall;
  }

  function addRemoteAudio(mid, track) {
    if (!relayAudio) return;
    let element = relayAudio.querySelector('audio[data-mid="' + CSS.escape(mid) + '"]');
    if (!element) {
      element = document.createElement("audio");
      element.autoplay = true;
      element.dataset.mid = mid;
      relayAudio.appendChild(element);
    }
    element.srcObject = new MediaStream([track]);
    playRemote();
  }

  function clearRemoteMedia() {
    group.tracks = {};
    if (relayAudio) relayAudio.replaceChildren();
    if (grid) grid.querySelectorAll(".tile video").forEach((v) => { v.srcObject = null; });
    stopSpeakerLoop();
  }

  function leaveGroup() {
    clearTimeout(group.retryTimer);
    clearRemoteMedia();
    group.mode = "p2p";
    group.roster = [];
    group.rosterVersion = 0;
    group.slots = {};
    group.states = {};
    group.attempt = 0;
    group.joining = false;
    updateTiles();
  }

  // The active speaker: the loudest remote audio slot above a floor, twice a second.
  function startSpeakerLoop() {
    if (!group.speakerTimer) group.speakerTimer = setInterval(sampleSpeaker, SPEAKER_INTERVAL_MS);
  }

  function stopSpeakerLoop() {
    clearInterval(group.speakerTimer);
    group.speakerTimer = null;
    group.energy = {};
    if (grid) grid.querySelectorAll(".tile[data-speaking]").forEach((tile) => tile.removeAttribute("data-speaking"));
  }

  async function sampleSpeaker() {
    const peer = pc;
    if (!peer || group.mode !== "relay") return;
    const report = await peer.getStats();
    if (peer !== pc) return;
    let loudest = null;
    let level = SPEAKER_MIN_LEVEL;
    const before = group.energy;
    group.energy = {};
    report.forEach((r) => {
      if (r.type !== "inbound-rtp" || r.kind !== "audio" || !r.mid || typeof r.totalAudioEnergy !== "number") return;
      group.energy[r.mid] = { energy: r.totalAudioEnergy, duration: r.totalSamplesDuration };
      const last = before[r.mid];
      if (!last || !(r.totalSamplesDuration > last.duration)) return;
      // The mean level since the last sample: audioLevel is only the last moment's,
      // and a sample that falls into a pause between words (or beeps) missed the speaker.
      const mean = Math.sqrt(Math.max(0, r.totalAudioEnergy - last.energy) / (r.totalSamplesDuration - last.duration));
      const key = group.slots[r.mid];
      if (key && mean > level && !(group.states[key] && group.states[key].mic === false)) { loudest = key; level = mean; }
    });
    if (!grid) return;
    grid.querySelectorAll(".tile").forEach((tile) => {
      if (tile.dataset.key === loudest) tile.dataset.speaking = "true";
      else tile.removeAttribute("data-speaking");
    });
  }

  function patientVideo() {
    const tile = group.mode === "relay" && tileFor("patient");
    return tile ? tile.querySelector("video") : remoteVideo;
  }

  function mainVideo() {
    if (group.mode !== "relay" || !grid) return remoteVideo;
    const tile = grid.querySelector('.tile[data-speaking="true"]') || tileFor(peerKey()) || grid.querySelector(".tile");
    return tile ? tile.querySelector("video") : remoteVideo;
  }

  // ---- what the other side shows --------------------------------------------------------

  function showRemoteMedia(state) {
    root.dataset.remoteCamera = state.camera ? "on" : "off";
    root.dataset.remoteMic = state.mic ? "on" : "off";
    root.dataset.remoteScreen = state.screen ? "true" : "false";
    $$("[data-remote-off]").forEach((el) => {
      el.hidden = !!state[el.dataset.remoteOff];
    });
  }

  // ---- connection quality --------------------------------------------------------------

  let statsTimer = null;
  let lastSample = null;

  function updateQualityLoop() {
    const active = pc && ui.connection !== "new";
    if (active && !statsTimer) {
      statsTimer = setInterval(sampleQuality, STATS_INTERVAL_MS);
    } else if (!active && statsTimer) {
      clearInterval(statsTimer);
      statsTimer = null;
      lastSample = null;
    }
  }

  async function sampleQuality() {
    if (!pc) return;
    const report = await pc.getStats();
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
    if (lastSample) {
      const dLost = Math.max(0, lost - lastSample.lost);
      const dAll = dLost + Math.max(0, received - lastSample.received);
      loss = dAll ? dLost / dAll : 0;
    }
    lastSample = { lost, received };
    const cameraOff = root.dataset.remoteCamera === "off";
    let level = "good";
    if ((rtt !== null && rtt > 0.5) || loss > 0.08 || (!cameraOff && fps !== null && fps < 5)) level = "poor";
    else if ((rtt !== null && rtt > 0.25) || loss > 0.02 || (!cameraOff && fps !== null && fps < 12)) level = "fair";
    if (ui.connection === "reconnecting") level = "poor";
    const box = $("#call-quality");
    if (!box || !box.querySelector(".quality-text")) return;
    box.dataset.level = level;
    const detail = t("qualityDetail", {
      rtt: rtt === null ? "–" : Math.round(rtt * 1000),
      loss: (loss * 100).toFixed(1),
      fps: fps === null ? "–" : Math.round(fps),
    });
    box.querySelector(".quality-text").textContent = t("quality" + level.charAt(0).toUpperCase() + level.slice(1));
    box.title = detail;
    box.querySelector(".quality-detail").textContent = detail;
  }

  // ---- toolbar ---------------------------------------------------------------------------

  let cameraCount = 0;

  function countCameras() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return;
    navigator.mediaDevices.enumerateDevices().then((devices) => {
      cameraCount = devices.filter((d) => d.kind === "videoinput").length;
      updateToolbar();
    });
  }

  function updateToolbar() {
    setPressed("camera", !media.cameraOn);
    setPressed("mic", !media.micOn);
    setPressed("screen", !!media.screen);
    $$('[data-action="switch-camera"]').forEach((b) => { b.disabled = cameraCount < 2 || !media.cameraOn || !!media.screen; });
    $$('[data-action="screen"]').forEach((b) => { b.disabled = !(navigator.mediaDevices && navigator.mediaDevices.getDisplayMedia); });
    $$('[data-action="mic"]').forEach((b) => { b.disabled = !media.mic; });
    root.dataset.localCamera = media.cameraOn && media.camera ? "on" : "off";
  }

  function videoSenderTrack(track) {
    const tr = videoTransceiver();
    if (!tr) return Promise.resolve();
    if (track && tr.direction === "recvonly") tr.direction = "sendrecv";
    return tr.sender.replaceTrack(track);
  }

  async function toggleCamera() {
    if (media.cameraOn) {
      media.cameraOn = false;
      // Stop the device, not only the picture: the camera light goes off.
      if (!media.screen) await videoSenderTrack(null);
      if (media.camera) {
        media.camera.stop();
        media.stream.removeTrack(media.camera);
        media.camera = null;
      }
    } else {
      try {
        const stream = await navigator.mediaDevices.getUserMedia({ video: videoConstraints({ facingMode: media.facing }) });
        useTrack(stream.getVideoTracks()[0]);
        media.cameraOn = true;
        if (!media.screen) await videoSenderTrack(media.camera);
        localVideo.srcObject = media.stream;
      } catch (e) {
        notice(t("cameraFailed"), "error");
      }
    }
    updateToolbar();
    sendMediaState();
  }

  function toggleMic() {
    if (!media.mic) return;
    media.micOn = !media.micOn;
    media.mic.enabled = media.micOn;
    updateToolbar();
    sendMediaState();
  }

  async function switchCamera() {
    if (!media.camera) return;
    const devices = await navigator.mediaDevices.enumerateDevices();
    const cameras = devices.filter((d) => d.kind === "videoinput");
    const settings = media.camera.getSettings();
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
    const old = media.camera;
    // Many phones open only one camera at a time: release the old one first.
    old.stop();
    let track;
    try {
      track = (await navigator.mediaDevices.getUserMedia({ video: constraints })).getVideoTracks()[0];
    } catch (e) {
      notice(t("noOtherCamera"), "info");
      track = (await navigator.mediaDevices.getUserMedia({ video: videoConstraints({ facingMode: media.facing }) })).getVideoTracks()[0];
    }
    useTrack(track);
    const id = track.getSettings().deviceId;
    try { if (id) sessionStorage.setItem("sprechzimmer.camera", id); } catch (e) { /* private mode */ }
    if (!media.screen) await videoSenderTrack(track);
    localVideo.srcObject = media.stream;
    updateToolbar();
  }

  function askServerForScreen() {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(t("error")), 5000);
      pendingScreenShare = {
        resolve: () => { clearTimeout(timer); pendingScreenShare = null; resolve(); },
        reject: (text) => { clearTimeout(timer); pendingScreenShare = null; reject(text); },
      };
      send({ type: "screen-share", active: true });
    });
  }

  async function toggleScreen() {
    if (media.screen) { stopScreen(true); return; }
    if (pendingScreenShare) return;
    try {
      // The server decides (tariff); the browser asks the user only after its yes.
      await askServerForScreen();
    } catch (text) {
      notice(text || t("error"), "error");
      return;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 10, max: 15 } }, audio: false });
    } catch (e) {
      notice(t("screenFailed"), "info");
      send({ type: "screen-share", active: false });
      return;
    }
    const track = stream.getVideoTracks()[0];
    if ("contentHint" in track) track.contentHint = "detail";
    media.screen = track;
    // The browser's own "stop sharing" bar ends the track.
    track.onended = () => stopScreen(true);
    localVideo.srcObject = new MediaStream([track]);
    root.dataset.localScreen = "true";
    await videoSenderTrack(track);
    updateToolbar();
    sendMediaState();
  }

  function stopScreen(tell) {
    if (!media.screen) return;
    media.screen.onended = null;
    media.screen.stop();
    media.screen = null;
    root.dataset.localScreen = "false";
    localVideo.srcObject = media.stream;
    if (pc) videoSenderTrack(media.cameraOn ? media.camera : null);
    if (tell) {
      send({ type: "screen-share", active: false });
      sendMediaState();
    }
    updateToolbar();
  }

  function toggleChat() {
    const panel = $("#call-chat");
    if (!panel) return;
    const open = root.classList.toggle("chat-open");
    setPressed("chat", open);
    if (open) {
      const input = panel.querySelector("textarea, input[type=text]");
      if (input) input.focus();
      panel.querySelectorAll(".chat-unread").forEach((el) => el.remove());
    }
  }

  async function toggleMinimise() {
    if (document.pictureInPictureElement) {
      await document.exitPictureInPicture().catch(() => {});
      return;
    }
    if (root.classList.contains("call-minimised")) {
      root.classList.remove("call-minimised");
      setPressed("minimise", false);
      return;
    }
    const video = mainVideo();
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

  root.addEventListener("leavepictureinpicture", () => setPressed("minimise", false), true);

  function toggleFullscreen() {
    if (document.fullscreenElement) {
      document.exitFullscreen().catch(() => {});
    } else if (stage.requestFullscreen) {
      stage.requestFullscreen().catch(() => notice(t("fullscreenFailed"), "info"));
    } else if (remoteVideo.webkitEnterFullscreen) {
      // iPhone Safari: only the video element itself can go full screen.
      remoteVideo.webkitEnterFullscreen();
    }
  }

  document.addEventListener("fullscreenchange", () => setPressed("fullscreen", !!document.fullscreenElement));

  // ---- screenshot: staff asks, the patient consents ------------------------------------

  function requestScreenshot() {
    if (role !== "staff") return;
    send({ type: "screenshot-request" });
    notice(t("screenshotAsked"), "info");
  }

  function askScreenshotConsent() {
    const dialog = $("#screenshot-consent");
    if (!dialog) return;
    if (!dialog.open) dialog.showModal();
  }

  function answerScreenshot(granted) {
    const dialog = $("#screenshot-consent");
    if (dialog && dialog.open) dialog.close();
    send({ type: "screenshot-consent", granted: granted });
  }

  function onScreenshotConsent(granted) {
    if (role !== "staff") return;
    if (!granted) { notice(t("screenshotDenied"), "info"); return; }
    const video = patientVideo();
    if (!video.videoWidth) { notice(t("screenshotFailed"), "error"); return; }
    const canvas = document.createElement("canvas");
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
    canvas.toBlob((blob) => {
      if (!blob) { notice(t("screenshotFailed"), "error"); return; }
      // Saved on this device only: the picture never goes to the server.
      const url = URL.createObjectURL(blob);
      const stamp = new Date().toISOString().slice(0, 19).replace(/[:T]/g, "-");
      const link = document.createElement("a");
      link.href = url;
      link.download = t("screenshotFile") + "-" + stamp + ".png";
      link.className = "btn btn-small";
      link.textContent = t("screenshotLink");
      const list = $("#screenshots");
      if (list) {
        const item = document.createElement("li");
        item.appendChild(link);
        list.appendChild(item);
        list.hidden = false;
      }
      link.click();
      send({ type: "screenshot-taken" });
      notice(t("screenshotSaved"), "success");
    }, "image/png");
  }

  // ---- hang up, ring, answer -------------------------------------------------------------

  function hangup() {
    send({ type: "hangup" });
    if (guest) {
      // A guest leaves; the call goes on for the others.
      group.joined = false;
      group.left = true;
      endCall();
      releaseMedia();
      render();
      return;
    }
    // Show it at once; the server's call-state "ended" confirms it on both sides.
    ui.ended = true;
    ui.callState = "ended";
    endCall();
    render();
  }

  function accept() {
    stopRingTone();
    send({ type: "accept" });
    if (guest) {
      group.joined = true;
      render();
    }
    ensureMedia();
    // The sound of the call may start without another click.
    unlockAudio();
  }

  function decline() {
    send({ type: "decline" });
    if (guest) {
      group.declined = true;
      releaseMedia();
      render();
    }
  }

  // ---- ring tone (Web Audio; no audio file) ----------------------------------------------

  let audioContext = null;
  let ringTimer = null;
  let ringOn = false;

  function unlockAudio() {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return null;
    if (!audioContext) audioContext = new Ctx();
    if (audioContext.state === "suspended") audioContext.resume().catch(() => {});
    return audioContext;
  }

  function chime() {
    const ctx = unlockAudio();
    if (!ctx) return;
    const now = ctx.currentTime;
    // Two soft tones, twice: recognisable as a call without being shrill.
    [[0, 660], [0.25, 880], [0.6, 660], [0.85, 880]].forEach(([at, freq]) => {
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.type = "sine";
      osc.frequency.value = freq;
      gain.gain.setValueAtTime(0.0001, now + at);
      gain.gain.exponentialRampToValueAtTime(0.3, now + at + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, now + at + 0.22);
      osc.connect(gain).connect(ctx.destination);
      osc.start(now + at);
      osc.stop(now + at + 0.25);
    });
  }

  const baseTitle = document.title;

  function ringing(on) {
    const dialog = $("#ring-dialog");
    if (on === ringOn) return;
    ringOn = on;
    if (on) {
      if (dialog && !dialog.open) dialog.showModal();
      root.dataset.ringShownAt = String(performance.timeOrigin + performance.now());
      chime();
      ringTimer = setInterval(chime, 2500);
      if (navigator.vibrate) navigator.vibrate([400, 200, 400]);
      document.title = t("ringTitle") || baseTitle;
    } else {
      stopRingTone();
      if (dialog && dialog.open) dialog.close();
    }
  }

  function stopRingTone() {
    clearInterval(ringTimer);
    ringTimer = null;
    document.title = baseTitle;
    if (navigator.vibrate) navigator.vibrate(0);
  }

  // A browser lets sound start only after a gesture on the page: the first click
  // anywhere prepares the ring tone.
  document.addEventListener("pointerdown", unlockAudio, { once: true });
  document.addEventListener("keydown", unlockAudio, { once: true });

  // ---- chat ------------------------------------------------------------------------------

  function addChat(message) {
    const list = document.getElementById("chat-messages");
    if (!list || typeof message.html !== "string") return;
    const holder = document.createElement("template");
    // Server-rendered and escaped (templates/chat/_message.html).
    holder.innerHTML = message.html.trim();
    const item = holder.content.firstElementChild;
    if (!item) return;
    if (item.id && document.getElementById(item.id)) return; // the sender's own POST answer got here first
    // A guest's page has the role "patient": its own messages are told by the key.
    const mine = message.sender_key ? message.sender_key === (group.key || role) : message.sender === role;
    if (mine) item.classList.add("chat-mine");
    list.appendChild(item);
    if (window.htmx) window.htmx.process(item);
    const empty = document.getElementById("chat-empty");
    if (empty) empty.remove();
    item.scrollIntoView({ block: "end" });
    if (!root.classList.contains("chat-open") && !mine) {
      const button = $('[data-action="chat"]');
      if (button && !button.querySelector(".chat-unread")) {
        const dot = document.createElement("span");
        dot.className = "chat-unread";
        button.appendChild(dot);
      }
      if (ui.callState !== "accepted") return;
      notice(t("chatNew"), "info");
    }
  }

  // Sending goes through the chat form (HTMX, CSRF header); an accepted message empties it.
  document.body.addEventListener("htmx:afterRequest", (event) => {
    const form = event.target.closest && event.target.closest("form[data-chat-form]");
    if (form && event.detail.successful) form.reset();
  });

  // ---- wiring ----------------------------------------------------------------------------

  const actions = {
    camera: toggleCamera,
    mic: toggleMic,
    screen: toggleScreen,
    chat: toggleChat,
    minimise: toggleMinimise,
    "switch-camera": switchCamera,
    screenshot: requestScreenshot,
    fullscreen: toggleFullscreen,
    hangup: hangup,
    ring: () => send({ type: "ring" }),
    cancel: () => send({ type: "cancel" }),
    accept: accept,
    decline: decline,
    "screenshot-allow": () => answerScreenshot(true),
    "screenshot-deny": () => answerScreenshot(false),
    "audio-unblock": playRemote,
    "ring-test": chime,
  };

  root.addEventListener("click", (event) => {
    const button = event.target.closest("[data-action]");
    if (!button || !root.contains(button) || button.disabled) return;
    const action = actions[button.dataset.action];
    if (!action) return;
    event.preventDefault();
    Promise.resolve(action()).catch((e) => log(button.dataset.action, e));
  });

  // Escape on the ring dialog must not silently dismiss a ringing call.
  $$("dialog").forEach((d) => d.addEventListener("cancel", (event) => {
    if (d.id === "ring-dialog") event.preventDefault();
    if (d.id === "screenshot-consent") { event.preventDefault(); answerScreenshot(false); }
  }));

  window.addEventListener("pagehide", () => {
    socket.stopped = true;
    if (socket.ws) socket.ws.close(1000);
    closePeer();
  });

  // For tests and the bench only: the live connection, to read getStats.
  window.sprechzimmerCall = {
    get pc() { return pc; },
    get state() { return view(); },
    get mode() { return group.mode; },
    get slots() { return Object.assign({}, group.slots); },
  };

  if (role === "staff") ensureMedia();
  render();
  connect();
})();
