//! Issuing a coupon to the logged-in user, by the configured strategy
//! (`issue.strategy`: db-lock, db-atomic, redis-gate); every strategy answers the same codes
//! in the same order and is exact under concurrency.

pub mod batch;
pub mod db;
pub mod gate;
pub mod group;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use chrono::NaiveDateTime;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::app::auth::AuthUser;
use crate::app::error::{ApiError, Result};
use crate::app::extract::{ApiJson, Validate};
use crate::app::issues::gate::Admission;
use crate::app::state::AppState;
use crate::config::{IssueStrategy, RedisDown};
use crate::envelope::{Envelope, ok};
use crate::envelope::{ErrorBody, FieldError};

/// A written issue: the new row's id, and whether this write took the coupon's last unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Issued {
    pub id: i64,
    pub sold_out: bool,
}

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/coupon-issues", post(issue_coupon))
}

/// Issue body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssueRequest {
    #[serde(default, deserialize_with = "crate::app::lenient::opt_i64")]
    #[schema(value_type = crate::app::openapi::types::CouponId, required = true)]
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
    description = "Issues a coupon to the token's user: at most one per user and coupon, never more than the coupon's total, exact under concurrency. \
        The checks run in the original's order: CP01 no such coupon, CP05 already issued, CP02 disabled, CP03 outside the period, CP04 sold out. \
        Compatibility: the answer is 200 with the new id, as in the original; a unique (user, coupon) index now guards it too; \
        a deleted user's token is 401 A001 (was 500); through the FastPick proxy, a client over the issue rate limit gets 429 C011.",
    responses((status = 200, body = Envelope<i64>, description = "data is the new issued-coupon id"),
        (status = 429, body = ErrorBody, description = "C011: over the proxy's issue rate limit (only through the proxy)"),
        (status = 400, body = ErrorBody, description = "C001/C002 bad body; CP05 already issued, CP02 disabled, CP03 outside the period, CP04 sold out (checked in that order)"),
        (status = 401, body = ErrorBody, description = "C003 missing, A001 invalid, A002 expired token"),
        (status = 404, body = ErrorBody, description = "CP01 no such coupon"),
        (status = 503, body = ErrorBody, description = "C010 database (or, with issue.redis_down = unavailable, Redis) unavailable")))]
#[tracing::instrument(level = "debug", skip_all, fields(user_id = user.id))]
async fn issue_coupon(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(req): ApiJson<IssueRequest>,
) -> Result<Json<Envelope<i64>>> {
    let coupon_id = req.coupon_id.unwrap_or_default();
    let now = state.clock.now();
    let strategy = state.experiment.strategy();
    let result = match strategy {
        IssueStrategy::DbLock => db::issue_locked(&state.db, coupon_id, user.id, now).await,
        IssueStrategy::DbAtomic => db::issue_atomic(&state.db, coupon_id, user.id, now).await,
        IssueStrategy::RedisGate => issue_gated(&state, coupon_id, user.id, now).await,
    };
    let outcome = match &result {
        Ok(_) => "issued",
        Err(e) => e.code().as_str(),
    };
    state.metrics.issue_outcome(strategy.as_str(), outcome);
    if let Ok(Issued { sold_out: true, .. }) = result {
        // The coupon's list status just became EXHAUSTED.
        crate::app::coupons::invalidate_search(&state, "sold_out").await;
    }
    result.map(|issued| ok(issued.id))
}

/// `redis-gate`: Redis admits or refuses; admitted requests are written in groups with
/// PostgreSQL's guards in place and committed before 200; a failed write gives the
/// reservation back.
async fn issue_gated(
    state: &AppState,
    coupon_id: i64,
    user_id: i64,
    now: NaiveDateTime,
) -> Result<Issued> {
    let gate = state.experiment.gate();
    if !gate.is_up() {
        return without_redis(state, coupon_id, user_id, now).await;
    }
    match gate.admit(coupon_id, user_id, now).await {
        Ok(Admission::Admitted) => {
            let written = gate.write(coupon_id, user_id, now).await;
            match &written {
                Ok(_) => {}
                // PostgreSQL knows this user holds it: keep the holder, return the unit.
                Err(ApiError::AlreadyIssued) => gate.release(coupon_id, user_id, false).await,
                Err(_) => gate.release(coupon_id, user_id, true).await,
            }
            written
        }
        Ok(Admission::Refused(err)) => Err(err),
        // Not in Redis even after a build (expired, flushed, or the build failed): let
        // PostgreSQL decide.
        Ok(Admission::Miss) => db::issue_atomic(&state.db, coupon_id, user_id, now).await,
        Err(e) => {
            tracing::warn!(error = %e, "redis gate: redis failed");
            without_redis(state, coupon_id, user_id, now).await
        }
    }
}

/// What `redis-gate` does while Redis is unreachable (`issue.redis_down`).
async fn without_redis(
    state: &AppState,
    coupon_id: i64,
    user_id: i64,
    now: NaiveDateTime,
) -> Result<Issued> {
    state.metrics.gate_event("redis_down");
    match state.issue.redis_down {
        RedisDown::Fallback => db::issue_atomic(&state.db, coupon_id, user_id, now).await,
        RedisDown::Unavailable => Err(ApiError::RedisUnavailable),
    }
}
