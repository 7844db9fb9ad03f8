//! Segment files: append-only files of sealed chunks, one per span of time.
//!
//! Layout: a 16-byte header (magic, then the base time as `i64` little-endian), then
//! records framed as `len: u32 LE, crc32(payload): u32 LE, payload`. Payload kinds:
//! - series `[1, disk id, labels]`, written before a series' first chunk in the file;
//! - chunk `[2, disk id, back, mint − base, maxt − mint, count, chunk bytes…]`, where `back`
//!   is the distance to the series' previous chunk in this file (0 for none), so that a
//!   reader walks a series' chunks newest first from the last one's offset;
//! - footer `[3, mint, maxt, samples, chunks, n, n × (disk id, last chunk offset, mint,
//!   maxt, labels)]`, written once when the file is closed and followed by a 16-byte
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
use super::codec::{Cursor, DecodeError, put_labels, put_uvarint, put_varint};
use super::index::SeriesId;
use super::labels::SeriesLabels;

pub(super) const MAGIC: &[u8; 8] = b"FPTSSEG1";
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

pub(super) const KIND_SERIES: u8 = 1;
pub(super) const KIND_CHUNK: u8 = 2;
pub(super) const KIND_FOOTER: u8 = 3;

/// A segment file could not be read or written.
#[derive(Debug, Error)]
pub(super) enum SegmentError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("record at offset {0} fails its checksum")]
    Checksum(u64),
    #[error("record at offset {off}: {source}")]
    Decode { off: u64, source: DecodeError },
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
    pub(super) fn add_chunk(&mut self, chunk: &SealedChunk) {
        if self.chunks == 0 {
            (self.mint, self.maxt) = (chunk.mint, chunk.maxt);
        }
        self.mint = self.mint.min(chunk.mint);
        self.maxt = self.maxt.max(chunk.maxt);
        self.samples += u64::from(chunk.count);
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
    frame(buf, |b| {
        b.push(KIND_FOOTER);
        put_varint(b, s.mint);
        put_varint(b, s.maxt);
        put_uvarint(b, s.samples);
        put_uvarint(b, s.chunks);
        put_uvarint(b, s.series.len() as u64);
        for e in &s.series {
            put_uvarint(b, u64::from(e.disk_id));
            put_uvarint(b, u64::from(e.last_off));
            put_varint(b, e.mint);
            put_varint(b, e.maxt);
            put_labels(b, e.labels.len(), e.labels.pairs());
        }
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

    /// Writes a batch durably and returns each item's last chunk offset. On error the file
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

    /// Writes a batch's records after the end of the file, a buffer at a time, and returns
    /// the series entries and summary as they will be, and the new end.
    fn write_records(
        &self,
        items: &[BatchItem<'_>],
    ) -> io::Result<(Vec<SegmentSeries>, SegmentSummary, u64)> {
        let mut buf = Vec::with_capacity(WRITE_BUFFER);
        let mut end = self.size;
        let mut staged = Vec::with_capacity(items.len());
        let mut summary = self.summary.clone();
        for item in items {
            let mut entry = match self.series.get(&item.id) {
                Some(e) => e.clone(),
                None => {
                    frame(&mut buf, |b| {
                        b.push(KIND_SERIES);
                        put_uvarint(b, u64::from(item.id));
                        put_labels(b, item.labels.len(), item.labels.pairs());
                    });
                    SegmentSeries {
                        disk_id: item.id,
                        labels: item.labels.clone(),
                        last_off: 0,
                        mint: i64::MAX,
                        maxt: i64::MIN,
                    }
                }
            };
            for chunk in item.chunks {
                let off = offset(end + buf.len() as u64)?;
                let back = if entry.last_off == 0 {
                    0
                } else {
                    off - entry.last_off
                };
                frame(&mut buf, |b| {
                    encode_chunk(b, item.id, back, summary.base_t, chunk)
                });
                entry.last_off = off;
                entry.mint = entry.mint.min(chunk.mint);
                entry.maxt = entry.maxt.max(chunk.maxt);
                summary.add_chunk(chunk);
            }
            staged.push(entry);
            if buf.len() >= WRITE_BUFFER {
                self.file.write_all_at(&buf, end)?;
                end += buf.len() as u64;
                buf.clear();
            }
        }
        offset(end + buf.len() as u64)?;
        self.file.write_all_at(&buf, end)?;
        end += buf.len() as u64;
        Ok((staged, summary, end))
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

/// A file position as a record offset, which must fit a `u32`.
fn offset(pos: u64) -> io::Result<u32> {
    u32::try_from(pos)
        .map_err(|_| io::Error::new(io::ErrorKind::FileTooLarge, "segment over 4 GiB"))
}

fn encode_chunk(b: &mut Vec<u8>, id: SeriesId, back: u32, base_t: i64, chunk: &SealedChunk) {
    b.push(KIND_CHUNK);
    put_uvarint(b, u64::from(id));
    put_uvarint(b, u64::from(back));
    put_varint(b, chunk.mint.wrapping_sub(base_t));
    put_uvarint(b, chunk.maxt.wrapping_sub(chunk.mint) as u64);
    put_uvarint(b, u64::from(chunk.count));
    b.extend_from_slice(&chunk.bytes);
}

/// A chunk record as read back.
pub(super) struct ChunkRecord {
    pub(super) disk_id: u32,
    /// Offset of the series' previous chunk in the file.
    pub(super) prev: Option<u32>,
    pub(super) chunk: SealedChunk,
}

pub(super) fn decode_chunk(
    payload: &[u8],
    off: u32,
    base_t: i64,
) -> Result<ChunkRecord, DecodeError> {
    let mut cur = Cursor::new(payload);
    if cur.u8()? != KIND_CHUNK {
        return Err(DecodeError::Invalid("record kind"));
    }
    let disk_id = cur.uvarint32("series id")?;
    let back = cur.uvarint32("back pointer")?;
    let prev = match back {
        0 => None,
        b => Some(
            off.checked_sub(b)
                .ok_or(DecodeError::Invalid("back pointer"))?,
        ),
    };
    let mint = base_t.wrapping_add(cur.varint()?);
    let maxt = mint.wrapping_add(cur.uvarint()? as i64);
    let count = u16::try_from(cur.uvarint()?).map_err(|_| DecodeError::Invalid("count"))?;
    let bytes = cur.rest().into();
    let chunk = SealedChunk {
        bytes,
        mint,
        maxt,
        count,
    };
    Ok(ChunkRecord {
        disk_id,
        prev,
        chunk,
    })
}

/// Reads the chunk record at `off`, checking its checksum; `buf` is reused between calls.
pub(super) fn read_chunk(
    file: &File,
    off: u32,
    base_t: i64,
    buf: &mut Vec<u8>,
) -> Result<ChunkRecord, SegmentError> {
    let payload = read_record_at(file, u64::from(off), buf)?;
    decode_chunk(payload, off, base_t).map_err(|source| SegmentError::Decode {
        off: u64::from(off),
        source,
    })
}

/// Reads and checks the record at `off`, returning its payload.
pub(super) fn read_record_at<'b>(
    file: &File,
    off: u64,
    buf: &'b mut Vec<u8>,
) -> Result<&'b [u8], SegmentError> {
    // Most chunk records are small: one read usually gets the whole record.
    buf.resize(512, 0);
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
