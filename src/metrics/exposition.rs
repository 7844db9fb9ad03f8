//! Answering a scrape: which text format the scraper asked for (its `Accept` header, as
//! Spring Boot Actuator negotiates it), that format's encoding, and a reader of our own
//! Prometheus text for views built on the registry (`/actuator/metrics`).
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

/// A metric family read back from Prometheus text.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// The name in `# TYPE` (a counter's ends in `_total`).
    pub name: String,
    /// counter, gauge, histogram, summary or untyped.
    pub kind: String,
    pub help: String,
    pub samples: Vec<Sample>,
}

/// Label names and unescaped values, in the order written.
pub type Labels = Vec<(String, String)>;

/// One series' value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series name, e.g. `x_bucket` or `x_count` of a histogram `x`.
    pub name: String,
    pub labels: Labels,
    pub value: f64,
}

/// Why Prometheus text could not be read.
#[derive(Debug, thiserror::Error)]
#[error("malformed exposition line {line}: {reason}")]
pub struct ParseError {
    /// 1-based.
    pub line: usize,
    pub reason: &'static str,
}

/// Reads Prometheus text format 0.0.4 into families, in order. A sample belongs to the
/// family before it when its name starts with the family's; otherwise it starts an untyped
/// family of its own.
pub fn parse(text: &str) -> Result<Vec<Family>, ParseError> {
    let mut families: Vec<Family> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        let fail = |reason| ParseError {
            line: index + 1,
            reason,
        };
        if let Some(comment) = line.strip_prefix('#') {
            read_descriptor(comment, &mut families).map_err(fail)?;
        } else if !line.is_empty() {
            let sample = parse_sample(line).map_err(fail)?;
            match families.last_mut() {
                Some(family) if sample.name.starts_with(&family.name) => {
                    family.samples.push(sample);
                }
                _ => families.push(Family {
                    name: sample.name.clone(),
                    kind: "untyped".to_owned(),
                    help: String::new(),
                    samples: vec![sample],
                }),
            }
        }
    }
    Ok(families)
}

/// Applies a `# HELP` or `# TYPE` line to the family it names; other comments are skipped.
fn read_descriptor(comment: &str, families: &mut Vec<Family>) -> Result<(), &'static str> {
    let mut words = comment.trim_start().splitn(3, ' ');
    let keyword = words.next().unwrap_or("");
    if keyword != "HELP" && keyword != "TYPE" {
        return Ok(());
    }
    let name = words.next().ok_or("descriptor without a name")?;
    let rest = words.next().unwrap_or("");
    if families.last().is_none_or(|f| f.name != name) {
        families.push(Family {
            name: name.to_owned(),
            kind: "untyped".to_owned(),
            help: String::new(),
            samples: Vec::new(),
        });
    }
    let family = families.last_mut().ok_or("no family")?;
    if keyword == "HELP" {
        family.help = rest.replace("\\n", "\n").replace("\\\\", "\\");
    } else {
        family.kind = rest.trim().to_owned();
    }
    Ok(())
}

/// Parses `name{label="value",...} value [timestamp]`.
fn parse_sample(line: &str) -> Result<Sample, &'static str> {
    let name_end = line
        .find(['{', ' ', '\t'])
        .ok_or("sample without a value")?;
    let name = &line[..name_end];
    let (labels, rest) = if line[name_end..].starts_with('{') {
        parse_labels(&line[name_end + 1..])?
    } else {
        (Vec::new(), &line[name_end..])
    };
    let value = rest
        .split_whitespace()
        .next()
        .ok_or("sample without a value")?
        .parse::<f64>()
        .map_err(|_| "sample value is not a number")?;
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Parses labels after `{` up to `}`; returns them and the text after `}`.
fn parse_labels(mut rest: &str) -> Result<(Labels, &str), &'static str> {
    let mut labels = Vec::new();
    loop {
        rest = rest.trim_start_matches([' ', ',']);
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let (key, after_key) = rest.split_once("=\"").ok_or("label without a value")?;
        let mut value = String::new();
        let mut chars = after_key.char_indices();
        let end = loop {
            match chars.next().ok_or("unterminated label value")? {
                (i, '"') => break i,
                (_, '\\') => match chars.next().ok_or("unterminated label value")?.1 {
                    'n' => value.push('\n'),
                    escaped => value.push(escaped),
                },
                (_, c) => value.push(c),
            }
        };
        labels.push((key.trim().to_owned(), value));
        rest = &after_key[end + 1..];
    }
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
    fn parses_families_labels_and_escapes() {
        let text = concat!(
            "# HELP req_seconds Request time.\n",
            "# TYPE req_seconds histogram\n",
            "req_seconds_bucket{uri=\"/a\",le=\"+Inf\"} 2\n",
            "req_seconds_sum{uri=\"/a\"} 0.5\n",
            "req_seconds_count{uri=\"/a\"} 2\n",
            "# TYPE up gauge\n",
            "up{note=\"say \\\"hi\\\"\\\\ok\\nbye\",x=\"}\"} 1 1700000000000\n",
            "loose 3\n",
        );
        let families = parse(text).expect("parsed");
        let names: Vec<_> = families
            .iter()
            .map(|f| (f.name.as_str(), f.kind.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("req_seconds", "histogram"),
                ("up", "gauge"),
                ("loose", "untyped")
            ]
        );
        assert_eq!(families[0].help, "Request time.");
        assert_eq!(families[0].samples.len(), 3);
        assert_eq!(families[0].samples[1].value, 0.5);
        assert_eq!(
            families[1].samples[0].labels,
            [
                ("note".to_owned(), "say \"hi\"\\ok\nbye".to_owned()),
                ("x".to_owned(), "}".to_owned())
            ]
        );
        assert_eq!(families[0].samples[0].value, 2.0);
    }

    #[test]
    fn malformed_lines_are_errors_with_their_line_number() {
        let cases = [
            ("x{a=\"1} 2\n", 1, "unterminated label value"),
            ("# TYPE x gauge\nx{a} 2\n", 2, "label without a value"),
            ("x abc\n", 1, "sample value is not a number"),
            ("x\n", 1, "sample without a value"),
        ];
        for (text, line, reason) in cases {
            let err = parse(text).expect_err(text);
            assert_eq!((err.line, err.reason), (line, reason), "{text:?}");
        }
    }
}
