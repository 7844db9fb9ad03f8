//! `--monitor URL`: a run announces itself to a FastPick monitor when it starts and
//! completes the announcement with the summary's headline figures when it ends. The monitor
//! keeps it as an annotation (`/api/v1/annotations`) that the dashboard draws as a band, and
//! the summary ends with a link to the dashboard at the run's time range.
//!
//! The run matters more than its announcement: a monitor that is down or refuses costs a
//! warning, never the run.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use crate::load::stats::Summary;

/// How long one call to the monitor may take.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Margin around the run in the dashboard link, ms.
const LINK_MARGIN_MS: i64 = 15_000;

/// A run the monitor knows about.
pub struct Announcement {
    client: reqwest::Client,
    base: String,
    id: String,
    board: &'static str,
    start_ms: i64,
    title: String,
    tags: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct Created {
    data: CreatedData,
}

#[derive(Deserialize)]
struct CreatedData {
    id: String,
}

fn now_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// The run's title: scenario, the app's strategy or cache switch, and its size.
pub fn title(scenario: &str, tags: &BTreeMap<String, String>) -> String {
    let mut parts = vec![scenario.to_owned()];
    let switch = if scenario == "race" {
        "strategy"
    } else {
        "search_cache"
    };
    if let Some(value) = tags.get(switch) {
        parts.push(if switch == "search_cache" {
            format!("cache {value}")
        } else {
            value.clone()
        });
    }
    if let Some(size) = tags.get("size") {
        parts.push(size.clone());
    }
    parts.join(" · ")
}

/// The headline figures as the annotation's text.
pub fn headline(summary: &Summary) -> String {
    let l = &summary.latency_ms;
    let outcomes: Vec<String> = summary
        .outcomes
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    let verdict = if summary.passed() {
        "thresholds passed"
    } else {
        "a threshold failed"
    };
    format!(
        "{} requests in {:.2} s ({:.1}/s), http_req_failed {:.2}% ({}), {} unexpected\np50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms\nanswers: {}\n{verdict}",
        summary.requests,
        summary.duration_s,
        summary.rps,
        summary.http_req_failed.rate * 100.0,
        summary.http_req_failed.passes,
        summary.unexpected,
        l.p50,
        l.p95,
        l.p99,
        l.max,
        outcomes.join(", ")
    )
}

/// The dashboard link for a run: its board at the run's range with a margin.
pub fn dashboard_link(base: &str, board: &str, start_ms: i64, end_ms: i64) -> String {
    format!(
        "{}/#/{board}?from={}&to={}",
        base.trim_end_matches('/'),
        start_ms - LINK_MARGIN_MS,
        end_ms + LINK_MARGIN_MS
    )
}

impl Announcement {
    /// Announces a run against `target` (its base URL) that starts now. `tags` describe it
    /// (scenario, VUs, rate...); the app's switches are read from the monitor
    /// (`fastpick_experiment_info`) when it scrapes the app.
    pub async fn start(
        base: &str,
        target: &str,
        scenario: &'static str,
        mut tags: BTreeMap<String, String>,
    ) -> Option<Announcement> {
        let base = base.trim_end_matches('/').to_owned();
        let client = reqwest::Client::builder().timeout(TIMEOUT).build().ok()?;
        tags.insert("scenario".into(), scenario.into());
        for (k, v) in experiment(&client, &base, authority(target)).await {
            tags.entry(k).or_insert(v);
        }
        let title = title(scenario, &tags);
        let start_ms = now_ms();
        let body = json!({
            "time": start_ms,
            "title": title,
            "text": "running",
            "tags": tags,
            "board": scenario,
        });
        let answer = client
            .post(format!("{base}/api/v1/annotations"))
            .json(&body)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status);
        let created = match answer {
            Ok(response) => response.json::<Created>().await,
            Err(e) => Err(e),
        };
        match created {
            Ok(created) => Some(Announcement {
                client,
                base,
                id: created.data.id,
                board: scenario,
                start_ms,
                title,
                tags,
            }),
            Err(e) => {
                eprintln!("warning: could not announce the run to the monitor at {base}: {e}");
                None
            }
        }
    }

    /// Completes the announcement with the summary; returns the dashboard link.
    pub async fn finish(self, summary: &Summary) -> String {
        self.complete(headline(summary)).await
    }

    /// Completes the announcement of a run that failed, so that its band ends.
    pub async fn fail(self, error: &anyhow::Error) {
        self.complete(format!("the run failed: {error:#}")).await;
    }

    /// Puts the run back with its end and `text`; returns the dashboard link.
    async fn complete(self, text: String) -> String {
        let end_ms = now_ms().max(self.start_ms);
        let body = json!({
            "time": self.start_ms,
            "timeEnd": end_ms,
            "title": self.title,
            "text": text,
            "tags": self.tags,
            "board": self.board,
        });
        let answer = self
            .client
            .put(format!("{}/api/v1/annotations/{}", self.base, self.id))
            .json(&body)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status);
        if let Err(e) = answer {
            eprintln!(
                "warning: could not complete the run's annotation at {}: {e}",
                self.base
            );
        }
        dashboard_link(&self.base, self.board, self.start_ms, end_ms)
    }
}

/// The app's switches as the monitor last scraped them: those of the app scraped at the
/// run's target address, else those every app agrees on; empty when unknown.
async fn experiment(
    client: &reqwest::Client,
    base: &str,
    target: &str,
) -> BTreeMap<String, String> {
    #[derive(Deserialize)]
    struct Answer {
        data: Data,
    }
    #[derive(Deserialize)]
    struct Data {
        result: Vec<Series>,
    }
    #[derive(Deserialize)]
    struct Series {
        metric: BTreeMap<String, String>,
    }
    let answer = client
        .get(format!("{base}/api/v1/query"))
        .query(&[("query", "fastpick_experiment_info == 1")])
        .send()
        .await;
    let Ok(response) = answer else {
        return BTreeMap::new();
    };
    let Ok(answer) = response.json::<Answer>().await else {
        return BTreeMap::new();
    };
    let apps: Vec<BTreeMap<String, String>> =
        answer.data.result.into_iter().map(|s| s.metric).collect();
    pick_switches(&apps, target)
}

/// The switch labels (`strategy`, `search_cache`) of the apps' info series: of the one whose
/// `instance` is the run's target (`host:port`), else those all of them share.
fn pick_switches(apps: &[BTreeMap<String, String>], target: &str) -> BTreeMap<String, String> {
    let switches = |labels: &BTreeMap<String, String>| -> BTreeMap<String, String> {
        labels
            .iter()
            .filter(|(k, _)| *k == "strategy" || *k == "search_cache")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    if let Some(target) = apps
        .iter()
        .find(|labels| labels.get("instance").is_some_and(|i| i == target))
    {
        return switches(target);
    }
    let all: Vec<_> = apps.iter().map(switches).collect();
    match all.first() {
        Some(first) if all.iter().all(|s| s == first) => first.clone(),
        _ => BTreeMap::new(),
    }
}

/// `host:port` of a base URL, as a scrape target's `instance` names it.
fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_name_the_switch_and_the_size() {
        let tags = BTreeMap::from([
            ("strategy".to_owned(), "db-lock".to_owned()),
            ("search_cache".to_owned(), "off".to_owned()),
            ("size".to_owned(), "1000 VUs".to_owned()),
        ]);
        assert_eq!(title("race", &tags), "race · db-lock · 1000 VUs");
        assert_eq!(title("search", &tags), "search · cache off · 1000 VUs");
        assert_eq!(title("search", &BTreeMap::new()), "search");
    }

    #[test]
    fn switches_come_from_the_target_else_from_all_apps_when_they_agree() {
        let app = |instance: &str, strategy: &str| {
            BTreeMap::from([
                ("instance".to_owned(), instance.to_owned()),
                ("strategy".to_owned(), strategy.to_owned()),
                ("search_cache".to_owned(), "redis".to_owned()),
            ])
        };
        let same = [app("a:1", "db-lock"), app("b:2", "db-lock")];
        assert_eq!(
            pick_switches(&[app("a:1", "redis-gate")], "a:1")["strategy"],
            "redis-gate"
        );
        assert_eq!(pick_switches(&same, "x:9")["strategy"], "db-lock");
        assert!(!pick_switches(&same, "x:9").contains_key("instance"));
        let mixed = [app("a:1", "db-lock"), app("b:2", "redis-gate")];
        assert_eq!(pick_switches(&mixed, "b:2")["strategy"], "redis-gate");
        assert!(pick_switches(&mixed, "x:9").is_empty());
        assert!(pick_switches(&[], "x:9").is_empty());
        assert_eq!(authority("http://127.0.0.1:8080/"), "127.0.0.1:8080");
        assert_eq!(authority("vm1:80"), "vm1:80");
    }

    #[test]
    fn the_link_covers_the_run_with_a_margin() {
        assert_eq!(
            dashboard_link("http://m:9090/", "race", 100_000, 160_000),
            "http://m:9090/#/race?from=85000&to=175000"
        );
    }
}
