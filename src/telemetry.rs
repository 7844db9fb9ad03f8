//! The tracing subscriber (text or JSON lines on stderr), installed once per process.

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber; RUST_LOG, when set, wins over the configured level.
pub fn init(log: &LogConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(quiet_notices(&log.level)))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // try_init fails only when a subscriber is already set (tests); that one is kept.
    let _ = match log.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
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
