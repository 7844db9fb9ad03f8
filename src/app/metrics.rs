//! The app's Prometheus metrics: HTTP requests by route template and status, issues, the
//! search cache and the pools, served at /actuator/prometheus. The registry, buckets, process
//! gauges and exposition formats are the shared ones of [`crate::metrics`].

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use fred::prelude::ClientLike;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use sqlx::PgPool;

use crate::metrics::exposition::{self, Format};
use crate::metrics::parse;
use crate::metrics::{self as shared, latency_histogram, query_histogram};

/// Labels of one HTTP request series, as Micrometer names them (the original's dashboards
/// query `http_server_requests_seconds` by uri, status and outcome).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// A standard method, or OTHER: clients must not be able to mint series.
    pub method: &'static str,
    /// The route template (`/api/v1/coupons/{id}`), never the raw path.
    pub uri: String,
    pub status: u16,
    pub outcome: &'static str,
}

/// Maps a method to a fixed label value.
fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE",
    ];
    KNOWN
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or("OTHER")
}

/// Micrometer's outcome of a status.
fn outcome_label(status: u16) -> &'static str {
    match status {
        100..=199 => "INFORMATIONAL",
        200..=299 => "SUCCESS",
        300..=399 => "REDIRECTION",
        400..=499 => "CLIENT_ERROR",
        500..=599 => "SERVER_ERROR",
        _ => "UNKNOWN",
    }
}

/// Labels of an issue outcome.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IssueLabels {
    pub strategy: &'static str,
    /// "issued" or the refusal's code.
    pub outcome: &'static str,
}

/// Labels of the experiment's switches, as configured.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExperimentLabels {
    pub strategy: &'static str,
    pub search_cache: &'static str,
}

/// Labels of a gate event.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabel {
    pub event: &'static str,
}

/// Labels of a search cache lookup.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

/// Labels of a search statement's duration.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatementLabel {
    pub statement: &'static str,
}

/// Labels of a pool gauge.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: &'static str,
}

/// The registry and the metrics the app writes to.
pub struct AppMetrics {
    registry: Registry,
    http: Family<HttpLabels, Histogram>,
    issues: Family<IssueLabels, Counter>,
    gate_events: Family<EventLabel, Counter>,
    search_cache: Family<ResultLabel, Counter>,
    search_waiting: Gauge,
    search_invalidations: Family<EventLabel, Counter>,
    search_statements: Family<StatementLabel, Histogram>,
    db_connections: Family<StateLabel, Gauge>,
    db_max: Gauge,
    redis_connected: Gauge,
    experiment: Family<ExperimentLabels, Gauge>,
}

/// Why the metrics could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("failed to encode metrics")]
    Encode(#[from] std::fmt::Error),
    #[error("failed to read the metrics back")]
    Parse(#[from] crate::metrics::parse::ParseError),
}

impl AppMetrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = shared::role_registry("fastpick-be");
        let http = Family::<HttpLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "http_server_requests_seconds",
            "HTTP requests by method, route template, status and outcome",
            http.clone(),
        );
        let metrics = AppMetrics {
            http,
            issues: Family::default(),
            gate_events: Family::default(),
            search_cache: Family::default(),
            search_waiting: Gauge::default(),
            search_invalidations: Family::default(),
            search_statements: Family::new_with_constructor(query_histogram as fn() -> Histogram),
            db_connections: Family::default(),
            db_max: Gauge::default(),
            redis_connected: Gauge::default(),
            experiment: Family::default(),
            registry,
        };
        metrics.register_gauges()
    }

    fn register_gauges(mut self) -> Self {
        let r = self.registry.sub_registry_with_prefix(shared::PREFIX);
        r.register(
            "issue_requests",
            "Issue requests by strategy and outcome",
            self.issues.clone(),
        );
        r.register(
            "issue_gate_events",
            "Redis gate builds and Redis-down fallbacks",
            self.gate_events.clone(),
        );
        r.register(
            "search_cache_lookups",
            "Search page cache lookups: hit, miss, shared (another request's search of the page answered), unavailable (Redis down or slow)",
            self.search_cache.clone(),
        );
        r.register(
            "search_cache_waiting",
            "Requests waiting for another request's search of the page they missed",
            self.search_waiting.clone(),
        );
        r.register(
            "search_cache_invalidations",
            "Search page cache invalidations by cause (created, sold_out) and failures",
            self.search_invalidations.clone(),
        );
        r.register(
            "search_statement_seconds",
            "PostgreSQL time of search statements: probe, page, count",
            self.search_statements.clone(),
        );
        r.register(
            "db_pool_connections",
            "PostgreSQL pool connections by state",
            self.db_connections.clone(),
        );
        r.register(
            "db_pool_max_connections",
            "PostgreSQL pool size limit",
            self.db_max.clone(),
        );
        r.register(
            "experiment_info",
            "The experiment's switches (issue strategy, search cache): 1 for the current ones",
            self.experiment.clone(),
        );
        r.register(
            "redis_connected",
            "1 when the Redis pool is connected",
            self.redis_connected.clone(),
        );
        self
    }

    /// Records one finished request.
    pub fn observe(&self, method: &str, uri: &str, status: u16, seconds: f64) {
        let labels = HttpLabels {
            method: method_label(method),
            uri: uri.to_owned(),
            status,
            outcome: outcome_label(status),
        };
        self.http.get_or_create(&labels).observe(seconds);
    }

    /// Marks the experiment's current switches (only one label set is 1 at a time).
    pub fn set_experiment(&self, strategy: &'static str, search_cache: &'static str) {
        self.experiment.clear();
        self.experiment
            .get_or_create(&ExperimentLabels {
                strategy,
                search_cache,
            })
            .set(1);
    }

    /// Counts one issue request's outcome.
    pub fn issue_outcome(&self, strategy: &'static str, outcome: &'static str) {
        self.issues
            .get_or_create(&IssueLabels { strategy, outcome })
            .inc();
    }

    /// Counts one gate event.
    pub fn gate_event(&self, event: &'static str) {
        self.gate_events.get_or_create(&EventLabel { event }).inc();
    }

    /// Counts one search cache lookup.
    pub fn search_cache(&self, result: &'static str) {
        self.search_cache
            .get_or_create(&ResultLabel { result })
            .inc();
    }

    /// The gauge of requests waiting for another request's search (the cache moves it).
    pub fn search_waiting(&self) -> Gauge {
        self.search_waiting.clone()
    }

    /// Counts one search cache invalidation (`event` = cause, or "failed").
    pub fn search_invalidation(&self, event: &'static str) {
        self.search_invalidations
            .get_or_create(&EventLabel { event })
            .inc();
    }

    /// Records one search statement's duration.
    pub fn search_statement(&self, statement: &'static str, seconds: f64) {
        self.search_statements
            .get_or_create(&StatementLabel { statement })
            .observe(seconds);
    }

    /// Refreshes the pool gauges and writes everything in `format`.
    pub fn render(
        &self,
        db: &PgPool,
        redis: &fred::clients::Pool,
        format: Format,
    ) -> Result<String, RenderError> {
        self.refresh(db, redis);
        Ok(exposition::encode(&self.registry, format)?)
    }

    /// Refreshes the pool gauges and reads every family back, for `/actuator/metrics`.
    pub fn families(
        &self,
        db: &PgPool,
        redis: &fred::clients::Pool,
    ) -> Result<Vec<parse::Family>, RenderError> {
        let text = self.render(db, redis, Format::Prometheus)?;
        Ok(parse::parse(&text, parse::Format::Text004)?)
    }

    fn refresh(&self, db: &PgPool, redis: &fred::clients::Pool) {
        let size = i64::from(db.size());
        let idle = i64::try_from(db.num_idle()).unwrap_or(i64::MAX);
        self.db_connections
            .get_or_create(&StateLabel { state: "idle" })
            .set(idle);
        self.db_connections
            .get_or_create(&StateLabel { state: "active" })
            .set(size - idle);
        self.db_max
            .set(i64::from(db.options().get_max_connections()));
        self.redis_connected.set(i64::from(redis.is_connected()));
    }
}

impl Default for AppMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Middleware: times every request and records it under its route template.
pub async fn track(State(metrics): State<Arc<AppMetrics>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_owned();
    let uri = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "UNMATCHED".to_owned(), |p| p.as_str().to_owned());
    // Set by the proxy (or the client): the same id is in the proxy's access log.
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    let response = next.run(req).await;
    let status = response.status().as_u16();
    let elapsed = start.elapsed().as_secs_f64();
    metrics.observe(&method, &uri, status, elapsed);
    // A failure's cause is logged once, where the error is rendered (`error.rs`).
    tracing::debug!(%method, %uri, status, %request_id, ms = elapsed * 1e3, "request");
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_methods_share_one_series_and_outcomes_follow_status() {
        assert_eq!(method_label("GET"), "GET");
        assert_eq!(method_label("FOOBAR"), "OTHER");
        assert_eq!(method_label("get"), "OTHER");
        assert_eq!(
            (outcome_label(201), outcome_label(404), outcome_label(503)),
            ("SUCCESS", "CLIENT_ERROR", "SERVER_ERROR")
        );
    }
}
