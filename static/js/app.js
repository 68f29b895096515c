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
    form.querySelector("#search-results").innerHTML = "";
    var search = form.querySelector("#contact-search");
    if (search) search.value = "";
    var date = form.querySelector('[name="date"]');
    if (date) date.focus();
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
  document.addEventListener("DOMContentLoaded", function () { ageToasts(); });
  document.addEventListener("htmx:afterSettle", function () { ageToasts(); });
})();
