//! Selectors: turns the parser's matchers into storage matchers, reads each selector's
//! series once for a whole grid, and picks every step's sample (instant vectors: lookback
//! and staleness) or window (range vectors and subqueries).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use promql_parser::label::{MatchOp as ParserOp, Matcher as ParserMatcher};
use promql_parser::parser::{AtModifier, Expr, Offset, SubqueryExpr, VectorSelector};

use crate::monitor::series::{Labels, METRIC_NAME, MatchOp, Matcher, SeriesData, is_stale};

use super::QueryError;
use super::eval::Evaluator;
use super::value::{Grid, StepSeries};

/// The resolution of a subquery written without one (`x[5m:]`): Prometheus uses the global
/// evaluation interval, one minute by default.
const DEFAULT_SUBQUERY_STEP_MS: i64 = 60_000;

/// A range vector over a grid: raw samples per series (no staleness markers) and, per step,
/// the end of the step's window `(end - range, end]`.
pub(super) struct Windows {
    pub series: Vec<SeriesData>,
    pub range: i64,
    pub ends: Vec<i64>,
}

impl Windows {
    /// The non-empty windows of series `s`, as `(step, samples)`.
    pub fn of(&self, s: usize) -> WindowIter<'_> {
        WindowIter {
            samples: &self.series[s].samples,
            ends: &self.ends,
            range: self.range,
            step: 0,
            lo: 0,
            hi: 0,
        }
    }
}

/// Iterator over one series' windows, moving two cursors forward as the steps advance.
pub(super) struct WindowIter<'a> {
    samples: &'a [(i64, f64)],
    ends: &'a [i64],
    range: i64,
    step: usize,
    lo: usize,
    hi: usize,
}

impl<'a> Iterator for WindowIter<'a> {
    type Item = (usize, &'a [(i64, f64)]);

    fn next(&mut self) -> Option<Self::Item> {
        while self.step < self.ends.len() {
            let end = self.ends[self.step];
            let start = end.saturating_sub(self.range);
            while self.hi < self.samples.len() && self.samples[self.hi].0 <= end {
                self.hi += 1;
            }
            while self.lo < self.hi && self.samples[self.lo].0 <= start {
                self.lo += 1;
            }
            self.step += 1;
            if self.lo < self.hi {
                return Some((self.step - 1, &self.samples[self.lo..self.hi]));
            }
        }
        None
    }
}

impl Evaluator<'_> {
    /// Evaluates an instant-vector selector over the grid. With `timestamps`, each point's
    /// value is its sample's timestamp in seconds (for `timestamp()`).
    pub fn select_vector(
        &mut self,
        vs: &VectorSelector,
        grid: Grid,
        timestamps: bool,
    ) -> Result<Vec<StepSeries>, QueryError> {
        let refs = self.ref_times(grid, &vs.at, &vs.offset);
        let (first, last) = bounds(&refs);
        let mint = first.saturating_sub(self.lookback).saturating_add(1);
        let data = self.fetch(vs, mint, last)?;
        let mut series = Vec::with_capacity(data.len());
        for s in data {
            let points = instant_points(&s.samples, &refs, self.lookback, timestamps);
            if points.is_empty() {
                continue;
            }
            // Counted as they are made: a long grid can hold many more points than samples.
            self.count_samples(points.len())?;
            series.push(StepSeries {
                labels: s.labels,
                points,
            });
        }
        Ok(series)
    }

    /// Evaluates a matrix selector or subquery into windows for every grid step.
    pub fn windows(&mut self, expr: &Expr, grid: Grid) -> Result<Windows, QueryError> {
        match expr {
            Expr::Paren(p) => self.windows(&p.expr, grid),
            Expr::MatrixSelector(ms) => {
                let range = duration_ms(ms.range);
                let ends = self.ref_times(grid, &ms.vs.at, &ms.vs.offset);
                let (first, last) = bounds(&ends);
                let mint = first.saturating_sub(range).saturating_add(1);
                let mut series = self.fetch(&ms.vs, mint, last)?;
                for s in &mut series {
                    s.samples.retain(|&(_, v)| !is_stale(v));
                }
                Ok(Windows {
                    series,
                    range,
                    ends,
                })
            }
            Expr::Subquery(sq) => self.subquery_windows(sq, grid),
            _ => Err(QueryError::Eval("expected a range vector".into())),
        }
    }

    /// Evaluates a subquery's inner expression once, on a grid aligned to its step and
    /// covering every window, into windows for the outer grid.
    fn subquery_windows(&mut self, sq: &SubqueryExpr, grid: Grid) -> Result<Windows, QueryError> {
        let range = duration_ms(sq.range);
        let step = sq.step.map_or(DEFAULT_SUBQUERY_STEP_MS, duration_ms);
        if step <= 0 {
            return Err(QueryError::BadRequest(
                "subquery resolution must be positive".into(),
            ));
        }
        let ends = self.ref_times(grid, &sq.at, &sq.offset);
        let (first, last) = bounds(&ends);
        // The inner grid is aligned to multiples of the step, as in Prometheus.
        let start = first
            .saturating_sub(range)
            .div_euclid(step)
            .saturating_mul(step)
            .saturating_add(step);
        let series = if start > last {
            Vec::new()
        } else {
            let len = usize::try_from((last - start) / step).unwrap_or(usize::MAX);
            // Every inner step holds at least one value: refuse a grid past the limit.
            self.count_samples(len.saturating_add(1))?;
            let inner = Grid {
                start,
                step,
                len: len + 1,
            };
            self.eval_vector(&sq.expr, inner)?
                .into_iter()
                .map(|s| SeriesData {
                    labels: s.labels,
                    samples: s.points.iter().map(|&(i, v)| (inner.ts(i), v)).collect(),
                })
                .collect()
        };
        Ok(Windows {
            series,
            range,
            ends,
        })
    }

    /// The time each grid step reads at: `@` time (or the step) minus the offset.
    fn ref_times(&self, grid: Grid, at: &Option<AtModifier>, offset: &Option<Offset>) -> Vec<i64> {
        let offset = offset_ms(offset);
        let at = at.as_ref().map(|at| match at {
            AtModifier::Start => self.query_start,
            AtModifier::End => self.query_end,
            AtModifier::At(t) => system_time_ms(*t),
        });
        (0..grid.len)
            .map(|i| at.unwrap_or_else(|| grid.ts(i)).saturating_sub(offset))
            .collect()
    }

    /// Reads a selector's series with samples in `[mint, maxt]`, sorted by labels.
    fn fetch(
        &mut self,
        vs: &VectorSelector,
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<SeriesData>, QueryError> {
        let groups = matcher_groups(vs)?;
        let mut series = if let [only] = groups.as_slice() {
            self.db.select(only, mint, maxt)
        } else {
            // `{a="1" or b="2"}`: the union of each group's series.
            let mut union = BTreeMap::new();
            for group in &groups {
                for s in self.db.select(group, mint, maxt) {
                    union.entry(s.labels.clone()).or_insert(s);
                }
            }
            union.into_values().collect()
        };
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        self.count_samples(series.iter().map(|s| s.samples.len()).sum())?;
        Ok(series)
    }
}

/// Picks each step's sample: the latest at or before the step's reference time and within
/// the lookback, unless it is a staleness marker. `refs` must not decrease.
fn instant_points(
    samples: &[(i64, f64)],
    refs: &[i64],
    lookback: i64,
    timestamps: bool,
) -> Vec<(usize, f64)> {
    let mut out = Vec::new();
    let mut pos = 0;
    for (step, &r) in refs.iter().enumerate() {
        while pos < samples.len() && samples[pos].0 <= r {
            pos += 1;
        }
        let Some(&(t, v)) = pos.checked_sub(1).and_then(|i| samples.get(i)) else {
            continue;
        };
        if t <= r.saturating_sub(lookback) || is_stale(v) {
            continue;
        }
        out.push((step, if timestamps { t as f64 / 1000.0 } else { v }));
    }
    out
}

/// The first and last of non-decreasing reference times.
fn bounds(refs: &[i64]) -> (i64, i64) {
    (
        refs.first().copied().unwrap_or_default(),
        refs.last().copied().unwrap_or_default(),
    )
}

/// The storage matchers of a selector: one conjunction per `or` group, each with the
/// metric name.
pub(super) fn matcher_groups(vs: &VectorSelector) -> Result<Vec<Vec<Matcher>>, QueryError> {
    let mut base = Vec::new();
    if let Some(name) = &vs.name {
        base.push(Matcher::equal(METRIC_NAME, name));
    }
    for m in &vs.matchers.matchers {
        base.push(convert_matcher(m)?);
    }
    if vs.matchers.or_matchers.is_empty() {
        return Ok(vec![base]);
    }
    vs.matchers
        .or_matchers
        .iter()
        .map(|group| {
            let mut all = base.clone();
            for m in group {
                all.push(convert_matcher(m)?);
            }
            Ok(all)
        })
        .collect()
}

/// Converts one parser matcher; a regular expression Go accepts but Rust does not (`a{b}`)
/// is retried in the escaped form the parser compiled.
fn convert_matcher(m: &ParserMatcher) -> Result<Matcher, QueryError> {
    let (op, parsed) = match &m.op {
        ParserOp::Equal => (MatchOp::Equal, None),
        ParserOp::NotEqual => (MatchOp::NotEqual, None),
        ParserOp::Re(re) => (MatchOp::Regex, Some(re)),
        ParserOp::NotRe(re) => (MatchOp::NotRegex, Some(re)),
    };
    Matcher::new(&m.name, op, &m.value).or_else(|err| {
        let escaped = parsed
            .and_then(|re| re.as_str().strip_prefix("^(?:"))
            .and_then(|re| re.strip_suffix(")$"));
        match escaped {
            Some(inner) => Matcher::new(&m.name, op, inner),
            None => Err(err),
        }
        .map_err(|e| QueryError::Parse(format!("invalid regular expression {:?}: {e}", m.value)))
    })
}

/// The labels `absent()` gives its series: the selector's equality matchers, except a
/// label matched more than once.
pub(super) fn absent_labels(expr: &Expr) -> Labels {
    let vs = match expr {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        _ => return Labels::default(),
    };
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for m in &vs.matchers.matchers {
        if m.name == METRIC_NAME {
            continue;
        }
        pairs.retain(|(n, _)| *n != m.name);
        if matches!(m.op, ParserOp::Equal) && !seen.contains(&m.name.as_str()) {
            pairs.push((m.name.clone(), m.value.clone()));
            seen.push(&m.name);
        }
    }
    Labels::new(pairs)
}

/// An offset in ms (negative for `offset -5m`).
fn offset_ms(offset: &Option<Offset>) -> i64 {
    match offset {
        Some(Offset::Pos(d)) => duration_ms(*d),
        Some(Offset::Neg(d)) => -duration_ms(*d),
        None => 0,
    }
}

/// A duration in ms.
pub(super) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A point in time as ms since the epoch (negative before it).
fn system_time_ms(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => duration_ms(d),
        Err(e) => -duration_ms(e.duration()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instant_points_respect_lookback_and_staleness() {
        let samples = [
            (0, 1.0),
            (10, 2.0),
            (20, crate::monitor::series::stale_nan()),
            (30, 4.0),
        ];
        let refs = [5, 10, 19, 25, 44, 45];
        let got = instant_points(&samples, &refs, 15, false);
        // 19 sees 10 (within 15); 25 sees the marker; 44 sees 30; 45 is 15 after 30: expired.
        assert_eq!(got, vec![(0, 1.0), (1, 2.0), (2, 2.0), (4, 4.0)]);
        assert_eq!(instant_points(&samples, &[12], 15, true), vec![(0, 0.01)]);
    }

    #[test]
    fn windows_are_left_open_and_right_closed() {
        let windows = Windows {
            series: vec![SeriesData {
                labels: Labels::default(),
                samples: vec![(10, 1.0), (20, 2.0), (30, 3.0)],
            }],
            range: 10,
            ends: vec![5, 20, 30, 45],
        };
        let got: Vec<_> = windows.of(0).map(|(s, w)| (s, w.to_vec())).collect();
        assert_eq!(got, vec![(1, vec![(20, 2.0)]), (2, vec![(30, 3.0)])]);
    }

    #[test]
    fn absent_labels_keep_single_equality_matchers() {
        let expr = promql_parser::parser::parse(r#"x{job="a", job="b", env="p", i=~"z"}"#).unwrap();
        assert_eq!(absent_labels(&expr), Labels::from_pairs(&[("env", "p")]));
    }
}
