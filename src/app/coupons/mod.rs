//! Coupon list/search and detail, public. How they differ from the original service (one row
//! per coupon, usable search, one status rule) is in the OpenAPI descriptions of the two operations.
//!
//! Search at scale: [`query`] holds the index-driven SQL and the bounded count, [`cache`]
//! the Redis page cache with its invalidation.

pub mod cache;
pub mod query;

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::HeaderValue;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::NaiveDateTime;
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::coupons::cache::Lookup;
use crate::app::coupons::query::SearchQuery;
use crate::app::error::{ApiError, Result};
use crate::app::extract::QueryParams;
use crate::app::openapi::types as doc;
use crate::app::page::Page;
use crate::app::state::AppState;
use crate::domain::{CouponStatus, coupon_status};
use crate::envelope::{Envelope, ok};
use crate::envelope::{ErrorBody, FieldError};

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/coupons", get(list_coupons))
        .route("/api/v1/coupons/{id}", get(get_coupon))
}

/// A coupon in the list.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CouponSummary {
    pub id: i64,
    pub brand: String,
    pub title: String,
    pub summary: Option<String>,
    pub total_quantity: i32,
    pub issued_quantity: i32,
    #[serde(serialize_with = "crate::domain::time::serialize")]
    #[schema(value_type = String, example = "2026-01-26T07:01:56")]
    pub start_at: NaiveDateTime,
    #[serde(serialize_with = "crate::domain::time::serialize")]
    #[schema(value_type = String, example = "2026-02-26T07:01:56")]
    pub end_at: NaiveDateTime,
    pub status: CouponStatus,
}

/// A coupon's detail page.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CouponDetail {
    pub id: i64,
    pub brand: String,
    pub title: String,
    pub description: Option<String>,
    pub total_quantity: i32,
    pub issued_quantity: i32,
    #[serde(serialize_with = "crate::domain::time::serialize")]
    #[schema(value_type = String, example = "2026-01-26T07:00:00")]
    pub start_at: NaiveDateTime,
    #[serde(serialize_with = "crate::domain::time::serialize")]
    #[schema(value_type = String, example = "2026-02-25T07:00:00")]
    pub end_at: NaiveDateTime,
    pub status: CouponStatus,
}

#[derive(Debug, sqlx::FromRow)]
struct CouponRow {
    id: i64,
    brand: String,
    title: String,
    description: Option<String>,
    total_quantity: i32,
    issued_quantity: i32,
    start_at: NaiveDateTime,
    end_at: NaiveDateTime,
    use_status: String,
}

impl CouponRow {
    fn status(&self, now: NaiveDateTime) -> CouponStatus {
        coupon_status(
            &self.use_status,
            self.start_at,
            self.end_at,
            self.total_quantity,
            self.issued_quantity,
            now,
        )
    }
}

// GET /api/v1/coupons
#[utoipa::path(get, path = "/api/v1/coupons", tag = "coupons",
    description = "Lists coupons that are not disabled, newest first, optionally filtered by search words and a status filter. A token, valid or not, is ignored. \
        Compatibility: one row per coupon (the original repeated a coupon once per matching keyword, and counted those rows in `totalElements`), \
        coupons without keywords are listed when no search is given, and the search is trimmed and case-insensitive for Latin letters (the original matched \
        the untrimmed text case-sensitively as one prefix). Each item's `status` follows the one status rule (see the document's description).",
    params(("search" = Option<doc::SearchText>, Query), ("filterType" = Option<doc::FilterType>, Query),
        ("page" = Option<doc::PageParam>, Query, description = "0-based page number; default 0, a negative one is 0"),
        ("size" = Option<doc::PageParam>, Query, description = "Page size; default 10, below 1 is 10, above 2000 is 2000"),
        ("sort" = Option<String>, Query, description = "Accepted and ignored (only echoed in the page's `sort` objects)")),
    responses((status = 200, body = Envelope<Page<CouponSummary>>, description = "Newest first. `last` is exact; `totalElements` is exact up to search.count_limit (1,000 by default) matches, past it a floor that is still beyond the requested page. With search.cache = redis a page may be served from Redis: creating or selling out a coupon invalidates at once, other changes show within search.cache_ttl (10 s)"),
        (status = 400, body = ErrorBody, description = "C001")))]
#[tracing::instrument(level = "debug", skip_all)]
async fn list_coupons(State(state): State<AppState>, params: QueryParams) -> Result<Response> {
    let q = SearchQuery::parse(&params)?;
    let cached = match state.experiment.search_cache() {
        Some(cache) => {
            let key = cache::key(&q);
            let lookup = cache.get(&key).await;
            state.metrics.search_cache(lookup.label());
            match lookup {
                Lookup::Hit(body) | Lookup::Shared(body) => return Ok(json_response(body)),
                Lookup::Miss(refill) => Some((cache, key, refill)),
                Lookup::Unavailable => None,
            }
        }
        None => None,
    };
    let now = state.clock.now();
    let found = query::run(&state.db, &q, now, state.search.count_limit, |s, d| {
        state.metrics.search_statement(s.as_str(), d.as_secs_f64());
    })
    .await?;
    let content = found
        .rows
        .into_iter()
        .map(|r| CouponSummary {
            status: coupon_status(
                &r.use_status,
                r.start_at,
                r.end_at,
                r.total_quantity,
                r.issued_quantity,
                now,
            ),
            id: r.id,
            brand: r.brand,
            title: r.title,
            summary: r.summary,
            total_quantity: r.total_quantity,
            issued_quantity: r.issued_quantity,
            start_at: r.start_at,
            end_at: r.end_at,
        })
        .collect();
    let page = ok(Page::new(content, q.page, found.total)).0;
    let body = Bytes::from(serde_json::to_vec(&page).map_err(|e| ApiError::Internal(e.into()))?);
    if let Some((cache, key, refill)) = cached {
        // Unknown words (the scenario's one-off GHOST_ terms) cost one index probe: storing
        // their pages would only fill Redis with keys nobody asks for again.
        cache.put(&key, refill, &body, !found.unknown_word).await;
    }
    Ok(json_response(body))
}

/// Makes cached search pages stale after a change that moves coupons in or out of results.
pub async fn invalidate_search(state: &AppState, cause: &'static str) {
    if let Some(cache) = state.experiment.search_cache() {
        let told = cache.invalidate(cause).await;
        state
            .metrics
            .search_invalidation(if told { cause } else { "failed" });
    }
}

/// A JSON body as `Json` would send it.
fn json_response(body: Bytes) -> Response {
    (
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body,
    )
        .into_response()
}

/// Parses a path id; anything but a 64-bit integer is 400 C002.
pub fn parse_id(path: std::result::Result<Path<String>, PathRejection>) -> Result<i64> {
    let raw = path.map(|Path(p)| p).unwrap_or_default();
    raw.parse::<i64>().map_err(|_| {
        ApiError::TypeMismatch(vec![FieldError::new(
            "id",
            raw.clone(),
            "must be a 64-bit integer",
        )])
    })
}

// GET /api/v1/coupons/{id}
#[utoipa::path(get, path = "/api/v1/coupons/{id}", tag = "coupons",
    params(("id" = i64, Path, description = "Decimal 64-bit integer")),
    description = "Returns one coupon that is not disabled. A token, valid or not, is ignored. \
        Compatibility: `status` follows the same rule as the list (the original's detail ranked READY before EXPIRED and EXHAUSTED, its list did not). \
        The detail has `description` and no `summary`, as in the original.",
    responses((status = 200, body = Envelope<CouponDetail>), (status = 400, body = ErrorBody, description = "C002 id not a 64-bit integer"),
        (status = 404, body = ErrorBody, description = "CP01 no such coupon, or disabled; C007 when the id is empty (no such path)")))]
#[tracing::instrument(level = "debug", skip_all)]
async fn get_coupon(
    State(state): State<AppState>,
    path: std::result::Result<Path<String>, PathRejection>,
) -> Result<Json<Envelope<CouponDetail>>> {
    let id = parse_id(path)?;
    let row: CouponRow = sqlx::query_as(
        "select id, brand, title, description, total_quantity, issued_quantity, start_at, end_at, use_status
         from tb_coupon where id = $1 and use_status <> 'DISABLED'",
    )
    .bind(id)
    .fetch_optional(&state.db)
    .await?
    .ok_or(ApiError::CouponNotFound)?;
    let now = state.clock.now();
    Ok(ok(CouponDetail {
        status: row.status(now),
        id: row.id,
        brand: row.brand,
        title: row.title,
        description: row.description,
        total_quantity: row.total_quantity,
        issued_quantity: row.issued_quantity,
        start_at: row.start_at,
        end_at: row.end_at,
    }))
}
