// The frame transform of end-to-end encrypted group calls (docs/encryption.md): every
// frame this page sends is encrypted here before it leaves, every frame it receives is
// decrypted here before the decoder sees it. Keys come from e2ee.js; the frame format
// is sframe.js. One worker per page serves all its senders and receivers, so the
// sender's counter is one for audio and video and never repeats under a key.
import { ReplayWindow, clearBytes, decryptFrame, deriveKeySalt, encryptFrame } from "./sframe.js";

// Keys of others by KID; a sender's old key stays until e2ee.js forgets it (overlap).
const receiveKeys = new Map();
let sendKey = null;
let counter = 0;
// "encrypt", or "clear" when the practice allowed a browser without frame encryption
// into the call and everybody was told so.
let mode = "encrypt";
const stats = { encrypted: 0, decrypted: 0, dropped: {}, senders: 0, receivers: 0, kid: null };
// Messages are handled in order: a key is installed before the next one replaces it.
let queue = Promise.resolve();

function drop(reason) {
  stats.dropped[reason] = (stats.dropped[reason] || 0) + 1;
}

// A receiver whose decoder lost frames (no key yet, or a damaged frame) shows nothing
// until the next key frame; the sender's browser makes one only when asked. Asked once
// frames open again, not before: a key frame under a key this page lacks helps nobody.
const KEY_FRAME_ASK_MS = 300;

function transformFor(side, kind, transformer) {
  if (side === "send") {
    return async (frame, controller) => {
      if (mode === "clear") { controller.enqueue(frame); return; }
      const data = new Uint8Array(frame.data);
      if (data.length === 0) { controller.enqueue(frame); return; }
      // Nothing leaves unencrypted: before the first key, frames are held back.
      if (!sendKey) { drop("no-send-key"); return; }
      const keySalt = sendKey;
      const ctr = counter;
      counter += 1;
      frame.data = (await encryptFrame(keySalt, ctr, data, clearBytes(kind, frame.type))).buffer;
      stats.encrypted += 1;
      controller.enqueue(frame);
    };
  }
  const picture = { starved: kind === "video", asked: 0 };
  return async (frame, controller) => {
    if (mode === "clear") { controller.enqueue(frame); return; }
    const data = new Uint8Array(frame.data);
    if (data.length === 0) { controller.enqueue(frame); return; }
    const result = await decryptFrame((kid) => receiveKeys.get(kid), data, clearBytes(kind, frame.type));
    if (result.error) {
      // (a replayed frame is a copy: the decoder lost nothing)
      if (result.error !== "replay") picture.starved = kind === "video";
      drop(result.error);
      return;
    }
    if (picture.starved) {
      const now = performance.now();
      if (frame.type === "key") {
        picture.starved = false;
      } else if (transformer && transformer.sendKeyFrameRequest && now - picture.asked > KEY_FRAME_ASK_MS) {
        picture.asked = now;
        transformer.sendKeyFrameRequest().catch(() => {});
      }
    }
    frame.data = result.data.buffer;
    stats.decrypted += 1;
    controller.enqueue(frame);
  };
}

function pipe(readable, writable, side, kind, transformer) {
  const count = side === "send" ? "senders" : "receivers";
  stats[count] += 1;
  const transform = transformFor(side, kind, transformer);
  readable
    .pipeThrough(new TransformStream({
      transform: (frame, controller) => transform(frame, controller).catch(() => drop("error")),
    }))
    .pipeTo(writable)
    .catch(() => {}) // the sender or receiver was closed
    .finally(() => { stats[count] -= 1; });
}

// RTCRtpScriptTransform (Chromium, Firefox, Safari).
self.onrtctransform = (event) => {
  const t = event.transformer;
  pipe(t.readable, t.writable, t.options.side, t.options.kind, t);
};

async function onMessage(message) {
  switch (message.op) {
    case "streams": // createEncodedStreams (older Chromium)
      pipe(message.readable, message.writable, message.side, message.kind, null);
      break;
    case "send-key":
      sendKey = await deriveKeySalt(new Uint8Array(message.key), message.kid);
      counter = 0;
      stats.kid = message.kid;
      break;
    case "receive-key": {
      const keySalt = await deriveKeySalt(new Uint8Array(message.key), message.kid);
      keySalt.replay = new ReplayWindow();
      receiveKeys.set(message.kid, keySalt);
      break;
    }
    case "forget":
      message.kids.forEach((kid) => receiveKeys.delete(kid));
      break;
    case "mode":
      mode = message.mode;
      break;
    case "stats":
      self.postMessage({ op: "stats", stats }); // (a copy: postMessage clones it)
      break;
    default:
      break;
  }
}

self.onmessage = (event) => {
  queue = queue.then(() => onMessage(event.data)).catch(() => {});
};
