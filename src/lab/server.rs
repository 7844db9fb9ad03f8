//! What the servers did during a run, read from the monitor (FastPick's or Prometheus, with
//! the exporters' metric names): PostgreSQL lock waits and active sessions, Redis commands and
//! whether Redis was up, and the app process's CPU. The lab waits until every target has been
//! scraped after the run, then reads each figure from a range query over the run.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// How long one call to the monitor may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for the scrape after a run, past the longest scrape interval.
const SCRAPE_SLACK: Duration = Duration::from_secs(5);

/// The server-side figures of one run; `None` where the monitor had no data.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServerFigures {
    /// Most lock requests waiting at once (`pg_locks_waiting`).
    pub pg_lock_waits_max: Option<f64>,
    /// Most active PostgreSQL sessions at once (`pg_stat_activity_count{state="active"}`).
    pub pg_active_max: Option<f64>,
    /// Redis commands run during the run (`redis_commands_total`).
    pub redis_commands: Option<f64>,
    /// Lowest `redis_up` seen: 0 when Redis was down at some scrape.
    pub redis_up_min: Option<f64>,
    /// CPU seconds of the app's process (`fastpick_process_cpu_seconds` of the app's job).
    pub app_cpu_seconds: Option<f64>,
}

/// A monitor to read from.
pub struct Monitor {
    client: reqwest::Client,
    base: String,
    app_job: String,
}

impl Monitor {
    /// A monitor at `base`; `app_job` names the scrape job of the app (`fastpick-app`).
    pub fn new(base: &str, app_job: &str) -> anyhow::Result<Monitor> {
        Ok(Monitor {
            client: reqwest::Client::builder().timeout(TIMEOUT).build()?,
            base: base.trim_end_matches('/').to_owned(),
            app_job: app_job.to_owned(),
        })
    }

    /// Reads the figures of a run from `start` to `end`. A monitor that is down or slow costs
    /// a warning and empty figures, never the run.
    pub async fn figures(&self, start: SystemTime, end: SystemTime) -> ServerFigures {
        let interval = match self.wait_for_scrapes_after(end).await {
            Ok(interval) => interval,
            Err(e) => {
                eprintln!(
                    "warning: the monitor at {} has no figures for this run: {e:#}",
                    self.base
                );
                return ServerFigures::default();
            }
        };
        // One interval either side: a gauge read just before or after still tells.
        let (from, to) = (start - interval, end + interval);
        let job = &self.app_job;
        let series = |query: String| async move { self.range(&query, from, to).await };
        ServerFigures {
            pg_lock_waits_max: series("sum(pg_locks_waiting) or sum(pg_up) * 0".into())
                .await
                .map(|v| max(&v)),
            pg_active_max: series(r#"sum(pg_stat_activity_count{state="active"})"#.into())
                .await
                .map(|v| max(&v)),
            redis_commands: series("sum(redis_commands_total)".into())
                .await
                .and_then(|v| increase(&v)),
            redis_up_min: series("min(redis_up)".into()).await.map(|v| min(&v)),
            app_cpu_seconds: series(format!(
                r#"sum(fastpick_process_cpu_seconds{{job="{job}"}})"#
            ))
            .await
            .and_then(|v| increase(&v)),
        }
    }

    /// Waits until every target was scraped after `end`; returns the longest scrape interval.
    async fn wait_for_scrapes_after(&self, end: SystemTime) -> anyhow::Result<Duration> {
        let began = tokio::time::Instant::now();
        let mut limit = None;
        loop {
            let targets = self.targets().await?;
            let interval = targets
                .iter()
                .filter_map(|t| humantime::parse_duration(&t.scrape_interval).ok())
                .max()
                .unwrap_or(Duration::from_secs(15));
            let limit = *limit.get_or_insert(began + interval * 2 + SCRAPE_SLACK);
            let scraped = targets.iter().all(|t| {
                chrono::DateTime::parse_from_rfc3339(&t.last_scrape)
                    .is_ok_and(|at| SystemTime::from(at) > end)
            });
            if scraped {
                return Ok(interval);
            }
            if tokio::time::Instant::now() > limit {
                anyhow::bail!("a target was not scraped after the run within {interval:?} × 2");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn targets(&self) -> anyhow::Result<Vec<Target>> {
        #[derive(Deserialize)]
        struct Answer {
            data: Data,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Data {
            active_targets: Vec<Target>,
        }
        let answer: Answer = self
            .client
            .get(format!("{}/api/v1/targets", self.base))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(answer.data.active_targets)
    }

    /// The values of a one-series range query, oldest first; `None` when it has no series.
    async fn range(&self, query: &str, from: SystemTime, to: SystemTime) -> Option<Vec<f64>> {
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
            values: Vec<(f64, String)>,
        }
        let secs = |t: SystemTime| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64()
                .to_string()
        };
        let answer: Answer = self
            .client
            .get(format!("{}/api/v1/query_range", self.base))
            .query(&[
                ("query", query),
                ("start", &secs(from)),
                ("end", &secs(to)),
                ("step", "1"),
            ])
            .send()
            .await
            .ok()?
            .error_for_status()
            .ok()?
            .json()
            .await
            .ok()?;
        let series = answer.data.result.into_iter().next()?;
        Some(
            series
                .values
                .iter()
                .filter_map(|(_, v)| v.parse::<f64>().ok())
                .filter(|v| v.is_finite())
                .collect(),
        )
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Target {
    last_scrape: String,
    scrape_interval: String,
}

fn max(values: &[f64]) -> f64 {
    values.iter().copied().fold(0.0, f64::max)
}

fn min(values: &[f64]) -> f64 {
    values.iter().copied().reduce(f64::min).unwrap_or(f64::NAN)
}

/// How much a counter grew over the values, counting a drop as a restart from 0; `None`
/// from fewer than two values (a target first scraped after the run tells nothing).
pub fn increase(values: &[f64]) -> Option<f64> {
    (values.len() >= 2).then(|| {
        values
            .windows(2)
            .map(|w| if w[1] >= w[0] { w[1] - w[0] } else { w[1] })
            .sum()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_grows_across_a_restart() {
        assert_eq!(increase(&[10.0, 12.0, 15.0]), Some(5.0));
        assert_eq!(increase(&[10.0, 12.0, 3.0, 4.0]), Some(2.0 + 3.0 + 1.0));
        assert_eq!(increase(&[7.0, 7.0]), Some(0.0));
        assert_eq!(increase(&[7.0]), None);
        assert_eq!(increase(&[]), None);
    }

    #[test]
    fn extremes_of_a_series() {
        assert_eq!(max(&[1.0, 5.0, 2.0]), 5.0);
        assert_eq!(min(&[1.0, 0.0, 2.0]), 0.0);
        assert!(min(&[]).is_nan());
    }
}
