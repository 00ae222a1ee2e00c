// ragpipe's web console: plain JavaScript against the API, no framework.
// The API key lives in this tab's sessionStorage only; every request sends
// it as a bearer header, event streams included (read with fetch, since
// EventSource cannot send headers).
"use strict";

const $ = (sel) => document.querySelector(sel);
const keyName = "ragpipe.key";
let key = sessionStorage.getItem(keyName) || "";

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
  return e;
}

class APIError extends Error {
  constructor(status, code, message) { super(`${code}: ${message}`); this.status = status; this.code = code; }
}

async function api(method, path, body) {
  const opts = { method, headers: { Authorization: `Bearer ${key}` } };
  if (body !== undefined) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
  const r = await fetch(path, opts);
  if (r.status === 204) return null;
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new APIError(r.status, data.error?.code || `http_${r.status}`, data.error?.message || r.statusText);
  return data;
}

// stream reads the server-sent events of a fetch answer, calling on(event, data).
async function stream(resp, on) {
  if (!resp.ok) {
    const data = await resp.json().catch(() => ({}));
    throw new APIError(resp.status, data.error?.code || `http_${resp.status}`, data.error?.message || resp.statusText);
  }
  const reader = resp.body.getReader();
  const dec = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      let event = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) event = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      if (data) on(event, JSON.parse(data));
    }
  }
}

function showError(err) { $("#error").textContent = err ? String(err.message || err) : ""; }

// ---- sign in ----

async function signIn(candidate) {
  key = candidate;
  try {
    await api("GET", "/v1/collections");
  } catch (err) {
    key = "";
    sessionStorage.removeItem(keyName);
    $("#signin-error").textContent = err.status === 401 ? "That key was not accepted." : String(err.message);
    return;
  }
  sessionStorage.setItem(keyName, key);
  $("#signin").hidden = true;
  $("#app").hidden = false;
  $("#nav").hidden = false;
  refreshDocuments();
  refreshWebhooks();
}

$("#signin-form").addEventListener("submit", (e) => { e.preventDefault(); signIn($("#key").value.trim()); });
$("#sign-out").addEventListener("click", () => { sessionStorage.removeItem(keyName); location.reload(); });

// ---- upload ----

function uploadFile(file) {
  const bar = el("progress", { max: "100", value: "0" });
  const state = el("span", { class: "meta" }, "uploading");
  const row = el("div", { class: "upload", "data-file": file.name }, el("span", {}, file.name), bar, state);
  $("#uploads").append(row);
  const form = new FormData();
  form.append("file", file);
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/v1/documents");
  xhr.setRequestHeader("Authorization", `Bearer ${key}`);
  xhr.upload.onprogress = (e) => { if (e.lengthComputable) bar.value = Math.round((100 * e.loaded) / e.total); };
  xhr.onerror = () => { state.textContent = "upload failed"; state.className = "error"; };
  xhr.onload = () => {
    const data = JSON.parse(xhr.responseText || "{}");
    if (xhr.status >= 300) {
      state.textContent = `${data.error?.code}: ${data.error?.message}`;
      state.className = "error";
      return;
    }
    bar.value = 0;
    state.textContent = "queued";
    refreshDocuments();
    followJob(data.job_id, bar, state);
  };
  xhr.send(form);
}

// followJob reads the job's event stream (fetch, with the key as a header)
// until its final event, moving the bar with the job's progress.
async function followJob(jobID, bar, state) {
  try {
    const resp = await fetch(`/v1/jobs/${jobID}/events`, { headers: { Authorization: `Bearer ${key}` } });
    await stream(resp, (event, e) => {
      bar.value = Math.round(100 * (e.progress || 0));
      state.textContent = `${e.status}${e.stage ? " · " + e.stage : ""}`;
      if (["job.succeeded", "job.failed", "job.canceled"].includes(event)) {
        state.className = event === "job.succeeded" ? "status-ready" : "error";
        refreshDocuments();
      }
    });
  } catch (err) {
    state.textContent = String(err.message);
    state.className = "error";
  }
}

const drop = $("#drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  for (const f of e.dataTransfer.files) uploadFile(f);
});
$("#file-input").addEventListener("change", (e) => { for (const f of e.target.files) uploadFile(f); e.target.value = ""; });

// ---- documents and chunks ----

async function refreshDocuments() {
  try {
    const data = await api("GET", "/v1/documents?limit=100");
    const body = $("#doc-table tbody");
    body.replaceChildren(...data.documents.map((d) => el("tr", { class: "clickable", "data-id": d.id, onclick: () => openDocument(d) },
      el("td", {}, d.filename), el("td", {}, d.collection), el("td", { class: `status-${d.status}` }, d.status),
      el("td", {}, d.pages), el("td", {}, d.chunk_count), el("td", { class: "error" }, d.error ? `${d.error.code}: ${d.error.message}` : ""))));
    showError();
  } catch (err) { showError(err); }
}

async function openDocument(d, chunkIndex) {
  try {
    const data = await api("GET", `/v1/documents/${d.id}/chunks?limit=500`);
    $("#chunks-title").textContent = `${d.filename || d.id}: ${data.chunks.length} chunks`;
    $("#chunk-list").replaceChildren(...data.chunks.map((c) => el("li", { id: `chunk-${c.index}`, value: c.index },
      el("div", { class: "meta" }, `pages ${c.page_start}–${c.page_end}${c.section ? " · " + c.section : ""}`),
      el("div", { class: "passage" }, c.text))));
    $("#chunks").hidden = false;
    const target = chunkIndex === undefined ? $("#chunks") : $(`#chunk-${chunkIndex}`);
    if (target) { target.classList.add("chunk-open"); target.scrollIntoView({ block: "start" }); }
  } catch (err) { showError(err); }
}

// ---- search ----

$("#search-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    const data = await api("POST", "/v1/search", { query: $("#query").value, mode: $("#mode").value, explain: $("#explain").checked, top_k: 10 });
    $("#results").replaceChildren(...data.results.map((r) => {
      let scores = `score ${r.score.toFixed(4)}`;
      if (r.explain) {
        const x = r.explain;
        scores += ` · keyword ${x.keyword_rank ?? "–"} (${x.keyword_score?.toFixed(3) ?? "–"}) · vector ${x.vector_rank ?? "–"} (${x.vector_score?.toFixed(3) ?? "–"})`;
      }
      return el("li", { class: "result" },
        el("div", { class: "meta" }, `pages ${r.page_start}–${r.page_end}${r.section ? " · " + r.section : ""} · ${scores}`),
        el("div", { class: "passage" }, r.text));
    }));
    showError();
  } catch (err) { showError(err); }
});

// ---- ask ----

$("#ask-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const answer = $("#answer");
  answer.textContent = "";
  $("#citations").replaceChildren();
  let passages = [];
  try {
    const resp = await fetch("/v1/ask", {
      method: "POST",
      headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json", Accept: "text/event-stream" },
      body: JSON.stringify({ question: $("#question").value, stream: true }),
    });
    await stream(resp, (event, data) => {
      if (event === "citations") passages = data.citations;
      else if (event === "token") answer.textContent += data.text;
      else if (event === "error") showError(`${data.code}: ${data.message}`);
      else if (event === "done") {
        $("#citations").replaceChildren(...data.cited.map((n) => {
          const c = passages[n - 1];
          return el("li", { value: n },
            el("a", { href: "#documents", class: "citation", "data-n": n, onclick: (ev) => { ev.preventDefault(); openDocument({ id: c.document_id }, c.chunk_index); } },
              `[${n}] pages ${c.page_start}–${c.page_end}${c.section ? " · " + c.section : ""}`),
            el("div", { class: "passage" }, c.text.slice(0, 300)));
        }));
        answer.dataset.done = "true";
      }
    });
    showError();
  } catch (err) { showError(err); }
});

// ---- webhooks ----

async function refreshWebhooks() {
  try {
    const data = await api("GET", "/v1/webhooks");
    $("#hook-table tbody").replaceChildren(...data.webhooks.map((w) => el("tr", { class: "clickable", onclick: () => openDeliveries(w) },
      el("td", {}, w.url), el("td", {}, (w.events || []).join(", ")), el("td", {}, w.enabled ? "active" : `disabled${w.disabled_reason ? ": " + w.disabled_reason : ""}`))));
  } catch (err) { showError(err); }
}

async function openDeliveries(w) {
  try {
    const data = await api("GET", `/v1/webhooks/${w.id}/deliveries?limit=50`);
    $("#deliveries-title").textContent = `Deliveries to ${w.url}`;
    $("#delivery-rows").replaceChildren(...data.deliveries.map((d) => el("tr", {},
      el("td", {}, d.event_type), el("td", {}, d.status), el("td", {}, d.attempts),
      el("td", {}, d.last_status_code || d.last_error || ""), el("td", {}, d.updated_at))));
    $("#deliveries").hidden = false;
  } catch (err) { showError(err); }
}

if (key) signIn(key);
