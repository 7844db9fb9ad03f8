//! The two PostgreSQL strategies: `db-lock` (the original's row lock, checks in the app) and
//! `db-atomic` (one conditional UPDATE plus the unique constraint). Both run in one
//! transaction and give the contract's codes in its order: CP01, CP05, CP02, CP03, CP04.

use chrono::NaiveDateTime;
use sqlx::{PgConnection, PgPool};

use crate::app::error::{ApiError, Result};
use crate::app::issues::Issued;
use crate::domain::{CouponStatus, coupon_status};

/// A coupon's issuing state as the checks need it.
type CouponCheck = (String, NaiveDateTime, NaiveDateTime, i32, i32);

/// `db-atomic`: takes a unit and writes the issued row only if every rule allows it.
///
/// PostgreSQL re-checks the WHERE clause on the newest row version after waiting for the
/// row lock, so concurrent requests never take more than the stock; the unique (user, coupon)
/// constraint stops one user's concurrent requests.
pub async fn issue_atomic(
    db: &PgPool,
    coupon_id: i64,
    user_id: i64,
    now: NaiveDateTime,
) -> Result<Issued> {
    // One statement is one transaction: the insert failing (a concurrent request of the same
    // user) undoes the update too. One round trip to PostgreSQL.
    let issued: Option<(i64, bool)> = sqlx::query_as(
        "with taken as (
             update tb_coupon
             set issued_quantity = issued_quantity + 1,
                 is_sold_out = issued_quantity + 1 >= total_quantity,
                 updated_at = $3
             where id = $1 and use_status = 'AVAILABLE' and start_at <= $3 and end_at > $3
               and issued_quantity < total_quantity
               and not exists (select 1 from tb_issued_coupon where user_id = $2 and coupon_id = $1)
             returning id, is_sold_out),
         written as (
             insert into tb_issued_coupon (created_at, user_id, coupon_id)
             select $3, $2, id from taken
             returning id)
         select written.id, taken.is_sold_out from written, taken",
    )
    .bind(coupon_id)
    .bind(user_id)
    .bind(now)
    .fetch_optional(db)
    .await
    .map_err(write_error)?;
    match issued {
        Some((id, sold_out)) => Ok(Issued { id, sold_out }),
        None => {
            let mut conn = db.acquire().await?;
            Err(refusal(&mut conn, coupon_id, user_id, now).await?)
        }
    }
}

/// Maps the write's constraint errors: the unique (user, coupon) pair is CP05; a user id that
/// no longer exists (the token outlived its user) is an invalid token.
fn write_error(err: sqlx::Error) -> ApiError {
    match err.as_database_error().and_then(|db| db.code()).as_deref() {
        Some("23505") => ApiError::AlreadyIssued,
        Some("23503") => ApiError::InvalidToken,
        _ => ApiError::from(err),
    }
}

/// `db-lock`: locks the coupon row, checks in the app, then writes (as the original).
pub async fn issue_locked(
    db: &PgPool,
    coupon_id: i64,
    user_id: i64,
    now: NaiveDateTime,
) -> Result<Issued> {
    let mut tx = db.begin().await?;
    // Hibernate's PESSIMISTIC_WRITE on PostgreSQL: every issue of one coupon queues here.
    let (row, held) = read_check(&mut tx, coupon_id, user_id, true).await?;
    if let Some(err) = check(row, held, now) {
        tx.rollback().await?;
        return Err(err);
    }
    let sold_out: bool = sqlx::query_scalar(
        "update tb_coupon set issued_quantity = issued_quantity + 1,
             is_sold_out = issued_quantity + 1 >= total_quantity, updated_at = $2
         where id = $1 returning is_sold_out",
    )
    .bind(coupon_id)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    let id = insert_issued(&mut tx, coupon_id, user_id, now).await?;
    tx.commit().await?;
    Ok(Issued { id, sold_out })
}

/// Inserts the issued row; a concurrent request of the same user that won the unique
/// constraint makes this one CP05 (the caller's transaction is then rolled back).
async fn insert_issued(
    conn: &mut PgConnection,
    coupon_id: i64,
    user_id: i64,
    now: NaiveDateTime,
) -> Result<i64> {
    let issued_id: Option<i64> = sqlx::query_scalar(
        "insert into tb_issued_coupon (created_at, user_id, coupon_id) values ($1, $2, $3)
         on conflict (user_id, coupon_id) do nothing returning id",
    )
    .bind(now)
    .bind(user_id)
    .bind(coupon_id)
    .fetch_optional(conn)
    .await
    .map_err(write_error)?;
    issued_id.ok_or(ApiError::AlreadyIssued)
}

/// Explains why a coupon cannot be issued to a user now.
async fn refusal(
    conn: &mut PgConnection,
    coupon_id: i64,
    user_id: i64,
    now: NaiveDateTime,
) -> Result<ApiError> {
    let (row, held) = read_check(conn, coupon_id, user_id, false).await?;
    Ok(check(row, held, now).unwrap_or_else(|| {
        // Every rule passes on a fresh read: the refusal raced a change of the coupon itself.
        ApiError::Internal(anyhow::anyhow!(
            "coupon {coupon_id} refused without a reason"
        ))
    }))
}

/// Reads what the checks need: the coupon (row-locked when `lock`) and whether the user
/// already holds it.
async fn read_check(
    conn: &mut PgConnection,
    coupon_id: i64,
    user_id: i64,
    lock: bool,
) -> Result<(Option<CouponCheck>, bool)> {
    let sql = if lock {
        "select use_status, start_at, end_at, total_quantity, issued_quantity
         from tb_coupon where id = $1 for no key update"
    } else {
        "select use_status, start_at, end_at, total_quantity, issued_quantity
         from tb_coupon where id = $1"
    };
    let row: Option<CouponCheck> = sqlx::query_as(sql)
        .bind(coupon_id)
        .fetch_optional(&mut *conn)
        .await?;
    let held: bool = sqlx::query_scalar(
        "select exists (select 1 from tb_issued_coupon where user_id = $1 and coupon_id = $2)",
    )
    .bind(user_id)
    .bind(coupon_id)
    .fetch_one(&mut *conn)
    .await?;
    Ok((row, held))
}

/// The contract's checks in its order (CP01, CP05, then the one status rule: CP02 disabled,
/// CP03 ready or expired, CP04 exhausted); `None` when the coupon can be issued.
pub fn check(row: Option<CouponCheck>, held: bool, now: NaiveDateTime) -> Option<ApiError> {
    let Some((use_status, start_at, end_at, total, issued)) = row else {
        return Some(ApiError::CouponNotFound);
    };
    if held {
        return Some(ApiError::AlreadyIssued);
    }
    match coupon_status(&use_status, start_at, end_at, total, issued, now) {
        CouponStatus::Disabled => Some(ApiError::CouponDisabled),
        CouponStatus::Ready | CouponStatus::Expired => Some(ApiError::OutOfPeriod),
        CouponStatus::Exhausted => Some(ApiError::SoldOut),
        CouponStatus::Issuing => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(h: u32) -> NaiveDateTime {
        chrono::NaiveDate::from_ymd_opt(2026, 1, 1)
            .and_then(|d| d.and_hms_opt(h, 0, 0))
            .expect("valid")
    }

    #[test]
    fn checks_run_in_the_contract_order() {
        let row =
            |status: &str, total, issued| Some((status.to_owned(), t(10), t(12), total, issued));
        let code = |r, held, now| check(r, held, t(now)).map(|e| e.code().as_str());
        assert_eq!(code(None, true, 11), Some("CP01"));
        assert_eq!(code(row("DISABLED", 1, 1), true, 9), Some("CP05"));
        assert_eq!(code(row("DISABLED", 1, 1), false, 9), Some("CP02"));
        assert_eq!(code(row("AVAILABLE", 1, 1), false, 9), Some("CP03"));
        assert_eq!(code(row("AVAILABLE", 1, 1), false, 12), Some("CP03"));
        assert_eq!(code(row("AVAILABLE", 1, 1), false, 11), Some("CP04"));
        assert_eq!(code(row("AVAILABLE", 2, 1), false, 11), None);
    }
}
