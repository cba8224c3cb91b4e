// Several experiments at once: "Upload all" starts every experiment's upload form that has
// files chosen (each uploads into its own session with minimo.js's upload code).
document.addEventListener("DOMContentLoaded", () => {
  const all = document.querySelector("button.js-upload-all");
  if (!all) return;
  all.addEventListener("click", () => {
    const forms = [...document.querySelectorAll("form.js-upload")].filter((form) =>
      [...form.querySelectorAll("input[type=file]")].some((input) => input.files.length));
    if (!forms.length) {
      all.textContent = "Choose files for an experiment first";
      return;
    }
    forms.forEach((form) => form.requestSubmit());
  });
});
