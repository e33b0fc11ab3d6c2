// Drives the session-filter console in Debian's headless Chromium.
//
// cargo test runs this through cli/tests/browser.rs, which starts the
// servers. By hand:
//   session-filter serve --allow-writes --addr 127.0.0.1:8081 &
//   session-filter serve --churn 200 --demo-sessions 2000 --addr 127.0.0.1:8082 &
//   SERVE_URL=http://127.0.0.1:8081 CHURN_URL=http://127.0.0.1:8082 \
//     SESSION_FILTER_BIN=target/debug/session-filter node test.mjs
//
// SERVE_URL: the default demo population (the one `select` uses), writes
// allowed, no churn. CHURN_URL: churn running, writes not allowed.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const SERVE_URL = need("SERVE_URL");
const CHURN_URL = need("CHURN_URL");
const BIN = need("SESSION_FILTER_BIN");
const SCREENSHOT =
  process.env.SCREENSHOT || fileURLToPath(new URL("./console.png", import.meta.url));
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
// Optional: a server with a large population (--demo-sessions 1000000) to
// measure the round trip of each keystroke on.
const MEASURE_URL = process.env.MEASURE_URL;

function need(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`set ${name} (see the top of ${fileURLToPath(import.meta.url)})`);
    process.exit(2);
  }
  return value;
}

function cli(...args) {
  const out = spawnSync(BIN, args, { encoding: "utf8" });
  return { code: out.status, stdout: out.stdout, stderr: out.stderr };
}

const text = (page, selector) => page.locator(selector).innerText();
const data = (page, selector, key) =>
  page.locator(selector).evaluate((el, key) => el.dataset[key] ?? "", key);

/// Waits until the console shows the answer for exactly this filter text.
async function settle(page) {
  await page.waitForFunction(() => {
    const s = window.sessionFilterConsole;
    return s && s.settled && s.settledFor === document.getElementById("filter").value;
  });
}

async function typeFilter(page, filter) {
  await page.fill("#filter", "");
  await page.locator("#filter").pressSequentially(filter);
  await settle(page);
}

async function firstColumn(page) {
  return page.locator("#sessions tbody tr td:first-child").allInnerTexts();
}

/// Prints the check-and-count round trips of the keystrokes typed so far.
async function reportKeystrokes(page, label = "") {
  const timings = await page.evaluate(() => window.sessionFilterConsole.timings.splice(0));
  const ms = timings.map((t) => t.ms).sort((a, b) => a - b);
  const valid = timings.filter((t) => t.valid).map((t) => t.ms).sort((a, b) => a - b);
  const stats = (v) => (v.length ? `median ${v[v.length >> 1].toFixed(1)} ms, max ${v[v.length - 1].toFixed(1)} ms` : "-");
  console.log(
    `   ${label}${ms.length} keystrokes over ${await data(page, "#store-size", "count")} sessions, ` +
      `check and count round trip: ${stats(ms)}; ${valid.length} valid filters: ${stats(valid)}`,
  );
  return ms;
}

const steps = [];
async function step(name, body) {
  const started = Date.now();
  await body();
  steps.push(name);
  console.log(`ok - ${name} (${Date.now() - started} ms)`);
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
  ],
});
let failed = false;
try {
  const context = await browser.newContext({ viewport: { width: 1440, height: 960 } });
  const page = await context.newPage();
  page.setDefaultTimeout(20_000);
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  // Bad filters are answered with 400s, which Chromium logs; nothing else may be.
  page.on("console", (m) => {
    if (m.type() === "error" && !/status of 400/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  page.on("request", (r) => {
    const url = r.url();
    const ours = [SERVE_URL, CHURN_URL, MEASURE_URL].some((base) => base && url.startsWith(base));
    if (!ours) problems.push(`fetched ${url}`);
  });

  await page.goto(SERVE_URL);
  await page.waitForFunction(() => document.getElementById("store-size").dataset.count);
  await settle(page);

  await step("a valid filter shows the CLI's canonical form and count", async () => {
    const filter = "$Country IN ['UK','DE'] And NOT (Tier eq 'gold') or hasRoles{'trader'}";
    await typeFilter(page, filter);
    const check = cli("check", "--", filter);
    assert.equal(check.code, 0);
    assert.equal(await text(page, "#canonical"), check.stdout.trimEnd());
    assert.equal(await page.locator("#error").isHidden(), true);
    const count = cli("select", filter, "--count", "--quiet");
    assert.equal(await data(page, "#count", "count"), count.stdout.trim());
    await reportKeystrokes(page);
  });

  await step("a bad filter shows the CLI's message with the caret under its column", async () => {
    for (const filter of ["Department is", "$Country in ['UK',,'DE']", "a is 'x' and\n  (b ix 'y')"]) {
      await typeFilter(page, filter);
      assert.equal(await page.locator("#error").isVisible(), true);
      assert.equal(await page.locator("#canonical-row").isHidden(), true);
      const check = cli("check", "--", filter);
      assert.equal(check.code, 2);
      const shown = await page.locator("#error").textContent();
      assert.equal(shown, check.stderr.replace(/^error: /, "").trimEnd());
      const column = Number(await data(page, "#error", "column"));
      const [, snippet, caret] = shown.split("\n").slice(-3);
      assert.equal(caret.indexOf("^"), column - 1, `${filter}: caret`);
      // On screen: the caret's left edge lines up with that column's character.
      const [charX, caretX] = await page.locator("#error").evaluate((el, column) => {
        const node = el.firstChild;
        const lines = node.textContent.split("\n");
        const caretLine = lines.length - 1;
        const start = (line) => lines.slice(0, line).reduce((n, l) => n + l.length + 1, 0);
        const x = (offset) => {
          const range = document.createRange();
          range.setStart(node, offset);
          range.setEnd(node, offset + 1);
          return range.getBoundingClientRect().left;
        };
        return [x(start(caretLine - 1) + column - 1), x(start(caretLine) + column - 1)];
      }, column);
      assert.ok(Math.abs(charX - caretX) < 1, `${filter}: caret at ${caretX}px, column at ${charX}px`);
      assert.ok(snippet.length >= column - 1);
    }
  });

  await step("the table pages and sorts as the CLI selects", async () => {
    const filter = "Tier is 'gold'";
    await typeFilter(page, filter);
    const page1 = cli("select", filter, "--sort", "$SessionId", "--limit", "20", "--quiet");
    assert.deepEqual(await firstColumn(page), page1.stdout.trim().split("\n"));
    const total = Number(await data(page, "#count", "count"));
    assert.equal(await text(page, "#page-info"), `1–20 of ${total.toLocaleString("en-US")}`);
    assert.equal(await page.isDisabled("#prev"), true);

    await page.click("#next");
    await page.waitForFunction(() => document.getElementById("page-info").textContent.startsWith("21–40"));
    const page2 = cli("select", filter, "--sort", "$SessionId", "--offset", "20", "--limit", "20", "--quiet");
    assert.deepEqual(await firstColumn(page), page2.stdout.trim().split("\n"));
    await page.click("#prev");
    await page.waitForFunction(() => document.getElementById("page-info").textContent.startsWith("1–20"));

    // Sort by a column, then the other way.
    const header = page.locator("#sessions th", { hasText: "$Principal" });
    await header.click();
    await page.waitForFunction(() => document.querySelector("th.sorted")?.dataset.key === "$Principal");
    await header.click();
    await page.waitForFunction(() => document.querySelector("th.sorted")?.textContent.endsWith("▼"));
    await settle(page);
    const sorted = cli("select", filter, "--sort", "$Principal", "--desc", "--limit", "20", "--quiet");
    assert.deepEqual(await firstColumn(page), sorted.stdout.trim().split("\n"));
    const principals = await page.locator("#sessions tbody tr td:nth-child(2)").allInnerTexts();
    assert.deepEqual(principals, [...principals].sort().reverse());
  });

  await step("the program and plan are shown", async () => {
    await page.locator("#explain-panel summary").click();
    await page.waitForFunction(() => document.getElementById("plan").textContent.startsWith("plan:"));
    assert.match(await text(page, "#program"), /^entry 0\n0: Tier is "gold" \? MATCH : FAIL/);
  });

  await step("a confirmed bulk close drops the count", async () => {
    const filter = "$Country is 'UK'";
    await typeFilter(page, filter);
    const before = Number(await data(page, "#count", "count"));
    const size = Number(await data(page, "#store-size", "count"));
    assert.ok(before > 0);
    assert.equal(await page.isDisabled("#action-close"), false);
    await page.click("#action-close");
    assert.equal(await page.locator("#confirm-box").isVisible(), true);
    assert.match(await text(page, "#confirm-text"), new RegExp(`Close the ${before} sessions matching`));
    // Cancel first: nothing happens.
    await page.click("#cancel");
    assert.equal(await page.locator("#confirm-box").isHidden(), true);
    assert.equal(Number(await data(page, "#count", "count")), before);
    await page.click("#action-close");
    await page.click("#confirm");
    await page.waitForFunction(() => document.getElementById("count").dataset.count === "0");
    await page.waitForFunction(
      (n) => document.getElementById("store-size").dataset.count === String(n),
      size - before,
    );
    assert.equal(await text(page, "#action-result"), `Closed ${before} sessions.`);
  });

  await step("a confirmation sends the very filter whose form and count it shows", async () => {
    const shown = "$Country is 'DE' and Tier is 'gold'";
    await typeFilter(page, shown);
    const canonical = await text(page, "#canonical");
    const count = Number(await data(page, "#count", "count"));
    assert.ok(count > 0);
    // The next text's answer is slow to come: the console still shows the
    // form and count of the one before while the box holds the new text.
    const held = [];
    await page.route("**/api/check", (route) => held.push(route));
    await page.fill("#filter", "all");
    await page.waitForFunction(() => !window.sessionFilterConsole.settled);
    assert.equal(await text(page, "#canonical"), canonical);
    await page.click("#action-close");
    const question = await text(page, "#confirm-text");
    assert.ok(question.includes(`Close the ${count} sessions matching ${canonical}?`), question);
    const resultBefore = await page.locator("#action-result").textContent();
    const closing = page.waitForRequest("**/api/close");
    await page.click("#confirm");
    const request = await closing;
    assert.deepEqual(request.postDataJSON(), { filter: shown });
    await page.unroute("**/api/check");
    for (const route of held.splice(0)) await route.continue().catch(() => {});
    // The last step's result is still shown until this one's comes.
    await page.waitForFunction(
      (before) => document.getElementById("action-result").textContent !== before,
      resultBefore,
    );
    assert.equal(await text(page, "#action-result"), `Closed ${count} sessions.`);
    await settle(page);
  });

  await step("a watch's count moves while churn runs", async () => {
    await page.goto(CHURN_URL);
    await page.waitForFunction(() => document.getElementById("churn-state").textContent.startsWith("churn"));
    await settle(page);
    // Churn runs without writes: the bulk actions are off.
    assert.equal(await page.isDisabled("#action-close"), true);
    assert.equal(await page.locator("#writes-note").isVisible(), true);
    await typeFilter(page, "Tier is 'gold' and $ClientType in ['JAVA', 'PYTHON']");
    await page.click("#watch-add");
    await typeFilter(page, "hasRoles ['admin']");
    await page.click("#watch-add");
    const watch = page.locator(".watch").first();
    await watch.locator(".watch-count[data-count]").waitFor();
    const start = await data(page, ".watch >> nth=0 >> .watch-count", "count");
    const moved = await page.waitForFunction(
      (start) => {
        const el = document.querySelector(".watch .watch-count");
        const events = document.querySelectorAll(".watch .watch-events li").length;
        return el.dataset.count !== start && events > 0 && el.dataset.count;
      },
      start,
    );
    console.log(`   watched count moved from ${start} to ${await moved.jsonValue()}`);
  });

  await step("a screenshot of the console", async () => {
    await typeFilter(page, "$Country in ['UK', 'DE', 'FR'] and hasRoles ['trader']");
    await page.locator("#explain-panel summary").click();
    await page.waitForFunction(() => document.getElementById("plan").textContent.startsWith("plan:"));
    await page.waitForFunction(() => document.querySelectorAll(".watch-events li").length >= 6);
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    console.log(`   saved ${SCREENSHOT}`);
  });

  if (MEASURE_URL) {
    await step("keystroke latency on a large store", async () => {
      await page.goto(MEASURE_URL);
      await page.waitForFunction(() => document.getElementById("store-size").dataset.count);
      await settle(page);
      for (const filter of [
        "$Principal is 'name42' and hasRoles ['trader']",
        "$Country in ['UK', 'NZ'] and Tier is 'gold' and Department is 'Legal'",
        "$SessionId in ['s000042', 's123456', 's999999']",
        "$ClientIP is '10.1.2.3' or $Principal is 'name7'",
      ]) {
        await page.evaluate(() => window.sessionFilterConsole.timings.splice(0));
        await typeFilter(page, filter);
        await reportKeystrokes(page, `${filter}: ${await data(page, "#count", "count")} matches; `);
      }
    });
  }

  assert.deepEqual(problems, [], "no page errors and nothing fetched from elsewhere");
} catch (e) {
  failed = true;
  console.error(`not ok - after ${steps.length} steps:`, e);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
