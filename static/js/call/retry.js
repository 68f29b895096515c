// The two ways a call waits before it tries again: growing pauses between attempts
// (the socket, joining the relay) and a grace period for a gap that may heal by itself.

const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15000];

export class Backoff {
  constructor() {
    this.attempt = 0;
    this.timer = null;
  }

  // maxMs: a cap below the last step, for a server that said it will be back soon.
  schedule(fn, maxMs = Infinity) {
    this.cancel();
    const base = Math.min(maxMs, BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)]);
    this.attempt += 1;
    // Jitter, so that the pages of a restarted server do not all return at one instant.
    this.timer = setTimeout(fn, base * (0.75 + Math.random() * 0.5));
  }

  reset() {
    this.attempt = 0;
  }

  cancel() {
    clearTimeout(this.timer);
    this.timer = null;
  }
}

// Chromium reports "disconnected" for short gaps that heal by themselves; only a
// longer gap is worth a repair.
const DISCONNECTED_GRACE_MS = 3000;

export class Grace {
  constructor(ms = DISCONNECTED_GRACE_MS) {
    this.ms = ms;
    this.timer = null;
  }

  start(fn) {
    this.cancel();
    this.timer = setTimeout(fn, this.ms);
  }

  cancel() {
    clearTimeout(this.timer);
    this.timer = null;
  }
}
