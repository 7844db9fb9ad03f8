//! `fastpick load` against a real app: the summary's counts match what the server recorded,
//! and its verdicts are k6's (http_req_failed, the original's checks and thresholds, the
//! summary-export file).

use std::time::Duration;

use fastpick::load::k6::K6Args;
use fastpick::load::race::RaceArgs;
use fastpick::load::search::SearchArgs;
use fastpick::load::{CommonArgs, LoadArgs, Scenario, ThresholdsCrossed};

use crate::helpers::{CouponSpec, spawn_app};
use crate::monitor::{TestMonitor, monitor_settings};

fn common(base: &str) -> CommonArgs {
    CommonArgs {
        base_url: base.to_owned(),
        timeout: Duration::from_secs(30),
        json: None,
        quiet: true,
        monitor: None,
        k6: K6Args::default(),
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
        connect_at_barrier: false,
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
    assert_eq!(
        (rows, summary.outcome("400"), summary.unexpected),
        (15, 25, 0)
    );
    assert_eq!(summary.checks["success or out of stock"], [40, 0]);
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
        connect_at_barrier: false,
    };
    let summary = fastpick::load::race::run(&args).await.expect("race runs");
    std::fs::remove_file(&csv).ok();
    assert_eq!((summary.outcome("401"), summary.unexpected), (5, 5));
    assert_eq!(summary.http_req_failed.passes, 5);
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
    assert_eq!(
        (closed.http_req_failed.passes, closed.outcome("200")),
        (0, closed.requests)
    );
    assert_eq!(
        closed.checks["is status 200"],
        [closed.requests, 0],
        "the original's check names"
    );
    assert_eq!(
        closed.checks["response contains data"],
        [closed.requests, 0]
    );
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

/// A race of `vus` for a stock of `stock` through `fastpick load race`, as the CLI runs it.
async fn cli_race(
    app: &crate::helpers::TestApp,
    stock: i32,
    vus: usize,
    k6: K6Args,
    connect_at_barrier: bool,
) -> anyhow::Result<()> {
    let coupon = app
        .coupon(crate::helpers::CouponSpec {
            total: stock,
            ..Default::default()
        })
        .await;
    let csv = app.users_csv(
        &app.users_named(&format!("k6r{}x", rand::random::<u32>()), vus)
            .await,
    );
    let args = LoadArgs {
        scenario: Scenario::Race(RaceArgs {
            common: CommonArgs {
                k6,
                ..common(&app.base)
            },
            users: csv.clone(),
            coupon_id: coupon,
            vus,
            max_failed_rate: 0.05,
            connect_at_barrier,
        }),
    };
    let result = fastpick::load::run(args).await;
    std::fs::remove_file(&csv).ok();
    result
}

fn read_json(path: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).expect("file written");
    std::fs::remove_file(path).ok();
    serde_json::from_str(&text).expect("json")
}

fn temp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("fastpick-{name}-{}.json", rand::random::<u64>()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sold_out_400s_count_in_http_req_failed_and_fail_the_original_threshold_as_in_k6() {
    let app = spawn_app().await;
    let export = temp("export");
    let k6 = K6Args {
        summary_export: Some(export.clone()),
        ..K6Args::default()
    };
    // A stock of 4 for 40 VUs: 36 sold-out 400s, 90% in k6's http_req_failed.
    let err = cli_race(&app, 4, 40, k6, false)
        .await
        .expect_err("the original's http_req_failed: rate<0.05 fails, as in k6");
    let crossed = err
        .downcast_ref::<ThresholdsCrossed>()
        .expect("a threshold failed, not the run");
    assert_eq!(crossed.0, "http_req_failed: rate<0.05");
    let k6 = read_json(&export);
    let failed = &k6["metrics"]["http_req_failed"];
    assert_eq!(
        (failed["passes"].as_u64(), failed["fails"].as_u64()),
        (Some(36), Some(4))
    );
    assert!(
        (failed["value"].as_f64().expect("value") - 0.9).abs() < 1e-9,
        "{failed}"
    );
    assert_eq!(
        failed["thresholds"]["rate<0.05"], true,
        "k6 writes true for a failed threshold"
    );
    // The original's checks, by name, in k6's root group: every answer was a correct one.
    let checks = &k6["root_group"]["checks"];
    for name in [
        "is acceptable response",
        "success or out of stock",
        "no system error",
    ] {
        assert_eq!(checks[name]["passes"], 40, "{name}: {checks}");
        assert_eq!(checks[name]["fails"], 0, "{name}");
        assert_eq!(checks[name]["path"], format!("::{name}"));
    }
    assert_eq!(k6["metrics"]["checks"]["value"], 1.0);
    // k6's keys for what we measure.
    for key in [
        "http_reqs",
        "iterations",
        "http_req_duration",
        "http_req_duration{expected_response:true}",
        "http_req_blocked",
        "http_req_connecting",
        "http_req_tls_handshaking",
        "http_req_sending",
        "http_req_waiting",
        "http_req_receiving",
        "data_sent",
        "data_received",
        "http_req_failed",
        "checks",
    ] {
        assert!(k6["metrics"].get(key).is_some(), "{key} missing: {k6}");
    }
    // Every request and answer crossed the socket, and its time was mostly waiting.
    let m = &k6["metrics"];
    assert!(
        m["data_sent"]["count"]
            .as_u64()
            .is_some_and(|n| n > 40 * 100),
        "{m}"
    );
    assert!(
        m["data_received"]["count"]
            .as_u64()
            .is_some_and(|n| n > 40 * 50),
        "{m}"
    );
    let waiting = m["http_req_waiting"]["max"].as_f64().expect("waiting");
    let duration = m["http_req_duration"]["max"].as_f64().expect("duration");
    assert!(waiting > 0.0 && waiting <= duration, "{waiting} {duration}");
    for key in ["avg", "min", "med", "max", "p(90)", "p(95)"] {
        assert!(k6["metrics"]["http_req_duration"][key].is_number(), "{key}");
    }
    assert_eq!(k6["metrics"]["http_reqs"]["count"], 40);
    assert_eq!(k6["root_group"]["id"], "d41d8cd98f00b204e9800998ecf8427e");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expected_statuses_with_400_pass_the_original_threshold_and_thresholds_can_be_given() {
    let app = spawn_app().await;
    let export = temp("expected");
    let k6 = K6Args {
        expected_statuses: "200-399,400".parse().expect("statuses"),
        summary_export: Some(export.clone()),
        ..K6Args::default()
    };
    cli_race(&app, 4, 40, k6, true)
        .await
        .expect("400 is expected: http_req_failed is 0%");
    let k6 = read_json(&export);
    assert_eq!(k6["metrics"]["http_req_failed"]["passes"], 0, "{k6}");
    assert_eq!(
        k6["metrics"]["http_req_failed"]["thresholds"]["rate<0.05"],
        false
    );
    // --connect-at-barrier: every VU connected after the barrier, as k6's do.
    assert!(
        k6["metrics"]["http_req_connecting"]["max"]
            .as_f64()
            .is_some_and(|ms| ms > 0.0),
        "{}",
        k6["metrics"]["http_req_connecting"]
    );
    // Thresholds given as k6 writes them replace the original's: judged on the checks.
    let export = temp("given");
    let given = K6Args {
        thresholds: vec![
            "checks: rate>0.99".parse().expect("threshold"),
            "checks{check:success or out of stock}: rate>=1"
                .parse()
                .expect("threshold"),
            "http_req_duration: p(95)<60000".parse().expect("threshold"),
        ],
        summary_export: Some(export.clone()),
        ..K6Args::default()
    };
    cli_race(&app, 4, 40, given, false)
        .await
        .expect("the checks all pass although http_req_failed is 90%");
    let k6 = read_json(&export);
    assert_eq!(
        k6["metrics"]["checks"]["thresholds"]["rate>0.99"], false,
        "{k6}"
    );
    let sub = &k6["metrics"]["checks{check:success or out of stock}"];
    assert_eq!(
        (
            sub["passes"].as_u64(),
            sub["thresholds"]["rate>=1"].as_bool()
        ),
        (Some(40), Some(false)),
        "{sub}"
    );
    assert!(k6["metrics"]["http_req_failed"].get("thresholds").is_none());
    assert_eq!(
        k6["metrics"]["http_req_duration"]["thresholds"]["p(95)<60000"],
        false
    );
}

/// A run announced to a monitor and stopped by a signal: the run ends, its band on the
/// dashboard ends with it (not left open), and the command exits as a shell reports an
/// interrupt. Once with each stop signal.
#[tokio::test]
async fn a_signalled_run_ends_its_band_and_exits_130() {
    let app = spawn_app().await;
    let monitor = TestMonitor::start(monitor_settings(Vec::new())).await;
    for signal in [libc::SIGINT, libc::SIGTERM] {
        let mut load = tokio::process::Command::new(env!("CARGO_BIN_EXE_fastpick"))
            .args([
                "load",
                "search",
                "--quiet",
                "--stages",
                "60s:2",
                "--base-url",
            ])
            .arg(&app.base)
            .arg("--monitor")
            .arg(&monitor.base)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("fastpick load");
        // Running once the monitor knows the run (the signals are caught from before).
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let open = |body: &serde_json::Value| {
            body["data"]
                .as_array()
                .and_then(|runs| runs.iter().find(|r| r["timeEnd"].is_null()).cloned())
        };
        let run = loop {
            let (_, body) = monitor.get("/api/v1/annotations").await;
            if let Some(run) = open(&body) {
                break run;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "never announced: {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let pid = load.id().expect("pid") as i32;
        // SAFETY: kill(2) on our own child, which has not been waited for.
        unsafe { libc::kill(pid, signal) };
        let status = tokio::time::timeout(Duration::from_secs(30), load.wait())
            .await
            .expect("the run did not stop")
            .expect("wait");
        assert_eq!(status.code(), Some(130), "signal {signal}");
        let (_, body) = monitor.get("/api/v1/annotations").await;
        assert!(open(&body).is_none(), "a band left open: {body}");
        let ended = body["data"]
            .as_array()
            .and_then(|runs| runs.iter().find(|r| r["id"] == run["id"]))
            .expect("the run")
            .clone();
        assert!(
            ended["timeEnd"].as_i64() >= ended["time"].as_i64(),
            "{ended}"
        );
        assert!(
            ended["text"]
                .as_str()
                .is_some_and(|t| t.contains("interrupted")),
            "{ended}"
        );
    }
    monitor.stop().await;
}
