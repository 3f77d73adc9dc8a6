// voterolls intake: progressive enhancement for the pages (they work without it).
// Uploads stream the file with a progress bar; ingest jobs are polled until done.
"use strict";

function csrfToken() {
  const m = document.querySelector('meta[name="csrf-token"]');
  return m ? m.content : "";
}

function humanBytes(n) {
  const units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
}

function show(el, text, kind) {
  el.textContent = text;
  el.className = "alert" + (kind ? " " + kind : "");
  el.hidden = false;
}

function setupUpload() {
  const form = document.getElementById("upload-form");
  if (!form) return;
  const input = document.getElementById("files");
  const chosen = document.getElementById("chosen");
  const drop = form.querySelector(".drop");
  const button = document.getElementById("upload-button");
  const block = document.getElementById("upload-progress");
  const bar = document.getElementById("upload-bar");
  const pct = document.getElementById("upload-pct");
  const stage = document.getElementById("upload-stage");
  const msg = document.getElementById("upload-message");
  const max = Number(form.dataset.max || 0);

  function listChosen() {
    const files = Array.from(input.files || []);
    if (!files.length) { chosen.hidden = true; return; }
    const total = files.reduce((a, f) => a + f.size, 0);
    const names = files.slice(0, 12).map((f) => f.name + " (" + humanBytes(f.size) + ")").join(", ");
    chosen.textContent = files.length > 12 ? files.length + " files (" + humanBytes(total) + "): " + names + ", …" : names;
    if (max && total > max) {
      show(msg, "These files add up to " + humanBytes(total) + ", more than the " + humanBytes(max) + " this service accepts. Send them in several submissions (each county file replaces only its own county) or compressed (.zip / .gz).", "error");
    } else { msg.hidden = true; }
    chosen.hidden = false;
  }
  input.addEventListener("change", listChosen);
  ["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.add("over"); }));
  ["dragleave", "drop"].forEach((t) => drop.addEventListener(t, () => drop.classList.remove("over")));
  drop.addEventListener("drop", (e) => { e.preventDefault(); input.files = e.dataTransfer.files; listChosen(); });

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const files = Array.from(input.files || []);
    if (!files.length) { show(msg, "Choose a file first.", "warn"); return; }
    const data = new FormData();
    form.querySelectorAll("input[type=checkbox][name]").forEach((box) => { if (box.checked) data.append(box.name, "yes"); });
    files.forEach((f) => data.append("files", f, f.name));
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("X-CSRF-Token", csrfToken());
    xhr.setRequestHeader("Accept", "application/json");
    button.disabled = true;
    block.hidden = false;
    msg.hidden = true;
    stage.textContent = "Uploading " + files.length + " file" + (files.length > 1 ? "s" : "") + "…";
    xhr.upload.addEventListener("progress", (ev) => {
      if (!ev.lengthComputable) return;
      const p = Math.round((100 * ev.loaded) / ev.total);
      bar.style.width = p + "%";
      pct.textContent = p + "% of " + humanBytes(ev.total);
    });
    xhr.addEventListener("load", () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch (err) { body = {}; }
      if (xhr.status === 202) {
        bar.style.width = "100%";
        stage.textContent = "Received. Checking and ingesting…";
        if (body.note) show(msg, body.note, "ok");
        window.location.assign(body.page_url + "?job=" + encodeURIComponent(body.submission));
      } else {
        button.disabled = false;
        block.hidden = true;
        show(msg, body.error || ("Upload failed (HTTP " + xhr.status + ")."), "error");
      }
    });
    xhr.addEventListener("error", () => {
      button.disabled = false;
      block.hidden = true;
      show(msg, "The connection was interrupted. Nothing was stored; try again.", "error");
    });
    xhr.send(data);
  });
}

function setupJobs() {
  document.querySelectorAll("[data-job-url]").forEach((card) => {
    const url = card.dataset.jobUrl;
    const stage = card.querySelector(".job-stage");
    const bar = card.querySelector(".job-bar");
    const pct = card.querySelector(".job-pct");
    const status = card.querySelector(".job-status");
    async function poll() {
      let rec;
      try {
        const r = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
        if (!r.ok) { stage.textContent = "Could not read progress (HTTP " + r.status + ")."; return; }
        rec = await r.json();
      } catch (err) { setTimeout(poll, 3000); return; }
      stage.textContent = rec.stage || rec.status;
      status.textContent = rec.status;
      const p = Math.round(100 * (rec.progress || 0));
      bar.style.width = p + "%";
      pct.textContent = p + "%";
      if (rec.status === "queued" || rec.status === "ingesting") {
        setTimeout(poll, 1000);
      } else {
        card.dataset.done = rec.status;
        setTimeout(() => window.location.reload(), 400);
      }
    }
    setTimeout(poll, 500);
  });
}

function setupAdmin() {
  document.querySelectorAll("form[data-confirm]").forEach((f) => {
    f.addEventListener("submit", (e) => { if (!window.confirm(f.dataset.confirm)) e.preventDefault(); });
  });
  document.querySelectorAll("[data-copy]").forEach((btn) => {
    btn.addEventListener("click", async () => {
      const field = document.querySelector(btn.dataset.copy);
      field.select();
      try { await navigator.clipboard.writeText(field.value); } catch (err) { document.execCommand("copy"); }
      btn.textContent = "Copied";
      setTimeout(() => { btn.textContent = "Copy"; }, 2000);
    });
  });
  const role = document.getElementById("role-select");
  const state = document.getElementById("state-select");
  if (role && state) {
    const sync = () => { state.disabled = role.value !== "state"; if (state.disabled) state.value = ""; };
    role.addEventListener("change", sync);
    sync();
  }
}

document.addEventListener("DOMContentLoaded", () => { setupUpload(); setupJobs(); setupAdmin(); });
