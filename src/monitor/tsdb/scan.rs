//! Opening segment files at startup: a closed file by its footer, the file that was being
//! written at a crash by a scan that cuts its torn tail and then gives it its footer.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::codec::{Cursor, DecodeError};
use super::group::GroupRecord;
use super::labels::SeriesLabels;
use super::segment::{
    END_MAGIC, FRAME_LEN, HEADER_LEN, KIND_FOOTER, MAGIC, SegmentError, SegmentSeries,
    SegmentSummary, TRAILER_LEN, encode_footer, parse_frame, read_record_at,
};

/// A segment file opened at startup.
#[derive(Debug)]
pub(super) struct Loaded {
    pub(super) summary: SegmentSummary,
    pub(super) reader: File,
    /// Bytes cut from a torn or corrupt tail.
    pub(super) torn_bytes: u64,
    /// True when the file had no footer and was scanned.
    pub(super) scanned: bool,
}

/// Opens a segment; `None` when the file is too short to hold its header (a crash right
/// after creating it).
pub(super) fn load(path: &Path) -> Result<Option<Loaded>, SegmentError> {
    let file = OpenOptions::new().read(true).write(true).open(path)?;
    let len = file.metadata()?.len();
    if len < HEADER_LEN {
        return Ok(None);
    }
    let mut header = [0u8; HEADER_LEN as usize];
    file.read_exact_at(&mut header, 0)?;
    if &header[..8] != MAGIC {
        return Err(SegmentError::BadMagic);
    }
    let base_t = i64::from_le_bytes(header[8..].try_into().unwrap_or_default());
    if let Some(mut summary) = read_footer(&file, len)? {
        (summary.base_t, summary.bytes) = (base_t, len);
        let loaded = Loaded {
            summary,
            reader: file,
            torn_bytes: 0,
            scanned: false,
        };
        return Ok(Some(loaded));
    }
    let (mut summary, end) = scan(&file, len, base_t)?;
    if end < len {
        file.set_len(end)?;
    }
    summary.bytes = end;
    if summary.chunks > 0 {
        let mut buf = Vec::new();
        encode_footer(&mut buf, end, &summary);
        file.write_all_at(&buf, end)?;
        summary.bytes += buf.len() as u64;
    }
    file.sync_data()?;
    let loaded = Loaded {
        summary,
        reader: file,
        torn_bytes: len - end,
        scanned: true,
    };
    Ok(Some(loaded))
}

/// The footer, if the file ends with a valid trailer and footer.
fn read_footer(file: &File, len: u64) -> Result<Option<SegmentSummary>, SegmentError> {
    if len < HEADER_LEN + TRAILER_LEN + FRAME_LEN as u64 {
        return Ok(None);
    }
    let mut trailer = [0u8; TRAILER_LEN as usize];
    file.read_exact_at(&mut trailer, len - TRAILER_LEN)?;
    let footer_off = u64::from_le_bytes(trailer[..8].try_into().unwrap_or_default());
    if &trailer[8..] != END_MAGIC || footer_off < HEADER_LEN || footer_off >= len - TRAILER_LEN {
        return Ok(None);
    }
    let mut buf = Vec::new();
    let payload = match read_record_at(file, footer_off, &mut buf) {
        Ok(p) => p,
        Err(SegmentError::Io(e)) if e.kind() != io::ErrorKind::UnexpectedEof => {
            return Err(e.into());
        }
        Err(_) => return Ok(None),
    };
    if footer_off + (FRAME_LEN + payload.len()) as u64 + TRAILER_LEN != len {
        return Ok(None);
    }
    let summary = decode_footer(payload).ok();
    let in_range = |s: &SegmentSummary| {
        let offs = s.series.iter().map(|e| u64::from(e.last_off));
        offs.into_iter()
            .all(|o| (HEADER_LEN..footer_off).contains(&o))
    };
    Ok(summary.filter(in_range))
}

fn decode_footer(payload: &[u8]) -> Result<SegmentSummary, DecodeError> {
    let mut cur = Cursor::new(payload);
    if cur.u8()? != KIND_FOOTER {
        return Err(DecodeError::Invalid("record kind"));
    }
    let body = cur.packed()?.unpack()?;
    let mut cur = Cursor::new(&body);
    let mut summary = SegmentSummary {
        mint: cur.varint()?,
        maxt: cur.varint()?,
        samples: cur.uvarint()?,
        chunks: cur.uvarint()?,
        ..SegmentSummary::default()
    };
    let n = cur.uvarint()?;
    for _ in 0..n {
        summary.series.push(SegmentSeries {
            disk_id: cur.uvarint32("series id")?,
            last_off: cur.uvarint32("chunk offset")?,
            mint: cur.varint()?,
            maxt: cur.varint()?,
            labels: SeriesLabels::from_pairs(cur.labels()?),
        });
    }
    Ok(summary)
}

/// Reads records from the start; returns what they hold and where the last good one ends.
fn scan(file: &File, len: u64, base_t: i64) -> Result<(SegmentSummary, u64), SegmentError> {
    let mut handle = file;
    handle.seek(SeekFrom::Start(HEADER_LEN))?;
    let mut reader = BufReader::with_capacity(1 << 16, handle);
    let mut summary = SegmentSummary {
        base_t,
        ..SegmentSummary::default()
    };
    let mut series: HashMap<u32, SegmentSeries> = HashMap::new();
    let mut payload = Vec::new();
    let mut off = HEADER_LEN;
    loop {
        let mut frame = [0u8; FRAME_LEN];
        if !read_fully(&mut reader, &mut frame)? {
            break;
        }
        let Some((plen, crc)) = parse_frame(&frame) else {
            break;
        };
        let end = off + FRAME_LEN as u64 + u64::from(plen);
        payload.resize(plen as usize, 0);
        if end > len || !read_fully(&mut reader, &mut payload)? || crc32fast::hash(&payload) != crc
        {
            break;
        }
        if !apply_record(&payload, off, &mut summary, &mut series) {
            break;
        }
        off = end;
    }
    // A series whose chunks were all torn off has nothing here.
    summary.series = series.into_values().filter(|e| e.last_off != 0).collect();
    summary.series.sort_by_key(|e| e.disk_id);
    Ok((summary, off))
}

/// Adds a scanned group; false for a record that ends the usable part of the file (a
/// footer whose trailer was torn, or a record that makes no sense).
fn apply_record(
    payload: &[u8],
    off: u64,
    summary: &mut SegmentSummary,
    series: &mut HashMap<u32, SegmentSeries>,
) -> bool {
    let Ok(off32) = u32::try_from(off) else {
        return false;
    };
    let Ok(group) = GroupRecord::parse(payload, off32, summary.base_t) else {
        return false;
    };
    let Ok(body) = group.body() else {
        return false;
    };
    // Check the whole group before counting any of it.
    let known = |i: usize, id: &u32| {
        let new_labels = body.has_labels(i).then(|| body.labels(i));
        match new_labels {
            Some(labels) => labels.is_some(),
            None => series.contains_key(id),
        }
    };
    if !group.ids.iter().enumerate().all(|(i, id)| known(i, id)) {
        return false;
    }
    for (i, &disk_id) in group.ids.iter().enumerate() {
        let entry = series.entry(disk_id).or_insert_with(|| SegmentSeries {
            disk_id,
            labels: SeriesLabels::from_pairs(body.labels(i).unwrap_or_default()),
            last_off: 0,
            mint: i64::MAX,
            maxt: i64::MIN,
        });
        entry.last_off = off32;
        for j in body.chunks_of(i) {
            let (mint, maxt, count) = body.bounds(j);
            entry.mint = entry.mint.min(mint);
            entry.maxt = entry.maxt.max(maxt);
            summary.add_chunk(mint, maxt, count as u64);
        }
    }
    true
}

/// Fills `buf`; false when the input ends first.
fn read_fully(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    match reader.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::monitor::tsdb::chunk::{ChunkEncoder, SealedChunk};
    use crate::monitor::tsdb::group::GroupBuilder;
    use crate::monitor::tsdb::segment::{BatchItem, SegmentWriter, segment_path};

    fn labels(job: &str) -> SeriesLabels {
        SeriesLabels::from_pairs([("job", job)])
    }

    fn chunk(start: i64, n: i64) -> Arc<SealedChunk> {
        let mut enc = ChunkEncoder::new(start, start as f64);
        (1..n).for_each(|i| enc.append(start + i, (start + i) as f64));
        Arc::new(enc.seal())
    }

    /// Writes two batches for series 7 ("a") and 9 ("b") and returns the writer.
    fn write_two_batches(dir: &Path) -> SegmentWriter {
        let (mut w, _) = SegmentWriter::create(dir, 1, 1000).unwrap();
        let (a, b) = (labels("a"), labels("b"));
        let first = [chunk(1000, 10), chunk(1010, 10)];
        let offs = w
            .write_batch(&[BatchItem {
                id: 7,
                labels: &a,
                chunks: &first,
            }])
            .unwrap();
        assert_eq!(offs.len(), 1);
        let second_a = [chunk(1020, 5)];
        let second_b = [chunk(500, 3)];
        // Items in any order: a group lists its series by id.
        let offs = w
            .write_batch(&[
                BatchItem {
                    id: 9,
                    labels: &b,
                    chunks: &second_b,
                },
                BatchItem {
                    id: 7,
                    labels: &a,
                    chunks: &second_a,
                },
            ])
            .unwrap();
        assert_eq!(offs[0], offs[1], "one group holds both");
        w
    }

    /// Walks a series' groups newest first, as queries do: (mint, samples) per chunk,
    /// newest first, each checked against its values.
    fn walk(file: &File, mut next: Option<u32>, disk_id: u32, base_t: i64) -> Vec<(i64, usize)> {
        let mut out = Vec::new();
        let mut buf = Vec::new();
        while let Some(off) = next {
            let payload = read_record_at(file, u64::from(off), &mut buf).unwrap();
            let group = GroupRecord::parse(payload, off, base_t).unwrap();
            let pos = group.position(disk_id).unwrap();
            let mut body = group.body().unwrap();
            for j in body.chunks_of(pos).rev() {
                let mut samples = Vec::new();
                body.samples(j, &mut samples).unwrap();
                assert!(samples.iter().all(|&(t, v)| v == t as f64));
                out.push((samples[0].0, samples.len()));
            }
            next = group.prev[pos];
        }
        out
    }

    #[test]
    fn a_closed_segment_opens_by_its_footer_and_chains_each_series() {
        let dir = tempfile::tempdir().unwrap();
        let summary = write_two_batches(dir.path()).finish().unwrap();
        let loaded = load(&segment_path(dir.path(), 1)).unwrap().unwrap();
        assert!(!loaded.scanned);
        let s = &loaded.summary;
        assert_eq!((s.mint, s.maxt, s.samples, s.chunks), (500, 1024, 28, 4));
        assert_eq!(s.bytes, summary.bytes);
        let a = &s.series[0];
        assert_eq!(
            (a.disk_id, a.labels.get("job"), a.mint, a.maxt),
            (7, "a", 1000, 1024)
        );
        let chain = walk(&loaded.reader, Some(a.last_off), 7, s.base_t);
        assert_eq!(chain, vec![(1020, 5), (1010, 10), (1000, 10)]);
        let b = &s.series[1];
        assert_eq!(
            walk(&loaded.reader, Some(b.last_off), 9, s.base_t),
            vec![(500, 3)]
        );
        // Labels come with a series' first group in the file only.
        let mut buf = Vec::new();
        let payload = read_record_at(&loaded.reader, u64::from(b.last_off), &mut buf).unwrap();
        let group = GroupRecord::parse(payload, b.last_off, s.base_t).unwrap();
        let body = group.body().unwrap();
        assert_eq!(group.ids, vec![7, 9]);
        assert!(!body.has_labels(0) && body.has_labels(1));
    }

    #[test]
    fn a_group_naming_a_series_the_file_has_no_labels_for_ends_the_scan() {
        let dir = tempfile::tempdir().unwrap();
        let path = segment_path(dir.path(), 1);
        drop(write_two_batches(dir.path()));
        let mut bytes = std::fs::read(&path).unwrap();
        let whole = bytes.len() as u64;
        let mut group = GroupBuilder::new(1000);
        group.add(9, 0, None, &[chunk(2000, 4)]);
        group.add(11, 0, None, &[chunk(2000, 4)]);
        let mut payload = Vec::new();
        group.finish(u32::try_from(whole).unwrap(), &mut payload);
        bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        bytes.extend_from_slice(&payload);
        std::fs::write(&path, &bytes).unwrap();

        let loaded = load(&path).unwrap().unwrap();
        assert_eq!(loaded.torn_bytes, bytes.len() as u64 - whole);
        assert_eq!((loaded.summary.chunks, loaded.summary.series.len()), (4, 2));
    }

    #[test]
    fn an_unclosed_segment_is_scanned_cut_at_a_torn_tail_and_closed() {
        let dir = tempfile::tempdir().unwrap();
        let path = segment_path(dir.path(), 1);
        drop(write_two_batches(dir.path()));
        let whole = std::fs::metadata(&path).unwrap().len();
        // A third batch torn in the middle of its record.
        let (mut w, _) = SegmentWriter::create(dir.path(), 2, 0).unwrap();
        w.write_batch(&[BatchItem {
            id: 1,
            labels: &labels("c"),
            chunks: &[chunk(0, 50)],
        }])
        .unwrap();
        let torn = std::fs::read(segment_path(dir.path(), 2)).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&torn[HEADER_LEN as usize..torn.len() - 5]);
        std::fs::write(&path, &bytes).unwrap();

        let loaded = load(&path).unwrap().unwrap();
        assert!(loaded.scanned);
        // The third batch's group is cut whole, series and all.
        assert_eq!(loaded.torn_bytes, bytes.len() as u64 - whole);
        assert_eq!((loaded.summary.chunks, loaded.summary.series.len()), (4, 2));
        let b = &loaded.summary.series[1];
        assert_eq!(
            walk(&loaded.reader, Some(b.last_off), 9, 1000),
            vec![(500, 3)]
        );
        let again = load(&path).unwrap().unwrap();
        assert!(!again.scanned, "the scan gives the file its footer");
        assert_eq!(again.summary.chunks, 4);
    }

    #[test]
    fn a_corrupt_record_ends_the_scan_there() {
        let dir = tempfile::tempdir().unwrap();
        let path = segment_path(dir.path(), 1);
        drop(write_two_batches(dir.path()));
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let loaded = load(&path).unwrap().unwrap();
        // The second batch's group fails its checksum: only the first batch is left.
        assert_eq!((loaded.summary.chunks, loaded.summary.series.len()), (2, 1));
        assert!(loaded.torn_bytes > 0);
        let a = &loaded.summary.series[0];
        let chain = walk(&loaded.reader, Some(a.last_off), 7, 1000);
        assert_eq!(chain, vec![(1010, 10), (1000, 10)]);
    }

    #[test]
    fn short_files_are_empty_and_foreign_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short.seg");
        std::fs::write(&short, b"FPTS").unwrap();
        assert!(load(&short).unwrap().is_none());
        let foreign = dir.path().join("foreign.seg");
        std::fs::write(&foreign, [7u8; 64]).unwrap();
        assert!(matches!(load(&foreign), Err(SegmentError::BadMagic)));
    }

    #[test]
    fn a_failed_read_is_reported_by_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let w = write_two_batches(dir.path());
        let summary = w.finish().unwrap();
        let path = segment_path(dir.path(), 1);
        let mut bytes = std::fs::read(&path).unwrap();
        let off = summary.series[1].last_off as usize;
        bytes[off + FRAME_LEN + 3] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let file = File::open(&path).unwrap();
        let mut buf = Vec::new();
        let err = read_record_at(&file, off as u64, &mut buf).err().unwrap();
        assert!(matches!(err, SegmentError::Checksum(_)));
    }
}
