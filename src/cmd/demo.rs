//! `fastpick demo`: the whole system on one machine with demo data. Starts throwaway local
//! PostgreSQL and Redis servers when none is configured, migrates, seeds coupons and two
//! users, then serves the API and the monitor (scraping the API, PostgreSQL and Redis every
//! second) until Ctrl-C.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

use anyhow::Context;
use rand::Rng;
use rand::distr::Alphanumeric;
use secrecy::SecretString;

use crate::cli::DemoArgs;
use crate::cli::{SeedCouponsArgs, SeedVia};
use crate::config::{MonitorConfig, ScrapeJob, Settings};
use crate::domain::Clock;
use crate::local::{self, Supervised};

/// Environment variables that mean "a database is configured".
const DB_KEYS: [&str; 2] = ["DB_HOST", "FASTPICK_DATABASE__HOST"];
const REDIS_KEYS: [&str; 2] = ["REDIS_HOST", "FASTPICK_REDIS__HOST"];

fn configured(keys: &[&str], has_config_file: bool) -> bool {
    has_config_file || keys.iter().any(|k| std::env::var_os(k).is_some())
}

fn random_text(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Runs the demo; with a config file given, its database and Redis are used as configured.
pub async fn run(mut settings: Settings, args: DemoArgs, has_file: bool) -> anyhow::Result<()> {
    let mut servers: Vec<Supervised> = Vec::new();
    if !configured(&DB_KEYS, has_file) {
        let pg = tokio::task::spawn_blocking(local::start_postgres).await??;
        local::create_database(pg.port, "fastpick").await?;
        settings.database.host = "127.0.0.1".into();
        settings.database.port = pg.port;
        settings.database.username = "postgres".into();
        settings.database.name = "fastpick".into();
        println!(
            "started a local PostgreSQL on 127.0.0.1:{} (data in {})",
            pg.port,
            pg.dir.display()
        );
        servers.push(pg);
    }
    if !configured(&REDIS_KEYS, has_file) {
        let redis = tokio::task::spawn_blocking(local::start_redis).await??;
        settings.redis.host = "127.0.0.1".into();
        settings.redis.port = redis.port;
        println!("started a local Redis on 127.0.0.1:{}", redis.port);
        servers.push(redis);
    }
    if settings.auth.secret_key.is_none() {
        settings.auth.secret_key = Some(SecretString::from(random_text(48)));
    }
    settings.app.listen = args.listen;
    settings.app.migrate_on_start = true;
    // The demo is a lab on one machine: its admin may switch strategy and cache at run time.
    settings.app.experiment_switch = true;
    // One port for the shop and the API, as VM1's proxy gives them.
    settings.app.storefront = true;
    settings.validate(&"app".parse().map_err(anyhow::Error::msg)?)?;
    let listener = crate::server::bind(args.listen)
        .with_context(|| format!("failed to bind {}", args.listen))?;
    let db = crate::db::connect_postgres(&settings.database).await?;
    crate::db::run_migrations(&db).await?;
    let creds_path = seed_demo(&db, &settings, args.coupons).await;
    db.close().await;
    let creds_path = creds_path?;
    println!(
        "FastPick demo: http://{}/ (the storefront; the API under /api/v1, e.g. /api/v1/coupons?filterType=ISSUING)  (Ctrl-C stops it)",
        args.listen
    );
    let monitor = if args.no_monitor {
        None
    } else {
        let monitor = crate::server::bind(args.monitor_listen)
            .with_context(|| format!("failed to bind {}", args.monitor_listen))?;
        let mut api = listener.local_addr()?;
        if api.ip().is_unspecified() {
            api.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        settings.monitor = demo_monitor(api);
        println!(
            "FastPick dashboard: http://{}/  (the monitor scrapes the API, PostgreSQL and Redis every second; PromQL at /api/v1/query)",
            monitor.local_addr()?
        );
        Some(monitor)
    };
    let data_dir = settings.monitor.data_dir.clone();
    let watched = monitor.is_some();
    let result = crate::server::serve_without_proxy(settings, Some(listener), monitor).await;
    if watched {
        std::fs::remove_dir_all(&data_dir).ok();
    }
    std::fs::remove_file(&creds_path).ok();
    for server in servers {
        server.stop();
    }
    result
}

/// The lab preset of the monitor: the API's actuator, PostgreSQL and Redis every second,
/// kept in a temp dir that the demo removes on exit.
fn demo_monitor(api: std::net::SocketAddr) -> MonitorConfig {
    MonitorConfig {
        data_dir: std::env::temp_dir().join(format!("fastpick-demo-monitor-{}", random_text(12))),
        scrape_interval: Duration::from_secs(1),
        scrape_timeout: Duration::from_secs(1),
        jobs: vec![ScrapeJob {
            name: "fastpick-app".into(),
            targets: vec![api.to_string()],
            metrics_path: "/actuator/prometheus".into(),
            scheme: "http".into(),
            interval: None,
            timeout: None,
            labels: Default::default(),
        }],
        postgres: true,
        redis: true,
        processes: vec!["postgres".into(), "redis-server".into()],
        retention: Duration::from_secs(24 * 3600),
        ..MonitorConfig::default()
    }
}

/// Seeds coupons (once) and the two demo users; returns the credentials file's path.
async fn seed_demo(
    db: &sqlx::PgPool,
    settings: &Settings,
    count: u32,
) -> anyhow::Result<std::path::PathBuf> {
    let clock = Clock::new(settings.app.timezone);
    let existing: i64 = sqlx::query_scalar("select count(*) from tb_coupon")
        .fetch_one(db)
        .await?;
    if existing == 0 {
        let args = SeedCouponsArgs {
            count,
            append: false,
            reset: false,
            via: SeedVia::Copy,
        };
        let mut conn = db.acquire().await?;
        crate::seed::coupons::seed_coupons(&mut conn, &clock, &args).await?;
        println!("seeded {count} coupons with the original recipe");
    }
    // An unpredictable name, created fresh: never follows a link planted in the temp dir.
    let creds_path =
        std::env::temp_dir().join(format!("fastpick-demo-{}.credentials", random_text(12)));
    let mut lines = Vec::new();
    for (email, name, role) in [
        ("demo@fastpick.local", "데모", "USER"),
        ("admin@fastpick.local", "관리자", "ADMIN"),
    ] {
        let password = random_text(16);
        let hash = crate::password::hash(password.clone(), settings.auth.bcrypt_cost).await?;
        let now = clock.now();
        sqlx::query(
            "insert into tb_user (created_at, updated_at, email, password, name, role) values ($1, $1, $2, $3, $4, $5)
             on conflict (email) do update set password = excluded.password, updated_at = excluded.updated_at",
        )
        .bind(now)
        .bind(email)
        .bind(&hash)
        .bind(name)
        .bind(role)
        .execute(db)
        .await?;
        lines.push(format!("{role}\t{email}\t{password}\n"));
    }
    let mut file = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(&creds_path)
        .with_context(|| format!("failed to write {}", creds_path.display()))?;
    for line in lines {
        file.write_all(line.as_bytes())?;
    }
    println!(
        "demo users (role, e-mail, password) are in {} (mode 0600, removed on exit)",
        creds_path.display()
    );
    Ok(creds_path)
}
