//! How each of the lab's series moves, by program: the process and Go runtime series
//! every exporter has, postgres_exporter's and redis_exporter's families, and the app's and
//! proxy's request counters and histograms. Rates are per second, idle then under load.

use super::traffic::{Group, Kind};

pub(super) fn counter(idle: f64, load: f64) -> Kind {
    Kind::Counter {
        idle,
        load,
        step: 1,
        scale: 1.0,
    }
}

/// CPU seconds from clock ticks (1/100 s), `idle`/`load` in seconds per second.
pub(super) fn cpu(idle: f64, load: f64) -> Kind {
    Kind::Counter {
        idle: idle * 100.0,
        load: load * 100.0,
        step: 1,
        scale: 100.0,
    }
}

pub(super) fn walk(idle: f64, load: f64, step: f64, max: i64) -> Kind {
    Kind::Walk {
        idle,
        load,
        step,
        max,
    }
}

pub(super) fn noise(lo: f64, hi: f64) -> Kind {
    Kind::Noise {
        idle: 1.0,
        load: 1.0,
        lo,
        hi,
    }
}

/// The process gauges every program exports, by their unprefixed names.
pub(super) fn process_kind(name: &str, busy: f64) -> Option<Kind> {
    Some(match name {
        "process_cpu_seconds_total" | "process_cpu_seconds" => cpu(0.01, 0.05 + 0.4 * busy),
        "process_resident_memory_bytes" => walk(0.2, 0.9, 4096.0, 400),
        "process_virtual_memory_bytes" => walk(0.01, 0.05, 65536.0, 40),
        "process_open_fds" => walk(0.02, 0.3 * busy, 1.0, 4),
        "process_threads" => walk(0.0, 0.02, 1.0, 2),
        _ => return None,
    })
}

/// The Go runtime series of the exporters.
pub(super) fn go_kind(name: &str) -> Option<Kind> {
    Some(match name {
        "go_goroutines" => walk(0.2, 0.3, 1.0, 3),
        "go_memstats_alloc_bytes" | "go_memstats_heap_alloc_bytes" => Kind::Heap {
            lo: 2_000_000,
            hi: 6_000_000,
            grow: 300_000,
        },
        "go_memstats_heap_objects" => Kind::Heap {
            lo: 9_000,
            hi: 30_000,
            grow: 2_000,
        },
        "go_memstats_heap_inuse_bytes" | "go_memstats_heap_idle_bytes" => {
            walk(0.5, 0.6, 8192.0, 200)
        }
        "go_memstats_mspan_inuse_bytes" | "go_memstats_mcache_inuse_bytes" => {
            walk(0.3, 0.3, 160.0, 50)
        }
        "go_memstats_alloc_bytes_total" => counter(150_000.0, 200_000.0),
        "go_memstats_mallocs_total" | "go_memstats_frees_total" => counter(2_000.0, 2_500.0),
        "go_memstats_lookups_total" | "go_threads" | "go_info" => Kind::Constant,
        "go_memstats_last_gc_time_seconds" => Kind::Noise {
            idle: 0.05,
            load: 0.05,
            lo: 1.7e9,
            hi: 1.7e9 + 3600.0,
        },
        "go_gc_duration_seconds" => Kind::Noise {
            idle: 0.05,
            load: 0.05,
            lo: 1e-5,
            hi: 1e-3,
        },
        "go_gc_duration_seconds_count" => counter(0.05, 0.05),
        "go_gc_duration_seconds_sum" => Kind::Counter {
            idle: 0.05 * 3e5,
            load: 0.05 * 3e5,
            step: 1,
            scale: 1e9,
        },
        n if n.starts_with("go_memstats_") => walk(0.05, 0.05, 8192.0, 30),
        _ => return None,
    })
}

pub(super) fn label<'a>(labels: &'a [(String, String)], name: &str) -> &'a str {
    labels
        .iter()
        .find(|(n, _)| n == name)
        .map_or("", |(_, v)| v.as_str())
}

pub(super) fn postgres_kind(name: &str, labels: &[(String, String)]) -> Kind {
    if let Some(kind) = process_kind(name, 0.2).or_else(|| go_kind(name)) {
        return kind;
    }
    let app_db = label(labels, "datname") == "postgres";
    let busy_state = matches!(
        label(labels, "state"),
        "active" | "idle" | "idle in transaction"
    );
    let lock_mode = matches!(
        label(labels, "mode"),
        "accesssharelock" | "rowexclusivelock" | "exclusivelock"
    );
    let stat = name.strip_prefix("pg_stat_database_");
    match (name, stat) {
        (_, Some("xact_commit")) if app_db => counter(4.0, 700.0),
        (_, Some("xact_rollback")) if app_db => counter(0.0, 6.0),
        (_, Some("tup_returned")) if app_db => counter(2_500.0, 60_000.0),
        (_, Some("tup_fetched")) if app_db => counter(400.0, 9_000.0),
        (_, Some("tup_inserted")) if app_db => counter(0.0, 250.0),
        (_, Some("tup_updated")) if app_db => counter(0.0, 400.0),
        (_, Some("blks_hit")) if app_db => counter(600.0, 25_000.0),
        (_, Some("blks_read")) if app_db => counter(0.0, 12.0),
        (_, Some("sessions")) if app_db => counter(0.0, 0.5),
        (_, Some("numbackends")) if app_db => walk(0.01, 0.3, 1.0, 8),
        (_, Some("active_time" | "session_time" | "idle_in_transaction_time")) if app_db => {
            // Milliseconds with microsecond fractions.
            Kind::Counter {
                idle: 5_000.0,
                load: 900_000.0,
                step: 1,
                scale: 1000.0,
            }
        }
        ("pg_database_size_bytes", _) if app_db => Kind::Counter {
            idle: 0.0,
            load: 1.5,
            step: 8192,
            scale: 1.0,
        },
        ("pg_stat_activity_count", _) if app_db && busy_state => walk(0.02, 0.6, 1.0, 10),
        ("pg_stat_activity_max_tx_duration", _) if app_db && busy_state => Kind::Noise {
            idle: 0.05,
            load: 1.0,
            lo: 0.0,
            hi: 0.05,
        },
        ("pg_locks_count", _) if app_db && lock_mode => walk(0.3, 0.8, 1.0, 12),
        ("pg_stat_bgwriter_buffers_alloc_total", _) => counter(0.5, 60.0),
        ("pg_stat_bgwriter_buffers_backend_total", _) => counter(0.1, 15.0),
        ("pg_stat_bgwriter_buffers_clean_total", _) => counter(0.0, 6.0),
        ("pg_stat_bgwriter_buffers_checkpoint_total", _) => counter(0.2, 20.0),
        ("pg_stat_bgwriter_checkpoint_write_time_total", _) => counter(2.0, 300.0),
        ("pg_stat_bgwriter_checkpoint_sync_time_total", _) => counter(0.01, 1.0),
        ("pg_stat_bgwriter_checkpoints_timed_total", _) => counter(1.0 / 300.0, 1.0 / 300.0),
        ("pg_exporter_last_scrape_duration_seconds", _)
        | ("pg_scrape_collector_duration_seconds", _) => noise(0.002, 0.03),
        ("pg_exporter_scrapes_total", _) => counter(1.0, 1.0),
        ("promhttp_metric_handler_requests_total", _) if label(labels, "code") == "200" => {
            counter(1.0, 1.0)
        }
        ("pg_stat_archiver_last_archive_age", _) => Kind::Counter {
            idle: 1e6,
            load: 1e6,
            step: 1,
            scale: 1e6,
        },
        _ => Kind::Constant,
    }
}

/// Commands the exporter sends every scrape, and those the app sends under load.
const REDIS_SCRAPE_CMDS: [&str; 6] = [
    "client|setname",
    "config|get",
    "info",
    "latency|latest",
    "slowlog|get",
    "slowlog|len",
];
pub(super) const REDIS_LOAD_CMDS: [(&str, f64); 5] = [
    ("get", 350.0),
    ("set", 120.0),
    ("incr", 220.0),
    ("evalsha", 220.0),
    ("expire", 120.0),
];

pub(super) fn redis_cmd_rate(cmd: &str) -> (f64, f64) {
    if REDIS_SCRAPE_CMDS.contains(&cmd) {
        return (1.0, 1.0);
    }
    let load = REDIS_LOAD_CMDS.iter().find(|(c, _)| *c == cmd);
    (0.0, load.map_or(0.0, |(_, r)| *r))
}

pub(super) fn redis_kind(name: &str, labels: &[(String, String)]) -> Kind {
    if let Some(kind) = process_kind(name, 0.3).or_else(|| go_kind(name)) {
        return kind;
    }
    let (cmd_idle, cmd_load) = redis_cmd_rate(label(labels, "cmd"));
    match name {
        "redis_commands_total" | "redis_latency_percentiles_usec_count" => {
            counter(cmd_idle, cmd_load)
        }
        "redis_commands_duration_seconds_total" | "redis_latency_percentiles_usec_sum" => {
            // Microseconds, a few per call.
            Kind::Counter {
                idle: cmd_idle * 8.0,
                load: cmd_load * 3.0,
                step: 1,
                scale: 1e6,
            }
        }
        "redis_latency_percentiles_usec" => Kind::Noise {
            idle: cmd_idle * 0.2,
            load: (cmd_load / 100.0).min(1.0),
            lo: 1.0,
            hi: 40.0,
        },
        "redis_commands_processed_total" => counter(7.0, 1_100.0),
        "redis_total_reads_processed" | "redis_total_writes_processed" => counter(7.0, 1_000.0),
        "redis_net_input_bytes_total" => counter(350.0, 2.5e6),
        "redis_net_output_bytes_total" => counter(6_000.0, 4.0e6),
        "redis_keyspace_hits_total" => counter(0.0, 300.0),
        "redis_keyspace_misses_total" => counter(0.0, 60.0),
        "redis_expired_keys_total" => counter(0.0, 12.0),
        "redis_rdb_changes_since_last_save" => counter(0.0, 460.0),
        "redis_connections_received_total" => counter(0.0, 0.3),
        "redis_exporter_scrapes_total" | "redis_exporter_scrape_duration_seconds_count" => {
            counter(1.0, 1.0)
        }
        "redis_exporter_scrape_duration_seconds_sum" => Kind::Counter {
            idle: 4e6,
            load: 6e6,
            step: 1,
            scale: 1e9,
        },
        "redis_uptime_in_seconds" => counter(1.0, 1.0),
        "redis_cpu_sys_seconds_total"
        | "redis_cpu_user_seconds_total"
        | "redis_cpu_sys_main_thread_seconds_total"
        | "redis_cpu_user_main_thread_seconds_total" => Kind::Counter {
            idle: 2_000.0,
            load: 250_000.0,
            step: 1,
            scale: 1e6,
        },
        "redis_exporter_last_scrape_duration_seconds"
        | "redis_exporter_last_scrape_connect_time_seconds" => noise(0.0005, 0.01),
        "redis_connected_clients" => walk(0.01, 0.3, 1.0, 6),
        "redis_db_keys" | "redis_db_keys_expiring" if label(labels, "db") == "db0" => {
            walk(0.0, 0.9, 1.0, 60)
        }
        "redis_memory_used_bytes"
        | "redis_memory_used_dataset_bytes"
        | "redis_memory_used_overhead_bytes"
        | "redis_mem_clients_normal"
        | "redis_allocator_allocated_bytes"
        | "redis_mem_fragmentation_bytes" => walk(0.9, 1.0, 8.0, 20_000),
        "redis_allocator_active_bytes"
        | "redis_allocator_resident_bytes"
        | "redis_memory_used_rss_bytes"
        | "redis_allocator_frag_bytes"
        | "redis_allocator_rss_bytes" => walk(0.1, 0.5, 4096.0, 200),
        "redis_mem_fragmentation_ratio"
        | "redis_allocator_frag_ratio"
        | "redis_allocator_rss_ratio" => walk(0.1, 0.3, 0.01, 20),
        "redis_memory_used_peak_bytes" => Kind::Counter {
            idle: 0.0,
            load: 0.05,
            step: 4096,
            scale: 1.0,
        },
        _ => Kind::Constant,
    }
}

/// Per-second request rates (idle, load) and mean latency of the app's histograms.
pub(super) fn app_group(labels: &[(String, String)]) -> Group {
    let uri = label(labels, "uri");
    let status = label(labels, "status");
    let (idle, load, mean) = match (label(labels, "method"), uri, status) {
        ("GET", "/actuator/prometheus", _) => (1.0, 1.0, 0.0008),
        ("GET", "/api/v1/coupons/{id}", "200") => (0.0, 320.0, 0.004),
        ("GET", "/api/v1/coupons/{id}", _) => (0.0, 6.0, 0.002),
        ("GET", "/api/v1/coupons", _) => (0.0, 45.0, 0.03),
        ("POST", "/api/v1/coupon-issues", "201") => (0.0, 210.0, 0.012),
        ("POST", "/api/v1/coupon-issues", "409") => (0.0, 75.0, 0.009),
        ("POST", _, _) => (0.0, 2.0, 0.0002),
        _ => (0.0, 0.5, 0.0002),
    };
    let (idle, load, mean) = match label(labels, "statement") {
        "page" => (0.0, 40.0, 0.003),
        "count" => (0.0, 10.0, 0.015),
        "probe" => (0.0, 40.0, 0.002),
        _ => (idle, load, mean),
    };
    Group {
        idle,
        load,
        mean,
        now: 0,
    }
}

pub(super) fn app_kind(name: &str, labels: &[(String, String)]) -> Kind {
    let unprefixed = name.strip_prefix("fastpick_").unwrap_or(name);
    if let Some(kind) = process_kind(unprefixed, 1.0) {
        return kind;
    }
    match name {
        "fastpick_search_cache_lookups_total" => counter(0.0, 30.0),
        "fastpick_db_pool_connections" => walk(0.0, 0.7, 1.0, 8),
        "fastpick_proxy_requests_total" => {
            let rate = match (label(labels, "route"), label(labels, "status")) {
                ("api", "200") => 560.0,
                ("api", "409") => 75.0,
                ("api", _) => 6.0,
                ("limited", _) => 25.0,
                ("ui", _) => 2.0,
                _ => 0.1,
            };
            counter(0.0, rate)
        }
        "fastpick_proxy_upstream_requests_in_flight" | "fastpick_proxy_requests_in_flight" => {
            walk(0.0, 0.9, 1.0, 30)
        }
        "fastpick_proxy_slow_heads_total" => counter(0.0, 0.01),
        _ => Kind::Constant,
    }
}
