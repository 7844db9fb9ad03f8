//! The monitor's own endpoints beyond the differential test: a prometheus.yml read as it
//! is, POST forms, metadata, targets, federation, a target going down, its own `/metrics`.

use std::time::Duration;

use serde_json::Value;

use super::{TestMonitor, enc, fixture, fresh_dir, job, monitor_settings};

/// Polls an instant query until it returns at least one sample (bounded).
async fn wait_for(monitor: &TestMonitor, query: &str) -> Value {
    let path = format!("/api/v1/query?query={}", enc(query));
    for _ in 0..300 {
        let (status, body) = monitor.get(&path).await;
        assert_eq!(status, 200, "{query}: {body}");
        if body["data"]["result"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
        {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{query} returned nothing in 30 s");
}

#[tokio::test]
async fn reads_an_existing_prometheus_yml_and_answers_the_grafana_endpoints() {
    let fixture = fixture::start().await;
    let yml = fresh_dir("prometheus-yml").join("prometheus.yml");
    std::fs::write(
        &yml,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: 'from-yml'\n    metrics_path: '/om'\n    static_configs:\n      - targets: ['{}']\n        labels:\n          env: lab\n",
            fixture.addr
        ),
    )
    .expect("write prometheus.yml");
    let mut settings = monitor_settings(Vec::new());
    settings.monitor.prometheus_config = Some(yml.clone());
    let monitor = TestMonitor::start(settings).await;

    let body = wait_for(&monitor, "fixture_temperature{room=\"a\"}").await;
    let metric = &body["data"]["result"][0]["metric"];
    assert_eq!(metric["job"], "from-yml");
    assert_eq!(metric["env"], "lab");
    assert_eq!(body["data"]["result"][0]["value"][1], "21.5");

    // POST with a form body, as Grafana sends long queries.
    let response = monitor
        .client
        .post(format!("{}/api/v1/query", monitor.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("query={}", enc("sum(fixture_temperature)")))
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["data"]["result"][0]["value"][1], "18.25");

    let (status, body) = monitor
        .get("/api/v1/metadata?metric=fixture_latency_seconds")
        .await;
    assert_eq!(status, 200);
    let entry = &body["data"]["fixture_latency_seconds"][0];
    assert_eq!(entry["type"], "histogram", "{body}");
    assert_eq!(entry["help"], "Request latency.");
    assert_eq!(entry["unit"], "seconds");

    let (_, body) = monitor.get("/api/v1/targets").await;
    let target = &body["data"]["activeTargets"][0];
    assert_eq!(target["labels"]["job"], "from-yml", "{body}");
    assert_eq!(target["health"], "up", "{body}");
    // RFC 3339, as Prometheus writes it: `fastpick lab` and other clients parse it.
    assert!(
        target["lastScrape"]
            .as_str()
            .is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok()),
        "{body}"
    );

    let (status, body) = monitor.get("/api/v1/status/buildinfo").await;
    assert_eq!(status, 200);
    assert!(body["data"]["version"].is_string());

    // Federation: Prometheus text with timestamps (untyped, without help, as Prometheus's).
    let text = monitor
        .client
        .get(format!(
            "{}/federate?match[]={}",
            monitor.base,
            enc("{job=\"from-yml\"}")
        ))
        .send()
        .await
        .expect("federate")
        .text()
        .await
        .expect("text");
    let families =
        fastpick::metrics::parse::parse(&text, fastpick::metrics::parse::Format::Text004)
            .expect("federate output parses");
    let temperature = families
        .iter()
        .flat_map(|f| &f.samples)
        .find(|s| {
            s.name == "fixture_temperature" && s.labels.iter().any(|(k, v)| k == "room" && v == "b")
        })
        .expect("fixture_temperature{room=b} federated");
    assert_eq!(temperature.value, -3.25);
    assert!(temperature.timestamp_ms.is_some());

    let (status, body) = monitor.get("/federate").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errorType"], "bad_data");
    let _ = std::fs::remove_dir_all(yml.parent().expect("dir"));
    monitor.stop().await;
}

#[tokio::test]
async fn a_target_that_goes_down_is_up_0_and_its_series_go_stale() {
    let fixture = fixture::start().await;
    let every = Duration::from_millis(500);
    let monitor = TestMonitor::start(monitor_settings(vec![job(
        "gone",
        &fixture.addr,
        "/metrics",
        every,
    )]))
    .await;
    wait_for(&monitor, "fixture_temperature").await;
    drop(fixture);
    wait_for(&monitor, "up{job=\"gone\"} == 0").await;
    // The staleness markers written at the failed scrape end the series at once, well
    // inside the 5-minute lookback.
    let path = format!("/api/v1/query?query={}", enc("fixture_temperature"));
    let (_, body) = monitor.get(&path).await;
    assert_eq!(body["data"]["result"], Value::Array(Vec::new()), "{body}");
    let (_, body) = monitor.get("/api/v1/targets").await;
    let target = &body["data"]["activeTargets"][0];
    assert_eq!(target["health"], "down", "{body}");
    assert!(
        target["lastError"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    monitor.stop().await;
}

#[tokio::test]
async fn its_own_metrics_are_promtool_clean_and_count_what_it_stores() {
    let fixture = fixture::start().await;
    let monitor = TestMonitor::start(monitor_settings(vec![job(
        "self-check",
        &fixture.addr,
        "/metrics",
        Duration::from_millis(500),
    )]))
    .await;
    wait_for(&monitor, "fixture_temperature").await;
    let (content_type, text) =
        crate::helpers::scrape(&monitor.client, &format!("{}/metrics", monitor.base), None).await;
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    crate::helpers::promtool_check(&text).expect("promtool-clean");
    let appended = text
        .lines()
        .find(|l| l.starts_with("fastpick_monitor_samples_appended_total"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .expect("samples appended");
    assert!(appended > 0.0, "{text}");
    assert!(
        text.contains("fastpick_process_resident_memory_bytes"),
        "{text}"
    );
    monitor.stop().await;
}
