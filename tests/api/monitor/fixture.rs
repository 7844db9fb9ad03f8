//! An exposition server of the tests' own whose values are functions of time since it
//! started, so that two scrapers sampling it at different instants still agree on rates:
//! counters grow linearly and carry the timestamp they were computed for (so scrape jitter
//! cannot bend a rate), one counter resets every 20 s, gauges are constant (NaN and +Inf
//! among them), a histogram's buckets grow at fixed ratios, and one series disappears after
//! 15 s. `/metrics` answers Prometheus text 0.0.4, `/om` OpenMetrics with every rate 1.5
//! times as high (so no two series tie in `topk`).

use std::fmt::Write;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

/// Seconds after which `fixture_ephemeral` is no longer exposed.
pub const EPHEMERAL_FOR: f64 = 15.0;
/// Period of `fixture_resets_total`'s resets, in seconds.
pub const RESET_EVERY: f64 = 20.0;

/// A running fixture: its address and the wall-clock ms it counts from.
pub struct Fixture {
    pub addr: String,
    pub t0_ms: i64,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct Start {
    t0_ms: i64,
}

/// Starts the fixture on a free loopback port.
pub async fn start() -> Fixture {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind fixture");
    let addr = listener.local_addr().expect("addr").to_string();
    let t0_ms = fastpick::monitor::scrape::now_ms();
    let state = Start { t0_ms };
    let app = Router::new()
        .route("/metrics", get(text))
        .route("/om", get(openmetrics))
        .with_state(state);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Fixture { addr, t0_ms, task }
}

async fn text(State(start): State<Start>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(start.t0_ms, fastpick::monitor::scrape::now_ms(), false),
    )
}

async fn openmetrics(State(start): State<Start>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        render(start.t0_ms, fastpick::monitor::scrape::now_ms(), true),
    )
}

/// The exposition at wall-clock `now_ms`.
fn render(t0_ms: i64, now_ms: i64, openmetrics: bool) -> String {
    let t = (now_ms - t0_ms) as f64 / 1000.0;
    let rate = if openmetrics { 1.5 } else { 1.0 };
    // Milliseconds in 0.0.4, seconds in OpenMetrics.
    let stamp = if openmetrics {
        format!("{}.{:03}", now_ms / 1000, now_ms % 1000)
    } else {
        now_ms.to_string()
    };
    let mut out = String::new();
    // Counters: OpenMetrics names the family without `_total`.
    let family = if openmetrics {
        "fixture_requests"
    } else {
        "fixture_requests_total"
    };
    let _ = writeln!(out, "# HELP {family} Requests served.");
    let _ = writeln!(out, "# TYPE {family} counter");
    for (method, uri, per_second) in [
        ("GET", "/api/v1/coupons/{id}", 10.0),
        ("POST", "/api/v1/coupon-issues", 3.0),
    ] {
        let _ = writeln!(
            out,
            "fixture_requests_total{{method=\"{method}\",uri=\"{uri}\"}} {} {stamp}",
            rate * per_second * t
        );
    }
    let family = if openmetrics {
        "fixture_resets"
    } else {
        "fixture_resets_total"
    };
    let _ = writeln!(out, "# TYPE {family} counter");
    let _ = writeln!(out, "fixture_resets_total {}", 5.0 * (t % RESET_EVERY));
    let _ = writeln!(out, "# HELP fixture_temperature Room temperature.");
    let _ = writeln!(out, "# TYPE fixture_temperature gauge");
    let _ = writeln!(out, "fixture_temperature{{room=\"a\"}} 21.5");
    let _ = writeln!(out, "fixture_temperature{{room=\"b\"}} -3.25");
    let _ = writeln!(out, "# TYPE fixture_odd gauge");
    let _ = writeln!(out, "fixture_odd{{kind=\"nan\"}} NaN");
    let _ = writeln!(out, "fixture_odd{{kind=\"inf\"}} +Inf");
    let _ = writeln!(out, "# TYPE fixture_build_info gauge");
    let _ = writeln!(out, "fixture_build_info{{version=\"1.2.3\"}} 1");
    if t < EPHEMERAL_FOR {
        let _ = writeln!(out, "# TYPE fixture_ephemeral gauge");
        let _ = writeln!(out, "fixture_ephemeral{{id=\"1\"}} 1");
    }
    let _ = writeln!(out, "# HELP fixture_latency_seconds Request latency.");
    if openmetrics {
        let _ = writeln!(out, "# UNIT fixture_latency_seconds seconds");
    }
    let _ = writeln!(out, "# TYPE fixture_latency_seconds histogram");
    for (uri, scale) in [("/a", 1.0), ("/b", 2.0)] {
        let mut cumulative = 0.0;
        for (le, per_second) in [("0.1", 2.0), ("0.5", 3.0), ("1.0", 2.0), ("+Inf", 1.0)] {
            cumulative += per_second * scale;
            let _ = writeln!(
                out,
                "fixture_latency_seconds_bucket{{uri=\"{uri}\",le=\"{le}\"}} {} {stamp}",
                rate * cumulative * t
            );
        }
        let _ = writeln!(
            out,
            "fixture_latency_seconds_sum{{uri=\"{uri}\"}} {} {stamp}",
            rate * 3.0 * scale * t
        );
        let _ = writeln!(
            out,
            "fixture_latency_seconds_count{{uri=\"{uri}\"}} {} {stamp}",
            rate * cumulative * t
        );
    }
    if openmetrics {
        out.push_str("# EOF\n");
    }
    out
}
