//! The app role: the coupon API on axum, backed by PostgreSQL (sqlx) and Redis (fred).

pub mod actuator;
pub mod admin;
pub mod auth;
pub mod coupons;
pub mod error;
pub mod experiment;
pub mod extract;
pub mod issues;
pub mod lenient;
pub mod metrics;
pub mod my_coupons;
pub mod openapi;
pub mod page;
pub mod security;
pub mod state;
pub mod validate;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use fred::prelude::ClientLike;

use crate::app::error::ApiError;
use crate::app::metrics::AppMetrics;
use crate::app::state::AppState;
use crate::config::Settings;
use crate::domain::Clock;
use crate::head_guard::{GuardedListener, HeadLimits};
use crate::token::TokenKeys;

/// Builds the whole API router over a state.
pub fn router(state: AppState, cors_origins: &[String]) -> anyhow::Result<Router> {
    let origins = security::AllowedOrigins::parse(cors_origins)?;
    let router = Router::new()
        .merge(auth::router())
        .merge(coupons::router())
        .merge(issues::router())
        .merge(my_coupons::router())
        .merge(admin::router())
        .merge(experiment::router())
        .merge(actuator::router())
        .merge(openapi::router())
        .fallback(|| async { ApiError::RouteNotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::track,
        ))
        .layer(origins.layer())
        .layer(axum::middleware::from_fn_with_state(
            origins.clone(),
            security::refuse_foreign_origins,
        ))
        .layer(axum::middleware::from_fn(security::default_headers))
        .with_state(state);
    Ok(router)
}

/// Connects to both servers, migrates when configured, and returns the handler state.
pub async fn build_state(settings: &Settings) -> anyhow::Result<AppState> {
    let db = crate::db::connect_postgres(&settings.database).await?;
    if settings.app.migrate_on_start {
        crate::db::run_migrations(&db).await?;
    }
    let redis = crate::db::connect_redis(&settings.redis, Duration::from_secs(2)).await?;
    let secret = settings
        .auth
        .secret_key
        .as_ref()
        .context("auth.secret_key is missing")?;
    let gate = Arc::new(issues::gate::Gate::new(
        redis.clone(),
        db.clone(),
        settings.issue.gate_ttl,
    ));
    if settings.issue.strategy == crate::config::IssueStrategy::RedisGate
        && let Err(e) = gate.new_epoch().await
    {
        tracing::warn!(error = %e, "redis gate: redis unreachable at start; issuing falls back until it returns");
    }
    let metrics = AppMetrics::new();
    metrics.set_experiment(
        settings.issue.strategy.as_str(),
        settings.search.cache.as_str(),
    );
    let experiment = experiment::Experiment::new(
        settings.issue.strategy,
        settings.search.cache,
        settings.app.experiment_switch,
        gate,
        Arc::new(coupons::cache::SearchCache::new(
            redis.clone(),
            settings.search.cache_ttl,
            settings.search.refill == crate::config::Refill::Shared,
            metrics.search_waiting(),
        )),
    );
    Ok(AppState {
        db,
        redis: redis.clone(),
        tokens: Arc::new(TokenKeys::new(
            secret,
            settings.auth.access_token_ttl,
            settings.auth.refresh_token_ttl,
        )),
        clock: Clock::new(settings.app.timezone),
        metrics: Arc::new(metrics),
        bcrypt_cost: settings.auth.bcrypt_cost,
        issue: settings.issue.clone(),
        experiment: Arc::new(experiment),
        search: settings.search.clone(),
    })
}

/// Serves the API on an already bound listener until `shutdown` resolves, then lets
/// in-flight requests finish (bounded by `app.shutdown_grace`) and closes the pools.
pub async fn serve<L>(
    settings: &Settings,
    state: AppState,
    listener: L,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()>
where
    L: axum::serve::Listener,
    L::Io: Unpin,
    L::Addr: std::fmt::Debug,
{
    let mut app = router(state.clone(), &settings.app.cors_allowed_origins)?;
    if settings.app.storefront {
        app = crate::web::beside_api(app, crate::web::Site::load("storefront"));
    }
    let addr = listener.local_addr()?;
    let listener = GuardedListener {
        inner: listener,
        limits: HeadLimits::size(settings.app.max_header_bytes),
    };
    tracing::info!(?addr, "app role ready");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let grace = settings.app.shutdown_grace;
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        tracing::info!("shutting down: finishing in-flight requests");
        let _ = stop_tx.send(());
    });
    let drained = async {
        // Bounds the drain: starts counting once shutdown began.
        let _ = stop_rx.await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = server => result.context("app server failed")?,
        () = drained => tracing::warn!(?grace, "in-flight requests did not finish in time"),
    }
    state.db.close().await;
    let _ = state.redis.quit().await;
    tracing::info!("app role stopped");
    Ok(())
}
