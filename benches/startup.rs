//! Start-up and idle footprint of `fastpick --role app`.
//!
//! Run: `cargo bench --bench startup` (needs postgresql and redis-server installed; starts its
//! own on loopback). Prints, over several runs: time from spawn to the first 200 from
//! /actuator/health, idle RSS after the first requests, and the binary size.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::median;

const RUNS: usize = 7;

fn health_ok(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let req = "GET /actuator/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let mut buf = [0u8; 12];
    s.write_all(req.as_bytes()).is_ok() && s.read_exact(&mut buf).is_ok() && buf.ends_with(b"200")
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn main() -> anyhow::Result<()> {
    let bin = env!("CARGO_BIN_EXE_fastpick");
    let pg = fastpick::local::start_postgres()?;
    let redis = fastpick::local::start_redis()?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(fastpick::local::create_database(pg.port, "bench"))?;
    let (mut ready_ms, mut rss) = (Vec::new(), Vec::new());
    for run in 0..RUNS {
        let port = fastpick::local::free_port()?;
        let start = Instant::now();
        let mut child = Command::new(bin)
            .args(["--role", "app"])
            .env("DB_HOST", "127.0.0.1")
            .env("DB_PORT", pg.port.to_string())
            .env("DB_NAME", "bench")
            .env("DB_USERNAME", "postgres")
            .env("REDIS_PORT", redis.port.to_string())
            .env(
                "SECRET_KEY",
                "benchmark-secret-that-is-long-enough-for-hs256",
            )
            .env("FASTPICK_APP__LISTEN", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        while !health_ok(port) {
            anyhow::ensure!(start.elapsed() < Duration::from_secs(30), "app not ready");
            std::thread::sleep(Duration::from_millis(1));
        }
        let ms = start.elapsed().as_secs_f64() * 1e3;
        for _ in 0..20 {
            health_ok(port);
        }
        std::thread::sleep(Duration::from_secs(2));
        let kib = rss_kib(child.id());
        println!(
            "run {run}: ready in {ms:.1} ms (migrations {}), idle RSS {:.1} MiB",
            if run == 0 { "applied" } else { "up to date" },
            kib as f64 / 1024.0
        );
        ready_ms.push(ms);
        rss.push(kib as f64 / 1024.0);
        // SAFETY: signals our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        child.wait()?;
    }
    let size = std::fs::metadata(bin)?.len() as f64 / 1_048_576.0;
    println!(
        "\nfastpick --role app, {RUNS} runs: start to ready median {:.1} ms (first run, with migrations: {:.1} ms); idle RSS median {:.1} MiB; binary {size:.1} MiB",
        median(ready_ms.clone()),
        ready_ms[0],
        median(rss)
    );
    drop((pg, redis));
    Ok(())
}
