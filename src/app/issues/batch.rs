//! Group commit for `redis-gate`: admitted requests for one coupon queue up, and the coupon's
//! drain ([`crate::app::issues::group`]) writes everything queued in one statement. Under a
//! burst, a handful of statements replace a hundred backends queueing on the coupon's row
//! lock; alone, a request is a batch of one. Any batch failure falls back to one `db-atomic`
//! write per request, which gives each its own exact answer.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use sqlx::PgPool;

use crate::app::error::{ApiError, Result};
use crate::app::issues::group::{Request, Run};
use crate::app::issues::{Issued, db};

/// One admitted request waiting for its write.
type Pending = Request<Result<Issued>>;

/// Runs write groups.
pub struct Writer {
    pub db: PgPool,
}

impl Run for Writer {
    type Answer = Result<Issued>;

    async fn run(&self, coupon_id: i64, group: Vec<Pending>) {
        write_batch(&self.db, coupon_id, group).await;
    }
}

/// Writes a batch in one statement, or each request alone when the statement refuses.
async fn write_batch(db: &PgPool, coupon_id: i64, batch: Vec<Pending>) {
    let latest = batch.iter().map(|p| p.now).max();
    if let Some(now) = latest.filter(|_| batch.len() > 1) {
        let users: Vec<i64> = batch.iter().map(|p| p.user_id).collect();
        if let Ok(ids) = insert_all(db, coupon_id, &users, now).await
            && ids.len() == batch.len()
        {
            let sold_out = ids.first().is_some_and(|row| row.2);
            let by_user: HashMap<i64, i64> = ids
                .into_iter()
                .map(|(issued, user, _)| (user, issued))
                .collect();
            for (i, p) in batch.into_iter().enumerate() {
                let result = by_user
                    .get(&p.user_id)
                    .map(|id| Issued {
                        id: *id,
                        // The batch's first answer carries the sell-out, once.
                        sold_out: sold_out && i == 0,
                    })
                    .ok_or_else(|| {
                        ApiError::Internal(anyhow::anyhow!(
                            "batch wrote no row for user {}",
                            p.user_id
                        ))
                    });
                let _ = p.answer.send(result);
            }
            return;
        }
    }
    for p in batch {
        let _ = p
            .answer
            .send(db::issue_atomic(db, coupon_id, p.user_id, p.now).await);
    }
}

/// Takes `users.len()` units and writes their rows in one statement (one transaction), with
/// whether that sold the coupon out; no row at all when the coupon cannot give that many, an
/// error when any user already holds it.
async fn insert_all(
    db: &PgPool,
    coupon_id: i64,
    users: &[i64],
    now: NaiveDateTime,
) -> Result<Vec<(i64, i64, bool)>, sqlx::Error> {
    let n = i32::try_from(users.len()).unwrap_or(i32::MAX);
    sqlx::query_as(
        "with taken as (
             update tb_coupon
             set issued_quantity = issued_quantity + $3,
                 is_sold_out = issued_quantity + $3 >= total_quantity,
                 updated_at = $4
             where id = $1 and use_status = 'AVAILABLE' and start_at <= $4 and end_at > $4
               and issued_quantity + $3 <= total_quantity
             returning id, is_sold_out),
         written as (
             insert into tb_issued_coupon (created_at, user_id, coupon_id)
             select $4, u, taken.id from taken, unnest($2::bigint[]) as u
             returning id, user_id)
         select written.id, written.user_id, taken.is_sold_out from written, taken",
    )
    .bind(coupon_id)
    .bind(users)
    .bind(n)
    .bind(now)
    .fetch_all(db)
    .await
}
