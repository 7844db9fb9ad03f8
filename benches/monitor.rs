//! The monitor role next to the stack it replaces, side by side in one run on this machine:
//! `fastpick --role monitor` (built-in PostgreSQL and Redis collectors) against Debian's
//! Prometheus + postgres_exporter + redis_exporter, both scraping the same lab every second.
//!
//! The lab: `fastpick --role proxy+app` on throwaway PostgreSQL and Redis with seeded coupons,
//! under a steady open-model search load (`fastpick load search --rate`) for the whole run.
//! Both sides scrape the app's `/actuator/prometheus` and the proxy's
//! `/actuator/proxy/prometheus` through the proxy; ours collects PostgreSQL and Redis itself,
//! Prometheus scrapes the two exporters. Measured over the run: RSS (median and max of
//! samples), CPU seconds, samples ingested, bytes on disk per sample, failed scrapes; after
//! it, the latency of the dashboards' queries (instant and 10 min range at step 15 s,
//! interleaved), and whether our `/metrics` passes `promtool check metrics`.
//!
//! Run: `cargo bench --bench monitor` (needs postgresql, redis-server, prometheus,
//! prometheus-postgres-exporter, prometheus-redis-exporter).
//! BENCH_SECONDS (600) sets the run's length; BENCH_RATE (40) the search requests per second;
//! BENCH_QUERY_REPEATS (20) the runs of each query per side; BENCH_COUPONS (10000) the seed;
//! BENCH_SAMPLE_SECONDS (2) how often RSS is read.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use serde_json::Value;

mod common;
use common::{Spawned, cpu_seconds, pid_by_cmdline, rss_kib_tree};

/// The dashboards' queries: Spring Boot/Micrometer HTTP and the proxy, PostgreSQL (Grafana
/// 9628), Redis (Grafana 763), and the processes.
const QUERIES: [(&str, &str); 15] = [
    (
        "http rps by uri",
        "sum(rate(http_server_requests_seconds_count[1m])) by (uri)",
    ),
    (
        "http p99 by uri",
        "histogram_quantile(0.99, sum(rate(http_server_requests_seconds_bucket[1m])) by (le, uri))",
    ),
    (
        "http mean latency by uri",
        "sum(rate(http_server_requests_seconds_sum[1m])) by (uri) / sum(rate(http_server_requests_seconds_count[1m])) by (uri)",
    ),
    (
        "proxy rps by route, status",
        "sum by (route, status) (rate(fastpick_proxy_requests_total[1m]))",
    ),
    (
        "proxy upstream p99",
        "histogram_quantile(0.99, sum by (le) (rate(fastpick_proxy_upstream_seconds_bucket[1m])))",
    ),
    ("lab process RSS", "fastpick_process_resident_memory_bytes"),
    (
        "pg sessions by state",
        "sum by (state) (pg_stat_activity_count)",
    ),
    ("pg commits/s", "rate(pg_stat_database_xact_commit[1m])"),
    (
        "pg tuples fetched/s",
        "irate(pg_stat_database_tup_fetched{datname=\"bench\"}[5m])",
    ),
    ("pg locks by mode", "sum by (mode) (pg_locks_count)"),
    (
        "redis commands/s",
        "irate(redis_commands_processed_total[1m])",
    ),
    ("redis memory", "redis_memory_used_bytes"),
    (
        "redis top 5 commands",
        "topk(5, irate(redis_commands_total[1m]))",
    ),
    ("redis clients", "redis_connected_clients"),
    ("targets up", "up"),
];

/// The scrape jobs both sides have.
const JOBS: usize = 4;

/// The benchmark's settings, from the environment.
struct Params {
    secs: u64,
    rate: u32,
    repeats: usize,
    coupons: u64,
    sample_every: Duration,
}

impl Params {
    fn from_env() -> Params {
        Params {
            secs: common::env_or("BENCH_SECONDS", 600),
            rate: common::env_or("BENCH_RATE", 40),
            repeats: common::env_or("BENCH_QUERY_REPEATS", 20),
            coupons: common::env_or("BENCH_COUPONS", 10_000),
            sample_every: Duration::from_secs(common::env_or("BENCH_SAMPLE_SECONDS", 2)),
        }
    }

    /// The exact command that repeats this run.
    fn command(&self) -> String {
        format!(
            "BENCH_SECONDS={} BENCH_RATE={} BENCH_QUERY_REPEATS={} BENCH_COUPONS={} BENCH_SAMPLE_SECONDS={} cargo bench --bench monitor",
            self.secs,
            self.rate,
            self.repeats,
            self.coupons,
            self.sample_every.as_secs()
        )
    }
}

/// Seconds since the epoch.
fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Polls `GET path` on a loopback port until it answers 200.
fn wait_http(port: u16, path: &str, what: &str, limit: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    while !fastpick::local::http_ok(port, path) {
        if start.elapsed() > limit {
            bail!("{what} did not answer 200 on {path} within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// A log file for a child's stderr.
fn log_file(dir: &Path, name: &str) -> anyhow::Result<Stdio> {
    let file = std::fs::File::create(dir.join(name))
        .with_context(|| format!("failed to create {name}"))?;
    Ok(Stdio::from(file))
}

/// The lab's servers and load, and both monitoring sides, running. Fields drop in order:
/// the monitors first, the servers they watch next, the temp dir last.
struct Lab {
    ours: Spawned,
    prometheus: fastpick::local::Supervised,
    prometheus_pid: u32,
    redis_exporter: Spawned,
    pg_exporter: Spawned,
    _load: Spawned,
    _app: Spawned,
    _redis: fastpick::local::Supervised,
    _pg: fastpick::local::Supervised,
    /// Configs, logs and our data dir.
    work: tempfile::TempDir,
    ours_port: u16,
}

/// Starts `fastpick --role proxy+app` on `port` and waits until its actuator answers.
fn start_app(env: &[(&str, String)], port: u16, work: &Path) -> anyhow::Result<Spawned> {
    let app = Spawned::spawn(
        Command::new(env!("CARGO_BIN_EXE_fastpick"))
            .args(["--role", "proxy+app"])
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("FASTPICK_PROXY__LISTEN", format!("127.0.0.1:{port}"))
            .env("FASTPICK_PROXY__ACCESS_LOG", "off")
            .env("FASTPICK_PROXY__THREADS", "2")
            .stdout(Stdio::null())
            .stderr(log_file(work, "lab.log")?),
    )?;
    wait_http(
        port,
        "/actuator/prometheus",
        "proxy+app",
        Duration::from_secs(60),
    )?;
    Ok(app)
}

/// Starts the search scenario at `rate` requests per second through the proxy, for longer
/// than the benchmark needs (it is stopped with the rest).
fn start_load(port: u16, rate: u32, secs: u64) -> anyhow::Result<Spawned> {
    let spawned = Spawned::spawn(
        Command::new(env!("CARGO_BIN_EXE_fastpick"))
            .args(["load", "search", "--quiet", "--max-vus", "200"])
            .args(["--base-url", &format!("http://127.0.0.1:{port}")])
            .args(["--rate", &rate.to_string()])
            .args(["--duration", &format!("{}s", secs * 2 + 900)])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .context("failed to start fastpick load")?;
    Ok(spawned)
}

/// Starts postgres_exporter and redis_exporter on free ports; returns them with their ports.
fn start_exporters(
    pg: u16,
    redis: u16,
    work: &Path,
) -> anyhow::Result<((Spawned, u16), (Spawned, u16))> {
    let pg_port = fastpick::local::free_port()?;
    let pg_exporter = Spawned::spawn(
        Command::new("prometheus-postgres-exporter")
            .arg(format!("--web.listen-address=127.0.0.1:{pg_port}"))
            .env(
                "DATA_SOURCE_NAME",
                format!("postgresql://postgres@127.0.0.1:{pg}/postgres?sslmode=disable"),
            )
            .stdout(Stdio::null())
            .stderr(log_file(work, "postgres_exporter.log")?),
    )
    .context("postgres_exporter not found: apt-get install prometheus-postgres-exporter")?;
    let redis_port = fastpick::local::free_port()?;
    let redis_exporter = Spawned::spawn(
        Command::new("prometheus-redis-exporter")
            .arg(format!("-redis.addr=redis://127.0.0.1:{redis}"))
            .arg(format!("-web.listen-address=127.0.0.1:{redis_port}"))
            .stdout(Stdio::null())
            .stderr(log_file(work, "redis_exporter.log")?),
    )
    .context("redis_exporter not found: apt-get install prometheus-redis-exporter")?;
    let limit = Duration::from_secs(30);
    wait_http(pg_port, "/metrics", "postgres_exporter", limit)?;
    wait_http(redis_port, "/metrics", "redis_exporter", limit)?;
    Ok(((pg_exporter, pg_port), (redis_exporter, redis_port)))
}

/// Prometheus's configuration: the lab's two endpoints and the two exporters, every second.
fn prometheus_yml(proxy: u16, pg_exporter: u16, redis_exporter: u16) -> String {
    format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n\
         - job_name: fastpick-app\n  metrics_path: /actuator/prometheus\n  static_configs: [{{targets: ['127.0.0.1:{proxy}']}}]\n\
         - job_name: fastpick-proxy\n  metrics_path: /actuator/proxy/prometheus\n  static_configs: [{{targets: ['127.0.0.1:{proxy}']}}]\n\
         - job_name: postgres\n  static_configs: [{{targets: ['127.0.0.1:{pg_exporter}']}}]\n\
         - job_name: redis\n  static_configs: [{{targets: ['127.0.0.1:{redis_exporter}']}}]\n"
    )
}

/// Our monitor's configuration: the same two jobs and the built-in collectors, every second.
fn monitor_toml(port: u16, data: &Path, proxy: u16, pg: u16, redis: u16) -> String {
    let job = |name: &str, path: &str| {
        format!(
            "[[monitor.jobs]]\nname = \"{name}\"\nmetrics_path = \"{path}\"\ntargets = [\"127.0.0.1:{proxy}\"]\ninterval = \"1s\"\ntimeout = \"1s\"\n\n"
        )
    };
    format!(
        "[monitor]\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\nscrape_interval = \"1s\"\nscrape_timeout = \"1s\"\npostgres = true\nredis = true\n# Prometheus does not scrape itself here either.\nself_scrape = false\n\n{}{}\
         [database]\nhost = \"127.0.0.1\"\nport = {pg}\nname = \"postgres\"\nusername = \"postgres\"\n\n\
         [redis]\nhost = \"127.0.0.1\"\nport = {redis}\n\n[log]\nlevel = \"warn\"\n",
        data.display(),
        job("fastpick-app", "/actuator/prometheus"),
        job("fastpick-proxy", "/actuator/proxy/prometheus"),
    )
}

/// Starts `fastpick --role monitor` and waits until it is ready.
fn start_ours(work: &Path, port: u16, proxy: u16, pg: u16, redis: u16) -> anyhow::Result<Spawned> {
    let config = work.join("monitor.toml");
    std::fs::write(
        &config,
        monitor_toml(port, &work.join("monitor-data"), proxy, pg, redis),
    )?;
    let ours = Spawned::spawn(
        Command::new(env!("CARGO_BIN_EXE_fastpick"))
            .args(["--role", "monitor", "--config"])
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log_file(work, "monitor.log")?),
    )?;
    wait_http(
        port,
        "/-/ready",
        "fastpick monitor",
        Duration::from_secs(60),
    )?;
    Ok(ours)
}

impl Lab {
    /// Starts everything; each part is stopped (and its files removed) when dropped.
    fn start(p: &Params) -> anyhow::Result<Lab> {
        let work = tempfile::Builder::new()
            .prefix("fastpick-bench-monitor-")
            .tempdir()?;
        let pg = fastpick::local::start_postgres()?;
        let redis = fastpick::local::start_redis()?;
        tokio::runtime::Runtime::new()?
            .block_on(fastpick::local::create_database(pg.port, "bench"))?;
        let env = common::db_env(pg.port, redis.port);
        common::seed_coupons(&env, p.coupons)?;
        let proxy_port = fastpick::local::free_port()?;
        let app = start_app(&env, proxy_port, work.path())?;
        let load = start_load(proxy_port, p.rate, p.secs)?;
        let ((pg_exporter, pg_exp_port), (redis_exporter, redis_exp_port)) =
            start_exporters(pg.port, redis.port, work.path())?;
        let prometheus = fastpick::local::start_prometheus(
            &prometheus_yml(proxy_port, pg_exp_port, redis_exp_port),
            &["--web.enable-admin-api"],
        )?;
        let needle = format!("--storage.tsdb.path={}/data", prometheus.dir.display());
        let prometheus_pid = pid_by_cmdline(&needle).context("prometheus's process not found")?;
        let ours_port = fastpick::local::free_port()?;
        let ours = start_ours(work.path(), ours_port, proxy_port, pg.port, redis.port)?;
        Ok(Lab {
            ours,
            prometheus,
            prometheus_pid,
            redis_exporter,
            pg_exporter,
            _load: load,
            _app: app,
            _redis: redis,
            _pg: pg,
            work,
            ours_port,
        })
    }

    /// The processes measured: ours, then Prometheus's three.
    fn measured(&self) -> [(&'static str, u32); 4] {
        [
            ("fastpick monitor", self.ours.pid()),
            ("prometheus", self.prometheus_pid),
            ("postgres_exporter", self.pg_exporter.pid()),
            ("redis_exporter", self.redis_exporter.pid()),
        ]
    }

    fn ours_data(&self) -> std::path::PathBuf {
        self.work.path().join("monitor-data")
    }

    fn prometheus_data(&self) -> std::path::PathBuf {
        self.prometheus.dir.join("data")
    }
}

/// One side's Prometheus HTTP API.
struct Api {
    name: &'static str,
    base: String,
    client: reqwest::Client,
}

/// A query's answer: the number of series, or the error the side gave.
type Answer = Result<usize, String>;

impl Api {
    fn new(name: &'static str, port: u16) -> anyhow::Result<Api> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()?;
        Ok(Api {
            name,
            base: format!("http://127.0.0.1:{port}"),
            client,
        })
    }

    async fn text(&self, path: &str) -> anyhow::Result<String> {
        let url = format!("{}{path}", self.base);
        let response = self.client.get(&url).send().await?;
        if !response.status().is_success() {
            bail!("{} answered {} to {path}", self.name, response.status());
        }
        Ok(response.text().await?)
    }

    /// Runs an API call and returns `data.result`, or the side's error.
    async fn result(&self, path: &str, params: &[(&str, String)]) -> Result<Value, String> {
        let query: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())))
            .finish();
        let url = format!("{}{path}?{query}", self.base);
        let response = self
            .client
            .get(&url)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let body: Value = response.json().await.map_err(|e| e.to_string())?;
        if body["status"] != "success" {
            return Err(format!("{}: {}", body["errorType"], body["error"]));
        }
        Ok(body["data"]["result"].clone())
    }

    async fn instant(&self, expr: &str, time: f64) -> Result<Value, String> {
        let params = [("query", expr.to_owned()), ("time", format!("{time:.3}"))];
        self.result("/api/v1/query", &params).await
    }

    async fn range(&self, expr: &str, end: f64) -> Result<Value, String> {
        let params = [
            ("query", expr.to_owned()),
            ("start", format!("{:.0}", end - 600.0)),
            ("end", format!("{end:.0}")),
            ("step", "15".to_owned()),
        ];
        self.result("/api/v1/query_range", &params).await
    }

    /// An instant query's value per `label`.
    async fn by_label(&self, expr: &str, label: &str, time: f64) -> BTreeMap<String, f64> {
        let Ok(Value::Array(series)) = self.instant(expr, time).await else {
            return BTreeMap::new();
        };
        series
            .iter()
            .filter_map(|s| {
                let key = s["metric"][label].as_str().unwrap_or("").to_owned();
                let value = s["value"][1].as_str()?.parse().ok()?;
                Some((key, value))
            })
            .collect()
    }

    /// Sums the samples of one metric on the side's own `/metrics`.
    async fn own_metric(&self, name: &str) -> f64 {
        let Ok(text) = self.text("/metrics").await else {
            return f64::NAN;
        };
        text.lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with([' ', '{']))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

/// Our side and Prometheus's.
struct Sides {
    ours: Api,
    theirs: Api,
}

impl Sides {
    /// Samples ingested so far: (ours, Prometheus).
    async fn samples(&self) -> (f64, f64) {
        (
            self.ours
                .own_metric("fastpick_monitor_samples_appended_total")
                .await,
            self.theirs
                .own_metric("prometheus_tsdb_head_samples_appended_total")
                .await,
        )
    }

    /// Series in the store: (ours, Prometheus).
    async fn series(&self) -> (f64, f64) {
        (
            self.ours.own_metric("fastpick_monitor_series").await,
            self.theirs.own_metric("prometheus_tsdb_head_series").await,
        )
    }

    /// Waits until every target of both sides has been scraped successfully.
    async fn wait_all_up(&self) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            let mut ready = true;
            for api in [&self.ours, &self.theirs] {
                let up = api.by_label("up", "job", now_unix()).await;
                ready &= up.len() == JOBS && up.values().all(|v| *v == 1.0);
            }
            if ready {
                return Ok(());
            }
            if start.elapsed() > Duration::from_secs(120) {
                bail!("not every target of both sides was up within 120 s");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// What was sampled from the processes during the run.
struct Usage {
    /// One row per sample: VmRSS in KiB of each measured process.
    rss_kib: Vec<[u64; 4]>,
    /// CPU seconds of each measured process over the run.
    cpu_s: [f64; 4],
    /// Share of the machine's CPU time that was busy over the run.
    machine_busy: f64,
    /// Wall-clock start and end of the run (seconds since the epoch): the samples' clock.
    wall: (f64, f64),
}

/// Busy and total jiffies of the whole machine (first line of /proc/stat).
fn machine_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let values: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = values.iter().take(8).sum();
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// Samples RSS every `every` for `secs`, and CPU at both ends.
fn watch(pids: [(&str, u32); 4], secs: u64, every: Duration) -> Usage {
    let cpu = || pids.map(|(_, pid)| cpu_seconds(pid));
    let cpu_start = cpu();
    let machine_start = machine_jiffies();
    let wall_start = now_unix();
    let start = Instant::now();
    let length = Duration::from_secs(secs);
    let mut rss_kib = Vec::new();
    let mut reported = 0;
    loop {
        rss_kib.push(pids.map(|(_, pid)| rss_kib_tree(pid)));
        let elapsed = start.elapsed();
        if elapsed >= length {
            break;
        }
        if elapsed.as_secs() / 60 > reported {
            reported = elapsed.as_secs() / 60;
            eprintln!("... {} s of {secs} s", elapsed.as_secs());
        }
        std::thread::sleep(every.min(length - elapsed));
    }
    let cpu_end = cpu();
    let machine_end = machine_jiffies();
    let busy = machine_end.0.saturating_sub(machine_start.0) as f64;
    let total = machine_end.1.saturating_sub(machine_start.1).max(1) as f64;
    Usage {
        rss_kib,
        cpu_s: std::array::from_fn(|i| cpu_end[i] - cpu_start[i]),
        machine_busy: busy / total,
        wall: (wall_start, now_unix()),
    }
}

/// The value at quantile `q` (nearest rank) of unsorted values.
fn quantile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Scrape health per job over the run: (scrapes, failed, mean duration s, max duration s).
type Health = BTreeMap<String, (f64, f64, f64, f64)>;

async fn scrape_health(api: &Api, (start, at): (f64, f64)) -> Health {
    // The samples' timestamps are wall-clock: count over the run's wall-clock span.
    let window = format!("[{}ms]", ((at - start) * 1000.0).round());
    let done = api
        .by_label(
            &format!("sum by (job) (count_over_time(up{window}))"),
            "job",
            at,
        )
        .await;
    let ok = api
        .by_label(
            &format!("sum by (job) (sum_over_time(up{window}))"),
            "job",
            at,
        )
        .await;
    let mean = api
        .by_label(
            &format!("avg by (job) (avg_over_time(scrape_duration_seconds{window}))"),
            "job",
            at,
        )
        .await;
    let max = api
        .by_label(
            &format!("max by (job) (max_over_time(scrape_duration_seconds{window}))"),
            "job",
            at,
        )
        .await;
    done.iter()
        .map(|(job, n)| {
            let failed = n - ok.get(job).copied().unwrap_or(0.0);
            let get = |m: &BTreeMap<String, f64>| m.get(job).copied().unwrap_or(f64::NAN);
            (job.clone(), (*n, failed, get(&mean), get(&max)))
        })
        .collect()
}

/// The last error each target of a side reported, from `/api/v1/targets`.
async fn last_errors(api: &Api) -> Vec<String> {
    let Ok(text) = api.text("/api/v1/targets").await else {
        return vec!["targets API unreadable".into()];
    };
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    body["data"]["activeTargets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| {
            let error = t["lastError"].as_str().filter(|e| !e.is_empty())?;
            Some(format!(
                "{}: {error}",
                t["labels"]["job"].as_str().unwrap_or("?")
            ))
        })
        .collect()
}

/// One query's timings on both sides, for one kind (instant or range).
#[derive(Default)]
struct Timing {
    ours_ms: Vec<f64>,
    theirs_ms: Vec<f64>,
    ours: Option<Answer>,
    theirs: Option<Answer>,
}

/// Times one call, keeping its series count or error.
async fn timed(
    call: impl std::future::Future<Output = Result<Value, String>>,
    ms: &mut Vec<f64>,
    answer: &mut Option<Answer>,
) {
    let start = Instant::now();
    let result = call.await;
    ms.push(start.elapsed().as_secs_f64() * 1000.0);
    *answer = Some(result.map(|v| v.as_array().map_or(0, Vec::len)));
}

/// Runs every query `repeats` times per side and kind, interleaving the sides and
/// alternating which goes first.
async fn query_latency(sides: &Sides, repeats: usize) -> Vec<(&'static str, Timing, Timing)> {
    let mut out = Vec::new();
    for (name, expr) in QUERIES {
        let (mut instant, mut range) = (Timing::default(), Timing::default());
        for rep in 0..repeats {
            let now = now_unix();
            // Grafana aligns a range's end to the step.
            let end = (now / 15.0).floor() * 15.0;
            let order = if rep % 2 == 0 {
                [(&sides.ours, true), (&sides.theirs, false)]
            } else {
                [(&sides.theirs, false), (&sides.ours, true)]
            };
            for (api, is_ours) in order {
                let t = &mut instant;
                let (ms, answer) = if is_ours {
                    (&mut t.ours_ms, &mut t.ours)
                } else {
                    (&mut t.theirs_ms, &mut t.theirs)
                };
                timed(api.instant(expr, now), ms, answer).await;
                let t = &mut range;
                let (ms, answer) = if is_ours {
                    (&mut t.ours_ms, &mut t.ours)
                } else {
                    (&mut t.theirs_ms, &mut t.theirs)
                };
                timed(api.range(expr, end), ms, answer).await;
            }
        }
        out.push((name, instant, range));
    }
    out
}

/// Runs `promtool check metrics` on our `/metrics`: (clean, promtool's complaints).
async fn promtool_clean(api: &Api) -> anyhow::Result<(bool, String)> {
    use std::io::Write as _;
    let text = api.text("/metrics").await?;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("promtool not found: apt-get install prometheus")?;
    child
        .stdin
        .take()
        .context("no stdin")?
        .write_all(text.as_bytes())?;
    let out = child.wait_with_output()?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.success() && said.trim().is_empty(), said))
}

/// Sizes on disk at the end, each with the samples it holds.
struct Disk {
    ours_bytes: u64,
    ours_parts: String,
    ours_samples: f64,
    /// Our sealed segments alone, from our own gauges: (bytes, samples).
    ours_sealed: (f64, f64),
    theirs_bytes: u64,
    theirs_parts: String,
    theirs_samples: f64,
    /// Prometheus's head written as a block by its snapshot API (no WAL): bytes, or why not.
    snapshot: Result<u64, String>,
}

/// Reads the samples, stops ours (it flushes on the way out) and sizes both data dirs, then
/// has Prometheus snapshot its head as a block.
async fn disk(lab: &mut Lab, sides: &Sides) -> Disk {
    let (ours_samples, theirs_samples) = sides.samples().await;
    let theirs_dir = lab.prometheus_data();
    let theirs_bytes = common::du_bytes(&theirs_dir);
    let part = |name: &str| common::du_bytes(&theirs_dir.join(name));
    let (wal, head) = (part("wal"), part("chunks_head"));
    let theirs_parts = format!(
        "wal {:.2} MiB + chunks_head {:.2} MiB + other {:.2} MiB",
        mib(wal),
        mib(head),
        mib(theirs_bytes.saturating_sub(wal + head))
    );
    let ours_sealed = (
        sides.ours.own_metric("fastpick_monitor_disk_bytes").await,
        sides.ours.own_metric("fastpick_monitor_disk_samples").await,
    );
    lab.ours.stop();
    let ours_dir = lab.ours_data();
    let ours_bytes = common::du_bytes(&ours_dir);
    let (segments, files) = std::fs::read_dir(&ours_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "seg"))
        .fold((0, 0), |(bytes, n), e| {
            (bytes + common::du_bytes(&e.path()), n + 1)
        });
    let checkpoint = common::du_bytes(&ours_dir.join("head.checkpoint"));
    let ours_parts = format!(
        "{files} segment file(s) {:.2} MiB + head.checkpoint {:.2} MiB + other {:.2} MiB",
        mib(segments),
        mib(checkpoint),
        mib(ours_bytes.saturating_sub(segments + checkpoint))
    );
    let snapshot = sides
        .theirs
        .client
        .post(format!(
            "{}/api/v1/admin/tsdb/snapshot?skip_head=false",
            sides.theirs.base
        ))
        .send()
        .await
        .map_err(|e| e.to_string());
    let snapshot = match snapshot {
        Ok(r) => r.json::<Value>().await.map_err(|e| e.to_string()),
        Err(e) => Err(e),
    }
    .and_then(|body| {
        let name = body["data"]["name"].as_str().ok_or(body.to_string())?;
        Ok(common::du_bytes(&theirs_dir.join("snapshots").join(name)))
    });
    Disk {
        ours_bytes,
        ours_parts,
        ours_samples,
        ours_sealed,
        theirs_bytes,
        theirs_parts,
        theirs_samples,
        snapshot,
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn ratio(ours: f64, theirs: f64) -> String {
    format!("{:.2}x", ours / theirs)
}

/// Everything measured, for the tables.
struct Report {
    usage: Usage,
    window_samples: (f64, f64),
    series: (f64, f64),
    health: (Health, Health),
    errors: (Vec<String>, Vec<String>),
    timings: Vec<(&'static str, Timing, Timing)>,
    promtool: (bool, String),
    disk: Disk,
    requests: f64,
}

fn print_resources(r: &Report, secs: u64) {
    let rss = |f: &dyn Fn(&[u64; 4]) -> u64| {
        let values: Vec<f64> = r
            .usage
            .rss_kib
            .iter()
            .map(|s| f(s) as f64 / 1024.0)
            .collect();
        (quantile(&values, 0.5), quantile(&values, 1.0))
    };
    let ours = rss(&|s| s[0]);
    let theirs = rss(&|s| s[1] + s[2] + s[3]);
    let part = |i: usize| rss(&|s| s[i]).0;
    let cpu = &r.usage.cpu_s;
    let theirs_cpu = cpu[1] + cpu[2] + cpu[3];
    let d = &r.disk;
    let ours_bps = d.ours_bytes as f64 / d.ours_samples;
    let theirs_bps = d.theirs_bytes as f64 / d.theirs_samples;
    println!(
        "| | fastpick --role monitor | Prometheus + postgres_exporter + redis_exporter | ours / theirs | goal |"
    );
    println!("|---|---|---|---|---|");
    println!(
        "| RSS median, MiB | {:.1} | {:.1} ({:.1} + {:.1} + {:.1}) | {} | <= 0.33x |",
        ours.0,
        theirs.0,
        part(1),
        part(2),
        part(3),
        ratio(ours.0, theirs.0)
    );
    println!(
        "| RSS max, MiB | {:.1} | {:.1} | {} | <= 0.33x |",
        ours.1,
        theirs.1,
        ratio(ours.1, theirs.1)
    );
    println!(
        "| CPU seconds over {secs} s | {:.1} | {theirs_cpu:.1} ({:.1} + {:.1} + {:.1}) | {} | |",
        cpu[0],
        cpu[1],
        cpu[2],
        cpu[3],
        ratio(cpu[0], theirs_cpu)
    );
    let (os, ts) = r.window_samples;
    println!(
        "| samples ingested over the run (per s) | {os:.0} ({:.0}/s) | {ts:.0} ({:.0}/s) | {} | |",
        os / secs as f64,
        ts / secs as f64,
        ratio(os, ts)
    );
    println!(
        "| series at the end | {:.0} | {:.0} | {} | |",
        r.series.0,
        r.series.1,
        ratio(r.series.0, r.series.1)
    );
    println!(
        "| data dir at the end (du), MiB | {:.2} ({}; after the shutdown flush) | {:.2} ({}) | {} | |",
        mib(d.ours_bytes),
        d.ours_parts,
        mib(d.theirs_bytes),
        d.theirs_parts,
        ratio(d.ours_bytes as f64, d.theirs_bytes as f64)
    );
    println!(
        "| samples in it (all ingested since start) | {:.0} | {:.0} | | |",
        d.ours_samples, d.theirs_samples
    );
    println!(
        "| bytes per sample (data dir) | {ours_bps:.2} | {theirs_bps:.2} | {} | ours <= 1.0 |",
        ratio(ours_bps, theirs_bps)
    );
    println!(
        "| bytes per sample, sealed chunks only (ours: fastpick_monitor_disk_bytes / disk_samples before the stop) | {:.2} ({:.0} samples) | | | |",
        d.ours_sealed.0 / d.ours_sealed.1,
        d.ours_sealed.1
    );
    match &d.snapshot {
        Ok(bytes) => {
            let bps = *bytes as f64 / d.theirs_samples;
            println!(
                "| bytes per sample, Prometheus's head as a block (snapshot API, no WAL) | | {bps:.2} ({:.2} MiB) | {} | |",
                mib(*bytes),
                ratio(ours_bps, bps)
            );
        }
        Err(e) => println!("| Prometheus snapshot | | failed: {e} | | |"),
    }
    let failed = |h: &Health| h.values().map(|v| v.1).sum::<f64>();
    let done = |h: &Health| h.values().map(|v| v.0).sum::<f64>();
    let (oh, th) = &r.health;
    println!(
        "| failed scrapes / scrapes over the run (expected {}) | {:.0} / {:.0} | {:.0} / {:.0} | | 0 |",
        JOBS as u64 * secs,
        failed(oh),
        done(oh),
        failed(th),
        done(th)
    );
    println!(
        "| our /metrics passes promtool check metrics | {} | | | yes |",
        if r.promtool.0 { "yes" } else { "no" }
    );
}

fn print_health(r: &Report) {
    println!("\nscrapes per job over the run: failed / done, mean and max scrape duration ms\n");
    println!(
        "| job | ours failed / done | ours mean / max ms | theirs failed / done | theirs mean / max ms |"
    );
    println!("|---|---|---|---|---|");
    let (oh, th) = &r.health;
    let jobs: std::collections::BTreeSet<&String> = oh.keys().chain(th.keys()).collect();
    let cell = |h: &Health, job: &String| {
        h.get(job).map_or(("-".into(), "-".into()), |v| {
            (
                format!("{:.0} / {:.0}", v.1, v.0),
                format!("{:.1} / {:.1}", v.2 * 1000.0, v.3 * 1000.0),
            )
        })
    };
    for job in jobs {
        let (o, t) = (cell(oh, job), cell(th, job));
        println!("| {job} | {} | {} | {} | {} |", o.0, o.1, t.0, t.1);
    }
    for (side, errors) in [("ours", &r.errors.0), ("Prometheus", &r.errors.1)] {
        for e in errors {
            println!("last scrape error ({side}): {e}");
        }
    }
}

fn print_queries(r: &Report, repeats: usize) {
    println!(
        "\nquery latency, ms ({repeats} runs per side and kind, interleaved; range = last 10 min at step 15 s)\n"
    );
    println!(
        "| query | kind | ours p50 | ours p90 | theirs p50 | theirs p90 | p50 ours / theirs | 95% interval | series ours / theirs |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut ratios = Vec::new();
    let mut measurably_slower = 0;
    let show = |a: &Option<Answer>| match a {
        Some(Ok(n)) => n.to_string(),
        Some(Err(e)) => format!("error: {e}"),
        None => "-".into(),
    };
    for (name, instant, range) in &r.timings {
        for (kind, t) in [("instant", instant), ("range", range)] {
            let (o50, o90) = (quantile(&t.ours_ms, 0.5), quantile(&t.ours_ms, 0.9));
            let (t50, t90) = (quantile(&t.theirs_ms, 0.5), quantile(&t.theirs_ms, 0.9));
            ratios.push(o50 / t50);
            let (lo, hi) = median_ratio_interval(&t.ours_ms, &t.theirs_ms);
            measurably_slower += usize::from(lo > 1.0);
            println!(
                "| {name} | {kind} | {o50:.2} | {o90:.2} | {t50:.2} | {t90:.2} | {} | {lo:.2}–{hi:.2} | {} / {} |",
                ratio(o50, t50),
                show(&t.ours),
                show(&t.theirs)
            );
        }
    }
    let geomean = (ratios.iter().map(|r| r.ln()).sum::<f64>() / ratios.len() as f64).exp();
    let slower = ratios.iter().filter(|r| **r > 1.0).count();
    println!(
        "\np50 ratio ours / theirs: geometric mean {geomean:.2}x; ours slower on {slower} of {}, \
         measurably slower (95% interval above 1) on {measurably_slower} (goal: no worse than Prometheus)",
        ratios.len()
    );
}

/// A 95% bootstrap interval of the ratio of the sides' medians: 2,000 resamples of each
/// side's timings, from a fixed seed, so the interval follows from the timings alone.
fn median_ratio_interval(ours: &[f64], theirs: &[f64]) -> (f64, f64) {
    if ours.is_empty() || theirs.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut pick = |n: usize| {
        // xorshift64: enough to resample; no cryptography here.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let (mut a, mut b) = (vec![0.0; ours.len()], vec![0.0; theirs.len()]);
    let mut ratios = Vec::with_capacity(2000);
    for _ in 0..2000 {
        a.iter_mut().for_each(|x| *x = ours[pick(ours.len())]);
        b.iter_mut().for_each(|x| *x = theirs[pick(theirs.len())]);
        ratios.push(quantile(&a, 0.5) / quantile(&b, 0.5));
    }
    (quantile(&ratios, 0.025), quantile(&ratios, 0.975))
}

fn print_report(r: &Report, p: &Params) {
    println!(
        "\nmonitoring the lab for {} s (wall clock: {:.1} s), every target every 1 s; search load {} req/s through the proxy ({:.0} requests served over the run); machine busy {:.0}% of 2 cores over the run\n",
        p.secs,
        r.usage.wall.1 - r.usage.wall.0,
        p.rate,
        r.requests,
        r.usage.machine_busy * 100.0
    );
    print_resources(r, p.secs);
    print_health(r);
    print_queries(r, p.repeats);
    if !r.promtool.0 {
        println!(
            "\npromtool check metrics on our /metrics said:\n{}",
            r.promtool.1
        );
    }
}

/// Runs the measurements on a started lab.
fn measure(lab: &mut Lab, p: &Params, rt: &tokio::runtime::Runtime) -> anyhow::Result<Report> {
    let sides = Sides {
        ours: Api::new("fastpick monitor", lab.ours_port)?,
        theirs: Api::new("prometheus", lab.prometheus.port)?,
    };
    rt.block_on(sides.wait_all_up())?;
    let samples_start = rt.block_on(sides.samples());
    eprintln!("both sides scrape every target; measuring for {} s", p.secs);
    let usage = watch(lab.measured(), p.secs, p.sample_every);
    let end = usage.wall.1;
    rt.block_on(async {
        let samples_end = sides.samples().await;
        let health = (
            scrape_health(&sides.ours, usage.wall).await,
            scrape_health(&sides.theirs, usage.wall).await,
        );
        let requests = sides
            .theirs
            .by_label(
                &format!(
                    "sum(increase(http_server_requests_seconds_count[{}ms]))",
                    ((usage.wall.1 - usage.wall.0) * 1000.0).round()
                ),
                "",
                end,
            )
            .await
            .values()
            .sum();
        let errors = (
            last_errors(&sides.ours).await,
            last_errors(&sides.theirs).await,
        );
        eprintln!("timing the dashboards' queries");
        let timings = query_latency(&sides, p.repeats).await;
        let series = sides.series().await;
        let promtool = promtool_clean(&sides.ours).await?;
        let disk = disk(lab, &sides).await;
        anyhow::Ok(Report {
            usage,
            window_samples: (
                samples_end.0 - samples_start.0,
                samples_end.1 - samples_start.1,
            ),
            series,
            health,
            errors,
            timings,
            promtool,
            disk,
            requests,
        })
    })
}

fn main() -> anyhow::Result<()> {
    fastpick::load::raise_fd_limit();
    let params = Params::from_env();
    println!("reproduce: {}", params.command());
    println!(
        "(needs: apt-get install -y postgresql redis-server prometheus prometheus-postgres-exporter prometheus-redis-exporter)"
    );
    let rt = tokio::runtime::Runtime::new()?;
    let mut lab = Lab::start(&params)?;
    let report = measure(&mut lab, &params, &rt);
    let ours_log = std::fs::read_to_string(lab.work.path().join("monitor.log")).unwrap_or_default();
    drop(lab);
    let report = report?;
    print_report(&report, &params);
    let warnings = ours_log.lines().count();
    if warnings > 0 {
        println!(
            "\nour monitor logged {warnings} lines (RUST_LOG=warn); the last: {}",
            ours_log.lines().last().unwrap_or("")
        );
    }
    Ok(())
}
