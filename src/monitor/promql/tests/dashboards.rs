//! The queries of common Grafana dashboards (Spring Boot, Redis, PostgreSQL, node) parse
//! and evaluate, instant and over a range; and a dashboard-sized range query reads each
//! selector once.

use std::sync::atomic::Ordering;

use super::super::testutil::*;
use super::super::{Engine, Value};

/// One hour of 15 s scrapes for the metrics the dashboards read.
fn dashboard_db() -> MemDb {
    let mut db = MemDb::default();
    let (from, to) = (0, 3600);
    for (uri, speed) in [
        ("/api/coupons", 1.0),
        ("/actuator/health", 0.2),
        ("/api/orders", 3.0),
    ] {
        let base = [
            ("application", "shop"),
            ("uri", uri),
            ("method", "GET"),
            ("status", "200"),
        ];
        let count = [
            &base[..],
            &[("__name__", "http_server_requests_seconds_count")],
        ]
        .concat();
        db.add_fn(&count, from, to, 15, |t| speed * t as f64);
        for (le, share) in [("0.05", 0.5), ("0.1", 0.8), ("0.5", 0.95), ("+Inf", 1.0)] {
            let bucket = [
                &base[..],
                &[
                    ("__name__", "http_server_requests_seconds_bucket"),
                    ("le", le),
                ],
            ]
            .concat();
            db.add_fn(&bucket, from, to, 15, |t| share * speed * t as f64);
        }
    }
    let redis = [("instance", "redis:9121"), ("job", "redis")];
    db.add_fn(
        &[
            &redis[..],
            &[("__name__", "redis_commands_processed_total")],
        ]
        .concat(),
        from,
        to,
        15,
        |t| 50.0 * t as f64,
    );
    db.add_fn(
        &[&redis[..], &[("__name__", "redis_memory_used_bytes")]].concat(),
        from,
        to,
        15,
        |_| 256.0,
    );
    db.add_fn(
        &[&redis[..], &[("__name__", "redis_memory_max_bytes")]].concat(),
        from,
        to,
        15,
        |_| 1024.0,
    );
    for (state, n) in [("active", 3.0), ("idle", 7.0)] {
        let labels = [
            ("__name__", "pg_stat_activity_count"),
            ("datname", "fastpick"),
            ("state", state),
        ];
        db.add_fn(&labels, from, to, 15, |_| n);
    }
    db.add_fn(
        &[
            ("__name__", "pg_stat_database_xact_commit"),
            ("datname", "fastpick"),
        ],
        from,
        to,
        15,
        |t| 20.0 * t as f64,
    );
    for (job, instance) in [("api", "a"), ("api", "b"), ("proxy", "p")] {
        db.add_fn(
            &[("__name__", "up"), ("job", job), ("instance", instance)],
            from,
            to,
            15,
            |_| 1.0,
        );
    }
    db.add_fn(
        &[("__name__", "process_cpu_seconds_total"), ("job", "api")],
        from,
        to,
        15,
        |t| 0.25 * t as f64,
    );
    db
}

const QUERIES: &[(&str, usize)] = &[
    (
        r#"sum(rate(http_server_requests_seconds_count{application="shop", uri!~".*actuator.*"}[1m])) by (uri)"#,
        2,
    ),
    (
        "histogram_quantile(0.99, sum(rate(http_server_requests_seconds_bucket[1m])) by (le, uri))",
        3,
    ),
    (
        r#"irate(redis_commands_processed_total{instance=~"redis:9121"}[5m])"#,
        1,
    ),
    (
        r#"sum by (state) (pg_stat_activity_count{datname=~"fastpick"})"#,
        2,
    ),
    (
        r#"rate(pg_stat_database_xact_commit{datname=~"fastpick"}[5m])"#,
        1,
    ),
    ("redis_memory_used_bytes / redis_memory_max_bytes", 1),
    ("100 * (1 - rate(process_cpu_seconds_total[1m]))", 1),
    (
        "topk(5, sum by (uri) (rate(http_server_requests_seconds_count[1m])))",
        3,
    ),
    ("max_over_time(redis_memory_used_bytes[1m])", 1),
    ("count(up == 1) by (job)", 2),
    (
        r#"sum(increase(http_server_requests_seconds_count{status=~"5.."}[5m])) or vector(0)"#,
        1,
    ),
];

#[test]
fn dashboard_queries_evaluate_instant_and_range() {
    let db = dashboard_db();
    let engine = Engine::default();
    for &(query, series) in QUERIES {
        let got = instant(&db, query, 1800);
        assert_eq!(got.len(), series, "{query}: {got:?}");
        let Value::Matrix(m) = engine.range(&db, query, 0, 3_600_000, 15_000).unwrap() else {
            panic!("{query}: not a matrix");
        };
        assert_eq!(m.len(), series, "{query}");
    }
}

#[test]
fn dashboard_values_are_right() {
    let db = dashboard_db();
    let by_uri = instant_sorted(&db, QUERIES[0].0, 1800);
    assert_eq!(by_uri[0].0, r#"{uri="/api/coupons"}"#);
    assert_close(by_uri[0].1, 1.0);
    assert_close(by_uri[1].1, 3.0);
    // /api/orders: 1.5, 2.4, 2.85 and 3 per second up to 0.05, 0.1, 0.5 and +Inf. The 99th
    // percentile (rank 2.97) is past the 0.5 bucket: 0.5; the 90th (rank 2.7) is 0.3 of the
    // way through (0.1, 0.5].
    let p99 = instant_sorted(&db, QUERIES[1].0, 1800);
    assert_eq!(p99[2], (r#"{uri="/api/orders"}"#.into(), 0.5));
    let p90 = instant_sorted(&db, &QUERIES[1].0.replace("0.99", "0.9"), 1800);
    assert_close(p90[2].1, 0.1 + 0.4 * (2.7 - 2.4) / 0.45);
    assert_close(instant(&db, QUERIES[2].0, 1800)[0].1, 50.0);
    assert_close(instant(&db, QUERIES[5].0, 1800)[0].1, 0.25);
    assert_close(instant(&db, QUERIES[6].0, 1800)[0].1, 75.0);
    assert_eq!(
        instant_sorted(&db, QUERIES[9].0, 1800),
        vec![
            (r#"{job="api"}"#.into(), 2.0),
            (r#"{job="proxy"}"#.into(), 1.0)
        ]
    );
    assert_eq!(instant(&db, QUERIES[10].0, 1800), vec![("{}".into(), 0.0)]);
}

#[test]
fn range_query_reads_each_selector_once() {
    let db = dashboard_db();
    let query = r#"sum(rate(http_server_requests_seconds_count[1m])) by (uri) / ignoring(uri) group_left sum(rate(http_server_requests_seconds_count[1m]))"#;
    let Value::Matrix(m) = Engine::default()
        .range(&db, query, 0, 3_600_000, 15_000)
        .unwrap()
    else {
        panic!("not a matrix");
    };
    assert_eq!(m.len(), 3);
    assert_eq!(
        m[0].samples.len(),
        240,
        "no rate at 0 s: one sample in the window"
    );
    assert_eq!(db.selects.load(Ordering::Relaxed), 2);
}
