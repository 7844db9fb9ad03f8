//! Answering a scrape: which text format the scraper asked for (its `Accept` header, as
//! Spring Boot Actuator negotiates it) and that format's encoding. Reading exposition text
//! back is [`crate::metrics::parse`]'s job.
//!
//! Prometheus text format 0.0.4 is the default: `promtool check metrics` and every Prometheus
//! read it. OpenMetrics 1.0.0 is sent only to a client that prefers it; Prometheus itself
//! does, with `application/openmetrics-text;version=1.0.0;q=0.5,...,text/plain;q=0.3`.
//! See <https://prometheus.io/docs/instrumenting/exposition_formats/>.

use prometheus_client::registry::Registry;

/// A text format a scrape is answered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4.
    Prometheus,
    /// OpenMetrics 1.0.0 text.
    OpenMetrics,
}

impl Format {
    /// Picks the format an `Accept` header prefers: OpenMetrics only when its quality is
    /// higher than text/plain's; Prometheus text without a header, on ties and when neither
    /// is acceptable.
    pub fn negotiate(accept_opt: Option<&str>) -> Format {
        let Some(accept) = accept_opt else {
            return Format::Prometheus;
        };
        let ranges: Vec<MediaRange> = accept.split(',').filter_map(MediaRange::parse).collect();
        let text = quality(&ranges, "text", "plain");
        let openmetrics = quality(&ranges, "application", "openmetrics-text");
        if openmetrics > text {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }

    /// Returns the `Content-Type` of a body in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// One entry of an `Accept` header; parameters other than `q` do not matter here.
#[derive(Debug, PartialEq)]
struct MediaRange {
    kind: String,
    subtype: String,
    q: f32,
}

impl MediaRange {
    /// Parses `type/subtype;param=value;q=0.5`; `None` for an entry that is not a media range.
    fn parse(entry: &str) -> Option<MediaRange> {
        let mut parts = entry.split(';');
        let (kind, subtype) = parts.next()?.trim().split_once('/')?;
        if kind.is_empty() || subtype.is_empty() {
            return None;
        }
        let mut q = 1.0;
        for param in parts {
            if let Some((key, value)) = param.split_once('=')
                && key.trim().eq_ignore_ascii_case("q")
            {
                q = value
                    .trim()
                    .parse::<f32>()
                    .ok()
                    .filter(|q| (0.0..=1.0).contains(q))?;
            }
        }
        Some(MediaRange {
            kind: kind.to_ascii_lowercase(),
            subtype: subtype.to_ascii_lowercase(),
            q,
        })
    }

    /// How specifically this range names `kind/subtype`: 2 exactly, 1 by `kind/*`, 0 by
    /// `*/*`; `None` when it does not match.
    fn specificity(&self, kind: &str, subtype: &str) -> Option<u8> {
        match (self.kind.as_str(), self.subtype.as_str()) {
            (k, s) if k == kind && s == subtype => Some(2),
            (k, "*") if k == kind => Some(1),
            ("*", "*") => Some(0),
            _ => None,
        }
    }
}

/// The quality an `Accept` header gives `kind/subtype`: that of the most specific range
/// matching it (RFC 9110, 12.5.1), 0 when none does.
fn quality(ranges: &[MediaRange], kind: &str, subtype: &str) -> f32 {
    ranges
        .iter()
        .filter_map(|r| r.specificity(kind, subtype).map(|s| (s, r.q)))
        .max_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)))
        .map_or(0.0, |(_, q)| q)
}

/// Encodes a registry in `format`.
pub fn encode(registry: &Registry, format: Format) -> Result<String, std::fmt::Error> {
    let mut text = String::new();
    match format {
        Format::Prometheus => {
            prometheus_client::encoding::prometheus_text::encode(&mut text, registry)?
        }
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut text, registry)?,
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers_choose_the_format() {
        let cases = [
            (None, Format::Prometheus, "no header"),
            (Some(""), Format::Prometheus, "empty header"),
            (Some("*/*"), Format::Prometheus, "anything"),
            (
                Some("text/plain;version=0.0.4"),
                Format::Prometheus,
                "text asked",
            ),
            (
                Some("text/plain"),
                Format::Prometheus,
                "text without version",
            ),
            (
                Some("application/openmetrics-text"),
                Format::OpenMetrics,
                "openmetrics alone",
            ),
            (
                Some(
                    "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
                ),
                Format::OpenMetrics,
                "prometheus 2.x default scrape",
            ),
            (
                Some(
                    "text/plain;version=0.0.4;q=0.9,application/openmetrics-text;version=1.0.0;q=0.5",
                ),
                Format::Prometheus,
                "text preferred by q",
            ),
            (
                Some("application/openmetrics-text; q=0.5, text/plain; q=0.5"),
                Format::Prometheus,
                "a tie goes to the default",
            ),
            (
                Some("text/plain;q=0,*/*"),
                Format::OpenMetrics,
                "text refused, the rest welcome",
            ),
            (
                Some("Application/OpenMetrics-Text;Version=1.0.0"),
                Format::OpenMetrics,
                "case-insensitive",
            ),
            (
                Some("application/*"),
                Format::OpenMetrics,
                "application wildcard",
            ),
            (
                Some("application/json"),
                Format::Prometheus,
                "nothing acceptable",
            ),
            (
                Some("application/openmetrics-text;q=abc,text/plain;q=0.1"),
                Format::Prometheus,
                "a bad q drops its entry",
            ),
        ];
        for (accept, expected, why) in cases {
            assert_eq!(Format::negotiate(accept), expected, "{why}: {accept:?}");
        }
    }

    #[test]
    fn content_types_name_the_version() {
        assert_eq!(
            Format::Prometheus.content_type(),
            "text/plain; version=0.0.4; charset=utf-8"
        );
        assert_eq!(
            Format::OpenMetrics.content_type(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
    }

    #[test]
    fn prometheus_text_names_counters_with_total_and_has_no_openmetrics_lines() {
        let mut registry = Registry::default();
        let counter = prometheus_client::metrics::counter::Counter::<u64>::default();
        counter.inc();
        registry.register("hits", "Hits", counter);
        let text = encode(&registry, Format::Prometheus).expect("text");
        assert_eq!(
            text,
            "# HELP hits_total Hits.\n# TYPE hits_total counter\nhits_total 1\n"
        );
        let open = encode(&registry, Format::OpenMetrics).expect("openmetrics");
        assert!(
            open.contains("# TYPE hits counter") && open.ends_with("# EOF\n"),
            "{open}"
        );
    }

    #[test]
    fn encoded_registries_read_back_in_both_formats() {
        use crate::metrics::parse::{self, Kind};
        let mut registry = Registry::default();
        let counter = prometheus_client::metrics::counter::Counter::<u64>::default();
        counter.inc_by(3);
        registry.register("hits", "Hits", counter);
        let histogram = crate::metrics::latency_histogram();
        histogram.observe(0.01);
        registry.register("wait_seconds", "Wait", histogram);
        let cases = [
            (Format::Prometheus, parse::Format::Text004, "hits_total"),
            (Format::OpenMetrics, parse::Format::OpenMetrics, "hits"),
        ];
        for (written, read, counter_name) in cases {
            let text = encode(&registry, written).expect("encoded");
            let families = parse::parse(&text, read).unwrap_or_else(|e| panic!("{e}:\n{text}"));
            let shapes: Vec<_> = families
                .iter()
                .map(|f| (f.name.as_str(), f.kind, f.samples.len()))
                .collect();
            assert_eq!(
                shapes,
                [
                    (counter_name, Kind::Counter, 1),
                    ("wait_seconds", Kind::Histogram, 19)
                ],
                "{text}"
            );
            assert_eq!(families[0].samples[0].value, 3.0);
        }
    }
}
