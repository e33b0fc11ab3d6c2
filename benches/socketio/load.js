// The Socket.IO 4 load script: same jobs and counts as the Rust load
// generator (crates/server/examples/load.rs), which starts server.js and
// this script and reads the JSON line this prints. Loopback only; bounded.
"use strict";
const fs = require("fs");
const { io } = require("socket.io-client");

const PORT = Number(process.env.PORT);
const N = Number(process.env.SESSIONS || 1000);
const H = Math.min(Number(process.env.HANDLERS || 0), N);
const SECONDS = Number(process.env.SECONDS || 10);
const SERVER_PID = Number(process.env.SERVER_PID);
const PER_SOURCE = 10000;
const CONCURRENCY = 256;
const url = `http://127.0.0.1:${PORT}`;

const now = () => performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function rssKib(pid) {
  const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) : 0;
}
// CPU time (user + system) of a process in ms (clock ticks of 10 ms).
function cpuMs(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) * 10;
}
function pct(sorted, p) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.round((sorted.length - 1) * p))];
}
function open(i, auth) {
  return new Promise((resolve, reject) => {
    const s = io(url, {
      transports: ["websocket"],
      reconnection: false,
      forceNew: true,
      auth,
      localAddress: `127.0.0.${2 + Math.floor(i / PER_SOURCE)}`,
    });
    s.once("connect", () => resolve(s));
    s.once("connect_error", reject);
  });
}

const closed = { armed: false, count: 0, last: 0 };

async function main() {
  const out = {};
  const admin = await open(0, { admin: true });
  await admin.emitWithAck("gc");
  await sleep(500);
  out.rss_before_kib = rssKib(SERVER_PID);

  const ids = new Array(N);
  let next = 0;
  const t0 = now();
  async function worker() {
    while (next < N) {
      const i = next++;
      const handler = i < H;
      const s = await open(i, { Group: `g${i % 10}`, handler });
      ids[i] = s.id;
      s.on("request", (payload, cb) => cb({ ok: true }));
      s.on("disconnect", () => {
        if (closed.armed) {
          closed.count++;
          closed.last = now();
        }
      });
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const openMs = now() - t0;
  out.opens_per_s = N / (openMs / 1000);
  console.error(`socket.io: opened ${N} in ${(openMs / 1000).toFixed(2)} s`);
  await sleep(3000);
  await admin.emitWithAck("gc");
  await sleep(500);
  out.rss_after_kib = rssKib(SERVER_PID);
  out.bytes_per_session = ((out.rss_after_kib - out.rss_before_kib) * 1024) / N;
  console.error(`socket.io: RSS ${out.rss_before_kib} -> ${out.rss_after_kib} KiB`);

  // A request to every handler, until every ack is in.
  let best = Infinity;
  const cpuSend = cpuMs(SERVER_PID);
  for (let k = 0; k < 3; k++) {
    const t = now();
    const r = await admin.emitWithAck("sendAll", { timeout: 30000, request: { n: 1 } });
    const took = now() - t;
    out.send_filter_recipients = r.responded;
    console.error(`socket.io: sendAll ${JSON.stringify(r)} in ${took.toFixed(1)} ms`);
    best = Math.min(best, took);
  }
  out.send_filter_ms = best;
  out.send_filter_cpu_ms = (cpuMs(SERVER_PID) - cpuSend) / 3;

  // Requests by id, 64 in flight.
  {
    const deadline = now() + Math.min(SECONDS, 5) * 1000;
    const t = now();
    let done = 0;
    let k = 0;
    async function lane() {
      while (now() < deadline) {
        const to = ids[k++ % Math.max(H, 1)];
        const r = await admin.emitWithAck("send", { to, timeout: 10000, request: { n: k } });
        if (r.error) throw new Error(`send by id: ${r.error}`);
        done++;
      }
    }
    await Promise.all(Array.from({ length: 64 }, lane));
    out.send_by_id_per_s = done / ((now() - t) / 1000);
  }

  // Listener latency while 1 000 changes a second run.
  {
    const watcher = await open(0, { admin: true });
    const driver = await open(0, { admin: true });
    await watcher.emitWithAck("watch", { groups: ["g1", "g2"] });
    const sent = new Map();
    const lat = [];
    watcher.on("event", (e) => {
      const t = now();
      const t0 = sent.get(Number(e.value));
      if (t0 !== undefined) {
        sent.delete(Number(e.value));
        lat.push(t - t0);
      }
    });
    let tick = 0;
    let x = 0x2545f491;
    const start = now();
    const cpuListen = cpuMs(SERVER_PID);
    const pending = [];
    await new Promise((resolve) => {
      const timer = setInterval(() => {
        if (now() - start >= SECONDS * 1000) {
          clearInterval(timer);
          return resolve();
        }
        for (let j = 0; j < 10; j++) {
          x ^= x << 13; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
          const i = x % N;
          tick++;
          if (i % 10 === 1 || i % 10 === 2) sent.set(tick, now());
          pending.push(driver.emitWithAck("set", { id: ids[i], key: "Tick", value: String(tick) }));
        }
      }, 10);
    });
    await Promise.all(pending);
    out.listener_rate = tick / ((now() - start) / 1000);
    out.listener_cpu_ms_per_s = (cpuMs(SERVER_PID) - cpuListen) / ((now() - start) / 1000);
    const until = now() + 5000;
    while (sent.size > 0 && now() < until) await sleep(5);
    lat.sort((a, b) => a - b);
    out.listener_samples = lat.length;
    out.listener_p50_ms = pct(lat, 0.5);
    out.listener_p99_ms = pct(lat, 0.99);
    watcher.disconnect();
    driver.disconnect();
  }

  // Close by a predicate selecting 10%.
  {
    let expected = 0;
    for (let i = 0; i < N; i++) if (i % 10 === 9) expected++;
    closed.armed = true;
    const cpuClose = cpuMs(SERVER_PID);
    const t = now();
    out.close_count = await admin.emitWithAck("closeWhere", { key: "Group", value: "g9" });
    const until = now() + 60000;
    while (closed.count < expected && now() < until) await sleep(1);
    out.close_connected = closed.count;
    out.close_ms = closed.last - t;
    await sleep(500);
    out.close_cpu_ms = cpuMs(SERVER_PID) - cpuClose;
  }
  console.log(JSON.stringify(out));
  process.exit(0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
