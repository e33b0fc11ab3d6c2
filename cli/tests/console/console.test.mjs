// The console (clients/js/console) in Debian's headless Chromium, against the real
// `session-filter server`, which this test starts (see clients/js/test/server.mjs).
// cargo test runs it through cli/tests/console.rs. By hand, from this folder:
//   npm ci && (cd ../../../clients/js && npm ci)
//   SESSION_FILTER_BIN=../../../target/debug/session-filter node --test console.test.mjs
// Env: SESSION_FILTER_BIN (the binary), CHROMIUM (default /usr/bin/chromium), SCREENSHOT
// (where to write the screenshot; default console.png here, not committed; the README's is
// docs/console.png), and
// MEASURE_SESSIONS (for instance 1000000: also measure each keystroke's check-and-count round
// trip over a server started with `--demo MEASURE_SESSIONS`; MEASURE_BIN may name a release
// build for it).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { dirname, resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

import { connect } from "../../../clients/js/session-filter.js";
import { binary, config, eventually, PASSWORD, startServer } from "../../../clients/js/test/server.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const SCREENSHOT = process.env.SCREENSHOT || resolve(HERE, "console.png");
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

function cli(...args) {
  const out = spawnSync(binary(), args, { encoding: "utf8" });
  return { code: out.status, stdout: out.stdout, stderr: out.stderr };
}

/** `session-filter client count FILTER` as ops: the count the CLI's client gets. */
function cliCount(url, filter) {
  const out = spawnSync(binary(), ["client", "--url", url, "--principal", "ops", "--password-stdin", "count", "--", filter], {
    encoding: "utf8",
    input: PASSWORD,
  });
  assert.equal(out.status, 0, `client count: ${out.stderr}`);
  return JSON.parse(out.stdout.trim().split("\n").pop()).count;
}

/** Waits until the console shows the answer for exactly the text in the filter box. */
async function settle(page) {
  await page.waitForFunction(() => {
    const probe = window.sessionFilterConsole;
    return probe && probe.settled && probe.settledFor === document.getElementById("filter").value;
  });
}

async function typeFilter(page, filter) {
  await page.fill("#filter", "");
  await page.locator("#filter").pressSequentially(filter);
  await settle(page);
}

const data = (page, selector, key) => page.locator(selector).evaluate((el, key) => el.dataset[key] ?? "", key);
const firstColumn = (page) => page.locator("#sessions tbody tr td:first-child").allInnerTexts();

async function logIn(page, url, principal, password) {
  await page.goto(url);
  await page.fill("#principal", principal);
  await page.fill("#password", password);
  await page.click("#login");
  await page.waitForFunction(() => window.sessionFilterConsole && window.sessionFilterConsole.loggedIn);
}

/** The check-and-count round trips of the keystrokes typed since the last call. */
async function keystrokes(page) {
  const timings = await page.evaluate(() => window.sessionFilterConsole.timings.splice(0));
  if (process.env.MEASURE_VERBOSE) {
    for (const t of [...timings].sort((a, b) => b.ms - a.ms).slice(0, 8)) console.log(`#   ${t.ms.toFixed(1)} ms ${t.valid ? "valid" : "invalid"} ${JSON.stringify(t.filter)}`);
  }
  const ms = (list) => list.map((t) => t.ms).sort((a, b) => a - b);
  const stats = (v) =>
    v.length ? `median ${v[v.length >> 1].toFixed(1)} ms, p90 ${v[Math.floor(v.length * 0.9)].toFixed(1)} ms, max ${v[v.length - 1].toFixed(1)} ms` : "-";
  return { all: ms(timings), valid: ms(timings.filter((t) => t.valid)), stats };
}

let browser;
let server; // the default population, no churn
let churn; // a small population with churn, for the listeners
const clients = [];

before(async () => {
  browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS });
  [server, churn] = await Promise.all([
    startServer({ args: ["--demo", "5000"] }),
    startServer({ args: ["--demo", "2000", "--churn", "300"] }),
  ]);
});

after(async () => {
  for (const c of clients) if (!c.isClosed) await c.close().catch(() => {});
  await browser?.close();
  await Promise.all([server?.stop(), churn?.stop()]);
});

async function newPage() {
  const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" && !/favicon|404/.test(m.text())) problems.push(`console error: ${m.text()}`);
  });
  page.problems = problems;
  return page;
}

async function ops(url) {
  const s = await connect(url, { principal: "ops", credentials: PASSWORD });
  clients.push(s);
  return s;
}

describe("the console", () => {
  test("an anonymous login sees the view refused with the missing permission named", async () => {
    const page = await newPage();
    await logIn(page, server.http, "", "");
    assert.equal(await page.innerText("#who"), "anonymous");
    await settle(page);
    const refusal = await page.innerText("#view-error");
    assert.match(refusal, /VIEW_SESSION/);
    assert.equal(await page.innerText("#count"), "–");
    assert.match(await page.innerText("#actions-note"), /MODIFY_SESSION/);
    assert.equal(await page.isDisabled("#action-close"), true);
    assert.match(await page.innerText("#locks-note"), /VIEW_SERVER/);
    assert.deepEqual(page.problems, []);
    await page.close();
  });

  test("a wrong password is refused at login", async () => {
    const page = await newPage();
    await page.goto(server.http);
    await page.fill("#principal", "ops");
    await page.fill("#password", "not the password");
    await page.click("#login");
    await page.waitForSelector("#login-error:not([hidden])");
    assert.match(await page.innerText("#login-error"), /refused/i);
    assert.equal(await page.isHidden("#app"), true);
    await page.close();
  });

  describe("logged in as a principal with VIEW_SESSION and MODIFY_SESSION", () => {
    let page;
    let controller;
    before(async () => {
      page = await newPage();
      await logIn(page, server.http, "ops", PASSWORD);
      await settle(page);
      controller = await ops(server.url);
    });
    after(async () => {
      assert.deepEqual(page.problems, []);
      await page.close();
    });

    test("shows the principal, roles and permissions", async () => {
      assert.equal(await page.innerText("#who"), "principal ops");
      assert.match(await page.innerText("#roles"), /OPS/);
      const permissions = await page.innerText("#permissions");
      for (const p of ["VIEW_SESSION", "MODIFY_SESSION", "REGISTER_HANDLER"]) assert.match(permissions, new RegExp(p));
    });

    test("a valid filter shows the canonical form of `check` and the count of `client count`", async () => {
      for (const filter of ["$Country IN ['UK','DE'] And NOT (Tier eq 'gold') or hasRoles ['trader']", "Tier is 'gold' or Department is 'Sales'", "$ClientType is 'MQTT'"]) {
        // Filters only the demo sessions match: the CLI's own session does not count.
        await typeFilter(page, filter);
        const check = cli("check", "--", filter);
        assert.equal(check.code, 0, check.stderr);
        assert.equal(await page.innerText("#canonical"), check.stdout.trimEnd());
        assert.equal(await page.isHidden("#error"), true);
        const shown = Number(await data(page, "#count", "count"));
        assert.equal(shown, cliCount(server.url, filter), `${filter}: session-filter client count`);
        assert.equal(shown, await controller.clients.count(filter), `${filter}: clients.count`);
      }
    });

    test("a bad filter shows the message with the caret under its column", async () => {
      for (const filter of ["Department is", "$Country in ['UK',,'DE']", "a is 'x' and\n  (b ix 'y')", "Desk ne 'Crédit'\n  and Desk matches 'F(X'"]) {
        await typeFilter(page, filter);
        assert.equal(await page.isVisible("#error"), true, filter);
        assert.equal(await page.isHidden("#canonical-row"), true);
        assert.equal(await page.innerText("#count"), "–");
        const shown = await page.locator("#error").textContent();
        const column = Number(await data(page, "#error", "column"));
        const lines = shown.split("\n");
        const caretLine = lines[lines.length - 1];
        assert.equal(Array.from(caretLine).indexOf("^"), column - 1, `${filter}: caret`);
        const check = cli("check", "--", filter);
        if (check.code === 2 && !/regex|regular/i.test(shown)) {
          // The same message and position as the CLI's checker.
          assert.equal(shown, check.stderr.replace(/^error: /, "").trimEnd(), filter);
        }
        // On screen: the caret's left edge lines up with that column's character.
        const [charX, caretX] = await page.locator("#error").evaluate((el, column) => {
          const node = el.firstChild;
          const all = node.textContent.split("\n");
          const start = (line) => all.slice(0, line).reduce((n, l) => n + l.length + 1, 0);
          const x = (offset) => {
            const range = document.createRange();
            range.setStart(node, offset);
            range.setEnd(node, offset + 1);
            return range.getBoundingClientRect().left;
          };
          const codeUnits = (line, col) => Array.from(all[line]).slice(0, col - 1).join("").length;
          const last = all.length - 1;
          return [x(start(last - 1) + codeUnits(last - 1, column)), x(start(last) + codeUnits(last, column))];
        }, column);
        assert.ok(Math.abs(charX - caretX) < 1, `${filter}: caret at ${caretX}px, column at ${charX}px`);
      }
    });

    test("the table pages and sorts as clients.fetch answers", async () => {
      const filter = "all";
      await typeFilter(page, filter);
      const total = await controller.clients.count(filter);
      assert.ok(total > 40, `${total} sessions`);
      const ids = async (options) => (await controller.clients.fetch(filter, { limit: 20, ...options })).sessions.map((s) => s.id);
      assert.deepEqual(await firstColumn(page), await ids({}));
      assert.equal(await page.innerText("#page-info"), `1–20 of ${total.toLocaleString("en-US")}`);
      assert.equal(await page.isDisabled("#prev"), true);

      await page.click("#next");
      await page.waitForFunction(() => document.getElementById("page-info").textContent.startsWith("21–40"));
      assert.deepEqual(await firstColumn(page), await ids({ offset: 20 }));
      await page.click("#prev");
      await page.waitForFunction(() => document.getElementById("page-info").textContent.startsWith("1–20"));

      const header = page.locator("#sessions th", { hasText: "$Principal" });
      await header.click();
      await page.waitForFunction(() => document.querySelector("th.sorted")?.dataset.key === "$Principal");
      await header.click();
      await page.waitForFunction(() => document.querySelector("th.sorted")?.textContent.endsWith("▼"));
      await settle(page);
      assert.deepEqual(await firstColumn(page), await ids({ orderBy: "$Principal", descending: true }));
      const principals = await page.locator("#sessions tbody tr td:nth-child(2)").allInnerTexts();
      assert.deepEqual(principals, [...principals].sort().reverse());
    });

    test("the program and plan are shown", async () => {
      await typeFilter(page, "Tier is 'gold'");
      await page.locator("#explain-panel summary").click();
      await page.waitForFunction(() => document.getElementById("plan").textContent.length > 0);
      assert.match(await page.innerText("#program"), /gold/);
      await page.locator("#explain-panel summary").click();
    });

    test("a confirmed bulk close drops the count and the closed clients are told", async () => {
      const victims = [];
      for (let i = 0; i < 3; i++) {
        const s = await connect(server.url, { properties: { Desk: "Credit" } });
        clients.push(s);
        victims.push(s);
      }
      const reasons = victims.map((s) => new Promise((r) => s.on("close", r)));
      const filter = "Desk is 'Credit'";
      await typeFilter(page, filter);
      assert.equal(await data(page, "#count", "count"), "3");
      await page.getByRole("button", { name: /Close/ }).first().click();
      await page.waitForSelector("#confirm-box:not([hidden])");
      assert.equal(await page.innerText("#confirm-filter"), filter);
      assert.match(await page.innerText("#confirm-text"), /\b3 sessions\b/);
      await page.getByRole("button", { name: /Confirm/ }).click();
      await page.waitForFunction(() => document.getElementById("action-result").dataset.count === "3");
      assert.match(await page.innerText("#action-result"), /Closed 3 sessions/);
      await page.waitForFunction(() => document.getElementById("count").dataset.count === "0");
      for (const reason of reasons) assert.equal((await reason).reason, "CLOSED_BY_CONTROLLER");
      assert.equal(await controller.clients.count(filter), 0);
    });

    test("a confirmed role change and property change act on the matches", async () => {
      const s = await connect(server.url, { properties: { Desk: "Equities" } });
      clients.push(s);
      const filter = `$SessionId is '${s.sessionId}'`;
      await typeFilter(page, filter);
      await page.fill("#roles-add", "AUDITED");
      await page.click("#action-roles");
      await page.waitForSelector("#confirm-box:not([hidden])");
      assert.equal(await page.innerText("#confirm-filter"), filter);
      await page.getByRole("button", { name: /Confirm/ }).click();
      await page.waitForFunction(() => /Changed the roles of 1 session/.test(document.getElementById("action-result").textContent));
      assert.match((await controller.clients.getSessionProperties(s.sessionId, ["$Roles"])).$Roles, /AUDITED/);
      await page.fill("#props-change", "Note=checked");
      await page.click("#action-properties");
      await page.waitForSelector("#confirm-box:not([hidden])");
      await page.getByRole("button", { name: /Confirm/ }).click();
      await page.waitForFunction(() => /Changed the properties of 1 session/.test(document.getElementById("action-result").textContent));
      assert.deepEqual(await controller.clients.getSessionProperties(s.sessionId, ["Note"]), { Note: "checked" });
    });

    test("held locks are listed", async () => {
      const lock = await controller.lock("locks/console");
      await page.waitForFunction(() => document.getElementById("locks").textContent.includes("locks/console"), null, { timeout: 10000 });
      assert.match(await page.innerText("#locks"), new RegExp(controller.sessionId.slice(0, 16)));
      await lock.release();
    });
  });

  test("a listener's count moves under churn; the screenshot", async () => {
    const page = await newPage();
    await logIn(page, churn.http, "ops", PASSWORD);
    await settle(page);
    await typeFilter(page, "all");
    await page.click("#listen-add");
    await page.waitForSelector(".listener-count[data-count]");
    const first = await data(page, ".listener-count", "count");
    await page.waitForFunction(
      (first) => {
        const count = document.querySelector(".listener-count").dataset.count;
        return count !== first && document.querySelectorAll(".listener-events li").length > 2;
      },
      first,
      { timeout: 10000 },
    );
    // The listener's count is the sessions that match, as clients.count says (give or take churn).
    const controller = await ops(churn.url);
    const now = await controller.clients.count("all");
    const shown = Number(await data(page, ".listener-count", "count"));
    assert.ok(Math.abs(now - shown) < 200, `listener ${shown}, count ${now}`);
    await typeFilter(page, "$Country in ['UK', 'DE'] and Tier is 'gold'");
    await page.click("#listen-add");
    await page.waitForFunction(() => document.querySelectorAll(".listener").length === 2);
    await page.waitForTimeout(1500);
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    assert.deepEqual(page.problems, []);
    await page.close();
  });

  test("keystroke latency over a large population", { skip: !process.env.MEASURE_SESSIONS && "set MEASURE_SESSIONS to measure" }, async () => {
    const big = await startServer({
      args: ["--demo", process.env.MEASURE_SESSIONS],
      configText: config(),
      timeoutMs: 600000,
      bin: process.env.MEASURE_BIN || binary(),
    });
    try {
      const page = await newPage();
      await logIn(page, big.http, "ops", PASSWORD);
      await settle(page);
      await keystrokes(page);
      const filters = [
        "$Country is 'UK' and Tier is 'gold' and Department is 'Sales'",
        "$SessionId is 'nobody'",
        "Tier in ['platinum'] and $ClientType is 'IOS'",
        "$Principal is 'user-1234'",
      ];
      for (const filter of filters) {
        // At a quick typist's pace: a keystroke every 100 ms.
        await page.fill("#filter", "");
        await page.locator("#filter").pressSequentially(filter, { delay: 100 });
        await settle(page);
      }
      const { all, valid, stats } = await keystrokes(page);
      const size = await data(page, "#store-size", "count");
      console.log(`# ${all.length} keystrokes over ${size} sessions: check and count ${stats(all)}; the ${valid.length} valid filters: ${stats(valid)}`);
      await page.close();
    } finally {
      await big.stop();
    }
  });
});
