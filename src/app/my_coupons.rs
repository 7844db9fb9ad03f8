//! The logged-in user's issued coupons, newest first, with a status filter and a title search.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::NaiveDateTime;
use serde::Serialize;
use sqlx::{Postgres, QueryBuilder};
use utoipa::ToSchema;

use crate::app::auth::AuthUser;
use crate::app::error::{ApiError, Result};
use crate::app::extract::{QueryParams, enum_param};
use crate::app::openapi::types as doc;
use crate::app::page::{Page, PageRequest};
use crate::app::state::AppState;
use crate::app::validate::NUL_REASON;
use crate::domain::keywords::escape_like;
use crate::envelope::{Envelope, ok};
use crate::envelope::{ErrorBody, FieldError};

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/my/coupons", get(list_my_coupons))
}

/// The `status` filter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum StatusFilter {
    #[default]
    All,
    Available,
    Used,
    Expired,
}

impl StatusFilter {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "ALL" => Some(StatusFilter::All),
            "AVAILABLE" => Some(StatusFilter::Available),
            "USED" => Some(StatusFilter::Used),
            "EXPIRED" => Some(StatusFilter::Expired),
            _ => None,
        }
    }
}

/// An issued coupon's state for its holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum MyCouponStatus {
    Available,
    Used,
    Expired,
}

/// One issued coupon.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MyCoupon {
    /// The issued-coupon id.
    pub id: i64,
    pub coupon_id: i64,
    pub brand: String,
    pub title: String,
    pub summary: Option<String>,
    pub total_quantity: i32,
    pub issued_quantity: i32,
    /// The coupon's end of period.
    #[serde(serialize_with = "crate::domain::time::serialize")]
    #[schema(value_type = String, example = "2026-02-25T07:00:00")]
    pub expire_at: NaiveDateTime,
    pub status: MyCouponStatus,
}

#[derive(Debug, sqlx::FromRow)]
struct MyCouponRow {
    id: i64,
    coupon_id: i64,
    brand: String,
    title: String,
    summary: Option<String>,
    total_quantity: i32,
    issued_quantity: i32,
    end_at: NaiveDateTime,
    used_at: Option<NaiveDateTime>,
}

fn push_conditions(
    qb: &mut QueryBuilder<Postgres>,
    user_id: i64,
    filter: StatusFilter,
    search: &str,
    now: NaiveDateTime,
) {
    qb.push(" from tb_issued_coupon i join tb_coupon c on c.id = i.coupon_id where i.user_id = ");
    qb.push_bind(user_id);
    match filter {
        StatusFilter::All => {}
        StatusFilter::Available => {
            qb.push(" and i.used_at is null and c.end_at > ")
                .push_bind(now);
        }
        StatusFilter::Used => {
            qb.push(" and i.used_at is not null");
        }
        StatusFilter::Expired => {
            qb.push(" and i.used_at is null and c.end_at <= ")
                .push_bind(now);
        }
    }
    if !search.is_empty() {
        qb.push(" and c.title ilike ")
            .push_bind(format!("%{}%", escape_like(search)));
        qb.push(" escape '\\'");
    }
}

// GET /api/v1/my/coupons
#[utoipa::path(get, path = "/api/v1/my/coupons", tag = "issues", security(("bearer" = [])),
    description = "Pages through the coupons issued to the token's user, newest first, including coupons disabled since. \
        Compatibility: EXPIRED lists coupons that are not used and have ended (the original also listed used ones, and missed those ending exactly now); \
        the title search is trimmed and case-insensitive (the original's was case-sensitive).",
    params(("status" = Option<doc::MyCouponFilter>, Query),
        ("search" = Option<doc::AnyText>, Query, description = "Part of the title, case-insensitive, trimmed; no length limit"),
        ("page" = Option<doc::PageParam>, Query, description = "0-based page number; default 0, a negative one is 0"),
        ("size" = Option<doc::PageParam>, Query, description = "Page size; default 10, below 1 is 10, above 2000 is 2000"),
        ("sort" = Option<String>, Query, description = "Accepted and ignored (only echoed in the page's `sort` objects)")),
    responses((status = 200, body = Envelope<Page<MyCoupon>>), (status = 400, body = ErrorBody, description = "C001 bad status"),
        (status = 401, body = ErrorBody, description = "C003, A001, A002")))]
#[tracing::instrument(level = "debug", skip_all, fields(user_id = user.id))]
async fn list_my_coupons(
    State(state): State<AppState>,
    user: AuthUser,
    params: QueryParams,
) -> Result<Json<Envelope<Page<MyCoupon>>>> {
    let filter = enum_param(
        &params,
        "status",
        StatusFilter::parse,
        "ALL, AVAILABLE, USED, EXPIRED",
    )
    .map_err(|e| ApiError::Invalid(vec![e]))?;
    let search = params.get("search").unwrap_or_default();
    if search.contains('\0') {
        return Err(ApiError::Invalid(vec![FieldError::new(
            "search", "", NUL_REASON,
        )]));
    }
    let search = search.trim();
    let page = PageRequest::from_query(&params);
    let now = state.clock.now();
    let mut count_qb = QueryBuilder::new("select count(*)");
    push_conditions(&mut count_qb, user.id, filter, search, now);
    let count: i64 = count_qb.build_query_scalar().fetch_one(&state.db).await?;
    if page.offset() >= count {
        return Ok(ok(Page::new(Vec::new(), page, count)));
    }
    let mut qb = QueryBuilder::new(
        "select i.id, i.coupon_id, c.brand, c.title, c.summary, c.total_quantity, c.issued_quantity, c.end_at, i.used_at",
    );
    push_conditions(&mut qb, user.id, filter, search, now);
    qb.push(" order by i.created_at desc, i.id desc limit ")
        .push_bind(page.size);
    qb.push(" offset ").push_bind(page.offset());
    let rows: Vec<MyCouponRow> = qb.build_query_as().fetch_all(&state.db).await?;
    let content = rows
        .into_iter()
        .map(|r| MyCoupon {
            status: match (r.used_at, now >= r.end_at) {
                (Some(_), _) => MyCouponStatus::Used,
                (None, true) => MyCouponStatus::Expired,
                (None, false) => MyCouponStatus::Available,
            },
            id: r.id,
            coupon_id: r.coupon_id,
            brand: r.brand,
            title: r.title,
            summary: r.summary,
            total_quantity: r.total_quantity,
            issued_quantity: r.issued_quantity,
            expire_at: r.end_at,
        })
        .collect();
    Ok(ok(Page::new(content, page, count)))
}
