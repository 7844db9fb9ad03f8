//! Grouping per coupon: concurrent requests for one coupon queue up, and one drain task per
//! coupon runs everything queued in one go, again and again until the queue is empty. Under a
//! burst a handful of runs replace a thousand round trips; alone, a request is a group of
//! one and waits for nothing. The drain is a task of its own, so a client that hangs up
//! never cancels a run that other requests wait on.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

/// What runs a group; each item carries its own way to answer.
pub trait Run: Send + Sync + 'static {
    type Item: Send + 'static;
    fn run(&self, coupon_id: i64, group: Vec<Self::Item>) -> impl Future<Output = ()> + Send;
}

/// A coupon's queue, and whether its drain task is running.
struct Lane<T> {
    queue: Vec<T>,
    draining: bool,
}

/// Per-coupon queues in front of one runner.
pub struct Groups<R: Run> {
    runner: Arc<R>,
    lanes: Arc<Mutex<HashMap<i64, Lane<R::Item>>>>,
}

impl<R: Run> Groups<R> {
    pub fn new(runner: R) -> Self {
        Groups {
            runner: Arc::new(runner),
            lanes: Arc::default(),
        }
    }

    /// The runner, for what it holds.
    pub fn runner(&self) -> &R {
        &self.runner
    }

    /// Queues an item for its coupon's next group, starting the drain when none runs.
    pub fn submit(&self, coupon_id: i64, item: R::Item) {
        let start = {
            let mut lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
            let lane = lanes.entry(coupon_id).or_insert_with(|| Lane {
                queue: Vec::new(),
                draining: false,
            });
            lane.queue.push(item);
            !std::mem::replace(&mut lane.draining, true)
        };
        if start {
            let (runner, lanes) = (self.runner.clone(), self.lanes.clone());
            tokio::spawn(async move {
                let mut unwedge = Unwedge {
                    lanes: lanes.clone(),
                    coupon_id,
                    finished: false,
                };
                while let Some(group) = next_group(&lanes, coupon_id) {
                    runner.run(coupon_id, group).await;
                }
                unwedge.finished = true;
            });
        }
    }
}

/// Forgets the lane of a drain that did not finish (it panicked), answering its queue by
/// dropping it (each waiter then sees a closed channel), so the coupon's next request starts
/// a new drain instead of waiting behind a dead one.
struct Unwedge<T> {
    lanes: Arc<Mutex<HashMap<i64, Lane<T>>>>,
    coupon_id: i64,
    finished: bool,
}

impl<T> Drop for Unwedge<T> {
    fn drop(&mut self) {
        if !self.finished {
            let mut lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
            lanes.remove(&self.coupon_id);
        }
    }
}

/// Takes everything queued for a coupon, or ends its drain (and forgets the lane) when
/// nothing is: both under the lock, so an item queued meanwhile starts a new drain.
fn next_group<T>(lanes: &Mutex<HashMap<i64, Lane<T>>>, coupon_id: i64) -> Option<Vec<T>> {
    let mut lanes = lanes.lock().unwrap_or_else(|e| e.into_inner());
    let lane = lanes.get_mut(&coupon_id)?;
    if lane.queue.is_empty() {
        lanes.remove(&coupon_id);
        return None;
    }
    Some(std::mem::take(&mut lane.queue))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::{Notify, oneshot};

    /// Records group sizes; the first run waits until released, so others pile up.
    struct Recorder {
        sizes: Mutex<Vec<usize>>,
        gate: Arc<Notify>,
    }

    impl Run for Recorder {
        type Item = (u32, oneshot::Sender<u32>);
        async fn run(&self, _coupon_id: i64, group: Vec<Self::Item>) {
            let first = {
                let mut sizes = self.sizes.lock().expect("not poisoned");
                sizes.push(group.len());
                sizes.len() == 1
            };
            if first {
                self.gate.notified().await;
            }
            for (n, answer) in group {
                let _ = answer.send(n * 10);
            }
        }
    }

    /// Panics on item 0, answers the others.
    struct Fragile;

    impl Run for Fragile {
        type Item = (u32, oneshot::Sender<u32>);
        async fn run(&self, _coupon_id: i64, group: Vec<Self::Item>) {
            for (n, answer) in group {
                assert!(n != 0, "the fragile runner fails on item 0");
                let _ = answer.send(n);
            }
        }
    }

    #[tokio::test]
    async fn a_panicking_run_does_not_wedge_its_coupon() {
        let groups = Groups::new(Fragile);
        let (tx, rx) = oneshot::channel();
        groups.submit(3, (0, tx));
        assert!(
            rx.await.is_err(),
            "the waiter of a failed run sees a closed channel"
        );
        let (tx, rx) = oneshot::channel();
        groups.submit(3, (5, tx));
        // Bounded: a wedged lane would never answer.
        let answer = tokio::time::timeout(std::time::Duration::from_secs(5), rx).await;
        assert_eq!(
            answer
                .expect("answered in time")
                .expect("a new drain answers"),
            5
        );
    }

    #[tokio::test]
    async fn queued_items_run_together_and_each_gets_its_answer() {
        let gate = Arc::new(Notify::new());
        let groups = Groups::new(Recorder {
            sizes: Mutex::default(),
            gate: gate.clone(),
        });
        let mut answers = Vec::new();
        for n in 0..5u32 {
            let (tx, rx) = oneshot::channel();
            groups.submit(7, (n, tx));
            answers.push(rx);
            // Let the drain task take the first item alone.
            tokio::task::yield_now().await;
        }
        gate.notify_one();
        for (n, rx) in answers.into_iter().enumerate() {
            assert_eq!(rx.await.expect("answered"), n as u32 * 10);
        }
        let sizes = groups.runner.sizes.lock().expect("not poisoned").clone();
        assert_eq!(
            sizes,
            vec![1, 4],
            "the first runs alone, the rest as one group"
        );
        // The lane is forgotten once drained, and a later item starts a new drain.
        assert!(groups.lanes.lock().expect("not poisoned").is_empty());
        let (tx, rx) = oneshot::channel();
        groups.submit(7, (9, tx));
        assert_eq!(rx.await.expect("answered"), 90);
    }
}
