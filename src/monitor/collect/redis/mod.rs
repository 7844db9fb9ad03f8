//! The built-in Redis collector, standing in for redis_exporter: `INFO ALL`, `CONFIG GET *`
//! and the slow log, rendered with the exporter's family and label names so the Redis
//! dashboard (Grafana 763) reads it unchanged.
//!
//! Families: `redis_up`; everything `info.rs` derives from `INFO ALL` (`redis_connected_clients`,
//! `redis_memory_used_bytes`, `redis_commands_total{cmd}`, `redis_db_keys{db}`,
//! `redis_instance_info{...}`, ...); `redis_config_maxmemory`, `redis_config_maxclients`,
//! `redis_config_io_threads`, `redis_config_repl_backlog_size` from `CONFIG GET`;
//! `redis_slowlog_length`, `redis_slowlog_last_id`,
//! `redis_last_slow_execution_duration_seconds` from `SLOWLOG`.
//!
//! `redis_up` is 1 once `INFO` answered; `CONFIG` (which may be renamed or forbidden) and
//! `SLOWLOG` are optional and their families are simply absent when they fail. No family
//! carries an `addr`, `instance` or `alias` label: the scraper adds `instance` and `job`.

mod fields;
mod info;

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fred::clients::Pool;
use fred::interfaces::ClientLike;
use fred::types::{ClusterHash, CustomCommand, InfoKind, Value};

use crate::monitor::collect::DEFAULT_TIMEOUT;
use crate::monitor::collect::exposition::Exposition;

/// Reads one Redis server's statistics; cheap to clone (the pool is a handle).
#[derive(Clone)]
pub struct RedisCollector {
    client: Pool,
    timeout: Duration,
}

impl std::fmt::Debug for RedisCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCollector")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// What one scrape got back from the server, kept outside the timed future so a timeout
/// keeps what arrived.
#[derive(Debug, Default)]
struct Replies {
    info: Option<String>,
    config: Option<HashMap<String, String>>,
    slowlog_len: Option<i64>,
    slowlog_last: Option<Value>,
}

/// The configuration values redis_exporter reports as `redis_config_<name>`.
const CONFIG_GAUGES: &[&str] = &["io-threads", "maxclients", "maxmemory", "repl-backlog-size"];

/// Databases assumed when `CONFIG GET databases` is not available (Redis' default).
const DEFAULT_DATABASES: u32 = 16;

impl RedisCollector {
    /// Builds a collector over `client` with the default timeout of 5 s.
    pub fn new(client: Pool) -> RedisCollector {
        RedisCollector {
            client,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Sets the bound on one scrape.
    pub fn with_timeout(mut self, timeout: Duration) -> RedisCollector {
        self.timeout = timeout;
        self
    }

    /// Scrapes the server once and renders Prometheus text (format 0.0.4).
    ///
    /// Never fails and never takes (much) longer than the timeout: when `INFO` does not
    /// answer in time the body is just `redis_up 0`.
    pub async fn collect(&self) -> String {
        let mut replies = Replies::default();
        match tokio::time::timeout(self.timeout, self.scrape(&mut replies)).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!(error = %err, "redis scrape failed"),
            Err(_) => tracing::warn!(
                timeout_ms = self.timeout.as_millis() as u64,
                "redis scrape timed out"
            ),
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        render(&replies, now)
    }

    async fn scrape(&self, replies: &mut Replies) -> Result<(), fred::error::Error> {
        replies.info = Some(self.client.info(Some(InfoKind::All)).await?);
        let config_cmd = CustomCommand::new_static("CONFIG", ClusterHash::Random, false);
        match self.client.custom(config_cmd, vec!["GET", "*"]).await {
            Ok(config) => replies.config = Some(config),
            Err(err) => tracing::debug!(error = %err, "redis config get failed"),
        }
        let slowlog_cmd = CustomCommand::new_static("SLOWLOG", ClusterHash::Random, false);
        match self.client.custom(slowlog_cmd.clone(), vec!["LEN"]).await {
            Ok(len) => replies.slowlog_len = Some(len),
            Err(err) => tracing::debug!(error = %err, "redis slowlog len failed"),
        }
        match self.client.custom(slowlog_cmd, vec!["GET", "1"]).await {
            Ok(last) => replies.slowlog_last = Some(last),
            Err(err) => tracing::debug!(error = %err, "redis slowlog get failed"),
        }
        Ok(())
    }
}

/// The scrape body: `redis_up`, then the families of whatever replies arrived.
fn render(replies: &Replies, now: f64) -> String {
    let mut exp = Exposition::new();
    exp.gauge(
        "redis_up",
        "Information about the Redis instance",
        &[],
        if replies.info.is_some() { 1.0 } else { 0.0 },
    );
    let Some(info_text) = &replies.info else {
        return exp.render();
    };
    let db_count = replies
        .config
        .as_ref()
        .and_then(|config| config.get("databases"))
        .and_then(|value| value.parse().ok())
        .unwrap_or(DEFAULT_DATABASES);
    info::add_info(&mut exp, info_text, db_count, now);
    if let Some(config) = &replies.config {
        add_config(&mut exp, config);
    }
    add_slowlog(&mut exp, replies.slowlog_len, replies.slowlog_last.as_ref());
    exp.render()
}

/// `redis_config_<name>` for the numeric settings the exporter reports.
fn add_config(exp: &mut Exposition, config: &HashMap<String, String>) {
    for key in CONFIG_GAUGES {
        let Some(value) = config.get(*key).and_then(|v| v.parse::<f64>().ok()) else {
            continue;
        };
        let name = format!("redis_config_{}", key.replace('-', "_"));
        exp.gauge(&name, &format!("Configured value of {key}"), &[], value);
    }
}

/// `redis_slowlog_length`, and from the newest entry its id and duration.
fn add_slowlog(exp: &mut Exposition, len_opt: Option<i64>, last_opt: Option<&Value>) {
    if let Some(len) = len_opt {
        exp.gauge("redis_slowlog_length", "Total slowlog", &[], len as f64);
    }
    let Some(last) = last_opt else {
        return;
    };
    // SLOWLOG GET 1: [[id, unix time, duration in microseconds, args, ...]] or [].
    let entry = match last {
        Value::Array(entries) => entries.first(),
        _ => None,
    };
    let fields: &[Value] = match entry {
        Some(Value::Array(fields)) => fields,
        _ => &[],
    };
    let integer = |i: usize| match fields.get(i) {
        Some(Value::Integer(n)) => *n as f64,
        _ => 0.0,
    };
    exp.gauge(
        "redis_slowlog_last_id",
        "Last id of slowlog",
        &[],
        integer(0),
    );
    exp.gauge(
        "redis_last_slow_execution_duration_seconds",
        "The amount of time needed for last slow execution, in seconds",
        &[],
        integer(2) / 1e6,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_without_info_is_only_redis_up_0() {
        let replies = Replies {
            slowlog_len: Some(3),
            ..Replies::default()
        };

        let text = render(&replies, 0.0);

        let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(samples, ["redis_up 0"]);
    }

    #[test]
    fn render_uses_configured_databases_and_config_gauges() {
        let config: HashMap<String, String> = [
            ("databases", "2"),
            ("maxmemory", "1048576"),
            ("maxclients", "10000"),
            ("save", "3600 1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let replies = Replies {
            info: Some("# Keyspace\r\n".to_owned()),
            config: Some(config),
            ..Replies::default()
        };

        let text = render(&replies, 0.0);

        assert!(text.starts_with("# HELP redis_up"));
        assert!(text.contains("redis_up 1\n"));
        assert!(text.contains("redis_db_keys{db=\"db1\"} 0\n"));
        assert!(!text.contains("db=\"db2\""));
        assert!(text.contains("redis_config_maxmemory 1048576\n"));
        assert!(text.contains("redis_config_maxclients 10000\n"));
        assert!(!text.contains("redis_config_save"));
    }

    #[test]
    fn add_slowlog_reads_the_newest_entry() {
        let entry = Value::Array(vec![
            Value::Integer(7),
            Value::Integer(1_700_000_000),
            Value::Integer(25_000),
            Value::Array(vec![]),
        ]);
        let mut exp = Exposition::new();

        add_slowlog(&mut exp, Some(8), Some(&Value::Array(vec![entry])));

        let text = exp.render();
        assert!(text.contains("redis_slowlog_length 8\n"));
        assert!(text.contains("redis_slowlog_last_id 7\n"));
        assert!(text.contains("redis_last_slow_execution_duration_seconds 0.025\n"));
    }

    #[test]
    fn add_slowlog_reports_zero_for_an_empty_log() {
        let mut exp = Exposition::new();

        add_slowlog(&mut exp, Some(0), Some(&Value::Array(vec![])));

        let text = exp.render();
        assert!(text.contains("redis_slowlog_last_id 0\n"));
        assert!(text.contains("redis_last_slow_execution_duration_seconds 0\n"));
    }
}
