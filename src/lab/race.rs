//! `fastpick lab race`: for each issue strategy, a fresh coupon with the given stock, the
//! whole race at once (every VU asks at the same instant, as `fastpick load race`), then the
//! database's truth and the servers' figures. A strategy is exact when the coupon's counter,
//! its rows and the successes the clients saw are one number, no user holds it twice, and
//! the stock was not oversold.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::SystemTime;

use clap::Args;
use serde::Serialize;

use crate::config::IssueStrategy;
use crate::lab::api::{Admin, Ledger};
use crate::lab::report::{self, Table, count, figure};
use crate::lab::server::{Monitor, ServerFigures};
use crate::lab::{LabCommon, each, verdict};
use crate::load::race::{RaceArgs, race};
use crate::load::{announced, race as load_race};

/// `fastpick lab race`
#[derive(Debug, Clone, Args)]
pub struct RaceLabArgs {
    #[command(flatten)]
    pub common: LabCommon,
    /// Virtual users, one request each, all at the same instant (the original: 1,000).
    #[arg(long, default_value_t = 1000)]
    pub vus: usize,
    /// The coupon's stock (the original's race coupon: 100).
    #[arg(long, default_value_t = 100)]
    pub stock: u32,
    /// The strategies to race, in order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_values_t = [IssueStrategy::DbLock, IssueStrategy::DbAtomic, IssueStrategy::RedisGate]
    )]
    pub strategies: Vec<IssueStrategy>,
}

/// One strategy's race.
#[derive(Debug, Clone, Serialize)]
pub struct RaceRow {
    pub strategy: &'static str,
    pub coupon_id: i64,
    pub wall_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub requests: u64,
    /// Answers the race does not expect (the original's check "success or out of stock"
    /// failed): 5xx, other codes, connection errors, timeouts.
    pub errors: u64,
    /// k6's http_req_failed rate (no answer, or a status >= 400): shown beside the lab's own
    /// verdict, never judged, since a sold-out 400 is an expected outcome of a race.
    pub http_req_failed: f64,
    /// 200 answers: the coupons the clients were told they got.
    pub successes: u64,
    /// What a correct race issues: the stock, or every VU when fewer.
    pub expected: i64,
    pub exact: bool,
    pub ledger: Ledger,
    pub server: ServerFigures,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dashboard: Option<String>,
}

/// The whole report.
#[derive(Debug, Serialize)]
pub struct RaceReport {
    pub experiment: &'static str,
    pub base_url: String,
    pub vus: usize,
    pub stock: u32,
    pub rows: Vec<RaceRow>,
}

/// Tells whether a race's outcome is exact.
pub fn is_exact(ledger: &Ledger, successes: u64) -> bool {
    ledger.issued_rows == ledger.issued_quantity
        && u64::try_from(ledger.issued_quantity).is_ok_and(|n| n == successes)
        && ledger.duplicate_rows == 0
        && ledger.issued_quantity <= ledger.total_quantity
}

/// Runs the experiment.
pub async fn run(args: &RaceLabArgs) -> anyhow::Result<()> {
    if args.vus == 0 || args.stock == 0 {
        anyhow::bail!("--vus and --stock must be at least 1");
    }
    let common = &args.common;
    let (admin, before) = common.admin().await?;
    let monitor = common.monitor()?;
    let tokens = admin.lab_users(args.vus).await?;
    let (rows, ran) = each(
        &admin,
        &before,
        &args.strategies,
        IssueStrategy::as_str,
        |strategy| one(args, &admin, monitor.as_ref(), &tokens, strategy),
    )
    .await;
    let report = RaceReport {
        experiment: "race",
        base_url: common.base_url.clone(),
        vus: args.vus,
        stock: args.stock,
        rows,
    };
    let table = table(&report.rows);
    let title = format!(
        "Issue race: {} VUs for a stock of {} at {}",
        args.vus, args.stock, common.base_url
    );
    report::publish(
        &report,
        &title,
        &table,
        &notes(&report.rows),
        common.json.as_deref(),
        common.markdown.as_deref(),
    )?;
    let inexact = report.rows.iter().filter(|r| !r.exact).map(|r| r.strategy);
    verdict(ran, inexact, "not exact")
}

/// Races one strategy on a fresh coupon.
async fn one(
    args: &RaceLabArgs,
    admin: &Admin,
    monitor: Option<&Monitor>,
    tokens: &[String],
    strategy: IssueStrategy,
) -> anyhow::Result<RaceRow> {
    admin.switch(Some(strategy.as_str()), None).await?;
    let title = format!("lab race · {} · {} VUs", strategy.as_str(), args.vus);
    let coupon_id = admin.create_coupon(&title, args.stock).await?;
    let race_args = RaceArgs {
        common: args.common.load_args(),
        users: PathBuf::new(),
        coupon_id,
        vus: args.vus,
        max_failed_rate: 0.05,
        connect_at_barrier: false,
    };
    let mut tags: BTreeMap<String, String> = load_race::tags(&race_args);
    tags.insert("strategy".into(), strategy.as_str().into());
    tags.insert("stock".into(), args.stock.to_string());
    tags.insert("lab".into(), "race".into());
    let started = SystemTime::now();
    let summary = announced(
        &race_args.common,
        "race",
        tags,
        race(&race_args, tokens.to_vec()),
    )
    .await?;
    let ended = SystemTime::now();
    let ledger = admin.ledger(coupon_id).await?;
    let server = match monitor {
        Some(monitor) => monitor.figures(started, ended).await,
        None => ServerFigures::default(),
    };
    let successes = summary.outcome("200");
    Ok(RaceRow {
        strategy: strategy.as_str(),
        coupon_id,
        wall_s: summary.duration_s,
        p50_ms: summary.latency_ms.p50,
        p99_ms: summary.latency_ms.p99,
        requests: summary.requests,
        errors: summary.unexpected,
        http_req_failed: summary.http_req_failed.rate,
        successes,
        expected: i64::from(args.stock).min(args.vus as i64),
        exact: is_exact(&ledger, successes),
        ledger,
        server,
        dashboard: summary.dashboard,
    })
}

fn table(rows: &[RaceRow]) -> Table {
    let mut table = Table::new(&[
        "strategy",
        "wall s",
        "p50 ms",
        "p99 ms",
        "errors",
        "http_req_failed",
        "issued",
        "rows",
        "dup",
        "exact",
        "pg lock waits max",
        "pg active max",
        "redis cmds",
        "redis up min",
        "app cpu s",
    ]);
    for r in rows {
        table.push(vec![
            r.strategy.to_owned(),
            format!("{:.2}", r.wall_s),
            format!("{:.1}", r.p50_ms),
            format!("{:.1}", r.p99_ms),
            count(r.errors),
            format!("{:.1}%", r.http_req_failed * 100.0),
            format!("{}/{}", r.ledger.issued_quantity, r.expected),
            count(r.ledger.issued_rows.max(0) as u64),
            count(r.ledger.duplicate_rows.max(0) as u64),
            if r.exact { "yes" } else { "NO" }.to_owned(),
            figure(r.server.pg_lock_waits_max, 0),
            figure(r.server.pg_active_max, 0),
            figure(r.server.redis_commands, 0),
            figure(r.server.redis_up_min, 0),
            figure(r.server.app_cpu_seconds, 2),
        ]);
    }
    table
}

/// What the table's columns mean, and the dashboard links.
fn notes(rows: &[RaceRow]) -> Vec<String> {
    let mut notes = vec![
        "errors: answers the race does not expect (the original's check \"success or out of stock\" failed: 5xx, other codes, no answer); \
         http_req_failed: k6's rate (status >= 400 or no answer), shown for comparison with k6 and not judged: a sold-out 400 is expected here, \
         so with a stock below the VUs it is high in an exact race. \
         issued: the coupon's counter / what a correct race issues; rows: its issued rows; dup: rows beyond one per user; \
         exact: counter = rows = 200 answers, no duplicate, no oversell. Server columns are from the monitor over the race (± one scrape)."
            .to_owned(),
    ];
    for r in rows {
        if let Some(link) = &r.dashboard {
            notes.push(format!("{}: {link}", r.strategy));
        }
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger(counter: i64, rows: i64, dup: i64) -> Ledger {
        Ledger {
            total_quantity: 100,
            issued_quantity: counter,
            issued_rows: rows,
            distinct_users: rows - dup,
            duplicate_rows: dup,
        }
    }

    #[test]
    fn exact_means_counter_rows_and_successes_agree_without_duplicates() {
        assert!(is_exact(&ledger(100, 100, 0), 100));
        assert!(!is_exact(&ledger(100, 101, 0), 100), "a row too many");
        assert!(!is_exact(&ledger(100, 100, 0), 99), "a client not told");
        assert!(!is_exact(&ledger(100, 100, 1), 100), "a user twice");
        assert!(!is_exact(&ledger(101, 101, 0), 101), "oversold");
    }
}
