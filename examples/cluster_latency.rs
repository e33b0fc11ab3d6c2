//! The cost of going through the cluster: a `count` over three local
//! members against the same `count` on one local store holding all their
//! sessions, and bulk operations per second.
//!
//! ```text
//! cargo run --release --features cluster --example cluster_latency [SESSIONS] [ROUNDS]
//! ```
//!
//! It starts its own `nats-server` (Debian: `apt-get install nats-server`)
//! on a free loopback port, three in-process members each serving a third of
//! `SESSIONS` demo sessions (default 300 000), and prints a table of
//! medians over `ROUNDS` rounds (default 300). "One store" and "slowest
//! member" are the time of `SessionStore::count(filter)` (with the store's
//! filter cache, as a member runs it) on the whole population and, per round, the largest such time a
//! member reports; the overhead is the round trip minus the slowest
//! member's time, per round: the price of the broker, JSON, the members'
//! hop to a blocking thread, and gathering. The members share the process,
//! and so rayon's pool and the cores, as they would not on three machines.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use session_filter::cluster::{self, ClusterClient, Member, MemberOptions};
use session_filter::SessionStore;

const FILTERS: [(&str, &str); 4] = [
    ("all", "all"),
    ("selective", "$Principal is 'name7'"),
    ("common", "Department is 'IT'"),
    (
        "compound",
        "$Country in ['UK', 'DE'] and hasRoles ['trader'] or Tier is 'gold' and not has Department",
    ),
];

struct Nats(Child, PathBuf);

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

fn start_nats() -> Result<(Nats, String), String> {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let dir = std::env::temp_dir().join(format!("cluster-latency-{}", std::process::id()));
    let child = Command::new("nats-server")
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start nats-server ({e}): apt-get install -y nats-server"))?;
    let nats = Nats(child, dir);
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err("nats-server did not start".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((nats, format!("nats://127.0.0.1:{port}")))
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort_unstable();
    xs[xs.len() / 2]
}

fn micros(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let sessions: u64 = args.next().map_or(Ok(300_000), |a| a.parse())?;
    let rounds: usize = args.next().map_or(Ok(300), |a| a.parse())?.max(1);
    let (_nats, url) = start_nats()?;

    let union = SessionStore::new();
    let parts: Vec<Arc<SessionStore>> = (0..3).map(|_| Arc::new(SessionStore::new())).collect();
    for i in 0..sessions {
        let props = session_filter::demo::properties(i);
        union.insert(props.clone())?;
        parts[(i % 3) as usize].insert(props)?;
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut members = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            let nats = cluster::connect(&url).await?;
            let name = format!("m{}", i + 1);
            members.push(
                Member::start(nats, "bench", &name, Arc::clone(part), MemberOptions::new()).await?,
            );
        }
        let client = ClusterClient::connect(cluster::connect(&url).await?, "bench")
            .await?
            .timeout(Duration::from_secs(10));
        assert_eq!(client.members().len(), 3);

        println!(
            "count over {sessions} demo sessions: one store vs three members of {} each \
             (medians of {rounds} rounds, µs)\n",
            sessions / 3
        );
        println!(
            "| filter | matches | one store | slowest member | cluster round trip | overhead |"
        );
        println!("|---|---:|---:|---:|---:|---:|");
        for (name, filter) in FILTERS {
            let mut local = Vec::with_capacity(rounds);
            let mut slowest = Vec::with_capacity(rounds);
            let mut round_trip = Vec::with_capacity(rounds);
            let mut overhead = Vec::with_capacity(rounds);
            let mut matches = 0;
            // Warm up the connection, the members' caches and the pool.
            for _ in 0..20 {
                client.count(filter).await?;
            }
            for _ in 0..rounds {
                let started = Instant::now();
                // As a member does: by the filter's text.
                matches = union.count(filter)?;
                local.push(started.elapsed());

                let started = Instant::now();
                let answer = client.count(filter).await?;
                let took = started.elapsed();
                assert!(answer.is_complete() && answer.value == matches);
                let member = answer
                    .answered
                    .iter()
                    .map(|m| m.took)
                    .max()
                    .unwrap_or_default();
                round_trip.push(took);
                slowest.push(member);
                overhead.push(took.saturating_sub(member));
            }
            println!(
                "| {name} | {matches} | {} | {} | {} | {} |",
                micros(median(local)),
                micros(median(slowest)),
                micros(median(round_trip)),
                micros(median(overhead)),
            );
        }

        println!("\nbulk operations per second, one after another (2 s each)\n");
        println!("| operation | one store | cluster |");
        println!("|---|---:|---:|");
        let filter = "Department is 'IT'";
        let window = Duration::from_secs(2);
        let per_second = |n: usize, d: Duration| format!("{:.0}", n as f64 / d.as_secs_f64());
        {
            let (mut n, started) = (0, Instant::now());
            while started.elapsed() < window {
                union.count(filter)?;
                n += 1;
            }
            let local = per_second(n, started.elapsed());
            let (mut n, started) = (0, Instant::now());
            while started.elapsed() < window {
                client.count(filter).await?;
                n += 1;
            }
            println!(
                "| count `{filter}` | {local} | {} |",
                per_second(n, started.elapsed())
            );
        }
        {
            let (mut n, started) = (0, Instant::now());
            while started.elapsed() < window {
                let (remove, add) = if n % 2 == 0 {
                    (["guest"], ["it"])
                } else {
                    (["it"], ["guest"])
                };
                union.change_roles(filter, &remove, &add)?;
                n += 1;
            }
            let local = per_second(n, started.elapsed());
            let (mut n, started) = (0, Instant::now());
            while started.elapsed() < window {
                let (remove, add) = if n % 2 == 0 {
                    (["guest"], ["it"])
                } else {
                    (["it"], ["guest"])
                };
                let answer = client.change_roles(filter, &remove, &add).await?;
                assert!(answer.is_complete());
                n += 1;
            }
            println!(
                "| change_roles `{filter}` | {local} | {} |",
                per_second(n, started.elapsed())
            );
        }
        for member in members {
            member.stop().await?;
        }
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    Ok(())
}
