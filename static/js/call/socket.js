// The page's websocket to the server (docs/signalling.md): JSON messages, reconnect with
// backoff, and a queue for what must still arrive after a gap.
import { log, root } from "./page.js";
import { Backoff } from "./retry.js";

const TRY_AGAIN_MAX_MS = 4000;

export class Socket {
  // onMessage(message) gets every message, the welcome included; onRefused() is called
  // when the server will never let this page in again, onTakenOver() when the link was
  // opened on another device (close code 4001), onNoConsent() when the patient or guest
  // has no consent in force (never given or withdrawn, 4002).
  constructor({ onMessage, onRefused, onTakenOver, onNoConsent }) {
    this.onMessage = onMessage;
    this.onRefused = onRefused;
    this.onTakenOver = onTakenOver || onRefused;
    this.onNoConsent = onNoConsent || onRefused;
    this.ws = null;
    this.backoff = new Backoff();
    this.queue = [];
    this.stopped = false;
    this.heartbeat = null;
    this.lastHeard = 0;
    // The browser knows before the socket does: a dropped network leaves a dead TCP
    // connection that can take minutes to close by itself.
    window.addEventListener("offline", () => this.#drop("offline"));
    window.addEventListener("online", () => {
      if (!this.ws && !this.stopped) { this.backoff.reset(); this.connect(); }
    });
  }

  connect() {
    this.backoff.cancel();
    if (this.stopped) return;
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
    this.ws = ws;
    ws.onmessage = (event) => {
      this.lastHeard = Date.now();
      let message;
      try { message = JSON.parse(event.data); } catch (e) { return; }
      if (message.type === "pong") return;
      if (message.type === "welcome") {
        greeted = true;
        this.backoff.reset();
        root.dataset.socket = "open";
        this.#beat(message.heartbeat);
        this.#flush();
      }
      this.onMessage(message);
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.#stopBeat();
      if (event.code === 4001) {
        this.stop();
        this.onTakenOver();
        return;
      }
      if (event.code === 4002) {
        this.stop();
        this.onNoConsent();
        return;
      }
      // 1008 before any welcome: this page may no longer enter (link resent, appointment
      // gone, logged out); retrying cannot help. After a welcome it was the rate limit.
      if (event.code === 1008 && !greeted) {
        this.stop();
        this.onRefused();
        return;
      }
      // Every other code is worth another attempt, with backoff: 1006 (the server went),
      // 4000 (it heard no heartbeat), 1013 (it is there but its Redis is not: it answers
      // again within seconds of Redis's return, so the pauses stay short).
      this.#retry(event.code === 1013 ? TRY_AGAIN_MAX_MS : undefined);
    };
    ws.onerror = () => { /* onclose follows and reconnects */ };
  }

  isOpen() {
    return !!this.ws && this.ws.readyState === WebSocket.OPEN && root.dataset.socket === "open";
  }

  send(message) {
    const ws = this.ws;
    if (ws && ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify(message));
    } else if (message.type === "signal" || message.type === "media-state") {
      // Sent once the socket is back; call control (accept, ring …) is not replayed
      // because the state may have moved on meanwhile.
      // A newer description makes an older one (and its candidates) obsolete.
      if (message.type === "signal" && message.description) {
        this.queue = this.queue.filter((m) => m.type !== "signal");
      }
      this.queue.push(message);
    }
  }

  stop() {
    this.stopped = true;
    this.#stopBeat();
    this.backoff.cancel();
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close(1000);
    }
  }

  // A dead path: give up this socket at once (its close could wait for minutes) and
  // connect anew.
  #drop(why) {
    const ws = this.ws;
    if (!ws) return;
    log("socket dropped:", why);
    this.ws = null;
    this.#stopBeat();
    ws.onclose = null;
    ws.close();
    this.#retry();
  }

  // The application's heartbeat (the welcome says how often): a page whose pings get no
  // answer is on a path that a NAT or a dead link dropped without a FIN.
  #beat(settings) {
    this.#stopBeat();
    const interval = Number(settings && settings.interval) * 1000;
    const timeout = Number(settings && settings.timeout) * 1000;
    if (!(interval > 0 && timeout > 0)) return;
    const ws = this.ws;
    const ping = () => {
      if (this.ws !== ws) return;
      if (Date.now() - this.lastHeard > timeout) { this.#drop("no heartbeat"); return; }
      if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "ping" }));
    };
    ping();
    this.heartbeat = setInterval(ping, Math.min(interval, timeout / 2));
  }

  #stopBeat() {
    clearInterval(this.heartbeat);
    this.heartbeat = null;
  }

  #retry(maxMs) {
    if (this.stopped) return;
    this.backoff.schedule(() => this.connect(), maxMs);
    root.dataset.socket = "reconnecting";
  }

  #flush() {
    const pending = this.queue;
    this.queue = [];
    pending.forEach((message) => this.send(message));
  }
}
