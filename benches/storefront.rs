//! The storefront (`assets/storefront/`, served by `fastpick --role proxy`) with 2,000 seeded
//! coupons behind it.
//!
//! 1. Starts PostgreSQL and Redis on loopback, seeds coupons with the original recipe and
//!    starts `fastpick --role proxy+app`.
//! 2. Runs Lighthouse 12.2.3 (the install of `benches/dashboard/`, `npm ci` on first use) on
//!    Debian's chromium against the main page and a detail page, mobile (default, simulated
//!    throttling) and `--preset=desktop`, `BENCH_RUNS` times each: performance,
//!    accessibility and best-practices scores (medians), FCP, LCP, TBT, CLS, failing audits.
//! 3. Times navigation → first coupon card, cold and warm cache, median of `BENCH_TIMING_RUNS`,
//!    and the JS + CSS bytes as gzip (`node tests/browser/storefront-timing.mjs`, playwright).
//!    `BENCH_EXTERNAL_URL` (with `BENCH_EXTERNAL_CARD`, a CSS selector of a card) times another
//!    storefront the same way, for a side-by-side row (the original SPA behind nginx).
//! 4. Prints the goals: each score >= 95, JS+CSS gzip <= 35 KB.
//!
//! Run: `cargo bench --bench storefront` (needs postgresql, redis-server, chromium, nodejs,
//! npm, and `npm ci --prefix tests/browser`). BENCH_COUPONS (2000), BENCH_RUNS (3),
//! BENCH_TIMING_RUNS (7).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;

mod common;
#[allow(dead_code)]
#[path = "dashboard/lighthouse.rs"]
mod lighthouse;

use common::Spawned;
use lighthouse::{Preset, median};

const GOAL_SCORE: f64 = 95.0;
const GOAL_GZIP_BYTES: u64 = 35 * 1024;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Waits until `url` answers 200, for at most 60 s.
fn wait_ok(url: &str) -> anyhow::Result<()> {
    common::wait_ok(url, Duration::from_secs(60))
}

fn get_json(url: &str) -> anyhow::Result<Value> {
    let out = Command::new("curl").args(["-sf", url]).output()?;
    if !out.status.success() {
        bail!("GET {url} failed");
    }
    serde_json::from_slice(&out.stdout).with_context(|| format!("GET {url}: not JSON"))
}

/// One Lighthouse report's figures, with best practices (the dashboard's runner reads only
/// performance and accessibility).
struct Run {
    perf: Option<f64>,
    a11y: Option<f64>,
    best: Option<f64>,
    report: lighthouse::Report,
    failing: Vec<String>,
}

fn lighthouse_once(
    node_dir: &Path,
    url: &str,
    preset: Preset,
    out: &Path,
    tmp: &Path,
) -> anyhow::Result<Run> {
    let json = lighthouse::run_json(
        node_dir,
        url,
        preset,
        out,
        tmp,
        Duration::from_secs(300),
        "performance,accessibility,best-practices",
    )?;
    let score = |c: &str| {
        json["categories"][c]["score"]
            .as_f64()
            .map(|s| (s * 100.0).round())
    };
    let mut failing = Vec::new();
    for category in ["accessibility", "best-practices"] {
        for r in json["categories"][category]["auditRefs"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let id = r["id"].as_str().unwrap_or("");
            let audit = &json["audits"][id];
            let counted = r["weight"].as_f64().unwrap_or(0.0) > 0.0;
            if counted && audit["score"].as_f64().is_some_and(|s| s < 1.0) {
                failing.push(format!("{category}: {id}"));
            }
        }
    }
    Ok(Run {
        perf: score("performance"),
        a11y: score("accessibility"),
        best: score("best-practices"),
        report: lighthouse::read(&json),
        failing,
    })
}

fn med(runs: &[Run], f: impl Fn(&Run) -> Option<f64>) -> f64 {
    median(runs.iter().filter_map(f))
}

/// Runs the timing script against a base URL; its `RESULT` JSON.
fn timing(base: &str, card: Option<&str>, runs: usize) -> anyhow::Result<Value> {
    let mut cmd = Command::new("node");
    cmd.arg(root().join("tests/browser/storefront-timing.mjs"))
        .env("BASE_URL", base)
        .env("RUNS", runs.to_string())
        .env("CHROMIUM", lighthouse::CHROME)
        .stdin(Stdio::null());
    if let Some(card) = card {
        cmd.env("CARD", card);
    }
    let out = cmd.output().context("failed to run node")?;
    let text = String::from_utf8_lossy(&out.stdout);
    print!(
        "{}",
        text.lines()
            .filter(|l| !l.starts_with("RESULT "))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    );
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .with_context(|| format!("timing failed: {}", String::from_utf8_lossy(&out.stderr)))?;
    Ok(serde_json::from_str(line)?)
}

fn fmt(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.0}")
    } else {
        "-".into()
    }
}

fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let coupons: usize = common::env_or("BENCH_COUPONS", 2000);
    let runs: usize = common::env_or("BENCH_RUNS", 3).max(1);
    let timing_runs: usize = common::env_or("BENCH_TIMING_RUNS", 7).max(1);
    let work =
        std::env::temp_dir().join(format!("fastpick-bench-storefront-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;

    // 1. The servers and the data.
    let pg = fastpick::local::start_postgres()?;
    let redis = fastpick::local::start_redis()?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(fastpick::local::create_database(pg.port, "bench"))?;
    let env = common::db_env(pg.port, redis.port);
    common::seed_coupons(&env, coupons as u64)?;
    let port = fastpick::local::free_port()?;
    let base = format!("http://127.0.0.1:{port}");
    let _server = Spawned::spawn(
        Command::new(env!("CARGO_BIN_EXE_fastpick"))
            .args(["--role", "proxy+app"])
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("FASTPICK_PROXY__LISTEN", format!("127.0.0.1:{port}"))
            .env("FASTPICK_PROXY__ACCESS_LOG", "off")
            .stdout(Stdio::null()),
    )?;
    wait_ok(&format!("{base}/api/v1/coupons?size=1"))?;
    let first = get_json(&format!("{base}/api/v1/coupons?size=1&filterType=ISSUING"))?;
    let detail_id = first["data"]["content"][0]["id"]
        .as_i64()
        .context("no ISSUING coupon")?;
    println!(
        "fastpick --role proxy+app on {base}, {coupons} coupons; detail page /coupon/{detail_id}"
    );

    // 2. Lighthouse.
    let node_dir = lighthouse::ensure_installed()?;
    let pages = [
        ("main", "/".to_owned()),
        ("detail", format!("/coupon/{detail_id}")),
    ];
    let mut rows = Vec::new();
    let mut failing = std::collections::BTreeSet::new();
    let mut findings = Vec::new();
    for (name, path) in &pages {
        for preset in [Preset::Mobile, Preset::Desktop] {
            let mut set = Vec::new();
            for i in 0..runs {
                let out = work.join(format!("lh-{name}-{preset:?}-{i}.json"));
                match lighthouse_once(&node_dir, &format!("{base}{path}"), preset, &out, &work) {
                    Ok(run) => set.push(run),
                    Err(e) => eprintln!("lighthouse {name} {preset:?} run {i}: {e:#}"),
                }
            }
            for run in &set {
                failing.extend(
                    run.failing
                        .iter()
                        .map(|f| format!("{name} {preset:?}: {f}")),
                );
            }
            if let Some(run) = set.first() {
                findings.extend(
                    run.report
                        .findings
                        .iter()
                        .take(3)
                        .map(|(_, f)| format!("{name} {preset:?}: {f}")),
                );
            }
            rows.push((*name, preset, set));
        }
    }
    println!(
        "\nLighthouse 12.2.3 on {}, median of {runs} runs\n",
        lighthouse::CHROME
    );
    println!(
        "| page | preset | performance | accessibility | best practices | FCP ms | LCP ms | TBT ms | CLS | JS+CSS transferred B |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut min_score = f64::INFINITY;
    for (name, preset, set) in &rows {
        let (p, a, b) = (
            med(set, |r| r.perf),
            med(set, |r| r.a11y),
            med(set, |r| r.best),
        );
        min_score = min_score.min(p).min(a).min(b);
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} | {:.3} | {} |",
            preset.name(),
            fmt(p),
            fmt(a),
            fmt(b),
            fmt(med(set, |r| Some(r.report.fcp_ms))),
            fmt(med(set, |r| Some(r.report.lcp_ms))),
            fmt(med(set, |r| Some(r.report.tbt_ms))),
            med(set, |r| Some(r.report.cls)),
            fmt(med(set, |r| Some(r.report.js_css_transfer as f64))),
        );
    }
    if !failing.is_empty() {
        println!("\nAudits not passed:");
        for f in &failing {
            println!("  {f}");
        }
    }
    if !findings.is_empty() {
        println!("\nTop performance findings (first run):");
        for f in &findings {
            println!("  {f}");
        }
    }

    // 3. Time to the first card.
    println!("\nNavigation → first coupon card (playwright, Debian's chromium, no throttling)\n");
    let ours = timing(&base, None, timing_runs)?;
    let external = match std::env::var("BENCH_EXTERNAL_URL") {
        Ok(url) => {
            let card = std::env::var("BENCH_EXTERNAL_CARD")
                .unwrap_or_else(|_| "a[href^=\"/coupon/\"]".to_owned());
            Some((url.clone(), timing(&url, Some(&card), timing_runs)?))
        }
        Err(_) => None,
    };
    println!("\n| storefront | cold ms (median of {timing_runs}) | warm ms | JS+CSS gzip B |");
    println!("|---|---:|---:|---:|");
    let row = |name: &str, r: &Value| {
        println!(
            "| {name} | {} | {} | {} |",
            fmt(r["coldMedianMs"].as_f64().unwrap_or(f64::NAN)),
            fmt(r["warmMedianMs"].as_f64().unwrap_or(f64::NAN)),
            r["gzipBytes"]
        );
    };
    row("FastPick (proxy+app)", &ours);
    if let Some((url, r)) = &external {
        row(url, r);
    }
    let gzip = ours["gzipBytes"].as_u64().unwrap_or(u64::MAX);

    // 4. Goals.
    let pass = |ok: bool| if ok { "PASS" } else { "MISS" };
    println!("\nGoals");
    println!(
        "  every Lighthouse score >= {GOAL_SCORE}: lowest {} — {}",
        fmt(min_score),
        pass(min_score >= GOAL_SCORE)
    );
    println!(
        "  JS+CSS gzip <= {GOAL_GZIP_BYTES} B: {gzip} B — {}",
        pass(gzip <= GOAL_GZIP_BYTES)
    );
    println!(
        "\nRepeat: BENCH_COUPONS={coupons} BENCH_RUNS={runs} BENCH_TIMING_RUNS={timing_runs} cargo bench --bench storefront"
    );
    let _ = std::fs::remove_dir_all(&work);
    drop((pg, redis));
    Ok(())
}
