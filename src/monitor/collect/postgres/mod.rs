//! The built-in PostgreSQL collector, standing in for postgres_exporter: one call reads the
//! server's statistics views and returns Prometheus text with the exporter's family names,
//! label names and types, so the PostgreSQL dashboard (Grafana 9628) reads it unchanged.
//!
//! One scrape is one read-only transaction with `statement_timeout` set to the collector's
//! timeout, and the whole scrape is bounded by the same timeout. Each part (the exporter's
//! "collectors": `database`, `locks`, `stat_activity`, ...) runs in its own savepoint, so a
//! failing part leaves the others intact and shows as
//! `pg_scrape_collector_success{collector="..."} 0`.
//!
//! Families (see the submodules for details):
//! - `pg_up`; `pg_static{short_version,version}`, `pg_postmaster_start_time_seconds`
//! - `pg_database_size_bytes`, `pg_database_connection_limit` (`activity.rs`)
//! - `pg_locks_count`, `pg_stat_activity_count`, `pg_stat_activity_max_tx_duration`
//! - lab additions: `pg_locks_waiting`, `pg_stat_activity_waiting` (`activity.rs`)
//! - `pg_stat_database_*`, `pg_stat_database_conflicts_*`, `pg_stat_bgwriter_*`,
//!   `pg_stat_checkpointer_*` (PostgreSQL 17+), `pg_stat_archiver_*` (`stats.rs`)
//! - `pg_settings_*` (`settings.rs`)
//! - `pg_scrape_collector_success`, `pg_scrape_collector_duration_seconds`
//!
//! No family carries a `server` or `instance` label: the scraper adds `instance` and `job`.

mod activity;
mod settings;
mod stats;

use std::time::{Duration, Instant};

use sqlx::{Acquire, PgConnection, PgPool};

use crate::monitor::collect::DEFAULT_TIMEOUT;
use crate::monitor::collect::exposition::{Exposition, MetricType};

/// Reads one PostgreSQL server's statistics; cheap to clone (the pool is a handle).
#[derive(Debug, Clone)]
pub struct PostgresCollector {
    pool: PgPool,
    timeout: Duration,
}

/// The parts of a scrape, named after postgres_exporter's collectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Database,
    Locks,
    StatActivity,
    StatDatabase,
    StatBgwriter,
    StatArchiver,
    Settings,
}

impl Part {
    const ALL: [Part; 7] = [
        Part::Database,
        Part::Locks,
        Part::StatActivity,
        Part::StatDatabase,
        Part::StatBgwriter,
        Part::StatArchiver,
        Part::Settings,
    ];

    fn name(self) -> &'static str {
        match self {
            Part::Database => "database",
            Part::Locks => "locks",
            Part::StatActivity => "stat_activity",
            Part::StatDatabase => "stat_database",
            Part::StatBgwriter => "stat_bgwriter",
            Part::StatArchiver => "stat_archiver",
            Part::Settings => "settings",
        }
    }

    async fn run(
        self,
        conn: &mut PgConnection,
        exp: &mut Exposition,
        server: &ServerInfo,
    ) -> Result<(), sqlx::Error> {
        match self {
            Part::Database => activity::database(conn, exp).await,
            Part::Locks => activity::locks(conn, exp).await,
            Part::StatActivity => activity::stat_activity(conn, exp).await,
            Part::StatDatabase => stats::stat_database(conn, exp, server.version_num).await,
            Part::StatBgwriter => stats::stat_bgwriter(conn, exp, server.version_num).await,
            Part::StatArchiver => stats::stat_archiver(conn, exp).await,
            Part::Settings => settings::collect(conn, exp).await,
        }
    }
}

/// What the server says about itself at the start of a scrape.
#[derive(Debug)]
struct ServerInfo {
    /// `version()`.
    version: String,
    /// `server_version_num`, e.g. 150018.
    version_num: i32,
    /// `pg_postmaster_start_time()` in Unix seconds.
    start_time: f64,
}

const SERVER_SQL: &str = "select version(), current_setting('server_version_num')::int4, \
     extract(epoch from pg_postmaster_start_time())::float8";

/// The state of one scrape, kept outside the timed future so a timeout keeps what finished.
#[derive(Debug, Default)]
struct Scrape {
    body: Exposition,
    connected: bool,
    /// `(part, succeeded, seconds)` for every part that finished.
    outcomes: Vec<(Part, bool, f64)>,
}

impl PostgresCollector {
    /// Builds a collector over `pool` with the default timeout of 5 s.
    pub fn new(pool: PgPool) -> PostgresCollector {
        PostgresCollector {
            pool,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Sets the bound on one scrape (also used as `statement_timeout`).
    pub fn with_timeout(mut self, timeout: Duration) -> PostgresCollector {
        self.timeout = timeout;
        self
    }

    /// Scrapes the server once and renders Prometheus text (format 0.0.4).
    ///
    /// Never fails and never takes (much) longer than the timeout: when no connection or
    /// first query succeeds in time the body is just `pg_up 0`; a part that fails or does
    /// not finish is reported through `pg_scrape_collector_success` and left out.
    pub async fn collect(&self) -> String {
        let mut scrape = Scrape::default();
        match tokio::time::timeout(self.timeout, self.scrape(&mut scrape)).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!(error = %err, "postgres scrape failed"),
            Err(_) => tracing::warn!(
                timeout_ms = self.timeout.as_millis() as u64,
                "postgres scrape timed out"
            ),
        }
        render(&scrape)
    }

    async fn scrape(&self, scrape: &mut Scrape) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin_with("begin read only").await?;
        sqlx::query("select set_config('statement_timeout', $1, true)")
            .bind(self.timeout.as_millis().max(1).to_string())
            .execute(&mut *tx)
            .await?;
        let (version, version_num, start_time): (String, i32, f64) =
            sqlx::query_as(SERVER_SQL).fetch_one(&mut *tx).await?;
        let server = ServerInfo {
            version,
            version_num,
            start_time,
        };
        scrape.connected = true;
        add_static(&mut scrape.body, &server);
        for part in Part::ALL {
            let started = Instant::now();
            let mut savepoint = (&mut *tx).begin().await?;
            let result = part.run(&mut savepoint, &mut scrape.body, &server).await;
            let succeeded = match result {
                Ok(()) => {
                    savepoint.commit().await?;
                    true
                }
                Err(err) => {
                    tracing::warn!(collector = part.name(), error = %err, "postgres collector failed");
                    savepoint.rollback().await?;
                    false
                }
            };
            let seconds = started.elapsed().as_secs_f64();
            scrape.outcomes.push((part, succeeded, seconds));
        }
        // Read-only: nothing to keep.
        tx.rollback().await
    }
}

/// `pg_static` and `pg_postmaster_start_time_seconds`.
fn add_static(exp: &mut Exposition, server: &ServerInfo) {
    let short_version = short_version(server.version_num);
    exp.family(
        "pg_static",
        MetricType::Untyped,
        "Version string as reported by postgres",
    )
    .sample(
        &[
            ("short_version", &short_version),
            ("version", &server.version),
        ],
        1.0,
    );
    exp.gauge(
        "pg_postmaster_start_time_seconds",
        "Time at which postmaster started",
        &[],
        server.start_time,
    );
}

/// `major.minor.patch` from `server_version_num` (150018 is 15.18.0, 90624 is 9.6.24).
fn short_version(version_num: i32) -> String {
    if version_num >= 100_000 {
        format!("{}.{}.0", version_num / 10_000, version_num % 10_000)
    } else {
        format!(
            "{}.{}.{}",
            version_num / 10_000,
            version_num / 100 % 100,
            version_num % 100
        )
    }
}

/// The scrape body: `pg_up`, what was collected, then how each part went.
fn render(scrape: &Scrape) -> String {
    let mut head = Exposition::new();
    head.gauge(
        "pg_up",
        "Whether the last scrape of metrics from PostgreSQL was able to connect to the server (1 for yes, 0 for no).",
        &[],
        if scrape.connected { 1.0 } else { 0.0 },
    );
    if !scrape.connected {
        return head.render();
    }
    let mut tail = Exposition::new();
    for part in Part::ALL {
        let outcome = scrape.outcomes.iter().find(|(p, _, _)| *p == part);
        let (succeeded, seconds) = outcome.map_or((false, None), |(_, ok, s)| (*ok, Some(*s)));
        let labels = [("collector", part.name())];
        if let Some(seconds) = seconds {
            tail.gauge(
                "pg_scrape_collector_duration_seconds",
                "postgres_exporter: Duration of a collector scrape.",
                &labels,
                seconds,
            );
        }
        tail.gauge(
            "pg_scrape_collector_success",
            "postgres_exporter: Whether a collector succeeded.",
            &labels,
            if succeeded { 1.0 } else { 0.0 },
        );
    }
    format!("{}{}{}", head.render(), scrape.body.render(), tail.render())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_version_reads_old_and_new_numbering() {
        assert_eq!(short_version(150018), "15.18.0");
        assert_eq!(short_version(170002), "17.2.0");
        assert_eq!(short_version(90624), "9.6.24");
    }

    #[test]
    fn render_without_connection_is_only_pg_up_0() {
        let scrape = Scrape::default();

        let text = render(&scrape);

        assert_eq!(
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .collect::<Vec<_>>(),
            ["pg_up 0"]
        );
    }

    #[test]
    fn render_marks_unfinished_parts_as_failed() {
        let scrape = Scrape {
            connected: true,
            outcomes: vec![(Part::Database, true, 0.5), (Part::Locks, false, 0.1)],
            ..Scrape::default()
        };

        let text = render(&scrape);

        assert!(text.contains("pg_up 1\n"));
        assert!(text.contains("pg_scrape_collector_success{collector=\"database\"} 1\n"));
        assert!(text.contains("pg_scrape_collector_success{collector=\"locks\"} 0\n"));
        assert!(text.contains("pg_scrape_collector_success{collector=\"settings\"} 0\n"));
        assert!(
            text.contains("pg_scrape_collector_duration_seconds{collector=\"database\"} 0.5\n")
        );
        assert!(!text.contains("pg_scrape_collector_duration_seconds{collector=\"settings\"}"));
    }
}
