// The #call element is the page's whole interface to the server-rendered HTML: no inline
// scripts (CSP), so everything comes from its data-* attributes, and German/English text
// is rendered by the server (templates/consultation/_call_strings.html).

export const root = document.getElementById("call");

// "staff", "patient" or "guest" (a further participant of a Premium group call).
export const role = root ? root.dataset.role : null;

export const $ = (selector) => root.querySelector(selector);
export const $$ = (selector) => Array.from(root.querySelectorAll(selector));

// data-t-quality-good="Verbindung: gut" -> t("qualityGood")
export function t(key, values) {
  const name = "t" + key.charAt(0).toUpperCase() + key.slice(1);
  let text = root.dataset[name] || "";
  Object.entries(values || {}).forEach(([k, v]) => { text = text.split("{" + k + "}").join(String(v)); });
  return text;
}

// Info, not warn or error: the browser tests fail a page on console errors, and these
// lines are the steps of a call (the tests read some of them).
export function log(...args) {
  if (window.console) console.info("[call]", ...args);
}

let noticeTimer = null;

export function notice(text, kind) {
  const box = $("#call-notice");
  if (!box || !text) return;
  box.textContent = text;
  box.className = "call-notice call-notice-" + (kind || "info");
  box.hidden = false;
  clearTimeout(noticeTimer);
  // An error stays until the next notice: the user has to act on it.
  if (kind !== "error") noticeTimer = setTimeout(() => { box.hidden = true; }, 8000);
}

// An info that must not hide a problem the user has to act on (an error stays up).
export function noticeUnlessError(text) {
  const box = $("#call-notice");
  if (box && !box.hidden && box.classList.contains("call-notice-error")) return;
  notice(text, "info");
}

// The call is back: what went wrong on the way is no longer true.
export function clearErrorNotice() {
  const box = $("#call-notice");
  if (box && !box.hidden && box.classList.contains("call-notice-error")) box.hidden = true;
}

// Every button says what it does in data-action; actions[name]() may return a promise.
export function onActions(actions) {
  root.addEventListener("click", (event) => {
    const button = event.target.closest("[data-action]");
    if (!button || !root.contains(button) || button.disabled) return;
    const name = button.dataset.action;
    if (!Object.hasOwn(actions, name)) return;
    event.preventDefault();
    Promise.resolve(actions[name]()).catch((e) => log(name, e));
  });
}

export function setPressed(action, pressed) {
  $$('[data-action="' + action + '"]').forEach((b) => b.setAttribute("aria-pressed", pressed ? "true" : "false"));
}
