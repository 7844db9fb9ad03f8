//! PromQL: parses a query with `promql-parser` and evaluates it over any [`Queryable`] with
//! Prometheus's semantics (5-minute lookback, staleness markers, extrapolated rates, vector
//! matching, aggregation), for instant and range queries.
//!
//! Every node of the query is evaluated once over the whole grid of evaluation steps, as
//! Prometheus's engine does: a selector reads its series from storage once for the whole
//! range, and functions, operators and aggregations then work from memory. Float samples
//! only; native histograms are not stored by the monitor.

mod aggregate;
mod binary;
mod eval;
mod functions;
mod histogram;
mod labels;
mod range_fns;
mod selector;
mod stats;
mod value;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;

use promql_parser::parser::value::ValueType;
use promql_parser::parser::{self, Expr};

use crate::monitor::series::{Labels, Matcher, Queryable, SeriesData};

use eval::Evaluator;
use value::{Grid, Val};
pub use value::{Sample, Value};

/// Why a query failed; [`QueryError::error_type`] gives the `errorType` Prometheus's HTTP API
/// answers with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueryError {
    /// The query does not parse, or uses a feature this engine does not implement.
    #[error("{0}")]
    Parse(String),
    /// The query parameters are unusable: end before start, a bad step, too many points.
    #[error("{0}")]
    BadRequest(String),
    /// The query would load more samples than the engine allows.
    #[error("{0}")]
    Limit(String),
    /// The query failed while running (e.g. many-to-many matching, duplicate label sets).
    #[error("{0}")]
    Eval(String),
}

impl QueryError {
    /// Prometheus's `errorType` for this error: `bad_data` or `execution`.
    pub fn error_type(&self) -> &'static str {
        match self {
            QueryError::Parse(_) | QueryError::BadRequest(_) => "bad_data",
            QueryError::Limit(_) | QueryError::Eval(_) => "execution",
        }
    }
}

/// The query engine's settings; the engine itself holds no state between queries.
#[derive(Debug, Clone)]
pub struct Engine {
    /// How far back an instant-vector selector looks for a sample (Prometheus: 5 minutes).
    pub lookback_ms: i64,
    /// The most samples a query may hold in memory at once (Prometheus: `query.max-samples`).
    pub max_samples: usize,
    /// The most points per series a range query may ask for (Prometheus: 11,000).
    pub max_points: usize,
}

impl Default for Engine {
    fn default() -> Self {
        Engine {
            lookback_ms: 5 * 60 * 1000,
            max_samples: 50_000_000,
            max_points: 11_000,
        }
    }
}

impl Engine {
    /// Evaluates `query` at `t_ms`: a scalar, a string, an instant vector, or (for a range
    /// vector or subquery expression) a matrix.
    pub fn instant(&self, db: &dyn Queryable, query: &str, t_ms: i64) -> Result<Value, QueryError> {
        let expr = parse(query)?;
        let grid = Grid {
            start: t_ms,
            step: 1,
            len: 1,
        };
        let mut ev = Evaluator::new(db, self, t_ms, t_ms);
        Ok(match ev.eval(&expr, grid)? {
            Val::Scalar(v) => Value::Scalar { t: t_ms, v: v[0] },
            Val::String(v) => Value::String { t: t_ms, v },
            Val::Vector(series) => Value::Vector(
                series
                    .into_iter()
                    .filter_map(|s| {
                        let v = s.points.first()?.1;
                        Some(Sample {
                            labels: s.labels,
                            t: t_ms,
                            v,
                        })
                    })
                    .collect(),
            ),
            Val::Matrix(mut matrix) => {
                matrix.sort_by(|a, b| a.labels.cmp(&b.labels));
                Value::Matrix(matrix)
            }
        })
    }

    /// Evaluates `query` at every `step_ms` from `start_ms` to `end_ms` and returns a matrix
    /// sorted by labels; a scalar expression becomes one series without labels.
    pub fn range(
        &self,
        db: &dyn Queryable,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<Value, QueryError> {
        let grid = self.range_grid(start_ms, end_ms, step_ms)?;
        let expr = parse(query)?;
        match expr.value_type() {
            ValueType::Vector | ValueType::Scalar => {}
            other => {
                return Err(QueryError::BadRequest(format!(
                    "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                    documented_type(other)
                )));
            }
        }
        let mut ev = Evaluator::new(db, self, start_ms, grid.end());
        let matrix = match ev.eval(&expr, grid)? {
            Val::Scalar(values) => vec![SeriesData {
                labels: Labels::default(),
                samples: values
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| (grid.ts(i), v))
                    .collect(),
            }],
            Val::Vector(series) => {
                let mut matrix: Vec<SeriesData> = series
                    .into_iter()
                    .map(|s| SeriesData {
                        labels: s.labels,
                        samples: s.points.iter().map(|&(i, v)| (grid.ts(i), v)).collect(),
                    })
                    .collect();
                matrix.sort_by(|a, b| a.labels.cmp(&b.labels));
                matrix
            }
            Val::String(_) | Val::Matrix(_) => {
                return Err(QueryError::Eval(
                    "range query produced a non-vector value".into(),
                ));
            }
        };
        Ok(Value::Matrix(matrix))
    }

    /// Checks a range query's parameters as Prometheus's HTTP API does.
    fn range_grid(&self, start_ms: i64, end_ms: i64, step_ms: i64) -> Result<Grid, QueryError> {
        if end_ms < start_ms {
            return Err(QueryError::BadRequest(
                "invalid parameter \"end\": end timestamp must not be before start time".into(),
            ));
        }
        if step_ms <= 0 {
            return Err(QueryError::BadRequest(
                "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
            ));
        }
        let intervals = end_ms
            .checked_sub(start_ms)
            .map_or(i64::MAX, |d| d / step_ms);
        if intervals as u64 > self.max_points as u64 {
            return Err(QueryError::BadRequest(format!(
                "exceeded maximum resolution of {} points per timeseries. Try decreasing the query resolution (?step=XX)",
                thousands(self.max_points)
            )));
        }
        Ok(Grid {
            start: start_ms,
            step: step_ms,
            len: intervals as usize + 1,
        })
    }
}

/// Parses a series selector such as `up{job="api"}` (what `match[]` parameters carry) into
/// storage matchers, the metric name included.
pub fn selector_matchers(text: &str) -> Result<Vec<Matcher>, QueryError> {
    let not_a_selector = || QueryError::Parse(format!("{text:?} is not a series selector"));
    match parser::parse(text).map_err(parse_error)? {
        Expr::VectorSelector(vs) if vs.offset.is_none() && vs.at.is_none() => {
            let mut groups = selector::matcher_groups(&vs)?;
            if groups.len() != 1 {
                return Err(not_a_selector());
            }
            Ok(groups.remove(0))
        }
        _ => Err(not_a_selector()),
    }
}

/// Parses a query and rejects what the engine does not implement, before touching storage.
fn parse(query: &str) -> Result<Expr, QueryError> {
    let expr = parser::parse(query).map_err(parse_error)?;
    eval::check_supported(&expr)?;
    Ok(expr)
}

/// A parser message as Prometheus words it (without the position, which the parser lacks).
fn parse_error(message: String) -> QueryError {
    QueryError::Parse(format!("parse error: {message}"))
}

/// The type names Prometheus uses in its messages.
fn documented_type(t: ValueType) -> &'static str {
    match t {
        ValueType::Vector => "instant vector",
        ValueType::Matrix => "range vector",
        ValueType::Scalar => "scalar",
        ValueType::String => "string",
    }
}

/// `11000` as `11,000`, as Prometheus writes the limit.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
