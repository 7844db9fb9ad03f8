//! The proxy's own metrics, served at `/actuator/proxy/prometheus` (allowlisted like the rest
//! of `/actuator/`): requests by route and status, upstream latency, requests in flight and
//! each upstream's health, and the process gauges every role has. The registry, buckets and
//! exposition formats are the shared ones of [`crate::metrics`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::RwLock;
use std::sync::atomic::AtomicI64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::metrics::exposition::{self, Format};
use crate::metrics::{role_registry, upstream_histogram};
use crate::proxy::upstream::{Picked, Pool};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabel {
    upstream: String,
}

/// The proxy's registry.
pub struct ProxyMetrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    upstream_seconds: Family<UpstreamLabel, Histogram>,
    upstream_up: Family<UpstreamLabel, Gauge>,
    upstream_in_flight: Family<UpstreamLabel, Gauge>,
    in_flight: Gauge<i64, AtomicI64>,
    slow_heads: Counter,
    /// Each upstream's histogram, so a request does not build a label.
    histograms: RwLock<HashMap<Option<SocketAddr>, Histogram>>,
}

impl ProxyMetrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = role_registry("fastpick-proxy");
        let m = ProxyMetrics {
            requests: Family::default(),
            upstream_seconds: Family::new_with_constructor(upstream_histogram as fn() -> Histogram),
            upstream_up: Family::default(),
            upstream_in_flight: Family::default(),
            in_flight: Gauge::default(),
            slow_heads: Counter::default(),
            histograms: RwLock::default(),
            registry: Registry::default(),
        };
        let r = registry.sub_registry_with_prefix("fastpick_proxy");
        r.register(
            "requests",
            "Requests by route (api, actuator, ui, denied, limited) and status",
            m.requests.clone(),
        );
        r.register(
            "upstream_seconds",
            "Time from picking an upstream to its response head",
            m.upstream_seconds.clone(),
        );
        r.register(
            "upstream_up",
            "1 while an upstream is healthy and not ejected",
            m.upstream_up.clone(),
        );
        r.register(
            "upstream_requests_in_flight",
            "Requests in flight per upstream",
            m.upstream_in_flight.clone(),
        );
        r.register(
            "requests_in_flight",
            "Requests being handled by the proxy",
            m.in_flight.clone(),
        );
        r.register(
            "slow_heads",
            "Connections closed because a request head did not arrive within client_timeout",
            m.slow_heads.clone(),
        );
        ProxyMetrics { registry, ..m }
    }

    /// Counts a finished request.
    pub fn request(&self, route: &'static str, status: u16) {
        self.requests
            .get_or_create(&RequestLabels { route, status })
            .inc();
    }

    /// Records an upstream's response time (its histogram is looked up once per upstream).
    pub fn upstream_time(&self, picked: Option<Picked>, seconds: f64) {
        let key = match picked {
            Some(Picked::Remote(addr)) => Some(addr),
            _ => None,
        };
        let cached = self
            .histograms
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned();
        let histogram = cached.unwrap_or_else(|| {
            let upstream = key.map_or_else(|| "in-process".to_owned(), |a| a.to_string());
            let h = self
                .upstream_seconds
                .get_or_create(&UpstreamLabel { upstream })
                .clone();
            self.histograms
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key, h.clone());
            h
        });
        histogram.observe(seconds);
    }

    /// A request entered (+1) or left (-1).
    pub fn in_flight(&self, delta: i64) {
        self.in_flight.inc_by(delta);
    }

    /// Requests being handled right now.
    pub fn requests_in_flight(&self) -> i64 {
        self.in_flight.get()
    }

    /// Counts a connection cut off for a slow request head.
    pub fn slow_client(&self) {
        self.slow_heads.inc();
    }

    /// Refreshes the upstream gauges and writes everything in `format`.
    pub fn render(&self, pool: &Pool, format: Format) -> Result<String, std::fmt::Error> {
        if let Pool::Remote(remote) = pool {
            for (addr, up) in remote.health() {
                self.upstream_up
                    .get_or_create(&UpstreamLabel {
                        upstream: addr.to_string(),
                    })
                    .set(i64::from(up));
            }
            for (addr, n) in remote.in_flight() {
                self.upstream_in_flight
                    .get_or_create(&UpstreamLabel {
                        upstream: addr.to_string(),
                    })
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
        exposition::encode(&self.registry, format)
    }
}

impl Default for ProxyMetrics {
    fn default() -> Self {
        Self::new()
    }
}
