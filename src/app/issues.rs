//! Issuing a coupon to the logged-in user (API.md 2.5, change 8): one conditional UPDATE plus
//! the unique (user, coupon) constraint, in one transaction; exact under concurrency.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use chrono::NaiveDateTime;
use serde::Deserialize;
use sqlx::PgConnection;
use utoipa::ToSchema;

use crate::app::error::{ApiError, ErrorBody, FieldError, Result};
use crate::app::extract::{ApiJson, AuthUser, Validate};
use crate::app::response::{Envelope, ok};
use crate::app::state::AppState;
use crate::domain::status::USE_STATUS_DISABLED;

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/coupon-issues", post(issue_coupon))
}

/// Issue body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssueRequest {
    #[serde(default, deserialize_with = "crate::app::lenient::opt_i64")]
    #[schema(example = 19)]
    pub coupon_id: Option<i64>,
}

impl Validate for IssueRequest {
    fn validate(&self) -> Vec<FieldError> {
        match self.coupon_id {
            Some(_) => Vec::new(),
            None => vec![FieldError::new("couponId", "", "쿠폰 ID는 필수입니다.")],
        }
    }
}

// POST /api/v1/coupon-issues
#[utoipa::path(post, path = "/api/v1/coupon-issues", tag = "issues", request_body = IssueRequest,
    security(("bearer" = [])),
    responses((status = 200, body = Envelope<i64>, description = "data is the new issued-coupon id"),
        (status = 400, body = ErrorBody, description = "C001/C002 bad body; CP05 already issued, CP02 disabled, CP03 outside the period, CP04 sold out (checked in that order)"),
        (status = 401, body = ErrorBody, description = "C003 missing, A001 invalid, A002 expired token"),
        (status = 404, body = ErrorBody, description = "CP01 no such coupon"),
        (status = 503, body = ErrorBody, description = "C010 database unavailable")))]
#[tracing::instrument(skip_all, fields(user_id = user.id))]
async fn issue_coupon(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(req): ApiJson<IssueRequest>,
) -> Result<Json<Envelope<i64>>> {
    let coupon_id = req.coupon_id.unwrap_or_default();
    let now = state.clock.now();
    let mut tx = state.db.begin().await?;
    let taken = take_one(&mut tx, coupon_id, user.id, now).await?;
    if !taken {
        let err = refusal(&mut tx, coupon_id, user.id, now).await?;
        tx.rollback().await?;
        return Err(err);
    }
    let issued_id: Option<i64> = sqlx::query_scalar(
        "insert into tb_issued_coupon (created_at, user_id, coupon_id) values ($1, $2, $3)
         on conflict (user_id, coupon_id) do nothing returning id",
    )
    .bind(now)
    .bind(user.id)
    .bind(coupon_id)
    .fetch_optional(&mut *tx)
    .await?;
    // A concurrent request of the same user won the unique constraint: undo our increment.
    let Some(issued_id) = issued_id else {
        tx.rollback().await?;
        return Err(ApiError::AlreadyIssued);
    };
    tx.commit().await?;
    Ok(ok(issued_id))
}

/// Takes one unit of stock if every rule allows it; false when some rule refuses.
///
/// PostgreSQL re-checks the WHERE clause on the newest row version after waiting for the
/// row lock, so concurrent requests never take more than the stock.
async fn take_one(
    conn: &mut PgConnection,
    coupon_id: i64,
    user_id: i64,
    now: NaiveDateTime,
) -> Result<bool> {
    let updated = sqlx::query(
        "update tb_coupon
         set issued_quantity = issued_quantity + 1,
             is_sold_out = issued_quantity + 1 >= total_quantity,
             updated_at = $3
         where id = $1 and use_status = 'AVAILABLE' and start_at <= $3 and end_at > $3
           and issued_quantity < total_quantity
           and not exists (select 1 from tb_issued_coupon where user_id = $2 and coupon_id = $1)",
    )
    .bind(coupon_id)
    .bind(user_id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// Explains a refusal in the contract's order: CP01, CP05, CP02, CP03, CP04.
async fn refusal(
    conn: &mut PgConnection,
    coupon_id: i64,
    user_id: i64,
    now: NaiveDateTime,
) -> Result<ApiError> {
    let row: Option<(String, NaiveDateTime, NaiveDateTime, i32, i32, bool)> = sqlx::query_as(
        "select use_status, start_at, end_at, total_quantity, issued_quantity,
                exists (select 1 from tb_issued_coupon where user_id = $2 and coupon_id = $1)
         from tb_coupon where id = $1",
    )
    .bind(coupon_id)
    .bind(user_id)
    .fetch_optional(conn)
    .await?;
    let Some((use_status, start_at, end_at, total, issued, held)) = row else {
        return Ok(ApiError::CouponNotFound);
    };
    Ok(if held {
        ApiError::AlreadyIssued
    } else if use_status == USE_STATUS_DISABLED {
        ApiError::CouponDisabled
    } else if now < start_at || now >= end_at {
        ApiError::OutOfPeriod
    } else if issued >= total {
        ApiError::SoldOut
    } else {
        // Every rule passes now: stock was returned between the update and this read.
        ApiError::Internal(anyhow::anyhow!(
            "coupon {coupon_id} refused without a reason"
        ))
    })
}
