// End-to-end encryption of group calls through the media relay (docs/encryption.md).
// The relay forwards frames it cannot read: each page encrypts what it sends with its
// own frame key (e2ee-worker.js, SFrame) and hands that key to the others wrapped with
// a pairwise ECDH secret. The server only carries public keys and wrapped keys.
//
// Messages (the server adds "from", the sender's member key):
//   e2ee-hello {pub}        this page's ECDH P-256 public key (null: cannot encrypt)
//   e2ee-key   {kid, keys}  a new frame key, wrapped for each member: {key: wrapped}
//   e2ee-ack   {to, kid}    the frame key kid of member `to` is installed here
// A new key is made whenever the members change (join, leave, a reloaded page), so a
// newcomer cannot read what was sent before and a leaver nothing sent after. The sender
// switches to it once everyone acknowledged it (or after SWITCH_TIMEOUT_MS); receivers
// keep a sender's old key for OVERLAP_MS, so the switch loses no frame.
import { encode, importPublicKey, open, seal, verificationCode, wrapKey } from "./keywrap.js";
import { log } from "./page.js";
import { FrameTransforms, frameTransformApi } from "./transforms.js";

const SWITCH_TIMEOUT_MS = 1500;
const OVERLAP_MS = 3000;
const REKEY_DEBOUNCE_MS = 40;

function randomKid() {
  const b = crypto.getRandomValues(new Uint8Array(6));
  return b.reduce((value, byte) => value * 256 + byte, 0);
}

export class FrameEncryption {
  // onChange(): the status or the code changed; required: the practice refuses browsers
  // without frame encryption (welcome "e2ee").
  constructor({ send, onChange }) {
    this.send = send;
    this.onChange = onChange;
    this.api = frameTransformApi();
    this.self = null;
    this.required = true;
    this.peers = new Map(); // member key -> {pub (base64url) | null, publicKey, wrap: {out, in}}
    this.heard = new Map(); // without frame encryption: member key -> the last public key heard
    this.members = []; // the others in the relay call now (roster)
    this.current = null; // {kid, base, ackedBy: Set}
    this.pending = null; // {kid, base, waiting: Set, timer}
    this.latest = new Map(); // member key -> {kid, recipients: Set} of their newest key
    this.kids = new Map(); // member key -> [kid, ...] installed here, oldest first
    this.code = null;
    this.shared = null; // the recipients and their public keys the current key was made for
    this.transforms = null;
    this.ready = this.api ? this.#init() : Promise.resolve();
  }

  async #init() {
    try {
      this.keyPair = await crypto.subtle.generateKey({ name: "ECDH", namedCurve: "P-256" }, false, ["deriveBits"]);
      this.pub = encode(await crypto.subtle.exportKey("raw", this.keyPair.publicKey));
      this.transforms = new FrameTransforms(this.api, () => this.onChange());
    } catch (e) {
      log("frame encryption unavailable", e);
      this.api = null;
    }
  }

  get supported() {
    return !!this.api;
  }

  // ---- the relay's peer connection -------------------------------------------------------

  peerConfig() {
    return this.api === "streams" ? { encodedInsertableStreams: true } : {};
  }

  attach(endpoint, side, kind) {
    if (this.transforms) this.transforms.attach(endpoint, side, kind);
  }

  // ---- key agreement -----------------------------------------------------------------------

  setSelf(key, required) {
    this.self = key;
    this.setRequired(required);
  }

  // The practice's setting as the last welcome or roster told it.
  setRequired(required) {
    this.required = required;
    this.#applyMode();
  }

  // This page (re)joins the relay: a page back from a cut finds the same members, but
  // they forgot its key while it was away, so the next roster makes a new one.
  joining() {
    this.shared = null;
  }

  async hello() {
    await this.ready;
    this.send({ type: "e2ee-hello", pub: this.supported ? this.pub : null });
  }

  // The roster's members other than this page (those away do not count).
  setMembers(keys) {
    const others = keys.filter((k) => k !== this.self).sort();
    const gone = this.members.filter((k) => !others.includes(k));
    this.members = others;
    gone.forEach((k) => this.#forgetLater(k, 0));
    this.#membersChanged();
  }

  receive(message) {
    if (!message.from || message.from === this.self) return;
    if (!this.supported) {
      // Still answered: a page that comes later learns that this one cannot encrypt.
      if (message.type === "e2ee-hello" && this.heard.get(message.from) !== message.pub) {
        this.heard.set(message.from, message.pub);
        this.#helloLater();
      }
      return;
    }
    const run = { "e2ee-hello": () => this.#onHello(message), "e2ee-key": () => this.#onKey(message),
      "e2ee-ack": () => this.#onAck(message) }[message.type];
    if (run) this.ready.then(run).catch((e) => log("e2ee " + message.type, e));
  }

  // The call is over: nobody's keys stay.
  reset() {
    this.members = [];
    this.peers.clear();
    this.latest.clear();
    [...this.kids.keys()].forEach((k) => this.#forgetLater(k, 0));
    if (this.pending) clearTimeout(this.pending.timer);
    this.current = this.pending = null;
    this.shared = "";
    this.code = null;
    this.onChange();
  }

  // Whoever said hello with a key new here learns this page's; several at once get one.
  #helloLater() {
    clearTimeout(this.replyTimer);
    this.replyTimer = setTimeout(() => this.hello(), REKEY_DEBOUNCE_MS);
  }

  async #onHello(message) {
    const pub = typeof message.pub === "string" ? message.pub : null;
    const known = this.peers.get(message.from);
    if (known && known.pub === pub) return;
    let publicKey = null;
    if (pub) {
      try {
        publicKey = await importPublicKey(pub);
      } catch (e) {
        log("e2ee: unusable public key from", message.from);
        return;
      }
    }
    // A reloaded page has a new key pair: what came from its old one is void.
    if (known) this.#forgetLater(message.from, 0);
    this.peers.set(message.from, { pub, publicKey, wrap: {} });
    this.#helloLater();
    this.#membersChanged();
  }

  async #wrapKey(member, direction) {
    const peer = this.peers.get(member);
    if (!peer || !peer.publicKey) return null;
    if (!peer.wrap[direction]) {
      const [from, to] = direction === "out" ? [this.pub, peer.pub] : [peer.pub, this.pub];
      peer.wrap[direction] = await wrapKey(this.keyPair.privateKey, peer.publicKey, from, to,
        direction === "out" ? "encrypt" : "decrypt");
    }
    return peer.wrap[direction];
  }

  // The members with a usable public key: a change of this set needs a new frame key.
  #recipients() {
    return this.members.filter((k) => this.peers.get(k) && this.peers.get(k).publicKey);
  }

  #membersChanged() {
    const shared = this.#recipients().map((k) => k + "=" + this.peers.get(k).pub).join(",");
    if (shared !== this.shared || !this.current && !this.pending) {
      this.shared = shared;
      clearTimeout(this.rekeyTimer);
      this.rekeyTimer = setTimeout(() => this.#rekey().catch((e) => log("e2ee rekey", e)), REKEY_DEBOUNCE_MS);
    }
    this.#applyMode();
    this.#updateCode();
  }

  async #rekey() {
    if (!this.supported || !this.self) return;
    const kid = randomKid();
    const base = crypto.getRandomValues(new Uint8Array(32));
    const recipients = this.#recipients();
    const keys = {};
    for (const member of recipients) {
      keys[member] = await seal(await this.#wrapKey(member, "out"), base, kid, this.self, member);
    }
    if (this.pending) clearTimeout(this.pending.timer);
    const pending = { kid, base, recipients, waiting: new Set(recipients), ackedBy: new Set() };
    this.pending = pending;
    pending.timer = setTimeout(() => this.#switch(pending), SWITCH_TIMEOUT_MS);
    this.send({ type: "e2ee-key", kid, keys });
    // Waiting for receipts keeps the others' picture while they install the key. Where
    // nobody could open the current key anyway (a page that just joined), there is
    // nothing to keep: switch at once, which shortens a newcomer's start.
    if (!recipients.length || !this.current || !this.current.recipients.length) this.#switch(pending);
  }

  #switch(pending) {
    if (this.pending !== pending) return;
    clearTimeout(pending.timer);
    this.pending = null;
    this.current = pending;
    this.transforms.sendWith(pending.kid, pending.base.buffer.slice(0));
    log("e2ee: sending with key", pending.kid);
    this.onChange();
  }

  async #onKey(message) {
    const wrapped = message.keys && message.keys[this.self];
    const from = message.from;
    if (typeof wrapped !== "string" || !Number.isSafeInteger(message.kid)) return;
    const key = await this.#wrapKey(from, "in");
    if (!key) return;
    let base;
    try {
      base = await open(key, wrapped, message.kid, from, this.self);
    } catch (e) {
      log("e2ee: a key from", from, "does not open");
      return;
    }
    this.transforms.receiveWith(message.kid, base);
    const kids = this.kids.get(from) || [];
    const older = kids.slice();
    this.kids.set(from, kids.concat([message.kid]));
    if (older.length) setTimeout(() => this.#forget(from, older), OVERLAP_MS);
    this.latest.set(from, { kid: message.kid, recipients: new Set(Object.keys(message.keys)) });
    this.send({ type: "e2ee-ack", to: from, kid: message.kid });
    this.onChange();
  }

  #onAck(message) {
    if (message.to !== this.self) return;
    const key = this.pending && this.pending.kid === message.kid ? this.pending
      : this.current && this.current.kid === message.kid ? this.current : null;
    if (!key) return;
    key.ackedBy.add(message.from);
    if (key === this.pending) {
      key.waiting.delete(message.from);
      if (!key.waiting.size) this.#switch(key);
    }
    this.onChange();
  }

  #forget(member, kids) {
    if (!this.transforms || !kids.length) return;
    this.transforms.forget(kids);
    const left = (this.kids.get(member) || []).filter((k) => !kids.includes(k));
    if (left.length) this.kids.set(member, left);
    else this.kids.delete(member);
  }

  #forgetLater(member, delay) {
    const kids = (this.kids.get(member) || []).slice();
    this.latest.delete(member);
    setTimeout(() => this.#forget(member, kids), delay);
  }

  // Where the practice lets a browser without frame encryption in and one is here,
  // everybody sends and receives in clear (and every page says so, lock.js).
  #applyMode() {
    if (this.transforms) this.transforms.setMode(!this.required && this.unencrypted().length ? "clear" : "encrypt");
  }

  async #updateCode() {
    const keys = [this.self, ...this.members];
    const pubs = keys.map((k) => (k === this.self ? this.pub : this.peers.get(k) && this.peers.get(k).pub));
    const code = this.supported && pubs.every(Boolean) ? await verificationCode(pubs) : null;
    if (code !== this.code) {
      this.code = code;
      this.onChange();
    }
  }

  // ---- what the page says ----------------------------------------------------------------

  // Members whose browser cannot encrypt frames (their hello said so).
  unencrypted() {
    return this.members.filter((k) => this.peers.has(k) && !this.peers.get(k).pub);
  }

  // True when every frame this page sends and receives is encrypted with a current key:
  // all members hold this page's key, and this page holds each member's key made for
  // all of the present members; the transforms run on its senders and receivers.
  encrypted() {
    // (a new key on its way does not change that: the current one is held by everyone)
    if (!this.supported || !this.current || !this.code) return false;
    const everyone = [this.self, ...this.members];
    const keysHeld = this.members.every((m) => {
      const latest = this.latest.get(m);
      return latest && everyone.every((k) => k === m || latest.recipients.has(k));
    });
    const acked = this.members.every((m) => this.current.ackedBy.has(m));
    return keysHeld && acked && this.transforms.running(this.members.length > 0);
  }
}
