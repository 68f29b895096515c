// The waiting room rings: a dialog, a tone made with Web Audio (no audio file), the
// tab's title and, on phones, vibration.
import { $, root, t } from "./page.js";

const RING_EVERY_MS = 2500;

let audioContext = null;
let ringTimer = null;
let ringOn = false;
const baseTitle = document.title;

// Sound may start only after a gesture on the page; each gesture lets it resume.
export function unlockAudio() {
  const Ctx = window.AudioContext || window.webkitAudioContext;
  if (!Ctx) return null;
  if (!audioContext) audioContext = new Ctx();
  if (audioContext.state === "suspended") audioContext.resume().catch(() => {});
  return audioContext;
}

// The first click or key anywhere prepares the ring tone before a call comes.
export function unlockOnFirstGesture() {
  document.addEventListener("pointerdown", unlockAudio, { once: true });
  document.addEventListener("keydown", unlockAudio, { once: true });
}

export function chime() {
  const ctx = unlockAudio();
  if (!ctx) return;
  const now = ctx.currentTime;
  // Two soft tones, twice: recognisable as a call without being shrill.
  [[0, 660], [0.25, 880], [0.6, 660], [0.85, 880]].forEach(([at, freq]) => {
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.type = "sine";
    osc.frequency.value = freq;
    gain.gain.setValueAtTime(0.0001, now + at);
    gain.gain.exponentialRampToValueAtTime(0.3, now + at + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, now + at + 0.22);
    osc.connect(gain).connect(ctx.destination);
    osc.start(now + at);
    osc.stop(now + at + 0.25);
  });
}

export function ringing(on) {
  const dialog = $("#ring-dialog");
  if (on === ringOn) return;
  ringOn = on;
  if (on) {
    if (dialog && !dialog.open) dialog.showModal();
    // The bench measures from here how long a ring takes to show.
    root.dataset.ringShownAt = String(performance.timeOrigin + performance.now());
    chime();
    ringTimer = setInterval(chime, RING_EVERY_MS);
    if (mayVibrate()) navigator.vibrate([400, 200, 400]);
    document.title = t("ringTitle") || baseTitle;
  } else {
    stopRingTone();
    if (dialog && dialog.open) dialog.close();
  }
}

// Answered: silent at once, while the dialog closes with the state change.
export function stopRingTone() {
  clearInterval(ringTimer);
  ringTimer = null;
  document.title = baseTitle;
  if (mayVibrate()) navigator.vibrate(0);
}

// Escape must not silently dismiss a ringing call.
export function keepRingDialogOpen() {
  const dialog = $("#ring-dialog");
  if (dialog) dialog.addEventListener("cancel", (event) => event.preventDefault());
}

// Chrome refuses (and logs an error) before the user touched the page, e.g. right after
// a reload: the ring tone and the dialog still ring then.
function mayVibrate() {
  return !!navigator.vibrate && (!navigator.userActivation || navigator.userActivation.hasBeenActive);
}
