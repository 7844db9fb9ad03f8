//! Coupon creation: ADMIN only, validated, keywords stored normalised.

use serde_json::{Value, json};

use crate::helpers::spawn_app;

fn body() -> Value {
    json!({"brand": "나이키", "title": "[특가] Air Force 1", "summary": "요약", "description": "설명",
        "totalQuantity": 100, "startAt": "2026-01-02T00:00:00", "endAt": "2099-01-08T00:00:00"})
}

#[tokio::test]
async fn only_admins_create_coupons_and_keywords_are_searchable() {
    let app = spawn_app().await;
    let (_, user) = app.user("user@test.kr", "USER").await;
    let (_, admin) = app.user("admin@test.kr", "ADMIN").await;
    let path = "/api/v1/admin/coupons";
    app.post(path, None, body()).await.assert_error(401, "C003");
    app.post(path, Some(&user), body())
        .await
        .assert_error(403, "C004");
    let r = app.post(path, Some(&admin), body()).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let id = r.body["data"].as_i64().expect("coupon id");
    let location = r
        .headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    assert_eq!(location, Some(format!("/api/v1/admin/coupons/{id}")));
    let mut keywords: Vec<String> =
        sqlx::query_scalar("select keyword from tb_coupon_keyword where coupon_id = $1")
            .bind(id)
            .fetch_all(&app.db)
            .await
            .expect("keywords");
    keywords.sort();
    assert_eq!(keywords, vec!["air", "force", "나이키", "특가"]);
    let found = app.get("/api/v1/coupons?search=AIR+forc", None).await;
    assert_eq!(found.data()["content"][0]["id"].as_i64(), Some(id));
    let detail = app.get(&format!("/api/v1/coupons/{id}"), None).await;
    assert_eq!(detail.data()["startAt"], "2026-01-02T00:00:00");
}

#[tokio::test]
async fn invalid_coupons_are_rejected_with_the_field_named() {
    let app = spawn_app().await;
    let (_, admin) = app.user("admin2@test.kr", "ADMIN").await;
    let path = "/api/v1/admin/coupons";
    let with = |key: &str, value: Value| {
        let mut b = body();
        b[key] = value;
        b
    };
    let c001 = [
        (with("brand", json!(" ")), "brand"),
        (with("brand", json!("가".repeat(31))), "brand"),
        (with("title", json!("t".repeat(101))), "title"),
        (with("summary", json!(null)), "summary"),
        (with("totalQuantity", json!(0)), "totalQuantity"),
        (
            with("totalQuantity", json!(3_000_000_000i64)),
            "totalQuantity",
        ),
        (with("endAt", json!("2026-01-01T00:00:00")), "endAt"),
        (with("startAt", json!(null)), "startAt"),
        (with("description", json!("nul\u{0}")), "description"),
    ];
    for (b, field) in c001 {
        let errors = app
            .post(path, Some(&admin), b.clone())
            .await
            .assert_error(400, "C001");
        assert!(
            errors.iter().any(|e| e["field"] == field),
            "{field} not named for {b}: {errors:?}"
        );
    }
    let c002 = [
        (with("startAt", json!("2026-01-02 00:00:00")), "startAt"),
        (with("endAt", json!("2099-01-08T00:00:00Z")), "endAt"),
        (with("totalQuantity", json!("many")), "totalQuantity"),
    ];
    for (b, field) in c002 {
        let errors = app
            .post(path, Some(&admin), b.clone())
            .await
            .assert_error(400, "C002");
        assert_eq!(errors[0]["field"], field, "{b}");
    }
    let count: i64 = sqlx::query_scalar("select count(*) from tb_coupon")
        .fetch_one(&app.db)
        .await
        .expect("count");
    assert_eq!(count, 0, "nothing half-written");
}

/// The current `fastpick_experiment_info` label set with value 1.
async fn experiment_in_metrics(app: &crate::helpers::TestApp) -> String {
    let text = app.metrics_text().await;
    text.lines()
        .find(|l| l.starts_with("fastpick_experiment_info{") && l.ends_with(" 1"))
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn switching_the_experiment_is_off_unless_configured() {
    let app = spawn_app().await;
    let (_, admin) = app.user("admin@test.kr", "ADMIN").await;
    let path = "/api/v1/admin/experiment";
    let r = app.get(path, Some(&admin)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.data()["switchable"], false);
    let strategy = r.data()["issueStrategy"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let change = json!({"issueStrategy": "db-atomic", "searchCache": "redis"});
    app.send(reqwest::Method::PUT, path, Some(&admin), Some(&change))
        .await
        .assert_error(403, "C004");
    assert_eq!(
        app.get(path, Some(&admin)).await.data()["issueStrategy"],
        strategy
    );
}

#[tokio::test]
async fn an_admin_switches_strategy_and_cache_and_the_metrics_show_it() {
    let app = crate::helpers::spawn_app_with(|s| {
        s.app.experiment_switch = true;
        s.issue.strategy = fastpick::config::IssueStrategy::DbLock;
        s.search.cache = fastpick::config::SearchCache::Off;
    })
    .await;
    let (_, user) = app.user("user@test.kr", "USER").await;
    let (_, admin) = app.user("admin@test.kr", "ADMIN").await;
    let path = "/api/v1/admin/experiment";
    let put = |token: Option<String>, body: Value| {
        let app = &app;
        async move {
            app.send(reqwest::Method::PUT, path, token.as_deref(), Some(&body))
                .await
        }
    };
    assert!(
        experiment_in_metrics(&app)
            .await
            .contains("strategy=\"db-lock\"")
    );
    put(None, json!({"issueStrategy": "redis-gate"}))
        .await
        .assert_error(401, "C003");
    put(Some(user.clone()), json!({"issueStrategy": "redis-gate"}))
        .await
        .assert_error(403, "C004");
    app.get(path, Some(&user)).await.assert_error(403, "C004");
    let errors = put(
        Some(admin.clone()),
        json!({"issueStrategy": "fastest", "searchCache": "on"}),
    )
    .await
    .assert_error(400, "C001");
    let fields: Vec<&str> = errors.iter().filter_map(|e| e["field"].as_str()).collect();
    assert_eq!(fields, ["issueStrategy", "searchCache"]);
    // Found by schemathesis: an array was read as the fields in order, and kept everything.
    put(Some(admin.clone()), json!([null, null]))
        .await
        .assert_error(400, "C002");

    let r = put(Some(admin.clone()), json!({"issueStrategy": "redis-gate"})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        r.data(),
        &json!({"issueStrategy": "redis-gate", "searchCache": "off", "switchable": true})
    );
    let info = experiment_in_metrics(&app).await;
    assert!(
        info.contains("strategy=\"redis-gate\"") && info.contains("search_cache=\"off\""),
        "{info}"
    );
    // The next issue goes through the gate.
    let coupon = app.coupon(crate::helpers::CouponSpec::default()).await;
    let r = app
        .post(
            "/api/v1/coupon-issues",
            Some(&user),
            json!({"couponId": coupon}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let text = app.metrics_text().await;
    assert!(
        text.lines()
            .any(|l| l.starts_with("fastpick_issue_requests_total{")
                && l.contains("strategy=\"redis-gate\"")
                && l.contains("outcome=\"issued\"")),
        "{text}"
    );
    // The cache alone; the strategy stays.
    let r = put(Some(admin.clone()), json!({"searchCache": "redis"})).await;
    assert_eq!(r.data()["issueStrategy"], "redis-gate");
    assert_eq!(r.data()["searchCache"], "redis");
    app.get("/api/v1/coupons", None).await;
    let text = app.metrics_text().await;
    assert!(
        text.lines()
            .any(|l| l.starts_with("fastpick_search_cache_lookups_total{") && l.contains("miss")),
        "a search looks in the cache once it is on: {text}"
    );
}
