//! `fastpick load` against a real app: the summary's counts match what the server recorded.

use std::time::Duration;

use fastpick::load::CommonArgs;
use fastpick::load::race::RaceArgs;
use fastpick::load::search::SearchArgs;

use crate::helpers::{CouponSpec, spawn_app};

fn common(base: &str) -> CommonArgs {
    CommonArgs {
        base_url: base.to_owned(),
        timeout: Duration::from_secs(30),
        json: None,
        quiet: true,
        monitor: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn race_summary_matches_the_issued_rows() {
    let app = spawn_app().await;
    let coupon = app
        .coupon(CouponSpec {
            total: 15,
            ..Default::default()
        })
        .await;
    let tokens = app.users(40).await;
    let csv = app.users_csv(&tokens);
    let args = RaceArgs {
        common: common(&app.base),
        users: csv.clone(),
        coupon_id: coupon,
        vus: 40,
        max_failed_rate: 0.05,
    };
    let summary = fastpick::load::race::run(&args).await.expect("race runs");
    std::fs::remove_file(&csv).ok();
    let rows: i64 =
        sqlx::query_scalar("select count(*) from tb_issued_coupon where coupon_id = $1")
            .bind(coupon)
            .fetch_one(&app.db)
            .await
            .expect("rows");
    assert_eq!(summary.requests, 40);
    assert_eq!(summary.outcome("200") as i64, rows);
    assert_eq!((rows, summary.outcome("400"), summary.failed), (15, 25, 0));
    assert!(summary.passed());
    assert_eq!(
        summary.checks["status is 200/202, or 400 CP04/CP05"],
        [40, 0]
    );
}

#[tokio::test]
async fn race_counts_wrong_answers_as_failed_and_fails_the_threshold() {
    let app = spawn_app().await;
    let csv = std::env::temp_dir().join(format!("fastpick-race-{}.csv", rand::random::<u64>()));
    std::fs::write(&csv, "token\nnot-a-valid-token\n").expect("csv");
    let args = RaceArgs {
        common: common(&app.base),
        users: csv.clone(),
        coupon_id: 1,
        vus: 5,
        max_failed_rate: 0.05,
    };
    let summary = fastpick::load::race::run(&args).await.expect("race runs");
    std::fs::remove_file(&csv).ok();
    assert_eq!((summary.outcome("401"), summary.failed), (5, 5));
    assert!(!summary.passed());
}

/// Reads the server's own count of 200s on the list route.
async fn server_count(app: &crate::helpers::TestApp) -> u64 {
    let text = app.metrics_text().await;
    text.lines()
        .filter(|l| {
            l.starts_with("http_server_requests_seconds_count{")
                && l.contains("uri=\"/api/v1/coupons\"")
                && l.contains("status=\"200\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn search_args(base: &str) -> SearchArgs {
    SearchArgs {
        common: common(base),
        stages: "500ms:4,1s:4".into(),
        think_min: Duration::from_millis(5),
        think_max: Duration::from_millis(15),
        rate: None,
        duration: Duration::from_secs(1),
        max_vus: 50,
        ghost_ratio: 0.3,
        max_p99: Duration::from_millis(2500),
        max_failed_rate: 0.01,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn search_summary_matches_the_server_count_in_both_models() {
    let app = spawn_app().await;
    app.coupon(CouponSpec::default()).await;
    let closed = fastpick::load::search::run(&search_args(&app.base))
        .await
        .expect("closed model runs");
    assert!(closed.requests > 10, "{}", closed.requests);
    assert_eq!((closed.failed, closed.outcome("200")), (0, closed.requests));
    assert_eq!(server_count(&app).await, closed.requests);
    let open = SearchArgs {
        rate: Some(80),
        duration: Duration::from_millis(500),
        ..search_args(&app.base)
    };
    let open = fastpick::load::search::run(&open)
        .await
        .expect("open model runs");
    assert_eq!(open.requests, 40, "80/s for 0.5 s");
    assert_eq!(server_count(&app).await, closed.requests + open.requests);
    assert!(open.passed());
}
