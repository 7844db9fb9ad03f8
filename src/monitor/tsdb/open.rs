//! Opening the store: loading the segment files, then the checkpoint of open chunks.

use std::collections::BTreeMap;
use std::collections::hash_map::RandomState;
use std::fs::{self, File, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use super::chunk::ChunkEncoder;
use super::head::{ChunkLimits, Head, SegRef, hash_pairs};
use super::scan::{self, Loaded};
use super::segment::{SegmentError, parse_segment_name};
use super::{
    Counters, Db, DbError, Inner, Options, RecoveryInfo, SegmentMeta, WriterState, checkpoint,
    io_err, millis,
};

impl Db {
    /// Opens (or creates) the store in `opts.dir` and recovers what a crash left; see the
    /// module docs for what survives.
    pub fn open(opts: Options) -> Result<Db, DbError> {
        opts.validate()?;
        fs::create_dir_all(&opts.dir).map_err(io_err("create", &opts.dir))?;
        let lock = lock_dir(&opts.dir)?;
        remove_if_present(&checkpoint::temp_path(&opts.dir))?;
        let hasher = RandomState::new();
        let mut inner = Inner {
            head: Head::new(hasher.clone()),
            segments: BTreeMap::new(),
        };
        let mut recovery = RecoveryInfo::default();
        let files = list_segments(&opts.dir)?;
        let next_segment = files.last().map_or(1, |(id, _)| id.saturating_add(1));
        for (id, path) in files {
            load_segment(&mut inner, &mut recovery, id, &path)?;
        }
        load_checkpoint(&mut inner.head, &mut recovery, &opts.dir);
        let checkpoint_bytes = fs::metadata(checkpoint::path(&opts.dir)).map_or(0, |m| m.len());
        let counters = Counters::default();
        counters
            .checkpoint_bytes
            .store(checkpoint_bytes, std::sync::atomic::Ordering::Relaxed);
        let writer = WriterState {
            next_segment,
            ..WriterState::default()
        };
        Ok(Db {
            read_cache: super::walk::GroupCache::new(opts.read_cache_bytes),
            limits: ChunkLimits {
                max_samples: opts.chunk_max_samples,
                span_ms: millis(opts.chunk_span),
            },
            opts,
            hasher,
            inner: RwLock::new(inner),
            writer: Mutex::new(writer),
            counters,
            recovery,
            _lock: lock,
        })
    }
}

/// Locks the directory against a second store; the lock ends with the process.
fn lock_dir(dir: &Path) -> Result<File, DbError> {
    let path = dir.join("lock");
    let file = File::create(&path).map_err(io_err("create", &path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(DbError::Locked(dir.to_owned())),
        Err(TryLockError::Error(e)) => Err(io_err("lock", path)(e)),
    }
}

fn remove_if_present(path: &Path) -> Result<(), DbError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", path)(e)),
        _ => Ok(()),
    }
}

/// The segment files in `dir`, by id.
fn list_segments(dir: &Path) -> Result<Vec<(u32, PathBuf)>, DbError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err("list", dir))? {
        let entry = entry.map_err(io_err("list", dir))?;
        let name = entry.file_name();
        if let Some(id) = name.to_str().and_then(parse_segment_name) {
            out.push((id, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

fn load_segment(
    inner: &mut Inner,
    recovery: &mut RecoveryInfo,
    id: u32,
    path: &Path,
) -> Result<(), DbError> {
    let loaded = match scan::load(path) {
        Ok(Some(loaded)) if loaded.summary.chunks > 0 => loaded,
        Ok(_) => {
            recovery.empty_segments_removed += 1;
            return remove_if_present(path);
        }
        Err(SegmentError::BadMagic) => {
            recovery.skipped_files.push(path.to_owned());
            return Ok(());
        }
        Err(SegmentError::Io(e)) => return Err(io_err("load segment", path)(e)),
        Err(other) => {
            let e = io::Error::new(io::ErrorKind::InvalidData, other.to_string());
            return Err(io_err("load segment", path)(e));
        }
    };
    recovery.segments += 1;
    recovery.segments_scanned += usize::from(loaded.scanned);
    recovery.torn_bytes += loaded.torn_bytes;
    register_segment(inner, id, loaded);
    Ok(())
}

/// Adds a loaded segment to the index: its series (created when new) point at it.
fn register_segment(inner: &mut Inner, id: u32, loaded: Loaded) {
    let Loaded {
        summary, reader, ..
    } = loaded;
    for entry in &summary.series {
        let pairs = entry.labels.pairs();
        let hash = hash_pairs(inner.head.hasher(), pairs.clone());
        let Ok(series_id) = inner.head.get_or_create(hash, pairs) else {
            continue;
        };
        if let Some(series) = inner.head.get_mut(series_id) {
            series.on_disk.push(SegRef {
                segment: id,
                last_off: entry.last_off,
                disk_id: entry.disk_id,
            });
            series.extend_bounds(entry.mint, entry.maxt);
        }
    }
    let meta = SegmentMeta {
        reader: Arc::new(reader),
        base_t: summary.base_t,
        mint: summary.mint,
        maxt: summary.maxt,
        bytes: summary.bytes,
        samples: summary.samples,
        chunks: summary.chunks,
    };
    inner.segments.insert(id, meta);
}

/// Restores the checkpointed open chunks that no segment holds yet.
fn load_checkpoint(head: &mut Head, recovery: &mut RecoveryInfo, dir: &Path) {
    let heads = match checkpoint::load(dir) {
        Ok(Some(heads)) => heads,
        Ok(None) => return,
        Err(e) => {
            recovery.checkpoint_error = Some(e.to_string());
            return;
        }
    };
    for restored in heads {
        let pairs = restored.labels.pairs();
        let hash = hash_pairs(head.hasher(), pairs.clone());
        let Ok(id) = head.get_or_create(hash, pairs) else {
            continue;
        };
        let Some(series) = head.get_mut(id) else {
            continue;
        };
        // A checkpointed chunk is either newer than everything on disk or the start of a
        // chunk that a later flush wrote before the crash (then the segment has it all).
        let Some(enc) = ChunkEncoder::restore(&restored.samples) else {
            recovery.checkpoint_error = Some(format!(
                "unusable chunk of {} samples",
                restored.samples.len()
            ));
            continue;
        };
        if enc.mint() <= series.last_t {
            recovery.checkpoint_heads_superseded += 1;
            continue;
        }
        series.extend_bounds(enc.mint(), enc.maxt());
        series.last_v = Some(enc.last_value());
        series.head = Some(enc);
        recovery.checkpoint_heads += 1;
    }
    // Series created for superseded or undecodable chunks only would hold nothing.
    head.drop_empty();
}
