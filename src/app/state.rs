//! What every handler can reach: the pools, the token keys, the clock and the metrics.

use std::sync::Arc;

use sqlx::PgPool;

use crate::app::coupons::cache::SearchCache;
use crate::app::issues::gate::Gate;
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
    /// The issuing strategy and its settings.
    pub issue: IssueConfig,
    /// The Redis gate, when `issue.strategy` is redis-gate.
    pub gate: Option<Arc<Gate>>,
    /// The search page cache, when `search.cache` is redis.
    pub search_cache: Option<Arc<SearchCache>>,
    /// Search settings (count limit, cache lifetime).
    pub search: SearchConfig,
}
