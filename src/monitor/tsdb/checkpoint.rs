//! The head checkpoint: every open chunk with its series' labels, written whole at each
//! flush (temp file, fsync, rename, fsync of the directory), so the file on disk is always
//! one complete checkpoint.
//!
//! Layout: magic, payload length (`u64` LE), crc32 of the payload (`u32` LE), payload. The
//! payload is one chunk group (see `group`) with base time 0, holding each open chunk as a
//! series entry with its labels: the series of a scrape share a timestamp column there too,
//! and Snappy takes out the repeated label names and values.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::chunk::SealedChunk;
use super::codec::DecodeError;
use super::group::{GroupBuilder, GroupRecord};
use super::labels::SeriesLabels;

const MAGIC: &[u8; 8] = b"FPTSCKP2";
const HEADER_LEN: usize = 20;
const FILE_NAME: &str = "head.checkpoint";
const TEMP_NAME: &str = "head.checkpoint.tmp";

/// An open chunk as saved.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct HeadSnapshot {
    pub(super) labels: SeriesLabels,
    pub(super) chunk: SealedChunk,
}

/// An open chunk as loaded: its series and samples.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct RestoredHead {
    pub(super) labels: SeriesLabels,
    pub(super) samples: Vec<(i64, f64)>,
}

/// The checkpoint's path in `dir`.
pub(super) fn path(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// The temp file a crash may leave behind.
pub(super) fn temp_path(dir: &Path) -> PathBuf {
    dir.join(TEMP_NAME)
}

/// Replaces the checkpoint with `heads`; returns the file's size.
pub(super) fn write(dir: &Path, heads: &[HeadSnapshot]) -> io::Result<u64> {
    let payload = encode(heads);
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    header.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    let temp = temp_path(dir);
    let mut file = File::create(&temp)?;
    file.write_all(&header)?;
    file.write_all(&payload)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&temp, path(dir))?;
    File::open(dir)?.sync_all()?;
    Ok((HEADER_LEN + payload.len()) as u64)
}

fn encode(heads: &[HeadSnapshot]) -> Vec<u8> {
    let mut group = GroupBuilder::new(0);
    for (i, head) in heads.iter().enumerate() {
        let id = u32::try_from(i).unwrap_or(u32::MAX);
        group.add(id, 0, Some(&head.labels), std::slice::from_ref(&head.chunk));
    }
    let mut payload = Vec::with_capacity(group.len() / 2 + 16);
    group.finish(0, &mut payload);
    payload
}

/// A checkpoint that could not be used.
#[derive(Debug, thiserror::Error)]
pub(super) enum CheckpointError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("bad header or checksum")]
    Checksum,
    #[error("{0}")]
    Decode(#[from] DecodeError),
}

/// Reads the checkpoint; `None` when there is none.
pub(super) fn load(dir: &Path) -> Result<Option<Vec<RestoredHead>>, CheckpointError> {
    let bytes = match fs::read(path(dir)) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if bytes.len() < HEADER_LEN || &bytes[..8] != MAGIC {
        return Err(CheckpointError::Checksum);
    }
    let len = u64::from_le_bytes(bytes[8..16].try_into().unwrap_or_default());
    let crc = u32::from_le_bytes(bytes[16..20].try_into().unwrap_or_default());
    let payload = &bytes[HEADER_LEN..];
    if payload.len() as u64 != len || crc32fast::hash(payload) != crc {
        return Err(CheckpointError::Checksum);
    }
    Ok(Some(decode(payload)?))
}

fn decode(payload: &[u8]) -> Result<Vec<RestoredHead>, DecodeError> {
    let group = GroupRecord::parse(payload, 0, 0)?;
    let mut body = group.body()?;
    let mut heads = Vec::with_capacity(group.ids.len());
    for i in 0..group.ids.len() {
        let labels = body.labels(i).ok_or(DecodeError::Invalid("labels"))?;
        let labels = SeriesLabels::from_pairs(labels);
        let mut samples = Vec::new();
        for j in body.chunks_of(i) {
            body.samples(j, &mut samples)
                .ok_or(DecodeError::Invalid("chunk"))?;
        }
        heads.push(RestoredHead { labels, samples });
    }
    Ok(heads)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::tsdb::chunk::ChunkEncoder;

    fn samples(mint: i64, n: i64) -> Vec<(i64, f64)> {
        (0..n)
            .map(|i| (mint + i * 1000, (i * i) as f64 / 8.0))
            .collect()
    }

    fn head(job: &str, samples: &[(i64, f64)]) -> HeadSnapshot {
        let labels = SeriesLabels::from_pairs([("__name__", "up"), ("job", job)]);
        let chunk = ChunkEncoder::restore(samples).unwrap().seal();
        HeadSnapshot { labels, chunk }
    }

    #[test]
    fn a_checkpoint_round_trips_and_shares_its_timestamps() {
        let dir = tempfile::tempdir().unwrap();
        let jobs: Vec<String> = (0..200).map(|i| format!("job-{i}")).collect();
        let mut heads: Vec<HeadSnapshot> = jobs
            .iter()
            .map(|job| head(job, &samples(1_700_000_000_000, 100)))
            .collect();
        heads.push(head("api", &samples(-5, 3)));
        let size = write(dir.path(), &heads).unwrap();
        assert_eq!(size, fs::metadata(path(dir.path())).unwrap().len());
        let loaded = load(dir.path()).unwrap().unwrap();
        assert_eq!(loaded.len(), heads.len());
        for (got, want) in loaded.iter().zip(&heads) {
            assert_eq!(got.labels, want.labels);
            let want: Vec<(i64, f64)> = want.chunk.samples().map(Result::unwrap).collect();
            assert_eq!(got.samples, want);
        }
        // 20,100 samples in under 20 bytes a series: one timestamp column serves all, the
        // values take a few bytes, the labels are mostly repeats.
        assert!(size < 201 * 20, "{size} bytes");
        assert!(!temp_path(dir.path()).exists());
    }

    #[test]
    fn a_missing_checkpoint_is_none_and_a_damaged_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_none());
        write(dir.path(), &[head("api", &samples(1, 5))]).unwrap();
        let mut bytes = fs::read(path(dir.path())).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(path(dir.path()), &bytes).unwrap();
        assert!(matches!(load(dir.path()), Err(CheckpointError::Checksum)));
        fs::write(path(dir.path()), &bytes[..10]).unwrap();
        assert!(matches!(load(dir.path()), Err(CheckpointError::Checksum)));
    }
}
