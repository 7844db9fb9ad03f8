//! The tracing subscriber (text or JSON lines on stderr), installed once per process, and the
//! bridge that brings pingora's `log` records into it, rate-limited per call site.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing_log::AsLog;
use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Records a `log` call site may write in a row before it is only counted.
const BURST: u32 = 5;

/// How often a call site that keeps logging writes one record with the count of the others.
const INTERVAL: Duration = Duration::from_secs(10);

/// Installs the global subscriber; RUST_LOG, when set, wins over the configured level.
pub fn init(log: &LogConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(quiet_notices(&log.level)))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match log.format {
        LogFormat::Text => tracing::subscriber::set_global_default(builder.finish()),
        LogFormat::Json => {
            tracing::subscriber::set_global_default(builder.json().flatten_event(true).finish())
        }
    };
    // Fails only when a subscriber is already set (tests); that one and its bridge are kept.
    if installed.is_ok() {
        let bridge = RateLimitedLog {
            inner: tracing_log::LogTracer::new(),
            limiter: Limiter::new(BURST, INTERVAL),
        };
        if log::set_boxed_logger(Box::new(bridge)).is_ok() {
            log::set_max_level(tracing::level_filters::LevelFilter::current().as_log());
        }
    }
}

/// PostgreSQL NOTICEs ("constraint ... does not exist, skipping" during migrations) arrive
/// at INFO; keep them out unless the filter asks for sqlx explicitly.
fn quiet_notices(level: &str) -> String {
    if level.contains("sqlx") {
        level.to_owned()
    } else {
        format!("{level},sqlx::postgres::notice=warn")
    }
}

/// The `log` → `tracing` bridge (pingora logs through `log`), with no call site writing more
/// than [`BURST`] records in a row: a failure that repeats in a loop (an accept error at
/// shutdown wrote GBs) then shows as one record per [`INTERVAL`] that carries the count.
struct RateLimitedLog {
    inner: tracing_log::LogTracer,
    limiter: Limiter,
}

impl log::Log for RateLimitedLog {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.inner.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        // Records the filter drops are not counted.
        if !self.inner.enabled(record.metadata()) {
            return;
        }
        let site = match record.file_static() {
            Some(file) => Cow::Borrowed(file),
            None => Cow::Owned(record.file().unwrap_or(record.target()).to_owned()),
        };
        match self
            .limiter
            .check((site, record.line().unwrap_or(0)), Instant::now())
        {
            Verdict::Write => self.inner.log(record),
            Verdict::Drop => {}
            Verdict::WriteWithCount(n) => self.inner.log(
                &log::Record::builder()
                    .metadata(record.metadata().clone())
                    .module_path(record.module_path())
                    .file(record.file())
                    .line(record.line())
                    .args(format_args!("{} {}", record.args(), repeated(n)))
                    .build(),
            ),
        }
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

/// What to append to a record when `n` records of its call site were not written.
fn repeated(n: u64) -> String {
    format!("(repeated: {n} more records from this call site were not written since the last one)")
}

/// A call site: source file and line.
type Site = (Cow<'static, str>, u32);

/// What to do with one record.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Write,
    /// Write it with the count of the records of its call site that were dropped.
    WriteWithCount(u64),
    Drop,
}

/// Per call site: [`Limiter::burst`] records in a row pass; after that a call site is
/// "flooding" and its records are counted, the count written with the first record after each
/// interval. A call site that stays quiet for a whole interval gets its burst back.
struct Limiter {
    burst: u32,
    interval: Duration,
    sites: Mutex<HashMap<Site, SiteState>>,
}

/// Call sites remembered at most (the map is cleared beyond; only a leak would get there).
const MAX_SITES: usize = 4096;

#[derive(Debug)]
struct SiteState {
    window_start: Instant,
    in_window: u32,
    dropped: u64,
    flooding: bool,
}

impl Limiter {
    fn new(burst: u32, interval: Duration) -> Self {
        Limiter {
            burst,
            interval,
            sites: Mutex::new(HashMap::new()),
        }
    }

    fn check(&self, site: Site, now: Instant) -> Verdict {
        let Ok(mut sites) = self.sites.lock() else {
            return Verdict::Write;
        };
        if sites.len() >= MAX_SITES && !sites.contains_key(&site) {
            sites.clear();
        }
        let state = sites.entry(site).or_insert(SiteState {
            window_start: now,
            in_window: 0,
            dropped: 0,
            flooding: false,
        });
        let mut count = 0;
        let since = now.saturating_duration_since(state.window_start);
        if since >= self.interval {
            count = std::mem::take(&mut state.dropped);
            // Quiet for a whole interval after the window: no longer flooding.
            state.flooding = count > 0 && since < 2 * self.interval;
            state.window_start = now;
            state.in_window = 0;
        }
        state.in_window = state.in_window.saturating_add(1);
        if count > 0 {
            return Verdict::WriteWithCount(count);
        }
        if !state.flooding && state.in_window <= self.burst {
            return Verdict::Write;
        }
        state.flooding = true;
        state.dropped += 1;
        Verdict::Drop
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(line: u32) -> Site {
        (Cow::Borrowed("src/services/listening.rs"), line)
    }

    #[test]
    fn quiet_notices_are_added_unless_sqlx_is_named() {
        assert_eq!(quiet_notices("info"), "info,sqlx::postgres::notice=warn");
        assert_eq!(quiet_notices("sqlx=debug"), "sqlx=debug");
    }

    #[test]
    fn a_burst_passes_then_records_are_counted_and_the_count_written_once_per_interval() {
        let limiter = Limiter::new(5, Duration::from_secs(10));
        let t0 = Instant::now();
        let verdicts: Vec<Verdict> = (0..1000)
            .map(|i| limiter.check(site(1), t0 + Duration::from_micros(i)))
            .collect();
        assert!(verdicts[..5].iter().all(|v| *v == Verdict::Write));
        assert!(verdicts[5..].iter().all(|v| *v == Verdict::Drop));
        // Still flooding after the interval: one record with the count, no new burst.
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(limiter.check(site(1), t1), Verdict::WriteWithCount(995));
        for i in 1..500 {
            assert_eq!(
                limiter.check(site(1), t1 + Duration::from_millis(i)),
                Verdict::Drop
            );
        }
        let t2 = t1 + Duration::from_secs(10);
        assert_eq!(limiter.check(site(1), t2), Verdict::WriteWithCount(499));
        // Another call site has its own burst.
        assert_eq!(limiter.check(site(2), t2), Verdict::Write);
    }

    #[test]
    fn a_call_site_quiet_for_an_interval_gets_its_burst_back() {
        let limiter = Limiter::new(2, Duration::from_secs(10));
        let t0 = Instant::now();
        for expected in [Verdict::Write, Verdict::Write, Verdict::Drop, Verdict::Drop] {
            assert_eq!(limiter.check(site(7), t0), expected);
        }
        // The count is written late, with the next record, after a quiet spell.
        let later = t0 + Duration::from_secs(25);
        assert_eq!(limiter.check(site(7), later), Verdict::WriteWithCount(2));
        assert_eq!(limiter.check(site(7), later), Verdict::Write);
        assert_eq!(limiter.check(site(7), later), Verdict::Drop);
        // Records below the burst, an interval apart, all pass.
        let limiter = Limiter::new(2, Duration::from_secs(10));
        for i in 0..100 {
            let at = t0 + Duration::from_secs(10 * i);
            assert_eq!(limiter.check(site(8), at), Verdict::Write);
        }
    }

    #[test]
    fn a_spinning_loop_writes_a_bounded_number_of_records() {
        // One failing call site, a million records a second for an hour (the accept loop at
        // shutdown): 5 records, then one per interval.
        let limiter = Limiter::new(BURST, INTERVAL);
        let t0 = Instant::now();
        let mut written = 0;
        for ms in 0..3_600_000u64 {
            if limiter.check(site(3), t0 + Duration::from_millis(ms)) != Verdict::Drop {
                written += 1;
            }
        }
        assert_eq!(written, BURST as u64 + 3600 / INTERVAL.as_secs() - 1);
    }

    #[test]
    fn the_count_names_what_was_not_written() {
        assert_eq!(
            repeated(42),
            "(repeated: 42 more records from this call site were not written since the last one)"
        );
    }
}
