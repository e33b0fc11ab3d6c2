// The client against the real server (SPEC 11): every method, errors with their codes,
// listeners' snapshots and events, locks, messaging, metrics, and reconnection after the
// connection drops. Run with `node --test` in clients/js (see test/server.mjs for the binary).
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { connect, ErrorReason, parseRoles, SESSION_ID, SessionError, toTarget } from "../session-filter.js";
import { eventually, Inbox, only, PASSWORD, startRelay, startServer } from "./server.mjs";

let server;
const opened = [];

before(async () => {
  server = await startServer();
});

after(async () => {
  for (const s of opened) if (!s.isClosed) await s.close().catch(() => {});
  await server?.stop();
});

async function ops(options = {}) {
  const s = await connect(options.url ?? server.url, { principal: "ops", credentials: PASSWORD, ...options });
  opened.push(s);
  return s;
}

async function anonymous(desk, options = {}) {
  const s = await connect(options.url ?? server.url, { properties: desk ? { Desk: desk } : {}, ...options });
  opened.push(s);
  return s;
}

/** Resolves with the SessionError `promise` rejects with, checking its code. */
async function refused(promise, code) {
  try {
    const result = await promise;
    assert.fail(`expected error ${code}, got the result ${JSON.stringify(result)}`);
  } catch (e) {
    if (!(e instanceof SessionError)) throw e;
    assert.equal(e.code, code, `expected error ${code}, got ${e.code}: ${e.message}`);
    return e;
  }
}

describe("targets", () => {
  test("a session id string is a session, any other string a filter", () => {
    assert.deepEqual(toTarget("0123456789abcdef-0000000000000001"), { session_id: "0123456789abcdef-0000000000000001" });
    assert.deepEqual(toTarget("Desk is 'FX'"), { filter: "Desk is 'FX'" });
    assert.deepEqual(toTarget("0123456789ABCDEF-0000000000000001"), { filter: "0123456789ABCDEF-0000000000000001" });
    assert.deepEqual(toTarget({ sessionId: "x" }), { session_id: "x" });
    assert.deepEqual(toTarget({ filter: "all" }), { filter: "all" });
    assert.throws(() => toTarget({ sessionId: "x", filter: "all" }), SessionError);
    assert.throws(() => toTarget(42), SessionError);
  });
});

describe("roles strings", () => {
  test("parseRoles reads a roles string", () => {
    assert.deepEqual(parseRoles(String.raw`"OPS","a\"b","c\\d"`), ["OPS", 'a"b', "c\\d"]);
    assert.deepEqual(parseRoles(""), []);
  });
});

describe("opening", () => {
  test("open answers id, token and properties; untrusted proposals are dropped", async () => {
    const s = await connect(server.url, {
      properties: { Desk: "FX", Secret: "x", $Roles: "ADMINISTRATOR" },
      clientType: "JAVASCRIPT_BROWSER",
    });
    opened.push(s);
    assert.match(s.sessionId, SESSION_ID);
    assert.equal(typeof s.token, "string");
    assert.ok(s.token.length >= 16);
    assert.equal(s.properties.$SessionId, s.sessionId);
    assert.equal(s.properties.$Principal, "");
    assert.deepEqual(parseRoles(s.properties.$Roles), ["CLIENT"]);
    assert.equal(s.properties.$ClientType, "JAVASCRIPT_BROWSER");
    assert.equal(s.properties.$ServerName, "js-test");
    assert.equal(s.properties.$Connector, "js");
    assert.equal(s.properties.Desk, "FX");
    assert.equal(s.properties.Secret, undefined);
    assert.equal(s.reconnectTimeoutMs, 30000);
    assert.ok(s.isConnected);
  });

  test("a principal with its password gets its roles", async () => {
    const s = await ops();
    assert.equal(s.properties.$Principal, "ops");
    assert.match(s.properties.$Roles, /OPS/);
  });

  test("a wrong password is refused with 103", async () => {
    const e = await refused(connect(server.url, { principal: "ops", credentials: "wrong" }), ErrorReason.ACCESS_DENIED);
    assert.equal(e.reason, "ACCESS_DENIED");
  });

  test("a bad client type is -32602", async () => {
    await refused(connect(server.url, { clientType: "TOASTER" }), ErrorReason.INVALID_PARAMS);
  });

  test("an unreachable server is 100", async () => {
    await refused(connect("ws://127.0.0.1:1/session"), ErrorReason.COMMUNICATION_FAILURE);
  });
});

describe("permissions and errors", () => {
  test("permissions lists global and path permissions", async () => {
    const s = await ops();
    const granted = await s.permissions("locks/orders");
    assert.deepEqual([...granted.global].sort(), ["CONTROL_SERVER", "MODIFY_SESSION", "REGISTER_HANDLER", "VIEW_SERVER", "VIEW_SESSION"]);
    assert.deepEqual(granted.path, ["ACQUIRE_LOCK"]);
    const anon = await anonymous();
    assert.deepEqual((await anon.permissions()).global, []);
    assert.deepEqual((await anon.permissions("locks/public")).path, ["ACQUIRE_LOCK"]);
  });

  test("a missing permission is 103 naming it", async () => {
    const anon = await anonymous();
    const e = await refused(anon.clients.count("all"), ErrorReason.ACCESS_DENIED);
    assert.equal(e.permission, "VIEW_SESSION");
    const viewer = await connect(server.url, { principal: "viewer", credentials: PASSWORD });
    opened.push(viewer);
    assert.equal(typeof (await viewer.clients.count("all")), "number");
    const e2 = await refused(viewer.clients.close({ filter: "Desk is 'nobody'" }), ErrorReason.ACCESS_DENIED);
    assert.equal(e2.data.permission, "MODIFY_SESSION");
    const e3 = await refused(anon.lock("locks/orders"), ErrorReason.ACCESS_DENIED);
    assert.equal(e3.data.permission, "ACQUIRE_LOCK");
    assert.equal(e3.data.path, "locks/orders");
  });

  test("a bad filter is 106 with its position", async () => {
    const s = await ops();
    // A clause missing its value, at the end of line 2: the two-byte `é` on line 1 makes the
    // byte offset one more than the characters before it.
    const e = await refused(s.clients.count("Desk ne 'Crédit'\n  and Desk is"), ErrorReason.INVALID_DATA);
    assert.deepEqual([e.data.line, e.data.column, e.data.offset], [2, 14, 31]);
    assert.equal(typeof e.data.message, "string");
  });

  test("an unknown method is -32601 and the session carries on", async () => {
    const s = await anonymous();
    await refused(s.call("clients.teleport", { filter: "all" }), ErrorReason.METHOD_NOT_FOUND);
    assert.deepEqual((await s.permissions()).global, []);
  });

  test("an unknown session is 107", async () => {
    const s = await ops();
    await refused(s.clients.getSessionProperties("0123456789abcdef-0123456789abcdef"), ErrorReason.NO_SUCH_SESSION);
    await refused(s.clients.close("0123456789abcdef-0123456789abcdef"), ErrorReason.NO_SUCH_SESSION);
  });
});

describe("client control", () => {
  test("count and fetch a page", async () => {
    const s = await ops();
    assert.equal(s.clientControl, s.clients);
    const [fx, rates, credit] = [await anonymous("FX"), await anonymous("Rates"), await anonymous("Credit")];
    const mine = only(fx, rates, credit);
    assert.equal(await s.clients.count(mine), 3);
    assert.equal(await s.clients.count(`${mine} and Desk in ['FX', 'Rates']`), 2);
    const page = await s.clients.fetch(mine, { properties: ["Desk"], orderBy: "Desk", descending: true, limit: 2 });
    assert.equal(page.total, 3);
    assert.deepEqual(
      page.sessions.map((r) => [r.id, r.properties.Desk]),
      [
        [rates.sessionId, "Rates"],
        [fx.sessionId, "FX"],
      ],
    );
    const next = await s.clients.fetch(mine, { properties: ["Desk"], orderBy: "Desk", descending: true, offset: 2, limit: 2 });
    assert.deepEqual(
      next.sessions.map((r) => r.id),
      [credit.sessionId],
    );
    const bare = await s.clients.fetch(mine);
    assert.equal(bare.sessions.length, 3);
    assert.deepEqual(bare.sessions[0].properties, {});
  });

  test("get and set properties by id and by filter", async () => {
    const s = await ops();
    const target = await anonymous("FX");
    assert.deepEqual(await s.clients.setSessionProperties(target.sessionId, { Desk: "Rates", Note: "checked" }), {
      changed: { Desk: "FX", Note: null },
    });
    assert.deepEqual(await s.clients.getSessionProperties(target.sessionId, ["Desk", "Note"]), { Desk: "Rates", Note: "checked" });
    const all = await s.clients.getSessionProperties(target.sessionId);
    assert.equal(all.$SessionId, target.sessionId);
    const fixed = await s.clients.getSessionProperties(target.sessionId, ["*F"]);
    assert.equal(fixed.Desk, undefined);
    assert.equal(fixed.$Principal, "");
    assert.deepEqual(await s.clients.setSessionProperties({ filter: only(target) }, { Note: null }), { count: 1 });
    assert.deepEqual(await s.clients.getSessionProperties(target.sessionId, ["Note"]), {});
    const e = await refused(s.clients.setSessionProperties({ sessionId: target.sessionId }, { $Country: null }), ErrorReason.INVALID_DATA);
    assert.ok(e.message);
  });

  test("change roles by id and by filter", async () => {
    const s = await ops();
    const target = await anonymous();
    assert.equal(await s.clients.changeRoles(target.sessionId, [], ["TRADER", "AUDITED"]), 1);
    assert.deepEqual(parseRoles((await s.clients.getSessionProperties(target.sessionId, ["$Roles"])).$Roles).sort(), [
      "AUDITED",
      "CLIENT",
      "TRADER",
    ]);
    assert.equal(await s.clients.changeRoles({ filter: `${only(target)} and hasRoles ['TRADER']` }, new Set(["TRADER"]), []), 1);
    assert.deepEqual(parseRoles((await s.clients.getSessionProperties(target.sessionId, ["$Roles"])).$Roles).sort(), ["AUDITED", "CLIENT"]);
    await refused(s.clients.changeRoles(target.sessionId, [], []), ErrorReason.INVALID_PARAMS);
  });

  test("close by id and by filter: the closed sessions are told why", async () => {
    const s = await ops();
    const [a, b, c] = [await anonymous("FX"), await anonymous("FX"), await anonymous("FX")];
    const closes = new Inbox();
    for (const victim of [a, b, c]) victim.on("close", (e) => closes.push({ id: victim.sessionId, ...e }));
    assert.equal(await s.clients.close(a.sessionId), 1);
    assert.equal(await s.clients.close({ filter: only(b, c) }), 2);
    for (const victim of [a, b, c]) {
      const closed = await closes.next((e) => e.id === victim.sessionId);
      assert.equal(closed.reason, "CLOSED_BY_CONTROLLER");
      assert.ok(victim.isClosed);
      assert.equal(victim.closeReason, "CLOSED_BY_CONTROLLER");
    }
    assert.equal(await s.clients.count(only(a, b, c)), 0);
    await refused(a.permissions(), ErrorReason.SESSION_CLOSED);
  });

  test("close by the client itself", async () => {
    const s = await anonymous();
    const closes = new Inbox();
    s.on("close", closes.push);
    const watcher = await ops();
    await s.close();
    assert.equal((await closes.next()).reason, "CLOSED_BY_CLIENT");
    assert.equal(await watcher.clients.count(only(s)), 0);
    await refused(s.clients.count("all"), ErrorReason.SESSION_CLOSED);
  });
});

describe("listeners", () => {
  test("snapshot, then open, update, left and close events", async () => {
    const s = await ops();
    const early = await anonymous("Equities");
    const events = new Inbox();
    const ended = new Inbox();
    const listener = await s.clients.addSessionEventListener(
      { onSessionEvent: events.push, onClose: () => ended.push(true) },
      { filter: "Desk is 'Equities'", properties: ["Desk", "Note"] },
    );
    assert.notEqual(listener.id, undefined);
    const of = (session, kind) => (e) => e.sessionId === session.sessionId && (!kind || e.event === kind);

    const snapshot = await events.next(of(early));
    assert.deepEqual([snapshot.event, snapshot.state, snapshot.properties], ["open", "active", { Desk: "Equities" }]);

    const late = await anonymous("Equities");
    const open = await events.next(of(late));
    assert.deepEqual([open.event, open.state, open.properties], ["open", "active", { Desk: "Equities" }]);

    await s.clients.setSessionProperties(late.sessionId, { Note: "seen" });
    const update = await events.next(of(late, "update"));
    assert.deepEqual(update.changed, { Note: null });
    assert.deepEqual(update.properties, { Desk: "Equities", Note: "seen" });

    await s.clients.setSessionProperties(late.sessionId, { Desk: "FX" });
    const left = await events.next(of(late, "left"));
    assert.equal(left.properties.Desk, "FX");

    await early.close();
    const close = await events.next(of(early, "close"));
    assert.equal(close.reason, "CLOSED_BY_CLIENT");
    assert.equal(close.state, "closed");

    await listener.close();
    await ended.next();
    const after = await anonymous("Equities");
    await s.clients.count(only(after)); // a round trip: any event for it would have come first
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(events.items.filter(of(after)).length, 0, "no event after close()");
  });

  test("after drops sessions that started earlier", async () => {
    const s = await ops();
    const old = await anonymous("Credit");
    await new Promise((r) => setTimeout(r, 5));
    const since = Date.now();
    await new Promise((r) => setTimeout(r, 5));
    const events = new Inbox();
    await s.clients.addSessionEventListener(events.push, { filter: "Desk is 'Credit'", after: since });
    const fresh = await anonymous("Credit");
    await events.next((e) => e.sessionId === fresh.sessionId);
    assert.equal(events.items.filter((e) => e.sessionId === old.sessionId).length, 0);
  });

  test("listening needs REGISTER_HANDLER", async () => {
    const viewer = await connect(server.url, { principal: "viewer", credentials: PASSWORD });
    opened.push(viewer);
    const e = await refused(viewer.clients.addSessionEventListener(() => {}), ErrorReason.ACCESS_DENIED);
    assert.equal(e.permission, "REGISTER_HANDLER");
  });
});

describe("locks", () => {
  test("a held lock makes the next acquire wait; release grants it on", async () => {
    const [owner, waiter] = [await ops(), await ops()];
    const held = await owner.lock("locks/js");
    assert.equal(held.name, "locks/js");
    assert.equal(held.scope, "session");
    assert.equal(typeof held.sequence, "number");
    let granted;
    const waiting = waiter.lock("locks/js", "connection").then((l) => (granted = l));
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(granted, undefined, "granted while held");
    const list = await owner.locks.list();
    assert.equal(list["locks/js"].session_id, owner.sessionId);
    assert.equal(list["locks/js"].server, "js-test");
    assert.equal(await held.release(), true);
    const second = await waiting;
    assert.ok(second.sequence > held.sequence);
    assert.equal(second.scope, "connection");
    assert.equal(await held.release(), false);
    assert.equal(await second.release(), true);
  });

  test("cancel answers the pending acquire with 120", async () => {
    const [owner, waiter] = [await ops(), await ops()];
    const held = await owner.lock("locks/cancel");
    const waiting = refused(waiter.lock("locks/cancel"), ErrorReason.CANCELLED);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(await waiter.locks.cancel("locks/cancel"), 1);
    await waiting;
    await held.release();
  });

  test("a call's timeout option rejects with 102 while the request waits", async () => {
    const [owner, waiter] = [await ops(), await ops()];
    const held = await owner.lock("locks/timeout");
    await refused(waiter.call("locks.acquire", { name: "locks/timeout" }, { timeout: 150 }), ErrorReason.REQUEST_TIME_OUT);
    assert.equal(await waiter.locks.cancel("locks/timeout"), 1); // it still waited on the server
    await held.release();
  });

  test("locks.list needs VIEW_SERVER", async () => {
    const anon = await anonymous();
    const e = await refused(anon.locks.list(), ErrorReason.ACCESS_DENIED);
    assert.equal(e.permission, "VIEW_SERVER");
  });
});

describe("messaging", () => {
  test("a request to one session: response, error, no handler", async () => {
    const sender = await ops();
    const target = await anonymous("Rates");
    const seen = [];
    const handler = await target.messaging.addRequestHandler("alerts/js", async (request, context) => {
      seen.push(context.from);
      if (request.fail) throw new Error("busy");
      return { ack: request.n };
    });
    assert.deepEqual(await sender.messaging.sendRequest(target.sessionId, "alerts/js", { n: 7 }), { ack: 7 });
    assert.deepEqual(seen, [sender.sessionId]);
    const rejected = await refused(sender.messaging.sendRequest(target.sessionId, "alerts/js", { fail: true }), ErrorReason.REJECTED_REQUEST);
    assert.equal(rejected.data, "busy");
    await refused(sender.messaging.sendRequest(target.sessionId, "alerts/other", {}), ErrorReason.UNHANDLED_MESSAGE);
    await handler.close();
    await refused(sender.messaging.sendRequest(target.sessionId, "alerts/js", {}), ErrorReason.UNHANDLED_MESSAGE);
    const e = await refused(target.messaging.sendRequest(sender.sessionId, "alerts/js", {}), ErrorReason.ACCESS_DENIED);
    assert.equal(e.permission, "SEND_TO_SESSION");
  });

  test("a request that is not answered in time is 102", async () => {
    const sender = await ops();
    const target = await anonymous();
    await target.messaging.addRequestHandler("alerts/slow", () => new Promise(() => {}));
    await refused(sender.messaging.sendRequest(target.sessionId, "alerts/slow", 1, { timeout: 200 }), ErrorReason.REQUEST_TIME_OUT);
  });

  test("a request to a filter: each answer, then the summary", async () => {
    const sender = await ops();
    const [agrees, refuses, deaf] = [await anonymous("Rates"), await anonymous("Rates"), await anonymous("Rates")];
    await agrees.messaging.addRequestHandler("alerts/filter", () => ({ ack: true }));
    await refuses.messaging.addRequestHandler("alerts/filter", {
      onRequest() {
        throw new Error("no");
      },
    });
    const responses = {};
    const errors = {};
    let counted;
    const summary = await sender.messaging.sendRequestToFilter(
      only(agrees, refuses, deaf),
      "alerts/filter",
      { alert: "disk full" },
      {
        onResponse: (id, r) => (responses[id] = r),
        onResponseError: (id, e) => (errors[id] = e),
        onCount: (n) => (counted = n),
      },
      { timeout: 3000 },
    );
    assert.equal(counted, 2);
    assert.deepEqual(responses, { [agrees.sessionId]: { ack: true } });
    assert.deepEqual(errors, { [refuses.sessionId]: "no" });
    assert.deepEqual([summary.count, summary.responded, summary.failed, summary.timedOut], [2, 1, 1, 0]);
    const none = await sender.messaging.sendRequestToFilter("Desk is 'nobody at all'", "alerts/filter", null);
    assert.deepEqual([none.count, none.responded, none.failed, none.timedOut], [0, 0, 0, 0]);
  });
});

describe("metrics", () => {
  test("put, list, fetch and remove a session metric collector", async (t) => {
    const s = await ops();
    const [fx1, fx2, rates] = [await anonymous("FX"), await anonymous("FX"), await anonymous("Rates")];
    try {
      await s.metrics.putSessionMetricCollector({ name: "js_desks", filter: only(fx1, fx2, rates), groupBy: ["Desk"] });
    } catch (e) {
      if (e instanceof SessionError && e.code === ErrorReason.METHOD_NOT_FOUND) {
        t.skip("the server has no metrics methods yet (SPEC 11.9)");
        return;
      }
      throw e;
    }
    const listed = (await s.metrics.list()).find((c) => c.name === "js_desks");
    assert.equal(listed.max_groups, 250);
    assert.deepEqual(listed.group_by, ["Desk"]);
    const figures = async () => {
      const fetched = await s.metrics.fetch(["js_desks"]);
      assert.equal(typeof fetched.server.sessions.active, "number");
      const c = fetched.collectors.js_desks;
      return Object.fromEntries(c.groups.map((g) => [g.labels.Desk, [g.sessions, g.opened, g.closed]]));
    };
    assert.deepEqual(await figures(), { FX: [2, 2, 0], Rates: [1, 1, 0] });
    await fx1.close();
    assert.deepEqual(await eventually(figures, (f) => f.FX[0] === 1), { FX: [1, 2, 1], Rates: [1, 1, 0] });
    await s.metrics.removeSessionMetricCollector("js_desks");
    assert.equal((await s.metrics.list()).find((c) => c.name === "js_desks"), undefined);
    const anon = await anonymous();
    assert.equal((await refused(anon.metrics.put({ name: "x", filter: "all" }), ErrorReason.ACCESS_DENIED)).permission, "CONTROL_SERVER");
  });
});

describe("filters", () => {
  test("check answers the canonical form, or 106 with the position", async () => {
    const s = await anonymous();
    const canonical = await s.filters.check("desk   is 'FX'");
    assert.equal(typeof canonical, "string");
    assert.match(canonical, /FX/);
    const e = await refused(s.filters.check("Desk is"), ErrorReason.INVALID_DATA);
    assert.equal(e.data.line, 1);
    const explained = await s.filters.explain("Desk is 'FX'");
    assert.ok("program" in explained && "plan" in explained);
  });
});

describe("reconnection", () => {
  test("after the connection drops: disconnect, reconnect, same session, queued events", async () => {
    const relay = await startRelay(server.port, server.host);
    try {
      const watcher = await ops({ url: relay.url });
      const lifecycle = new Inbox();
      for (const name of ["disconnect", "reconnect", "close"]) watcher.on(name, (e) => lifecycle.push({ name, ...e }));
      const events = new Inbox();
      await watcher.clients.addSessionEventListener(events.push, { filter: "Desk is 'Credit' and Note is 'reconnect'", properties: ["Desk"] });
      const { sessionId, token } = watcher;
      const direct = await ops();
      const states = new Inbox();
      await direct.clients.addSessionEventListener(states.push, { filter: only(watcher) });
      assert.equal((await states.next()).state, "active"); // the snapshot

      relay.drop();
      assert.equal((await lifecycle.next()).name, "disconnect");
      // While it is away: the session is disconnected and still matches; events wait for it.
      await eventually(
        () => direct.clients.fetch(only(watcher), { properties: ["$SessionId"] }).then((p) => p.total),
        (n) => n === 1,
      );
      const newcomer = await anonymous("Credit");
      await direct.clients.setSessionProperties(newcomer.sessionId, { Note: "reconnect" });
      const asked = watcher.clients.count(only(watcher)); // waits for the reconnection
      assert.equal((await lifecycle.next()).name, "reconnect");
      assert.equal(watcher.sessionId, sessionId);
      assert.equal(watcher.token, token);
      assert.equal(await asked, 1);
      const event = await events.next((e) => e.sessionId === newcomer.sessionId);
      assert.equal(event.event, "open");
      assert.equal(event.properties.Desk, "Credit");
      assert.ok(watcher.isConnected);
      // Another session's listener saw it go and come back.
      const gone = await states.next((e) => e.event === "update");
      assert.equal(gone.state, "disconnected");
      const back = await states.next((e) => e.event === "update");
      assert.equal(back.state, "reconnected");
      await watcher.close();
      assert.equal((await lifecycle.next()).reason, "CLOSED_BY_CLIENT");
    } finally {
      await relay.close();
    }
  });

  test("requests in flight when the connection drops reject with 100", async () => {
    const relay = await startRelay(server.port, server.host);
    try {
      const [owner, waiter] = [await ops(), await ops({ url: relay.url })];
      const held = await owner.lock("locks/inflight");
      const pending = refused(waiter.lock("locks/inflight"), ErrorReason.COMMUNICATION_FAILURE);
      await new Promise((r) => setTimeout(r, 100));
      const back = new Promise((r) => waiter.on("reconnect", r));
      relay.drop();
      await pending;
      await back;
      await held.release();
    } finally {
      await relay.close();
    }
  });

  test("when the server's window passes, the session closes", async () => {
    const short = await startServer({ configText: (await import("./server.mjs")).config({ reconnectTimeoutMs: 300 }) });
    const relay = await startRelay(short.port, short.host);
    try {
      const s = await connect(relay.url, {});
      const closes = new Inbox();
      s.on("close", closes.push);
      await relay.close(); // nothing comes back through it
      const closed = await closes.next(() => true, 5000);
      assert.equal(closed.reason, "CONNECTION_LOST");
      await refused(s.permissions(), ErrorReason.SESSION_CLOSED);
    } finally {
      await relay.close().catch(() => {});
      await short.stop();
    }
  });

  test("reconnect: false closes at the first loss", async () => {
    const relay = await startRelay(server.port, server.host);
    try {
      const s = await connect(relay.url, { reconnect: false });
      const closes = new Inbox();
      s.on("close", closes.push);
      relay.drop();
      assert.equal((await closes.next()).reason, "CONNECTION_LOST");
    } finally {
      await relay.close();
    }
  });
});
