//! Segment files: append-only files of chunk groups, one per span of time.
//!
//! Layout: a 16-byte header (magic, then the base time as `i64` little-endian), then
//! records framed as `len: u32 LE, crc32(payload): u32 LE, payload`. Payload kinds:
//! - group `[4, …]`: the chunks of up to a few hundred series from one flush, with the
//!   labels of series new to the file (see `group`); each series' entry points back to its
//!   previous group in the file, so a reader walks a series' groups newest first from the
//!   last one's offset;
//! - footer `[3, packed (mint, maxt, samples, chunks, n, n × (disk id, last group offset,
//!   mint, maxt, labels))]` (see `codec::put_packed`), written once when the file is closed and followed by a 16-byte
//!   trailer (footer offset as `u64` LE, end magic), so that opening a closed file reads
//!   the footer only.
//!
//! A file without a valid trailer (the one being written at a crash) is scanned record by
//! record; it is cut at the first record that is torn or fails its checksum, and gets its
//! footer then. Offsets are `u32`, so a file stays under 4 GiB.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;

use super::chunk::SealedChunk;
use super::codec::{put_labels, put_packed, put_uvarint, put_varint};
use super::group::{GROUP_TARGET, GroupBuilder};
use super::index::SeriesId;
use super::labels::SeriesLabels;

pub(super) const MAGIC: &[u8; 8] = b"FPTSSEG2";
pub(super) const END_MAGIC: &[u8; 8] = b"FPTSEND1";
/// Bytes before the first record.
pub(super) const HEADER_LEN: u64 = 16;
pub(super) const TRAILER_LEN: u64 = 16;
pub(super) const FRAME_LEN: usize = 8;
/// Largest payload accepted; a bigger length field means a torn or corrupt record.
const MAX_PAYLOAD: u32 = 256 << 20;
/// Largest file size, so that every offset fits a `u32`.
pub(super) const MAX_SEGMENT_BYTES: u64 = u32::MAX as u64 - (64 << 20);

/// Bytes encoded before a write, so a large batch is not held in memory whole.
const WRITE_BUFFER: usize = 1 << 20;

pub(super) const KIND_FOOTER: u8 = 3;
/// Bytes read at once for a record; most groups fit.
const FIRST_READ: usize = 16 << 10;

/// A segment file could not be read or written.
#[derive(Debug, Error)]
pub(super) enum SegmentError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("record at offset {0} fails its checksum")]
    Checksum(u64),
    #[error("not a segment file")]
    BadMagic,
}

/// The file name of segment `id`.
pub(super) fn segment_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(format!("{id:010}.seg"))
}

/// The id in a segment file name, if it is one.
pub(super) fn parse_segment_name(name: &str) -> Option<u32> {
    name.strip_suffix(".seg")?.parse().ok()
}

/// Where one series' chunks are in a segment.
#[derive(Debug, Clone)]
pub(super) struct SegmentSeries {
    pub(super) disk_id: u32,
    pub(super) labels: SeriesLabels,
    pub(super) last_off: u32,
    pub(super) mint: i64,
    pub(super) maxt: i64,
}

/// What a segment holds, as its footer says.
#[derive(Debug, Clone, Default)]
pub(super) struct SegmentSummary {
    pub(super) base_t: i64,
    pub(super) mint: i64,
    pub(super) maxt: i64,
    pub(super) samples: u64,
    pub(super) chunks: u64,
    pub(super) bytes: u64,
    pub(super) series: Vec<SegmentSeries>,
}

impl SegmentSummary {
    /// Counts a chunk of `count` samples from `mint` to `maxt`.
    pub(super) fn add_chunk(&mut self, mint: i64, maxt: i64, count: u64) {
        if self.chunks == 0 {
            (self.mint, self.maxt) = (mint, maxt);
        }
        self.mint = self.mint.min(mint);
        self.maxt = self.maxt.max(maxt);
        self.samples += count;
        self.chunks += 1;
    }
}

/// Appends a framed record whose payload `fill` writes.
fn frame(buf: &mut Vec<u8>, fill: impl FnOnce(&mut Vec<u8>)) {
    let start = buf.len();
    buf.extend_from_slice(&[0; FRAME_LEN]);
    fill(buf);
    let payload = &buf[start + FRAME_LEN..];
    let len = payload.len() as u32;
    let crc = crc32fast::hash(payload);
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

pub(super) fn encode_footer(buf: &mut Vec<u8>, footer_off: u64, s: &SegmentSummary) {
    let mut body = Vec::with_capacity(s.series.len() * 64 + 32);
    put_varint(&mut body, s.mint);
    put_varint(&mut body, s.maxt);
    put_uvarint(&mut body, s.samples);
    put_uvarint(&mut body, s.chunks);
    put_uvarint(&mut body, s.series.len() as u64);
    for e in &s.series {
        put_uvarint(&mut body, u64::from(e.disk_id));
        put_uvarint(&mut body, u64::from(e.last_off));
        put_varint(&mut body, e.mint);
        put_varint(&mut body, e.maxt);
        put_labels(&mut body, e.labels.len(), e.labels.pairs());
    }
    frame(buf, |b| {
        b.push(KIND_FOOTER);
        put_packed(b, &body);
    });
    buf.extend_from_slice(&footer_off.to_le_bytes());
    buf.extend_from_slice(END_MAGIC);
}

/// Writes the file being filled. Chunks are written in batches: a batch is encoded in
/// memory, written and synced, and only then counted, so a failed batch leaves no trace.
#[derive(Debug)]
pub(super) struct SegmentWriter {
    file: File,
    size: u64,
    summary: SegmentSummary,
    series: HashMap<SeriesId, SegmentSeries>,
}

/// One series' chunks for a batch, oldest first.
pub(super) struct BatchItem<'a> {
    pub(super) id: SeriesId,
    pub(super) labels: &'a SeriesLabels,
    pub(super) chunks: &'a [Arc<SealedChunk>],
}

impl SegmentWriter {
    /// Creates segment `id` (which must not exist) and returns it with a read handle.
    pub(super) fn create(dir: &Path, id: u32, base_t: i64) -> io::Result<(SegmentWriter, File)> {
        let path = segment_path(dir, id);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        let mut header = MAGIC.to_vec();
        header.extend_from_slice(&base_t.to_le_bytes());
        file.write_all(&header)?;
        file.sync_data()?;
        File::open(dir)?.sync_all()?;
        let reader = File::open(&path)?;
        let summary = SegmentSummary {
            base_t,
            bytes: HEADER_LEN,
            ..SegmentSummary::default()
        };
        let writer = SegmentWriter {
            file,
            size: HEADER_LEN,
            summary,
            series: HashMap::new(),
        };
        Ok((writer, reader))
    }

    /// Bytes in the file.
    pub(super) fn size(&self) -> u64 {
        self.size
    }

    /// What the file holds so far (without the per-series part).
    pub(super) fn summary(&self) -> &SegmentSummary {
        &self.summary
    }

    /// The oldest sample time in the file (`None` while empty).
    pub(super) fn mint(&self) -> Option<i64> {
        (self.summary.chunks > 0).then_some(self.summary.mint)
    }

    /// Writes a batch durably and returns the offset of each item's group. On error the file
    /// is cut back to its previous size; if even that fails, stop using this writer.
    pub(super) fn write_batch(&mut self, items: &[BatchItem<'_>]) -> io::Result<Vec<u32>> {
        let done = self
            .write_records(items)
            .and_then(|done| self.file.sync_data().map(|()| done));
        let (staged, mut summary, end) = match done {
            Ok(done) => done,
            Err(err) => {
                self.file.set_len(self.size)?;
                return Err(err);
            }
        };
        self.size = end;
        summary.bytes = end;
        self.summary = summary;
        let offsets = staged.iter().map(|e| e.last_off).collect();
        for entry in staged {
            self.series.insert(entry.disk_id, entry);
        }
        Ok(offsets)
    }

    /// Writes a batch's groups after the end of the file, a buffer at a time, and returns
    /// the series entries and summary as they will be (entries in `items` order), and the
    /// new end.
    fn write_records(
        &self,
        items: &[BatchItem<'_>],
    ) -> io::Result<(Vec<SegmentSeries>, SegmentSummary, u64)> {
        let mut buf = Vec::with_capacity(WRITE_BUFFER);
        let mut end = self.size;
        let mut staged: Vec<Option<SegmentSeries>> = vec![None; items.len()];
        let mut summary = self.summary.clone();
        let mut group = GroupBuilder::new(summary.base_t);
        let mut members = Vec::new();
        // Groups list their series by ascending id.
        let mut order: Vec<usize> = (0..items.len()).collect();
        order.sort_by_key(|&i| items[i].id);
        for i in order {
            let item = &items[i];
            let known = self.series.get(&item.id);
            let mut entry = known.cloned().unwrap_or_else(|| SegmentSeries {
                disk_id: item.id,
                labels: item.labels.clone(),
                last_off: 0,
                mint: i64::MAX,
                maxt: i64::MIN,
            });
            let labels = known.is_none().then_some(item.labels);
            group.add(item.id, entry.last_off, labels, item.chunks);
            for chunk in item.chunks {
                entry.mint = entry.mint.min(chunk.mint);
                entry.maxt = entry.maxt.max(chunk.maxt);
                summary.add_chunk(chunk.mint, chunk.maxt, u64::from(chunk.count));
            }
            members.push(i);
            staged[i] = Some(entry);
            if group.len() >= GROUP_TARGET {
                let full = std::mem::replace(&mut group, GroupBuilder::new(summary.base_t));
                let off = offset(end + buf.len() as u64)?;
                frame(&mut buf, |b| full.finish(off, b));
                set_last_off(&mut staged, members.drain(..), off);
            }
            if buf.len() >= WRITE_BUFFER {
                self.file.write_all_at(&buf, end)?;
                end += buf.len() as u64;
                buf.clear();
            }
        }
        if !group.is_empty() {
            let off = offset(end + buf.len() as u64)?;
            frame(&mut buf, |b| group.finish(off, b));
            set_last_off(&mut staged, members.drain(..), off);
        }
        offset(end + buf.len() as u64)?;
        self.file.write_all_at(&buf, end)?;
        end += buf.len() as u64;
        Ok((staged.into_iter().flatten().collect(), summary, end))
    }

    /// Writes the footer and trailer, syncs, and returns what the file holds.
    pub(super) fn finish(mut self) -> io::Result<SegmentSummary> {
        let mut summary = std::mem::take(&mut self.summary);
        summary.series = self.series.into_values().collect();
        summary.series.sort_by_key(|e| e.disk_id);
        let mut buf = Vec::new();
        encode_footer(&mut buf, self.size, &summary);
        self.file.write_all_at(&buf, self.size)?;
        self.file.sync_data()?;
        summary.bytes = self.size + buf.len() as u64;
        Ok(summary)
    }
}

/// Points the staged entries of a group's series at the group.
fn set_last_off(
    staged: &mut [Option<SegmentSeries>],
    members: impl Iterator<Item = usize>,
    off: u32,
) {
    for m in members {
        if let Some(entry) = staged[m].as_mut() {
            entry.last_off = off;
        }
    }
}

/// A file position as a record offset, which must fit a `u32`.
fn offset(pos: u64) -> io::Result<u32> {
    u32::try_from(pos)
        .map_err(|_| io::Error::new(io::ErrorKind::FileTooLarge, "segment over 4 GiB"))
}

/// Reads and checks the record at `off`, returning its payload.
pub(super) fn read_record_at<'b>(
    file: &File,
    off: u64,
    buf: &'b mut Vec<u8>,
) -> Result<&'b [u8], SegmentError> {
    // One read usually gets the whole record.
    buf.resize(FIRST_READ, 0);
    let got = read_up_to(file, buf, off)?;
    let (len, crc) = parse_frame(&buf[..got]).ok_or(SegmentError::Checksum(off))?;
    let total = FRAME_LEN + len as usize;
    if got < total {
        buf.resize(total, 0);
        file.read_exact_at(&mut buf[got..total], off + got as u64)?;
    }
    let payload = &buf[FRAME_LEN..total];
    if crc32fast::hash(payload) != crc {
        return Err(SegmentError::Checksum(off));
    }
    Ok(payload)
}

pub(super) fn parse_frame(bytes: &[u8]) -> Option<(u32, u32)> {
    let len = u32::from_le_bytes(bytes.get(0..4)?.try_into().ok()?);
    let crc = u32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?);
    (len <= MAX_PAYLOAD).then_some((len, crc))
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn read_up_to(file: &File, buf: &mut [u8], off: u64) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], off + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}
