// The session-filter console: one more client of the session protocol (SPEC 11), built on
// the JavaScript client. It logs in as a principal (or anonymously) and can do exactly what
// that principal's permissions allow; every refusal names the missing permission.
//
// Every keystroke checks the filter (`filters.check`) and counts its matches
// (`clients.count`) on the session's one WebSocket; the page of matches (`clients.fetch`)
// waits until typing pauses. Answers for an older text are dropped.
import { connect, ErrorReason, parseRoles, sameOriginUrl, SessionError } from "/session-filter.js";

const $ = (id) => document.getElementById(id);

const state = {
  session: null,
  principal: "",
  global: [],
  valid: false,
  canonical: "",
  total: 0,
  orderBy: null,
  descending: false,
  offset: 0,
  seq: 0,
  pageTimer: null,
  pending: null, // the bulk action awaiting confirmation
  listeners: [],
  timers: [],
};

// What the browser tests read: whether the answer for the current text is shown, and each
// keystroke's round trip (check and count).
const probe = { settled: false, settledFor: null, timings: [], loggedIn: false };
window.sessionFilterConsole = probe;

function settled(text) {
  probe.settled = true;
  probe.settledFor = text;
}

const formatCount = (n) => Number(n).toLocaleString("en-US");

/** A refusal or failure as one line for people: 103 names the missing permission. */
function describe(error, doing) {
  if (error instanceof SessionError && error.code === ErrorReason.ACCESS_DENIED && error.permission) {
    const who = state.principal ? `principal ${state.principal}` : "this anonymous session";
    const where = error.data.path ? ` on ${error.data.path}` : "";
    return `Refused: ${doing} needs the permission ${error.permission}${where}, which ${who} lacks.`;
  }
  if (error instanceof SessionError) return `${doing} failed: ${error.message} (error ${error.code})`;
  return `${doing} failed: ${error && error.message ? error.message : error}`;
}

function show(id, text) {
  const element = $(id);
  element.textContent = text || "";
  element.hidden = !text;
}

// ---- logging in and out ----

async function login(event) {
  event.preventDefault();
  const principal = $("principal").value.trim();
  const password = $("password").value;
  $("login").disabled = true;
  show("login-error", "");
  try {
    const session = await connect(sameOriginUrl(), principal ? { principal, credentials: password } : {});
    await start(session, principal);
  } catch (e) {
    const text =
      e instanceof SessionError && e.code === ErrorReason.ACCESS_DENIED
        ? principal
          ? `Login refused: wrong principal or password.`
          : `Login refused: this server does not allow anonymous sessions.`
        : describe(e, "Logging in");
    show("login-error", text);
  } finally {
    $("login").disabled = false;
  }
}

async function start(session, principal) {
  state.session = session;
  state.principal = principal;
  $("password").value = "";
  session.on("disconnect", () => setConnection("reconnecting…", "warn"));
  session.on("reconnect", () => setConnection("connected", ""));
  session.on("close", ({ reason }) => {
    if (state.session === session) stop(`The session closed (${reason}).`);
  });
  session.on("error", (e) => console.error(e));

  $("who").textContent = principal ? `principal ${principal}` : "anonymous";
  const roles = parseRoles(session.properties.$Roles);
  $("roles").textContent = roles.length ? roles.join(", ") : "no roles";
  setConnection("connected", "");
  const granted = await session.permissions();
  state.global = granted.global;
  $("permissions").textContent = granted.global.length ? granted.global.join(", ") : "none";
  $("path-permissions").textContent = granted.path.length ? granted.path.join(", ") : "none";

  $("login-panel").hidden = true;
  $("identity").hidden = false;
  $("app").hidden = false;
  probe.loggedIn = true;
  applyPermissions();
  await loadStoreSize();
  state.timers.push(setInterval(loadStoreSize, 2000));
  await loadLocks();
  state.timers.push(setInterval(loadLocks, 2000));
  refresh({ pageNow: true });
}

function stop(message) {
  const session = state.session;
  state.session = null;
  for (const timer of state.timers.splice(0)) clearInterval(timer);
  for (const listener of state.listeners.splice(0)) listener.element.remove();
  probe.loggedIn = false;
  $("app").hidden = true;
  $("identity").hidden = true;
  $("store-info").hidden = true;
  $("login-panel").hidden = false;
  show("login-error", message);
  if (session && !session.isClosed) session.close().catch(() => {});
}

function setConnection(text, cls) {
  $("connection").textContent = text;
  $("connection").className = `badge ${cls}`;
}

const has = (permission) => state.global.includes(permission);

/** Disables what the session may not do, saying which permission is missing. */
function applyPermissions() {
  const modify = has("MODIFY_SESSION") && has("VIEW_SESSION");
  const missing = ["VIEW_SESSION", "MODIFY_SESSION"].filter((p) => !has(p));
  show("actions-note", modify ? "" : `Bulk actions need ${missing.join(" and ")}, which this session lacks.`);
  const listen = has("VIEW_SESSION") && has("REGISTER_HANDLER");
  const missingListen = ["VIEW_SESSION", "REGISTER_HANDLER"].filter((p) => !has(p));
  show("listen-note", listen ? "" : `Listeners need ${missingListen.join(" and ")}, which this session lacks.`);
  updateButtons();
}

function updateButtons() {
  const modify = has("MODIFY_SESSION") && has("VIEW_SESSION");
  for (const id of ["action-close", "action-roles", "action-properties"]) $(id).disabled = !modify || !state.valid;
  for (const id of ["roles-remove", "roles-add", "props-change"]) $(id).disabled = !modify;
  $("listen-add").disabled = !(has("VIEW_SESSION") && has("REGISTER_HANDLER")) || !state.valid;
}

async function loadStoreSize() {
  const session = state.session;
  if (!session || !has("VIEW_SESSION")) return;
  try {
    const n = await session.clients.count("all");
    $("store-size").textContent = formatCount(n);
    $("store-size").dataset.count = String(n);
    $("store-info").hidden = false;
  } catch {
    // shown elsewhere
  }
}

// ---- checking and counting as you type ----

const PAGE_DELAY_MS = 120;

function columns() {
  return $("columns")
    .value.split(",")
    .map((c) => c.trim())
    .filter((c) => c && c !== "$SessionId");
}

const pageSize = () => Number($("page-size").value) || 20;

async function refresh({ keepOffset = false, pageNow = false } = {}) {
  const session = state.session;
  if (!session) return;
  const text = $("filter").value;
  if (!keepOffset) state.offset = 0;
  const seq = ++state.seq;
  clearTimeout(state.pageTimer);
  probe.settled = false;
  if (!text.trim()) {
    showVerdict(null, null, text);
    show("view-error", "");
    settled(text);
    return;
  }
  const started = performance.now();
  const checked = session.filters.check(text).then(
    (canonical) => ({ canonical }),
    (error) => ({ error }),
  );
  const counted = session.clients.count(text).then(
    (count) => ({ count }),
    (error) => ({ error }),
  );
  const [check, count] = await Promise.all([checked, counted]);
  const elapsed = performance.now() - started;
  probe.timings.push({ filter: text, ms: elapsed, valid: !check.error, current: seq === state.seq });
  if (probe.timings.length > 1000) probe.timings.shift();
  if (seq !== state.seq) return;

  if (check.error) {
    showVerdict(null, check.error, text);
    show("view-error", "");
    settled(text);
    return;
  }
  showVerdict(check.canonical, null, text);
  if (count.error) {
    show("view-error", describe(count.error, "Counting sessions"));
    $("count").textContent = "–";
    $("count").dataset.count = "";
    $("timing").textContent = "";
    renderTable([]);
    settled(text);
    return;
  }
  show("view-error", "");
  state.total = count.count;
  $("count").textContent = formatCount(count.count);
  $("count").dataset.count = String(count.count);
  $("timing").textContent = `checked and counted in ${elapsed.toFixed(1)} ms`;
  $("timing").dataset.ms = elapsed.toFixed(2);
  if ($("explain-panel").open) explain();
  state.pageTimer = setTimeout(() => loadPage(text, seq), pageNow ? 0 : PAGE_DELAY_MS);
}

async function loadPage(text, seq) {
  const session = state.session;
  const options = { properties: columns(), offset: state.offset, limit: pageSize() };
  if (state.orderBy) {
    options.orderBy = state.orderBy;
    options.descending = state.descending;
  }
  let page;
  try {
    page = await session.clients.fetch(text, options);
  } catch (e) {
    if (seq !== state.seq) return;
    show("view-error", describe(e, "Fetching sessions"));
    renderTable([]);
    settled(text);
    return;
  }
  if (seq !== state.seq) return;
  state.total = page.total;
  renderTable(page.sessions);
  settled(text);
}

/** The filter's line with a caret under the error's column (columns count code points). */
function caret(text, line, column) {
  const lines = text.split("\n");
  const source = lines[line - 1] ?? "";
  const before = Array.from(source).slice(0, Math.max(0, column - 1));
  const pad = before.map((c) => (c === "\t" ? "\t" : " ")).join("");
  return `${source}\n${pad}^`;
}

function showVerdict(canonical, error, text) {
  state.valid = canonical !== null;
  state.canonical = canonical || "";
  $("filter").classList.toggle("invalid", !!error);
  $("canonical-row").hidden = canonical === null;
  $("canonical").textContent = canonical || "";
  const box = $("error");
  box.hidden = !error;
  if (error) {
    const data = error instanceof SessionError && error.data && typeof error.data === "object" ? error.data : {};
    if (data.line) {
      box.textContent = `${data.line}:${data.column}: ${data.message}\n${caret(text, data.line, data.column)}`;
    } else {
      box.textContent = describe(error, "Checking the filter");
    }
    box.dataset.line = data.line ?? "";
    box.dataset.column = data.column ?? "";
    box.dataset.offset = data.offset ?? "";
  }
  if (!state.valid) {
    $("count").textContent = "–";
    $("count").dataset.count = "";
    $("timing").textContent = "";
    renderTable([]);
  }
  updateButtons();
}

// ---- the table ----

function renderTable(sessions) {
  const keys = ["$SessionId", ...columns()];
  const head = $("sessions").tHead.rows[0];
  head.replaceChildren(
    ...keys.map((key) => {
      const th = document.createElement("th");
      const sortedHere = (state.orderBy || "$SessionId") === key;
      th.textContent = key + (sortedHere ? (state.descending ? " ▼" : " ▲") : "");
      th.classList.toggle("sorted", sortedHere);
      th.dataset.key = key;
      th.title = `Sort by ${key}`;
      th.addEventListener("click", () => sortBy(key));
      return th;
    }),
  );
  $("sessions").tBodies[0].replaceChildren(
    ...sessions.map((s) => {
      const tr = document.createElement("tr");
      for (const key of keys) {
        const td = document.createElement("td");
        td.textContent = key === "$SessionId" ? s.id : (s.properties[key] ?? "");
        td.title = td.textContent;
        tr.appendChild(td);
      }
      return tr;
    }),
  );
  const shown = sessions.length;
  $("page-info").textContent = state.valid
    ? shown
      ? `${formatCount(state.offset + 1)}–${formatCount(state.offset + shown)} of ${formatCount(state.total)}`
      : `0 of ${formatCount(state.total)}`
    : "";
  $("prev").disabled = !state.valid || state.offset === 0;
  $("next").disabled = !state.valid || state.offset + pageSize() >= state.total;
}

function sortBy(key) {
  const current = state.orderBy || "$SessionId";
  state.descending = current === key ? !state.descending : false;
  state.orderBy = key;
  refresh({ pageNow: true });
}

function turnPage(direction) {
  state.offset = Math.max(0, state.offset + direction * pageSize());
  refresh({ keepOffset: true, pageNow: true });
}

// ---- program and plan ----

async function explain() {
  const session = state.session;
  const text = $("filter").value;
  if (!session || !state.valid) {
    $("program").textContent = "";
    $("plan").textContent = "";
    return;
  }
  try {
    const answer = await session.filters.explain(text);
    if (text !== $("filter").value) return;
    $("program").textContent = answer.program;
    $("plan").textContent = answer.plan;
  } catch (e) {
    if (text !== $("filter").value) return;
    $("program").textContent = describe(e, "Explaining the filter");
    $("plan").textContent = "";
  }
}

// ---- bulk actions, each confirmed first ----

function list(text) {
  return text
    .split(",")
    .map((r) => r.trim())
    .filter((r) => r);
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

/** Shows what is about to happen: the exact filter text and the count it matched. */
async function propose(kind) {
  const session = state.session;
  const filter = $("filter").value;
  let total;
  try {
    total = await session.clients.count(filter); // the count as it is now, not as last typed
  } catch (e) {
    $("action-result").textContent = describe(e, "Counting sessions");
    return;
  }
  const on = `the ${formatCount(total)} session${total === 1 ? "" : "s"} matching the filter`;
  let action;
  try {
    if (kind === "close") {
      action = { text: `Close ${on}:`, button: `Confirm: close ${formatCount(total)}`, run: () => session.clients.close({ filter }), done: "Closed" };
    } else if (kind === "roles") {
      const remove = list($("roles-remove").value);
      const add = list($("roles-add").value);
      action = {
        text: `Remove roles [${remove.join(", ")}] and add [${add.join(", ")}] on ${on}:`,
        button: `Confirm: change roles of ${formatCount(total)}`,
        run: () => session.clients.changeRoles({ filter }, remove, add),
        done: "Changed the roles of",
      };
    } else {
      const properties = propertyChange($("props-change").value);
      action = {
        text: `Set ${JSON.stringify(properties)} on ${on}:`,
        button: `Confirm: set properties of ${formatCount(total)}`,
        run: async () => (await session.clients.setSessionProperties({ filter }, properties)).count,
        done: "Changed the properties of",
      };
    }
  } catch (e) {
    $("action-result").textContent = e.message;
    return;
  }
  state.pending = { ...action, filter };
  $("confirm-text").textContent = action.text;
  $("confirm-filter").textContent = filter;
  $("confirm").textContent = action.button;
  $("confirm-box").hidden = false;
  $("confirm-box").dataset.count = String(total);
  $("confirm").focus();
}

async function confirmAction() {
  const action = state.pending;
  state.pending = null;
  $("confirm-box").hidden = true;
  if (!action) return;
  try {
    const n = await action.run();
    $("action-result").textContent = `${action.done} ${formatCount(n)} session${n === 1 ? "" : "s"}.`;
    $("action-result").dataset.count = String(n);
  } catch (e) {
    $("action-result").textContent = describe(e, "The action");
  }
  loadStoreSize();
  refresh({ keepOffset: false, pageNow: true });
}

function cancelAction() {
  state.pending = null;
  $("confirm-box").hidden = true;
}

// ---- live listeners ----

const MAX_EVENTS = 8;
const MAX_LISTENED = 100000;

async function addListener() {
  const session = state.session;
  if (!session || !state.valid) return;
  const filter = $("filter").value;
  show("listen-note", "");
  if (state.total > MAX_LISTENED) {
    show("listen-note", `${formatCount(state.total)} sessions match: listen to a filter with at most ${formatCount(MAX_LISTENED)}.`);
    return;
  }
  const item = document.createElement("li");
  item.className = "listener";
  const head = document.createElement("div");
  head.className = "listener-head";
  const count = document.createElement("span");
  count.className = "listener-count";
  count.textContent = "…";
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "listener-remove";
  remove.title = "Stop listening";
  remove.setAttribute("aria-label", "Stop listening");
  remove.textContent = "×";
  head.append(count, remove);
  const shown = document.createElement("div");
  shown.className = "listener-filter";
  shown.textContent = state.canonical;
  const events = document.createElement("ul");
  events.className = "listener-events";
  item.append(head, shown, events);

  const members = new Set();
  const setCount = () => {
    count.textContent = formatCount(members.size);
    count.dataset.count = String(members.size);
  };
  const note = (cls, text) => {
    const li = document.createElement("li");
    li.className = cls;
    li.textContent = `${new Date().toLocaleTimeString("en-GB")} ${text}`;
    events.prepend(li);
    while (events.children.length > MAX_EVENTS) events.lastChild.remove();
  };
  let snapshot = true;
  const onEvent = (e) => {
    if (e.event === "open") {
      members.add(e.sessionId);
      if (!snapshot) note("entered", `+ ${e.sessionId} opened`);
    } else if (e.event === "left") {
      members.delete(e.sessionId);
      note("left", `− ${e.sessionId} left`);
    } else if (e.event === "close") {
      members.delete(e.sessionId);
      note("left", `× ${e.sessionId} closed (${e.reason})`);
    } else if (e.event === "update" && e.state !== "active") {
      note("update", `~ ${e.sessionId} ${e.state}`);
    }
    setCount();
  };
  let registration;
  try {
    registration = await session.clients.addSessionEventListener(onEvent, { filter });
  } catch (e) {
    show("listen-note", describe(e, "Listening"));
    return;
  }
  // The snapshot's events follow the answer; those before the answer to one more request
  // are the snapshot, the rest are news.
  session.permissions().finally(() => {
    snapshot = false;
    note("entered", `${formatCount(members.size)} matching when the listener started`);
  });
  const entry = { element: item, registration };
  state.listeners.push(entry);
  remove.addEventListener("click", async () => {
    state.listeners = state.listeners.filter((l) => l !== entry);
    item.remove();
    await registration.close().catch(() => {});
  });
  setCount();
  $("listeners").prepend(item);
}

// ---- locks ----

async function loadLocks() {
  const session = state.session;
  if (!session) return;
  if (!has("VIEW_SERVER")) {
    $("locks-note").textContent = "Listing locks needs VIEW_SERVER, which this session lacks.";
    return;
  }
  let locks;
  try {
    locks = await session.locks.list();
  } catch (e) {
    $("locks-note").textContent = describe(e, "Listing locks");
    return;
  }
  const names = Object.keys(locks).sort();
  $("locks-note").textContent = names.length ? "" : "No lock is held.";
  $("locks").hidden = names.length === 0;
  $("locks").tBodies[0].replaceChildren(
    ...names.map((name) => {
      const tr = document.createElement("tr");
      const lock = locks[name];
      for (const value of [name, `${lock.session_id} (${lock.server})`, lock.sequence, lock.scope]) {
        const td = document.createElement("td");
        td.textContent = String(value);
        tr.appendChild(td);
      }
      return tr;
    }),
  );
}

// ---- wiring ----

function init() {
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", () => stop(""));
  $("filter").addEventListener("input", () => refresh());
  $("columns").addEventListener("change", () => refresh({ keepOffset: true, pageNow: true }));
  $("page-size").addEventListener("change", () => refresh({ pageNow: true }));
  $("prev").addEventListener("click", () => turnPage(-1));
  $("next").addEventListener("click", () => turnPage(1));
  $("explain-panel").addEventListener("toggle", () => {
    if ($("explain-panel").open) explain();
  });
  $("action-close").addEventListener("click", () => propose("close"));
  $("action-roles").addEventListener("click", () => propose("roles"));
  $("action-properties").addEventListener("click", () => propose("properties"));
  $("confirm").addEventListener("click", confirmAction);
  $("cancel").addEventListener("click", cancelAction);
  $("listen-add").addEventListener("click", addListener);
  $("principal").focus();
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
else init();
