//! Reading series' chunks from segment files for a query.
//!
//! Each series has a chain of groups per segment, newest first (see `group`). The series
//! of one scrape share their groups, so a query walks all its chains in a segment at once:
//! it always reads the newest group any series still needs, so each group is read and
//! decompressed at most once per query however many of its series match. A walk passes a
//! group newer than the range by its index alone and stops a series at its first chunk
//! that starts at or before the range.
//!
//! Groups a query decompresses are kept in a small [`GroupCache`], so a dashboard that asks
//! the same ranges every few seconds does not read, check and decompress them again.

use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::fs::File;
use std::sync::{Arc, Mutex};

use super::group::{Body, GroupRecord, OwnedGroup};
use super::segment::read_record_at;

/// Decompressed groups by `(segment, offset)`, least recently used first out. Records are
/// never rewritten in place and segment ids are not reused, so an entry never goes stale.
#[derive(Debug)]
pub(super) struct GroupCache {
    budget: usize,
    state: Mutex<CacheState>,
}

#[derive(Debug, Default)]
struct CacheState {
    groups: HashMap<(u32, u32), (Arc<OwnedGroup>, u64)>,
    bytes: usize,
    clock: u64,
}

impl GroupCache {
    /// A cache holding up to about `budget` bytes of groups (0 keeps none).
    pub(super) fn new(budget: usize) -> GroupCache {
        GroupCache {
            budget,
            state: Mutex::default(),
        }
    }

    /// Bytes and groups held.
    #[cfg(test)]
    pub(super) fn held(&self) -> (usize, usize) {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        (state.bytes, state.groups.len())
    }

    fn get(&self, key: (u32, u32)) -> Option<Arc<OwnedGroup>> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.clock += 1;
        let now = state.clock;
        let (group, used) = state.groups.get_mut(&key)?;
        *used = now;
        Some(group.clone())
    }

    fn put(&self, key: (u32, u32), group: Arc<OwnedGroup>) {
        let size = group.size();
        if size > self.budget {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.clock += 1;
        let now = state.clock;
        if let Some((old, _)) = state.groups.insert(key, (group, now)) {
            state.bytes -= old.size();
        }
        state.bytes += size;
        while state.bytes > self.budget {
            let Some(oldest) = state.groups.iter().min_by_key(|(_, (_, used))| *used) else {
                break;
            };
            let oldest = *oldest.0;
            if let Some((group, _)) = state.groups.remove(&oldest) {
                state.bytes -= group.size();
            }
        }
    }
}

/// Where a series' newest group is in one segment.
pub(super) struct DiskChain {
    pub(super) segment: u32,
    pub(super) reader: Arc<File>,
    pub(super) base_t: i64,
    pub(super) disk_id: u32,
    pub(super) last_off: u32,
}

/// Samples of one chunk, oldest first.
pub(super) type Samples = Vec<(i64, f64)>;

/// What a walk found: per series (by the index given with its chains) its chunks in
/// `[mint, maxt]`, oldest first, possibly with samples outside the range.
#[derive(Debug, Default)]
pub(super) struct DiskRead {
    pub(super) chunks: Vec<Vec<Samples>>,
    /// Groups or chunks that could not be read.
    pub(super) errors: u64,
    /// Groups visited, read from the file or found in the cache.
    pub(super) reads: u64,
    /// Of those, found in the cache.
    pub(super) cached: u64,
}

/// One series being walked in a segment.
struct Cursor {
    series: usize,
    disk_id: u32,
    /// Chunks found, newest first.
    found: Vec<Samples>,
}

/// Reads the chunks in `[mint, maxt]` of `chains`, each tagged with its series' index
/// (`0..series`), segments in id order.
pub(super) fn read_chains(
    cache: &GroupCache,
    chains: Vec<(usize, DiskChain)>,
    series: usize,
    mint: i64,
    maxt: i64,
) -> DiskRead {
    let mut out = DiskRead {
        chunks: (0..series).map(|_| Vec::new()).collect(),
        ..DiskRead::default()
    };
    let mut by_segment: BTreeMap<u32, Vec<(usize, DiskChain)>> = BTreeMap::new();
    for (i, chain) in chains {
        by_segment
            .entry(chain.segment)
            .or_default()
            .push((i, chain));
    }
    let mut buf = Vec::new();
    for chains in by_segment.into_values() {
        let segment = chains[0].1.segment;
        let mut walk = SegmentWalk {
            cache,
            segment,
            mint,
            maxt,
            cursors: Vec::with_capacity(chains.len()),
            heap: BinaryHeap::with_capacity(chains.len()),
            out: &mut out,
        };
        let (reader, base_t) = (chains[0].1.reader.clone(), chains[0].1.base_t);
        for (i, chain) in chains {
            walk.heap.push((chain.last_off, walk.cursors.len()));
            walk.cursors.push(Cursor {
                series: i,
                disk_id: chain.disk_id,
                found: Vec::new(),
            });
        }
        walk.run(&reader, base_t, &mut buf);
    }
    out
}

struct SegmentWalk<'a> {
    cache: &'a GroupCache,
    segment: u32,
    mint: i64,
    maxt: i64,
    cursors: Vec<Cursor>,
    /// (group offset, cursor) still to read, newest group first.
    heap: BinaryHeap<(u32, usize)>,
    out: &'a mut DiskRead,
}

impl SegmentWalk<'_> {
    fn run(mut self, reader: &File, base_t: i64, buf: &mut Vec<u8>) {
        let mut here = Vec::new();
        while let Some((off, first)) = self.heap.pop() {
            here.clear();
            here.push(first);
            while let Some(&(next, c)) = self.heap.peek() {
                if next != off {
                    break;
                }
                here.push(c);
                self.heap.pop();
            }
            self.out.reads += 1;
            self.read_group(reader, off, base_t, buf, &here);
        }
        for cursor in self.cursors {
            let chunks = &mut self.out.chunks[cursor.series];
            chunks.extend(cursor.found.into_iter().rev());
        }
    }

    /// Takes what the cursors `here` need from the group at `off`; queues older groups.
    fn read_group(
        &mut self,
        reader: &File,
        off: u32,
        base_t: i64,
        buf: &mut Vec<u8>,
        here: &[usize],
    ) {
        let key = (self.segment, off);
        if let Some(group) = self.cache.get(key) {
            self.out.cached += 1;
            return self.take_from_owned(&group, here);
        }
        let group = read_record_at(reader, u64::from(off), buf)
            .ok()
            .and_then(|payload| GroupRecord::parse(payload, off, base_t).ok());
        let Some(group) = group else {
            self.out.errors += 1;
            return;
        };
        // This group and the older ones end before the range.
        if group.maxt < self.mint {
            return;
        }
        // Newer than the range: only its back pointers are needed.
        if group.mint > self.maxt {
            return self.take(here, &group.ids, &group.prev, None);
        }
        match group.into_owned() {
            Ok(group) => {
                let group = Arc::new(group);
                self.cache.put(key, group.clone());
                self.take_from_owned(&group, here);
            }
            Err(_) => self.out.errors += 1,
        }
    }

    /// Takes what the cursors `here` need from a decompressed group.
    fn take_from_owned(&mut self, group: &OwnedGroup, here: &[usize]) {
        if group.maxt < self.mint {
            return;
        }
        let mut body = None;
        if group.mint <= self.maxt {
            let positions = here
                .iter()
                .filter_map(|&c| group.position(self.cursors[c].disk_id));
            let upto = positions.max().map_or(0, |p| p + 1);
            match group.body_upto(upto) {
                Ok(b) => body = Some(b),
                Err(_) => {
                    self.out.errors += 1;
                    return;
                }
            }
        }
        self.take(here, &group.ids, &group.prev, body.as_mut());
    }

    /// Takes each cursor's chunks from `body` (none when the group is newer than the
    /// range) and queues its previous group while older chunks may still be needed.
    fn take(
        &mut self,
        here: &[usize],
        ids: &[u32],
        prev: &[Option<u32>],
        mut body: Option<&mut Body>,
    ) {
        for &c in here {
            let Ok(pos) = ids.binary_search(&self.cursors[c].disk_id) else {
                self.out.errors += 1;
                continue;
            };
            let more = match body.as_mut() {
                Some(body) => self.take_chunks(body, pos, c),
                None => true,
            };
            if let Some(prev) = prev[pos].filter(|_| more) {
                self.heap.push((prev, c));
            }
        }
    }

    /// Takes a series' chunks in the range, newest first; false when older groups cannot
    /// hold any (a chunk starts at or before the range) or a chunk does not decode.
    fn take_chunks(&mut self, body: &mut Body, pos: usize, c: usize) -> bool {
        for j in body.chunks_of(pos).rev() {
            let (mint, maxt, _) = body.bounds(j);
            if maxt < self.mint {
                return false;
            }
            if mint > self.maxt {
                continue;
            }
            let mut samples = Vec::new();
            if body.samples(j, &mut samples).is_none() {
                self.out.errors += 1;
                return false;
            }
            self.cursors[c].found.push(samples);
            if mint <= self.mint {
                return false;
            }
        }
        true
    }
}
