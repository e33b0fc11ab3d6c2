// session-filter-client: the JavaScript client of the session-filter server (SPEC.md section 11).
//
// An ES module with no build step. In a browser it uses the global WebSocket; in Node.js
// without one (Node 20) it loads the `ws` package on first use.
//
//   import { connect } from "./session-filter.js";
//   const session = await connect("ws://127.0.0.1:8080/session",
//                                 { principal: "ops", credentials: "secret" });
//   const { count } = await session.clients.count("Desk is 'FX'");
//   await session.clients.close({ filter: "Desk is 'FX' and $Roles hasRoles ['GUEST']" });
//   await session.close();
//
// The API follows Diffusion's JavaScript client where the concepts match (`session.clients`
// is Diffusion's `ClientControl`, `session.messaging` its `Messaging`, `session.lock` its
// session locks, `session.metrics` its `Metrics`).
//
// Targets. The methods that act on "a session or a filter" (`clients.close`, `changeRoles`,
// `setSessionProperties`, `messaging` by filter) take either:
//   - `{ sessionId: "…" }` or `{ filter: "…" }`: explicit, always preferred in programs;
//   - a string: a session id when it is exactly Diffusion's form, two groups of 16 lower-case
//     hex digits joined by `-` (SESSION_ID below), otherwise a filter. A session id is never a
//     valid filter, so the guess cannot take one for the other.
//
// Errors. Every failure rejects with a SessionError carrying `code`, `message` and `data` as
// the server sent them (SPEC 11.1: 103 ACCESS_DENIED has `data.permission`, 106 INVALID_DATA
// has `data.line`, `column`, `offset`, `message` for a bad filter, …). Errors made on this side
// use Diffusion's numbers too: 100 COMMUNICATION_FAILURE (the connection was lost before the
// answer), 101 SESSION_CLOSED (the session is closed), 102 REQUEST_TIME_OUT (a `timeout`
// option passed).
//
// Reconnection. When the connection drops without the server closing the session, the
// session emits `disconnect`, and (with `reconnect: true`, the default) opens new connections
// with its token, backing off from 100 ms to 5 s, for as long as the server's
// `reconnect_timeout_ms` allows. On success it emits `reconnect`; listeners and request
// handlers carry on (the server kept them, and delivers what it queued). Requests made while
// disconnected wait for the reconnection; requests in flight when the connection dropped
// reject with 100 (their answers are lost, SPEC 11.3). When the session ends, for any reason,
// it emits `close` once with `{ reason }`.

/** A session id in Diffusion's form: 16 hex digits, `-`, 16 hex digits. */
export const SESSION_ID = /^[0-9a-f]{16}-[0-9a-f]{16}$/;

/** Error codes of SPEC 11.1 (JSON-RPC's own and Diffusion's `ErrorReason` numbers). */
export const ErrorReason = Object.freeze({
  PARSE_ERROR: -32700,
  INVALID_REQUEST: -32600,
  METHOD_NOT_FOUND: -32601,
  INVALID_PARAMS: -32602,
  COMMUNICATION_FAILURE: 100,
  SESSION_CLOSED: 101,
  REQUEST_TIME_OUT: 102,
  ACCESS_DENIED: 103,
  INVALID_DATA: 106,
  NO_SUCH_SESSION: 107,
  UNHANDLED_MESSAGE: 109,
  INCOMPATIBLE_STATE: 111,
  CLUSTER_ROUTING: 112,
  CANCELLED: 120,
  REJECTED_REQUEST: 9003,
});

const REASON_NAMES = Object.fromEntries(Object.entries(ErrorReason).map(([k, v]) => [v, k]));

/** An error answered by the server, or made by the client, with the codes of SPEC 11.1. */
export class SessionError extends Error {
  constructor(code, message, data, method) {
    super(message);
    this.name = "SessionError";
    /** The numeric code (see ErrorReason). */
    this.code = code;
    /** The error's `data`, as the server sent it (undefined when there is none). */
    this.data = data;
    /** The method whose request failed, when known. */
    this.method = method;
  }

  /** The name of the code (`ACCESS_DENIED`, …), or undefined for an unknown code. */
  get reason() {
    return REASON_NAMES[this.code];
  }

  /** For 103: the missing permission the server named. */
  get permission() {
    return this.data && typeof this.data === "object" ? this.data.permission : undefined;
  }
}

let WebSocketImpl = globalThis.WebSocket;

async function webSocketClass() {
  if (!WebSocketImpl) {
    try {
      const module = await import("ws");
      WebSocketImpl = module.WebSocket || module.default;
    } catch (e) {
      throw new SessionError(
        ErrorReason.COMMUNICATION_FAILURE,
        `no WebSocket: this runtime has no global WebSocket and the \`ws\` package cannot be loaded (${e.message})`,
      );
    }
  }
  return WebSocketImpl;
}

const inBrowser = typeof window !== "undefined" && typeof document !== "undefined";

/** Opens a WebSocket to `url`; resolves once it is open. */
async function openSocket(url) {
  const Impl = await webSocketClass();
  return new Promise((resolve, reject) => {
    let ws;
    try {
      ws = new Impl(url);
    } catch (e) {
      reject(new SessionError(ErrorReason.COMMUNICATION_FAILURE, `cannot connect to ${url}: ${e.message}`));
      return;
    }
    const opened = () => {
      ws.removeEventListener("error", failed);
      ws.removeEventListener("close", failed);
      resolve(ws);
    };
    const failed = (event) => {
      ws.removeEventListener("open", opened);
      ws.removeEventListener("error", failed);
      ws.removeEventListener("close", failed);
      const why = event && event.message ? `: ${event.message}` : "";
      reject(new SessionError(ErrorReason.COMMUNICATION_FAILURE, `cannot connect to ${url}${why}`));
    };
    ws.addEventListener("open", opened);
    ws.addEventListener("error", failed);
    ws.addEventListener("close", failed);
  });
}

/** `{session_id}` or `{filter}` for a target given as an object or a string. */
export function toTarget(target) {
  if (typeof target === "string") {
    return SESSION_ID.test(target) ? { session_id: target } : { filter: target };
  }
  if (target && typeof target === "object") {
    const hasId = target.sessionId !== undefined && target.sessionId !== null;
    const hasFilter = target.filter !== undefined && target.filter !== null;
    if (hasId && !hasFilter) return { session_id: target.sessionId };
    if (hasFilter && !hasId) return { filter: target.filter };
  }
  throw new SessionError(
    ErrorReason.INVALID_PARAMS,
    "a target is a session id string, a filter string, {sessionId} or {filter}",
  );
}

/** The roles of a roles string such as `"OPS","CLIENT"` (`$Roles`), as an array. */
export function parseRoles(roles) {
  const out = [];
  const quoted = /"((?:[^"\\]|\\.)*)"/g;
  for (const match of String(roles ?? "").matchAll(quoted)) out.push(match[1].replace(/\\(.)/g, "$1"));
  return out;
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Drops the keys whose value is undefined or null (SPEC 11.1: null means absent). */
function compact(object) {
  const out = {};
  for (const [key, value] of Object.entries(object)) {
    if (value !== undefined && value !== null) out[key] = value;
  }
  return out;
}

/** A listener event as the client hands it on: the notification with `sessionId` added. */
function toEvent(params) {
  return {
    listener: params.listener,
    sessionId: params.session_id,
    event: params.event,
    state: params.state,
    properties: params.properties || {},
    changed: params.changed,
    reason: params.reason,
  };
}

/** What `addSessionEventListener` returns: the server's listener id and a way to stop it. */
class SessionEventListenerRegistration {
  constructor(session, id) {
    this.session = session;
    this.id = id;
    this.closed = false;
  }

  /** Stops the listener (`clients.unlisten`); no more events arrive after this resolves. */
  async close() {
    if (this.closed) return;
    this.closed = true;
    const entry = this.session._listeners.get(this.id);
    this.session._listeners.delete(this.id);
    if (this.session.isClosed) return;
    await this.session._call("clients.unlisten", { listener: this.id });
    if (entry) entry.ended();
  }
}

/** Diffusion's `ClientControl`: count, fetch, close, roles, properties, listeners. */
class ClientControl {
  constructor(session) {
    this.session = session;
  }

  /** Closes a session or every session matching a filter; resolves with the count closed. */
  async close(target) {
    return (await this.session._call("clients.close", toTarget(target))).count;
  }

  /** Removes then adds roles (arrays or Sets of names); resolves with the count changed. */
  async changeRoles(target, remove = [], add = []) {
    const result = await this.session._call("clients.change_roles", {
      ...toTarget(target),
      remove: [...remove],
      add: [...add],
    });
    return result.count;
  }

  /**
   * Sets user properties (a value of null removes the key). By session id: resolves with
   * `{changed: {key: previous or null}}`; by filter: with `{count}` (SPEC 6.1).
   */
  async setSessionProperties(target, properties) {
    return this.session._call("clients.set_properties", { ...toTarget(target), properties });
  }

  /** A session's properties: `keys` (default all) may hold `*F` and `*U`. */
  async getSessionProperties(sessionId, keys) {
    const result = await this.session._call("clients.get_properties", compact({ session_id: sessionId, keys }));
    return result.properties;
  }

  /** How many sessions match a filter. */
  async count(filter) {
    return (await this.session._call("clients.count", { filter })).count;
  }

  /**
   * One page of the matching sessions: `{total, sessions: [{id, properties}]}` (SPEC 6.2).
   * Options: `properties` (keys, `*F`/`*U`, or "all"), `orderBy`, `descending`, `offset`,
   * `limit` (default 100, at most 10 000).
   */
  async fetch(filter, options = {}) {
    return this.session._call(
      "clients.fetch",
      compact({
        filter,
        properties: options.properties,
        order_by: options.orderBy ?? options.order_by,
        descending: options.descending,
        offset: options.offset,
        limit: options.limit,
      }),
    );
  }

  /**
   * Listens to the sessions matching `filter` (default `all`): first an `open` event for each
   * session that matches now (the snapshot), then `open`, `update`, `left` and `close` events
   * as they happen (SPEC 11.5). `listener` is a function of the event, or an object with
   * `onSessionEvent(event)` and optionally `onClose()` (called once the listener ends).
   * An event is `{listener, sessionId, event, state, properties, changed?, reason?}`.
   * Resolves with a registration that has `id` and `close()`.
   */
  async addSessionEventListener(listener, options = {}) {
    const onEvent = typeof listener === "function" ? listener : listener && listener.onSessionEvent;
    if (typeof onEvent !== "function") {
      throw new SessionError(ErrorReason.INVALID_PARAMS, "a listener is a function or has onSessionEvent(event)");
    }
    const onClose = typeof listener === "object" && typeof listener.onClose === "function" ? () => listener.onClose() : () => {};
    const session = this.session;
    let registration;
    await session._call(
      "clients.listen",
      compact({ filter: options.filter, properties: options.properties, after: options.after }),
      {
        // Registered as the answer is read, before the snapshot's notifications that follow it.
        onResult(result) {
          registration = new SessionEventListenerRegistration(session, result.listener);
          session._listeners.set(result.listener, {
            event(params) {
              try {
                onEvent.call(listener, toEvent(params));
              } catch (e) {
                session._emit("error", e);
              }
            },
            ended: onClose,
          });
        },
      },
    );
    return registration;
  }
}

/** A lock this session owns (SPEC 11.6). `sequence` is the fencing token of the grant. */
class SessionLock {
  constructor(session, result) {
    this.session = session;
    this.name = result.name;
    this.sequence = result.sequence;
    this.scope = result.scope;
    this.released = false;
  }

  /** Releases the lock; resolves true when this session still owned it. */
  async release() {
    this.released = true;
    return (await this.session._call("locks.release", { name: this.name })).released;
  }

  /** Whether `release()` has not been called. (The server may still have released the lock
   * when a `connection`-scoped lock's connection was lost.) */
  isOwned() {
    return !this.released && !this.session.isClosed;
  }
}

/** Diffusion's `Messaging`: request handlers and requests to sessions (SPEC 11.7). */
class Messaging {
  constructor(session) {
    this.session = session;
  }

  /**
   * Accepts requests sent to exactly `path`. `handler` is a function `(request, context)` or
   * an object with `onRequest(request, context)`, returning the response (or a promise of it);
   * a throw or rejection answers with an error whose text is its message. `context` is
   * `{from, path, id}`. Resolves with a registration whose `close()` removes the handler.
   */
  async addRequestHandler(path, handler) {
    const run = typeof handler === "function" ? handler : handler && handler.onRequest;
    if (typeof run !== "function") {
      throw new SessionError(ErrorReason.INVALID_PARAMS, "a request handler is a function or has onRequest(request, context)");
    }
    await this.session._call("messaging.add_handler", { path });
    this.session._handlers.set(path, (request, context) => run.call(handler, request, context));
    const session = this.session;
    return {
      path,
      async close() {
        if (session._handlers.get(path)) session._handlers.delete(path);
        if (!session.isClosed) await session._call("messaging.remove_handler", { path });
      },
    };
  }

  /** Sends a request to one session; resolves with its response (9003 when it answered with
   * an error: `data` is its text; 109 when it has no handler; 102 after `timeout` ms). */
  async sendRequest(sessionId, path, request, options = {}) {
    const params = compact({ session_id: sessionId, path, request, timeout_ms: options.timeout });
    if (params.request === undefined) params.request = null;
    return (await this.session._call("messaging.send", params)).response;
  }

  /**
   * Sends a request to every session matching `filter` that has a handler for `path`.
   * `handler` gets `onResponse(sessionId, response)` and `onResponseError(sessionId, error)`
   * for each answer (both optional), and optionally `onCount(count)` at once. Resolves, after
   * the last answer or the timeout, with `{request, count, responded, failed, timedOut}`.
   */
  async sendRequestToFilter(filter, path, request, handler = {}, options = {}) {
    const session = this.session;
    let done;
    const finished = new Promise((resolve, reject) => (done = { resolve, reject }));
    let count = 0;
    let requestId;
    const params = compact({ filter, path, request, timeout_ms: options.timeout });
    if (params.request === undefined) params.request = null;
    await session._call("messaging.send", params, {
      onResult(result) {
        requestId = result.request;
        count = result.count;
        session._filterRequests.set(requestId, {
          response(p) {
            try {
              if (p.error !== undefined) handler.onResponseError && handler.onResponseError(p.session_id, p.error);
              else handler.onResponse && handler.onResponse(p.session_id, p.response);
            } catch (e) {
              session._emit("error", e);
            }
          },
          done(p) {
            session._filterRequests.delete(requestId);
            done.resolve({ request: requestId, count, responded: p.responded, failed: p.failed, timedOut: p.timed_out });
          },
          lost(error) {
            session._filterRequests.delete(requestId);
            done.reject(error);
          },
        });
      },
    });
    if (handler.onCount) handler.onCount(count);
    return finished;
  }
}

/** Diffusion's `Metrics`: session metric collectors (SPEC 11.9). */
class Metrics {
  constructor(session) {
    this.session = session;
  }

  /** Adds or replaces a collector: `{name, filter, groupBy?, maxGroups?, removeEmpty?, export?}`. */
  async putSessionMetricCollector(collector) {
    await this.session._call(
      "metrics.put_session_collector",
      compact({
        name: collector.name,
        filter: collector.filter,
        group_by: collector.groupBy ?? collector.group_by,
        max_groups: collector.maxGroups ?? collector.max_groups,
        remove_empty: collector.removeEmpty ?? collector.remove_empty,
        export: collector.export ?? collector.exportToPrometheus,
      }),
    );
  }

  /** Removes a collector (an unknown name too). */
  async removeSessionMetricCollector(name) {
    await this.session._call("metrics.remove_session_collector", { name });
  }

  /** Every collector, defaults filled in, as the server lists them (snake_case fields). */
  async listSessionMetricCollectors() {
    return (await this.session._call("metrics.list_session_collectors", {})).collectors;
  }

  /** The live figures: `{collectors: {NAME: {groups, ungrouped}}, server: {…}}`. */
  async fetch(names) {
    return this.session._call("metrics.fetch", compact({ names }));
  }

  /** Short names. */
  put(collector) {
    return this.putSessionMetricCollector(collector);
  }
  remove(name) {
    return this.removeSessionMetricCollector(name);
  }
  list() {
    return this.listSessionMetricCollectors();
  }
}

/** Session locks beyond `session.lock`: list and cancel. */
class Locks {
  constructor(session) {
    this.session = session;
  }

  /** Every held lock: `{NAME: {session_id, server, sequence, scope}}` (needs VIEW_SERVER). */
  async list() {
    return (await this.session._call("locks.list", {})).locks;
  }

  /** Cancels this session's pending acquires of `name`; resolves with how many. */
  async cancel(name) {
    return (await this.session._call("locks.cancel", { name })).cancelled;
  }

  /** Releases `name`; resolves true when this session owned it. */
  async release(name) {
    return (await this.session._call("locks.release", { name })).released;
  }
}

/** Checking filters without running them (console helpers; no permission needed). */
class Filters {
  constructor(session) {
    this.session = session;
  }

  /** Resolves with the canonical form of `filter`, or rejects with 106 and its position. */
  async check(filter) {
    return (await this.session._call("filters.check", { filter })).canonical;
  }

  /** `{program, plan}` of `filter`, or a 106 rejection. */
  async explain(filter) {
    return this.session._call("filters.explain", { filter });
  }
}

const INITIAL_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 5000;

/**
 * A client session. Made by `connect`. `sessionId`, `token` and `properties` are those the
 * server answered to `open` (and to each reconnection).
 */
export class Session {
  constructor(url, options) {
    this.url = url;
    this.options = options;
    this.sessionId = undefined;
    this.token = undefined;
    this.properties = {};
    this.reconnectTimeoutMs = 0;
    /** `connecting`, `active`, `disconnected` or `closed`. */
    this.state = "connecting";
    /** The reason the session closed (`CLOSED_BY_CLIENT`, `CLOSED_BY_CONTROLLER`, …). */
    this.closeReason = undefined;

    this.clients = new ClientControl(this);
    this.messaging = new Messaging(this);
    this.metrics = new Metrics(this);
    this.locks = new Locks(this);
    this.filters = new Filters(this);

    this._ws = null;
    this._nextId = 1;
    this._pending = new Map(); // request id -> {method, resolve, reject, onResult}
    this._waiting = []; // requests made while disconnected: functions to run on reconnection
    this._listeners = new Map(); // listener id -> {event(params), ended()}
    this._handlers = new Map(); // path -> handler(request, context)
    this._filterRequests = new Map(); // messaging request id -> {response, done, lost}
    this._events = new Map(); // event name -> Set of callbacks
    this._closedNotice = undefined; // reason from a `closed` notification
    this._closing = false;
  }

  /** Diffusion's name for `clients`. */
  get clientControl() {
    return this.clients;
  }

  /** Whether the session has ended. */
  get isClosed() {
    return this.state === "closed";
  }

  /** Whether the session's connection is up. */
  get isConnected() {
    return this.state === "active";
  }

  /**
   * Registers `callback` for `disconnect` (the connection was lost), `reconnect` (taken back
   * with the token), `close` (`{reason}`; once, when the session ends) or `error` (a callback
   * of this client threw). Returns the session.
   */
  on(event, callback) {
    if (!this._events.has(event)) this._events.set(event, new Set());
    this._events.get(event).add(callback);
    return this;
  }

  /** Removes a callback registered with `on`. */
  off(event, callback) {
    const set = this._events.get(event);
    if (set) set.delete(callback);
    return this;
  }

  _emit(event, ...args) {
    const set = this._events.get(event);
    if (!set || set.size === 0) {
      if (event === "error" && args[0]) console.error("session-filter client:", args[0]);
      return;
    }
    for (const callback of [...set]) {
      try {
        callback(...args);
      } catch (e) {
        if (event !== "error") this._emit("error", e);
        else console.error("session-filter client:", e);
      }
    }
  }

  /** The caller's permissions: `{global: [...], path: [...]}` (`path` for `path` if given). */
  async permissions(path) {
    return this._call("permissions", compact({ path }));
  }

  /**
   * Acquires the session lock `name` (scope `session`, the default, or `connection`),
   * waiting while another session owns it. Resolves with a SessionLock (`name`, `sequence`,
   * `scope`, `release()`).
   */
  async lock(name, scope) {
    const result = await this._call("locks.acquire", compact({ name, scope }));
    return new SessionLock(this, result);
  }

  /** Closes this session (`CLOSED_BY_CLIENT`); resolves once the connection is closed. */
  async close() {
    if (this.isClosed) return;
    if (this.state !== "active") {
      this._closing = true;
      this._end("CLOSED_BY_CLIENT");
      return;
    }
    this._closing = true;
    const ws = this._ws;
    const socketClosed = new Promise((resolve) => {
      if (ws.readyState === 3) resolve();
      else ws.addEventListener("close", () => resolve());
    });
    try {
      await this._call("close", {});
    } catch (e) {
      // Lost on the way: the session is being closed either way.
    }
    this._closedNotice = this._closedNotice || "CLOSED_BY_CLIENT";
    await Promise.race([socketClosed, sleep(2000)]);
    this._end(this._closedNotice);
  }

  /**
   * Sends any method with its params and resolves with its result (the protocol itself; the
   * methods above are built on it). `options.timeout` (ms) rejects with 102 when no answer
   * came in time (the request still runs on the server).
   */
  call(method, params = {}, options = {}) {
    return this._call(method, params, options);
  }

  _call(method, params, options = {}) {
    if (this.isClosed) {
      return Promise.reject(new SessionError(ErrorReason.SESSION_CLOSED, `the session is closed (${this.closeReason})`, undefined, method));
    }
    return new Promise((resolve, reject) => {
      let timer;
      let done = false;
      const settle = (fn) => (value) => {
        if (timer) clearTimeout(timer);
        done = true;
        fn(value);
      };
      const entry = { method, resolve: settle(resolve), reject: settle(reject), onResult: options.onResult };
      if (options.timeout) {
        timer = setTimeout(() => {
          for (const [id, e] of this._pending) if (e === entry) this._pending.delete(id);
          done = true;
          reject(new SessionError(ErrorReason.REQUEST_TIME_OUT, `no answer to ${method} within ${options.timeout} ms`, undefined, method));
        }, options.timeout);
      }
      const send = () => {
        if (done) return; // timed out while waiting for a reconnection
        const id = this._nextId++;
        this._pending.set(id, entry);
        try {
          this._ws.send(JSON.stringify({ jsonrpc: "2.0", id, method, params }));
        } catch (e) {
          this._pending.delete(id);
          entry.reject(new SessionError(ErrorReason.COMMUNICATION_FAILURE, `cannot send ${method}: ${e.message}`, undefined, method));
        }
      };
      if (this.state === "active" || (this.state === "connecting" && this._ws && method === "open")) send();
      else this._waiting.push({ send, entry });
    });
  }

  /** Opens the session on a fresh connection (`open`, or `open {reconnect}`). */
  async _open(reconnect) {
    const ws = await openSocket(this.url);
    this._attach(ws);
    const params = reconnect
      ? { reconnect: { session_id: this.sessionId, token: this.token } }
      : compact({
          principal: this.options.principal,
          credentials: this.options.credentials,
          properties: this.options.properties,
          client_type: this.options.clientType ?? (inBrowser ? "JAVASCRIPT_BROWSER" : "OTHER"),
        });
    const previous = this.state;
    this.state = "connecting";
    let result;
    try {
      result = await this._call("open", params);
    } catch (e) {
      this.state = previous;
      this._detach(ws);
      throw e;
    }
    this.sessionId = result.session_id;
    this.token = result.token;
    this.properties = result.properties || {};
    this.reconnectTimeoutMs = result.reconnect_timeout_ms;
    this.state = "active";
    return result;
  }

  _attach(ws) {
    this._ws = ws;
    ws.addEventListener("message", (event) => this._receive(ws, event.data));
    ws.addEventListener("close", () => this._lost(ws));
  }

  _detach(ws) {
    if (this._ws === ws) this._ws = null;
    try {
      ws.close();
    } catch (e) {
      // already closed
    }
  }

  _receive(ws, data) {
    if (ws !== this._ws) return;
    let message;
    try {
      message = JSON.parse(typeof data === "string" ? data : String(data));
    } catch (e) {
      return;
    }
    if (!message || typeof message !== "object") return;
    if (message.id !== undefined && message.id !== null && !message.method) {
      const entry = this._pending.get(message.id);
      if (!entry) return;
      this._pending.delete(message.id);
      if (message.error) {
        const { code, message: text, data: detail } = message.error;
        entry.reject(new SessionError(code, text, detail, entry.method));
      } else {
        if (entry.onResult) {
          try {
            entry.onResult(message.result);
          } catch (e) {
            this._emit("error", e);
          }
        }
        entry.resolve(message.result);
      }
      return;
    }
    if (typeof message.method === "string") this._notify(message.method, message.params || {});
  }

  _notify(method, params) {
    switch (method) {
      case "clients.event": {
        const listener = this._listeners.get(params.listener);
        if (listener) listener.event(params);
        break;
      }
      case "closed":
        this._closedNotice = params.reason || "CLOSED";
        break;
      case "messaging.request":
        this._serveRequest(params);
        break;
      case "messaging.response": {
        const request = this._filterRequests.get(params.request);
        if (request) request.response(params);
        break;
      }
      case "messaging.done": {
        const request = this._filterRequests.get(params.request);
        if (request) request.done(params);
        break;
      }
      default:
        this._emit("notification", method, params);
    }
  }

  async _serveRequest(params) {
    const handler = this._handlers.get(params.path);
    let answer;
    if (!handler) {
      answer = { id: params.id, error: `no handler for ${params.path}` };
    } else {
      try {
        const response = await handler(params.request, { from: params.from, path: params.path, id: params.id });
        answer = { id: params.id, response: response === undefined ? null : response };
      } catch (e) {
        answer = { id: params.id, error: e && e.message ? e.message : String(e) };
      }
    }
    if (this.isClosed) return;
    try {
      await this._call("messaging.respond", answer);
    } catch (e) {
      // The session closed, or the request timed out: the answer is dropped either way.
    }
  }

  /** The connection `ws` closed: the session ends, or reconnects. */
  _lost(ws) {
    if (ws !== this._ws) return;
    this._ws = null;
    const lost = new SessionError(ErrorReason.COMMUNICATION_FAILURE, "the connection was lost before the answer");
    for (const entry of this._pending.values()) entry.reject(lost);
    this._pending.clear();
    if (this.state === "connecting") return; // _open reports it
    if (this._closedNotice || this._closing) {
      this._end(this._closedNotice || "CLOSED_BY_CLIENT");
      return;
    }
    if (this.state !== "active") return;
    this.state = "disconnected";
    this._emit("disconnect");
    if (this.options.reconnect === false) {
      this._end("CONNECTION_LOST");
      return;
    }
    this._reconnect();
  }

  async _reconnect() {
    const deadline = Date.now() + (this.reconnectTimeoutMs || 60000);
    let backoff = INITIAL_BACKOFF_MS;
    while (!this.isClosed && !this._closing) {
      try {
        await this._open(true);
        this._emit("reconnect");
        const waiting = this._waiting.splice(0);
        for (const { send } of waiting) send();
        return;
      } catch (e) {
        if (e instanceof SessionError && (e.code === ErrorReason.NO_SUCH_SESSION || e.code === ErrorReason.ACCESS_DENIED)) {
          this._end(e.code === ErrorReason.NO_SUCH_SESSION ? "CONNECTION_LOST" : "ACCESS_DENIED");
          return;
        }
      }
      if (Date.now() + backoff > deadline) break;
      await sleep(backoff);
      backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
    }
    if (!this.isClosed) this._end("CONNECTION_LOST");
  }

  /** The session has ended: fail what waits, end listeners, emit `close` once. */
  _end(reason) {
    if (this.isClosed) return;
    this.state = "closed";
    this.closeReason = reason;
    const error = new SessionError(ErrorReason.SESSION_CLOSED, `the session is closed (${reason})`);
    for (const { entry } of this._waiting.splice(0)) entry.reject(error);
    for (const entry of this._pending.values()) entry.reject(error);
    this._pending.clear();
    for (const request of this._filterRequests.values()) request.lost(error);
    this._filterRequests.clear();
    for (const listener of this._listeners.values()) listener.ended();
    this._listeners.clear();
    this._handlers.clear();
    if (this._ws) this._detach(this._ws);
    this._emit("close", { reason });
  }
}

/**
 * Opens a session on `url` (`ws://HOST:PORT/session`). Options: `principal` (absent or "":
 * anonymous), `credentials`, `properties` (proposed user properties, key → string),
 * `clientType` (default `JAVASCRIPT_BROWSER` in a browser, `OTHER` elsewhere), `reconnect`
 * (default true). Rejects with a SessionError (103 for refused credentials).
 */
export async function connect(url, options = {}) {
  const session = new Session(url, { reconnect: true, ...options });
  await session._open(false);
  return session;
}

/** The session endpoint of the page's own server: `ws(s)://HOST/session`. */
export function sameOriginUrl(location = globalThis.location) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/session`;
}

export default { connect, Session, SessionError, ErrorReason, SESSION_ID, toTarget, sameOriginUrl, parseRoles };
