//! The storefront (`assets/storefront/`) in a real browser: `fastpick --role proxy+app` (the
//! binary, which embeds the UI: VM1's process) on real PostgreSQL and Redis, with coupons
//! in every state, a shopper holding an available, a used and an expired coupon, an admin,
//! and access tokens that live 3 s so the UI must refresh them silently. Debian's chromium,
//! driven by playwright-core (`tests/browser/storefront.mjs`), works every flow of issue 14;
//! screenshots land in `target/test-artifacts/storefront/`.

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use crate::helpers::{CouponSpec, TestApp, spawn_app_with, start_vm1};

/// The access-token lifetime the browser must outlive.
const ACCESS_TTL_SECS: u64 = 3;
/// Coupons listed besides the named ones: enough for three pages of twelve.
const FILLER: usize = 24;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Why the browser check cannot run here, if it cannot: no chromium, or no playwright-core.
fn missing_browser() -> Option<String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Some(format!("{chromium} is missing (apt-get install chromium)"));
    }
    if !root()
        .join("tests/browser/node_modules/playwright-core")
        .is_dir()
    {
        return Some(
            "playwright-core is not installed: run `npm ci --prefix tests/browser`".into(),
        );
    }
    None
}

/// Inserts an issued coupon for a user, used or not.
async fn hold(app: &TestApp, user_id: i64, coupon_id: i64, used: bool) {
    sqlx::query(
        "insert into tb_issued_coupon (created_at, user_id, coupon_id, used_at)
         values (now() - interval '1 hour', $1, $2, case when $3 then now() else null end)",
    )
    .bind(user_id)
    .bind(coupon_id)
    .bind(used)
    .execute(&app.db)
    .await
    .expect("insert issued coupon");
}

/// A coupon listed now, with these names.
fn spec<'a>(brand: &'a str, title: &'a str) -> CouponSpec<'a> {
    CouponSpec {
        brand,
        title,
        ..Default::default()
    }
}

/// The coupons of every state and the accounts; returns STOREFRONT_DATA for the script.
async fn seed(app: &TestApp) -> serde_json::Value {
    let brands = [
        "NIKE",
        "HOKA",
        "PATAGONIA",
        "SOTO",
        "KITSUNE",
        "NEW BALANCE",
    ];
    let items = ["스니커즈", "재킷", "팬츠", "티셔츠"];
    for i in 0..FILLER {
        let brand = brands[i % brands.len()];
        let title = format!("[OFF] {brand} {} {i}", items[i % items.len()]);
        app.coupon(CouponSpec {
            issued: (i * 7 % 100) as i32,
            ..spec(brand, &title)
        })
        .await;
    }
    let issuing = app.coupon(spec("NIKE", "[단독] NIKE 스니커즈")).await;
    let unique = app.coupon(spec("ZETA", "[NEW] ZETA 백팩")).await;
    let ready = app
        .coupon(CouponSpec {
            start_h: 24,
            end_h: 48,
            ..spec("HOKA", "[예정] HOKA 러닝화")
        })
        .await;
    let expired = app
        .coupon(CouponSpec {
            start_h: -48,
            end_h: -1,
            ..spec("SOTO", "[LAST] SOTO 팬츠")
        })
        .await;
    let sold_out = app
        .coupon(CouponSpec {
            total: 5,
            issued: 5,
            ..spec("KITSUNE", "[품절] KITSUNE 티셔츠")
        })
        .await;
    let last_one = app
        .coupon(CouponSpec {
            total: 1,
            ..spec("PATAGONIA", "[한정] PATAGONIA 재킷")
        })
        .await;
    // The shopper's holdings: available, used, expired.
    let (shopper, _) = app.user("shopper@test.kr", "USER").await;
    app.user("admin@test.kr", "ADMIN").await;
    let available_title = "[보유] APC 가디건";
    let held = app.coupon(spec("A.P.C.", available_title)).await;
    let used = app.coupon(spec("NIKE", "[사용] NIKE 양말")).await;
    let gone = app
        .coupon(CouponSpec {
            start_h: -72,
            end_h: -2,
            ..spec("HOKA", "[만료] HOKA 모자")
        })
        .await;
    hold(app, shopper, held, false).await;
    hold(app, shopper, used, true).await;
    hold(app, shopper, gone, false).await;
    let listed = app.get("/api/v1/coupons?size=1", None).await.data()["totalElements"]
        .as_u64()
        .expect("totalElements");
    let account =
        |email: &str| json!({"email": email, "password": "password123", "name": "tester"});
    json!({
        "issuing": issuing, "ready": ready, "expired": expired, "soldOut": sold_out,
        "lastOne": last_one, "uniqueBrand": "ZETA", "listed": listed,
        "ttl": ACCESS_TTL_SECS, "shopper": account("shopper@test.kr"),
        "admin": account("admin@test.kr"),
        "shopperTitles": {"available": available_title},
        "unique": unique,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_storefront_works_every_flow_in_a_real_browser() {
    if let Some(why) = missing_browser() {
        assert!(
            std::env::var_os("CI").is_none(),
            "the storefront browser test cannot run in CI: {why}"
        );
        eprintln!("skipping the storefront browser test: {why}");
        return;
    }
    // Arrange: the data, written through an app of the test's own; then VM1's process,
    // `fastpick --role proxy+app`, on the same database and Redis, its tokens living 3 s.
    let app = spawn_app_with(|_| {}).await;
    let data = seed(&app).await;
    let proxy = start_vm1(
        &app,
        "",
        &format!("access_token_ttl = \"{ACCESS_TTL_SECS}s\"\n"),
    )
    .await;
    let artifacts = root().join("target/test-artifacts/storefront");
    // No screenshot of an earlier run (a FAILED-* one above all) may pass for this one's.
    let _ = std::fs::remove_dir_all(&artifacts);
    std::fs::create_dir_all(&artifacts).expect("artifact dir");

    // Act: the browser works every flow (the script bounds itself to 5 minutes).
    let run = tokio::process::Command::new("node")
        .arg(root().join("tests/browser/storefront.mjs"))
        .env("BASE_URL", &proxy.base)
        .env("ARTIFACT_DIR", &artifacts)
        .env("STOREFRONT_DATA", data.to_string())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(360), run)
        .await
        .expect("the browser check ends within 6 minutes")
        .expect("node runs");

    // Assert
    assert!(
        out.status.success(),
        "the storefront browser check failed ({}); screenshots in {}:\n{}\n{}",
        out.status,
        artifacts.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    drop(proxy);
    app.stop().await.expect("app stops");
}

/// `app.storefront` (the demo's setting): one port serves the shop and the API, routed as the
/// proxy routes them.
#[tokio::test]
async fn the_app_serves_the_shop_beside_the_api_when_asked() {
    let app = spawn_app_with(|s| s.app.storefront = true).await;
    let client = reqwest::Client::new();
    let get = |path: &str| client.get(format!("{}{path}", app.base)).send();
    let index = get("/").await.expect("sent");
    assert_eq!(index.status(), 200);
    assert!(
        index.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = index.text().await.expect("html");
    assert!(html.contains("<script type=\"module\""), "{html}");
    // A deep link reloads into the shop; hashed files are cached for good.
    let deep = get("/coupon/19").await.expect("sent");
    assert_eq!(deep.status(), 200);
    assert_eq!(deep.text().await.expect("html"), html);
    let script = html
        .split("<script type=\"module\" src=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a module script");
    let js = get(script).await.expect("sent");
    assert_eq!(js.status(), 200);
    assert!(
        js.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    // The API and the actuator stay the API's, unknown paths there included.
    assert_eq!(app.get("/api/v1/coupons", None).await.status, 200);
    app.get("/api/v1/nothing", None)
        .await
        .assert_error(404, "C007");
    app.get("/api", None).await.assert_error(404, "C007");
    assert_eq!(app.get("/actuator/health", None).await.status, 200);
    // A missing file is the envelope's 404, a POST to the shop 405.
    app.get("/missing.js", None).await.assert_error(404, "C007");
    app.post("/", None, json!({}))
        .await
        .assert_error(405, "C008");

    // Off (the default), the API answers every path.
    let plain = crate::helpers::spawn_app().await;
    plain.get("/", None).await.assert_error(404, "C007");
}
