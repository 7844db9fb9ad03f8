//! The monitor's time-series store: a compressed in-memory head, segment files on disk, a
//! checkpoint for crash safety, retention, and the reads PromQL and the HTTP API need.
//!
//! # Data path
//! Each series has one open chunk in memory (Gorilla-style compression, see `chunk`),
//! cut at `chunk_max_samples` samples (120) or when it would span more than `chunk_span`.
//! Cut chunks wait in memory until [`Db::flush`] appends them to the active segment file
//! (see `segment`), which is rotated by time span and size. A flush stores its chunks in
//! groups of a few hundred series (see `group`): timestamps and values in separate columns
//! (see `column`), one timestamp column for all the series of a scrape, values in the
//! smallest of four codes, the whole Snappy-compressed. After a flush the memory keeps, per
//! series and segment, only where its newest group is and the id the file knows it by;
//! queries read and decompress each group they need once (see `walk`).
//!
//! # Size on disk
//! For the lab's targets scraped every second (app, proxy, postgres_exporter,
//! redis_exporter; a quiet half-hour, then a half-hour of load) segments and checkpoint take
//! about 0.47 bytes a sample (`tests/lab.rs`; the previous format took 2.0, Prometheus about
//! 1.3). A series scraped alone, with its own timestamps, costs about 0.85 bytes a sample
//! even when constant: its timestamps' jitter is most of it.
//!
//! # Durability
//! [`Db::flush`] (the monitor calls it every `flush_interval`) writes and fsyncs the cut
//! chunks, then replaces the checkpoint of the open chunks (temp file, fsync, rename). After a
//! crash (even SIGKILL or power loss on a disk that honours fsync) [`Db::open`] gets back
//! **every sample appended before the start of the last `flush()` that returned `Ok`**;
//! samples appended after it are lost, at most one flush interval's worth. Open loads the
//! segments (the one being written at the crash is scanned and cut at its first torn or
//! corrupt record), then the checkpoint, skipping any open chunk that a segment already
//! holds (a crash between the segment write and the checkpoint rename).
//!
//! # Retention
//! [`Db::maintain`] deletes whole segment files: those whose newest sample is older than
//! `retention`, then the oldest while the store's bytes exceed `retention_bytes`. The file
//! being written is never deleted, so the size limit can be overshot by one segment.
//!
//! # Files
//! In `dir`: `NNNNNNNNNN.seg` segment files (see `segment` for the format),
//! `head.checkpoint`, and `lock`, held with an exclusive lock while a store has the
//! directory open (a second [`Db::open`] fails with [`DbError::Locked`]).
//!
//! # Concurrency
//! One `RwLock` guards the in-memory state; appends hold it for writing for one sample or
//! one batch, queries for reading only while they collect chunk references and copy the open
//! chunks, then decode and read files without it. Flush and maintain take a separate mutex
//! and hold the state lock only briefly, never across file I/O.

mod bits;
mod checkpoint;
mod chunk;
mod codec;
mod column;
mod group;
mod head;
mod index;
mod labels;
mod open;
mod persist;
mod query;
mod scan;
mod segment;
mod walk;

use std::collections::BTreeMap;
use std::collections::hash_map::RandomState;
use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use thiserror::Error;

use crate::monitor::series::Labels;

use head::{ChunkLimits, Head, hash_pairs};
use index::pairs_of;
use segment::SegmentWriter;

/// Settings of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Directory of the segment files and the checkpoint (created when missing).
    pub dir: PathBuf,
    /// Segments whose newest sample is older than this are deleted.
    pub retention: Duration,
    /// Oldest segments are deleted while the store's bytes exceed this; 0 means no limit.
    pub retention_bytes: u64,
    /// Samples after which a chunk is cut (Prometheus: 120).
    pub chunk_max_samples: u16,
    /// Longest time from a chunk's first to last sample.
    pub chunk_span: Duration,
    /// A segment is closed when a flush would put in it samples this much newer than its
    /// oldest. Memory holds 12 bytes per series per segment, so longer spans cost less.
    pub segment_span: Duration,
    /// A segment is closed once it holds this many bytes.
    pub segment_bytes: u64,
    /// Decompressed chunk groups kept for the next queries, in bytes (see `walk`).
    pub read_cache_bytes: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            dir: PathBuf::from("data/monitor"),
            retention: Duration::from_secs(15 * 24 * 3600),
            retention_bytes: 0,
            chunk_max_samples: 120,
            chunk_span: Duration::from_secs(2 * 3600),
            segment_span: Duration::from_secs(12 * 3600),
            segment_bytes: 256 << 20,
            // The groups of a dashboard's queries over the lab's last 10 minutes (app, proxy,
            // PostgreSQL, Redis at 1 s scrapes); at 512 KiB they evicted each other.
            read_cache_bytes: 1 << 20,
        }
    }
}

impl Options {
    fn validate(&self) -> Result<(), DbError> {
        if self.chunk_max_samples < 2 {
            return Err(DbError::InvalidOptions(
                "chunk_max_samples must be at least 2",
            ));
        }
        if self.chunk_span.is_zero() || self.segment_span.is_zero() {
            return Err(DbError::InvalidOptions(
                "chunk_span and segment_span must be positive",
            ));
        }
        if self.segment_bytes == 0 || self.segment_bytes > segment::MAX_SEGMENT_BYTES / 2 {
            return Err(DbError::InvalidOptions(
                "segment_bytes must be between 1 byte and 2 GiB",
            ));
        }
        Ok(())
    }
}

/// Milliseconds in a duration, saturating.
fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The store failed to open, flush or clean up.
#[derive(Debug, Error)]
pub enum DbError {
    /// An option is out of range.
    #[error("invalid tsdb options: {0}")]
    InvalidOptions(&'static str),
    /// Another store (in this or another process) has the directory open.
    #[error("{} is in use by another store", .0.display())]
    Locked(PathBuf),
    /// A file operation failed.
    #[error("failed to {action} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. "write segment".
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
}

/// Builds a [`DbError::Io`] mapper for `action` on `path`.
fn io_err(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> DbError {
    let path = path.into();
    move |source| DbError::Io {
        action,
        path,
        source,
    }
}

/// A sample was not stored.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum AppendError {
    /// The timestamp is before the series' last one.
    #[error("out of order sample: {t} is before the series' last timestamp {last_t}")]
    OutOfOrder {
        /// The sample's timestamp (ms).
        t: i64,
        /// The series' last timestamp (ms).
        last_t: i64,
    },
    /// The series already has a different value at this timestamp.
    #[error("duplicate sample for timestamp {t} with a different value")]
    DuplicateTimestamp {
        /// The timestamp (ms).
        t: i64,
    },
    /// A series needs at least one label.
    #[error("series has no labels")]
    EmptyLabels,
    /// No series id is left (4 billion series at once).
    #[error("too many series")]
    TooManySeries,
}

/// What [`Db::append_batch`] did with a batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppendSummary {
    /// Samples stored.
    pub appended: usize,
    /// Repeats of a series' last sample (same time, same value), ignored.
    pub duplicates_ignored: usize,
    /// Samples older than their series' last one, rejected.
    pub out_of_order: usize,
    /// Samples at a series' last time with another value, rejected.
    pub duplicate_conflicts: usize,
    /// Samples rejected for their labels (none, or no more series ids).
    pub invalid: usize,
}

/// What [`Db::open`] found on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryInfo {
    /// Segment files loaded.
    pub segments: usize,
    /// Of those, files without a footer (the one being written at a crash), scanned.
    pub segments_scanned: usize,
    /// Bytes cut from torn or corrupt segment tails.
    pub torn_bytes: u64,
    /// Segment files deleted because they held no chunk.
    pub empty_segments_removed: usize,
    /// `.seg` files that are not segments, left alone.
    pub skipped_files: Vec<PathBuf>,
    /// Open chunks restored from the checkpoint.
    pub checkpoint_heads: usize,
    /// Checkpointed chunks skipped because a segment already holds them.
    pub checkpoint_heads_superseded: usize,
    /// Why the checkpoint could not be used, if it could not.
    pub checkpoint_error: Option<String>,
}

/// What [`Db::maintain`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MaintainSummary {
    /// Open chunks of idle series sealed (written at the next flush).
    pub idle_chunks_sealed: usize,
    /// Segment files deleted.
    pub segments_deleted: usize,
    /// Their bytes.
    pub bytes_deleted: u64,
    /// Series dropped because no sample of theirs is left.
    pub series_dropped: usize,
}

/// Figures for the monitor's own metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Series in memory (with samples in the head or on disk).
    pub series: usize,
    /// Open chunks.
    pub head_chunks: usize,
    /// Sealed chunks waiting for the next flush.
    pub pending_chunks: usize,
    /// Samples in open and pending chunks.
    pub head_samples: u64,
    /// Encoded bytes of open and pending chunks.
    pub head_bytes: u64,
    /// Samples stored since open.
    pub samples_appended_total: u64,
    /// Samples rejected as out of order since open.
    pub out_of_order_total: u64,
    /// Samples rejected as a different value at a series' last time since open.
    pub duplicate_conflicts_total: u64,
    /// Exact repeats ignored since open.
    pub duplicates_ignored_total: u64,
    /// Chunk reads that failed (I/O error or checksum) since open; their samples are
    /// missing from query results.
    pub read_errors_total: u64,
    /// Chunk groups visited by queries since open, read from a segment file or found in
    /// the read cache (each holds the chunks of up to a few hundred series from one flush).
    pub group_reads_total: u64,
    /// Of those, found in the read cache.
    pub group_cache_hits_total: u64,
    /// Samples in segment files.
    pub samples_on_disk: u64,
    /// Chunks in segment files.
    pub chunks_on_disk: u64,
    /// Bytes of segment files and the checkpoint.
    pub bytes_on_disk: u64,
    /// Bytes of the checkpoint.
    pub checkpoint_bytes: u64,
    /// Segment files.
    pub segments: usize,
}

/// A segment file as the store keeps it open.
#[derive(Debug)]
struct SegmentMeta {
    reader: Arc<File>,
    base_t: i64,
    mint: i64,
    maxt: i64,
    bytes: u64,
    samples: u64,
    chunks: u64,
}

/// Everything the state lock guards.
#[derive(Debug)]
struct Inner {
    head: Head,
    segments: BTreeMap<u32, SegmentMeta>,
}

/// The file being written and flush bookkeeping, under the flush mutex.
#[derive(Debug, Default)]
struct WriterState {
    active: Option<(u32, SegmentWriter)>,
    next_segment: u32,
    /// The append generation the current checkpoint holds.
    checkpointed: Option<u64>,
}

#[derive(Debug, Default)]
struct Counters {
    appended: AtomicU64,
    out_of_order: AtomicU64,
    duplicate_conflicts: AtomicU64,
    duplicates_ignored: AtomicU64,
    read_errors: AtomicU64,
    group_reads: AtomicU64,
    group_cache_hits: AtomicU64,
    checkpoint_bytes: AtomicU64,
    /// Bumped by every change of the open chunks, so an idle flush can skip the checkpoint.
    generation: AtomicU64,
}

/// The time-series store. Cheap to share (`Arc<Db>`); every method takes `&self`.
#[derive(Debug)]
pub struct Db {
    opts: Options,
    limits: ChunkLimits,
    hasher: RandomState,
    inner: RwLock<Inner>,
    writer: Mutex<WriterState>,
    counters: Counters,
    read_cache: walk::GroupCache,
    recovery: RecoveryInfo,
    /// Holds an exclusive lock on `dir/lock` while the store is open.
    _lock: File,
}

impl Db {
    /// The options the store was opened with.
    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// What opening found on disk.
    pub fn recovery(&self) -> &RecoveryInfo {
        &self.recovery
    }

    /// Stores one sample. An exact repeat of the series' last sample is ignored (`Ok`).
    pub fn append(&self, labels: &Labels, t_ms: i64, v: f64) -> Result<(), AppendError> {
        let hash = hash_pairs(&self.hasher, pairs_of(labels));
        let result = self
            .write_inner()
            .head
            .append(hash, pairs_of(labels), t_ms, v, self.limits);
        let mut summary = AppendSummary::default();
        summary.count(&result);
        self.count(&summary);
        result.map(|_| ())
    }

    /// Stores a whole scrape under one lock acquisition and says what happened to it.
    ///
    /// Chosen over a buffering `Appender`: the scraper already holds the samples in a `Vec`,
    /// so a slice avoids a second copy, and labels are hashed before the lock is taken so
    /// the lock covers only map lookups and chunk appends.
    pub fn append_batch(&self, samples: &[(Labels, i64, f64)]) -> AppendSummary {
        let hashes: Vec<u64> = samples
            .iter()
            .map(|(l, _, _)| hash_pairs(&self.hasher, pairs_of(l)))
            .collect();
        let mut summary = AppendSummary::default();
        {
            let mut inner = self.write_inner();
            for ((labels, t, v), hash) in samples.iter().zip(hashes) {
                summary.count(
                    &inner
                        .head
                        .append(hash, pairs_of(labels), *t, *v, self.limits),
                );
            }
        }
        self.count(&summary);
        summary
    }

    fn count(&self, s: &AppendSummary) {
        let c = &self.counters;
        let add = |counter: &AtomicU64, n: usize| {
            if n > 0 {
                counter.fetch_add(n as u64, Ordering::Relaxed);
            }
        };
        add(&c.appended, s.appended);
        add(&c.generation, s.appended);
        add(&c.out_of_order, s.out_of_order);
        add(&c.duplicate_conflicts, s.duplicate_conflicts);
        add(&c.duplicates_ignored, s.duplicates_ignored);
    }

    /// Current figures; walks the series under the read lock (microseconds per thousand).
    pub fn stats(&self) -> Stats {
        let c = &self.counters;
        let mut stats = Stats {
            samples_appended_total: c.appended.load(Ordering::Relaxed),
            out_of_order_total: c.out_of_order.load(Ordering::Relaxed),
            duplicate_conflicts_total: c.duplicate_conflicts.load(Ordering::Relaxed),
            duplicates_ignored_total: c.duplicates_ignored.load(Ordering::Relaxed),
            read_errors_total: c.read_errors.load(Ordering::Relaxed),
            group_reads_total: c.group_reads.load(Ordering::Relaxed),
            group_cache_hits_total: c.group_cache_hits.load(Ordering::Relaxed),
            checkpoint_bytes: c.checkpoint_bytes.load(Ordering::Relaxed),
            ..Stats::default()
        };
        let inner = self.read_inner();
        stats.series = inner.head.len();
        for (_, series) in inner.head.iter() {
            if let Some(h) = &series.head {
                stats.head_chunks += 1;
                stats.head_samples += u64::from(h.count());
                stats.head_bytes += h.bytes().len() as u64;
            }
            stats.pending_chunks += series.unflushed.len();
            for chunk in &series.unflushed {
                stats.head_samples += u64::from(chunk.count);
                stats.head_bytes += chunk.bytes.len() as u64;
            }
        }
        for meta in inner.segments.values() {
            stats.samples_on_disk += meta.samples;
            stats.chunks_on_disk += meta.chunks;
            stats.bytes_on_disk += meta.bytes;
        }
        stats.bytes_on_disk += stats.checkpoint_bytes;
        stats.segments = inner.segments.len();
        stats
    }

    fn read_inner(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_inner(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_writer(&self) -> MutexGuard<'_, WriterState> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl AppendSummary {
    fn count(&mut self, result: &Result<bool, AppendError>) {
        match result {
            Ok(true) => self.appended += 1,
            Ok(false) => self.duplicates_ignored += 1,
            Err(AppendError::OutOfOrder { .. }) => self.out_of_order += 1,
            Err(AppendError::DuplicateTimestamp { .. }) => self.duplicate_conflicts += 1,
            Err(AppendError::EmptyLabels | AppendError::TooManySeries) => self.invalid += 1,
        }
    }
}

#[cfg(test)]
mod tests;
