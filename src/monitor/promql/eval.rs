//! The evaluator: walks the parsed expression and evaluates every node once over the whole
//! grid of steps, counting the samples it holds against the engine's limit.

use promql_parser::parser::Expr;
use promql_parser::parser::token::{T_LIMIT_RATIO, T_LIMITK};

use crate::monitor::series::Queryable;

use super::value::{Grid, SeriesSet, StepSeries, Val};
use super::{Engine, QueryError, aggregate, binary, functions};

/// One query's evaluation state.
pub(super) struct Evaluator<'a> {
    pub db: &'a dyn Queryable,
    pub lookback: i64,
    /// The query's first and last step, for `@ start()` and `@ end()`.
    pub query_start: i64,
    pub query_end: i64,
    max_samples: usize,
    /// Samples held in memory right now.
    samples: usize,
}

impl<'a> Evaluator<'a> {
    /// An evaluator for a query whose steps run from `query_start` to `query_end`.
    pub fn new(db: &'a dyn Queryable, engine: &Engine, query_start: i64, query_end: i64) -> Self {
        Evaluator {
            db,
            lookback: engine.lookback_ms,
            query_start,
            query_end,
            max_samples: engine.max_samples,
            samples: 0,
        }
    }

    /// Counts `n` more samples held in memory; fails past the limit.
    pub fn count_samples(&mut self, n: usize) -> Result<(), QueryError> {
        self.samples = self.samples.saturating_add(n);
        if self.samples > self.max_samples {
            return Err(QueryError::Limit(
                "query processing would load too many samples into memory in query execution"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Evaluates `expr` over `grid`. The node's inputs are released once it is computed, so
    /// only its own result stays counted, as in Prometheus.
    pub fn eval(&mut self, expr: &Expr, grid: Grid) -> Result<Val, QueryError> {
        let before = self.samples;
        let val = self.eval_node(expr, grid)?;
        self.samples = before;
        self.count_samples(val.sample_count())?;
        Ok(val)
    }

    /// Evaluates an expression the parser typed as an instant vector.
    pub fn eval_vector(&mut self, expr: &Expr, grid: Grid) -> Result<Vec<StepSeries>, QueryError> {
        match self.eval(expr, grid)? {
            Val::Vector(v) => Ok(v),
            _ => Err(QueryError::Eval("expected an instant vector".into())),
        }
    }

    /// Evaluates an expression the parser typed as a scalar: one value per step.
    pub fn eval_scalar(&mut self, expr: &Expr, grid: Grid) -> Result<Vec<f64>, QueryError> {
        match self.eval(expr, grid)? {
            Val::Scalar(v) => Ok(v),
            _ => Err(QueryError::Eval("expected a scalar".into())),
        }
    }

    fn eval_node(&mut self, expr: &Expr, grid: Grid) -> Result<Val, QueryError> {
        match expr {
            Expr::NumberLiteral(n) => Ok(Val::Scalar(vec![n.val; grid.len])),
            Expr::StringLiteral(s) => Ok(Val::String(s.val.clone())),
            Expr::Paren(p) => self.eval_node(&p.expr, grid),
            Expr::Unary(u) => negate(self.eval(&u.expr, grid)?),
            Expr::VectorSelector(vs) => Ok(Val::Vector(self.select_vector(vs, grid, false)?)),
            Expr::MatrixSelector(_) | Expr::Subquery(_) => self.eval_matrix(expr, grid),
            Expr::Aggregate(a) => aggregate::eval(self, a, grid),
            Expr::Binary(b) => binary::eval(self, b, grid),
            Expr::Call(c) => functions::eval(self, c, grid),
            Expr::Extension(_) => Err(unsupported("extension expressions are")),
        }
    }

    /// A range vector as a value: only an instant query can return one.
    fn eval_matrix(&mut self, expr: &Expr, grid: Grid) -> Result<Val, QueryError> {
        if grid.len != 1 {
            return Err(QueryError::BadRequest(
                "invalid expression type \"range vector\" for range query, must be Scalar or instant Vector".into(),
            ));
        }
        let windows = self.windows(expr, grid)?;
        let matrix = (0..windows.series.len())
            .filter_map(|s| {
                let (_, samples) = windows.of(s).next()?;
                Some(crate::monitor::series::SeriesData {
                    labels: windows.series[s].labels.clone(),
                    samples: samples.to_vec(),
                })
            })
            .collect();
        Ok(Val::Matrix(matrix))
    }
}

/// Unary minus: negates values and drops the metric name.
fn negate(val: Val) -> Result<Val, QueryError> {
    match val {
        Val::Scalar(v) => Ok(Val::Scalar(v.into_iter().map(|x| -x).collect())),
        Val::Vector(series) => {
            let mut set = SeriesSet::default();
            for s in series {
                let points = s.points.into_iter().map(|(i, v)| (i, -v)).collect();
                set.add_series(s.labels.without_metric_name(), points)?;
            }
            Ok(Val::Vector(set.finish()?))
        }
        _ => Err(QueryError::Eval(
            "unary expression only allowed on expressions of type scalar or instant vector".into(),
        )),
    }
}

/// The error for a feature this engine does not implement.
pub(super) fn unsupported(what: &str) -> QueryError {
    QueryError::Parse(format!("{what} not supported by this engine"))
}

/// Rejects functions, aggregations and modifiers this engine does not implement, so the
/// query fails as bad data before it reads anything.
pub(super) fn check_supported(expr: &Expr) -> Result<(), QueryError> {
    match expr {
        Expr::Aggregate(a) => {
            if matches!(a.op.id(), T_LIMITK | T_LIMIT_RATIO) {
                return Err(unsupported(&format!("aggregation {} is", a.op)));
            }
            if let Some(param) = &a.param {
                check_supported(param)?;
            }
            check_supported(&a.expr)
        }
        Expr::Unary(u) => check_supported(&u.expr),
        Expr::Binary(b) => {
            if let Some(m) = &b.modifier
                && (m.fill_values.lhs.is_some() || m.fill_values.rhs.is_some())
            {
                return Err(unsupported("fill modifiers are"));
            }
            check_supported(&b.lhs)?;
            check_supported(&b.rhs)
        }
        Expr::Paren(p) => check_supported(&p.expr),
        Expr::Subquery(s) => check_supported(&s.expr),
        Expr::Call(c) => {
            if !functions::is_supported(c.func.name) {
                return Err(unsupported(&format!("function {:?} is", c.func.name)));
            }
            c.args.args.iter().try_for_each(|a| check_supported(a))
        }
        Expr::Extension(_) => Err(unsupported("extension expressions are")),
        Expr::NumberLiteral(_)
        | Expr::StringLiteral(_)
        | Expr::VectorSelector(_)
        | Expr::MatrixSelector(_) => Ok(()),
    }
}
