//! Spring Boot Actuator's view of a registry (`/actuator/metrics`): Micrometer-style dotted
//! names, and one metric's measurements summed over its series with the tags it can be
//! narrowed by. The names undo Micrometer's Prometheus naming: `http_server_requests_seconds`
//! is `http.server.requests` with base unit seconds, a counter's `_total` goes, and our own
//! metrics read the same way (`fastpick_issue_requests_total` is `fastpick.issue.requests`).
//! See <https://docs.spring.io/spring-boot/api/rest/actuator/metrics.html>.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::metrics::parse::{Family, Kind, Sample};

/// Units a Prometheus name ends in, which Actuator shows as `baseUnit`.
const UNITS: [&str; 2] = ["seconds", "bytes"];

/// One metric as `/actuator/metrics/{name}` answers it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricView {
    pub name: String,
    pub description: String,
    pub base_unit: Option<&'static str>,
    pub measurements: Vec<Measurement>,
    pub available_tags: Vec<AvailableTag>,
}

/// A statistic summed over the matching series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Measurement {
    /// COUNT, TOTAL_TIME, TOTAL or VALUE.
    pub statistic: &'static str,
    pub value: f64,
}

/// A tag of the matching series and the values it takes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AvailableTag {
    pub tag: String,
    pub values: Vec<String>,
}

/// Returns a family's Actuator name and base unit: `http_server_requests_seconds` is
/// (`http.server.requests`, seconds).
pub fn name_of(family: &Family) -> (String, Option<&'static str>) {
    let mut name = family.name.as_str();
    if family.kind == Kind::Counter {
        name = name.strip_suffix("_total").unwrap_or(name);
    }
    let unit = UNITS
        .into_iter()
        .find(|u| name.strip_suffix(u).is_some_and(|n| n.ends_with('_')));
    if let Some(unit) = unit {
        name = &name[..name.len() - unit.len() - 1];
    }
    (name.replace('_', "."), unit)
}

/// Returns every metric's Actuator name, sorted and without repeats.
pub fn names(families: &[Family]) -> Vec<String> {
    let set: BTreeSet<String> = families.iter().map(|f| name_of(f).0).collect();
    set.into_iter().collect()
}

/// Returns the metric named `name` over the series carrying every `tags` pair; `None` when
/// there is no such metric or no series matches (Actuator's 404).
pub fn metric(families: &[Family], name: &str, tags: &[(String, String)]) -> Option<MetricView> {
    let family = families.iter().find(|f| name_of(f).0 == name)?;
    let (_, base_unit) = name_of(family);
    let matching: Vec<&Sample> = family
        .samples
        .iter()
        .filter(|s| tags.iter().all(|t| s.labels.contains(t)))
        .collect();
    if matching.is_empty() && !tags.is_empty() {
        return None;
    }
    Some(MetricView {
        name: name.to_owned(),
        description: family.help.clone(),
        base_unit,
        measurements: measurements(family, base_unit, &matching),
        available_tags: available_tags(&matching, tags),
    })
}

/// Sums the samples into Micrometer's statistics: a counter's COUNT, a histogram's COUNT and
/// TOTAL_TIME (TOTAL when not in seconds), otherwise VALUE.
fn measurements(family: &Family, unit: Option<&str>, samples: &[&Sample]) -> Vec<Measurement> {
    let sum = |suffix: &str| -> f64 {
        let series = format!("{}{suffix}", family.name);
        samples
            .iter()
            .filter(|s| s.name == series)
            .map(|s| s.value)
            .sum()
    };
    let measurement = |statistic, value| Measurement { statistic, value };
    match family.kind {
        Kind::Counter => vec![measurement("COUNT", sum(""))],
        Kind::Histogram | Kind::Summary => {
            let total = if unit == Some("seconds") {
                "TOTAL_TIME"
            } else {
                "TOTAL"
            };
            vec![
                measurement("COUNT", sum("_count")),
                measurement(total, sum("_sum")),
            ]
        }
        _ => vec![measurement("VALUE", sum(""))],
    }
}

/// Lists the tags of the samples and their values, sorted, leaving out the tags already
/// asked for and a histogram's `le`.
fn available_tags(samples: &[&Sample], asked: &[(String, String)]) -> Vec<AvailableTag> {
    let mut tags: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (key, value) in samples.iter().flat_map(|s| &s.labels) {
        if key != "le" && !asked.iter().any(|(k, _)| k == key) {
            tags.entry(key).or_default().insert(value);
        }
    }
    tags.into_iter()
        .map(|(tag, values)| AvailableTag {
            tag: tag.to_owned(),
            values: values.into_iter().map(str::to_owned).collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::parse::{Format, parse};

    const TEXT: &str = concat!(
        "# HELP http_server_requests_seconds HTTP requests.\n",
        "# TYPE http_server_requests_seconds histogram\n",
        "http_server_requests_seconds_bucket{uri=\"/a\",status=\"200\",le=\"+Inf\"} 3\n",
        "http_server_requests_seconds_sum{uri=\"/a\",status=\"200\"} 0.25\n",
        "http_server_requests_seconds_count{uri=\"/a\",status=\"200\"} 3\n",
        "http_server_requests_seconds_bucket{uri=\"/b\",status=\"404\",le=\"+Inf\"} 1\n",
        "http_server_requests_seconds_sum{uri=\"/b\",status=\"404\"} 0.5\n",
        "http_server_requests_seconds_count{uri=\"/b\",status=\"404\"} 1\n",
        "# HELP fastpick_issue_requests_total Issues.\n",
        "# TYPE fastpick_issue_requests_total counter\n",
        "fastpick_issue_requests_total{outcome=\"issued\"} 7\n",
        "# HELP fastpick_process_resident_memory_bytes Resident memory.\n",
        "# TYPE fastpick_process_resident_memory_bytes gauge\n",
        "fastpick_process_resident_memory_bytes 1024\n",
    );

    fn families() -> Vec<Family> {
        parse(TEXT, Format::Text004).expect("parsed")
    }

    #[test]
    fn names_are_micrometer_style_and_sorted() {
        assert_eq!(
            names(&families()),
            [
                "fastpick.issue.requests",
                "fastpick.process.resident.memory",
                "http.server.requests"
            ]
        );
    }

    #[test]
    fn a_timer_sums_count_and_total_time_and_lists_its_tags() {
        let view = metric(&families(), "http.server.requests", &[]).expect("found");
        assert_eq!(view.base_unit, Some("seconds"));
        assert_eq!(view.description, "HTTP requests.");
        assert_eq!(
            view.measurements,
            [
                Measurement {
                    statistic: "COUNT",
                    value: 4.0
                },
                Measurement {
                    statistic: "TOTAL_TIME",
                    value: 0.75
                }
            ]
        );
        let tags: Vec<_> = view
            .available_tags
            .iter()
            .map(|t| (t.tag.as_str(), t.values.len()))
            .collect();
        assert_eq!(tags, [("status", 2), ("uri", 2)]);
    }

    #[test]
    fn a_tag_filter_narrows_the_series_and_leaves_its_tag_out() {
        let tag = [("status".to_owned(), "404".to_owned())];
        let view = metric(&families(), "http.server.requests", &tag).expect("found");
        assert_eq!(view.measurements[0].value, 1.0);
        assert_eq!(view.available_tags.len(), 1);
        assert_eq!(view.available_tags[0].values, ["/b"]);
        let none = [("status".to_owned(), "500".to_owned())];
        assert_eq!(metric(&families(), "http.server.requests", &none), None);
    }

    #[test]
    fn counters_count_gauges_have_a_value_and_unknown_names_are_none() {
        let issued = metric(&families(), "fastpick.issue.requests", &[]).expect("counter");
        assert_eq!(
            issued.measurements,
            [Measurement {
                statistic: "COUNT",
                value: 7.0
            }]
        );
        assert_eq!(issued.base_unit, None);
        let rss = metric(&families(), "fastpick.process.resident.memory", &[]).expect("gauge");
        assert_eq!(
            (rss.base_unit, rss.measurements[0].statistic),
            (Some("bytes"), "VALUE")
        );
        assert_eq!(metric(&families(), "nope", &[]), None);
    }
}
