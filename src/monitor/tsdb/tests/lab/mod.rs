//! A deterministic stand-in for the lab's scrape traffic, for the bytes-per-sample figures:
//! the captured expositions of the app, postgres_exporter and redis_exporter (plus a proxy
//! built from its metric families) scraped every second, a quiet half-hour and then a
//! half-hour of load. Each target gets one timestamp per scrape (its phase plus a few
//! milliseconds of jitter, now and then a late one), as the scraper does.
//!
//! Values follow what those programs do: settings and info series never change, exporter
//! counters tick on every scrape, runtime gauges of the Go exporters move every scrape,
//! and under load the request counters, histogram buckets, byte counters (MB/s) and CPU
//! seconds climb at varied rates while memory moves in pages and connection counts by one.
//!
//! The test here holds the store to at most a byte a sample on disk for that traffic; the
//! ignored ones print the figures table and the costs (see each).

mod rules;
mod traffic;

use std::collections::HashMap;

use crate::monitor::series::Labels;

use traffic::{Rng, Target, lab_targets};

/// What one simulated run left on disk.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct DiskFigure {
    pub(super) series: usize,
    pub(super) samples: u64,
    pub(super) segment_bytes: u64,
    pub(super) checkpoint_bytes: u64,
    pub(super) append_time: std::time::Duration,
    pub(super) flush_time: std::time::Duration,
}

impl DiskFigure {
    pub(super) fn per_sample(&self) -> f64 {
        (self.segment_bytes + self.checkpoint_bytes) as f64 / self.samples as f64
    }
}

/// Bytes of segment files and of the checkpoint in `dir`, from the file system.
pub(super) fn bytes_in(dir: &std::path::Path) -> (u64, u64) {
    let (mut segments, mut checkpoint) = (0, 0);
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        let len = entry.metadata().unwrap().len();
        if name.ends_with(".seg") {
            segments += len;
        } else if name == "head.checkpoint" {
            checkpoint += len;
        }
    }
    (segments, checkpoint)
}

/// Every sample appended, by series.
pub(super) type Appended = HashMap<Labels, Vec<(i64, f64)>>;

/// Scrapes `targets` (indices into [`lab_targets`]) every second for `minutes`, the second
/// half under load, flushing every 10 s and maintaining every minute as the monitor does.
/// Keeps what it appended in `kept`, if given.
pub(super) fn run_lab(
    db: &super::Db,
    targets: &[usize],
    minutes: i64,
    mut kept: Option<&mut Appended>,
) -> DiskFigure {
    let steps = minutes * 60;
    let load_from = steps / 2;
    let mut chosen: Vec<Target> = lab_targets(load_from)
        .into_iter()
        .enumerate()
        .filter(|(i, _)| targets.contains(i))
        .map(|(_, t)| t)
        .collect();
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
    let t0 = super::T0;
    let mut figure = DiskFigure {
        series: chosen.iter().map(Target::len).sum(),
        ..DiskFigure::default()
    };
    for step in 0..steps {
        for target in &mut chosen {
            let batch = target.scrape(step, step >= load_from, t0, &mut rng);
            let started = std::time::Instant::now();
            let summary = db.append_batch(&batch);
            figure.append_time += started.elapsed();
            assert_eq!(summary.appended, batch.len(), "{}", target.job);
            figure.samples += batch.len() as u64;
            if let Some(kept) = kept.as_deref_mut() {
                for (labels, t, v) in batch {
                    kept.entry(labels).or_default().push((t, v));
                }
            }
        }
        let started = std::time::Instant::now();
        if step % 10 == 9 {
            db.flush().unwrap();
        }
        if step % 60 == 59 {
            db.maintain(t0 + step * 1000).unwrap();
        }
        figure.flush_time += started.elapsed();
    }
    db.flush().unwrap();
    (figure.segment_bytes, figure.checkpoint_bytes) = bytes_in(&db.options().dir);
    figure
}

fn lab_db(dir: &std::path::Path) -> super::Db {
    super::Db::open(super::Options {
        dir: dir.to_owned(),
        ..super::Options::default()
    })
    .unwrap()
}

/// Checks that the store gives back exactly what was appended, bit for bit.
fn assert_reads_back(db: &super::Db, kept: &Appended) {
    use crate::monitor::series::Queryable;
    let all = db.select(&[], i64::MIN, i64::MAX);
    assert_eq!(all.len(), kept.len());
    for series in all {
        let want = &kept[&series.labels];
        let bits = |s: &[(i64, f64)]| s.iter().map(|&(t, v)| (t, v.to_bits())).collect::<Vec<_>>();
        assert_eq!(bits(&series.samples), bits(want), "{}", series.labels);
    }
}

#[test]
fn the_lab_at_one_second_scrapes_stays_within_one_byte_a_sample_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let db = lab_db(dir.path());
    let mut kept = Appended::new();
    let figure = run_lab(&db, &[0, 1, 2, 3], 10, Some(&mut kept));
    let bps = figure.per_sample();
    println!("lab, 10 min: {figure:?}, {bps:.3} bytes/sample");
    assert!(bps <= 1.0, "{bps} bytes/sample");
    assert_reads_back(&db, &kept);
    drop(db);
    let db = lab_db(dir.path());
    assert_eq!(db.recovery().checkpoint_error, None);
    assert_reads_back(&db, &kept);
}

/// Synthetic series for the table: `series` series of `steps` samples every `interval`
/// ms, scraped together (one timestamp a scrape) or each with its own jitter.
fn synthetic(
    series: usize,
    steps: i64,
    interval: i64,
    own_jitter: bool,
    value: impl Fn(usize, i64) -> f64,
) -> DiskFigure {
    let dir = tempfile::tempdir().unwrap();
    let db = lab_db(dir.path());
    let labels: Vec<Labels> = (0..series)
        .map(|s| Labels::from_pairs(&[("__name__", "m"), ("job", &format!("job-{s}"))]))
        .collect();
    let mut rng = Rng::new(11);
    let mut samples = 0;
    for i in 0..steps {
        let shared = rng.below(5) as i64;
        let batch: Vec<(Labels, i64, f64)> = labels
            .iter()
            .enumerate()
            .map(|(s, l)| {
                let jitter = if own_jitter {
                    rng.below(5) as i64
                } else {
                    shared
                };
                (l.clone(), super::T0 + i * interval + jitter, value(s, i))
            })
            .collect();
        samples += batch.len() as u64;
        db.append_batch(&batch);
        if i % (10_000 / interval).max(1) == 0 {
            db.flush().unwrap();
        }
    }
    db.flush().unwrap();
    let (segment_bytes, checkpoint_bytes) = bytes_in(dir.path());
    DiskFigure {
        series,
        samples,
        segment_bytes,
        checkpoint_bytes,
        ..DiskFigure::default()
    }
}

/// The figures table: `cargo test --release lab_figures -- --ignored --nocapture`.
#[test]
#[ignore = "a one-hour simulation; run in release for the figures table"]
fn lab_figures() {
    println!("| input | series | samples | segments B | checkpoint B | B/sample |");
    println!("|---|---:|---:|---:|---:|---:|");
    let row = |name: &str, f: DiskFigure| {
        println!(
            "| {name} | {} | {} | {} | {} | {:.3} |",
            f.series,
            f.samples,
            f.segment_bytes,
            f.checkpoint_bytes,
            f.per_sample(),
        );
    };
    let steady = |s: usize, i: i64| (i * (s as i64 % 7 + 1)) as f64;
    row(
        "constant, 100 series, 10 s, 1200 scrapes",
        synthetic(100, 1200, 10_000, false, |_, _| 1.0),
    );
    row(
        "steady counter, 100 series, 10 s",
        synthetic(100, 1200, 10_000, false, steady),
    );
    row(
        "constant, 100 series, 1 s, 1 h",
        synthetic(100, 3600, 1000, false, |_, _| 1.0),
    );
    row(
        "steady counter, 100 series, 1 s, 1 h",
        synthetic(100, 3600, 1000, false, steady),
    );
    row(
        "constant, 1 s, own jitter each",
        synthetic(100, 3600, 1000, true, |_, _| 1.0),
    );
    row(
        "steady counter, 1 s, own jitter each",
        synthetic(100, 3600, 1000, true, steady),
    );
    let rows = [
        ("lab app, 1 h at 1 s", vec![0]),
        ("lab proxy", vec![1]),
        ("lab postgres", vec![2]),
        ("lab redis", vec![3]),
        ("whole lab", vec![0, 1, 2, 3]),
    ];
    for (name, targets) in rows {
        let dir = tempfile::tempdir().unwrap();
        let db = lab_db(dir.path());
        row(name, run_lab(&db, &targets, 60, None));
    }
}

/// Append, flush and query costs on the whole lab:
/// `cargo test --release lab_costs -- --ignored --nocapture`. `LAB_DIR=<dir>` keeps the
/// store there and later runs only query it; `LAB_CASE=<part of a name>` picks queries,
/// `LAB_RUNS=<n>` sets the runs of each (20).
#[test]
#[ignore = "a one-hour simulation; run in release for the figures"]
fn lab_costs() {
    use crate::monitor::series::{MatchOp, Matcher, Queryable};
    let dir = tempfile::tempdir().unwrap();
    let kept = std::env::var("LAB_DIR").map(std::path::PathBuf::from);
    let path = kept.clone().unwrap_or_else(|_| dir.path().to_owned());
    let reuse = kept.is_ok() && path.join("head.checkpoint").exists();
    let db = lab_db(&path);
    if !reuse {
        let f = run_lab(&db, &[0, 1, 2, 3], 60, None);
        println!(
            "append {:?}/sample, flush+maintain {:?} in total ({:?} per 10 s flush)",
            f.append_time / f.samples as u32,
            f.flush_time,
            f.flush_time / 360
        );
    }
    // A flush that writes only the checkpoint (one more sample a series).
    let mut extra = lab_targets(0);
    let mut rng = Rng::new(7);
    let started = std::time::Instant::now();
    for step in 0..10 {
        for target in &mut extra {
            let batch = target.scrape(3600 + step, false, super::T0, &mut rng);
            db.append_batch(&batch);
        }
        db.flush().unwrap();
    }
    println!("checkpoint-only flush: {:?}", started.elapsed() / 10);
    let end = super::T0 + 3600 * 1000;
    let regex = |name: &str, value: &str| Matcher::new(name, MatchOp::Regex, value).unwrap();
    let cases = [
        (
            "one series, 1 h",
            vec![
                Matcher::equal("__name__", "process_cpu_seconds_total"),
                Matcher::equal("job", "postgres"),
            ],
            3600,
        ),
        (
            "one series, last 5 min",
            vec![
                Matcher::equal("__name__", "process_cpu_seconds_total"),
                Matcher::equal("job", "postgres"),
            ],
            300,
        ),
        (
            "app request buckets, 1 h",
            vec![Matcher::equal(
                "__name__",
                "http_server_requests_seconds_bucket",
            )],
            3600,
        ),
        ("every series, 1 h", vec![regex("job", ".+")], 3600),
        ("every series, last 5 min", vec![regex("job", ".+")], 300),
    ];
    let only = std::env::var("LAB_CASE").unwrap_or_default();
    for (name, matchers, seconds) in cases.into_iter().filter(|c| c.0.contains(&only)) {
        let runs = std::env::var("LAB_RUNS").map_or(20, |v| v.parse().unwrap());
        let started = std::time::Instant::now();
        let mut samples = 0;
        for _ in 0..runs {
            let got = db.select(&matchers, end - seconds * 1000, end);
            samples = got.iter().map(|s| s.samples.len()).sum::<usize>();
        }
        println!(
            "{name}: {:?} a query, {samples} samples",
            started.elapsed() / runs
        );
    }
}
