//! `fastpick load` next to wrk against the same fixed-response target (Debian's nginx on
//! loopback), same connections and duration, one after the other in one run.
//!
//! Run: `cargo bench --bench load_vs_wrk` (needs nginx and wrk: apt-get install nginx-light wrk).
//! BENCH_CONNS (64) and BENCH_SECONDS (10) change the settings.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

struct Nginx {
    child: Child,
    dir: std::path::PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts nginx answering every path with a fixed JSON body.
fn start_nginx(port: u16) -> anyhow::Result<Nginx> {
    let dir = std::env::temp_dir().join(format!("fastpick-bench-nginx-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("logs"))?;
    let conf = format!(
        "worker_processes 1; daemon off; pid {d}/nginx.pid; error_log {d}/logs/error.log;\n\
         events {{ worker_connections 4096; }}\n\
         http {{ access_log off; client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};\n\
           server {{ listen 127.0.0.1:{port}; location / {{ default_type application/json;\n\
             return 200 '{{\"code\":\"S000\",\"message\":\"Success\",\"data\":{{\"content\":[]}}}}'; }} }} }}\n",
        d = dir.display()
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf)?;
    let child = Command::new("nginx")
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
        if start.elapsed() > Duration::from_secs(10) {
            bail!("nginx did not start");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(nginx)
}

/// Parses wrk's "1.23ms"/"456.00us"/"1.02s" into milliseconds.
fn wrk_ms(text: &str) -> Option<f64> {
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
fn run_wrk(url: &str, conns: u32, secs: u32) -> anyhow::Result<(f64, f64, f64)> {
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
    Ok((rps, p50, p99))
}

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
    let conns: u32 = std::env::var("BENCH_CONNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let secs: u32 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
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
