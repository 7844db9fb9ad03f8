//! `fastpick load`: the k6 part. Two scenarios from the original's scripts (the same ones run
//! with k6 from `config/k6/coupon-issue.js` and `coupon-search.js`): `race`
//! (N users issue one coupon at the same instant) and `search` (ramping VUs searching), with a
//! closed model (VUs) or an open model (constant arrival rate, latency counted from the
//! scheduled send time), a live progress line, and a k6-like summary with thresholds.
//! Its verdicts are k6's on the same run: `http_req_failed` counts every status >= 400 unless
//! expected (`--expected-statuses`), the original scripts' checks are reported by their
//! names, the original thresholds are named and judged as k6 judges them, and
//! `--summary-export` writes k6's summary JSON.

pub mod announce;
pub mod client;
pub mod clock;
pub mod export;
pub mod k6;
pub mod race;
pub mod search;
pub mod stats;
pub mod summary;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::load::stats::{Stats, Summary, print_summary};

/// `fastpick load`
#[derive(Debug, Args)]
pub struct LoadArgs {
    #[command(subcommand)]
    pub scenario: Scenario,
}

/// The scenarios.
#[derive(Debug, Subcommand)]
pub enum Scenario {
    /// coupon-issue-test.js: every VU issues one coupon at the same instant.
    Race(race::RaceArgs),
    /// coupon-search-test.js: ramping VUs search with think time (or a constant arrival rate).
    Search(search::SearchArgs),
}

/// Options every scenario has.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Target base URL: the proxy or the app (k6's BASE_URL).
    #[arg(long, env = "BASE_URL", default_value = "http://127.0.0.1:8080")]
    pub base_url: String,
    /// Per-request timeout; a request over it counts as failed.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Also writes the summary as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Hides the live progress line.
    #[arg(long)]
    pub quiet: bool,
    /// A FastPick monitor's base URL: the run is announced there and drawn on its
    /// dashboard, and the summary links to the dashboard at the run's time range.
    #[arg(long, env = "FASTPICK_MONITOR")]
    pub monitor: Option<String>,
    #[command(flatten)]
    pub k6: k6::K6Args,
}

/// A run whose thresholds did not all hold; `fastpick` exits with k6's code for it (99).
#[derive(Debug, thiserror::Error)]
#[error("thresholds crossed: {0}")]
pub struct ThresholdsCrossed(pub String);

impl ThresholdsCrossed {
    /// k6's exit code when a threshold fails.
    pub const EXIT_CODE: u8 = 99;
}

/// A run stopped by SIGINT or SIGTERM before it ended; `fastpick` exits with the shell's
/// code for an interrupt (130).
#[derive(Debug, thiserror::Error)]
#[error("interrupted by a signal before the run ended")]
pub struct Interrupted;

impl Interrupted {
    /// 128 + SIGINT, as a shell reports a command stopped by Ctrl-C.
    pub const EXIT_CODE: u8 = 130;
}

/// Runs a scenario, prints its summary, and fails when a threshold failed.
pub async fn run(args: LoadArgs) -> anyhow::Result<()> {
    let (scenario, tags, common) = match &args.scenario {
        Scenario::Race(a) => ("race", race::tags(a), &a.common),
        Scenario::Search(a) => ("search", search::tags(a), &a.common),
    };
    let common = common.clone();
    let summary = announced(&common, scenario, tags, async {
        match args.scenario {
            Scenario::Race(a) => race::run(&a).await,
            Scenario::Search(a) => search::run(&a).await,
        }
    })
    .await?;
    print_summary(&summary);
    if let Some(path) = &common.json {
        let text = serde_json::to_string_pretty(&summary)?;
        std::fs::write(path, text)
            .with_context(|| format!("failed to write {}", path.display()))?;
    }
    if let Some(path) = &common.k6.summary_export {
        let text = serde_json::to_string_pretty(&export::summary_export(&summary))?;
        std::fs::write(path, text)
            .with_context(|| format!("failed to write {}", path.display()))?;
    }
    let crossed: Vec<&str> = summary
        .thresholds
        .iter()
        .filter(|t| !t.passed)
        .map(|t| t.name.as_str())
        .collect();
    if !crossed.is_empty() {
        return Err(ThresholdsCrossed(crossed.join(", ")).into());
    }
    Ok(())
}

/// Runs one scenario; with `common.monitor`, the run is announced there first and completed
/// with its figures (or its error) after, and the summary gets the dashboard link. SIGINT or
/// SIGTERM ends the run with [`Interrupted`], its announcement completed first, so that its
/// band on the dashboard ends where the run did.
pub async fn announced(
    common: &CommonArgs,
    scenario: &'static str,
    tags: BTreeMap<String, String>,
    run: impl Future<Output = anyhow::Result<Summary>>,
) -> anyhow::Result<Summary> {
    // Caught from before the announcement: a run the monitor knows about ends its band.
    let mut signals =
        crate::server::StopSignals::install().context("failed to install the signal handlers")?;
    let announcement = match &common.monitor {
        Some(url) => announce::Announcement::start(url, &common.base_url, scenario, tags).await,
        None => None,
    };
    let outcome = tokio::select! {
        outcome = run => outcome,
        _ = signals.recv() => Err(Interrupted.into()),
    };
    match (outcome, announcement) {
        (Ok(summary), None) => Ok(summary),
        (Ok(mut summary), Some(announcement)) => {
            summary.dashboard = Some(announcement.finish(&summary).await);
            Ok(summary)
        }
        (Err(e), announcement) => {
            if let Some(announcement) = announcement {
                announcement.fail(&e).await;
            }
            Err(e)
        }
    }
}

/// The live progress line on stderr (drawn only on a terminal): elapsed, VUs, RPS, failures, p99.
pub(crate) struct Progress {
    task: tokio::task::JoinHandle<()>,
}

impl Progress {
    /// Starts updating the line twice a second.
    pub(crate) fn start(stats: Arc<Stats>, vus: Arc<AtomicUsize>, quiet: bool) -> Progress {
        let bar = if quiet {
            indicatif::ProgressBar::hidden()
        } else {
            indicatif::ProgressBar::new_spinner()
        };
        let task = tokio::spawn(async move {
            let start = Instant::now();
            let (mut last_n, mut last_t) = (0u64, start);
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let live = stats.live();
                let now = Instant::now();
                let rps =
                    (live.requests - last_n) as f64 / now.duration_since(last_t).as_secs_f64();
                (last_n, last_t) = (live.requests, now);
                bar.set_message(format!(
                    "{:>6.1}s  VUs {:>4}  RPS {:>8.1}  requests {:>8}  failed {:>6}  p99 {:>8.2} ms",
                    start.elapsed().as_secs_f64(),
                    vus.load(Ordering::Relaxed),
                    rps,
                    live.requests,
                    live.failed,
                    live.p99_ms
                ));
                bar.tick();
            }
        });
        Progress { task }
    }

    /// Removes the line.
    pub(crate) fn stop(self) {
        self.task.abort();
    }
}

/// Raises the open-files limit to its hard maximum: 1,000 VUs need 1,000 sockets.
pub fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
