//! The end-of-run report of a load run, the values its thresholds judge as k6 computes them,
//! and its k6-like text form.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::load::k6::{Agg, Kind, Threshold, kind_of};

/// A k6 trend in milliseconds: k6's summary figures plus p99.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Latency {
    pub(crate) fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        let ms = |v: u64| v as f64 / 1000.0;
        Latency {
            min: ms(h.min()),
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
            mean: h.mean() / 1000.0,
        }
    }
}

/// A k6 rate metric: `passes` are the true samples (for `http_req_failed`, the failed
/// requests), `fails` the false ones, `rate` = passes / all (0 with no sample).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Rate {
    pub passes: u64,
    pub fails: u64,
    pub rate: f64,
}

impl Rate {
    pub fn new(passes: u64, fails: u64) -> Rate {
        let all = passes + fails;
        Rate {
            passes,
            fails,
            rate: if all == 0 {
                0.0
            } else {
                passes as f64 / all as f64
            },
        }
    }
}

/// One threshold, its metric's value and whether it held.
#[derive(Debug, Clone, Serialize)]
pub struct ThresholdResult {
    /// As k6 names it: `http_req_failed: rate<0.05`.
    pub name: String,
    /// The metric with its selector (`checks{check:x}`), and the expression (`rate>0.95`).
    pub metric: String,
    pub expr: String,
    /// The aggregate judged (a rate as a share, durations in ms).
    pub value: f64,
    pub passed: bool,
}

/// The end-of-run report.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub scenario: String,
    pub duration_s: f64,
    pub requests: u64,
    pub rps: f64,
    /// k6's http_req_failed: requests with no answer or an answer whose status is not in
    /// `expected_statuses`.
    pub http_req_failed: Rate,
    /// The statuses that do not count in http_req_failed (k6's default: 200-399).
    pub expected_statuses: String,
    /// Requests that failed one of the scenario's checks: answers the scenario does not
    /// expect (5xx, wrong codes, no answer). Not k6's http_req_failed: a sold-out 400 is
    /// expected here and failed there.
    pub unexpected: u64,
    pub unexpected_rate: f64,
    /// k6's http_req_duration, ms.
    pub latency_ms: Latency,
    /// k6's `http_req_duration{expected_response:true}`, ms.
    pub latency_expected_ms: Latency,
    /// k6's http_req_connecting, ms.
    pub connecting_ms: Latency,
    /// k6's http_req_blocked, http_req_sending, http_req_waiting, http_req_receiving, ms.
    pub blocked_ms: Latency,
    pub sending_ms: Latency,
    pub waiting_ms: Latency,
    pub receiving_ms: Latency,
    /// k6's data_sent and data_received, bytes.
    pub data_sent: u64,
    pub data_received: u64,
    pub outcomes: BTreeMap<String, u64>,
    /// Check name → [passed, failed].
    pub checks: BTreeMap<String, [u64; 2]>,
    /// k6's `checks`: passed checks / all checks.
    pub checks_rate: Rate,
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

    /// The checks of one name, or of all names, as a k6 rate metric.
    pub fn checks_of(&self, name: Option<&str>) -> Rate {
        match name {
            None => self.checks_rate,
            Some(name) => self
                .checks
                .get(name)
                .map_or_else(Rate::default, |[p, f]| Rate::new(*p, *f)),
        }
    }

    /// The value a threshold judges, as k6 computes it; `pct` reads a percentile of the
    /// threshold's trend. None for a selector we do not keep.
    pub fn value_of(&self, t: &Threshold, pct: &dyn Fn(&Threshold, f64) -> f64) -> Option<f64> {
        let trend = |l: &Latency| match t.agg {
            Agg::Avg => Some(l.mean),
            Agg::Min => Some(l.min),
            Agg::Max => Some(l.max),
            Agg::Med => Some(l.p50),
            Agg::P(p) => Some(pct(t, p)),
            Agg::Rate | Agg::Count => None,
        };
        match (t.base(), t.selector()) {
            ("http_req_failed", None) => Some(self.http_req_failed.rate),
            ("checks", None) => Some(self.checks_rate.rate),
            ("checks", Some(("check", name))) => Some(self.checks_of(Some(name)).rate),
            ("http_req_duration", None) => trend(&self.latency_ms),
            ("http_req_duration", Some(("expected_response", "true"))) => {
                trend(&self.latency_expected_ms)
            }
            ("http_req_connecting", None) => trend(&self.connecting_ms),
            ("http_req_blocked", None) => trend(&self.blocked_ms),
            ("http_req_sending", None) => trend(&self.sending_ms),
            ("http_req_waiting", None) => trend(&self.waiting_ms),
            ("http_req_receiving", None) => trend(&self.receiving_ms),
            ("data_sent", None) => self.counter(t.agg, self.data_sent),
            ("data_received", None) => self.counter(t.agg, self.data_received),
            ("http_reqs" | "iterations", None) => self.counter(t.agg, self.requests),
            _ => None,
        }
    }

    /// A counter's count, or its rate per second of the run.
    fn counter(&self, agg: Agg, count: u64) -> Option<f64> {
        match agg {
            Agg::Count => Some(count as f64),
            Agg::Rate => Some(count as f64 / self.duration_s),
            _ => None,
        }
    }
}

/// A threshold's value as k6 prints it: `rate=90.00%`, `p(95)=12.34ms`.
fn shown(t: &ThresholdResult) -> String {
    let base = t.metric.split('{').next().unwrap_or_default();
    match kind_of(base) {
        Some(Kind::Rate) => format!("rate={:.2}%", t.value * 100.0),
        Some(Kind::Trend) => {
            let agg = t
                .expr
                .split(['<', '>', '=', '!'])
                .next()
                .unwrap_or_default();
            format!("{agg}={:.2}ms", t.value)
        }
        _ => format!("{:.2}", t.value),
    }
}

/// Writes the k6-like text report: thresholds first, checks by name, then the metrics.
pub fn print_summary(s: &Summary) {
    let mark = |ok: bool| if ok { "✓" } else { "✗" };
    println!("\n  scenario ............: {}", s.scenario);
    if !s.thresholds.is_empty() {
        println!("\n  THRESHOLDS");
        for t in &s.thresholds {
            println!("    {} {}  {}", mark(t.passed), t.name, shown(t));
        }
    }
    println!("\n  CHECKS");
    let c = &s.checks_rate;
    println!(
        "    checks ................: {:6.2}% {} out of {}",
        c.rate * 100.0,
        c.passes,
        c.passes + c.fails
    );
    for (name, [pass, fail]) in &s.checks {
        println!("    {} {name}: ✓ {pass} / ✗ {fail}", mark(*fail == 0));
    }
    println!("\n  HTTP");
    let trend = |name: &str, l: &Latency| {
        println!(
            "    {name:.<24}: avg={:.2}ms min={:.2}ms med={:.2}ms max={:.2}ms p(90)={:.2}ms p(95)={:.2}ms p(99)={:.2}ms",
            l.mean, l.min, l.p50, l.max, l.p90, l.p95, l.p99
        );
    };
    trend("http_req_duration ", &s.latency_ms);
    trend("  {expected_response} ", &s.latency_expected_ms);
    trend("http_req_blocked ", &s.blocked_ms);
    trend("http_req_connecting ", &s.connecting_ms);
    trend("http_req_sending ", &s.sending_ms);
    trend("http_req_waiting ", &s.waiting_ms);
    trend("http_req_receiving ", &s.receiving_ms);
    let f = &s.http_req_failed;
    println!(
        "    {:.<24}: {:6.2}% {} out of {} (expected statuses: {})",
        "http_req_failed ",
        f.rate * 100.0,
        f.passes,
        s.requests,
        s.expected_statuses
    );
    println!(
        "    {:.<24}: {} in {:.2} s ({:.1}/s)",
        "http_reqs ", s.requests, s.duration_s, s.rps
    );
    let outcomes: Vec<String> = s
        .outcomes
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    println!(
        "    {:.<24}: {} B sent, {} B received",
        "data ", s.data_sent, s.data_received
    );
    println!("    {:.<24}: {}", "answers ", outcomes.join("  "));
    println!(
        "    {:.<24}: {} ({:.2}%), a check failed",
        "unexpected ",
        s.unexpected,
        s.unexpected_rate * 100.0
    );
    if let Some(link) = &s.dashboard {
        println!("\n  dashboard ...........: {link}");
    }
}
