//! `fastpick seed`: coupons by the recipe (COPY and INSERT), users with a users.csv.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use fastpick::cli::{SeedCouponsArgs, SeedVia};
use fastpick::domain::extract_keywords;
use serde_json::json;

use crate::helpers::{SECRET, TestApp, spawn_app};

fn args(count: u32, via: SeedVia) -> SeedCouponsArgs {
    SeedCouponsArgs {
        count,
        append: false,
        reset: false,
        via,
    }
}

/// Checks every coupon's keyword rows against the extraction of its own brand and title.
async fn assert_keywords_match(app: &TestApp) -> (i64, i64) {
    let rows: Vec<(i64, String, String)> = sqlx::query_as("select id, brand, title from tb_coupon")
        .fetch_all(&app.db)
        .await
        .expect("coupons");
    let keywords: Vec<(i64, String)> =
        sqlx::query_as("select coupon_id, keyword from tb_coupon_keyword")
            .fetch_all(&app.db)
            .await
            .expect("keywords");
    let mut expected: Vec<(i64, String)> = rows
        .iter()
        .flat_map(|(id, b, t)| extract_keywords(b, t).into_iter().map(move |k| (*id, k)))
        .collect();
    let mut actual = keywords.clone();
    expected.sort();
    actual.sort();
    assert_eq!(actual, expected, "keyword rows follow the extraction");
    (rows.len() as i64, keywords.len() as i64)
}

#[tokio::test]
async fn seeding_coupons_copies_the_recipe_and_refuses_to_double_seed() {
    let app = spawn_app().await;
    let mut conn = app.db.acquire().await.expect("conn");
    let report =
        fastpick::seed::coupons::seed_coupons(&mut conn, &app.clock, &args(300, SeedVia::Copy))
            .await
            .expect("seeds");
    let (coupons, keywords) = assert_keywords_match(&app).await;
    assert_eq!((coupons, keywords as u64), (300, report.keywords));
    // The planner knows both tables at once (the demo searched 3x slower until autovacuum).
    let analyzed: i64 = sqlx::query_scalar(
        "select count(*) from pg_stat_user_tables
         where relname in ('tb_coupon', 'tb_coupon_keyword') and last_analyze is not null",
    )
    .fetch_one(&app.db)
    .await
    .expect("stats");
    assert_eq!(analyzed, 2, "both tables analyzed");
    let (first_newest,): (bool,) = sqlx::query_as("select (select created_at from tb_coupon where id = 1) > (select created_at from tb_coupon where id = 300)")
        .fetch_one(&app.db)
        .await
        .expect("order");
    assert!(first_newest, "as the original: later ids are older");
    let page = app.get("/api/v1/coupons?filterType=ISSUING", None).await;
    assert_eq!(
        page.data()["totalElements"],
        300,
        "every seeded coupon is issuing"
    );
    let again =
        fastpick::seed::coupons::seed_coupons(&mut conn, &app.clock, &args(10, SeedVia::Copy))
            .await;
    assert!(again.expect_err("refuses").to_string().contains("--append"));
    let append = SeedCouponsArgs {
        append: true,
        ..args(50, SeedVia::Insert)
    };
    fastpick::seed::coupons::seed_coupons(&mut conn, &app.clock, &append)
        .await
        .expect("appends");
    assert_eq!(assert_keywords_match(&app).await.0, 350);
    let (_, admin) = app.user("seed-admin@test.kr", "ADMIN").await;
    let created = app
        .post(
            "/api/v1/admin/coupons",
            Some(&admin),
            json!({"brand": "B", "title": "T", "summary": "s", "description": "d",
            "totalQuantity": 1, "startAt": "2026-01-01T00:00:00", "endAt": "2099-01-01T00:00:00"}),
        )
        .await;
    assert_eq!(
        created.body["data"], 351,
        "the id sequence continues after the seeded ids"
    );
    let reset = SeedCouponsArgs {
        reset: true,
        ..args(20, SeedVia::Copy)
    };
    fastpick::seed::coupons::seed_coupons(&mut conn, &app.clock, &reset)
        .await
        .expect("resets");
    assert_eq!(assert_keywords_match(&app).await.0, 20);
}

#[tokio::test]
async fn seeding_users_writes_a_private_csv_whose_logins_and_tokens_work() {
    let app = spawn_app().await;
    let dir = std::env::temp_dir().join(format!("fastpick-seed-{}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).expect("dir");
    let csv = dir.join("users.csv");
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_fastpick"))
            .args(["seed", "users", "--count", "6", "--out"])
            .arg(&csv)
            .args(extra)
            .env("DB_HOST", "127.0.0.1")
            .env("DB_PORT", app.db_port.to_string())
            .env("DB_NAME", &app.db_name)
            .env("DB_USERNAME", "postgres")
            .env("SECRET_KEY", SECRET)
            .env("FASTPICK_AUTH__BCRYPT_COST", "4")
            .output()
            .expect("runs")
    };
    let out = run(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mode = std::fs::metadata(&csv).expect("csv").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&csv).expect("csv");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(fastpick::seed::users::CSV_HEADER));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 6);
    for row in &rows {
        let (email, password, access, token) = (row[0], row[1], row[2], row[3]);
        assert_eq!(access, token);
        app.get("/api/v1/my/coupons", Some(token)).await.data();
        app.post(
            "/api/v1/auth/login",
            None,
            json!({"email": email, "password": password}),
        )
        .await
        .data();
    }
    let again = run(&[]);
    assert!(
        !again.status.success(),
        "refuses to seed the same users twice"
    );
    assert!(run(&["--reset"]).status.success());
    let count: i64 = sqlx::query_scalar("select count(*) from tb_user")
        .fetch_one(&app.db)
        .await
        .expect("count");
    assert_eq!(count, 6);
    std::fs::remove_dir_all(&dir).ok();
}
