//! Functions over range vectors: the rate family (`rate`, `increase`, `delta` with
//! Prometheus's extrapolation; `irate`, `idelta`), `resets`, `changes`, `deriv`,
//! `predict_linear` and the `*_over_time` aggregations.

use promql_parser::parser::Expr;

use super::QueryError;
use super::eval::Evaluator;
use super::functions::{absent_series, arg};
use super::stats::{Mean, kahan_inc, linear_regression, quantile, variance};
use super::value::{Grid, SeriesSet, Val};

/// What a range function sees of one step besides the window's samples.
pub(super) struct WindowCtx {
    /// The window is `(end - range, end]` (ms).
    pub end: i64,
    /// The selector's or subquery's range (ms).
    pub range: i64,
    /// The evaluation time of the step (without offset).
    pub t: i64,
    /// The scalar argument at this step (`quantile_over_time`'s q, `predict_linear`'s t).
    pub param: f64,
}

type RangeFn = fn(&[(i64, f64)], &WindowCtx) -> Option<f64>;

/// The range functions and their implementations; `absent_over_time` is handled apart.
const FUNCTIONS: &[(&str, RangeFn)] = &[
    ("rate", |w, c| extrapolated(w, c, true, true)),
    ("increase", |w, c| extrapolated(w, c, true, false)),
    ("delta", |w, c| extrapolated(w, c, false, false)),
    ("irate", |w, _| instant_value(w, true)),
    ("idelta", |w, _| instant_value(w, false)),
    ("resets", |w, _| Some(count_pairs(w, |a, b| b < a))),
    ("changes", |w, _| {
        Some(count_pairs(w, |a, b| a != b && !(a.is_nan() && b.is_nan())))
    }),
    ("deriv", deriv),
    ("predict_linear", predict_linear),
    ("avg_over_time", avg_over_time),
    ("min_over_time", |w, _| {
        Some(extreme(w, |cur, best| cur < best))
    }),
    ("max_over_time", |w, _| {
        Some(extreme(w, |cur, best| cur > best))
    }),
    ("sum_over_time", sum_over_time),
    ("count_over_time", |w, _| Some(w.len() as f64)),
    ("last_over_time", |w, _| w.last().map(|s| s.1)),
    ("stddev_over_time", |w, _| {
        Some(variance(w.iter().map(|s| s.1)).sqrt())
    }),
    ("stdvar_over_time", |w, _| {
        Some(variance(w.iter().map(|s| s.1)))
    }),
    ("quantile_over_time", |w, c| {
        Some(quantile(
            c.param,
            &mut w.iter().map(|s| s.1).collect::<Vec<_>>(),
        ))
    }),
    ("present_over_time", |_, _| Some(1.0)),
];

/// Every range function name, for `is_supported`.
pub(super) const NAMES: &[&str] = &[
    "rate",
    "increase",
    "delta",
    "irate",
    "idelta",
    "resets",
    "changes",
    "deriv",
    "predict_linear",
    "avg_over_time",
    "min_over_time",
    "max_over_time",
    "sum_over_time",
    "count_over_time",
    "last_over_time",
    "stddev_over_time",
    "stdvar_over_time",
    "quantile_over_time",
    "present_over_time",
    "absent_over_time",
];

/// Tells whether `name` takes a range vector.
pub(super) fn is_range_fn(name: &str) -> bool {
    NAMES.contains(&name)
}

/// Evaluates a range function over the grid: one window per series and step.
pub(super) fn eval(
    ev: &mut Evaluator,
    name: &str,
    args: &[&Expr],
    grid: Grid,
) -> Result<Val, QueryError> {
    // quantile_over_time takes its scalar first, predict_linear second.
    let (matrix_arg, param_arg) = match name {
        "quantile_over_time" => (arg(args, 1)?, Some(arg(args, 0)?)),
        "predict_linear" => (arg(args, 0)?, Some(arg(args, 1)?)),
        _ => (arg(args, 0)?, None),
    };
    let params = match param_arg {
        Some(e) => ev.eval_scalar(e, grid)?,
        None => vec![f64::NAN; grid.len],
    };
    let windows = ev.windows(matrix_arg, grid)?;
    if name == "absent_over_time" {
        let mut present = vec![false; grid.len];
        for s in 0..windows.series.len() {
            for (step, _) in windows.of(s) {
                present[step] = true;
            }
        }
        return Ok(Val::Vector(absent_series(matrix_arg, &present)));
    }
    let f = FUNCTIONS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
        .ok_or_else(|| {
            QueryError::Parse(format!("function {name:?} is not supported by this engine"))
        })?;
    // last_over_time acts like a selector with a longer lookback: it keeps the name.
    let keep_name = name == "last_over_time";
    let mut set = SeriesSet::default();
    for s in 0..windows.series.len() {
        let mut points = Vec::with_capacity(grid.len);
        for (step, window) in windows.of(s) {
            let ctx = WindowCtx {
                end: windows.ends[step],
                range: windows.range,
                t: grid.ts(step),
                param: params[step],
            };
            if let Some(v) = f(window, &ctx) {
                points.push((step, v));
            }
        }
        if points.is_empty() {
            continue;
        }
        let labels = &windows.series[s].labels;
        let labels = if keep_name {
            labels.clone()
        } else {
            labels.without_metric_name()
        };
        set.add_series(labels, points)?;
    }
    Ok(Val::Vector(set.finish()?))
}

/// `rate`, `increase` and `delta`: the change over the window (adding back counter resets
/// for counters), extrapolated towards the window's edges where the samples suggest the
/// series covers them, never below zero for counters; per second for `rate`.
fn extrapolated(w: &[(i64, f64)], ctx: &WindowCtx, is_counter: bool, is_rate: bool) -> Option<f64> {
    let [(first_t, first_v), .., (last_t, last_v)] = *w else {
        return None;
    };
    let mut result = last_v - first_v;
    if is_counter {
        for pair in w.windows(2) {
            if pair[1].1 < pair[0].1 {
                result += pair[0].1;
            }
        }
    }
    let range_start = ctx.end.saturating_sub(ctx.range);
    let mut to_start = (first_t - range_start) as f64 / 1000.0;
    let mut to_end = (ctx.end - last_t) as f64 / 1000.0;
    let sampled = (last_t - first_t) as f64 / 1000.0;
    let average_gap = sampled / (w.len() - 1) as f64;
    // Extrapolate to an edge only if a sample would be expected there (10% slack);
    // otherwise assume the series starts or ends half a gap beyond its last sample.
    let threshold = average_gap * 1.1;
    if to_start >= threshold {
        to_start = average_gap / 2.0;
    }
    if is_counter && result > 0.0 && first_v >= 0.0 {
        // A counter cannot go below zero: stop at the extrapolated zero point.
        let to_zero = sampled * (first_v / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = average_gap / 2.0;
    }
    let mut factor = if sampled != 0.0 {
        (sampled + to_start + to_end) / sampled
    } else {
        1.0
    };
    if is_rate {
        factor /= ctx.range as f64 / 1000.0;
    }
    Some(result * factor)
}

/// `irate` and `idelta`: from the last two samples; `irate` takes a drop as a reset.
fn instant_value(w: &[(i64, f64)], is_rate: bool) -> Option<f64> {
    let [.., (prev_t, prev_v), (last_t, last_v)] = *w else {
        return None;
    };
    let interval = last_t - prev_t;
    if interval == 0 {
        return None;
    }
    let mut result = last_v;
    if !is_rate || last_v >= prev_v || last_v.is_nan() || prev_v.is_nan() {
        result = last_v - prev_v;
    }
    if is_rate {
        result /= interval as f64 / 1000.0;
    }
    Some(result)
}

/// How many consecutive sample pairs satisfy `f(previous, current)`.
fn count_pairs(w: &[(i64, f64)], f: impl Fn(f64, f64) -> bool) -> f64 {
    w.windows(2).filter(|p| f(p[0].1, p[1].1)).count() as f64
}

/// The first value `better` prefers over all others (a NaN is replaced by anything).
fn extreme(w: &[(i64, f64)], better: impl Fn(f64, f64) -> bool) -> f64 {
    let mut best = w[0].1;
    for &(_, v) in w {
        if better(v, best) || best.is_nan() {
            best = v;
        }
    }
    best
}

fn avg_over_time(w: &[(i64, f64)], _: &WindowCtx) -> Option<f64> {
    let mut mean = Mean::new(w.first()?.1);
    for &(_, v) in &w[1..] {
        mean.add(v);
    }
    Some(mean.value())
}

fn sum_over_time(w: &[(i64, f64)], _: &WindowCtx) -> Option<f64> {
    let (mut sum, mut c) = (0.0, 0.0);
    for &(_, v) in w {
        (sum, c) = kahan_inc(v, sum, c);
    }
    Some(if sum.is_infinite() { sum } else { sum + c })
}

fn deriv(w: &[(i64, f64)], _: &WindowCtx) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    Some(linear_regression(w, w[0].0).0)
}

fn predict_linear(w: &[(i64, f64)], ctx: &WindowCtx) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let (slope, intercept) = linear_regression(w, ctx.t);
    Some(slope * ctx.param + intercept)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(end: i64, range: i64) -> WindowCtx {
        WindowCtx {
            end,
            range,
            t: end,
            param: f64::NAN,
        }
    }

    #[test]
    fn rate_extrapolates_to_both_edges_of_a_regular_series() {
        // Samples every 15 s from 15 s to 60 s in a 60 s window ending at 60 s: +10 per sample.
        let w = [
            (15_000, 10.0),
            (30_000, 20.0),
            (45_000, 30.0),
            (60_000, 40.0),
        ];
        let c = ctx(60_000, 60_000);
        // 30 over 45 s, extrapolated 15 s to the start (to-zero point: 45 s away) -> 40.
        assert_eq!(extrapolated(&w, &c, true, false), Some(40.0));
        assert_eq!(extrapolated(&w, &c, true, true), Some(40.0 / 60.0));
    }

    #[test]
    fn rate_adds_back_counter_resets() {
        // 100 -> 110, reset to 5 -> 15: increase 10 + 15 = 25 over 30 s in a 30 s window.
        let w = [
            (10_000, 100.0),
            (20_000, 110.0),
            (30_000, 5.0),
            (40_000, 15.0),
        ];
        let got = extrapolated(&w, &ctx(40_000, 30_000), true, false).unwrap();
        // First sample at the window start (which is excluded): to_start = 0.
        assert_eq!(got, 25.0);
        // As a gauge (delta) the drop is kept.
        assert_eq!(
            extrapolated(&w, &ctx(40_000, 30_000), false, false),
            Some(-85.0)
        );
    }

    #[test]
    fn rate_stops_at_the_counters_zero_point_and_half_a_gap_from_missing_edges() {
        // Counter starting at 5, +10 per 10 s, window 60 s ending at 60 s, samples 30..50 s.
        let w = [(30_000, 5.0), (40_000, 15.0), (50_000, 25.0)];
        // to_start 30 s >= 11 s threshold -> 5 s, to_zero = 20 * 5/20 = 5 s; to_end 10 s < 11 s.
        // (20 + 5 + 10) / 20 * 20 = 35.
        assert_eq!(
            extrapolated(&w, &ctx(60_000, 60_000), true, false),
            Some(35.0)
        );
        // A gauge goes 5 s back as well: same factor here.
        assert_eq!(
            extrapolated(&w, &ctx(60_000, 60_000), false, false),
            Some(35.0)
        );
        // Window (20 s, 80 s]: to_start 10 s cut to the 5 s zero point; to_end 30 s -> half a
        // gap (5 s): (20 + 5 + 5) / 20 * 20.
        assert_eq!(
            extrapolated(&w, &ctx(80_000, 60_000), true, false),
            Some(30.0)
        );
        assert_eq!(
            extrapolated(&w[..1], &ctx(60_000, 60_000), true, false),
            None
        );
    }

    #[test]
    fn irate_uses_the_last_two_samples_and_treats_a_drop_as_a_reset() {
        let w = [(0, 1.0), (10_000, 50.0), (15_000, 60.0)];
        assert_eq!(instant_value(&w, true), Some(2.0));
        let reset = [(0, 50.0), (5_000, 10.0)];
        assert_eq!(instant_value(&reset, true), Some(2.0));
        assert_eq!(instant_value(&reset, false), Some(-40.0));
        assert_eq!(instant_value(&w[..1], true), None);
    }

    #[test]
    fn resets_and_changes_count_pairs() {
        let w = [(0, 1.0), (1, 2.0), (2, 0.0), (3, 0.0), (4, 5.0), (5, 1.0)];
        assert_eq!(count_pairs(&w, |a, b| b < a), 2.0);
        let nan = [(0, f64::NAN), (1, f64::NAN), (2, 1.0)];
        assert_eq!(
            count_pairs(&nan, |a, b| a != b && !(a.is_nan() && b.is_nan())),
            1.0
        );
    }

    #[test]
    fn over_time_aggregations() {
        let w = [(0, 3.0), (1, f64::NAN), (2, 1.0), (3, 4.0)];
        let c = ctx(3, 10);
        assert_eq!(extreme(&w, |cur, best| cur < best), 1.0);
        assert_eq!(extreme(&w, |cur, best| cur > best), 4.0);
        let plain = [(0, 1.0), (1, 2.0), (2, 6.0)];
        assert_eq!(avg_over_time(&plain, &c), Some(3.0));
        assert_eq!(sum_over_time(&plain, &c), Some(9.0));
        let mut q = ctx(3, 10);
        q.param = 0.5;
        let f = FUNCTIONS
            .iter()
            .find(|(n, _)| *n == "quantile_over_time")
            .unwrap()
            .1;
        assert_eq!(f(&plain, &q), Some(2.0));
        let f = FUNCTIONS
            .iter()
            .find(|(n, _)| *n == "stddev_over_time")
            .unwrap()
            .1;
        assert_eq!(f(&[(0, 2.0), (1, 4.0)], &c), Some(1.0));
    }

    #[test]
    fn every_range_function_has_an_implementation() {
        for name in NAMES.iter().filter(|n| **n != "absent_over_time") {
            assert!(FUNCTIONS.iter().any(|(n, _)| n == name), "{name}");
        }
    }
}
