// Browser upload on the session page and on the several-experiments page. The page hands out
// presigned URLs signed with the session's key (ui/pages/upload.py), so the gateway enforces and
// records each write like any S3 client's; this file only moves bytes and says honestly what is
// happening:
// - files come from the pickers or from drag and drop (folders keep their relative paths);
// - per-file and total progress with bytes, speed and time left, redrawn every TICK_MS;
// - a refusal (4xx, e.g. write-once) is final and shown in red with the S3 Message; only server
//   errors (5xx) and network errors are retried, with growing pauses;
// - large files go in parts; the upload id and the parts sent are kept in localStorage, so after
//   a reload the same file (same path, size and modification time) resumes where it stopped;
// - the objects list is fetched again when the uploads end; leaving the page mid-upload asks.
// XMLHttpRequest, not fetch: only it reports upload progress.
// A page may hold several upload forms (one per experiment, ui/templates/several_uploads.html),
// each uploading into its own session: every form.js-upload is set up on its own, and its
// inputs and outputs are found inside it by the end of their ids ("upload-files" on the session
// page, "e2-upload-files" there). Each form gets form.minimoUpload = { count(), start() }, which
// several.js uses to start them all with one button.
"use strict";

// the gateway drops multipart uploads older than 7 days (gateway/usecases/recovery.py): older
// notes of them are forgotten here too
const FORGET_AFTER_MS = 7 * 24 * 3600 * 1000;

document.addEventListener("DOMContentLoaded", () => {
  const forms = document.querySelectorAll("form.js-upload");
  if (!forms.length) return;
  forgetOldUploads();
  forms.forEach(setupUpload);
});

// Notes of resumable uploads older than FORGET_AFTER_MS (or unreadable) are dropped.
function forgetOldUploads() {
  try {
    for (let i = localStorage.length - 1; i >= 0; i--) {
      const key = localStorage.key(i);
      if (!key.startsWith("minimo-upload:")) continue;
      let note = null;
      try {
        note = JSON.parse(localStorage.getItem(key));
      } catch {
        note = null;
      }
      if (!note || !(Date.now() - note.started < FORGET_AFTER_MS)) localStorage.removeItem(key);
    }
  } catch {
    // storage off (privacy settings): nothing to forget, and nothing will resume
  }
}

function setupUpload(form) {
  // this form's own element whose id ends with `name` ("upload-files", "e2-upload-files")
  const part = (name) => form.querySelector('[id$="' + name + '"]');

  const MiB = 1024 * 1024;
  const PARALLEL_FILES = 3;
  const PARALLEL_REQUESTS = 4; // PUTs in flight at once, over all files and parts
  const ATTEMPTS = 5; // for transient failures only
  const BATCH = 500; // paths per URL request (the server takes up to 1000)
  const MULTIPART = 16 * MiB; // larger files go in parts: a failed part is retried alone
  const PART = 8 * MiB; // S3's minimum part is 5 MiB
  const MAX_PARTS = 10000;
  const TICK_MS = 500; // progress redraws while bytes move (at least once a second)
  const SPEED_WINDOW_MS = 5000; // speed is measured over the last few seconds
  const STORED = "minimo-upload:" + form.dataset.urls + ":"; // localStorage keys of resumable uploads

  const status = part("upload-status");
  const totalBar = part("upload-total");
  const totalText = part("upload-total-text");
  const chosenText = part("upload-chosen");
  const list = part("upload-list");
  const drop = part("upload-drop");
  const pickers = ["upload-files", "upload-folder"].map(part);
  const button = part("upload-start");
  const csrf = form.querySelector("input[name=csrf_token]").value;
  let dropped = [];
  let running = false;

  // -- words ------------------------------------------------------------------------------------
  function bytes(n) {
    const units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let unit = 0;
    while (n >= 1024 && unit < units.length - 1) { n /= 1024; unit++; }
    return (unit ? n.toFixed(n < 10 ? 2 : 1) : String(Math.round(n))) + " " + units[unit];
  }
  function duration(seconds) {
    seconds = Math.max(1, Math.round(seconds));
    if (seconds < 60) return seconds + " s";
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return minutes + " min " + (seconds % 60) + " s";
    return Math.floor(minutes / 60) + " h " + (minutes % 60) + " min";
  }
  const files = (n) => n + (n === 1 ? " file" : " files");

  // -- what is chosen ---------------------------------------------------------------------------
  function chosen() {
    const picked = [];
    for (const input of pickers) {
      for (const file of input.files) {
        // a folder's files carry "folder/sub/name"; single files only their name
        picked.push({ file, path: file.webkitRelativePath || file.name });
      }
    }
    return picked.concat(dropped);
  }
  function showChosen() {
    const all = chosen();
    const size = all.reduce((sum, item) => sum + item.file.size, 0);
    chosenText.textContent = all.length ? files(all.length) + ", " + bytes(size) + " chosen." : "";
  }
  for (const input of pickers) input.addEventListener("change", showChosen);

  // A dropped folder is walked with the File System entries API; its files keep their paths.
  async function walk(entry, into) {
    if (entry.isFile) {
      const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
      into.push({ file, path: entry.fullPath.replace(/^\/+/, "") });
      return;
    }
    const reader = entry.createReader();
    for (;;) { // readEntries answers in batches until it answers none
      const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
      if (!batch.length) return;
      for (const child of batch) await walk(child, into);
    }
  }
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (event) => {
      event.preventDefault();
      drop.classList.add("over");
    });
  }
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", async (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    // entries and files must be taken before the first await: the drop's data goes away after
    const items = [...event.dataTransfer.items].filter((item) => item.kind === "file");
    const entries = items.map((item) => item.webkitGetAsEntry && item.webkitGetAsEntry());
    const plain = [...event.dataTransfer.files];
    const found = [];
    if (entries.length && entries.every(Boolean)) {
      for (const entry of entries) await walk(entry, found);
    } else {
      for (const file of plain) found.push({ file, path: file.name });
    }
    dropped = dropped.concat(found);
    showChosen();
  });

  // -- talking to the page and to S3 ------------------------------------------------------------
  class UploadError extends Error {
    constructor(message, permanent) {
      super(message);
      this.permanent = permanent; // a refusal: asking again gets the same answer
    }
  }
  // 4xx is the server saying no (write-once, scope, expired session...): final. 408 and 429
  // are the exceptions S3 clients retry too.
  const permanent = (code) => code >= 400 && code < 500 && code !== 408 && code !== 429;

  // The S3 error's Message as text: parsed as XML, so entities come out as characters.
  function s3Message(text) {
    const doc = new DOMParser().parseFromString(text || "", "application/xml");
    const message = doc.querySelector("Error > Message");
    return message ? message.textContent : null;
  }

  async function ask(body) {
    const response = await fetch(form.dataset.urls, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
    }).catch(() => { throw new UploadError("network error", false); });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) {
      throw new UploadError(answer.error || "the page refused (" + response.status + ")",
        permanent(response.status));
    }
    return answer;
  }

  function request(method, url, body, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open(method, url);
      if (onProgress) xhr.upload.addEventListener("progress", (e) => onProgress(e.loaded));
      xhr.addEventListener("load", () => {
        if (xhr.status >= 200 && xhr.status < 300) return resolve(xhr);
        const message = s3Message(xhr.responseText) || "HTTP " + xhr.status + " " + xhr.statusText;
        reject(new UploadError(message, permanent(xhr.status)));
      });
      xhr.addEventListener("error", () => reject(new UploadError("network error", false)));
      xhr.send(body);
    });
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // Transient failures are tried again after 1, 2, 4, 8 s (with jitter, so parallel uploads
  // do not come back at once); a refusal is thrown at once.
  async function retried(attempt, onRetry) {
    for (let n = 1; ; n++) {
      try {
        return await attempt();
      } catch (error) {
        if (error.permanent || n >= ATTEMPTS) throw error;
        const pause = 1000 * 2 ** (n - 1) * (0.75 + Math.random() / 2);
        onRetry(error, pause);
        await sleep(pause);
      }
    }
  }

  // At most `limit` tasks at once; the rest wait their turn.
  function limiter(limit) {
    let active = 0;
    const waiting = [];
    return async (task) => {
      while (active >= limit) await new Promise((resolve) => waiting.push(resolve));
      active++;
      try {
        return await task();
      } finally {
        active--;
        const next = waiting.shift();
        if (next) next();
      }
    };
  }
  const inFlight = limiter(PARALLEL_REQUESTS);

  // -- resumable multipart uploads --------------------------------------------------------------
  const storeKey = (item) =>
    STORED + JSON.stringify([item.path, item.file.size, item.file.lastModified]);
  function remembered(key) {
    try {
      return JSON.parse(localStorage.getItem(key));
    } catch {
      return null;
    }
  }
  function forget(key) {
    try {
      localStorage.removeItem(key);
    } catch {
      // storage off: there was nothing to forget
    }
  }
  function remember(key, value) {
    try {
      localStorage.setItem(key, JSON.stringify(value));
    } catch {
      // storage full or off: the upload still works, it just cannot resume
    }
  }

  // The parts the gateway has for an upload (ListParts), kept only where the size is the one
  // this file's part would have.
  async function partsThere(listUrls, partSize, fileSize) {
    const there = new Map();
    for (const url of listUrls) {
      const xhr = await retried(() => request("GET", url, null), () => {});
      const doc = new DOMParser().parseFromString(xhr.responseText, "application/xml");
      for (const part of doc.querySelectorAll("Part")) {
        const n = Number(part.querySelector("PartNumber").textContent);
        const size = Number(part.querySelector("Size").textContent);
        const expected = Math.min(partSize, fileSize - (n - 1) * partSize);
        if (size === expected) there.set(n, part.querySelector("ETag").textContent);
      }
    }
    return there;
  }

  async function multipart(item, row, onProgress) {
    const { path, file } = item;
    const partSize = Math.max(PART, Math.ceil(file.size / MAX_PARTS));
    const count = Math.ceil(file.size / partSize);
    const key = storeKey(item);
    const note = (text) => { row.state = text; };
    let saved = remembered(key);
    let urls = null;
    let done = new Map();
    if (saved && saved.partSize === partSize && saved.uploadId) {
      try {
        urls = await ask({ multipart: { path, upload_id: saved.uploadId, parts: count } });
        done = await partsThere(urls.list, partSize, file.size);
        row.resumed = done.size;
      } catch (error) {
        if (!error.permanent) throw error;
        saved = null; // the upload is gone (aborted, expired): start again
        forget(key);
      }
    } else {
      saved = null;
    }
    if (!saved) {
      const { create } = await ask({ multipart: { path } });
      const created = await retried(() => request("POST", create, null),
        (error) => note("retrying the start (" + error.message + ")"));
      const answer = new DOMParser().parseFromString(created.responseText, "application/xml");
      const id = answer.querySelector("UploadId");
      if (!id) throw new UploadError("no upload id in the answer", false);
      saved = { uploadId: id.textContent, partSize, parts: {}, started: Date.now() };
      remember(key, saved);
      urls = await ask({ multipart: { path, upload_id: saved.uploadId, parts: count } });
    }
    const sent = new Array(count).fill(0);
    for (const n of done.keys()) sent[n - 1] = Math.min(partSize, file.size - (n - 1) * partSize);
    const report = () => onProgress(sent.reduce((a, b) => a + b, 0));
    row.sent = sent.reduce((a, b) => a + b, 0); // parts already there count as sent
    try {
      const missing = [];
      for (let n = 1; n <= count; n++) if (!done.has(n)) missing.push(n);
      await Promise.all(missing.map(async (n) => {
        const piece = file.slice((n - 1) * partSize, Math.min(file.size, n * partSize));
        const xhr = await retried(
          () => inFlight(() => request("PUT", urls.parts[n - 1], piece,
            (loaded) => { sent[n - 1] = loaded; report(); })),
          (error) => { sent[n - 1] = 0; note("retrying part " + n + " (" + error.message + ")"); });
        sent[n - 1] = piece.size;
        report();
        done.set(n, xhr.getResponseHeader("ETag"));
        saved.parts[n] = done.get(n);
        remember(key, saved);
      }));
      const xml = "<CompleteMultipartUpload>" + [...done.keys()].sort((a, b) => a - b).map((n) =>
        "<Part><PartNumber>" + n + "</PartNumber><ETag>" + done.get(n) + "</ETag></Part>").join("") +
        "</CompleteMultipartUpload>";
      note("completing");
      const completed = await retried(() => request("POST", urls.complete, xml),
        (error) => note("retrying the completion (" + error.message + ")"));
      // CompleteMultipartUpload may answer 200 with an <Error> body
      const refused = s3Message(completed.responseText);
      if (refused) throw new UploadError(refused, true);
      forget(key);
    } catch (error) {
      if (error.permanent) {
        // refused for good: nothing to resume, leave nothing half-done behind (best effort)
        forget(key);
        await request("DELETE", urls.abort, null).catch(() => {});
      }
      // else: kept (parts and upload id) so that choosing the file again resumes it
      throw error;
    }
  }

  // -- the rows and the totals ------------------------------------------------------------------
  function makeRow(item) {
    const li = document.createElement("li");
    const what = document.createElement("span");
    what.className = "what";
    what.textContent = item.path; // textContent: file names are never parsed as HTML
    const bar = document.createElement("progress");
    bar.max = 1;
    bar.value = 0;
    const note = document.createElement("span");
    note.className = "note";
    note.textContent = "waiting";
    li.dataset.path = item.path;
    li.append(what, bar, note);
    list.append(li);
    return { li, bar, note, size: item.file.size, sent: 0, state: "waiting", resumed: 0 };
  }

  function drawRow(row) {
    if (row.li.classList.contains("failed") || row.li.classList.contains("done")) return;
    row.bar.value = row.size ? row.sent / row.size : 0;
    if (row.state !== "sending") {
      row.note.textContent = row.state;
      return;
    }
    row.note.textContent = bytes(row.sent) + " of " + bytes(row.size) +
      (row.resumed ? " (resumed: " + row.resumed + " parts were already there)" : "");
  }

  function finishRow(row, error) {
    row.li.classList.add(error ? "failed" : "done");
    if (error) {
      row.bar.remove(); // a failed file shows no (full or partial) bar, only why it failed
      row.note.textContent = error.message;
      row.note.setAttribute("role", "alert");
    } else {
      row.bar.value = 1;
      row.note.textContent = "done, " + bytes(row.size) +
        (row.resumed ? " (resumed: " + row.resumed + " parts were already there)" : "");
    }
  }

  // Refetch this page and swap in its objects card, so the list shows what was just written
  // (a page without one, like the several-experiments page, has nothing to refresh).
  async function refreshObjects() {
    if (!document.getElementById("objects-card")) return;
    const response = await fetch(window.location.pathname, { credentials: "same-origin" });
    if (!response.ok) throw new Error("HTTP " + response.status);
    const doc = new DOMParser().parseFromString(await response.text(), "text/html");
    const fresh = doc.getElementById("objects-card");
    const current = document.getElementById("objects-card");
    if (fresh && current) current.replaceWith(document.importNode(fresh, true));
  }

  window.addEventListener("beforeunload", (event) => {
    if (!running) return;
    event.preventDefault();
    event.returnValue = ""; // older browsers need a value to ask
  });

  // -- one run ----------------------------------------------------------------------------------
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    run();
  });
  form.minimoUpload = { count: () => chosen().length, start: run };

  async function run() {
    if (running) return;
    const items = chosen();
    if (!items.length) {
      status.textContent = "Choose files or a folder first (or drop them on the box).";
      return;
    }
    running = true;
    button.disabled = true;
    list.replaceChildren();
    const rows = items.map(makeRow);
    const totalBytes = items.reduce((sum, item) => sum + item.file.size, 0);
    const started = performance.now();
    const samples = [[started, 0]]; // (time, bytes sent) over the last SPEED_WINDOW_MS
    let phase = "Asking the server for upload URLs for " + files(items.length) + "…";
    let finished = 0;
    let failed = 0;

    function draw() {
      const now = performance.now();
      const sent = rows.reduce((sum, row) => sum + row.sent, 0);
      samples.push([now, sent]);
      while (samples.length > 2 && now - samples[1][0] > SPEED_WINDOW_MS) samples.shift();
      const [t0, b0] = samples[0];
      const speed = now > t0 ? ((sent - b0) * 1000) / (now - t0) : 0;
      totalBar.value = totalBytes ? sent / totalBytes : 0;
      let text = bytes(sent) + " of " + bytes(totalBytes);
      if (running && speed > 0) {
        text += " · " + bytes(speed) + "/s · about " + duration((totalBytes - sent) / speed) + " left";
      }
      totalText.textContent = text;
      status.textContent = phase;
      rows.forEach(drawRow);
    }
    totalBar.hidden = false;
    draw();
    const ticker = setInterval(draw, TICK_MS);

    let urls = [];
    try {
      for (let i = 0; i < items.length; i += BATCH) {
        const answer = await ask({ paths: items.slice(i, i + BATCH).map((item) => item.path) });
        urls = urls.concat(answer.urls);
      }
    } catch (error) {
      clearInterval(ticker);
      running = false;
      button.disabled = false;
      list.replaceChildren();
      totalBar.hidden = true;
      totalText.textContent = "";
      status.textContent = "Upload refused: " + error.message;
      status.classList.add("failed");
      return;
    }
    status.classList.remove("failed");

    let next = 0;
    const phaseNow = () => "Uploading " + files(items.length) + ": " + finished + " done" +
      (failed ? ", " + failed + " failed" : "") + ".";
    phase = phaseNow();
    async function worker() {
      while (next < items.length) {
        const i = next++;
        const item = items[i];
        const row = rows[i];
        row.state = "sending";
        const progress = (loaded) => { row.sent = loaded; };
        try {
          if (item.file.size > MULTIPART) {
            await multipart(item, row, (loaded) => {
              row.sent = loaded;
              row.state = "sending"; // bytes move again: a retry note has had its time
            });
          } else {
            await retried(
              () => inFlight(() => request("PUT", urls[i].url, item.file, progress)),
              (error) => { row.sent = 0; row.state = "retrying (" + error.message + ")"; });
          }
          row.sent = row.size;
          finished++;
          finishRow(row, null);
        } catch (error) {
          row.sent = 0;
          failed++;
          finishRow(row, error);
        }
        phase = phaseNow();
      }
    }
    await Promise.all(Array.from({ length: Math.min(PARALLEL_FILES, items.length) }, worker));
    clearInterval(ticker);
    running = false;
    const seconds = (performance.now() - started) / 1000;
    const moved = rows.reduce((sum, row) => sum + row.sent, 0);
    phase = "Refreshing the list of objects…";
    draw();
    totalText.textContent = bytes(moved) + " in " + duration(seconds) + " (" +
      bytes(moved / Math.max(seconds, 0.001)) + "/s)";
    let refreshed = "";
    try {
      await refreshObjects();
    } catch (error) {
      refreshed = " Reload the page to see them listed (" + error.message + ").";
    }
    if (failed) {
      status.textContent = failed + " of " + files(items.length) + " failed (in red below); " +
        finished + " uploaded." + refreshed;
      status.classList.add("failed");
    } else {
      status.textContent = "All " + files(items.length) + " uploaded." + refreshed;
      // a second click must not send the same files again (write-once would refuse them)
      for (const input of pickers) input.value = "";
      dropped = [];
      showChosen();
    }
    button.disabled = false;
  }
}
