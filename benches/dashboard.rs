//! The lab dashboard (`assets/dashboard/`, served by `fastpick --role monitor` at `/`) with a
//! day of lab data behind it.
//!
//! 1. Writes 24 h of the lab's series at one scrape a second into a fresh data dir through the
//!    store's API (see `dashboard/lab.rs`: the captured expositions of the app,
//!    postgres_exporter and redis_exporter, a proxy, the monitor and the host's processes;
//!    races every 3 h, search runs every 6 h, one restart): every captured series, about
//!    1,100 (98 M samples, about 75 s here). `BENCH_SERIES=boards` writes only the metric
//!    names the boards' queries use (`assets/dashboard/boards.json`) plus
//!    `fastpick_experiment_info`, about 400 series, in about half the time.
//! 2. Starts `fastpick --role monitor` on that dir (no jobs, no collectors: it scrapes only
//!    itself), checks that `/` is the dashboard, posts the runs as annotations and times every
//!    board's queries over the day through the API.
//! 3. Runs Lighthouse 12.2.3 (`benches/dashboard/package.json`, `npm ci` on first use) on
//!    Debian's chromium against `/#/race?from=now-24h&to=now`, mobile (default, simulated
//!    throttling) and `--preset=desktop`, `BENCH_RUNS` times each: scores, FCP, LCP, TBT, CLS,
//!    JS+CSS bytes, failing accessibility audits, and the top opportunities and diagnostics.
//! 4. Runs the dashboard's own refresh measurement, `node tests/browser/measure.mjs`
//!    (`MONITOR_URL`), when it exists.
//! 5. Prints the goals: performance and accessibility >= 95, JS+CSS gzip <= 60 KB, a board
//!    refresh <= 100 ms of main thread.
//!
//! Run: `cargo bench --bench dashboard` (needs chromium, nodejs >= 18.20, npm).
//! BENCH_HOURS (24) sets the data's length; BENCH_RUNS (3) the Lighthouse runs per preset;
//! BENCH_SERIES (all) `all` or `boards`; BENCH_SEED (1) the data's seed;
//! BENCH_FLUSH_SECONDS (120) how many scrapes go between flushes of the store.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use serde_json::{Value, json};

mod common;
#[path = "dashboard/lab.rs"]
mod lab;
#[path = "dashboard/lighthouse.rs"]
mod lighthouse;

use common::Spawned;
use lighthouse::{Preset, Report, median};

/// The page Lighthouse loads, after `http://127.0.0.1:PORT`.
const PAGE: &str = "/#/race?from=now-24h&to=now";
/// Goals.
const GOAL_SCORE: f64 = 95.0;
const GOAL_GZIP_BYTES: u64 = 60 * 1024;
const GOAL_REFRESH_MS: f64 = 100.0;

/// The benchmark's settings, from the environment.
struct Params {
    hours: u64,
    runs: usize,
    series: String,
    seed: u64,
    flush_seconds: u64,
}

impl Params {
    fn from_env() -> Params {
        Params {
            hours: common::env_or("BENCH_HOURS", 24).max(1),
            runs: common::env_or("BENCH_RUNS", 3).max(1),
            series: common::env_or("BENCH_SERIES", "all".to_owned()),
            seed: common::env_or("BENCH_SEED", 1),
            flush_seconds: common::env_or("BENCH_FLUSH_SECONDS", 120).max(1),
        }
    }

    /// The exact command that repeats this run.
    fn command(&self) -> String {
        format!(
            "BENCH_HOURS={} BENCH_RUNS={} BENCH_SERIES={} BENCH_SEED={} BENCH_FLUSH_SECONDS={} cargo bench --bench dashboard",
            self.hours, self.runs, self.series, self.seed, self.flush_seconds
        )
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn boards() -> anyhow::Result<Value> {
    let path = root().join("assets/dashboard/boards.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("failed to read {}", path.display()))?;
    serde_json::from_str(&text).context("assets/dashboard/boards.json is not JSON")
}

fn utc(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// What the backfill wrote.
struct Backfill {
    written: lab::Written,
    windows: Vec<lab::Window>,
    start_ms: i64,
    outage: Option<(i64, i64)>,
    jobs: Vec<(&'static str, String, &'static str)>,
    filter: String,
    seconds: f64,
    disk_bytes: u64,
}

/// Writes the lab's day into `dir` and closes the store.
fn backfill(p: &Params, dir: &Path, monitor_port: u16) -> anyhow::Result<Backfill> {
    let (filter, filter_text) = match p.series.as_str() {
        "all" => (lab::Filter::All, "every captured series".to_owned()),
        "boards" => {
            let names = lab::board_names(&boards()?);
            let text = format!(
                "only the {} names the boards' queries use (boards.json) + fastpick_experiment_info",
                names.len()
            );
            (lab::Filter::Names(names), text)
        }
        other => bail!("BENCH_SERIES is all or boards, not {other:?}"),
    };
    let steps = p.hours as i64 * 3600;
    let end_ms = now_ms() / 1000 * 1000;
    let monitor = format!("127.0.0.1:{monitor_port}");
    let mut lab = lab::Lab::new(steps, end_ms, p.seed, &filter, &monitor)?;
    eprintln!(
        "writing {} h of {} series at 1 s into {}",
        p.hours,
        lab.series(),
        dir.display()
    );
    let db = fastpick::monitor::tsdb::Db::open(fastpick::monitor::tsdb::Options {
        dir: dir.to_owned(),
        ..Default::default()
    })
    .context("failed to open the store")?;
    let started = Instant::now();
    let written = lab.write(&db, p.flush_seconds as i64, now_ms)?;
    drop(db);
    let seconds = started.elapsed().as_secs_f64();
    Ok(Backfill {
        written,
        windows: lab.windows.clone(),
        start_ms: lab.start_ms,
        outage: lab.outage(),
        jobs: lab.jobs(),
        filter: filter_text,
        seconds,
        disk_bytes: common::du_bytes(dir),
    })
}

fn print_backfill(b: &Backfill) {
    let w = &b.written;
    println!(
        "\n## data: {} scrapes of every target, 1 s apart ({:.1} h), {} to {} (the wall clock when the backfill ended)\n",
        w.steps,
        w.steps as f64 / 3600.0,
        utc(b.start_ms),
        utc(w.end_ms)
    );
    println!("series written: {}", b.filter);
    println!("\n| job | instance | series | from |");
    println!("|---|---|---|---|");
    for (job, instance, source) in &b.jobs {
        println!(
            "| {job} | {instance} | {} | {source} |",
            w.per_job.get(*job).copied().unwrap_or(0)
        );
    }
    let races = b
        .windows
        .iter()
        .filter(|w| w.scenario == lab::Scenario::Race)
        .count();
    println!(
        "\n| series | samples | rejected by the store | time | samples/s | data dir (du) | bytes/sample |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {} | {:.1} s | {:.0} | {:.1} MiB | {:.3} |",
        w.series,
        w.samples,
        w.rejected,
        b.seconds,
        w.samples as f64 / b.seconds,
        mib(b.disk_bytes),
        b.disk_bytes as f64 / w.samples as f64
    );
    println!(
        "\nload: {races} races (5 min, 1000 VUs, db-lock) and {} search runs (20 min, 40 req/s); app+proxy restart: {}",
        b.windows.len() - races,
        b.outage.map_or("none".to_owned(), |(a, e)| format!(
            "{} s down, {:.1} h into the range",
            e - a,
            a as f64 / 3600.0
        ))
    );
}

/// The monitor's configuration: the backfilled dir, no jobs, no collectors.
fn monitor_toml(port: u16, data: &Path) -> String {
    format!(
        "[monitor]\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\nscrape_interval = \"1s\"\nscrape_timeout = \"1s\"\n\
         postgres = false\nredis = false\nretention = \"15d\"\n\n[log]\nlevel = \"warn\"\n",
        data.display()
    )
}

/// Starts `fastpick --role monitor` and waits until it is ready.
fn start_monitor(work: &Path, data: &Path, port: u16) -> anyhow::Result<(Spawned, f64)> {
    let config = work.join("monitor.toml");
    std::fs::write(&config, monitor_toml(port, data))?;
    let log = std::fs::File::create(work.join("monitor.log"))?;
    let started = Instant::now();
    let monitor = Spawned::spawn(
        Command::new(env!("CARGO_BIN_EXE_fastpick"))
            .args(["--role", "monitor", "--config"])
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log)),
    )?;
    while !fastpick::local::http_ok(port, "/-/ready") {
        if started.elapsed() > Duration::from_secs(120) {
            bail!("the monitor was not ready within 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((monitor, started.elapsed().as_secs_f64()))
}

/// The monitor's HTTP side.
struct Api {
    base: String,
    client: reqwest::Client,
}

/// What `GET /` answered.
struct PageCheck {
    is_dashboard: bool,
    line: String,
}

impl Api {
    fn new(port: u16) -> anyhow::Result<Api> {
        Ok(Api {
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()?,
        })
    }

    /// `GET /`: the dashboard's index.html (as embedded at build time)?
    async fn check_page(&self) -> anyhow::Result<PageCheck> {
        let response = self.client.get(format!("{}/", self.base)).send().await?;
        let status = response.status();
        let kind = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = response.text().await?;
        let on_disk = std::fs::read_to_string(root().join("assets/dashboard/index.html")).ok();
        let title = body
            .split_once("<title>")
            .and_then(|(_, rest)| rest.split_once("</title>"))
            .map_or("", |(t, _)| t);
        let same = match &on_disk {
            None => "assets/dashboard/index.html does not exist".to_owned(),
            Some(file) if *file == body => "the same as assets/dashboard/index.html".to_owned(),
            Some(_) => {
                "differs from assets/dashboard/index.html (changed since the build?)".to_owned()
            }
        };
        let is_dashboard = status.is_success()
            && kind.starts_with("text/html")
            && on_disk.is_some()
            && body.to_ascii_lowercase().contains("<html");
        Ok(PageCheck {
            is_dashboard,
            line: format!(
                "GET / answered {status}, {kind:?}, {} bytes, title {title:?}; {same}",
                body.len()
            ),
        })
    }

    /// Posts the runs; returns how many were accepted.
    async fn post_runs(&self, b: &Backfill) -> anyhow::Result<usize> {
        let mut accepted = 0;
        for w in &b.windows {
            let (time, time_end) = (b.start_ms + w.start * 1000, b.start_ms + w.end * 1000);
            let body = match w.scenario {
                lab::Scenario::Race => json!({
                    "time": time, "timeEnd": time_end,
                    "title": "race · db-lock · 1000 VUs",
                    "text": "1000 VUs for 300 s on one coupon (100 left); simulated by benches/dashboard.rs",
                    "tags": {"scenario": "race", "strategy": "db-lock"},
                    "board": "race",
                }),
                lab::Scenario::Search => json!({
                    "time": time, "timeEnd": time_end,
                    "title": "search · redis cache · 40 req/s",
                    "text": "40 searches/s for 1200 s; simulated by benches/dashboard.rs",
                    "tags": {"scenario": "search", "search_cache": "redis"},
                    "board": "search",
                }),
            };
            let response = self
                .client
                .post(format!("{}/api/v1/annotations", self.base))
                .json(&body)
                .send()
                .await?;
            if response.status().is_success() {
                accepted += 1;
            } else {
                let status = response.status();
                eprintln!(
                    "POST /api/v1/annotations answered {status}: {}",
                    response.text().await.unwrap_or_default()
                );
            }
        }
        Ok(accepted)
    }

    /// Runs one range query; (series, error).
    async fn range(&self, expr: &str, start: i64, end: i64, step: i64) -> (usize, Option<String>) {
        let params = [
            ("query", expr.to_owned()),
            ("start", (start / 1000).to_string()),
            ("end", (end / 1000).to_string()),
            ("step", step.to_string()),
        ];
        let sent = self
            .client
            .get(format!("{}/api/v1/query_range", self.base))
            .query(&params)
            .send()
            .await;
        let body: Result<Value, String> = match sent {
            Ok(r) => r.json().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match body {
            Ok(v) if v["status"] == "success" => {
                (v["data"]["result"].as_array().map_or(0, Vec::len), None)
            }
            Ok(v) => (0, Some(format!("{}: {}", v["errorType"], v["error"]))),
            Err(e) => (0, Some(e)),
        }
    }
}

/// One board's queries over the whole range, one after another.
struct BoardTiming {
    board: String,
    queries: usize,
    empty: Vec<String>,
    errors: Vec<String>,
    total_ms: f64,
    slowest: (f64, String),
}

/// Times every board's queries over the range at a 60 s step (`$__rate_interval` as
/// Grafana makes it for that step and 1 s scrapes: 61 s).
async fn time_boards(api: &Api, boards: &Value, start: i64, end: i64) -> Vec<BoardTiming> {
    let mut out = Vec::new();
    for board in boards["boards"].as_array().into_iter().flatten() {
        let mut t = BoardTiming {
            board: board["id"].as_str().unwrap_or("?").to_owned(),
            queries: 0,
            empty: Vec::new(),
            errors: Vec::new(),
            total_ms: 0.0,
            slowest: (0.0, String::new()),
        };
        for panel in board["panels"].as_array().into_iter().flatten() {
            let id = panel["id"].as_str().unwrap_or("?");
            for q in panel["queries"].as_array().into_iter().flatten() {
                let expr = q["expr"]
                    .as_str()
                    .unwrap_or("")
                    .replace("$__rate_interval", "61s");
                let started = Instant::now();
                let (series, error) = api.range(&expr, start, end, 60).await;
                let ms = started.elapsed().as_secs_f64() * 1000.0;
                t.queries += 1;
                t.total_ms += ms;
                if ms > t.slowest.0 {
                    t.slowest = (ms, id.to_owned());
                }
                match error {
                    Some(e) => t.errors.push(format!("{id}: {e}")),
                    None if series == 0 => t.empty.push(format!("{id}: {expr}")),
                    None => {}
                }
            }
        }
        out.push(t);
    }
    out
}

fn print_boards(timings: &[BoardTiming], hours: f64) {
    println!(
        "\n## the boards' queries through the API: {hours:.0} h at step 60 s, one after another\n"
    );
    println!("| board | queries | total ms | slowest | errors | empty |");
    println!("|---|---|---|---|---|---|");
    for t in timings {
        println!(
            "| {} | {} | {:.0} | {:.0} ms ({}) | {} | {} |",
            t.board,
            t.queries,
            t.total_ms,
            t.slowest.0,
            t.slowest.1,
            t.errors.len(),
            t.empty.len()
        );
    }
    for t in timings {
        for e in &t.errors {
            println!("query error ({}): {e}", t.board);
        }
        for e in &t.empty {
            println!("no series ({}): {e}", t.board);
        }
    }
}

/// Every Lighthouse run of one preset.
struct PresetRuns {
    preset: Preset,
    reports: Vec<Report>,
    failures: Vec<String>,
}

impl PresetRuns {
    fn median(&self, f: impl Fn(&Report) -> f64) -> f64 {
        median(self.reports.iter().map(f))
    }

    /// The run whose performance score is the median one.
    fn typical(&self) -> Option<&Report> {
        let m = self.median(|r| r.performance.unwrap_or(f64::NAN));
        self.reports
            .iter()
            .find(|r| r.performance == Some(m))
            .or(self.reports.first())
    }
}

fn run_lighthouse(node_dir: &Path, url: &str, work: &Path, runs: usize) -> Vec<PresetRuns> {
    let mut out = Vec::new();
    for preset in [Preset::Mobile, Preset::Desktop] {
        let mut set = PresetRuns {
            preset,
            reports: Vec::new(),
            failures: Vec::new(),
        };
        for i in 0..runs {
            let tag = if preset == Preset::Mobile {
                "mobile"
            } else {
                "desktop"
            };
            eprintln!("lighthouse {tag} run {} of {runs}", i + 1);
            let file = work.join(format!("lighthouse-{tag}-{i}.json"));
            let load = loadavg().split(' ').next().and_then(|l| l.parse().ok());
            match lighthouse::run(node_dir, url, preset, &file, work, Duration::from_secs(300)) {
                Ok(report) => set.reports.push(Report {
                    load_before: load.unwrap_or(f64::NAN),
                    ..report
                }),
                Err(e) => set.failures.push(format!("run {}: {e:#}", i + 1)),
            }
        }
        out.push(set);
    }
    out
}

fn fmt_score(v: Option<f64>) -> String {
    v.map_or("-".into(), |s| format!("{s:.0}"))
}

fn print_lighthouse(sets: &[PresetRuns], url: &str) {
    println!(
        "\n## Lighthouse 12.2.3 on {url}\n\nchromium {}, flags `{}`; categories performance and accessibility; each run a fresh browser\n",
        chromium_version(),
        lighthouse::CHROME_FLAGS
    );
    println!(
        "| preset | run | performance | accessibility | FCP ms | LCP ms | TBT ms | CLS | JS+CSS transferred, bytes | requests | load average at start |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for set in sets {
        for (i, r) in set.reports.iter().enumerate() {
            println!(
                "| {} | {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.3} | {} | {} | {:.2} |",
                set.preset.name(),
                i + 1,
                fmt_score(r.performance),
                fmt_score(r.accessibility),
                r.fcp_ms,
                r.lcp_ms,
                r.tbt_ms,
                r.cls,
                r.js_css_transfer,
                r.requests,
                r.load_before
            );
        }
        if !set.reports.is_empty() {
            println!(
                "| **{}** | **median of {}** | **{:.0}** | **{:.0}** | **{:.0}** | **{:.0}** | **{:.0}** | **{:.3}** | **{:.0}** | | |",
                set.preset.name(),
                set.reports.len(),
                set.median(|r| r.performance.unwrap_or(f64::NAN)),
                set.median(|r| r.accessibility.unwrap_or(f64::NAN)),
                set.median(|r| r.fcp_ms),
                set.median(|r| r.lcp_ms),
                set.median(|r| r.tbt_ms),
                set.median(|r| r.cls),
                set.median(|r| r.js_css_transfer as f64),
            );
        }
    }
    for set in sets {
        for f in &set.failures {
            println!("\nLighthouse {} failed: {f}", set.preset.name());
        }
        let mut failing: BTreeMap<&str, usize> = BTreeMap::new();
        for r in &set.reports {
            for a in &r.failing_a11y {
                *failing.entry(a).or_default() += 1;
            }
            for p in &r.problems {
                println!("\nLighthouse {}: {p}", set.preset.name());
            }
        }
        let list: Vec<String> = failing
            .iter()
            .map(|(id, n)| format!("{id} in {n} of {} runs", set.reports.len()))
            .collect();
        println!(
            "\nfailing accessibility audits, {}: {}",
            set.preset.name(),
            if list.is_empty() {
                "none".to_owned()
            } else {
                list.join("; ")
            }
        );
        if let Some(r) = set.typical() {
            println!(
                "\ntop opportunities and failing diagnostics, {} (the median run):\n",
                set.preset.name()
            );
            if r.findings.is_empty() {
                println!("- none");
            }
            for (_, f) in r.findings.iter().take(10) {
                println!("- {f}");
            }
            println!("\ndiagnostics, {}:\n", set.preset.name());
            for d in &r.diagnostics {
                println!("- {d}");
            }
        }
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn chromium_version() -> String {
    Command::new(lighthouse::CHROME)
        .arg("--version")
        .stderr(Stdio::null())
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "(version unknown)".to_owned())
}

/// One script or stylesheet: identity bytes, bytes as served with `Accept-Encoding: gzip`,
/// and the encoding the server chose.
struct Asset {
    url: String,
    identity: usize,
    gzip: usize,
    encoding: String,
}

async fn fetch_len(api: &Api, url: &str, accept: &str) -> anyhow::Result<(usize, String)> {
    let response = api
        .client
        .get(url)
        .header("accept-encoding", accept)
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("{url} answered {}", response.status());
    }
    let encoding = response
        .headers()
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .to_owned();
    Ok((response.bytes().await?.len(), encoding))
}

/// The page's scripts and stylesheets as the server sends them to a gzip-only client.
async fn gzip_sizes(api: &Api, urls: &[String]) -> anyhow::Result<Vec<Asset>> {
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for url in urls.iter().filter(|u| seen.insert(u.as_str())) {
        let (identity, _) = fetch_len(api, url, "identity").await?;
        let (gzip, encoding) = fetch_len(api, url, "gzip").await?;
        out.push(Asset {
            url: url.clone(),
            identity,
            gzip,
            encoding,
        });
    }
    Ok(out)
}

fn print_assets(assets: &[Asset], base: &str) {
    println!(
        "\n## the page's scripts and stylesheets (as Lighthouse's network-requests lists them)\n"
    );
    println!("| file | bytes | sent with Accept-Encoding: gzip | encoding |");
    println!("|---|---|---|---|");
    for a in assets {
        println!(
            "| {} | {} | {} | {} |",
            a.url.strip_prefix(base).unwrap_or(&a.url),
            a.identity,
            a.gzip,
            a.encoding
        );
    }
    println!(
        "| **total** | **{}** | **{}** | |",
        assets.iter().map(|a| a.identity).sum::<usize>(),
        assets.iter().map(|a| a.gzip).sum::<usize>()
    );
}

/// What `tests/browser/measure.mjs` said, if it ran.
struct Refresh {
    output: String,
    ok: bool,
    median_ms: Option<f64>,
    seconds: f64,
}

/// Runs the dashboard author's refresh measurement, when it exists.
fn run_measure(base: &str, work: &Path) -> Option<Refresh> {
    let script = root().join("tests/browser/measure.mjs");
    if !script.exists() {
        return None;
    }
    eprintln!("running node tests/browser/measure.mjs");
    let out_path = work.join("measure.out");
    let started = Instant::now();
    let result = (|| -> anyhow::Result<bool> {
        let out = std::fs::File::create(&out_path)?;
        let mut child = lighthouse::Group::spawn(
            Command::new("node")
                .arg(&script)
                .current_dir(root())
                .env("MONITOR_URL", base)
                .env("CHROME_PATH", lighthouse::CHROME)
                .env("CHROMIUM", lighthouse::CHROME)
                .env("TMPDIR", work)
                .stdin(Stdio::null())
                .stdout(Stdio::from(out.try_clone()?))
                .stderr(Stdio::from(out)),
        )?;
        Ok(child
            .wait(Duration::from_secs(900))
            .is_some_and(|s| s.success()))
    })();
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    let (ok, output) = match result {
        Ok(ok) => (ok, output),
        Err(e) => (false, format!("{output}\nfailed to run: {e:#}")),
    };
    Some(Refresh {
        median_ms: refresh_median(&output),
        ok,
        output,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The median main-thread time of a refresh in measure.mjs's output: the first column (task)
/// of its `median` row, or else the first `N ms` after a mention of a median.
fn refresh_median(output: &str) -> Option<f64> {
    let row = output.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next()? == "median")
            .then(|| {
                words
                    .map(|w| w.parse::<f64>().ok())
                    .collect::<Option<Vec<f64>>>()
            })
            .flatten()
            .and_then(|v| v.first().copied())
    });
    row.or_else(|| output.lines().find_map(median_ms))
}

fn median_ms(line: &str) -> Option<f64> {
    let lower = line.to_ascii_lowercase();
    let rest = &lower[lower.find("median")?..];
    // A key such as `"median_ms": 12.3` names the unit before the number.
    let unit_in_key = rest.split_once(':').is_some_and(|(k, _)| k.contains("ms"));
    let mut start = None;
    for (i, c) in rest.char_indices().chain([(rest.len(), ' ')]) {
        let numeric = c.is_ascii_digit() || (c == '.' && start.is_some());
        match (numeric, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                start = None;
                if unit_in_key || rest[i..].trim_start().starts_with("ms") {
                    return rest[s..i].parse().ok();
                }
            }
            _ => {}
        }
    }
    None
}

fn pass(ok: bool) -> &'static str {
    if ok { "pass" } else { "**FAIL**" }
}

fn print_goals(
    sets: &[PresetRuns],
    assets: Option<&[Asset]>,
    refresh: Option<&Refresh>,
    skipped: Option<&str>,
) {
    println!("\n## goals\n");
    println!("| goal | measured | result |");
    println!("|---|---|---|");
    let not_measured = |goal: &str| {
        println!(
            "| {goal} | not measured: {} | - |",
            skipped.unwrap_or("see above")
        );
    };
    for set in sets {
        for (what, f) in [
            (
                "performance",
                (|r: &Report| r.performance) as fn(&Report) -> Option<f64>,
            ),
            ("accessibility", |r: &Report| r.accessibility),
        ] {
            let goal = format!(
                "Lighthouse {what}, {} >= {GOAL_SCORE:.0}",
                set.preset.name()
            );
            let m = set.median(|r| f(r).unwrap_or(f64::NAN));
            if m.is_nan() {
                not_measured(&goal);
            } else {
                println!(
                    "| {goal} | {m:.0} (median of {}) | {} |",
                    set.reports.len(),
                    pass(m >= GOAL_SCORE)
                );
            }
        }
    }
    if sets.is_empty() {
        for goal in [
            "Lighthouse performance >= 95",
            "Lighthouse accessibility >= 95",
        ] {
            not_measured(goal);
        }
    }
    let gzip_goal = "JS+CSS gzip <= 60 KB (61,440 bytes)";
    match assets {
        Some(a) if !a.is_empty() => {
            let total: usize = a.iter().map(|x| x.gzip).sum();
            println!(
                "| {gzip_goal} | {total} bytes = {:.1} KB in {} files (as served to Accept-Encoding: gzip) | {} |",
                total as f64 / 1024.0,
                a.len(),
                pass(total as u64 <= GOAL_GZIP_BYTES)
            );
        }
        _ => not_measured(gzip_goal),
    }
    let refresh_goal = "board refresh, main thread <= 100 ms (1 h of 1 s data)";
    match refresh {
        Some(Refresh {
            median_ms: Some(ms),
            ..
        }) => println!(
            "| {refresh_goal} | median {ms:.1} ms of main-thread tasks (tests/browser/measure.mjs) | {} |",
            pass(*ms <= GOAL_REFRESH_MS)
        ),
        Some(r) => println!(
            "| {refresh_goal} | measure.mjs {}; no median read from its output (above) | ? |",
            if r.ok { "ran" } else { "failed" }
        ),
        None => println!(
            "| {refresh_goal} | not measured: tests/browser/measure.mjs does not exist yet | - |"
        ),
    }
}

/// Lighthouse, the asset sizes and the refresh measurement, on a page that is the dashboard.
struct Browser {
    sets: Vec<PresetRuns>,
    assets: Option<Vec<Asset>>,
    refresh: Option<Refresh>,
    lighthouse_seconds: f64,
}

fn measure_browser(
    api: &Api,
    rt: &tokio::runtime::Runtime,
    work: &Path,
    runs: usize,
) -> anyhow::Result<Browser> {
    let node_dir = lighthouse::ensure_installed()?;
    let url = format!("{}{PAGE}", api.base);
    let started = Instant::now();
    let load_before = loadavg();
    let sets = run_lighthouse(&node_dir, &url, work, runs);
    let lighthouse_seconds = started.elapsed().as_secs_f64();
    print_lighthouse(&sets, &url);
    println!(
        "\nmachine load average (1, 5, 15 min) before the Lighthouse runs: {load_before}; after: {} ({} cores; other work on the machine slows the runs)",
        loadavg(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let urls = sets
        .iter()
        .flat_map(|s| s.reports.first())
        .map(|r| r.js_css_urls.clone())
        .next();
    let assets = match urls {
        Some(urls) => match rt.block_on(gzip_sizes(api, &urls)) {
            Ok(a) => {
                print_assets(&a, &api.base);
                Some(a)
            }
            Err(e) => {
                println!("\nfailed to fetch the page's scripts and stylesheets: {e:#}");
                None
            }
        },
        None => None,
    };
    let refresh = run_measure(&api.base, work);
    match &refresh {
        Some(r) => println!(
            "\n## tests/browser/measure.mjs (MONITOR_URL={}), {:.0} s, {}\n\n```\n{}\n```",
            api.base,
            r.seconds,
            if r.ok { "exit 0" } else { "FAILED" },
            r.output.trim_end()
        ),
        None => {
            println!("\n## refresh cost: skipped, tests/browser/measure.mjs does not exist yet")
        }
    }
    Ok(Browser {
        sets,
        assets,
        refresh,
        lighthouse_seconds,
    })
}

fn main() -> anyhow::Result<()> {
    let started = Instant::now();
    let p = Params::from_env();
    println!("reproduce: {}", p.command());
    println!(
        "(needs: apt-get install -y chromium nodejs npm; Lighthouse 12.2.3 is installed from benches/dashboard/package-lock.json with npm ci on first use)"
    );
    let work = tempfile::Builder::new()
        .prefix("fastpick-bench-dashboard-")
        .tempdir()?;
    let data = work.path().join("monitor-data");
    let port = fastpick::local::free_port()?;
    let fill = backfill(&p, &data, port)?;
    print_backfill(&fill);
    let (monitor, ready_s) = start_monitor(work.path(), &data, port)?;
    let rt = tokio::runtime::Runtime::new()?;
    let api = Api::new(port)?;
    println!(
        "\n## monitor\n\nfastpick --role monitor on 127.0.0.1:{port}: ready in {ready_s:.1} s (opening {:.1} MiB)",
        mib(fill.disk_bytes)
    );
    let page = rt.block_on(api.check_page())?;
    println!("{}", page.line);
    let posted = rt.block_on(api.post_runs(&fill))?;
    println!(
        "annotations: {posted} of {} runs posted to /api/v1/annotations",
        fill.windows.len()
    );
    let timings = rt.block_on(time_boards(
        &api,
        &boards()?,
        fill.written.end_ms - fill.written.steps.min(24 * 3600) * 1000,
        fill.written.end_ms,
    ));
    print_boards(&timings, (fill.written.steps as f64 / 3600.0).min(24.0));
    let skipped = (!page.is_dashboard).then_some(
        "GET / is not the dashboard's index.html, so Lighthouse would measure something else",
    );
    let browser = match skipped {
        Some(why) => {
            println!("\n## Lighthouse: skipped: {why}");
            None
        }
        None => Some(measure_browser(&api, &rt, work.path(), p.runs)?),
    };
    print_goals(
        browser.as_ref().map_or(&[][..], |b| &b.sets[..]),
        browser.as_ref().and_then(|b| b.assets.as_deref()),
        browser.as_ref().and_then(|b| b.refresh.as_ref()),
        skipped,
    );
    drop(monitor);
    let log = std::fs::read_to_string(work.path().join("monitor.log")).unwrap_or_default();
    if log.lines().count() > 0 {
        println!(
            "\nthe monitor logged {} lines (RUST_LOG=warn); the last: {}",
            log.lines().count(),
            log.lines().last().unwrap_or("")
        );
    }
    println!(
        "\nbench took {:.0} s: backfill {:.0} s, Lighthouse {:.0} s, measure.mjs {:.0} s",
        started.elapsed().as_secs_f64(),
        fill.seconds,
        browser.as_ref().map_or(0.0, |b| b.lighthouse_seconds),
        browser
            .as_ref()
            .and_then(|b| b.refresh.as_ref())
            .map_or(0.0, |r| r.seconds)
    );
    Ok(())
}
