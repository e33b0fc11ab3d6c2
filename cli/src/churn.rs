//! `--churn`: a thread that plays a busy server's sessions, so live views
//! show life: sessions connect (new demo sessions), change properties and
//! roles, and close, at about the rate asked for. Connecting and closing are
//! equally likely, so the population stays about the same size.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use session_filter::{demo, PropertyChange, SessionStore};

/// How often the thread wakes to catch up with the rate.
const TICK: Duration = Duration::from_millis(20);

/// User properties a change picks from, with their values.
const CHANGES: [(&str, &[&str]); 4] = [
    ("Status", &["Open", "Closed", "Pending"]),
    ("Tier", &["gold", "silver", "bronze"]),
    (
        "Department",
        &["Accounts", "Payroll", "Trading", "Sales", "IT", "Legal"],
    ),
    // A fixed property a change may set (SPEC 6.1).
    ("$Country", &demo::COUNTRIES),
];

/// Starts the churn at about `per_second` events a second on the sessions
/// `ids` (and those it connects itself) of `store`. It runs until the
/// process ends.
pub fn spawn(store: Arc<SessionStore>, per_second: f64, ids: Vec<String>) {
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0x5EED, |d| d.as_nanos() as u64);
    let mut churn = Churn {
        store,
        // New sessions take the demo ids after the population's.
        next: ids.len() as u64,
        ids,
        rng: Rng(seed),
    };
    thread::spawn(move || {
        let started = Instant::now();
        let mut done = 0u64;
        loop {
            thread::sleep(TICK);
            let due = (started.elapsed().as_secs_f64() * per_second) as u64;
            // After a stall, catch up by at most one second's worth.
            done = done.max(due.saturating_sub(per_second.ceil() as u64));
            while done < due {
                churn.step();
                done += 1;
            }
        }
    });
}

struct Churn {
    store: Arc<SessionStore>,
    /// Sessions this thread believes open; one found closed (by the API) is
    /// dropped from the list when it is picked.
    ids: Vec<String>,
    next: u64,
    rng: Rng,
}

impl Churn {
    fn step(&mut self) {
        let store = &self.store;
        let roll = self.rng.below(20);
        if roll < 4 || self.ids.is_empty() {
            // Connect. An id already taken (from a FILE) is skipped.
            let props = demo::properties(self.next);
            self.next += 1;
            if let Some((_, id)) = props.first() {
                let id = id.clone();
                if store.insert(props).is_ok() {
                    self.ids.push(id);
                }
            }
            return;
        }
        let at = self.rng.below(self.ids.len() as u64) as usize;
        if roll < 8 {
            let id = self.ids.swap_remove(at);
            store.close_session(&id);
            return;
        }
        let id = &self.ids[at];
        let open = if roll < 15 {
            let (key, values) = CHANGES[self.rng.below(CHANGES.len() as u64) as usize];
            let value = self.rng.pick(values);
            let change = PropertyChange::new().set(key, value);
            store.change_session_properties(id, &change).is_ok()
        } else {
            let remove = self.rng.pick(&demo::ROLES);
            let add = self.rng.pick(&demo::ROLES);
            store.change_session_roles(id, &[remove], &[add]).is_ok()
        };
        if !open {
            self.ids.swap_remove(at);
        }
    }
}

/// SplitMix64: plenty for picking what happens next.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n.max(1)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}
