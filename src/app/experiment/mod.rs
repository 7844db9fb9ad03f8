//! The experiment's switches: the issue strategy and the search cache. Every request reads
//! them; an ADMIN changes them at run time through `/api/v1/admin/experiment` when
//! `app.experiment_switch` is on, so a lab run needs no shell on VM1. Each change is written
//! to the log (target `fastpick::audit`) and shows in `fastpick_experiment_info`.

pub mod ledger;
pub mod users;

use std::sync::{Arc, RwLock};

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::auth::AdminUser;
use crate::app::coupons::cache::SearchCache;
use crate::app::error::{ApiError, Result};
use crate::app::extract::{ApiJson, Validate};
use crate::app::issues::gate::Gate;
use crate::app::metrics::AppMetrics;
use crate::app::state::AppState;
use crate::app::validate::Rules;
use crate::config::{IssueStrategy, SearchCache as CacheMode};
use crate::envelope::{Envelope, ErrorBody, FieldError, ok};

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/admin/experiment",
            get(current_switches).put(switch),
        )
        .route("/api/v1/admin/experiment/users", post(users::lab_users))
        .route(
            "/api/v1/admin/experiment/coupons/{id}",
            get(ledger::coupon_ledger),
        )
}

/// The switches in effect, with the gate and the cache they may need (both always built:
/// they only hold pool handles).
pub struct Experiment {
    switches: RwLock<(IssueStrategy, CacheMode)>,
    /// Whether `PUT /api/v1/admin/experiment` may change them (`app.experiment_switch`).
    switchable: bool,
    gate: Arc<Gate>,
    cache: Arc<SearchCache>,
}

impl Experiment {
    /// The switches from the configuration.
    pub fn new(
        strategy: IssueStrategy,
        cache_mode: CacheMode,
        switchable: bool,
        gate: Arc<Gate>,
        cache: Arc<SearchCache>,
    ) -> Self {
        Experiment {
            switches: RwLock::new((strategy, cache_mode)),
            switchable,
            gate,
            cache,
        }
    }

    /// Whether this deployment lets an ADMIN change the switches and use the lab's endpoints.
    pub fn switchable(&self) -> bool {
        self.switchable
    }

    fn read(&self) -> (IssueStrategy, CacheMode) {
        *self.switches.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The issue strategy in effect.
    pub fn strategy(&self) -> IssueStrategy {
        self.read().0
    }

    /// The Redis gate (used while the strategy is redis-gate).
    pub fn gate(&self) -> &Arc<Gate> {
        &self.gate
    }

    /// The search page cache, while it is on.
    pub fn search_cache(&self) -> Option<&Arc<SearchCache>> {
        (self.read().1 == CacheMode::Redis).then_some(&self.cache)
    }

    /// Sets the switches; returns the ones before.
    fn set(
        &self,
        strategy: IssueStrategy,
        cache_mode: CacheMode,
        metrics: &AppMetrics,
    ) -> (IssueStrategy, CacheMode) {
        let mut switches = self.switches.write().unwrap_or_else(|e| e.into_inner());
        let before = *switches;
        *switches = (strategy, cache_mode);
        metrics.set_experiment(strategy.as_str(), cache_mode.as_str());
        before
    }
}

/// The switches as the API shows them.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Switches {
    /// `db-lock`, `db-atomic` or `redis-gate`.
    #[schema(value_type = crate::app::openapi::types::IssueStrategyName)]
    pub issue_strategy: &'static str,
    /// `off` or `redis`.
    #[schema(value_type = crate::app::openapi::types::SearchCacheName)]
    pub search_cache: &'static str,
    /// Whether this deployment lets an ADMIN change them (`app.experiment_switch`).
    pub switchable: bool,
}

impl Switches {
    fn of(experiment: &Experiment) -> Self {
        let (strategy, cache_mode) = experiment.read();
        Switches {
            issue_strategy: strategy.as_str(),
            search_cache: cache_mode.as_str(),
            switchable: experiment.switchable,
        }
    }
}

/// A change of switches; a field left out keeps its value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SwitchRequest {
    #[serde(default, deserialize_with = "crate::app::lenient::opt_string")]
    #[schema(value_type = Option<crate::app::openapi::types::IssueStrategyName>)]
    pub issue_strategy: Option<String>,
    #[serde(default, deserialize_with = "crate::app::lenient::opt_string")]
    #[schema(value_type = Option<crate::app::openapi::types::SearchCacheName>)]
    pub search_cache: Option<String>,
}

/// The strategy with this config name (clap's value names are the config names).
fn strategy_named(name: &str) -> Option<IssueStrategy> {
    clap::ValueEnum::from_str(name, false).ok()
}

/// The cache mode with this config name.
fn cache_named(name: &str) -> Option<CacheMode> {
    clap::ValueEnum::from_str(name, false).ok()
}

impl Validate for SwitchRequest {
    fn validate(&self) -> Vec<FieldError> {
        let mut rules = Rules::new();
        if let Some(name) = &self.issue_strategy
            && strategy_named(name).is_none()
        {
            rules.fail(
                "issueStrategy",
                name,
                "발급 전략은 db-lock, db-atomic, redis-gate 중 하나여야 합니다.",
            );
        }
        if let Some(name) = &self.search_cache
            && cache_named(name).is_none()
        {
            rules.fail(
                "searchCache",
                name,
                "검색 캐시는 off 또는 redis여야 합니다.",
            );
        }
        rules.finish()
    }
}

// GET /api/v1/admin/experiment
#[utoipa::path(get, path = "/api/v1/admin/experiment", tag = "admin",
    security(("bearer" = [])),
    description = "The experiment's switches in effect: the issue strategy and the search cache, and whether this deployment lets an ADMIN change them. FastPick only (the original had no such switch).",
    responses((status = 200, body = Envelope<Switches>),
        (status = 401, body = ErrorBody, description = "C003 missing, A001 invalid, A002 expired token"),
        (status = 403, body = ErrorBody, description = "C004 not an admin")))]
async fn current_switches(
    State(state): State<AppState>,
    _admin: AdminUser,
) -> Json<Envelope<Switches>> {
    ok(Switches::of(&state.experiment))
}

// PUT /api/v1/admin/experiment
#[utoipa::path(put, path = "/api/v1/admin/experiment", tag = "admin", request_body = SwitchRequest,
    security(("bearer" = [])),
    description = "Changes the issue strategy and/or the search cache at run time, for the lab (`fastpick lab`). Off unless `app.experiment_switch = true` (the demo turns it on). \
        Switching to redis-gate starts a new gate epoch (its state is rebuilt from PostgreSQL); switching the cache on drops pages cached before. \
        Requests in flight finish with the switch they started with; PostgreSQL's guards keep issuing exact either way. Each change is logged with the admin's id. FastPick only.",
    responses((status = 200, body = Envelope<Switches>, description = "The switches now in effect"),
        (status = 400, body = ErrorBody, description = "C001 unknown strategy or cache name, C002 wrong type"),
        (status = 401, body = ErrorBody, description = "C003 missing, A001 invalid, A002 expired token"),
        (status = 403, body = ErrorBody, description = "C004 not an admin, or switching is off in this deployment")))]
#[tracing::instrument(level = "debug", skip_all, fields(admin_id = admin.id))]
async fn switch(
    State(state): State<AppState>,
    admin: AdminUser,
    ApiJson(req): ApiJson<SwitchRequest>,
) -> Result<Json<Envelope<Switches>>> {
    // Off in this deployment: the GET shows `switchable: false`.
    if !state.experiment.switchable {
        return Err(ApiError::Forbidden);
    }
    let (strategy_was, cache_was) = state.experiment.read();
    let strategy = req
        .issue_strategy
        .as_deref()
        .and_then(strategy_named)
        .unwrap_or(strategy_was);
    let cache_mode = req
        .search_cache
        .as_deref()
        .and_then(cache_named)
        .unwrap_or(cache_was);
    // Done before the switch, so the first gated or cached request meets a clean state.
    if strategy == IssueStrategy::RedisGate
        && strategy_was != IssueStrategy::RedisGate
        && let Err(e) = state.experiment.gate.new_epoch().await
    {
        tracing::warn!(error = %e, "redis gate: redis unreachable at the switch; issuing falls back until it returns");
    }
    if cache_mode == CacheMode::Redis && cache_was != CacheMode::Redis {
        let told = state.experiment.cache.invalidate("switch").await;
        state
            .metrics
            .search_invalidation(if told { "switch" } else { "failed" });
    }
    let before = state.experiment.set(strategy, cache_mode, &state.metrics);
    tracing::info!(
        target: "fastpick::audit",
        admin_id = admin.id,
        issue_strategy = strategy.as_str(),
        search_cache = cache_mode.as_str(),
        issue_strategy_was = before.0.as_str(),
        search_cache_was = before.1.as_str(),
        "experiment switched"
    );
    Ok(ok(Switches::of(&state.experiment)))
}
