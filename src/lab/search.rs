//! `fastpick lab search`: the search scenario of the original (ramping VUs with think time,
//! its keywords and 30% never-existing words) once per cache setting, with the original's
//! thresholds (p99 < 2.5 s, under 1% failed), side by side with what PostgreSQL, Redis and
//! the app did meanwhile.

use std::time::{Duration, SystemTime};

use clap::Args;
use serde::Serialize;

use crate::config::SearchCache;
use crate::lab::api::Admin;
use crate::lab::report::{self, Table, count, figure};
use crate::lab::server::{Monitor, ServerFigures};
use crate::lab::{LabCommon, each, verdict};
use crate::load::announced;
use crate::load::search::{self as load_search, SearchArgs};

/// `fastpick lab search`
#[derive(Debug, Clone, Args)]
pub struct SearchLabArgs {
    #[command(flatten)]
    pub common: LabCommon,
    /// Virtual users searching at once, after the ramp.
    #[arg(long, default_value_t = 50)]
    pub vus: usize,
    /// How long they search, after the ramp.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// How long the VUs take to arrive.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub ramp: Duration,
    /// The cache settings to compare, in order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_values_t = [SearchCache::Off, SearchCache::Redis]
    )]
    pub caches: Vec<SearchCache>,
}

/// One cache setting's run.
#[derive(Debug, Clone, Serialize)]
pub struct SearchRow {
    pub cache: &'static str,
    pub requests: u64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub failed: u64,
    /// Whether the original's thresholds held.
    pub passed: bool,
    pub server: ServerFigures,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dashboard: Option<String>,
}

/// The whole report.
#[derive(Debug, Serialize)]
pub struct SearchReport {
    pub experiment: &'static str,
    pub base_url: String,
    pub vus: usize,
    pub duration_s: f64,
    pub rows: Vec<SearchRow>,
}

/// Runs the experiment.
pub async fn run(args: &SearchLabArgs) -> anyhow::Result<()> {
    if args.vus == 0 || args.duration.is_zero() {
        anyhow::bail!("--vus and --duration must be more than 0");
    }
    let common = &args.common;
    let (admin, before) = common.admin().await?;
    let monitor = common.monitor()?;
    let (rows, ran) = each(
        &admin,
        &before,
        &args.caches,
        SearchCache::as_str,
        |cache| one(args, &admin, monitor.as_ref(), cache),
    )
    .await;
    let report = SearchReport {
        experiment: "search",
        base_url: common.base_url.clone(),
        vus: args.vus,
        duration_s: args.duration.as_secs_f64(),
        rows,
    };
    let table = table(&report.rows);
    let title = format!(
        "Coupon search: {} VUs for {} at {}",
        args.vus,
        humantime::format_duration(args.duration),
        common.base_url
    );
    report::publish(
        &report,
        &title,
        &table,
        &notes(&report.rows),
        common.json.as_deref(),
        common.markdown.as_deref(),
    )?;
    let missed = report.rows.iter().filter(|r| !r.passed).map(|r| r.cache);
    verdict(ran, missed, "thresholds missed with cache")
}

/// The ramp and the plateau as load stages.
fn stages(ramp: Duration, vus: usize, duration: Duration) -> String {
    format!(
        "{}ms:{vus},{}ms:{vus}",
        ramp.as_millis(),
        duration.as_millis()
    )
}

/// Searches with one cache setting.
async fn one(
    args: &SearchLabArgs,
    admin: &Admin,
    monitor: Option<&Monitor>,
    cache: SearchCache,
) -> anyhow::Result<SearchRow> {
    admin.switch(None, Some(cache.as_str())).await?;
    let search_args = SearchArgs {
        common: args.common.load_args(),
        stages: stages(args.ramp, args.vus, args.duration),
        think_min: Duration::from_millis(100),
        think_max: Duration::from_millis(300),
        rate: None,
        duration: args.duration,
        max_vus: args.vus,
        ghost_ratio: 0.3,
        max_p99: Duration::from_millis(2500),
        max_failed_rate: 0.01,
    };
    let mut tags = load_search::tags(&search_args);
    tags.insert("search_cache".into(), cache.as_str().into());
    tags.insert("lab".into(), "search".into());
    let started = SystemTime::now();
    let summary = announced(
        &search_args.common,
        "search",
        tags,
        load_search::run(&search_args),
    )
    .await?;
    let ended = SystemTime::now();
    let server = match monitor {
        Some(monitor) => monitor.figures(started, ended).await,
        None => ServerFigures::default(),
    };
    Ok(SearchRow {
        cache: cache.as_str(),
        requests: summary.requests,
        rps: summary.rps,
        p50_ms: summary.latency_ms.p50,
        p99_ms: summary.latency_ms.p99,
        failed: summary.http_req_failed.passes,
        passed: summary.passed(),
        server,
        dashboard: summary.dashboard,
    })
}

fn table(rows: &[SearchRow]) -> Table {
    let mut table = Table::new(&[
        "cache",
        "requests",
        "req/s",
        "p50 ms",
        "p99 ms",
        "failed",
        "thresholds",
        "pg active max",
        "redis cmds",
        "app cpu s",
        "app cpu ms/req",
    ]);
    for r in rows {
        let per_request = r
            .server
            .app_cpu_seconds
            .filter(|_| r.requests > 0)
            .map(|s| s * 1000.0 / r.requests as f64);
        table.push(vec![
            r.cache.to_owned(),
            count(r.requests),
            format!("{:.1}", r.rps),
            format!("{:.1}", r.p50_ms),
            format!("{:.1}", r.p99_ms),
            count(r.failed),
            if r.passed { "pass" } else { "FAIL" }.to_owned(),
            figure(r.server.pg_active_max, 0),
            figure(r.server.redis_commands, 0),
            figure(r.server.app_cpu_seconds, 2),
            figure(per_request, 3),
        ]);
    }
    table
}

/// What the table's columns mean, and the dashboard links.
fn notes(rows: &[SearchRow]) -> Vec<String> {
    let mut notes = vec![
        "failed: k6's http_req_failed (no answer, or a status >= 400); thresholds: the original's, judged as k6 judges them (http_req_duration: p(99)<2500, http_req_failed: rate<0.01). Server columns are from the monitor over the run (± one scrape)."
            .to_owned(),
    ];
    for r in rows {
        if let Some(link) = &r.dashboard {
            notes.push(format!("cache {}: {link}", r.cache));
        }
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ramp_and_plateau_are_load_stages() {
        let text = stages(Duration::from_secs(5), 50, Duration::from_millis(1500));
        assert_eq!(text, "5000ms:50,1500ms:50");
        let parsed = load_search::parse_stages(&text).expect("parses");
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[1].target, 50);
    }
}
