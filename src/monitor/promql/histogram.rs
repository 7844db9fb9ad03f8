//! `histogram_quantile` over classic histograms: bucket series grouped by their labels
//! without `le`, with Prometheus's interpolation, its `+Inf` and lowest-bucket rules and
//! its repair of non-monotonic bucket counts.

use std::collections::HashMap;

use promql_parser::parser::Expr;

use crate::monitor::series::{Labels, METRIC_NAME};

use super::QueryError;
use super::eval::Evaluator;
use super::functions::arg;
use super::value::{ByStep, Grid, StepSeries, Val};

/// Relative differences below this between adjacent buckets are floating-point noise.
const SMALL_DELTA_TOLERANCE: f64 = 1e-12;

/// `histogram_quantile(q, buckets)` over the grid.
pub(super) fn eval(ev: &mut Evaluator, args: &[&Expr], grid: Grid) -> Result<Val, QueryError> {
    let q = ev.eval_scalar(arg(args, 0)?, grid)?;
    let input = ev.eval_vector(arg(args, 1)?, grid)?;

    // Each series' histogram (by its labels without `le`) and upper bound; series without
    // a parsable `le` are ignored, as Prometheus does (with a warning).
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut out: Vec<StepSeries> = Vec::new();
    let mut bucket_of: Vec<Option<(usize, f64)>> = Vec::with_capacity(input.len());
    for s in &input {
        let Some(upper) = s.labels.get("le").and_then(parse_go_float) else {
            bucket_of.push(None);
            continue;
        };
        let key = without(&s.labels, &["le"]);
        let group = *index.entry(key).or_insert_with_key(|key| {
            out.push(StepSeries {
                labels: without(key, &[METRIC_NAME]),
                points: Vec::new(),
            });
            out.len() - 1
        });
        bucket_of.push(Some((group, upper)));
    }

    let mut buckets: Vec<Vec<(f64, f64)>> = vec![Vec::new(); out.len()];
    let by_step = ByStep::new(&input, grid.len);
    for (step, &phi) in q.iter().enumerate().take(grid.len) {
        let present = by_step.at(step);
        buckets.iter_mut().for_each(Vec::clear);
        for &(s, count) in present {
            if let Some((group, upper)) = bucket_of[s] {
                buckets[group].push((upper, count));
            }
        }
        for (group, b) in buckets.iter_mut().enumerate() {
            if !b.is_empty() {
                out[group].points.push((step, bucket_quantile(phi, b)));
            }
        }
    }
    out.retain(|s| !s.points.is_empty());
    // Two histograms that differ only in their metric name now have equal labels.
    let mut set = super::value::SeriesSet::default();
    for s in out {
        set.add_series(s.labels, s.points)?;
    }
    Ok(Val::Vector(set.finish()?))
}

/// Labels without the given names.
fn without(labels: &Labels, names: &[&str]) -> Labels {
    Labels::new(
        labels
            .pairs()
            .iter()
            .filter(|(n, _)| !names.contains(&n.as_str()))
            .cloned()
            .collect(),
    )
}

/// Parses a number as Go's `strconv.ParseFloat` does for bucket bounds (`+Inf`, `1e3`).
fn parse_go_float(s: &str) -> Option<f64> {
    s.parse().ok()
}

/// The `q`-quantile of cumulative buckets `(upper bound, count)`, interpolating linearly
/// inside the bucket the rank falls in.
///
/// NaN when the buckets lack `+Inf`, have fewer than two bounds, or no observations; the
/// highest finite bound when the rank falls in the `+Inf` bucket; the lowest bound when it
/// falls in a first bucket whose bound is not positive (otherwise that bucket starts at 0).
pub(super) fn bucket_quantile(q: f64, buckets: &mut Vec<(f64, f64)>) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return f64::NAN;
    }
    coalesce(buckets);
    ensure_monotonic(buckets);
    if buckets.len() < 2 {
        return f64::NAN;
    }
    let observations = buckets[buckets.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    // The first bucket (the +Inf one excluded) whose count reaches the rank.
    let last = buckets.len() - 1;
    let b = buckets[..last].partition_point(|&(_, count)| count < rank);
    if b == last {
        return buckets[last - 1].0;
    }
    if b == 0 && buckets[0].0 <= 0.0 {
        return buckets[0].0;
    }
    let (mut start, end, mut count) = (0.0, buckets[b].0, buckets[b].1);
    if b > 0 {
        start = buckets[b - 1].0;
        count -= buckets[b - 1].1;
        rank -= buckets[b - 1].1;
    }
    start + (end - start) * (rank / count)
}

/// Merges buckets with the same bound (sorted input), adding their counts.
fn coalesce(buckets: &mut Vec<(f64, f64)>) {
    buckets.dedup_by(|next, kept| {
        if next.0 == kept.0 {
            kept.1 += next.1;
            true
        } else {
            false
        }
    });
}

/// Makes counts non-decreasing: differences within floating-point noise are evened out in
/// either direction, and real decreases are lifted to the previous count.
fn ensure_monotonic(buckets: &mut [(f64, f64)]) {
    let Some(&(_, first)) = buckets.first() else {
        return;
    };
    let mut prev = first;
    for bucket in buckets.iter_mut().skip(1) {
        let current = bucket.1;
        if current == prev {
            continue;
        }
        if almost_equal(prev, current, SMALL_DELTA_TOLERANCE) || current < prev {
            bucket.1 = prev;
            continue;
        }
        prev = current;
    }
}

/// Relative float comparison, as Prometheus's `almost.Equal` (staleness markers aside).
fn almost_equal(a: f64, b: f64, epsilon: f64) -> bool {
    let min_normal = f64::MIN_POSITIVE;
    if (a.is_nan() && b.is_nan()) || a == b {
        return true;
    }
    let sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || sum < min_normal {
        return diff < epsilon * min_normal;
    }
    diff / sum.min(f64::MAX) < epsilon
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quantile(q: f64, buckets: &[(f64, f64)]) -> f64 {
        bucket_quantile(q, &mut buckets.to_vec())
    }

    const INF: f64 = f64::INFINITY;

    #[test]
    fn interpolates_linearly_inside_the_bucket() {
        // 10 observations <= 0.1, 20 <= 0.5, 30 in total.
        let b = [(0.1, 10.0), (0.5, 20.0), (INF, 30.0)];
        // Rank 15 falls in (0.1, 0.5]: 0.1 + 0.4 * 5/10.
        assert!((quantile(0.5, &b) - 0.3).abs() < 1e-12);
        // Rank 3 falls in the first bucket, which starts at 0.
        assert!((quantile(0.1, &b) - 0.03).abs() < 1e-12);
        // Order of the input does not matter.
        assert!((quantile(0.5, &[(INF, 30.0), (0.5, 20.0), (0.1, 10.0)]) - 0.3).abs() < 1e-12);
    }

    #[test]
    fn rank_in_the_inf_bucket_gives_the_highest_finite_bound() {
        let b = [(0.1, 10.0), (0.5, 20.0), (INF, 30.0)];
        assert_eq!(quantile(0.99, &b), 0.5);
    }

    #[test]
    fn edge_cases_follow_prometheus() {
        assert!(
            quantile(0.5, &[(0.1, 1.0), (0.5, 2.0)]).is_nan(),
            "no +Inf bucket"
        );
        assert!(quantile(0.5, &[(INF, 5.0)]).is_nan(), "single bucket");
        assert!(
            quantile(0.5, &[(1.0, 0.0), (INF, 0.0)]).is_nan(),
            "no observations"
        );
        assert!(quantile(f64::NAN, &[(1.0, 1.0), (INF, 1.0)]).is_nan());
        assert_eq!(quantile(-1.0, &[(1.0, 1.0), (INF, 1.0)]), f64::NEG_INFINITY);
        assert_eq!(quantile(2.0, &[(1.0, 1.0), (INF, 1.0)]), INF);
        // First bucket with a non-positive bound: its bound, no interpolation from 0.
        assert_eq!(
            quantile(0.1, &[(-1.0, 5.0), (1.0, 10.0), (INF, 10.0)]),
            -1.0
        );
        // q = 0 lands in the first bucket: its lower edge, 0.
        assert_eq!(quantile(0.0, &[(1.0, 2.0), (2.0, 4.0), (INF, 4.0)]), 0.0);
        // ... and an empty first bucket gives 0/0, NaN, in Prometheus too.
        assert!(quantile(0.0, &[(1.0, 0.0), (2.0, 4.0), (INF, 4.0)]).is_nan());
    }

    #[test]
    fn non_monotonic_counts_are_repaired() {
        // The 0.5 bucket dropped below the 0.1 bucket: it is lifted to 10.
        let b = [(0.1, 10.0), (0.5, 8.0), (1.0, 20.0), (INF, 20.0)];
        // Rank 10 -> first bucket reaching 10 is 0.1 (count 10): 0 + 0.1 * 10/10.
        assert!((quantile(0.5, &b) - 0.1).abs() < 1e-12);
        // Rank 15 in (0.5, 1]: 0.5 + 0.5 * 5/10.
        assert!((quantile(0.75, &b) - 0.75).abs() < 1e-12);
    }

    #[test]
    fn duplicate_bounds_are_merged() {
        let b = [(1.0, 2.0), (1.0, 2.0), (INF, 8.0)];
        // Bucket 1.0 holds 4: rank 2 -> 0 + 1 * 2/4.
        assert_eq!(quantile(0.25, &b), 0.5);
    }

    #[test]
    fn almost_equal_is_relative() {
        assert!(almost_equal(1.0, 1.0 + 1e-15, 1e-12));
        assert!(!almost_equal(1.0, 1.0001, 1e-12));
        assert!(!almost_equal(0.0, 1e-300, 1e-12));
    }
}
