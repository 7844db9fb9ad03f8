//! Stop means stop: the binary, started with each role combination, ends within its grace
//! period after SIGINT or SIGTERM, idle or with keep-alive requests in flight, with exit code
//! 0 and a log that stays small. 200 start/stop cycles, several processes at a time on free
//! ports; a process that outlives its limit is a hang: it is killed (SIGKILL) and the test
//! fails. Only the binary's behaviour is checked (signals, exit codes, time to exit).

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::helpers::{SECRET, spawn_app};

/// Start/stop cycles in all.
const CYCLES: usize = 200;

/// Processes started and stopped at the same time.
const WORKERS: usize = 4;

/// The role combinations, each in turn.
const ROLES: [&str; 5] = ["proxy", "proxy+app", "app", "monitor", "proxy+app+monitor"];

/// `app.shutdown_grace` of the processes under test (in-flight requests' time after SIGTERM).
const APP_GRACE: Duration = Duration::from_secs(2);

/// pingora's longest grace period after SIGTERM: `app.shutdown_grace`, at least the proxy's
/// linger plus its settling second (server.rs); it ends once the connections are drained.
const PROXY_GRACE: Duration = Duration::from_secs(2);

/// Allowed on top of the grace periods: a debug build on a busy machine.
const MARGIN: Duration = Duration::from_secs(10);

/// A log bigger than this after one short cycle is a flood.
const MAX_LOG_BYTES: u64 = 1 << 20;

/// A `fastpick` process of a test, in a directory of its own (config, pid file, sockets, monitor
/// data, stderr); SIGKILLed if still running when dropped, and its directory removed.
pub struct Fastpick {
    child: Child,
    pub dir: PathBuf,
    /// `http://127.0.0.1:port` of the proxy, the app and the monitor, when they run.
    pub proxy: Option<String>,
    pub app: Option<String>,
    pub monitor: Option<String>,
}

impl Drop for Fastpick {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Where the processes' app role finds PostgreSQL and Redis, and the remote app a lone proxy
/// forwards to.
#[derive(Clone)]
pub struct Backends {
    pub db_port: u16,
    pub db_name: String,
    pub redis_port: u16,
    /// `ip:port` of an app for `--role proxy`.
    pub upstream: String,
}

impl Backends {
    /// PostgreSQL, Redis and the app of a test app.
    pub fn of(app: &crate::helpers::TestApp) -> Backends {
        Backends {
            db_port: app.db_port,
            db_name: app.db_name.clone(),
            redis_port: app.redis.as_ref().expect("redis").port,
            upstream: app.base.trim_start_matches("http://").to_owned(),
        }
    }
}

impl Fastpick {
    /// Starts `fastpick --role <roles>` on free ports with `extra` appended to its config
    /// (inside no section: start it with a `[section]` line). Does not wait for it.
    pub fn spawn(roles: &str, backends: &Backends, extra: &str) -> Fastpick {
        Fastpick::spawn_with_grace(roles, backends, APP_GRACE, extra)
    }

    /// [`Fastpick::spawn`] with `app.shutdown_grace = grace`.
    pub fn spawn_with_grace(
        roles: &str,
        backends: &Backends,
        grace: Duration,
        extra: &str,
    ) -> Fastpick {
        let port = || fastpick::local::free_port().expect("port");
        let has = |role: &str| roles.split('+').any(|r| r == role);
        let dir = std::env::temp_dir().join(format!(
            "fastpick-stop-{}-{:x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).expect("process dir");
        let (proxy_port, app_port, monitor_port) = (port(), port(), port());
        // A lone proxy forwards to the remote app; with the app role it uses its own.
        let upstreams = match has("app") {
            true => String::new(),
            false => format!("\"{}\"", backends.upstream),
        };
        let config = format!(
            "[proxy]\nlisten = \"127.0.0.1:{proxy_port}\"\nupstreams = [{upstreams}]\naccess_log = \"off\"\nthreads = 2\n\
             [app]\nlisten = \"127.0.0.1:{app_port}\"\nshutdown_grace = \"{}s\"\n\
             [monitor]\nlisten = \"127.0.0.1:{monitor_port}\"\ndata_dir = \"{}\"\n\
             [database]\nhost = \"127.0.0.1\"\nport = {}\nname = \"{}\"\nusername = \"postgres\"\nmax_connections = 4\nmin_connections = 1\n\
             [redis]\nhost = \"127.0.0.1\"\nport = {}\n[log]\nlevel = \"warn\"\n{extra}\n",
            grace.as_secs(),
            dir.join("monitor").display(),
            backends.db_port,
            backends.db_name,
            backends.redis_port,
        );
        let config_path = dir.join("fastpick.toml");
        std::fs::write(&config_path, config).expect("config");
        let stderr = std::fs::File::create(dir.join("stderr")).expect("stderr file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fastpick"));
        for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("FASTPICK_")) {
            cmd.env_remove(key);
        }
        cmd.env_remove("RUST_LOG")
            .args(["--role", roles, "--config"])
            .arg(&config_path)
            .env("FASTPICK_AUTH__SECRET_KEY", SECRET)
            .env("RUNTIME_DIRECTORY", &dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        // Killed with the test process, whatever ends it.
        // SAFETY: prctl is async-signal-safe and touches only the new process.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().expect("fastpick starts");
        let url = |on: bool, port: u16| on.then(|| format!("http://127.0.0.1:{port}"));
        Fastpick {
            child,
            proxy: url(has("proxy"), proxy_port),
            app: url(has("app") && !has("proxy"), app_port),
            monitor: url(has("monitor"), monitor_port),
            dir,
        }
    }

    /// The URL that shows the process serves: the API through the proxy or the app, else the
    /// monitor's readiness.
    pub fn ready_url(&self) -> String {
        match (&self.proxy, &self.app, &self.monitor) {
            (Some(base), _, _) | (None, Some(base), _) => format!("{base}/api/v1/coupons"),
            (None, None, Some(base)) => format!("{base}/-/ready"),
            (None, None, None) => unreachable!("no role"),
        }
    }

    /// Waits until every role answers 200; `Err` with the log when the process exits first
    /// or `limit` passes.
    pub async fn wait_ready(&mut self, limit: Duration) -> Result<(), String> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("client");
        let mut urls = vec![self.ready_url()];
        if let (Some(_), Some(monitor)) = (&self.proxy, &self.monitor) {
            urls.push(format!("{monitor}/-/ready"));
        }
        let start = Instant::now();
        for url in urls {
            loop {
                if let Ok(Some(status)) = self.child.try_wait() {
                    return Err(format!("exited ({status}) before serving: {}", self.log()));
                }
                if let Ok(r) = client.get(&url).send().await
                    && r.status() == 200
                {
                    break;
                }
                if start.elapsed() > limit {
                    return Err(format!("{url} not ready in {limit:?}: {}", self.log()));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(())
    }

    /// Sends a signal.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child, not reaped yet (Drop reaps it).
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    /// Waits for the exit, at most `limit`: its status, or `None` (still running).
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if start.elapsed() > limit {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Bytes written to stderr so far.
    pub fn log_bytes(&self) -> u64 {
        std::fs::metadata(self.dir.join("stderr")).map_or(0, |m| m.len())
    }

    /// The start of the log (for failure messages).
    pub fn log(&self) -> String {
        let text = std::fs::read(self.dir.join("stderr")).unwrap_or_default();
        String::from_utf8_lossy(&text[..text.len().min(4000)]).into_owned()
    }
}

/// One start/stop cycle.
#[derive(Debug, Clone, Copy)]
struct Cycle {
    roles: &'static str,
    signal: i32,
    loaded: bool,
}

impl Cycle {
    /// The n-th cycle: roles in turn; SIGINT twice as often as SIGTERM (pingora's quick stop is
    /// where the hang was); every other run of 15 under load.
    fn nth(n: usize) -> Cycle {
        Cycle {
            roles: ROLES[n % ROLES.len()],
            signal: match (n / ROLES.len()) % 3 {
                2 => libc::SIGTERM,
                _ => libc::SIGINT,
            },
            loaded: (n / 15) % 2 == 1,
        }
    }

    /// The grace period of this stop: what the binary may use by design.
    fn grace(&self) -> Duration {
        if self.signal == libc::SIGTERM && self.roles.contains("proxy") {
            // pingora's grace period, then its runtimes' graceful stop, then the side roles'.
            PROXY_GRACE + APP_GRACE * 2
        } else {
            // The app's (or a side role's) drain; SIGINT stops pingora at once.
            APP_GRACE
        }
    }

    fn signal_name(&self) -> &'static str {
        if self.signal == libc::SIGTERM {
            "SIGTERM"
        } else {
            "SIGINT"
        }
    }
}

/// What one cycle found.
struct Outcome {
    cycle: Cycle,
    stop_time: Duration,
    requests: usize,
    failure: Option<String>,
}

/// Keep-alive clients sending `url` in a loop until `stop`; counts answered requests.
fn start_load(url: String, stop: Arc<AtomicBool>, answered: Arc<AtomicUsize>) {
    for _ in 0..4 {
        let (url, stop, answered) = (url.clone(), stop.clone(), answered.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("client");
            while !stop.load(Ordering::Relaxed) {
                let ok = match client.get(&url).send().await {
                    Ok(r) => r.status() == 200 && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if ok {
                    answered.fetch_add(1, Ordering::Relaxed);
                } else {
                    // The process is stopping: its refusals are expected.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        });
    }
}

async fn run_cycle(cycle: Cycle, backends: &Backends) -> Outcome {
    let mut outcome = Outcome {
        cycle,
        stop_time: Duration::ZERO,
        requests: 0,
        failure: None,
    };
    // A port taken between free_port() and the bind (other tests run too): start again.
    let mut attempt = 0;
    let mut proc = loop {
        attempt += 1;
        let mut proc = Fastpick::spawn(cycle.roles, backends, "");
        match proc.wait_ready(Duration::from_secs(60)).await {
            Ok(()) => break proc,
            Err(e) if attempt < 3 && e.contains("failed to bind") => continue,
            Err(e) => {
                outcome.failure = Some(format!("did not start: {e}"));
                return outcome;
            }
        }
    };
    let stop_load = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    if cycle.loaded {
        start_load(proc.ready_url(), stop_load.clone(), answered.clone());
        let start = Instant::now();
        while answered.load(Ordering::Relaxed) < 20 && start.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    } else {
        // Idle, but not straight after the first answer.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let limit = cycle.grace() + MARGIN;
    let signalled = Instant::now();
    proc.signal(cycle.signal);
    let status = proc.wait_exit(limit).await;
    outcome.stop_time = signalled.elapsed();
    stop_load.store(true, Ordering::Relaxed);
    outcome.requests = answered.load(Ordering::Relaxed);
    let log_bytes = proc.log_bytes();
    outcome.failure = match status {
        None => Some(format!(
            "HANG: still running {limit:?} after {} (killed); log {log_bytes} bytes: {}",
            cycle.signal_name(),
            proc.log()
        )),
        Some(status) if status.code() != Some(0) => Some(format!(
            "exited with {status} after {}: {}",
            cycle.signal_name(),
            proc.log()
        )),
        Some(_) if log_bytes > MAX_LOG_BYTES => {
            Some(format!("log of {log_bytes} bytes: {}", proc.log()))
        }
        Some(_) if cycle.loaded && outcome.requests < 20 => Some(format!(
            "only {} requests answered under load",
            outcome.requests
        )),
        Some(_) => None,
    };
    outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_role_combination_stops_within_its_grace_period_on_sigint_and_sigterm() {
    // The remote app of `--role proxy`, and the database and Redis of the processes' app role.
    let app = spawn_app().await;
    let backends = Backends::of(&app);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        let (next, backends) = (next.clone(), backends.clone());
        workers.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= CYCLES {
                    return outcomes;
                }
                outcomes.push(run_cycle(Cycle::nth(n), &backends).await);
            }
        }));
    }
    let mut outcomes = Vec::new();
    for w in workers {
        outcomes.extend(w.await.expect("worker"));
    }
    assert_eq!(outcomes.len(), CYCLES);
    let mut report = String::new();
    for roles in ROLES {
        for signal in [libc::SIGINT, libc::SIGTERM] {
            for loaded in [false, true] {
                let times: Vec<Duration> = outcomes
                    .iter()
                    .filter(|o| {
                        o.cycle.roles == roles
                            && o.cycle.signal == signal
                            && o.cycle.loaded == loaded
                            && o.stop_time > Duration::ZERO
                    })
                    .map(|o| o.stop_time)
                    .collect();
                let Some(max) = times.iter().max() else {
                    continue;
                };
                let name = Cycle {
                    roles,
                    signal,
                    loaded,
                }
                .signal_name();
                report.push_str(&format!(
                    "  {roles:18} {name:7} {:6}: {:3} stops, slowest {max:.2?}\n",
                    if loaded { "loaded" } else { "idle" },
                    times.len(),
                ));
            }
        }
    }
    let failures: Vec<String> = outcomes
        .iter()
        .filter_map(|o| {
            o.failure.as_ref().map(|f| {
                format!(
                    "{} {} {}: {f}",
                    o.cycle.roles,
                    o.cycle.signal_name(),
                    if o.cycle.loaded { "loaded" } else { "idle" }
                )
            })
        })
        .collect();
    let hangs = failures.iter().filter(|f| f.contains("HANG")).count();
    let requests: usize = outcomes.iter().map(|o| o.requests).sum();
    eprintln!(
        "stop cycles: {CYCLES} in {:.0?} ({WORKERS} at a time), {requests} requests under load, {hangs} hangs, {} failures\n{report}",
        started.elapsed(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    drop(app);
}

#[test]
fn the_cycles_cover_every_role_with_both_signals_idle_and_loaded() {
    let cycles: Vec<Cycle> = (0..CYCLES).map(Cycle::nth).collect();
    for roles in ROLES {
        for signal in [libc::SIGINT, libc::SIGTERM] {
            for loaded in [false, true] {
                let n = cycles
                    .iter()
                    .filter(|c| c.roles == roles && c.signal == signal && c.loaded == loaded)
                    .count();
                assert!(n >= 3, "{roles} {signal} {loaded}: {n}");
            }
        }
    }
}

/// SIGTERM drains the proxy: a request in flight when the signal comes is answered even when
/// it outlasts pingora's shortest grace period (its body trickles in over 3 s), and the
/// process exits once it is, long before `app.shutdown_grace`. Once through the in-process
/// app, once through a remote one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_answers_a_slow_request_in_flight_then_exits() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app().await;
    let backends = Backends::of(&app);
    let grace = Duration::from_secs(60);
    for roles in ["proxy+app", "proxy"] {
        let mut proc = Fastpick::spawn_with_grace(roles, &backends, grace, "");
        proc.wait_ready(Duration::from_secs(60))
            .await
            .expect("ready");
        let base = proc.proxy.clone().expect("proxy");
        let body = br#"{"email":"nobody@fastpick.test","password":"not-the-password"}"#;
        let mut conn = tokio::net::TcpStream::connect(base.trim_start_matches("http://"))
            .await
            .expect("connect");
        let head = format!(
            "POST /api/v1/auth/login HTTP/1.1\r\nhost: fastpick\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        conn.write_all(head.as_bytes()).await.expect("head");
        conn.write_all(&body[..1]).await.expect("first byte");
        // In flight once the proxy counts it (the scrape itself is the other one).
        let deadline = Instant::now() + Duration::from_secs(30);
        let metrics = format!("{base}/actuator/proxy/prometheus");
        loop {
            let text = reqwest::get(&metrics)
                .await
                .expect("scrape")
                .text()
                .await
                .expect("text");
            let in_flight = text
                .lines()
                .find(|l| l.starts_with("fastpick_proxy_requests_in_flight{"))
                .and_then(|l| l.rsplit(' ').next()?.parse::<i64>().ok());
            if in_flight.is_some_and(|n| n >= 2) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{roles}: never in flight: {text}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let signalled = Instant::now();
        proc.signal(libc::SIGTERM);
        // The rest of the body in three parts, a second apart: 3 s after the signal.
        let rest = &body[1..];
        let third = rest.len().div_ceil(3);
        for part in rest.chunks(third) {
            tokio::time::sleep(Duration::from_secs(1)).await;
            conn.write_all(part).await.expect("body part");
        }
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(30), conn.read_to_end(&mut answer))
            .await
            .expect("the answer in time")
            .expect("read");
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with("HTTP/1.1 401"),
            "{roles}: {answer:?} {}",
            proc.log()
        );
        let status = proc.wait_exit(Duration::from_secs(30)).await;
        assert!(
            status.is_some_and(|s| s.success()),
            "{roles}: {status:?} {}",
            proc.log()
        );
        let took = signalled.elapsed();
        eprintln!("{roles}: the slow request answered, exit {took:?} after SIGTERM");
        assert!(took < grace / 2, "{roles}: waited out the grace: {took:?}");
    }
}
