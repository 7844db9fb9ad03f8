//! VM1 as users meet it: the reverse proxy and the API together, in one run on this machine.
//!
//! Three ways to be VM1, started once and measured in turns (rounds interleave them, so drift
//! hits all three alike), each with wrk -t2 -c64 on two paths:
//! - D: `GET /api/v1/coupons/19` (one coupon, a primary-key read),
//! - S: `GET /api/v1/coupons?search=nike&filterType=ISSUING` (the original search),
//!
//! over 1,000,000 coupons seeded by the original recipe:
//! 1. `--role app` alone: the floor, no proxy at all;
//! 2. Debian's nginx (2 workers, the original's proxy settings, upstream keepalive) in front
//!    of that same app over TCP;
//! 3. `--role proxy+app` (2 threads): pingora's listener, hyper serving its connections, and
//!    the app's router in the same process, no socket between (`src/proxy/front.rs`).
//!
//! Per row: the median over rounds of req/s and p99, the CPU time of every process of the
//! row (user + system, /proc) per request, and the resident memory of every process of the
//! row after the run. Ratios are against nginx → app. Cached search pages live an hour here,
//! so no expiry falls inside a measured window (`cargo bench --bench search` compares the
//! search with the cache off and on).
//!
//! Run: `cargo bench --bench vm1` (needs nginx-light, wrk, postgresql, redis-server).
//! BENCH_COUPONS (1000000), BENCH_ROUNDS (3), BENCH_SECONDS (10), BENCH_CONNS (64).

use std::process::Command;
use std::time::{Duration, Instant};

mod common;
use common::{
    Spawned, cpu_seconds_tree, env_or, median, rss_kib_tree, run_wrk, seed_coupons, vm1_env,
    vm1_role,
};

/// One way to be VM1.
struct Setup {
    name: &'static str,
    port: u16,
    /// Every process whose CPU and memory count for this row.
    pids: Vec<u32>,
}

/// One measured run.
#[derive(Clone, Copy)]
struct Run {
    rps: f64,
    p99: f64,
    cpu_us: f64,
}

/// CPU seconds of processes and their children (nginx's workers).
fn cpu_tree(pids: &[u32]) -> f64 {
    pids.iter().map(|&p| cpu_seconds_tree(p)).sum()
}

fn measure(setup: &Setup, path: &str, conns: u32, secs: u32) -> anyhow::Result<Run> {
    let url = format!("http://127.0.0.1:{}{path}", setup.port);
    run_wrk(&url, conns, 2)?; // warm-up
    let before = cpu_tree(&setup.pids);
    let (rps, _, p99) = run_wrk(&url, conns, secs)?;
    let cpu = cpu_tree(&setup.pids) - before;
    let requests = rps * f64::from(secs);
    Ok(Run {
        rps,
        p99,
        cpu_us: cpu / requests.max(1.0) * 1e6,
    })
}

/// Starts the release binary with a role; waits until `path` answers 200.
fn start(role: &str, env: &[(&str, String)], port: u16, path: &str) -> anyhow::Result<Spawned> {
    let child = Spawned::spawn(vm1_role(
        &mut Command::new(env!("CARGO_BIN_EXE_fastpick")),
        role,
        env,
    ))?;
    wait_ok(port, path)?;
    Ok(child)
}

/// Waits (at most 60 s) until `path` answers 200 on `port`.
fn wait_ok(port: u16, path: &str) -> anyhow::Result<()> {
    common::wait_ok(
        &format!("http://127.0.0.1:{port}{path}"),
        Duration::from_secs(60),
    )
}

fn main() -> anyhow::Result<()> {
    let coupons: u64 = env_or("BENCH_COUPONS", 1_000_000);
    let rounds: usize = env_or("BENCH_ROUNDS", 3).max(1);
    let secs: u32 = env_or("BENCH_SECONDS", 10);
    let conns: u32 = env_or("BENCH_CONNS", 64);
    let port = fastpick::local::free_port;
    let paths = common::VM1_PATHS;

    let pg = fastpick::local::start_postgres()?;
    let redis = fastpick::local::start_redis()?;
    tokio::runtime::Runtime::new()?.block_on(fastpick::local::create_database(pg.port, "bench"))?;
    let env = vm1_env(pg.port, redis.port);
    let seeding = Instant::now();
    seed_coupons(&env, coupons)?;
    eprintln!("seeded {coupons} coupons in {:.0?}", seeding.elapsed());

    let app_port = port()?;
    let mut app_env = env.clone();
    app_env.push(("FASTPICK_APP__LISTEN", format!("127.0.0.1:{app_port}")));
    let app = start("app", &app_env, app_port, paths[0].1)?;
    let nginx_port = port()?;
    let nginx = common::start_nginx_proxy(2, nginx_port, app_port)?;
    wait_ok(nginx_port, paths[0].1)?;
    let one_port = port()?;
    let mut one_env = env.clone();
    one_env.push(("FASTPICK_PROXY__LISTEN", format!("127.0.0.1:{one_port}")));
    let one = start("proxy+app", &one_env, one_port, paths[0].1)?;

    let setups = [
        Setup {
            name: "`--role app` alone (the floor)",
            port: app_port,
            pids: vec![app.pid()],
        },
        Setup {
            name: "nginx (2 workers) -> `--role app` over TCP",
            port: nginx_port,
            pids: vec![nginx.child.id(), app.pid()],
        },
        Setup {
            name: "`--role proxy+app` (2 threads, hyper front)",
            port: one_port,
            pids: vec![one.pid()],
        },
    ];
    // runs[setup][path] over rounds
    let mut runs: Vec<Vec<Vec<Run>>> = vec![vec![Vec::new(); paths.len()]; setups.len()];
    for round in 0..rounds {
        for (s, setup) in setups.iter().enumerate() {
            for (p, (_, path)) in paths.iter().enumerate() {
                let run = measure(setup, path, conns, secs)?;
                eprintln!(
                    "round {}: {} {}: {:.0} req/s, p99 {:.2} ms, {:.0} us CPU/req",
                    round + 1,
                    setup.name,
                    paths[p].0,
                    run.rps,
                    run.p99,
                    run.cpu_us
                );
                runs[s][p].push(run);
            }
        }
    }
    let rss: Vec<f64> = setups
        .iter()
        .map(|s| s.pids.iter().map(|p| rss_kib_tree(*p)).sum::<u64>() as f64 / 1024.0)
        .collect();
    let med = |s: usize, p: usize, f: fn(&Run) -> f64| median(runs[s][p].iter().map(f).collect());

    println!(
        "\nVM1 over {coupons} coupons: wrk -t2 -c{conns} -d{secs}s, medians of {rounds} interleaved rounds, 2 shared cores"
    );
    println!("D = GET {}, S = GET {}\n", paths[0].1, paths[1].1);
    println!(
        "| VM1 as | D req/s | S req/s | D p99 ms | S p99 ms | RSS MiB (all processes) | CPU us/req D | CPU us/req S |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    const NGINX: usize = 1;
    for (s, setup) in setups.iter().enumerate() {
        let ratio = |p: usize| {
            if s == NGINX {
                String::new()
            } else {
                format!(" ({:.2}x)", med(s, p, |r| r.rps) / med(NGINX, p, |r| r.rps))
            }
        };
        println!(
            "| {} | {:.0}{} | {:.0}{} | {:.2} | {:.2} | {:.1} | {:.0} | {:.0} |",
            setup.name,
            med(s, 0, |r| r.rps),
            ratio(0),
            med(s, 1, |r| r.rps),
            ratio(1),
            med(s, 0, |r| r.p99),
            med(s, 1, |r| r.p99),
            rss[s],
            med(s, 0, |r| r.cpu_us),
            med(s, 1, |r| r.cpu_us),
        );
    }
    const ONE: usize = 2;
    println!(
        "\nproxy+app / nginx -> app: req/s D {:.2}x, S {:.2}x (goal >= 1.1); p99 D {:.2}x, S {:.2}x (goal <= 1.0); RSS {:.2}x (goal <= 0.7)",
        med(ONE, 0, |r| r.rps) / med(NGINX, 0, |r| r.rps),
        med(ONE, 1, |r| r.rps) / med(NGINX, 1, |r| r.rps),
        med(ONE, 0, |r| r.p99) / med(NGINX, 0, |r| r.p99),
        med(ONE, 1, |r| r.p99) / med(NGINX, 1, |r| r.p99),
        rss[ONE] / rss[NGINX],
    );
    drop((one, nginx, app, redis, pg));
    Ok(())
}
