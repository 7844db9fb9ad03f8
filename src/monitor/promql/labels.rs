//! Label work: `label_replace` and `label_join`, the grouping labels of an aggregation and
//! the matching signature of a binary operation.

use promql_parser::parser::Expr;
use regex::Regex;

use crate::monitor::series::{Labels, METRIC_NAME};

use super::QueryError;
use super::eval::Evaluator;
use super::functions::arg;
use super::value::{Grid, SeriesSet, Val};

/// `label_replace(v, dst, replacement, src, regex)`: where `regex` matches the whole value of
/// `src`, sets `dst` to `replacement` with `$1`, `${name}` expanded; an empty result removes
/// `dst`.
pub(super) fn label_replace(
    ev: &mut Evaluator,
    args: &[&Expr],
    grid: Grid,
) -> Result<Val, QueryError> {
    let dst = string_arg(arg(args, 1)?)?;
    let replacement = string_arg(arg(args, 2)?)?;
    let src = string_arg(arg(args, 3)?)?;
    let pattern = string_arg(arg(args, 4)?)?;
    let regex = Regex::new(&format!("^(?s:{pattern})$")).map_err(|_| {
        QueryError::Eval(format!(
            "invalid regular expression in label_replace(): {pattern}"
        ))
    })?;
    if dst.is_empty() {
        return Err(QueryError::Eval(
            "invalid destination label name in label_replace(): ".into(),
        ));
    }
    let input = ev.eval_vector(arg(args, 0)?, grid)?;
    let mut set = SeriesSet::default();
    for s in input {
        let value = s.labels.get(src).unwrap_or("");
        let labels = match regex.captures(value) {
            Some(caps) => {
                let mut out = String::new();
                caps.expand(replacement, &mut out);
                s.labels.with(dst, &out)
            }
            None => s.labels,
        };
        set.add_series(labels, s.points)?;
    }
    Ok(Val::Vector(set.finish()?))
}

/// `label_join(v, dst, separator, src...)`: sets `dst` to the `src` values joined (missing
/// ones as empty strings).
pub(super) fn label_join(
    ev: &mut Evaluator,
    args: &[&Expr],
    grid: Grid,
) -> Result<Val, QueryError> {
    let dst = string_arg(arg(args, 1)?)?;
    let separator = string_arg(arg(args, 2)?)?;
    let sources = args
        .get(3..)
        .unwrap_or_default()
        .iter()
        .map(|a| string_arg(a))
        .collect::<Result<Vec<_>, _>>()?;
    if dst.is_empty() {
        return Err(QueryError::Eval(
            "invalid destination label name in label_join(): ".into(),
        ));
    }
    let input = ev.eval_vector(arg(args, 0)?, grid)?;
    let mut set = SeriesSet::default();
    for s in input {
        let joined = sources
            .iter()
            .map(|src| s.labels.get(src).unwrap_or(""))
            .collect::<Vec<_>>()
            .join(separator);
        set.add_series(s.labels.with(dst, &joined), s.points)?;
    }
    Ok(Val::Vector(set.finish()?))
}

/// A string literal argument.
pub(super) fn string_arg(expr: &Expr) -> Result<&str, QueryError> {
    match expr {
        Expr::StringLiteral(s) => Ok(&s.val),
        Expr::Paren(p) => string_arg(&p.expr),
        _ => Err(QueryError::Eval("expected a string literal".into())),
    }
}

/// An aggregation's output labels: only `names` with `by`; all but `names` and
/// `__name__` with `without`.
pub(super) fn grouping(labels: &Labels, names: &[String], without: bool) -> Labels {
    let pairs = labels
        .pairs()
        .iter()
        .filter(|(n, _)| {
            let listed = names.iter().any(|x| x == n);
            if without {
                !listed && n != METRIC_NAME
            } else {
                listed
            }
        })
        .cloned()
        .collect();
    Labels::new(pairs)
}

/// The labels two series are matched on: only `names` with `on`; all but `names` and
/// `__name__` with `ignoring` (or no modifier).
pub(super) fn signature(labels: &Labels, names: &[String], on: bool) -> Labels {
    grouping(labels, names, !on)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn grouping_by_keeps_listed_labels_and_without_drops_them_and_the_name() {
        let l = Labels::from_pairs(&[("__name__", "m"), ("a", "1"), ("b", "2")]);
        assert_eq!(
            grouping(&l, &names(&["a", "z"]), false),
            Labels::from_pairs(&[("a", "1")])
        );
        assert_eq!(
            grouping(&l, &names(&["a"]), true),
            Labels::from_pairs(&[("b", "2")])
        );
        assert_eq!(
            grouping(&l, &names(&["__name__"]), false),
            Labels::from_pairs(&[("__name__", "m")])
        );
    }
}
