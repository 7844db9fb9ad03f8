//! The process's own CPU time, memory, open files and threads, read from /proc (Linux) at
//! each scrape and exported as gauges by every role.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;

/// A snapshot of the current process.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessStats {
    /// User plus system CPU time, in seconds.
    pub cpu_seconds: f64,
    /// Resident set size, in bytes.
    pub resident_bytes: u64,
    /// Virtual memory size, in bytes.
    pub virtual_bytes: u64,
    /// Open file descriptors.
    pub open_fds: u64,
    /// Threads.
    pub threads: u64,
}

/// Reads the current process's statistics; fields that cannot be read stay zero.
pub fn read() -> ProcessStats {
    let mut stats = ProcessStats::default();
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        parse_stat(&stat, &mut stats);
    }
    stats.open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
    stats
}

/// Reads another process's statistics and its command name (`comm`), while it exists.
pub fn read_pid(pid: u32) -> Option<(String, ProcessStats)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.split_once('(')?;
    let (name, _) = rest.rsplit_once(')')?;
    let mut stats = ProcessStats::default();
    parse_stat(&stat, &mut stats);
    Some((name.to_owned(), stats))
}

/// Writes the process gauges, read fresh at each scrape: `process_cpu_seconds`,
/// `process_resident_memory_bytes`, `process_virtual_memory_bytes`, `process_open_fds` and
/// `process_threads` (under the registry's prefix). Help texts end in a period, as
/// `Registry::register` makes them for registered metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = read();
        let cpu_help = "User and system CPU time.";
        gauge(
            &mut encoder,
            "process_cpu_seconds",
            cpu_help,
            stats.cpu_seconds,
        )?;
        let integers = [
            (
                "process_resident_memory_bytes",
                "Resident memory.",
                stats.resident_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory.",
                stats.virtual_bytes,
            ),
            ("process_open_fds", "Open file descriptors.", stats.open_fds),
            ("process_threads", "Threads.", stats.threads),
        ];
        for (name, help, value) in integers {
            gauge(
                &mut encoder,
                name,
                help,
                i64::try_from(value).unwrap_or(i64::MAX),
            )?;
        }
        Ok(())
    }
}

/// Writes one gauge family of a single series.
fn gauge<N: EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: N,
) -> Result<(), std::fmt::Error> {
    let metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(value).encode(metric)
}

/// Parses /proc/self/stat; the command name may hold spaces, so fields count from its `)`.
fn parse_stat(stat: &str, stats: &mut ProcessStats) {
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3 of the file, so field N of the file is index N-3 here.
    let field = |n: usize| {
        fields
            .get(n - 3)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // SAFETY: sysconf only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    // SAFETY: as above.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    stats.cpu_seconds = (field(14) + field(15)) as f64 / ticks;
    stats.threads = field(20);
    stats.virtual_bytes = field(23);
    stats.resident_bytes = field(24) * page;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let s = read();
        assert!(s.resident_bytes > 0);
        assert!(s.open_fds >= 3);
        assert!(s.threads >= 1);
    }

    #[test]
    fn parses_a_name_with_spaces() {
        let line = "42 (my (odd) name) S 1 1 1 0 -1 0 0 0 0 0 250 150 0 0 20 0 7 0 100 8192 10 0 0";
        let mut s = ProcessStats::default();
        parse_stat(line, &mut s);
        assert_eq!(s.threads, 7);
        assert_eq!(s.virtual_bytes, 8192);
        assert!(s.cpu_seconds > 0.0);
    }
}
