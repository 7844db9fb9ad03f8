//! VM1 in instructions: the three ways to be VM1 of the `vm1` benchmark, each server run
//! under callgrind, which counts the instructions every process of a row executes per request.
//!
//! `vm1` measures time, and time per request moves by up to 30 % between back-to-back runs
//! on a shared machine (steal time, CPU frequency, other load). The instruction count does
//! not, so a change of 1 % in the request path shows here. What it leaves out is the
//! kernel's share (system calls, loopback TCP), which `vm1`'s CPU column includes.
//!
//! Rows, as in `vm1`, over coupons seeded by the same recipe (100,000 by default: D reads one
//! row by its key and S is answered from the Redis cache, so the table's size barely counts):
//! 1. `--role app` alone;
//! 2. nginx (one process, `master_process off`, the same proxy settings as `vm1`) in front
//!    of that same app: the instructions of nginx and of the app, added;
//! 3. `--role proxy+app`.
//!
//! For each row and path (D and S of `vm1`): a warm-up of wrk, then the counters are zeroed
//! and switched on (`callgrind_control -z`, `-i on`) in every process of the row, wrk runs
//! (-t2 -c8), the counters are switched off and dumped, and the dumps' totals are divided by
//! the requests wrk counted.
//!
//! Run: `cargo bench --bench vm1_instructions` (needs valgrind, nginx-light, wrk, postgresql,
//! redis-server). BENCH_COUPONS (100000), BENCH_SECONDS (8).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

mod common;
use common::{Spawned, env_or, run_wrk, run_wrk_counted, seed_coupons, vm1_env, vm1_role};

/// One process under callgrind.
struct Counted {
    pid: u32,
    /// The dump files' prefix (`<prefix>.<n>` for the n-th dump).
    prefix: PathBuf,
}

impl Counted {
    /// Process `pid`, started by [`callgrind`] with `name` and dumping into `dir`.
    fn new(dir: &Path, name: &str, pid: u32) -> Counted {
        Counted {
            pid,
            prefix: dir.join(format!("{name}.{pid}")),
        }
    }
}

/// `valgrind --tool=callgrind` with counting off until asked, its dumps under `dir/name`.
fn callgrind(dir: &Path, name: &str, program: &str) -> Command {
    let mut cmd = Command::new("valgrind");
    cmd.args(["--tool=callgrind", "--instr-atstart=no", "--quiet"])
        .arg(format!(
            "--callgrind-out-file={}",
            dir.join(format!("{name}.%p")).display()
        ))
        .arg(program);
    cmd
}

/// Runs `callgrind_control <args> <pid>`.
fn control(args: &[&str], pid: u32) -> anyhow::Result<()> {
    let status = Command::new("callgrind_control")
        .args(args)
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("callgrind_control not found: apt-get install valgrind")?;
    if !status.success() {
        bail!("callgrind_control {args:?} {pid} failed");
    }
    Ok(())
}

/// The `totals:` line of the newest dump of a process.
fn last_total(counted: &Counted) -> anyhow::Result<u64> {
    let dir = counted.prefix.parent().context("dump dir")?;
    let stem = format!(
        "{}.",
        counted
            .prefix
            .file_name()
            .context("dump name")?
            .to_string_lossy()
    );
    let newest = std::fs::read_dir(dir)?
        .filter_map(|e| {
            let name = e.ok()?.file_name().to_string_lossy().into_owned();
            let n: u32 = name.strip_prefix(&stem)?.parse().ok()?;
            Some((n, dir.join(name)))
        })
        .max()
        .context("no callgrind dump")?
        .1;
    let text = std::fs::read_to_string(&newest)?;
    text.lines()
        .find_map(|l| l.strip_prefix("totals:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no totals in {}", newest.display()))
}

/// Instructions per request of the processes `row` over a counted wrk run on `url`.
fn per_request(row: &[&Counted], url: &str, secs: u32) -> anyhow::Result<f64> {
    run_wrk(url, 8, 3)?; // warm-up
    for c in row {
        control(&["-z"], c.pid)?;
        control(&["-i", "on"], c.pid)?;
    }
    let (_, _, _, requests) = run_wrk_counted(url, 8, secs)?;
    let mut total = 0;
    for c in row {
        control(&["-i", "off"], c.pid)?;
        control(&["-d"], c.pid)?;
        total += last_total(c)?;
    }
    if requests == 0 {
        bail!("no request answered at {url}");
    }
    Ok(total as f64 / requests as f64)
}

/// Starts the release binary with a role under callgrind; waits until `path` answers 200.
fn start(
    dir: &Path,
    role: &str,
    env: &[(&str, String)],
    port: u16,
    path: &str,
) -> anyhow::Result<(Spawned, Counted)> {
    let name = role.replace('+', "-");
    let child = Spawned::spawn(vm1_role(
        &mut callgrind(dir, &name, env!("CARGO_BIN_EXE_fastpick")),
        role,
        env,
    ))?;
    wait_ok(port, path)?;
    let counted = Counted::new(dir, &name, child.pid());
    Ok((child, counted))
}

/// Waits (at most 120 s: valgrind starts slowly) until `path` answers 200 on `port`.
fn wait_ok(port: u16, path: &str) -> anyhow::Result<()> {
    common::wait_ok(
        &format!("http://127.0.0.1:{port}{path}"),
        Duration::from_secs(120),
    )
}

fn main() -> anyhow::Result<()> {
    let coupons: u64 = env_or("BENCH_COUPONS", 100_000);
    let secs: u32 = env_or("BENCH_SECONDS", 8);
    let port = fastpick::local::free_port;
    let paths = common::VM1_PATHS;
    let dumps = tempfile::tempdir()?;

    let pg = fastpick::local::start_postgres()?;
    let redis = fastpick::local::start_redis()?;
    tokio::runtime::Runtime::new()?.block_on(fastpick::local::create_database(pg.port, "bench"))?;
    let env = vm1_env(pg.port, redis.port);
    seed_coupons(&env, coupons)?;

    let app_port = port()?;
    let mut app_env = env.clone();
    app_env.push(("FASTPICK_APP__LISTEN", format!("127.0.0.1:{app_port}")));
    let (app, app_counted) = start(dumps.path(), "app", &app_env, app_port, paths[0].1)?;
    let nginx_port = port()?;
    let mut nginx_cmd = callgrind(dumps.path(), "nginx", "nginx");
    nginx_cmd.stdin(Stdio::null());
    let nginx = common::start_nginx_as(
        nginx_cmd,
        "master_process off;",
        nginx_port,
        &common::nginx_proxy_http(nginx_port, app_port),
    )?;
    wait_ok(nginx_port, paths[0].1)?;
    let nginx_counted = Counted::new(dumps.path(), "nginx", nginx.child.id());
    let one_port = port()?;
    let mut one_env = env.clone();
    one_env.push(("FASTPICK_PROXY__LISTEN", format!("127.0.0.1:{one_port}")));
    let (one, one_counted) = start(dumps.path(), "proxy+app", &one_env, one_port, paths[0].1)?;

    let rows: [(&str, u16, Vec<&Counted>); 3] = [
        ("`--role app` alone", app_port, vec![&app_counted]),
        (
            "nginx (1 process) -> `--role app`, both counted",
            nginx_port,
            vec![&nginx_counted, &app_counted],
        ),
        ("`--role proxy+app`", one_port, vec![&one_counted]),
    ];
    let mut ir = [[0.0; 2]; 3];
    for (r, (name, port, row)) in rows.iter().enumerate() {
        for (p, (label, path)) in paths.iter().enumerate() {
            ir[r][p] = per_request(row, &format!("http://127.0.0.1:{port}{path}"), secs)?;
            eprintln!("{name} {label}: {:.0} instructions/request", ir[r][p]);
        }
    }

    println!(
        "\nVM1 in instructions per request (callgrind, user space only): {coupons} coupons, wrk -t2 -c8 -d{secs}s after 3 s of warm-up"
    );
    println!("D = GET {}, S = GET {}\n", paths[0].1, paths[1].1);
    println!("| VM1 as | D instructions/req | S instructions/req |");
    println!("|---|---:|---:|");
    const NGINX: usize = 1;
    for (r, (name, _, _)) in rows.iter().enumerate() {
        let cell = |p: usize| {
            if r == NGINX {
                format!("{:.0}", ir[r][p])
            } else {
                format!("{:.0} ({:.3}x)", ir[r][p], ir[r][p] / ir[NGINX][p])
            }
        };
        println!("| {name} | {} | {} |", cell(0), cell(1));
    }
    println!(
        "\nproxy+app over the app alone: D {:.0}, S {:.0} instructions/request; nginx over the app alone: D {:.0}, S {:.0}",
        ir[2][0] - ir[0][0],
        ir[2][1] - ir[0][1],
        ir[1][0] - ir[0][0],
        ir[1][1] - ir[0][1],
    );
    drop((one, nginx, app, redis, pg));
    Ok(())
}
