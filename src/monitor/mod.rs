//! The monitor role: the original VM3's Prometheus, postgres_exporter and redis_exporter in
//! one process. It scrapes the configured targets and its own PostgreSQL and Redis
//! collectors, keeps the samples in a compressed store on disk, and answers PromQL through
//! the Prometheus HTTP API that Grafana's Prometheus data source speaks.
//!
//! - [`scrape`]: one loop per target; [`prometheus_yml`] reads an existing prometheus.yml.
//! - [`collect`]: the built-in PostgreSQL and Redis collectors (the exporters' names).
//! - [`tsdb`]: the store (Gorilla-compressed head, sealed segments, retention).
//! - [`promql`]: the query engine; [`api`]: its HTTP face; [`remote_write`]: samples out.
//! - [`annotations`]: load runs on the timeline; the dashboard (`assets/dashboard/`) at `/`.

pub mod annotations;
pub mod api;
mod builtin;
pub mod collect;
mod metrics;
pub mod prometheus_yml;
pub mod promql;
pub mod remote_write;
pub mod scrape;
pub mod series;
pub mod tsdb;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use tokio::sync::watch;

use crate::config::{MonitorConfig, ScrapeJob, Settings};
use crate::metrics::parse::{Family, Kind};
use crate::monitor::scrape::{Health, Point, Source, Target};

/// Family name → the distinct (type, help, unit) targets gave it, for `/api/v1/metadata`.
type Metadata = BTreeMap<String, Vec<(Kind, String, String)>>;

/// The monitor's shared state: store, engine, what the targets said about their metrics.
#[derive(Clone)]
pub struct Monitor(Arc<Inner>);

struct Inner {
    db: tsdb::Db,
    engine: promql::Engine,
    metadata: Mutex<Metadata>,
    targets: Vec<(Target, Arc<Mutex<Health>>)>,
    remote: Option<remote_write::RemoteWriter>,
    collectors: builtin::Collectors,
    annotations: annotations::Annotations,
    retention: Duration,
    query_timeout: Duration,
    metrics: metrics::MonitorMetrics,
}

impl Monitor {
    /// The store.
    pub fn db(&self) -> &tsdb::Db {
        &self.0.db
    }

    /// The load runs kept for the dashboard.
    pub fn annotations(&self) -> &annotations::Annotations {
        &self.0.annotations
    }

    /// The built-in collectors.
    fn collectors(&self) -> &builtin::Collectors {
        &self.0.collectors
    }

    /// The engine's lookback in ms.
    pub fn lookback_ms(&self) -> i64 {
        self.0.engine.lookback_ms
    }

    /// Every target with its last scrape's health.
    pub fn targets(&self) -> Vec<(Target, Health)> {
        self.0
            .targets
            .iter()
            .map(|(t, h)| (t.clone(), h.lock().map(|h| h.clone()).unwrap_or_default()))
            .collect()
    }

    /// Runs a query on a blocking thread, bounded by `timeout` (the monitor's default when
    /// absent or longer).
    pub async fn evaluate<F>(
        &self,
        timeout: Option<i64>,
        run: F,
    ) -> Result<promql::Value, api::ApiError>
    where
        F: FnOnce(&promql::Engine, &tsdb::Db) -> Result<promql::Value, promql::QueryError>
            + Send
            + 'static,
    {
        let limit = timeout
            .and_then(|ms| u64::try_from(ms).ok())
            .map(Duration::from_millis)
            .map_or(self.0.query_timeout, |t| t.min(self.0.query_timeout));
        let monitor = self.clone();
        let started = std::time::Instant::now();
        let task = tokio::task::spawn_blocking(move || run(&monitor.0.engine, &monitor.0.db));
        let outcome = tokio::time::timeout(limit, task).await;
        self.0.metrics.observe_query(started.elapsed());
        match outcome {
            Err(_) => Err(api::ApiError {
                kind: api::ErrorType::Timeout,
                message: format!("query timed out in expression evaluation after {limit:?}"),
            }),
            Ok(Err(e)) => Err(api::ApiError {
                kind: api::ErrorType::Internal,
                message: format!("query failed: {e}"),
            }),
            Ok(Ok(result)) => result.map_err(api::ApiError::from),
        }
    }

    /// `/api/v1/metadata`'s data: by family name, optionally one name, at most `limit` names.
    pub fn metadata_json(&self, metric: Option<&str>, limit: Option<usize>) -> serde_json::Value {
        let Ok(table) = self.0.metadata.lock() else {
            return serde_json::json!({});
        };
        let entries = table
            .iter()
            .filter(|(name, _)| metric.is_none_or(|m| m == name.as_str()))
            .take(limit.unwrap_or(usize::MAX))
            .map(|(name, list)| {
                let list: Vec<_> = list
                    .iter()
                    .map(|(kind, help, unit)| {
                        serde_json::json!({"type": kind.as_str(), "help": help, "unit": unit})
                    })
                    .collect();
                (name.clone(), serde_json::Value::Array(list))
            });
        serde_json::Value::Object(entries.collect())
    }
}

/// The store side of the scrape loops: samples into the store (and out by remote write),
/// metadata into the table.
struct Store(Arc<Inner>);

impl scrape::Sink for Store {
    fn append(&self, points: Vec<Point>) {
        let stats = self.0.db.append_batch(&points);
        self.0.metrics.record_append(&stats);
        if let Some(remote) = &self.0.remote {
            remote.push(points);
        }
    }

    fn metadata(&self, families: &[Family]) {
        let Ok(mut table) = self.0.metadata.lock() else {
            return;
        };
        for family in families {
            let entry = (family.kind, family.help.clone(), family.unit.clone());
            let list = table.entry(family.name.clone()).or_default();
            if !list.contains(&entry) {
                list.push(entry);
            }
        }
    }
}

/// The targets from the configuration: its jobs, those of `prometheus_config`, and the
/// built-in collectors.
fn targets(settings: &Settings, collectors: &builtin::Collectors) -> anyhow::Result<Vec<Target>> {
    let config = &settings.monitor;
    let mut jobs: Vec<ScrapeJob> = config.jobs.clone();
    let (mut interval, mut timeout) = (config.scrape_interval, config.scrape_timeout);
    if let Some(path) = &config.prometheus_config {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "failed to read monitor.prometheus_config {}",
                path.display()
            )
        })?;
        let imported = prometheus_yml::parse(&text).with_context(|| {
            format!(
                "failed to read monitor.prometheus_config {}",
                path.display()
            )
        })?;
        for key in &imported.ignored {
            tracing::warn!(
                key,
                "prometheus.yml key not supported; the job is scraped without it"
            );
        }
        interval = imported.scrape_interval.unwrap_or(interval);
        timeout = imported.scrape_timeout.unwrap_or(timeout);
        jobs.extend(imported.jobs);
    }
    let mut out = Vec::new();
    for job in jobs {
        let job_interval = job.interval.unwrap_or(interval);
        let job_timeout = job.timeout.unwrap_or(timeout).min(job_interval);
        for target in &job.targets {
            out.push(Target {
                job: job.name.clone(),
                instance: target.clone(),
                source: Source::Http(format!("{}://{target}{}", job.scheme, job.metrics_path)),
                interval: job_interval,
                timeout: job_timeout,
                labels: job.labels.clone(),
            });
        }
    }
    out.extend(collectors.targets(interval, timeout.min(interval)));
    Ok(out)
}

/// Opens the store, starts the scrape, flush and retention loops, and returns the state
/// with a handle that stops them.
pub async fn start(settings: &Settings) -> anyhow::Result<(Monitor, Running)> {
    let config: &MonitorConfig = &settings.monitor;
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "failed to create monitor.data_dir {}",
            config.data_dir.display()
        )
    })?;
    let db = tsdb::Db::open(tsdb::Options {
        dir: config.data_dir.clone(),
        retention: config.retention,
        retention_bytes: config.retention_bytes,
        ..tsdb::Options::default()
    })
    .with_context(|| format!("failed to open the store in {}", config.data_dir.display()))?;
    let collectors = builtin::Collectors::connect(settings).await?;
    let targets = targets(settings, &collectors)?;
    let remote = config
        .remote_write_url
        .as_ref()
        .map(|url| {
            remote_write::RemoteWriter::spawn(remote_write::RemoteWriteConfig::new(url.as_str()))
        })
        .transpose()?;
    let engine = promql::Engine {
        lookback_ms: i64::try_from(config.lookback.as_millis()).unwrap_or(300_000),
        max_samples: config.query_max_samples,
        ..promql::Engine::default()
    };
    let annotations = annotations::Annotations::open(&config.data_dir)?;
    let inner = Arc::new_cyclic(|me: &std::sync::Weak<Inner>| {
        let mut targets = targets;
        if config.self_scrape {
            targets.push(self_target(me.clone(), config, &targets));
        }
        Inner {
            db,
            engine,
            metadata: Mutex::default(),
            targets: targets
                .into_iter()
                .map(|t| (t, Arc::new(Mutex::new(Health::default()))))
                .collect(),
            remote,
            collectors,
            annotations,
            retention: config.retention,
            query_timeout: Duration::from_secs(120),
            metrics: metrics::MonitorMetrics::default(),
        }
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let client = reqwest::Client::builder()
        .user_agent(concat!("fastpick-monitor/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("failed to build the scrape client")?;
    let mut tasks = Vec::new();
    let sink: Arc<dyn scrape::Sink> = Arc::new(Store(inner.clone()));
    for (target, health) in &inner.targets {
        tasks.push(tokio::spawn(scrape::run(
            target.clone(),
            client.clone(),
            sink.clone(),
            health.clone(),
            stop_rx.clone(),
        )));
    }
    tasks.push(tokio::spawn(housekeeping(
        inner.clone(),
        config.flush_interval,
        stop_rx.clone(),
    )));
    tracing::info!(
        targets = inner.targets.len(),
        data_dir = %config.data_dir.display(),
        "monitor role started"
    );
    let monitor = Monitor(inner);
    Ok((
        monitor.clone(),
        Running {
            monitor,
            stop: stop_tx,
            tasks,
        },
    ))
}

/// Writes new chunks and the head checkpoint every `flush_interval`, and applies
/// retention; flushes once more when stopped.
async fn housekeeping(inner: Arc<Inner>, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        let db = inner.clone();
        let result = tokio::task::spawn_blocking(move || {
            db.db.flush()?;
            let now = scrape::now_ms();
            let kept = i64::try_from(db.retention.as_millis()).unwrap_or(i64::MAX);
            if let Err(e) = db.annotations.maintain(now.saturating_sub(kept)) {
                tracing::error!(error = %e, "monitor annotations retention failed");
            }
            db.db.maintain(now)
        })
        .await;
        match result {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "monitor store flush failed"),
            Err(e) => tracing::error!(error = %e, "monitor store flush panicked"),
        }
    }
}

/// The running loops of a started monitor.
pub struct Running {
    monitor: Monitor,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops scraping (series get staleness markers), flushes the store and the remote
    /// writer's queue.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        let inner = self.monitor.0.clone();
        let flushed = tokio::task::spawn_blocking(move || inner.db.flush()).await;
        if !matches!(flushed, Ok(Ok(()))) {
            tracing::error!("monitor store failed its last flush");
        }
        if let Some(remote) = &self.monitor.0.remote {
            remote.shutdown().await;
        }
        self.monitor.0.collectors.clone().close().await;
    }
}

/// The monitor's routes: the query API, the runs, its own `/metrics`, the collectors' pages,
/// and the dashboard for every other path.
pub fn router(monitor: Monitor) -> Router {
    let site = Arc::new(crate::web::Site::load("dashboard"));
    api::router()
        .merge(annotations::router())
        .merge(metrics::router())
        .merge(builtin::router())
        .fallback(move |request: axum::extract::Request| {
            let site = site.clone();
            async move { dashboard(&site, request) }
        })
        // Query answers are JSON of a few to hundreds of KiB, refetched every scrape interval
        // by each open dashboard: gzip them (the dashboard's files come precompressed).
        .layer(tower_http::compression::CompressionLayer::new())
        .with_state(monitor)
}

/// The dashboard's files; unknown API paths answer in the API's error shape.
fn dashboard(site: &crate::web::Site, request: axum::extract::Request) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path = request.uri().path();
    if path.starts_with("/api/") {
        return api::ApiError {
            kind: api::ErrorType::NotFound,
            message: format!("no API endpoint {path}"),
        }
        .into_response();
    }
    site.answer(request.method(), path, request.headers())
        .into_response(request.method())
        .map(axum::body::Body::from)
}

/// The monitor scrapes itself (job `fastpick-monitor`), as Prometheus does in its default
/// configuration, so the dashboard shows its CPU and memory beside the other processes.
fn self_target(me: std::sync::Weak<Inner>, config: &MonitorConfig, others: &[Target]) -> Target {
    let render: scrape::Render = Arc::new(move || {
        let me = me.clone();
        Box::pin(async move {
            me.upgrade()
                .and_then(|inner| {
                    metrics::render(&inner, crate::metrics::exposition::Format::Prometheus).ok()
                })
                .unwrap_or_default()
        })
    });
    let interval = others
        .iter()
        .map(|t| t.interval)
        .min()
        .unwrap_or(config.scrape_interval);
    Target {
        job: "fastpick-monitor".into(),
        instance: config.listen.to_string(),
        source: Source::Builtin(render),
        interval,
        timeout: config.scrape_timeout.min(interval),
        labels: Default::default(),
    }
}

/// Serves the monitor on a bound listener until `shutdown` resolves.
pub async fn serve(
    settings: &Settings,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // The self-scrape's `instance` is the address really bound (the configured port may be 0).
    let mut settings = settings.clone();
    settings.monitor.listen = listener.local_addr()?;
    let (monitor, running) = start(&settings).await?;
    let app = router(monitor);
    tracing::info!(listen = %listener.local_addr()?, "monitor role listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .context("monitor server failed")?;
    running.stop().await;
    Ok(())
}
