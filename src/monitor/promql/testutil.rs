//! Test helpers: an in-memory [`Queryable`] and builders for series and results.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::monitor::series::{Labels, Matcher, Queryable, SeriesData};

use super::{Engine, Value};

/// Series in memory; counts `select` calls so tests can check each selector reads once.
#[derive(Default)]
pub(super) struct MemDb {
    pub series: Vec<SeriesData>,
    pub selects: AtomicUsize,
}

impl Queryable for MemDb {
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<SeriesData> {
        self.selects.fetch_add(1, Ordering::Relaxed);
        self.series
            .iter()
            .filter(|s| matchers.iter().all(|m| m.matches_labels(&s.labels)))
            .filter_map(|s| {
                let samples: Vec<(i64, f64)> = s
                    .samples
                    .iter()
                    .copied()
                    .filter(|&(t, _)| t >= mint && t <= maxt)
                    .collect();
                (!samples.is_empty()).then(|| SeriesData {
                    labels: s.labels.clone(),
                    samples,
                })
            })
            .collect()
    }
}

impl MemDb {
    /// Adds a series from `name{a="b",...}`-style label pairs and `(seconds, value)` samples.
    pub fn add(&mut self, labels: &[(&str, &str)], samples: &[(i64, f64)]) -> &mut Self {
        self.series.push(SeriesData {
            labels: Labels::from_pairs(labels),
            samples: samples.iter().map(|&(s, v)| (s * 1000, v)).collect(),
        });
        self
    }

    /// Adds a series sampled every `step_s` seconds from `from_s` to `to_s`, valued `f(t)`.
    pub fn add_fn(
        &mut self,
        labels: &[(&str, &str)],
        from_s: i64,
        to_s: i64,
        step_s: i64,
        f: impl Fn(i64) -> f64,
    ) -> &mut Self {
        let samples: Vec<(i64, f64)> = (from_s..=to_s)
            .step_by(step_s as usize)
            .map(|t| (t, f(t)))
            .collect();
        self.add(labels, &samples)
    }
}

/// Runs an instant query at `t_s` seconds and returns `(labels as text, value)` per sample,
/// in result order.
pub(super) fn instant(db: &MemDb, query: &str, t_s: i64) -> Vec<(String, f64)> {
    match Engine::default().instant(db, query, t_s * 1000) {
        Ok(Value::Vector(v)) => v.into_iter().map(|s| (s.labels.to_string(), s.v)).collect(),
        Ok(Value::Scalar { v, .. }) => vec![(String::new(), v)],
        other => panic!("{query}: unexpected {other:?}"),
    }
}

/// Runs an instant query and returns its samples sorted by labels.
pub(super) fn instant_sorted(db: &MemDb, query: &str, t_s: i64) -> Vec<(String, f64)> {
    let mut out = instant(db, query, t_s);
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Runs a range query (seconds) and returns `(labels as text, [(seconds, value)])`.
pub(super) fn range(
    db: &MemDb,
    query: &str,
    start_s: i64,
    end_s: i64,
    step_s: i64,
) -> Vec<(String, Vec<(i64, f64)>)> {
    match Engine::default().range(db, query, start_s * 1000, end_s * 1000, step_s * 1000) {
        Ok(Value::Matrix(m)) => m
            .into_iter()
            .map(|s| {
                let points = s.samples.into_iter().map(|(t, v)| (t / 1000, v)).collect();
                (s.labels.to_string(), points)
            })
            .collect(),
        other => panic!("{query}: unexpected {other:?}"),
    }
}

/// Asserts two floats are equal within a relative 1e-9.
#[track_caller]
pub(super) fn assert_close(got: f64, want: f64) {
    let ok = (got - want).abs() <= 1e-9 * want.abs().max(1.0) || (got.is_nan() && want.is_nan());
    assert!(ok, "got {got}, want {want}");
}
