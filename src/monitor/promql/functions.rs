//! Function calls: dispatch by name, and the functions over instant vectors and scalars
//! (math, `round`, `clamp*`, `time`, `vector`, `scalar`, `absent`, `sort*`, `timestamp`).
//! Range-vector functions live in `range_fns`, label functions in `labels`, and
//! `histogram_quantile` in `histogram`.

use std::f64::consts::PI;

use promql_parser::parser::{Call, Expr};

use crate::monitor::series::Labels;

use super::eval::Evaluator;
use super::selector::absent_labels;
use super::value::{ByStep, Grid, SeriesSet, StepSeries, Val};
use super::{QueryError, histogram, labels, range_fns};

/// A function of one float.
type FloatFn = fn(f64) -> f64;

/// Functions of one float that drop the metric name.
const MATH: &[(&str, FloatFn)] = &[
    ("abs", f64::abs),
    ("ceil", f64::ceil),
    ("floor", f64::floor),
    ("exp", f64::exp),
    ("ln", f64::ln),
    ("log2", f64::log2),
    ("log10", f64::log10),
    ("sqrt", f64::sqrt),
    ("sgn", sgn),
    ("sin", f64::sin),
    ("cos", f64::cos),
    ("tan", f64::tan),
    ("asin", f64::asin),
    ("acos", f64::acos),
    ("atan", f64::atan),
    ("sinh", f64::sinh),
    ("cosh", f64::cosh),
    ("tanh", f64::tanh),
    ("asinh", f64::asinh),
    ("acosh", f64::acosh),
    ("atanh", f64::atanh),
    ("deg", deg),
    ("rad", rad),
];

/// The other functions implemented here or in a sibling module.
const OTHERS: &[&str] = &[
    "round",
    "clamp",
    "clamp_min",
    "clamp_max",
    "time",
    "pi",
    "vector",
    "scalar",
    "absent",
    "sort",
    "sort_desc",
    "timestamp",
    "label_replace",
    "label_join",
    "histogram_quantile",
];

/// Tells whether the engine implements the function `name`.
pub(super) fn is_supported(name: &str) -> bool {
    range_fns::is_range_fn(name) || OTHERS.contains(&name) || MATH.iter().any(|(n, _)| *n == name)
}

/// Evaluates a function call over the grid.
pub(super) fn eval(ev: &mut Evaluator, call: &Call, grid: Grid) -> Result<Val, QueryError> {
    let name = call.func.name;
    let args: Vec<&Expr> = call.args.args.iter().map(|a| a.as_ref()).collect();
    if range_fns::is_range_fn(name) {
        return range_fns::eval(ev, name, &args, grid);
    }
    if let Some((_, f)) = MATH.iter().find(|(n, _)| *n == name) {
        let input = ev.eval_vector(arg(&args, 0)?, grid)?;
        return map_vector(input, |_, v| Some(f(v)));
    }
    match name {
        "time" => Ok(Val::Scalar(
            (0..grid.len).map(|i| grid.ts(i) as f64 / 1000.0).collect(),
        )),
        "pi" => Ok(Val::Scalar(vec![PI; grid.len])),
        "vector" => {
            let values = ev.eval_scalar(arg(&args, 0)?, grid)?;
            Ok(Val::Vector(vec![StepSeries {
                labels: Labels::default(),
                points: values.into_iter().enumerate().collect(),
            }]))
        }
        "scalar" => scalar(ev.eval_vector(arg(&args, 0)?, grid)?, grid),
        "absent" => absent(ev, arg(&args, 0)?, grid),
        "sort" | "sort_desc" => sort(
            ev.eval_vector(arg(&args, 0)?, grid)?,
            grid,
            name == "sort_desc",
        ),
        "timestamp" => timestamp(ev, arg(&args, 0)?, grid),
        "round" => round(ev, &args, grid),
        "clamp" | "clamp_min" | "clamp_max" => clamp(ev, name, &args, grid),
        "label_replace" => labels::label_replace(ev, &args, grid),
        "label_join" => labels::label_join(ev, &args, grid),
        "histogram_quantile" => histogram::eval(ev, &args, grid),
        _ => Err(QueryError::Parse(format!(
            "function {name:?} is not supported by this engine"
        ))),
    }
}

/// Argument `i`, which the parser guarantees for a well-typed call.
pub(super) fn arg<'e>(args: &[&'e Expr], i: usize) -> Result<&'e Expr, QueryError> {
    args.get(i)
        .copied()
        .ok_or_else(|| QueryError::Eval(format!("missing argument {} of function", i + 1)))
}

/// Applies `f(step, value)` to every point, dropping the metric name and the points `f`
/// maps to `None`.
pub(super) fn map_vector(
    input: Vec<StepSeries>,
    mut f: impl FnMut(usize, f64) -> Option<f64>,
) -> Result<Val, QueryError> {
    let mut set = SeriesSet::default();
    for s in input {
        let points: Vec<(usize, f64)> = s
            .points
            .iter()
            .filter_map(|&(step, v)| f(step, v).map(|x| (step, x)))
            .collect();
        if !points.is_empty() {
            set.add_series(s.labels.without_metric_name(), points)?;
        }
    }
    Ok(Val::Vector(set.finish()?))
}

/// `round(v, to_nearest=1)`: ties round up.
fn round(ev: &mut Evaluator, args: &[&Expr], grid: Grid) -> Result<Val, QueryError> {
    let input = ev.eval_vector(arg(args, 0)?, grid)?;
    let to_nearest = match args.get(1) {
        Some(e) => ev.eval_scalar(e, grid)?,
        None => vec![1.0; grid.len],
    };
    map_vector(input, |step, v| {
        // Prometheus multiplies by the inverse: fewer floating-point surprises.
        let inverse = 1.0 / to_nearest[step];
        Some((v * inverse + 0.5).floor() / inverse)
    })
}

/// `clamp(v, min, max)`, `clamp_min(v, min)`, `clamp_max(v, max)`; no output at a step
/// where max < min.
fn clamp(ev: &mut Evaluator, name: &str, args: &[&Expr], grid: Grid) -> Result<Val, QueryError> {
    let input = ev.eval_vector(arg(args, 0)?, grid)?;
    let first = ev.eval_scalar(arg(args, 1)?, grid)?;
    let (min, max) = match name {
        "clamp" => (first, ev.eval_scalar(arg(args, 2)?, grid)?),
        "clamp_min" => (first, vec![f64::INFINITY; grid.len]),
        _ => (vec![f64::NEG_INFINITY; grid.len], first),
    };
    map_vector(input, |step, v| {
        let (lo, hi) = (min[step], max[step]);
        // Go's math.Max/Min propagate NaN.
        (hi >= lo || lo.is_nan() || hi.is_nan()).then(|| go_max(lo, go_min(hi, v)))
    })
}

/// `scalar(v)`: the value of a single-element vector, NaN otherwise.
fn scalar(input: Vec<StepSeries>, grid: Grid) -> Result<Val, QueryError> {
    let by_step = ByStep::new(&input, grid.len);
    let values = (0..grid.len)
        .map(|step| {
            let present = by_step.at(step);
            match present {
                [(_, v)] => *v,
                _ => f64::NAN,
            }
        })
        .collect();
    Ok(Val::Scalar(values))
}

/// `absent(v)`: 1 at the steps where `v` is empty, labelled from the selector's equality
/// matchers.
fn absent(ev: &mut Evaluator, expr: &Expr, grid: Grid) -> Result<Val, QueryError> {
    let input = ev.eval_vector(expr, grid)?;
    let mut present = vec![false; grid.len];
    for s in &input {
        for &(step, _) in &s.points {
            present[step] = true;
        }
    }
    Ok(Val::Vector(absent_series(expr, &present)))
}

/// The series `absent()`-like functions return for steps not marked present.
pub(super) fn absent_series(expr: &Expr, present: &[bool]) -> Vec<StepSeries> {
    let points: Vec<(usize, f64)> = present
        .iter()
        .enumerate()
        .filter(|(_, p)| !**p)
        .map(|(step, _)| (step, 1.0))
        .collect();
    if points.is_empty() {
        return Vec::new();
    }
    vec![StepSeries {
        labels: absent_labels(expr),
        points,
    }]
}

/// `sort(v)` / `sort_desc(v)`: orders an instant query's result by value, NaN last; a range
/// query's result is sorted by labels anyway.
fn sort(mut input: Vec<StepSeries>, grid: Grid, descending: bool) -> Result<Val, QueryError> {
    if grid.len == 1 {
        let value = |s: &StepSeries| s.points.first().map_or(f64::NAN, |p| p.1);
        input.sort_by(|a, b| {
            let (x, y) = (value(a), value(b));
            match (x.is_nan(), y.is_nan()) {
                (true, true) => std::cmp::Ordering::Equal,
                (true, false) => std::cmp::Ordering::Greater,
                (false, true) => std::cmp::Ordering::Less,
                _ if descending => y.partial_cmp(&x).unwrap_or(std::cmp::Ordering::Equal),
                _ => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
            }
        });
    }
    Ok(Val::Vector(input))
}

/// `timestamp(v)`: the sample's own timestamp for a selector, else the evaluation time.
fn timestamp(ev: &mut Evaluator, expr: &Expr, grid: Grid) -> Result<Val, QueryError> {
    if let Expr::VectorSelector(vs) = expr {
        let input = ev.select_vector(vs, grid, true)?;
        return map_vector(input, |_, t| Some(t));
    }
    let input = ev.eval_vector(expr, grid)?;
    map_vector(input, |step, _| Some(grid.ts(step) as f64 / 1000.0))
}

fn sgn(v: f64) -> f64 {
    if v < 0.0 {
        -1.0
    } else if v > 0.0 {
        1.0
    } else {
        v
    }
}

fn deg(v: f64) -> f64 {
    v * 180.0 / PI
}

fn rad(v: f64) -> f64 {
    v * PI / 180.0
}

/// Go's `math.Max`: NaN wins.
fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// Go's `math.Min`: NaN wins.
fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sgn_keeps_zero_and_nan() {
        assert_eq!(sgn(-3.0), -1.0);
        assert_eq!(sgn(0.5), 1.0);
        assert_eq!(sgn(0.0), 0.0);
        assert!(sgn(f64::NAN).is_nan());
    }

    #[test]
    fn go_min_and_max_propagate_nan() {
        assert!(go_max(1.0, f64::NAN).is_nan());
        assert!(go_min(f64::NAN, 1.0).is_nan());
        assert_eq!(go_max(1.0, 2.0), 2.0);
    }
}
