// Starts the real `session-filter server` for the tests: a temporary TOML configuration
// (SPEC 11.4), port 0, and the URL read from `listening on http://HOST:PORT` on stderr.
//
// The binary comes from SESSION_FILTER_BIN (default ../../target/debug/session-filter from
// clients/js, or $CARGO_TARGET_DIR/debug/session-filter when that is set and exists).
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));

export function binary() {
  if (process.env.SESSION_FILTER_BIN) return resolve(process.env.SESSION_FILTER_BIN);
  const local = resolve(HERE, "../../../target/debug/session-filter");
  if (existsSync(local)) return local;
  if (process.env.CARGO_TARGET_DIR) {
    const shared = resolve(process.env.CARGO_TARGET_DIR, "debug/session-filter");
    if (existsSync(shared)) return shared;
  }
  return local;
}

/** The argon2id PHC string of `password`, from `session-filter hash-password`. */
export function hashPassword(password) {
  const out = spawnSync(binary(), ["hash-password"], { input: password, encoding: "utf8" });
  if (out.status !== 0) throw new Error(`${binary()} hash-password failed: ${out.error ? out.error.message : out.stderr}`);
  return out.stdout.trim();
}

export const PASSWORD = "correct horse battery staple";

let cachedHash;
function passwordHash() {
  cachedHash ??= hashPassword(PASSWORD);
  return cachedHash;
}

/** The configuration of the tests: `ops` may do everything, `viewer` only VIEW_SESSION,
 * anonymous sessions are CLIENTs that may take `locks/public` and propose `Desk`. */
export function config({ reconnectTimeoutMs = 30000, extra = "" } = {}) {
  const hash = passwordHash();
  return `
[server]
name = "js-test"
connector = "js"
listen = "127.0.0.1:0"
reconnect_timeout_ms = ${reconnectTimeoutMs}

[anonymous]
allow = true
roles = ["CLIENT"]

[principals.ops]
password_hash = "${hash}"
roles = ["OPS"]

[principals.viewer]
password_hash = "${hash}"
roles = ["VIEWER"]

[roles.CLIENT]
paths = { "locks/public" = ["ACQUIRE_LOCK"] }

[roles.VIEWER]
global = ["VIEW_SESSION"]

[roles.OPS]
global = ["VIEW_SESSION", "MODIFY_SESSION", "REGISTER_HANDLER", "CONTROL_SERVER", "VIEW_SERVER"]
paths = { "locks" = ["ACQUIRE_LOCK"], "alerts" = ["SEND_TO_SESSION"] }
includes = ["CLIENT"]

[[trusted_properties]]
key = "Desk"
values = ["FX", "Rates", "Equities", "Credit"]
${extra}`;
}

const LISTENING = /listening on http:\/\/(\[[0-9A-Fa-f:.]+\]|[^\s:/]+):(\d+)/;

/** A running server; `stop()` ends it. */
export async function startServer({ args = [], configText = config(), timeoutMs = 30000, bin = binary() } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "session-filter-js-"));
  const file = join(dir, "server.toml");
  writeFileSync(file, configText);
  const child = spawn(bin, ["server", "--config", file, ...args], {
    stdio: ["ignore", "ignore", "pipe"],
    detached: true,
  });
  const log = [];
  const address = await new Promise((resolvePromise, reject) => {
    let buffer = "";
    const timer = setTimeout(() => reject(new Error(`no "listening on" within ${timeoutMs} ms:\n${log.join("\n")}`)), timeoutMs);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${bin}: ${e.message}`));
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`the server exited with ${code}:\n${log.join("\n")}`));
    });
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk) => {
      buffer += chunk;
      let newline;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        log.push(line);
        if (log.length > 50) log.shift();
        const found = LISTENING.exec(line);
        if (found) {
          clearTimeout(timer);
          resolvePromise({ host: found[1], port: Number(found[2]) });
        }
      }
    });
  });
  child.removeAllListeners("exit");
  return {
    host: address.host,
    port: address.port,
    http: `http://${address.host}:${address.port}`,
    url: `ws://${address.host}:${address.port}/session`,
    log,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once("exit", r));
        try {
          process.kill(-child.pid, "SIGTERM");
        } catch {
          // gone already
        }
        const timer = setTimeout(() => {
          try {
            process.kill(-child.pid, "SIGKILL");
          } catch {
            // gone already
          }
        }, 3000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A TCP relay in front of the server whose `drop()` cuts every connection through it, as a
 * network failure would (the server sees the connection lost, not a close). */
export async function startRelay(port, host = "127.0.0.1") {
  const sockets = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect(port, host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => {});
    }
    client.pipe(upstream);
    upstream.pipe(client);
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const relayPort = server.address().port;
  return {
    url: `ws://127.0.0.1:${relayPort}/session`,
    drop() {
      for (const s of sockets) s.destroy();
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(r));
    },
  };
}

/** A filter value: single quotes with `\` and `'` escaped (SPEC section 2). */
export function quote(value) {
  return `'${value.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
}

/** A filter matching exactly these sessions. */
export function only(...sessions) {
  return `$SessionId in [${sessions.map((s) => quote(s.sessionId)).join(", ")}]`;
}

/** Resolves with the first value `poll()` returns that passes `ok`, or rejects after `ms`. */
export async function eventually(poll, ok = Boolean, ms = 5000, what = "condition") {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    last = await poll();
    if (ok(last)) return last;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`${what} not reached within ${ms} ms; last: ${JSON.stringify(last)}`);
}

/** A queue of values pushed by callbacks, taken with `next(match)`. */
export class Inbox {
  constructor() {
    this.items = [];
    this.waiters = [];
  }
  push = (item) => {
    this.items.push(item);
    for (const w of this.waiters.splice(0)) w();
  };
  async next(match = () => true, ms = 5000) {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = this.items.findIndex(match);
      if (i >= 0) return this.items.splice(i, 1)[0];
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching item within ${ms} ms; have ${JSON.stringify(this.items).slice(0, 500)}`);
      await new Promise((r) => {
        const timer = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          r();
        });
      });
    }
  }
}
