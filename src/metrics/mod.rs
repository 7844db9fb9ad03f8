//! The metrics room: what every role shares to be scraped by Prometheus. A role builds its
//! registry here (the `application` label and the process gauges come with it), takes its
//! histogram buckets from here, and answers a scrape through [`exposition`], which picks the
//! text format the scraper asked for. [`parse`] reads exposition text (ours or any
//! exporter's, 0.0.4 or OpenMetrics) back into families; [`actuator`] views the same registry
//! as Spring Boot Actuator's `/actuator/metrics` documents.

pub mod actuator;
pub mod exposition;
pub mod parse;
pub mod process;

use std::borrow::Cow;

use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The prefix of every FastPick metric a role registers.
pub const PREFIX: &str = "fastpick";

/// Builds a role's registry: every series carries `application="{application}"` (the label
/// the original's Micrometer setup added), and the process gauges are registered in it.
pub fn role_registry(application: &'static str) -> Registry {
    let labels = [(Cow::Borrowed("application"), Cow::Borrowed(application))];
    let mut registry = Registry::with_labels(labels.into_iter());
    registry
        .sub_registry_with_prefix(PREFIX)
        .register_collector(Box::new(process::ProcessCollector));
    registry
}

/// Builds a histogram whose `count` buckets start at `first` seconds and double.
pub fn doubling_histogram(first: f64, count: u16) -> Histogram {
    Histogram::new(exponential_buckets(first, 2.0, count))
}

/// Builds a request latency histogram: 0.5 ms .. ~16 s.
pub fn latency_histogram() -> Histogram {
    doubling_histogram(0.0005, 16)
}

/// Builds a database statement histogram: 50 µs .. ~0.8 s.
pub fn query_histogram() -> Histogram {
    doubling_histogram(0.00005, 15)
}

/// Builds an upstream response-head histogram: 0.25 ms .. ~8 s.
pub fn upstream_histogram() -> Histogram {
    doubling_histogram(0.00025, 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_role_registry_labels_its_series_and_carries_the_process_gauges() {
        let registry = role_registry("fastpick-test");
        let text = exposition::encode(&registry, exposition::Format::Prometheus).expect("text");
        let rss = text
            .lines()
            .find(|l| l.starts_with("fastpick_process_resident_memory_bytes{"))
            .unwrap_or_else(|| panic!("no resident memory in:\n{text}"));
        assert!(rss.contains("application=\"fastpick-test\""), "{rss}");
        for name in [
            "fastpick_process_cpu_seconds",
            "fastpick_process_virtual_memory_bytes",
            "fastpick_process_open_fds",
            "fastpick_process_threads",
        ] {
            assert!(
                text.contains(&format!("# TYPE {name} gauge")),
                "{name} in:\n{text}"
            );
        }
    }
}
