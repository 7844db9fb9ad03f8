//! `fastpick seed coupons` by COPY next to plain batched INSERTs of the same recipe rows, on the
//! same local PostgreSQL, each into a fresh migrated database.
//!
//! Run: `cargo bench --bench seed` (needs postgresql; BENCH_COUPONS overrides 1,000,000).

use fastpick::cli::{SeedCouponsArgs, SeedVia};
use fastpick::config::DatabaseConfig;
use fastpick::domain::Clock;

fn main() -> anyhow::Result<()> {
    let count: u32 = std::env::var("BENCH_COUPONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let pg = fastpick::local::start_postgres()?;
    let rt = tokio::runtime::Runtime::new()?;
    let clock = Clock::new(chrono_tz::Asia::Seoul);
    let mut rows = Vec::new();
    for via in [SeedVia::Copy, SeedVia::Insert] {
        let name = format!("seed_{via:?}").to_lowercase();
        let report = rt.block_on(async {
            fastpick::local::create_database(pg.port, &name).await?;
            let cfg = DatabaseConfig {
                host: "127.0.0.1".into(),
                port: pg.port,
                name: name.clone(),
                username: "postgres".into(),
                ..Default::default()
            };
            let pool = fastpick::db::connect_postgres(&cfg).await?;
            fastpick::db::run_migrations(&pool).await?;
            let mut conn = pool.acquire().await?;
            let args = SeedCouponsArgs {
                count,
                append: false,
                reset: false,
                via,
            };
            fastpick::seed::coupons::seed_coupons(&mut conn, &clock, &args).await
        })?;
        println!(
            "{via:?}: {} coupons + {} keyword rows in {:.1} s",
            report.coupons, report.keywords, report.seconds
        );
        rows.push((via, report));
    }
    let copy = rows[0].1.seconds;
    println!(
        "\n| method | coupons | keyword rows | wall time | rows/s (coupons + keywords) | vs COPY |"
    );
    println!("|---|---|---|---|---|---|");
    for (via, r) in &rows {
        let per_sec = (r.coupons + r.keywords) as f64 / r.seconds;
        println!(
            "| {via:?} | {} | {} | {:.1} s | {per_sec:.0} | {:.2}x time |",
            r.coupons,
            r.keywords,
            r.seconds,
            r.seconds / copy
        );
    }
    drop(pg);
    Ok(())
}
