//! The head checkpoint: every open chunk with its series' labels, written whole at each
//! flush (temp file, fsync, rename, fsync of the directory), so the file on disk is always
//! one complete checkpoint.
//!
//! Layout: magic, payload length (`u64` LE), crc32 of the payload (`u32` LE), payload. The
//! payload has a string table (each label name and value once), then for each chunk its
//! labels as string indices, `mint`, sample count and bytes.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::codec::{Cursor, DecodeError, put_str, put_uvarint, put_varint};
use super::labels::SeriesLabels;

const MAGIC: &[u8; 8] = b"FPTSCKP1";
const HEADER_LEN: usize = 20;
const FILE_NAME: &str = "head.checkpoint";
const TEMP_NAME: &str = "head.checkpoint.tmp";

/// An open chunk as saved or loaded.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct HeadSnapshot {
    pub(super) labels: SeriesLabels,
    pub(super) mint: i64,
    pub(super) count: u16,
    pub(super) bytes: Vec<u8>,
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
    let mut index: HashMap<&str, u64> = HashMap::new();
    let mut strings: Vec<&str> = Vec::new();
    let mut body = Vec::new();
    put_uvarint(&mut body, heads.len() as u64);
    for head in heads {
        put_uvarint(&mut body, head.labels.len() as u64);
        for s in head.labels.pairs().flat_map(|(n, v)| [n, v]) {
            let next = strings.len() as u64;
            let i = *index.entry(s).or_insert_with(|| {
                strings.push(s);
                next
            });
            put_uvarint(&mut body, i);
        }
        put_varint(&mut body, head.mint);
        put_uvarint(&mut body, u64::from(head.count));
        put_uvarint(&mut body, head.bytes.len() as u64);
        body.extend_from_slice(&head.bytes);
    }
    let mut payload = Vec::with_capacity(body.len() + strings.len() * 16);
    put_uvarint(&mut payload, strings.len() as u64);
    strings.iter().for_each(|s| put_str(&mut payload, s));
    payload.extend_from_slice(&body);
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
pub(super) fn load(dir: &Path) -> Result<Option<Vec<HeadSnapshot>>, CheckpointError> {
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

fn decode(payload: &[u8]) -> Result<Vec<HeadSnapshot>, DecodeError> {
    let mut cur = Cursor::new(payload);
    let n_strings = cur.uvarint()?;
    if n_strings > cur.remaining() as u64 {
        return Err(DecodeError::Truncated);
    }
    let strings: Vec<&str> = (0..n_strings)
        .map(|_| cur.str())
        .collect::<Result<_, _>>()?;
    let string = |i: u64| -> Result<&str, DecodeError> {
        let i = usize::try_from(i).map_err(|_| DecodeError::Invalid("string index"))?;
        strings
            .get(i)
            .copied()
            .ok_or(DecodeError::Invalid("string index"))
    };
    let n_heads = cur.uvarint()?;
    let mut heads = Vec::new();
    for _ in 0..n_heads {
        let n_labels = cur.uvarint()?;
        if n_labels > cur.remaining() as u64 {
            return Err(DecodeError::Truncated);
        }
        let labels = (0..n_labels)
            .map(|_| Ok((string(cur.uvarint()?)?, string(cur.uvarint()?)?)))
            .collect::<Result<Vec<_>, DecodeError>>()?;
        let mint = cur.varint()?;
        let count = u16::try_from(cur.uvarint()?).map_err(|_| DecodeError::Invalid("count"))?;
        let len = usize::try_from(cur.uvarint()?).map_err(|_| DecodeError::Truncated)?;
        let bytes = cur.bytes(len)?.to_vec();
        let labels = SeriesLabels::from_pairs(labels);
        heads.push(HeadSnapshot {
            labels,
            mint,
            count,
            bytes,
        });
    }
    Ok(heads)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(job: &str, mint: i64) -> HeadSnapshot {
        let labels = SeriesLabels::from_pairs([("__name__", "up"), ("job", job)]);
        HeadSnapshot {
            labels,
            mint,
            count: 3,
            bytes: vec![1, 2, 3, job.len() as u8],
        }
    }

    #[test]
    fn a_checkpoint_round_trips_and_shares_its_strings() {
        let dir = tempfile::tempdir().unwrap();
        let heads = vec![
            head("api", -5),
            head("db", 1_700_000_000_000),
            head("api", 7),
        ];
        let size = write(dir.path(), &heads).unwrap();
        assert_eq!(size, fs::metadata(path(dir.path())).unwrap().len());
        assert_eq!(load(dir.path()).unwrap().unwrap(), heads);
        let encoded = encode(&heads);
        assert_eq!(
            encoded.windows(3).filter(|w| w == b"api").count(),
            1,
            "strings stored once"
        );
        assert!(!temp_path(dir.path()).exists());
    }

    #[test]
    fn a_missing_checkpoint_is_none_and_a_damaged_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_none());
        write(dir.path(), &[head("api", 1)]).unwrap();
        let mut bytes = fs::read(path(dir.path())).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(path(dir.path()), &bytes).unwrap();
        assert!(matches!(load(dir.path()), Err(CheckpointError::Checksum)));
        fs::write(path(dir.path()), &bytes[..10]).unwrap();
        assert!(matches!(load(dir.path()), Err(CheckpointError::Checksum)));
    }
}
