//! The queries of the common dashboards — Grafana 9628 for PostgreSQL, 763 for Redis — and
//! the lab's own panels, on series a monitor scraped from the built-in collectors while the
//! servers had something to show.

use std::time::Instant;

use fastpick::config::Settings;
use fred::prelude::{Expiration, KeysInterface};
use sqlx::{Connection, PgConnection};

use super::postgres::REQUIRED_PG_BEFORE_17;
use super::served::{collector_settings, query_until_data};
use super::{POLL_FOR, execute, fresh_database, pg_connect, pg_major, redis_pool, redis_server};
use crate::monitor::TestMonitor;

/// Grafana dashboard 9628 "PostgreSQL Database" (for postgres_exporter): its panels' queries
/// as published, variables left in. `process_*` panels are left out: they read the exporter
/// process's own metrics, which a built-in collector has no process for.
const DASHBOARD_9628: &[&str] = &[
    r#"pg_static{release="$release", instance="$instance"}"#,
    r#"pg_postmaster_start_time_seconds{release="$release", instance="$instance"} * 1000"#,
    r#"SUM(pg_stat_database_tup_fetched{datname=~"$datname", instance=~"$instance"})"#,
    r#"SUM(pg_stat_database_tup_inserted{release="$release", datname=~"$datname", instance=~"$instance"})"#,
    r#"SUM(pg_stat_database_tup_updated{datname=~"$datname", instance=~"$instance"})"#,
    r#"pg_settings_max_connections{release="$release", instance="$instance"}"#,
    r#"pg_settings_shared_buffers_bytes{instance="$instance"}"#,
    r#"pg_settings_effective_cache_size_bytes{instance="$instance"}"#,
    r#"pg_settings_maintenance_work_mem_bytes{instance="$instance"}"#,
    r#"pg_settings_work_mem_bytes{instance="$instance"}"#,
    r#"pg_settings_max_wal_size_bytes{instance="$instance"}"#,
    r#"pg_settings_random_page_cost{instance="$instance"}"#,
    r#"pg_settings_seq_page_cost{instance="$instance"}"#,
    r#"pg_settings_max_worker_processes{instance="$instance"}"#,
    r#"pg_settings_max_parallel_workers{instance="$instance"}"#,
    r#"pg_stat_activity_count{datname=~"$datname", instance=~"$instance", state="active"} !=0"#,
    r#"irate(pg_stat_database_xact_commit{instance="$instance", datname=~"$datname"}[5m])"#,
    r#"irate(pg_stat_database_xact_rollback{instance="$instance", datname=~"$datname"}[5m])"#,
    r#"pg_stat_database_tup_updated{datname=~"$datname", instance=~"$instance"} != 0"#,
    r#"pg_stat_database_tup_fetched{datname=~"$datname", instance=~"$instance"} != 0"#,
    r#"pg_stat_database_tup_inserted{datname=~"$datname", instance=~"$instance"} != 0"#,
    r#"pg_locks_count{datname=~"$datname", instance=~"$instance", mode=~"$mode"} != 0"#,
    r#"pg_stat_database_tup_returned{datname=~"$datname", instance=~"$instance"} != 0"#,
    r#"pg_stat_activity_count{datname=~"$datname", instance=~"$instance", state=~"idle|idle in transaction|idle in transaction (aborted)"}"#,
    r#"pg_stat_database_tup_deleted{datname=~"$datname", instance=~"$instance"} != 0"#,
    r#"pg_stat_database_blks_hit{instance="$instance", datname=~"$datname"} / (pg_stat_database_blks_read{instance="$instance", datname=~"$datname"} + pg_stat_database_blks_hit{instance="$instance", datname=~"$datname"})"#,
    r#"irate(pg_stat_bgwriter_buffers_backend_total{instance="$instance"}[5m])"#,
    r#"irate(pg_stat_bgwriter_buffers_alloc_total{instance="$instance"}[5m])"#,
    r#"irate(pg_stat_bgwriter_buffers_backend_fsync_total{instance="$instance"}[5m])"#,
    r#"irate(pg_stat_bgwriter_buffers_checkpoint_total{instance="$instance"}[5m])"#,
    r#"irate(pg_stat_bgwriter_buffers_clean_total{instance="$instance"}[5m])"#,
    r#"irate(pg_stat_database_conflicts{instance="$instance", datname=~"$datname"}[5m])"#,
    r#"irate(pg_stat_database_deadlocks{instance="$instance", datname=~"$datname"}[5m])"#,
    r#"irate(pg_stat_database_temp_bytes{instance="$instance", datname=~"$datname"}[5m])"#,
    r#"irate(pg_stat_bgwriter_checkpoint_write_time_total{instance="$instance"}[5m])"#,
    r#"irate(pg_stat_bgwriter_checkpoint_sync_time_total{instance="$instance"}[5m])"#,
];

/// The lab's own PostgreSQL panels (connections by state, throughput, cache hit ratio, size).
const LAB_POSTGRES: &[&str] = &[
    r#"pg_stat_activity_count{datname=~"$datname"}"#,
    "sum by (state) (pg_stat_activity_count)",
    r#"rate(pg_stat_database_xact_commit{datname=~"$datname"}[1m])"#,
    "pg_settings_max_connections",
    "pg_database_size_bytes",
    "rate(pg_stat_database_blks_hit[1m]) / (rate(pg_stat_database_blks_hit[1m]) + rate(pg_stat_database_blks_read[1m]))",
    "pg_locks_count",
    r#"pg_stat_activity_waiting{datname=~"$datname"}"#,
];

/// Grafana dashboard 763 "Redis Dashboard for Prometheus Redis Exporter 1.x": its panels'
/// queries as published (redis_exporter's contrib/grafana_prometheus_redis_dashboard.json),
/// variables left in.
const DASHBOARD_763: &[&str] = &[
    r#"max(max_over_time(redis_uptime_in_seconds{namespace=~"$namespace", instance=~"$instance"}[$__interval]))"#,
    r#"sum(redis_connected_clients{namespace=~"$namespace", instance=~"$instance"})"#,
    r#"sum(100 * (redis_memory_used_bytes{namespace=~"$namespace", instance=~"$instance"}  / redis_memory_max_bytes{namespace=~"$namespace", instance=~"$instance"}))"#,
    r#"sum(rate(redis_commands_total{namespace=~"$namespace", instance=~"$instance"} [1m])) by (cmd)"#,
    r#"irate(redis_keyspace_hits_total{instance=~"$instance"}[5m])"#,
    r#"irate(redis_keyspace_misses_total{instance=~"$instance"}[5m])"#,
    r#"redis_memory_used_bytes{instance=~"$instance"}"#,
    r#"redis_memory_max_bytes{instance=~"$instance"}"#,
    r#"sum(rate(redis_net_input_bytes_total{instance=~"$instance"}[5m]))"#,
    r#"sum(rate(redis_net_output_bytes_total{instance=~"$instance"}[5m]))"#,
    r#"sum (redis_db_keys{instance=~"$instance"}) by (db, instance)"#,
    r#"sum (redis_db_keys{instance=~"$instance"}) by (instance) - sum (redis_db_keys_expiring{instance=~"$instance"}) by (instance)"#,
    r#"sum (redis_db_keys_expiring{instance=~"$instance"}) by (instance)"#,
    r#"sum(rate(redis_expired_keys_total{instance=~"$instance"}[5m])) by (instance)"#,
    r#"sum(rate(redis_evicted_keys_total{instance=~"$instance"}[5m])) by (instance)"#,
    r#"sum(redis_connected_clients{instance=~"$instance"})"#,
    r#"sum(redis_blocked_clients{instance=~"$instance"})"#,
    "sum(irate(redis_commands_duration_seconds_total{namespace=~\"$namespace\", instance =~ \"$instance\"}[1m])) by (cmd)\n  /\nsum(irate(redis_commands_total{namespace=~\"$namespace\", instance =~ \"$instance\"}[1m])) by (cmd)\n",
    r#"sum(irate(redis_commands_duration_seconds_total{instance=~"$instance"}[1m])) by (cmd) != 0"#,
];

/// The lab's own Redis panels, and the shapes of the exporter 0.3x version of 763.
const LAB_REDIS: &[&str] = &[
    "redis_up",
    "redis_uptime_in_seconds",
    "redis_connected_clients",
    "redis_memory_used_bytes",
    "irate(redis_commands_processed_total[1m])",
    "rate(redis_commands_processed_total[5m])",
    "irate(redis_keyspace_hits_total[5m])",
    "redis_db_keys",
    "topk(5, irate(redis_commands_total[1m]))",
    "redis_commands_duration_seconds_total / redis_commands_total",
];

/// Activity on the test's database that every PostgreSQL panel has something to show for:
/// rows inserted, updated and deleted, an open transaction holding a lock, a query running.
/// Dropping it ends the transaction and the query.
struct PgActivity {
    _holder: PgConnection,
    sleeper: tokio::task::JoinHandle<()>,
}

impl Drop for PgActivity {
    fn drop(&mut self) {
        self.sleeper.abort();
    }
}

impl PgActivity {
    async fn start(settings: &Settings) -> PgActivity {
        let mut writer = pg_connect(settings).await;
        for sql in [
            "create table t (id int primary key, n int)",
            "insert into t select i, 0 from generate_series(1, 100) as i",
            "update t set n = n + 1 where id <= 10",
            "delete from t where id > 90",
        ] {
            execute(&mut writer, sql).await;
        }
        // A backend reports its statistics at the latest when it exits.
        writer.close().await.expect("writer closes");
        let mut holder = pg_connect(settings).await;
        execute(&mut holder, "begin").await;
        execute(&mut holder, "lock table t in access share mode").await;
        let mut sleeper_conn = pg_connect(settings).await;
        // PostgreSQL 14+ ends the query within a second once the test's connection is gone
        // (older servers end it after the 120 s).
        let _ = sqlx::query("set client_connection_check_interval = '1s'")
            .execute(&mut sleeper_conn)
            .await;
        let sleeper = tokio::spawn(async move {
            let _ = sqlx::query("select pg_sleep(120)")
                .execute(&mut sleeper_conn)
                .await;
        });
        PgActivity {
            _holder: holder,
            sleeper,
        }
    }
}

/// Keys set (one expiring), one read and one missed, on the Redis at `port`.
async fn redis_activity(port: u16) {
    let pool = redis_pool(port, 0).await;
    for i in 0..10 {
        let _: () = pool
            .set(format!("k{i}"), i, None, None, false)
            .await
            .expect("set");
    }
    let _: () = pool
        .set("expiring", 1, Some(Expiration::EX(600)), None, false)
        .await
        .expect("set with expiry");
    let _: Option<String> = pool.get("k1").await.expect("get hit");
    let _: Option<String> = pool.get("missing").await.expect("get miss");
}

/// Fills in Grafana's variables as the dashboards would for this test's servers.
fn fill(query: &str, variables: &[(&str, &str)]) -> String {
    variables
        .iter()
        .fold(query.to_owned(), |q, (name, value)| q.replace(name, value))
}

/// Every query to run, variables filled in: 9628's and the lab's for `pg_instance` and
/// `database`, 763's and the lab's for `redis_instance`.
fn dashboard_queries(
    pg_major: i32,
    pg_instance: &str,
    database: &str,
    redis_instance: &str,
) -> Vec<String> {
    // Grafana fills an empty variable in as ""; "All" of 9628's `mode` as a regex.
    let pg_vars = [
        ("$instance", pg_instance),
        ("$datname", database),
        ("$release", ""),
        ("$mode", ".+"),
    ];
    let redis_vars = [
        ("$__interval", "1m"),
        ("$instance", redis_instance),
        ("$namespace", ""),
    ];
    // PostgreSQL 17 moved these families to pg_stat_checkpointer (postgres_exporter too), so
    // their panels stay empty there.
    let on_this_server =
        |q: &&&str| pg_major < 17 || !REQUIRED_PG_BEFORE_17.iter().any(|f| q.contains(f));
    let postgres = DASHBOARD_9628
        .iter()
        .chain(LAB_POSTGRES)
        .filter(on_this_server)
        .map(|q| fill(q, &pg_vars));
    let redis = DASHBOARD_763
        .iter()
        .chain(LAB_REDIS)
        .map(|q| fill(q, &redis_vars));
    postgres.chain(redis).collect()
}

#[tokio::test]
async fn dashboard_queries_of_9628_and_763_return_data_from_the_collectors() {
    let (pg_port, database) = fresh_database().await;
    let redis = redis_server().await;
    let settings = collector_settings(pg_port, &database, redis.port);
    let _activity = PgActivity::start(&settings).await;
    redis_activity(redis.port).await;
    let queries = dashboard_queries(
        pg_major(&settings).await,
        &format!("127.0.0.1:{pg_port}"),
        &database,
        &format!("127.0.0.1:{}", redis.port),
    );
    let monitor = TestMonitor::start(settings).await;

    let deadline = Instant::now() + POLL_FOR;
    let mut failures = Vec::new();
    for query in &queries {
        if let Err(why) = query_until_data(&monitor, query, deadline).await {
            failures.push(why);
        }
    }

    assert!(
        failures.is_empty(),
        "{} of {} dashboard queries failed:\n{}",
        failures.len(),
        queries.len(),
        failures.join("\n")
    );
}
