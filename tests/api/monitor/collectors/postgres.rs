//! The PostgreSQL collector read directly: the families and labels dashboards rely on, an
//! idle transaction, row and table lock waits, settings in base units, counters, a dead or
//! silent server, and promtool.

use std::time::{Duration, Instant};

use fastpick::config::Settings;
use fastpick::monitor::collect::postgres::PostgresCollector;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};

use super::{
    COLLECT_TIMEOUT, POLL_FOR, Scrape, assert_promtool_clean, bounded, execute, free_port, names,
    pg_connect, pg_database, pg_major, silent_server,
};
use crate::helpers::test_settings;

/// Families the PostgreSQL collector always reports (the ones Grafana 9628 and the lab's
/// panels read, and postgres_exporter's own bookkeeping), on every supported version.
const REQUIRED_PG: &[&str] = &[
    "pg_up",
    "pg_static",
    "pg_postmaster_start_time_seconds",
    "pg_database_size_bytes",
    "pg_database_connection_limit",
    "pg_locks_count",
    "pg_stat_activity_count",
    "pg_stat_activity_max_tx_duration",
    "pg_stat_activity_waiting",
    "pg_stat_database_numbackends",
    "pg_stat_database_xact_commit",
    "pg_stat_database_xact_rollback",
    "pg_stat_database_blks_read",
    "pg_stat_database_blks_hit",
    "pg_stat_database_tup_returned",
    "pg_stat_database_tup_fetched",
    "pg_stat_database_tup_inserted",
    "pg_stat_database_tup_updated",
    "pg_stat_database_tup_deleted",
    "pg_stat_database_conflicts",
    "pg_stat_database_temp_files",
    "pg_stat_database_temp_bytes",
    "pg_stat_database_deadlocks",
    "pg_stat_database_blk_read_time",
    "pg_stat_database_blk_write_time",
    "pg_stat_database_stats_reset",
    "pg_stat_bgwriter_buffers_clean_total",
    "pg_stat_bgwriter_maxwritten_clean_total",
    "pg_stat_bgwriter_buffers_alloc_total",
    "pg_stat_bgwriter_stats_reset_total",
    "pg_settings_max_connections",
    "pg_settings_shared_buffers_bytes",
    "pg_settings_effective_cache_size_bytes",
    "pg_settings_maintenance_work_mem_bytes",
    "pg_settings_work_mem_bytes",
    "pg_settings_max_wal_size_bytes",
    "pg_settings_random_page_cost",
    "pg_settings_seq_page_cost",
    "pg_settings_max_worker_processes",
    "pg_settings_max_parallel_workers",
    "pg_scrape_collector_success",
    "pg_scrape_collector_duration_seconds",
];

/// `pg_stat_bgwriter` families that PostgreSQL 17 moved to `pg_stat_checkpointer`.
pub(super) const REQUIRED_PG_BEFORE_17: &[&str] = &[
    "pg_stat_bgwriter_checkpoints_timed_total",
    "pg_stat_bgwriter_checkpoints_req_total",
    "pg_stat_bgwriter_checkpoint_write_time_total",
    "pg_stat_bgwriter_checkpoint_sync_time_total",
    "pg_stat_bgwriter_buffers_checkpoint_total",
    "pg_stat_bgwriter_buffers_backend_total",
    "pg_stat_bgwriter_buffers_backend_fsync_total",
];

/// Their successors on PostgreSQL 17 and later.
const REQUIRED_PG_FROM_17: &[&str] = &[
    "pg_stat_checkpointer_num_timed_total",
    "pg_stat_checkpointer_num_requested_total",
    "pg_stat_checkpointer_write_time_total",
    "pg_stat_checkpointer_sync_time_total",
    "pg_stat_checkpointer_buffers_written_total",
];

/// The parts of a PostgreSQL scrape (postgres_exporter's collector names).
const PG_PARTS: &[&str] = &[
    "database",
    "locks",
    "stat_activity",
    "stat_database",
    "stat_bgwriter",
    "stat_archiver",
    "settings",
];

/// One collect over `pool`, parsed.
async fn collect_pg(pool: &PgPool) -> Scrape {
    Scrape::parse(PostgresCollector::new(pool.clone()).collect().await)
}

/// The families required on this server's version.
async fn required_pg(settings: &Settings) -> Vec<&'static str> {
    let by_version = if pg_major(settings).await >= 17 {
        REQUIRED_PG_FROM_17
    } else {
        REQUIRED_PG_BEFORE_17
    };
    REQUIRED_PG.iter().chain(by_version).copied().collect()
}

/// A PostgreSQL pool for a server at `port` that never gives up on its own (so only the
/// collector's timeout can end a collect early).
fn patient_pg_pool(port: u16) -> PgPool {
    let settings = test_settings(port, "postgres", 0);
    PgPoolOptions::new()
        .acquire_timeout(Duration::from_secs(120))
        .connect_lazy_with(fastpick::db::pg_options(&settings.database))
}

#[tokio::test]
async fn postgres_collector_reports_every_required_family_with_pg_up_1() {
    let (settings, pool) = pg_database().await;
    let required = required_pg(&settings).await;

    let scrape = collect_pg(&pool).await;

    assert_eq!(scrape.value("pg_up", &[]), Some(1.0), "{}", scrape.text);
    let missing = scrape.missing(&required);
    assert!(
        missing.is_empty(),
        "missing {missing:?} in:\n{}",
        scrape.text
    );
    for part in PG_PARTS {
        let success = scrape.value("pg_scrape_collector_success", &[("collector", part)]);
        assert_eq!(success, Some(1.0), "collector {part}");
    }
    let db = [("datname", settings.database.name.as_str())];
    let size = scrape.value("pg_database_size_bytes", &db);
    assert!(
        size.is_some_and(|s| s > 0.0),
        "size of the test database: {size:?}"
    );
    let labels = [
        ("pg_stat_activity_count", &["datname", "state"][..]),
        ("pg_locks_count", &["datname", "mode"]),
        ("pg_stat_database_xact_commit", &["datid", "datname"]),
        ("pg_static", &["short_version", "version"]),
        ("pg_stat_bgwriter_buffers_alloc_total", &[]),
        ("pg_settings_max_connections", &[]),
    ];
    for (family, want) in labels {
        assert_eq!(
            scrape.label_names(family),
            names(want),
            "labels of {family}"
        );
    }
    let types = [
        ("pg_up", "gauge"),
        ("pg_static", "unknown"),
        ("pg_stat_database_xact_commit", "counter"),
        ("pg_stat_database_numbackends", "gauge"),
        ("pg_stat_bgwriter_buffers_alloc_total", "counter"),
        ("pg_settings_max_connections", "gauge"),
    ];
    for (family, want) in types {
        assert_eq!(scrape.kind(family), want, "type of {family}");
    }
}

#[tokio::test]
async fn postgres_collector_counts_an_open_transaction_as_idle_in_transaction() {
    let (settings, pool) = pg_database().await;
    let mut holder = pg_connect(&settings).await;
    execute(&mut holder, "begin").await;
    execute(&mut holder, "select 1").await;

    let scrape = collect_pg(&pool).await;

    let db = settings.database.name.as_str();
    let idle_tx = [("datname", db), ("state", "idle in transaction")];
    assert_eq!(scrape.value("pg_stat_activity_count", &idle_tx), Some(1.0));
    let duration = scrape.value("pg_stat_activity_max_tx_duration", &idle_tx);
    assert!(
        duration.is_some_and(|d| d > 0.0),
        "max_tx_duration {duration:?}"
    );
    let aborted = [("datname", db), ("state", "idle in transaction (aborted)")];
    assert_eq!(scrape.value("pg_stat_activity_count", &aborted), Some(0.0));
    // The collector's own backend (active while it scrapes) is left out.
    let active = [("datname", db), ("state", "active")];
    assert_eq!(scrape.value("pg_stat_activity_count", &active), Some(0.0));
    let client_wait = [("datname", db), ("wait_event_type", "Client")];
    assert_eq!(
        scrape.value("pg_stat_activity_waiting", &client_wait),
        Some(1.0)
    );
    execute(&mut holder, "rollback").await;
}

/// What a lock-wait scenario runs: tables first, then `hold` in an open transaction on one
/// connection, then `wait` on another, which blocks until the first lets go.
struct LockWait {
    setup: &'static [&'static str],
    hold: &'static str,
    wait: &'static str,
}

/// Scrapes while `scenario.wait` is blocked on `scenario.hold`, then lets both finish.
async fn scrape_during_lock_wait(settings: &Settings, pool: &PgPool, scenario: LockWait) -> Scrape {
    let mut setup = pg_connect(settings).await;
    for sql in scenario.setup {
        execute(&mut setup, sql).await;
    }
    let mut holder = pg_connect(settings).await;
    execute(&mut holder, "begin").await;
    execute(&mut holder, scenario.hold).await;
    let mut waiter = pg_connect(settings).await;
    let blocked = tokio::spawn(async move { execute(&mut waiter, scenario.wait).await });
    wait_for_lock_wait(&mut setup, &settings.database.name).await;

    let scrape = collect_pg(pool).await;

    execute(&mut holder, "rollback").await;
    tokio::time::timeout(POLL_FOR, blocked)
        .await
        .expect("the waiter finishes once the lock is released")
        .expect("waiter task");
    scrape
}

/// Polls until a backend of `database` waits on a heavyweight lock.
async fn wait_for_lock_wait(observer: &mut PgConnection, database: &str) {
    let deadline = Instant::now() + POLL_FOR;
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "select count(*) from pg_stat_activity where datname = $1 and wait_event_type = 'Lock'",
        )
        .bind(database)
        .fetch_one(&mut *observer)
        .await
        .expect("pg_stat_activity");
        if waiting > 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no lock wait in {database} within {POLL_FOR:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn postgres_collector_shows_a_row_lock_wait_in_locks_waiting_and_activity_waiting() {
    let (settings, pool) = pg_database().await;
    let scenario = LockWait {
        setup: &[
            "create table t (id int primary key, n int)",
            "insert into t values (1, 0)",
        ],
        hold: "update t set n = n + 1 where id = 1",
        wait: "update t set n = n + 1 where id = 1",
    };

    let scrape = scrape_during_lock_wait(&settings, &pool, scenario).await;

    // A row lock waits on the holder's transaction id, which has no database of its own:
    // the wait is attributed to the waiting backend's database.
    let db = settings.database.name.as_str();
    let wait = [
        ("datname", db),
        ("mode", "sharelock"),
        ("locktype", "transactionid"),
    ];
    assert_eq!(
        scrape.value("pg_locks_waiting", &wait),
        Some(1.0),
        "{}",
        scrape.text
    );
    let by_type = [("datname", db), ("wait_event_type", "Lock")];
    assert_eq!(
        scrape.value("pg_stat_activity_waiting", &by_type),
        Some(1.0)
    );
}

#[tokio::test]
async fn postgres_collector_shows_a_table_lock_wait_and_the_lock_held() {
    let (settings, pool) = pg_database().await;
    let scenario = LockWait {
        setup: &["create table t (id int)"],
        hold: "lock table t in access exclusive mode",
        wait: "select * from t",
    };

    let scrape = scrape_during_lock_wait(&settings, &pool, scenario).await;

    let db = settings.database.name.as_str();
    let wait = [
        ("datname", db),
        ("mode", "accesssharelock"),
        ("locktype", "relation"),
    ];
    assert_eq!(
        scrape.value("pg_locks_waiting", &wait),
        Some(1.0),
        "{}",
        scrape.text
    );
    let by_type = [("datname", db), ("wait_event_type", "Lock")];
    assert_eq!(
        scrape.value("pg_stat_activity_waiting", &by_type),
        Some(1.0)
    );
    let held = [("datname", db), ("mode", "accessexclusivelock")];
    let count = scrape.value("pg_locks_count", &held);
    assert!(
        count.is_some_and(|c| c >= 1.0),
        "accessexclusivelock count {count:?}"
    );
}

/// `pg_settings_*` families and how the server itself states the value in base units.
const SETTINGS_CASES: &[(&str, &str)] = &[
    (
        "pg_settings_max_connections",
        "current_setting('max_connections')::float8",
    ),
    (
        "pg_settings_shared_buffers_bytes",
        "pg_size_bytes(current_setting('shared_buffers'))::float8",
    ),
    (
        "pg_settings_work_mem_bytes",
        "pg_size_bytes(current_setting('work_mem'))::float8",
    ),
    (
        "pg_settings_effective_cache_size_bytes",
        "pg_size_bytes(current_setting('effective_cache_size'))::float8",
    ),
    (
        "pg_settings_max_wal_size_bytes",
        "pg_size_bytes(current_setting('max_wal_size'))::float8",
    ),
    (
        "pg_settings_checkpoint_timeout_seconds",
        "extract(epoch from current_setting('checkpoint_timeout')::interval)::float8",
    ),
    (
        "pg_settings_deadlock_timeout_seconds",
        "extract(epoch from current_setting('deadlock_timeout')::interval)::float8",
    ),
    (
        "pg_settings_random_page_cost",
        "current_setting('random_page_cost')::float8",
    ),
    (
        "pg_settings_fsync",
        "current_setting('fsync')::bool::int::float8",
    ),
    (
        "pg_settings_autovacuum",
        "current_setting('autovacuum')::bool::int::float8",
    ),
    // The scrape runs in a read-only transaction with a statement_timeout of its own;
    // neither may leak into what it reports.
    (
        "pg_settings_statement_timeout_seconds",
        "extract(epoch from current_setting('statement_timeout')::interval)::float8",
    ),
    (
        "pg_settings_transaction_read_only",
        "current_setting('transaction_read_only')::bool::int::float8",
    ),
];

#[tokio::test]
async fn postgres_collector_reports_settings_in_base_units() {
    let (settings, pool) = pg_database().await;
    let mut conn = pg_connect(&settings).await;

    let scrape = collect_pg(&pool).await;

    for (family, sql) in SETTINGS_CASES {
        let want: f64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("select {sql}")))
            .fetch_one(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert_eq!(
            scrape.value(family, &[]),
            Some(want),
            "{family} (server: {sql})"
        );
    }
    assert_eq!(scrape.kind("pg_settings_max_connections"), "gauge");
}

#[tokio::test]
async fn postgres_collector_counts_inserted_rows_in_stat_database() {
    let (settings, pool) = pg_database().await;
    let db = settings.database.name.clone();
    let mut writer = pg_connect(&settings).await;
    execute(&mut writer, "create table t (id int)").await;
    execute(&mut writer, "insert into t select generate_series(1, 100)").await;
    // A backend reports its statistics at the latest when it exits.
    writer.close().await.expect("writer closes");
    wait_for_inserted(&pool, &db, 100).await;

    let scrape = collect_pg(&pool).await;

    let labels = [("datname", db.as_str())];
    let inserted = scrape.value("pg_stat_database_tup_inserted", &labels);
    assert!(
        inserted.is_some_and(|n| n >= 100.0),
        "tup_inserted {inserted:?}"
    );
    let commits = scrape.value("pg_stat_database_xact_commit", &labels);
    assert!(commits.is_some_and(|n| n >= 1.0), "xact_commit {commits:?}");
    assert_eq!(scrape.kind("pg_stat_database_tup_inserted"), "counter");
}

/// Polls until the server's own statistics show `n` inserted rows in `database`.
async fn wait_for_inserted(pool: &PgPool, database: &str, n: i64) {
    let deadline = Instant::now() + POLL_FOR;
    loop {
        let inserted: i64 =
            sqlx::query_scalar("select tup_inserted from pg_stat_database where datname = $1")
                .bind(database)
                .fetch_one(pool)
                .await
                .expect("pg_stat_database");
        if inserted >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "inserts never reached the statistics"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn postgres_collector_reports_only_pg_up_0_when_nothing_listens() {
    let collector =
        PostgresCollector::new(patient_pg_pool(free_port())).with_timeout(COLLECT_TIMEOUT);

    let text = bounded(collector.collect()).await;

    let scrape = Scrape::parse(text);
    assert_eq!(scrape.sample_lines(), ["pg_up 0"]);
    assert_eq!(scrape.kind("pg_up"), "gauge");
}

#[tokio::test]
async fn postgres_collector_reports_only_pg_up_0_when_the_server_never_answers() {
    let silent = silent_server().await;
    let collector =
        PostgresCollector::new(patient_pg_pool(silent.port)).with_timeout(COLLECT_TIMEOUT);

    let text = bounded(collector.collect()).await;

    assert_eq!(Scrape::parse(text).sample_lines(), ["pg_up 0"]);
}

#[tokio::test]
async fn postgres_collector_output_passes_promtool() {
    let (_settings, pool) = pg_database().await;

    let text = PostgresCollector::new(pool).collect().await;

    assert_promtool_clean(&text);
}
