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

// Browser upload on the session page: ask the page for presigned PUT URLs (signed with the
// session's key, so the gateway enforces and records each write like any S3 client's), then PUT
// each file with XMLHttpRequest, which reports upload progress (fetch does not). A page may hold
// several upload forms (several experiments at once): each form's inputs and outputs are found
// inside it by the end of their ids ("upload-files" on the session page, "e2-upload-files").
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("form.js-upload").forEach(setupUpload);
});

function setupUpload(form) {
  const part = (name) => form.querySelector('[id$="' + name + '"]');
  const PARALLEL = 3;
  const ATTEMPTS = 3;
  const BATCH = 500; // paths per URL request (the server takes up to 1000)
  const status = part("upload-status");
  const total = part("upload-total");
  const list = part("upload-list");
  const csrf = form.querySelector("input[name=csrf_token]").value;

  function chosen() {
    const files = [];
    for (const id of ["upload-files", "upload-folder"]) {
      for (const file of part(id).files) {
        // a folder's files carry "folder/sub/name"; single files only their name
        files.push({ file, path: file.webkitRelativePath || file.name });
      }
    }
    return files;
  }

  async function urlsFor(paths) {
    const urls = [];
    for (let i = 0; i < paths.length; i += BATCH) {
      const response = await fetch(form.dataset.urls, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify({ paths: paths.slice(i, i + BATCH) }),
      });
      const body = await response.json().catch(() => ({}));
      if (!response.ok) throw new Error(body.error || "the server refused (" + response.status + ")");
      urls.push(...body.urls);
    }
    return urls;
  }

  function row(path) {
    const li = document.createElement("li");
    const what = document.createElement("span");
    what.className = "what";
    what.textContent = path; // textContent: file names are never parsed as HTML
    const bar = document.createElement("progress");
    bar.max = 1;
    bar.value = 0;
    const note = document.createElement("span");
    note.className = "note";
    li.append(what, bar, note);
    list.append(li);
    return { li, bar, note };
  }

  function put(url, file, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("PUT", url);
      xhr.upload.addEventListener("progress", (e) => onProgress(e.loaded));
      xhr.addEventListener("load", () => {
        if (xhr.status >= 200 && xhr.status < 300) return resolve();
        // S3 errors are XML; the Message teaches what went wrong (docs/design.md, decision 6: refusals teach)
        const message = /<Message>([\s\S]*?)<\/Message>/.exec(xhr.responseText || "");
        reject(new Error(message ? message[1] : "HTTP " + xhr.status));
      });
      xhr.addEventListener("error", () => reject(new Error("network error")));
      xhr.send(file);
    });
  }

  // Files above MULTIPART go in PART-sized pieces (S3's minimum part is 5 MiB): a failed part
  // is retried alone, and no single request carries gigabytes.
  const MULTIPART = 16 * 1024 * 1024;
  const PART = 8 * 1024 * 1024;

  async function ask(body) {
    const response = await fetch(form.dataset.urls, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(answer.error || "the server refused (" + response.status + ")");
    return answer;
  }

  function request(method, url, body, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open(method, url);
      if (onProgress) xhr.upload.addEventListener("progress", (e) => onProgress(e.loaded));
      xhr.addEventListener("load", () => {
        if (xhr.status >= 200 && xhr.status < 300) return resolve(xhr);
        const message = /<Message>([\s\S]*?)<\/Message>/.exec(xhr.responseText || "");
        reject(new Error(message ? message[1] : "HTTP " + xhr.status));
      });
      xhr.addEventListener("error", () => reject(new Error("network error")));
      xhr.send(body);
    });
  }

  async function retried(what, attempt, note) {
    for (let n = 1; ; n++) {
      try {
        return await attempt();
      } catch (error) {
        if (n >= ATTEMPTS) throw error;
        note.textContent = "retrying " + what + " (" + error.message + ")";
        await new Promise((r) => setTimeout(r, 500 * n));
      }
    }
  }

  async function multipart(path, file, ui, onProgress) {
    const { create } = await ask({ multipart: { path } });
    const created = await retried("start", () => request("POST", create, null), ui.note);
    const match = /<UploadId>([^<]+)<\/UploadId>/.exec(created.responseText);
    if (!match) throw new Error("no upload id in the answer");
    const count = Math.ceil(file.size / PART);
    const urls = await ask({ multipart: { path, upload_id: match[1], parts: count } });
    const done = new Array(count).fill(0);
    const etags = [];
    try {
      for (let n = 0; n < count; n++) {
        const piece = file.slice(n * PART, Math.min(file.size, (n + 1) * PART));
        const xhr = await retried("part " + (n + 1), () => request("PUT", urls.parts[n], piece,
          (loaded) => { done[n] = loaded; onProgress(done.reduce((a, b) => a + b, 0)); }), ui.note);
        done[n] = piece.size;
        etags.push(xhr.getResponseHeader("ETag"));
        ui.note.textContent = "part " + (n + 1) + " of " + count;
      }
      const xml = "<CompleteMultipartUpload>" + etags.map((etag, n) =>
        "<Part><PartNumber>" + (n + 1) + "</PartNumber><ETag>" + etag + "</ETag></Part>").join("") +
        "</CompleteMultipartUpload>";
      const completed = await retried("completion", () => request("POST", urls.complete, xml), ui.note);
      // CompleteMultipartUpload may answer 200 with an <Error> body
      const error = /<Error>[\s\S]*?<Message>([\s\S]*?)<\/Message>/.exec(completed.responseText);
      if (error) throw new Error(error[1]);
    } catch (error) {
      // leave nothing half-done behind (best effort; the gateway forgets stale uploads anyway)
      await request("DELETE", urls.abort, null).catch(() => {});
      throw error;
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const files = chosen();
    if (!files.length) {
      status.textContent = "Choose files or a folder first.";
      return;
    }
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    list.replaceChildren();
    const bytes = files.reduce((sum, f) => sum + f.file.size, 0) || 1;
    const sent = new Array(files.length).fill(0);
    const redraw = () => { total.value = sent.reduce((a, b) => a + b, 0) / bytes; };
    total.hidden = false;
    total.value = 0;
    status.textContent = "Preparing " + files.length + " file(s)…";
    let urls;
    try {
      urls = await urlsFor(files.map((f) => f.path));
    } catch (error) {
      status.textContent = "Upload refused: " + error.message;
      button.disabled = false;
      return;
    }
    let next = 0;
    let failed = 0;
    async function worker() {
      while (next < files.length) {
        const i = next++;
        const { file } = files[i];
        const ui = row(urls[i].key);
        const progress = (loaded) => {
          sent[i] = loaded;
          ui.bar.value = file.size ? loaded / file.size : 1;
          redraw();
        };
        if (file.size > MULTIPART) {
          try {
            await multipart(files[i].path, file, ui, progress);
            sent[i] = file.size;
            ui.bar.value = 1;
            ui.note.textContent = "done";
            ui.li.className = "done";
          } catch (error) {
            sent[i] = 0;
            failed++;
            ui.li.className = "failed";
            ui.note.textContent = error.message;
          }
          redraw();
          continue;
        }
        for (let attempt = 1; ; attempt++) {
          try {
            await put(urls[i].url, file, progress);
            sent[i] = file.size;
            ui.bar.value = 1;
            ui.note.textContent = "done";
            ui.li.className = "done";
            break;
          } catch (error) {
            sent[i] = 0;
            redraw();
            if (attempt >= ATTEMPTS) {
              failed++;
              ui.li.className = "failed";
              ui.note.textContent = error.message;
              break;
            }
            ui.note.textContent = "retrying (" + error.message + ")";
            await new Promise((r) => setTimeout(r, 500 * attempt));
          }
        }
        redraw();
      }
    }
    await Promise.all(Array.from({ length: Math.min(PARALLEL, files.length) }, worker));
    button.disabled = false;
    if (failed) {
      status.textContent = failed + " of " + files.length + " file(s) failed; see below.";
    } else {
      status.textContent = "All " + files.length + " file(s) uploaded.";
      const reload = document.createElement("a");
      reload.href = window.location.pathname + window.location.search;
      reload.id = "upload-reload";
      reload.textContent = " Show them in the list";
      status.append(reload);
    }
  });
}
