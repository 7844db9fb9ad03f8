//! The in-memory part of the store: every series with its open chunk, its sealed chunks
//! waiting for the next flush and where its older chunks are on disk; the lookup of a
//! series by its labels (a hash map) and the inverted index.
//!
//! Series live in a vector indexed by id (ids of dropped series are reused), so a scrape,
//! which appends to the same series in the same order every time, walks memory in order.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::Arc;

use super::AppendError;
use super::chunk::{ChunkEncoder, SealedChunk};
use super::index::{Postings, SeriesId};
use super::labels::SeriesLabels;

/// When the open chunk is cut.
#[derive(Debug, Clone, Copy)]
pub(super) struct ChunkLimits {
    pub(super) max_samples: u16,
    pub(super) span_ms: i64,
}

/// Where a series' newest group is in one segment (older ones are chained from it), and
/// the id the segment knows the series by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SegRef {
    pub(super) segment: u32,
    pub(super) last_off: u32,
    pub(super) disk_id: u32,
}

/// One series.
#[derive(Debug)]
pub(super) struct Series {
    pub(super) labels: SeriesLabels,
    pub(super) head: Option<ChunkEncoder>,
    /// Sealed chunks not yet written to a segment, oldest first.
    pub(super) unflushed: Vec<Arc<SealedChunk>>,
    /// Segments holding chunks of this series, oldest first.
    pub(super) on_disk: Vec<SegRef>,
    /// Bounds of the series' samples (`first_t` is approximate after retention).
    pub(super) first_t: i64,
    pub(super) last_t: i64,
    /// The last value, unknown when the series was recovered without its open chunk.
    pub(super) last_v: Option<f64>,
}

impl Series {
    fn new(labels: SeriesLabels) -> Series {
        Series {
            labels,
            head: None,
            unflushed: Vec::new(),
            on_disk: Vec::new(),
            first_t: i64::MAX,
            last_t: i64::MIN,
            last_v: None,
        }
    }

    /// Appends a sample; `Ok(false)` for a duplicate that is ignored.
    fn append(&mut self, t: i64, v: f64, limits: ChunkLimits) -> Result<bool, AppendError> {
        if t < self.last_t {
            return Err(AppendError::OutOfOrder {
                t,
                last_t: self.last_t,
            });
        }
        if t == self.last_t {
            return match self.last_v {
                Some(last) if last.to_bits() != v.to_bits() => {
                    Err(AppendError::DuplicateTimestamp { t })
                }
                _ => Ok(false),
            };
        }
        match &mut self.head {
            Some(h)
                if h.count() < limits.max_samples
                    && t.saturating_sub(h.mint()) <= limits.span_ms =>
            {
                h.append(t, v);
            }
            _ => {
                self.seal_head();
                self.head = Some(ChunkEncoder::new(t, v));
            }
        }
        self.first_t = self.first_t.min(t);
        self.last_t = t;
        self.last_v = Some(v);
        Ok(true)
    }

    /// Moves the open chunk, if any, to the unflushed ones.
    pub(super) fn seal_head(&mut self) {
        if let Some(head) = self.head.take() {
            self.unflushed.push(Arc::new(head.seal()));
        }
    }

    /// Notes samples from `mint` to `maxt` that are stored elsewhere (disk, checkpoint).
    pub(super) fn extend_bounds(&mut self, mint: i64, maxt: i64) {
        self.first_t = self.first_t.min(mint);
        if maxt > self.last_t {
            self.last_t = maxt;
            self.last_v = None;
        }
    }

    /// True when the series has no samples left anywhere.
    pub(super) fn is_empty(&self) -> bool {
        self.head.is_none() && self.unflushed.is_empty() && self.on_disk.is_empty()
    }

    /// Tells whether the series may have samples in `[mint, maxt]`.
    pub(super) fn overlaps(&self, mint: i64, maxt: i64) -> bool {
        self.first_t <= maxt && self.last_t >= mint
    }
}

/// The ids with one labels hash: almost always one.
#[derive(Debug)]
enum Slot {
    One(SeriesId),
    Many(Vec<SeriesId>),
}

impl Slot {
    fn ids(&self) -> &[SeriesId] {
        match self {
            Slot::One(id) => std::slice::from_ref(id),
            Slot::Many(ids) => ids,
        }
    }
}

/// Hashes label pairs; the same pairs hash the same whether given as [`Labels`] or packed.
///
/// Bytes go to the hasher through a stack buffer: SipHash costs far more per `write` call
/// than per byte, and its result does not depend on how the input is split.
///
/// [`Labels`]: crate::monitor::series::Labels
pub(super) fn hash_pairs<'a>(
    hasher: &RandomState,
    pairs: impl Iterator<Item = (&'a str, &'a str)>,
) -> u64 {
    let mut h = hasher.build_hasher();
    let mut buf = [0u8; 256];
    let mut len = 0;
    for (name, value) in pairs {
        // 0xff never occurs in UTF-8, so it separates strings unambiguously.
        for part in [name.as_bytes(), &[0xff], value.as_bytes(), &[0xff]] {
            if len + part.len() > buf.len() {
                h.write(&buf[..len]);
                len = 0;
            }
            if part.len() > buf.len() {
                h.write(part);
            } else {
                buf[len..len + part.len()].copy_from_slice(part);
                len += part.len();
            }
        }
    }
    h.write(&buf[..len]);
    h.finish()
}

/// A hasher for keys that already are keyed hashes: passes a `u64` through.
#[derive(Debug, Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// Every series, found by id, by labels and by matchers.
#[derive(Debug)]
pub(super) struct Head {
    slots: Vec<Option<Series>>,
    free: Vec<SeriesId>,
    live: usize,
    pub(super) postings: Postings,
    by_hash: HashMap<u64, Slot, BuildHasherDefault<PassThrough>>,
    hasher: RandomState,
}

impl Head {
    /// An empty head hashing labels with `hasher`.
    pub(super) fn new(hasher: RandomState) -> Head {
        Head {
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            postings: Postings::default(),
            by_hash: HashMap::default(),
            hasher,
        }
    }

    /// The hasher that [`Head::lookup`] expects hashes from.
    pub(super) fn hasher(&self) -> &RandomState {
        &self.hasher
    }

    /// Number of series.
    pub(super) fn len(&self) -> usize {
        self.live
    }

    /// The series with this id.
    pub(super) fn get(&self, id: SeriesId) -> Option<&Series> {
        self.slots.get(id as usize)?.as_ref()
    }

    /// The series with this id, to change.
    pub(super) fn get_mut(&mut self, id: SeriesId) -> Option<&mut Series> {
        self.slots.get_mut(id as usize)?.as_mut()
    }

    /// Every series with its id, by id.
    pub(super) fn iter(&self) -> impl Iterator<Item = (SeriesId, &Series)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(id, s)| Some((id as SeriesId, s.as_ref()?)))
    }

    /// Every series, to change.
    pub(super) fn series_mut(&mut self) -> impl Iterator<Item = &mut Series> {
        self.slots.iter_mut().flatten()
    }

    /// The series with exactly these pairs.
    pub(super) fn lookup<'a, I>(&self, hash: u64, pairs: I) -> Option<SeriesId>
    where
        I: Iterator<Item = (&'a str, &'a str)> + Clone,
    {
        let slot = self.by_hash.get(&hash)?;
        let same = |id: &SeriesId| {
            self.get(*id)
                .is_some_and(|s| s.labels.same_as(pairs.clone()))
        };
        slot.ids().iter().copied().find(same)
    }

    /// The series with these pairs, created (and indexed) when new.
    pub(super) fn get_or_create<'a, I>(
        &mut self,
        hash: u64,
        pairs: I,
    ) -> Result<SeriesId, AppendError>
    where
        I: Iterator<Item = (&'a str, &'a str)> + Clone,
    {
        if let Some(id) = self.lookup(hash, pairs.clone()) {
            return Ok(id);
        }
        if pairs.clone().next().is_none() {
            return Err(AppendError::EmptyLabels);
        }
        let series = Series::new(SeriesLabels::from_pairs(pairs.clone()));
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id as usize] = Some(series);
                id
            }
            None => {
                let id =
                    SeriesId::try_from(self.slots.len()).map_err(|_| AppendError::TooManySeries)?;
                self.slots.push(Some(series));
                id
            }
        };
        self.live += 1;
        self.postings.add(id, pairs);
        match self.by_hash.get_mut(&hash) {
            None => {
                self.by_hash.insert(hash, Slot::One(id));
            }
            Some(Slot::One(other)) => {
                let other = *other;
                self.by_hash.insert(hash, Slot::Many(vec![other, id]));
            }
            Some(Slot::Many(ids)) => ids.push(id),
        }
        Ok(id)
    }

    /// Appends one sample; `Ok(false)` for an ignored duplicate.
    pub(super) fn append<'a, I>(
        &mut self,
        hash: u64,
        pairs: I,
        t: i64,
        v: f64,
        limits: ChunkLimits,
    ) -> Result<bool, AppendError>
    where
        I: Iterator<Item = (&'a str, &'a str)> + Clone,
    {
        let id = self.get_or_create(hash, pairs)?;
        match self.get_mut(id) {
            Some(series) => series.append(t, v, limits),
            None => Err(AppendError::TooManySeries),
        }
    }

    /// Seals open chunks whose last sample is before `before` (series that stopped).
    pub(super) fn seal_idle(&mut self, before: i64) -> usize {
        let idle = self
            .series_mut()
            .filter(|s| s.head.as_ref().is_some_and(|h| h.maxt() < before));
        idle.map(Series::seal_head).count()
    }

    /// Drops series that hold no samples any more; returns how many.
    pub(super) fn drop_empty(&mut self) -> usize {
        let empty: Vec<SeriesId> = self
            .iter()
            .filter(|(_, s)| s.is_empty())
            .map(|(id, _)| id)
            .collect();
        let mut dropped = Vec::with_capacity(empty.len());
        for id in empty {
            let Some(series) = self.slots.get_mut(id as usize).and_then(Option::take) else {
                continue;
            };
            self.live -= 1;
            self.free.push(id);
            let hash = hash_pairs(&self.hasher, series.labels.pairs());
            let emptied = match self.by_hash.get_mut(&hash) {
                Some(Slot::Many(ids)) => {
                    ids.retain(|&other| other != id);
                    ids.is_empty()
                }
                Some(Slot::One(_)) => true,
                None => false,
            };
            if emptied {
                self.by_hash.remove(&hash);
            }
            dropped.push((id, series.labels));
        }
        self.postings.remove(&dropped);
        dropped.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::series::{Labels, stale_nan};
    use crate::monitor::tsdb::index::pairs_of;

    const LIMITS: ChunkLimits = ChunkLimits {
        max_samples: 4,
        span_ms: 100,
    };

    fn add(head: &mut Head, labels: &Labels, t: i64, v: f64) -> Result<bool, AppendError> {
        let hash = hash_pairs(&head.hasher, pairs_of(labels));
        head.append(hash, pairs_of(labels), t, v, LIMITS)
    }

    fn up(job: &str) -> Labels {
        Labels::from_pairs(&[("__name__", "up"), ("job", job)])
    }

    #[test]
    fn out_of_order_and_conflicting_duplicates_are_rejected_equal_duplicates_ignored() {
        let mut head = Head::new(RandomState::new());
        let l = up("api");
        assert_eq!(add(&mut head, &l, 10, 1.0), Ok(true));
        assert_eq!(add(&mut head, &l, 10, 1.0), Ok(false));
        assert_eq!(
            add(&mut head, &l, 10, 2.0),
            Err(AppendError::DuplicateTimestamp { t: 10 })
        );
        assert_eq!(
            add(&mut head, &l, 9, 1.0),
            Err(AppendError::OutOfOrder { t: 9, last_t: 10 })
        );
        assert_eq!(add(&mut head, &l, 11, stale_nan()), Ok(true));
        assert_eq!(
            add(&mut head, &l, 11, stale_nan()),
            Ok(false),
            "NaNs compare by bits"
        );
        assert_eq!(
            add(&mut head, &Labels::default(), 1, 1.0),
            Err(AppendError::EmptyLabels)
        );
    }

    #[test]
    fn chunks_are_cut_by_sample_count_and_by_span() {
        let mut head = Head::new(RandomState::new());
        let l = up("api");
        for t in [0, 10, 20, 30, 40, 200] {
            add(&mut head, &l, t, 1.0).unwrap();
        }
        let series = head.iter().next().unwrap().1;
        let cut: Vec<(i64, i64, u16)> = series
            .unflushed
            .iter()
            .map(|c| (c.mint, c.maxt, c.count))
            .collect();
        assert_eq!(cut, vec![(0, 30, 4), (40, 40, 1)]);
        assert_eq!(
            series.head.as_ref().map(|h| (h.mint(), h.count())),
            Some((200, 1))
        );
    }

    #[test]
    fn hashes_do_not_depend_on_how_long_the_strings_are() {
        let hasher = RandomState::new();
        let long = "v".repeat(700);
        let l = Labels::from_pairs(&[("__name__", "up"), ("a", &long), ("b", "1")]);
        let packed = SeriesLabels::from_pairs(pairs_of(&l));
        assert_eq!(
            hash_pairs(&hasher, pairs_of(&l)),
            hash_pairs(&hasher, packed.pairs())
        );
        let mut whole = hasher.build_hasher();
        whole.write(b"__name__\xffup\xffa\xff");
        whole.write(long.as_bytes());
        whole.write(b"\xffb\xff1\xff");
        assert_eq!(hash_pairs(&hasher, pairs_of(&l)), whole.finish());
        assert_ne!(
            hash_pairs(&hasher, pairs_of(&up("a"))),
            hash_pairs(&hasher, pairs_of(&up("b")))
        );
    }

    #[test]
    fn labels_find_their_series_even_when_hashes_collide() {
        let mut head = Head::new(RandomState::new());
        let (a, b) = (up("a"), up("b"));
        // Force both into one slot by giving them the same hash.
        let id_a = head.get_or_create(42, pairs_of(&a)).unwrap();
        let id_b = head.get_or_create(42, pairs_of(&b)).unwrap();
        assert_ne!(id_a, id_b);
        assert_eq!(head.lookup(42, pairs_of(&a)), Some(id_a));
        assert_eq!(head.lookup(42, pairs_of(&b)), Some(id_b));
        assert_eq!(head.get_or_create(42, pairs_of(&b)), Ok(id_b));
        assert_eq!(head.lookup(42, pairs_of(&up("c"))), None);
    }

    #[test]
    fn idle_series_are_sealed_and_empty_ones_dropped_from_every_index() {
        let mut head = Head::new(RandomState::new());
        let (a, b) = (up("a"), up("b"));
        add(&mut head, &a, 10, 1.0).unwrap();
        add(&mut head, &b, 500, 1.0).unwrap();
        assert_eq!(head.seal_idle(100), 1);
        let id_a = head
            .lookup(hash_pairs(&head.hasher, pairs_of(&a)), pairs_of(&a))
            .unwrap();
        head.get_mut(id_a).unwrap().unflushed.clear();
        assert_eq!(head.drop_empty(), 1);
        assert_eq!(
            head.lookup(hash_pairs(&head.hasher, pairs_of(&a)), pairs_of(&a)),
            None
        );
        let job_a = [crate::monitor::series::Matcher::equal("job", "a")];
        assert_eq!(head.postings.candidates(&job_a), Some(vec![]));
        assert_eq!(head.len(), 1);
        // The freed id goes to the next new series.
        assert_eq!(head.get_or_create(7, pairs_of(&up("c"))), Ok(id_a));
    }
}
