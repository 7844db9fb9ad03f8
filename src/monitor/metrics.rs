//! The monitor's own `/metrics`: its store, scrapes, queries and remote write, plus the
//! process gauges every role has, as Prometheus exposes `prometheus_tsdb_*` about itself.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::metrics::exposition::{self, Format};
use crate::monitor::tsdb::{AppendSummary, Stats};
use crate::monitor::{Inner, Monitor};

/// Counters updated as the monitor works; store gauges are read at each scrape.
pub struct MonitorMetrics {
    registry: Registry,
    appended: Counter,
    rejected: Counter,
    queries: Histogram,
    store: StoreGauges,
    remote: RemoteCounters,
}

/// Gauges copied from [`Stats`] when `/metrics` is read.
#[derive(Default)]
struct StoreGauges {
    series: Gauge,
    head_chunks: Gauge,
    head_bytes: Gauge,
    disk_bytes: Gauge,
    disk_samples: Gauge,
    segments: Gauge,
    read_errors: Gauge,
}

/// Remote write figures, copied from its stats snapshot.
#[derive(Default)]
struct RemoteCounters {
    sent: Gauge<u64, AtomicU64>,
    failed: Gauge<u64, AtomicU64>,
    dropped: Gauge<u64, AtomicU64>,
    retried: Gauge<u64, AtomicU64>,
    queue: Gauge<u64, AtomicU64>,
}

impl Default for MonitorMetrics {
    fn default() -> Self {
        let mut registry = crate::metrics::role_registry("fastpick-monitor");
        let appended = Counter::default();
        let rejected = Counter::default();
        let queries = crate::metrics::doubling_histogram(0.0001, 16);
        let store = StoreGauges::default();
        let remote = RemoteCounters::default();
        {
            let r = registry.sub_registry_with_prefix(crate::metrics::PREFIX);
            let m = r.sub_registry_with_prefix("monitor");
            m.register(
                "samples_appended",
                "Samples stored from scrapes.",
                appended.clone(),
            );
            m.register(
                "samples_rejected",
                "Samples refused by the store (out of order or conflicting duplicates).",
                rejected.clone(),
            );
            m.register(
                "query_duration_seconds",
                "Time to answer one query.",
                queries.clone(),
            );
            m.register("series", "Series in the store.", store.series.clone());
            m.register(
                "head_chunks",
                "Open chunks in memory.",
                store.head_chunks.clone(),
            );
            m.register(
                "head_bytes",
                "Bytes of the open chunks in memory.",
                store.head_bytes.clone(),
            );
            m.register(
                "disk_bytes",
                "Bytes of sealed segments on disk.",
                store.disk_bytes.clone(),
            );
            m.register(
                "disk_samples",
                "Samples in sealed segments on disk.",
                store.disk_samples.clone(),
            );
            m.register("segments", "Segment files on disk.", store.segments.clone());
            m.register(
                "read_errors",
                "Chunks that could not be read back.",
                store.read_errors.clone(),
            );
            let rw = m.sub_registry_with_prefix("remote_write");
            rw.register(
                "samples_sent",
                "Samples delivered by remote write.",
                remote.sent.clone(),
            );
            rw.register(
                "samples_failed",
                "Samples the receiver refused.",
                remote.failed.clone(),
            );
            rw.register(
                "samples_dropped",
                "Samples dropped from a full queue.",
                remote.dropped.clone(),
            );
            rw.register(
                "samples_retried",
                "Samples sent again after a failure.",
                remote.retried.clone(),
            );
            rw.register(
                "queue_samples",
                "Samples waiting to be sent.",
                remote.queue.clone(),
            );
        }
        MonitorMetrics {
            registry,
            appended,
            rejected,
            queries,
            store,
            remote,
        }
    }
}

impl MonitorMetrics {
    /// Counts one scrape's outcome in the store.
    pub fn record_append(&self, summary: &AppendSummary) {
        self.appended.inc_by(summary.appended as u64);
        self.rejected
            .inc_by((summary.out_of_order + summary.duplicate_conflicts + summary.invalid) as u64);
    }

    /// Times one query.
    pub fn observe_query(&self, took: Duration) {
        self.queries.observe(took.as_secs_f64());
    }

    fn refresh(&self, stats: &Stats, remote: Option<crate::monitor::remote_write::StatsSnapshot>) {
        let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.store.series.set(as_i64(stats.series as u64));
        self.store.head_chunks.set(as_i64(stats.head_chunks as u64));
        self.store.head_bytes.set(as_i64(stats.head_bytes));
        self.store.disk_bytes.set(as_i64(stats.bytes_on_disk));
        self.store.disk_samples.set(as_i64(stats.samples_on_disk));
        self.store.segments.set(as_i64(stats.segments as u64));
        self.store.read_errors.set(as_i64(stats.read_errors_total));
        if let Some(r) = remote {
            self.remote.sent.set(r.samples_sent);
            self.remote.failed.set(r.samples_failed);
            self.remote.dropped.set(r.samples_dropped);
            self.remote.retried.set(r.samples_retried);
            self.remote.queue.set(r.queue_len);
        }
    }
}

/// `GET /metrics`.
pub fn router() -> Router<Monitor> {
    Router::new().route("/metrics", get(scrape))
}

async fn scrape(State(monitor): State<Monitor>, headers: HeaderMap) -> Response {
    let format = Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    match render(&monitor.0, format) {
        Ok(body) => ([(header::CONTENT_TYPE, format.content_type())], body).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The monitor's metrics, refreshed from the store, for `/metrics` and the self-scrape.
pub(super) fn render(inner: &Inner, format: Format) -> Result<String, std::fmt::Error> {
    inner
        .metrics
        .refresh(&inner.db.stats(), inner.remote.as_ref().map(|r| r.stats()));
    exposition::encode(&inner.metrics.registry, format)
}
