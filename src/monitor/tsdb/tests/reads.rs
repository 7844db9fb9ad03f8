//! Matchers, the metadata reads and the append rules.

use super::*;

fn matcher_store() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(small_chunks(dir.path())).unwrap();
    let series = [
        Labels::from_pairs(&[
            ("__name__", "http_requests"),
            ("job", "api"),
            ("path", "/a"),
        ]),
        Labels::from_pairs(&[
            ("__name__", "http_requests"),
            ("job", "api"),
            ("path", "/b"),
        ]),
        Labels::from_pairs(&[("__name__", "http_requests"), ("job", "web")]),
        Labels::from_pairs(&[("__name__", "up"), ("job", "db")]),
    ];
    for (i, labels) in series.iter().enumerate() {
        db.append(labels, T0 + i as i64 * HOUR, 1.0).unwrap();
    }
    (dir, db)
}

fn selected(db: &Db, matchers: &[Matcher]) -> Vec<String> {
    let data = db.select(matchers, i64::MIN, i64::MAX);
    data.iter().map(|s| s.labels.to_string()).collect()
}

#[test]
fn matchers_follow_prometheus_semantics_for_empty_values_and_regexes() {
    let (_dir, db) = matcher_store();
    let name = Matcher::equal("__name__", "http_requests");
    let cases: Vec<(Vec<Matcher>, Vec<&str>)> = vec![
        (
            vec![name.clone(), m("path", MatchOp::Equal, "")],
            vec![r#"http_requests{job="web"}"#],
        ),
        (
            vec![name.clone(), m("path", MatchOp::NotEqual, "")],
            vec![
                r#"http_requests{job="api", path="/a"}"#,
                r#"http_requests{job="api", path="/b"}"#,
            ],
        ),
        (
            vec![name.clone(), m("path", MatchOp::Regex, "/b|")],
            vec![
                r#"http_requests{job="api", path="/b"}"#,
                r#"http_requests{job="web"}"#,
            ],
        ),
        (
            vec![name.clone(), m("path", MatchOp::NotRegex, "/a")],
            vec![
                r#"http_requests{job="api", path="/b"}"#,
                r#"http_requests{job="web"}"#,
            ],
        ),
        (
            vec![m("job", MatchOp::Regex, "d.*|w.*")],
            vec![r#"http_requests{job="web"}"#, r#"up{job="db"}"#],
        ),
        (
            vec![m("job", MatchOp::NotEqual, "api")],
            vec![r#"http_requests{job="web"}"#, r#"up{job="db"}"#],
        ),
        (vec![m("job", MatchOp::Regex, "ap")], vec![]),
        (
            vec![m("nope", MatchOp::Equal, "")],
            vec![
                r#"http_requests{job="api", path="/a"}"#,
                r#"http_requests{job="api", path="/b"}"#,
                r#"http_requests{job="web"}"#,
                r#"up{job="db"}"#,
            ],
        ),
    ];
    for (matchers, want) in cases {
        assert_eq!(selected(&db, &matchers), want, "{matchers:?}");
    }
}

#[test]
fn series_label_names_and_values_union_sets_and_filter_by_time() {
    let (_dir, db) = matcher_store();
    let api = vec![Matcher::equal("job", "api")];
    let db_job = vec![Matcher::equal("job", "db")];
    let all = (i64::MIN, i64::MAX);
    let names = |l: Vec<Labels>| l.iter().map(|l| l.to_string()).collect::<Vec<_>>();
    assert_eq!(
        names(db.series(&[api.clone(), db_job.clone()], all.0, all.1)).len(),
        3
    );
    assert_eq!(
        names(db.series(std::slice::from_ref(&api), T0 + HOUR, all.1)),
        vec![r#"http_requests{job="api", path="/b"}"#]
    );
    assert_eq!(
        db.label_names(&[], all.0, all.1),
        vec!["__name__", "job", "path"]
    );
    assert_eq!(
        db.label_names(std::slice::from_ref(&db_job), all.0, all.1),
        vec!["__name__", "job"]
    );
    assert_eq!(
        db.label_names(&[], T0 + 2 * HOUR, all.1),
        vec!["__name__", "job"]
    );
    assert_eq!(
        db.label_values("job", &[], all.0, all.1),
        vec!["api", "db", "web"]
    );
    assert_eq!(
        db.label_values("job", &[], T0 + 2 * HOUR, all.1),
        vec!["db", "web"]
    );
    assert_eq!(
        db.label_values("path", &[api, db_job], all.0, all.1),
        vec!["/a", "/b"]
    );
    assert!(db.label_values("missing", &[], all.0, all.1).is_empty());
}

#[test]
fn batches_count_out_of_order_and_duplicate_samples() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(small_chunks(dir.path())).unwrap();
    let up = metric("up", "api");
    let batch = vec![
        (up.clone(), T0 + 10, 1.0),
        (up.clone(), T0 + 10, 1.0),
        (up.clone(), T0 + 10, 2.0),
        (up.clone(), T0 + 5, 1.0),
        (up.clone(), T0 + 20, 1.0),
        (Labels::default(), T0, 1.0),
    ];
    let summary = db.append_batch(&batch);
    let want = AppendSummary {
        appended: 2,
        duplicates_ignored: 1,
        out_of_order: 1,
        duplicate_conflicts: 1,
        invalid: 1,
    };
    assert_eq!(summary, want);
    let stats = db.stats();
    assert_eq!(
        (stats.samples_appended_total, stats.out_of_order_total),
        (2, 1)
    );
    assert_eq!(
        (
            stats.duplicates_ignored_total,
            stats.duplicate_conflicts_total
        ),
        (1, 1)
    );
    assert_eq!(
        db.append(&up, T0 + 20, 3.0),
        Err(AppendError::DuplicateTimestamp { t: T0 + 20 })
    );
    assert_eq!(db.stats().duplicate_conflicts_total, 2);
}
