//! The built-in collectors as the monitor uses them: connected from `[database]` and
//! `[redis]` when `monitor.postgres` / `monitor.redis` are on, scraped like any target (jobs
//! `postgres` and `redis`, instance `host:port`; job `processes` for `monitor.processes`),
//! and served at `/metrics/postgres` and `/metrics/redis` so that an existing Prometheus can
//! scrape them instead.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use fred::prelude::ClientLike;

use crate::config::Settings;
use crate::monitor::Monitor;
use crate::monitor::collect::postgres::PostgresCollector;
use crate::monitor::collect::redis::RedisCollector;
use crate::monitor::collect::{self, DEFAULT_TIMEOUT};
use crate::monitor::scrape::{Render, Source, Target};

/// The collectors this monitor runs, each with the `instance` it reports as.
#[derive(Clone, Default)]
pub struct Collectors {
    postgres: Option<(PostgresCollector, String, sqlx::PgPool)>,
    redis: Option<(RedisCollector, String, fred::clients::Pool)>,
    processes: Vec<String>,
}

impl Collectors {
    /// Builds the enabled collectors. Neither server has to be up: a collector reports
    /// `pg_up 0` / `redis_up 0` until it is.
    pub async fn connect(settings: &Settings) -> anyhow::Result<Collectors> {
        let mut collectors = Collectors {
            processes: settings.monitor.processes.clone(),
            ..Collectors::default()
        };
        if settings.monitor.postgres {
            let db = &settings.database;
            // Two connections: a scrape uses one; the other serves /metrics/postgres at once.
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(2)
                .min_connections(0)
                .acquire_timeout(DEFAULT_TIMEOUT)
                .connect_lazy_with(crate::db::pg_options(db).application_name("fastpick-monitor"));
            collectors.postgres = Some((
                PostgresCollector::new(pool.clone()),
                format!("{}:{}", db.host, db.port),
                pool,
            ));
        }
        if settings.monitor.redis {
            let mut redis = settings.redis.clone();
            redis.pool_size = 1;
            let pool = crate::db::connect_redis(&redis, Duration::from_secs(2)).await?;
            collectors.redis = Some((
                RedisCollector::new(pool.clone()),
                format!("{}:{}", redis.host, redis.port),
                pool,
            ));
        }
        Ok(collectors)
    }

    /// The collectors as scrape targets.
    pub fn targets(&self, interval: Duration, timeout: Duration) -> Vec<Target> {
        let mut targets = Vec::new();
        if let Some((collector, instance, _)) = &self.postgres {
            let collector = collector.clone();
            let render: Render = Arc::new(move || {
                let collector = collector.clone();
                Box::pin(async move { collector.collect().await })
            });
            targets.push(builtin_target(
                "postgres", instance, render, interval, timeout,
            ));
        }
        if let Some((collector, instance, _)) = &self.redis {
            let collector = collector.clone();
            let render: Render = Arc::new(move || {
                let collector = collector.clone();
                Box::pin(async move { collector.collect().await })
            });
            targets.push(builtin_target("redis", instance, render, interval, timeout));
        }
        if !self.processes.is_empty() {
            let collector = collect::processes::ProcessCollector::new(self.processes.clone());
            let render: Render = Arc::new(move || {
                let collector = collector.clone();
                Box::pin(async move {
                    tokio::task::spawn_blocking(move || collector.collect())
                        .await
                        .unwrap_or_default()
                })
            });
            targets.push(builtin_target(
                "processes",
                "localhost",
                render,
                interval,
                timeout,
            ));
        }
        targets
    }

    /// Closes the connections.
    pub async fn close(self) {
        if let Some((_, _, pool)) = self.postgres {
            pool.close().await;
        }
        if let Some((_, _, pool)) = self.redis {
            let _ = pool.quit().await;
        }
    }

    fn postgres(&self) -> Option<&PostgresCollector> {
        self.postgres.as_ref().map(|(c, _, _)| c)
    }

    fn redis(&self) -> Option<&RedisCollector> {
        self.redis.as_ref().map(|(c, _, _)| c)
    }
}

fn builtin_target(
    job: &str,
    instance: &str,
    render: Render,
    interval: Duration,
    timeout: Duration,
) -> Target {
    Target {
        job: job.to_owned(),
        instance: instance.to_owned(),
        source: Source::Builtin(render),
        interval,
        // A collect bounds itself at DEFAULT_TIMEOUT; the scrape waits a little longer so
        // the collector's partial answer wins over a bare timeout.
        timeout: timeout.max(DEFAULT_TIMEOUT + Duration::from_millis(500)),
        labels: Default::default(),
    }
}

/// `/metrics/postgres` and `/metrics/redis`.
pub fn router() -> Router<Monitor> {
    Router::new()
        .route("/metrics/postgres", get(postgres))
        .route("/metrics/redis", get(redis))
}

async fn postgres(State(monitor): State<Monitor>) -> Response {
    match monitor.collectors().postgres() {
        Some(c) => exposition(c.collect().await),
        None => off("monitor.postgres"),
    }
}

async fn redis(State(monitor): State<Monitor>) -> Response {
    match monitor.collectors().redis() {
        Some(c) => exposition(c.collect().await),
        None => off("monitor.redis"),
    }
}

fn exposition(body: String) -> Response {
    ([(header::CONTENT_TYPE, collect::content_type())], body).into_response()
}

/// 404 in Prometheus's error shape when the collector is not enabled.
fn off(key: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(serde_json::json!({
            "status": "error",
            "errorType": "not_found",
            "error": format!("this collector is off: set {key} = true"),
        })),
    )
        .into_response()
}
