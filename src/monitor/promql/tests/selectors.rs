//! Selection: lookback, staleness, offsets, `@`, matchers, range vectors, subqueries,
//! range-query shape, limits and errors.

use crate::monitor::series::{Labels, stale_nan};

use super::super::testutil::*;
use super::super::{Engine, QueryError, Value};

fn up_db() -> MemDb {
    let mut db = MemDb::default();
    db.add(
        &[("__name__", "up"), ("job", "api"), ("instance", "a:9")],
        &[(0, 1.0), (15, 1.0), (30, 0.0)],
    );
    db.add(
        &[("__name__", "up"), ("job", "db"), ("instance", "b:9")],
        &[(0, 1.0), (15, 1.0), (30, 1.0), (45, stale_nan())],
    );
    db
}

#[test]
fn instant_selector_returns_the_latest_sample_with_its_name() {
    let db = up_db();
    assert_eq!(
        instant(&db, "up", 40),
        vec![
            (r#"up{instance="a:9", job="api"}"#.to_string(), 0.0),
            (r#"up{instance="b:9", job="db"}"#.to_string(), 1.0),
        ]
    );
}

#[test]
fn staleness_marker_ends_a_series_at_once() {
    let db = up_db();
    assert_eq!(instant(&db, r#"up{job="db"}"#, 44).len(), 1);
    assert!(instant(&db, r#"up{job="db"}"#, 45).is_empty());
    assert!(instant(&db, r#"up{job="db"}"#, 100).is_empty());
}

#[test]
fn samples_older_than_the_lookback_are_not_returned() {
    let db = up_db();
    // The last api sample is at 30 s; the lookback is 5 minutes, left-open.
    assert_eq!(instant(&db, r#"up{job="api"}"#, 329).len(), 1);
    assert!(instant(&db, r#"up{job="api"}"#, 330).is_empty());
    let short = Engine {
        lookback_ms: 10_000,
        ..Engine::default()
    };
    let got = short.instant(&db, r#"up{job="api"}"#, 41_000).unwrap();
    assert_eq!(got, Value::Vector(Vec::new()));
}

#[test]
fn matchers_select_by_equality_regex_and_absence() {
    let mut db = up_db();
    db.add(&[("__name__", "up"), ("instance", "c:9")], &[(30, 1.0)]);
    let count = |q: &str| instant(&db, q, 40).len();
    assert_eq!(count(r#"up{job="api"}"#), 1);
    assert_eq!(count(r#"up{job!="api"}"#), 2, "series without job match !=");
    assert_eq!(count(r#"up{job=~"a.*|d.*"}"#), 2);
    assert_eq!(count(r#"up{job=~"a"}"#), 0, "regexes are anchored");
    assert_eq!(count(r#"up{job!~"api"}"#), 2);
    assert_eq!(
        count(r#"up{job=""}"#),
        1,
        "empty value matches a missing label"
    );
    assert_eq!(count(r#"{__name__="up", instance=~".:9"}"#), 3);
    assert_eq!(count(r#"up{job="api" or job="db"}"#), 2);
}

#[test]
fn offset_and_at_move_the_evaluation_time() {
    let mut db = MemDb::default();
    db.add_fn(&[("__name__", "g")], 0, 600, 10, |t| t as f64);
    assert_eq!(instant(&db, "g offset 1m", 125)[0].1, 60.0);
    assert_eq!(instant(&db, "g offset -1m", 125)[0].1, 180.0);
    assert_eq!(instant(&db, "g @ 35", 500)[0].1, 30.0);
    assert_eq!(instant(&db, "g @ 100 offset 30s", 500)[0].1, 70.0);
    let r = range(&db, "g @ end()", 100, 130, 15);
    assert_eq!(r[0].1, vec![(100, 130.0), (115, 130.0), (130, 130.0)]);
}

#[test]
fn range_vector_is_left_open_and_drops_staleness_markers() {
    let db = up_db();
    let got = Engine::default()
        .instant(&db, r#"up{job="db"}[30s]"#, 45_000)
        .unwrap();
    let Value::Matrix(m) = got else {
        panic!("{got:?}")
    };
    // (15 s, 45 s]: the sample at 15 s is excluded, the marker at 45 s dropped.
    assert_eq!(m[0].samples, vec![(30_000, 1.0)]);
    assert_eq!(m[0].labels.metric_name(), Some("up"));
}

#[test]
fn subquery_evaluates_the_inner_query_on_an_aligned_grid() {
    let mut db = MemDb::default();
    db.add_fn(&[("__name__", "g")], 0, 600, 10, |t| t as f64);
    // Steps of 15 s in (40 s, 100 s]: 45, 60, 75, 90, reading 40, 60, 70, 90.
    assert_eq!(instant(&db, "max_over_time(g[1m:15s])", 100)[0].1, 90.0);
    assert_eq!(instant(&db, "min_over_time(g[1m:15s])", 100)[0].1, 40.0);
    assert_eq!(instant(&db, "count_over_time(g[1m:15s])", 100)[0].1, 4.0);
    let got = Engine::default()
        .instant(&db, "g[1m:15s]", 100_000)
        .unwrap();
    let Value::Matrix(m) = got else {
        panic!("{got:?}")
    };
    assert_eq!(
        m[0].samples,
        vec![
            (45_000, 40.0),
            (60_000, 60.0),
            (75_000, 70.0),
            (90_000, 90.0)
        ]
    );
    // In a range query the inner grid stays aligned: at 115 s the window (55 s, 115 s] holds
    // steps 60..105 (reading up to 100), at 130 s steps 75..120.
    let r = range(&db, "max_over_time(g[1m:15s])", 100, 130, 15);
    assert_eq!(r[0].1, vec![(100, 90.0), (115, 100.0), (130, 120.0)]);
}

#[test]
fn range_query_evaluates_every_step_from_one_read_per_selector() {
    let db = up_db();
    let r = range(&db, r#"up{job="db"} + up{job="db"}"#, 0, 60, 15);
    assert_eq!(
        r,
        vec![(
            r#"{instance="b:9", job="db"}"#.to_string(),
            vec![(0, 2.0), (15, 2.0), (30, 2.0)]
        )]
    );
    assert_eq!(db.selects.load(std::sync::atomic::Ordering::Relaxed), 2);
}

#[test]
fn range_query_turns_a_scalar_into_one_unlabelled_series() {
    let db = MemDb::default();
    let got = Engine::default()
        .range(&db, "1 + 1", 0, 30_000, 15_000)
        .unwrap();
    let Value::Matrix(m) = got else {
        panic!("{got:?}")
    };
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].labels, Labels::default());
    assert_eq!(m[0].samples, vec![(0, 2.0), (15_000, 2.0), (30_000, 2.0)]);
}

#[test]
fn max_samples_limit_stops_a_query() {
    let mut db = MemDb::default();
    db.add_fn(&[("__name__", "g")], 0, 600, 10, |t| t as f64);
    let small = Engine {
        max_samples: 20,
        ..Engine::default()
    };
    let err = small
        .instant(&db, "sum_over_time(g[10m])", 600_000)
        .unwrap_err();
    assert_eq!(
        err,
        QueryError::Limit(
            "query processing would load too many samples into memory in query execution".into()
        )
    );
    assert_eq!(err.error_type(), "execution");
    assert!(small.instant(&db, "sum_over_time(g[1m])", 600_000).is_ok());
    // What a node read is released once the node is computed: four windows of 30 samples
    // in a row fit a limit of 50.
    let limit_50 = Engine {
        max_samples: 50,
        ..Engine::default()
    };
    let four = "count_over_time(g[5m]) + count_over_time(g[5m]) + count_over_time(g[5m]) + count_over_time(g[5m])";
    assert!(limit_50.instant(&db, four, 600_000).is_ok());
    // A subquery grid finer than the limit allows fails before it is evaluated.
    let err = small
        .instant(&db, "max_over_time(g[10m:1s])", 600_000)
        .unwrap_err();
    assert_eq!(err.error_type(), "execution");
    // A range query holds one point per step per series.
    let err = small.range(&db, "g", 0, 600_000, 10_000).unwrap_err();
    assert_eq!(err.error_type(), "execution");
}

#[test]
fn range_query_parameters_are_checked_like_prometheus() {
    let db = MemDb::default();
    let engine = Engine::default();
    let err = engine.range(&db, "1", 0, 11_001_000, 1_000).unwrap_err();
    assert_eq!(
        err,
        QueryError::BadRequest("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)".into())
    );
    assert_eq!(err.error_type(), "bad_data");
    assert!(engine.range(&db, "1", 0, 11_000_000, 1_000).is_ok());
    assert_eq!(
        engine.range(&db, "1", 10, 0, 1).unwrap_err().error_type(),
        "bad_data"
    );
    assert_eq!(
        engine.range(&db, "1", 0, 10, 0).unwrap_err().error_type(),
        "bad_data"
    );
    let err = engine.range(&db, "up[5m]", 0, 10, 1).unwrap_err();
    assert!(err.to_string().contains("range vector"), "{err}");
}

#[test]
fn parse_errors_and_unsupported_features_are_bad_data() {
    let db = MemDb::default();
    let engine = Engine::default();
    for q in [
        "sum(",
        "up{",
        "holt_winters(up[5m], 0.1, 0.1)",
        "limitk(1, up)",
        "day_of_week()",
    ] {
        let err = engine.instant(&db, q, 0).unwrap_err();
        assert_eq!(err.error_type(), "bad_data", "{q}: {err}");
    }
}

#[test]
fn strings_and_scalars_come_back_as_such() {
    let db = MemDb::default();
    let engine = Engine::default();
    assert_eq!(
        engine.instant(&db, r#""hi""#, 5_000).unwrap(),
        Value::String {
            t: 5_000,
            v: "hi".into()
        }
    );
    assert_eq!(
        engine.instant(&db, "2 ^ 3 - 1", 5_000).unwrap(),
        Value::Scalar { t: 5_000, v: 7.0 }
    );
    assert_eq!(
        engine.instant(&db, "time()", 5_000).unwrap(),
        Value::Scalar { t: 5_000, v: 5.0 }
    );
}

#[test]
fn series_selectors_parse_into_storage_matchers() {
    use super::super::selector_matchers;
    use crate::monitor::series::MatchOp;
    let matchers = selector_matchers(r#"up{job=~"api|db", instance!=""}"#).unwrap();
    let summary: Vec<(&str, MatchOp, &str)> = matchers
        .iter()
        .map(|m| (m.name.as_str(), m.op, m.value.as_str()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("__name__", MatchOp::Equal, "up"),
            ("job", MatchOp::Regex, "api|db"),
            ("instance", MatchOp::NotEqual, "")
        ]
    );
    assert!(matchers[1].matches("db") && !matchers[1].matches("dbx"));
    for bad in [
        "rate(up[5m])",
        "up[5m]",
        "up offset 1m",
        "{",
        r#"{job=~".*"}"#,
    ] {
        let err = selector_matchers(bad).unwrap_err();
        assert_eq!(err.error_type(), "bad_data", "{bad}");
    }
}

#[test]
fn extreme_times_and_offsets_do_not_overflow() {
    let db = up_db();
    let engine = Engine::default();
    for t in [i64::MIN, i64::MAX] {
        for q in [
            "up",
            "rate(up[5m])",
            "up offset 200000000y",
            "max_over_time(up[1m:10s] offset -200000000y)",
        ] {
            assert!(engine.instant(&db, q, t).is_ok(), "{q} at {t}");
        }
    }
    let err = engine.range(&db, "up", i64::MIN, i64::MAX, 1).unwrap_err();
    assert_eq!(err.error_type(), "bad_data");
}

#[test]
fn parse_errors_say_what_is_wrong() {
    let err = Engine::default()
        .instant(&MemDb::default(), "rate(up)", 0)
        .unwrap_err();
    assert_eq!(
        err,
        QueryError::Parse(
            "parse error: expected type matrix in call to function 'rate', got vector".into()
        )
    );
}
