//! Coupon list, search, filters, paging and detail.

use serde_json::Value;

use crate::helpers::{CouponSpec, TestApp, ids, spawn_app};

async fn list(app: &TestApp, query: &str) -> Value {
    app.get(&format!("/api/v1/coupons?{query}"), None)
        .await
        .data()
        .clone()
}

#[tokio::test]
async fn list_has_one_row_per_coupon_newest_first_including_keywordless_ones() {
    let app = spawn_app().await;
    let a = app
        .coupon(CouponSpec {
            brand: "NEW BALANCE",
            title: "[OFF] NEW BALANCE 팬츠",
            ..Default::default()
        })
        .await;
    let b = app
        .coupon(CouponSpec {
            brand: "A",
            title: "1 2 3",
            ..Default::default()
        })
        .await;
    let page = list(&app, "").await;
    assert_eq!(ids(&page), vec![b, a]);
    assert_eq!(page["totalElements"], 2);
    for key in [
        "content",
        "pageable",
        "last",
        "totalPages",
        "totalElements",
        "size",
        "number",
        "sort",
        "first",
        "numberOfElements",
        "empty",
    ] {
        assert!(page.get(key).is_some(), "page key {key} missing");
    }
    let item = &page["content"][1];
    assert_eq!(item["brand"], "NEW BALANCE");
    assert_eq!(item["summary"], "summary");
    assert_eq!(item["status"], "ISSUING");
    let start = item["startAt"].as_str().expect("startAt");
    assert_eq!(start.len(), 19, "yyyy-MM-ddTHH:mm:ss, got {start}");
    assert_eq!(&start[10..11], "T");
}

#[tokio::test]
async fn search_is_trimmed_case_insensitive_prefix_per_word_with_literal_wildcards() {
    let app = spawn_app().await;
    let nike = app
        .coupon(CouponSpec {
            brand: "NIKE",
            title: "[단독] NIKE 스니커즈",
            ..Default::default()
        })
        .await;
    let nb = app
        .coupon(CouponSpec {
            brand: "NEW BALANCE",
            title: "[LAST] NEW BALANCE 백팩",
            ..Default::default()
        })
        .await;
    let hoka = app
        .coupon(CouponSpec {
            brand: "HOKA",
            title: "[NEW] HOKA 스니커즈",
            ..Default::default()
        })
        .await;
    let cases: [(&str, Vec<i64>); 10] = [
        ("search=NIKE", vec![nike]),
        ("search=+nike+", vec![nike]),
        ("search=ni", vec![nike]),
        ("search=N", vec![hoka, nb, nike]),
        ("search=%EC%8A%A4%EB%8B%88", vec![hoka, nike]),
        ("search=new+%EC%8A%A4%EB%8B%88", vec![hoka]),
        ("search=new+balance", vec![nb]),
        ("search=%25", vec![]),
        ("search=_", vec![]),
        ("search=", vec![hoka, nb, nike]),
    ];
    for (query, expected) in cases {
        let page = list(&app, query).await;
        assert_eq!(ids(&page), expected, "query {query}");
        assert_eq!(page["totalElements"], expected.len(), "query {query}");
    }
}

#[tokio::test]
async fn bad_search_and_filter_are_400_c001_reported_together() {
    let app = spawn_app().await;
    let long = "가".repeat(51);
    let r = app
        .get(
            &format!("/api/v1/coupons?search={long}&filterType=FOO"),
            None,
        )
        .await;
    let errors = r.assert_error(400, "C001");
    let fields: Vec<&str> = errors.iter().filter_map(|e| e["field"].as_str()).collect();
    assert!(
        fields.contains(&"search") && fields.contains(&"filterType"),
        "{errors:?}"
    );
    let ok = app
        .get(
            &format!(
                "/api/v1/coupons?search=+{}+&filterType=+ISSUING+",
                "가".repeat(50)
            ),
            None,
        )
        .await;
    assert_eq!(
        ok.status, 200,
        "50 characters after trimming are allowed: {:?}",
        ok.body
    );
    app.get("/api/v1/coupons?filterType=issuing", None)
        .await
        .assert_error(400, "C001");
    app.get("/api/v1/coupons?search=a%00b", None)
        .await
        .assert_error(400, "C001");
}

#[tokio::test]
async fn filter_types_follow_the_one_status_rule() {
    let app = spawn_app().await;
    let issuing = app.coupon(CouponSpec::default()).await;
    let ready = app
        .coupon(CouponSpec {
            start_h: 2,
            end_h: 30,
            ..Default::default()
        })
        .await;
    let expired = app
        .coupon(CouponSpec {
            start_h: -30,
            end_h: -2,
            ..Default::default()
        })
        .await;
    let exhausted = app
        .coupon(CouponSpec {
            total: 5,
            issued: 5,
            ..Default::default()
        })
        .await;
    app.coupon(CouponSpec {
        use_status: "DISABLED",
        ..Default::default()
    })
    .await;
    let cases = [
        ("filterType=ALL", vec![exhausted, expired, ready, issuing]),
        ("filterType=", vec![exhausted, expired, ready, issuing]),
        ("filterType=READY", vec![ready]),
        ("filterType=ISSUING", vec![issuing]),
        ("filterType=CLOSED", vec![exhausted, expired]),
    ];
    for (query, expected) in cases {
        assert_eq!(ids(&list(&app, query).await), expected, "{query}");
    }
    let page = list(&app, "").await;
    let statuses: Vec<&str> = page["content"]
        .as_array()
        .expect("content")
        .iter()
        .filter_map(|c| c["status"].as_str())
        .collect();
    assert_eq!(statuses, vec!["EXHAUSTED", "EXPIRED", "READY", "ISSUING"]);
}

#[tokio::test]
async fn paging_clamps_like_spring_and_reports_the_last_page() {
    let app = spawn_app().await;
    let mut all = Vec::new();
    for _ in 0..5 {
        all.push(app.coupon(CouponSpec::default()).await);
    }
    all.reverse();
    let p0 = list(&app, "page=0&size=2").await;
    assert_eq!(
        (ids(&p0), p0["last"].clone(), p0["totalPages"].clone()),
        (all[0..2].to_vec(), Value::Bool(false), Value::from(3))
    );
    let p2 = list(&app, "page=2&size=2").await;
    assert_eq!(
        (ids(&p2), p2["last"].clone()),
        (all[4..5].to_vec(), Value::Bool(true))
    );
    let past = list(&app, "page=9&size=2").await;
    assert_eq!(
        (
            past["empty"].clone(),
            past["last"].clone(),
            past["totalElements"].clone()
        ),
        (Value::Bool(true), Value::Bool(true), Value::from(5))
    );
    let clamped = list(&app, "page=-1&size=0").await;
    assert_eq!(
        (clamped["number"].clone(), clamped["size"].clone()),
        (Value::from(0), Value::from(10))
    );
    let big = list(&app, "size=100000").await;
    assert_eq!(big["size"], 2000);
    let sorted = list(&app, "sort=id,desc").await;
    assert_eq!(sorted["sort"]["sorted"], true);
}

#[tokio::test]
async fn detail_shows_description_without_summary_and_hides_disabled_coupons() {
    let app = spawn_app().await;
    let id = app
        .coupon(CouponSpec {
            total: 10,
            issued: 3,
            ..Default::default()
        })
        .await;
    let disabled = app
        .coupon(CouponSpec {
            use_status: "DISABLED",
            ..Default::default()
        })
        .await;
    let r = app.get(&format!("/api/v1/coupons/{id}"), None).await;
    let d = r.data();
    assert_eq!(
        (
            d["id"].as_i64(),
            d["description"].as_str(),
            d["issuedQuantity"].as_i64()
        ),
        (Some(id), Some("description"), Some(3))
    );
    assert!(d.get("summary").is_none(), "detail has no summary: {d}");
    assert_eq!(d["status"], "ISSUING");
    app.get(&format!("/api/v1/coupons/{disabled}"), None)
        .await
        .assert_error(404, "CP01");
    app.get("/api/v1/coupons/999999", None)
        .await
        .assert_error(404, "CP01");
    app.get("/api/v1/coupons/abc", None)
        .await
        .assert_error(400, "C002");
    app.get("/api/v1/coupons/99999999999999999999", None)
        .await
        .assert_error(400, "C002");
}
