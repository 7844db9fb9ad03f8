//! Spring-style actuator endpoints: discovery, health (PostgreSQL and Redis really checked,
//! change 10), info, metrics by name (Actuator's JSON) and Prometheus metrics (text 0.0.4 or
//! OpenMetrics, as the scraper's `Accept` prefers).

use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use fred::prelude::ClientLike;
use serde_json::{Value, json};

use crate::app::error::ApiError;
use crate::app::state::AppState;
use crate::envelope::FieldError;
use crate::metrics::actuator as view;
use crate::metrics::exposition::Format;
use crate::metrics::parse::Family;

/// How long one health probe may take before it counts as down.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/actuator", get(links))
        .route("/actuator/health", get(health))
        .route("/actuator/health/{component}", get(health_component))
        .route("/actuator/info", get(info))
        .route("/actuator/metrics", get(metric_names))
        .route("/actuator/metrics/{name}", get(metric))
        .route("/actuator/prometheus", get(prometheus))
}

// GET /actuator
async fn links(headers: HeaderMap) -> Json<Value> {
    let base = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .map_or_else(String::new, |h| format!("http://{h}"));
    let link = |path: &str, templated: bool| json!({"href": format!("{base}/actuator{path}"), "templated": templated});
    Json(json!({"_links": {
        "self": link("", false),
        "health": link("/health", false),
        "health-path": link("/health/{*path}", true),
        "info": link("/info", false),
        "metrics": link("/metrics", false),
        "metrics-requiredMetricName": link("/metrics/{requiredMetricName}", true),
        "prometheus": link("/prometheus", false),
    }}))
}

/// Probes one component: `(up, details)`.
async fn probe(state: &AppState, component: &str) -> Option<(bool, Value)> {
    match component {
        "db" => Some(probe_db(state).await),
        "redis" => Some(probe_redis(state).await),
        "ping" => Some((true, json!({}))),
        _ => None,
    }
}

async fn probe_db(state: &AppState) -> (bool, Value) {
    let check = sqlx::query_scalar::<_, String>("select version()").fetch_one(&state.db);
    match tokio::time::timeout(PROBE_TIMEOUT, check).await {
        Ok(Ok(version)) => (true, json!({"database": "PostgreSQL", "version": version})),
        Ok(Err(e)) => (
            false,
            json!({"database": "PostgreSQL", "error": e.to_string()}),
        ),
        Err(_) => (
            false,
            json!({"database": "PostgreSQL", "error": "timed out"}),
        ),
    }
}

async fn probe_redis(state: &AppState) -> (bool, Value) {
    let check = state.redis.next().ping::<String>(None);
    match tokio::time::timeout(PROBE_TIMEOUT, check).await {
        Ok(Ok(_)) => {
            let version = state.redis.next().server_version().map(|v| v.to_string());
            (true, json!({"version": version}))
        }
        Ok(Err(e)) => (false, json!({"error": e.to_string()})),
        Err(_) => (false, json!({"error": "timed out"})),
    }
}

fn component_json(up: bool, details: Value) -> Value {
    let status = if up { "UP" } else { "DOWN" };
    if details.as_object().is_some_and(|d| d.is_empty()) {
        json!({"status": status})
    } else {
        json!({"status": status, "details": details})
    }
}

fn health_response(up: bool, body: Value) -> Response {
    let status = if up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

// GET /actuator/health
async fn health(State(state): State<AppState>) -> Response {
    let ((db_up, db), (redis_up, redis)) = tokio::join!(probe_db(&state), probe_redis(&state));
    let up = db_up && redis_up;
    let body = json!({
        "status": if up { "UP" } else { "DOWN" },
        "components": {
            "db": component_json(db_up, db),
            "redis": component_json(redis_up, redis),
            "ping": {"status": "UP"},
        }
    });
    health_response(up, body)
}

// GET /actuator/health/{component}
async fn health_component(
    State(state): State<AppState>,
    Path(component): Path<String>,
) -> Response {
    match probe(&state, &component).await {
        Some((up, details)) => health_response(up, component_json(up, details)),
        None => ApiError::RouteNotFound.into_response(),
    }
}

// GET /actuator/info
async fn info() -> Json<Value> {
    Json(json!({"app": {"name": "fastpick", "version": env!("CARGO_PKG_VERSION")}}))
}

/// Reads the app's metric families, or the error to answer with.
fn families(state: &AppState) -> Result<Vec<Family>, ApiError> {
    state
        .metrics
        .families(&state.db, &state.redis)
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e)))
}

/// Reads `tag=KEY:VALUE` pairs from a query string, as Actuator's `tag` parameter.
fn tag_filter(query_opt: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    let query = query_opt.unwrap_or("");
    let mut tags = Vec::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        if key != "tag" {
            continue;
        }
        let Some((tag, tag_value)) = value.split_once(':') else {
            let reason = "tag는 KEY:VALUE 형식이어야 합니다.";
            return Err(ApiError::Invalid(vec![FieldError::new(
                "tag", value, reason,
            )]));
        };
        tags.push((tag.to_owned(), tag_value.to_owned()));
    }
    Ok(tags)
}

// GET /actuator/metrics
async fn metric_names(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let names = view::names(&families(&state)?);
    Ok(Json(json!({ "names": names })))
}

// GET /actuator/metrics/{name}
async fn metric(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query_opt): RawQuery,
) -> Result<Json<view::MetricView>, ApiError> {
    let tags = tag_filter(query_opt.as_deref())?;
    let families = families(&state)?;
    view::metric(&families, &name, &tags)
        .map(Json)
        .ok_or(ApiError::RouteNotFound)
}

// GET /actuator/prometheus
async fn prometheus(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let accept_opt = headers.get(ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::negotiate(accept_opt);
    match state.metrics.render(&state.db, &state.redis, format) {
        Ok(text) => ([(CONTENT_TYPE, format.content_type())], text).into_response(),
        Err(e) => ApiError::Internal(anyhow::Error::new(e)).into_response(),
    }
}
