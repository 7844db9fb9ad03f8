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
//!
//! One search refills a page: requests that miss a page while another request of this
//! process is already searching it (same page, same generation) wait for that search's body
//! instead of searching too. When a popular page expires under load, every connection
//! misses it at once; without this, they all searched PostgreSQL together and the tail
//! latency of the moment was that stampede's. If the search fails or its request goes away,
//! each waiting request searches alone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::Bytes;
use fred::clients::Pool;
use fred::prelude::{ClientLike, KeysInterface};
use fred::types::{ClusterHash, CustomCommand, Expiration, Resp3Frame};
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::watch;

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
    /// Not stored, and another request's search of the page gave this body.
    Shared(Bytes),
    /// Not stored (or stored for an older generation): search, then [`SearchCache::put`].
    Miss(Refill),
    /// Redis is down or slow: answer from PostgreSQL and store nothing.
    Unavailable,
}

impl Lookup {
    /// The `result` label of the lookup metric.
    pub fn label(&self) -> &'static str {
        match self {
            Lookup::Hit(_) => "hit",
            Lookup::Shared(_) => "shared",
            Lookup::Miss(_) => "miss",
            Lookup::Unavailable => "unavailable",
        }
    }
}

/// The searches in progress, by generation and key: the body each will give.
type Flights = Arc<Mutex<HashMap<(i64, String), watch::Receiver<Option<Bytes>>>>>;

/// A miss: the generation its page is stored under and, for the request whose search others
/// wait for, the means to hand them its body.
#[derive(Debug)]
pub struct Refill {
    generation: i64,
    leader: Option<Leader>,
}

/// The request searching a page for others; dropping it (the search failed, or the request
/// went away) ends the wait of the others, who then search alone.
#[derive(Debug)]
struct Leader {
    flights: Flights,
    slot: (i64, String),
    body: watch::Sender<Option<Bytes>>,
}

impl Drop for Leader {
    fn drop(&mut self) {
        let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
        flights.remove(&self.slot);
    }
}

/// A miss's place among the searches in progress.
enum Flight {
    Lead(Leader),
    Follow(watch::Receiver<Option<Bytes>>),
}

/// Joins the search of `key` under `generation`, or starts it.
fn join(flights: &Flights, generation: i64, key: &str) -> Flight {
    let slot = (generation, key.to_owned());
    let mut map = flights.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(searching) = map.get(&slot) {
        return Flight::Follow(searching.clone());
    }
    let (body, waiting) = watch::channel(None);
    map.insert(slot.clone(), waiting);
    Flight::Lead(Leader {
        flights: flights.clone(),
        slot,
        body,
    })
}

/// Waits for the leader's body; `None` when it ended without one. `waiting` counts the
/// requests in here, also those that go away while they wait.
async fn body_of(mut searching: watch::Receiver<Option<Bytes>>, waiting: &Gauge) -> Option<Bytes> {
    struct Waiting<'a>(&'a Gauge);
    impl Drop for Waiting<'_> {
        fn drop(&mut self) {
            self.0.dec();
        }
    }
    waiting.inc();
    let _waiting = Waiting(waiting);
    let body = searching.wait_for(Option::is_some).await.ok()?;
    body.clone()
}

/// The cache's Redis handle and lifetime, and the searches in progress.
pub struct SearchCache {
    redis: Pool,
    ttl_secs: i64,
    /// Whether misses of a page being searched wait for that search (`search.refill`).
    share: bool,
    flights: Flights,
    waiting: Gauge,
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

/// What Redis holds for a query.
enum Read {
    Hit(Bytes),
    Miss(i64),
    Unavailable,
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
    /// Makes the cache; entries live `ttl` (at least a second); `share` makes misses of a
    /// page being searched wait for that search; `waiting` is the gauge of those waiting.
    pub fn new(redis: Pool, ttl: Duration, share: bool, waiting: Gauge) -> Self {
        SearchCache {
            redis,
            ttl_secs: i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX),
            share,
            flights: Flights::default(),
            waiting,
        }
    }

    /// Reads the current generation and the page in one round trip; on a miss, waits for
    /// the body of a search of the page already in progress, if there is one.
    pub async fn get(&self, key: &str) -> Lookup {
        match self.read(key).await {
            Read::Hit(body) => Lookup::Hit(body),
            Read::Unavailable => Lookup::Unavailable,
            Read::Miss(generation) => {
                let leader = match self.share.then(|| join(&self.flights, generation, key)) {
                    Some(Flight::Lead(leader)) => Some(leader),
                    Some(Flight::Follow(searching)) => {
                        match body_of(searching, &self.waiting).await {
                            Some(body) => return Lookup::Shared(body),
                            // That search failed or went away: search alone.
                            None => None,
                        }
                    }
                    None => None,
                };
                Lookup::Miss(Refill { generation, leader })
            }
        }
    }

    /// Reads the current generation and the page in one round trip.
    async fn read(&self, key: &str) -> Read {
        if !self.redis.is_connected() {
            return Read::Unavailable;
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
                    return Read::Unavailable;
                }
            },
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "search cache: read failed");
                return Read::Unavailable;
            }
            Err(_) => return Read::Unavailable,
        };
        let generation = values
            .first()
            .and_then(Option::as_ref)
            .and_then(|g| std::str::from_utf8(g).ok()?.parse::<i64>().ok())
            .unwrap_or(0);
        match values.get(1).and_then(Option::as_ref).and_then(decode) {
            Some((stored, body)) if stored == generation => Read::Hit(body),
            _ => Read::Miss(generation),
        }
    }

    /// Hands a miss's body to the requests waiting for it, then stores it (unless `store`
    /// is false) under the generation its search started in; failures only cost a later
    /// miss.
    pub async fn put(&self, key: &str, refill: Refill, body: &Bytes, store: bool) {
        if let Some(leader) = &refill.leader {
            leader.body.send_replace(Some(body.clone()));
        }
        if !store {
            return;
        }
        let write = self.redis.next().set::<(), _, _>(
            key,
            encode(refill.generation, body),
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

    /// Waits for `searching`'s body in a task of its own; the gauge it waits in.
    fn spawn_waiter(
        searching: watch::Receiver<Option<Bytes>>,
    ) -> (Gauge, tokio::task::JoinHandle<Option<Bytes>>) {
        let gauge = Gauge::default();
        let waiting = gauge.clone();
        let task = tokio::spawn(async move { body_of(searching, &waiting).await });
        (gauge, task)
    }

    #[tokio::test]
    async fn a_miss_during_a_search_of_its_page_waits_for_that_search() {
        let flights = Flights::default();
        let Flight::Lead(leader) = join(&flights, 3, "k") else {
            panic!("the first miss searches");
        };
        let Flight::Follow(waiting) = join(&flights, 3, "k") else {
            panic!("a second miss of the same page waits");
        };
        assert!(
            matches!(join(&flights, 4, "k"), Flight::Lead(_)),
            "a newer generation's miss searches: the running search may be stale"
        );
        assert!(matches!(join(&flights, 3, "other"), Flight::Lead(_)));
        let (gauge, waiter) = spawn_waiter(waiting);
        while gauge.get() != 1 {
            tokio::task::yield_now().await;
        }
        leader.body.send_replace(Some(Bytes::from_static(b"page")));
        assert_eq!(
            waiter.await.expect("joins"),
            Some(Bytes::from_static(b"page"))
        );
        assert_eq!(gauge.get(), 0, "the waiting gauge counts the wait only");
        drop(leader);
        assert!(
            matches!(join(&flights, 3, "k"), Flight::Lead(_)),
            "a finished search is forgotten"
        );
    }

    #[tokio::test]
    async fn a_search_that_ends_without_a_body_lets_the_waiting_search_alone() {
        let flights = Flights::default();
        let Flight::Lead(leader) = join(&flights, 0, "k") else {
            panic!("the first miss searches");
        };
        let Flight::Follow(waiting) = join(&flights, 0, "k") else {
            panic!("a second miss waits");
        };
        let (gauge, waiter) = spawn_waiter(waiting);
        drop(leader);
        assert_eq!(waiter.await.expect("joins"), None);
        assert_eq!(gauge.get(), 0);
        assert!(flights.lock().expect("lock").is_empty());
    }

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
