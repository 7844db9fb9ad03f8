//! The collectors as a monitor runs them: their pages, the `up` series they produce (also
//! with PostgreSQL unreachable), the dashboards' variable queries, and the pages' 404 when off.

use std::time::{Duration, Instant};

use fastpick::config::Settings;
use serde_json::Value;

use super::{POLL_FOR, Scrape, free_port, fresh_database, redis_server};
use crate::helpers::test_settings;
use crate::monitor::{TestMonitor, enc, monitor_settings};

/// Settings for a monitor that collects from the PostgreSQL database and the Redis given,
/// scraping them every second.
pub(super) fn collector_settings(pg_port: u16, database: &str, redis_port: u16) -> Settings {
    let servers = test_settings(pg_port, database, redis_port);
    let mut settings = monitor_settings(Vec::new());
    settings.database = servers.database;
    settings.redis = servers.redis;
    settings.monitor.postgres = true;
    settings.monitor.redis = true;
    settings.monitor.scrape_interval = Duration::from_secs(1);
    settings.monitor.scrape_timeout = Duration::from_secs(1);
    settings
}

/// GETs a collector's page and checks it is text 0.0.4 containing `line`; returns the body.
async fn assert_page(monitor: &TestMonitor, path: &str, line: &str) -> String {
    let response = monitor
        .client
        .get(format!("{}{path}", monitor.base))
        .send()
        .await
        .expect("page request");
    assert_eq!(response.status(), 200, "status of {path}");
    let content_type = response.headers()["content-type"]
        .to_str()
        .expect("content type")
        .to_owned();
    assert_eq!(
        content_type, "text/plain; version=0.0.4; charset=utf-8",
        "{path}"
    );
    let body = response.text().await.expect("page body");
    assert!(
        body.lines().any(|l| l == line),
        "{path} lacks {line:?}:\n{body}"
    );
    body
}

/// Runs an instant query until it returns at least one sample, up to `deadline`: the
/// samples, or why there are none (an error answer ends the wait at once).
pub(super) async fn query_until_data(
    monitor: &TestMonitor,
    query: &str,
    deadline: Instant,
) -> Result<Vec<Value>, String> {
    loop {
        let (status, body) = monitor
            .get(&format!("/api/v1/query?query={}", enc(query)))
            .await;
        if status != 200 || body["status"] != "success" {
            return Err(format!("{query}\n  answered {status}: {body}"));
        }
        let result = body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if !result.is_empty() {
            return Ok(result);
        }
        if Instant::now() >= deadline {
            return Err(format!("{query}\n  returned no data within {POLL_FOR:?}"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The one sample of `query` once there is one: its labels and value.
async fn single_sample(monitor: &TestMonitor, query: &str) -> (Value, f64) {
    let result = query_until_data(monitor, query, Instant::now() + POLL_FOR)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(result.len(), 1, "{query}: {result:?}");
    let value = result[0]["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{query}: value of {result:?}"));
    (result[0]["metric"].clone(), value)
}

/// Asserts that `query` gives one sample of `want` labelled with the job and instance.
async fn assert_sample(monitor: &TestMonitor, query: &str, job: &str, instance: &str, want: f64) {
    let (labels, value) = single_sample(monitor, query).await;
    assert_eq!(value, want, "{query}: {labels}");
    assert_eq!(labels["job"], job, "{query}: {labels}");
    assert_eq!(labels["instance"], instance, "{query}: {labels}");
}

/// The values of label `name` on the series `selector` matches (a Grafana variable query).
async fn label_values(monitor: &TestMonitor, name: &str, selector: &str) -> Vec<Value> {
    let path = format!("/api/v1/label/{name}/values?match[]={}", enc(selector));
    let (status, body) = monitor.get(&path).await;
    assert_eq!(status, 200, "{path}: {body}");
    body["data"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn monitor_serves_collector_pages_and_stores_their_up_series() {
    let (pg_port, database) = fresh_database().await;
    let redis = redis_server().await;
    let monitor = TestMonitor::start(collector_settings(pg_port, &database, redis.port)).await;
    let pg_instance = format!("127.0.0.1:{pg_port}");
    let redis_instance = format!("127.0.0.1:{}", redis.port);

    assert_page(&monitor, "/metrics/postgres", "pg_up 1").await;
    assert_page(&monitor, "/metrics/redis", "redis_up 1").await;

    assert_sample(&monitor, "pg_up", "postgres", &pg_instance, 1.0).await;
    assert_sample(&monitor, "redis_up", "redis", &redis_instance, 1.0).await;
    assert_sample(
        &monitor,
        r#"up{job="postgres"}"#,
        "postgres",
        &pg_instance,
        1.0,
    )
    .await;
    assert_sample(
        &monitor,
        r#"up{job="redis"}"#,
        "redis",
        &redis_instance,
        1.0,
    )
    .await;
    // The dashboards' variables: 763's instance, 9628's instance and datname.
    let instances = label_values(&monitor, "instance", r#"redis_up{namespace=~""}"#).await;
    assert_eq!(instances, [Value::from(redis_instance)]);
    let instances = label_values(&monitor, "instance", "pg_up").await;
    assert_eq!(instances, [Value::from(pg_instance.clone())]);
    let selector = format!(
        r#"pg_stat_database_tup_fetched{{instance=~"{pg_instance}", datname!~"template.*|postgres"}}"#
    );
    let datnames = label_values(&monitor, "datname", &selector).await;
    assert!(
        datnames.contains(&Value::from(database.clone())),
        "{datnames:?}"
    );
}

#[tokio::test]
async fn monitor_with_unreachable_postgres_starts_and_reports_pg_up_0() {
    let nothing = free_port();
    let mut settings = collector_settings(nothing, "postgres", 0);
    settings.monitor.redis = false;
    let instance = format!("127.0.0.1:{nothing}");

    let monitor = TestMonitor::start(settings).await;

    // The collector answered (up 1), and what it answered is that PostgreSQL is down.
    assert_sample(&monitor, "pg_up", "postgres", &instance, 0.0).await;
    assert_sample(
        &monitor,
        r#"up{job="postgres"}"#,
        "postgres",
        &instance,
        1.0,
    )
    .await;
    let body = assert_page(&monitor, "/metrics/postgres", "pg_up 0").await;
    assert_eq!(Scrape::parse(body).sample_lines(), ["pg_up 0"]);
}

#[tokio::test]
async fn collector_pages_answer_404_in_prometheus_error_shape_when_off() {
    let monitor = TestMonitor::start(monitor_settings(Vec::new())).await;

    for (path, key) in [
        ("/metrics/postgres", "monitor.postgres"),
        ("/metrics/redis", "monitor.redis"),
    ] {
        let (status, body) = monitor.get(path).await;

        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(body["status"], "error", "{path}: {body}");
        assert_eq!(body["errorType"], "not_found", "{path}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(key), "{path}: {body}");
    }
}
