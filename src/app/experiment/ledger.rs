//! `GET /api/v1/admin/experiment/coupons/{id}`: the database's truth about one coupon after a
//! race, for the lab on a load host without database access: the counter, the rows behind
//! it, and users holding it twice. Off unless `app.experiment_switch`.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::auth::AdminUser;
use crate::app::coupons::parse_id;
use crate::app::error::{ApiError, Result};
use crate::app::state::AppState;
use crate::envelope::{Envelope, ErrorBody, ok};

/// One coupon's counter and the issued rows behind it.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Ledger {
    pub coupon_id: i64,
    pub total_quantity: i32,
    /// The coupon's counter (`tb_coupon.issued_quantity`).
    pub issued_quantity: i32,
    /// Rows in `tb_issued_coupon` for the coupon.
    pub issued_rows: i64,
    /// Users holding it.
    pub distinct_users: i64,
    /// Rows beyond one per user (0 when every user holds it at most once).
    pub duplicate_rows: i64,
}

// GET /api/v1/admin/experiment/coupons/{id}
#[utoipa::path(get, path = "/api/v1/admin/experiment/coupons/{id}", tag = "admin",
    params(("id" = i64, Path, description = "Decimal 64-bit integer")),
    security(("bearer" = [])),
    description = "The database's truth about one coupon, disabled or not, for `fastpick lab`: its counter, the issued rows, the users holding it and the rows beyond one per user. \
        Off unless `app.experiment_switch = true`. FastPick only.",
    responses((status = 200, body = Envelope<Ledger>),
        (status = 400, body = ErrorBody, description = "C002 id not a 64-bit integer"),
        (status = 401, body = ErrorBody, description = "C003 missing, A001 invalid, A002 expired token"),
        (status = 403, body = ErrorBody, description = "C004 not an admin, or the lab's endpoints are off in this deployment"),
        (status = 404, body = ErrorBody, description = "CP01 no such coupon")))]
#[tracing::instrument(level = "debug", skip_all)]
pub(super) async fn coupon_ledger(
    State(state): State<AppState>,
    _admin: AdminUser,
    path: std::result::Result<Path<String>, PathRejection>,
) -> Result<Json<Envelope<Ledger>>> {
    if !state.experiment.switchable() {
        return Err(ApiError::Forbidden);
    }
    let id = parse_id(path)?;
    let ledger: Ledger = sqlx::query_as(
        "select c.id as coupon_id, c.total_quantity, c.issued_quantity,
                count(i.id) as issued_rows,
                count(distinct i.user_id) as distinct_users,
                count(i.id) - count(distinct i.user_id) as duplicate_rows
         from tb_coupon c left join tb_issued_coupon i on i.coupon_id = c.id
         where c.id = $1
         group by c.id",
    )
    .bind(id)
    .fetch_optional(&state.db)
    .await?
    .ok_or(ApiError::CouponNotFound)?;
    Ok(ok(ledger))
}
