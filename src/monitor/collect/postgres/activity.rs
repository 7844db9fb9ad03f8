//! What the server is doing now: database sizes, locks and backends, as postgres_exporter's
//! `database`, `locks` and `stat_activity` collectors report them, plus two families of our
//! own for the lab:
//!
//! - `pg_locks_waiting{datname,mode,locktype}`: lock requests not yet granted (`pg_locks`
//!   where `not granted`). `datname` is the waiting backend's database, so waits on a
//!   transaction id (row locks, `select ... for update`) are attributed too. Only combinations
//!   that occur are reported: no series means nothing waits.
//! - `pg_stat_activity_waiting{datname,wait_event_type}`: client backends that are not idle
//!   and wait on something, by `wait_event_type` (`Lock`, `LWLock`, `IO`, `Client`, ...).
//!   An idle-in-transaction backend waits on `Client`. The common types are reported as 0 per
//!   database when nothing waits, so panels show a flat line instead of a gap.
//!
//! The collector's own backend is left out of `pg_stat_activity_*` (as the exporter does) and
//! of `pg_locks_*` (its read-only scrape transaction would otherwise show up in every scrape).

use sqlx::PgConnection;

use crate::monitor::collect::exposition::Exposition;

const DATABASE_SQL: &str = "select datname::text, datconnlimit::float8, \
     case when has_database_privilege(oid, 'CONNECT') then pg_database_size(oid)::float8 end \
     from pg_database order by datname";

/// `pg_database_connection_limit` and `pg_database_size_bytes`, per database. The size is
/// left out for a database the monitoring role may not connect to.
pub(super) async fn database(
    conn: &mut PgConnection,
    exp: &mut Exposition,
) -> Result<(), sqlx::Error> {
    let rows: Vec<(String, f64, Option<f64>)> =
        sqlx::query_as(DATABASE_SQL).fetch_all(conn).await?;
    for (datname, limit, size_opt) in rows {
        let labels = [("datname", datname.as_str())];
        exp.gauge(
            "pg_database_connection_limit",
            "Connection limit set for the database",
            &labels,
            limit,
        );
        if let Some(size) = size_opt {
            exp.gauge(
                "pg_database_size_bytes",
                "Disk space used by the database",
                &labels,
                size,
            );
        }
    }
    Ok(())
}

const LOCKS_SQL: &str = "select d.datname::text, m.mode, coalesce(l.n, 0)::float8 \
     from (values ('accesssharelock'), ('rowsharelock'), ('rowexclusivelock'), \
                  ('shareupdateexclusivelock'), ('sharelock'), ('sharerowexclusivelock'), \
                  ('exclusivelock'), ('accessexclusivelock'), ('sireadlock')) as m(mode) \
     cross join pg_database d \
     left join (select database, lower(mode) as mode, count(*) as n from pg_locks \
                where database is not null and pid is distinct from pg_backend_pid() \
                group by database, lower(mode)) l \
       on l.database = d.oid and l.mode = m.mode \
     order by 1, 2";

const LOCKS_WAITING_SQL: &str = "select coalesce(a.datname, d.datname, '')::text, \
       lower(l.mode), l.locktype, count(*)::float8 \
     from pg_locks l \
     left join pg_stat_activity a on a.pid = l.pid \
     left join pg_database d on d.oid = l.database \
     where not l.granted \
     group by 1, 2, 3 order by 1, 2, 3";

/// `pg_locks_count{datname,mode}` (every mode, 0 included) and `pg_locks_waiting`.
pub(super) async fn locks(
    conn: &mut PgConnection,
    exp: &mut Exposition,
) -> Result<(), sqlx::Error> {
    let counts: Vec<(String, String, f64)> =
        sqlx::query_as(LOCKS_SQL).fetch_all(&mut *conn).await?;
    for (datname, mode, count) in counts {
        exp.gauge(
            "pg_locks_count",
            "Number of locks",
            &[("datname", &datname), ("mode", &mode)],
            count,
        );
    }
    let waiting: Vec<(String, String, String, f64)> =
        sqlx::query_as(LOCKS_WAITING_SQL).fetch_all(conn).await?;
    for (datname, mode, locktype, count) in waiting {
        exp.gauge(
            "pg_locks_waiting",
            "Number of lock requests not yet granted, by the waiting backend's database",
            &[
                ("datname", &datname),
                ("mode", &mode),
                ("locktype", &locktype),
            ],
            count,
        );
    }
    Ok(())
}

const ACTIVITY_SQL: &str = "select d.datname::text, s.state, coalesce(a.n, 0)::float8, \
       coalesce(a.max_tx, 0)::float8 \
     from (values ('active'), ('idle'), ('idle in transaction'), \
                  ('idle in transaction (aborted)'), ('fastpath function call'), \
                  ('disabled')) as s(state) \
     cross join pg_database d \
     left join (select datname, state, count(*) as n, \
                       max(extract(epoch from clock_timestamp() - xact_start)) as max_tx \
                from pg_stat_activity where pid <> pg_backend_pid() \
                group by datname, state) a \
       on a.datname = d.datname and a.state = s.state \
     order by 1, 2";

const WAITING_SQL: &str = "with waiting as ( \
       select datname, wait_event_type, count(*) as n from pg_stat_activity \
       where pid <> pg_backend_pid() and backend_type = 'client backend' \
         and state is distinct from 'idle' and wait_event_type is not null \
       group by datname, wait_event_type) \
     select d.datname::text, t.wait_event_type::text, coalesce(w.n, 0)::float8 \
     from pg_database d \
     cross join (select unnest(array['Activity', 'BufferPin', 'Client', 'Extension', 'IO', \
                                     'IPC', 'Lock', 'LWLock', 'Timeout']) \
                 union select wait_event_type from waiting) as t(wait_event_type) \
     left join waiting w on w.datname = d.datname and w.wait_event_type = t.wait_event_type \
     order by 1, 2";

/// `pg_stat_activity_count` and `pg_stat_activity_max_tx_duration` per database and state
/// (every state, 0 included), and `pg_stat_activity_waiting`.
pub(super) async fn stat_activity(
    conn: &mut PgConnection,
    exp: &mut Exposition,
) -> Result<(), sqlx::Error> {
    let rows: Vec<(String, String, f64, f64)> =
        sqlx::query_as(ACTIVITY_SQL).fetch_all(&mut *conn).await?;
    for (datname, state, count, max_tx) in rows {
        let labels = [("datname", datname.as_str()), ("state", state.as_str())];
        exp.gauge(
            "pg_stat_activity_count",
            "number of connections in this state",
            &labels,
            count,
        );
        exp.gauge(
            "pg_stat_activity_max_tx_duration",
            "max duration in seconds any active transaction has been running",
            &labels,
            max_tx,
        );
    }
    let waiting: Vec<(String, String, f64)> = sqlx::query_as(WAITING_SQL).fetch_all(conn).await?;
    for (datname, wait_event_type, count) in waiting {
        exp.gauge(
            "pg_stat_activity_waiting",
            "Number of non-idle client backends waiting, by wait event type",
            &[("datname", &datname), ("wait_event_type", &wait_event_type)],
            count,
        );
    }
    Ok(())
}
