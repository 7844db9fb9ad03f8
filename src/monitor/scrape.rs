//! Scraping: one loop per target that fetches its exposition every interval, reads it, adds
//! the target's labels and hands the samples to a [`Sink`], as Prometheus's scrape loop does:
//!
//! - the timestamp of every sample is the scrape's start, unless the exposition gives one;
//! - `up`, `scrape_duration_seconds`, `scrape_samples_scraped`,
//!   `scrape_samples_post_metric_relabeling` and `scrape_series_added` per scrape;
//! - a series that was in the previous scrape but not in this one (or every series, when the
//!   scrape failed or the loop stops) gets a staleness marker, so queries drop it at once;
//! - a label the target exposes that clashes with a target label (`job`, `instance`, a
//!   configured one) is kept as `exported_<name>` (Prometheus's `honor_labels: false`);
//! - OpenMetrics `_created` series are not stored (Prometheus skips them by default).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::metrics::parse::{self, Family, Format, Kind};
use crate::monitor::series::{Labels, METRIC_NAME, stale_nan};

/// `Accept` sent with a scrape, as Prometheus's: OpenMetrics first, then text 0.0.4.
pub const ACCEPT: &str = "application/openmetrics-text;version=1.0.0;q=0.5,\
text/plain;version=0.0.4;q=0.3,*/*;q=0.1";

/// One sample on its way to storage.
pub type Point = (Labels, i64, f64);

/// Where scraped samples go.
pub trait Sink: Send + Sync + 'static {
    /// Stores one scrape's samples (all of one target, one timestamp unless the exposition
    /// gave its own).
    fn append(&self, points: Vec<Point>);
    /// Remembers the metadata (type, help, unit) of the families a target exposes.
    fn metadata(&self, _families: &[Family]) {}
}

/// A future that renders an exposition, for a built-in collector.
pub type Render = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = String> + Send>> + Send + Sync>;

/// Where a target's exposition comes from.
#[derive(Clone)]
pub enum Source {
    /// An HTTP endpoint.
    Http(String),
    /// A built-in collector (PostgreSQL, Redis) rendering Prometheus text itself.
    Builtin(Render),
}

/// One scrape target with everything its loop needs.
#[derive(Clone)]
pub struct Target {
    /// The `job` label.
    pub job: String,
    /// The `instance` label (`host:port`).
    pub instance: String,
    pub source: Source,
    pub interval: Duration,
    pub timeout: Duration,
    /// Configured labels added to every series (besides `job` and `instance`).
    pub labels: BTreeMap<String, String>,
}

impl Target {
    /// The labels every series of this target carries.
    fn target_labels(&self) -> Vec<(String, String)> {
        let mut labels: Vec<(String, String)> = self
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        labels.push(("job".into(), self.job.clone()));
        labels.push(("instance".into(), self.instance.clone()));
        labels
    }

    /// The URL or collector name, for logs and `/api/v1/targets`.
    pub fn endpoint(&self) -> String {
        match &self.source {
            Source::Http(url) => url.clone(),
            Source::Builtin(_) => format!("builtin:{}", self.job),
        }
    }
}

/// The state of a target's last scrape, for `/api/v1/targets`.
#[derive(Debug, Clone, Default)]
pub struct Health {
    pub up: bool,
    pub last_scrape_ms: i64,
    pub last_duration: Duration,
    pub last_error: Option<String>,
    pub samples: usize,
}

/// Why a scrape failed.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error("scrape timed out after {0:?}")]
    Timeout(Duration),
    #[error("request failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("server returned HTTP status {0}")]
    Status(u16),
    #[error("{0}")]
    Parse(#[from] parse::ParseError),
}

/// The milliseconds since the Unix epoch now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// Scrapes one target until `stop` turns true; then marks its series stale.
pub async fn run(
    target: Target,
    client: reqwest::Client,
    sink: Arc<dyn Sink>,
    health: Arc<std::sync::Mutex<Health>>,
    mut stop: watch::Receiver<bool>,
) {
    // Spread the targets over the interval (Prometheus offsets each by a hash of it).
    let offset = spread(&target.endpoint(), target.interval);
    tokio::select! {
        _ = tokio::time::sleep(offset) => {}
        _ = stop.wait_for(|s| *s) => return,
    }
    let mut ticks = tokio::time::interval(target.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut previous: HashSet<Labels> = HashSet::new();
    let mut last_t = 0;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        let t = now_ms();
        let started = Instant::now();
        let result = fetch(&target, &client).await;
        let duration = started.elapsed();
        let (points, seen, report) = assemble(&target, result, t, &mut previous, duration);
        sink.metadata(&report.families);
        sink.append(points);
        previous = seen;
        last_t = t;
        if let Ok(mut h) = health.lock() {
            *h = report.health;
        }
    }
    // Stopping (target removed or shutdown): its series end now.
    if !previous.is_empty() {
        let t = now_ms().max(last_t + 1);
        sink.append(previous.into_iter().map(|l| (l, t, stale_nan())).collect());
    }
}

/// A scrape's outcome besides its samples.
struct Report {
    health: Health,
    families: Vec<Family>,
}

/// Turns one scrape's outcome into the samples to store: the exposition's with the target's
/// labels, staleness markers for series gone since `previous`, and the scrape's own series.
/// Returns the samples, the series seen (for the next scrape's staleness) and the report.
fn assemble(
    target: &Target,
    result: Result<Vec<Family>, ScrapeError>,
    t: i64,
    previous: &mut HashSet<Labels>,
    duration: Duration,
) -> (Vec<Point>, HashSet<Labels>, Report) {
    let target_labels = target.target_labels();
    let mut points = Vec::new();
    let mut seen = HashSet::new();
    let (up, error, families) = match result {
        Ok(families) => (true, None, families),
        Err(e) => (false, Some(e.to_string()), Vec::new()),
    };
    let mut scraped = 0usize;
    let mut added = 0usize;
    for family in &families {
        for sample in &family.samples {
            if is_created(family, &sample.name) {
                continue;
            }
            scraped += 1;
            let labels = with_target_labels(&sample.name, &sample.labels, &target_labels);
            match sample.timestamp_ms {
                Some(ts) => points.push((labels, ts, sample.value)),
                None => {
                    if !previous.contains(&labels) {
                        added += 1;
                    }
                    points.push((labels.clone(), t, sample.value));
                    seen.insert(labels);
                }
            }
        }
    }
    for gone in previous.drain().filter(|l| !seen.contains(l)) {
        points.push((gone, t, stale_nan()));
    }
    let report_series = [
        ("up", if up { 1.0 } else { 0.0 }),
        ("scrape_duration_seconds", duration.as_secs_f64()),
        ("scrape_samples_scraped", scraped as f64),
        ("scrape_samples_post_metric_relabeling", scraped as f64),
        ("scrape_series_added", added as f64),
    ];
    for (name, value) in report_series {
        let mut pairs = target_labels.clone();
        pairs.push((METRIC_NAME.into(), name.into()));
        points.push((Labels::new(pairs), t, value));
    }
    let report = Report {
        health: Health {
            up,
            last_scrape_ms: t,
            last_duration: duration,
            last_error: error,
            samples: scraped,
        },
        families,
    };
    (points, seen, report)
}

/// OpenMetrics `_created` samples of counters, histograms and summaries.
fn is_created(family: &Family, sample_name: &str) -> bool {
    matches!(family.kind, Kind::Counter | Kind::Histogram | Kind::Summary)
        && sample_name.len() == family.name.len() + "_created".len()
        && sample_name.ends_with("_created")
}

/// A series' labels: the exposition's, renamed `exported_*` where they clash with the
/// target's, plus the target's and the name.
fn with_target_labels(
    name: &str,
    exposed: &[(String, String)],
    target: &[(String, String)],
) -> Labels {
    let mut pairs = Vec::with_capacity(exposed.len() + target.len() + 1);
    for (k, v) in exposed {
        if target.iter().any(|(tk, _)| tk == k) {
            pairs.push((format!("exported_{k}"), v.clone()));
        } else {
            pairs.push((k.clone(), v.clone()));
        }
    }
    pairs.extend(target.iter().cloned());
    pairs.push((METRIC_NAME.into(), name.to_owned()));
    Labels::new(pairs)
}

/// Fetches and parses a target's exposition within its timeout.
async fn fetch(target: &Target, client: &reqwest::Client) -> Result<Vec<Family>, ScrapeError> {
    let work = async {
        match &target.source {
            Source::Http(url) => {
                let response = client
                    .get(url)
                    .header(reqwest::header::ACCEPT, ACCEPT)
                    .header(
                        "X-Prometheus-Scrape-Timeout-Seconds",
                        format!("{}", target.timeout.as_secs_f64()),
                    )
                    .send()
                    .await?;
                if !response.status().is_success() {
                    return Err(ScrapeError::Status(response.status().as_u16()));
                }
                let format = Format::from_content_type(
                    response
                        .headers()
                        .get(reqwest::header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok()),
                );
                let body = response.text().await?;
                Ok(parse::parse(&body, format)?)
            }
            Source::Builtin(render) => {
                let text = render().await;
                Ok(parse::parse(&text, Format::Text004)?)
            }
        }
    };
    tokio::time::timeout(target.timeout, work)
        .await
        .unwrap_or(Err(ScrapeError::Timeout(target.timeout)))
}

/// A stable offset within `interval` for a target.
fn spread(key: &str, interval: Duration) -> Duration {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut hasher);
    let millis = interval.as_millis().max(1) as u64;
    Duration::from_millis(hasher.finish() % millis)
}

/// Keeps the health of every target, by endpoint.
pub type HealthTable = Arc<std::sync::Mutex<HashMap<String, Arc<std::sync::Mutex<Health>>>>>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::series::is_stale;

    fn target() -> Target {
        Target {
            job: "app".into(),
            instance: "h:1".into(),
            source: Source::Http("http://h:1/metrics".into()),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            labels: BTreeMap::from([("env".to_owned(), "lab".to_owned())]),
        }
    }

    fn families(text: &str) -> Vec<Family> {
        parse::parse(text, Format::Text004).expect("parses")
    }

    fn find<'a>(points: &'a [Point], name: &str) -> Vec<&'a Point> {
        points
            .iter()
            .filter(|(l, _, _)| l.metric_name() == Some(name))
            .collect()
    }

    #[test]
    fn samples_get_target_labels_and_clashes_are_exported() {
        let mut previous = HashSet::new();
        let text = "# TYPE x gauge\nx{job=\"inner\",a=\"1\"} 5\n";
        let (points, seen, _) = assemble(
            &target(),
            Ok(families(text)),
            1000,
            &mut previous,
            Duration::ZERO,
        );
        let x = find(&points, "x");
        assert_eq!(x.len(), 1);
        let labels = &x[0].0;
        assert_eq!(labels.get("job"), Some("app"));
        assert_eq!(labels.get("exported_job"), Some("inner"));
        assert_eq!(labels.get("instance"), Some("h:1"));
        assert_eq!(labels.get("env"), Some("lab"));
        assert_eq!(x[0].1, 1000);
        assert_eq!(seen.len(), 1);
        assert_eq!(find(&points, "up")[0].2, 1.0);
        assert_eq!(find(&points, "scrape_samples_scraped")[0].2, 1.0);
        assert_eq!(find(&points, "scrape_series_added")[0].2, 1.0);
    }

    #[test]
    fn vanished_series_and_failed_scrapes_get_staleness_markers() {
        let mut previous = HashSet::new();
        let (_, seen, _) = assemble(
            &target(),
            Ok(families("a 1\nb 2\n")),
            1000,
            &mut previous,
            Duration::ZERO,
        );
        let mut previous = seen;
        let (points, seen, _) = assemble(
            &target(),
            Ok(families("a 1\n")),
            2000,
            &mut previous,
            Duration::ZERO,
        );
        let b = find(&points, "b");
        assert_eq!(b.len(), 1);
        assert!(is_stale(b[0].2));
        assert_eq!(find(&points, "scrape_series_added")[0].2, 0.0);
        let mut previous = seen;
        let (points, seen, report) = assemble(
            &target(),
            Err(ScrapeError::Status(500)),
            3000,
            &mut previous,
            Duration::ZERO,
        );
        assert!(is_stale(find(&points, "a")[0].2));
        assert_eq!(find(&points, "up")[0].2, 0.0);
        assert!(seen.is_empty());
        assert_eq!(
            report.health.last_error.as_deref(),
            Some("server returned HTTP status 500")
        );
    }

    #[test]
    fn explicit_timestamps_are_kept_and_created_series_skipped() {
        let text = "# TYPE c counter\nc_total 3 1700000000.5\nc_created 1699999999\n# EOF\n";
        let fams = parse::parse(text, Format::OpenMetrics).expect("parses");
        let mut previous = HashSet::new();
        let (points, seen, _) = assemble(&target(), Ok(fams), 5, &mut previous, Duration::ZERO);
        let c = find(&points, "c_total");
        assert_eq!(c[0].1, 1_700_000_000_500);
        assert!(find(&points, "c_created").is_empty());
        assert!(
            seen.is_empty(),
            "series with their own timestamps are not marked stale"
        );
    }
}
