//! Hand-written edge cases: one test per rule the module docs state.

use super::*;

/// Parses `text` or fails the test with the error.
fn ok(text: &str, format: Format) -> Vec<Family> {
    parse(text, format).unwrap_or_else(|e| panic!("{e} in {format:?}:\n{text}"))
}

/// Parses `text`, expecting an error, and returns it.
fn err(text: &str, format: Format) -> ParseError {
    match parse(text, format) {
        Ok(families) => panic!("{format:?} accepted {text:?} as {families:#?}"),
        Err(e) => e,
    }
}

/// Names and kinds of `families`, for compact assertions.
fn shapes(families: &[Family]) -> Vec<(&str, Kind, usize)> {
    families
        .iter()
        .map(|f| (f.name.as_str(), f.kind, f.samples.len()))
        .collect()
}

fn pairs(labels: &[(&str, &str)]) -> Vec<(String, String)> {
    labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

const OM: Format = Format::OpenMetrics;
const TEXT: Format = Format::Text004;

#[test]
fn content_types_pick_the_format() {
    let cases = [
        (None, TEXT),
        (Some(""), TEXT),
        (Some("text/plain; version=0.0.4; charset=utf-8"), TEXT),
        (Some("application/openmetrics-text"), OM),
        (
            Some("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            OM,
        ),
        (Some(" Application/OpenMetrics-Text;version=0.0.1"), OM),
        (Some("application/json"), TEXT),
    ];
    for (content_type, expected) in cases {
        assert_eq!(
            Format::from_content_type(content_type),
            expected,
            "{content_type:?}"
        );
    }
}

#[test]
fn label_values_keep_braces_slashes_commas_and_equals() {
    let text = "http_seconds_count{uri=\"/api/v1/coupons/{id}\",q=\"a=b,c}\"} 4\n";
    let families = ok(text, TEXT);
    assert_eq!(
        families[0].samples[0].labels,
        pairs(&[("uri", "/api/v1/coupons/{id}"), ("q", "a=b,c}")])
    );
    let om = ok(&format!("{text}# EOF\n"), OM);
    assert_eq!(om[0].samples[0].labels, families[0].samples[0].labels);
}

#[test]
fn special_values_read_as_go_reads_them() {
    let cases = [
        ("NaN", f64::NAN),
        ("nan", f64::NAN),
        ("+Inf", f64::INFINITY),
        ("-Inf", f64::NEG_INFINITY),
        ("Inf", f64::INFINITY),
        ("inf", f64::INFINITY),
        ("-infinity", f64::NEG_INFINITY),
        ("1e3", 1000.0),
        ("-0.5E-1", -0.05),
        (".5", 0.5),
        ("5.", 5.0),
        ("+7", 7.0),
        ("-0", -0.0),
        ("4.9e-324", 4.9e-324),
    ];
    for (token, expected) in cases {
        let families = ok(&format!("x {token}\n"), TEXT);
        let value = families[0].samples[0].value;
        assert!(
            value.to_bits() == expected.to_bits() || (value.is_nan() && expected.is_nan()),
            "{token} read as {value}"
        );
    }
}

#[test]
fn values_go_refuses_are_errors() {
    for token in [
        "+NaN", "-nan", "0x1p3", "0x10", "1_000", "1e400", "-1e400", "1e", "abc", "infin", "1,5",
        "--1",
    ] {
        let e = err(&format!("x {token}\n"), TEXT);
        assert_eq!(e.reason, Reason::InvalidValue, "{token}");
    }
}

#[test]
fn nan_is_never_the_staleness_marker() {
    let families = ok("x NaN\n", TEXT);
    let value = families[0].samples[0].value;
    assert!(value.is_nan());
    // Prometheus's staleness marker (monitor::series::STALE_NAN_BITS); metrics/ may not
    // import a role's module, so the bits are spelled out.
    assert_ne!(value.to_bits(), 0x7ff0_0000_0000_0002);
}

#[test]
fn openmetrics_needs_a_final_eof_and_nothing_after_it() {
    assert_eq!(ok("a 1\n# EOF\n", OM).len(), 1);
    assert_eq!(ok("a 1\n# EOF", OM).len(), 1, "no newline after # EOF");
    assert!(ok("# EOF\n", OM).is_empty());
    let cases = [
        ("a 1\n", 2, Reason::MissingEof),
        ("", 1, Reason::MissingEof),
        ("a 1\n# EOF\n\n", 3, Reason::DataAfterEof),
        ("a 1\n# EOF\nb 2\n", 3, Reason::DataAfterEof),
        ("# EOF\n# EOF\n", 2, Reason::DataAfterEof),
        ("a 1\n# EOF \n", 2, Reason::UnexpectedComment),
    ];
    for (text, line, reason) in cases {
        let e = err(text, OM);
        assert_eq!((e.line, e.reason), (line, reason), "{text:?}");
    }
}

#[test]
fn text004_treats_eof_as_a_comment() {
    let families = ok("a 1\n# EOF\nb 2\n", TEXT);
    assert_eq!(
        shapes(&families),
        [("a", Kind::Unknown, 1), ("b", Kind::Unknown, 1)]
    );
}

#[test]
fn exemplars_are_checked_and_dropped() {
    let text = concat!(
        "# TYPE rq counter\n",
        "rq_total{m=\"GET\"} 3.0 # {trace_id=\"abc\"} 1.0 1600000000.5\n",
        "rq_total{m=\"PUT\"} 4 1600000000.25 # {trace_id=\"x\",span=\"y\"} 2\n",
        "rq_total{m=\"POST\"} 5 # {} 0\n",
        "# EOF\n",
    );
    let samples = &ok(text, OM)[0].samples;
    assert_eq!(samples.len(), 3);
    assert_eq!((samples[0].value, samples[0].timestamp_ms), (3.0, None));
    assert_eq!(
        (samples[1].value, samples[1].timestamp_ms),
        (4.0, Some(1_600_000_000_250))
    );
    assert_eq!(samples[1].labels, pairs(&[("m", "PUT")]));
    for bad in [
        "x 1 # {a=\"b\"}\n# EOF\n",
        "x 1 # {a=\"b\"} one\n# EOF\n",
        "x 1 # {a=\"b\"} 1 NaN\n# EOF\n",
        "x 1 # {a=\"b\" 1\n# EOF\n",
        "x 1 # {\"name\"} 1\n# EOF\n",
        "x 1 # {a=\"b\"} 1 2 3\n# EOF\n",
    ] {
        assert_eq!(err(bad, OM).reason, Reason::InvalidExemplar, "{bad:?}");
    }
    let e = err("x 1 # {a=\"b\"} 1\n", TEXT);
    assert_eq!(e.reason, Reason::InvalidTimestamp, "0.0.4 has no exemplars");
}

#[test]
fn histograms_and_units_make_one_family() {
    let text = concat!(
        "# TYPE req_seconds histogram\n",
        "# UNIT req_seconds seconds\n",
        "# HELP req_seconds Request time.\n",
        "req_seconds_bucket{le=\"0.1\"} 1\n",
        "req_seconds_bucket{le=\"+Inf\"} 2\n",
        "req_seconds_sum 0.3\n",
        "req_seconds_count 2\n",
        "req_seconds_created 1.6e9\n",
        "# EOF\n",
    );
    let families = ok(text, OM);
    assert_eq!(shapes(&families), [("req_seconds", Kind::Histogram, 5)]);
    assert_eq!(families[0].unit, "seconds");
    assert_eq!(families[0].help, "Request time.");
    assert_eq!(families[0].samples[1].labels, pairs(&[("le", "+Inf")]));
    assert_eq!(families[0].samples[4].value, 1.6e9);
}

#[test]
fn a_unit_must_end_its_metric_name() {
    assert_eq!(ok("# UNIT a_bytes \n# EOF\n", OM)[0].unit, "");
    assert_eq!(ok("# UNIT a_bytes\n# EOF\n", OM)[0].unit, "");
    for bad in [
        "# UNIT a_bytes seconds\n",
        "# UNIT bytes bytes\n",
        "# UNIT abytes bytes\n",
    ] {
        let e = err(&format!("{bad}# EOF\n"), OM);
        assert_eq!((e.line, e.reason), (1, Reason::UnitNotSuffix), "{bad:?}");
    }
}

#[test]
fn escapes_are_undone_in_label_values_and_help() {
    let labels = "x{a=\"q\\\"uote\",b=\"back\\\\slash\",c=\"new\\nline\",d=\"other\\t\"} 1\n";
    let expected = pairs(&[
        ("a", "q\"uote"),
        ("b", "back\\slash"),
        ("c", "new\nline"),
        ("d", "other\\t"),
    ]);
    assert_eq!(ok(labels, TEXT)[0].samples[0].labels, expected);
    assert_eq!(
        ok(&format!("{labels}# EOF\n"), OM)[0].samples[0].labels,
        expected
    );

    let help = "# HELP x a \\\\ b \\n c \\\" d \\t\n";
    assert_eq!(
        ok(help, TEXT)[0].help,
        "a \\ b \n c \\\" d \\t",
        "0.0.4 keeps \\\""
    );
    assert_eq!(
        ok(&format!("{help}# EOF\n"), OM)[0].help,
        "a \\ b \n c \" d \\t",
        "OpenMetrics undoes \\\""
    );
}

#[test]
fn text004_timestamps_are_integer_milliseconds() {
    let families = ok("a 1 1700000000123\nb 2\t 0 \n", TEXT);
    assert_eq!(families[0].samples[0].timestamp_ms, Some(1_700_000_000_123));
    assert_eq!(families[1].samples[0].timestamp_ms, Some(0));
    for bad in [
        "a 1 1.5\n",
        "a 1 -5\n",
        "a 1 1e3\n",
        "a 1 99999999999999999999\n",
    ] {
        assert_eq!(err(bad, TEXT).reason, Reason::InvalidTimestamp, "{bad:?}");
    }
    assert_eq!(err("a 1 2 3\n", TEXT).reason, Reason::TrailingText);
}

#[test]
fn openmetrics_timestamps_are_float_seconds_rounded_to_milliseconds() {
    let text = "a 1 1.001\nb 1 -1.5\nc 1 1600000000\nd 1 1.6e9\ne 1 0.0004\n# EOF\n";
    let stamps: Vec<_> = ok(text, OM)
        .iter()
        .map(|f| f.samples[0].timestamp_ms)
        .collect();
    assert_eq!(
        stamps,
        [
            Some(1001),
            Some(-1500),
            Some(1_600_000_000_000),
            Some(1_600_000_000_000),
            Some(0)
        ]
    );
    for bad in ["a 1 NaN\n", "a 1 +Inf\n", "a 1 soon\n", "a 1  2\n"] {
        let e = err(&format!("{bad}# EOF\n"), OM);
        assert_eq!(e.reason, Reason::InvalidTimestamp, "{bad:?}");
    }
}

#[test]
fn text004_skips_blank_lines_and_openmetrics_refuses_them() {
    let text = "\n# TYPE a gauge\n\n  \t\na 1\n\n";
    assert_eq!(shapes(&ok(text, TEXT)), [("a", Kind::Gauge, 1)]);
    let e = err("a 1\n\n# EOF\n", OM);
    assert_eq!((e.line, e.reason), (2, Reason::BlankLine));
}

#[test]
fn crlf_line_endings_are_accepted() {
    let text = "# HELP a Help.\r\n# TYPE a gauge\r\na{x=\"y\"} 1\r\n";
    let families = ok(text, TEXT);
    assert_eq!(families[0].help, "Help.");
    assert_eq!(families[0].kind, Kind::Gauge);
    assert_eq!(families[0].samples[0].value, 1.0);
    let om = ok(&format!("{text}# EOF\r\n"), OM);
    assert_eq!(om, families);
    let stamped = ok("a 1 5\r\n", TEXT);
    assert_eq!(stamped[0].samples[0].timestamp_ms, Some(5));
}

#[test]
fn text004_allows_tabs_and_runs_of_blanks_everywhere() {
    let text = concat!(
        "\t# \tTYPE\t a\tcounter \t\n",
        "  a {\tx = \"1\" ,\ty=\"2\" , } \t 7 \t 9\t\n",
        "a{x=\"3\" y=\"4\"}8\n",
        "#\tHELP  a  two spaces\n",
    );
    let families = ok(text, TEXT);
    assert_eq!(shapes(&families), [("a", Kind::Counter, 2)]);
    assert_eq!(
        families[0].samples[0].labels,
        pairs(&[("x", "1"), ("y", "2")])
    );
    assert_eq!(families[0].samples[0].timestamp_ms, Some(9));
    assert_eq!(
        families[0].samples[1].labels,
        pairs(&[("x", "3"), ("y", "4")])
    );
    assert_eq!(families[0].help, " two spaces", "only one blank separates");
}

#[test]
fn openmetrics_allows_single_spaces_only() {
    let cases = [
        ("a\t1\n", Reason::ExpectedSpace),
        ("a  1\n", Reason::ExpectedValue),
        ("a 1 \n", Reason::InvalidTimestamp),
        (" a 1\n", Reason::ExpectedLineStart),
        ("a {x=\"1\"} 1\n", Reason::InvalidValue),
        ("a{ x=\"1\"} 1\n", Reason::ExpectedLabelName),
        ("a{x =\"1\"} 1\n", Reason::ExpectedEquals),
        ("a{x=\"1\" ,y=\"2\"} 1\n", Reason::ExpectedCommaOrBrace),
        ("a{x=\"1\"y=\"2\"} 1\n", Reason::ExpectedCommaOrBrace),
        ("#  TYPE a gauge\n", Reason::UnexpectedComment),
        ("# TYPE a  gauge\n", Reason::InvalidType),
        ("# TYPE a gauge \n", Reason::InvalidType),
    ];
    for (line, reason) in cases {
        let e = err(&format!("{line}# EOF\n"), OM);
        assert_eq!((e.line, e.reason), (1, reason), "{line:?}");
    }
    let trailing_comma = ok("a{x=\"1\",} 1\n# EOF\n", OM);
    assert_eq!(trailing_comma[0].samples[0].labels, pairs(&[("x", "1")]));
}

#[test]
fn repeated_help_and_type_describe_one_family_and_the_last_wins() {
    let text = concat!(
        "# HELP a First.\n",
        "# HELP a Second.\n",
        "# TYPE a counter\n",
        "# TYPE a gauge\n",
        "a 1\n",
        "# HELP a Third.\n",
        "a 2\n",
    );
    let families = ok(text, TEXT);
    assert_eq!(shapes(&families), [("a", Kind::Gauge, 2)]);
    assert_eq!(families[0].help, "Third.");
}

#[test]
fn samples_without_type_make_unknown_families_by_name() {
    let text = concat!(
        "loose{a=\"1\"} 1\n",
        "loose{a=\"2\"} 2\n",
        "loose_sum 3\n",
        "# TYPE g gauge\n",
        "g 4\n",
        "g_total 5\n",
        "stray 6\n",
    );
    assert_eq!(
        shapes(&ok(text, TEXT)),
        [
            ("loose", Kind::Unknown, 2),
            ("loose_sum", Kind::Unknown, 1),
            ("g", Kind::Gauge, 1),
            ("g_total", Kind::Unknown, 1),
            ("stray", Kind::Unknown, 1),
        ]
    );
    assert_eq!(
        shapes(&ok("# TYPE u untyped\nu 1\n", TEXT)),
        [("u", Kind::Unknown, 1)]
    );
    assert_eq!(
        shapes(&ok("# TYPE u unknown\nu 1\n# EOF\n", OM)),
        [("u", Kind::Unknown, 1)]
    );
}

#[test]
fn text004_skips_other_comments_and_openmetrics_refuses_them() {
    let text = concat!(
        "# just a comment\n",
        "#HELP a not metadata without a space\n",
        "# HELPER a not metadata either\n",
        "# HELP\n",
        "#\n",
        "# TYPE a gauge\n",
        "# a comment inside the family\n",
        "a 1\n",
    );
    let families = ok(text, TEXT);
    assert_eq!(shapes(&families), [("a", Kind::Gauge, 1)]);
    assert_eq!(families[0].help, "");
    for comment in ["# just a comment", "#HELP a x", "#", "# HELP", "# EOFX"] {
        let e = err(&format!("{comment}\n# EOF\n"), OM);
        assert_eq!(
            (e.line, e.reason),
            (1, Reason::UnexpectedComment),
            "{comment}"
        );
    }
}

#[test]
fn openmetrics_counters_own_their_total_and_created_samples() {
    let text = concat!(
        "# TYPE requests counter\n",
        "# HELP requests Requests.\n",
        "requests_total{path=\"/\"} 3\n",
        "requests_created{path=\"/\"} 1.6e9\n",
        "requests_count 1\n",
        "# EOF\n",
    );
    let families = ok(text, OM);
    assert_eq!(
        shapes(&families),
        [
            ("requests", Kind::Counter, 2),
            ("requests_count", Kind::Unknown, 1)
        ]
    );
    let names: Vec<_> = families[0]
        .samples
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(names, ["requests_total", "requests_created"]);
    let text004 = "# TYPE hits_total counter\nhits_total 1\n";
    assert_eq!(
        shapes(&ok(text004, TEXT)),
        [("hits_total", Kind::Counter, 1)]
    );
}

#[test]
fn each_kind_owns_exactly_its_suffixes() {
    let all = [
        "", "_total", "_created", "_bucket", "_sum", "_count", "_gsum", "_gcount", "_info",
    ];
    let cases = [
        ("counter", vec!["", "_total", "_created"]),
        ("gauge", vec![""]),
        (
            "histogram",
            vec!["", "_created", "_bucket", "_sum", "_count"],
        ),
        ("gaugehistogram", vec!["", "_bucket", "_gsum", "_gcount"]),
        ("summary", vec!["", "_created", "_sum", "_count"]),
        ("info", vec!["", "_info"]),
        ("stateset", vec![""]),
        ("unknown", vec![""]),
    ];
    for (kind, owned) in cases {
        for suffix in all {
            let text = format!("# TYPE f {kind}\nf{suffix} 1\n# EOF\n");
            let families = ok(&text, OM);
            let joined = families.len() == 1 && families[0].samples.len() == 1;
            assert_eq!(joined, owned.contains(&suffix), "{kind} and f{suffix}");
        }
    }
}

#[test]
fn summaries_keep_quantiles_with_their_sum_and_count() {
    let text = concat!(
        "# TYPE rpc_seconds summary\n",
        "rpc_seconds{quantile=\"0.5\"} 0.1\n",
        "rpc_seconds{quantile=\"0.99\"} NaN\n",
        "rpc_seconds_sum 7\n",
        "rpc_seconds_count 70\n",
    );
    let families = ok(text, TEXT);
    assert_eq!(shapes(&families), [("rpc_seconds", Kind::Summary, 4)]);
    assert!(families[0].samples[1].value.is_nan());
}

#[test]
fn info_and_stateset_are_openmetrics_types() {
    let text = concat!(
        "# TYPE build info\n",
        "build_info{version=\"1.2\"} 1\n",
        "# TYPE state stateset\n",
        "state{state=\"on\"} 1\n",
        "state{state=\"off\"} 0\n",
        "# TYPE wait gaugehistogram\n",
        "wait_bucket{le=\"+Inf\"} 2\n",
        "wait_gcount 2\n",
        "wait_gsum 1.5\n",
        "# EOF\n",
    );
    assert_eq!(
        shapes(&ok(text, OM)),
        [
            ("build", Kind::Info, 1),
            ("state", Kind::StateSet, 2),
            ("wait", Kind::GaugeHistogram, 3)
        ]
    );
    for kind in ["info", "stateset", "gaugehistogram", "unknown"] {
        let e = err(&format!("# TYPE a {kind}\n"), TEXT);
        assert_eq!(e.reason, Reason::InvalidType, "0.0.4 has no {kind}");
    }
    assert_eq!(
        err("# TYPE a untyped\n# EOF\n", OM).reason,
        Reason::InvalidType
    );
    assert_eq!(err("# TYPE a Gauge\n", TEXT).reason, Reason::InvalidType);
    assert_eq!(Kind::StateSet.as_str(), "stateset");
}

#[test]
fn quoted_utf8_names_are_read_in_both_formats() {
    let text = concat!(
        "# TYPE \"my.metric\" gauge\n",
        "# HELP \"my.metric\" Dotted.\n",
        "{\"my.metric\",\"my.label\"=\"x\",b=\"y\"} 1\n",
        "{b=\"z\",\"my.metric\"} 2\n",
        "{\"a\\\"q\"} 3\n",
    );
    let expected = [("my.metric", Kind::Gauge, 2), ("a\"q", Kind::Unknown, 1)];
    let families = ok(text, TEXT);
    assert_eq!(shapes(&families), expected);
    assert_eq!(families[0].help, "Dotted.");
    assert_eq!(
        families[0].samples[0].labels,
        pairs(&[("my.label", "x"), ("b", "y")])
    );
    assert_eq!(shapes(&ok(&format!("{text}# EOF\n"), OM)), expected);
    let cases = [
        ("{a=\"b\"} 1\n", Reason::MissingMetricName),
        ("{\"a\",\"b\"} 1\n", Reason::MetricNameTwice),
        ("x{\"a\"} 1\n", Reason::MetricNameTwice),
    ];
    for (line, reason) in cases {
        assert_eq!(err(line, TEXT).reason, reason, "{line:?}");
    }
}

#[test]
fn malformed_lines_report_their_number_and_reason() {
    let cases = [
        ("# TYPE a gauge\na{b=\"1} 2\n", 2, Reason::UnterminatedQuote),
        ("a{b} 2\n", 1, Reason::ExpectedEquals),
        ("a{b=1} 2\n", 1, Reason::ExpectedLabelValue),
        ("a{b=\"1\"\n", 1, Reason::UnclosedBrace),
        ("a{,} 2\n", 1, Reason::ExpectedLabelName),
        ("a{1b=\"1\"} 2\n", 1, Reason::ExpectedLabelName),
        ("a{b:c=\"1\"} 2\n", 1, Reason::ExpectedEquals),
        ("a\n", 1, Reason::ExpectedValue),
        ("a{} \n", 1, Reason::ExpectedValue),
        ("x\ny 1\n", 1, Reason::ExpectedValue),
        ("1a 2\n", 1, Reason::ExpectedLineStart),
        ("-a 2\n", 1, Reason::ExpectedLineStart),
        ("a.b 2\n", 1, Reason::InvalidValue),
        ("# HELP 1a text\n", 1, Reason::ExpectedMetricName),
        ("# TYPE a-b gauge\n", 1, Reason::ExpectedSpace),
        ("# TYPE a\n", 1, Reason::InvalidType),
        ("# HELP \"a text\n", 1, Reason::UnterminatedQuote),
    ];
    for (text, line, reason) in cases {
        let e = err(text, TEXT);
        assert_eq!((e.line, e.reason), (line, reason), "{text:?}");
    }
    let e = err("a{b=\"1} 2\n", TEXT);
    assert_eq!(
        e.to_string(),
        "malformed exposition line 1: unterminated quoted string"
    );
}

#[test]
fn label_order_repeats_and_empty_values_are_kept() {
    let families = ok("a{z=\"1\",a=\"\",z=\"2\"} 1\na{} 2\n", TEXT);
    assert_eq!(
        families[0].samples[0].labels,
        pairs(&[("z", "1"), ("a", ""), ("z", "2")])
    );
    assert!(families[0].samples[1].labels.is_empty());
}
