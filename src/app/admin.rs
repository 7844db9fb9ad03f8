//! Coupon creation for administrators (ADMIN role; the original left it open).

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header::LOCATION};
use axum::routing::post;
use axum::{Json, Router};
use chrono::NaiveDateTime;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::app::auth::AdminUser;
use crate::app::error::Result;
use crate::app::extract::{ApiJson, Validate};
use crate::app::state::AppState;
use crate::app::validate::Rules;
use crate::domain::extract_keywords;
use crate::envelope::{Envelope, ok};
use crate::envelope::{ErrorBody, FieldError};

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/admin/coupons", post(create_coupon))
}

/// New coupon body; dates are `yyyy-MM-ddTHH:mm:ss` in the service's zone.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateCouponRequest {
    #[serde(default, deserialize_with = "crate::app::lenient::opt_string")]
    #[schema(value_type = crate::app::openapi::types::Brand, required = true)]
    pub brand: Option<String>,
    #[serde(default, deserialize_with = "crate::app::lenient::opt_string")]
    #[schema(value_type = crate::app::openapi::types::Title, required = true)]
    pub title: Option<String>,
    #[serde(default, deserialize_with = "crate::app::lenient::opt_string")]
    #[schema(value_type = crate::app::openapi::types::Summary, required = true)]
    pub summary: Option<String>,
    #[serde(default, deserialize_with = "crate::app::lenient::opt_string")]
    #[schema(value_type = crate::app::openapi::types::NotBlank, required = true)]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "crate::app::lenient::opt_i64")]
    #[schema(value_type = crate::app::openapi::types::Quantity, required = true)]
    pub total_quantity: Option<i64>,
    #[serde(default, deserialize_with = "crate::domain::time::deserialize_opt")]
    #[schema(value_type = crate::app::openapi::types::WireDateTime, required = true)]
    pub start_at: Option<NaiveDateTime>,
    #[serde(default, deserialize_with = "crate::domain::time::deserialize_opt")]
    #[schema(value_type = crate::app::openapi::types::WireDateTime, required = true)]
    pub end_at: Option<NaiveDateTime>,
}

impl Validate for CreateCouponRequest {
    fn validate(&self) -> Vec<FieldError> {
        let mut rules = Rules::new();
        let brand = rules.not_blank("brand", &self.brand, "브랜드명은 필수입니다.");
        rules.max_chars("brand", brand, 30);
        let title = rules.not_blank("title", &self.title, "제목은 필수입니다.");
        rules.max_chars("title", title, 100);
        let summary = rules.not_blank("summary", &self.summary, "요약 설명은 필수입니다.");
        rules.max_chars("summary", summary, 200);
        rules.not_blank("description", &self.description, "상세 설명은 필수입니다.");
        match self.total_quantity {
            Some(q) if (1..=i64::from(i32::MAX)).contains(&q) => {}
            Some(q) if q > 0 => rules.fail(
                "totalQuantity",
                &q.to_string(),
                "총 발행 수량이 너무 큽니다.",
            ),
            other => rules.fail(
                "totalQuantity",
                &other.unwrap_or(0).to_string(),
                "총 발행 수량은 1개 이상이어야 합니다.",
            ),
        }
        match (self.start_at, self.end_at) {
            (Some(start), Some(end)) if start >= end => {
                rules.fail(
                    "endAt",
                    &end.format(crate::domain::time::WIRE_FORMAT).to_string(),
                    "종료일은 시작일보다 이후여야 합니다.",
                );
            }
            (start, end) => {
                if start.is_none() {
                    rules.fail("startAt", "", "시작일은 필수입니다.");
                }
                if end.is_none() {
                    rules.fail("endAt", "", "종료일은 필수입니다.");
                }
            }
        }
        rules.finish()
    }
}

// POST /api/v1/admin/coupons
#[utoipa::path(post, path = "/api/v1/admin/coupons", tag = "admin", request_body = CreateCouponRequest,
    security(("bearer" = [])),
    description = "Creates a coupon with its search keywords (taken from brand and title). Needs an ADMIN user, checked in the database on every call. \
        Compatibility: the original let anyone create coupons; it accepted a start at or after the end (now 400 C001 on endAt) and \
        failed with 500 on text longer than its columns (now 400 C001 naming the field). The `Location` header names the new coupon, as in the original, \
        though nothing serves GET on it.",
    responses((status = 201, body = Envelope<i64>, description = "data is the new coupon id; Location header set"),
        (status = 400, body = ErrorBody, description = "C001 invalid (including start >= end), C002 wrong type or date format"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "C004 not an admin")))]
#[tracing::instrument(level = "debug", skip_all, fields(admin_id = admin.id))]
async fn create_coupon(
    State(state): State<AppState>,
    admin: AdminUser,
    ApiJson(req): ApiJson<CreateCouponRequest>,
) -> Result<(StatusCode, HeaderMap, Json<Envelope<i64>>)> {
    let brand = req.brand.unwrap_or_default();
    let title = req.title.unwrap_or_default();
    let keywords = extract_keywords(&brand, &title);
    let now = state.clock.now();
    let mut tx = state.db.begin().await?;
    let id: i64 = sqlx::query_scalar(
        "insert into tb_coupon (created_at, updated_at, brand, title, summary, description, total_quantity,
             issued_quantity, limit_per_user, is_sold_out, start_at, end_at, use_status)
         values ($1, $1, $2, $3, $4, $5, $6, 0, 1, false, $7, $8, 'AVAILABLE') returning id",
    )
    .bind(now)
    .bind(&brand)
    .bind(&title)
    .bind(&req.summary)
    .bind(&req.description)
    .bind(i32::try_from(req.total_quantity.unwrap_or_default()).unwrap_or(i32::MAX))
    .bind(req.start_at)
    .bind(req.end_at)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("insert into tb_coupon_keyword (created_at, coupon_id, keyword) select $1, $2, unnest($3::text[])")
        .bind(now)
        .bind(id)
        .bind(&keywords)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    tracing::info!(coupon_id = id, "coupon created");
    crate::app::coupons::invalidate_search(&state, "created").await;
    let mut headers = HeaderMap::new();
    if let Ok(location) = HeaderValue::from_str(&format!("/api/v1/admin/coupons/{id}")) {
        headers.insert(LOCATION, location);
    }
    Ok((StatusCode::CREATED, headers, ok(id)))
}
