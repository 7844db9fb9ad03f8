//! Chunk groups: how a segment stores the chunks of a flush. A flush's chunks, taken series
//! by series in id order, fill groups of about [`GROUP_TARGET`] bytes; each group is one
//! segment record (see `segment`) whose body is compressed with Snappy.
//!
//! Payload: `[4, mint − base, maxt − mint, n, n × (disk id − previous id, back),
//! packing, body length, body…]` (see `codec::put_packed`). `back` is the distance to the
//! previous group holding that series in the file (0 for none), so a reader walks a series'
//! groups newest first from the last one's offset; ids ascend, so a reader finds its series
//! by binary search, and the time bounds let it pass a group without decompressing it.
//!
//! Body: a table of timestamp columns, `[count, k × (mint − base, samples, maxt − mint,
//! length, bytes…)]`, then per series in index order `[has labels, labels?, chunks,
//! chunks × (timestamp column, value code, length, bytes…)]` (see `column` for the
//! codes). Labels come with a series' first group in the file. Series scraped together have
//! the same timestamps and chunk boundaries, so one timestamp column serves all of them;
//! Snappy then removes most of what repeats across series (identical histogram counts,
//! constant chunks).

use std::borrow::Borrow;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use super::chunk::SealedChunk;
use super::codec::{Cursor, DecodeError, Packed, put_labels, put_packed, put_uvarint, put_varint};
use super::column::{decode_times, decode_values, encode_times, encode_values};
use super::index::SeriesId;
use super::labels::SeriesLabels;

/// Body bytes (before compression) after which a group is closed.
pub(super) const GROUP_TARGET: usize = 16 << 10;
pub(super) const KIND_GROUP: u8 = 4;

/// Collects series' chunks for one group.
#[derive(Debug)]
pub(super) struct GroupBuilder {
    base_t: i64,
    times: Vec<u8>,
    /// Each timestamp column's index, by its `(mint, count, bytes)`.
    columns: HashMap<(i64, usize, Vec<u8>), usize>,
    entries: Vec<u8>,
    index: Vec<(SeriesId, u32)>,
    mint: i64,
    maxt: i64,
}

impl GroupBuilder {
    /// An empty group for a segment whose base time is `base_t`.
    pub(super) fn new(base_t: i64) -> GroupBuilder {
        GroupBuilder {
            base_t,
            times: Vec::new(),
            columns: HashMap::new(),
            entries: Vec::new(),
            index: Vec::new(),
            mint: i64::MAX,
            maxt: i64::MIN,
        }
    }

    /// Body bytes so far.
    pub(super) fn len(&self) -> usize {
        self.times.len() + self.entries.len()
    }

    /// Whether no series was added.
    pub(super) fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Adds a series (ids must ascend) with its chunks, oldest first. `prev_off` is the
    /// series' previous group in the file (0 for none); `labels` go with its first group.
    pub(super) fn add(
        &mut self,
        id: SeriesId,
        prev_off: u32,
        labels: Option<&SeriesLabels>,
        chunks: &[impl Borrow<SealedChunk>],
    ) {
        debug_assert!(self.index.last().is_none_or(|&(last, _)| last < id));
        self.index.push((id, prev_off));
        self.entries.push(u8::from(labels.is_some()));
        if let Some(labels) = labels {
            put_labels(&mut self.entries, labels.len(), labels.pairs());
        }
        // Chunks come from our encoder; should one not decode, its readable part is kept.
        let decoded: Vec<Vec<(i64, f64)>> = chunks
            .iter()
            .map(|c| {
                c.borrow()
                    .samples()
                    .map_while(Result::ok)
                    .collect::<Vec<_>>()
            })
            .filter(|samples| !samples.is_empty())
            .collect();
        put_uvarint(&mut self.entries, decoded.len() as u64);
        for samples in decoded {
            self.add_chunk(&samples);
        }
    }

    fn add_chunk(&mut self, samples: &[(i64, f64)]) {
        let (mint, maxt) = (samples[0].0, samples[samples.len() - 1].0);
        self.mint = self.mint.min(mint);
        self.maxt = self.maxt.max(maxt);
        let times = encode_times(samples.iter().map(|s| s.0));
        let column = self.column(mint, maxt, samples.len(), times);
        let values: Vec<f64> = samples.iter().map(|s| s.1).collect();
        let (code, bytes) = encode_values(&values);
        put_uvarint(&mut self.entries, column as u64);
        self.entries.push(code);
        put_uvarint(&mut self.entries, bytes.len() as u64);
        self.entries.extend_from_slice(&bytes);
    }

    /// The index of the timestamp column, added to the table when new.
    fn column(&mut self, mint: i64, maxt: i64, count: usize, times: Vec<u8>) -> usize {
        let next = self.columns.len();
        let key = (mint, count, times);
        if let Some(&i) = self.columns.get(&key) {
            return i;
        }
        put_varint(&mut self.times, mint.wrapping_sub(self.base_t));
        put_uvarint(&mut self.times, count as u64);
        put_uvarint(&mut self.times, maxt.wrapping_sub(mint) as u64);
        put_uvarint(&mut self.times, key.2.len() as u64);
        self.times.extend_from_slice(&key.2);
        self.columns.insert(key, next);
        next
    }

    /// Appends the record payload for a group written at offset `off` to `out`.
    pub(super) fn finish(self, off: u32, out: &mut Vec<u8>) {
        let mut body = Vec::with_capacity(self.len() + 4);
        put_uvarint(&mut body, self.columns.len() as u64);
        body.extend_from_slice(&self.times);
        body.extend_from_slice(&self.entries);
        out.push(KIND_GROUP);
        put_varint(out, self.mint.wrapping_sub(self.base_t));
        put_uvarint(out, self.maxt.wrapping_sub(self.mint) as u64);
        put_uvarint(out, self.index.len() as u64);
        let mut prev_id = 0;
        for &(id, prev_off) in &self.index {
            put_uvarint(out, u64::from(id - prev_id));
            put_uvarint(
                out,
                u64::from(if prev_off == 0 { 0 } else { off - prev_off }),
            );
            prev_id = id;
        }
        put_packed(out, &body);
    }
}

/// A group record as read: bounds and index, body still compressed.
#[derive(Debug)]
pub(super) struct GroupRecord<'a> {
    pub(super) mint: i64,
    pub(super) maxt: i64,
    /// Disk ids, ascending.
    pub(super) ids: Vec<u32>,
    /// Each series' previous group in the file.
    pub(super) prev: Vec<Option<u32>>,
    body: Packed<'a>,
    base_t: i64,
}

impl<'a> GroupRecord<'a> {
    /// Parses the payload of the group record at `off` in a segment based at `base_t`.
    pub(super) fn parse(payload: &'a [u8], off: u32, base_t: i64) -> Result<Self, DecodeError> {
        let mut cur = Cursor::new(payload);
        if cur.u8()? != KIND_GROUP {
            return Err(DecodeError::Invalid("record kind"));
        }
        let mint = base_t.wrapping_add(cur.varint()?);
        let maxt = mint.wrapping_add(cur.uvarint()? as i64);
        let n = cur.uvarint()?;
        // Each entry takes at least two bytes, which bounds a hostile count.
        if n > cur.remaining() as u64 / 2 {
            return Err(DecodeError::Truncated);
        }
        let mut ids = Vec::with_capacity(n as usize);
        let mut prev = Vec::with_capacity(n as usize);
        let mut id = 0u32;
        for i in 0..n {
            let step = cur.uvarint32("series id")?;
            if i > 0 && step == 0 {
                return Err(DecodeError::Invalid("series id"));
            }
            id = id
                .checked_add(step)
                .ok_or(DecodeError::Invalid("series id"))?;
            ids.push(id);
            prev.push(match cur.uvarint32("back pointer")? {
                0 => None,
                back => Some(
                    off.checked_sub(back)
                        .ok_or(DecodeError::Invalid("back pointer"))?,
                ),
            });
        }
        Ok(GroupRecord {
            mint,
            maxt,
            ids,
            prev,
            body: cur.packed()?,
            base_t,
        })
    }

    /// The index position of `disk_id`, if the group holds that series.
    #[cfg(test)]
    pub(super) fn position(&self, disk_id: u32) -> Option<usize> {
        self.ids.binary_search(&disk_id).ok()
    }

    /// Decompresses and parses the body.
    pub(super) fn body(&self) -> Result<Body, DecodeError> {
        self.body_upto(self.ids.len())
    }

    /// Decompresses the body and parses the entries of index positions `..upto` only.
    pub(super) fn body_upto(&self, upto: usize) -> Result<Body, DecodeError> {
        let bytes = self.body.unpack()?.into();
        Body::parse(bytes, upto.min(self.ids.len()), self.ids.len(), self.base_t)
    }

    /// The record with its body decompressed, owning its bytes (kept by a read cache).
    pub(super) fn into_owned(self) -> Result<OwnedGroup, DecodeError> {
        let body = self.body.unpack()?.into();
        Ok(OwnedGroup {
            mint: self.mint,
            maxt: self.maxt,
            ids: self.ids,
            prev: self.prev,
            body,
            base_t: self.base_t,
        })
    }
}

/// A group record read and decompressed: what a query needs of it, without the file.
#[derive(Debug)]
pub(super) struct OwnedGroup {
    pub(super) mint: i64,
    pub(super) maxt: i64,
    /// Disk ids, ascending.
    pub(super) ids: Vec<u32>,
    /// Each series' previous group in the file.
    pub(super) prev: Vec<Option<u32>>,
    body: Arc<[u8]>,
    base_t: i64,
}

impl OwnedGroup {
    /// The index position of `disk_id`, if the group holds that series.
    pub(super) fn position(&self, disk_id: u32) -> Option<usize> {
        self.ids.binary_search(&disk_id).ok()
    }

    /// Parses the entries of index positions `..upto` of the body (shared, not copied).
    pub(super) fn body_upto(&self, upto: usize) -> Result<Body, DecodeError> {
        let n = self.ids.len();
        Body::parse(self.body.clone(), upto.min(n), n, self.base_t)
    }

    /// Memory the group holds, roughly.
    pub(super) fn size(&self) -> usize {
        self.body.len() + self.ids.len() * 4 + self.prev.len() * 8 + 64
    }
}

/// A timestamp column of a body.
#[derive(Debug, Clone)]
struct Column {
    mint: i64,
    maxt: i64,
    count: usize,
    bytes: Range<usize>,
}

/// A chunk in a body.
#[derive(Debug, Clone)]
struct ChunkRef {
    column: usize,
    code: u8,
    bytes: Range<usize>,
}

/// One series' part of a body.
#[derive(Debug, Clone)]
struct Entry {
    labels: Option<Range<usize>>,
    chunks: Range<usize>,
}

/// A decompressed group body, parsed into ranges of its bytes.
#[derive(Debug)]
pub(super) struct Body {
    bytes: Arc<[u8]>,
    columns: Vec<Column>,
    entries: Vec<Entry>,
    chunks: Vec<ChunkRef>,
    /// Decoded timestamp columns, filled as chunks are read.
    decoded: Vec<Option<Vec<i64>>>,
}

impl Body {
    /// Parses the first `upto` of `n_entries` entries; all of them are checked to end the
    /// body exactly.
    fn parse(
        bytes: Arc<[u8]>,
        upto: usize,
        n_entries: usize,
        base_t: i64,
    ) -> Result<Body, DecodeError> {
        let mut cur = Cursor::new(&bytes);
        let total = bytes.len();
        let n_columns = cur.uvarint()?;
        if n_columns > cur.remaining() as u64 {
            return Err(DecodeError::Truncated);
        }
        let mut columns = Vec::with_capacity(n_columns as usize);
        for _ in 0..n_columns {
            let mint = base_t.wrapping_add(cur.varint()?);
            let count = usize::try_from(cur.uvarint()?).map_err(|_| DecodeError::Truncated)?;
            let maxt = mint.wrapping_add(cur.uvarint()? as i64);
            let len = usize::try_from(cur.uvarint()?).map_err(|_| DecodeError::Truncated)?;
            let start = total - cur.remaining();
            cur.bytes(len)?;
            if count == 0 || count > u16::MAX.into() {
                return Err(DecodeError::Invalid("sample count"));
            }
            columns.push(Column {
                mint,
                maxt,
                count,
                bytes: start..start + len,
            });
        }
        let mut entries = Vec::with_capacity(upto);
        let mut chunks = Vec::with_capacity(upto);
        for _ in 0..upto {
            let labels = match cur.u8()? {
                0 => None,
                1 => {
                    let start = total - cur.remaining();
                    cur.skip_labels()?;
                    Some(start..total - cur.remaining())
                }
                _ => return Err(DecodeError::Invalid("entry flags")),
            };
            let n_chunks = cur.uvarint()?;
            if n_chunks > cur.remaining() as u64 {
                return Err(DecodeError::Truncated);
            }
            let first = chunks.len();
            for _ in 0..n_chunks {
                let column = usize::try_from(cur.uvarint()?).map_err(|_| DecodeError::Truncated)?;
                if column >= columns.len() {
                    return Err(DecodeError::Invalid("timestamp column"));
                }
                let code = cur.u8()?;
                let len = usize::try_from(cur.uvarint()?).map_err(|_| DecodeError::Truncated)?;
                let start = total - cur.remaining();
                cur.bytes(len)?;
                chunks.push(ChunkRef {
                    column,
                    code,
                    bytes: start..start + len,
                });
            }
            entries.push(Entry {
                labels,
                chunks: first..chunks.len(),
            });
        }
        if upto == n_entries && cur.remaining() != 0 {
            return Err(DecodeError::Invalid("group body"));
        }
        let decoded = vec![None; columns.len()];
        Ok(Body {
            bytes,
            columns,
            entries,
            chunks,
            decoded,
        })
    }

    /// The labels of the series at index position `i`, given with its first group; `None`
    /// also for labels that are not UTF-8.
    pub(super) fn labels(&self, i: usize) -> Option<Vec<(&str, &str)>> {
        let range = self.entries.get(i)?.labels.clone()?;
        Cursor::new(&self.bytes[range]).labels().ok()
    }

    /// Whether the series at index position `i` carries its labels.
    pub(super) fn has_labels(&self, i: usize) -> bool {
        self.entries.get(i).is_some_and(|e| e.labels.is_some())
    }

    /// The chunks of the series at index position `i`, oldest first, as chunk numbers.
    pub(super) fn chunks_of(&self, i: usize) -> Range<usize> {
        self.entries.get(i).map_or(0..0, |e| e.chunks.clone())
    }

    /// Chunk `j`'s first and last time and sample count.
    pub(super) fn bounds(&self, j: usize) -> (i64, i64, usize) {
        let c = &self.columns[self.chunks[j].column];
        (c.mint, c.maxt, c.count)
    }

    /// Decodes chunk `j`'s samples into `out`; `None` when its bytes do not decode.
    pub(super) fn samples(&mut self, j: usize, out: &mut Vec<(i64, f64)>) -> Option<()> {
        let chunk = self.chunks.get(j)?;
        let column = &self.columns[chunk.column];
        if self.decoded[chunk.column].is_none() {
            let bytes = &self.bytes[column.bytes.clone()];
            self.decoded[chunk.column] = Some(decode_times(bytes, column.mint, column.count)?);
        }
        let times = self.decoded[chunk.column].as_deref()?;
        let mut values = Vec::with_capacity(times.len());
        decode_values(
            chunk.code,
            &self.bytes[chunk.bytes.clone()],
            times.len(),
            &mut values,
        )?;
        out.extend(times.iter().copied().zip(values));
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::tsdb::chunk::ChunkEncoder;

    const BASE: i64 = 1_700_000_000_000;

    fn chunk(samples: &[(i64, f64)]) -> SealedChunk {
        ChunkEncoder::restore(samples).unwrap().seal()
    }

    /// 40 series (odd ids) scraped together, values `i · id`; labels with even positions.
    fn build(off: u32) -> (Vec<u8>, Vec<Vec<(i64, f64)>>) {
        let times: Vec<i64> = (0..120).map(|i| BASE + i * 1000 + i * 7 % 5).collect();
        let mut group = GroupBuilder::new(BASE);
        let mut all = Vec::new();
        for n in 0..40u32 {
            let samples: Vec<(i64, f64)> = times
                .iter()
                .enumerate()
                .map(|(i, &t)| (t, (i as u32 * n) as f64))
                .collect();
            let labels = SeriesLabels::from_pairs([("job", format!("j{n}").as_str())]);
            let prev = if n % 3 == 0 { 0 } else { 100 + n };
            group.add(
                2 * n + 1,
                prev,
                (n % 2 == 0).then_some(&labels),
                &[chunk(&samples)],
            );
            all.push(samples);
        }
        let mut payload = Vec::new();
        group.finish(off, &mut payload);
        (payload, all)
    }

    #[test]
    fn series_scraped_together_share_one_timestamp_column() {
        let (payload, all) = build(5000);
        let group = GroupRecord::parse(&payload, 5000, BASE).unwrap();
        assert_eq!(
            (group.mint, group.maxt),
            (BASE, BASE + 119_000 + 119 * 7 % 5)
        );
        assert_eq!(group.ids, (0..40).map(|n| 2 * n + 1).collect::<Vec<_>>());
        assert_eq!(group.prev[0], None);
        assert_eq!(group.prev[1], Some(101));
        assert_eq!(group.position(7), Some(3));
        assert_eq!(group.position(8), None);
        let mut body = group.body().unwrap();
        assert_eq!(body.columns.len(), 1);
        for (i, want) in all.iter().enumerate() {
            let chunks = body.chunks_of(i);
            assert_eq!(chunks.len(), 1);
            let mut got = Vec::new();
            body.samples(chunks.start, &mut got).unwrap();
            assert_eq!(&got, want);
            let job = format!("j{i}");
            let labels = body.labels(i);
            assert_eq!(labels, (i % 2 == 0).then(|| vec![("job", job.as_str())]));
        }
        // 4,800 samples: one timestamp column, a few bytes of values a series.
        assert!(payload.len() < 40 * 24, "{} bytes", payload.len());
    }

    #[test]
    fn a_partly_parsed_body_serves_the_positions_it_parsed() {
        let (payload, all) = build(5000);
        let group = GroupRecord::parse(&payload, 5000, BASE).unwrap();
        let mut body = group.body_upto(4).unwrap();
        let mut got = Vec::new();
        body.samples(body.chunks_of(3).start, &mut got).unwrap();
        assert_eq!(got, all[3]);
        assert!(body.chunks_of(4).is_empty());
    }

    #[test]
    fn damaged_payloads_are_refused_not_misread() {
        let (payload, _) = build(5000);
        for cut in 0..payload.len() {
            let parsed = GroupRecord::parse(&payload[..cut], 5000, BASE);
            assert!(parsed.and_then(|g| g.body()).is_err(), "cut at {cut}");
        }
        // A back pointer before the start of the file.
        assert!(GroupRecord::parse(&payload, 50, BASE).is_err());
        let mut other_kind = payload.clone();
        other_kind[0] = 3;
        assert!(GroupRecord::parse(&other_kind, 5000, BASE).is_err());
    }
}
