//! `redis-gate`: a Redis Lua script admits or refuses an issue request in one round trip, so
//! only admitted requests touch PostgreSQL. The gate's state is derived from PostgreSQL: built
//! per coupon on first use, rebuilt when Redis comes back empty (a miss), when it expires
//! (`issue.gate_ttl`) and whenever an app starts (a new epoch). PostgreSQL's own guards stay in
//! place, so a stale gate can refuse too early but never issue more than the stock.

use chrono::NaiveDateTime;
use fred::clients::Pool;
use fred::prelude::{ClientLike, KeysInterface};
use fred::types::scripts::Script;
use sqlx::PgPool;

use crate::app::error::{ApiError, Result};

/// The key holding the current epoch; every gate key is named after it.
const EPOCH_KEY: &str = "fp:gate:epoch";

/// Admits or refuses: CP01 (no such coupon), CP05, CP02, CP03, CP04, in the contract's
/// order; MISS when this coupon's state is not in Redis yet. KEYS[1] = epoch key;
/// ARGV = coupon id, user id, now (µs).
pub const ADMIT_SCRIPT: &str = r#"
local epoch = redis.call('GET', KEYS[1]) or '0'
local base = 'fp:gate:' .. epoch .. ':' .. ARGV[1]
local m = redis.call('HMGET', base .. ':m', 'state', 'start', 'end', 'total', 'taken')
if not m[1] then return 'MISS' end
if m[1] == 'NONE' then return 'CP01' end
if redis.call('SISMEMBER', base .. ':u', ARGV[2]) == 1 then return 'CP05' end
if m[1] == 'DISABLED' then return 'CP02' end
local now = tonumber(ARGV[3])
if now < tonumber(m[2]) or now >= tonumber(m[3]) then return 'CP03' end
if tonumber(m[5]) >= tonumber(m[4]) then return 'CP04' end
redis.call('HINCRBY', base .. ':m', 'taken', 1)
redis.call('SADD', base .. ':u', ARGV[2])
return 'OK'
"#;

/// Gives a reservation back. ARGV = coupon id, user id, '1' to also forget the holder.
const RELEASE: &str = r#"
local epoch = redis.call('GET', KEYS[1]) or '0'
local base = 'fp:gate:' .. epoch .. ':' .. ARGV[1]
if redis.call('EXISTS', base .. ':m') == 1 then redis.call('HINCRBY', base .. ':m', 'taken', -1) end
if ARGV[3] == '1' then redis.call('SREM', base .. ':u', ARGV[2]) end
return 1
"#;

/// Builds one coupon's state unless another request already did. ARGV = coupon id, ttl (s),
/// state, start, end, total, taken, holder ids...
const BUILD: &str = r#"
local epoch = redis.call('GET', KEYS[1]) or '0'
local base = 'fp:gate:' .. epoch .. ':' .. ARGV[1]
if redis.call('EXISTS', base .. ':m') == 1 then return 0 end
redis.call('DEL', base .. ':u')
redis.call('HSET', base .. ':m', 'state', ARGV[3], 'start', ARGV[4], 'end', ARGV[5], 'total', ARGV[6], 'taken', ARGV[7])
for i = 8, #ARGV do redis.call('SADD', base .. ':u', ARGV[i]) end
redis.call('EXPIRE', base .. ':m', ARGV[2])
redis.call('EXPIRE', base .. ':u', ARGV[2])
return 1
"#;

/// How long "no such coupon" is remembered: a coupon created later shows up after this.
const MISSING_TTL_SECS: u64 = 10;

/// When this process last built a coupon's state; a miss within [`REBUILD_AFTER`] of a build
/// (the burst that raced it) does not build again.
type BuildSlot = tokio::sync::Mutex<Option<std::time::Instant>>;

/// How soon after a build another miss rebuilds (Redis emptied again, say).
const REBUILD_AFTER: std::time::Duration = std::time::Duration::from_millis(200);

/// The gate's answer.
#[derive(Debug)]
pub enum Admission {
    /// A unit is reserved for this user; PostgreSQL must now write it (or it is released).
    Admitted,
    /// Refused by the rules, without touching PostgreSQL.
    Refused(ApiError),
    /// The coupon's state is not in Redis.
    Miss,
}

/// The scripts and settings of the gate.
pub struct Gate {
    /// One build at a time per coupon in this process: a burst of misses builds once.
    building: std::sync::Mutex<std::collections::HashMap<i64, std::sync::Arc<BuildSlot>>>,
    /// Admitted requests' writes, grouped per coupon.
    pub batcher: crate::app::issues::batch::Batcher,
    redis: Pool,
    admit: Script,
    release: Script,
    build: Script,
    ttl_secs: u64,
}

/// A timestamp as the scripts compare it (µs; naive local times compare as they are).
fn micros(t: NaiveDateTime) -> i64 {
    t.and_utc().timestamp_micros()
}

impl Gate {
    /// Makes the gate; call [`Gate::new_epoch`] at start.
    pub fn new(redis: Pool, ttl: std::time::Duration) -> Self {
        Gate {
            building: std::sync::Mutex::default(),
            batcher: crate::app::issues::batch::Batcher::default(),
            redis,
            admit: Script::from_lua(ADMIT_SCRIPT),
            release: Script::from_lua(RELEASE),
            build: Script::from_lua(BUILD),
            ttl_secs: ttl.as_secs().max(1),
        }
    }

    /// Tells whether Redis is reachable right now (no waiting on a dead connection).
    pub fn is_up(&self) -> bool {
        self.redis.is_connected()
    }

    /// Starts a new epoch: state left by an earlier run (reservations of a killed app
    /// included) is abandoned, to expire, and rebuilt from PostgreSQL on use.
    pub async fn new_epoch(&self) -> Result<i64, fred::error::Error> {
        // Loaded now, so a first burst does not meet NOSCRIPT on every request.
        for script in [&self.admit, &self.release, &self.build] {
            for client in self.redis.clients() {
                script.load(client).await?;
            }
        }
        let epoch = self.redis.next().incr::<i64, _>(EPOCH_KEY).await?;
        tracing::info!(
            epoch,
            "redis gate: new epoch, state is rebuilt from postgres on use"
        );
        Ok(epoch)
    }

    /// Runs the admission script.
    pub async fn admit(
        &self,
        coupon_id: i64,
        user_id: i64,
        now: NaiveDateTime,
    ) -> Result<Admission, fred::error::Error> {
        let answer: String = self
            .admit
            .evalsha_with_reload(
                self.redis.next(),
                vec![EPOCH_KEY],
                vec![
                    coupon_id.to_string(),
                    user_id.to_string(),
                    micros(now).to_string(),
                ],
            )
            .await?;
        Ok(match answer.as_str() {
            "OK" => Admission::Admitted,
            "MISS" => Admission::Miss,
            "CP01" => Admission::Refused(ApiError::CouponNotFound),
            "CP05" => Admission::Refused(ApiError::AlreadyIssued),
            "CP02" => Admission::Refused(ApiError::CouponDisabled),
            "CP03" => Admission::Refused(ApiError::OutOfPeriod),
            _ => Admission::Refused(ApiError::SoldOut),
        })
    }

    /// Gives a reservation back after PostgreSQL did not write it.
    pub async fn release(&self, coupon_id: i64, user_id: i64, forget_holder: bool) {
        let args = vec![
            coupon_id.to_string(),
            user_id.to_string(),
            if forget_holder { "1" } else { "0" }.to_owned(),
        ];
        let result: Result<i64, _> = self
            .release
            .evalsha_with_reload(self.redis.next(), vec![EPOCH_KEY], args)
            .await;
        if let Err(e) = result {
            // The reservation stays counted until the state expires or the epoch changes:
            // the gate may refuse early, never over-issue.
            tracing::warn!(coupon_id, error = %e, "redis gate: failed to release a reservation");
        }
    }

    /// Admits, building the coupon's state first when Redis does not have it. Of a burst of
    /// misses on one coupon, one request builds; the others wait for it, then admit in parallel.
    pub async fn admit_or_build(
        &self,
        db: &PgPool,
        coupon_id: i64,
        user_id: i64,
        now: NaiveDateTime,
    ) -> Result<Result<Admission, fred::error::Error>> {
        let first = self.admit(coupon_id, user_id, now).await;
        if !matches!(first, Ok(Admission::Miss)) {
            return Ok(first);
        }
        let lock = crate::app::issues::per_coupon(&self.building, coupon_id);
        {
            let mut last_build = lock.lock().await;
            // A build that finished after this request missed covers it too.
            let fresh = last_build.is_some_and(|t: std::time::Instant| t.elapsed() < REBUILD_AFTER);
            if !fresh {
                self.build(db, coupon_id).await?;
                *last_build = Some(std::time::Instant::now());
            }
        }
        Ok(self.admit(coupon_id, user_id, now).await)
    }

    /// Builds one coupon's state from PostgreSQL (stock, period, status and holders).
    async fn build(&self, db: &PgPool, coupon_id: i64) -> Result<()> {
        type Row = (String, NaiveDateTime, NaiveDateTime, i32, i32);
        let row: Option<Row> = sqlx::query_as(
            "select use_status, start_at, end_at, total_quantity, issued_quantity from tb_coupon where id = $1",
        )
        .bind(coupon_id)
        .fetch_optional(db)
        .await?;
        let mut args = vec![coupon_id.to_string()];
        match row {
            None => args.extend([
                MISSING_TTL_SECS.to_string(),
                "NONE".into(),
                "0".into(),
                "0".into(),
                "0".into(),
                "0".into(),
            ]),
            Some((status, start, end, total, issued)) => {
                let holders: Vec<i64> =
                    sqlx::query_scalar("select user_id from tb_issued_coupon where coupon_id = $1")
                        .bind(coupon_id)
                        .fetch_all(db)
                        .await?;
                args.extend([
                    self.ttl_secs.to_string(),
                    status,
                    micros(start).to_string(),
                    micros(end).to_string(),
                ]);
                args.extend([total.to_string(), issued.to_string()]);
                args.extend(holders.iter().map(i64::to_string));
            }
        }
        let built: i64 = self
            .build
            .evalsha_with_reload(self.redis.next(), vec![EPOCH_KEY], args)
            .await
            .map_err(|e| {
                ApiError::Internal(anyhow::anyhow!(
                    "redis gate: failed to build coupon {coupon_id}: {e}"
                ))
            })?;
        if built == 1 {
            tracing::debug!(coupon_id, "redis gate: built from postgres");
        }
        Ok(())
    }
}
