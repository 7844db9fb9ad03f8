//! `fastpick load` next to wrk against the same fixed-response target (Debian's nginx on
//! loopback), same connections and duration, one after the other in one run.
//!
//! Run: `cargo bench --bench load_vs_wrk` (needs nginx and wrk: apt-get install nginx-light wrk).
//! BENCH_CONNS (64) and BENCH_SECONDS (10) change the settings.

use std::process::{Command, Stdio};

use anyhow::bail;

mod common;
use common::{run_wrk, start_nginx};

/// Runs `fastpick load search` with think time 0 and a constant VU count.
fn run_fastpick(base: &str, conns: u32, secs: u32) -> anyhow::Result<(f64, f64, f64)> {
    let json =
        std::env::temp_dir().join(format!("fastpick-bench-load-{}.json", std::process::id()));
    let status = Command::new(env!("CARGO_BIN_EXE_fastpick"))
        .args([
            "load",
            "search",
            "--quiet",
            "--base-url",
            base,
            "--think-min",
            "0s",
            "--think-max",
            "0s",
        ])
        .args(["--stages", &format!("0s:{conns},{secs}s:{conns}"), "--json"])
        .arg(&json)
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("fastpick load failed");
    }
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json)?)?;
    std::fs::remove_file(&json).ok();
    let f = |p: &str| {
        v.pointer(p)
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(f64::NAN)
    };
    Ok((f("/rps"), f("/latency_ms/p50"), f("/latency_ms/p99")))
}

fn main() -> anyhow::Result<()> {
    let conns: u32 = common::env_or("BENCH_CONNS", 64);
    let secs: u32 = common::env_or("BENCH_SECONDS", 10);
    let port = fastpick::local::free_port()?;
    let _nginx = start_nginx(port)?;
    let base = format!("http://127.0.0.1:{port}");
    // Warm-up, so neither tool pays nginx's first-connection costs.
    run_wrk(&base, conns, 1)?;
    let wrk = run_wrk(
        &format!("{base}/api/v1/coupons?search=NIKE&filterType=ALL"),
        conns,
        secs,
    )?;
    let ours = run_fastpick(&base, conns, secs)?;
    println!(
        "target: nginx fixed JSON on 127.0.0.1:{port}, {conns} connections, {secs} s, 2 cores shared by tool and target\n"
    );
    println!("| tool | req/s | p50 ms | p99 ms |");
    println!("|---|---|---|---|");
    println!("| wrk -t2 | {:.0} | {:.2} | {:.2} |", wrk.0, wrk.1, wrk.2);
    println!(
        "| fastpick load search (think 0) | {:.0} | {:.2} | {:.2} |",
        ours.0, ours.1, ours.2
    );
    println!(
        "\nfastpick/wrk req/s ratio: {:.2}x (goal >= 0.8x)",
        ours.0 / wrk.0
    );
    Ok(())
}
