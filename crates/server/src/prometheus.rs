//! `GET /metrics`: the Prometheus text format, version 0.0.4 (SPEC 11.9).
//!
//! The server's own metrics are written by `prometheus-client` (the
//! Prometheus project's own Rust client): its `prometheus_text` encoder
//! writes 0.0.4 with counters declared under their full `_total` name, and
//! a [`prometheus_client::collector::Collector`] encodes our counters on
//! each scrape without copying them into the crate's metric types.
//!
//! The collectors' families, which can hold hundreds of thousands of series
//! (10 000 collectors × 50 groups), are written here: each group keeps its
//! label text (`{collector="…",_Country="FR"}`, escaped as the format says)
//! from the first scrape on, so a series costs a few copies, not the
//! crate's label encoding character by character (ten times slower,
//! measured by `examples/metrics_bench.rs`). The tests parse the whole
//! exposition with Prometheus's `promtool`.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::metrics::ServerFigures;
use crate::server::Shared;
use crate::stats::BUCKETS;

/// The exposition of every figure, as `/metrics` serves it.
pub(crate) fn render(shared: &Arc<Shared>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Exposition(shared.clone())));
    // As large as the last one and a bit: no copy as the text grows.
    let last = shared.metrics.last_scrape.load(Ordering::Relaxed);
    let mut out = String::with_capacity(last + last / 8 + 4096);
    // Writing to a String cannot fail, and our collector never fails.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
    write_collectors(shared, &mut out);
    shared
        .metrics
        .last_scrape
        .store(out.len(), Ordering::Relaxed);
    out
}

fn response(shared: &Arc<Shared>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        )],
        render(shared),
    )
        .into_response()
}

/// `/metrics` on the main listener: loopback peers only.
pub(crate) async fn local_only(
    State(shared): State<Arc<Shared>>,
    request: axum::extract::Request,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    match peer {
        Some(peer) if peer.ip().is_loopback() => response(&shared),
        _ => (
            StatusCode::FORBIDDEN,
            "/metrics answers loopback peers only here (set [metrics] listen to serve it to others)\n",
        )
            .into_response(),
    }
}

async fn any_peer(State(shared): State<Arc<Shared>>) -> Response {
    response(&shared)
}

/// The router of `[metrics] listen`: `/metrics` to any peer.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/metrics", get(any_peer))
        .with_state(shared)
}

/// Encodes the figures on each scrape.
struct Exposition(Arc<Shared>);

impl fmt::Debug for Exposition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Exposition")
    }
}

impl Exposition {
    fn server(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        let shared = &self.0;
        let figures = ServerFigures::read(shared);
        let mut e = encoder.encode_descriptor(
            "session_filter_sessions",
            "Open sessions by state",
            None,
            MetricType::Gauge,
        )?;
        for (state, n) in [
            ("active", figures.active),
            ("disconnected", figures.disconnected),
        ] {
            e.encode_family(&[("state", state)])?
                .encode_gauge(&(n as u64))?;
        }
        counter(
            encoder,
            "session_filter_sessions_opened",
            "Sessions opened",
            figures.opened,
        )?;
        let mut e = encoder.encode_descriptor(
            "session_filter_sessions_closed",
            "Sessions closed, by reason",
            None,
            MetricType::Counter,
        )?;
        for (reason, n) in &figures.closed {
            e.encode_family(&[("reason", *reason)])?
                .encode_counter::<NoLabelSet, _, u64>(n, None)?;
        }
        let requests = shared.stats.requests();
        let mut e = encoder.encode_descriptor(
            "session_filter_requests",
            "Requests answered, by method and outcome",
            None,
            MetricType::Counter,
        )?;
        for (method, r) in &requests {
            for (outcome, n) in [("ok", r.ok), ("error", r.error)] {
                e.encode_family(&[("method", *method), ("outcome", outcome)])?
                    .encode_counter::<NoLabelSet, _, u64>(&n, None)?;
            }
        }
        let mut e = encoder.encode_descriptor(
            "session_filter_request_duration_seconds",
            "Time to answer a request, by method",
            None,
            MetricType::Histogram,
        )?;
        for (method, r) in &requests {
            // The figures count each request in every bucket it fits;
            // the encoder wants each bucket's own count.
            let mut below = 0;
            let buckets: Vec<(f64, u64)> = BUCKETS
                .iter()
                .zip(r.buckets)
                .map(|(bound, cumulative)| {
                    let own = cumulative.saturating_sub(below);
                    below = cumulative;
                    (*bound, own)
                })
                .collect();
            e.encode_family(&[("method", *method)])?
                .encode_histogram::<NoLabelSet>(r.sum_seconds, r.ok + r.error, &buckets, None)?;
        }
        counter(
            encoder,
            "session_filter_outbound_dropped",
            "Messages discarded by an outbound queue overflow",
            shared.stats.dropped.load(Ordering::Relaxed),
        )?;
        gauge(
            encoder,
            "session_filter_listeners",
            "Listeners registered",
            figures.listeners as u64,
        )?;
        gauge(
            encoder,
            "session_filter_locks_held",
            "Session locks owned",
            figures.locks_held as u64,
        )?;
        gauge(
            encoder,
            "session_filter_lock_waiters",
            "Lock acquires waiting",
            figures.lock_waiters as u64,
        )?;
        counter(
            encoder,
            "session_filter_messages_sent",
            "messaging.request deliveries",
            shared.stats.messages_sent.load(Ordering::Relaxed),
        )
    }
}

/// The collectors' families: name, help, type, and which figure.
const FAMILIES: [(&str, &str, &str, Figure); 3] = [
    (
        "session_filter_collector_sessions",
        "Open sessions that match a session metric collector, by group",
        "gauge",
        Figure::Sessions,
    ),
    (
        "session_filter_collector_opened_total",
        "Sessions that entered a collector's group",
        "counter",
        Figure::Opened,
    ),
    (
        "session_filter_collector_closed_total",
        "Sessions that left a collector's group (closed or no longer matching)",
        "counter",
        Figure::Closed,
    ),
];

/// Which figure of a group a family shows.
#[derive(Clone, Copy)]
enum Figure {
    Sessions,
    Opened,
    Closed,
}

/// Appends a label value (or any text between quotes) escaped as the text
/// format says: `\` `\"` and line feeds.
pub(crate) fn escape_into(value: &str, out: &mut String) {
    let mut rest = value;
    while let Some(at) = rest.find(['\\', '"', '\n']) {
        out.push_str(&rest[..at]);
        out.push_str(match rest.as_bytes()[at] {
            b'\\' => "\\\\",
            b'"' => "\\\"",
            _ => "\\n",
        });
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
}

/// `{collector="NAME",LABEL="VALUE",…}`.
pub(crate) fn label_text(collector: &str, names: &[String], values: &[String]) -> Box<str> {
    let mut out = String::with_capacity(16 + collector.len() + 8 * names.len());
    out.push_str("{collector=\"");
    escape_into(collector, &mut out);
    out.push('"');
    for (name, value) in names.iter().zip(values) {
        out.push(',');
        out.push_str(name);
        out.push_str("=\"");
        escape_into(value, &mut out);
        out.push('"');
    }
    out.push('}');
    out.into_boxed_str()
}

/// Appends every exported collector's families.
fn write_collectors(shared: &Shared, out: &mut String) {
    let collectors: Vec<_> = shared
        .metrics
        .all()
        .into_iter()
        .filter(|c| c.spec.export)
        .collect();
    let mut number = itoa::Buffer::new();
    for (name, help, kind, figure) in FAMILIES {
        for line in [("# HELP ", help), ("# TYPE ", kind)] {
            out.push_str(line.0);
            out.push_str(name);
            out.push(' ');
            out.push_str(line.1);
            out.push('\n');
        }
        for c in &collectors {
            let figures = c.figures();
            for group in figures.groups() {
                let value = match figure {
                    Figure::Sessions => group.sessions,
                    Figure::Opened => group.opened,
                    Figure::Closed => group.closed,
                };
                out.push_str(name);
                out.push_str(group.label_text(&c.spec.name, &c.labels));
                out.push(' ');
                out.push_str(number.format(value));
                out.push('\n');
            }
        }
    }
    out.push_str(
        "# HELP session_filter_collector_ungrouped Sessions of a collector in no kept group \
         (past max_groups)\n# TYPE session_filter_collector_ungrouped gauge\n",
    );
    for c in &collectors {
        out.push_str("session_filter_collector_ungrouped");
        out.push_str(&label_text(&c.spec.name, &[], &[]));
        out.push(' ');
        out.push_str(number.format(c.figures().ungrouped()));
        out.push('\n');
    }
}

fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    encoder
        .encode_descriptor(name, help, None, MetricType::Counter)?
        .encode_counter::<NoLabelSet, _, u64>(&value, None)
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    encoder
        .encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_gauge(&value)
}

impl Collector for Exposition {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        self.server(&mut encoder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn status_for(peer: &str) -> StatusCode {
        let server = crate::Server::builder(crate::Config::parse("").unwrap()).build();
        let mut request = axum::extract::Request::new(axum::body::Body::empty());
        let peer: SocketAddr = peer.parse().unwrap();
        request.extensions_mut().insert(ConnectInfo(peer));
        local_only(State(server.shared.clone()), request)
            .await
            .status()
    }

    #[tokio::test]
    async fn only_loopback_peers_on_the_main_listener() {
        assert_eq!(status_for("127.0.0.1:5000").await, StatusCode::OK);
        assert_eq!(status_for("[::1]:5000").await, StatusCode::OK);
        assert_eq!(status_for("10.1.2.3:5000").await, StatusCode::FORBIDDEN);
        assert_eq!(
            status_for("[2001:db8::1]:5000").await,
            StatusCode::FORBIDDEN
        );
    }
}
