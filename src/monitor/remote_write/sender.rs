//! The background task: waits for a full batch or the flush deadline, encodes the batch and
//! POSTs it, retrying 5xx, 429 and transport errors with backoff until it is delivered or
//! rejected. One request at a time, so samples of a series arrive in the order pushed.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use reqwest::header::{self, HeaderMap, HeaderValue};
use tokio::sync::watch;
use tokio::time::sleep_until;

use super::proto::{build_request, encode_body};
use super::queue::QueuedSample;
use super::retry::{Backoff, Outcome, classify, parse_retry_after};
use super::stats::Stats;
use super::{RemoteWriteAuth, RemoteWriteConfig, RemoteWriteError, Shared};

/// The spec's protocol version header, sent with every request.
const VERSION_HEADER: &str = "x-prometheus-remote-write-version";

/// How much of a rejection's response body goes into the log.
const LOGGED_BODY_BYTES: usize = 512;

/// An HTTP client bound to one receiver, with the spec's headers and the credentials.
#[derive(Debug)]
pub(super) struct Sender {
    client: reqwest::Client,
    url: reqwest::Url,
    /// The URL without query string, for logs (the config forbids credentials in it).
    endpoint: String,
    config: RemoteWriteConfig,
}

/// What one attempt to send a batch ended with.
enum Attempt {
    Delivered,
    Rejected,
    Retry(Option<std::time::Duration>),
}

impl Sender {
    /// Builds the client: timeouts, the User-Agent and every fixed header, credentials
    /// included (marked sensitive, so they never show in `Debug` output).
    pub(super) fn new(config: RemoteWriteConfig) -> Result<Sender, RemoteWriteError> {
        let url = parse_url(&config.url)?;
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("snappy"));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf"),
        );
        headers.insert(VERSION_HEADER, HeaderValue::from_static("0.1.0"));
        if let Some(value) = authorization(&config.auth, &url)? {
            headers.insert(header::AUTHORIZATION, value);
        }
        let client = reqwest::Client::builder()
            .user_agent(concat!("fastpick/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(std::time::Duration::from_secs(10)))
            .build()
            .map_err(RemoteWriteError::Client)?;
        let endpoint = format!("{}{}", url.origin().ascii_serialization(), url.path());
        Ok(Sender {
            client,
            url,
            endpoint,
            config,
        })
    }

    /// Sends one batch, retrying until the receiver accepts or rejects it.
    pub(super) async fn deliver(&self, batch: Vec<QueuedSample>, stats: &Stats) {
        let built = build_request(batch);
        if built.invalid > 0 {
            tracing::warn!(
                endpoint = %self.endpoint,
                samples = built.invalid,
                "remote write dropped samples of series with invalid metric or label names"
            );
            Stats::add(&stats.samples_failed, built.invalid);
        }
        let count: usize = built
            .request
            .timeseries
            .iter()
            .map(|s| s.samples.len())
            .sum();
        if count == 0 {
            return;
        }
        let body = match encode_body(&built.request) {
            Ok(body) => body,
            Err(error) => {
                tracing::warn!(endpoint = %self.endpoint, %error, samples = count, "failed to compress remote write batch");
                Stats::add(&stats.samples_failed, count);
                return;
            }
        };
        let mut backoff = Backoff::new(self.config.min_backoff, self.config.max_backoff);
        loop {
            match self.attempt(body.clone(), count, stats).await {
                Attempt::Delivered => {
                    Stats::add(&stats.samples_sent, count);
                    Stats::add(&stats.batches_sent, 1);
                    return;
                }
                Attempt::Rejected => {
                    Stats::add(&stats.samples_failed, count);
                    return;
                }
                Attempt::Retry(hint) => {
                    Stats::add(&stats.samples_retried, count);
                    let delay = backoff.next_delay_with_hint(rand::random(), hint);
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// One POST of the encoded batch, classified.
    async fn attempt(&self, body: Bytes, count: usize, stats: &Stats) -> Attempt {
        let started = Instant::now();
        let result = self.client.post(self.url.clone()).body(body).send().await;
        stats.record_send_duration(started.elapsed());
        let response = match result {
            Ok(response) => response,
            Err(error) if error.is_builder() => {
                tracing::warn!(endpoint = %self.endpoint, error = %error.without_url(), samples = count, "failed to build remote write request, dropping batch");
                return Attempt::Rejected;
            }
            Err(error) => {
                tracing::warn!(endpoint = %self.endpoint, error = %error.without_url(), samples = count, "remote write request failed, retrying");
                return Attempt::Retry(None);
            }
        };
        let status = response.status();
        match classify(status.as_u16()) {
            Outcome::Delivered => {
                // The spec reserves the body; reading it lets the connection be reused.
                let _ = response.bytes().await;
                Attempt::Delivered
            }
            Outcome::Retry => {
                let hint = response
                    .headers()
                    .get(header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, SystemTime::now()));
                let message = body_excerpt(response).await;
                tracing::warn!(endpoint = %self.endpoint, status = status.as_u16(), %message, samples = count, "remote write receiver failed, retrying");
                Attempt::Retry(hint)
            }
            Outcome::Reject => {
                let message = body_excerpt(response).await;
                tracing::warn!(endpoint = %self.endpoint, status = status.as_u16(), %message, samples = count, "remote write receiver rejected batch, dropping it");
                Attempt::Rejected
            }
        }
    }
}

/// The start of a response body, as text, for the log (the spec: log it, never interpret).
async fn body_excerpt(response: reqwest::Response) -> String {
    let bytes = response.bytes().await.unwrap_or_default();
    let end = bytes.len().min(LOGGED_BODY_BYTES);
    String::from_utf8_lossy(&bytes[..end]).trim().to_owned()
}

/// Parses the receiver URL: plain http, and no credentials inside it (they belong in
/// `auth`, where they are kept secret).
///
/// https is refused because reqwest is built without a TLS feature: every connection would
/// fail as a transport error, which the sender retries forever. Accept "https" here once a
/// TLS feature (e.g. `rustls-tls-native-roots`) is enabled.
fn parse_url(raw: &str) -> Result<reqwest::Url, RemoteWriteError> {
    let url = reqwest::Url::parse(raw).map_err(|e| RemoteWriteError::InvalidUrl(e.to_string()))?;
    if url.scheme() != "http" {
        return Err(RemoteWriteError::InvalidUrl(format!(
            "unsupported scheme {:?} (only http)",
            url.scheme()
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(RemoteWriteError::CredentialsInUrl);
    }
    Ok(url)
}

/// The `Authorization` header for the configured credentials, marked sensitive.
fn authorization(
    auth: &RemoteWriteAuth,
    url: &reqwest::Url,
) -> Result<Option<HeaderValue>, RemoteWriteError> {
    use secrecy::ExposeSecret;
    // reqwest encodes the credentials (base64 for basic auth) on a throwaway request.
    let probe = reqwest::Client::new().post(url.clone());
    let probe = match auth {
        RemoteWriteAuth::None => return Ok(None),
        RemoteWriteAuth::Basic { username, password } => {
            probe.basic_auth(username, Some(password.expose_secret()))
        }
        RemoteWriteAuth::Bearer(token) => probe.bearer_auth(token.expose_secret()),
    };
    let request = probe.build().map_err(|_| RemoteWriteError::InvalidAuth)?;
    let mut value = request
        .headers()
        .get(header::AUTHORIZATION)
        .cloned()
        .ok_or(RemoteWriteError::InvalidAuth)?;
    value.set_sensitive(true);
    Ok(Some(value))
}

/// Why the task stopped waiting.
#[derive(Debug, PartialEq, Eq)]
enum Wake {
    /// At least one full batch is queued.
    FullBatch,
    /// The flush deadline passed: send whatever is queued.
    Deadline,
    /// Shutdown: send everything queued, then stop.
    Stop,
}

/// The sending loop; returns once shutdown is signalled (or every writer handle is gone)
/// and the queue has been drained.
pub(super) async fn run(shared: Arc<Shared>, sender: Sender, mut stop: watch::Receiver<bool>) {
    let batch_size = sender.config.batch_size;
    loop {
        let deadline = tokio::time::Instant::now() + sender.config.flush_deadline;
        let wake = wait(&shared, batch_size, deadline, &mut stop).await;
        let min_batch = if wake == Wake::FullBatch {
            batch_size
        } else {
            1
        };
        while shared.queue.len() >= min_batch {
            let batch = shared.queue.take(batch_size, &shared.stats);
            Stats::set(&shared.in_flight, batch.len());
            sender.deliver(batch, &shared.stats).await;
            Stats::set(&shared.in_flight, 0);
        }
        if wake == Wake::Stop {
            return;
        }
    }
}

/// Waits for a full batch, the deadline or shutdown, whichever comes first.
async fn wait(
    shared: &Shared,
    batch_size: usize,
    deadline: tokio::time::Instant,
    stop: &mut watch::Receiver<bool>,
) -> Wake {
    loop {
        if *stop.borrow_and_update() {
            return Wake::Stop;
        }
        if shared.queue.len() >= batch_size {
            return Wake::FullBatch;
        }
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() {
                    return Wake::Stop;
                }
            }
            () = shared.queue.batch_ready.notified() => {}
            () = sleep_until(deadline) => return Wake::Deadline,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    #[test]
    fn url_must_be_plain_http_without_credentials() {
        assert!(parse_url("http://127.0.0.1:9090/api/v1/write").is_ok());
        assert!(parse_url("http://example.com/push?tenant=a").is_ok());
        assert!(matches!(
            parse_url("https://x/"),
            Err(RemoteWriteError::InvalidUrl(_))
        ));
        assert!(matches!(
            parse_url("ftp://x/"),
            Err(RemoteWriteError::InvalidUrl(_))
        ));
        assert!(matches!(
            parse_url("not a url"),
            Err(RemoteWriteError::InvalidUrl(_))
        ));
        assert!(matches!(
            parse_url("http://user:pw@example.com/"),
            Err(RemoteWriteError::CredentialsInUrl)
        ));
    }

    #[test]
    fn credentials_become_a_sensitive_authorization_header() {
        let url = parse_url("http://127.0.0.1/").unwrap();
        let basic = RemoteWriteAuth::Basic {
            username: "fp".into(),
            password: SecretString::from("s3cret"),
        };
        let value = authorization(&basic, &url).unwrap().unwrap();
        // base64("fp:s3cret")
        assert_eq!(value.to_str().unwrap(), "Basic ZnA6czNjcmV0");
        assert!(value.is_sensitive());
        assert!(
            !format!("{value:?}").contains("ZnA6"),
            "debug output hides it"
        );

        let bearer = RemoteWriteAuth::Bearer(SecretString::from("tok"));
        let value = authorization(&bearer, &url).unwrap().unwrap();
        assert_eq!(value.to_str().unwrap(), "Bearer tok");

        let broken = RemoteWriteAuth::Bearer(SecretString::from("bad\ntoken"));
        assert!(matches!(
            authorization(&broken, &url),
            Err(RemoteWriteError::InvalidAuth)
        ));
        assert!(
            authorization(&RemoteWriteAuth::None, &url)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn sender_debug_output_never_shows_the_secret() {
        let mut config = RemoteWriteConfig::new("http://127.0.0.1:1/write");
        config.auth = RemoteWriteAuth::Bearer(SecretString::from("hunter2"));
        let sender = Sender::new(config).unwrap();
        assert!(!format!("{sender:?}").contains("hunter2"));
        assert_eq!(sender.endpoint, "http://127.0.0.1:1/write");
    }
}
