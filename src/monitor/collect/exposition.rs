//! A small writer of Prometheus text format 0.0.4, enough for the collectors: families with
//! `# HELP` and `# TYPE`, samples with labels, summaries' `_sum`/`_count` lines.
//!
//! Families are written in the order they were first declared, each exactly once, and a
//! family without samples is left out. A repeated sample (same suffix, same labels) keeps the
//! first value, so a scrape never carries duplicates Prometheus would reject.
//! See <https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format>.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

/// The `Content-Type` of a body written by [`Exposition`].
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The `# TYPE` of a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    /// A value that only goes up (resets aside).
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// Quantiles plus `_sum` and `_count`.
    Summary,
    /// No type information (`pg_static` is exported so).
    Untyped,
}

impl MetricType {
    /// The word used on the `# TYPE` line.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Summary => "summary",
            MetricType::Untyped => "untyped",
        }
    }
}

/// A scrape body under construction.
#[derive(Debug, Default)]
pub struct Exposition {
    families: Vec<Family>,
    index: HashMap<String, usize>,
}

/// One metric family: its name, help, type and samples.
#[derive(Debug)]
pub struct Family {
    name: String,
    help: String,
    kind: MetricType,
    samples: Vec<Sample>,
    seen: HashSet<(&'static str, String)>,
}

/// One sample line, labels already rendered as `{a="1",b="2"}` (or empty).
#[derive(Debug)]
struct Sample {
    suffix: &'static str,
    labels: String,
    value: f64,
}

impl Exposition {
    /// Starts an empty body.
    pub fn new() -> Exposition {
        Exposition::default()
    }

    /// Returns the family `name`, declaring it with `kind` and `help` on first use; later
    /// declarations of the same name keep the first type and help.
    pub fn family(&mut self, name: &str, kind: MetricType, help: &str) -> &mut Family {
        let at = match self.index.get(name) {
            Some(&at) => at,
            None => {
                self.families.push(Family {
                    name: name.to_owned(),
                    help: help.to_owned(),
                    kind,
                    samples: Vec::new(),
                    seen: HashSet::new(),
                });
                self.index.insert(name.to_owned(), self.families.len() - 1);
                self.families.len() - 1
            }
        };
        &mut self.families[at]
    }

    /// Adds one gauge sample, declaring the family if needed.
    pub fn gauge(&mut self, name: &str, help: &str, labels: &[(&str, &str)], value: f64) {
        self.family(name, MetricType::Gauge, help)
            .sample(labels, value);
    }

    /// Adds one counter sample, declaring the family if needed.
    pub fn counter(&mut self, name: &str, help: &str, labels: &[(&str, &str)], value: f64) {
        self.family(name, MetricType::Counter, help)
            .sample(labels, value);
    }

    /// True when no family has a sample.
    pub fn is_empty(&self) -> bool {
        self.families.iter().all(|f| f.samples.is_empty())
    }

    /// Renders the body: every family with samples, in declaration order.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(64 * self.families.len());
        for family in self.families.iter().filter(|f| !f.samples.is_empty()) {
            family.render_into(&mut out);
        }
        out
    }
}

impl Family {
    /// Adds a sample with these labels (in this order); ignored if one with the same labels
    /// is already present.
    pub fn sample(&mut self, labels: &[(&str, &str)], value: f64) -> &mut Family {
        self.sample_with_suffix("", labels, value)
    }

    /// Adds a sample whose name is the family name plus `suffix` (`_sum`, `_count`).
    pub fn sample_with_suffix(
        &mut self,
        suffix: &'static str,
        labels: &[(&str, &str)],
        value: f64,
    ) -> &mut Family {
        let rendered = render_labels(labels);
        if self.seen.insert((suffix, rendered.clone())) {
            self.samples.push(Sample {
                suffix,
                labels: rendered,
                value,
            });
        }
        self
    }

    fn render_into(&self, out: &mut String) {
        // Writing to a String cannot fail.
        let _ = writeln!(out, "# HELP {} {}", self.name, escape_help(&self.help));
        let _ = writeln!(out, "# TYPE {} {}", self.name, self.kind.as_str());
        for sample in &self.samples {
            let _ = writeln!(
                out,
                "{}{}{} {}",
                self.name,
                sample.suffix,
                sample.labels,
                format_value(sample.value)
            );
        }
    }
}

/// Turns any string into a valid metric or label name: characters outside `[a-zA-Z0-9_]`
/// become `_`, and a leading digit gets a `_` in front.
pub fn sanitize_name(raw: &str) -> String {
    let mut out: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) || out.is_empty() {
        out.insert(0, '_');
    }
    out
}

/// Formats a sample value: integers without a fraction, `NaN`, `+Inf`, `-Inf`, otherwise the
/// shortest text that reads back as the same `f64` (in exponent form when very large or small).
pub fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else if value == value.trunc() && value.abs() < 1e15 {
        // Exact for every integer below 2^53; `as` cannot overflow in this range.
        format!("{}", value as i64)
    } else if value.abs() >= 1e15 || value.abs() < 1e-4 {
        format!("{value:e}")
    } else {
        format!("{value}")
    }
}

fn render_labels(labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let mut out = String::from("{");
    for (i, (name, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(name);
        out.push_str("=\"");
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                _ => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
    out
}

fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_writes_help_type_and_samples_once_per_family() {
        let mut exp = Exposition::new();
        exp.gauge("a_gauge", "A gauge.", &[("x", "1")], 2.0);
        exp.counter("b_total", "B.", &[], 3.5);
        exp.gauge("a_gauge", "ignored help", &[("x", "2")], 4.0);

        let text = exp.render();

        assert_eq!(
            text,
            "# HELP a_gauge A gauge.\n# TYPE a_gauge gauge\na_gauge{x=\"1\"} 2\na_gauge{x=\"2\"} 4\n\
             # HELP b_total B.\n# TYPE b_total counter\nb_total 3.5\n"
        );
    }

    #[test]
    fn render_skips_families_without_samples() {
        let mut exp = Exposition::new();
        exp.family("empty", MetricType::Gauge, "Nothing.");
        exp.gauge("full", "Something.", &[], 1.0);

        assert_eq!(
            exp.render(),
            "# HELP full Something.\n# TYPE full gauge\nfull 1\n"
        );
        assert!(!exp.is_empty());
        assert!(Exposition::new().is_empty());
    }

    #[test]
    fn sample_keeps_the_first_of_repeated_label_sets() {
        let mut exp = Exposition::new();
        exp.gauge("g", "G.", &[("a", "1")], 1.0);
        exp.gauge("g", "G.", &[("a", "1")], 9.0);

        assert_eq!(exp.render(), "# HELP g G.\n# TYPE g gauge\ng{a=\"1\"} 1\n");
    }

    #[test]
    fn summary_suffixes_are_distinct_samples() {
        let mut exp = Exposition::new();
        exp.family("lat", MetricType::Summary, "L.")
            .sample(&[("cmd", "get"), ("quantile", "50")], 1.5)
            .sample_with_suffix("_sum", &[("cmd", "get")], 10.0)
            .sample_with_suffix("_count", &[("cmd", "get")], 4.0);

        assert_eq!(
            exp.render(),
            "# HELP lat L.\n# TYPE lat summary\nlat{cmd=\"get\",quantile=\"50\"} 1.5\n\
             lat_sum{cmd=\"get\"} 10\nlat_count{cmd=\"get\"} 4\n"
        );
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        let mut exp = Exposition::new();
        exp.gauge("e", "back\\slash\nnewline", &[("v", "a\"b\\c\nd")], 1.0);

        assert_eq!(
            exp.render(),
            "# HELP e back\\\\slash\\nnewline\n# TYPE e gauge\ne{v=\"a\\\"b\\\\c\\nd\"} 1\n"
        );
    }

    #[test]
    fn format_value_covers_integers_fractions_and_specials() {
        let cases = [
            (0.0, "0"),
            (-0.0, "0"),
            (134217728.0, "134217728"),
            (-1.0, "-1"),
            (0.25, "0.25"),
            (0.001, "0.001"),
            (1e-6, "1e-6"),
            (1e20, "1e20"),
            (1.5e-7, "1.5e-7"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
        ];
        for (value, want) in cases {
            assert_eq!(format_value(value), want, "value {value:?}");
        }
    }

    #[test]
    fn sanitize_name_replaces_invalid_characters() {
        let cases = [
            ("max_connections", "max_connections"),
            ("pg_stat_statements.max", "pg_stat_statements_max"),
            ("client|setname", "client_setname"),
            ("9lives", "_9lives"),
            ("", "_"),
        ];
        for (raw, want) in cases {
            assert_eq!(sanitize_name(raw), want, "raw {raw:?}");
        }
    }
}
