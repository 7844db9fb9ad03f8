//! The built-in PostgreSQL and Redis collectors against real servers, directly
//! (`postgres`, `redis`: every family the dashboards read, an idle transaction, lock waits,
//! settings in base units, keyspace and command counts, unreachable and silent servers,
//! `promtool check metrics`) and through a monitor that scrapes them (`served`: the
//! `/metrics/postgres` and `/metrics/redis` pages, `pg_up`, `redis_up` and `up`; `dashboards`:
//! the queries of Grafana dashboards 9628 and 763). The servers are the shared PostgreSQL of
//! `helpers` (a fresh database per test) and a Redis per test from `fastpick::local`.

mod dashboards;
mod postgres;
mod redis;
mod served;

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use fastpick::config::Settings;
use fastpick::local::{self, Supervised};
use fastpick::metrics::parse::{self, Family, Format};
use fred::prelude::{Builder, ClientLike, Config, ServerConfig};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};

use crate::helpers::{fresh_database, promtool_check, test_settings};

/// The longest any poll in these tests waits.
const POLL_FOR: Duration = Duration::from_secs(30);

/// The timeout given to collectors facing a dead or silent server.
const COLLECT_TIMEOUT: Duration = Duration::from_secs(1);

/// What a bounded collect may take beyond its timeout on a busy machine; far below every
/// other bound in play (connection pools and clients wait 60 s or more).
const SLACK: Duration = Duration::from_secs(9);

/// `promtool check metrics` findings accepted on the collectors' output, by message: lint of
/// names and types the real exporters publish exactly so (postgres_exporter's counters
/// without `_total` and gauges ending in `_count`; redis_exporter's INFO-derived names, checked
/// against its `metricMapGauges`/`metricMapCounters`), kept so dashboards work unchanged.
/// Anything else fails: a parse error, or any finding on another family (our own ones
/// included).
const PROMTOOL_BASELINE: &[(&str, &[&str])] = &[
    (
        "counter metrics should have \"_total\" suffix",
        &[
            "pg_stat_archiver_archived_count",
            "pg_stat_archiver_failed_count",
            "pg_stat_database_blk_read_time",
            "pg_stat_database_blk_write_time",
            "pg_stat_database_blks_hit",
            "pg_stat_database_blks_read",
            "pg_stat_database_conflicts",
            "pg_stat_database_conflicts_confl_bufferpin",
            "pg_stat_database_conflicts_confl_deadlock",
            "pg_stat_database_conflicts_confl_lock",
            "pg_stat_database_conflicts_confl_snapshot",
            "pg_stat_database_conflicts_confl_tablespace",
            "pg_stat_database_deadlocks",
            "pg_stat_database_stats_reset",
            "pg_stat_database_temp_bytes",
            "pg_stat_database_temp_files",
            "pg_stat_database_tup_deleted",
            "pg_stat_database_tup_fetched",
            "pg_stat_database_tup_inserted",
            "pg_stat_database_tup_returned",
            "pg_stat_database_tup_updated",
            "pg_stat_database_xact_commit",
            "pg_stat_database_xact_rollback",
            "redis_dump_payload_sanitizations",
            "redis_io_threaded_reads_processed",
            "redis_io_threaded_writes_processed",
            "redis_total_error_replies",
            "redis_total_reads_processed",
            "redis_total_writes_processed",
            "redis_unexpected_error_replies",
        ],
    ),
    (
        "non-histogram and non-summary metrics should not have \"_count\" suffix",
        &[
            "pg_locks_count",
            "pg_settings_tcp_keepalives_count",
            "pg_stat_activity_count",
            "pg_stat_archiver_archived_count",
            "pg_stat_archiver_failed_count",
        ],
    ),
    (
        "non-counter metrics should not have \"_total\" suffix",
        &[
            "redis_memory_used_vm_total",
            "redis_migrate_cached_sockets_total",
            "redis_rdb_saves_total",
        ],
    ),
    (
        "metric names should not contain abbreviated units",
        &[
            "redis_aof_current_rewrite_duration_sec",
            "redis_aof_last_rewrite_duration_sec",
            "redis_current_eviction_exceeded_time_ms",
            "redis_eviction_exceeded_time_ms_total",
            "redis_expire_cycle_cpu_time_ms_total",
            "redis_rdb_current_bgsave_duration_sec",
            "redis_rdb_last_bgsave_duration_sec",
        ],
    ),
];

/// A collector's body, read with the monitor's own exposition parser.
struct Scrape {
    text: String,
    families: Vec<Family>,
}

impl Scrape {
    /// Parses a body; panics (showing it) when it is not valid text 0.0.4.
    fn parse(text: String) -> Scrape {
        let families = parse::parse(&text, Format::Text004)
            .unwrap_or_else(|e| panic!("collector output does not parse: {e}\n{text}"));
        Scrape { text, families }
    }

    fn family(&self, name: &str) -> Option<&Family> {
        self.families.iter().find(|f| f.name == name)
    }

    /// The `# TYPE` of a family as Prometheus's metadata spells it (`untyped` is `unknown`).
    fn kind(&self, name: &str) -> &'static str {
        self.family(name).map_or("absent", |f| f.kind.as_str())
    }

    /// The value of the first sample named `name` whose labels include `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.families
            .iter()
            .flat_map(|f| &f.samples)
            .find(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|s| s.value)
    }

    /// The label names used by the samples named `name`.
    fn label_names(&self, name: &str) -> BTreeSet<String> {
        self.families
            .iter()
            .flat_map(|f| &f.samples)
            .filter(|s| s.name == name)
            .flat_map(|s| s.labels.iter().map(|(k, _)| k.clone()))
            .collect()
    }

    /// The sample lines, comments left out.
    fn sample_lines(&self) -> Vec<&str> {
        self.text.lines().filter(|l| !l.starts_with('#')).collect()
    }

    /// The names in `required` that have no family here.
    fn missing<'a>(&self, required: impl IntoIterator<Item = &'a &'a str>) -> Vec<&'a str> {
        required
            .into_iter()
            .copied()
            .filter(|name| self.family(name).is_none())
            .collect()
    }
}

/// A set of label names, to compare with [`Scrape::label_names`].
fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|n| (*n).to_owned()).collect()
}

/// A fresh database on the shared server: settings pointing at it and a collector's pool.
async fn pg_database() -> (Settings, PgPool) {
    let (port, name) = fresh_database().await;
    let settings = test_settings(port, &name, 0);
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(POLL_FOR)
        .connect_with(fastpick::db::pg_options(&settings.database))
        .await
        .expect("collector pool");
    (settings, pool)
}

/// A connection of the test's own to the database `settings` point at.
async fn pg_connect(settings: &Settings) -> PgConnection {
    PgConnection::connect_with(&fastpick::db::pg_options(&settings.database))
        .await
        .expect("postgres connection")
}

/// Runs one statement, panicking with it on failure.
async fn execute(conn: &mut PgConnection, sql: &'static str) {
    sqlx::query(sql)
        .execute(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// A Redis of the test's own, stopped when dropped.
async fn redis_server() -> Supervised {
    tokio::task::spawn_blocking(local::start_redis)
        .await
        .expect("redis start task")
        .expect("redis starts")
}

/// A connected pool of one on database `db` of the Redis at `port`.
async fn redis_pool(port: u16, db: u8) -> fred::clients::Pool {
    let config = Config {
        server: ServerConfig::new_centralized("127.0.0.1", port),
        database: Some(db),
        ..Default::default()
    };
    let pool = Builder::from_config(config)
        .build_pool(1)
        .expect("redis pool");
    pool.connect();
    tokio::time::timeout(POLL_FOR, pool.wait_for_connect())
        .await
        .expect("redis connects in time")
        .expect("redis connects");
    pool
}

/// Runs a collect and returns its body, failing when it outlives its timeout by far.
async fn bounded(collect: impl Future<Output = String>) -> String {
    tokio::time::timeout(COLLECT_TIMEOUT + SLACK, collect)
        .await
        .unwrap_or_else(|_| {
            panic!("a collect with a {COLLECT_TIMEOUT:?} timeout ran past {SLACK:?} more")
        })
}

/// A TCP server that accepts connections and never answers; it stops when dropped.
struct Silent {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a [`Silent`] server on a free loopback port.
async fn silent_server() -> Silent {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind silent server");
    let port = listener.local_addr().expect("addr").port();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    Silent { port, task }
}

/// A loopback port nothing listens on.
fn free_port() -> u16 {
    local::free_port().expect("free port")
}

/// Runs `promtool check metrics` on a collector's output: no parse error, and no lint
/// finding outside [`PROMTOOL_BASELINE`].
fn assert_promtool_clean(text: &str) {
    let Err(report) = promtool_check(text) else {
        return;
    };
    // promtool_check's report: a status line, promtool's lines, then "on:" and the text.
    let findings = report
        .lines()
        .skip(1)
        .take_while(|l| *l != "on:")
        .filter(|l| !l.trim().is_empty());
    let unexpected: Vec<&str> = findings.filter(|line| !in_baseline(line)).collect();
    assert!(
        unexpected.is_empty(),
        "promtool findings outside the exporters' baseline: {unexpected:#?}\n{report}"
    );
}

/// Whether a promtool line is `<family> <message>` for a pair in the baseline.
fn in_baseline(line: &str) -> bool {
    let Some((family, message)) = line.split_once(' ') else {
        return false;
    };
    PROMTOOL_BASELINE
        .iter()
        .any(|(lint, families)| *lint == message && families.contains(&family))
}

/// The major version of the PostgreSQL server `settings` point at.
async fn pg_major(settings: &Settings) -> i32 {
    let mut conn = pg_connect(settings).await;
    let num: i32 = sqlx::query_scalar("select current_setting('server_version_num')::int4")
        .fetch_one(&mut conn)
        .await
        .expect("server version");
    num / 10_000
}
