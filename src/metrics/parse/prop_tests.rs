//! Property tests: generated families written in either format by a small test-only writer
//! read back the same, and no input at all makes [`parse`] panic.

use std::fmt::Write as _;

use proptest::prelude::*;

use super::*;

/// Generated families plus, per sample, the exemplar label value to write (OpenMetrics only).
#[derive(Debug, Clone)]
struct Case {
    families: Vec<Family>,
    exemplars: Vec<Vec<Option<String>>>,
}

/// A family before its name is made unique and its samples named.
#[derive(Debug, Clone)]
struct ProtoFamily {
    base: String,
    kind: Kind,
    help: String,
    unit: String,
    samples: Vec<ProtoSample>,
}

#[derive(Debug, Clone)]
struct ProtoSample {
    suffix: prop::sample::Index,
    labels: Vec<(String, String)>,
    value: f64,
    timestamp_ms: Option<i64>,
    exemplar: Option<String>,
}

/// Text dense in the characters the formats give meaning to, or any text at all.
fn tricky_text() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => "[{}\"\\\\/\n=, #\ta-z\u{e9}\u{1f600}]{0,12}",
        1 => any::<String>(),
    ]
}

fn metric_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z_:][a-zA-Z0-9_:]{0,10}",
        1 => tricky_text(),
    ]
}

fn label_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z_][a-zA-Z0-9_]{0,8}",
        1 => tricky_text(),
    ]
}

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => any::<f64>(),
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        1 => Just(-0.0),
        1 => prop::num::f64::SUBNORMAL,
        1 => Just(f64::MAX),
        1 => -1e6..1e6,
    ]
}

fn kind(format: Format) -> BoxedStrategy<Kind> {
    let common = [
        Kind::Counter,
        Kind::Gauge,
        Kind::Histogram,
        Kind::Summary,
        Kind::Unknown,
    ];
    let extra = [Kind::GaugeHistogram, Kind::Info, Kind::StateSet];
    match format {
        Format::Text004 => prop::sample::select(common.to_vec()).boxed(),
        Format::OpenMetrics => prop::sample::select([common.as_slice(), &extra].concat()).boxed(),
    }
}

fn sample(format: Format) -> impl Strategy<Value = ProtoSample> {
    let timestamp = match format {
        Format::Text004 => prop::option::of(0..=i64::MAX).boxed(),
        Format::OpenMetrics => prop::option::of(-1_000_000_000_000..10_000_000_000_000_i64).boxed(),
    };
    (
        any::<prop::sample::Index>(),
        prop::collection::vec((label_name(), tricky_text()), 0..4),
        value(),
        timestamp,
        prop::option::of(tricky_text()),
    )
        .prop_map(
            |(suffix, labels, value, timestamp_ms, exemplar)| ProtoSample {
                suffix,
                labels,
                value,
                timestamp_ms,
                exemplar,
            },
        )
}

fn proto_family(format: Format) -> impl Strategy<Value = ProtoFamily> {
    let unit = match format {
        Format::Text004 => Just(String::new()).boxed(),
        Format::OpenMetrics => "([a-z]{1,6})?".boxed(),
    };
    (
        metric_name(),
        kind(format),
        // A trailing \r would be read as half of a \r\n line break.
        tricky_text().prop_map(|h| h.trim_end_matches('\r').to_owned()),
        unit,
        prop::collection::vec(sample(format), 0..5),
    )
        .prop_map(|(base, kind, help, unit, samples)| ProtoFamily {
            base,
            kind,
            help,
            unit,
            samples,
        })
}

/// Generates a case: family names made distinct by their position, samples named with an
/// ending their kind allows.
fn case(format: Format) -> impl Strategy<Value = Case> {
    prop::collection::vec(proto_family(format), 0..6).prop_map(|protos| {
        let mut families = Vec::new();
        let mut exemplars = Vec::new();
        for (index, proto) in protos.into_iter().enumerate() {
            let mut name = format!("{}_{index}", proto.base);
            if !proto.unit.is_empty() {
                write!(name, "_{}", proto.unit).unwrap();
            }
            let mut endings = vec![""];
            endings.extend_from_slice(proto.kind.suffixes());
            let samples = proto.samples.iter().map(|s| Sample {
                name: format!("{name}{}", s.suffix.get(&endings)),
                labels: s.labels.clone(),
                value: s.value,
                timestamp_ms: s.timestamp_ms,
            });
            let family = Family {
                samples: samples.collect(),
                name,
                kind: proto.kind,
                help: proto.help,
                unit: proto.unit,
            };
            exemplars.push(proto.samples.into_iter().map(|s| s.exemplar).collect());
            families.push(family);
        }
        Case {
            families,
            exemplars,
        }
    })
}

/// Writes a case the way an exporter would.
fn render(case: &Case, format: Format) -> String {
    let mut out = String::new();
    for (family, exemplars) in case.families.iter().zip(&case.exemplars) {
        let name = name_token(&family.name, true);
        if !family.help.is_empty() {
            let help = escape(&family.help, format == Format::OpenMetrics);
            writeln!(out, "# HELP {name} {help}").unwrap();
        }
        writeln!(out, "# TYPE {name} {}", type_word(family.kind, format)).unwrap();
        if format == Format::OpenMetrics && !family.unit.is_empty() {
            writeln!(out, "# UNIT {name} {}", family.unit).unwrap();
        }
        for (sample, exemplar) in family.samples.iter().zip(exemplars) {
            render_sample(&mut out, sample, exemplar.as_deref(), format);
        }
    }
    if format == Format::OpenMetrics {
        out.push_str("# EOF\n");
    }
    out
}

fn render_sample(out: &mut String, sample: &Sample, exemplar: Option<&str>, format: Format) {
    let mut labels: Vec<String> = sample
        .labels
        .iter()
        .map(|(k, v)| format!("{}=\"{}\"", name_token(k, false), escape(v, true)))
        .collect();
    if is_plain(&sample.name, true) {
        out.push_str(&sample.name);
    } else {
        labels.insert(0, name_token(&sample.name, true));
    }
    if !labels.is_empty() {
        write!(out, "{{{}}}", labels.join(",")).unwrap();
    }
    write!(out, " {}", number(sample.value)).unwrap();
    match (sample.timestamp_ms, format) {
        (Some(ms), Format::Text004) => write!(out, " {ms}").unwrap(),
        (Some(ms), Format::OpenMetrics) => {
            let sign = if ms < 0 { "-" } else { "" };
            let abs = ms.unsigned_abs();
            write!(out, " {sign}{}.{:03}", abs / 1000, abs % 1000).unwrap();
        }
        (None, _) => {}
    }
    if let (Some(trace), Format::OpenMetrics) = (exemplar, format) {
        write!(out, " # {{trace_id=\"{}\"}} 1.5", escape(trace, true)).unwrap();
    }
    out.push('\n');
}

fn type_word(kind: Kind, format: Format) -> &'static str {
    match (kind, format) {
        (Kind::Unknown, Format::Text004) => "untyped",
        _ => kind.as_str(),
    }
}

/// Tells whether `name` can be written bare: `[a-zA-Z_:][a-zA-Z0-9_:]*` for a metric,
/// the same without `:` for a label.
fn is_plain(name: &str, colon: bool) -> bool {
    let ok = |b: u8| b.is_ascii_alphabetic() || b == b'_' || (colon && b == b':');
    let mut bytes = name.bytes();
    bytes.next().is_some_and(ok) && bytes.all(|b| ok(b) || b.is_ascii_digit())
}

/// A name as written: bare when it can be, quoted otherwise.
fn name_token(name: &str, colon: bool) -> String {
    if is_plain(name, colon) {
        name.to_owned()
    } else {
        format!("\"{}\"", escape(name, true))
    }
}

/// Escapes `\` and newlines, and `"` when `quotes`.
fn escape(text: &str, quotes: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quotes => out.push_str("\\\""),
            _ => out.push(c),
        }
    }
    out
}

fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value == f64::INFINITY {
        "+Inf".to_owned()
    } else if value == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        format!("{value:?}")
    }
}

/// Compares what was read with what was written, NaN by being NaN and other values by bits.
fn assert_same(read: &[Family], written: &[Family], format: Format) -> Result<(), TestCaseError> {
    prop_assert_eq!(read.len(), written.len());
    for (r, w) in read.iter().zip(written) {
        let unit = if format == Format::Text004 {
            ""
        } else {
            &w.unit
        };
        prop_assert_eq!(
            (&r.name, r.kind, &r.help, r.unit.as_str()),
            (&w.name, w.kind, &w.help, unit)
        );
        prop_assert_eq!(r.samples.len(), w.samples.len());
        for (rs, ws) in r.samples.iter().zip(&w.samples) {
            prop_assert_eq!((&rs.name, &rs.labels), (&ws.name, &ws.labels));
            prop_assert_eq!(rs.timestamp_ms, ws.timestamp_ms);
            let same_value = rs.value.to_bits() == ws.value.to_bits()
                || (rs.value.is_nan() && ws.value.is_nan());
            prop_assert!(same_value, "{} read as {}", ws.value, rs.value);
        }
    }
    Ok(())
}

/// Pieces of exposition syntax, glued at random by the never-panics properties.
fn fragments() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        prop::sample::select(vec![
            "# TYPE ",
            "# HELP ",
            "# UNIT ",
            "# EOF",
            "#",
            " # {",
            "{",
            "}",
            "\"",
            "\\",
            "=",
            ",",
            " ",
            "\t",
            "\n",
            "\r\n",
            "NaN",
            "+Inf",
            "_total",
            "_bucket",
            "counter",
            "gaugehistogram",
            "le",
            "\u{e9}",
        ])
        .prop_map(str::to_owned),
        "[a-z_:]{1,4}",
        "[0-9.eE+-]{1,6}",
    ];
    prop::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
}

fn any_format() -> impl Strategy<Value = Format> {
    prop_oneof![Just(Format::Text004), Just(Format::OpenMetrics)]
}

proptest! {
    #[test]
    fn text004_round_trips(case in case(Format::Text004)) {
        let text = render(&case, Format::Text004);
        let read = parse(&text, Format::Text004)
            .map_err(|e| TestCaseError::fail(format!("{e} in\n{text}")))?;
        assert_same(&read, &case.families, Format::Text004)?;
    }

    #[test]
    fn openmetrics_round_trips(case in case(Format::OpenMetrics)) {
        let text = render(&case, Format::OpenMetrics);
        let read = parse(&text, Format::OpenMetrics)
            .map_err(|e| TestCaseError::fail(format!("{e} in\n{text}")))?;
        assert_same(&read, &case.families, Format::OpenMetrics)?;
    }

    #[test]
    fn any_text_parses_or_errs_without_panicking(text in any::<String>(), format in any_format()) {
        let _ = parse(&text, format);
    }

    #[test]
    fn any_bytes_parse_or_err_without_panicking(
        bytes in prop::collection::vec(any::<u8>(), 0..300),
        format in any_format(),
    ) {
        let _ = parse(&String::from_utf8_lossy(&bytes), format);
    }

    #[test]
    fn syntax_soup_parses_or_errs_without_panicking(text in fragments(), format in any_format()) {
        let _ = parse(&text, format);
    }

    #[test]
    fn damaged_exposition_parses_or_errs_without_panicking(
        case in case(Format::OpenMetrics),
        format in any_format(),
        cut in any::<prop::sample::Index>(),
        insert in fragments(),
    ) {
        let text = render(&case, format);
        let mut at = cut.index(text.len() + 1);
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        let _ = parse(&text[..at], format);
        let damaged = format!("{}{insert}{}", &text[..at], &text[at..]);
        let _ = parse(&damaged, format);
    }
}
