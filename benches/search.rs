//! Coupon search at 1,000,000 coupons. First EXPLAIN (ANALYZE, BUFFERS) of the app's own page
//! and count statements for every keyword and filter of the original scenario (plus a GHOST_
//! word and one-letter prefixes); then the original search scenario (`fastpick load search`,
//! 70% listed keywords, 30% GHOST_, random filter, think time 0.1–0.3 s) against the release
//! binary with `search.cache = off` and `= redis`, side by side on one database.
//!
//! Run: `cargo bench --bench search` (needs postgresql and redis-server).
//! BENCH_COUPONS (1000000) sets the seed size; BENCH_STAGES ("10s:50,20s:100,30s:100,5s:0")
//! the scenario's ramp; every plan is written to target/search-plans.txt.

use std::fmt::Write as _;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::NaiveDateTime;
use sqlx::PgPool;

use fastpick::app::coupons::query::{FilterType, SearchQuery, count_query, page_query};
use fastpick::app::page::PageRequest;
use fastpick::load::client::{Conn, Outcome, Target};
use fastpick::load::stats::Summary;

mod common;

const EXPLAIN: &str = "explain (analyze, buffers, costs off) ";

/// Runs one EXPLAIN ANALYZE twice (the first warms the buffers) and returns the second plan.
async fn explain(
    db: &PgPool,
    mut build: impl FnMut() -> sqlx::QueryBuilder<sqlx::Postgres>,
) -> anyhow::Result<String> {
    let mut plan = String::new();
    for _ in 0..2 {
        let lines: Vec<String> = build()
            .build_query_scalar()
            .persistent(false)
            .fetch_all(db)
            .await?;
        plan = lines.join("\n");
    }
    Ok(plan)
}

/// The "Execution Time" of a plan, in ms.
fn execution_ms(plan: &str) -> f64 {
    plan.lines()
        .find_map(|l| l.trim().strip_prefix("Execution Time: "))
        .and_then(|t| t.trim_end_matches(" ms").parse().ok())
        .unwrap_or(f64::NAN)
}

/// The plan's scan nodes, in order, without repeats ("Index Scan Backward using tb_coupon_pkey", ...).
fn scans(plan: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in plan.lines() {
        let node = line.trim().trim_start_matches("->").trim();
        if node.contains("Scan") {
            let name = node.split(" on ").next().unwrap_or(node);
            let index = node
                .split(" using ")
                .nth(1)
                .and_then(|r| r.split(' ').next())
                .map(|i| format!(" {i}"))
                .unwrap_or_default();
            let table = if index.is_empty() {
                node.split(" on ")
                    .nth(1)
                    .and_then(|r| r.split(' ').next())
                    .map(|t| format!(" {t}"))
                    .unwrap_or_default()
            } else {
                String::new()
            };
            let short = format!(
                "{}{index}{table}",
                name.split(" using ").next().unwrap_or(name)
            );
            if !out.contains(&short) {
                out.push(short);
            }
        }
    }
    out
}

/// EXPLAINs every keyword × filter; prints a table and writes the plans to `plans_path`.
async fn plans(db: &PgPool, now: NaiveDateTime, plans_path: &str) -> anyhow::Result<usize> {
    let mut words: Vec<String> = fastpick::load::search::KEYWORDS
        .iter()
        .map(|k| k.to_ascii_lowercase())
        .collect();
    words.extend(["ghost_1764000000000_123".into(), "n".into(), "스".into()]);
    let mut all = String::new();
    let mut seq_scans = 0;
    println!(
        "\nEXPLAIN (ANALYZE, BUFFERS) at this size: page = the first page (size 10 + 1), count = bounded at 1,000\n"
    );
    println!("| word | filter | page ms | count ms | access paths (page; count) |");
    println!("|---|---|---|---|---|");
    for word in &words {
        for filter in FilterType::ALL {
            let q = SearchQuery {
                words: vec![word.clone()],
                filter,
                page: PageRequest {
                    page: 0,
                    size: 10,
                    sorted: false,
                },
            };
            let page = explain(db, || page_query(&q, now, EXPLAIN)).await?;
            let count = explain(db, || count_query(&q, now, 1000, EXPLAIN)).await?;
            for plan in [&page, &count] {
                if plan.contains("Seq Scan") {
                    seq_scans += 1;
                }
            }
            println!(
                "| {word} | {} | {:.2} | {:.2} | {}; {} |",
                filter.as_str(),
                execution_ms(&page),
                execution_ms(&count),
                scans(&page).join(", "),
                scans(&count).join(", ")
            );
            writeln!(
                all,
                "== {word} {} page\n{page}\n\n== {word} {} count\n{count}\n",
                filter.as_str(),
                filter.as_str()
            )?;
        }
    }
    std::fs::write(plans_path, all).with_context(|| format!("failed to write {plans_path}"))?;
    Ok(seq_scans)
}

/// Reads one `fastpick_search_cache_lookups_total` series from the app.
async fn cache_lookups(base: &str, result: &str) -> u64 {
    let Ok(target) = Target::parse(base).await else {
        return 0;
    };
    let Outcome::Http(200, body) = Conn::new(target)
        .send(
            hyper::Method::GET,
            "/actuator/prometheus",
            None,
            None,
            Duration::from_secs(5),
        )
        .await
    else {
        return 0;
    };
    String::from_utf8_lossy(&body)
        .lines()
        .find(|l| {
            l.starts_with("fastpick_search_cache_lookups_total")
                && l.contains(&format!("result=\"{result}\""))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() -> anyhow::Result<()> {
    fastpick::load::raise_fd_limit();
    let coupons: u64 = common::env_or("BENCH_COUPONS", 1_000_000);
    let stages: String = common::env_or("BENCH_STAGES", "10s:50,20s:100,30s:100,5s:0".into());
    let pg = fastpick::local::start_postgres()?;
    let redis = fastpick::local::start_redis()?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(fastpick::local::create_database(pg.port, "bench"))?;
    let seeded = Command::new(env!("CARGO_BIN_EXE_fastpick"))
        .args(["seed", "coupons", "--count", &coupons.to_string()])
        .env("DB_HOST", "127.0.0.1")
        .env("DB_PORT", pg.port.to_string())
        .env("DB_NAME", "bench")
        .env("DB_USERNAME", "postgres")
        .env("RUST_LOG", "warn")
        .status()?;
    if !seeded.success() {
        bail!("seeding failed");
    }
    let db = rt.block_on(PgPool::connect(&format!(
        "postgres://postgres@127.0.0.1:{}/bench",
        pg.port
    )))?;
    let now = fastpick::domain::Clock::new(chrono_tz::Asia::Seoul).now();
    let plans_path = concat!(env!("CARGO_MANIFEST_DIR"), "/target/search-plans.txt");
    let seq_scans = rt.block_on(plans(&db, now, plans_path))?;
    println!("\nsequential scans in these plans: {seq_scans}; every plan: {plans_path}");

    let mut rows: Vec<(&str, Summary, u64, u64)> = Vec::new();
    for cache in ["off", "redis"] {
        let port = fastpick::local::free_port()?;
        let _app = common::start_app(
            pg.port,
            redis.port,
            port,
            &[("FASTPICK_SEARCH__CACHE", cache.to_owned())],
        )?;
        let base = format!("http://127.0.0.1:{port}");
        let args = fastpick::load::search::SearchArgs {
            common: fastpick::load::CommonArgs {
                base_url: base.clone(),
                timeout: Duration::from_secs(60),
                json: None,
                quiet: true,
                monitor: None,
                k6: Default::default(),
            },
            stages: stages.clone(),
            think_min: Duration::from_millis(100),
            think_max: Duration::from_millis(300),
            rate: None,
            duration: Duration::from_secs(60),
            max_vus: 1000,
            ghost_ratio: 0.3,
            max_p99: Duration::from_millis(2500),
            max_failed_rate: 0.01,
        };
        let summary = rt.block_on(fastpick::load::search::run(&args))?;
        let (hits, misses) = rt.block_on(async {
            (
                cache_lookups(&base, "hit").await,
                cache_lookups(&base, "miss").await,
            )
        });
        rows.push((cache, summary, hits, misses));
    }
    println!(
        "\nsearch scenario at {coupons} coupons, stages {stages}, everything on 2 shared cores\n"
    );
    println!(
        "| search.cache | requests | RPS | p50 ms | p90 ms | p99 ms | max ms | errors | cache hits / misses |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (cache, s, hits, misses) in &rows {
        println!(
            "| {cache} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {hits} / {misses} |",
            s.requests,
            s.rps,
            s.latency_ms.p50,
            s.latency_ms.p90,
            s.latency_ms.p99,
            s.latency_ms.max,
            s.unexpected
        );
    }
    let p99 = |name: &str| {
        rows.iter()
            .find(|r| r.0 == name)
            .map_or(f64::NAN, |r| r.1.latency_ms.p99)
    };
    println!(
        "\np99 cached {:.1} ms (goal < 50), uncached {:.1} ms (goal < 150); zero errors: {}",
        p99("redis"),
        p99("off"),
        rows.iter().all(|r| r.1.unexpected == 0)
    );
    drop((pg, redis));
    Ok(())
}
