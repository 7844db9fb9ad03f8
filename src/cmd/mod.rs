//! One-shot tools: `migrate`, `user create`, `demo`.

pub mod demo;
pub mod user;

use crate::config::Settings;

/// Applies the embedded migrations to the configured database.
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let pool = crate::db::connect_postgres(&settings.database).await?;
    crate::db::run_migrations(&pool).await?;
    let applied = crate::db::MIGRATOR.iter().count();
    tracing::info!(migrations = applied, "database schema is up to date");
    pool.close().await;
    Ok(())
}
