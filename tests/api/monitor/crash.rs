//! The store across process deaths, with the real binary (`fastpick --role monitor`) scraping
//! the fixture: a SIGKILL loses at most what was appended since the last flush (the bound is
//! `monitor.flush_interval`, 1 s here), a restart on the same data directory recovers the rest
//! and keeps scraping, and a SIGTERM flushes everything before the process exits.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use fastpick::monitor::scrape::now_ms;
use serde_json::Value;

use super::{enc, fixture, fresh_dir, get_json};

/// A `fastpick --role monitor` process; dropping it SIGKILLs it if it still runs, so a
/// failed check never leaves it behind.
struct MonitorProcess {
    child: Child,
    base: String,
    client: reqwest::Client,
    log: PathBuf,
}

impl Drop for MonitorProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Removes a directory when dropped.
struct DirGuard(PathBuf);

impl Drop for DirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl MonitorProcess {
    /// Starts the binary with `config` (plus `env` overrides) and waits for `/-/ready`.
    async fn start(config: &Path, port: u16, env: &[(&str, &str)]) -> MonitorProcess {
        let log = config.with_extension(format!("{}.log", now_ms()));
        let out = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fastpick"));
        for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("FASTPICK_")) {
            cmd.env_remove(key);
        }
        cmd.args(["--role", "monitor", "--config"])
            .arg(config)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log file"))
            .stderr(out);
        let child = cmd.spawn().expect("fastpick starts");
        let mut process = MonitorProcess {
            child,
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client"),
            log,
        };
        process.wait_ready().await;
        process
    }

    /// Polls `/-/ready` for at most 30 s; fails with the log if the process exits first.
    async fn wait_ready(&mut self) {
        let url = format!("{}/-/ready", self.base);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("monitor exited with {status} before ready:\n{}", self.log());
            }
            if let Ok(r) = self.client.get(&url).send().await
                && r.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("monitor never became ready:\n{}", self.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `signal` and waits (at most 20 s) for the process to exit.
    async fn signal_and_wait(&mut self, signal: i32) -> std::process::ExitStatus {
        let pid = i32::try_from(self.child.id()).expect("pid");
        // SAFETY: kill(2) on our own child, which has not been reaped yet.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill {signal}");
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "monitor did not exit on signal {signal}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// An instant query's `data.result`, its series in a fixed order.
    async fn query(&self, query: &str, at_ms: i64) -> Vec<Value> {
        let path = format!("/api/v1/query?query={}&time={}", enc(query), seconds(at_ms));
        self.result(&path).await
    }

    /// A range query's `data.result` with a 1 s step, its series in a fixed order.
    async fn query_range(&self, query: &str, start_ms: i64, end_ms: i64) -> Vec<Value> {
        let path = format!(
            "/api/v1/query_range?query={}&start={}&end={}&step=1",
            enc(query),
            seconds(start_ms),
            seconds(end_ms)
        );
        self.result(&path).await
    }

    async fn result(&self, path: &str) -> Vec<Value> {
        let (status, body) = get_json(&self.client, &format!("{}{path}", self.base)).await;
        assert_eq!(status, 200, "{path}: {body}");
        let mut result = body["data"]["result"].as_array().expect("result").clone();
        result.sort_by_key(|r| r["metric"].to_string());
        result
    }

    /// The newest sample time every `fixture_temperature` series has (the oldest of their
    /// newest); `None` until both rooms have one.
    async fn newest_ms(&self) -> Option<i64> {
        let result = self.query("fixture_temperature[1h]", now_ms()).await;
        if result.len() < 2 {
            return None;
        }
        result
            .iter()
            .map(|r| {
                let last = r["values"].as_array()?.last()?;
                Some((last[0].as_f64()? * 1000.0).round() as i64)
            })
            .min()
            .flatten()
    }

    /// Waits (at most 30 s) until both rooms have a sample newer than `after_ms`; returns the
    /// newest time they share.
    async fn wait_for_sample_after(&self, after_ms: i64) -> i64 {
        let started = Instant::now();
        loop {
            if let Some(newest) = self.newest_ms().await
                && newest > after_ms
            {
                return newest;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no sample after {after_ms}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits (at most 30 s) until both rooms have at least `n` samples.
    async fn wait_for_samples(&self, n: f64) {
        let started = Instant::now();
        loop {
            let counts = self
                .query("count_over_time(fixture_temperature[1h])", now_ms())
                .await;
            let fewest = counts
                .iter()
                .filter_map(|r| r["value"][1].as_str()?.parse::<f64>().ok())
                .fold(f64::INFINITY, f64::min);
            if counts.len() == 2 && fewest >= n {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "fewer than {n} samples: {counts:?}\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The answers compared across restarts, all evaluated at `at_ms`.
    async fn answers(&self, from_ms: i64, at_ms: i64) -> Vec<Vec<Value>> {
        vec![
            self.query("count_over_time(fixture_temperature[1h])", at_ms)
                .await,
            self.query("fixture_temperature[1h]", at_ms).await,
            self.query("fixture_requests_total[1h]", at_ms).await,
            self.query_range("fixture_requests_total", from_ms, at_ms)
                .await,
        ]
    }
}

/// Milliseconds as the API's seconds.
fn seconds(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

/// Identifies the current head checkpoint: each flush that writes one replaces the file
/// (temp file, rename), so its inode or mtime changes.
fn checkpoint_id(data_dir: &Path) -> Option<(u64, SystemTime)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(data_dir.join("head.checkpoint")).ok()?;
    Some((meta.ino(), meta.modified().ok()?))
}

/// Waits (at most 20 s) until the checkpoint has been replaced `n` times from now. Flushes
/// run one after another, so the second replacement comes from a flush that started after
/// this call: everything appended before the call is then on disk.
async fn wait_for_checkpoints(data_dir: &Path, n: usize, process: &MonitorProcess) {
    let started = Instant::now();
    let mut last = checkpoint_id(data_dir);
    let mut seen = 0;
    while seen < n {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "saw {seen} of {n} checkpoints:\n{}",
            process.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = checkpoint_id(data_dir);
        if now.is_some() && now != last {
            seen += 1;
            last = now;
        }
    }
}

/// Writes the monitor's configuration: one job scraping the fixture every second, a flush
/// every second.
fn write_config(dir: &Path, port: u16, fixture: &str) -> PathBuf {
    let path = dir.join("monitor.toml");
    let data_dir = dir.join("data");
    let text = format!(
        r#"[monitor]
listen = "127.0.0.1:{port}"
data_dir = "{}"
flush_interval = "1s"

[[monitor.jobs]]
name = "fixture"
targets = ["{fixture}"]
interval = "1s"
timeout = "1s"
"#,
        data_dir.display()
    );
    std::fs::write(&path, text).expect("config written");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_store_survives_sigkill_and_flushes_on_sigterm() {
    // Arrange: the fixture in this process, the monitor in a child process.
    let fixture = fixture::start().await;
    let dir = DirGuard(fresh_dir("crash"));
    let data_dir = dir.0.join("data");
    let port = fastpick::local::free_port().expect("port");
    let config = write_config(&dir.0, port, &fixture.addr);
    let mut first = MonitorProcess::start(&config, port, &[]).await;

    // Scrape for a few seconds, then pick T. Scrapes of a target run one after another, so
    // once a sample newer than T is in, every sample up to T is appended; two checkpoints
    // later every sample up to T is on disk. The bound: a SIGKILL loses at most the samples
    // appended since the start of the last completed flush, one `monitor.flush_interval`
    // (1 s) of scrapes, all of them newer than T here.
    first.wait_for_samples(4.0).await;
    let t = now_ms();
    first.wait_for_sample_after(t).await;
    wait_for_checkpoints(&data_dir, 2, &first).await;
    let before = first.answers(fixture.t0_ms, t).await;
    let counts = &before[0];
    assert_eq!(counts.len(), 2, "both rooms: {counts:?}");
    for room in counts {
        let count: f64 = room["value"][1]
            .as_str()
            .expect("count")
            .parse()
            .expect("number");
        assert!(count >= 4.0, "several scrapes before T: {room}");
    }

    // Act 1: SIGKILL, then a new process on the same directory. Its periodic flush is an
    // hour away, so only the flush on stop can keep what it scrapes (checked below).
    let status = first.signal_and_wait(libc::SIGKILL).await;
    assert!(!status.success(), "killed: {status}");
    let killed_at = now_ms();
    let mut second =
        MonitorProcess::start(&config, port, &[("FASTPICK_MONITOR__FLUSH_INTERVAL", "1h")]).await;

    // Assert 1: recovery kept everything up to T, and scraping goes on.
    assert_eq!(
        second.answers(fixture.t0_ms, t).await,
        before,
        "answers at T after SIGKILL and restart"
    );
    let upto = second.wait_for_sample_after(killed_at + 1_000).await;
    let before_stop = second.answers(fixture.t0_ms, upto).await;
    let newest_room = &before_stop[1];
    assert!(
        newest_room.iter().all(|r| {
            let values = r["values"].as_array().map_or(0, Vec::len);
            values > 3
        }),
        "samples from both processes: {newest_room:?}"
    );

    // Act 2: SIGTERM, then a third process.
    let status = second.signal_and_wait(libc::SIGTERM).await;
    assert!(status.success(), "clean stop: {status}\n{}", second.log());
    let third = MonitorProcess::start(&config, port, &[]).await;

    // Assert 2: everything up to the stop survived, and the first process's data too.
    assert_eq!(
        third.answers(fixture.t0_ms, upto).await,
        before_stop,
        "answers at the last sample before SIGTERM, after restart"
    );
    assert_eq!(third.answers(fixture.t0_ms, t).await, before);
    third.wait_for_sample_after(now_ms()).await;
    drop(third);
}
