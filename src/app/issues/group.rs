//! Grouping per coupon: concurrent requests for one coupon queue up, and one drain task per
//! coupon runs everything queued in one go, again and again until the queue is empty. Under a
//! burst a handful of runs replace a thousand round trips; alone, a request is a group of
//! one and waits for nothing. The drain is a task of its own, so a client that hangs up
//! never cancels a run that other requests wait on.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use chrono::NaiveDateTime;
use tokio::sync::oneshot;

/// One request waiting in a group: who asks, when, and where its answer goes.
pub struct Request<A> {
    pub user_id: i64,
    pub now: NaiveDateTime,
    pub answer: oneshot::Sender<A>,
}

/// What runs a group; it answers each request through its own channel.
pub trait Run: Send + Sync + 'static {
    type Answer: Send + 'static;
    fn run(
        &self,
        coupon_id: i64,
        group: Vec<Request<Self::Answer>>,
    ) -> impl Future<Output = ()> + Send;
}

/// Each coupon's queue; a coupon has one exactly while its drain task runs.
type Lanes<A> = Arc<Mutex<HashMap<i64, Vec<Request<A>>>>>;

/// Per-coupon queues in front of one runner.
pub struct Groups<R: Run> {
    runner: Arc<R>,
    lanes: Lanes<R::Answer>,
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

    /// Queues a request for its coupon's next group and waits for its answer; `None` when
    /// the run it was in failed without answering.
    pub async fn ask(&self, coupon_id: i64, user_id: i64, now: NaiveDateTime) -> Option<R::Answer> {
        let (answer, rx) = oneshot::channel();
        self.submit(
            coupon_id,
            Request {
                user_id,
                now,
                answer,
            },
        );
        rx.await.ok()
    }

    /// Queues a request, starting the coupon's drain when none runs.
    fn submit(&self, coupon_id: i64, request: Request<R::Answer>) {
        let start = {
            let mut lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
            match lanes.get_mut(&coupon_id) {
                Some(queue) => {
                    queue.push(request);
                    false
                }
                None => {
                    lanes.insert(coupon_id, vec![request]);
                    true
                }
            }
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
struct Unwedge<A> {
    lanes: Lanes<A>,
    coupon_id: i64,
    finished: bool,
}

impl<A> Drop for Unwedge<A> {
    fn drop(&mut self) {
        if !self.finished {
            let mut lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
            lanes.remove(&self.coupon_id);
        }
    }
}

/// Takes everything queued for a coupon, or ends its drain (and forgets the lane) when
/// nothing is: both under the lock, so a request queued meanwhile starts a new drain.
fn next_group<A>(lanes: &Lanes<A>, coupon_id: i64) -> Option<Vec<Request<A>>> {
    let mut lanes = lanes.lock().unwrap_or_else(|e| e.into_inner());
    let queue = lanes.get_mut(&coupon_id)?;
    if queue.is_empty() {
        lanes.remove(&coupon_id);
        return None;
    }
    Some(std::mem::take(queue))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::Notify;

    fn now() -> NaiveDateTime {
        chrono::DateTime::UNIX_EPOCH.naive_utc()
    }

    /// Records group sizes and answers ten times the user id; the first run waits until
    /// released, so others pile up.
    struct Recorder {
        sizes: Mutex<Vec<usize>>,
        gate: Arc<Notify>,
    }

    impl Run for Recorder {
        type Answer = i64;
        async fn run(&self, _coupon_id: i64, group: Vec<Request<i64>>) {
            let first = {
                let mut sizes = self.sizes.lock().expect("not poisoned");
                sizes.push(group.len());
                sizes.len() == 1
            };
            if first {
                self.gate.notified().await;
            }
            for r in group {
                let _ = r.answer.send(r.user_id * 10);
            }
        }
    }

    #[tokio::test]
    async fn queued_requests_run_together_and_each_gets_its_answer() {
        let gate = Arc::new(Notify::new());
        let groups = Arc::new(Groups::new(Recorder {
            sizes: Mutex::default(),
            gate: gate.clone(),
        }));
        let mut answers = Vec::new();
        for user in 0..5i64 {
            let groups = groups.clone();
            answers.push(tokio::spawn(
                async move { groups.ask(7, user, now()).await },
            ));
            // Let the drain task take the first request alone, and the others queue.
            tokio::task::yield_now().await;
            tokio::task::yield_now().await;
        }
        gate.notify_one();
        for (user, answer) in answers.into_iter().enumerate() {
            let got = answer.await.expect("task ran");
            assert_eq!(got, Some(user as i64 * 10));
        }
        let sizes = groups.runner.sizes.lock().expect("not poisoned").clone();
        assert_eq!(
            sizes,
            vec![1, 4],
            "the first runs alone, the rest as one group"
        );
        // The lane is forgotten once drained, and a later request starts a new drain.
        assert!(groups.lanes.lock().expect("not poisoned").is_empty());
        assert_eq!(groups.ask(7, 9, now()).await, Some(90));
    }

    /// Panics on user 0, answers the others.
    struct Fragile;

    impl Run for Fragile {
        type Answer = i64;
        async fn run(&self, _coupon_id: i64, group: Vec<Request<i64>>) {
            for r in group {
                assert!(r.user_id != 0, "the fragile runner fails on user 0");
                let _ = r.answer.send(r.user_id);
            }
        }
    }

    #[tokio::test]
    async fn a_panicking_run_does_not_wedge_its_coupon() {
        let groups = Groups::new(Fragile);
        assert_eq!(
            groups.ask(3, 0, now()).await,
            None,
            "the waiter of a failed run sees no answer"
        );
        // Bounded: a wedged lane would never answer.
        let answer =
            tokio::time::timeout(std::time::Duration::from_secs(5), groups.ask(3, 5, now()));
        assert_eq!(answer.await.expect("answered in time"), Some(5));
    }
}
