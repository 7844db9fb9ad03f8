//! Aggregations (`sum`, `avg`, `min`, `max`, `count`, `group`, `stddev`, `stdvar`,
//! `quantile`, `topk`, `bottomk`, `count_values`) with `by` / `without`, step by step in
//! input order, as Prometheus computes them.

use std::collections::HashMap;

use promql_parser::parser::token::{
    T_AVG, T_BOTTOMK, T_COUNT, T_COUNT_VALUES, T_GROUP, T_MAX, T_MIN, T_QUANTILE, T_STDDEV,
    T_STDVAR, T_SUM, T_TOPK, TokenId,
};
use promql_parser::parser::{AggregateExpr, Expr, LabelModifier};

use crate::monitor::series::Labels;

use super::QueryError;
use super::eval::Evaluator;
use super::labels::{self, string_arg};
use super::stats::{Mean, kahan_inc, quantile};
use super::value::{ByStep, Grid, SeriesSet, StepSeries, Val};

/// The labels an aggregation groups by: `(names, without)`.
struct Grouping {
    names: Vec<String>,
    without: bool,
}

/// Evaluates an aggregation over the grid.
pub(super) fn eval(ev: &mut Evaluator, agg: &AggregateExpr, grid: Grid) -> Result<Val, QueryError> {
    let grouping = match &agg.modifier {
        Some(LabelModifier::Include(l)) => Grouping {
            names: l.labels.clone(),
            without: false,
        },
        Some(LabelModifier::Exclude(l)) => Grouping {
            names: l.labels.clone(),
            without: true,
        },
        None => Grouping {
            names: Vec::new(),
            without: false,
        },
    };
    let op = agg.op.id();
    let param = agg.param.as_deref();
    match op {
        T_TOPK | T_BOTTOMK => {
            let k = ev.eval_scalar(required(param)?, grid)?;
            let input = ev.eval_vector(&agg.expr, grid)?;
            top_k(op == T_TOPK, input, &grouping, &k, grid)
        }
        T_COUNT_VALUES => {
            let label = string_arg(required(param)?)?.to_owned();
            let input = ev.eval_vector(&agg.expr, grid)?;
            count_values(input, &grouping, &label, grid)
        }
        T_SUM | T_AVG | T_COUNT | T_MIN | T_MAX | T_GROUP | T_STDDEV | T_STDVAR | T_QUANTILE => {
            let q = match param {
                Some(p) if op == T_QUANTILE => ev.eval_scalar(p, grid)?,
                _ => vec![f64::NAN; grid.len],
            };
            let input = ev.eval_vector(&agg.expr, grid)?;
            fold(op, input, &grouping, &q, grid)
        }
        _ => Err(QueryError::Parse(format!(
            "aggregation {} is not supported by this engine",
            agg.op
        ))),
    }
}

fn required(param: Option<&Expr>) -> Result<&Expr, QueryError> {
    param.ok_or_else(|| QueryError::Eval("aggregation parameter missing".into()))
}

/// Maps every input series to its group; returns the groups' labels and the mapping.
fn assign_groups(input: &[StepSeries], grouping: &Grouping) -> (Vec<Labels>, Vec<usize>) {
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut groups = Vec::new();
    let series_group = input
        .iter()
        .map(|s| {
            let key = labels::grouping(&s.labels, &grouping.names, grouping.without);
            *index.entry(key).or_insert_with_key(|key| {
                groups.push(key.clone());
                groups.len() - 1
            })
        })
        .collect();
    (groups, series_group)
}

/// The aggregations that fold each group's values into one.
fn fold(
    op: TokenId,
    input: Vec<StepSeries>,
    grouping: &Grouping,
    q: &[f64],
    grid: Grid,
) -> Result<Val, QueryError> {
    let (groups, series_group) = assign_groups(&input, grouping);
    let mut out: Vec<StepSeries> = groups
        .into_iter()
        .map(|labels| StepSeries {
            labels,
            points: Vec::new(),
        })
        .collect();
    let total: usize = input.iter().map(|s| s.points.len()).sum();
    if op != T_QUANTILE && out.len().saturating_mul(grid.len) <= total / 4 {
        fold_dense(op, &input, &series_group, &mut out, q, grid);
    } else {
        fold_by_step(op, &input, &series_group, &mut out, q, grid);
    }
    out.retain(|s| !s.points.is_empty());
    Ok(Val::Vector(out))
}

/// Few groups (`sum by (job)`): one accumulator per group and step, filled in one pass over
/// the input in series order, so every group adds its values in the same order as by step.
fn fold_dense(
    op: TokenId,
    input: &[StepSeries],
    series_group: &[usize],
    out: &mut [StepSeries],
    q: &[f64],
    grid: Grid,
) {
    let mut accs: Vec<Acc> = (0..out.len() * grid.len).map(|_| Acc::default()).collect();
    for (series, &group) in input.iter().zip(series_group) {
        let row = group * grid.len;
        for &(step, v) in &series.points {
            accs[row + step].add(op, v);
        }
    }
    for (i, acc) in accs.iter_mut().enumerate().filter(|(_, a)| a.seen) {
        let (group, step) = (i / grid.len, i % grid.len);
        out[group].points.push((step, acc.result(op, q[step])));
    }
}

/// Many groups: step by step, one accumulator per group.
fn fold_by_step(
    op: TokenId,
    input: &[StepSeries],
    series_group: &[usize],
    out: &mut [StepSeries],
    q: &[f64],
    grid: Grid,
) {
    let mut accs: Vec<Acc> = (0..out.len()).map(|_| Acc::default()).collect();
    let by_step = ByStep::new(input, grid.len);
    for (step, &phi) in q.iter().enumerate().take(grid.len) {
        let present = by_step.at(step);
        if present.is_empty() {
            continue;
        }
        accs.iter_mut().for_each(|a| a.seen = false);
        for &(s, v) in present {
            accs[series_group[s]].add(op, v);
        }
        for (group, acc) in accs.iter_mut().enumerate() {
            if acc.seen {
                out[group].points.push((step, acc.result(op, phi)));
            }
        }
    }
}

/// One group's running aggregate at one step.
#[derive(Default)]
struct Acc {
    seen: bool,
    value: f64,
    /// Kahan compensation of `value` for `sum`.
    c: f64,
    count: f64,
    /// Welford mean for `stddev` / `stdvar`.
    mean: f64,
    avg: Option<Mean>,
    values: Vec<f64>,
}

impl Acc {
    fn add(&mut self, op: TokenId, f: f64) {
        if !self.seen {
            self.start(op, f);
            return;
        }
        match op {
            T_SUM => (self.value, self.c) = kahan_inc(f, self.value, self.c),
            T_AVG => {
                if let Some(avg) = &mut self.avg {
                    avg.add(f);
                }
            }
            T_MAX if self.value < f || self.value.is_nan() => self.value = f,
            T_MIN if self.value > f || self.value.is_nan() => self.value = f,
            T_COUNT => self.count += 1.0,
            T_STDDEV | T_STDVAR => {
                self.count += 1.0;
                let delta = f - self.mean;
                self.mean += delta / self.count;
                self.value += delta * (f - self.mean);
            }
            T_QUANTILE => self.values.push(f),
            _ => {}
        }
    }

    fn start(&mut self, op: TokenId, f: f64) {
        self.seen = true;
        self.value = f;
        self.c = 0.0;
        self.count = 1.0;
        self.mean = f;
        self.values.clear();
        match op {
            T_AVG => self.avg = Some(Mean::new(f)),
            T_STDDEV | T_STDVAR => self.value = if f.is_finite() { 0.0 } else { f64::NAN },
            T_QUANTILE => self.values.push(f),
            T_GROUP => self.value = 1.0,
            _ => {}
        }
    }

    fn result(&mut self, op: TokenId, q: f64) -> f64 {
        match op {
            T_SUM => self.value + self.c,
            T_AVG => self.avg.map_or(f64::NAN, |a| a.value()),
            T_COUNT => self.count,
            T_STDVAR => self.value / self.count,
            T_STDDEV => (self.value / self.count).sqrt(),
            T_QUANTILE => quantile(q, &mut self.values),
            _ => self.value,
        }
    }
}

/// `topk` / `bottomk`: the k largest (smallest) samples of each group at each step, with
/// their own labels. Selection follows Prometheus's heap, so ties resolve the same way; NaN
/// counts as the smallest value for topk and the largest for bottomk.
fn top_k(
    top: bool,
    input: Vec<StepSeries>,
    grouping: &Grouping,
    k: &[f64],
    grid: Grid,
) -> Result<Val, QueryError> {
    check_k(k)?;
    if k.iter().all(|&x| x < 1.0) {
        return Ok(Val::Vector(Vec::new()));
    }
    let (groups, series_group) = assign_groups(&input, grouping);
    let less: fn(f64, f64) -> bool = if top {
        |a, b| a.is_nan() || a < b
    } else {
        |a, b| a.is_nan() || a > b
    };
    let mut heaps: Vec<Heap> = (0..groups.len())
        .map(|_| Heap {
            items: Vec::new(),
            less,
        })
        .collect();
    let mut points: Vec<Vec<(usize, f64)>> = vec![Vec::new(); input.len()];
    let mut order = Vec::new();
    let by_step = ByStep::new(&input, grid.len);
    for (step, &k_at_step) in k.iter().enumerate().take(grid.len) {
        let kk = (k_at_step as i64).min(input.len() as i64);
        if kk < 1 {
            continue;
        }
        let present = by_step.at(step);
        heaps.iter_mut().for_each(|h| h.items.clear());
        for &(s, v) in present {
            heaps[series_group[s]].offer((s, v), kk as usize);
        }
        for heap in &mut heaps {
            heap.items.sort_by(|a, b| output_order(top, a.1, b.1));
            for &(s, v) in &heap.items {
                if points[s].is_empty() {
                    order.push(s);
                }
                points[s].push((step, v));
            }
        }
    }
    if grid.len > 1 {
        order.sort_unstable();
    }
    let mut input = input;
    let out = order
        .into_iter()
        .map(|s| StepSeries {
            labels: std::mem::take(&mut input[s].labels),
            points: std::mem::take(&mut points[s]),
        })
        .collect();
    Ok(Val::Vector(out))
}

/// Rejects `k` values Prometheus rejects.
fn check_k(k: &[f64]) -> Result<(), QueryError> {
    const LIMIT: f64 = 9.223_372_036_854_776e18;
    for &x in k {
        if x.is_nan() {
            return Err(QueryError::Eval("Parameter value is NaN".into()));
        }
        if x <= -LIMIT {
            return Err(QueryError::Eval(format!(
                "Scalar value {x} underflows int64"
            )));
        }
        if x >= LIMIT {
            return Err(QueryError::Eval(format!(
                "Scalar value {x} overflows int64"
            )));
        }
    }
    Ok(())
}

/// The order topk (descending) and bottomk (ascending) list their results in: NaN last.
fn output_order(top: bool, a: f64, b: f64) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ if top => b.partial_cmp(&a).unwrap_or(Ordering::Equal),
        _ => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

/// A binary heap whose root is the element `less` ranks lowest: the candidate to evict.
struct Heap {
    items: Vec<(usize, f64)>,
    less: fn(f64, f64) -> bool,
}

impl Heap {
    /// Adds a sample if the heap has fewer than `k` or it beats the root.
    fn offer(&mut self, item: (usize, f64), k: usize) {
        if self.items.len() < k {
            self.items.push(item);
            self.up(self.items.len() - 1);
            return;
        }
        let root = self.items[0].1;
        let wins =
            ((self.less)(root, item.1) && !root.is_nan()) || (root.is_nan() && !item.1.is_nan());
        if wins {
            self.items[0] = item;
            if k > 1 {
                self.down(0);
            }
        }
    }

    fn less(&self, i: usize, j: usize) -> bool {
        (self.less)(self.items[i].1, self.items[j].1)
    }

    fn up(&mut self, mut j: usize) {
        while j > 0 {
            let parent = (j - 1) / 2;
            if !self.less(j, parent) {
                break;
            }
            self.items.swap(parent, j);
            j = parent;
        }
    }

    fn down(&mut self, mut i: usize) {
        let n = self.items.len();
        loop {
            let left = 2 * i + 1;
            if left >= n {
                break;
            }
            let mut j = left;
            if left + 1 < n && self.less(left + 1, left) {
                j = left + 1;
            }
            if !self.less(j, i) {
                break;
            }
            self.items.swap(i, j);
            i = j;
        }
    }
}

/// `count_values("label", v)`: per group, how many samples have each value, the value in
/// `label`.
fn count_values(
    input: Vec<StepSeries>,
    grouping: &Grouping,
    label: &str,
    grid: Grid,
) -> Result<Val, QueryError> {
    if label.is_empty() {
        return Err(QueryError::Eval("invalid label name \"\"".into()));
    }
    let mut names = grouping.names.clone();
    if !grouping.without {
        names.push(label.to_owned());
    }
    let mut set = SeriesSet::default();
    let by_step = ByStep::new(&input, grid.len);
    let mut counts: Vec<(usize, f64)> = Vec::new();
    for step in 0..grid.len {
        let present = by_step.at(step);
        counts.clear();
        for &(s, v) in present {
            let labels = input[s].labels.with(label, &format_value(v));
            let slot = set.slot(labels::grouping(&labels, &names, grouping.without));
            match counts.iter_mut().find(|(g, _)| *g == slot) {
                Some((_, n)) => *n += 1.0,
                None => counts.push((slot, 1.0)),
            }
        }
        for &(slot, n) in &counts {
            set.push(slot, step, n)?;
        }
    }
    Ok(Val::Vector(set.finish()?))
}

/// A value as Go's `strconv.FormatFloat(v, 'f', -1, 64)` writes it.
fn format_value(v: f64) -> String {
    match v {
        f64::INFINITY => "+Inf".into(),
        f64::NEG_INFINITY => "-Inf".into(),
        _ => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn select(top: bool, values: &[f64], k: usize) -> Vec<usize> {
        let less: fn(f64, f64) -> bool = if top {
            |a, b| a.is_nan() || a < b
        } else {
            |a, b| a.is_nan() || a > b
        };
        let mut heap = Heap {
            items: Vec::new(),
            less,
        };
        for (i, &v) in values.iter().enumerate() {
            heap.offer((i, v), k);
        }
        heap.items.sort_by(|a, b| output_order(top, a.1, b.1));
        heap.items.iter().map(|x| x.0).collect()
    }

    #[test]
    fn topk_keeps_the_largest_and_prefers_numbers_over_nan() {
        assert_eq!(select(true, &[1.0, 5.0, 3.0, 4.0], 2), vec![1, 3]);
        assert_eq!(select(true, &[f64::NAN, 1.0], 1), vec![1]);
        assert_eq!(select(true, &[1.0, f64::NAN], 2), vec![0, 1]);
        // Equal values: the heap's root is evicted, as in Prometheus.
        assert_eq!(select(true, &[5.0, 5.0, 7.0], 2), vec![2, 1]);
    }

    #[test]
    fn bottomk_keeps_the_smallest() {
        assert_eq!(select(false, &[3.0, 1.0, 2.0, f64::NAN], 2), vec![1, 2]);
        assert_eq!(select(false, &[f64::NAN, 2.0], 1), vec![1]);
    }

    #[test]
    fn k_must_be_a_number_within_int64() {
        assert!(check_k(&[f64::NAN]).is_err());
        assert!(check_k(&[1e19]).is_err());
        assert!(check_k(&[3.0]).is_ok());
    }

    #[test]
    fn values_format_as_go_does() {
        assert_eq!(format_value(1.5), "1.5");
        assert_eq!(format_value(1e21), "1000000000000000000000");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_value(f64::NAN), "NaN");
    }
}
