// The call toolbar for keyboards and fingers: one Tab stop, the arrow keys move between
// the buttons (a role="toolbar" with a roving tabindex), and a greyed-out button stays
// reachable and says why it cannot be used instead of silently doing nothing.
import { toggleChat } from "./chat.js";
import { $, $$, notice, onActions, root } from "./page.js";

const toolbars = () => $$('[role="toolbar"]');
// Buttons the CSS hides (minimised view) are no stops.
const stops = (bar) => Array.from(bar.querySelectorAll("button")).filter((b) => b.offsetParent !== null);

function makeCurrent(bar, button) {
  bar.querySelectorAll("button").forEach((b) => { b.tabIndex = b === button ? 0 : -1; });
}

function onKey(event) {
  const bar = event.target.closest && event.target.closest('[role="toolbar"]');
  if (!bar || event.target.tagName !== "BUTTON") return;
  const buttons = stops(bar);
  const at = buttons.indexOf(event.target);
  const moves = {
    ArrowRight: at + 1, ArrowDown: at + 1, ArrowLeft: at - 1, ArrowUp: at - 1, Home: 0, End: buttons.length - 1,
  };
  if (!Object.hasOwn(moves, event.key) || at < 0) return;
  event.preventDefault();
  const next = buttons[(moves[event.key] + buttons.length) % buttons.length];
  makeCurrent(bar, next);
  next.focus();
}

// reason: why the button cannot be used now (shown as its tooltip and, when pressed, as a
// notice), or null: usable again.
export function unavailable(button, reason) {
  const name = button.getAttribute("aria-label") || "";
  if (reason) {
    button.setAttribute("aria-disabled", "true");
    button.dataset.why = reason;
    button.title = reason.includes(name) ? reason : name + " – " + reason;
  } else {
    button.removeAttribute("aria-disabled");
    delete button.dataset.why;
    button.title = name;
  }
}

// Before main.js's click handler (capture): a greyed-out button only explains itself.
function onClick(event) {
  const button = event.target.closest && event.target.closest('[aria-disabled="true"][data-action]');
  if (!button) return;
  event.preventDefault();
  event.stopImmediatePropagation();
  notice(button.dataset.why, "info");
}

export function initToolbar() {
  if (!root) return;
  toolbars().forEach((bar) => makeCurrent(bar, stops(bar)[0] || bar.querySelector("button")));
  root.addEventListener("keydown", onKey);
  root.addEventListener("click", onClick, true);
  // The chat sheet's own close button; focus goes back to where the chat was opened.
  onActions({
    "chat-close": () => {
      if (root.classList.contains("chat-open")) toggleChat();
      const button = $('[data-action="chat"]');
      if (button) button.focus();
    },
  });
  // A notice lies over the page (call.css): a tap puts it away.
  const box = $("#call-notice");
  if (box) box.addEventListener("click", () => { box.hidden = true; });
  // A click or a Tab into the bar makes that button the bar's stop.
  root.addEventListener("focusin", (event) => {
    const bar = event.target.closest && event.target.closest('[role="toolbar"]');
    if (bar && event.target.tagName === "BUTTON") makeCurrent(bar, event.target);
  });
}
