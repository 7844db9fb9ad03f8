//! The `search` scenario (coupon-search-test.js): ramping VUs (30 s → 30, 1 m → 50, 1 m → 100,
//! 30 s → 0) search with the original keyword list 70% of the time and never-existing
//! `GHOST_...` words 30%, a random filter type, and 0.1–0.3 s think time. `--rate` switches to
//! an open model: a constant arrival rate whose latency counts from the scheduled send time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use hyper::Method;
use rand::Rng;
use rand::seq::IndexedRandom;
use tokio::sync::{Mutex, Semaphore};

use crate::load::client::{Conn, Outcome, Target};
use crate::load::k6::Threshold;
use crate::load::stats::{Recorder, Sample, Stats, Summary, Thresholds};
use crate::load::{CommonArgs, Progress, raise_fd_limit};

/// The original script's keywords; five of them are not produced by the seeder.
pub const KEYWORDS: [&str; 21] = [
    "29CM",
    "BALANCE",
    "HOKA",
    "KITSUNE",
    "LAST",
    "NEW",
    "NIKE",
    "OFF",
    "PATAGONIA",
    "SOTO",
    "기강해이",
    "단독",
    "로우",
    "방지",
    "백팩",
    "스니커즈",
    "에디션",
    "재킷",
    "조던",
    "티셔츠",
    "팬츠",
];
const FILTERS: [&str; 4] = ["ALL", "READY", "ISSUING", "CLOSED"];

/// `fastpick load search`
#[derive(Debug, Clone, Args)]
pub struct SearchArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Ramp stages DURATION:VUS, comma-separated; VUs move linearly to each stage's target.
    #[arg(long, default_value = "30s:30,1m:50,1m:100,30s:0")]
    pub stages: String,
    /// Shortest think time between a VU's requests.
    #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration)]
    pub think_min: Duration,
    /// Longest think time between a VU's requests.
    #[arg(long, default_value = "300ms", value_parser = humantime::parse_duration)]
    pub think_max: Duration,
    /// Open model: requests per second at a constant rate instead of VUs with stages.
    #[arg(long)]
    pub rate: Option<u32>,
    /// Open model: how long to keep the rate.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Open model: most requests in flight (a request waiting for one still counts its wait).
    #[arg(long, default_value_t = 1000)]
    pub max_vus: usize,
    /// Share of never-existing GHOST_ keywords (the original: 0.3).
    #[arg(long, default_value_t = 0.3)]
    pub ghost_ratio: f64,
    /// The original's threshold `http_req_duration: p(99)<X` (X = 2500 ms).
    #[arg(long, default_value = "2500ms", value_parser = humantime::parse_duration)]
    pub max_p99: Duration,
    /// The original's threshold `http_req_failed: rate<X` (X = 0.01).
    #[arg(long, default_value_t = 0.01)]
    pub max_failed_rate: f64,
}

/// One ramp stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stage {
    pub duration: Duration,
    pub target: usize,
}

/// Parses `30s:30,1m:50`.
pub fn parse_stages(text: &str) -> anyhow::Result<Vec<Stage>> {
    let stages = text
        .split(',')
        .map(|part| {
            let (d, n) = part
                .trim()
                .split_once(':')
                .with_context(|| format!("stage '{part}' is not DURATION:VUS"))?;
            let duration = humantime::parse_duration(d.trim())
                .with_context(|| format!("bad duration in stage '{part}'"))?;
            let target = n
                .trim()
                .parse()
                .with_context(|| format!("bad VU count in stage '{part}'"))?;
            Ok(Stage { duration, target })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if stages.iter().all(|s| s.duration.is_zero()) {
        bail!("--stages must last longer than zero");
    }
    Ok(stages)
}

/// VUs wanted at `t` since the start: linear within each stage, starting from 0.
pub fn target_at(stages: &[Stage], t: Duration) -> usize {
    let (mut from, mut start) = (0usize, Duration::ZERO);
    for s in stages {
        let end = start + s.duration;
        if t < end {
            let frac = (t - start).as_secs_f64() / s.duration.as_secs_f64();
            return (from as f64 + (s.target as f64 - from as f64) * frac).round() as usize;
        }
        (from, start) = (s.target, end);
    }
    from
}

/// Builds one request path: a keyword (or a GHOST_ word) and a filter type.
fn search_path(rng: &mut impl Rng, ghost_ratio: f64) -> String {
    let word = if rng.random_bool(ghost_ratio.clamp(0.0, 1.0)) {
        let ms = chrono::Utc::now().timestamp_millis();
        format!("GHOST_{ms}_{}", rng.random_range(0..1000))
    } else {
        (*KEYWORDS.choose(rng).unwrap_or(&"NIKE")).to_owned()
    };
    let filter = FILTERS.choose(rng).unwrap_or(&"ALL");
    let encoded: String = form_urlencoded::byte_serialize(word.as_bytes()).collect();
    format!("/api/v1/coupons?search={encoded}&filterType={filter}")
}

/// The original script's check names.
pub const IS_STATUS_200: &str = "is status 200";
pub const CONTAINS_DATA: &str = "response contains data";

/// Sends one search and records it with the original's checks: status 200, and a body that
/// is JSON and not null. `since` is when the request was due (the open model's schedule),
/// or None to time it as k6 does (from sending).
async fn one_search(
    conn: &mut Conn,
    stats: &mut Recorder,
    path: &str,
    timeout: Duration,
    since: Option<Instant>,
) {
    let timed = conn
        .send_timed(Method::GET, path, None, None, timeout)
        .await;
    let outcome = &timed.outcome;
    let is_200 = matches!(outcome, Outcome::Http(200, _));
    let json = match outcome {
        Outcome::Http(_, body) => {
            serde_json::from_slice::<serde_json::Value>(body).is_ok_and(|v| !v.is_null())
        }
        _ => false,
    };
    stats.sample(Sample {
        duration: since.map_or(timed.duration, |s| s.elapsed()),
        connecting: timed.connecting,
        phases: timed.phases,
        outcome,
        checks: &[(IS_STATUS_200, is_200), (CONTAINS_DATA, json)],
    });
}

/// The original script's thresholds with these bars.
pub fn original_thresholds(max_p99: Duration, max_failed_rate: f64) -> Vec<Threshold> {
    let p99 = format!("http_req_duration: p(99)<{}", max_p99.as_millis());
    let failed = format!("http_req_failed: rate<{max_failed_rate}");
    [p99, failed]
        .iter()
        .filter_map(|t| Threshold::parse(t).ok())
        .collect()
}

/// What the monitor's annotation says about a search run.
pub fn tags(args: &SearchArgs) -> std::collections::BTreeMap<String, String> {
    let size = match args.rate {
        Some(rate) => format!("{rate}/s for {}", humantime::format_duration(args.duration)),
        None => format!("stages {}", args.stages),
    };
    std::collections::BTreeMap::from([("size".to_owned(), size)])
}

/// Runs the scenario and returns its summary.
pub async fn run(args: &SearchArgs) -> anyhow::Result<Summary> {
    raise_fd_limit();
    if args.think_min > args.think_max {
        bail!("--think-min is longer than --think-max");
    }
    let target = Target::parse(&args.common.base_url).await?;
    let stats = Stats::expecting(args.common.k6.expected_statuses.clone());
    let vus = Arc::new(AtomicUsize::new(0));
    let progress = Progress::start(stats.clone(), vus.clone(), args.common.quiet);
    let start = Instant::now();
    match args.rate {
        Some(rate) => open_model(args, &target, &stats, &vus, rate).await?,
        None => closed_model(args, &target, &stats, &vus, &parse_stages(&args.stages)?).await?,
    }
    let elapsed = start.elapsed();
    progress.stop();
    let thresholds = Thresholds::or_given(
        original_thresholds(args.max_p99, args.max_failed_rate),
        &args.common.k6.thresholds,
    );
    Ok(stats.summary("search", elapsed, &thresholds))
}

/// VUs follow the stages; each loops request → think until its slot is above the target.
async fn closed_model(
    args: &SearchArgs,
    target: &Target,
    stats: &Arc<Stats>,
    vus: &Arc<AtomicUsize>,
    stages: &[Stage],
) -> anyhow::Result<()> {
    let wanted = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let total: Duration = stages.iter().map(|s| s.duration).sum();
    let start = Instant::now();
    let mut handles = Vec::new();
    loop {
        let elapsed = start.elapsed();
        let now_wanted = target_at(stages, elapsed);
        wanted.store(now_wanted, Ordering::Relaxed);
        while handles.len() < now_wanted {
            let idx = handles.len();
            let (target, stats, wanted, done, vus) = (
                target.clone(),
                stats.clone(),
                wanted.clone(),
                done.clone(),
                vus.clone(),
            );
            let (think, timeout, ghost) = (
                (args.think_min, args.think_max),
                args.common.timeout,
                args.ghost_ratio,
            );
            handles.push(tokio::spawn(async move {
                let mut conn = Conn::new(target);
                let mut recorder = stats.recorder();
                let mut active = false;
                while !done.load(Ordering::Relaxed) {
                    let should_run = idx < wanted.load(Ordering::Relaxed);
                    if should_run != active {
                        active = should_run;
                        if active {
                            vus.fetch_add(1, Ordering::Relaxed)
                        } else {
                            vus.fetch_sub(1, Ordering::Relaxed)
                        };
                    }
                    if !active {
                        // An idle slot waits for the ramp to reach it again.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                    let (path, pause) = {
                        let mut rng = rand::rng();
                        (
                            search_path(&mut rng, ghost),
                            rng.random_range(think.0..=think.1),
                        )
                    };
                    one_search(&mut conn, &mut recorder, &path, timeout, None).await;
                    if !pause.is_zero() {
                        tokio::time::sleep(pause).await;
                    }
                }
                if active {
                    vus.fetch_sub(1, Ordering::Relaxed);
                }
            }));
        }
        if elapsed >= total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done.store(true, Ordering::Relaxed);
    for h in handles {
        h.await.context("a virtual user failed")?;
    }
    Ok(())
}

/// Sends at a fixed rate whatever the answers do; waiting for a free slot counts as latency.
async fn open_model(
    args: &SearchArgs,
    target: &Target,
    stats: &Arc<Stats>,
    vus: &Arc<AtomicUsize>,
    rate: u32,
) -> anyhow::Result<()> {
    if rate == 0 {
        bail!("--rate must be at least 1");
    }
    let slots = Arc::new(Semaphore::new(args.max_vus.max(1)));
    let idle: Arc<Mutex<Vec<Conn>>> = Arc::new(Mutex::new(Vec::new()));
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    let start = tokio::time::Instant::now();
    let mut handles = Vec::new();
    for i in 0u64.. {
        let scheduled = start + interval.mul_f64(i as f64);
        if scheduled.duration_since(start) >= args.duration {
            break;
        }
        tokio::time::sleep_until(scheduled).await;
        let (target, stats, slots, idle, vus) = (
            target.clone(),
            stats.clone(),
            slots.clone(),
            idle.clone(),
            vus.clone(),
        );
        let (timeout, ghost) = (args.common.timeout, args.ghost_ratio);
        let path = search_path(&mut rand::rng(), ghost);
        handles.push(tokio::spawn(async move {
            let Ok(_slot) = slots.acquire().await else {
                return;
            };
            vus.fetch_add(1, Ordering::Relaxed);
            let mut conn = idle.lock().await.pop().unwrap_or_else(|| Conn::new(target));
            one_search(
                &mut conn,
                &mut stats.recorder(),
                &path,
                timeout,
                Some(scheduled.into_std()),
            )
            .await;
            idle.lock().await.push(conn);
            vus.fetch_sub(1, Ordering::Relaxed);
        }));
    }
    for h in handles {
        h.await.context("a request task failed")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_ramp_linearly_from_zero() {
        let s = parse_stages("10s:10, 10s:30,5s:0").expect("parses");
        assert_eq!(s.len(), 3);
        assert_eq!(target_at(&s, Duration::ZERO), 0);
        assert_eq!(target_at(&s, Duration::from_secs(5)), 5);
        assert_eq!(target_at(&s, Duration::from_secs(15)), 20);
        assert_eq!(target_at(&s, Duration::from_millis(22_500)), 15);
        assert_eq!(target_at(&s, Duration::from_secs(99)), 0);
        let hold = parse_stages("0s:64,10s:64").expect("parses");
        assert_eq!(target_at(&hold, Duration::from_secs(1)), 64);
        for bad in ["", "10s", "x:1", "10s:-1", "0s:5"] {
            assert!(parse_stages(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn paths_mix_keywords_and_ghosts_with_a_filter() {
        let mut rng = rand::rng();
        let paths: Vec<String> = (0..2000).map(|_| search_path(&mut rng, 0.3)).collect();
        let ghosts = paths.iter().filter(|p| p.contains("GHOST_")).count();
        assert!(
            (450..750).contains(&ghosts),
            "about 30% ghosts, got {ghosts}"
        );
        assert!(
            paths
                .iter()
                .all(|p| p.starts_with("/api/v1/coupons?search=") && p.contains("&filterType="))
        );
        assert!(
            search_path(&mut rng, 0.0).contains("search=")
                && !search_path(&mut rng, 0.0).contains("GHOST")
        );
    }

    #[test]
    fn the_original_thresholds_are_named_as_k6_names_them() {
        let names: Vec<String> = original_thresholds(Duration::from_millis(2500), 0.01)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            names,
            [
                "http_req_duration: p(99)<2500",
                "http_req_failed: rate<0.01"
            ]
        );
    }
}
