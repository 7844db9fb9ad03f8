//! The sender's counters, kept in atomics so the scraper, the sending task and the metrics
//! exporter never wait on each other.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Live counters shared by the writer handle and its sending task.
#[derive(Debug, Default)]
pub(super) struct Stats {
    pub(super) samples_sent: AtomicU64,
    pub(super) samples_failed: AtomicU64,
    pub(super) samples_dropped: AtomicU64,
    pub(super) samples_retried: AtomicU64,
    pub(super) batches_sent: AtomicU64,
    pub(super) queue_len: AtomicU64,
    pub(super) last_send_micros: AtomicU64,
}

impl Stats {
    /// Adds `n` to a counter (saturating at the type's range on absurd counts).
    pub(super) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Sets a gauge.
    pub(super) fn set(gauge: &AtomicU64, n: usize) {
        gauge.store(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Records how long the last HTTP request took, whatever its outcome.
    pub(super) fn record_send_duration(&self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.last_send_micros.store(micros, Ordering::Relaxed);
    }

    /// Reads every counter once.
    pub(super) fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            samples_sent: get(&self.samples_sent),
            samples_failed: get(&self.samples_failed),
            samples_dropped: get(&self.samples_dropped),
            samples_retried: get(&self.samples_retried),
            batches_sent: get(&self.batches_sent),
            queue_len: get(&self.queue_len),
            last_send_duration: Duration::from_micros(get(&self.last_send_micros)),
        }
    }
}

/// The sender's counters at one instant, for the metrics exporter and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Samples the receiver accepted (2xx).
    pub samples_sent: u64,
    /// Samples given up on: rejected by the receiver (4xx other than 429), invalid metric or
    /// label names, or still unsent when shutdown ran out of time.
    pub samples_failed: u64,
    /// Samples discarded before sending because the queue was full (oldest first) or the
    /// writer was already shut down.
    pub samples_dropped: u64,
    /// Samples in requests that were sent again (one count per sample per retry).
    pub samples_retried: u64,
    /// Requests the receiver accepted.
    pub batches_sent: u64,
    /// Samples waiting in the queue.
    pub queue_len: u64,
    /// Duration of the most recent HTTP request, successful or not.
    pub last_send_duration: Duration,
}
