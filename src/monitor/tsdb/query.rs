//! Reads: samples of the series matching a selector, and the series, label names and label
//! values behind `/api/v1/series`, `/api/v1/labels` and `/api/v1/label/<name>/values`.
//!
//! Samples come from segment files, then chunks waiting for a flush, then the open chunk:
//! each chunk is in exactly one of those places at any instant, and the references are
//! taken under one read lock, so results have no duplicates. Metadata reads filter series by
//! their first and last sample times, so a series with a gap over the range may be listed
//! (like Prometheus, which filters by block).

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::monitor::series::{Labels, Matcher, Queryable, SeriesData};

use super::chunk::{ChunkIter, SealedChunk};
use super::index::SeriesId;
use super::labels::SeriesLabels;
use super::walk::{DiskChain, Samples, read_chains};
use super::{Db, Inner};

/// Where one series' samples are, as collected under the read lock.
struct Plan {
    labels: SeriesLabels,
    disk: Vec<DiskChain>,
    memory: Vec<Arc<SealedChunk>>,
    open: Option<SealedChunk>,
}

impl Inner {
    /// Ids of series matching all `matchers`, in id order.
    fn select_ids(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<SeriesId> {
        let mut ids = match self.head.postings.candidates(matchers) {
            Some(ids) => ids,
            None => self.head.iter().map(|(id, _)| id).collect(),
        };
        ids.retain(|&id| {
            let series = self.head.get(id);
            series.is_some_and(|s| s.overlaps(mint, maxt) && s.labels.matches(matchers))
        });
        ids
    }

    /// Ids matching any of the sets (all series when there are none).
    fn union_ids(&self, sets: &[Vec<Matcher>], mint: i64, maxt: i64) -> Vec<SeriesId> {
        if sets.is_empty() {
            return self.select_ids(&[], mint, maxt);
        }
        let all: HashSet<SeriesId> = sets
            .iter()
            .flat_map(|m| self.select_ids(m, mint, maxt))
            .collect();
        all.into_iter().collect()
    }

    fn plan(&self, id: SeriesId, mint: i64, maxt: i64) -> Option<Plan> {
        let series = self.head.get(id)?;
        let overlaps = |lo: i64, hi: i64| lo <= maxt && hi >= mint;
        let disk = series
            .on_disk
            .iter()
            .filter_map(|r| {
                let meta = self.segments.get(&r.segment)?;
                overlaps(meta.mint, meta.maxt).then(|| DiskChain {
                    segment: r.segment,
                    reader: meta.reader.clone(),
                    base_t: meta.base_t,
                    disk_id: r.disk_id,
                    last_off: r.last_off,
                })
            })
            .collect();
        let memory = series
            .unflushed
            .iter()
            .filter(|c| overlaps(c.mint, c.maxt))
            .cloned()
            .collect();
        let open = series
            .head
            .as_ref()
            .filter(|h| overlaps(h.mint(), h.maxt()))
            .map(|h| SealedChunk {
                bytes: h.bytes().into(),
                mint: h.mint(),
                maxt: h.maxt(),
                count: h.count(),
            });
        Some(Plan {
            labels: series.labels.clone(),
            disk,
            memory,
            open,
        })
    }

    /// Whether any of `ids` has samples in the range.
    fn any_overlaps(&self, ids: &[SeriesId], mint: i64, maxt: i64) -> bool {
        ids.iter()
            .any(|&id| self.head.get(id).is_some_and(|s| s.overlaps(mint, maxt)))
    }
}

/// Collects samples in `[mint, maxt]`, keeping timestamps strictly increasing.
struct Collector {
    mint: i64,
    maxt: i64,
    samples: Vec<(i64, f64)>,
    errors: u64,
}

impl Collector {
    fn push(&mut self, t: i64, v: f64) {
        let newer = self.samples.last().is_none_or(|&(last, _)| t > last);
        if newer && (self.mint..=self.maxt).contains(&t) {
            self.samples.push((t, v));
        }
    }

    fn add(&mut self, samples: ChunkIter<'_>) {
        for sample in samples {
            let Ok((t, v)) = sample else {
                self.errors += 1;
                return;
            };
            self.push(t, v);
        }
    }
}

impl Db {
    /// A series' samples: from its chunks on disk (read by the caller), then in memory.
    fn read_plan(
        &self,
        plan: Plan,
        disk: Vec<Samples>,
        mint: i64,
        maxt: i64,
    ) -> Option<SeriesData> {
        let mut out = Collector {
            mint,
            maxt,
            samples: Vec::new(),
            errors: 0,
        };
        for chunk in disk {
            chunk.into_iter().for_each(|(t, v)| out.push(t, v));
        }
        for chunk in plan.memory.iter().map(|c| &**c).chain(plan.open.as_ref()) {
            out.add(chunk.samples());
        }
        self.counters
            .read_errors
            .fetch_add(out.errors, Ordering::Relaxed);
        let labels = plan.labels.to_labels();
        (!out.samples.is_empty()).then_some(SeriesData {
            labels,
            samples: out.samples,
        })
    }

    /// Labels of the series matching any of `matcher_sets` (all series when empty) with
    /// samples around `[mint, maxt]`, sorted.
    pub fn series(&self, matcher_sets: &[Vec<Matcher>], mint: i64, maxt: i64) -> Vec<Labels> {
        let labels: Vec<SeriesLabels> = {
            let inner = self.read_inner();
            let ids = inner.union_ids(matcher_sets, mint, maxt);
            ids.iter()
                .filter_map(|&id| inner.head.get(id).map(|s| s.labels.clone()))
                .collect()
        };
        let mut out: Vec<Labels> = labels.iter().map(SeriesLabels::to_labels).collect();
        out.sort();
        out
    }

    /// Label names of the series matching any of `matcher_sets` (all series when empty)
    /// with samples around `[mint, maxt]`, sorted.
    pub fn label_names(&self, matcher_sets: &[Vec<Matcher>], mint: i64, maxt: i64) -> Vec<String> {
        let inner = self.read_inner();
        if matcher_sets.is_empty() {
            let mut used = Vec::new();
            for (name, mut lists) in inner.head.postings.names() {
                if lists.any(|ids| inner.any_overlaps(ids, mint, maxt)) {
                    used.push(name.to_owned());
                }
            }
            return used;
        }
        let mut names = BTreeSet::new();
        for id in inner.union_ids(matcher_sets, mint, maxt) {
            if let Some(series) = inner.head.get(id) {
                names.extend(series.labels.pairs().map(|(n, _)| n));
            }
        }
        names.into_iter().map(str::to_owned).collect()
    }

    /// Values of label `name` among the series matching any of `matcher_sets` (all series
    /// when empty) with samples around `[mint, maxt]`, sorted.
    pub fn label_values(
        &self,
        name: &str,
        matcher_sets: &[Vec<Matcher>],
        mint: i64,
        maxt: i64,
    ) -> Vec<String> {
        let inner = self.read_inner();
        if matcher_sets.is_empty() {
            let values = inner.head.postings.values(name);
            let used = values.filter(|(_, ids)| inner.any_overlaps(ids, mint, maxt));
            return used.map(|(value, _)| value.to_owned()).collect();
        }
        let mut values = BTreeSet::new();
        for id in inner.union_ids(matcher_sets, mint, maxt) {
            if let Some(series) = inner.head.get(id) {
                let value = series.labels.get(name);
                if !value.is_empty() {
                    values.insert(value);
                }
            }
        }
        values.into_iter().map(str::to_owned).collect()
    }
}

impl Queryable for Db {
    /// Samples in `[mint, maxt]` of every series matching all `matchers`, sorted by labels.
    /// Chunks that cannot be read are skipped and counted in [`Stats::read_errors_total`].
    ///
    /// [`Stats::read_errors_total`]: super::Stats::read_errors_total
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<SeriesData> {
        if mint > maxt {
            return Vec::new();
        }
        let mut plans: Vec<Plan> = {
            let inner = self.read_inner();
            let ids = inner.select_ids(matchers, mint, maxt);
            ids.into_iter()
                .filter_map(|id| inner.plan(id, mint, maxt))
                .collect()
        };
        // Disk reads go segment by segment for all series at once (see `walk`).
        let chains: Vec<(usize, DiskChain)> = plans
            .iter_mut()
            .enumerate()
            .flat_map(|(i, plan)| {
                std::mem::take(&mut plan.disk)
                    .into_iter()
                    .map(move |c| (i, c))
            })
            .collect();
        let disk = read_chains(&self.read_cache, chains, plans.len(), mint, maxt);
        let counters = &self.counters;
        counters
            .read_errors
            .fetch_add(disk.errors, Ordering::Relaxed);
        counters
            .group_reads
            .fetch_add(disk.reads, Ordering::Relaxed);
        counters
            .group_cache_hits
            .fetch_add(disk.cached, Ordering::Relaxed);
        let mut out: Vec<SeriesData> = plans
            .into_iter()
            .zip(disk.chunks)
            .filter_map(|(plan, chunks)| self.read_plan(plan, chunks, mint, maxt))
            .collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::tsdb::chunk::ChunkEncoder;

    #[test]
    fn collector_keeps_the_range_and_strictly_increasing_times() {
        let chunk = |from: i64, to: i64| {
            let mut enc = ChunkEncoder::new(from, from as f64);
            (from + 1..to).for_each(|t| enc.append(t, t as f64));
            enc.seal()
        };
        let mut out = Collector {
            mint: 3,
            maxt: 12,
            samples: Vec::new(),
            errors: 0,
        };
        out.add(chunk(0, 10).samples());
        out.add(chunk(5, 15).samples());
        let times: Vec<i64> = out.samples.iter().map(|s| s.0).collect();
        assert_eq!(times, (3..=12).collect::<Vec<_>>());
        assert_eq!(out.errors, 0);
    }
}
