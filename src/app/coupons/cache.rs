//! The search page cache (`search.cache = redis`).
//!
//! A page is stored as the JSON body it was answered with, tagged with the generation that
//! was current when its query started. Creating a coupon or selling one out bumps the
//! generation, so every older page turns into a miss at once (one INCR, no key scan); a page
//! computed while the generation moved is tagged with the old one and never served. What is
//! not invalidated (issued quantities that do not sell out, periods starting or ending,
//! changes made directly in SQL) is at most `search.cache_ttl` old.
//!
//! Redis is an accelerator only: it is skipped while disconnected and given a short time
//! limit otherwise, so a Redis outage costs search its cache, never its answers.

use std::time::Duration;

use axum::body::Bytes;
use fred::clients::Pool;
use fred::prelude::{ClientLike, KeysInterface};
use fred::types::{ClusterHash, CustomCommand, Expiration, Resp3Frame};

use crate::app::coupons::query::SearchQuery;

/// The generation counter.
const GENERATION_KEY: &str = "fp:search:gen";

/// The longest wait for Redis on a search before going to PostgreSQL alone.
const REDIS_WAIT: Duration = Duration::from_millis(100);

/// What the cache says about a query.
#[derive(Debug)]
pub enum Lookup {
    /// The stored body.
    Hit(Bytes),
    /// Not stored (or stored for an older generation): store the answer under this one.
    Miss(i64),
    /// Redis is down or slow: answer from PostgreSQL and store nothing.
    Unavailable,
}

/// The cache's Redis handle and lifetime.
pub struct SearchCache {
    redis: Pool,
    ttl_secs: i64,
}

/// A cached page's key: filter, page, size, sort flag and the sorted words.
pub fn key(q: &SearchQuery) -> String {
    format!(
        "fp:search:{}:{}:{}:{}:{}",
        q.filter.as_str(),
        q.page.page,
        q.page.size,
        u8::from(q.page.sorted),
        q.words.join(" ")
    )
}

/// Splits a stored value into its generation and body (a view of the value, not a copy).
fn decode(value: &Bytes) -> Option<(i64, Bytes)> {
    let newline = value.iter().position(|b| *b == b'\n')?;
    let generation = std::str::from_utf8(&value[..newline]).ok()?.parse().ok()?;
    Some((generation, value.slice(newline + 1..)))
}

/// The string values of an MGET answer as sent, `None` for a missing key; `None` for an
/// answer that is not an array (an error).
fn strings(answer: Resp3Frame) -> Option<Vec<Option<Bytes>>> {
    let Resp3Frame::Array { data, .. } = answer else {
        return None;
    };
    let value = |frame: Resp3Frame| match frame {
        Resp3Frame::BlobString { data, .. } => Some(data),
        _ => None,
    };
    Some(data.into_iter().map(value).collect())
}

/// Joins a generation and a body into a stored value.
fn encode(generation: i64, body: &[u8]) -> Vec<u8> {
    let mut value = format!("{generation}\n").into_bytes();
    value.extend_from_slice(body);
    value
}

impl SearchCache {
    /// Makes the cache; entries live `ttl` (at least a second).
    pub fn new(redis: Pool, ttl: Duration) -> Self {
        SearchCache {
            redis,
            ttl_secs: i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX),
        }
    }

    /// Reads the current generation and the page in one round trip.
    pub async fn get(&self, key: &str) -> Lookup {
        if !self.redis.is_connected() {
            return Lookup::Unavailable;
        }
        // MGET as a raw frame: fred's typed answer checks the page for UTF-8 before handing
        // it over as bytes, 4,500 instructions of a cached search's 74,000 (callgrind).
        let mget = CustomCommand::new_static("MGET", ClusterHash::FirstKey, false);
        let read = self
            .redis
            .next()
            .custom_raw(mget, vec![GENERATION_KEY, key]);
        let values = match tokio::time::timeout(REDIS_WAIT, read).await {
            Ok(Ok(answer)) => match strings(answer) {
                Some(values) => values,
                None => {
                    tracing::debug!("search cache: read failed (not an array)");
                    return Lookup::Unavailable;
                }
            },
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "search cache: read failed");
                return Lookup::Unavailable;
            }
            Err(_) => return Lookup::Unavailable,
        };
        let generation = values
            .first()
            .and_then(Option::as_ref)
            .and_then(|g| std::str::from_utf8(g).ok()?.parse::<i64>().ok())
            .unwrap_or(0);
        match values.get(1).and_then(Option::as_ref).and_then(decode) {
            Some((stored, body)) if stored == generation => Lookup::Hit(body),
            _ => Lookup::Miss(generation),
        }
    }

    /// Stores a page computed under `generation`; failures only cost a later miss.
    pub async fn put(&self, key: &str, generation: i64, body: &[u8]) {
        let write = self.redis.next().set::<(), _, _>(
            key,
            encode(generation, body),
            Some(Expiration::EX(self.ttl_secs)),
            None,
            false,
        );
        match tokio::time::timeout(REDIS_WAIT, write).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!(error = %e, "search cache: write failed"),
            Err(_) => tracing::debug!("search cache: write timed out"),
        }
    }

    /// Makes every stored page stale. Returns false when Redis could not be told (then
    /// pages expire by their TTL).
    pub async fn invalidate(&self, reason: &'static str) -> bool {
        let bump = self.redis.next().incr::<i64, _>(GENERATION_KEY);
        match tokio::time::timeout(REDIS_WAIT, bump).await {
            Ok(Ok(_)) => true,
            Ok(Err(e)) => {
                tracing::warn!(reason, error = %e, "search cache: invalidation failed; pages expire by their TTL");
                false
            }
            Err(_) => {
                tracing::warn!(
                    reason,
                    "search cache: invalidation timed out; pages expire by their TTL"
                );
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::extract::QueryParams;

    #[test]
    fn values_carry_their_generation() {
        let value = Bytes::from(encode(42, br#"{"code":"S000"}"#));
        let (generation, body) = decode(&value).expect("decodes");
        assert_eq!(generation, 42);
        assert_eq!(&body[..], br#"{"code":"S000"}"#);
        assert!(decode(&Bytes::from_static(b"no newline")).is_none());
        assert!(decode(&Bytes::from_static(b"x\n{}")).is_none());
    }

    #[test]
    fn mget_answers_become_values_and_errors_none() {
        let blob = |b: &'static [u8]| Resp3Frame::BlobString {
            data: Bytes::from_static(b),
            attributes: None,
        };
        let answer = Resp3Frame::Array {
            data: vec![blob(b"7"), Resp3Frame::Null, blob(b"\xff\n")],
            attributes: None,
        };
        assert_eq!(
            strings(answer),
            Some(vec![
                Some(Bytes::from_static(b"7")),
                None,
                Some(Bytes::from_static(b"\xff\n"))
            ])
        );
        let error = Resp3Frame::SimpleError {
            data: "WRONGTYPE".into(),
            attributes: None,
        };
        assert_eq!(strings(error), None);
    }

    #[test]
    fn equivalent_queries_share_a_key_and_different_ones_do_not() {
        let k = |s: &str| key(&SearchQuery::parse(&QueryParams::parse(s)).expect("parses"));
        assert_eq!(
            k("search=Nike+%EB%B0%B1%ED%8C%A9"),
            k("search=%EB%B0%B1%ED%8C%A9%20nike%20")
        );
        assert_eq!(k(""), k("filterType=ALL&page=0&size=10"));
        assert_ne!(k("search=nike"), k("search=nike&filterType=READY"));
        assert_ne!(k("search=nike"), k("search=nike&page=1"));
        assert_ne!(k("search=nike"), k("search=nike&size=20"));
        assert_ne!(k("search=nike"), k("search=nike&sort=id"));
    }
}
