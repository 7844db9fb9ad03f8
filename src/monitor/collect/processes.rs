//! Processes on the monitor's own host, grouped by command name, with process-exporter's
//! names (`namedprocess_namegroup_*{groupname}`): the CPU and memory of the lab's PostgreSQL
//! and Redis when they run beside the monitor (`fastpick demo`). From VM3, VM2's processes
//! are not visible; its Redis still reports its own CPU and RSS through the Redis collector.
//!
//! Every process of a group counts (PostgreSQL forks a backend per connection), so a group's
//! resident memory counts shared pages once per process, as process-exporter's does.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use crate::metrics::process::{ProcessStats, read_pid};
use crate::monitor::collect::exposition::Exposition;

/// Watches the named groups; its CPU counters only go up (see [`CpuTotals`]).
#[derive(Clone, Default)]
pub struct ProcessCollector {
    names: Vec<String>,
    cpu: Arc<Mutex<CpuTotals>>,
}

/// CPU seconds per group as a counter: each process's CPU time is added as it grows, and a
/// process that exits keeps what it used (summing the live processes would go down whenever
/// a PostgreSQL backend exits, which `rate()` reads as a reset).
#[derive(Debug, Default)]
struct CpuTotals {
    /// CPU seconds of each process at the last collect.
    last: HashMap<u32, f64>,
    totals: BTreeMap<String, f64>,
}

impl CpuTotals {
    /// Adds what each process `(pid, group, cpu seconds)` used since it was last seen (all
    /// of it for a new process, or a reused pid whose time went back).
    fn account(&mut self, seen: &[(u32, &str, f64)]) {
        let mut now = HashMap::with_capacity(seen.len());
        for &(pid, group, cpu) in seen {
            let before = self
                .last
                .get(&pid)
                .copied()
                .filter(|&b| b <= cpu)
                .unwrap_or(0.0);
            *self.totals.entry(group.to_owned()).or_default() += cpu - before;
            now.insert(pid, cpu);
        }
        self.last = now;
    }
}

impl ProcessCollector {
    /// A collector of the processes whose command name (`comm`) is one of `names`.
    pub fn new(names: Vec<String>) -> ProcessCollector {
        ProcessCollector {
            names,
            cpu: Arc::default(),
        }
    }

    /// The groups' figures now, as Prometheus text; groups without a process report 0
    /// processes. Reads /proc: call it off the async runtime.
    pub fn collect(&self) -> String {
        let mut groups: BTreeMap<&str, (u64, ProcessStats)> = self
            .names
            .iter()
            .map(|n| (n.as_str(), (0, ProcessStats::default())))
            .collect();
        let mut seen = Vec::new();
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
                if let Some((&group, (count, sum))) = groups.iter_mut().find(|(g, _)| **g == name) {
                    *count += 1;
                    sum.resident_bytes += stats.resident_bytes;
                    sum.virtual_bytes += stats.virtual_bytes;
                    sum.threads += stats.threads;
                    seen.push((pid, group, stats.cpu_seconds));
                }
            }
        }
        let mut cpu = self
            .cpu
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cpu.account(&seen);
        for (group, (_, sum)) in groups.iter_mut() {
            sum.cpu_seconds = cpu.totals.get(*group).copied().unwrap_or(0.0);
        }
        render(&groups)
    }
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
        let collector = ProcessCollector::new(vec![name.clone(), "no-such-process-name".into()]);
        let text = collector.collect();
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

    #[test]
    fn cpu_counters_keep_what_exited_processes_used() {
        let mut cpu = CpuTotals::default();
        cpu.account(&[(10, "postgres", 5.0), (11, "postgres", 1.0)]);
        assert_eq!(cpu.totals["postgres"], 6.0);
        // 11 exits, 10 grows by 2, 12 starts with 0.5 used.
        cpu.account(&[(10, "postgres", 7.0), (12, "postgres", 0.5)]);
        assert_eq!(cpu.totals["postgres"], 8.5);
        // 12's pid is reused by a process that has used less.
        cpu.account(&[(10, "postgres", 7.0), (12, "postgres", 0.25)]);
        assert_eq!(cpu.totals["postgres"], 8.75);
    }
}
