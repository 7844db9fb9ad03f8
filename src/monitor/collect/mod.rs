//! Built-in collectors that replace postgres_exporter and redis_exporter: each reads its
//! server directly and renders Prometheus text format 0.0.4 with the exporter's family and
//! label names, so existing dashboards (Grafana 9628 for PostgreSQL, 763 for Redis) work on
//! the monitor's `/metrics/postgres` and `/metrics/redis` unchanged.
//!
//! - [`postgres::PostgresCollector`] over a `sqlx::PgPool`
//! - [`redis::RedisCollector`] over a `fred::clients::Pool`
//! - [`processes`]: processes of the monitor's own host by name (process-exporter's names)
//! - [`exposition`]: the small text writer they use
//!
//! Serving: `collector.collect().await` is the body, [`content_type`] its `Content-Type`.
//! A collect never fails and is bounded by its timeout ([`DEFAULT_TIMEOUT`]); when the server
//! is unreachable the body is just `pg_up 0` or `redis_up 0`.

pub mod exposition;
pub mod postgres;
pub mod processes;
pub mod redis;

use std::time::Duration;

/// How long one collect may take unless the collector is built with another timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The `Content-Type` of a collector's body: Prometheus text format 0.0.4.
pub fn content_type() -> &'static str {
    exposition::CONTENT_TYPE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_is_prometheus_text_0_0_4() {
        assert_eq!(content_type(), "text/plain; version=0.0.4; charset=utf-8");
    }
}
