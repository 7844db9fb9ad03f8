//! Captured exporter output, parsed whole: every fixture under
//! `tests/fixtures/exposition/` (see its README for where each came from).

use super::*;

const FASTPICK_TEXT: &str = include_str!("../../../tests/fixtures/exposition/fastpick-text004.txt");
const FASTPICK_OPENMETRICS: &str =
    include_str!("../../../tests/fixtures/exposition/fastpick-openmetrics.txt");
const POSTGRES_EXPORTER: &str =
    include_str!("../../../tests/fixtures/exposition/postgres-exporter.txt");
const REDIS_EXPORTER: &str = include_str!("../../../tests/fixtures/exposition/redis-exporter.txt");
const PROMETHEUS: &str = include_str!("../../../tests/fixtures/exposition/prometheus.txt");
const PYTHON_TEXT: &str =
    include_str!("../../../tests/fixtures/exposition/python-client-text004.txt");
const PYTHON_OPENMETRICS: &str =
    include_str!("../../../tests/fixtures/exposition/python-client-openmetrics.txt");

/// Parses a fixture and checks it whole: one family per `# TYPE` line (so no sample strayed
/// into a family of its own) and every sample line read.
fn parse_whole(text: &str, format: Format) -> Vec<Family> {
    let families = parse(text, format).unwrap_or_else(|e| panic!("{e}"));
    let types = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
    let sample_lines = text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count();
    let samples: usize = families.iter().map(|f| f.samples.len()).sum();
    assert_eq!(families.len(), types, "families");
    assert_eq!(samples, sample_lines, "samples");
    families
}

fn family<'a>(families: &'a [Family], name: &str) -> &'a Family {
    families
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no family {name}"))
}

/// The value of the sample named `name` whose labels include every pair of `labels`.
fn value(family: &Family, name: &str, labels: &[(&str, &str)]) -> f64 {
    family
        .samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .unwrap_or_else(|| panic!("no sample {name}{labels:?} in {}", family.name))
        .value
}

#[test]
fn fastpick_text_has_route_templates_with_braces() {
    let families = parse_whole(FASTPICK_TEXT, Format::Text004);
    let http = family(&families, "http_server_requests_seconds");
    assert_eq!(http.kind, Kind::Histogram);
    let route = [("uri", "/api/v1/coupons/{id}"), ("status", "200")];
    assert_eq!(
        value(http, "http_server_requests_seconds_count", &route),
        4.0
    );
    let inf = [route[0], route[1], ("le", "+Inf")];
    assert_eq!(
        value(http, "http_server_requests_seconds_bucket", &inf),
        4.0
    );
    let lookups = family(&families, "fastpick_search_cache_lookups_total");
    assert_eq!(lookups.kind, Kind::Counter);
    assert_eq!(
        family(&families, "fastpick_redis_connected").kind,
        Kind::Gauge
    );
}

#[test]
fn fastpick_openmetrics_names_counters_without_total() {
    let families = parse_whole(FASTPICK_OPENMETRICS, Format::OpenMetrics);
    let lookups = family(&families, "fastpick_search_cache_lookups");
    assert_eq!(lookups.kind, Kind::Counter);
    assert_eq!(
        lookups.samples[0].name,
        "fastpick_search_cache_lookups_total"
    );
    let text = parse_whole(FASTPICK_TEXT, Format::Text004);
    let text_http = family(&text, "http_server_requests_seconds");
    let open_http = family(&families, "http_server_requests_seconds");
    assert_eq!(open_http.samples.len(), text_http.samples.len());
    assert_eq!(open_http.help, text_http.help);
}

#[test]
fn postgres_exporter_reads_with_nan_and_long_label_values() {
    let families = parse_whole(POSTGRES_EXPORTER, Format::Text004);
    assert_eq!(value(family(&families, "pg_up"), "pg_up", &[]), 1.0);
    let archive = family(&families, "pg_stat_archiver_last_archive_age");
    assert!(value(archive, "pg_stat_archiver_last_archive_age", &[]).is_nan());
    let settings = family(&families, "pg_settings_max_connections");
    assert_eq!(value(settings, "pg_settings_max_connections", &[]), 100.0);
    let version = &family(&families, "pg_static").samples[0].labels;
    assert!(
        version
            .iter()
            .any(|(k, v)| k == "version" && v.contains(", 64-bit"))
    );
    let gc = family(&families, "go_gc_duration_seconds");
    assert_eq!(gc.kind, Kind::Summary);
    assert_eq!(gc.samples.len(), 7, "five quantiles, sum and count");
}

#[test]
fn redis_exporter_reads_its_counters_and_gauges() {
    let families = parse_whole(REDIS_EXPORTER, Format::Text004);
    assert_eq!(value(family(&families, "redis_up"), "redis_up", &[]), 1.0);
    let commands = family(&families, "redis_commands_total");
    assert_eq!(commands.kind, Kind::Counter);
    assert_eq!(
        value(commands, "redis_commands_total", &[("cmd", "hset")]),
        1.0
    );
    let keys = family(&families, "redis_db_keys");
    assert_eq!(value(keys, "redis_db_keys", &[("db", "db0")]), 2.0);
}

#[test]
fn prometheus_reads_its_own_histograms_and_summaries() {
    let families = parse_whole(PROMETHEUS, Format::Text004);
    let http = family(&families, "prometheus_http_request_duration_seconds");
    assert_eq!(http.kind, Kind::Histogram);
    let count = value(
        http,
        "prometheus_http_request_duration_seconds_count",
        &[("handler", "/metrics")],
    );
    assert!(count >= 1.0, "{count}");
    let query = family(&families, "prometheus_engine_query_duration_seconds");
    assert_eq!(query.kind, Kind::Summary);
    let build = &family(&families, "prometheus_build_info").samples[0].labels;
    assert!(build.contains(&("version".to_owned(), "2.42.0+ds".to_owned())));
}

#[test]
fn python_client_text_has_created_gauges_and_escapes() {
    let families = parse_whole(PYTHON_TEXT, Format::Text004);
    let requests = family(&families, "http_requests_total");
    assert_eq!(requests.help, "Requests \"served\"\nby path \\ method.");
    let odd = &requests.samples[1].labels[1].1;
    assert_eq!(odd, "say \"hi\"\\back\nslash");
    assert_eq!(family(&families, "http_requests_created").kind, Kind::Gauge);
    let limits = family(&families, "limit_value");
    assert_eq!(
        value(limits, "limit_value", &[("side", "lower")]),
        f64::NEG_INFINITY
    );
}

#[test]
fn python_client_openmetrics_has_every_type_exemplars_and_units() {
    let families = parse_whole(PYTHON_OPENMETRICS, Format::OpenMetrics);
    let requests = family(&families, "http_requests");
    assert_eq!(requests.kind, Kind::Counter);
    assert_eq!(requests.help, "Requests \"served\"\nby path \\ method.");
    let get = [("uri", "/api/v1/coupons/{id}")];
    assert_eq!(value(requests, "http_requests_total", &get), 3.0);
    assert!(value(requests, "http_requests_created", &get) > 1.6e9);
    let depth = family(&families, "queue_depth_jobs");
    assert_eq!((depth.unit.as_str(), depth.kind), ("jobs", Kind::Gauge));
    assert!(depth.samples[0].value.is_nan());
    let latency = family(&families, "request_latency_seconds");
    assert_eq!((latency.kind, latency.samples.len()), (Kind::Histogram, 7));
    let kinds = [
        ("payload_bytes", Kind::Summary),
        ("build", Kind::Info),
        ("task_state", Kind::StateSet),
        ("queue_wait_seconds", Kind::GaugeHistogram),
    ];
    for (name, kind) in kinds {
        assert_eq!(family(&families, name).kind, kind, "{name}");
    }
    let wait = family(&families, "queue_wait_seconds");
    assert_eq!(value(wait, "queue_wait_seconds_gsum", &[]), 7.5);
}
