//! Sign-up, login, refresh and token handling.

use reqwest::Method;
use serde_json::json;

use crate::helpers::spawn_app;
use fastpick::token::{Claims, TokenKind};

#[tokio::test]
async fn signup_returns_tokens_and_the_user_in_the_envelope() {
    let app = spawn_app().await;
    let r = app
        .post(
            "/api/v1/auth/signup",
            None,
            json!({"email": "kim@test.kr", "password": "password123", "name": "김철수"}),
        )
        .await;
    let data = r.data();
    assert_eq!(data["grantType"], "Bearer");
    assert_eq!(data["user"]["email"], "kim@test.kr");
    assert_eq!(data["user"]["name"], "김철수");
    assert!(data["user"]["id"].as_i64().is_some_and(|id| id > 0));
    let access = data["accessToken"].as_str().expect("access token");
    let me = app.get("/api/v1/my/coupons", Some(access)).await;
    assert_eq!(me.status, 200, "{:?}", me.body);
    let stored: String =
        sqlx::query_scalar("select password from tb_user where email = 'kim@test.kr'")
            .fetch_one(&app.db)
            .await
            .expect("user row");
    assert!(
        stored.starts_with("$2a$"),
        "bcrypt $2a$ hash expected, got {stored}"
    );
}

#[tokio::test]
async fn signup_rejects_bad_fields_with_c001_and_never_echoes_the_password() {
    let app = spawn_app().await;
    let cases = [
        (
            json!({"email": "", "password": "short7!", "name": "x"}),
            vec!["email", "password"],
        ),
        (
            json!({"email": "not-an-email", "password": "password123", "name": " "}),
            vec!["email", "name"],
        ),
        (json!({"password": "password123"}), vec!["email", "name"]),
        (
            json!({"email": "a@b.c", "password": "가".repeat(25), "name": "n"}),
            vec!["password"],
        ),
        (
            json!({"email": format!("{}@b.c", "a".repeat(100)), "password": "password123", "name": "n"}),
            vec!["email"],
        ),
        (
            json!({"email": "a@b.c", "password": "password123", "name": "n".repeat(51)}),
            vec!["name"],
        ),
        (
            json!({"email": "a@b.c", "password": "pass\u{0}word123", "name": "a\u{0}b"}),
            vec!["password", "name"],
        ),
    ];
    for (body, fields) in cases {
        let r = app.post("/api/v1/auth/signup", None, body.clone()).await;
        let errors = r.assert_error(400, "C001");
        let mut got: Vec<&str> = errors.iter().filter_map(|e| e["field"].as_str()).collect();
        got.dedup();
        for field in &fields {
            assert!(got.contains(field), "{field} missing in {got:?} for {body}");
        }
        for e in &errors {
            if e["field"] == "password" {
                assert_eq!(e["value"], "", "password echoed for {body}");
            }
        }
    }
}

#[tokio::test]
async fn a_huge_rejected_value_comes_back_as_a_short_prefix() {
    let app = spawn_app().await;
    let name = "가".repeat(300_000);
    let reply = app
        .post(
            "/api/v1/auth/signup",
            None,
            json!({"email": "huge@x.kr", "password": "password123", "name": name}),
        )
        .await;
    let errors = reply.assert_error(400, "C001");
    let echoed = errors
        .iter()
        .find(|e| e["field"] == "name")
        .and_then(|e| e["value"].as_str())
        .expect("name error");
    assert!(
        echoed.chars().count() <= 65,
        "{} chars",
        echoed.chars().count()
    );
    assert!(name.starts_with(echoed.trim_end_matches('…')));
}

#[tokio::test]
async fn signup_refuses_a_number_or_boolean_for_a_text_field_with_c002() {
    let app = spawn_app().await;
    let cases = [
        (
            json!({"email": "num@test.kr", "password": 12345678, "name": "n"}),
            "password",
        ),
        (
            json!({"email": "num@test.kr", "password": "password123", "name": 42}),
            "name",
        ),
        (
            json!({"email": "num@test.kr", "password": "password123", "name": true}),
            "name",
        ),
    ];
    for (body, field) in cases {
        let r = app.post("/api/v1/auth/signup", None, body.clone()).await;
        let errors = r.assert_error(400, "C002");
        assert_eq!(errors[0]["field"], field, "for {body}");
        assert_eq!(errors[0]["value"], "", "value echoed for {body}");
    }
}

#[tokio::test]
async fn signup_counts_password_length_in_characters() {
    let app = spawn_app().await;
    // Four emoji are eight UTF-16 units but four characters.
    let short = json!({"email": "emoji@test.kr", "password": "😀😀😀😀", "name": "e"});
    let errors = app
        .post("/api/v1/auth/signup", None, short)
        .await
        .assert_error(400, "C001");
    assert_eq!(errors[0]["field"], "password");
    let long = json!({"email": "emoji@test.kr", "password": "😀😀😀😀😀😀😀😀", "name": "e"});
    let r = app.post("/api/v1/auth/signup", None, long).await;
    assert_eq!(r.data()["user"]["email"], "emoji@test.kr");
}

#[tokio::test]
async fn signup_with_a_taken_email_is_409_u002_even_when_racing() {
    let app = spawn_app().await;
    let body = json!({"email": "dup@test.kr", "password": "password123", "name": "dup"});
    let mut handles = Vec::new();
    for _ in 0..8 {
        let (client, url, body) = (
            app.client.clone(),
            format!("{}/api/v1/auth/signup", app.base),
            body.clone(),
        );
        handles.push(tokio::spawn(async move {
            client
                .post(url)
                .json(&body)
                .send()
                .await
                .map(|r| r.status().as_u16())
        }));
    }
    let mut statuses = Vec::new();
    for h in handles {
        statuses.push(h.await.expect("task").expect("response"));
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        7,
        "{statuses:?}"
    );
    app.post("/api/v1/auth/signup", None, body)
        .await
        .assert_error(409, "U002");
}

#[tokio::test]
async fn login_needs_the_right_password_and_answers_a003_otherwise() {
    let app = spawn_app().await;
    app.post(
        "/api/v1/auth/signup",
        None,
        json!({"email": "lee@test.kr", "password": "password123", "name": "lee"}),
    )
    .await
    .data();
    let ok = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "lee@test.kr", "password": "password123"}),
        )
        .await;
    assert_eq!(ok.data()["user"]["email"], "lee@test.kr");
    app.post(
        "/api/v1/auth/login",
        None,
        json!({"email": "lee@test.kr", "password": "password124"}),
    )
    .await
    .assert_error(401, "A003");
    app.post(
        "/api/v1/auth/login",
        None,
        json!({"email": "nobody@test.kr", "password": "password123"}),
    )
    .await
    .assert_error(401, "A003");
    let errors = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "bad", "password": ""}),
        )
        .await
        .assert_error(400, "C001");
    assert_eq!(errors.len(), 2, "{errors:?}");
}

#[tokio::test]
async fn refresh_rotates_the_pair_and_the_old_refresh_token_stops_working() {
    let app = spawn_app().await;
    let signup = app
        .post(
            "/api/v1/auth/signup",
            None,
            json!({"email": "park@test.kr", "password": "password123", "name": "park"}),
        )
        .await;
    let first = signup.data()["refreshToken"]
        .as_str()
        .expect("refresh")
        .to_owned();
    let r = app
        .post("/api/v1/auth/refresh", None, json!({"refreshToken": first}))
        .await;
    let second = r.data()["refreshToken"]
        .as_str()
        .expect("refresh")
        .to_owned();
    let access = r.data()["accessToken"].as_str().expect("access").to_owned();
    assert_ne!(first, second);
    assert_eq!(
        app.get("/api/v1/my/coupons", Some(&access)).await.status,
        200
    );
    app.post("/api/v1/auth/refresh", None, json!({"refreshToken": first}))
        .await
        .assert_error(401, "A001");
    app.post(
        "/api/v1/auth/refresh",
        None,
        json!({"refreshToken": second.clone()}),
    )
    .await
    .data();
    app.post(
        "/api/v1/auth/refresh",
        None,
        json!({"refreshToken": access}),
    )
    .await
    .assert_error(401, "A001");
    app.post("/api/v1/auth/refresh", None, json!({}))
        .await
        .assert_error(400, "C001");
}

#[tokio::test]
async fn protected_routes_tell_missing_invalid_expired_and_refresh_tokens_apart() {
    let app = spawn_app().await;
    let (id, access) = app.user("auth@test.kr", "USER").await;
    let refresh = app
        .tokens
        .issue_pair(id, "auth@test.kr", "USER")
        .expect("pair")
        .refresh;
    let now = chrono::Utc::now().timestamp();
    let claims = |typ, exp| Claims {
        sub: "auth@test.kr".into(),
        auth: "ROLE_USER".into(),
        iat: now - 100,
        exp,
        typ,
        jti: "x".into(),
        uid: None,
    };
    let expired = app.sign(&claims(TokenKind::Access, now - 10));
    let mut tampered = access.clone();
    tampered.insert(tampered.len() / 2, 'x');
    let path = "/api/v1/my/coupons";
    app.get(path, None).await.assert_error(401, "C003");
    app.get(path, Some(&tampered))
        .await
        .assert_error(401, "A001");
    app.get(path, Some(&expired))
        .await
        .assert_error(401, "A002");
    app.get(path, Some(&refresh))
        .await
        .assert_error(401, "A001");
    app.get(path, Some(&access)).await.data();
    let lower = app
        .client
        .get(format!("{}{path}", app.base))
        .header("authorization", format!("bearer {access}"))
        .send()
        .await
        .expect("sent");
    assert_eq!(
        lower.status().as_u16(),
        401,
        "only the exact 'Bearer ' prefix counts"
    );
    // A token without a user id is resolved by e-mail: an unknown one is refused.
    let ghost = app.sign(&Claims {
        sub: "ghost@test.kr".into(),
        ..claims(TokenKind::Access, now + 600)
    });
    app.get(path, Some(&ghost)).await.assert_error(401, "A001");
    // A token whose user id no longer exists: writes are refused by the foreign key.
    let coupon = app.coupon(crate::helpers::CouponSpec::default()).await;
    let gone = app.sign(&Claims {
        uid: Some(987_654),
        ..claims(TokenKind::Access, now + 600)
    });
    app.post(
        "/api/v1/coupon-issues",
        Some(&gone),
        serde_json::json!({"couponId": coupon}),
    )
    .await
    .assert_error(401, "A001");
}

#[tokio::test]
async fn public_routes_ignore_bad_tokens() {
    let app = spawn_app().await;
    let id = app.coupon(Default::default()).await;
    for path in [
        "/api/v1/coupons".to_owned(),
        format!("/api/v1/coupons/{id}"),
    ] {
        let r = app.get(&path, Some("garbage.token.here")).await;
        assert_eq!(r.status, 200, "{path}: {:?}", r.body);
    }
    let r = app
        .send(
            Method::POST,
            "/api/v1/auth/login",
            Some("garbage"),
            Some(&json!({"email": "a@b.c", "password": "x"})),
        )
        .await;
    r.assert_error(401, "A003");
}
