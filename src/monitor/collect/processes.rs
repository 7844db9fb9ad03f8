//! Processes on the monitor's own host, grouped by command name, with process-exporter's
//! names (`namedprocess_namegroup_*{groupname}`): the CPU and memory of the lab's PostgreSQL
//! and Redis when they run beside the monitor (`fastpick demo`). From VM3, VM2's processes
//! are not visible; its Redis still reports its own CPU and RSS through the Redis collector.
//!
//! Every process of a group counts (PostgreSQL forks a backend per connection), so a group's
//! resident memory counts shared pages once per process, as process-exporter's does.

use std::collections::BTreeMap;

use crate::metrics::process::{ProcessStats, read_pid};
use crate::monitor::collect::exposition::Exposition;

/// The groups' figures now, as Prometheus text; groups without a process report 0 processes.
pub fn collect(names: &[String]) -> String {
    let mut groups: BTreeMap<&str, (u64, ProcessStats)> = names
        .iter()
        .map(|n| (n.as_str(), (0, ProcessStats::default())))
        .collect();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            let Some((name, stats)) = read_pid(pid) else {
                continue;
            };
            if let Some((count, sum)) = groups.get_mut(name.as_str()) {
                *count += 1;
                sum.cpu_seconds += stats.cpu_seconds;
                sum.resident_bytes += stats.resident_bytes;
                sum.virtual_bytes += stats.virtual_bytes;
                sum.threads += stats.threads;
            }
        }
    }
    render(&groups)
}

fn render(groups: &BTreeMap<&str, (u64, ProcessStats)>) -> String {
    let mut out = Exposition::new();
    for (name, (count, stats)) in groups {
        let group = [("groupname", *name)];
        out.gauge(
            "namedprocess_namegroup_num_procs",
            "Processes in the group.",
            &group,
            *count as f64,
        );
        out.counter(
            "namedprocess_namegroup_cpu_seconds_total",
            "User and system CPU time of the group's live processes.",
            &group,
            stats.cpu_seconds,
        );
        for (memtype, bytes) in [
            ("resident", stats.resident_bytes),
            ("virtual", stats.virtual_bytes),
        ] {
            out.gauge(
                "namedprocess_namegroup_memory_bytes",
                "Memory of the group's processes by type.",
                &[("groupname", name), ("memtype", memtype)],
                bytes as f64,
            );
        }
        out.gauge(
            "namedprocess_namegroup_num_threads",
            "Threads of the group's processes.",
            &group,
            stats.threads as f64,
        );
    }
    out.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_this_test_process_by_its_name_and_counts_missing_groups_as_zero() {
        let (name, _) = read_pid(std::process::id()).expect("own stat");
        let text = collect(&[name.clone(), "no-such-process-name".into()]);
        let line = |prefix: &str| {
            text.lines()
                .find(|l| l.starts_with(prefix))
                .unwrap_or_else(|| panic!("{prefix} in {text}"))
                .rsplit(' ')
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .expect("value")
        };
        let own = format!("{{groupname=\"{name}\"");
        assert!(line(&format!("namedprocess_namegroup_num_procs{own}")) >= 1.0);
        assert!(
            line(&format!(
                "namedprocess_namegroup_memory_bytes{own},memtype=\"resident\""
            )) > 0.0
        );
        assert_eq!(
            line("namedprocess_namegroup_num_procs{groupname=\"no-such-process-name\""),
            0.0
        );
    }
}
