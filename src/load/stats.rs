//! What a load run measured: HDR histograms of k6's `http_req_duration` (all answers and the
//! expected ones) and its request phases, answers by status, k6's `http_req_failed`, the
//! scenario's named checks, and the thresholds judged on them (the report is in `summary`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::load::client::Outcome;
use crate::load::clock::Phases;
use crate::load::k6::{ExpectedStatuses, Threshold};
pub use crate::load::summary::{Latency, Rate, Summary, ThresholdResult, print_summary};

/// Counts shared by all virtual users of a run: [`Recorder`]s flush into it.
pub struct Stats {
    tally: Mutex<Tally>,
    /// Which answers count in `http_req_failed`.
    expected: ExpectedStatuses,
    /// Live counters for the progress line, bumped on every request.
    requests: AtomicU64,
    failed: AtomicU64,
}

/// Outcome keys beside HTTP statuses.
const TIMEOUT: u16 = 0;
const ERROR: u16 = 1;

fn histogram() -> Histogram<u64> {
    // 1 µs .. 600 s with 3 significant digits: constant, valid bounds, so this cannot fail.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Counts of the whole run.
struct Tally {
    /// k6's http_req_duration in microseconds, 1 µs .. 10 min, 3 significant digits.
    latency: Histogram<u64>,
    /// The same for answers with an expected status (k6's `{expected_response:true}`).
    latency_expected: Histogram<u64>,
    /// TCP connect time of each request, 0 when its connection was already open.
    connecting: Histogram<u64>,
    /// k6's blocked, sending, waiting, receiving.
    phases: [Histogram<u64>; 4],
    counts: Counts,
}

/// One request's times in microseconds: duration, connecting, blocked, sending, waiting,
/// receiving; and whether its status was expected.
#[derive(Debug, Clone, Copy)]
struct Timing {
    us: [u64; 6],
    expected: bool,
}

/// What a recorder adds up between flushes, and the run's totals.
#[derive(Debug, Default)]
struct Counts {
    data_sent: u64,
    data_received: u64,
    /// Answers by HTTP status, or TIMEOUT / ERROR.
    outcomes: Vec<(u16, u64)>,
    /// Check name, passed, failed, in the order first seen.
    checks: Vec<(&'static str, u64, u64)>,
    requests: u64,
    /// Requests that failed a check: answers the scenario does not expect.
    unexpected: u64,
    /// k6's http_req_failed: no answer, or a status not expected.
    req_failed: u64,
}

impl Counts {
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

    fn merge(&mut self, other: &Counts) {
        self.data_sent += other.data_sent;
        self.data_received += other.data_received;
        for (key, n) in &other.outcomes {
            self.bump_outcome(*key, *n);
        }
        for (name, p, f) in &other.checks {
            self.bump_check(name, *p, *f);
        }
        self.requests += other.requests;
        self.unexpected += other.unexpected;
        self.req_failed += other.req_failed;
    }
}

impl Tally {
    fn new() -> Self {
        Tally {
            latency: histogram(),
            latency_expected: histogram(),
            connecting: histogram(),
            phases: [histogram(), histogram(), histogram(), histogram()],
            counts: Counts::default(),
        }
    }

    /// Takes a recorder's requests: their times into the histograms (a recorder keeps raw
    /// times, not histograms, so a flush costs its requests, not a histogram's buckets).
    fn absorb(&mut self, timings: &[Timing], counts: &Counts) {
        for t in timings {
            let [duration, connecting, phases @ ..] = t.us;
            self.latency.saturating_record(duration.max(1));
            if t.expected {
                self.latency_expected.saturating_record(duration.max(1));
            }
            self.connecting.saturating_record(connecting);
            for (h, us) in self.phases.iter_mut().zip(phases) {
                h.saturating_record(us);
            }
        }
        self.counts.merge(counts);
    }
}

/// One request as k6 would count it.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    /// k6's http_req_duration: from sending the request to the answer's last byte, without
    /// connecting.
    pub duration: Duration,
    /// k6's http_req_connecting: the TCP connect this request waited for (zero on an open
    /// connection).
    pub connecting: Duration,
    /// k6's other phases and the bytes each way (zero when not measured).
    pub phases: Phases,
    pub outcome: &'a Outcome,
    /// The scenario's checks in order, as k6 records them (a check that k6 would not reach
    /// is left out).
    pub checks: &'a [(&'static str, bool)],
}

/// One virtual user's counts, flushed into the run's [`Stats`] now and then and when dropped.
pub struct Recorder {
    timings: Vec<Timing>,
    counts: Counts,
    shared: Arc<Stats>,
    last_flush: Instant,
}

/// Requests a recorder keeps before flushing.
const FLUSH_EVERY: u64 = 256;
/// Longest a recorder keeps requests before flushing (the live p99 stays fresh).
const FLUSH_AFTER: Duration = Duration::from_millis(250);

impl Recorder {
    /// Records one request whose checks judge it: it is unexpected when one of them failed.
    pub fn sample(&mut self, s: Sample<'_>) {
        let unexpected = s.checks.iter().any(|(_, ok)| !ok);
        self.add(s, unexpected);
    }

    /// Records one request: its latency, outcome, and the checks it passed or failed.
    /// `correct` is the scenario's rule for a request that did what was expected.
    pub fn record(
        &mut self,
        latency: Duration,
        outcome: &Outcome,
        correct: bool,
        checks: &[(&'static str, bool)],
    ) {
        let s = Sample {
            duration: latency,
            connecting: Duration::ZERO,
            phases: Phases::default(),
            outcome,
            checks,
        };
        self.add(s, !correct);
    }

    fn add(&mut self, s: Sample<'_>, unexpected: bool) {
        let key = match s.outcome {
            Outcome::Http(status, _) => *status,
            Outcome::Timeout => TIMEOUT,
            Outcome::Error(_) => ERROR,
        };
        let req_failed = self.shared.expected.failed(s.outcome);
        let p = &s.phases;
        self.timings.push(Timing {
            us: [
                micros(s.duration),
                micros(s.connecting),
                micros(p.blocked),
                micros(p.sending),
                micros(p.waiting),
                micros(p.receiving),
            ],
            expected: !req_failed,
        });
        let c = &mut self.counts;
        c.data_sent += p.bytes_sent;
        c.data_received += p.bytes_received;
        c.bump_outcome(key, 1);
        for (name, ok) in s.checks {
            c.bump_check(name, u64::from(*ok), u64::from(!*ok));
        }
        c.requests += 1;
        c.unexpected += u64::from(unexpected);
        c.req_failed += u64::from(req_failed);
        self.shared.requests.fetch_add(1, Ordering::Relaxed);
        if req_failed {
            self.shared.failed.fetch_add(1, Ordering::Relaxed);
        }
        if c.requests >= FLUSH_EVERY || self.last_flush.elapsed() >= FLUSH_AFTER {
            self.flush();
        }
    }

    fn flush(&mut self) {
        self.last_flush = Instant::now();
        if self.counts.requests == 0 {
            return;
        }
        let mut shared = self.shared.tally.lock().unwrap_or_else(|e| e.into_inner());
        shared.absorb(&self.timings, &self.counts);
        drop(shared);
        self.timings.clear();
        self.counts = Counts::default();
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.flush();
    }
}

/// A snapshot for the live progress line.
#[derive(Debug, Clone, Copy)]
pub struct Live {
    pub requests: u64,
    /// k6's http_req_failed so far.
    pub failed: u64,
    pub p99_ms: f64,
}

impl Stats {
    /// Starts empty, with k6's default expected statuses (200-399).
    pub fn new() -> Arc<Self> {
        Stats::expecting(ExpectedStatuses::default())
    }

    /// Starts empty; `expected` are the statuses that do not count in http_req_failed.
    pub fn expecting(expected: ExpectedStatuses) -> Arc<Self> {
        Arc::new(Stats {
            tally: Mutex::new(Tally::new()),
            expected,
            requests: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        })
    }

    /// Makes a recorder for one virtual user.
    pub fn recorder(self: &Arc<Self>) -> Recorder {
        Recorder {
            timings: Vec::new(),
            counts: Counts::default(),
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
        let secs = elapsed.as_secs_f64().max(1e-9);
        let outcomes = tally
            .counts
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
        let (passed, failed) = tally
            .counts
            .checks
            .iter()
            .fold((0, 0), |(p, f), (_, cp, cf)| (p + cp, f + cf));
        let mut summary = Summary {
            scenario: scenario.to_owned(),
            duration_s: secs,
            requests: tally.counts.requests,
            rps: tally.counts.requests as f64 / secs,
            http_req_failed: Rate::new(
                tally.counts.req_failed,
                tally.counts.requests - tally.counts.req_failed,
            ),
            expected_statuses: self.expected.to_string(),
            unexpected: tally.counts.unexpected,
            unexpected_rate: Rate::new(
                tally.counts.unexpected,
                tally.counts.requests - tally.counts.unexpected,
            )
            .rate,
            latency_ms: Latency::of(&tally.latency),
            latency_expected_ms: Latency::of(&tally.latency_expected),
            connecting_ms: Latency::of(&tally.connecting),
            blocked_ms: Latency::of(&tally.phases[0]),
            sending_ms: Latency::of(&tally.phases[1]),
            waiting_ms: Latency::of(&tally.phases[2]),
            receiving_ms: Latency::of(&tally.phases[3]),
            data_sent: tally.counts.data_sent,
            data_received: tally.counts.data_received,
            outcomes,
            checks: tally
                .counts
                .checks
                .iter()
                .map(|(k, p, f)| ((*k).to_owned(), [*p, *f]))
                .collect(),
            checks_rate: Rate::new(passed, failed),
            thresholds: Vec::new(),
            dashboard: None,
        };
        let pct = |t: &Threshold, p: f64| {
            let h = match (t.base(), t.selector()) {
                ("http_req_connecting", _) => &tally.connecting,
                ("http_req_blocked", _) => &tally.phases[0],
                ("http_req_sending", _) => &tally.phases[1],
                ("http_req_waiting", _) => &tally.phases[2],
                ("http_req_receiving", _) => &tally.phases[3],
                (_, Some(_)) => &tally.latency_expected,
                _ => &tally.latency,
            };
            if h.is_empty() {
                0.0
            } else {
                h.value_at_quantile(p / 100.0) as f64 / 1000.0
            }
        };
        summary.thresholds = thresholds.judge(&summary, &pct);
        summary
    }
}

/// Pass/fail bars for a run, as k6 writes them.
#[derive(Debug, Clone, Default)]
pub struct Thresholds(pub Vec<Threshold>);

impl Thresholds {
    /// The original script's thresholds, or the ones given instead (`--threshold`).
    pub fn or_given(original: Vec<Threshold>, given: &[Threshold]) -> Thresholds {
        if given.is_empty() {
            Thresholds(original)
        } else {
            Thresholds(given.to_vec())
        }
    }

    fn judge(&self, s: &Summary, pct: &dyn Fn(&Threshold, f64) -> f64) -> Vec<ThresholdResult> {
        self.0
            .iter()
            .map(|t| {
                // A selector we do not keep has no samples: k6 judges an empty rate as 0.
                let value = s.value_of(t, pct).unwrap_or(0.0);
                ThresholdResult {
                    name: t.to_string(),
                    metric: t.metric.clone(),
                    expr: t.expr.clone(),
                    value,
                    passed: t.holds(value),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::body::Bytes;

    fn judged(stats: &Stats, thresholds: &[&str]) -> Summary {
        let t = thresholds
            .iter()
            .map(|t| Threshold::parse(t).expect("parses"))
            .collect();
        stats.summary("test", Duration::from_secs(2), &Thresholds(t))
    }

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
        let s = judged(
            &stats,
            &["http_req_failed: rate<0.05", "http_req_duration: p(99)<50"],
        );
        assert_eq!(
            (
                s.requests,
                s.unexpected,
                s.http_req_failed.passes,
                s.outcome("200"),
                s.outcome("timeout")
            ),
            (101, 1, 1, 100, 1)
        );
        assert_eq!(s.checks["is 200"], [100, 1]);
        assert!(
            (s.latency_ms.p50 - 51.0).abs() < 1.0,
            "{}",
            s.latency_ms.p50
        );
        assert!((s.rps - 50.5).abs() < 1e-9);
        assert_eq!(s.thresholds[0].name, "http_req_failed: rate<0.05");
        assert!(s.thresholds[0].passed, "1/101 < 5%");
        assert!(!s.thresholds[1].passed, "p99 ~99 ms is over 50 ms");
        assert!(!s.passed());
    }

    #[test]
    fn http_req_failed_follows_the_expected_statuses_and_checks_are_apart() {
        let sold_out = Outcome::Http(400, Bytes::from_static(br#"{"code":"CP04"}"#));
        let issued = Outcome::Http(200, Bytes::new());
        let run = |stats: Arc<Stats>| {
            let mut r = stats.recorder();
            for (outcome, n, ms) in [(&issued, 10, 3), (&sold_out, 90, 7)] {
                for _ in 0..n {
                    r.sample(Sample {
                        duration: Duration::from_millis(ms),
                        connecting: Duration::from_millis(1),
                        phases: Phases::default(),
                        outcome,
                        checks: &[("is acceptable", true), ("sold out or issued", true)],
                    });
                }
            }
            drop(r);
            judged(
                &stats,
                &[
                    "http_req_failed: rate<0.05",
                    "checks: rate>0.99",
                    "checks{check:sold out or issued}: rate>0.95",
                    "http_req_connecting: max<5",
                ],
            )
        };
        let k6 = run(Stats::new());
        assert_eq!(
            (k6.http_req_failed.passes, k6.http_req_failed.fails),
            (90, 10)
        );
        assert!((k6.http_req_failed.rate - 0.9).abs() < 1e-9);
        assert_eq!(k6.unexpected, 0, "every answer passed its checks");
        assert_eq!(k6.checks_rate.passes, 200);
        let verdicts: Vec<bool> = k6.thresholds.iter().map(|t| t.passed).collect();
        assert_eq!(verdicts, [false, true, true, true], "{:?}", k6.thresholds);
        assert!(!k6.passed());
        let (all, expected) = (k6.latency_ms.max, k6.latency_expected_ms.max);
        assert!(
            all > 6.9 && expected < 3.1,
            "only the 200s: {all} {expected}"
        );
        let with_400 = run(Stats::expecting("200-399,400".parse().expect("parses")));
        assert_eq!(with_400.http_req_failed.passes, 0);
        assert!(with_400.passed(), "{:?}", with_400.thresholds);
        assert_eq!(with_400.expected_statuses, "200-399,400");
    }
}
