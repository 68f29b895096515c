// The patient's device check. Written in plain ES5 on purpose: it must run far enough in
// an old browser to say that this browser cannot do a video consultation.
(function () {
  "use strict";

  var root = document.getElementById("device-check");
  // Camera and microphone only after the patient's consent (the server renders the
  // device check only then; this holds should the markup ever be shown before it).
  if (!root || root.getAttribute("data-consent") !== "given") return;

  var CAMERA_KEY = "sprechzimmer.camera";
  var MIC_KEY = "sprechzimmer.mic";
  var preview = document.getElementById("dc-preview");
  var cameraSelect = document.getElementById("dc-camera");
  var micSelect = document.getElementById("dc-mic");
  var meter = document.getElementById("dc-level");
  var stream = null;
  var audio = null; // {context, source, analyser, frame}
  var heard = false;
  var cameraRefused = false; // "Weiter" warns once that the practice will not see the patient

  function byId(id) { return document.getElementById(id); }
  function show(id, on) { var el = byId(id); if (el) el.hidden = !on; }

  function remember(key, value) {
    try { if (value) sessionStorage.setItem(key, value); } catch (e) { /* private mode */ }
  }
  function recall(key) {
    try { return sessionStorage.getItem(key); } catch (e) { return null; }
  }

  function supported() {
    return !!(window.isSecureContext !== false && navigator.mediaDevices && navigator.mediaDevices.getUserMedia &&
      window.RTCPeerConnection && window.WebSocket && window.Promise);
  }

  function stop() {
    if (stream) stream.getTracks().forEach(function (t) { t.stop(); });
    stream = null;
    if (audio) {
      cancelAnimationFrame(audio.frame);
      audio.context.close();
      audio = null;
    }
  }

  function constraints() {
    var cam = cameraSelect.value || recall(CAMERA_KEY);
    var mic = micSelect.value || recall(MIC_KEY);
    return {
      video: cam ? { deviceId: { exact: cam } } : true,
      audio: mic ? { deviceId: { exact: mic } } : true
    };
  }

  function fill(select, devices, kind, chosen, fallbackLabel) {
    var list = devices.filter(function (d) { return d.kind === kind; });
    select.innerHTML = "";
    list.forEach(function (d, i) {
      var option = document.createElement("option");
      option.value = d.deviceId;
      option.textContent = d.label || fallbackLabel + " " + (i + 1);
      if (d.deviceId === chosen) option.selected = true;
      select.appendChild(option);
    });
    select.disabled = list.length < 2;
  }

  function listDevices() {
    return navigator.mediaDevices.enumerateDevices().then(function (devices) {
      var v = stream && stream.getVideoTracks()[0];
      var a = stream && stream.getAudioTracks()[0];
      fill(cameraSelect, devices, "videoinput", v && v.getSettings().deviceId, cameraSelect.labels[0].textContent);
      fill(micSelect, devices, "audioinput", a && a.getSettings().deviceId, micSelect.labels[0].textContent);
      remember(CAMERA_KEY, cameraSelect.value);
      remember(MIC_KEY, micSelect.value);
    });
  }

  // Level meter: the loudest sample of each animation frame, decaying slowly so that
  // speech reads as a moving bar rather than flicker.
  function meterOn(track) {
    var Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx || !track) return;
    var context = new Ctx();
    var source = context.createMediaStreamSource(new MediaStream([track]));
    var analyser = context.createAnalyser();
    analyser.fftSize = 1024;
    source.connect(analyser);
    var data = new Float32Array(analyser.fftSize);
    var level = 0;
    audio = { context: context, source: source, analyser: analyser, frame: 0 };
    function tick() {
      analyser.getFloatTimeDomainData(data);
      var peak = 0;
      for (var i = 0; i < data.length; i++) peak = Math.max(peak, Math.abs(data[i]));
      level = Math.max(peak * 100, level * 0.9);
      meter.value = Math.min(100, level);
      if (level > 5 && !heard) {
        heard = true;
        show("dc-ok", true);
      }
      audio.frame = requestAnimationFrame(tick);
    }
    // A page without a gesture yet may get a suspended context; the meter starts with the first click.
    if (context.state === "suspended") {
      document.addEventListener("pointerdown", function () { context.resume(); }, { once: true });
      context.resume();
    }
    tick();
  }

  // Which of the denied-access instructions fits this browser; null: show them all.
  function browserKind() {
    var ua = navigator.userAgent;
    if (/iPhone|iPad|iPod/.test(ua) || (/Macintosh/.test(ua) && navigator.maxTouchPoints > 1)) return "ios";
    if (/Android/.test(ua)) return "android";
    if (/Firefox\//.test(ua)) return "firefox";
    if (/Edg\/|Chrome\/|Chromium\//.test(ua)) return "chrome";
    if (/Safari\//.test(ua)) return "safari";
    return null;
  }

  function showDenied() {
    var kind = browserKind();
    var items = root.querySelectorAll("[data-browser]");
    var known = kind && root.querySelector('[data-browser="' + kind + '"]');
    for (var i = 0; i < items.length; i++) items[i].hidden = !!known && items[i].getAttribute("data-browser") !== kind;
    show("dc-denied", true);
    cameraRefused = true;
  }

  function problem(err) {
    var name = err && err.name;
    show("dc-asking", false);
    if (name === "NotAllowedError" || name === "SecurityError" || name === "PermissionDeniedError") showDenied();
    else if (name === "NotFoundError" || name === "DevicesNotFoundError" || name === "OverconstrainedError") show("dc-notfound", true);
    else show("dc-busy", true);
  }

  function start() {
    stop();
    cameraRefused = false;
    show("dc-continue-warning", false);
    ["dc-denied", "dc-notfound", "dc-busy"].forEach(function (id) { show(id, false); });
    return navigator.mediaDevices.getUserMedia(constraints()).catch(function (err) {
      // A remembered device may be gone (unplugged): try the defaults once.
      if (err && (err.name === "OverconstrainedError" || err.name === "NotFoundError") && (cameraSelect.value || micSelect.value || recall(CAMERA_KEY))) {
        cameraSelect.innerHTML = "";
        micSelect.innerHTML = "";
        try { sessionStorage.removeItem(CAMERA_KEY); sessionStorage.removeItem(MIC_KEY); } catch (e) { /* private mode */ }
        return navigator.mediaDevices.getUserMedia({ video: true, audio: true });
      }
      throw err;
    }).then(function (s) {
      stream = s;
      show("dc-asking", false);
      show("dc-devices", true);
      preview.srcObject = s;
      var playing = preview.play();
      if (playing && playing.catch) playing.catch(function () {});
      meterOn(s.getAudioTracks()[0]);
      return listDevices();
    }).catch(problem);
  }

  if (!supported()) {
    show("dc-asking", false);
    show("dc-unsupported", true);
    show("dc-insecure", window.isSecureContext === false);
    return;
  }

  cameraSelect.addEventListener("change", function () { remember(CAMERA_KEY, cameraSelect.value); start(); });
  micSelect.addEventListener("change", function () { remember(MIC_KEY, micSelect.value); heard = false; show("dc-ok", false); start(); });
  root.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-dc=retry]");
    if (button) start();
  });
  // The waiting room opens the devices again when it rings; hand them back now.
  window.addEventListener("pagehide", stop);
  byId("dc-continue").addEventListener("click", function (event) {
    var link = byId("dc-continue");
    if (cameraRefused && byId("dc-continue-warning").hidden) {
      event.preventDefault();
      show("dc-continue-warning", true);
      link.textContent = link.getAttribute("data-t-anyway");
      byId("dc-continue-warning").focus();
      return;
    }
    stop();
  });
  start();
})();
