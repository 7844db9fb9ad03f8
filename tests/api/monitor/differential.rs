//! The monitor and a real Prometheus scrape the same fixture every second; the same queries
//! at the same instants must give the same answers (labels exactly, values within float
//! tolerance, wider only where the instants of the scrapes matter).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::{TestMonitor, enc, fixture, get_json, job, monitor_settings};

/// Seconds after the fixture's start at which instant queries are evaluated: long enough
/// for 30 s windows to lie wholly inside both scrapers' data, with no counter reset (every
/// 20 s) near a window's edge.
const EVAL_AT: f64 = 45.0;
/// The queries' range window (`[30s]`).
const WINDOW_S: f64 = 30.0;
/// The range queries cover this long before the evaluation instant.
const RANGE_SPAN_S: f64 = 6.0;

/// A query and how far apart the answers may be (relative).
struct Case {
    query: &'static str,
    tolerance: f64,
}

const EXACT: f64 = 1e-9;

/// `rate()` over a counter that resets: each reset in the window loses the increase between
/// the last sample before it and the reset itself, up to one scrape interval's (1 s of the
/// 30 s window), and the window holds two resets (every 20 s; `EVAL_AT` keeps them off its
/// edges). The two servers scrape at phases of their own, so their answers may differ by up
/// to 2/30 = 6.7 % (CI met 6.6 %: 4.67 against 5.00); 10 % leaves room for a scrape half a
/// second late on a busy machine.
const RESET_RATE_TOLERANCE: f64 = 0.1;

/// The queries: the shapes of the Spring/Micrometer HTTP, PostgreSQL (9628) and Redis (763)
/// dashboards' panels, on the fixture's metrics, with `$__rate_interval` as 30s.
const CASES: &[Case] = &[
    Case {
        query: "fixture_temperature",
        tolerance: EXACT,
    },
    Case {
        query: "fixture_odd",
        tolerance: EXACT,
    },
    Case {
        query: "up",
        tolerance: EXACT,
    },
    Case {
        query: "count(up == 1) by (job)",
        tolerance: EXACT,
    },
    Case {
        query: "sum(rate(fixture_requests_total[30s])) by (uri)",
        tolerance: 1e-6,
    },
    Case {
        query: "rate(fixture_requests_total{uri=~\"/api/v1/coupons/.*\"}[30s])",
        tolerance: 1e-6,
    },
    Case {
        query: "irate(fixture_requests_total{method!=\"POST\"}[30s])",
        tolerance: 1e-6,
    },
    Case {
        query: "increase(fixture_requests_total[30s])",
        tolerance: 1e-6,
    },
    Case {
        query: "topk(1, rate(fixture_requests_total[30s]))",
        tolerance: 1e-6,
    },
    Case {
        query: "bottomk(1, rate(fixture_requests_total[30s]))",
        tolerance: 1e-6,
    },
    Case {
        query: "histogram_quantile(0.9, sum(rate(fixture_latency_seconds_bucket[30s])) by (le))",
        tolerance: 1e-6,
    },
    Case {
        query: "histogram_quantile(0.5, rate(fixture_latency_seconds_bucket{job=\"om\"}[30s]))",
        tolerance: 1e-6,
    },
    Case {
        query: "histogram_quantile(0.99, sum by (le, uri) (rate(fixture_latency_seconds_bucket[30s])))",
        tolerance: 1e-6,
    },
    Case {
        query: "sum(rate(fixture_latency_seconds_sum[30s])) / sum(rate(fixture_latency_seconds_count[30s]))",
        tolerance: 1e-6,
    },
    Case {
        query: "resets(fixture_resets_total[30s])",
        tolerance: EXACT,
    },
    Case {
        query: "rate(fixture_resets_total[30s])",
        tolerance: RESET_RATE_TOLERANCE,
    },
    Case {
        query: "changes(fixture_temperature[30s])",
        tolerance: EXACT,
    },
    Case {
        query: "delta(fixture_temperature[30s])",
        tolerance: EXACT,
    },
    Case {
        query: "max_over_time(fixture_temperature[30s])",
        tolerance: EXACT,
    },
    Case {
        query: "min_over_time(fixture_temperature[30s]) + avg_over_time(fixture_temperature[30s])",
        tolerance: EXACT,
    },
    Case {
        query: "stddev_over_time(fixture_temperature[30s])",
        tolerance: EXACT,
    },
    Case {
        query: "quantile_over_time(0.5, fixture_temperature[30s])",
        tolerance: EXACT,
    },
    Case {
        query: "last_over_time(fixture_temperature[30s])",
        tolerance: EXACT,
    },
    Case {
        query: "fixture_temperature > 0",
        tolerance: EXACT,
    },
    Case {
        query: "fixture_temperature > bool 0",
        tolerance: EXACT,
    },
    Case {
        query: "abs(fixture_temperature) * 2 - 1",
        tolerance: EXACT,
    },
    Case {
        query: "round(fixture_temperature) + ceil(fixture_temperature) + floor(fixture_temperature)",
        tolerance: EXACT,
    },
    Case {
        query: "clamp(fixture_temperature, 0, 10) + clamp_min(fixture_temperature, 0) + clamp_max(fixture_temperature, 0)",
        tolerance: EXACT,
    },
    Case {
        query: "label_replace(fixture_temperature, \"where\", \"room-$1\", \"room\", \"(.*)\")",
        tolerance: EXACT,
    },
    Case {
        query: "label_join(fixture_temperature, \"both\", \"/\", \"room\", \"job\")",
        tolerance: EXACT,
    },
    Case {
        query: "sum without (instance) (fixture_temperature)",
        tolerance: EXACT,
    },
    Case {
        query: "avg by (job) (fixture_temperature)",
        tolerance: EXACT,
    },
    Case {
        query: "SUM BY (job) (fixture_temperature)",
        tolerance: EXACT,
    },
    Case {
        query: "min(fixture_temperature) + max(fixture_temperature)",
        tolerance: EXACT,
    },
    Case {
        query: "count(fixture_temperature)",
        tolerance: EXACT,
    },
    Case {
        query: "stddev(fixture_temperature)",
        tolerance: EXACT,
    },
    Case {
        query: "quantile(0.5, fixture_temperature)",
        tolerance: EXACT,
    },
    Case {
        query: "rate(fixture_requests_total[30s]) * on(job, instance) group_left(version) fixture_build_info",
        tolerance: 1e-6,
    },
    Case {
        query: "fixture_requests_total / ignoring(method, uri) group_left fixture_build_info",
        tolerance: 1e-6,
    },
    Case {
        query: "fixture_temperature and on(job) fixture_build_info",
        tolerance: EXACT,
    },
    Case {
        query: "fixture_temperature unless fixture_temperature{room=\"a\"}",
        tolerance: EXACT,
    },
    Case {
        query: "fixture_temperature{room=\"a\"} or fixture_build_info",
        tolerance: EXACT,
    },
    Case {
        query: "fixture_temperature offset 10s",
        tolerance: EXACT,
    },
    Case {
        query: "fixture_ephemeral",
        tolerance: EXACT,
    },
    Case {
        query: "absent(fixture_ephemeral)",
        tolerance: EXACT,
    },
    Case {
        query: "fixture_temperature{room=\"\"}",
        tolerance: EXACT,
    },
    Case {
        query: "fixture_temperature{nothing=\"\"}",
        tolerance: EXACT,
    },
    Case {
        query: "vector(1) + scalar(sum(fixture_temperature))",
        tolerance: EXACT,
    },
    Case {
        query: "time() - time()",
        tolerance: EXACT,
    },
    Case {
        query: "sort_desc(sum(rate(fixture_requests_total[30s])) by (method))",
        tolerance: 1e-6,
    },
    Case {
        query: "100 * (1 - sum(rate(fixture_latency_seconds_bucket{le=\"0.5\"}[30s])) / sum(rate(fixture_latency_seconds_count[30s])))",
        tolerance: 1e-6,
    },
    Case {
        query: "scrape_samples_scraped",
        tolerance: EXACT,
    },
];

/// Range queries compared point by point.
const RANGE_CASES: &[Case] = &[
    Case {
        query: "sum(rate(fixture_requests_total[30s])) by (uri)",
        tolerance: 1e-6,
    },
    Case {
        query: "fixture_temperature",
        tolerance: EXACT,
    },
    Case {
        query: "histogram_quantile(0.9, sum(rate(fixture_latency_seconds_bucket[30s])) by (le))",
        tolerance: 1e-6,
    },
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_as_prometheus_does_on_the_same_scrapes() {
    let fixture = fixture::start().await;
    let every = Duration::from_secs(1);
    let prometheus_yml = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: text\n    static_configs:\n      - targets: ['{0}']\n  - job_name: om\n    metrics_path: /om\n    static_configs:\n      - targets: ['{0}']\n",
        fixture.addr
    );
    let prometheus = tokio::task::spawn_blocking(move || {
        fastpick::local::start_prometheus(&prometheus_yml, &[])
    })
    .await
    .expect("prometheus task")
    .expect("prometheus starts");
    let monitor = TestMonitor::start(monitor_settings(vec![
        job("text", &fixture.addr, "/metrics", every),
        job("om", &fixture.addr, "/om", every),
    ]))
    .await;
    let prom = format!("http://127.0.0.1:{}", prometheus.port);
    let client = reqwest::Client::new();

    // Every window must begin after both scrapers have data: a first scrape later than a
    // window's start changes rate()'s extrapolation there (under stress-ng, Prometheus was
    // ready some seconds after the fixture, and the range's first point differed by 1%).
    // Later by whole reset periods, so the windows keep their distance from the resets.
    let ready_s = (fastpick::monitor::scrape::now_ms() - fixture.t0_ms) as f64 / 1000.0;
    let mut eval_at = EVAL_AT;
    while eval_at - RANGE_SPAN_S - WINDOW_S < ready_s + 2.0 {
        eval_at += fixture::RESET_EVERY;
    }
    let eval_ms = fixture.t0_ms + (eval_at * 1000.0) as i64;
    wait_until_ms(eval_ms + 2_000).await;
    let at = format!("{:.3}", eval_ms as f64 / 1000.0);
    let mut failures = Vec::new();
    for case in CASES {
        let path = format!("/api/v1/query?query={}&time={at}", enc(case.query));
        let theirs = get_json(&client, &format!("{prom}{path}")).await;
        let ours = monitor.get(&path).await;
        if let Err(why) = same_answer(&theirs, &ours, case.tolerance) {
            failures.push(format!(
                "{}: {why}\n  prometheus: {}\n  ours:       {}",
                case.query, theirs.1, ours.1
            ));
        }
    }
    // The disappearing series, while it was still there.
    let early = format!("{:.3}", (fixture.t0_ms + 10_000) as f64 / 1000.0);
    let path = format!("/api/v1/query?query=fixture_ephemeral&time={early}");
    let (theirs, ours) = (
        get_json(&client, &format!("{prom}{path}")).await,
        monitor.get(&path).await,
    );
    if let Err(why) = same_answer(&theirs, &ours, EXACT) {
        failures.push(format!("fixture_ephemeral at +10 s: {why}"));
    }
    assert_eq!(
        ours.1["data"]["result"].as_array().map(Vec::len),
        Some(2),
        "ephemeral seen at +10 s in both jobs: {}",
        ours.1
    );
    let start = format!(
        "{:.3}",
        (eval_ms - (RANGE_SPAN_S * 1000.0) as i64) as f64 / 1000.0
    );
    for case in RANGE_CASES {
        let path = format!(
            "/api/v1/query_range?query={}&start={start}&end={at}&step=2",
            enc(case.query)
        );
        let theirs = get_json(&client, &format!("{prom}{path}")).await;
        let ours = monitor.get(&path).await;
        if let Err(why) = same_answer(&theirs, &ours, case.tolerance) {
            failures.push(format!(
                "range {}: {why}\n  prometheus: {}\n  ours:       {}",
                case.query, theirs.1, ours.1
            ));
        }
    }
    // Discovery endpoints: the same names and values.
    for path in [
        "/api/v1/label/__name__/values".to_owned(),
        "/api/v1/label/job/values".to_owned(),
        format!(
            "/api/v1/labels?match[]={}",
            enc("fixture_latency_seconds_bucket")
        ),
        format!(
            "/api/v1/label/uri/values?match[]={}",
            enc("fixture_requests_total{method=\"GET\"}")
        ),
        format!("/api/v1/series?match[]={}", enc("fixture_temperature")),
    ] {
        let theirs = get_json(&client, &format!("{prom}{path}")).await;
        let ours = monitor.get(&path).await;
        let sorted = |v: &Value| {
            let mut items: Vec<String> = v["data"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(Value::to_string)
                .collect();
            items.sort();
            items
        };
        if theirs.0 != ours.0 || sorted(&theirs.1) != sorted(&ours.1) {
            failures.push(format!(
                "{path}:\n  prometheus: {}\n  ours:       {}",
                theirs.1, ours.1
            ));
        }
    }
    // Errors have Prometheus's shape and status.
    for path in [
        "/api/v1/query?query=sum(",
        "/api/v1/query?query=up&time=yesterday",
        "/api/v1/query_range?query=up&start=10&end=5&step=1",
        "/api/v1/query_range?query=up&start=0&end=100000&step=1",
        "/api/v1/query_range?query=up&start=0&end=10&step=0",
        "/api/v1/series",
    ] {
        let theirs = get_json(&client, &format!("{prom}{path}")).await;
        let ours = monitor.get(path).await;
        if theirs.0 != ours.0
            || theirs.1["errorType"] != ours.1["errorType"]
            || ours.1["status"] != "error"
        {
            failures.push(format!(
                "{path}:\n  prometheus: {} {}\n  ours:       {} {}",
                theirs.0, theirs.1, ours.0, ours.1
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} differences:\n{}",
        failures.len(),
        failures.join("\n")
    );
    drop(prometheus);
    monitor.stop().await;
}

/// Waits until the wall clock passes `ms`.
async fn wait_until_ms(ms: i64) {
    let now = fastpick::monitor::scrape::now_ms();
    if ms > now {
        tokio::time::sleep(Duration::from_millis((ms - now) as u64)).await;
    }
}

/// Compares two API answers: status, result type, the series by labels, and each value
/// within `tolerance` (relative, with NaN equal to NaN).
fn same_answer(theirs: &(u16, Value), ours: &(u16, Value), tolerance: f64) -> Result<(), String> {
    if theirs.0 != ours.0 {
        return Err(format!("status {} vs {}", theirs.0, ours.0));
    }
    let (t, o) = (&theirs.1["data"], &ours.1["data"]);
    if t["resultType"] != o["resultType"] {
        return Err(format!(
            "result type {} vs {}",
            t["resultType"], o["resultType"]
        ));
    }
    let points = |data: &Value| -> BTreeMap<String, Vec<(f64, String)>> {
        let mut out = BTreeMap::new();
        match &data["result"] {
            Value::Array(items)
                if data["resultType"] == "scalar" || data["resultType"] == "string" =>
            {
                out.insert(String::new(), vec![pair(&Value::Array(items.clone()))]);
            }
            Value::Array(items) => {
                for item in items {
                    let key = item["metric"].to_string();
                    let values = match (&item["value"], &item["values"]) {
                        (v @ Value::Array(_), _) => vec![pair(v)],
                        (_, Value::Array(vs)) => vs.iter().map(pair).collect(),
                        _ => Vec::new(),
                    };
                    out.insert(key, values);
                }
            }
            _ => {}
        }
        out
    };
    let (tp, op) = (points(t), points(o));
    if tp.keys().ne(op.keys()) {
        return Err(format!(
            "series {:?} vs {:?}",
            tp.keys().collect::<Vec<_>>(),
            op.keys().collect::<Vec<_>>()
        ));
    }
    for (key, tv) in &tp {
        let ov = &op[key];
        if tv.len() != ov.len() {
            return Err(format!("{key}: {} points vs {}", tv.len(), ov.len()));
        }
        for ((tt, ts), (ot, os)) in tv.iter().zip(ov) {
            if (tt - ot).abs() > 1e-6 {
                return Err(format!("{key}: timestamp {tt} vs {ot}"));
            }
            if !close(ts, os, tolerance) {
                return Err(format!("{key}: value {ts} vs {os}"));
            }
        }
    }
    Ok(())
}

/// `[t, "v"]` as (t, v).
fn pair(v: &Value) -> (f64, String) {
    (
        v[0].as_f64().unwrap_or(f64::NAN),
        v[1].as_str().unwrap_or_default().to_owned(),
    )
}

/// Values written by two servers agree within a relative tolerance.
fn close(a: &str, b: &str, tolerance: f64) -> bool {
    if a == b {
        return true;
    }
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) if x.is_nan() && y.is_nan() => true,
        (Ok(x), Ok(y)) => (x - y).abs() <= tolerance * x.abs().max(y.abs()).max(1e-12),
        _ => false,
    }
}
