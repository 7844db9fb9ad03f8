//! The cumulative statistics views read column by column: `pg_stat_database`,
//! `pg_stat_database_conflicts`, `pg_stat_bgwriter`, `pg_stat_checkpointer` (PostgreSQL 17+)
//! and `pg_stat_archiver`.
//!
//! Each view is a table of [`Column`]s (SQL expression, family, type, help), so one query per
//! view and the family names sit side by side. Names and types follow postgres_exporter:
//! `pg_stat_database_*` keep the view's column names (counters without `_total`), the
//! background writer's carry `_total`.

use sqlx::{PgConnection, Row};

use crate::monitor::collect::exposition::{Exposition, MetricType};

/// One numeric column of a statistics view and the family it becomes.
pub(super) struct Column {
    /// SQL expression; cast to `float8` by the query builder.
    pub expr: &'static str,
    /// Family name.
    pub name: &'static str,
    /// Family type.
    pub kind: MetricType,
    /// Family help.
    pub help: &'static str,
}

const fn counter(expr: &'static str, name: &'static str, help: &'static str) -> Column {
    Column {
        expr,
        name,
        kind: MetricType::Counter,
        help,
    }
}

const fn gauge(expr: &'static str, name: &'static str, help: &'static str) -> Column {
    Column {
        expr,
        name,
        kind: MetricType::Gauge,
        help,
    }
}

/// Epoch seconds of a view's `stats_reset`, 0 when never reset (as the exporter reports it).
const STATS_RESET: &str = "coalesce(extract(epoch from stats_reset), 0)";

#[rustfmt::skip]
const STAT_DATABASE: &[Column] = &[
    gauge("numbackends", "pg_stat_database_numbackends", "Number of backends currently connected to this database"),
    counter("xact_commit", "pg_stat_database_xact_commit", "Number of transactions in this database that have been committed"),
    counter("xact_rollback", "pg_stat_database_xact_rollback", "Number of transactions in this database that have been rolled back"),
    counter("blks_read", "pg_stat_database_blks_read", "Number of disk blocks read in this database"),
    counter("blks_hit", "pg_stat_database_blks_hit", "Number of times disk blocks were found already in the buffer cache"),
    counter("tup_returned", "pg_stat_database_tup_returned", "Number of rows returned by queries in this database"),
    counter("tup_fetched", "pg_stat_database_tup_fetched", "Number of rows fetched by queries in this database"),
    counter("tup_inserted", "pg_stat_database_tup_inserted", "Number of rows inserted by queries in this database"),
    counter("tup_updated", "pg_stat_database_tup_updated", "Number of rows updated by queries in this database"),
    counter("tup_deleted", "pg_stat_database_tup_deleted", "Number of rows deleted by queries in this database"),
    counter("conflicts", "pg_stat_database_conflicts", "Number of queries canceled due to conflicts with recovery in this database"),
    counter("temp_files", "pg_stat_database_temp_files", "Number of temporary files created by queries in this database"),
    counter("temp_bytes", "pg_stat_database_temp_bytes", "Total amount of data written to temporary files by queries in this database"),
    counter("deadlocks", "pg_stat_database_deadlocks", "Number of deadlocks detected in this database"),
    counter("blk_read_time", "pg_stat_database_blk_read_time", "Time spent reading data file blocks by backends in this database, in milliseconds"),
    counter("blk_write_time", "pg_stat_database_blk_write_time", "Time spent writing data file blocks by backends in this database, in milliseconds"),
    counter(STATS_RESET, "pg_stat_database_stats_reset", "Time at which these statistics were last reset"),
];

/// `active_time` exists from PostgreSQL 14; milliseconds in the view, seconds here.
const STAT_DATABASE_14: &[Column] = &[counter(
    "active_time / 1000.0",
    "pg_stat_database_active_time_seconds_total",
    "Time spent executing SQL statements in this database, in seconds",
)];

#[rustfmt::skip]
const CONFLICTS: &[Column] = &[
    counter("confl_tablespace", "pg_stat_database_conflicts_confl_tablespace", "Number of queries in this database that have been canceled due to dropped tablespaces"),
    counter("confl_lock", "pg_stat_database_conflicts_confl_lock", "Number of queries in this database that have been canceled due to lock timeouts"),
    counter("confl_snapshot", "pg_stat_database_conflicts_confl_snapshot", "Number of queries in this database that have been canceled due to old snapshots"),
    counter("confl_bufferpin", "pg_stat_database_conflicts_confl_bufferpin", "Number of queries in this database that have been canceled due to pinned buffers"),
    counter("confl_deadlock", "pg_stat_database_conflicts_confl_deadlock", "Number of queries in this database that have been canceled due to deadlocks"),
];

/// `pg_stat_bgwriter` before PostgreSQL 17, checkpoint columns included.
#[rustfmt::skip]
const BGWRITER_BEFORE_17: &[Column] = &[
    counter("checkpoints_timed", "pg_stat_bgwriter_checkpoints_timed_total", "Number of scheduled checkpoints that have been performed"),
    counter("checkpoints_req", "pg_stat_bgwriter_checkpoints_req_total", "Number of requested checkpoints that have been performed"),
    counter("checkpoint_write_time", "pg_stat_bgwriter_checkpoint_write_time_total", "Time spent writing files to disk during checkpoints, in milliseconds"),
    counter("checkpoint_sync_time", "pg_stat_bgwriter_checkpoint_sync_time_total", "Time spent synchronizing files to disk during checkpoints, in milliseconds"),
    counter("buffers_checkpoint", "pg_stat_bgwriter_buffers_checkpoint_total", "Number of buffers written during checkpoints"),
    counter("buffers_clean", "pg_stat_bgwriter_buffers_clean_total", "Number of buffers written by the background writer"),
    counter("maxwritten_clean", "pg_stat_bgwriter_maxwritten_clean_total", "Number of times the background writer stopped a cleaning scan because it had written too many buffers"),
    counter("buffers_backend", "pg_stat_bgwriter_buffers_backend_total", "Number of buffers written directly by a backend"),
    counter("buffers_backend_fsync", "pg_stat_bgwriter_buffers_backend_fsync_total", "Number of times a backend had to execute its own fsync call"),
    counter("buffers_alloc", "pg_stat_bgwriter_buffers_alloc_total", "Number of buffers allocated"),
    counter(STATS_RESET, "pg_stat_bgwriter_stats_reset_total", "Time at which these statistics were last reset"),
];

/// `pg_stat_bgwriter` from PostgreSQL 17: checkpoints moved to `pg_stat_checkpointer`.
#[rustfmt::skip]
const BGWRITER_17: &[Column] = &[
    counter("buffers_clean", "pg_stat_bgwriter_buffers_clean_total", "Number of buffers written by the background writer"),
    counter("maxwritten_clean", "pg_stat_bgwriter_maxwritten_clean_total", "Number of times the background writer stopped a cleaning scan because it had written too many buffers"),
    counter("buffers_alloc", "pg_stat_bgwriter_buffers_alloc_total", "Number of buffers allocated"),
    counter(STATS_RESET, "pg_stat_bgwriter_stats_reset_total", "Time at which these statistics were last reset"),
];

#[rustfmt::skip]
const CHECKPOINTER_17: &[Column] = &[
    counter("num_timed", "pg_stat_checkpointer_num_timed_total", "Number of scheduled checkpoints due to timeout"),
    counter("num_requested", "pg_stat_checkpointer_num_requested_total", "Number of requested checkpoints that have been performed"),
    counter("restartpoints_timed", "pg_stat_checkpointer_restartpoints_timed_total", "Number of scheduled restartpoints due to timeout or after a failed attempt"),
    counter("restartpoints_req", "pg_stat_checkpointer_restartpoints_req_total", "Number of requested restartpoints"),
    counter("restartpoints_done", "pg_stat_checkpointer_restartpoints_done_total", "Number of restartpoints that have been performed"),
    counter("write_time", "pg_stat_checkpointer_write_time_total", "Time spent writing files to disk during checkpoints and restartpoints, in milliseconds"),
    counter("sync_time", "pg_stat_checkpointer_sync_time_total", "Time spent synchronizing files to disk during checkpoints and restartpoints, in milliseconds"),
    counter("buffers_written", "pg_stat_checkpointer_buffers_written_total", "Number of buffers written during checkpoints and restartpoints"),
    counter(STATS_RESET, "pg_stat_checkpointer_stats_reset_total", "Time at which these statistics were last reset"),
];

const ARCHIVER: &[Column] = &[
    counter(
        "archived_count",
        "pg_stat_archiver_archived_count",
        "Number of WAL files that have been successfully archived",
    ),
    counter(
        "failed_count",
        "pg_stat_archiver_failed_count",
        "Number of failed attempts for archiving WAL files",
    ),
    gauge(
        "extract(epoch from clock_timestamp() - last_archived_time)",
        "pg_stat_archiver_last_archive_age",
        "Time in seconds since last WAL segment was successfully archived",
    ),
];

/// The `(label, SQL expression)` pairs of the per-database views.
const DATABASE_LABELS: &[(&str, &str)] = &[("datid", "datid"), ("datname", "datname")];

/// `pg_stat_database` (rows with a database name) and `pg_stat_database_conflicts`.
pub(super) async fn stat_database(
    conn: &mut PgConnection,
    exp: &mut Exposition,
    version_num: i32,
) -> Result<(), sqlx::Error> {
    let mut columns: Vec<&Column> = STAT_DATABASE.iter().collect();
    if version_num >= 140_000 {
        columns.extend(STAT_DATABASE_14);
    }
    let from = "pg_stat_database where datname is not null";
    read_view(&mut *conn, exp, from, DATABASE_LABELS, &columns).await?;
    let conflicts: Vec<&Column> = CONFLICTS.iter().collect();
    read_view(
        conn,
        exp,
        "pg_stat_database_conflicts",
        DATABASE_LABELS,
        &conflicts,
    )
    .await
}

/// `pg_stat_bgwriter`, and from PostgreSQL 17 `pg_stat_checkpointer` as well.
pub(super) async fn stat_bgwriter(
    conn: &mut PgConnection,
    exp: &mut Exposition,
    version_num: i32,
) -> Result<(), sqlx::Error> {
    if version_num < 170_000 {
        let columns: Vec<&Column> = BGWRITER_BEFORE_17.iter().collect();
        return read_view(conn, exp, "pg_stat_bgwriter", &[], &columns).await;
    }
    let bgwriter: Vec<&Column> = BGWRITER_17.iter().collect();
    read_view(&mut *conn, exp, "pg_stat_bgwriter", &[], &bgwriter).await?;
    let checkpointer: Vec<&Column> = CHECKPOINTER_17.iter().collect();
    read_view(conn, exp, "pg_stat_checkpointer", &[], &checkpointer).await
}

/// `pg_stat_archiver`; the age is left out until something has been archived.
pub(super) async fn stat_archiver(
    conn: &mut PgConnection,
    exp: &mut Exposition,
) -> Result<(), sqlx::Error> {
    let columns: Vec<&Column> = ARCHIVER.iter().collect();
    read_view(conn, exp, "pg_stat_archiver", &[], &columns).await
}

/// Builds `select <labels>, <columns> from <from>`: labels as text, columns as float8.
fn view_sql(from: &str, labels: &[(&str, &str)], columns: &[&Column]) -> String {
    let mut exprs: Vec<String> = labels
        .iter()
        .map(|(_, expr)| format!("({expr})::text"))
        .collect();
    exprs.extend(columns.iter().map(|c| format!("({})::float8", c.expr)));
    format!("select {} from {from}", exprs.join(", "))
}

/// Runs one view query and adds a sample per row and column; a NULL value adds nothing.
async fn read_view(
    conn: &mut PgConnection,
    exp: &mut Exposition,
    from: &str,
    labels: &[(&str, &str)],
    columns: &[&Column],
) -> Result<(), sqlx::Error> {
    // Every part of the statement is a constant of this module; nothing comes from input.
    let sql = sqlx::AssertSqlSafe(view_sql(from, labels, columns));
    let rows = sqlx::query(sql).fetch_all(conn).await?;
    for row in rows {
        let mut label_values: Vec<(&str, String)> = Vec::with_capacity(labels.len());
        for (i, (label, _)) in labels.iter().enumerate() {
            let value: Option<String> = row.try_get(i)?;
            label_values.push((label, value.unwrap_or_default()));
        }
        let pairs: Vec<(&str, &str)> = label_values
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        for (j, column) in columns.iter().enumerate() {
            let value: Option<f64> = row.try_get(labels.len() + j)?;
            if let Some(value) = value {
                exp.family(column.name, column.kind, column.help)
                    .sample(&pairs, value);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_sql_casts_labels_to_text_and_values_to_float8() {
        let columns: Vec<&Column> = ARCHIVER.iter().take(2).collect();

        let sql = view_sql("pg_stat_archiver", &[("datid", "datid")], &columns);

        assert_eq!(
            sql,
            "select (datid)::text, (archived_count)::float8, (failed_count)::float8 \
             from pg_stat_archiver"
        );
    }

    #[test]
    fn bgwriter_tables_match_the_exporter_names_per_version() {
        let before: Vec<&str> = BGWRITER_BEFORE_17.iter().map(|c| c.name).collect();
        let after: Vec<&str> = BGWRITER_17.iter().map(|c| c.name).collect();

        assert!(before.contains(&"pg_stat_bgwriter_checkpoints_timed_total"));
        assert!(before.contains(&"pg_stat_bgwriter_buffers_backend_fsync_total"));
        assert!(!after.contains(&"pg_stat_bgwriter_checkpoints_timed_total"));
        assert!(after.iter().all(|name| before.contains(name)));
        assert!(
            CHECKPOINTER_17
                .iter()
                .all(|c| c.name.starts_with("pg_stat_checkpointer_") && c.name.ends_with("_total"))
        );
    }
}
