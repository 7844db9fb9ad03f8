//! Reads the scrape jobs of an existing `prometheus.yml` (the original's VM3 file), so a
//! Prometheus setup moves over unchanged: `global.scrape_interval`/`scrape_timeout` and each
//! `scrape_configs` entry's `job_name`, `metrics_path`, `scheme`, `scrape_interval`,
//! `scrape_timeout` and `static_configs` (`targets`, `labels`).
//!
//! Keys that change what is scraped but are not supported here (service discovery other than
//! static targets, relabelling, TLS, authentication) are reported back by name, so the caller
//! can warn instead of silently scraping something else.

use std::collections::BTreeMap;
use std::time::Duration;

use yaml_rust2::{Yaml, YamlLoader};

use crate::config::ScrapeJob;

/// What a prometheus.yml held.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    /// `global.scrape_interval`, when set.
    pub scrape_interval: Option<Duration>,
    /// `global.scrape_timeout`, when set.
    pub scrape_timeout: Option<Duration>,
    pub jobs: Vec<ScrapeJob>,
    /// `job_name: key` of every unsupported key met (the job is still read).
    pub ignored: Vec<String>,
}

/// Why a prometheus.yml could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("not valid YAML: {0}")]
    Yaml(#[from] yaml_rust2::ScanError),
    #[error("{0}")]
    Invalid(String),
}

/// Keys of a scrape config that are read.
const KNOWN: [&str; 6] = [
    "job_name",
    "metrics_path",
    "scheme",
    "scrape_interval",
    "scrape_timeout",
    "static_configs",
];

/// Keys that may be present and change nothing here.
const HARMLESS: [&str; 4] = [
    "honor_labels",
    "honor_timestamps",
    "sample_limit",
    "enable_compression",
];

/// Parses the text of a prometheus.yml.
pub fn parse(text: &str) -> Result<Imported, ImportError> {
    let docs = YamlLoader::load_from_str(text)?;
    let empty = Yaml::Hash(Default::default());
    let doc = docs.first().unwrap_or(&empty);
    let global = &doc["global"];
    let mut imported = Imported {
        scrape_interval: optional_duration(&global["scrape_interval"], "global.scrape_interval")?,
        scrape_timeout: optional_duration(&global["scrape_timeout"], "global.scrape_timeout")?,
        jobs: Vec::new(),
        ignored: Vec::new(),
    };
    let configs = match &doc["scrape_configs"] {
        Yaml::Array(items) => items.as_slice(),
        Yaml::BadValue | Yaml::Null => &[],
        _ => return Err(invalid("scrape_configs must be a list")),
    };
    for config in configs {
        let name = config["job_name"]
            .as_str()
            .ok_or_else(|| invalid("every scrape_configs entry needs a job_name"))?
            .to_owned();
        if let Yaml::Hash(map) = config {
            for key in map.keys().filter_map(Yaml::as_str) {
                if !KNOWN.contains(&key) && !HARMLESS.contains(&key) {
                    imported.ignored.push(format!("{name}: {key}"));
                }
            }
        }
        let text_of = |key: &str, default: &str| -> Result<String, ImportError> {
            match &config[key] {
                Yaml::BadValue | Yaml::Null => Ok(default.to_owned()),
                Yaml::String(s) => Ok(s.clone()),
                _ => Err(invalid(&format!("{name}: {key} must be a string"))),
            }
        };
        let job = ScrapeJob {
            metrics_path: text_of("metrics_path", "/metrics")?,
            scheme: text_of("scheme", "http")?,
            interval: optional_duration(
                &config["scrape_interval"],
                &format!("{name}: scrape_interval"),
            )?,
            timeout: optional_duration(
                &config["scrape_timeout"],
                &format!("{name}: scrape_timeout"),
            )?,
            targets: Vec::new(),
            labels: BTreeMap::new(),
            name,
        };
        let groups = match &config["static_configs"] {
            Yaml::Array(items) => items.as_slice(),
            Yaml::BadValue | Yaml::Null => &[],
            _ => {
                return Err(invalid(&format!(
                    "{}: static_configs must be a list",
                    job.name
                )));
            }
        };
        // Each static_configs group may carry labels of its own: one job per group.
        for group in groups {
            let (targets, labels) = read_group(group, &job.name)?;
            imported.jobs.push(ScrapeJob {
                targets,
                labels,
                ..job.clone()
            });
        }
    }
    Ok(imported)
}

/// One `static_configs` entry: its targets and labels.
fn read_group(
    group: &Yaml,
    job: &str,
) -> Result<(Vec<String>, BTreeMap<String, String>), ImportError> {
    let targets: Vec<String> = match &group["targets"] {
        Yaml::Array(items) => items
            .iter()
            .map(|t| {
                t.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| invalid(&format!("{job}: targets must be strings")))
            })
            .collect::<Result<_, _>>()?,
        Yaml::BadValue | Yaml::Null => Vec::new(),
        _ => return Err(invalid(&format!("{job}: targets must be a list"))),
    };
    let mut labels = BTreeMap::new();
    if let Yaml::Hash(map) = &group["labels"] {
        for (k, v) in map {
            let (Some(k), Some(v)) = (k.as_str(), scalar(v)) else {
                return Err(invalid(&format!("{job}: labels must be strings")));
            };
            labels.insert(k.to_owned(), v);
        }
    }
    Ok((targets, labels))
}

fn invalid(message: &str) -> ImportError {
    ImportError::Invalid(message.to_owned())
}

/// A label value written as a string, number or boolean.
fn scalar(value: &Yaml) -> Option<String> {
    match value {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(n) => Some(n.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn optional_duration(value: &Yaml, key: &str) -> Result<Option<Duration>, ImportError> {
    match value {
        Yaml::BadValue | Yaml::Null => Ok(None),
        Yaml::String(s) => parse_duration(s)
            .map(Some)
            .ok_or_else(|| invalid(&format!("{key}: '{s}' is not a duration like 15s or 1m30s"))),
        _ => Err(invalid(&format!("{key} must be a duration like 15s"))),
    }
}

/// Reads a Prometheus duration: one or more `<integer><unit>` with units y, w, d, h, m, s, ms
/// in that order (`1h30m`, `500ms`, `15s`).
pub fn parse_duration(text: &str) -> Option<Duration> {
    const UNITS: [(&str, u64); 7] = [
        ("y", 365 * 24 * 3600 * 1000),
        ("w", 7 * 24 * 3600 * 1000),
        ("d", 24 * 3600 * 1000),
        ("h", 3600 * 1000),
        ("m", 60 * 1000),
        ("s", 1000),
        ("ms", 1),
    ];
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    let mut last_unit = None;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let number: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let position = UNITS.iter().position(|(u, _)| *u == unit)?;
        if last_unit.is_some_and(|last| position <= last) {
            return None;
        }
        last_unit = Some(position);
        total = total.checked_add(number.checked_mul(UNITS[position].1)?)?;
    }
    Some(Duration::from_millis(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGINAL: &str = r#"
global:
  scrape_interval: 15s
  evaluation_interval: 15s

scrape_configs:
  - job_name: 'spring-boot'
    metrics_path: '/actuator/prometheus'
    static_configs:
      - targets: ['192.168.56.111:80']
  - job_name: 'postgres'
    static_configs:
      - targets: ['192.168.56.112:9187']
        labels:
          role: db
  - job_name: redis
    scrape_interval: 1s
    scrape_timeout: 500ms
    relabel_configs: []
    static_configs:
      - targets: ['192.168.56.112:9121']
      - targets: ['192.168.56.113:9121']
        labels: {replica: 1}
"#;

    #[test]
    fn reads_the_original_file() {
        let imported = parse(ORIGINAL).expect("parses");
        assert_eq!(imported.scrape_interval, Some(Duration::from_secs(15)));
        assert_eq!(imported.scrape_timeout, None);
        let names: Vec<&str> = imported.jobs.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(names, ["spring-boot", "postgres", "redis", "redis"]);
        let app = &imported.jobs[0];
        assert_eq!(app.metrics_path, "/actuator/prometheus");
        assert_eq!(app.targets, ["192.168.56.111:80"]);
        assert_eq!(imported.jobs[1].metrics_path, "/metrics");
        assert_eq!(
            imported.jobs[1].labels.get("role").map(String::as_str),
            Some("db")
        );
        let redis = &imported.jobs[2];
        assert_eq!(redis.interval, Some(Duration::from_secs(1)));
        assert_eq!(redis.timeout, Some(Duration::from_millis(500)));
        assert_eq!(redis.targets, ["192.168.56.112:9121"]);
        assert_eq!(imported.jobs[3].targets, ["192.168.56.113:9121"]);
        assert_eq!(
            imported.jobs[3].labels.get("replica").map(String::as_str),
            Some("1")
        );
        assert_eq!(imported.ignored, ["redis: relabel_configs"]);
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let err = parse("scrape_configs:\n  - metrics_path: /x\n").unwrap_err();
        assert!(err.to_string().contains("job_name"), "{err}");
        let err = parse("global:\n  scrape_interval: fast\n").unwrap_err();
        assert!(err.to_string().contains("global.scrape_interval"), "{err}");
        assert!(parse("a: [").is_err());
        assert_eq!(parse("").expect("empty is fine").jobs, vec![]);
    }

    #[test]
    fn durations_follow_prometheus() {
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2d"), Some(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("30m1h"), None, "units in order");
        assert_eq!(parse_duration("1.5s"), None);
        assert_eq!(parse_duration("15"), None);
        assert_eq!(parse_duration(""), None);
    }
}
