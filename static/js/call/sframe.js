// The frame format of end-to-end encrypted group calls: SFrame (RFC 9605) with the
// cipher suite AES_256_GCM_SHA512_128, Web Crypto only (docs/encryption.md).
//
// An encrypted frame is   clear prefix | SFrame header (KID, CTR) | ciphertext + tag
// The clear prefix is what the media relay and the receiving browser's depacketizer
// read before the frame is decrypted: the VP8 payload header (10 bytes of a key frame,
// 3 of a delta frame, as Jitsi does) and the Opus TOC byte. It is authenticated as the
// RFC's "metadata" (part of the AAD), so it cannot be changed unnoticed.
//
// Pure functions: the worker (e2ee-worker.js) uses them, and the browser tests call
// them directly.

export const CIPHER_SUITE = 0x0004; // AES_256_GCM_SHA512_128
const KEY_BYTES = 32;
const NONCE_BYTES = 12;
export const TAG_BYTES = 16;
// KIDs and counters are JavaScript numbers: 2^53 is far beyond any call.
export const MAX_KID = 2 ** 48;

export function clearBytes(kind, type) {
  if (kind === "audio") return 1;
  return type === "key" ? 10 : 3;
}

// ---- header (RFC 9605, section 4.3) ---------------------------------------------------

function minimalBytes(value) {
  const bytes = [];
  let v = value;
  do {
    bytes.unshift(v % 256);
    v = Math.floor(v / 256);
  } while (v > 0);
  return bytes;
}

export function encodeHeader(kid, ctr) {
  const kidBytes = kid < 8 ? [] : minimalBytes(kid);
  const ctrBytes = ctr < 8 ? [] : minimalBytes(ctr);
  const config = (kid < 8 ? kid << 4 : 0x80 | ((kidBytes.length - 1) << 4))
    | (ctr < 8 ? ctr : 0x08 | (ctrBytes.length - 1));
  return Uint8Array.from([config, ...kidBytes, ...ctrBytes]);
}

function readNumber(bytes, offset, length) {
  let value = 0;
  for (let i = 0; i < length; i += 1) value = value * 256 + bytes[offset + i];
  return value;
}

// {kid, ctr, length} of the header at offset, or null if the bytes cannot hold one.
export function decodeHeader(bytes, offset) {
  if (offset >= bytes.length) return null;
  const config = bytes[offset];
  let at = offset + 1;
  let kid = (config >> 4) & 0x07;
  let ctr = config & 0x07;
  if (config & 0x80) {
    const length = kid + 1;
    if (length > 6 || at + length > bytes.length) return null;
    kid = readNumber(bytes, at, length);
    at += length;
  }
  if (config & 0x08) {
    const length = ctr + 1;
    if (length > 6 || at + length > bytes.length) return null;
    ctr = readNumber(bytes, at, length);
    at += length;
  }
  return { kid, ctr, length: at - offset };
}

// ---- keys (RFC 9605, section 4.4.2) ---------------------------------------------------

function label(text, kid) {
  const prefix = new TextEncoder().encode(text);
  const out = new Uint8Array(prefix.length + 10);
  out.set(prefix);
  const view = new DataView(out.buffer);
  view.setUint32(prefix.length, Math.floor(kid / 2 ** 32));
  view.setUint32(prefix.length + 4, kid % 2 ** 32);
  view.setUint16(prefix.length + 8, CIPHER_SUITE);
  return out;
}

// base_key (32 random bytes from the sender) -> {kid, key: AES-GCM CryptoKey, salt}
export async function deriveKeySalt(baseKey, kid) {
  const ikm = await crypto.subtle.importKey("raw", baseKey, "HKDF", false, ["deriveBits"]);
  const expand = (info, bytes) => crypto.subtle.deriveBits(
    { name: "HKDF", hash: "SHA-512", salt: new Uint8Array(0), info }, ikm, bytes * 8);
  const [keyBits, saltBits] = await Promise.all([
    expand(label("SFrame 1.0 Secret key ", kid), KEY_BYTES),
    expand(label("SFrame 1.0 Secret salt ", kid), NONCE_BYTES),
  ]);
  const key = await crypto.subtle.importKey("raw", keyBits, "AES-GCM", false, ["encrypt", "decrypt"]);
  return { kid, key, salt: new Uint8Array(saltBits) };
}

function nonce(salt, ctr) {
  const out = new Uint8Array(NONCE_BYTES);
  const view = new DataView(out.buffer);
  view.setUint32(4, Math.floor(ctr / 2 ** 32));
  view.setUint32(8, ctr % 2 ** 32);
  for (let i = 0; i < NONCE_BYTES; i += 1) out[i] ^= salt[i];
  return out;
}

// ---- frames ----------------------------------------------------------------------------

// The frame's bytes encrypted under keySalt with counter ctr, the first `clear` bytes
// left readable (and authenticated).
export async function encryptFrame(keySalt, ctr, data, clear) {
  const prefix = data.subarray(0, Math.min(clear, data.length));
  const header = encodeHeader(keySalt.kid, ctr);
  const aad = new Uint8Array(header.length + prefix.length);
  aad.set(header);
  aad.set(prefix, header.length);
  const sealed = new Uint8Array(await crypto.subtle.encrypt(
    { name: "AES-GCM", iv: nonce(keySalt.salt, ctr), additionalData: aad, tagLength: TAG_BYTES * 8 },
    keySalt.key, data.subarray(prefix.length)));
  const out = new Uint8Array(prefix.length + header.length + sealed.length);
  out.set(prefix);
  out.set(header, prefix.length);
  out.set(sealed, prefix.length + header.length);
  return out;
}

// The clear frame, or {error} when it cannot be opened: "short", "header", "key" (no
// key with this KID), "replay" or "auth" (wrong key, garbled). keyOf(kid) returns
// {key, salt, replay} or undefined; replay is a ReplayWindow.
export async function decryptFrame(keyOf, data, clear) {
  if (data.length < clear + 1 + TAG_BYTES) return { error: "short" };
  const header = decodeHeader(data, clear);
  if (!header || data.length < clear + header.length + TAG_BYTES) return { error: "header" };
  const keySalt = keyOf(header.kid);
  if (!keySalt) return { error: "key" };
  if (keySalt.replay && !keySalt.replay.fresh(header.ctr)) return { error: "replay" };
  // The AAD is header then metadata (RFC 9605, 4.4.3); the clear prefix comes first on
  // the wire because the depacketizer reads it there.
  const ordered = new Uint8Array(clear + header.length);
  ordered.set(data.subarray(clear, clear + header.length));
  ordered.set(data.subarray(0, clear), header.length);
  let plain;
  try {
    plain = new Uint8Array(await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: nonce(keySalt.salt, header.ctr), additionalData: ordered, tagLength: TAG_BYTES * 8 },
      keySalt.key, data.subarray(clear + header.length)));
  } catch (e) {
    return { error: "auth" };
  }
  if (keySalt.replay) keySalt.replay.accept(header.ctr);
  const out = new Uint8Array(clear + plain.length);
  out.set(data.subarray(0, clear));
  out.set(plain, clear);
  return { data: out, kid: header.kid, ctr: header.ctr };
}

// Counters seen under one key: a frame whose counter was seen, or that is older than the
// window, is a replay. Audio and video of one sender share the counter and arrive
// interleaved, so a small reordering is normal.
export class ReplayWindow {
  constructor(size = 2048) {
    this.size = size;
    this.highest = -1;
    this.seen = new Set();
  }

  fresh(ctr) {
    if (ctr <= this.highest - this.size) return false;
    return !this.seen.has(ctr);
  }

  accept(ctr) {
    this.seen.add(ctr);
    if (ctr > this.highest) {
      this.highest = ctr;
      if (this.seen.size > this.size * 2) {
        for (const old of this.seen) if (old <= this.highest - this.size) this.seen.delete(old);
      }
    }
  }
}
