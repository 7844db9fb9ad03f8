//! `/api/v1/query` and `/api/v1/query_range`.

use axum::extract::State;
use axum::response::Response;
use serde_json::{Value as Json, json};

use super::{ApiError, ErrorType, Params, format_value, seconds, success};
use crate::monitor::Monitor;
use crate::monitor::promql::{QueryError, Sample, Value};
use crate::monitor::scrape::now_ms;
use crate::monitor::series::{Labels, SeriesData};

/// `GET|POST /api/v1/query?query=&time=`.
pub async fn instant(State(monitor): State<Monitor>, params: Params) -> Result<Response, ApiError> {
    let query = params.required("query")?.to_owned();
    let t = params.time("time", now_ms())?;
    let timeout = params.duration("timeout")?;
    let value = monitor
        .evaluate(timeout, move |engine, db| engine.instant(db, &query, t))
        .await?;
    Ok(success(value_json(&value)))
}

/// `GET|POST /api/v1/query_range?query=&start=&end=&step=`; the engine checks the range
/// (end after start, a positive step, at most 11,000 points) as Prometheus does.
pub async fn range(State(monitor): State<Monitor>, params: Params) -> Result<Response, ApiError> {
    let query = params.required("query")?.to_owned();
    params.required("start")?;
    params.required("end")?;
    let (start, end) = (params.time("start", 0)?, params.time("end", 0)?);
    let step = params
        .duration("step")?
        .ok_or_else(|| ApiError::bad_data("invalid parameter \"step\": missing"))?;
    let timeout = params.duration("timeout")?;
    let value = monitor
        .evaluate(timeout, move |engine, db| {
            engine.range(db, &query, start, end, step)
        })
        .await?;
    Ok(success(value_json(&value)))
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        let kind = match e.error_type() {
            "bad_data" => ErrorType::BadData,
            "timeout" => ErrorType::Timeout,
            _ => ErrorType::Execution,
        };
        ApiError {
            kind,
            message: e.to_string(),
        }
    }
}

/// `{"resultType": ..., "result": ...}` as Prometheus writes each kind of value.
fn value_json(value: &Value) -> Json {
    match value {
        Value::Scalar { t, v } => json!({
            "resultType": "scalar",
            "result": [seconds(*t), format_value(*v)],
        }),
        Value::String { t, v } => json!({
            "resultType": "string",
            "result": [seconds(*t), v],
        }),
        Value::Vector(samples) => json!({
            "resultType": "vector",
            "result": samples.iter().map(sample_json).collect::<Vec<_>>(),
        }),
        Value::Matrix(series) => json!({
            "resultType": "matrix",
            "result": series.iter().map(series_json).collect::<Vec<_>>(),
        }),
    }
}

fn sample_json(s: &Sample) -> Json {
    json!({
        "metric": labels_json(&s.labels),
        "value": [seconds(s.t), format_value(s.v)],
    })
}

fn series_json(s: &SeriesData) -> Json {
    json!({
        "metric": labels_json(&s.labels),
        "values": s.samples.iter().map(|(t, v)| json!([seconds(*t), format_value(*v)])).collect::<Vec<_>>(),
    })
}

/// A label set as a JSON object.
pub fn labels_json(labels: &Labels) -> Json {
    Json::Object(
        labels
            .iter()
            .map(|(k, v)| (k.to_owned(), Json::String(v.to_owned())))
            .collect(),
    )
}
