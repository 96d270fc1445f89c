// The dashboard's behaviour common to every page. No inline script exists (CSP script-src 'self').
"use strict";
(function () {
  function csrf() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }
  window.nspCsrf = csrf;
  // htmx requests that change something carry the session's CSRF token, as the server requires.
  document.addEventListener("htmx:configRequest", function (event) {
    event.detail.headers["X-CSRF-Token"] = csrf();
  });
  // Buttons that open or close a <dialog> (no inline handlers).
  document.addEventListener("click", function (event) {
    var target = event.target.closest("[data-dialog], [data-close]");
    if (!target) { return; }
    var id = target.getAttribute("data-dialog") || target.getAttribute("data-close");
    var dialog = document.getElementById(id);
    if (!dialog) { return; }
    if (target.hasAttribute("data-dialog")) { dialog.showModal(); } else { dialog.close(); }
  });
})();
