//! What session metric collectors cost (SPEC 11.9, issue 24): 10 000
//! collectors (per-principal and broad filters, half grouped by `$Country`)
//! over 50 000 sessions while properties change.
//!
//! Figures, each against a baseline measured in the same run:
//! - CPU per change (the writer and the collectors' tasks together) with the
//!   collectors, against the same changes with none (target: at most 3×);
//! - CPU share at a steady 1 000 changes a second, with and without;
//! - the time to render `/metrics` for 10 000 collectors of up to 50 groups
//!   each (target: under 100 ms).
//!
//! `cargo run --release -p session-filter-server --example metrics_bench`
//! (`-- --quick` for a smaller run).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use session_filter::{PropertyChange, SessionStore, StoreOptions};
use session_filter_server::{Config, Server};

const COUNTRIES: usize = 50;
const PRINCIPALS: usize = 1_000;

/// A tiny deterministic generator.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// This process's CPU time, every thread's time on a CPU added up, in
/// nanoseconds (Linux: /proc/self/task/*/schedstat).
fn cpu() -> Duration {
    let mut total = 0u64;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            total += stat
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Duration::from_nanos(total)
}

fn country(i: usize) -> String {
    format!("C{:02}", i % COUNTRIES)
}

fn change(rng: &mut Rng) -> (String, PropertyChange) {
    let id = format!("s{}", rng.below(sessions()));
    let change = match rng.below(3) {
        0 => PropertyChange::new().set("$Country", country(rng.below(COUNTRIES))),
        1 => PropertyChange::new().set("Tier", format!("T{}", rng.below(5))),
        _ => PropertyChange::new().set("Desk", format!("D{}", rng.below(10))),
    };
    (id, change)
}

fn sessions() -> usize {
    if quick() {
        10_000
    } else {
        50_000
    }
}

fn quick() -> bool {
    std::env::args().any(|a| a == "--quick")
}

/// Applies `n` changes as fast as it can; then has the collectors apply
/// every event (a fetch). The CPU time of the whole, per change, less what
/// a fetch costs with nothing to apply (writing its JSON).
async fn burst(server: &Server, store: &SessionStore, n: usize, seed: u64) -> (Duration, Duration) {
    let mut rng = Rng(seed);
    let changes: Vec<_> = (0..n).map(|_| change(&mut rng)).collect();
    let (cpu0, wall0) = (cpu(), Instant::now());
    for (id, change) in &changes {
        store.change_session_properties(id, change).unwrap();
    }
    server.fetch_metrics(json!({})).await.unwrap();
    let (cpu1, wall1) = (cpu(), Instant::now());
    server.fetch_metrics(json!({})).await.unwrap();
    let (cpu2, wall2) = (cpu(), Instant::now());
    let cpu = (cpu1 - cpu0).saturating_sub(cpu2 - cpu1);
    let wall = (wall1 - wall0).saturating_sub(wall2 - wall1);
    (cpu / n as u32, wall / n as u32)
}

/// The median of three bursts (seeds 1 to 3), by CPU.
async fn median3(server: &Server, store: &SessionStore, n: usize) -> (Duration, Duration) {
    let mut runs = Vec::new();
    for seed in 1..=3 {
        runs.push(burst(server, store, n, seed).await);
    }
    runs.sort();
    runs[1]
}

/// `rate` changes a second for `seconds`: the process's CPU share.
async fn steady(server: &Server, store: &SessionStore, rate: u32, seconds: u32, seed: u64) -> f64 {
    let mut rng = Rng(seed);
    // No fetch at the end: the CPU of the changes and of the collectors'
    // drain thread over the same seconds.
    let (cpu0, wall0) = (cpu(), Instant::now());
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let per_tick = (rate / 100) as usize;
    for _ in 0..seconds * 100 {
        tick.tick().await;
        for _ in 0..per_tick {
            let (id, change) = change(&mut rng);
            store.change_session_properties(&id, &change).unwrap();
        }
    }
    let share = (cpu() - cpu0).as_secs_f64() / wall0.elapsed().as_secs_f64();
    server.fetch_metrics(json!({"names": []})).await.unwrap();
    share
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let sessions = sessions();
    let collectors = if quick() { 2_000 } else { 10_000 };
    let changes = if quick() { 5_000 } else { 20_000 };
    let store = Arc::new(SessionStore::with_options(StoreOptions::new()));
    let mut rng = Rng(7);
    for i in 0..sessions {
        let roles = session_filter::roles_to_string([format!("r{}", rng.below(20))]);
        store
            .insert([
                ("$SessionId".to_string(), format!("s{i}")),
                ("$Principal".to_string(), format!("p{}", i % PRINCIPALS)),
                ("$Country".to_string(), country(rng.below(COUNTRIES))),
                ("$Roles".to_string(), roles),
                ("Tier".to_string(), format!("T{}", rng.below(5))),
                ("Desk".to_string(), format!("D{}", rng.below(10))),
            ])
            .unwrap();
    }
    let server = Server::builder(Config::parse("").unwrap())
        .store(store.clone())
        .build();
    println!("{sessions} sessions, {collectors} collectors, {changes} changes a burst");

    // A warm-up (first values interned, tables grown), then the median
    // of three bursts, here and with the collectors.
    burst(&server, &store, changes, 99).await;
    let (base_cpu, base_wall) = median3(&server, &store, changes).await;
    let base_share = steady(&server, &store, 1_000, 3, 2).await;

    let started = Instant::now();
    for i in 0..collectors {
        // Nine in ten per principal (a principal's sessions, some of them
        // narrowed by tier), one in ten broad (a tier and a desk, a role).
        let filter = match i % 10 {
            0 => match i % 20 {
                0 => format!("Tier is 'T{}' and Desk is 'D{}'", i % 5, (i / 5) % 10),
                _ => format!("hasRoles ['r{}']", i % 20),
            },
            1..=4 => format!(
                "$Principal is 'p{}' and Tier is 'T{}'",
                i % PRINCIPALS,
                i % 5
            ),
            _ => format!("$Principal is 'p{}'", i % PRINCIPALS),
        };
        let group_by: Vec<&str> = if i % 2 == 0 { vec!["$Country"] } else { vec![] };
        server
            .put_session_collector(json!({
                "name": format!("c{i}"),
                "filter": filter,
                "group_by": group_by,
            }))
            .await
            .unwrap();
    }
    server.fetch_metrics(json!({})).await.unwrap();
    println!(
        "put {collectors} collectors (snapshots included) in {:.2?}",
        started.elapsed()
    );

    let (cpu, wall) = median3(&server, &store, changes).await;
    if std::env::args().any(|a| a == "--scrape-only") {
        for _ in 0..4 {
            scrape(&server);
        }
        return;
    }
    if std::env::args().any(|a| a == "--changes-only") {
        for seed in 3..13 {
            burst(&server, &store, changes, seed).await;
        }
        println!("CPU per change: {base_cpu:.2?} without collectors, {cpu:.2?} with");
        return;
    }
    let share = steady(&server, &store, 1_000, 3, 2).await;
    println!(
        "CPU per change: {:.2?} without collectors, {:.2?} with ({:.2}×; target ≤ 3×)",
        base_cpu,
        cpu,
        cpu.as_secs_f64() / base_cpu.as_secs_f64().max(1e-9)
    );
    println!("wall per change: {base_wall:.2?} without, {wall:.2?} with");
    println!(
        "CPU share at 1 000 changes/s: {:.1}% without collectors, {:.1}% with",
        base_share * 100.0,
        share * 100.0
    );

    let (series, size, median, best) = scrape(&server);
    println!(
        "scrape of the mix: {series} groups ({:.1} MB of text) in {median:.2?} of CPU (median of 5; \
         best {best:.2?})",
        size as f64 / 1e6,
    );
    drop(server);
    drop(store);

    // The scrape target's case: every collector with 50 groups. Each
    // principal's 50 sessions are one per country, and every collector is
    // a principal's, grouped by `$Country`.
    let store = Arc::new(SessionStore::with_options(StoreOptions::new()));
    for i in 0..PRINCIPALS * COUNTRIES {
        store
            .insert([
                ("$SessionId".to_string(), format!("s{i}")),
                ("$Principal".to_string(), format!("p{}", i % PRINCIPALS)),
                ("$Country".to_string(), country(i / PRINCIPALS)),
            ])
            .unwrap();
    }
    let server = Server::builder(Config::parse("").unwrap())
        .store(store.clone())
        .build();
    for i in 0..collectors {
        server
            .put_session_collector(json!({
                "name": format!("principal_{i}"),
                "filter": format!("$Principal is 'p{}'", i % PRINCIPALS),
                "group_by": ["$Country"],
            }))
            .await
            .unwrap();
    }
    server.fetch_metrics(json!({})).await.unwrap();
    let (series, size, median, best) = scrape(&server);
    println!(
        "scrape of {collectors} collectors × 50 groups: {series} groups ({:.1} MB of text) in \
         {median:.2?} of CPU (median of 5; best {best:.2?}; target < 100 ms)",
        size as f64 / 1e6,
    );
}

/// Renders `/metrics` five times: groups, bytes, median and best time (of
/// CPU: the rendering is single-threaded, and wall time on a shared machine
/// counts other processes).
fn scrape(server: &Server) -> (usize, usize, Duration, Duration) {
    let mut times = Vec::new();
    let mut size = 0;
    let mut series = 0;
    for _ in 0..5 {
        let t = cpu();
        let text = server.metrics_text();
        times.push(cpu() - t);
        size = text.len();
        series = text
            .lines()
            .filter(|l| l.starts_with("session_filter_collector_sessions{"))
            .count();
    }
    times.sort();
    (series, size, times[2], times[0])
}
