// Several experiments at once: "Upload all" starts the upload of every experiment's form that
// has files chosen (picked or dropped); each uploads into its own session through upload.js,
// which gives every form.js-upload its own form.minimoUpload = { count(), start() }.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const all = document.querySelector("button.js-upload-all");
  if (!all) return;
  const label = all.textContent;
  all.addEventListener("click", async () => {
    const forms = [...document.querySelectorAll("form.js-upload")].filter(
      (form) => form.minimoUpload && form.minimoUpload.count() > 0);
    if (!forms.length) {
      all.textContent = "Choose files for an experiment first";
      return;
    }
    all.textContent = label;
    all.disabled = true;
    try {
      await Promise.all(forms.map((form) => form.minimoUpload.start()));
    } finally {
      all.disabled = false;
    }
  });
});
