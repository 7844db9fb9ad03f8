//! Prometheus Remote Write 1.0 sender: ships scraped samples to a receiver (Prometheus,
//! Mimir, VictoriaMetrics, ...) as snappy-compressed protobuf over HTTP POST.
//!
//! The scraper calls [`RemoteWriter::push`], which only appends to a bounded queue (the
//! oldest samples are dropped when it is full, so scraping never waits). A background task
//! sends a batch when `batch_size` samples are queued or `flush_deadline` has passed, one
//! request at a time so each series' samples arrive in order. 5xx, 429 and transport errors
//! are retried with exponential backoff and jitter; any other 4xx drops the batch, as the
//! spec requires. A batch is retried until it is delivered, rejected, or shutdown runs out
//! of time; meanwhile new samples keep queueing and the oldest are dropped. Staleness
//! markers are sent with their exact NaN bits.
//!
//! Spec: <https://prometheus.io/docs/specs/prw/remote_write_spec/>.

mod proto;
mod queue;
mod retry;
mod sender;
mod stats;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use secrecy::SecretString;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use proto::{BodyError, Label, Sample, TimeSeries, WriteRequest, decode_body, encode_body};
pub use stats::StatsSnapshot;

use crate::monitor::series::Labels;
use queue::Queue;
use stats::Stats;

/// Credentials sent in the `Authorization` header; never logged.
#[derive(Debug, Clone, Default)]
pub enum RemoteWriteAuth {
    /// No `Authorization` header.
    #[default]
    None,
    /// HTTP basic authentication.
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: SecretString,
    },
    /// `Authorization: Bearer <token>`.
    Bearer(SecretString),
}

/// Where and how to send samples.
#[derive(Debug, Clone)]
pub struct RemoteWriteConfig {
    /// The receiver's full URL, e.g. `http://127.0.0.1:9090/api/v1/write` (no credentials).
    pub url: String,
    /// Credentials for the receiver.
    pub auth: RemoteWriteAuth,
    /// Most samples in one request; a request goes out as soon as this many are queued.
    pub batch_size: usize,
    /// Longest a queued sample waits for its batch to fill before it is sent anyway.
    pub flush_deadline: Duration,
    /// Most samples held in memory; beyond it the oldest are dropped.
    pub queue_capacity: usize,
    /// Timeout of one HTTP request (connecting included).
    pub timeout: Duration,
    /// First retry delay; it doubles per retry.
    pub min_backoff: Duration,
    /// Largest retry delay, also the cap on a receiver's `Retry-After`.
    pub max_backoff: Duration,
    /// How long [`RemoteWriter::shutdown`] keeps sending what is queued before giving up.
    pub shutdown_timeout: Duration,
}

impl RemoteWriteConfig {
    /// A configuration for `url` with the defaults: batches of 2,000 samples, a 5 s flush
    /// deadline, 100,000 queued samples, 30 s request timeout, backoff from 100 ms to 30 s,
    /// and 10 s to flush on shutdown.
    pub fn new(url: impl Into<String>) -> RemoteWriteConfig {
        RemoteWriteConfig {
            url: url.into(),
            auth: RemoteWriteAuth::None,
            batch_size: 2_000,
            flush_deadline: Duration::from_secs(5),
            queue_capacity: 100_000,
            timeout: Duration::from_secs(30),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(10),
        }
    }

    /// Checks the sizes and durations, naming the first bad setting.
    fn validate(&self) -> Result<(), RemoteWriteError> {
        let invalid = |setting: &'static str, reason: &'static str| {
            Err(RemoteWriteError::InvalidSetting { setting, reason })
        };
        if self.batch_size == 0 {
            return invalid("batch_size", "must be at least 1");
        }
        if self.queue_capacity < self.batch_size {
            return invalid("queue_capacity", "must be at least batch_size");
        }
        if self.flush_deadline.is_zero() || self.timeout.is_zero() {
            return invalid("flush_deadline/timeout", "must be positive");
        }
        if self.min_backoff.is_zero() || self.min_backoff > self.max_backoff {
            return invalid("min_backoff", "must be positive and at most max_backoff");
        }
        Ok(())
    }
}

/// Why a remote writer could not be started.
#[derive(Debug, thiserror::Error)]
pub enum RemoteWriteError {
    /// The URL does not parse or is not plain http.
    #[error("invalid remote write url: {0}")]
    InvalidUrl(String),
    /// The URL carries a user name or password.
    #[error("remote write url must not contain credentials; use basic auth settings instead")]
    CredentialsInUrl,
    /// The credentials cannot be sent in a header (e.g. a control character).
    #[error("remote write credentials are not a valid header value")]
    InvalidAuth,
    /// A size or duration setting is out of range.
    #[error("invalid remote write setting {setting}: {reason}")]
    InvalidSetting {
        /// The offending setting.
        setting: &'static str,
        /// What it must be.
        reason: &'static str,
    },
    /// The HTTP client could not be built.
    #[error("failed to build remote write http client")]
    Client(#[source] reqwest::Error),
    /// `spawn` was called outside a tokio runtime.
    #[error("remote writer must be started inside a tokio runtime")]
    NoRuntime,
}

/// State shared by the writer handles and the sending task.
#[derive(Debug)]
struct Shared {
    queue: Queue,
    stats: Stats,
    /// Samples of the batch being sent (lost if shutdown has to abort the task).
    in_flight: AtomicU64,
    /// Set by shutdown; later pushes are dropped.
    closed: AtomicBool,
}

/// A handle to a running remote write sender; clones share the same queue and task.
#[derive(Debug, Clone)]
pub struct RemoteWriter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    /// Dropping it (with the last handle) also stops the task, after a final flush.
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
    shutdown_timeout: Duration,
}

impl RemoteWriter {
    /// Validates the configuration and starts the sending task on the current tokio runtime.
    pub fn spawn(config: RemoteWriteConfig) -> Result<RemoteWriter, RemoteWriteError> {
        config.validate()?;
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| RemoteWriteError::NoRuntime)?;
        let shutdown_timeout = config.shutdown_timeout;
        let shared = Arc::new(Shared {
            queue: Queue::new(config.queue_capacity, config.batch_size),
            stats: Stats::default(),
            in_flight: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        });
        let sender = sender::Sender::new(config)?;
        let (stop, stop_rx) = watch::channel(false);
        let task = runtime.spawn(sender::run(Arc::clone(&shared), sender, stop_rx));
        Ok(RemoteWriter {
            inner: Arc::new(Inner {
                shared,
                stop,
                task: Mutex::new(Some(task)),
                shutdown_timeout,
            }),
        })
    }

    /// Queues samples `(labels, timestamp ms, value)` for sending, in the order given; never
    /// waits. Push each series' samples in time order.
    pub fn push(&self, samples: Vec<(Labels, i64, f64)>) {
        let shared = &self.inner.shared;
        if shared.closed.load(Ordering::Acquire) {
            Stats::add(&shared.stats.samples_dropped, samples.len());
            return;
        }
        if !samples.is_empty() {
            shared.queue.push(samples, &shared.stats);
        }
    }

    /// The counters now.
    pub fn stats(&self) -> StatsSnapshot {
        self.inner.shared.stats.snapshot()
    }

    /// Stops accepting samples, sends what is queued (retrying as usual) for at most
    /// `shutdown_timeout`, then stops the task; anything left unsent counts as failed.
    /// Later calls return at once.
    pub async fn shutdown(&self) {
        let shared = &self.inner.shared;
        shared.closed.store(true, Ordering::Release);
        self.inner.stop.send_replace(true);
        let task = self
            .inner
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(mut task) = task else {
            return;
        };
        if tokio::time::timeout(self.inner.shutdown_timeout, &mut task)
            .await
            .is_err()
        {
            task.abort();
            // Wait for the abort to land so the counts below are final.
            let _ = task.await;
        }
        let in_flight = shared.in_flight.swap(0, Ordering::AcqRel);
        let queued = shared.queue.take(usize::MAX, &shared.stats).len();
        let lost = usize::try_from(in_flight).unwrap_or(usize::MAX) + queued;
        if lost > 0 {
            tracing::warn!(
                samples = lost,
                "remote write shut down before sending every sample"
            );
            Stats::add(&shared.stats.samples_failed, lost);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_validation_names_the_bad_setting() {
        let base = RemoteWriteConfig::new("http://127.0.0.1:9/w");
        assert!(base.validate().is_ok());
        type Breaks = fn(&mut RemoteWriteConfig);
        let cases: [(Breaks, &str); 4] = [
            (|c| c.batch_size = 0, "batch_size"),
            (|c| c.queue_capacity = 10, "queue_capacity"),
            (|c| c.timeout = Duration::ZERO, "flush_deadline/timeout"),
            (|c| c.min_backoff = Duration::from_secs(60), "min_backoff"),
        ];
        for (breaks, expected) in cases {
            let mut config = base.clone();
            breaks(&mut config);
            match config.validate() {
                Err(RemoteWriteError::InvalidSetting { setting, .. }) => {
                    assert_eq!(setting, expected)
                }
                other => panic!("{expected}: expected InvalidSetting, got {other:?}"),
            }
        }
    }

    #[test]
    fn spawn_outside_a_runtime_is_an_error_not_a_panic() {
        let result = RemoteWriter::spawn(RemoteWriteConfig::new("http://127.0.0.1:9/w"));
        assert!(matches!(result, Err(RemoteWriteError::NoRuntime)));
    }

    #[tokio::test]
    async fn push_after_shutdown_counts_the_samples_as_dropped() {
        let writer = RemoteWriter::spawn(RemoteWriteConfig::new("http://127.0.0.1:9/w")).unwrap();
        writer.shutdown().await;
        let labels = Labels::from_pairs(&[("__name__", "up")]);
        writer.push(vec![(labels.clone(), 1, 1.0), (labels, 2, 1.0)]);
        assert_eq!(writer.stats().samples_dropped, 2);
        assert_eq!(writer.stats().queue_len, 0);
    }
}
