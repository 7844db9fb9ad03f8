//! k6's rules, so that `fastpick load` gives k6's verdicts on the same run: which answers
//! count in `http_req_failed` (`http.setResponseCallback(http.expectedStatuses(...))`), and
//! thresholds written as k6 writes them (`http_req_failed: rate<0.05`).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use clap::Args;

use crate::load::client::Outcome;

/// The k6 options every scenario has.
#[derive(Debug, Clone, Default, Args)]
pub struct K6Args {
    /// Statuses that do not count in http_req_failed, as k6's
    /// `http.expectedStatuses(...)`: ranges and codes, e.g. `200-399,400`. No answer
    /// (connection error, timeout) always counts.
    #[arg(long, default_value_t = ExpectedStatuses::default())]
    pub expected_statuses: ExpectedStatuses,
    /// A threshold as k6 writes it, e.g. `http_req_failed: rate<0.05`,
    /// `http_req_duration: p(95)<500`, `checks: rate>0.99`, `checks{check:NAME}: rate>0.95`;
    /// repeat the flag for more. Given, they replace the original script's thresholds.
    #[arg(long = "threshold", value_name = "METRIC: EXPR")]
    pub thresholds: Vec<Threshold>,
    /// Writes the summary as `k6 run --summary-export` does (its legacy JSON shape).
    #[arg(long, value_name = "FILE")]
    pub summary_export: Option<PathBuf>,
}

/// Statuses k6 counts as expected: inclusive ranges. k6's default is 200-399.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedStatuses(Vec<(u16, u16)>);

impl Default for ExpectedStatuses {
    fn default() -> Self {
        ExpectedStatuses(vec![(200, 399)])
    }
}

impl ExpectedStatuses {
    /// Tells whether an answer with this status is expected.
    pub fn contains(&self, status: u16) -> bool {
        self.0.iter().any(|(lo, hi)| (*lo..=*hi).contains(&status))
    }

    /// k6's `http_req_failed` for one request: no answer, or an answer not expected.
    pub fn failed(&self, outcome: &Outcome) -> bool {
        match outcome {
            Outcome::Http(status, _) => !self.contains(*status),
            Outcome::Timeout | Outcome::Error(_) => true,
        }
    }
}

/// Why a flag's text is not what it should be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(String);

impl FromStr for ExpectedStatuses {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, ParseError> {
        let status = |s: &str| -> Result<u16, ParseError> {
            s.trim()
                .parse::<u16>()
                .ok()
                .filter(|n| (100..=599).contains(n))
                .ok_or_else(|| ParseError(format!("'{s}' is not an HTTP status (100-599)")))
        };
        let ranges = text
            .split(',')
            .map(|part| {
                let (lo, hi) = match part.split_once('-') {
                    Some((lo, hi)) => (status(lo)?, status(hi)?),
                    None => (status(part)?, status(part)?),
                };
                if lo > hi {
                    return Err(ParseError(format!("'{part}' ends before it starts")));
                }
                Ok((lo, hi))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ExpectedStatuses(ranges))
    }
}

impl fmt::Display for ExpectedStatuses {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(lo, hi)| {
                if lo == hi {
                    lo.to_string()
                } else {
                    format!("{lo}-{hi}")
                }
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// What a threshold aggregates, as k6 names it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Agg {
    /// Share of true samples (rate metrics) or per second (http_reqs).
    Rate,
    Count,
    Avg,
    Min,
    Max,
    Med,
    /// A percentile, 0..=100.
    P(f64),
}

/// k6's comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

/// The metrics a threshold may name, and their k6 kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `http_req_failed`, `checks`: rate.
    Rate,
    /// `http_req_duration`, `http_req_connecting`, `_blocked`, `_sending`, `_waiting`,
    /// `_receiving`: avg, min, max, med, p(N) in ms.
    Trend,
    /// `http_reqs`, `iterations`, `data_sent`, `data_received`: count, rate (per second).
    Counter,
}

/// The kind of a metric name (without its `{tag:value}` selector).
pub fn kind_of(metric: &str) -> Option<Kind> {
    match metric {
        "http_req_failed" | "checks" => Some(Kind::Rate),
        "http_req_duration"
        | "http_req_connecting"
        | "http_req_blocked"
        | "http_req_sending"
        | "http_req_waiting"
        | "http_req_receiving" => Some(Kind::Trend),
        "http_reqs" | "iterations" | "data_sent" | "data_received" => Some(Kind::Counter),
        _ => None,
    }
}

/// One threshold: `METRIC[{tag:value}]: AGG OP NUMBER`, judged as k6 judges it.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// The metric, with its tag selector when it has one (`checks{check:correct}`).
    pub metric: String,
    /// The expression as written, spaces removed (`rate<0.05`): k6's key for it.
    pub expr: String,
    pub agg: Agg,
    pub op: Op,
    pub bound: f64,
}

impl Threshold {
    /// The metric's name without the selector.
    pub fn base(&self) -> &str {
        self.metric.split('{').next().unwrap_or(&self.metric)
    }

    /// The selector's tag and value (`check`, `correct`), when there is one.
    pub fn selector(&self) -> Option<(&str, &str)> {
        let inner = self.metric.split_once('{')?.1.strip_suffix('}')?;
        let (k, v) = inner.split_once(':')?;
        Some((k.trim(), v.trim()))
    }

    /// Tells whether `value` (the metric's aggregate) holds the threshold.
    pub fn holds(&self, value: f64) -> bool {
        let b = self.bound;
        match self.op {
            Op::Lt => value < b,
            Op::Le => value <= b,
            Op::Gt => value > b,
            Op::Ge => value >= b,
            Op::Eq => value == b,
            Op::Ne => value != b,
        }
    }

    /// Builds one from code: `Threshold::parse("http_req_failed: rate<0.05")`.
    pub fn parse(text: &str) -> Result<Threshold, ParseError> {
        text.parse()
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.metric, self.expr)
    }
}

fn parse_agg(text: &str) -> Option<Agg> {
    Some(match text {
        "rate" => Agg::Rate,
        "count" => Agg::Count,
        "avg" => Agg::Avg,
        "min" => Agg::Min,
        "max" => Agg::Max,
        "med" => Agg::Med,
        _ => {
            let p: f64 = text.strip_prefix("p(")?.strip_suffix(')')?.parse().ok()?;
            if !(0.0..=100.0).contains(&p) {
                return None;
            }
            Agg::P(p)
        }
    })
}

impl FromStr for Threshold {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, ParseError> {
        let bad = |why: &str| ParseError(format!("threshold '{text}': {why}"));
        // The selector may hold a colon (`checks{check:x}`), the expression never does.
        let (metric, expr) = text
            .rsplit_once(':')
            .ok_or_else(|| bad("not METRIC: EXPR"))?;
        let metric = metric.trim().to_owned();
        let expr: String = expr.chars().filter(|c| !c.is_whitespace()).collect();
        let name = metric.split('{').next().unwrap_or_default();
        let kind = kind_of(name).ok_or_else(|| {
            bad("unknown metric (http_req_failed, checks, http_req_duration, http_req_blocked, http_req_connecting, http_req_sending, http_req_waiting, http_req_receiving, http_reqs, iterations, data_sent, data_received)")
        })?;
        if metric.contains('{') && !(metric.ends_with('}') && metric.contains(':')) {
            return Err(bad("the selector is not {tag:value}"));
        }
        let at = expr
            .find(['<', '>', '=', '!'])
            .ok_or_else(|| bad("no comparison"))?;
        let (agg, rest) = expr.split_at(at);
        let (op, number) = [
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("===", Op::Eq),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<", Op::Lt),
            (">", Op::Gt),
        ]
        .into_iter()
        .find_map(|(s, op)| rest.strip_prefix(s).map(|n| (op, n)))
        .ok_or_else(|| bad("unknown comparison"))?;
        let bound: f64 = number
            .parse()
            .ok()
            .filter(|b: &f64| b.is_finite())
            .ok_or_else(|| bad("the bound is not a number"))?;
        let agg = parse_agg(agg).ok_or_else(|| bad("unknown aggregation"))?;
        let fits = match kind {
            Kind::Rate => agg == Agg::Rate,
            Kind::Counter => matches!(agg, Agg::Count | Agg::Rate),
            Kind::Trend => matches!(agg, Agg::Avg | Agg::Min | Agg::Max | Agg::Med | Agg::P(_)),
        };
        if !fits {
            return Err(bad("this aggregation does not apply to the metric"));
        }
        Ok(Threshold {
            metric,
            expr,
            agg,
            op,
            bound,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::body::Bytes;

    #[test]
    fn expected_statuses_parse_ranges_and_codes_and_default_to_k6s() {
        let d = ExpectedStatuses::default();
        assert!(d.contains(200) && d.contains(399) && !d.contains(400) && !d.contains(199));
        assert_eq!(d.to_string(), "200-399");
        let e: ExpectedStatuses = "200-399, 400".parse().expect("parses");
        assert!(e.contains(400) && !e.contains(401) && e.contains(302));
        assert_eq!(e.to_string(), "200-399,400");
        for bad in ["", "abc", "399-200", "200-", "99", "600", "200-399,"] {
            assert!(bad.parse::<ExpectedStatuses>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn http_req_failed_is_an_unexpected_status_or_no_answer() {
        let d = ExpectedStatuses::default();
        let http = |s| Outcome::Http(s, Bytes::new());
        assert!(!d.failed(&http(200)));
        assert!(!d.failed(&http(302)));
        assert!(d.failed(&http(400)), "k6 counts a sold-out 400");
        assert!(d.failed(&http(503)));
        assert!(d.failed(&Outcome::Timeout));
        assert!(d.failed(&Outcome::Error("refused".into())));
        let with_400: ExpectedStatuses = "200-399,400".parse().expect("parses");
        assert!(!with_400.failed(&http(400)));
        assert!(
            with_400.failed(&Outcome::Timeout),
            "no answer is never expected"
        );
    }

    #[test]
    fn thresholds_parse_as_k6_writes_them() {
        let t = Threshold::parse("http_req_failed: rate<0.05").expect("parses");
        assert_eq!(
            (t.base(), t.agg, t.op, t.bound),
            ("http_req_failed", Agg::Rate, Op::Lt, 0.05)
        );
        assert_eq!(t.to_string(), "http_req_failed: rate<0.05");
        let t = Threshold::parse("http_req_duration:p(95) < 500").expect("parses");
        assert_eq!((t.agg, t.expr.as_str()), (Agg::P(95.0), "p(95)<500"));
        let t =
            Threshold::parse("checks{check:success or out of stock}: rate>=0.95").expect("parses");
        assert_eq!(t.selector(), Some(("check", "success or out of stock")));
        assert_eq!((t.base(), t.op), ("checks", Op::Ge));
        let t = Threshold::parse("http_reqs: count==1000").expect("parses");
        assert_eq!((t.agg, t.op), (Agg::Count, Op::Eq));
        assert_eq!(
            Threshold::parse("http_reqs: count===7").expect("parses").op,
            Op::Eq
        );
        assert_eq!(
            Threshold::parse("checks: rate!=0").expect("parses").op,
            Op::Ne
        );
        for bad in [
            "rate<0.05",
            "http_req_failure: rate<0.05",
            "http_req_failed: p(95)<5",
            "http_req_duration: rate<5",
            "http_req_duration: p(101)<5",
            "http_req_duration: p95<5",
            "checks: rate<<0.1",
            "checks: rate<x",
            "checks: rate",
            "checks{check: rate<1",
        ] {
            assert!(Threshold::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn thresholds_hold_by_their_operator() {
        let t = |s| Threshold::parse(s).expect("parses");
        assert!(t("http_req_failed: rate<0.05").holds(0.049));
        assert!(!t("http_req_failed: rate<0.05").holds(0.05));
        assert!(t("http_req_failed: rate<=0.05").holds(0.05));
        assert!(!t("checks: rate>0.99").holds(0.99));
        assert!(t("checks: rate>=0.99").holds(0.99));
        assert!(t("http_reqs: count==3").holds(3.0));
        assert!(!t("http_reqs: count!=3").holds(3.0));
        assert!(t("http_req_duration: p(95)>1").holds(2.0));
    }
}
