//! Remote write: the sender against a scripted fake receiver of the test's own (axum on port
//! 0: which statuses are retried, which drop a batch, batching, flushing, shutdown), against
//! a real Prometheus (`--web.enable-remote-write-receiver`: what it stores comes back from its
//! query API exactly as written), and end to end, a monitor scraping the fixture and writing
//! into that Prometheus.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use fastpick::local::Supervised;
use fastpick::monitor::remote_write::{
    RemoteWriteAuth, RemoteWriteConfig, RemoteWriter, StatsSnapshot, WriteRequest, decode_body,
};
use fastpick::monitor::scrape::now_ms;
use fastpick::monitor::series::{Labels, stale_nan};
use secrecy::SecretString;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use super::{TestMonitor, enc, fixture, get_json, job, monitor_settings};

// ---------------------------------------------------------------------------------------
// The fake receiver

/// What the fake receiver answers, in order; after the script it answers 204.
#[derive(Clone, Copy)]
struct Reply {
    status: u16,
    retry_after: Option<&'static str>,
}

const fn reply(status: u16) -> Reply {
    Reply {
        status,
        retry_after: None,
    }
}

/// One request as the receiver saw it.
struct Received {
    headers: HeaderMap,
    body: Bytes,
    /// The decoded body; `None` when it was not snappy-compressed protobuf.
    request: Option<WriteRequest>,
}

impl Received {
    fn request(&self) -> &WriteRequest {
        self.request
            .as_ref()
            .expect("body is snappy-compressed protobuf")
    }
}

#[derive(Clone, Default)]
struct ReceiverState {
    script: Arc<Mutex<VecDeque<Reply>>>,
    received: Arc<Mutex<Vec<Received>>>,
    arrived: Arc<Notify>,
}

/// A running fake receiver; its server task ends with the test's runtime.
struct FakeReceiver {
    url: String,
    state: ReceiverState,
}

impl FakeReceiver {
    async fn start(script: &[Reply]) -> FakeReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        FakeReceiver::serve(listener, script)
    }

    fn serve(listener: TcpListener, script: &[Reply]) -> FakeReceiver {
        let addr = listener.local_addr().expect("addr");
        let state = ReceiverState::default();
        state.script.lock().unwrap().extend(script.iter().copied());
        let app = Router::new()
            .route("/api/v1/write", post(receive))
            .with_state(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeReceiver {
            url: write_url(addr),
            state,
        }
    }

    /// Waits (bounded) until `n` requests have arrived.
    async fn wait_for_requests(&self, n: usize) {
        let waited = tokio::time::timeout(Duration::from_secs(10), async {
            while self.state.received.lock().unwrap().len() < n {
                self.state.arrived.notified().await;
            }
        })
        .await;
        let got = self.state.received.lock().unwrap().len();
        assert!(waited.is_ok(), "expected {n} requests, got {got}");
    }

    fn requests(&self) -> std::sync::MutexGuard<'_, Vec<Received>> {
        self.state.received.lock().unwrap()
    }
}

fn write_url(addr: SocketAddr) -> String {
    format!("http://{addr}/api/v1/write")
}

// POST /api/v1/write
async fn receive(State(state): State<ReceiverState>, headers: HeaderMap, body: Bytes) -> Response {
    let request = decode_body(&body).ok();
    let next = state
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(reply(204));
    state.received.lock().unwrap().push(Received {
        headers,
        body,
        request,
    });
    state.arrived.notify_one();
    let status = StatusCode::from_u16(next.status).expect("scripted status");
    match next.retry_after {
        Some(value) => (status, [("retry-after", value)], "slow down").into_response(),
        None => (status, "scripted reply").into_response(),
    }
}

/// A config for tests: fast backoff, small batches, a long flush deadline (tests that rely
/// on the deadline shorten it).
fn test_config(url: &str, batch_size: usize) -> RemoteWriteConfig {
    let mut config = RemoteWriteConfig::new(url);
    config.batch_size = batch_size;
    config.flush_deadline = Duration::from_secs(3_600);
    config.min_backoff = Duration::from_millis(5);
    config.max_backoff = Duration::from_millis(50);
    config.timeout = Duration::from_secs(5);
    config
}

/// Samples of one series at `times`, each valued half its timestamp.
fn samples(name: &str, times: std::ops::Range<i64>) -> Vec<(Labels, i64, f64)> {
    let labels = Labels::from_pairs(&[("__name__", name), ("job", "fake")]);
    times.map(|t| (labels.clone(), t, t as f64 / 2.0)).collect()
}

/// The `(timestamp, value)` pairs of every series in a request, in order.
fn sent_points(request: &WriteRequest) -> Vec<(i64, f64)> {
    request
        .timeseries
        .iter()
        .flat_map(|s| s.samples.iter().map(|p| (p.timestamp, p.value)))
        .collect()
}

/// Polls the writer's counters (they change just after the receiver answers; there is no
/// notification), every 5 ms for at most 5 s.
async fn eventually(writer: &RemoteWriter, what: &str, check: impl Fn(&StatsSnapshot) -> bool) {
    let polled = tokio::time::timeout(Duration::from_secs(5), async {
        while !check(&writer.stats()) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(polled.is_ok(), "{what}; stats: {:?}", writer.stats());
}

// ---------------------------------------------------------------------------------------
// Against the fake receiver

#[tokio::test]
async fn remote_write_retries_5xx_then_delivers_the_batch_once_with_the_spec_headers() {
    // Arrange
    let receiver = FakeReceiver::start(&[reply(500), reply(500)]).await;
    let mut config = test_config(&receiver.url, 3);
    config.auth = RemoteWriteAuth::Bearer(SecretString::from("t0ken"));
    let writer = RemoteWriter::spawn(config).expect("writer starts");

    // Act
    writer.push(samples("fp_up", 1..4));
    receiver.wait_for_requests(3).await;
    writer.shutdown().await;

    // Assert
    let stats = writer.stats();
    assert_eq!(
        (stats.samples_sent, stats.batches_sent),
        (3, 1),
        "{stats:?}"
    );
    assert_eq!(stats.samples_retried, 6, "3 samples retried twice");
    assert_eq!(stats.samples_failed, 0);
    let requests = receiver.requests();
    assert_eq!(requests.len(), 3, "delivered once, after two retries");
    assert!(
        requests.iter().all(|r| r.body == requests[0].body),
        "the same batch each time"
    );
    assert_eq!(
        sent_points(requests[0].request()),
        [(1, 0.5), (2, 1.0), (3, 1.5)]
    );
    let headers = &requests[0].headers;
    assert_eq!(headers["content-encoding"], "snappy");
    assert_eq!(headers["content-type"], "application/x-protobuf");
    assert_eq!(headers["x-prometheus-remote-write-version"], "0.1.0");
    assert_eq!(headers["authorization"], "Bearer t0ken");
    let agent = headers["user-agent"].to_str().expect("ascii user agent");
    assert!(agent.starts_with("fastpick/"), "user agent {agent}");
}

#[tokio::test]
async fn remote_write_retries_429_after_the_receivers_retry_after() {
    // Arrange: a computed backoff of 10 s or more would outlast the 5 s poll below, so only
    // honouring `Retry-After: 0` delivers in time.
    let receiver = FakeReceiver::start(&[Reply {
        status: 429,
        retry_after: Some("0"),
    }])
    .await;
    let mut config = test_config(&receiver.url, 2);
    config.min_backoff = Duration::from_secs(20);
    config.max_backoff = Duration::from_secs(30);
    let writer = RemoteWriter::spawn(config).expect("writer starts");

    // Act
    writer.push(samples("fp_up", 1..3));

    // Assert
    eventually(&writer, "429 retried and then delivered", |s| {
        s.samples_sent == 2
    })
    .await;
    let stats = writer.stats();
    assert_eq!((stats.samples_retried, stats.samples_failed), (2, 0));
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].body, requests[1].body, "the same batch again");
}

#[tokio::test]
async fn remote_write_drops_a_batch_rejected_with_400_without_retrying() {
    // Arrange
    let receiver = FakeReceiver::start(&[reply(400)]).await;
    let writer = RemoteWriter::spawn(test_config(&receiver.url, 2)).expect("writer starts");

    // Act: the first batch is rejected; the second proves the sender moved on (one request
    // at a time, so a retry of the first would have come before it).
    writer.push(samples("fp_bad", 1..3));
    eventually(&writer, "400 counted as failed", |s| s.samples_failed == 2).await;
    writer.push(samples("fp_good", 10..12));
    receiver.wait_for_requests(2).await;
    writer.shutdown().await;

    // Assert
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(sent_points(requests[0].request()), [(1, 0.5), (2, 1.0)]);
    assert_eq!(sent_points(requests[1].request()), [(10, 5.0), (11, 5.5)]);
    let stats = writer.stats();
    assert_eq!(
        (
            stats.samples_retried,
            stats.samples_failed,
            stats.samples_sent
        ),
        (0, 2, 2)
    );
}

#[tokio::test]
async fn remote_write_retries_connection_errors_until_the_receiver_comes_up() {
    // Arrange: a free port with nothing listening yet.
    let probe = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = probe.local_addr().expect("addr");
    drop(probe);
    let writer = RemoteWriter::spawn(test_config(&write_url(addr), 2)).expect("writer starts");

    // Act
    writer.push(samples("fp_up", 1..3));
    eventually(&writer, "connection refused retried", |s| {
        s.samples_retried >= 4
    })
    .await;
    let receiver = FakeReceiver::serve(TcpListener::bind(addr).await.expect("rebind"), &[]);

    // Assert
    eventually(&writer, "delivered once the port listens", |s| {
        s.samples_sent == 2
    })
    .await;
    assert_eq!(writer.stats().samples_failed, 0);
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(sent_points(requests[0].request()), [(1, 0.5), (2, 1.0)]);
}

#[tokio::test]
async fn remote_write_splits_the_queue_into_batches_in_push_order() {
    // Arrange
    let receiver = FakeReceiver::start(&[]).await;
    let mut config = test_config(&receiver.url, 2);
    config.flush_deadline = Duration::from_millis(20);
    let writer = RemoteWriter::spawn(config).expect("writer starts");

    // Act
    writer.push(samples("fp_up", 0..5));
    receiver.wait_for_requests(3).await;

    // Assert
    let requests = receiver.requests();
    let batches: Vec<Vec<i64>> = requests
        .iter()
        .map(|r| sent_points(r.request()).iter().map(|p| p.0).collect())
        .collect();
    assert_eq!(batches, [vec![0, 1], vec![2, 3], vec![4]]);
}

#[tokio::test]
async fn remote_write_sends_a_partial_batch_when_the_flush_deadline_passes() {
    // Arrange
    let receiver = FakeReceiver::start(&[]).await;
    let mut config = test_config(&receiver.url, 1_000);
    config.flush_deadline = Duration::from_millis(50);
    let writer = RemoteWriter::spawn(config).expect("writer starts");

    // Act
    writer.push(samples("fp_up", 0..4));

    // Assert
    receiver.wait_for_requests(1).await;
    assert_eq!(sent_points(receiver.requests()[0].request()).len(), 4);
}

#[tokio::test]
async fn remote_write_shutdown_flushes_what_is_queued() {
    // Arrange: neither batch size nor deadline would send these samples.
    let receiver = FakeReceiver::start(&[]).await;
    let writer = RemoteWriter::spawn(test_config(&receiver.url, 1_000)).expect("writer starts");
    writer.push(samples("fp_up", 0..3));

    // Act
    writer.shutdown().await;

    // Assert
    assert_eq!(writer.stats().samples_sent, 3);
    assert_eq!(receiver.requests().len(), 1);
}

#[tokio::test]
async fn remote_write_shutdown_gives_up_within_its_bound_and_counts_the_loss() {
    // Arrange: a receiver that always fails.
    let receiver = FakeReceiver::start(&[reply(503); 1_000]).await;
    let mut config = test_config(&receiver.url, 2);
    config.shutdown_timeout = Duration::from_millis(300);
    let writer = RemoteWriter::spawn(config).expect("writer starts");
    writer.push(samples("fp_up", 0..5));
    receiver.wait_for_requests(1).await;

    // Act
    let started = std::time::Instant::now();
    writer.shutdown().await;

    // Assert: generous against the 300 ms bound (a busy machine), far below "forever".
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    let stats = writer.stats();
    assert_eq!((stats.samples_sent, stats.samples_failed), (0, 5));
    assert_eq!(stats.queue_len, 0);
}

// ---------------------------------------------------------------------------------------
// Against a real Prometheus

/// One Prometheus with the remote write receiver for every test here (each writes series of
/// its own names); it stops when the test process exits.
async fn prometheus() -> String {
    static PROMETHEUS: OnceLock<Supervised> = OnceLock::new();
    let server = tokio::task::spawn_blocking(|| {
        PROMETHEUS.get_or_init(|| {
            fastpick::local::start_prometheus(
                "scrape_configs: []\n",
                &["--web.enable-remote-write-receiver"],
            )
            .expect("prometheus starts (apt-get install prometheus)")
        })
    })
    .await
    .expect("prometheus task");
    format!("http://127.0.0.1:{}", server.port)
}

/// Runs an instant query at `time_ms` and returns `data.result`.
async fn query(base: &str, query: &str, time_ms: i64) -> Vec<Value> {
    let url = format!(
        "{base}/api/v1/query?query={}&time={}",
        enc(query),
        seconds(time_ms)
    );
    let (status, body) = get_json(&reqwest::Client::new(), &url).await;
    assert_eq!(
        (status, &body["status"]),
        (200, &Value::from("success")),
        "{url}: {body}"
    );
    body["data"]["result"].as_array().expect("result").clone()
}

/// Milliseconds as the API's seconds.
fn seconds(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

/// A result's labels as a sorted map.
fn metric(result: &Value) -> BTreeMap<String, String> {
    let object = result["metric"].as_object().expect("metric");
    object
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("label value").to_owned()))
        .collect()
}

fn label_map(labels: &Labels) -> BTreeMap<String, String> {
    labels
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// `[seconds, "value"]` as (ms, value).
fn point(pair: &Value) -> (i64, f64) {
    let ms = (pair[0].as_f64().expect("time") * 1000.0).round() as i64;
    let value = pair[1]
        .as_str()
        .expect("value text")
        .parse()
        .expect("value");
    (ms, value)
}

/// A range-vector result's raw samples.
fn points(result: &Value) -> Vec<(i64, f64)> {
    let values = result["values"].as_array().expect("values");
    values.iter().map(point).collect()
}

/// Compares values exactly, NaN matching NaN.
fn same_points(got: &[(i64, f64)], want: &[(i64, f64)]) -> bool {
    got.len() == want.len()
        && got.iter().zip(want).all(|(g, w)| {
            g.0 == w.0 && (g.1.to_bits() == w.1.to_bits() || (g.1.is_nan() && w.1.is_nan()))
        })
}

/// A query's answer keyed by label set: instant values or raw samples, values as bits.
fn by_series(results: &[Value]) -> BTreeMap<BTreeMap<String, String>, Vec<(i64, u64)>> {
    results
        .iter()
        .map(|r| {
            let samples = match r.get("values") {
                Some(_) => points(r),
                None => vec![point(&r["value"])],
            };
            let bits = samples.into_iter().map(|(t, v)| (t, v.to_bits())).collect();
            (metric(r), bits)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_stores_exactly_the_labels_and_values_written() {
    // Arrange
    let base = prometheus().await;
    let mut config = RemoteWriteConfig::new(format!("{base}/api/v1/write"));
    config.batch_size = 4;
    let writer = RemoteWriter::spawn(config).expect("writer starts");
    let now = now_ms();
    let t = |seconds_ago: i64| now - seconds_ago * 1000 + 123;
    let pg = Labels::from_pairs(&[
        ("__name__", "fastpick_rw_test"),
        ("job", "postgres"),
        ("instance", "db:9187"),
        ("quote", "say \"hi\" é"),
    ]);
    let redis = Labels::from_pairs(&[("__name__", "fastpick_rw_test"), ("job", "redis")]);
    let pg_points = [(t(60), 1.5), (t(45), -2.25), (t(30), 1e300), (t(15), 0.1)];
    let redis_points = [
        (t(50), f64::INFINITY),
        (t(40), f64::NEG_INFINITY),
        (t(20), f64::NAN),
    ];

    // Act: interleaved series, several requests (batch size 4), flushed by shutdown.
    let mut pushed = Vec::new();
    for (i, &(ts, v)) in pg_points.iter().enumerate() {
        pushed.push((pg.clone(), ts, v));
        if let Some(&(ts, v)) = redis_points.get(i) {
            pushed.push((redis.clone(), ts, v));
        }
    }
    writer.push(pushed);
    writer.shutdown().await;

    // Assert
    let stats = writer.stats();
    assert_eq!(
        (stats.samples_sent, stats.samples_failed, stats.batches_sent),
        (7, 0, 2),
        "{stats:?}"
    );
    let results = query(&base, "fastpick_rw_test[5m]", now).await;
    assert_eq!(results.len(), 2, "{results:?}");
    for (labels, want) in [(&pg, &pg_points[..]), (&redis, &redis_points[..])] {
        let found = results.iter().find(|r| metric(r) == label_map(labels));
        let found = found.unwrap_or_else(|| panic!("no series {labels}: {results:?}"));
        let got = points(found);
        assert!(
            same_points(&got, want),
            "{labels}: got {got:?}, want {want:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_ends_a_series_at_a_written_staleness_marker() {
    // Arrange
    let base = prometheus().await;
    let writer = RemoteWriter::spawn(RemoteWriteConfig::new(format!("{base}/api/v1/write")))
        .expect("writer starts");
    let now = now_ms();
    let stale = Labels::from_pairs(&[("__name__", "fastpick_rw_stale"), ("job", "gone")]);
    let live = Labels::from_pairs(&[("__name__", "fastpick_rw_stale"), ("job", "alive")]);

    // Act: both series get a value 30 s ago; one is marked stale 10 s ago.
    writer.push(vec![
        (stale.clone(), now - 30_000, 7.0),
        (live.clone(), now - 30_000, 8.0),
        (stale.clone(), now - 10_000, stale_nan()),
    ]);
    writer.shutdown().await;
    assert_eq!(writer.stats().samples_sent, 3, "{:?}", writer.stats());

    // Assert: before the marker both series answer; after it only the live one does (a
    // plain NaN would be returned as a value, not end the series).
    let before = query(&base, "fastpick_rw_stale", now - 20_000).await;
    assert_eq!(before.len(), 2, "{before:?}");
    let after = query(&base, "fastpick_rw_stale", now).await;
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(metric(&after[0]), label_map(&live));
    assert_eq!(after[0]["value"][1], "8");
}

/// The instant of the newest sample Prometheus has of every series of `selector`, the
/// oldest of those; `None` until each of `series` series has one.
async fn newest_common_ms(base: &str, selector: &str, series: usize) -> Option<i64> {
    let results = query(base, &format!("{selector}[1h]"), now_ms()).await;
    if results.len() < series {
        return None;
    }
    results
        .iter()
        .map(|r| points(r).last().map(|p| p.0))
        .min()
        .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_writes_what_it_scrapes_into_prometheus() {
    // Arrange: a monitor scraping the fixture every second, writing to Prometheus.
    let base = prometheus().await;
    let fixture = fixture::start().await;
    let mut settings = monitor_settings(vec![job(
        "rw",
        &fixture.addr,
        "/metrics",
        Duration::from_secs(1),
    )]);
    settings.monitor.remote_write_url = Some(format!("{base}/api/v1/write"));
    let monitor = TestMonitor::start(settings).await;

    // Act: wait (bounded) until Prometheus has both rooms and both request counters.
    let selector = r#"{__name__=~"fixture_temperature|fixture_requests_total",job="rw"}"#;
    let mut common = None;
    for _ in 0..150 {
        common = newest_common_ms(&base, selector, 4).await;
        if common.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let at = common.expect("fixture_temperature reached prometheus within 30 s");

    // Assert: the same series and values, instant and raw, as the monitor answers.
    let room = |r: &str| {
        BTreeMap::from([
            ("__name__".to_owned(), "fixture_temperature".to_owned()),
            ("instance".to_owned(), fixture.addr.clone()),
            ("job".to_owned(), "rw".to_owned()),
            ("room".to_owned(), r.to_owned()),
        ])
    };
    let theirs = by_series(&query(&base, "fixture_temperature", at).await);
    let expected = BTreeMap::from([
        (room("a"), vec![(at, 21.5_f64.to_bits())]),
        (room("b"), vec![(at, (-3.25_f64).to_bits())]),
    ]);
    assert_eq!(theirs, expected, "prometheus at {at}");
    for q in [
        "fixture_temperature",
        "fixture_temperature[1h]",
        "fixture_requests_total[1h]",
    ] {
        let theirs = by_series(&query(&base, q, at).await);
        let path = format!("/api/v1/query?query={}&time={}", enc(q), seconds(at));
        let (status, ours) = monitor.get(&path).await;
        assert_eq!(status, 200, "{q}: {ours}");
        let ours = by_series(ours["data"]["result"].as_array().expect("result"));
        assert!(!theirs.is_empty(), "{q}: prometheus has nothing at {at}");
        assert_eq!(theirs, ours, "{q} at {at}: prometheus vs monitor");
    }
    monitor.stop().await;
}
