//! `fastpick lab` and the admin endpoints it uses, against a real app: lab users' tokens act
//! for them and nothing else does, the ledger tells the database's truth, and a lab run
//! switches every strategy, checks each race exactly, writes its reports and puts the
//! switches back.

use std::path::PathBuf;
use std::time::Duration;

use fastpick::config::{IssueStrategy, SearchCache};
use fastpick::lab::LabCommon;
use fastpick::lab::race::RaceLabArgs;
use fastpick::lab::search::SearchLabArgs;
use serde_json::{Value, json};

use crate::helpers::{CouponSpec, TestApp, spawn_app, spawn_app_with};

async fn lab_app() -> TestApp {
    spawn_app_with(|s| {
        s.app.experiment_switch = true;
        s.issue.strategy = IssueStrategy::DbAtomic;
        s.search.cache = SearchCache::Off;
    })
    .await
}

/// A credentials file as the demo writes it, for an ADMIN made in `app`.
async fn admin_credentials(app: &TestApp, dir: &std::path::Path) -> PathBuf {
    app.user("lab-admin@test.kr", "ADMIN").await;
    let path = dir.join("lab.credentials");
    std::fs::write(&path, "ADMIN\tlab-admin@test.kr\tpassword123\n").expect("write");
    path
}

fn common(app: &TestApp, credentials: PathBuf, dir: &std::path::Path) -> LabCommon {
    LabCommon {
        base_url: app.base.clone(),
        monitor: String::new(),
        no_monitor: true,
        app_job: "fastpick-app".into(),
        admin_email: None,
        credentials: Some(credentials),
        json: Some(dir.join("report.json")),
        markdown: Some(dir.join("report.md")),
        timeout: Duration::from_secs(60),
        quiet: true,
    }
}

/// The JSON report a lab run wrote into `dir`.
fn read_report(dir: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(dir.join("report.json")).expect("json");
    serde_json::from_str(&text).expect("parses")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fastpick-lab-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

#[tokio::test]
async fn the_lab_endpoints_are_off_unless_configured() {
    let app = spawn_app().await;
    let (_, admin) = app.user("admin@test.kr", "ADMIN").await;
    app.post(
        "/api/v1/admin/experiment/users",
        Some(&admin),
        json!({"count": 2}),
    )
    .await
    .assert_error(403, "C004");
    app.get("/api/v1/admin/experiment/coupons/1", Some(&admin))
        .await
        .assert_error(403, "C004");
    let made: i64 =
        sqlx::query_scalar("select count(*) from tb_user where email like '%@lab.fastpick.test'")
            .fetch_one(&app.db)
            .await
            .expect("count");
    assert_eq!(made, 0);
}

#[tokio::test]
async fn lab_users_act_only_through_their_tokens() {
    let app = lab_app().await;
    let (_, admin) = app.user("admin@test.kr", "ADMIN").await;
    let (_, user) = app.user("user@test.kr", "USER").await;
    let path = "/api/v1/admin/experiment/users";
    app.post(path, None, json!({"count": 2}))
        .await
        .assert_error(401, "C003");
    app.post(path, Some(&user), json!({"count": 2}))
        .await
        .assert_error(403, "C004");
    for bad in [json!({}), json!({"count": 0}), json!({"count": 10_001})] {
        let errors = app
            .post(path, Some(&admin), bad)
            .await
            .assert_error(400, "C001");
        assert_eq!(errors[0]["field"], "count");
    }
    app.post(path, Some(&admin), json!({"count": "many"}))
        .await
        .assert_error(400, "C002");

    let r = app.post(path, Some(&admin), json!({"count": 3})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let users = r.data()["users"].as_array().expect("users").clone();
    let emails: Vec<&str> = users.iter().filter_map(|u| u["email"].as_str()).collect();
    assert_eq!(
        emails,
        [
            "lab1@lab.fastpick.test",
            "lab2@lab.fastpick.test",
            "lab3@lab.fastpick.test"
        ]
    );
    assert!(r.data()["expiresIn"].as_u64().is_some_and(|s| s > 0));
    // Asked again, the same users come back first.
    let again = app.post(path, Some(&admin), json!({"count": "4"})).await;
    let ids = |users: &[Value]| users.iter().map(|u| u["id"].clone()).collect::<Vec<_>>();
    let again_users = again.data()["users"].as_array().expect("users").clone();
    assert_eq!(again_users.len(), 4);
    assert_eq!(ids(&again_users[..3]), ids(&users));

    // The token issues for its user; no password logs the user in.
    let coupon = app.coupon(CouponSpec::default()).await;
    let token = users[0]["accessToken"].as_str().expect("token");
    let issued = app
        .post(
            "/api/v1/coupon-issues",
            Some(token),
            json!({"couponId": coupon}),
        )
        .await;
    assert_eq!(issued.status, 200, "{:?}", issued.body);
    let owner: i64 =
        sqlx::query_scalar("select user_id from tb_issued_coupon where coupon_id = $1")
            .bind(coupon)
            .fetch_one(&app.db)
            .await
            .expect("row");
    assert_eq!(Some(owner), users[0]["id"].as_i64());
    // An account signed up under a lab address is never handed out.
    let signup = json!({"email": "lab5@lab.fastpick.test", "password": "password123", "name": "x"});
    assert_eq!(
        app.post("/api/v1/auth/signup", None, signup).await.status,
        200
    );
    let five = app.post(path, Some(&admin), json!({"count": 5})).await;
    let five_emails: Vec<&str> = five.data()["users"]
        .as_array()
        .expect("users")
        .iter()
        .filter_map(|u| u["email"].as_str())
        .collect();
    assert_eq!(five_emails.len(), 4, "{five_emails:?}");
    assert!(!five_emails.contains(&"lab5@lab.fastpick.test"));
    for password in ["", "password123", "!lab-user: tokens only"] {
        let login = json!({"email": "lab1@lab.fastpick.test", "password": password});
        let r = app.post("/api/v1/auth/login", None, login).await;
        assert!(
            r.status == 401 || r.status == 400,
            "{password:?}: {:?}",
            r.body
        );
    }
}

#[tokio::test]
async fn the_ledger_is_the_databases_truth() {
    let app = lab_app().await;
    let (_, admin) = app.user("admin@test.kr", "ADMIN").await;
    let tokens = app.users(3).await;
    let coupon = app
        .coupon(CouponSpec {
            total: 5,
            ..Default::default()
        })
        .await;
    for token in &tokens[..2] {
        let r = app
            .post(
                "/api/v1/coupon-issues",
                Some(token),
                json!({"couponId": coupon}),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    let path = format!("/api/v1/admin/experiment/coupons/{coupon}");
    let r = app.get(&path, Some(&admin)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        r.data(),
        &json!({"couponId": coupon, "totalQuantity": 5, "issuedQuantity": 2,
                "issuedRows": 2, "distinctUsers": 2, "duplicateRows": 0})
    );
    // A row written behind the counter's back shows.
    sqlx::query("update tb_coupon set issued_quantity = 3 where id = $1")
        .bind(coupon)
        .execute(&app.db)
        .await
        .expect("update");
    let r = app.get(&path, Some(&admin)).await;
    assert_eq!(r.data()["issuedQuantity"], 3);
    assert_eq!(r.data()["issuedRows"], 2);
    app.get("/api/v1/admin/experiment/coupons/999999", Some(&admin))
        .await
        .assert_error(404, "CP01");
    app.get("/api/v1/admin/experiment/coupons/abc", Some(&admin))
        .await
        .assert_error(400, "C002");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lab_race_checks_every_strategy_and_puts_the_switches_back() {
    let app = lab_app().await;
    let dir = temp_dir("race");
    let credentials = admin_credentials(&app, &dir).await;
    let args = RaceLabArgs {
        common: common(&app, credentials, &dir),
        vus: 60,
        stock: 25,
        strategies: vec![
            IssueStrategy::DbLock,
            IssueStrategy::DbAtomic,
            IssueStrategy::RedisGate,
        ],
    };
    fastpick::lab::race::run(&args)
        .await
        .expect("every race exact");
    let report = read_report(&dir);
    let rows = report["rows"].as_array().expect("rows");
    let strategies: Vec<&str> = rows.iter().filter_map(|r| r["strategy"].as_str()).collect();
    assert_eq!(strategies, ["db-lock", "db-atomic", "redis-gate"]);
    for row in rows {
        assert_eq!(row["exact"], true, "{row}");
        assert_eq!(row["requests"], 60, "{row}");
        assert_eq!(row["successes"], 25, "{row}");
        let coupon = row["coupon_id"].as_i64();
        let issued: i64 =
            sqlx::query_scalar("select count(*) from tb_issued_coupon where coupon_id = $1")
                .bind(coupon.expect("coupon id"))
                .fetch_one(&app.db)
                .await
                .expect("count");
        assert_eq!(issued, 25, "{row}");
    }
    let markdown = std::fs::read_to_string(dir.join("report.md")).expect("markdown");
    assert!(markdown.contains("| redis-gate |"), "{markdown}");
    // The switches are back as they were.
    let (_, admin) = app.user("admin2@test.kr", "ADMIN").await;
    let now = app.get("/api/v1/admin/experiment", Some(&admin)).await;
    assert_eq!(now.data()["issueStrategy"], "db-atomic");
    assert_eq!(now.data()["searchCache"], "off");
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lab_search_runs_cache_off_and_on() {
    let app = lab_app().await;
    app.coupon(CouponSpec::default()).await;
    let dir = temp_dir("search");
    let credentials = admin_credentials(&app, &dir).await;
    let args = SearchLabArgs {
        common: common(&app, credentials, &dir),
        vus: 4,
        duration: Duration::from_secs(2),
        ramp: Duration::from_millis(200),
        caches: vec![SearchCache::Off, SearchCache::Redis],
    };
    fastpick::lab::search::run(&args)
        .await
        .expect("thresholds hold");
    let report = read_report(&dir);
    let rows = report["rows"].as_array().expect("rows");
    let caches: Vec<&str> = rows.iter().filter_map(|r| r["cache"].as_str()).collect();
    assert_eq!(caches, ["off", "redis"]);
    for row in rows {
        assert!(row["requests"].as_u64().is_some_and(|n| n > 0), "{row}");
        assert_eq!(row["failed"], 0, "{row}");
    }
    let text = app.metrics_text().await;
    assert!(
        text.lines()
            .any(|l| l.starts_with("fastpick_search_cache_lookups_total")),
        "the cache was on for the second run: {text}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn a_lab_against_an_app_that_refuses_switches_says_how_to_allow_them() {
    let app = spawn_app().await;
    let dir = temp_dir("refused");
    let credentials = admin_credentials(&app, &dir).await;
    let args = RaceLabArgs {
        common: common(&app, credentials, &dir),
        vus: 2,
        stock: 1,
        strategies: vec![IssueStrategy::DbLock],
    };
    let error = fastpick::lab::race::run(&args).await.expect_err("refused");
    assert!(
        format!("{error:#}").contains("experiment_switch"),
        "{error:#}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lab_race_reads_what_the_servers_did_from_the_monitor() {
    use crate::monitor::{TestMonitor, job, monitor_settings};
    let app = lab_app().await;
    let redis_port = app.redis.as_ref().expect("own redis").port;
    let servers = crate::helpers::test_settings(app.db_port, &app.db_name, redis_port);
    // Every 2 s: a debug-built app on a busy machine can miss a shorter scrape timeout.
    let every = Duration::from_secs(2);
    let target = app.base.trim_start_matches("http://").to_owned();
    let mut settings = monitor_settings(vec![job(
        "fastpick-app",
        &target,
        "/actuator/prometheus",
        every,
    )]);
    settings.monitor.scrape_interval = every;
    settings.monitor.scrape_timeout = every;
    settings.monitor.postgres = true;
    settings.monitor.redis = true;
    settings.database = servers.database.clone();
    settings.redis = servers.redis.clone();
    let monitor = TestMonitor::start(settings).await;
    // The app, PostgreSQL and Redis scraped once before the lab starts, as on a running lab.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (_, body) = monitor
            .get(&format!(
                "/api/v1/query?query={}",
                crate::monitor::enc("count(up == 1)")
            ))
            .await;
        let up = body["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
        if up >= 3.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "targets never up: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let dir = temp_dir("monitored");
    let credentials = admin_credentials(&app, &dir).await;
    let mut common = common(&app, credentials, &dir);
    common.no_monitor = false;
    common.monitor = monitor.base.clone();
    let args = RaceLabArgs {
        common,
        vus: 40,
        stock: 10,
        strategies: vec![IssueStrategy::DbLock, IssueStrategy::RedisGate],
    };
    fastpick::lab::race::run(&args)
        .await
        .expect("every race exact");
    let report = read_report(&dir);
    for row in report["rows"].as_array().expect("rows") {
        let server = &row["server"];
        assert_eq!(server["redis_up_min"], 1.0, "{row}");
        assert!(server["pg_active_max"].is_number(), "{row}");
        assert!(server["pg_lock_waits_max"].is_number(), "{row}");
        assert!(
            server["app_cpu_seconds"].as_f64().is_some_and(|s| s > 0.0),
            "{row}"
        );
        // Each race is a band on the dashboard.
        assert!(
            row["dashboard"]
                .as_str()
                .is_some_and(|l| l.starts_with(&monitor.base) && l.contains("#/race?")),
            "{row}"
        );
    }
    let gate = &report["rows"][1]["server"];
    // The gate's scripts ran: one per group of concurrent requests, so fewer than the VUs on
    // a busy machine.
    assert!(
        gate["redis_commands"].as_f64().is_some_and(|n| n > 0.0),
        "{gate}"
    );
    let (_, body) = monitor.get("/api/v1/annotations").await;
    let titles: Vec<String> = body["data"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|n| n["title"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        titles.iter().any(|t| t.contains("redis-gate")),
        "{titles:?}"
    );
    monitor.stop().await;
    std::fs::remove_dir_all(&dir).ok();
}
