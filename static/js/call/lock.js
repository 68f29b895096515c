// What the page says about encryption (docs/encryption.md). A 1:1 call is encrypted
// from browser to browser by WebRTC itself (DTLS-SRTP; a TURN server only passes the
// ciphertext on). A group call through the relay is end-to-end encrypted only while
// e2ee.js holds current keys of everyone: then it also shows the verification code.
import { $, notice, role, t } from "./page.js";

export function showEncryption(e2ee, mode, connected) {
  const box = $("#e2ee");
  if (!box) return;
  let state = "none";
  if (mode === "relay") {
    if (!e2ee.supported || e2ee.unencrypted().length) state = "clear";
    else state = e2ee.encrypted() ? "encrypted" : "pending";
  } else if (connected) {
    state = "direct";
  }
  box.hidden = state === "none";
  box.dataset.state = state;
  const text = { encrypted: "e2eeOn", direct: "e2eeOn", pending: "e2eePending", clear: "e2eeOff" }[state];
  $("#e2ee-text").textContent = text ? t(text) : "";
  const code = state === "encrypted" ? e2ee.code : null;
  $("#e2ee-code").textContent = code || "";
  $("#e2ee-code-box").hidden = !code;
}

// The socket's messages of the key agreement go to e2ee.js.
export function encryptionHandlers(e2ee, ctx) {
  const pass = (m) => e2ee.receive(m);
  return { "e2ee-hello": (m) => { pass(m); if (ctx.group) warnUnencrypted(m); }, "e2ee-key": pass, "e2ee-ack": pass };
}

// Staff learn before a group call whose browser cannot encrypt it (every page of a group
// tariff says hello with its welcome); the practice's setting decides whether it may join.
const warned = new Set();
function warnUnencrypted(message) {
  if (role !== "staff" || message.pub !== null || warned.has(message.from)) return;
  warned.add(message.from);
  // Stays up (an error notice) until the next one: the practice may have to act on it.
  notice(message.from === "patient" ? t("e2eeUnsupportedPatient") : t("e2eeUnsupportedGuest", { name: message.name || "" }),
    "error");
}
