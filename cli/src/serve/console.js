// The session-filter console: plain JavaScript over the JSON API, no build
// step. Every keystroke checks the filter and fetches the count and first
// page in parallel; a newer keystroke aborts the requests of the older one.
"use strict";

const $ = (id) => document.getElementById(id);

const state = {
  info: { sessions: 0, allow_writes: false, churn: null },
  valid: false,
  total: 0,
  // The filter text whose canonical form and count are on screen, which
  // can lag the text box while a newer keystroke's answer is on its way:
  // the bulk actions and watches act on this text, never on the box's.
  shown: null, // { text, canonical, total }
  orderBy: null,
  descending: false,
  offset: 0,
  seq: 0,
  controller: null,
  pending: null, // the action awaiting confirmation
};

async function call(method, path, body, signal) {
  const options = { method, signal, headers: {} };
  if (body !== undefined) {
    options.headers["content-type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  let json = null;
  try {
    json = await response.json();
  } catch (_) {
    json = { error: { message: `HTTP ${response.status}` } };
  }
  const timing = /dur=([0-9.]+)/.exec(response.headers.get("server-timing") || "");
  return { ok: response.ok, status: response.status, body: json, serverMs: timing ? Number(timing[1]) : null };
}

// What the browser tests read: whether the answer for the current text is
// shown, and each keystroke's round trip.
const probe = { settled: false, settledFor: null, timings: [] };
window.sessionFilterConsole = probe;

function settled(text) {
  probe.settled = true;
  probe.settledFor = text;
}

const post = (path, body, signal) => call("POST", path, body, signal);

function columns() {
  return $("columns").value.split(",").map((c) => c.trim()).filter((c) => c && c !== "$SessionId");
}

function pageSize() {
  return Number($("page-size").value) || 20;
}

function pageRequest(filter) {
  const request = { filter, properties: columns(), offset: state.offset, limit: pageSize() };
  if (state.orderBy) {
    request.order_by = state.orderBy;
    request.descending = state.descending;
  }
  return request;
}

function formatCount(n) {
  return Number(n).toLocaleString("en-US");
}

// ---- checking and counting as you type ----

// A keystroke checks and counts at once; the page of matches waits until
// typing pauses, since a broad prefix (`$Country in ['UK']`) can have many
// matches to order while the count of any filter stays cheap.
const PAGE_DELAY_MS = 80;

async function refresh({ keepOffset = false, pageNow = false } = {}) {
  const text = $("filter").value;
  if (!keepOffset) state.offset = 0;
  if (state.controller) state.controller.abort();
  const controller = new AbortController();
  state.controller = controller;
  const seq = ++state.seq;
  probe.settled = false;
  if (!text.trim()) {
    showVerdict(null, null);
    settled(text);
    return;
  }
  const started = performance.now();
  const pageLater = new Promise((resolve) => setTimeout(resolve, pageNow ? 0 : PAGE_DELAY_MS)).then(() =>
    seq === state.seq && !controller.signal.aborted ? post("/api/fetch", pageRequest(text), controller.signal) : null,
  );
  pageLater.catch(() => {}); // awaited below, unless the filter is bad
  let check, count;
  try {
    [check, count] = await Promise.all([
      post("/api/check", { filter: text }, controller.signal),
      post("/api/fetch", { filter: text, limit: 0 }, controller.signal),
    ]);
  } catch (e) {
    if (e.name !== "AbortError") {
      showVerdict(null, { message: String(e) });
      settled(text);
    }
    return;
  }
  if (seq !== state.seq) return;
  const elapsed = performance.now() - started;
  probe.timings.push({ filter: text, ms: elapsed, valid: check.ok });
  if (probe.timings.length > 1000) probe.timings.shift();
  if (!check.ok) {
    controller.abort();
    showVerdict(null, check.body.error);
    settled(text);
    return;
  }
  showVerdict(check.body.canonical, null);
  if (!count.ok) {
    controller.abort();
    showPageError(count.body.error);
    settled(text);
    return;
  }
  state.total = count.body.total;
  state.shown = { text, canonical: check.body.canonical, total: count.body.total };
  updateButtons();
  $("count").textContent = formatCount(count.body.total);
  $("count").dataset.count = String(count.body.total);
  const server = (check.serverMs ?? 0) + (count.serverMs ?? 0);
  $("timing").textContent = `checked and counted in ${elapsed.toFixed(1)} ms (${server.toFixed(1)} ms in the server)`;
  $("timing").dataset.ms = elapsed.toFixed(2);
  if ($("explain-panel").open) scheduleExplain();
  let page;
  try {
    page = await pageLater;
  } catch (e) {
    if (e.name !== "AbortError") showPageError({ message: String(e) });
    return;
  }
  if (!page || seq !== state.seq) return;
  if (!page.ok) {
    showPageError(page.body.error);
  } else {
    state.total = page.body.total;
    renderTable(page.body.sessions);
  }
  settled(text);
}

function showVerdict(canonical, error) {
  state.valid = canonical !== null;
  // Shown again once the count for this text is on screen too.
  state.shown = null;
  $("filter").classList.toggle("invalid", !!error);
  $("canonical-row").hidden = canonical === null;
  $("canonical").textContent = canonical || "";
  const box = $("error");
  box.hidden = !error;
  if (error) {
    const position = error.line ? `${error.line}:${error.column}: ` : "";
    box.textContent = `${position}${error.message}` + (error.caret ? `\n${error.caret}` : "");
    box.dataset.line = error.line ?? "";
    box.dataset.column = error.column ?? "";
  }
  if (!state.valid) {
    $("count").textContent = "–";
    $("count").dataset.count = "";
    $("timing").textContent = "";
    renderTable([]);
  }
  updateButtons();
}

function showPageError(error) {
  $("page-info").textContent = error.message;
  renderTable([]);
}

// ---- the table ----

function renderTable(sessions) {
  const keys = ["$SessionId", ...columns()];
  const head = $("sessions").tHead.rows[0];
  head.replaceChildren(...keys.map((key) => {
    const th = document.createElement("th");
    const sortedHere = (state.orderBy || "$SessionId") === key;
    th.textContent = key + (sortedHere ? (state.descending ? " ▼" : " ▲") : "");
    th.classList.toggle("sorted", sortedHere);
    th.dataset.key = key;
    th.title = "Sort by " + key;
    th.addEventListener("click", () => sortBy(key));
    return th;
  }));
  const body = $("sessions").tBodies[0];
  body.replaceChildren(...sessions.map((s) => {
    const tr = document.createElement("tr");
    for (const key of keys) {
      const td = document.createElement("td");
      td.textContent = key === "$SessionId" ? s.id : (s.properties[key] ?? "");
      td.title = td.textContent;
      tr.appendChild(td);
    }
    return tr;
  }));
  const shown = sessions.length;
  $("page-info").textContent = state.valid
    ? (shown ? `${formatCount(state.offset + 1)}–${formatCount(state.offset + shown)} of ${formatCount(state.total)}` : `0 of ${formatCount(state.total)}`)
    : "";
  $("prev").disabled = !state.valid || state.offset === 0;
  $("next").disabled = !state.valid || state.offset + pageSize() >= state.total;
}

function sortBy(key) {
  const current = state.orderBy || "$SessionId";
  if (current === key) {
    state.descending = !state.descending;
  } else {
    state.descending = false;
  }
  state.orderBy = key;
  refresh({ pageNow: true });
}

function turnPage(direction) {
  state.offset = Math.max(0, state.offset + direction * pageSize());
  refresh({ keepOffset: true, pageNow: true });
}

// ---- program and plan ----

let explainTimer = null;
function scheduleExplain() {
  clearTimeout(explainTimer);
  explainTimer = setTimeout(explain, 150);
}

async function explain() {
  const text = $("filter").value;
  if (!state.valid) {
    $("program").textContent = "";
    $("plan").textContent = "";
    return;
  }
  const answer = await post("/api/explain", { filter: text });
  if (text !== $("filter").value) return;
  if (!answer.ok) {
    $("program").textContent = answer.body.error.message;
    $("plan").textContent = "";
    return;
  }
  $("program").textContent = answer.body.program;
  $("plan").textContent = answer.body.plan;
}

// ---- bulk actions, each confirmed first ----

function list(text) {
  return text.split(",").map((r) => r.trim()).filter((r) => r);
}

function propertyChange(text) {
  const change = {};
  for (const item of list(text)) {
    const at = item.indexOf("=");
    if (at <= 0) throw new Error(`expected key=value (or key= to remove), found ${item}`);
    const value = item.slice(at + 1).trim();
    change[item.slice(0, at).trim()] = value === "" ? null : value;
  }
  return change;
}

function propose(kind) {
  const shown = state.shown;
  if (!shown) return;
  const filter = shown.text;
  const on = `the ${formatCount(shown.total)} sessions matching ${shown.canonical}`;
  let action;
  try {
    if (kind === "close") {
      action = { path: "/api/close", body: { filter }, text: `Close ${on}?`, done: "Closed" };
    } else if (kind === "roles") {
      const body = { filter, remove: list($("roles-remove").value), add: list($("roles-add").value) };
      action = { path: "/api/roles", body, text: `Remove roles [${body.remove.join(", ")}] and add [${body.add.join(", ")}] on ${on}?`, done: "Changed the roles of" };
    } else {
      const body = { filter, properties: propertyChange($("props-change").value) };
      action = { path: "/api/properties", body, text: `Set ${JSON.stringify(body.properties)} on ${on}?`, done: "Changed the properties of" };
    }
  } catch (e) {
    $("action-result").textContent = e.message;
    return;
  }
  state.pending = action;
  $("confirm-text").textContent = action.text;
  $("confirm-box").hidden = false;
  $("confirm").focus();
}

async function confirmAction() {
  const action = state.pending;
  state.pending = null;
  $("confirm-box").hidden = true;
  if (!action) return;
  const answer = await post(action.path, action.body);
  $("action-result").textContent = answer.ok
    ? `${action.done} ${formatCount(answer.body.count)} sessions.`
    : `Failed: ${answer.body.error.message}`;
  await loadInfo();
  refresh({ keepOffset: false });
}

function cancelAction() {
  state.pending = null;
  $("confirm-box").hidden = true;
}

function updateButtons() {
  const writable = state.info.allow_writes;
  for (const id of ["action-close", "action-roles", "action-properties"]) {
    $(id).disabled = !writable || !state.shown;
  }
  for (const id of ["roles-remove", "roles-add", "props-change"]) $(id).disabled = !writable;
  $("writes-note").hidden = writable;
  $("watch-add").disabled = !state.shown;
}

// ---- live watches ----

const MAX_EVENTS = 8;

function addWatch() {
  if (!state.shown) return;
  const { text: filter, canonical } = state.shown;
  const item = document.createElement("li");
  item.className = "watch";
  item.innerHTML = `<div class="watch-head"><span class="watch-count">…</span>
    <button type="button" class="watch-remove" title="Stop watching">×</button></div>
    <div class="watch-filter"></div><ul class="watch-events"></ul>`;
  item.querySelector(".watch-filter").textContent = canonical;
  const count = item.querySelector(".watch-count");
  const events = item.querySelector(".watch-events");
  const source = new EventSource("/api/watch?filter=" + encodeURIComponent(filter));
  const note = (cls, text) => {
    const li = document.createElement("li");
    li.className = cls;
    li.textContent = `${new Date().toLocaleTimeString("en-GB")} ${text}`;
    events.prepend(li);
    while (events.children.length > MAX_EVENTS) events.lastChild.remove();
  };
  source.addEventListener("count", (e) => {
    const n = JSON.parse(e.data).count;
    count.textContent = formatCount(n);
    count.dataset.count = String(n);
  });
  source.addEventListener("entered", (e) => note("entered", `+ ${JSON.parse(e.data).id} entered`));
  source.addEventListener("left", (e) => {
    const event = JSON.parse(e.data);
    note("left", `− ${event.id} ${event.closed ? "closed" : "left"}`);
  });
  source.addEventListener("lagged", (e) => note("lagged", `… ${JSON.parse(e.data).missed} events missed`));
  source.onerror = () => { count.title = "reconnecting"; };
  item.querySelector(".watch-remove").addEventListener("click", () => {
    source.close();
    item.remove();
  });
  $("watches").prepend(item);
}

// ---- the store ----

async function loadInfo() {
  const answer = await call("GET", "/api/info");
  if (!answer.ok) return;
  state.info = answer.body;
  $("store-size").textContent = formatCount(answer.body.sessions);
  $("store-size").dataset.count = String(answer.body.sessions);
  $("writes-state").textContent = answer.body.allow_writes ? "writes allowed" : "read-only";
  $("churn-state").textContent = answer.body.churn ? `churn ${answer.body.churn}/s` : "no churn";
  updateButtons();
}

document.addEventListener("DOMContentLoaded", async () => {
  $("filter").addEventListener("input", () => refresh());
  $("columns").addEventListener("change", () => refresh({ keepOffset: true, pageNow: true }));
  $("page-size").addEventListener("change", () => refresh({ pageNow: true }));
  $("prev").addEventListener("click", () => turnPage(-1));
  $("next").addEventListener("click", () => turnPage(1));
  $("explain-panel").addEventListener("toggle", () => { if ($("explain-panel").open) explain(); });
  $("action-close").addEventListener("click", () => propose("close"));
  $("action-roles").addEventListener("click", () => propose("roles"));
  $("action-properties").addEventListener("click", () => propose("properties"));
  $("confirm").addEventListener("click", confirmAction);
  $("cancel").addEventListener("click", cancelAction);
  $("watch-add").addEventListener("click", addWatch);
  await loadInfo();
  // With churn the store's size moves; keep the header current.
  if (state.info.churn) setInterval(loadInfo, 2000);
  if (!$("filter").value) $("filter").value = "all";
  refresh();
});
