//! The server's own figures (SPEC 11.9): sessions opened and closed by
//! reason, requests by method and outcome, messages dropped.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::session::CloseReason;

/// Counters the server keeps; read by `metrics.fetch` and `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) opened: AtomicU64,
    closed: [AtomicU64; CloseReason::ALL.len()],
    /// Messages discarded by a queue overflow.
    pub(crate) dropped: AtomicU64,
    /// `messaging.request` deliveries.
    pub(crate) messages_sent: AtomicU64,
    requests: Mutex<BTreeMap<&'static str, RequestFigures>>,
}

/// Requests of one method.
#[derive(Clone, Debug, Default)]
pub(crate) struct RequestFigures {
    pub(crate) ok: u64,
    pub(crate) error: u64,
    /// Count per bucket of [`BUCKETS`], then the sum of seconds.
    pub(crate) buckets: [u64; BUCKETS.len()],
    pub(crate) sum_seconds: f64,
}

/// Upper bounds, in seconds, of the request-duration histogram.
pub(crate) const BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
];

impl Stats {
    pub(crate) fn closed(&self, reason: CloseReason) {
        let i = CloseReason::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        self.closed[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Sessions closed, by reason.
    pub(crate) fn closed_by_reason(&self) -> Vec<(CloseReason, u64)> {
        CloseReason::ALL
            .iter()
            .zip(&self.closed)
            .map(|(r, n)| (*r, n.load(Ordering::Relaxed)))
            .collect()
    }

    /// Counts one answered request (`method` is `unknown` for a method the
    /// server does not have).
    pub(crate) fn request(&self, method: &'static str, ok: bool, took: Duration) {
        let mut requests = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        let figures = requests.entry(method).or_default();
        if ok {
            figures.ok += 1;
        } else {
            figures.error += 1;
        }
        let seconds = took.as_secs_f64();
        figures.sum_seconds += seconds;
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                figures.buckets[i] += 1;
            }
        }
    }

    /// Requests by method.
    pub(crate) fn requests(&self) -> BTreeMap<&'static str, RequestFigures> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}
