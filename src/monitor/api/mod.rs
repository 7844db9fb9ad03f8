//! The Prometheus HTTP API subset that Grafana's Prometheus data source uses, with
//! Prometheus's JSON and error shapes (<https://prometheus.io/docs/prometheus/latest/querying/api/>):
//! `query`, `query_range`, `series`, `labels`, `label/<name>/values`, `metadata`,
//! `status/buildinfo`, `targets`, `query_exemplars` (always empty), plus `/-/ready`,
//! `/-/healthy` and `/federate`. Every endpoint takes GET, and POST with a form body where
//! Prometheus does.

mod federate;
mod meta;
mod params;
mod query;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

use crate::monitor::Monitor;

pub use params::Params;

/// The API's routes over the monitor's state.
pub fn router() -> Router<Monitor> {
    Router::new()
        .route("/api/v1/query", get(query::instant).post(query::instant))
        .route("/api/v1/query_range", get(query::range).post(query::range))
        .route("/api/v1/series", get(meta::series).post(meta::series))
        .route("/api/v1/labels", get(meta::labels).post(meta::labels))
        .route("/api/v1/label/{name}/values", get(meta::label_values))
        .route("/api/v1/metadata", get(meta::metadata))
        .route("/api/v1/status/buildinfo", get(meta::buildinfo))
        .route("/api/v1/targets", get(meta::targets))
        .route(
            "/api/v1/query_exemplars",
            get(meta::exemplars).post(meta::exemplars),
        )
        .route("/federate", get(federate::federate))
        .route("/-/ready", get(|| async { "FastPick monitor is Ready.\n" }))
        .route(
            "/-/healthy",
            get(|| async { "FastPick monitor is Healthy.\n" }),
        )
}

/// Prometheus's error types, each with its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    /// A parameter or the query is malformed: 400.
    BadData,
    /// The query could not be evaluated (limits included): 422.
    Execution,
    /// The query ran out of time: 503.
    Timeout,
    /// Something failed inside: 500.
    Internal,
    /// No such endpoint or resource: 404.
    NotFound,
}

impl ErrorType {
    fn parts(self) -> (StatusCode, &'static str) {
        match self {
            ErrorType::BadData => (StatusCode::BAD_REQUEST, "bad_data"),
            ErrorType::Execution => (StatusCode::UNPROCESSABLE_ENTITY, "execution"),
            ErrorType::Timeout => (StatusCode::SERVICE_UNAVAILABLE, "timeout"),
            ErrorType::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            ErrorType::NotFound => (StatusCode::NOT_FOUND, "not_found"),
        }
    }
}

/// An API error: `{"status":"error","errorType":...,"error":...}` with the type's status.
#[derive(Debug)]
pub struct ApiError {
    pub kind: ErrorType,
    pub message: String,
}

impl ApiError {
    /// A 400 `bad_data` error.
    pub fn bad_data(message: impl Into<String>) -> ApiError {
        ApiError {
            kind: ErrorType::BadData,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Body<'a> {
            status: &'static str,
            error_type: &'static str,
            error: &'a str,
        }
        let (status, error_type) = self.kind.parts();
        let body = Body {
            status: "error",
            error_type,
            error: &self.message,
        };
        (status, axum::Json(body)).into_response()
    }
}

/// A successful answer: `{"status":"success","data":...}`.
pub fn success<T: Serialize>(data: T) -> Response {
    #[derive(Serialize)]
    struct Body<T> {
        status: &'static str,
        data: T,
    }
    axum::Json(Body {
        status: "success",
        data,
    })
    .into_response()
}

/// Formats a sample value as Prometheus does (Go's shortest 'f' form, `+Inf`, `-Inf`, `NaN`).
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// A timestamp in ms as the JSON number of seconds Prometheus writes (`1435781451.781`).
pub fn seconds(t_ms: i64) -> serde_json::Value {
    let sign = if t_ms < 0 { "-" } else { "" };
    let (secs, millis) = (t_ms.unsigned_abs() / 1000, t_ms.unsigned_abs() % 1000);
    let text = if millis == 0 {
        format!("{sign}{secs}")
    } else {
        let fraction = format!("{millis:03}");
        format!("{sign}{secs}.{}", fraction.trim_end_matches('0'))
    };
    text.parse::<serde_json::Number>()
        .map(serde_json::Value::Number)
        .unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_times_are_written_as_prometheus_writes_them() {
        assert_eq!(format_value(1.0), "1");
        assert_eq!(format_value(0.1), "0.1");
        assert_eq!(format_value(1e21), "1000000000000000000000");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(seconds(1_435_781_451_781).to_string(), "1435781451.781");
        assert_eq!(seconds(1_435_781_451_000).to_string(), "1435781451");
        assert_eq!(seconds(1_435_781_451_500).to_string(), "1435781451.5");
        assert_eq!(seconds(-1500).to_string(), "-1.5");
    }
}
