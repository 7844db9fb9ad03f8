//! Reading scraped exposition text into metric families: Prometheus text format 0.0.4 and
//! OpenMetrics 1.0, as real exporters write them.
//!
//! Prometheus's own parsers (`model/textparse/promparse.go` and `openmetricsparse.go`) are the
//! reference: 0.0.4 is read as leniently as Prometheus reads it (blank lines, any comment,
//! runs of spaces and tabs, leading whitespace, a trailing comma or no comma between labels),
//! OpenMetrics as strictly (single spaces, no blank lines, no other comments, a final
//! `# EOF` and nothing after it). Both accept quoted UTF-8 metric and label names
//! (`{"my.metric", "my.label"="x"}`), as current Prometheus does.
//!
//! Where this reader differs from Prometheus, on purpose:
//! - a line may end in `\r\n` (the `\r` is dropped);
//! - a `# HELP`/`# TYPE` name must be followed by whitespace or the end of the line (Prometheus
//!   silently drops the character after the name), and an OpenMetrics `# HELP`/`# UNIT` without
//!   text reads as empty (Prometheus rejects it); a 0.0.4 `# TYPE` may have trailing blanks;
//! - OpenMetrics timestamps (float seconds) are rounded to the nearest millisecond rather than
//!   truncated, so `1.001` is 1001 ms although `1.001 * 1000` is just under 1001 in binary;
//! - samples are grouped into families (see [`parse`]); exemplars are checked and dropped.
//!
//! Values follow Go's `strconv.ParseFloat` minus the forms Prometheus refuses: decimal
//! numbers, `Inf`/`Infinity` with an optional sign and `NaN` without one, all
//! case-insensitively; hex floats and `_` separators are errors (Go needs a `p` exponent for a
//! hex float and Prometheus rejects `p`), and so is a finite-looking number that overflows to
//! infinity (Go's range error). Every NaN reads as the canonical quiet NaN, never as the
//! staleness marker.

mod line;

#[cfg(test)]
mod fixture_tests;
#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod tests;

use std::borrow::Cow;

use line::Line;

/// A text exposition format, as a scrape's `Content-Type` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4 (`text/plain; version=0.0.4`), also the fallback.
    Text004,
    /// OpenMetrics 1.0 text (`application/openmetrics-text`).
    OpenMetrics,
}

impl Format {
    /// Picks the format of a response body from its `Content-Type`: OpenMetrics for
    /// `application/openmetrics-text` (any parameters, any case), otherwise 0.0.4 text, as
    /// Prometheus falls back to when the header is missing or unknown.
    pub fn from_content_type(content_type_opt: Option<&str>) -> Format {
        let media_type = content_type_opt
            .and_then(|ct| ct.split(';').next())
            .map(str::trim);
        match media_type {
            Some(mt) if mt.eq_ignore_ascii_case("application/openmetrics-text") => {
                Format::OpenMetrics
            }
            _ => Format::Text004,
        }
    }
}

/// A metric family's type, from its `# TYPE` line; [`Kind::Unknown`] without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `counter`: samples `name` (0.0.4) or `name_total` and `name_created` (OpenMetrics).
    Counter,
    /// `gauge`.
    Gauge,
    /// `histogram`: `_bucket`, `_sum`, `_count` and `_created` samples.
    Histogram,
    /// `gaugehistogram` (OpenMetrics): `_bucket`, `_gsum` and `_gcount` samples.
    GaugeHistogram,
    /// `summary`: quantile samples under the name, then `_sum`, `_count` and `_created`.
    Summary,
    /// `info` (OpenMetrics): a `name_info` sample whose labels are the information.
    Info,
    /// `stateset` (OpenMetrics): one sample per state, labelled by the family name.
    StateSet,
    /// `unknown` (OpenMetrics), `untyped` (0.0.4), or no `# TYPE` at all.
    Unknown,
}

impl Kind {
    /// Returns the OpenMetrics name of the type (`untyped` is `unknown`), as Prometheus's
    /// metadata API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
            Kind::GaugeHistogram => "gaugehistogram",
            Kind::Summary => "summary",
            Kind::Info => "info",
            Kind::StateSet => "stateset",
            Kind::Unknown => "unknown",
        }
    }

    /// Reads a `# TYPE` word; each format knows its own set.
    fn from_word(word: &str, format: Format) -> Option<Kind> {
        let kind = match (word, format) {
            ("counter", _) => Kind::Counter,
            ("gauge", _) => Kind::Gauge,
            ("histogram", _) => Kind::Histogram,
            ("summary", _) => Kind::Summary,
            ("untyped", Format::Text004) | ("unknown", Format::OpenMetrics) => Kind::Unknown,
            ("gaugehistogram", Format::OpenMetrics) => Kind::GaugeHistogram,
            ("info", Format::OpenMetrics) => Kind::Info,
            ("stateset", Format::OpenMetrics) => Kind::StateSet,
            _ => return None,
        };
        Some(kind)
    }

    /// The endings a sample name may add to its family's name. Both formats share the table:
    /// a 0.0.4 counter is usually named `x_total` and written as such, but one written the
    /// OpenMetrics way still lands in its family.
    fn suffixes(self) -> &'static [&'static str] {
        match self {
            Kind::Counter => &["_total", "_created"],
            Kind::Histogram => &["_bucket", "_sum", "_count", "_created"],
            Kind::GaugeHistogram => &["_bucket", "_gsum", "_gcount"],
            Kind::Summary => &["_sum", "_count", "_created"],
            Kind::Info => &["_info"],
            Kind::Gauge | Kind::StateSet | Kind::Unknown => &[],
        }
    }
}

/// A metric family: its metadata and its samples, in the order written.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// The name in its `# TYPE`/`# HELP` lines (an OpenMetrics counter's has no `_total`, a
    /// 0.0.4 counter's usually does), or its first sample's name when it had none.
    pub name: String,
    /// The type; [`Kind::Unknown`] without a `# TYPE` line.
    pub kind: Kind,
    /// The `# HELP` text, unescaped; empty without one.
    pub help: String,
    /// The OpenMetrics `# UNIT`; empty without one (always, in 0.0.4).
    pub unit: String,
    /// The samples, in the order written.
    pub samples: Vec<Sample>,
}

impl Family {
    /// Starts a family with no metadata and no samples.
    fn new(name: String) -> Family {
        Family {
            name,
            kind: Kind::Unknown,
            help: String::new(),
            unit: String::new(),
            samples: Vec::new(),
        }
    }

    /// Tells whether a sample named `sample_name` belongs to this family: its own name, or
    /// its name and an ending its kind allows.
    fn owns(&self, sample_name: &str) -> bool {
        match sample_name.strip_prefix(self.name.as_str()) {
            Some("") => true,
            Some(suffix) => self.kind.suffixes().contains(&suffix),
            None => false,
        }
    }
}

/// One sample: a series (name and labels) and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series name, e.g. `x_bucket` of a histogram `x`.
    pub name: String,
    /// Label names and unescaped values, in the order written (repeats kept; empty values
    /// kept).
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
    /// The exporter's own timestamp in milliseconds since the epoch, when it wrote one.
    pub timestamp_ms: Option<i64>,
}

/// Why exposition text could not be read, and on which line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed exposition line {line}: {reason}")]
pub struct ParseError {
    /// The line, counted from 1.
    pub line: usize,
    /// What was wrong with it.
    pub reason: Reason,
}

/// What was wrong with a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Reason {
    /// OpenMetrics text ended without `# EOF`.
    #[error("openmetrics text does not end with # EOF")]
    MissingEof,
    /// OpenMetrics text went on after `# EOF`.
    #[error("unexpected data after # EOF")]
    DataAfterEof,
    /// An empty line in OpenMetrics text.
    #[error("blank line")]
    BlankLine,
    /// An OpenMetrics comment other than HELP, TYPE, UNIT or EOF.
    #[error("comment is not # HELP, # TYPE, # UNIT or # EOF")]
    UnexpectedComment,
    /// A line that is neither a comment nor a sample.
    #[error("expected a metric name or a comment")]
    ExpectedLineStart,
    /// A HELP, TYPE or UNIT line without a valid metric name.
    #[error("expected a metric name")]
    ExpectedMetricName,
    /// A missing separator: a space (OpenMetrics) or whitespace (0.0.4).
    #[error("expected a space")]
    ExpectedSpace,
    /// A TYPE that is not one of the format's types.
    #[error("unknown metric type")]
    InvalidType,
    /// A UNIT that is not the end of its metric name.
    #[error("unit is not a suffix of the metric name")]
    UnitNotSuffix,
    /// Something other than a label name inside braces.
    #[error("expected a label name")]
    ExpectedLabelName,
    /// A label name not followed by `=`.
    #[error("expected = after a label name")]
    ExpectedEquals,
    /// A label `=` not followed by a quoted value.
    #[error("expected a quoted label value")]
    ExpectedLabelValue,
    /// A quoted string without its closing quote.
    #[error("unterminated quoted string")]
    UnterminatedQuote,
    /// An OpenMetrics label value followed by something other than `,` or `}`.
    #[error("expected , or }} after a label value")]
    ExpectedCommaOrBrace,
    /// A label set that the line ends inside.
    #[error("unclosed label set")]
    UnclosedBrace,
    /// Two quoted metric names in one label set.
    #[error("metric name given twice")]
    MetricNameTwice,
    /// A label set without a metric name before or inside it.
    #[error("sample without a metric name")]
    MissingMetricName,
    /// A sample without a value.
    #[error("expected a sample value")]
    ExpectedValue,
    /// A sample value that is not a number.
    #[error("sample value is not a number")]
    InvalidValue,
    /// A timestamp that is not an integer (0.0.4) or a finite number (OpenMetrics).
    #[error("invalid timestamp")]
    InvalidTimestamp,
    /// An OpenMetrics exemplar (` # {...} value [timestamp]`) that does not parse.
    #[error("malformed exemplar")]
    InvalidExemplar,
    /// Text after a sample's value and timestamp.
    #[error("unexpected text after the sample")]
    TrailingText,
}

/// Reads exposition text into metric families, in the order written.
///
/// `# HELP`, `# TYPE` and `# UNIT` lines describe the current family when they name it, and
/// start a new family otherwise; a repeated line replaces the earlier one. A sample belongs to
/// the current family when its name is the family's name, or the family's name and an ending
/// its kind allows (`_bucket`, `_sum`, `_count`, `_created` of a histogram, `_total` of an
/// OpenMetrics counter, ...); otherwise it starts a family of its own, of kind
/// [`Kind::Unknown`], named after it, as Prometheus treats a sample without metadata.
pub fn parse(text: &str, format: Format) -> Result<Vec<Family>, ParseError> {
    if format == Format::OpenMetrics && text.is_empty() {
        return Err(ParseError {
            line: 1,
            reason: Reason::MissingEof,
        });
    }
    let body = text.strip_suffix('\n').unwrap_or(text);
    let mut families = Families::default();
    let mut eof_seen = false;
    let mut lines_read = 0;
    for (index, raw) in body.split('\n').enumerate() {
        lines_read = index + 1;
        let fail = |reason| ParseError {
            line: index + 1,
            reason,
        };
        if eof_seen {
            return Err(fail(Reason::DataAfterEof));
        }
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        match line::read(line, format).map_err(fail)? {
            Line::Skip => {}
            Line::Eof => eof_seen = true,
            Line::Help(name, help) => families.describe(name).help = help.into_owned(),
            Line::Type(name, kind) => families.describe(name).kind = kind,
            Line::Unit(name, unit) => families.describe(name).unit = unit.to_owned(),
            Line::Sample(sample) => families.push_sample(sample),
        }
    }
    if format == Format::OpenMetrics && !eof_seen {
        return Err(ParseError {
            line: lines_read + 1,
            reason: Reason::MissingEof,
        });
    }
    Ok(families.0)
}

/// The families read so far; the last one is the current one.
#[derive(Default)]
struct Families(Vec<Family>);

impl Families {
    /// Returns the family a metadata line names: the current one when it has that name, a new
    /// one otherwise.
    fn describe(&mut self, name: Cow<'_, str>) -> &mut Family {
        let is_current = self.0.last().is_some_and(|f| f.name == name);
        if !is_current {
            self.0.push(Family::new(name.into_owned()));
        }
        let current = self.0.len() - 1;
        &mut self.0[current]
    }

    /// Adds a sample to the current family when it belongs there, else to a new family.
    fn push_sample(&mut self, sample: Sample) {
        if let Some(current) = self.0.last_mut()
            && current.owns(&sample.name)
        {
            current.samples.push(sample);
            return;
        }
        let mut family = Family::new(sample.name.clone());
        family.samples.push(sample);
        self.0.push(family);
    }
}
