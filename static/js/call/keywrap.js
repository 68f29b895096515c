// The key agreement's cryptography (docs/encryption.md), apart from its bookkeeping in
// e2ee.js: a frame key sealed for one member with a key derived from the pairwise ECDH
// secret, opened by that member only, and the verification code all pages show.
const WRAP_INFO = new TextEncoder().encode("Sprechzimmer E2EE key wrap v1");
const IV_BYTES = 12;

export const encode = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes)))
  .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

export function decode(text) {
  const plain = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(plain, (c) => c.charCodeAt(0));
}

export function importPublicKey(pub) {
  return crypto.subtle.importKey("raw", decode(pub), { name: "ECDH", namedCurve: "P-256" }, false, []);
}

// The AES-GCM key for frame keys going from the member with public key `from` to the one
// with `to` (base64url); `use` is "encrypt" for the sender, "decrypt" for the receiver.
export async function wrapKey(privateKey, peerPublicKey, from, to, use) {
  const secret = await crypto.subtle.deriveBits({ name: "ECDH", public: peerPublicKey }, privateKey, 256);
  const ikm = await crypto.subtle.importKey("raw", secret, "HKDF", false, ["deriveKey"]);
  const salt = new TextEncoder().encode(from + "." + to);
  return crypto.subtle.deriveKey({ name: "HKDF", hash: "SHA-256", salt, info: WRAP_INFO },
    ikm, { name: "AES-GCM", length: 256 }, false, [use]);
}

// Bound to the key id and both members: a wrapped key cannot be replayed under another.
function aad(kid, from, to) {
  return new TextEncoder().encode(kid + "|" + from + "|" + to);
}

export async function seal(key, base, kid, from, to) {
  const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
  const sealed = await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: aad(kid, from, to) }, key, base);
  const out = new Uint8Array(IV_BYTES + sealed.byteLength);
  out.set(iv);
  out.set(new Uint8Array(sealed), IV_BYTES);
  return encode(out);
}

// The frame key (ArrayBuffer); throws if it was not sealed for this member by `from`.
export function open(key, wrapped, kid, from, to) {
  const bytes = decode(wrapped);
  return crypto.subtle.decrypt({ name: "AES-GCM", iv: bytes.subarray(0, IV_BYTES), additionalData: aad(kid, from, to) },
    key, bytes.subarray(IV_BYTES));
}

// The code every page of a call shows: SHA-256 over all members' public keys, as four
// groups of four digits. Equal on all pages exactly when they all saw the same keys.
export async function verificationCode(pubs) {
  const text = new TextEncoder().encode(pubs.slice().sort().join("\n"));
  const digest = new DataView(await crypto.subtle.digest("SHA-256", text));
  return [0, 2, 4, 6].map((i) => String(digest.getUint16(i) % 10000).padStart(4, "0")).join(" ");
}
