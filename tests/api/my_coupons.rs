//! The holder's list: order, status filters, search, paging.

use serde_json::json;

use crate::helpers::{CouponSpec, spawn_app};

#[tokio::test]
async fn my_coupons_are_newest_first_with_status_filters_and_title_search() {
    let app = spawn_app().await;
    let (user_id, token) = app.user("mine@test.kr", "USER").await;
    let (_, stranger) = app.user("stranger@test.kr", "USER").await;
    let nike = app
        .coupon(CouponSpec {
            title: "[단독] NIKE 스니커즈",
            ..Default::default()
        })
        .await;
    let hoka = app
        .coupon(CouponSpec {
            brand: "HOKA",
            title: "[OFF] HOKA 100% 팬츠",
            ..Default::default()
        })
        .await;
    let old = app
        .coupon(CouponSpec {
            brand: "SOTO",
            title: "[LAST] SOTO 백팩",
            start_h: -48,
            end_h: -24,
            ..Default::default()
        })
        .await;
    for id in [nike, hoka] {
        app.post(
            "/api/v1/coupon-issues",
            Some(&token),
            json!({"couponId": id}),
        )
        .await
        .data();
    }
    app.post(
        "/api/v1/coupon-issues",
        Some(&stranger),
        json!({"couponId": nike}),
    )
    .await
    .data();
    // An expired one, issued while it was valid.
    sqlx::query("insert into tb_issued_coupon (created_at, user_id, coupon_id) values (now() - interval '30 hours', $1, $2)")
        .bind(user_id)
        .bind(old)
        .execute(&app.db)
        .await
        .expect("insert issued");
    let coupon_ids = |q: &str| {
        let (app, token, q) = (&app, &token, q.to_owned());
        async move {
            let r = app
                .get(&format!("/api/v1/my/coupons?{q}"), Some(token))
                .await;
            let data = r.data().clone();
            let ids: Vec<i64> = data["content"]
                .as_array()
                .expect("content")
                .iter()
                .map(|c| c["couponId"].as_i64().expect("id"))
                .collect();
            (ids, data)
        }
    };
    let (all, page) = coupon_ids("").await;
    assert_eq!(all, vec![hoka, nike, old]);
    assert_eq!(page["totalElements"], 3);
    let first = &page["content"][0];
    assert_eq!(
        (
            first["status"].as_str(),
            first["brand"].as_str(),
            first["issuedQuantity"].as_i64()
        ),
        (Some("AVAILABLE"), Some("HOKA"), Some(1))
    );
    assert_eq!(first["expireAt"].as_str().map(str::len), Some(19));
    assert_eq!(coupon_ids("status=AVAILABLE").await.0, vec![hoka, nike]);
    assert_eq!(coupon_ids("status=EXPIRED").await.0, vec![old]);
    assert!(coupon_ids("status=USED").await.0.is_empty());
    assert_eq!(coupon_ids("search=nike").await.0, vec![nike]);
    assert_eq!(coupon_ids("search=100%25").await.0, vec![hoka]);
    assert_eq!(coupon_ids("search=%25%25").await.0, Vec::<i64>::new());
    let (second, paged) = coupon_ids("page=1&size=2").await;
    assert_eq!((second, paged["last"].as_bool()), (vec![old], Some(true)));
    app.get("/api/v1/my/coupons?status=GONE", Some(&token))
        .await
        .assert_error(400, "C001");
    app.get("/api/v1/my/coupons?search=%00", Some(&token))
        .await
        .assert_error(400, "C001");
}
