//! What every handler can reach: the pools, the token keys, the clock and the metrics.

use std::sync::Arc;

use sqlx::PgPool;

use crate::app::experiment::Experiment;
use crate::app::metrics::AppMetrics;
use crate::config::{IssueConfig, SearchConfig};
use crate::domain::Clock;
use crate::token::TokenKeys;

/// Shared handler state; cloning is cheap (handles and `Arc`s).
#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    pub redis: fred::clients::Pool,
    pub tokens: Arc<TokenKeys>,
    pub clock: Clock,
    pub metrics: Arc<AppMetrics>,
    /// bcrypt cost for new password hashes.
    pub bcrypt_cost: u32,
    /// Issuing settings (what redis-gate does without Redis, the gate's lifetime); the
    /// strategy in effect is the experiment's.
    pub issue: IssueConfig,
    /// The switches in effect: issue strategy and search cache.
    pub experiment: Arc<Experiment>,
    /// Search settings (count limit, cache lifetime).
    pub search: SearchConfig,
}
