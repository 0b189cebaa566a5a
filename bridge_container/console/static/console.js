// The console's own script: the protocol switch and the optional fieldsets. Nothing else; htmx does the polling.
"use strict";

function syncForm(form) {
  const protocol = form.querySelector('[name="configuration.protocol"]');
  const certificate = form.querySelector("#group-certificate");
  if (protocol && certificate) {
    // WSS hides the certificate fields but keeps what they hold: switching back to SSL shows them unchanged.
    certificate.hidden = protocol.value === "WSS";
  }
  for (const toggle of form.querySelectorAll(".group-toggle")) {
    const fields = toggle.closest("fieldset").querySelector(".group-fields");
    if (fields) fields.hidden = !toggle.checked;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("connection-form");
  if (!form) return;
  syncForm(form);
  form.addEventListener("change", () => syncForm(form));
});
