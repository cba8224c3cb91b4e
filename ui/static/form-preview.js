// The admin forms page: a live preview of the form being edited. While the admin types in the
// definition box or the import box, the server renders the draft as the new-session page would
// (or lists its problems) and the pane is swapped in. "Check these values" asks the server to
// validate what was typed into the preview. Without this file the "Preview" buttons and the
// pane's own form do the same with whole-page posts.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const pane = document.getElementById("form-preview");
  if (!pane) return;
  const DEBOUNCE_MS = 300;
  const url = pane.dataset.url;
  const csrf = document.querySelector("input[name=csrf_token]").value;
  const definition = document.getElementById("form-definition");
  const importName = document.getElementById("import-name");
  const importText = document.getElementById("import-text");
  let timer = null;
  let newest = 0; // answers can arrive out of order: only the newest request's is shown

  function utcOffset() {
    const minutes = -new Date().getTimezoneOffset();
    const abs = Math.abs(minutes);
    return (minutes >= 0 ? "+" : "-") + String(Math.floor(abs / 60)).padStart(2, "0") + ":" +
      String(abs % 60).padStart(2, "0");
  }

  function shownSource() {
    const body = document.getElementById("preview-body");
    return body ? body.dataset.source : "json";
  }

  // What the server needs: the boxes as they are now, and the values typed into the preview
  // when it still shows the same source (another source's values mean nothing to this draft).
  function requestBody(source, check) {
    const previewForm = document.getElementById("preview-form");
    const data = previewForm && shownSource() === source ? new FormData(previewForm) : new FormData();
    for (const name of ["csrf_token", "_action", "_check"]) data.delete(name);
    data.set("_source", source);
    data.set("_definition", definition.value);
    data.set("_import_name", importName.value);
    data.set("_import_text", importText.value);
    data.set("_tz", utcOffset());
    if (check) data.set("_check", "1");
    return new URLSearchParams(data);
  }

  function afterSwap(check) {
    for (const label of pane.querySelectorAll(".js-tz-label")) {
      label.textContent = "(your time, UTC" + utcOffset() + ")";
    }
    if (check) {
      const firstBad = pane.querySelector(".field.invalid input, .field.invalid select, " +
        ".field.invalid textarea, #preview-verdict");
      if (firstBad) firstBad.focus();
    }
  }

  function showFailure(message) {
    const body = document.createElement("p");
    body.className = "alert";
    body.id = "preview-failed";
    body.setAttribute("role", "alert");
    body.textContent = "The preview is not available: " + message;
    pane.replaceChildren(body);
  }

  async function refresh(source, check) {
    const mine = ++newest;
    pane.setAttribute("aria-busy", "true");
    try {
      const response = await fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRF-Token": csrf },
        body: requestBody(source, check),
      });
      // a lost login ends in a redirect to the login page, which is no preview
      if (!response.ok || response.redirected) {
        throw new Error(response.redirected ? "sign in again" : "the server answered " + response.status);
      }
      const html = await response.text();
      if (mine !== newest) return;
      const fragment = new DOMParser().parseFromString(html, "text/html");
      pane.replaceChildren(...fragment.body.childNodes);
      afterSwap(check);
    } catch (error) {
      if (mine === newest) showFailure(error.message);
    } finally {
      if (mine === newest) pane.removeAttribute("aria-busy");
    }
  }

  function later(source) {
    clearTimeout(timer);
    timer = setTimeout(() => refresh(source, false), DEBOUNCE_MS);
  }

  definition.addEventListener("input", () => later("json"));
  importName.addEventListener("input", () => later("import"));
  importText.addEventListener("input", () => later("import"));

  // The "Preview" buttons need no page load when this file runs.
  document.getElementById("form-preview-button").addEventListener("click", (event) => {
    event.preventDefault();
    clearTimeout(timer);
    refresh("json", false);
  });
  document.getElementById("import-preview-button").addEventListener("click", (event) => {
    event.preventDefault();
    clearTimeout(timer);
    refresh("import", false);
  });

  // The pane's form is replaced on every refresh, so listen on the pane.
  pane.addEventListener("submit", (event) => {
    if (event.target.id !== "preview-form") return;
    event.preventDefault();
    clearTimeout(timer);
    refresh(shownSource(), true);
  });

  for (const input of pane.querySelectorAll("input.js-tz")) input.value = utcOffset();
});
