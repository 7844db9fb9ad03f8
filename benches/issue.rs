//! Issuing strategies side by side, each against the release binary on one local PostgreSQL
//! and Redis: the 1,000-VU race, sustained issuing with distinct users, and rejections on a
//! sold-out coupon next to raw `redis-benchmark` EVAL of the gate's own script.
//!
//! Run: `cargo bench --bench issue` (needs postgresql and redis-server, which ship redis-benchmark).
//! BENCH_SECONDS (5) sets the sustained and rejection phases' length; BENCH_STRATEGIES
//! (comma-separated) runs only those strategies.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use hyper::Method;
use hyper::body::Bytes;
use secrecy::SecretString;
use sqlx::PgPool;

use fastpick::load::client::{Conn, Outcome, Target};
use fastpick::load::stats::{Stats, Summary, Thresholds};
use fastpick::token::TokenKeys;

mod common;
use common::{App, SECRET};

const STRATEGIES: [&str; 3] = ["db-lock", "db-atomic", "redis-gate"];
const CONNS: usize = 64;

fn start_app(strategy: &str, pg: u16, redis: u16, port: u16) -> anyhow::Result<App> {
    let min_conns = std::env::var("BENCH_MIN_CONNS").unwrap_or_else(|_| "10".into());
    common::start_app(
        pg,
        redis,
        port,
        &[
            ("FASTPICK_ISSUE__STRATEGY", strategy.to_owned()),
            ("FASTPICK_DATABASE__MIN_CONNECTIONS", min_conns),
        ],
    )
}

async fn new_coupon(db: &PgPool, total: i32) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(
        "insert into tb_coupon (created_at, updated_at, brand, title, summary, description, total_quantity, issued_quantity,
             limit_per_user, is_sold_out, start_at, end_at, use_status)
         values (now(), now(), 'NIKE', '[단독] NIKE 스니커즈', 's', 'd', $1, 0, 1, false, now() - interval '2 days', now() + interval '30 days', 'AVAILABLE')
         returning id",
    )
    .bind(total)
    .fetch_one(db)
    .await?)
}

/// Inserts users `<prefix><i>` and returns their tokens.
async fn users(
    db: &PgPool,
    keys: &TokenKeys,
    prefix: &str,
    n: usize,
) -> anyhow::Result<Vec<String>> {
    let emails: Vec<String> = (0..n).map(|i| format!("{prefix}{i}@bench.kr")).collect();
    let rows: Vec<(i64, String)> = sqlx::query_as(
        "insert into tb_user (created_at, updated_at, email, password, name, role)
         select now(), now(), e, 'x', 'b', 'USER' from unnest($1::text[]) e returning id, email",
    )
    .bind(&emails)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|(id, e)| keys.access_token(*id, e, "USER", Duration::from_secs(3600)))
        .collect()
}

/// Sends one issue request per token from `workers` connections until the tokens or the time run out.
async fn drive(
    base: &str,
    tokens: Arc<Vec<String>>,
    coupon: i64,
    workers: usize,
    limit: Duration,
) -> anyhow::Result<Summary> {
    let target = Target::parse(base).await?;
    let stats = Stats::new();
    let next = Arc::new(AtomicUsize::new(0));
    let body = Bytes::from(format!("{{\"couponId\":{coupon}}}"));
    let start = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..workers {
        let (target, tokens, next, body, stats) = (
            target.clone(),
            tokens.clone(),
            next.clone(),
            body.clone(),
            stats.clone(),
        );
        handles.push(tokio::spawn(async move {
            let mut conn = Conn::new(target);
            let mut rec = stats.recorder();
            while start.elapsed() < limit {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(token) = tokens.get(i) else { break };
                let sent = Instant::now();
                let outcome = conn
                    .send(
                        Method::POST,
                        "/api/v1/coupon-issues",
                        Some(token),
                        Some(body.clone()),
                        Duration::from_secs(30),
                    )
                    .await;
                let ok = matches!(outcome, Outcome::Http(200 | 400, _));
                rec.record(sent.elapsed(), &outcome, ok, &[]);
            }
        }));
    }
    for h in handles {
        h.await?;
    }
    Ok(stats.summary("issue", start.elapsed(), &Thresholds::default()))
}

/// Raw `redis-benchmark` EVAL throughput of the gate's admission script on a sold-out coupon.
fn redis_eval_rps(redis_port: u16, coupon: i64) -> anyhow::Result<f64> {
    let script = fastpick::app::issues::gate::ADMIT_SCRIPT;
    let now = chrono::Utc::now().timestamp_micros() + 9 * 3_600_000_000;
    let out = Command::new("redis-benchmark")
        .args([
            "-p",
            &redis_port.to_string(),
            "-c",
            &CONNS.to_string(),
            "-n",
            "200000",
            "-q",
            "EVAL",
            script,
            "1",
            "fp:gate:epoch",
        ])
        .args([coupon.to_string(), "987654321".into(), now.to_string()])
        .output()
        .context("redis-benchmark not found (apt-get install redis-tools)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.contains("requests per second"))
        .context("no redis-benchmark result")?;
    let rps = line
        .rsplit(':')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .next()
        .unwrap_or("");
    rps.parse()
        .with_context(|| format!("unreadable redis-benchmark line: {line}"))
}

/// One race of 1,000 VUs on `coupon`, with the tokens of `csv`; returns the summary and the coupon.
async fn race(base: &str, csv: &std::path::Path, coupon: i64) -> anyhow::Result<(Summary, i64)> {
    let args = fastpick::load::race::RaceArgs {
        common: fastpick::load::CommonArgs {
            base_url: base.to_owned(),
            timeout: Duration::from_secs(60),
            json: None,
            quiet: true,
            monitor: None,
            k6: Default::default(),
        },
        users: csv.to_owned(),
        coupon_id: coupon,
        vus: 1000,
        max_failed_rate: 0.0,
        connect_at_barrier: false,
    };
    Ok((fastpick::load::race::run(&args).await?, coupon))
}

/// What one strategy's run measured.
struct Measured {
    cold: Summary,
    warm: Summary,
    floor: Summary,
    sustained: Summary,
    rejections: Summary,
    sold: i64,
}

fn main() -> anyhow::Result<()> {
    fastpick::load::raise_fd_limit();
    let secs: u64 = common::env_or("BENCH_SECONDS", 5);
    let pg = fastpick::local::start_postgres()?;
    let redis = fastpick::local::start_redis()?;
    let rt = tokio::runtime::Runtime::new()?;
    let keys = TokenKeys::new(
        &SecretString::from(SECRET.to_owned()),
        Duration::from_secs(3600),
        Duration::from_secs(3600),
    );
    let db = rt.block_on(async {
        fastpick::local::create_database(pg.port, "bench").await?;
        let db =
            PgPool::connect(&format!("postgres://postgres@127.0.0.1:{}/bench", pg.port)).await?;
        fastpick::db::run_migrations(&db).await?;
        anyhow::Ok(db)
    })?;
    let racers = Arc::new(rt.block_on(users(&db, &keys, "racer", 1000))?);
    let only = std::env::var("BENCH_STRATEGIES").unwrap_or_default();
    let mut table = Vec::new();
    for strategy in STRATEGIES {
        if !only.is_empty() && !only.split(',').any(|s| s == strategy) {
            continue;
        }
        let port = fastpick::local::free_port()?;
        let _app = start_app(strategy, pg.port, redis.port, port)?;
        let base = format!("http://127.0.0.1:{port}");
        let row = rt.block_on(async {
            // The race: 1,000 VUs, one request each, one coupon of 100. First on the app just
            // started (cold), then again on a second coupon once the app has served one race
            // (warm: pools, allocator and kernel buffers as in a sale on a running service).
            let csv = std::env::temp_dir().join(format!("fastpick-bench-{strategy}.csv"));
            let lines: String = racers.iter().map(|t| format!("u,p,{t},{t}\n")).collect();
            std::fs::write(&csv, format!("email,password,accessToken,token\n{lines}"))?;
            let cold = race(&base, &csv, new_coupon(&db, 100).await?).await?;
            let warm = race(&base, &csv, new_coupon(&db, 100).await?).await?;
            // The HTTP floor: the same burst with tokens that fail their signature check,
            // answered 401 before any Redis or PostgreSQL work.
            let forged: String = racers.iter().map(|t| format!("u,p,{t}x,{t}x\n")).collect();
            std::fs::write(&csv, format!("email,password,accessToken,token\n{forged}"))?;
            let floor = race(&base, &csv, warm.1).await?;
            std::fs::remove_file(&csv).ok();
            if std::env::var_os("BENCH_DEBUG").is_some() {
                for (label, r) in [("cold", &cold.0), ("warm", &warm.0), ("floor", &floor.0)] {
                    let l = &r.latency_ms;
                    eprintln!(
                        "{strategy} {label} race: wall {:.1} p50 {:.1} p90 {:.1} p99 {:.1} max {:.1}",
                        r.duration_s * 1000.0,
                        l.p50,
                        l.p90,
                        l.p99,
                        l.max
                    );
                }
            }
            let (cold, warm, floor) = (cold.0, warm.0, floor.0);
            // Sustained: distinct users on an ample coupon.
            let ample = new_coupon(&db, 1_000_000).await?;
            let fresh = Arc::new(users(&db, &keys, &format!("sustain-{strategy}-"), 60_000).await?);
            let sustained = drive(&base, fresh, ample, CONNS, Duration::from_secs(secs)).await?;
            // Rejections: a sold-out coupon, users who do not hold it.
            let sold = new_coupon(&db, 0).await?;
            let many: Arc<Vec<String>> =
                Arc::new(racers.iter().cycle().take(400_000).cloned().collect());
            let rejections = drive(&base, many, sold, CONNS, Duration::from_secs(secs)).await?;
            anyhow::Ok(Measured {
                cold,
                warm,
                floor,
                sustained,
                rejections,
                sold,
            })
        })?;
        table.push((strategy, row));
    }
    let last_sold = table.last().map(|(_, m)| m.sold).unwrap_or(0);
    let eval = redis_eval_rps(redis.port, last_sold)?;
    println!(
        "\nissuing strategies on 2 shared cores (app, PostgreSQL, Redis and the load generator)\n"
    );
    println!(
        "| strategy | race wall, cold / warm (1000 VUs, stock 100) | warm race p50 / p99 ms | race errors | HTTP floor (same burst, 401) | issued/s (sustained, {CONNS} conns) | sustained errors | rejections/s (sold out) | rejection errors |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let errors = |s: &Summary| {
        s.outcomes
            .iter()
            .filter(|(k, _)| k.as_str() != "200" && k.as_str() != "400")
            .map(|(_, n)| n)
            .sum::<u64>()
    };
    for (strategy, m) in &table {
        println!(
            "| {strategy} | {:.0} / {:.0} ms | {:.1} / {:.1} | {} | {:.0} ms | {:.0} | {} | {:.0} | {} |",
            m.cold.duration_s * 1000.0,
            m.warm.duration_s * 1000.0,
            m.warm.latency_ms.p50,
            m.warm.latency_ms.p99,
            errors(&m.cold) + errors(&m.warm),
            m.floor.duration_s * 1000.0,
            m.sustained.outcome("200") as f64 / m.sustained.duration_s,
            errors(&m.sustained),
            m.rejections.outcome("400") as f64 / m.rejections.duration_s,
            errors(&m.rejections)
        );
    }
    let row = |name: &str| table.iter().find(|(s, _)| *s == name).map(|(_, m)| m);
    let ratio = |pick: fn(&Measured) -> f64| match (row("db-lock"), row("redis-gate")) {
        (Some(base), Some(gate)) => pick(base) / pick(gate),
        _ => f64::NAN,
    };
    println!(
        "\nrace: redis-gate is {:.1}x faster than db-lock cold, {:.1}x warm (goal >= 10x)",
        ratio(|m| m.cold.duration_s),
        ratio(|m| m.warm.duration_s)
    );
    let rejections = row("redis-gate")
        .map(|m| m.rejections.outcome("400") as f64 / m.rejections.duration_s)
        .unwrap_or(f64::NAN);
    println!(
        "raw redis-benchmark EVAL of the admission script ({CONNS} conns): {eval:.0}/s; redis-gate rejections over HTTP are {:.0}% of it (goal >= 25%)",
        rejections * 100.0 / eval
    );
    drop((pg, redis));
    Ok(())
}
