//! The Redis collector read directly: the families dashboards rely on, keys per database,
//! command counts, a dead or silent server, and promtool.

use std::time::Duration;

use fastpick::monitor::collect::redis::RedisCollector;
use fred::prelude::{Builder, ClientLike, Config, Expiration, KeysInterface, ServerConfig};

use super::{
    COLLECT_TIMEOUT, Scrape, assert_promtool_clean, bounded, free_port, names, redis_pool,
    redis_server, silent_server,
};

/// Families the Redis collector always reports (the ones Grafana 763 and the lab's panels
/// read, and redis_exporter's usual ones).
const REQUIRED_REDIS: &[&str] = &[
    "redis_up",
    "redis_instance_info",
    "redis_uptime_in_seconds",
    "redis_start_time_seconds",
    "redis_connected_clients",
    "redis_blocked_clients",
    "redis_memory_used_bytes",
    "redis_memory_max_bytes",
    "redis_config_maxmemory",
    "redis_config_maxclients",
    "redis_commands_processed_total",
    "redis_connections_received_total",
    "redis_rejected_connections_total",
    "redis_keyspace_hits_total",
    "redis_keyspace_misses_total",
    "redis_evicted_keys_total",
    "redis_expired_keys_total",
    "redis_commands_total",
    "redis_commands_duration_seconds_total",
    "redis_db_keys",
    "redis_db_keys_expiring",
    "redis_net_input_bytes_total",
    "redis_net_output_bytes_total",
    "redis_aof_enabled",
    "redis_cpu_sys_seconds_total",
    "redis_cpu_user_seconds_total",
    "redis_slowlog_length",
];

/// One collect over `pool`, parsed.
async fn collect_redis(pool: &fred::clients::Pool) -> Scrape {
    Scrape::parse(RedisCollector::new(pool.clone()).collect().await)
}

/// A Redis pool for a server at `port`, not waited for and without command timeouts.
fn patient_redis_pool(port: u16) -> fred::clients::Pool {
    let config = Config {
        server: ServerConfig::new_centralized("127.0.0.1", port),
        ..Default::default()
    };
    let pool = Builder::from_config(config)
        .with_connection_config(|c| c.connection_timeout = Duration::from_secs(120))
        .build_pool(1)
        .expect("redis pool");
    pool.connect();
    pool
}

#[tokio::test]
async fn redis_collector_reports_every_required_family_with_redis_up_1() {
    let redis = redis_server().await;
    let pool = redis_pool(redis.port, 0).await;

    let scrape = collect_redis(&pool).await;

    assert_eq!(scrape.value("redis_up", &[]), Some(1.0), "{}", scrape.text);
    let missing = scrape.missing(REQUIRED_REDIS);
    assert!(
        missing.is_empty(),
        "missing {missing:?} in:\n{}",
        scrape.text
    );
    let port = redis.port.to_string();
    let info = [
        ("role", "master"),
        ("redis_mode", "standalone"),
        ("tcp_port", port.as_str()),
    ];
    assert_eq!(scrape.value("redis_instance_info", &info), Some(1.0));
    let clients = scrape.value("redis_connected_clients", &[]);
    assert!(
        clients.is_some_and(|n| n >= 1.0),
        "connected clients {clients:?}"
    );
    assert_eq!(scrape.label_names("redis_commands_total"), names(&["cmd"]));
    assert_eq!(scrape.label_names("redis_db_keys"), names(&["db"]));
    assert_eq!(scrape.kind("redis_commands_processed_total"), "counter");
    assert_eq!(scrape.kind("redis_connected_clients"), "gauge");
}

#[tokio::test]
async fn redis_collector_counts_keys_per_database_in_db_keys() {
    let redis = redis_server().await;
    let db0 = redis_pool(redis.port, 0).await;
    let db2 = redis_pool(redis.port, 2).await;
    for key in ["a", "b", "c"] {
        let _: () = db0.set(key, 1, None, None, false).await.expect("set");
    }
    let _: () = db0
        .set("d", 1, Some(Expiration::EX(600)), None, false)
        .await
        .expect("set with expiry");
    let _: () = db2
        .set("e", 1, None, None, false)
        .await
        .expect("set in db2");

    let scrape = collect_redis(&db0).await;

    assert_eq!(scrape.value("redis_db_keys", &[("db", "db0")]), Some(4.0));
    assert_eq!(
        scrape.value("redis_db_keys_expiring", &[("db", "db0")]),
        Some(1.0)
    );
    assert_eq!(scrape.value("redis_db_keys", &[("db", "db2")]), Some(1.0));
    // Empty databases up to `databases` (16) read 0, so panels show a line, not a gap.
    assert_eq!(scrape.value("redis_db_keys", &[("db", "db15")]), Some(0.0));
    assert_eq!(scrape.value("redis_db_keys", &[("db", "db16")]), None);
}

#[tokio::test]
async fn redis_collector_commands_total_for_set_increases_by_the_sets_made() {
    let redis = redis_server().await;
    let pool = redis_pool(redis.port, 0).await;
    let _: () = pool.set("warm", 1, None, None, false).await.expect("set");
    let before = collect_redis(&pool).await;

    for i in 0..5 {
        let _: () = pool
            .set(format!("k{i}"), i, None, None, false)
            .await
            .expect("set");
    }
    let _: Option<String> = pool.get("missing").await.expect("get");
    let after = collect_redis(&pool).await;

    let set = [("cmd", "set")];
    let calls = |s: &Scrape| s.value("redis_commands_total", &set).expect("set calls");
    assert_eq!(calls(&after) - calls(&before), 5.0);
    let spent = after.value("redis_commands_duration_seconds_total", &set);
    assert!(
        spent.is_some_and(|s| s > 0.0),
        "time spent in set {spent:?}"
    );
    let misses = |s: &Scrape| s.value("redis_keyspace_misses_total", &[]).expect("misses");
    assert_eq!(misses(&after) - misses(&before), 1.0);
}

#[tokio::test]
async fn redis_collector_reports_only_redis_up_0_when_nothing_listens() {
    let collector =
        RedisCollector::new(patient_redis_pool(free_port())).with_timeout(COLLECT_TIMEOUT);

    let text = bounded(collector.collect()).await;

    let scrape = Scrape::parse(text);
    assert_eq!(scrape.sample_lines(), ["redis_up 0"]);
    assert_eq!(scrape.kind("redis_up"), "gauge");
}

#[tokio::test]
async fn redis_collector_reports_only_redis_up_0_when_the_server_never_answers() {
    let silent = silent_server().await;
    let collector =
        RedisCollector::new(patient_redis_pool(silent.port)).with_timeout(COLLECT_TIMEOUT);

    let text = bounded(collector.collect()).await;

    assert_eq!(Scrape::parse(text).sample_lines(), ["redis_up 0"]);
}

#[tokio::test]
async fn redis_collector_output_passes_promtool() {
    let redis = redis_server().await;
    let pool = redis_pool(redis.port, 0).await;
    let _: () = pool.set("k", 1, None, None, false).await.expect("set");

    let text = RedisCollector::new(pool).collect().await;

    assert_promtool_clean(&text);
}
