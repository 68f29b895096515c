// Small behaviours for the practice pages. No inline scripts: the CSP forbids them.
(function () {
  "use strict";

  // Picking an earlier invited person fills the contact fields; only the
  // appointment fields are left to the user.
  document.addEventListener("click", function (event) {
    var hit = event.target.closest("[data-fill-contact]");
    if (!hit) return;
    var form = hit.closest("form");
    var set = function (name, value) {
      var input = form.querySelector('[name="' + name + '"]');
      if (input) input.value = value;
    };
    set("contact_id", hit.dataset.id);
    set("first_name", hit.dataset.firstName);
    set("last_name", hit.dataset.lastName);
    set("email", hit.dataset.email);
    set("mobile", hit.dataset.mobile);
    set("language", hit.dataset.language || "de");
    form.querySelector("#search-results").innerHTML = "";
    var search = form.querySelector("#contact-search");
    if (search) search.value = "";
    var date = form.querySelector('[name="date"]');
    if (date) date.focus();
  });

  // The search hits by keyboard: ArrowDown from the search field to the first hit, the
  // arrows between hits (ArrowUp from the first goes back to the field), Enter picks
  // (the hits are buttons), Escape returns to the field.
  document.addEventListener("keydown", function (event) {
    var search = event.target.closest && event.target.closest("#contact-search, .search-hit");
    if (!search || ["ArrowDown", "ArrowUp", "Escape"].indexOf(event.key) < 0) return;
    var form = search.closest("form");
    var field = form.querySelector("#contact-search");
    var hits = Array.prototype.slice.call(form.querySelectorAll(".search-hit"));
    var at = hits.indexOf(event.target);
    var next = null;
    if (event.key === "Escape") next = at >= 0 ? field : null;
    else if (event.key === "ArrowDown") next = hits[Math.min(at + 1, hits.length - 1)];
    else if (at >= 0) next = at === 0 ? field : hits[at - 1];
    if (!next) return;
    event.preventDefault();
    next.focus();
  });

  // Chat (call pages and the chat page): Enter sends, Shift+Enter makes a new line; the
  // form answers by replacing itself, and the writer's focus goes to the new box.
  var chatBox = null; // the box of a request sent from the chat form, until its answer is in
  document.addEventListener("keydown", function (event) {
    var box = event.target.closest && event.target.closest("form[data-chat-form] textarea");
    if (!box || event.key !== "Enter" || event.shiftKey || event.isComposing) return;
    event.preventDefault();
    if (box.value.trim()) box.form.requestSubmit();
  });
  document.addEventListener("htmx:beforeRequest", function (event) {
    var form = event.target.closest && event.target.closest("form[data-chat-form]");
    if (form && form.contains(document.activeElement)) chatBox = form.querySelector("textarea");
  });
  document.addEventListener("htmx:afterSettle", function () {
    var box = document.querySelector("form[data-chat-form] textarea");
    if (!chatBox || !box || box === chatBox) return;
    chatBox = null;
    box.focus();
  });

  document.addEventListener("click", function (event) {
    var close = event.target.closest("[data-dismiss]");
    if (close) close.closest(".toast").remove();
    var cancel = event.target.closest("[data-dismiss-confirm]");
    if (cancel) cancel.closest(".confirm").remove();
  });

  // Toasts leave by themselves after a while; errors stay until dismissed.
  function ageToasts(root) {
    (root || document).querySelectorAll(".toast:not([data-aging])").forEach(function (el) {
      el.setAttribute("data-aging", "");
      if (el.classList.contains("toast-error")) return;
      setTimeout(function () { el.remove(); }, 8000);
    });
  }
  // Focus goes to the user's next step: into a form that opened (its first field), to the
  // first field with an error after a refused submit, and after Einladen to the new
  // entry once the list has reloaded.
  var focusRow = null;
  function focusNext(root) {
    var own = function (selector) {
      return root.matches && root.matches(selector) ? root : root.querySelector && root.querySelector(selector);
    };
    var form = own("[data-focus-form]");
    if (form) {
      var field = form.querySelector(".field.invalid input, .field.invalid select") ||
        form.querySelector("input:not([type=hidden]):not([disabled]), select, textarea");
      if (field) field.focus();
    }
    // A row that replaced itself (Konten): focus stays on it, not lost with the old one.
    if (root.matches && root.matches("[data-focus-self]") && root.isConnected) root.focus();
    var created = own("[data-focus-row]");
    if (created) focusRow = created.getAttribute("data-focus-row");
    var row = focusRow && document.getElementById(focusRow);
    if (row && root.contains(row)) {
      row.querySelector("a").focus();
      focusRow = null;
    }
  }
  document.addEventListener("htmx:afterSettle", function (event) { focusNext(event.detail.elt); });
  document.addEventListener("DOMContentLoaded", function () { ageToasts(); focusNext(document); });
  document.addEventListener("htmx:afterSettle", function () { ageToasts(); });
})();
