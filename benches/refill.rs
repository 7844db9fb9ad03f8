//! A popular search page expiring under load: `search.refill = each` (every request that
//! misses the page searches PostgreSQL, as a plain cache-aside does) against `shared` (the
//! default: one search refills the page, the other misses wait for its body).
//!
//! Two `--role app` on one database of 1,000,000 coupons, each with a Redis of its own so
//! neither refills the other's pages, the page TTL short so every measured window holds many
//! expiries. Rounds interleave the two; each is wrk -t2 -c64 on the original search
//! (`GET /api/v1/coupons?search=nike&filterType=ISSUING`). Per row: medians over rounds of
//! req/s, p50, p99, and the page searches the app ran per second (its
//! `fastpick_search_statement_seconds_count{statement="page"}`).
//!
//! Run: `cargo bench --bench refill` (needs wrk, postgresql, redis-server).
//! BENCH_COUPONS (1000000), BENCH_ROUNDS (3), BENCH_SECONDS (10), BENCH_CONNS (64),
//! BENCH_TTL (1s).

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;

mod common;
use common::{App, env_or, median, run_wrk, seed_coupons, start_app};

const PATH: &str = "/api/v1/coupons?search=nike&filterType=ISSUING";

/// One measured run.
#[derive(Clone, Copy)]
struct Run {
    rps: f64,
    p50: f64,
    p99: f64,
    searches_per_s: f64,
}

/// The page searches the app on `port` has run so far.
fn page_searches(port: u16) -> anyhow::Result<f64> {
    let out = Command::new("curl")
        .args([
            "-s",
            &format!("http://127.0.0.1:{port}/actuator/prometheus"),
        ])
        .output()
        .context("curl")?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| {
            l.starts_with("fastpick_search_statement_seconds_count")
                && l.contains("statement=\"page\"")
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .context("no page statement count in the app's metrics")
}

fn measure(port: u16, conns: u32, secs: u32) -> anyhow::Result<Run> {
    let url = format!("http://127.0.0.1:{port}{PATH}");
    run_wrk(&url, conns, 2)?; // warm-up
    let before = page_searches(port)?;
    let (rps, p50, p99) = run_wrk(&url, conns, secs)?;
    let searches = page_searches(port)? - before;
    Ok(Run {
        rps,
        p50,
        p99,
        searches_per_s: searches / f64::from(secs),
    })
}

fn main() -> anyhow::Result<()> {
    let coupons: u64 = env_or("BENCH_COUPONS", 1_000_000);
    let rounds: usize = env_or("BENCH_ROUNDS", 3).max(1);
    let secs: u32 = env_or("BENCH_SECONDS", 10);
    let conns: u32 = env_or("BENCH_CONNS", 64);
    let ttl: String = env_or("BENCH_TTL", "1s".to_owned());

    let pg = fastpick::local::start_postgres()?;
    let redis_each = fastpick::local::start_redis()?;
    let redis_shared = fastpick::local::start_redis()?;
    tokio::runtime::Runtime::new()?.block_on(fastpick::local::create_database(pg.port, "bench"))?;
    let seeding = Instant::now();
    seed_coupons(&common::db_env(pg.port, redis_each.port), coupons)?;
    eprintln!("seeded {coupons} coupons in {:.0?}", seeding.elapsed());

    let start = |refill: &str, redis: u16| -> anyhow::Result<(App, u16)> {
        let port = fastpick::local::free_port()?;
        let env = [
            ("FASTPICK_SEARCH__CACHE_TTL", ttl.clone()),
            ("FASTPICK_SEARCH__REFILL", refill.to_owned()),
        ];
        let app = start_app(pg.port, redis, port, &env)?;
        common::wait_ok(
            &format!("http://127.0.0.1:{port}{PATH}"),
            Duration::from_secs(60),
        )?;
        Ok((app, port))
    };
    let rows = [
        ("each", start("each", redis_each.port)?),
        ("shared", start("shared", redis_shared.port)?),
    ];

    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); rows.len()];
    for round in 0..rounds {
        for (r, (name, (_, port))) in rows.iter().enumerate() {
            let run = measure(*port, conns, secs)?;
            eprintln!(
                "round {}: refill {name}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {:.1} page searches/s",
                round + 1,
                run.rps,
                run.p50,
                run.p99,
                run.searches_per_s
            );
            runs[r].push(run);
        }
    }
    let med = |r: usize, f: fn(&Run) -> f64| median(runs[r].iter().map(f).collect());

    println!(
        "\nA page expiring under load: {coupons} coupons, search TTL {ttl}, wrk -t2 -c{conns} -d{secs}s on GET {PATH}, medians of {rounds} interleaved rounds, 2 shared cores\n"
    );
    println!("| search.refill | req/s | p50 ms | p99 ms | page searches/s |");
    println!("|---|---:|---:|---:|---:|");
    for (r, (name, _)) in rows.iter().enumerate() {
        println!(
            "| {name} | {:.0} | {:.2} | {:.2} | {:.1} |",
            med(r, |x| x.rps),
            med(r, |x| x.p50),
            med(r, |x| x.p99),
            med(r, |x| x.searches_per_s),
        );
    }
    println!(
        "\nshared / each: req/s {:.2}x, p99 {:.2}x, page searches {:.2}x",
        med(1, |x| x.rps) / med(0, |x| x.rps),
        med(1, |x| x.p99) / med(0, |x| x.p99),
        med(1, |x| x.searches_per_s) / med(0, |x| x.searches_per_s).max(f64::MIN_POSITIVE),
    );
    drop(rows);
    drop((redis_each, redis_shared, pg));
    Ok(())
}
