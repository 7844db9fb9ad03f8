//! Issuing: every error code in the contract's order, and exactness under concurrency.

use std::sync::Arc;

use serde_json::json;

use crate::helpers::{CouponSpec, TestApp, spawn_app};

async fn issue(app: &TestApp, token: &str, coupon_id: i64) -> crate::helpers::Reply {
    app.post(
        "/api/v1/coupon-issues",
        Some(token),
        json!({"couponId": coupon_id}),
    )
    .await
}

async fn counts(app: &TestApp, coupon_id: i64) -> (i64, i32) {
    let rows: i64 =
        sqlx::query_scalar("select count(*) from tb_issued_coupon where coupon_id = $1")
            .bind(coupon_id)
            .fetch_one(&app.db)
            .await
            .expect("count");
    let issued: i32 = sqlx::query_scalar("select issued_quantity from tb_coupon where id = $1")
        .bind(coupon_id)
        .fetch_one(&app.db)
        .await
        .expect("coupon");
    (rows, issued)
}

#[tokio::test]
async fn issuing_returns_the_new_id_and_counts_it() {
    let app = spawn_app().await;
    let (user_id, token) = app.user("one@test.kr", "USER").await;
    let coupon = app
        .coupon(CouponSpec {
            total: 2,
            ..Default::default()
        })
        .await;
    let r = issue(&app, &token, coupon).await;
    let issued_id = r.data().as_i64().expect("issued id");
    let (owner, held): (i64, i64) =
        sqlx::query_as("select user_id, coupon_id from tb_issued_coupon where id = $1")
            .bind(issued_id)
            .fetch_one(&app.db)
            .await
            .expect("issued row");
    assert_eq!((owner, held), (user_id, coupon));
    assert_eq!(counts(&app, coupon).await, (1, 1));
}

#[tokio::test]
async fn bad_issue_requests_get_4xx_envelopes() {
    let app = spawn_app().await;
    let (_, token) = app.user("bad@test.kr", "USER").await;
    let path = "/api/v1/coupon-issues";
    let errors = app
        .post(path, Some(&token), json!({}))
        .await
        .assert_error(400, "C001");
    assert_eq!(errors[0]["field"], "couponId");
    app.post(path, Some(&token), json!({"couponId": null}))
        .await
        .assert_error(400, "C001");
    let errors = app
        .post(path, Some(&token), json!({"couponId": "abc"}))
        .await
        .assert_error(400, "C002");
    assert_eq!(errors[0]["field"], "couponId");
    // Kept from Jackson: an integral float and a numeric string are integers.
    app.post(path, Some(&token), json!({"couponId": 77.0}))
        .await
        .assert_error(404, "CP01");
    app.post(path, Some(&token), json!({"couponId": "77"}))
        .await
        .assert_error(404, "CP01");
    // An array is not an object, though serde would read it field by field (as CP01 here).
    let errors = app
        .post(path, Some(&token), json!([77]))
        .await
        .assert_error(400, "C002");
    assert_eq!(errors[0]["field"], "body");
    // Not kept: a fraction was truncated to some other coupon's id.
    let errors = app
        .post(path, Some(&token), json!({"couponId": 1.5}))
        .await
        .assert_error(400, "C002");
    assert_eq!(errors[0]["field"], "couponId");
    app.send_raw(
        reqwest::Method::POST,
        path,
        Some(&token),
        "application/json",
        "{\"couponId\":",
    )
    .await
    .assert_error(400, "C001");
    app.send_raw(
        reqwest::Method::POST,
        path,
        Some(&token),
        "text/plain",
        "{\"couponId\":1}",
    )
    .await
    .assert_error(415, "C006");
    app.post(path, None, json!({"couponId": 1}))
        .await
        .assert_error(401, "C003");
    app.get(path, Some(&token)).await.assert_error(405, "C008");
}

/// Fires one issue request per token at the same moment and returns the statuses and codes.
async fn race(app: &TestApp, tokens: Vec<String>, coupon: i64) -> Vec<(u16, String)> {
    let barrier = Arc::new(tokio::sync::Barrier::new(tokens.len()));
    let mut handles = Vec::new();
    for token in tokens {
        let (client, url, barrier) = (
            app.client.clone(),
            format!("{}/api/v1/coupon-issues", app.base),
            barrier.clone(),
        );
        handles.push(tokio::spawn(async move {
            barrier.wait().await;
            let resp = client
                .post(url)
                .bearer_auth(token)
                .json(&json!({"couponId": coupon}))
                .send()
                .await
                .expect("sent");
            let status = resp.status().as_u16();
            let body: serde_json::Value = resp.json().await.expect("json");
            (status, body["code"].as_str().unwrap_or("").to_owned())
        }));
    }
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_users_racing_for_ten_coupons_get_exactly_ten() {
    let app = spawn_app().await;
    let coupon = app
        .coupon(CouponSpec {
            total: 10,
            ..Default::default()
        })
        .await;
    let tokens = app.users(100).await;
    let results = race(&app, tokens, coupon).await;
    let ok = results.iter().filter(|(s, _)| *s == 200).count();
    let sold_out = results
        .iter()
        .filter(|(s, c)| *s == 400 && c == "CP04")
        .count();
    assert_eq!((ok, sold_out), (10, 90), "{results:?}");
    assert_eq!(counts(&app, coupon).await, (10, 10));
    let flag: bool = sqlx::query_scalar("select is_sold_out from tb_coupon where id = $1")
        .bind(coupon)
        .fetch_one(&app.db)
        .await
        .expect("flag");
    assert!(flag);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_user_ten_times_at_once_gets_exactly_one() {
    let app = spawn_app().await;
    let coupon = app
        .coupon(CouponSpec {
            total: 100,
            ..Default::default()
        })
        .await;
    let (_, token) = app.user("greedy@test.kr", "USER").await;
    let results = race(&app, vec![token; 10], coupon).await;
    let ok = results.iter().filter(|(s, _)| *s == 200).count();
    let dup = results
        .iter()
        .filter(|(s, c)| *s == 400 && c == "CP05")
        .count();
    assert_eq!((ok, dup), (1, 9), "{results:?}");
    assert_eq!(counts(&app, coupon).await, (1, 1));
}
