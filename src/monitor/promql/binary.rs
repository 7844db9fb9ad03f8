//! Binary operators: arithmetic and comparisons (with or without `bool`) between scalars
//! and vectors, vector matching (`on` / `ignoring`, `group_left` / `group_right` with extra
//! labels) and the set operators `and`, `or`, `unless`.

use std::collections::HashMap;

use promql_parser::parser::token::{
    T_ADD, T_ATAN2, T_DIV, T_EQLC, T_GTE, T_GTR, T_LAND, T_LOR, T_LSS, T_LTE, T_LUNLESS, T_MOD,
    T_MUL, T_NEQ, T_POW, T_SUB, TokenId,
};
use promql_parser::parser::{BinModifier, BinaryExpr, LabelModifier, VectorMatchCardinality};

use crate::monitor::series::{Labels, METRIC_NAME};

use super::QueryError;
use super::eval::Evaluator;
use super::labels::signature;
use super::value::{ByStep, Grid, SeriesSet, StepSeries, Val};

/// Evaluates a binary expression over the grid.
pub(super) fn eval(ev: &mut Evaluator, b: &BinaryExpr, grid: Grid) -> Result<Val, QueryError> {
    let op = b.op.id();
    let return_bool = b.return_bool();
    let lhs = ev.eval(&b.lhs, grid)?;
    let rhs = ev.eval(&b.rhs, grid)?;
    match (lhs, rhs) {
        (Val::Scalar(l), Val::Scalar(r)) => Ok(Val::Scalar(
            l.iter()
                .zip(&r)
                .map(|(&a, &b)| scalar_op(op, a, b))
                .collect(),
        )),
        (Val::Vector(l), Val::Scalar(r)) => vector_scalar(op, l, &r, false, return_bool),
        (Val::Scalar(l), Val::Vector(r)) => vector_scalar(op, r, &l, true, return_bool),
        (Val::Vector(l), Val::Vector(r)) => {
            let matching = Matching::new(b.modifier.as_ref());
            if matches!(op, T_LAND | T_LOR | T_LUNLESS) {
                set_op(op, l, r, &matching, grid)
            } else {
                vector_op(op, l, r, &matching, return_bool, grid)
            }
        }
        _ => Err(QueryError::Eval(
            "binary operators only take scalars and instant vectors".into(),
        )),
    }
}

fn is_arithmetic(op: TokenId) -> bool {
    matches!(op, T_ADD | T_SUB | T_MUL | T_DIV | T_MOD | T_POW | T_ATAN2)
}

fn is_comparison(op: TokenId) -> bool {
    matches!(op, T_EQLC | T_NEQ | T_GTR | T_LSS | T_GTE | T_LTE)
}

/// Applies `op` to two values: `(result, keep)`. Comparisons return the left value and
/// whether the comparison holds; arithmetic always keeps.
fn elem_op(op: TokenId, l: f64, r: f64) -> (f64, bool) {
    match op {
        T_ADD => (l + r, true),
        T_SUB => (l - r, true),
        T_MUL => (l * r, true),
        T_DIV => (l / r, true),
        T_MOD => (l % r, true),
        T_POW => (l.powf(r), true),
        T_ATAN2 => (l.atan2(r), true),
        T_EQLC => (l, l == r),
        T_NEQ => (l, l != r),
        T_GTR => (l, l > r),
        T_LSS => (l, l < r),
        T_GTE => (l, l >= r),
        T_LTE => (l, l <= r),
        _ => (f64::NAN, false),
    }
}

/// Scalar op scalar: comparisons give 1 or 0 (the parser requires `bool` there).
fn scalar_op(op: TokenId, l: f64, r: f64) -> f64 {
    let (v, keep) = elem_op(op, l, r);
    match (is_comparison(op), keep) {
        (true, true) => 1.0,
        (true, false) => 0.0,
        _ => v,
    }
}

/// Vector op scalar (or scalar op vector when `swap`): arithmetic and `bool` drop the
/// metric name; a filtering comparison keeps the vector's value and labels.
fn vector_scalar(
    op: TokenId,
    series: Vec<StepSeries>,
    scalar: &[f64],
    swap: bool,
    return_bool: bool,
) -> Result<Val, QueryError> {
    let drop_name = is_arithmetic(op) || return_bool;
    let mut set = SeriesSet::default();
    for s in series {
        let points: Vec<(usize, f64)> = s
            .points
            .iter()
            .filter_map(|&(step, v)| {
                let (l, r) = if swap {
                    (scalar[step], v)
                } else {
                    (v, scalar[step])
                };
                let (value, keep) = elem_op(op, l, r);
                let value = if is_comparison(op) { v } else { value };
                let value = match (return_bool, keep) {
                    (true, _) => Some(if keep { 1.0 } else { 0.0 }),
                    (false, true) => Some(value),
                    (false, false) => None,
                };
                value.map(|v| (step, v))
            })
            .collect();
        if points.is_empty() {
            continue;
        }
        let labels = if drop_name {
            s.labels.without_metric_name()
        } else {
            s.labels
        };
        set.add_series(labels, points)?;
    }
    Ok(Val::Vector(set.finish()?))
}

/// How two vectors' series are matched.
struct Matching {
    /// `on(names)` when true, `ignoring(names)` otherwise.
    on: bool,
    names: Vec<String>,
    card: Card,
    /// The "one" side's labels copied by `group_left(...)` / `group_right(...)`.
    include: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Card {
    OneToOne,
    ManyToOne,
    OneToMany,
}

impl Matching {
    fn new(modifier: Option<&BinModifier>) -> Self {
        let (on, names) = match modifier.and_then(|m| m.matching.as_ref()) {
            Some(LabelModifier::Include(l)) => (true, l.labels.clone()),
            Some(LabelModifier::Exclude(l)) => (false, l.labels.clone()),
            None => (false, Vec::new()),
        };
        let (card, include) = match modifier.map(|m| &m.card) {
            Some(VectorMatchCardinality::ManyToOne(l)) => (Card::ManyToOne, l.labels.clone()),
            Some(VectorMatchCardinality::OneToMany(l)) => (Card::OneToMany, l.labels.clone()),
            _ => (Card::OneToOne, Vec::new()),
        };
        Matching {
            on,
            names,
            card,
            include,
        }
    }

    /// Signature ordinals of both sides' series: equal ordinals match.
    fn signatures(
        &self,
        lhs: &[StepSeries],
        rhs: &[StepSeries],
    ) -> (Vec<usize>, Vec<usize>, Vec<Labels>) {
        let mut index: HashMap<Labels, usize> = HashMap::new();
        let mut sigs = Vec::new();
        let mut ordinal = |s: &StepSeries| {
            let sig = signature(&s.labels, &self.names, self.on);
            *index.entry(sig).or_insert_with_key(|sig| {
                sigs.push(sig.clone());
                sigs.len() - 1
            })
        };
        let l = lhs.iter().map(&mut ordinal).collect();
        let r = rhs.iter().map(&mut ordinal).collect();
        (l, r, sigs)
    }

    /// The labels of a result: the "many" side's, without `__name__` for arithmetic and
    /// `bool`, reduced to the matching labels for one-to-one, plus the included labels of
    /// the "one" side.
    fn result_labels(&self, many: &Labels, one: &Labels, drop_name: bool) -> Labels {
        let mut pairs: Vec<(String, String)> = many
            .pairs()
            .iter()
            .filter(|(n, _)| {
                let listed = self.names.iter().any(|x| x == n);
                let name_ok = !drop_name || n != METRIC_NAME;
                let matching_ok = self.card != Card::OneToOne || listed == self.on;
                name_ok && matching_ok
            })
            .cloned()
            .collect();
        for name in &self.include {
            pairs.retain(|(n, _)| n != name);
            if let Some(v) = one.get(name) {
                pairs.push((name.clone(), v.to_owned()));
            }
        }
        Labels::new(pairs)
    }
}

/// `and`, `or`, `unless`, step by step on matching signatures.
fn set_op(
    op: TokenId,
    lhs: Vec<StepSeries>,
    rhs: Vec<StepSeries>,
    m: &Matching,
    grid: Grid,
) -> Result<Val, QueryError> {
    let (lsig, rsig, sigs) = m.signatures(&lhs, &rhs);
    let mut set = SeriesSet::default();
    let lslots: Vec<usize> = lhs.iter().map(|s| set.slot(s.labels.clone())).collect();
    let rslots: Vec<usize> = if op == T_LOR {
        rhs.iter().map(|s| set.slot(s.labels.clone())).collect()
    } else {
        Vec::new()
    };
    // marks[sig] == step: the signature is present on the side being looked up.
    let mut marks = vec![usize::MAX; sigs.len()];
    let (gl, gr) = (ByStep::new(&lhs, grid.len), ByStep::new(&rhs, grid.len));
    for step in 0..grid.len {
        let (lp, rp) = (gl.at(step), gr.at(step));
        if op == T_LOR {
            for &(i, v) in lp {
                marks[lsig[i]] = step;
                set.push(lslots[i], step, v)?;
            }
            for &(j, v) in rp {
                if marks[rsig[j]] != step {
                    set.push(rslots[j], step, v)?;
                }
            }
            continue;
        }
        for &(j, _) in rp {
            marks[rsig[j]] = step;
        }
        let want_match = op == T_LAND;
        for &(i, v) in lp {
            if (marks[lsig[i]] == step) == want_match {
                set.push(lslots[i], step, v)?;
            }
        }
    }
    Ok(Val::Vector(set.finish()?))
}

/// Arithmetic and comparisons between two vectors: each "many" sample meets the one
/// matching sample of the other side.
fn vector_op(
    op: TokenId,
    lhs: Vec<StepSeries>,
    rhs: Vec<StepSeries>,
    m: &Matching,
    return_bool: bool,
    grid: Grid,
) -> Result<Val, QueryError> {
    let swapped = m.card == Card::OneToMany;
    let (many, one) = if swapped { (&rhs, &lhs) } else { (&lhs, &rhs) };
    let (l_sig, r_sig, sigs) = m.signatures(&lhs, &rhs);
    let (many_sig, one_sig) = if swapped {
        (r_sig, l_sig)
    } else {
        (l_sig, r_sig)
    };
    let mut join = Join {
        op,
        m,
        return_bool,
        many,
        one,
        one_at: vec![(usize::MAX, 0, 0.0); sigs.len()],
        matched: vec![usize::MAX; sigs.len()],
        produced: Vec::new(),
        slots: HashMap::new(),
        last_slot: vec![None; many.len()],
        set: SeriesSet::default(),
    };
    let (gm, go) = (ByStep::new(many, grid.len), ByStep::new(one, grid.len));
    for step in 0..grid.len {
        let (many_present, one_present) = (gm.at(step), go.at(step));
        if many_present.is_empty() || one_present.is_empty() {
            continue;
        }
        for &(j, v) in one_present {
            join.index_one(step, one_sig[j], j, v, &sigs)?;
        }
        for &(i, v) in many_present {
            join.match_many(step, many_sig[i], i, v)?;
        }
    }
    Ok(Val::Vector(join.set.finish()?))
}

/// The state of a vector-to-vector operation while it walks the steps.
struct Join<'a> {
    op: TokenId,
    m: &'a Matching,
    return_bool: bool,
    many: &'a [StepSeries],
    one: &'a [StepSeries],
    /// Per signature: the step it was last seen on the "one" side, with that sample.
    one_at: Vec<(usize, usize, f64)>,
    /// Per signature: the step it was last matched (one-to-one allows one match per step).
    matched: Vec<usize>,
    /// Per output slot: the step it was last produced.
    produced: Vec<usize>,
    /// Output slot per (many, one) series pair, and the last pair of each "many" series.
    slots: HashMap<(usize, usize), usize>,
    last_slot: Vec<Option<(usize, usize)>>,
    set: SeriesSet,
}

impl Join<'_> {
    /// Records a "one" side sample; two with the same signature at one step are an error.
    fn index_one(
        &mut self,
        step: usize,
        sig: usize,
        j: usize,
        v: f64,
        sigs: &[Labels],
    ) -> Result<(), QueryError> {
        let (seen, other, _) = self.one_at[sig];
        if seen == step {
            let (a, b) = (&self.one[other].labels, &self.one[j].labels);
            return Err(duplicate_one_side(self.m, &sigs[sig], a, b));
        }
        self.one_at[sig] = (step, j, v);
        Ok(())
    }

    /// Applies the operator to a "many" sample and its match, if any.
    fn match_many(&mut self, step: usize, sig: usize, i: usize, v: f64) -> Result<(), QueryError> {
        let (seen, j, one_v) = self.one_at[sig];
        if seen != step {
            return Ok(());
        }
        let swapped = self.m.card == Card::OneToMany;
        let (l, r) = if swapped { (one_v, v) } else { (v, one_v) };
        let (mut value, keep) = elem_op(self.op, l, r);
        if self.return_bool {
            value = if keep { 1.0 } else { 0.0 };
        }
        let slot = self.slot(i, j);
        if self.m.card == Card::OneToOne {
            if self.matched[sig] == step {
                return Err(QueryError::Eval("multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into()));
            }
            self.matched[sig] = step;
        }
        if self.produced.len() <= slot {
            self.produced.resize(slot + 1, usize::MAX);
        }
        if self.produced[slot] == step {
            return Err(QueryError::Eval(
                "multiple matches for labels: grouping labels must ensure unique matches".into(),
            ));
        }
        self.produced[slot] = step;
        if keep || self.return_bool {
            self.set.push(slot, step, value)?;
        }
        Ok(())
    }

    /// The output slot of a (many, one) pair; the result labels are computed once per pair.
    fn slot(&mut self, i: usize, j: usize) -> usize {
        if let Some((last_j, slot)) = self.last_slot[i]
            && last_j == j
        {
            return slot;
        }
        let drop_name = is_arithmetic(self.op) || self.return_bool;
        let (many, one, m, set) = (
            &self.many[i].labels,
            &self.one[j].labels,
            self.m,
            &mut self.set,
        );
        let slot = *self
            .slots
            .entry((i, j))
            .or_insert_with(|| set.slot(m.result_labels(many, one, drop_name)));
        self.last_slot[i] = Some((j, slot));
        slot
    }
}

/// The error for two series with the same signature on the side that must be unique.
fn duplicate_one_side(m: &Matching, sig: &Labels, a: &Labels, b: &Labels) -> QueryError {
    let side = if m.card == Card::OneToMany {
        "left"
    } else {
        "right"
    };
    let (mut first, mut second) = (a.to_string(), b.to_string());
    if first > second {
        std::mem::swap(&mut first, &mut second);
    }
    QueryError::Eval(format!(
        "found duplicate series for the match group {sig} on the {side} hand-side of the operation: [{first}, {second}];many-to-many matching not allowed: matching labels must be unique on one side"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparisons_keep_the_left_value_and_arithmetic_follows_go() {
        assert_eq!(elem_op(T_GTR, 3.0, 2.0), (3.0, true));
        assert_eq!(elem_op(T_LTE, 3.0, 2.0), (3.0, false));
        assert_eq!(elem_op(T_MOD, -7.0, 3.0), (-1.0, true));
        assert_eq!(elem_op(T_POW, 2.0, 10.0), (1024.0, true));
        assert!(!elem_op(T_EQLC, f64::NAN, f64::NAN).1);
        assert_eq!(scalar_op(T_GTE, 1.0, 2.0), 0.0);
        assert_eq!(scalar_op(T_DIV, 1.0, 0.0), f64::INFINITY);
    }

    #[test]
    fn result_labels_follow_the_matching_mode() {
        let many = Labels::from_pairs(&[("__name__", "a"), ("x", "1"), ("y", "2")]);
        let one = Labels::from_pairs(&[("__name__", "b"), ("x", "1"), ("z", "9")]);
        let on_x = Matching::new(None);
        let mut m = Matching {
            on: true,
            names: vec!["x".into()],
            ..on_x
        };
        assert_eq!(
            m.result_labels(&many, &one, true),
            Labels::from_pairs(&[("x", "1")])
        );
        m.card = Card::ManyToOne;
        m.include = vec!["z".into()];
        assert_eq!(
            m.result_labels(&many, &one, true),
            Labels::from_pairs(&[("x", "1"), ("y", "2"), ("z", "9")])
        );
        let ignoring_y = Matching {
            on: false,
            names: vec!["y".into()],
            card: Card::OneToOne,
            include: Vec::new(),
        };
        assert_eq!(
            ignoring_y.result_labels(&many, &one, false),
            Labels::from_pairs(&[("__name__", "a"), ("x", "1")])
        );
    }
}
