//! What a load run measured: an HDR latency histogram, answers by status, named checks, and
//! the thresholds judged on them; printed k6-style or written as JSON.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::load::client::Outcome;

/// Counts shared by all virtual users of a run: [`Recorder`]s flush into it.
pub struct Stats {
    tally: Mutex<Tally>,
    /// Live counters for the progress line, bumped on every request.
    requests: AtomicU64,
    failed: AtomicU64,
}

/// Outcome keys beside HTTP statuses.
const TIMEOUT: u16 = 0;
const ERROR: u16 = 1;

/// Counts of one virtual user, or of the whole run.
struct Tally {
    /// Latency in microseconds, 1 µs .. 10 min, 3 significant digits.
    latency: Histogram<u64>,
    /// Answers by HTTP status, or TIMEOUT / ERROR.
    outcomes: Vec<(u16, u64)>,
    /// Check name, passed, failed.
    checks: Vec<(&'static str, u64, u64)>,
    requests: u64,
    failed: u64,
}

impl Tally {
    fn new() -> Self {
        // 1 µs .. 600 s with 3 significant digits: constant, valid bounds, so this cannot fail.
        let latency =
            Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds");
        Tally {
            latency,
            outcomes: Vec::new(),
            checks: Vec::new(),
            requests: 0,
            failed: 0,
        }
    }

    fn bump_outcome(&mut self, key: u16, n: u64) {
        match self.outcomes.iter_mut().find(|(k, _)| *k == key) {
            Some((_, count)) => *count += n,
            None => self.outcomes.push((key, n)),
        }
    }

    fn bump_check(&mut self, name: &'static str, passed: u64, failed: u64) {
        match self.checks.iter_mut().find(|(n, _, _)| *n == name) {
            Some((_, p, f)) => {
                *p += passed;
                *f += failed;
            }
            None => self.checks.push((name, passed, failed)),
        }
    }

    fn merge(&mut self, other: &Tally) {
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
        for (key, n) in &other.outcomes {
            self.bump_outcome(*key, *n);
        }
        for (name, p, f) in &other.checks {
            self.bump_check(name, *p, *f);
        }
        self.requests += other.requests;
        self.failed += other.failed;
    }
}

/// One virtual user's counts, flushed into the run's [`Stats`] now and then and when dropped.
pub struct Recorder {
    local: Tally,
    shared: Arc<Stats>,
    last_flush: Instant,
}

/// Requests a recorder keeps before flushing.
const FLUSH_EVERY: u64 = 256;
/// Longest a recorder keeps requests before flushing (the live p99 stays fresh).
const FLUSH_AFTER: Duration = Duration::from_millis(250);

impl Recorder {
    /// Records one request: its latency, outcome, and the checks it passed or failed.
    /// `correct` is the scenario's rule for a request that did what was expected.
    pub fn record(
        &mut self,
        latency: Duration,
        outcome: &Outcome,
        correct: bool,
        checks: &[(&'static str, bool)],
    ) {
        let key = match outcome {
            Outcome::Http(status, _) => *status,
            Outcome::Timeout => TIMEOUT,
            Outcome::Error(_) => ERROR,
        };
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let t = &mut self.local;
        t.latency.saturating_record(micros);
        t.bump_outcome(key, 1);
        for (name, ok) in checks {
            t.bump_check(name, u64::from(*ok), u64::from(!*ok));
        }
        t.requests += 1;
        t.failed += u64::from(!correct);
        self.shared.requests.fetch_add(1, Ordering::Relaxed);
        if !correct {
            self.shared.failed.fetch_add(1, Ordering::Relaxed);
        }
        if t.requests >= FLUSH_EVERY || self.last_flush.elapsed() >= FLUSH_AFTER {
            self.flush();
        }
    }

    fn flush(&mut self) {
        self.last_flush = Instant::now();
        if self.local.requests == 0 {
            return;
        }
        let mut shared = self.shared.tally.lock().unwrap_or_else(|e| e.into_inner());
        shared.merge(&self.local);
        drop(shared);
        self.local.latency.reset();
        self.local.outcomes.clear();
        self.local.checks.clear();
        self.local.requests = 0;
        self.local.failed = 0;
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

/// One threshold and whether it held.
#[derive(Debug, Clone, Serialize)]
pub struct ThresholdResult {
    pub name: String,
    pub passed: bool,
}

/// The end-of-run report.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub scenario: String,
    pub duration_s: f64,
    pub requests: u64,
    pub rps: f64,
    /// Requests that failed the scenario's correctness rule.
    pub failed: u64,
    pub failed_rate: f64,
    pub latency_ms: Latency,
    pub outcomes: BTreeMap<String, u64>,
    /// Check name → [passed, failed].
    pub checks: BTreeMap<String, [u64; 2]>,
    pub thresholds: Vec<ThresholdResult>,
    /// The monitor's dashboard at the run's time range, when the run was announced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dashboard: Option<String>,
}

impl Summary {
    /// Tells whether every threshold held.
    pub fn passed(&self) -> bool {
        self.thresholds.iter().all(|t| t.passed)
    }

    /// Returns the count of answers with this key ("200", "400", "error", "timeout").
    pub fn outcome(&self, key: &str) -> u64 {
        self.outcomes.get(key).copied().unwrap_or(0)
    }
}

/// A snapshot for the live progress line.
#[derive(Debug, Clone, Copy)]
pub struct Live {
    pub requests: u64,
    pub failed: u64,
    pub p99_ms: f64,
}

impl Stats {
    /// Starts empty.
    pub fn new() -> Arc<Self> {
        Arc::new(Stats {
            tally: Mutex::new(Tally::new()),
            requests: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        })
    }

    /// Makes a recorder for one virtual user.
    pub fn recorder(self: &Arc<Self>) -> Recorder {
        Recorder {
            local: Tally::new(),
            shared: self.clone(),
            last_flush: Instant::now(),
        }
    }

    /// Returns counters for the progress line (p99 of what was flushed so far).
    pub fn live(&self) -> Live {
        let p99 = self
            .tally
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .latency
            .value_at_quantile(0.99);
        Live {
            requests: self.requests.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            p99_ms: p99 as f64 / 1000.0,
        }
    }

    /// Builds the report once every recorder is dropped; `thresholds` are judged on it.
    pub fn summary(&self, scenario: &str, elapsed: Duration, thresholds: &Thresholds) -> Summary {
        let tally = self.tally.lock().unwrap_or_else(|e| e.into_inner());
        let h = &tally.latency;
        let ms = |v: u64| v as f64 / 1000.0;
        let secs = elapsed.as_secs_f64().max(1e-9);
        let failed_rate = if tally.requests == 0 {
            0.0
        } else {
            tally.failed as f64 / tally.requests as f64
        };
        let latency = Latency {
            min: ms(h.min()),
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
            mean: h.mean() / 1000.0,
        };
        let outcomes = tally
            .outcomes
            .iter()
            .map(|(key, n)| {
                let name = match *key {
                    TIMEOUT => "timeout".to_owned(),
                    ERROR => "error".to_owned(),
                    status => status.to_string(),
                };
                (name, *n)
            })
            .collect();
        let mut summary = Summary {
            scenario: scenario.to_owned(),
            duration_s: secs,
            requests: tally.requests,
            rps: tally.requests as f64 / secs,
            failed: tally.failed,
            failed_rate,
            latency_ms: latency,
            outcomes,
            checks: tally
                .checks
                .iter()
                .map(|(k, p, f)| ((*k).to_owned(), [*p, *f]))
                .collect(),
            thresholds: Vec::new(),
            dashboard: None,
        };
        summary.thresholds = thresholds.judge(&summary);
        summary
    }
}

/// Pass/fail bars for a run.
#[derive(Debug, Clone, Default)]
pub struct Thresholds {
    /// Highest allowed share of failed requests (0.01 = 1%).
    pub max_failed_rate: Option<f64>,
    /// Highest allowed p99 latency.
    pub max_p99: Option<Duration>,
}

impl Thresholds {
    fn judge(&self, s: &Summary) -> Vec<ThresholdResult> {
        let mut out = Vec::new();
        if let Some(max) = self.max_failed_rate {
            out.push(ThresholdResult {
                name: format!(
                    "failed rate {:.2}% < {:.2}%",
                    s.failed_rate * 100.0,
                    max * 100.0
                ),
                passed: s.failed_rate < max,
            });
        }
        if let Some(max) = self.max_p99 {
            let max_ms = max.as_secs_f64() * 1000.0;
            out.push(ThresholdResult {
                name: format!("p99 {:.1} ms < {max_ms:.0} ms", s.latency_ms.p99),
                passed: s.latency_ms.p99 < max_ms,
            });
        }
        out
    }
}

/// Writes the k6-like text report.
pub fn print_summary(s: &Summary) {
    let l = &s.latency_ms;
    println!("\n  scenario ............: {}", s.scenario);
    println!(
        "  requests ............: {} in {:.2} s ({:.1}/s)",
        s.requests, s.duration_s, s.rps
    );
    println!(
        "  latency (ms) ........: min {:.2}  p50 {:.2}  p90 {:.2}  p95 {:.2}  p99 {:.2}  max {:.2}  mean {:.2}",
        l.min, l.p50, l.p90, l.p95, l.p99, l.max, l.mean
    );
    let outcomes: Vec<String> = s
        .outcomes
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    println!("  answers .............: {}", outcomes.join("  "));
    println!(
        "  failed ..............: {} ({:.2}%)",
        s.failed,
        s.failed_rate * 100.0
    );
    for (name, [pass, fail]) in &s.checks {
        let total = (pass + fail).max(1);
        println!(
            "  check ...............: {:6.2}% ✓ {pass} ✗ {fail}  {name}",
            *pass as f64 * 100.0 / total as f64
        );
    }
    for t in &s.thresholds {
        println!(
            "  threshold ...........: {} {}",
            if t.passed { "✓" } else { "✗" },
            t.name
        );
    }
    if let Some(link) = &s.dashboard {
        println!("  dashboard ...........: {link}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::body::Bytes;

    #[test]
    fn summary_counts_outcomes_checks_and_judges_thresholds() {
        let stats = Stats::new();
        let ok = Outcome::Http(200, Bytes::new());
        let (mut a, mut b) = (stats.recorder(), stats.recorder());
        for ms in 1..=100u64 {
            a.record(Duration::from_millis(ms), &ok, true, &[("is 200", true)]);
        }
        b.record(
            Duration::from_millis(5),
            &Outcome::Timeout,
            false,
            &[("is 200", false)],
        );
        assert_eq!(
            stats.live().requests,
            101,
            "live counters move before any flush"
        );
        drop((a, b));
        let t = Thresholds {
            max_failed_rate: Some(0.05),
            max_p99: Some(Duration::from_millis(50)),
        };
        let s = stats.summary("test", Duration::from_secs(2), &t);
        assert_eq!(
            (s.requests, s.failed, s.outcome("200"), s.outcome("timeout")),
            (101, 1, 100, 1)
        );
        assert_eq!(s.checks["is 200"], [100, 1]);
        assert!(
            (s.latency_ms.p50 - 51.0).abs() < 1.0,
            "{}",
            s.latency_ms.p50
        );
        assert!((s.rps - 50.5).abs() < 1e-9);
        assert!(s.thresholds[0].passed, "1/101 < 5%");
        assert!(!s.thresholds[1].passed, "p99 ~99 ms is over 50 ms");
        assert!(!s.passed());
    }
}
