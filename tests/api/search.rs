//! Search at scale: the bounded count, the Redis page cache and its invalidation (after a
//! create and after a sell-out, under every issuing strategy), search without Redis, and one
//! search for all the misses of a page being searched.

use fastpick::config::{IssueStrategy, Refill, SearchCache};
use serde_json::{Value, json};

use crate::helpers::{CouponSpec, TestApp, ids, spawn_app_with};

async fn page(app: &TestApp, query: &str) -> Value {
    app.get(&format!("/api/v1/coupons?{query}"), None)
        .await
        .data()
        .clone()
}

/// The value of a `fastpick_search_cache_lookups_total` series (0 when absent).
async fn lookups(app: &TestApp, result: &str) -> u64 {
    let text = app.metrics_text().await;
    text.lines()
        .find(|l| {
            l.starts_with("fastpick_search_cache_lookups_total")
                && l.contains(&format!("result=\"{result}\""))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn count_is_exact_below_the_limit_a_floor_above_it_and_last_is_always_exact() {
    let app = spawn_app_with(|s| {
        s.search.cache = SearchCache::Off;
        s.search.count_limit = 3;
    })
    .await;
    let mut made = Vec::new();
    for _ in 0..7 {
        made.push(app.coupon(CouponSpec::default()).await);
    }
    app.coupon(CouponSpec {
        brand: "HOKA",
        title: "[OFF] HOKA 팬츠",
        ..Default::default()
    })
    .await;
    made.reverse();
    // More matches than the limit: the count stops there, and still says "not last".
    let first = page(&app, "search=nike&size=2").await;
    assert_eq!(ids(&first), made[..2].to_vec());
    assert_eq!(first["totalElements"], 3);
    assert_eq!(first["last"], false);
    // A page past the limit: counted up to just beyond it, exact here.
    let third = page(&app, "search=nike&size=2&page=2").await;
    assert_eq!(ids(&third), made[4..6].to_vec());
    assert_eq!(third["totalElements"], 7);
    assert_eq!(third["last"], false);
    // The page that ends the list knows the exact total without counting.
    let fourth = page(&app, "search=nike&size=2&page=3").await;
    assert_eq!(ids(&fourth), made[6..].to_vec());
    assert_eq!(fourth["totalElements"], 7);
    assert_eq!(fourth["last"], true);
    // Past the end: empty, exact, last.
    let beyond = page(&app, "search=nike&size=2&page=9").await;
    assert!(ids(&beyond).is_empty());
    assert_eq!(beyond["totalElements"], 7);
    assert_eq!(beyond["last"], true);
    // Below the limit the count is exact.
    let hoka = page(&app, "search=hoka").await;
    assert_eq!(hoka["totalElements"], 1);
    assert_eq!(hoka["last"], true);
    // A word no keyword starts with: empty, through the probe alone.
    let ghost = page(&app, "search=GHOST_1764000000000_7").await;
    assert_eq!(ghost["totalElements"], 0);
    assert_eq!(ghost["totalPages"], 0);
    assert_eq!(ghost["last"], true);
    let text = app.metrics_text().await;
    assert!(
        text.contains("fastpick_search_statement_seconds_count{application=\"fastpick-be\",statement=\"probe\"}"),
        "statement timings exported"
    );
}

#[tokio::test]
async fn cached_pages_are_served_until_a_create_makes_them_stale() {
    let app = spawn_app_with(|s| s.search.cache = SearchCache::Redis).await;
    let (_, admin) = app.user("admin@test.kr", "ADMIN").await;
    let a = app.coupon(CouponSpec::default()).await;
    let first = page(&app, "search=NIKE").await;
    assert_eq!(ids(&first), vec![a]);
    assert_eq!(lookups(&app, "miss").await, 1);
    // Same query, other spelling: the same cached page.
    let again = page(&app, "search=%20nike%20").await;
    assert_eq!(again, first);
    assert_eq!(lookups(&app, "hit").await, 1);
    // A word no keyword starts with is answered by the probe and not stored.
    for _ in 0..2 {
        assert!(ids(&page(&app, "search=GHOST_1764000000000_7").await).is_empty());
    }
    assert_eq!(
        lookups(&app, "hit").await,
        1,
        "unknown words are not cached"
    );
    // A change made behind the app's back is not seen until the TTL...
    let b = app.coupon(CouponSpec::default()).await;
    assert_eq!(ids(&page(&app, "search=nike").await), vec![a]);
    // ...but a coupon created through the API invalidates every page at once.
    let body = json!({"brand": "NIKE", "title": "[NEW] NIKE 백팩", "summary": "s", "description": "d",
        "totalQuantity": 5, "startAt": "2026-01-02T00:00:00", "endAt": "2099-01-08T00:00:00"});
    let created = app.post("/api/v1/admin/coupons", Some(&admin), body).await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let c = created.body["data"].as_i64().expect("id");
    assert_eq!(ids(&page(&app, "search=nike").await), vec![c, b, a]);
    let text = app.metrics_text().await;
    assert!(
        text.contains("fastpick_search_cache_invalidations_total{application=\"fastpick-be\",event=\"created\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn a_sell_out_invalidates_cached_pages_under_every_strategy() {
    for strategy in [
        IssueStrategy::DbLock,
        IssueStrategy::DbAtomic,
        IssueStrategy::RedisGate,
    ] {
        let app = spawn_app_with(|s| {
            s.search.cache = SearchCache::Redis;
            s.issue.strategy = strategy;
        })
        .await;
        let coupon = app
            .coupon(CouponSpec {
                total: 2,
                ..Default::default()
            })
            .await;
        let tokens = app.users(2).await;
        let issuing = "search=nike&filterType=ISSUING";
        assert_eq!(ids(&page(&app, issuing).await), vec![coupon]);
        // Issuing that leaves stock keeps the page (its issuedQuantity may lag the TTL).
        app.post(
            "/api/v1/coupon-issues",
            Some(&tokens[0]),
            json!({"couponId": coupon}),
        )
        .await
        .data();
        assert_eq!(
            ids(&page(&app, issuing).await),
            vec![coupon],
            "{strategy:?}"
        );
        // The last unit moves the coupon from ISSUING to CLOSED at once.
        app.post(
            "/api/v1/coupon-issues",
            Some(&tokens[1]),
            json!({"couponId": coupon}),
        )
        .await
        .data();
        assert!(ids(&page(&app, issuing).await).is_empty(), "{strategy:?}");
        let closed = page(&app, "search=nike&filterType=CLOSED").await;
        assert_eq!(ids(&closed), vec![coupon], "{strategy:?}");
        assert_eq!(closed["content"][0]["status"], "EXHAUSTED");
        assert_eq!(closed["content"][0]["issuedQuantity"], 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_answers_from_postgres_while_redis_is_down_and_caches_again_after() {
    let mut app = spawn_app_with(|s| s.search.cache = SearchCache::Redis).await;
    let (_, admin) = app.user("admin@test.kr", "ADMIN").await;
    let a = app.coupon(CouponSpec::default()).await;
    assert_eq!(ids(&page(&app, "search=nike").await), vec![a]);
    let redis = app.redis.take().expect("redis");
    let redis_port = redis.port;
    redis.stop();
    let b = app.coupon(CouponSpec::default()).await;
    // No cache, and no stale page either: PostgreSQL answers.
    let down = page(&app, "search=nike").await;
    assert_eq!(ids(&down), vec![b, a]);
    assert!(lookups(&app, "unavailable").await >= 1);
    // Creating still works; the failed invalidation is counted.
    let body = json!({"brand": "NIKE", "title": "[LAST] NIKE 재킷", "summary": "s", "description": "d",
        "totalQuantity": 5, "startAt": "2026-01-02T00:00:00", "endAt": "2099-01-08T00:00:00"});
    let created = app.post("/api/v1/admin/coupons", Some(&admin), body).await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let c = created.body["data"].as_i64().expect("id");
    assert_eq!(ids(&page(&app, "search=nike").await), vec![c, b, a]);
    app.restart_redis_on(redis_port).await;
    // Every pooled Redis client reconnects on its own schedule: the cache serves again
    // once they have (answers stay right meanwhile).
    let hits = lookups(&app, "hit").await;
    let start = std::time::Instant::now();
    while lookups(&app, "hit").await == hits {
        assert_eq!(ids(&page(&app, "search=nike").await), vec![c, b, a]);
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "the cache did not serve again"
        );
    }
}

/// The value of the first series of the app's metrics that starts with `prefix` (0 when
/// absent).
async fn series(app: &TestApp, prefix: &str) -> f64 {
    let text = app.metrics_text().await;
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// `n` requests miss one page while its first search is held inside PostgreSQL (the table
/// is locked until every request has missed); returns the page searches they made and
/// their `shared` lookups.
async fn misses_of_one_page(refill: Refill, n: usize) -> (f64, u64) {
    let app = spawn_app_with(|s| {
        s.search.cache = SearchCache::Redis;
        s.search.refill = refill;
    })
    .await;
    let a = app.coupon(CouponSpec::default()).await;
    let pages =
        "fastpick_search_statement_seconds_count{application=\"fastpick-be\",statement=\"page\"}";
    let waiting = "fastpick_search_cache_waiting{";
    let pages_before = series(&app, pages).await;

    let mut hold = app.db.begin().await.expect("begin");
    sqlx::query("lock table tb_coupon in access exclusive mode")
        .execute(&mut *hold)
        .await
        .expect("lock");
    let requests: Vec<_> = (0..n)
        .map(|_| {
            let client = reqwest::Client::new();
            let url = format!("{}/api/v1/coupons?search=nike", app.base);
            tokio::spawn(async move {
                let resp = client.get(url).send().await.expect("sent");
                (resp.status().as_u16(), resp.text().await.expect("body"))
            })
        })
        .collect();
    // Every request has missed: the searching ones are counted as misses when they start,
    // the waiting ones in the gauge.
    let started = std::time::Instant::now();
    while lookups(&app, "miss").await as f64 + series(&app, waiting).await < n as f64 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "not every request missed: {}",
            app.metrics_text().await
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    hold.rollback().await.expect("release");

    let mut bodies = Vec::new();
    for request in requests {
        let (status, body) = request.await.expect("request");
        assert_eq!(status, 200, "{body}");
        bodies.push(body);
    }
    assert!(bodies.iter().all(|b| *b == bodies[0]), "one page for all");
    let page: Value = serde_json::from_str(&bodies[0]).expect("json");
    assert_eq!(ids(&page["data"]), vec![a]);
    assert_eq!(series(&app, waiting).await, 0.0);
    (
        series(&app, pages).await - pages_before,
        lookups(&app, "shared").await,
    )
}

#[tokio::test]
async fn misses_of_a_page_being_searched_wait_for_that_search() {
    assert_eq!(
        misses_of_one_page(Refill::Shared, 8).await,
        (1.0, 7),
        "one search, seven answers shared"
    );
    assert_eq!(
        misses_of_one_page(Refill::Each, 8).await,
        (8.0, 0),
        "search.refill = each: every miss searches"
    );
}
