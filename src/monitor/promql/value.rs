//! Values: what a query returns ([`Value`], [`Sample`]) and the step-indexed series every
//! node of a query produces while it is evaluated over a [`Grid`].

use std::collections::HashMap;

use crate::monitor::series::{Labels, SeriesData};

use super::QueryError;

/// A query's result, in the shapes of Prometheus's HTTP API.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A number at the evaluation time.
    Scalar {
        /// The evaluation time (ms).
        t: i64,
        /// The number.
        v: f64,
    },
    /// A string literal at the evaluation time.
    String {
        /// The evaluation time (ms).
        t: i64,
        /// The string.
        v: String,
    },
    /// One sample per series, all at the evaluation time.
    Vector(Vec<Sample>),
    /// Several samples per series: a range query's result, or a range vector evaluated
    /// by an instant query. Sorted by labels.
    Matrix(Vec<SeriesData>),
}

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series' labels (without `__name__` once a function or operator changed it).
    pub labels: Labels,
    /// The evaluation time (ms).
    pub t: i64,
    /// The value.
    pub v: f64,
}

/// The evaluation times of a query or subquery: `start + i * step` for `i < len` (`len >= 1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Grid {
    pub start: i64,
    pub step: i64,
    pub len: usize,
}

impl Grid {
    /// The time of step `i`.
    pub fn ts(&self, i: usize) -> i64 {
        self.start + i as i64 * self.step
    }

    /// The time of the last step.
    pub fn end(&self) -> i64 {
        self.ts(self.len.saturating_sub(1))
    }
}

/// One series of an instant vector evaluated over a grid: `(step index, value)` pairs in
/// step order, one at most per step.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct StepSeries {
    pub labels: Labels,
    pub points: Vec<(usize, f64)>,
}

/// The value of one node evaluated over a grid.
#[derive(Debug)]
pub(super) enum Val {
    /// One value per step.
    Scalar(Vec<f64>),
    /// A string (the same at every step).
    String(String),
    /// An instant vector at every step.
    Vector(Vec<StepSeries>),
    /// A range vector, only as the result of an instant query.
    Matrix(Vec<SeriesData>),
}

impl Val {
    /// How many samples the value holds, for the max-samples limit.
    pub fn sample_count(&self) -> usize {
        match self {
            Val::Scalar(v) => v.len(),
            Val::String(_) => 0,
            Val::Vector(series) => series.iter().map(|s| s.points.len()).sum(),
            Val::Matrix(series) => series.iter().map(|s| s.samples.len()).sum(),
        }
    }
}

/// The error Prometheus raises when two output series end up with the same labels.
pub(super) fn duplicate_labelset() -> QueryError {
    QueryError::Eval("vector cannot contain metrics with the same labelset".into())
}

/// Collects output series by label set, in first-seen order: series whose labels became
/// equal (e.g. after dropping `__name__`) are merged, and two values for the same labels at
/// the same step are an error, as in Prometheus.
#[derive(Default)]
pub(super) struct SeriesSet {
    index: HashMap<Labels, usize>,
    series: Vec<StepSeries>,
    /// Slots that received points out of step order and need sorting at the end.
    unsorted: Vec<bool>,
}

impl SeriesSet {
    /// The slot of `labels`, created empty on first use.
    pub fn slot(&mut self, labels: Labels) -> usize {
        if let Some(&slot) = self.index.get(&labels) {
            return slot;
        }
        let slot = self.series.len();
        self.index.insert(labels.clone(), slot);
        self.series.push(StepSeries {
            labels,
            points: Vec::new(),
        });
        self.unsorted.push(false);
        slot
    }

    /// Adds a point to a slot.
    pub fn push(&mut self, slot: usize, step: usize, v: f64) -> Result<(), QueryError> {
        let points = &mut self.series[slot].points;
        match points.last() {
            Some(&(last, _)) if last == step => return Err(duplicate_labelset()),
            Some(&(last, _)) if last > step => self.unsorted[slot] = true,
            _ => {}
        }
        points.push((step, v));
        Ok(())
    }

    /// Adds a whole series (points in step order).
    pub fn add_series(
        &mut self,
        labels: Labels,
        points: Vec<(usize, f64)>,
    ) -> Result<(), QueryError> {
        let slot = self.slot(labels);
        if self.series[slot].points.is_empty() {
            self.series[slot].points = points;
            return Ok(());
        }
        for (step, v) in points {
            self.push(slot, step, v)?;
        }
        Ok(())
    }

    /// The collected series without the empty ones; fails on two values at one step.
    pub fn finish(self) -> Result<Vec<StepSeries>, QueryError> {
        let mut out = Vec::with_capacity(self.series.len());
        for (mut series, unsorted) in self.series.into_iter().zip(self.unsorted) {
            if series.points.is_empty() {
                continue;
            }
            if unsorted {
                series.points.sort_by_key(|p| p.0);
                if series.points.windows(2).any(|w| w[0].0 == w[1].0) {
                    return Err(duplicate_labelset());
                }
            }
            out.push(series);
        }
        Ok(out)
    }
}

/// A vector's points regrouped by step, so that per-step work (aggregations, matching)
/// reads memory in order instead of visiting every series at every step.
pub(super) struct ByStep {
    offsets: Vec<usize>,
    entries: Vec<(usize, f64)>,
}

impl ByStep {
    /// Indexes `series` over a grid of `len` steps.
    pub fn new(series: &[StepSeries], len: usize) -> Self {
        let mut offsets = vec![0usize; len + 1];
        for s in series {
            for &(step, _) in &s.points {
                offsets[step + 1] += 1;
            }
        }
        for i in 1..offsets.len() {
            offsets[i] += offsets[i - 1];
        }
        let mut fill = offsets.clone();
        let mut entries = vec![(0, 0.0); offsets[len]];
        for (i, s) in series.iter().enumerate() {
            for &(step, v) in &s.points {
                entries[fill[step]] = (i, v);
                fill[step] += 1;
            }
        }
        ByStep { offsets, entries }
    }

    /// `(series index, value)` of every series with a point at `step`, in series order.
    pub fn at(&self, step: usize) -> &[(usize, f64)] {
        &self.entries[self.offsets[step]..self.offsets[step + 1]]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(v: &str) -> Labels {
        Labels::from_pairs(&[("a", v)])
    }

    #[test]
    fn series_set_merges_equal_labels_and_sorts_their_points() {
        let mut set = SeriesSet::default();
        set.add_series(labels("1"), vec![(2, 2.0)]).unwrap();
        set.add_series(labels("2"), vec![(0, 9.0)]).unwrap();
        set.add_series(labels("1"), vec![(0, 0.0), (1, 1.0)])
            .unwrap();
        let out = set.finish().unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].points, vec![(0, 0.0), (1, 1.0), (2, 2.0)]);
    }

    #[test]
    fn series_set_rejects_two_values_at_one_step() {
        let mut set = SeriesSet::default();
        set.add_series(labels("1"), vec![(1, 1.0), (3, 1.0)])
            .unwrap();
        set.add_series(labels("1"), vec![(1, 2.0)]).unwrap();
        assert_eq!(set.finish().unwrap_err(), duplicate_labelset());

        let mut set = SeriesSet::default();
        let slot = set.slot(labels("1"));
        set.push(slot, 4, 1.0).unwrap();
        assert!(set.push(slot, 4, 1.0).is_err());
    }

    #[test]
    fn by_step_lists_the_series_present_at_each_step() {
        let series = vec![
            StepSeries {
                labels: labels("1"),
                points: vec![(0, 1.0), (2, 3.0)],
            },
            StepSeries {
                labels: labels("2"),
                points: vec![(1, 5.0), (2, 6.0)],
            },
        ];
        let by_step = ByStep::new(&series, 4);
        assert_eq!(by_step.at(0), [(0, 1.0)]);
        assert_eq!(by_step.at(1), [(1, 5.0)]);
        assert_eq!(by_step.at(2), [(0, 3.0), (1, 6.0)]);
        assert_eq!(by_step.at(3), []);
    }
}
