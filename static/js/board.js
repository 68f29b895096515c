// The "Heute" board (templates/patients/_board.html): live over the practice's board
// socket, a chime and a browser notification when someone enters the waiting room, and
// the number of waiting patients in the tab's title. No inline scripts (CSP).
(function () {
  "use strict";

  var baseTitle = document.title;
  var known = null; // appointment ids waiting at the last look; null before the first
  var pending = false; // a change came while the board was being fetched
  var audio = null;
  var socket = null;
  var backoff = 1000;
  var pingTimer = null;
  var welcomed = false; // a later welcome is a reconnect

  function board() { return document.getElementById("board"); }

  // change: the news' id; every board of the practice asks for the board as of it, and
  // the server renders it once for all (patients/board.py, shared_render).
  function refresh(change) {
    var el = board();
    if (!el || !window.htmx) return;
    if (el.classList.contains("htmx-request")) { pending = true; return; }
    var url = el.getAttribute("hx-get");
    if (change) url += (url.indexOf("?") < 0 ? "?" : "&") + "nach=" + encodeURIComponent(change);
    window.htmx.ajax("GET", url, { source: el, target: el, swap: "outerHTML" });
  }

  // Sound needs a gesture on the page first; the same gesture asks, once, whether the
  // browser may show notifications.
  function onGesture() {
    var Ctx = window.AudioContext || window.webkitAudioContext;
    if (Ctx && !audio) audio = new Ctx();
    if (audio && audio.state === "suspended") audio.resume().catch(function () {});
    if (!("Notification" in window) || Notification.permission !== "default") return;
    try {
      if (localStorage.getItem("sprechzimmer.notifyAsked")) return;
      localStorage.setItem("sprechzimmer.notifyAsked", "1");
    } catch (e) { /* private mode: ask this once per page */ }
    Notification.requestPermission().catch(function () {});
  }

  function tone() {
    if (!audio || audio.state !== "running") return;
    var now = audio.currentTime;
    [[0, 784], [0.18, 1047]].forEach(function (step) {
      var osc = audio.createOscillator();
      var gain = audio.createGain();
      osc.type = "sine";
      osc.frequency.value = step[1];
      gain.gain.setValueAtTime(0.0001, now + step[0]);
      gain.gain.exponentialRampToValueAtTime(0.25, now + step[0] + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, now + step[0] + 0.35);
      osc.connect(gain).connect(audio.destination);
      osc.start(now + step[0]);
      osc.stop(now + step[0] + 0.4);
    });
  }

  function notify(el, ids) {
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    ids.forEach(function (id) {
      var name = el.querySelector("#board-appointment-" + id + " .patient-name");
      try {
        new Notification(el.dataset.tChime, { body: name ? name.textContent : "", tag: "board-" + id });
      } catch (e) { /* some browsers allow notifications only from a service worker */ }
    });
  }

  // After every render: the title's count, and a chime for whoever is new in the waiting room.
  function look() {
    var el = board();
    if (!el) return;
    var count = Number(el.dataset.waiting) || 0;
    document.title = count ? "(" + count + ") " + baseTitle : baseTitle;
    var ids = (el.dataset.waitingIds || "").split(" ").filter(Boolean);
    if (known !== null) {
      var fresh = ids.filter(function (id) { return known.indexOf(id) < 0; });
      if (fresh.length) {
        tone();
        notify(el, fresh);
        document.dispatchEvent(new CustomEvent("sprechzimmer:chime", { detail: { appointments: fresh.map(Number) } }));
      }
    }
    known = ids;
  }

  // The open panel's parts that change on their own (patients/_appointment_state.html)
  // fetch themselves again when the news names their appointment; after a reconnect
  // every one of them, since any may have changed meanwhile.
  function tellPanel(id) {
    if (!window.htmx) return;
    var ids = id ? [id] : Array.prototype.map.call(document.querySelectorAll(".appointment-state"),
      function (el) { return el.id.replace(/^appointment-(\d+)-state$/, "$1"); });
    ids.forEach(function (each) { window.htmx.trigger(document.body, "appointment-changed-" + each); });
  }

  function connect() {
    var el = board();
    if (!el || !window.WebSocket) return;
    // url_for gives a ws:// address as the server saw the request: only its path counts.
    var target = new URL(el.dataset.wsPath, location.href);
    var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + target.pathname;
    socket = new WebSocket(url);
    socket.addEventListener("open", function () {
      backoff = 1000;
      document.documentElement.dataset.boardSocket = "open";
      clearInterval(pingTimer);
      pingTimer = setInterval(function () { socket.send('{"type":"ping"}'); }, 25000);
    });
    socket.addEventListener("message", function (event) {
      var message;
      try { message = JSON.parse(event.data); } catch (e) { return; }
      // A welcome after a reconnect: what changed meanwhile is fetched too.
      if (message.type === "board" || message.type === "welcome") refresh(message.change);
      if (message.type === "board") tellPanel(message.appointment_id);
      else if (message.type === "welcome" && welcomed) tellPanel(null);
      if (message.type === "welcome") welcomed = true;
    });
    socket.addEventListener("close", function (event) {
      clearInterval(pingTimer);
      document.documentElement.dataset.boardSocket = "closed";
      if (event.code === 1008) { location.reload(); return; } // logged out: to the login
      setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, 30000);
    });
  }

  // A line's delay pick that the user is choosing or typing in (not yet sent): its
  // values by field id, so that a live refresh of the board does not take them away.
  function unsent() {
    var values = {};
    board().querySelectorAll(".board-delay select, .board-delay input[type=text]").forEach(function (field) {
      var changed = field.tagName === "SELECT"
        ? field.selectedIndex !== Math.max(0, Array.prototype.findIndex.call(field.options,
          function (option) { return option.defaultSelected; }))
        : field.value !== field.defaultValue;
      if (changed && field.id) values[field.id] = field.value;
    });
    return values;
  }

  var kept = {};
  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    if (target && target.id === "board") kept = unsent();
  });

  // At once with the swap (not at settle, 20 ms later): no moment shows the old choice.
  document.addEventListener("htmx:afterSwap", function (event) {
    if (!event.detail.elt || event.detail.elt.id !== "board") return;
    // (htmx itself keeps the focus on a field with an id)
    Object.keys(kept).forEach(function (id) {
      var field = document.getElementById(id);
      if (field) field.value = kept[id];
    });
    kept = {};
  });

  document.addEventListener("htmx:afterSettle", function (event) {
    if (!event.detail.elt || event.detail.elt.id !== "board") return;
    look();
    if (pending) { pending = false; refresh(); }
  });
  document.addEventListener("pointerdown", onGesture);
  document.addEventListener("keydown", onGesture);
  document.addEventListener("DOMContentLoaded", function () {
    look();
    connect();
  });
})();
