// Forms that call the API (sign with re-authentication, cancel or resume a job, push a version):
// each <form data-api="URL"> posts its named fields with the session's CSRF token (as JSON, or as
// multipart when the form uploads a file), then reloads the page on success or shows the
// server's one-line refusal in the form.
"use strict";
(function () {
  document.querySelectorAll("form[data-api]").forEach(function (form) {
    var error = form.querySelector(".form-error");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      error.hidden = true;
      var headers = {"X-CSRF-Token": window.nspCsrf()};
      var body;
      if (form.enctype === "multipart/form-data") {
        body = new FormData(form);
      } else {
        var fields = {};
        Array.prototype.forEach.call(form.elements, function (field) {
          if (field.name && field.value !== "") { fields[field.name] = field.value; }
        });
        body = JSON.stringify(fields);
        headers["Content-Type"] = "application/json";
      }
      fetch(form.getAttribute("data-api"), {method: "POST", credentials: "same-origin", headers: headers, body: body}).then(function (response) {
        if (response.ok) { window.location.reload(); return null; }
        return response.json().then(function (doc) {
          error.textContent = doc.detail || "refused";
          error.hidden = false;
        });
      }).catch(function () {
        error.textContent = "the server could not be reached";
        error.hidden = false;
      }).finally(function () {
        var secret = form.querySelector("input[type=password]");
        if (secret) { secret.value = ""; }
      });
    });
  });
})();
