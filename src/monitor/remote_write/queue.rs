//! The bounded queue between the scraper and the sending task. Pushing never waits: when
//! the queue is full the oldest samples are dropped (and counted), as a stalled receiver
//! must never stall scraping.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

use super::stats::Stats;
use crate::monitor::series::Labels;

/// One queued sample: its series, timestamp (ms) and value.
pub(super) type QueuedSample = (Labels, i64, f64);

/// A FIFO of samples with a capacity, plus the wake-up for the sending task.
#[derive(Debug)]
pub(super) struct Queue {
    samples: Mutex<VecDeque<QueuedSample>>,
    capacity: usize,
    batch_size: usize,
    /// Signalled when at least one full batch is waiting.
    pub(super) batch_ready: Notify,
}

impl Queue {
    /// An empty queue holding at most `capacity` samples.
    pub(super) fn new(capacity: usize, batch_size: usize) -> Queue {
        Queue {
            samples: Mutex::new(VecDeque::new()),
            capacity,
            batch_size,
            batch_ready: Notify::new(),
        }
    }

    /// Appends samples in order, dropping the oldest ones over capacity; wakes the sender
    /// when a full batch is waiting.
    pub(super) fn push(&self, samples: Vec<QueuedSample>, stats: &Stats) {
        let mut queue = self.lock();
        queue.extend(samples);
        let overflow = queue.len().saturating_sub(self.capacity);
        if overflow > 0 {
            queue.drain(..overflow);
            Stats::add(&stats.samples_dropped, overflow);
        }
        let len = queue.len();
        drop(queue);
        Stats::set(&stats.queue_len, len);
        if len >= self.batch_size {
            // Stores a permit when the sender is busy, so the wake-up is never lost.
            self.batch_ready.notify_one();
        }
    }

    /// Takes up to `max` of the oldest samples.
    pub(super) fn take(&self, max: usize, stats: &Stats) -> Vec<QueuedSample> {
        let mut queue = self.lock();
        let n = max.min(queue.len());
        let batch: Vec<QueuedSample> = queue.drain(..n).collect();
        Stats::set(&stats.queue_len, queue.len());
        batch
    }

    /// Number of queued samples.
    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }

    /// The queue itself; a panic elsewhere while holding the lock cannot leave it invalid
    /// (every update is a single `VecDeque` call), so a poisoned lock is used as is.
    fn lock(&self) -> MutexGuard<'_, VecDeque<QueuedSample>> {
        self.samples.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(range: std::ops::Range<i64>) -> Vec<QueuedSample> {
        let labels = Labels::from_pairs(&[("__name__", "up")]);
        range.map(|t| (labels.clone(), t, t as f64)).collect()
    }

    fn times(batch: &[QueuedSample]) -> Vec<i64> {
        batch.iter().map(|s| s.1).collect()
    }

    #[test]
    fn full_queue_drops_the_oldest_samples_and_counts_them() {
        let stats = Stats::default();
        let queue = Queue::new(5, 100);
        queue.push(samples(0..3), &stats);
        queue.push(samples(3..7), &stats);
        let snap = stats.snapshot();
        assert_eq!(snap.samples_dropped, 2);
        assert_eq!(snap.queue_len, 5);
        assert_eq!(times(&queue.take(100, &stats)), [2, 3, 4, 5, 6]);
        assert_eq!(stats.snapshot().queue_len, 0);
    }

    #[test]
    fn take_returns_the_oldest_samples_first_in_batches() {
        let stats = Stats::default();
        let queue = Queue::new(100, 3);
        queue.push(samples(0..7), &stats);
        assert_eq!(times(&queue.take(3, &stats)), [0, 1, 2]);
        assert_eq!(times(&queue.take(3, &stats)), [3, 4, 5]);
        assert_eq!(queue.len(), 1);
        assert_eq!(stats.snapshot().queue_len, 1);
    }

    #[tokio::test]
    async fn push_of_a_full_batch_wakes_the_sender_even_before_it_waits() {
        let stats = Stats::default();
        let queue = Queue::new(100, 3);
        queue.push(samples(0..2), &stats);
        queue.push(samples(2..3), &stats);
        // The permit was stored by push; without it this would hang (bounded by the timeout).
        let woke = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            queue.batch_ready.notified(),
        )
        .await;
        assert!(woke.is_ok());
    }
}
