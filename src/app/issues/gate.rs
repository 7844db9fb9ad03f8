//! `redis-gate`: a Redis Lua script admits or refuses issue requests, so only admitted
//! requests touch PostgreSQL. Concurrent requests for one coupon are admitted in groups: one
//! script run (one round trip) answers every request that queued while the previous ran.
//!
//! The gate's state is derived from PostgreSQL: built per coupon on first use, rebuilt when
//! Redis comes back empty (a miss), when it expires (`issue.gate_ttl`) and whenever an app
//! starts (a new epoch). PostgreSQL's own guards stay in place, so a stale gate can refuse too
//! early but never issue more than the stock.

use chrono::NaiveDateTime;
use fred::clients::Pool;
use fred::prelude::{ClientLike, KeysInterface};
use fred::types::scripts::Script;
use sqlx::PgPool;

use crate::app::error::{ApiError, Result};
use crate::app::issues::Issued;
use crate::app::issues::batch::Writer;
use crate::app::issues::group::{Groups, Request, Run};

/// The key holding the current epoch; every gate key is named after it.
const EPOCH_KEY: &str = "fp:gate:epoch";

/// Admits or refuses a group of requests for one coupon in one run: CP01 (no such coupon),
/// CP05, CP02, CP03, CP04, in the contract's order, or OK; a single MISS when this coupon's
/// state is not in Redis yet. KEYS[1] = epoch key; ARGV = coupon id, then a user id and its
/// request time (µs) per request. Answers one code per request, in order.
pub const ADMIT_SCRIPT: &str = r#"
local epoch = redis.call('GET', KEYS[1]) or '0'
local base = 'fp:gate:' .. epoch .. ':' .. ARGV[1]
local m = redis.call('HMGET', base .. ':m', 'state', 'start', 'end', 'total', 'taken')
if not m[1] then return {'MISS'} end
local start, stop, total, taken = tonumber(m[2]), tonumber(m[3]), tonumber(m[4]), tonumber(m[5])
local out, admitted = {}, 0
for i = 2, #ARGV, 2 do
  local user, now = ARGV[i], tonumber(ARGV[i + 1])
  local code = 'OK'
  if m[1] == 'NONE' then code = 'CP01'
  elseif redis.call('SISMEMBER', base .. ':u', user) == 1 then code = 'CP05'
  elseif m[1] == 'DISABLED' then code = 'CP02'
  elseif now < start or now >= stop then code = 'CP03'
  elseif taken >= total then code = 'CP04'
  else
    taken = taken + 1
    admitted = admitted + 1
    redis.call('SADD', base .. ':u', user)
  end
  out[#out + 1] = code
end
if admitted > 0 then redis.call('HINCRBY', base .. ':m', 'taken', admitted) end
return out
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

/// The most requests one admission run takes; a bigger group runs in several.
const MAX_GROUP: usize = 500;

/// The gate's answer.
#[derive(Debug)]
pub enum Admission {
    /// A unit is reserved for this user; PostgreSQL must now write it (or it is released).
    Admitted,
    /// Refused by the rules, without touching PostgreSQL.
    Refused(ApiError),
    /// The coupon's state is not in Redis (and could not be built just now).
    Miss,
}

/// What a waiting request is told.
type Answer = Result<Admission, fred::error::Error>;

/// The gate: admission groups per coupon in front of Redis, write groups per coupon in
/// front of PostgreSQL, and the release of reservations PostgreSQL did not write.
pub struct Gate {
    admissions: Groups<Admitter>,
    writes: Groups<Writer>,
    redis: Pool,
    release: Script,
}

/// Runs admission groups: one script run per group, building the coupon's state first when
/// Redis does not have it. Groups of one coupon run one after another, so a burst of misses
/// builds once per process.
pub struct Admitter {
    redis: Pool,
    db: PgPool,
    admit: Script,
    build: Script,
    ttl_secs: u64,
}

/// A timestamp as the scripts compare it (µs; naive local times compare as they are).
fn micros(t: NaiveDateTime) -> i64 {
    t.and_utc().timestamp_micros()
}

impl Gate {
    /// Makes the gate; call [`Gate::new_epoch`] at start.
    pub fn new(redis: Pool, db: PgPool, ttl: std::time::Duration) -> Self {
        Gate {
            admissions: Groups::new(Admitter {
                redis: redis.clone(),
                db: db.clone(),
                admit: Script::from_lua(ADMIT_SCRIPT),
                build: Script::from_lua(BUILD),
                ttl_secs: ttl.as_secs().max(1),
            }),
            writes: Groups::new(Writer { db }),
            redis,
            release: Script::from_lua(RELEASE),
        }
    }

    /// Tells whether Redis is reachable right now (no waiting on a dead connection).
    pub fn is_up(&self) -> bool {
        self.redis.is_connected()
    }

    /// Starts a new epoch: state left by an earlier run (reservations of a killed app
    /// included) is abandoned, to expire, and rebuilt from PostgreSQL on use.
    pub async fn new_epoch(&self) -> Result<i64, fred::error::Error> {
        let admitter = self.admissions.runner();
        // Loaded now, so a first burst does not meet NOSCRIPT on every request.
        for script in [&admitter.admit, &admitter.build, &self.release] {
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

    /// Admits or refuses one request, in a group with the coupon's other waiting requests;
    /// a run that failed without answering counts as a miss (PostgreSQL decides).
    pub async fn admit(&self, coupon_id: i64, user_id: i64, now: NaiveDateTime) -> Answer {
        let answer = self.admissions.ask(coupon_id, user_id, now).await;
        answer.unwrap_or(Ok(Admission::Miss))
    }

    /// Writes an admitted request to PostgreSQL, in a group with the coupon's other admitted
    /// requests, and returns the issued row.
    pub async fn write(&self, coupon_id: i64, user_id: i64, now: NaiveDateTime) -> Result<Issued> {
        let written = self.writes.ask(coupon_id, user_id, now).await;
        written.unwrap_or_else(|| {
            Err(ApiError::Internal(anyhow::anyhow!(
                "issue write for coupon {coupon_id} was dropped"
            )))
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
}

impl Run for Admitter {
    type Answer = Answer;

    async fn run(&self, coupon_id: i64, mut group: Vec<Request<Answer>>) {
        while !group.is_empty() {
            let rest = group.split_off(group.len().min(MAX_GROUP));
            self.admit_group(coupon_id, group).await;
            group = rest;
        }
    }
}

impl Admitter {
    /// Runs the script for a group (building first on a miss) and answers each request.
    async fn admit_group(&self, coupon_id: i64, group: Vec<Request<Answer>>) {
        let mut codes = self.eval(coupon_id, &group).await;
        if matches!(&codes, Ok(c) if c.first().is_some_and(|c| c == "MISS")) {
            codes = match self.build(coupon_id).await {
                Ok(()) => self.eval(coupon_id, &group).await,
                Err(e) => {
                    // Each request then lets PostgreSQL decide, which answers its own error.
                    tracing::warn!(coupon_id, error = %e, "redis gate: failed to build");
                    Ok(Vec::new())
                }
            };
        }
        match codes {
            Ok(codes) if codes.len() == group.len() => {
                for (waiting, code) in group.into_iter().zip(codes) {
                    let _ = waiting.answer.send(Ok(admission(&code)));
                }
            }
            // A miss again (emptied meanwhile) or a build that failed: PostgreSQL decides.
            Ok(_) => {
                for waiting in group {
                    let _ = waiting.answer.send(Ok(Admission::Miss));
                }
            }
            Err(e) => {
                for waiting in group {
                    let _ = waiting.answer.send(Err(e.clone()));
                }
            }
        }
    }

    async fn eval(
        &self,
        coupon_id: i64,
        group: &[Request<Answer>],
    ) -> Result<Vec<String>, fred::error::Error> {
        let mut args = Vec::with_capacity(1 + 2 * group.len());
        args.push(coupon_id.to_string());
        for w in group {
            args.push(w.user_id.to_string());
            args.push(micros(w.now).to_string());
        }
        self.admit
            .evalsha_with_reload(self.redis.next(), vec![EPOCH_KEY], args)
            .await
    }

    /// Builds one coupon's state from PostgreSQL (stock, period, status and holders).
    async fn build(&self, coupon_id: i64) -> Result<()> {
        type Row = (String, NaiveDateTime, NaiveDateTime, i32, i32);
        let row: Option<Row> = sqlx::query_as(
            "select use_status, start_at, end_at, total_quantity, issued_quantity from tb_coupon where id = $1",
        )
        .bind(coupon_id)
        .fetch_optional(&self.db)
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
                        .fetch_all(&self.db)
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

/// The script's code as the gate's answer.
fn admission(code: &str) -> Admission {
    match code {
        "OK" => Admission::Admitted,
        "CP01" => Admission::Refused(ApiError::CouponNotFound),
        "CP05" => Admission::Refused(ApiError::AlreadyIssued),
        "CP02" => Admission::Refused(ApiError::CouponDisabled),
        "CP03" => Admission::Refused(ApiError::OutOfPeriod),
        "CP04" => Admission::Refused(ApiError::SoldOut),
        _ => Admission::Miss,
    }
}
