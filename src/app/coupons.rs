//! Coupon list/search and detail, public (API.md 2.3, 2.4, changes 1–3).

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::NaiveDateTime;
use serde::Serialize;
use sqlx::{Postgres, QueryBuilder};
use utoipa::ToSchema;

use crate::app::error::{ApiError, ErrorBody, FieldError, Result};
use crate::app::extract::{QueryParams, enum_param};
use crate::app::page::{Page, PageRequest};
use crate::app::response::{Envelope, ok};
use crate::app::state::AppState;
use crate::app::validate::NUL_REASON;
use crate::domain::{CouponStatus, coupon_status, search_words};

/// Longest search input accepted, in characters after trimming.
pub const MAX_SEARCH_CHARS: usize = 50;

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/coupons", get(list_coupons))
        .route("/api/v1/coupons/{id}", get(get_coupon))
}

/// The list's `filterType`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FilterType {
    #[default]
    All,
    Ready,
    Issuing,
    Closed,
}

impl FilterType {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "ALL" => Some(FilterType::All),
            "READY" => Some(FilterType::Ready),
            "ISSUING" => Some(FilterType::Issuing),
            "CLOSED" => Some(FilterType::Closed),
            _ => None,
        }
    }
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
    summary: Option<String>,
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

/// The parsed list query.
struct ListQuery {
    words: Vec<String>,
    filter: FilterType,
    page: PageRequest,
}

fn parse_list_query(params: &QueryParams) -> Result<ListQuery> {
    let mut errors = Vec::new();
    let search = params.get("search").unwrap_or_default();
    if search.trim().chars().count() > MAX_SEARCH_CHARS {
        errors.push(FieldError::new(
            "search",
            search.clone(),
            "검색어는 50자 이내여야 합니다.",
        ));
    } else if search.contains('\0') {
        errors.push(FieldError::new("search", "", NUL_REASON));
    }
    let filter = enum_param(
        params,
        "filterType",
        FilterType::parse,
        "ALL, READY, ISSUING, CLOSED",
    )
    .unwrap_or_else(|e| {
        errors.push(e);
        FilterType::All
    });
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    Ok(ListQuery {
        words: search_words(&search),
        filter,
        page: PageRequest::from_query(params),
    })
}

/// Adds the shared conditions of the count and content queries.
fn push_conditions(qb: &mut QueryBuilder<Postgres>, q: &ListQuery, now: NaiveDateTime) {
    qb.push(" from tb_coupon c where c.use_status = 'AVAILABLE'");
    // The filters follow the one status rule (change 3): READY before the period,
    // ISSUING inside it with stock, CLOSED = EXPIRED or EXHAUSTED.
    match q.filter {
        FilterType::All => {}
        FilterType::Ready => {
            qb.push(" and c.start_at > ").push_bind(now);
        }
        FilterType::Issuing => {
            qb.push(" and c.start_at <= ").push_bind(now);
            qb.push(" and c.end_at > ").push_bind(now);
            qb.push(" and c.issued_quantity < c.total_quantity");
        }
        FilterType::Closed => {
            qb.push(" and c.start_at <= ").push_bind(now);
            qb.push(" and (c.end_at <= ").push_bind(now);
            qb.push(" or c.issued_quantity >= c.total_quantity)");
        }
    }
    for word in &q.words {
        // Byte-wise range on the text_pattern_ops index: a literal prefix, wildcards included.
        let upper = format!("{word}{}", char::MAX);
        qb.push(" and c.id in (select k.coupon_id from tb_coupon_keyword k where k.keyword ~>=~ ");
        qb.push_bind(word.clone())
            .push(" and k.keyword ~<~ ")
            .push_bind(upper)
            .push(")");
    }
}

// GET /api/v1/coupons
#[utoipa::path(get, path = "/api/v1/coupons", tag = "coupons",
    params(("search" = Option<String>, Query, description = "Words (max 50 chars); each must prefix-match a keyword, case-insensitive"),
        ("filterType" = Option<String>, Query, description = "ALL | READY | ISSUING | CLOSED"),
        ("page" = Option<i32>, Query), ("size" = Option<i32>, Query), ("sort" = Option<String>, Query, description = "Accepted and ignored")),
    responses((status = 200, body = Envelope<Page<CouponSummary>>), (status = 400, body = ErrorBody, description = "C001")))]
#[tracing::instrument(level = "debug", skip_all)]
async fn list_coupons(
    State(state): State<AppState>,
    params: QueryParams,
) -> Result<Json<Envelope<Page<CouponSummary>>>> {
    let q = parse_list_query(&params)?;
    let now = state.clock.now();
    let mut count_qb = QueryBuilder::new("select count(*)");
    push_conditions(&mut count_qb, &q, now);
    let count: i64 = count_qb.build_query_scalar().fetch_one(&state.db).await?;
    if count == 0 || q.page.offset() >= count {
        return Ok(ok(Page::new(Vec::new(), q.page, count)));
    }
    let mut qb = QueryBuilder::new(
        "select c.id, c.brand, c.title, c.summary, null::text as description, c.total_quantity, \
         c.issued_quantity, c.start_at, c.end_at, c.use_status",
    );
    push_conditions(&mut qb, &q, now);
    qb.push(" order by c.id desc limit ").push_bind(q.page.size);
    qb.push(" offset ").push_bind(q.page.offset());
    let rows: Vec<CouponRow> = qb.build_query_as().fetch_all(&state.db).await?;
    let content = rows
        .into_iter()
        .map(|r| CouponSummary {
            status: r.status(now),
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
    Ok(ok(Page::new(content, q.page, count)))
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
#[utoipa::path(get, path = "/api/v1/coupons/{id}", tag = "coupons", params(("id" = i64, Path)),
    responses((status = 200, body = Envelope<CouponDetail>), (status = 400, body = ErrorBody, description = "C002 id not an integer"),
        (status = 404, body = ErrorBody, description = "CP01 no such coupon, or disabled")))]
#[tracing::instrument(level = "debug", skip_all)]
async fn get_coupon(
    State(state): State<AppState>,
    path: std::result::Result<Path<String>, PathRejection>,
) -> Result<Json<Envelope<CouponDetail>>> {
    let id = parse_id(path)?;
    let row: CouponRow = sqlx::query_as(
        "select id, brand, title, summary, description, total_quantity, issued_quantity, start_at, end_at, use_status
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
