//! Functions: the rate family, `*_over_time`, `histogram_quantile`, label functions and the
//! functions over instant vectors and scalars.

use super::super::testutil::*;

fn counters() -> MemDb {
    let mut db = MemDb::default();
    let a = [(0, 0.0), (15, 10.0), (30, 20.0), (45, 30.0), (60, 40.0)];
    // Resets between 15 s and 30 s.
    let b = [(0, 100.0), (15, 110.0), (30, 5.0), (45, 15.0), (60, 25.0)];
    db.add(&[("__name__", "c_total"), ("job", "a")], &a);
    db.add(&[("__name__", "c_total"), ("job", "b")], &b);
    db
}

fn value(rows: &[(String, f64)], labels: &str) -> f64 {
    rows.iter()
        .find(|(l, _)| l == labels)
        .unwrap_or_else(|| panic!("no {labels} in {rows:?}"))
        .1
}

#[test]
fn rate_and_increase_extrapolate_and_handle_counter_resets() {
    let db = counters();
    // a: 30 over the 45 s between 15 s and 60 s, extrapolated 15 s back to the window
    // start (the zero point is 15 s back too): 40 per minute.
    let rate = instant(&db, "rate(c_total[1m])", 60);
    assert_close(value(&rate, r#"{job="a"}"#), 40.0 / 60.0);
    // b: 110 -> 5 is a reset: 25 - 110 + 110 = 25 over 45 s, extrapolated by 60/45.
    assert_close(value(&rate, r#"{job="b"}"#), 25.0 * 60.0 / 45.0 / 60.0);
    let increase = instant(&db, "increase(c_total[1m])", 60);
    assert_close(value(&increase, r#"{job="a"}"#), 40.0);
    assert_close(value(&increase, r#"{job="b"}"#), 100.0 / 3.0);
}

#[test]
fn rate_extrapolates_only_half_a_gap_past_the_last_sample() {
    let db = counters();
    let r = range(&db, r#"rate(c_total{job="a"}[1m])"#, 60, 90, 15);
    let points = &r[0].1;
    assert_close(points[0].1, 40.0 / 60.0);
    // At 75 s: 20 over 30 s, 15 s to each edge (within 1.1 gaps): 40 per minute.
    assert_close(points[1].1, 40.0 / 60.0);
    // At 90 s: 10 over 15 s; 15 s to the start, 30 s to the end cut to 7.5 s: 25.
    assert_close(points[2].1, 25.0 / 60.0);
    // With a single sample in the window there is no rate.
    assert!(instant(&db, r#"rate(c_total{job="a"}[20s])"#, 60).len() == 1);
    assert!(instant(&db, r#"rate(c_total{job="a"}[10s])"#, 60).is_empty());
}

#[test]
fn delta_and_idelta_treat_the_series_as_a_gauge() {
    let db = counters();
    let delta = instant(&db, "delta(c_total[1m])", 60);
    assert_close(value(&delta, r#"{job="b"}"#), -85.0 * 60.0 / 45.0);
    assert_eq!(
        value(&instant(&db, "idelta(c_total[1m])", 30), r#"{job="b"}"#),
        -105.0
    );
}

#[test]
fn irate_uses_the_last_two_samples() {
    let db = counters();
    let at60 = instant(&db, "irate(c_total[1m])", 60);
    assert_close(value(&at60, r#"{job="a"}"#), 10.0 / 15.0);
    // At 30 s b's last two samples are 110 and 5: a reset, so 5 / 15 s.
    let at30 = instant(&db, "irate(c_total[1m])", 30);
    assert_close(value(&at30, r#"{job="b"}"#), 5.0 / 15.0);
}

#[test]
fn resets_and_changes_count_within_the_window() {
    let db = counters();
    let resets = instant(&db, "resets(c_total[1m])", 60);
    assert_eq!(
        resets,
        vec![(r#"{job="a"}"#.into(), 0.0), (r#"{job="b"}"#.into(), 1.0)]
    );
    let changes = instant(&db, "changes(c_total[5m])", 60);
    assert_eq!(value(&changes, r#"{job="a"}"#), 4.0);
}

#[test]
fn over_time_functions_aggregate_each_window() {
    let mut db = MemDb::default();
    db.add(
        &[("__name__", "g"), ("k", "v")],
        &[(0, 3.0), (10, 1.0), (20, 4.0), (30, 1.0), (40, 5.0)],
    );
    let one = |q: &str| {
        let rows = instant(&db, q, 40);
        assert_eq!(rows.len(), 1, "{q}");
        rows[0].1
    };
    assert_close(one("avg_over_time(g[1m])"), 2.8);
    assert_eq!(one("min_over_time(g[1m])"), 1.0);
    assert_eq!(one("max_over_time(g[1m])"), 5.0);
    assert_eq!(one("sum_over_time(g[1m])"), 14.0);
    assert_eq!(one("count_over_time(g[1m])"), 5.0);
    assert_eq!(one("count_over_time(g[15s])"), 2.0);
    assert_eq!(one("last_over_time(g[1m])"), 5.0);
    assert_close(one("stddev_over_time(g[1m])"), 1.6);
    assert_close(one("stdvar_over_time(g[1m])"), 2.56);
    assert_eq!(one("quantile_over_time(0.5, g[1m])"), 3.0);
    assert_eq!(one("quantile_over_time(0.75, g[1m])"), 4.0);
    assert_eq!(one("present_over_time(g[1m])"), 1.0);
    // last_over_time keeps the metric name, the others drop it.
    assert_eq!(
        instant(&db, "last_over_time(g[1m])", 40)[0].0,
        r#"g{k="v"}"#
    );
    assert_eq!(instant(&db, "max_over_time(g[1m])", 40)[0].0, r#"{k="v"}"#);
    assert_eq!(instant(&db, "absent_over_time(g[1m])", 40), vec![]);
    assert_eq!(
        instant(&db, r#"absent_over_time(g{k="w"}[1m])"#, 40),
        vec![(r#"{k="w"}"#.into(), 1.0)]
    );
}

#[test]
fn deriv_and_predict_linear_fit_a_line() {
    let mut db = MemDb::default();
    db.add_fn(&[("__name__", "g")], 0, 100, 10, |t| 2.0 * t as f64);
    assert_close(instant(&db, "deriv(g[1m])", 100)[0].1, 2.0);
    assert_close(instant(&db, "predict_linear(g[1m], 60)", 100)[0].1, 320.0);
}

fn buckets() -> MemDb {
    let mut db = MemDb::default();
    for (uri, per_second) in [("/a", [1.0, 2.0, 4.0]), ("/b", [2.0, 2.0, 2.0])] {
        for (le, k) in ["0.1", "0.5", "+Inf"].into_iter().zip(per_second) {
            let labels = [
                ("__name__", "req_bucket"),
                ("uri", uri),
                ("le", le),
                ("instance", "x"),
            ];
            db.add_fn(&labels, 0, 60, 15, |t| k * t as f64);
        }
    }
    db
}

#[test]
fn histogram_quantile_interpolates_within_buckets() {
    let db = buckets();
    let q = |phi: f64| {
        instant(
            &db,
            &format!("histogram_quantile({phi}, sum(rate(req_bucket[1m])) by (le, uri))"),
            60,
        )
    };
    // /a: 1, 2, 4 per second: rank 1.5 falls in (0.1, 0.5]: 0.1 + 0.4 * 0.5 / 1.
    let rows = q(0.375);
    assert_close(value(&rows, r#"{uri="/a"}"#), 0.3);
    // /b: everything in the first bucket: 0.1 * 0.75 / 2.
    assert_close(value(&rows, r#"{uri="/b"}"#), 0.0375);
    // Rank in the +Inf bucket: the highest finite bound.
    assert_eq!(value(&q(0.99), r#"{uri="/a"}"#), 0.5);
    assert_close(value(&q(0.99), r#"{uri="/b"}"#), 0.099);
    // Without `le` there are no buckets to read.
    assert!(
        instant(
            &db,
            "histogram_quantile(0.5, sum(rate(req_bucket[1m])) by (uri))",
            60
        )
        .is_empty()
    );
    // Without aggregation, each series keeps its other labels (not the name or le).
    let raw = instant(
        &db,
        r#"histogram_quantile(0.375, req_bucket{uri="/a"})"#,
        60,
    );
    assert_eq!(raw.len(), 1);
    assert_eq!(raw[0].0, r#"{instance="x", uri="/a"}"#);
}

#[test]
fn label_replace_and_label_join_rewrite_labels() {
    let mut db = MemDb::default();
    db.add(
        &[("__name__", "up"), ("instance", "db1:9187"), ("job", "pg")],
        &[(0, 1.0)],
    );
    let got = instant(
        &db,
        r#"label_replace(up, "host", "$1-${2}x", "instance", "(.*):(.*)")"#,
        10,
    );
    assert_eq!(
        got[0].0,
        r#"up{host="db1-9187x", instance="db1:9187", job="pg"}"#
    );
    let unchanged = instant(
        &db,
        r#"label_replace(up, "host", "$1", "instance", "(nomatch)")"#,
        10,
    );
    assert_eq!(unchanged[0].0, r#"up{instance="db1:9187", job="pg"}"#);
    let partial = instant(
        &db,
        r#"label_replace(up, "host", "$1", "instance", "db(.)")"#,
        10,
    );
    assert_eq!(partial, unchanged, "the regex must match the whole value");
    let removed = instant(&db, r#"label_replace(up, "job", "", "job", ".*")"#, 10);
    assert_eq!(removed[0].0, r#"up{instance="db1:9187"}"#);
    let joined = instant(
        &db,
        r#"label_join(up, "id", "/", "job", "missing", "instance")"#,
        10,
    );
    assert_eq!(
        joined[0].0,
        r#"up{id="pg//db1:9187", instance="db1:9187", job="pg"}"#
    );
    let err = super::super::Engine::default()
        .instant(&db, r#"label_replace(up, "x", "", "job", "(")"#, 10_000)
        .unwrap_err();
    assert!(
        err.to_string().contains("invalid regular expression"),
        "{err}"
    );
}

#[test]
fn label_replace_that_merges_series_fails_like_prometheus() {
    let mut db = MemDb::default();
    db.add(&[("__name__", "up"), ("job", "a")], &[(0, 1.0)]);
    db.add(&[("__name__", "up"), ("job", "b")], &[(0, 1.0)]);
    let err = super::super::Engine::default()
        .instant(&db, r#"label_replace(up, "job", "", "job", ".*")"#, 10_000)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "vector cannot contain metrics with the same labelset"
    );
}

#[test]
fn scalar_and_vector_functions() {
    let mut db = MemDb::default();
    db.add(&[("__name__", "x"), ("i", "1")], &[(0, -2.5), (30, -2.5)]);
    db.add(&[("__name__", "x"), ("i", "2")], &[(0, 7.0), (30, 7.0)]);
    db.add(
        &[("__name__", "x"), ("i", "3")],
        &[(0, f64::NAN), (30, f64::NAN)],
    );
    let vals = |q: &str| {
        instant(&db, q, 40)
            .into_iter()
            .map(|r| r.1)
            .collect::<Vec<_>>()
    };
    assert_eq!(vals(r#"abs(x{i="1"})"#), vec![2.5]);
    assert_eq!(vals(r#"round(x{i="1"})"#), vec![-2.0], "ties round up");
    assert_eq!(vals(r#"round(x{i="2"}, 5)"#), vec![5.0]);
    assert_eq!(vals(r#"ceil(x{i="1"})"#), vec![-2.0]);
    assert_eq!(vals(r#"floor(x{i="1"})"#), vec![-3.0]);
    assert_eq!(vals(r#"clamp(x{i="2"}, 0, 3)"#), vec![3.0]);
    assert_eq!(vals(r#"clamp(x{i="2"}, 3, 0)"#), Vec::<f64>::new());
    assert_eq!(vals(r#"clamp_min(x{i="1"}, 0)"#), vec![0.0]);
    assert_eq!(vals(r#"clamp_max(x{i="2"}, 1)"#), vec![1.0]);
    assert_eq!(vals("sqrt(vector(16))"), vec![4.0]);
    assert_eq!(
        vals("exp(vector(0)) + ln(vector(1)) + log2(vector(8)) + log10(vector(100))"),
        vec![6.0]
    );
    assert_eq!(vals(r#"scalar(x{i="2"}) * 2"#), vec![14.0]);
    assert!(vals("scalar(x)")[0].is_nan(), "more than one element");
    assert_eq!(vals(r#"timestamp(x{i="2"})"#), vec![30.0]);
    assert_eq!(vals(r#"timestamp(x{i="2"} * 1)"#), vec![40.0]);
    assert_eq!(vals(r#"absent(x{i="2"})"#), Vec::<f64>::new());
    assert_eq!(
        instant(&db, r#"absent(nope{job="j", i=~"z"})"#, 40),
        vec![(r#"{job="j"}"#.into(), 1.0)]
    );
    let sorted = instant(&db, "sort(x)", 40);
    assert_eq!(
        sorted.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
        [r#"x{i="1"}"#, r#"x{i="2"}"#, r#"x{i="3"}"#]
    );
    let desc = instant(&db, "sort_desc(x)", 40);
    assert_eq!(
        desc.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
        [r#"x{i="2"}"#, r#"x{i="1"}"#, r#"x{i="3"}"#]
    );
}
