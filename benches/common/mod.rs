//! What the benchmarks share: the release binary and Debian's nginx started as child
//! processes on loopback, and wrk. Each benchmark uses a part of it.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A running `fastpick --role app`, stopped with SIGTERM when dropped.
pub struct App(Child);

impl Drop for App {
    fn drop(&mut self) {
        // SAFETY: signals our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

/// A benchmark setting from the environment, or its default.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The secret the benchmarks sign tokens with.
pub const SECRET: &str = "benchmark-secret-that-is-long-enough-for-hs256";

/// Starts the app on `port` against database `bench` on the given servers, with extra
/// environment settings, and waits until it accepts connections.
pub fn start_app(pg: u16, redis: u16, port: u16, env: &[(&str, String)]) -> anyhow::Result<App> {
    let child = Command::new(env!("CARGO_BIN_EXE_fastpick"))
        .args(["--role", "app"])
        .env("DB_HOST", "127.0.0.1")
        .env("DB_PORT", pg.to_string())
        .env("DB_NAME", "bench")
        .env("DB_USERNAME", "postgres")
        .env("REDIS_PORT", redis.to_string())
        .env("SECRET_KEY", SECRET)
        .env("FASTPICK_APP__LISTEN", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .spawn()?;
    let app = App(child);
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if start.elapsed() > Duration::from_secs(60) {
            bail!("app did not start");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(app)
}

/// A running nginx, stopped when dropped.
pub struct Nginx {
    pub child: Child,
    /// Its prefix directory (config, logs), removed when dropped.
    pub dir: std::path::PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM, not SIGKILL: the master then stops its workers (a killed master left them
        // running, holding their ports).
        // SAFETY: signals our own child, which has not been reaped yet.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts nginx with `workers` worker processes and these `http` block contents, listening on
/// `port` (which the contents must use), and waits until it accepts connections.
pub fn start_nginx_with(workers: u32, port: u16, http: &str) -> anyhow::Result<Nginx> {
    start_nginx_as(
        Command::new("nginx"),
        &format!("worker_processes {workers};"),
        port,
        http,
    )
}

/// Starts `cmd` (nginx, or nginx under a tool such as valgrind) with these main-context
/// settings and `http` block contents, listening on `port`, and waits (at most 60 s) until it
/// accepts connections.
pub fn start_nginx_as(
    mut cmd: Command,
    main: &str,
    port: u16,
    http: &str,
) -> anyhow::Result<Nginx> {
    let dir = std::env::temp_dir().join(format!(
        "fastpick-bench-nginx-{}-{port}",
        std::process::id()
    ));
    std::fs::create_dir_all(dir.join("logs"))?;
    let conf = format!(
        "{main} daemon off; pid {d}/nginx.pid; error_log {d}/logs/error.log;\n\
         events {{ worker_connections 4096; }}\n\
         http {{ access_log off; client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};\n{http} }}\n",
        d = dir.display()
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf)?;
    let child = cmd
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(&conf_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("nginx not found: apt-get install nginx-light")?;
    let nginx = Nginx { child, dir };
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if start.elapsed() > Duration::from_secs(60) {
            bail!("nginx did not start");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(nginx)
}

/// Starts nginx (`workers` workers) as the original's reverse proxy: `/api/` to one upstream
/// with the original's proxy headers and upstream keepalive, as nginx users set it.
pub fn start_nginx_proxy(workers: u32, port: u16, upstream_port: u16) -> anyhow::Result<Nginx> {
    start_nginx_with(workers, port, &nginx_proxy_http(port, upstream_port))
}

/// The `http` block contents of [`start_nginx_proxy`].
pub fn nginx_proxy_http(port: u16, upstream_port: u16) -> String {
    format!(
        "upstream app {{ server 127.0.0.1:{upstream_port}; keepalive 64; }}\n\
         server {{ listen 127.0.0.1:{port}; location /api/ {{ proxy_pass http://app;\n\
           proxy_http_version 1.1; proxy_set_header Connection \"\";\n\
           proxy_set_header Host $host; proxy_set_header X-Real-IP $remote_addr;\n\
           proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
           proxy_set_header X-Forwarded-Proto $scheme; }} }}"
    )
}

/// Starts one nginx worker answering every path with a fixed JSON body.
pub fn start_nginx(port: u16) -> anyhow::Result<Nginx> {
    start_nginx_with(
        1,
        port,
        &format!(
            "server {{ listen 127.0.0.1:{port}; location / {{ default_type application/json;\n\
             return 200 '{{\"code\":\"S000\",\"message\":\"Success\",\"data\":{{\"content\":[]}}}}'; }} }}"
        ),
    )
}

/// Resident memory of a process and its children (nginx's workers), in KiB.
pub fn rss_kib_tree(pid: u32) -> u64 {
    status_kib_tree(pid, "VmRSS:")
}

/// A memory line of /proc/PID/status (`VmRSS:`, `RssAnon:`) summed over a process and its
/// children, in KiB.
pub fn status_kib_tree(pid: u32, field: &str) -> u64 {
    let rss = |pid: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix(field))
                    .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            })
            .unwrap_or(0)
    };
    rss(&pid.to_string())
        + children(pid)
            .iter()
            .map(|c| rss(&c.to_string()))
            .sum::<u64>()
}

/// The direct children of a process (nginx's workers).
pub fn children(pid: u32) -> Vec<u32> {
    let parent_of = |child: u32| {
        std::fs::read_to_string(format!("/proc/{child}/stat"))
            .ok()?
            .rsplit(')')
            .next()?
            .split_whitespace()
            .nth(1)?
            .parse::<u32>()
            .ok()
    };
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&child| parent_of(child) == Some(pid))
        .collect()
}

/// The median of some runs (the upper one of an even count).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Parses wrk's "1.23ms"/"456.00us"/"1.02s" into milliseconds.
pub fn wrk_ms(text: &str) -> Option<f64> {
    let (num, factor) = if let Some(v) = text.strip_suffix("us") {
        (v, 0.001)
    } else if let Some(v) = text.strip_suffix("ms") {
        (v, 1.0)
    } else if let Some(v) = text.strip_suffix('s') {
        (v, 1000.0)
    } else {
        (text, 1.0)
    };
    num.parse::<f64>().ok().map(|n| n * factor)
}

/// Runs wrk and returns (req/s, p50 ms, p99 ms).
pub fn run_wrk(url: &str, conns: u32, secs: u32) -> anyhow::Result<(f64, f64, f64)> {
    run_wrk_counted(url, conns, secs).map(|(rps, p50, p99, _)| (rps, p50, p99))
}

/// Runs wrk and returns (req/s, p50 ms, p99 ms, requests completed).
pub fn run_wrk_counted(url: &str, conns: u32, secs: u32) -> anyhow::Result<(f64, f64, f64, u64)> {
    let out = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{conns}"),
            &format!("-d{secs}s"),
            "--latency",
            url,
        ])
        .output()
        .context("wrk not found: apt-get install wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(|r| r.trim().to_owned()))
    };
    let rps = field("Requests/sec:")
        .and_then(|v| v.parse().ok())
        .context("no Requests/sec in wrk output")?;
    let p50 = field("50%").and_then(|v| wrk_ms(&v)).context("no p50")?;
    let p99 = field("99%").and_then(|v| wrk_ms(&v)).context("no p99")?;
    // "  123456 requests in 10.00s, 12.34MB read"
    let requests = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.trim().parse().ok())
        .context("no request count in wrk output")?;
    Ok((rps, p50, p99, requests))
}

/// A child process of a benchmark: SIGTERM when dropped, SIGKILL if it has not exited 20 s
/// later. It also gets SIGTERM when the benchmark dies first (PR_SET_PDEATHSIG).
pub struct Spawned(pub Child);

impl Spawned {
    /// Spawns `cmd` (stdout to /dev/null unless the caller set it).
    pub fn spawn(cmd: &mut Command) -> std::io::Result<Spawned> {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe and touches only the new process.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            })
        };
        cmd.spawn().map(Spawned)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Stops the process with SIGTERM and waits until it has exited (SIGKILL after 20 s).
    pub fn stop(&mut self) {
        if matches!(self.0.try_wait(), Ok(Some(_))) {
            return;
        }
        // SAFETY: signals our own child, which has not been reaped yet.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if !matches!(self.0.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.stop();
    }
}

/// CPU time (user + system) a process has used so far, in seconds; 0 when it is gone.
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the ")" that ends the command name: state is the first, utime the 12th.
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (ticks(11) + ticks(12)) as f64 / hz
}

/// The id of a process whose command line contains `needle` (e.g. a unique path argument).
pub fn pid_by_cmdline(needle: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        // The supervising shell's script names the same path: skip shells.
        (text.contains(needle) && !text.starts_with("/bin/sh")).then_some(pid)
    })
}

/// Bytes a directory tree occupies on disk (as `du` counts: allocated blocks).
pub fn du_bytes(path: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    let own = meta.blocks() * 512;
    if !meta.is_dir() {
        return own;
    }
    let children: u64 = std::fs::read_dir(path)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| du_bytes(&e.path()))
        .sum();
    own + children
}

/// VM1's two paths: D, one coupon by its key; S, the original search.
pub const VM1_PATHS: [(&str, &str); 2] = [
    ("D", "/api/v1/coupons/19"),
    ("S", "/api/v1/coupons?search=nike&filterType=ISSUING"),
];

/// `cmd` (the release binary, or a tool that runs it) as VM1's `fastpick --role <role>`:
/// the proxy's access log off, 2 proxy threads, and `env`.
pub fn vm1_role<'a>(cmd: &'a mut Command, role: &str, env: &[(&str, String)]) -> &'a mut Command {
    cmd.args(["--role", role])
        .env("FASTPICK_PROXY__ACCESS_LOG", "off")
        .env("FASTPICK_PROXY__THREADS", "2")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
}

/// The proxy+app's environment: the throwaway servers and database `bench`.
pub fn db_env(pg: u16, redis: u16) -> Vec<(&'static str, String)> {
    vec![
        ("DB_HOST", "127.0.0.1".to_owned()),
        ("DB_PORT", pg.to_string()),
        ("DB_NAME", "bench".to_owned()),
        ("DB_USERNAME", "postgres".to_owned()),
        ("REDIS_PORT", redis.to_string()),
        ("SECRET_KEY", SECRET.to_owned()),
        ("RUST_LOG", "warn".to_owned()),
    ]
}

/// VM1's environment for the vm1 benches: [`db_env`], with cached search pages kept for an
/// hour. S compares the layers in front of the app on a cached page. With the default 10 s
/// TTL a page expires once in every 10 s window; before misses shared one search
/// (`search.refill`), all connections then searched the database at once, and which moment
/// of the window that fell on decided S's p99 (7-19 ms against 37-112 ms in the same row
/// from round to round). A refill still adds a search to S's count; `cargo bench --bench
/// refill` measures expiries.
pub fn vm1_env(pg: u16, redis: u16) -> Vec<(&'static str, String)> {
    let mut env = db_env(pg, redis);
    env.push(("FASTPICK_SEARCH__CACHE_TTL", "1h".to_owned()));
    env
}

/// Seeds the coupons with the release binary.
pub fn seed_coupons(env: &[(&str, String)], coupons: u64) -> anyhow::Result<()> {
    let seeded = Command::new(env!("CARGO_BIN_EXE_fastpick"))
        .args(["seed", "coupons", "--count", &coupons.to_string()])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .status()?;
    if !seeded.success() {
        bail!("seeding failed");
    }
    Ok(())
}

/// CPU time (user + system) of a process and its children (nginx's workers) so far, in
/// seconds.
pub fn cpu_seconds_tree(pid: u32) -> f64 {
    cpu_seconds(pid) + children(pid).into_iter().map(cpu_seconds).sum::<f64>()
}

/// Waits until `url` answers 200 (curl), for at most `limit`.
pub fn wait_ok(url: &str, limit: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        let ok = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", url])
            .output()
            .is_ok_and(|o| o.stdout == b"200");
        if ok {
            return Ok(());
        }
        if start.elapsed() > limit {
            bail!("no 200 from {url} within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
