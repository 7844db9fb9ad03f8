//! Turns the text of `INFO ALL` into families, as redis_exporter does:
//!
//! - plain fields through the rename tables in `fields.rs` (`ok`/`err` read as 1/0);
//! - `# Keyspace`: `redis_db_keys{db}`, `redis_db_keys_expiring{db}`,
//!   `redis_db_avg_ttl_seconds{db}`, with 0 for every empty database up to `databases`;
//! - `# Commandstats`: `redis_commands_total{cmd}`, `redis_commands_duration_seconds_total{cmd}`,
//!   `redis_commands_rejected_calls_total{cmd}`, `redis_commands_failed_calls_total{cmd}`;
//! - `# Latencystats` (Redis 7): the summary `redis_latency_percentiles_usec{cmd}`;
//! - `# Errorstats`: `redis_errors_total{err}`;
//! - `redis_instance_info{...}`, `redis_start_time_seconds`, `redis_latest_fork_seconds`.
//!
//! One family of our own: `redis_instantaneous_ops_per_second`, the server's own ops/s
//! estimate (the exporter leaves it out; dashboards can use
//! `rate(redis_commands_processed_total)`). INFO calls it `instantaneous_ops_per_sec`; the
//! unit is spelled out because promtool's lint rejects `_sec` (redis_exporter dropped the
//! name for that reason in 0.9).

use std::collections::{BTreeSet, HashMap};

use crate::monitor::collect::exposition::{Exposition, MetricType, sanitize_name};

use super::fields;

/// The labels of `redis_instance_info`, each an `INFO` field of the same name.
const INSTANCE_INFO_LABELS: &[&str] = &[
    "role",
    "redis_version",
    "redis_build_id",
    "redis_mode",
    "os",
    "maxmemory_policy",
    "tcp_port",
    "run_id",
    "process_id",
    "master_replid",
];

/// One `field:value` line and the `# Section` it sits in.
struct Line<'a> {
    section: &'a str,
    field: &'a str,
    value: &'a str,
}

/// Adds every family `INFO ALL` text yields. `db_count` is the configured number of
/// databases (for zero-filling `redis_db_keys`), `now` the current Unix time in seconds.
pub(super) fn add_info(exp: &mut Exposition, info: &str, db_count: u32, now: f64) {
    let lines = parse_lines(info);
    let fields: HashMap<&str, &str> = lines.iter().map(|l| (l.field, l.value)).collect();
    add_instance_info(exp, &fields);
    let mut seen_dbs = BTreeSet::new();
    let mut calls: HashMap<&str, (f64, f64)> = HashMap::new();
    for line in &lines {
        match line.section {
            "Keyspace" => {
                if add_keyspace(exp, line.field, line.value) {
                    seen_dbs.insert(line.field.to_owned());
                }
            }
            "Commandstats" => {
                if let Some(cmd_calls) = add_commandstats(exp, line.field, line.value) {
                    calls.insert(cmd_calls.0, cmd_calls.1);
                }
            }
            "Errorstats" => add_errorstats(exp, line.field, line.value),
            "Latencystats" => {}
            _ => add_field(exp, line.field, line.value, now),
        }
    }
    // Summaries need the count and sum from Commandstats, so they come second.
    for line in lines.iter().filter(|l| l.section == "Latencystats") {
        add_latency(exp, line.field, line.value, &calls);
    }
    let db_count = if fields.get("cluster_enabled") == Some(&"1") {
        1
    } else {
        db_count
    };
    for db in (0..db_count).map(|i| format!("db{i}")) {
        if !seen_dbs.contains(&db) {
            add_db(exp, &db, 0.0, 0.0, None);
        }
    }
}

/// Splits `INFO` text into lines with their section; comments and blanks are skipped.
fn parse_lines(info: &str) -> Vec<Line<'_>> {
    let mut section = "";
    let mut out = Vec::new();
    for raw in info.lines() {
        let line = raw.trim();
        if let Some(name) = line.strip_prefix("# ") {
            section = name.trim();
            continue;
        }
        if let Some((field, value)) = line.split_once(':') {
            out.push(Line {
                section,
                field,
                value,
            });
        }
    }
    out
}

/// `redis_instance_info` with the exporter's label set.
fn add_instance_info(exp: &mut Exposition, fields: &HashMap<&str, &str>) {
    let labels: Vec<(&str, &str)> = INSTANCE_INFO_LABELS
        .iter()
        .map(|name| (*name, fields.get(name).copied().unwrap_or("")))
        .collect();
    exp.gauge(
        "redis_instance_info",
        "Information about the Redis instance",
        &labels,
        1.0,
    );
}

/// A plain field: renamed through the tables, or a `cluster_*` field under its own name.
fn add_field(exp: &mut Exposition, field: &str, value: &str, now: f64) {
    let Some(number) = parse_value(value) else {
        return;
    };
    match field {
        "uptime_in_seconds" => exp.gauge(
            "redis_start_time_seconds",
            "Start time of the Redis instance since unix epoch in seconds.",
            &[],
            (now - number).round(),
        ),
        "hz" | "configured_hz" => {
            let name = format!("redis_{field}");
            exp.gauge(&name, &format!("INFO field {field}"), &[], number);
        }
        "latest_fork_usec" => {
            exp.gauge(
                "redis_latest_fork_seconds",
                "Duration of the latest fork in seconds",
                &[],
                number / 1e6,
            );
            return;
        }
        "instantaneous_ops_per_sec" => exp.gauge(
            "redis_instantaneous_ops_per_second",
            "Commands processed per second, as the server estimates it (not exported by redis_exporter)",
            &[],
            number,
        ),
        _ => {}
    }
    let (name, kind) = match fields::lookup(field) {
        Some((name, true)) => (format!("redis_{name}"), MetricType::Counter),
        Some((name, false)) => (format!("redis_{name}"), MetricType::Gauge),
        None if field.starts_with("cluster_") => {
            (format!("redis_{}", sanitize_name(field)), MetricType::Gauge)
        }
        None => return,
    };
    exp.family(&name, kind, &format!("INFO field {field}"))
        .sample(&[], number);
}

/// A number, or `ok`/`true` as 1 and `err`/`fail`/`false` as 0.
fn parse_value(value: &str) -> Option<f64> {
    match value {
        "ok" | "true" => Some(1.0),
        "err" | "fail" | "false" => Some(0.0),
        _ => value.parse().ok(),
    }
}

/// The `key=value` pairs of a stats line (`calls=3,usec=51,...`).
fn pairs(value: &str) -> HashMap<&str, f64> {
    value
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| v.parse().ok().map(|n| (k, n)))
        .collect()
}

/// `db0:keys=2,expires=1,avg_ttl=9000[,subexpiry=0]`; false for anything else.
fn add_keyspace(exp: &mut Exposition, field: &str, value: &str) -> bool {
    if !field.starts_with("db") {
        return false;
    }
    let stats = pairs(value);
    let (Some(keys), Some(expires)) = (stats.get("keys"), stats.get("expires")) else {
        return false;
    };
    let avg_ttl = stats.get("avg_ttl").map(|ms| ms / 1000.0);
    add_db(exp, field, *keys, *expires, avg_ttl);
    if let Some(cached) = stats.get("cached_keys") {
        exp.gauge(
            "redis_db_keys_cached",
            "Total number of cached keys by DB",
            &[("db", field)],
            *cached,
        );
    }
    true
}

fn add_db(exp: &mut Exposition, db: &str, keys: f64, expires: f64, avg_ttl: Option<f64>) {
    let labels = [("db", db)];
    exp.gauge("redis_db_keys", "Total number of keys by DB", &labels, keys);
    exp.gauge(
        "redis_db_keys_expiring",
        "Total number of expiring keys by DB",
        &labels,
        expires,
    );
    if let Some(ttl) = avg_ttl {
        exp.gauge(
            "redis_db_avg_ttl_seconds",
            "Avg TTL in seconds",
            &labels,
            ttl,
        );
    }
}

/// `cmdstat_get:calls=21,usec=175,usec_per_call=8.33[,rejected_calls=0,failed_calls=0]`;
/// returns the command with its calls and microseconds.
fn add_commandstats<'a>(
    exp: &mut Exposition,
    field: &'a str,
    value: &str,
) -> Option<(&'a str, (f64, f64))> {
    let cmd = field.strip_prefix("cmdstat_")?;
    let stats = pairs(value);
    let (calls, usec) = (*stats.get("calls")?, *stats.get("usec")?);
    let labels = [("cmd", cmd)];
    exp.counter(
        "redis_commands_total",
        "Total number of calls per command",
        &labels,
        calls,
    );
    exp.counter(
        "redis_commands_duration_seconds_total",
        "Total amount of time in seconds spent per command",
        &labels,
        usec / 1e6,
    );
    if let (Some(rejected), Some(failed)) = (stats.get("rejected_calls"), stats.get("failed_calls"))
    {
        exp.counter(
            "redis_commands_rejected_calls_total",
            "Total number of errors within command execution per command",
            &labels,
            *rejected,
        );
        exp.counter(
            "redis_commands_failed_calls_total",
            "Total number of errors prior command execution per command",
            &labels,
            *failed,
        );
    }
    Some((cmd, (calls, usec)))
}

/// `errorstat_ERR:count=4`.
fn add_errorstats(exp: &mut Exposition, field: &str, value: &str) {
    let Some(err) = field.strip_prefix("errorstat_") else {
        return;
    };
    if let Some(count) = pairs(value).get("count") {
        exp.counter(
            "redis_errors_total",
            "Total number of errors per error type",
            &[("err", err)],
            *count,
        );
    }
}

/// `latency_percentiles_usec_get:p50=1.003,p99=4.015,p99.9=8.031`, with count and sum
/// (microseconds) from the command's Commandstats line; skipped without one.
fn add_latency(exp: &mut Exposition, field: &str, value: &str, calls: &HashMap<&str, (f64, f64)>) {
    let Some(cmd) = field.strip_prefix("latency_percentiles_usec_") else {
        return;
    };
    let Some((count, usec)) = calls.get(cmd) else {
        return;
    };
    let family = exp.family(
        "redis_latency_percentiles_usec",
        MetricType::Summary,
        "A summary of latency percentile distribution per command",
    );
    for (key, number) in value.split(',').filter_map(|kv| kv.split_once('=')) {
        let (Some(quantile), Ok(number)) = (key.strip_prefix('p'), number.parse::<f64>()) else {
            continue;
        };
        family.sample(&[("cmd", cmd), ("quantile", quantile)], number);
    }
    family
        .sample_with_suffix("_sum", &[("cmd", cmd)], *usec)
        .sample_with_suffix("_count", &[("cmd", cmd)], *count);
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n\
        os:Linux 6.1 x86_64\r\ntcp_port:6379\r\nuptime_in_seconds:100\r\nprocess_id:42\r\n\
        hz:10\r\n\r\n# Clients\r\nconnected_clients:3\r\n\r\n# Memory\r\nused_memory:1024\r\n\
        maxmemory:0\r\nmaxmemory_policy:noeviction\r\n\r\n# Persistence\r\n\
        rdb_last_bgsave_status:ok\r\naof_last_write_status:err\r\n\r\n# Stats\r\n\
        total_commands_processed:77\r\ninstantaneous_ops_per_sec:5\r\nlatest_fork_usec:2500\r\n\
        \r\n# Replication\r\nrole:master\r\nmaster_replid:abc\r\n\r\n# CPU\r\n\
        used_cpu_sys:1.5\r\n\r\n# Commandstats\r\n\
        cmdstat_set:calls=3,usec=51,usec_per_call=17.00,rejected_calls=1,failed_calls=2\r\n\
        cmdstat_client|setname:calls=1,usec=6,usec_per_call=6.00\r\n\r\n# Errorstats\r\n\
        errorstat_ERR:count=4\r\n\r\n# Latencystats\r\n\
        latency_percentiles_usec_set:p50=18.047,p99=23.039,p99.9=23.039\r\n\
        latency_percentiles_usec_nocalls:p50=1.0\r\n\r\n# Cluster\r\ncluster_enabled:0\r\n\r\n\
        # Keyspace\r\ndb0:keys=2,expires=1,avg_ttl=98214,subexpiry=0\r\n\
        db3:keys=1,expires=0,avg_ttl=0\r\n";

    fn render(db_count: u32) -> String {
        let mut exp = Exposition::new();
        add_info(&mut exp, INFO, db_count, 1000.0);
        exp.render()
    }

    #[test]
    fn add_info_renames_plain_fields_with_their_types() {
        let text = render(16);

        assert!(text.contains("# TYPE redis_connected_clients gauge\nredis_connected_clients 3\n"));
        assert!(text.contains("redis_memory_used_bytes 1024\n"));
        assert!(text.contains("redis_memory_max_bytes 0\n"));
        assert!(text.contains(
            "# TYPE redis_commands_processed_total counter\nredis_commands_processed_total 77\n"
        ));
        assert!(text.contains("# TYPE redis_cpu_sys_seconds_total counter\n"));
        assert!(text.contains("redis_rdb_last_bgsave_status 1\n"));
        assert!(text.contains("redis_aof_last_write_status 0\n"));
        assert!(text.contains("redis_cluster_enabled 0\n"));
        assert!(text.contains("redis_hz 10\n"));
        assert!(!text.contains("redis_redis_version"));
    }

    #[test]
    fn add_info_derives_start_time_fork_seconds_and_ops() {
        let text = render(16);

        assert!(text.contains("redis_start_time_seconds 900\n"));
        assert!(text.contains("redis_uptime_in_seconds 100\n"));
        assert!(text.contains("redis_latest_fork_seconds 0.0025\n"));
        assert!(!text.contains("redis_latest_fork_usec"));
        assert!(text.contains("redis_instantaneous_ops_per_second 5\n"));
    }

    #[test]
    fn add_info_reports_instance_info_with_the_exporter_labels() {
        let text = render(16);

        assert!(text.contains(
            "redis_instance_info{role=\"master\",redis_version=\"7.0.15\",redis_build_id=\"\",\
             redis_mode=\"standalone\",os=\"Linux 6.1 x86_64\",maxmemory_policy=\"noeviction\",\
             tcp_port=\"6379\",run_id=\"\",process_id=\"42\",master_replid=\"abc\"} 1\n"
        ));
    }

    #[test]
    fn add_info_reads_keyspace_and_zero_fills_empty_databases() {
        let text = render(4);

        assert!(text.contains("redis_db_keys{db=\"db0\"} 2\n"));
        assert!(text.contains("redis_db_keys_expiring{db=\"db0\"} 1\n"));
        assert!(text.contains("redis_db_avg_ttl_seconds{db=\"db0\"} 98.214\n"));
        assert!(text.contains("redis_db_keys{db=\"db3\"} 1\n"));
        assert!(text.contains("redis_db_keys{db=\"db1\"} 0\n"));
        assert!(text.contains("redis_db_keys_expiring{db=\"db2\"} 0\n"));
        assert!(!text.contains("db=\"db4\""));
        assert!(!text.contains("redis_db_keys_cached"));
    }

    #[test]
    fn add_info_reads_commandstats_errorstats_and_latency() {
        let text = render(1);

        assert!(text.contains("redis_commands_total{cmd=\"set\"} 3\n"));
        assert!(text.contains("redis_commands_duration_seconds_total{cmd=\"set\"} 5.1e-5\n"));
        assert!(text.contains("redis_commands_rejected_calls_total{cmd=\"set\"} 1\n"));
        assert!(text.contains("redis_commands_failed_calls_total{cmd=\"set\"} 2\n"));
        assert!(text.contains("redis_commands_total{cmd=\"client|setname\"} 1\n"));
        assert!(!text.contains("redis_commands_failed_calls_total{cmd=\"client|setname\"}"));
        assert!(text.contains("redis_errors_total{err=\"ERR\"} 4\n"));
        assert!(text.contains("# TYPE redis_latency_percentiles_usec summary\n"));
        assert!(
            text.contains("redis_latency_percentiles_usec{cmd=\"set\",quantile=\"99.9\"} 23.039\n")
        );
        assert!(text.contains("redis_latency_percentiles_usec_sum{cmd=\"set\"} 51\n"));
        assert!(text.contains("redis_latency_percentiles_usec_count{cmd=\"set\"} 3\n"));
        assert!(!text.contains("cmd=\"nocalls\""));
    }

    #[test]
    fn add_info_ignores_garbage() {
        let mut exp = Exposition::new();

        add_info(
            &mut exp,
            "junk\n# Keyspace\ndb0:nonsense\nused_memory:abc\n",
            0,
            0.0,
        );

        let text = exp.render();
        assert!(!text.contains("redis_db_keys"));
        assert!(!text.contains("redis_memory_used_bytes"));
    }
}
