// minimo pages: small progressive enhancements. Everything works without this file, except the
// copy buttons; the CSP forbids inline scripts, so all behaviour is attached from here.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // datetime-local inputs carry no time zone: send the browser's offset (e.g. "+01:00") so the
  // server stores the instant the user meant. Without JavaScript the label says "(UTC)".
  const minutes = -new Date().getTimezoneOffset();
  const sign = minutes >= 0 ? "+" : "-";
  const abs = Math.abs(minutes);
  const offset = sign + String(Math.floor(abs / 60)).padStart(2, "0") + ":" +
    String(abs % 60).padStart(2, "0");
  for (const input of document.querySelectorAll("input.js-tz")) input.value = offset;
  for (const label of document.querySelectorAll(".js-tz-label")) {
    label.textContent = "(your time, UTC" + offset + ")";
  }

  for (const button of document.querySelectorAll("button.js-copy")) {
    button.addEventListener("click", async () => {
      const source = document.getElementById(button.dataset.copy);
      if (!source) return;
      try {
        await navigator.clipboard.writeText(source.textContent);
        button.textContent = "Copied";
      } catch {
        // Clipboard API refused (plain HTTP on a non-loopback host): select the text instead.
        const range = document.createRange();
        range.selectNodeContents(source);
        const selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
        button.textContent = "Selected: press Ctrl+C";
      }
    });
  }

  for (const form of document.querySelectorAll("form.js-confirm")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
});
