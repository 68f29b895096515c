// The chat beside the call: history and sending go through HTMX (templates/consultation/
// _chat.html); new messages arrive over the call's socket and are added here.
import { $, notice, root, setPressed, t } from "./page.js";

// ownKey: this page's key (staff, patient, guest-<id>); inCall: a notice is worth it.
export function addChat(message, ownKey, inCall) {
  const list = document.getElementById("chat-messages");
  if (!list || typeof message.html !== "string") return;
  const holder = document.createElement("template");
  // Server-rendered and escaped (templates/chat/_message.html).
  holder.innerHTML = message.html.trim();
  const item = holder.content.firstElementChild;
  if (!item) return;
  if (item.id && document.getElementById(item.id)) return; // the sender's own POST answer got here first
  // Guests share the sender "guest": their own messages are told by the key.
  const mine = message.sender_key ? message.sender_key === ownKey : message.sender === ownKey;
  if (mine) item.classList.add("chat-mine");
  list.appendChild(item);
  if (window.htmx) window.htmx.process(item);
  const empty = document.getElementById("chat-empty");
  if (empty) empty.remove();
  item.scrollIntoView({ block: "end" });
  if (!root.classList.contains("chat-open") && !mine) {
    const button = $('[data-action="chat"]');
    if (button && !button.querySelector(".chat-unread")) {
      const dot = document.createElement("span");
      dot.className = "chat-unread";
      button.appendChild(dot);
    }
    if (inCall) notice(t("chatNew"), "info");
  }
}

export function toggleChat() {
  const panel = $("#call-chat");
  if (!panel) return;
  const open = root.classList.toggle("chat-open");
  setPressed("chat", open);
  if (open) {
    const input = panel.querySelector("textarea, input[type=text]");
    if (input) input.focus();
    panel.querySelectorAll(".chat-unread").forEach((el) => el.remove());
  }
}

// Sending goes through the chat form (HTMX, CSRF header); an accepted message empties it.
export function resetFormAfterSending() {
  document.body.addEventListener("htmx:afterRequest", (event) => {
    const form = event.target.closest && event.target.closest("form[data-chat-form]");
    if (form && event.detail.successful) form.reset();
  });
}
