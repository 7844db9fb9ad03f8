//! The proxy role next to Debian's nginx as a reverse proxy, in one run on this machine.
//!
//! 1. Same fixed-response upstream (one nginx worker returning a small JSON), same wrk
//!    settings, 2 nginx workers vs 2 pingora threads, access logs off on both, upstream
//!    keepalive on both: req/s, p50/p99, RSS after the run. A third row is pingora alone:
//!    this benchmark re-run as the smallest pingora proxy (one fixed peer, no filters, same
//!    server settings), which shows what pingora itself costs before any of our code.
//!    Two more columns: upstream connections opened per 1,000 proxied requests after warm-up
//!    (the upstream logs `$msec $connection $uri`; the first second of the measured run and
//!    health checks are left out), and CPU µs per request (utime + stime of the proxy's
//!    process tree from /proc over the measured run, divided by the requests wrk counted).
//! 2. The real API (`GET /api/v1/coupons/{id}`): `--role proxy+app` in one process vs
//!    `--role proxy` in front of `--role app` (two processes).
//!
//! Run: `cargo bench --bench proxy` (needs nginx-light, wrk, postgresql, redis-server).
//! BENCH_CONNS (64) and BENCH_SECONDS (10) change the wrk settings.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

mod common;
use common::{
    SECRET, cpu_seconds_tree, rss_kib_tree, run_wrk, run_wrk_counted, start_nginx_proxy,
    start_nginx_with, status_kib_tree,
};

/// A `fastpick` process of this benchmark, stopped when dropped.
struct Fastpick(Child);

impl Drop for Fastpick {
    fn drop(&mut self) {
        // SAFETY: signals our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGINT) };
        let _ = self.0.wait();
    }
}

/// Starts the binary with a role and environment settings; waits until `url` answers 200.
fn start_fastpick(role: &str, env: &[(&str, String)], url: &str) -> anyhow::Result<Fastpick> {
    let child = Command::new(env!("CARGO_BIN_EXE_fastpick"))
        .args(["--role", role])
        .env("RUST_LOG", "warn")
        .env("FASTPICK_PROXY__ACCESS_LOG", "off")
        .env("FASTPICK_PROXY__THREADS", "2")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .spawn()?;
    wait_ok(Fastpick(child), url)
}

/// Starts this benchmark again as the bare pingora proxy; waits until `url` answers 200.
fn start_bare(listen: &str, upstream: &str, url: &str) -> anyhow::Result<Fastpick> {
    let child = Command::new(std::env::current_exe()?)
        .env(BARE_ENV, format!("{listen},{upstream}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    wait_ok(Fastpick(child), url)
}

/// Waits until `url` answers 200, for at most 30 s.
fn wait_ok(proc: Fastpick, url: &str) -> anyhow::Result<Fastpick> {
    common::wait_ok(url, Duration::from_secs(30))?;
    Ok(proc)
}

struct Row {
    name: String,
    rps: f64,
    p50: f64,
    p99: f64,
    rss_mib: f64,
    /// Private (anonymous) part of the RSS: the rest is the binaries' pages.
    anon_mib: f64,
    /// CPU time of the measured processes per request.
    cpu_us: f64,
    /// Upstream connections opened per 1,000 requests after warm-up, when the upstream logs
    /// them.
    connects: Option<f64>,
}

/// The part of a measured run left out of the connection count: a new wrk run's clients
/// replace the warm-up's, whose in-flight requests were cut and their upstream connections
/// closed (by nginx and pingora alike); the pool refills at the start of the next run.
const SETTLE_SECS: f64 = 1.0;

/// Measures `url` under wrk (after a 2 s warm-up); `pids` are the processes (with their
/// children) whose memory and CPU count; `upstream_log` is the upstream's access log, when it
/// counts connections.
fn measure(
    name: &str,
    url: &str,
    pids: &[u32],
    conns: u32,
    secs: u32,
    upstream_log: Option<&std::path::Path>,
) -> anyhow::Result<Row> {
    // Warm-up: connections, pools and caches on both sides.
    run_wrk(url, conns, 2)?;
    let cpu = || pids.iter().map(|p| cpu_seconds_tree(*p)).sum::<f64>();
    let (cpu_before, started) = (cpu(), unix_secs());
    let (rps, p50, p99, requests) = run_wrk_counted(url, conns, secs)?;
    let (cpu_after, ended) = (cpu(), unix_secs());
    let rss_kib: u64 = pids.iter().map(|p| rss_kib_tree(*p)).sum();
    let anon_kib: u64 = pids.iter().map(|p| status_kib_tree(*p, "RssAnon:")).sum();
    let connects = match upstream_log {
        Some(log) => {
            // nginx writes its log buffer out at least once a second.
            std::thread::sleep(Duration::from_millis(1500));
            Some(connects_per_1000(log, started + SETTLE_SECS, ended)?)
        }
        None => None,
    };
    Ok(Row {
        name: name.to_owned(),
        rps,
        p50,
        p99,
        rss_mib: rss_kib as f64 / 1024.0,
        anon_mib: anon_kib as f64 / 1024.0,
        cpu_us: (cpu_after - cpu_before) * 1e6 / requests.max(1) as f64,
        connects,
    })
}

/// Seconds since the Unix epoch (nginx's `$msec` clock).
fn unix_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// From an upstream access log of `$msec $connection $uri` lines: connections first seen
/// between `from` and `to` per 1,000 `/api/` requests logged between them.
fn connects_per_1000(log: &std::path::Path, from: f64, to: f64) -> anyhow::Result<f64> {
    let text = std::fs::read_to_string(log).context("upstream access log")?;
    let mut first_seen = std::collections::HashMap::new();
    let mut requests = 0u64;
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let (Some(msec), Some(conn), Some(uri)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        // The proxy's health checks open their own connections: not proxied requests.
        if !uri.starts_with("/api/") {
            continue;
        }
        let Ok(at) = msec.parse::<f64>() else {
            continue;
        };
        first_seen.entry(conn.to_owned()).or_insert(at);
        if (from..=to).contains(&at) {
            requests += 1;
        }
    }
    if requests == 0 {
        bail!("no proxied request in the upstream log between {from} and {to}");
    }
    let opened = first_seen
        .values()
        .filter(|at| (from..=to).contains(*at))
        .count();
    Ok(opened as f64 * 1000.0 / requests as f64)
}

fn print(rows: &[Row]) {
    println!(
        "| | req/s | p50 ms | p99 ms | RSS MiB | of it anonymous MiB | CPU µs/req | upstream connects per 1,000 req |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in rows {
        let connects = r.connects.map_or("–".to_owned(), |c| format!("{c:.2}"));
        println!(
            "| {} | {:.0} | {:.2} | {:.2} | {:.1} | {:.1} | {:.0} | {connects} |",
            r.name, r.rps, r.p50, r.p99, r.rss_mib, r.anon_mib, r.cpu_us
        );
    }
}

/// Set (to `listen,upstream`) when this benchmark runs itself as the bare pingora proxy.
const BARE_ENV: &str = "FASTPICK_BENCH_BARE_PINGORA";

/// The smallest pingora proxy: every request to one upstream, nothing else.
struct Bare(pingora::upstreams::peer::HttpPeer);

#[async_trait::async_trait]
impl pingora::proxy::ProxyHttp for Bare {
    type CTX = ();
    fn new_ctx(&self) {}
    fn init_downstream_modules(&self, _modules: &mut pingora::modules::http::HttpModules) {}
    async fn upstream_peer(
        &self,
        _session: &mut pingora::proxy::Session,
        _ctx: &mut (),
    ) -> pingora::Result<Box<pingora::upstreams::peer::HttpPeer>> {
        Ok(Box::new(self.0.clone()))
    }
}

/// Runs the bare proxy until killed (in the re-executed benchmark process).
fn run_bare(spec: &str) -> anyhow::Result<()> {
    let (listen, upstream) = spec.split_once(',').context("listen,upstream")?;
    let conf = pingora::server::configuration::ServerConf {
        threads: 2,
        ..Default::default()
    };
    let mut server = pingora::server::Server::new_with_opt_and_conf(None, conf);
    let peer = pingora::upstreams::peer::HttpPeer::new(upstream, false, String::new());
    let mut service = pingora::proxy::http_proxy_service(&server.configuration, Bare(peer));
    service.add_tcp(listen);
    server.add_service(service);
    server.run_forever()
}

fn main() -> anyhow::Result<()> {
    if let Ok(spec) = std::env::var(BARE_ENV) {
        return run_bare(&spec);
    }
    let conns: u32 = common::env_or("BENCH_CONNS", 64);
    let secs: u32 = common::env_or("BENCH_SECONDS", 10);
    let port = || fastpick::local::free_port();

    // 1. Fixed-response upstream, logging each request's time, connection and path.
    let upstream_port = port()?;
    let upstream = start_nginx_with(
        1,
        upstream_port,
        &format!(
            "log_format conns '$msec $connection $uri';\n\
             server {{ listen 127.0.0.1:{upstream_port}; keepalive_requests 1000000;\n\
             access_log upstream.log conns buffer=256k flush=1s;\n\
             location / {{ default_type application/json;\n\
             return 200 '{{\"code\":\"S000\",\"message\":\"Success\",\"data\":{{\"content\":[]}}}}'; }} }}"
        ),
    )?;
    let upstream_log = upstream.dir.join("upstream.log");
    let upstream_log = Some(upstream_log.as_path());
    let nginx_port = port()?;
    let nginx = start_nginx_proxy(2, nginx_port, upstream_port)?;
    let proxy_port = port()?;
    let proxy = start_fastpick(
        "proxy",
        &[
            ("FASTPICK_PROXY__LISTEN", format!("127.0.0.1:{proxy_port}")),
            (
                "FASTPICK_PROXY__UPSTREAMS",
                format!("[\"127.0.0.1:{upstream_port}\"]"),
            ),
        ],
        &format!("http://127.0.0.1:{proxy_port}/api/x"),
    )?;
    let nginx_row = measure(
        "nginx (2 workers)",
        &format!("http://127.0.0.1:{nginx_port}/api/x"),
        &[nginx.child.id()],
        conns,
        secs,
        upstream_log,
    )?;
    let ours_row = measure(
        "fastpick --role proxy (2 threads)",
        &format!("http://127.0.0.1:{proxy_port}/api/x"),
        &[proxy.0.id()],
        conns,
        secs,
        upstream_log,
    )?;
    let bare_port = port()?;
    let bare = start_bare(
        &format!("127.0.0.1:{bare_port}"),
        &format!("127.0.0.1:{upstream_port}"),
        &format!("http://127.0.0.1:{bare_port}/api/x"),
    )?;
    let bare_row = measure(
        "pingora alone (smallest proxy, 2 threads)",
        &format!("http://127.0.0.1:{bare_port}/api/x"),
        &[bare.0.id()],
        conns,
        secs,
        upstream_log,
    )?;
    drop((proxy, nginx, bare, upstream));
    println!(
        "\nreverse proxy over a fixed-response upstream (nginx, 1 worker): wrk -t2 -c{conns} -d{secs}s, 2 shared cores\n"
    );
    let ratios = |row: &Row| {
        (
            row.rps / nginx_row.rps,
            row.p99 / nginx_row.p99,
            row.rss_mib / nginx_row.rss_mib,
        )
    };
    let (ours, bare) = (ratios(&ours_row), ratios(&bare_row));
    print(&[nginx_row, ours_row, bare_row]);
    println!(
        "\nfastpick / nginx: req/s {:.2}x (goal >= 1.0), p99 {:.2}x (goal <= 1.2), RSS {:.2}x (goal <= 1.0)",
        ours.0, ours.1, ours.2
    );
    println!(
        "pingora alone / nginx: req/s {:.2}x, p99 {:.2}x, RSS {:.2}x",
        bare.0, bare.1, bare.2
    );

    // 2. The real API: one process vs two.
    let pg = fastpick::local::start_postgres()?;
    let redis = fastpick::local::start_redis()?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(fastpick::local::create_database(pg.port, "bench"))?;
    let db_env = [
        ("DB_HOST", "127.0.0.1".to_owned()),
        ("DB_PORT", pg.port.to_string()),
        ("DB_NAME", "bench".to_owned()),
        ("DB_USERNAME", "postgres".to_owned()),
        ("REDIS_PORT", redis.port.to_string()),
        ("SECRET_KEY", SECRET.to_owned()),
    ];
    let seeded = Command::new(env!("CARGO_BIN_EXE_fastpick"))
        .args(["seed", "coupons", "--count", "1000"])
        .envs(db_env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .status()?;
    if !seeded.success() {
        bail!("seeding failed");
    }
    let path = "/api/v1/coupons/19";
    let one_port = port()?;
    let mut env = db_env.to_vec();
    env.push(("FASTPICK_PROXY__LISTEN", format!("127.0.0.1:{one_port}")));
    let one = start_fastpick(
        "proxy+app",
        &env,
        &format!("http://127.0.0.1:{one_port}{path}"),
    )?;
    let one_row = measure(
        "proxy+app, one process (hyper front)",
        &format!("http://127.0.0.1:{one_port}{path}"),
        &[one.0.id()],
        conns,
        secs,
        None,
    )?;
    drop(one);
    let app_port = port()?;
    let mut env = db_env.to_vec();
    env.push(("FASTPICK_APP__LISTEN", format!("127.0.0.1:{app_port}")));
    let app = start_fastpick("app", &env, &format!("http://127.0.0.1:{app_port}{path}"))?;
    let two_port = port()?;
    let proxy = start_fastpick(
        "proxy",
        &[
            ("FASTPICK_PROXY__LISTEN", format!("127.0.0.1:{two_port}")),
            (
                "FASTPICK_PROXY__UPSTREAMS",
                format!("[\"127.0.0.1:{app_port}\"]"),
            ),
        ],
        &format!("http://127.0.0.1:{two_port}{path}"),
    )?;
    let two_row = measure(
        "proxy -> app, two processes (TCP)",
        &format!("http://127.0.0.1:{two_port}{path}"),
        &[proxy.0.id(), app.0.id()],
        conns,
        secs,
        None,
    )?;
    let direct_row = measure(
        "app alone (no proxy)",
        &format!("http://127.0.0.1:{app_port}{path}"),
        &[app.0.id()],
        conns,
        secs,
        None,
    )?;
    drop((proxy, app));
    println!("\nGET {path} (PostgreSQL read per request): wrk -t2 -c{conns} -d{secs}s\n");
    let ratio = one_row.rps / two_row.rps;
    print(&[one_row, two_row, direct_row]);
    println!("\none process / two processes: req/s {ratio:.2}x");
    drop((pg, redis));
    Ok(())
}
