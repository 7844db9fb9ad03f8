//! Aggregations and binary operators.

use super::super::Engine;
use super::super::testutil::*;

fn db() -> MemDb {
    let mut db = MemDb::default();
    for (job, instance, v) in [
        ("api", "a", 1.0),
        ("api", "b", 4.0),
        ("api", "c", 2.0),
        ("db", "d", 10.0),
    ] {
        db.add(
            &[("__name__", "x"), ("job", job), ("instance", instance)],
            &[(0, v)],
        );
    }
    db.add(
        &[("__name__", "y"), ("job", "api"), ("instance", "a")],
        &[(0, 3.0)],
    );
    db.add(
        &[("__name__", "y"), ("job", "db"), ("instance", "d")],
        &[(0, 5.0)],
    );
    db.add(
        &[("__name__", "info"), ("job", "api"), ("version", "1.2")],
        &[(0, 1.0)],
    );
    db.add(
        &[("__name__", "info"), ("job", "db"), ("version", "9.6")],
        &[(0, 1.0)],
    );
    db
}

#[test]
fn aggregations_group_by_and_without() {
    let db = db();
    let q = |q: &str| instant_sorted(&db, q, 10);
    assert_eq!(q("sum(x)"), vec![("{}".into(), 17.0)]);
    assert_eq!(
        q("sum by (job) (x)"),
        vec![
            (r#"{job="api"}"#.into(), 7.0),
            (r#"{job="db"}"#.into(), 10.0)
        ]
    );
    assert_eq!(
        q("SUM(x) BY (job)"),
        q("sum by (job) (x)"),
        "keywords are case-insensitive"
    );
    assert_eq!(q("sum without (instance) (x)"), q("sum by (job) (x)"));
    assert_eq!(q(r#"avg(x{job="api"})"#), vec![("{}".into(), 7.0 / 3.0)]);
    assert_eq!(q("min(x)"), vec![("{}".into(), 1.0)]);
    assert_eq!(q("max(x) by (job)")[0].1, 4.0);
    assert_eq!(
        q("count(x) by (job)"),
        vec![
            (r#"{job="api"}"#.into(), 3.0),
            (r#"{job="db"}"#.into(), 1.0)
        ]
    );
    assert_eq!(q("group(x) by (job)")[0].1, 1.0);
    assert_eq!(q(r#"quantile(0.5, x{job="api"})"#)[0].1, 2.0);
    assert_close(q(r#"stdvar(x{job="api"})"#)[0].1, 14.0 / 9.0);
    assert_close(q(r#"stddev(x{job="api"})"#)[0].1, (14.0f64 / 9.0).sqrt());
    assert!(
        q("stddev(vector(1/0))")[0].1.is_nan(),
        "an infinite value has no deviation"
    );
    assert_eq!(q("stddev(vector(7))")[0].1, 0.0);
    assert_eq!(
        q("count_values(\"v\", x)"),
        vec![
            (r#"{v="1"}"#.into(), 1.0),
            (r#"{v="10"}"#.into(), 1.0),
            (r#"{v="2"}"#.into(), 1.0),
            (r#"{v="4"}"#.into(), 1.0),
        ]
    );
    assert_eq!(q("count_values without (instance) (\"v\", x)").len(), 4);
}

#[test]
fn topk_and_bottomk_keep_the_series_labels_in_value_order() {
    let db = db();
    let top = instant(&db, "topk(2, x)", 10);
    assert_eq!(
        top,
        vec![
            (r#"x{instance="d", job="db"}"#.into(), 10.0),
            (r#"x{instance="b", job="api"}"#.into(), 4.0),
        ]
    );
    let per_job = instant(&db, "topk by (job) (1, x)", 10);
    assert_eq!(
        per_job.iter().map(|r| r.1).collect::<Vec<_>>(),
        vec![4.0, 10.0]
    );
    let bottom = instant(&db, "bottomk(2, x)", 10);
    assert_eq!(
        bottom.iter().map(|r| r.1).collect::<Vec<_>>(),
        vec![1.0, 2.0]
    );
    assert!(instant(&db, "topk(0, x)", 10).is_empty());
    let err = Engine::default()
        .instant(&db, "topk(scalar(x), x)", 10_000)
        .unwrap_err();
    assert_eq!(err.to_string(), "Parameter value is NaN");
}

#[test]
fn topk_in_a_range_query_selects_per_step() {
    let mut db = MemDb::default();
    db.add(&[("__name__", "x"), ("i", "1")], &[(0, 1.0), (15, 5.0)]);
    db.add(&[("__name__", "x"), ("i", "2")], &[(0, 2.0), (15, 3.0)]);
    let r = range(&db, "topk(1, x)", 0, 15, 15);
    assert_eq!(
        r,
        vec![
            (r#"x{i="1"}"#.into(), vec![(15, 5.0)]),
            (r#"x{i="2"}"#.into(), vec![(0, 2.0)]),
        ]
    );
}

#[test]
fn comparisons_filter_or_return_booleans() {
    let db = db();
    let q = |q: &str| instant_sorted(&db, q, 10);
    assert_eq!(
        q(r#"x{job="api"} > 1.5"#),
        vec![
            (r#"x{instance="b", job="api"}"#.into(), 4.0),
            (r#"x{instance="c", job="api"}"#.into(), 2.0)
        ]
    );
    assert_eq!(
        q(r#"2 < x{job="api"}"#),
        vec![(r#"x{instance="b", job="api"}"#.into(), 4.0)]
    );
    assert_eq!(
        q(r#"x{job="api"} > bool 1.5"#),
        vec![
            (r#"{instance="a", job="api"}"#.into(), 0.0),
            (r#"{instance="b", job="api"}"#.into(), 1.0),
            (r#"{instance="c", job="api"}"#.into(), 1.0),
        ]
    );
    // Vector to vector: matched on all labels but the name.
    assert_eq!(
        q("x < y"),
        vec![(r#"x{instance="a", job="api"}"#.into(), 1.0)]
    );
    assert_eq!(
        q("x < bool y"),
        vec![
            (r#"{instance="a", job="api"}"#.into(), 1.0),
            (r#"{instance="d", job="db"}"#.into(), 0.0)
        ]
    );
    assert_eq!(q("1 >= bool 2"), vec![(String::new(), 0.0)]);
    assert_eq!(
        q("count(x == 4) by (job)"),
        vec![(r#"{job="api"}"#.into(), 1.0)]
    );
}

#[test]
fn arithmetic_matches_one_to_one_and_drops_the_name() {
    let db = db();
    let q = |q: &str| instant_sorted(&db, q, 10);
    assert_eq!(
        q("y / x"),
        vec![
            (r#"{instance="a", job="api"}"#.into(), 3.0),
            (r#"{instance="d", job="db"}"#.into(), 0.5)
        ]
    );
    assert_eq!(
        q("-y"),
        vec![
            (r#"{instance="a", job="api"}"#.into(), -3.0),
            (r#"{instance="d", job="db"}"#.into(), -5.0)
        ]
    );
    assert_eq!(
        q("y + on(instance) x"),
        vec![
            (r#"{instance="a"}"#.into(), 4.0),
            (r#"{instance="d"}"#.into(), 15.0)
        ]
    );
    assert_eq!(
        q("y - ignoring(instance) sum by (job) (x)"),
        vec![
            (r#"{job="api"}"#.into(), -4.0),
            (r#"{job="db"}"#.into(), -5.0)
        ]
    );
    assert_eq!(
        q(r#"100 * (1 - y{job="db"} / 10)"#),
        vec![(r#"{instance="d", job="db"}"#.into(), 50.0)]
    );
    assert_eq!(q(r#"y{job="db"} % 3 ^ 2"#)[0].1, 5.0);
}

#[test]
fn group_left_copies_labels_from_the_one_side() {
    let db = db();
    let got = instant_sorted(&db, "x * on(job) group_left(version) info", 10);
    assert_eq!(got.len(), 4);
    assert_eq!(
        got[0],
        (r#"{instance="a", job="api", version="1.2"}"#.into(), 1.0)
    );
    assert_eq!(
        got[3],
        (r#"{instance="d", job="db", version="9.6"}"#.into(), 10.0)
    );
    let right = instant_sorted(&db, "info * on(job) group_right(version) x", 10);
    assert_eq!(right, got);
    // The operands keep their sides: "one" (left) minus "many" (right).
    let minus = instant_sorted(&db, "sum by (job) (y) - on(job) group_right x", 10);
    assert_eq!(
        minus.iter().map(|r| r.1).collect::<Vec<_>>(),
        vec![2.0, -1.0, 1.0, -5.0]
    );
    // A filtering comparison keeps the left value, on the "many" side's series.
    let kept = instant_sorted(&db, "sum by (job) (y) > on(job) group_right x", 10);
    assert_eq!(
        kept,
        vec![
            (r#"x{instance="a", job="api"}"#.into(), 3.0),
            (r#"x{instance="c", job="api"}"#.into(), 3.0)
        ]
    );
}

#[test]
fn matching_errors_follow_prometheus() {
    let db = db();
    let engine = Engine::default();
    let err = engine.instant(&db, "info + on(job) x", 10_000).unwrap_err();
    assert!(
        err.to_string()
            .contains("many-to-many matching not allowed"),
        "{err}"
    );
    assert!(
        err.to_string().starts_with(
            "found duplicate series for the match group {job=\"api\"} on the right hand-side"
        ),
        "{err}"
    );
    assert_eq!(err.error_type(), "execution");
    let err = engine
        .instant(&db, "x + on(job) group_right info", 10_000)
        .unwrap_err();
    assert!(err.to_string().contains("on the left hand-side"), "{err}");
    let err = engine
        .instant(
            &db,
            r#"{__name__=~"x|y", instance="a"} * on(job) group_left info"#,
            10_000,
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "multiple matches for labels: grouping labels must ensure unique matches"
    );
    let err = engine.instant(&db, "x + on(job) info", 10_000).unwrap_err();
    assert_eq!(
        err.to_string(),
        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
    );
}

#[test]
fn set_operators_filter_on_matching_labels() {
    let db = db();
    let names = |q: &str| {
        instant_sorted(&db, q, 10)
            .into_iter()
            .map(|r| r.0)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names("x and y"),
        vec![
            r#"x{instance="a", job="api"}"#,
            r#"x{instance="d", job="db"}"#
        ]
    );
    assert_eq!(
        names("x unless y"),
        vec![
            r#"x{instance="b", job="api"}"#,
            r#"x{instance="c", job="api"}"#
        ]
    );
    assert_eq!(names("x and on(job) info").len(), 4);
    assert_eq!(names(r#"x unless on(job) info{job="db"}"#).len(), 3);
    let or = names(r#"y or x{job="api"}"#);
    assert_eq!(
        or,
        vec![
            r#"x{instance="b", job="api"}"#,
            r#"x{instance="c", job="api"}"#,
            r#"y{instance="a", job="api"}"#,
            r#"y{instance="d", job="db"}"#,
        ]
    );
    assert_eq!(names("x or vector(1)").len(), 5);
}

#[test]
fn aggregations_in_a_range_query_aggregate_each_step() {
    let mut db = MemDb::default();
    for i in 1..=8 {
        let name = i.to_string();
        db.add_fn(&[("__name__", "v"), ("i", &name)], 0, 30, 15, |t| {
            (i * t) as f64
        });
    }
    // Few groups (one accumulator per group and step) and many groups (step by step).
    assert_eq!(
        range(&db, "sum(v)", 0, 30, 15),
        vec![("{}".into(), vec![(0, 0.0), (15, 540.0), (30, 1080.0)])]
    );
    assert_eq!(
        range(&db, "max(v)", 0, 30, 15)[0].1,
        vec![(0, 0.0), (15, 120.0), (30, 240.0)]
    );
    let per_series = range(&db, "sum by (i) (v)", 0, 30, 15);
    assert_eq!(per_series.len(), 8);
    assert_eq!(
        per_series[7],
        (
            r#"{i="8"}"#.into(),
            vec![(0, 0.0), (15, 120.0), (30, 240.0)]
        )
    );
}
