//! Entry point: parses the command line and hands over to [`fastpick::run`].

use clap::Parser;

/// mimalloc: less time in the allocator on the request path than the system malloc.
#[global_allocator]
static GLOBAL: fastpick::alloc::MiMalloc = fastpick::alloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // No transparent huge pages: with them every touched corner of mimalloc's arenas became
    // 2 MiB of resident memory (18 of the proxy's 22 MiB anonymous memory after a wrk run);
    // these heaps are small, and Redis advises the same. Children (local servers) inherit it.
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and touches no memory of ours.
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    let cli = fastpick::cli::Cli::parse();
    if cli.command.is_none() && cli.role.as_ref().is_some_and(monitor_alone) {
        // The monitor alone (VM3) is judged by its memory, not by request latency: freed pages
        // go back to the system at once instead of after mimalloc's default delay of a second,
        // which kept about 1.5 MiB more resident at a scrape every second.
        // SAFETY: plain integers; mimalloc reads this option whenever it schedules a purge.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    }
    match fastpick::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("fastpick: {err:#}");
            // `fastpick load` exits as k6 does when a threshold failed, as a shell reports
            // an interrupt when a signal stopped the run.
            use fastpick::load::{Interrupted, ThresholdsCrossed};
            if err.downcast_ref::<ThresholdsCrossed>().is_some() {
                std::process::ExitCode::from(ThresholdsCrossed::EXIT_CODE)
            } else if err.downcast_ref::<Interrupted>().is_some() {
                std::process::ExitCode::from(Interrupted::EXIT_CODE)
            } else {
                std::process::ExitCode::FAILURE
            }
        }
    }
}

/// `mi_option_purge_delay` in mimalloc's `mimalloc.h` (v3, as libmimalloc-sys builds it by
/// default); the crate's bindings name no constant for it. Checked by a test below.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Whether the process runs the monitor role and nothing else.
fn monitor_alone(roles: &fastpick::role::RoleSet) -> bool {
    use fastpick::role::Role;
    roles.contains(Role::Monitor) && !roles.contains(Role::App) && !roles.contains(Role::Proxy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_15_is_mimallocs_purge_delay() {
        // v3's default purge delay is 1,000 ms, a value no neighbouring option has.
        // SAFETY: reads an option.
        let value = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(
            value, 1000,
            "option {MI_OPTION_PURGE_DELAY} is not purge_delay"
        );
    }

    #[test]
    fn only_the_monitor_alone_returns_memory_at_once() {
        let set = |s: &str| s.parse::<fastpick::role::RoleSet>().expect("roles");
        assert!(monitor_alone(&set("monitor")));
        assert!(!monitor_alone(&set("app+monitor")));
        assert!(!monitor_alone(&set("proxy+monitor")));
        assert!(!monitor_alone(&set("all")));
    }
}
