//! Throwaway PostgreSQL and Redis servers on loopback, from the distribution's packages, for
//! `fastpick demo` and the tests: free ports, a temp dir each, stopped and removed when the
//! owning process goes away (even when it is killed).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::chown;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How long a server may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A server process; dropping it (or the process exiting) stops it and removes its dir.
///
/// The server runs under a small `sh` that waits on a pipe from us; when the pipe closes,
/// it stops the server and deletes the directory.
pub struct Supervised {
    child: Child,
    stdin: Option<ChildStdin>,
    /// The server's own directory (data, socket, log).
    pub dir: PathBuf,
    /// The loopback port it listens on.
    pub port: u16,
    /// Tells whether the server answers (used after start and restart).
    ready: fn(&Supervised) -> bool,
}

impl Supervised {
    /// Stops the server and waits until it has exited and its directory is gone.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"stop\n");
        }
        let _ = self.child.wait();
    }

    /// Stops the server and starts it again on the same port and directory (PostgreSQL keeps
    /// its data; Redis, which runs without persistence, comes back empty), then waits for it.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        let stdin = self.stdin.as_mut().context("server already stopped")?;
        stdin
            .write_all(b"restart\n")
            .context("failed to ask for a restart")?;
        stdin.flush()?;
        // Readiness means the new process once the old one was seen down; a restart quicker
        // than the polling is over once the bound passes.
        let asked = Instant::now();
        while (self.ready)(self) && asked.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        wait_until(self, self.ready)
    }

    /// Returns the server's log so far (for error messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Returns a port that was free on 127.0.0.1 a moment ago.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("failed to find a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Makes a fresh directory under the system temp dir.
fn fresh_dir(kind: &str) -> anyhow::Result<PathBuf> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("fastpick-{kind}-{}-{n}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).ok();
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("failed to create {}", dir.display()))?;
    Ok(dir)
}

/// Finds a program on PATH or in the given extra directories.
fn find_program(name: &str, extra: &[PathBuf]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    extra
        .iter()
        .cloned()
        .chain(std::env::split_paths(&path))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Returns Debian's PostgreSQL bin dirs, newest major version first.
fn postgres_bin_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, e.path().join("bin")))
        })
        .collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.0));
    dirs.into_iter().map(|(_, d)| d).collect()
}

/// The uid and gid of the `postgres` system user, from /etc/passwd.
fn postgres_user() -> anyhow::Result<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").context("failed to read /etc/passwd")?;
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&"postgres") && f.len() > 3)
        .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
        .context("PostgreSQL refuses to run as root and there is no 'postgres' user (apt-get install postgresql creates it)")
}

/// Runs `sh -c script` with our pipe on its stdin, as `ids` when given.
fn spawn_supervised(
    script: &str,
    args: &[&str],
    ids: Option<(u32, u32)>,
) -> anyhow::Result<(Child, ChildStdin)> {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(script).arg("sh").args(args);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // Its own process group: a Ctrl-C in the terminal reaches us, and we stop it in order.
    cmd.process_group(0);
    if let Some((uid, gid)) = ids {
        cmd.uid(uid).gid(gid);
    }
    let mut child = cmd.spawn().context("failed to start /bin/sh")?;
    let stdin = child.stdin.take().context("no stdin pipe")?;
    Ok((child, stdin))
}

/// Wraps a server command line: runs it, and on a line "restart" from our pipe stops and runs
/// it again; when the pipe closes (we exited, even killed), stops it and removes its directory.
fn supervise(server: &str) -> String {
    format!(
        r#"while :; do {server} & pid=$!; cmd=stop; read -r cmd || cmd=stop; kill -INT "$pid" 2>/dev/null; wait "$pid"; [ "$cmd" = restart ] || break; done; rm -rf "$DIR""#
    )
}

/// Starts PostgreSQL (trust auth, user `postgres`) in a new temp dir on a free port.
pub fn start_postgres() -> anyhow::Result<Supervised> {
    let bins = postgres_bin_dirs();
    let initdb =
        find_program("initdb", &bins).context("initdb not found: apt-get install postgresql")?;
    let bin = initdb.parent().map(Path::to_path_buf).unwrap_or_default();
    let dir = fresh_dir("pg")?;
    // SAFETY: geteuid has no preconditions.
    let ids = if unsafe { libc::geteuid() } == 0 {
        Some(postgres_user()?)
    } else {
        None
    };
    if let Some((uid, gid)) = ids {
        chown(&dir, Some(uid), Some(gid)).context("failed to hand the temp dir to postgres")?;
    }
    let data = dir.join("data");
    let mut init = Command::new(&initdb);
    init.args(["-D"]).arg(&data).args([
        "-U",
        "postgres",
        "--auth=trust",
        "-E",
        "UTF8",
        "--locale=C",
        "--no-sync",
    ]);
    init.stdout(Stdio::null()).stderr(Stdio::piped());
    if let Some((uid, gid)) = ids {
        init.uid(uid).gid(gid);
    }
    let out = init.output().context("failed to run initdb")?;
    if !out.status.success() {
        bail!("initdb failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let port = free_port()?;
    let server = supervise(
        r#""$1/postgres" -D "$2" -p "$3" -k "$4" -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400 -c shared_buffers=256MB >>"$4/server.log" 2>&1"#,
    );
    let script = format!(r#"DIR="$4"; {server}"#);
    let args = [
        bin.to_str().unwrap_or(""),
        data.to_str().unwrap_or(""),
        &port.to_string(),
        dir.to_str().unwrap_or(""),
    ];
    let (child, stdin) = spawn_supervised(&script, &args, ids)?;
    let server = Supervised {
        child,
        stdin: Some(stdin),
        dir,
        port,
        ready: postgres_ready,
    };
    wait_until(&server, postgres_ready)?;
    Ok(server)
}

/// Starts a Redis server without persistence in a new temp dir on a free port.
pub fn start_redis() -> anyhow::Result<Supervised> {
    start_redis_on(free_port()?)
}

/// Starts a Redis server on a given port (to restart one where clients expect it).
pub fn start_redis_on(port: u16) -> anyhow::Result<Supervised> {
    let redis = find_program("redis-server", &[])
        .context("redis-server not found: apt-get install redis-server")?;
    let dir = fresh_dir("redis")?;
    start_program(
        &redis,
        r#""$1" --port "$2" --bind 127.0.0.1 --save "" --appendonly no --dir "$3" >>"$3/server.log" 2>&1"#,
        port,
        dir,
        |s| redis_ping(s.port),
    )
}

/// Runs `command` (a shell line where `$1` is the program, `$2` the port and `$3` the
/// directory) under [`supervise`] as this user, and waits until `ready` passes.
fn start_program(
    program: &Path,
    command: &str,
    port: u16,
    dir: PathBuf,
    ready: fn(&Supervised) -> bool,
) -> anyhow::Result<Supervised> {
    let server = supervise(command);
    let script = format!(r#"DIR="$3"; {server}"#);
    let args = [
        program.to_str().unwrap_or(""),
        &port.to_string(),
        dir.to_str().unwrap_or(""),
    ];
    let (child, stdin) = spawn_supervised(&script, &args, None)?;
    let server = Supervised {
        child,
        stdin: Some(stdin),
        dir,
        port,
        ready,
    };
    wait_until(&server, ready)?;
    Ok(server)
}

/// Starts Prometheus (Debian's package) in a new temp dir on a free port with the given
/// `prometheus.yml` text and extra flags (e.g. `--web.enable-remote-write-receiver`), for
/// the tests and benches that compare the monitor with the real thing.
pub fn start_prometheus(config_yml: &str, extra_args: &[&str]) -> anyhow::Result<Supervised> {
    let prometheus = find_program("prometheus", &[])
        .context("prometheus not found: apt-get install prometheus")?;
    let dir = fresh_dir("prometheus")?;
    std::fs::write(dir.join("prometheus.yml"), config_yml)
        .context("failed to write prometheus.yml")?;
    let port = free_port()?;
    let command = format!(
        r#""$1" --config.file="$3/prometheus.yml" --storage.tsdb.path="$3/data" --web.listen-address=127.0.0.1:"$2" {} >>"$3/server.log" 2>&1"#,
        extra_args.join(" ")
    );
    start_program(&prometheus, &command, port, dir, |s| {
        http_ok(s.port, "/-/ready")
    })
}

/// Sends `GET path` over HTTP/1.0 and tells whether the answer is 200.
pub fn http_ok(port: u16, path: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    if write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return false;
    }
    let mut line = String::new();
    BufReader::new(&mut stream).read_line(&mut line).is_ok()
        && line.split_whitespace().nth(1) == Some("200")
}

/// Sends PING and expects PONG.
pub fn redis_ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut line = String::new();
    BufReader::new(&mut stream).read_line(&mut line).is_ok() && line.starts_with("+PONG")
}

/// Tells whether PostgreSQL accepts connections (pg_isready).
fn postgres_ready(server: &Supervised) -> bool {
    let isready = postgres_bin_dirs()
        .into_iter()
        .map(|d| d.join("pg_isready"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("pg_isready"));
    Command::new(isready)
        .args([
            "-q",
            "-h",
            "127.0.0.1",
            "-p",
            &server.port.to_string(),
            "-U",
            "postgres",
        ])
        .status()
        .is_ok_and(|s| s.success())
}

/// Polls a readiness check; fails with the server's log when it never passes.
fn wait_until(server: &Supervised, ready: fn(&Supervised) -> bool) -> anyhow::Result<()> {
    let start = Instant::now();
    while start.elapsed() < READY_TIMEOUT {
        if ready(server) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    bail!(
        "server on port {} did not become ready: {}",
        server.port,
        server.log()
    )
}

/// Creates a database on a local server (idempotent only in the sense of failing clearly).
pub async fn create_database(port: u16, name: &str) -> anyhow::Result<()> {
    use sqlx::Connection;
    let options = sqlx::postgres::PgConnectOptions::new()
        .host("127.0.0.1")
        .port(port)
        .username("postgres")
        .database("postgres");
    let mut conn = sqlx::PgConnection::connect_with(&options)
        .await
        .context("failed to connect to local postgres")?;
    let quoted = name.replace('"', "\"\"");
    sqlx::query(sqlx::AssertSqlSafe(format!("create database \"{quoted}\"")))
        .execute(&mut conn)
        .await
        .with_context(|| format!("failed to create database {name}"))?;
    conn.close().await.ok();
    Ok(())
}
