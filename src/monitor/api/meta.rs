//! Series and label discovery, metadata, build information, targets and exemplars.

use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::json;

use super::query::labels_json;
use super::{ApiError, Params, success};
use crate::monitor::Monitor;
use crate::monitor::promql::selector_matchers;
use crate::monitor::series::Matcher;

/// The Prometheus API level these endpoints answer like, reported to clients such as
/// Grafana, which pick features by it.
pub const PROMETHEUS_API_VERSION: &str = "2.53.0";

/// The `match[]` selectors of a request, each as matchers.
fn match_sets(params: &Params) -> Result<Vec<Vec<Matcher>>, ApiError> {
    params
        .all("match[]")
        .into_iter()
        .map(|text| {
            selector_matchers(text)
                .map_err(|e| ApiError::bad_data(format!("invalid parameter \"match[]\": {e}")))
        })
        .collect()
}

/// `start` and `end`, the whole time line when absent.
fn time_range(params: &Params) -> Result<(i64, i64), ApiError> {
    Ok((
        params.time("start", i64::MIN)?,
        params.time("end", i64::MAX)?,
    ))
}

/// `GET|POST /api/v1/series?match[]=`.
pub async fn series(State(monitor): State<Monitor>, params: Params) -> Result<Response, ApiError> {
    let sets = match_sets(&params)?;
    if sets.is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let (start, end) = time_range(&params)?;
    let found = monitor.db().series(&sets, start, end);
    Ok(success(found.iter().map(labels_json).collect::<Vec<_>>()))
}

/// `GET|POST /api/v1/labels`.
pub async fn labels(State(monitor): State<Monitor>, params: Params) -> Result<Response, ApiError> {
    let sets = match_sets(&params)?;
    let (start, end) = time_range(&params)?;
    Ok(success(monitor.db().label_names(&sets, start, end)))
}

/// `GET /api/v1/label/<name>/values`.
pub async fn label_values(
    State(monitor): State<Monitor>,
    Path(name): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    if !valid_label_name(&name) {
        return Err(ApiError::bad_data(format!(
            "invalid label name: \"{name}\""
        )));
    }
    let sets = match_sets(&params)?;
    let (start, end) = time_range(&params)?;
    Ok(success(monitor.db().label_values(&name, &sets, start, end)))
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`.
fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `GET /api/v1/metadata?metric=&limit=`.
pub async fn metadata(
    State(monitor): State<Monitor>,
    params: Params,
) -> Result<Response, ApiError> {
    let limit = match params.get("limit") {
        None => None,
        Some(text) => match text.parse::<i64>() {
            Ok(n) if n > 0 => Some(n as usize),
            Ok(_) => None,
            Err(_) => {
                return Err(ApiError::bad_data(
                    "invalid parameter \"limit\": not a number",
                ));
            }
        },
    };
    Ok(success(monitor.metadata_json(params.get("metric"), limit)))
}

/// `GET /api/v1/status/buildinfo`.
pub async fn buildinfo() -> Response {
    success(json!({
        "version": PROMETHEUS_API_VERSION,
        "revision": env!("CARGO_PKG_VERSION"),
        "branch": "fastpick",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
        "application": "fastpick monitor",
    }))
}

/// A time as Prometheus's target API writes it (RFC 3339); never is the zero time, as there.
fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .filter(|_| ms > 0)
        .map_or_else(
            || "0001-01-01T00:00:00Z".to_owned(),
            |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        )
}

/// `GET /api/v1/targets`: the active targets and their last scrape.
pub async fn targets(State(monitor): State<Monitor>) -> Response {
    let active: Vec<_> = monitor
        .targets()
        .into_iter()
        .map(|(target, health)| {
            json!({
                "labels": {"job": target.job, "instance": target.instance},
                "scrapePool": target.job,
                "scrapeUrl": target.endpoint(),
                "health": if health.last_scrape_ms == 0 { "unknown" } else if health.up { "up" } else { "down" },
                "lastError": health.last_error.unwrap_or_default(),
                "lastScrape": rfc3339(health.last_scrape_ms),
                "lastScrapeDuration": health.last_duration.as_secs_f64(),
                "scrapeInterval": format!("{}s", target.interval.as_secs_f64()),
                "scrapeTimeout": format!("{}s", target.timeout.as_secs_f64()),
            })
        })
        .collect();
    success(json!({"activeTargets": active, "droppedTargets": []}))
}

/// `GET|POST /api/v1/query_exemplars`: exemplars are not kept, so always none.
pub async fn exemplars(params: Params) -> Result<Response, ApiError> {
    params.required("query")?;
    Ok(success(Vec::<()>::new()))
}
