// The page's websocket to the server (docs/signalling.md): JSON messages, reconnect with
// backoff, and a queue for what must still arrive after a gap.
import { root } from "./page.js";
import { Backoff } from "./retry.js";

export class Socket {
  // onMessage(message) gets every message, the welcome included; onRefused() is called
  // when the server will never let this page in again.
  constructor({ onMessage, onRefused }) {
    this.onMessage = onMessage;
    this.onRefused = onRefused;
    this.ws = null;
    this.backoff = new Backoff();
    this.queue = [];
    this.stopped = false;
    // The browser knows before the socket does: a dropped network leaves a dead TCP
    // connection that can take minutes to close by itself.
    window.addEventListener("offline", () => {
      const ws = this.ws;
      if (!ws) return;
      this.ws = null;
      ws.onclose = null;
      ws.close();
      this.#retry();
    });
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
      let message;
      try { message = JSON.parse(event.data); } catch (e) { return; }
      if (message.type === "welcome") {
        greeted = true;
        this.backoff.reset();
        root.dataset.socket = "open";
        this.#flush();
      }
      this.onMessage(message);
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      // 1008 before any welcome: this page may no longer enter (link resent, appointment
      // gone, logged out); retrying cannot help. After a welcome it was the rate limit.
      if (event.code === 1008 && !greeted) {
        this.stop();
        this.onRefused();
        return;
      }
      this.#retry();
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
    this.backoff.cancel();
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close(1000);
    }
  }

  #retry() {
    if (this.stopped) return;
    this.backoff.schedule(() => this.connect());
    root.dataset.socket = "reconnecting";
  }

  #flush() {
    const pending = this.queue;
    this.queue = [];
    pending.forEach((message) => this.send(message));
  }
}
