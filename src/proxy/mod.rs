//! The proxy role on pingora: the original's nginx (API.md 1.1). With the app role in the
//! same process (`--role proxy+app`, as on VM1) the app runs as a pingora service and the
//! proxy reaches it over a Unix socket, without a TCP hop.
//!
//! Signals are pingora's: SIGTERM drains (in-flight requests finish), SIGINT stops at once.

pub mod allow;
pub mod assets;
pub mod handler;
pub mod head_deadline;
pub mod limit;
pub mod metrics;
pub mod upstream;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use async_trait::async_trait;
use pingora::lb::LoadBalancer;
use pingora::lb::selection::RoundRobin;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{RunArgs, Server, ShutdownWatch};
use pingora::services::background::{BackgroundService, background_service};
use pingora::services::listening::Service;

use crate::config::Settings;
use crate::proxy::handler::Proxy;
use crate::proxy::head_deadline::WithHeadDeadline;
use crate::proxy::upstream::{Pool, Remote};
use crate::role::{Role, RoleSet};

/// Where pingora keeps its pid file, upgrade socket and our in-process app socket:
/// systemd's RuntimeDirectory when set, else the temp dir, named after the listen port.
fn runtime_path(settings: &Settings, what: &str) -> PathBuf {
    let dir = std::env::var_os("RUNTIME_DIRECTORY")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    dir.join(format!("fastpick-{}-{what}", settings.proxy.listen.port()))
}

/// Runs pingora's health checks of the upstreams as a background service.
struct HealthChecks(Arc<LoadBalancer<RoundRobin>>);

#[async_trait]
impl BackgroundService for HealthChecks {
    async fn start(&self, shutdown: ShutdownWatch) {
        BackgroundService::start(self.0.as_ref(), shutdown).await;
    }
}

/// The app role inside pingora's server, on a Unix socket.
struct InProcessApp {
    settings: Settings,
    socket: PathBuf,
}

#[async_trait]
impl BackgroundService for InProcessApp {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let state = match crate::app::build_state(&self.settings).await {
            Ok(state) => state,
            Err(e) => {
                // A proxy without its app would answer 502 forever: stop instead.
                tracing::error!(error = %e, "in-process app failed to start");
                std::process::exit(1);
            }
        };
        let _ = std::fs::remove_file(&self.socket);
        let listener = match tokio::net::UnixListener::bind(&self.socket) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, socket = %self.socket.display(), "in-process app failed to bind");
                std::process::exit(1);
            }
        };
        let stop = async move {
            let _ = shutdown.changed().await;
        };
        if let Err(e) = crate::app::serve(&self.settings, state, listener, stop).await {
            tracing::error!(error = %e, "in-process app failed");
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// Runs the proxy (and the app, when asked) until a signal stops pingora. Blocks; call it
/// outside any async runtime.
pub fn run(settings: Settings, roles: &RoleSet) -> anyhow::Result<()> {
    let cfg = settings.proxy.clone();
    // pingora binds inside its service task and only panics there: find a taken port first.
    drop(
        std::net::TcpListener::bind(cfg.listen)
            .with_context(|| format!("failed to bind proxy.listen {}", cfg.listen))?,
    );
    let with_app = roles.contains(Role::App);
    let conf = ServerConf {
        threads: cfg.threads.max(1),
        // pingora waits this long after SIGTERM before stopping its runtimes (default 300 s).
        grace_period_seconds: Some(1),
        graceful_shutdown_timeout_seconds: Some(settings.app.shutdown_grace.as_secs().max(1)),
        pid_file: runtime_path(&settings, "proxy.pid").display().to_string(),
        upgrade_sock: runtime_path(&settings, "upgrade.sock")
            .display()
            .to_string(),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(Opt::default(), conf);
    server.bootstrap();
    let pool = if cfg.upstreams.is_empty() {
        if !with_app {
            bail!(
                "proxy.upstreams is empty: list the app instances (ip:port), or run --role proxy+app"
            );
        }
        let socket = runtime_path(&settings, "app.sock");
        server.add_service(background_service(
            "app",
            InProcessApp {
                settings: settings.clone(),
                socket: socket.clone(),
            },
        ));
        Pool::InProcess(socket.display().to_string())
    } else {
        if with_app {
            bail!(
                "with --role proxy+app leave proxy.upstreams empty: the proxy uses the in-process app"
            );
        }
        let remote = Remote::new(&cfg)?;
        server.add_service(background_service(
            "health checks",
            HealthChecks(remote.lb()),
        ));
        Pool::Remote(remote)
    };
    let metrics = Arc::new(metrics::ProxyMetrics::new());
    let proxy = Proxy {
        allow: allow::AllowList::parse(&cfg.actuator_allow)?,
        assets: assets::Assets::load(),
        metrics: metrics.clone(),
        limiter: (cfg.issue_rate_limit > 0).then(|| limit::RateLimiter::new(cfg.issue_rate_limit)),
        pool: Arc::new(pool),
        cfg: cfg.clone(),
    };
    let app = WithHeadDeadline {
        app: Arc::new(pingora::proxy::http_proxy(&server.configuration, proxy)),
        limit: cfg.client_timeout,
        metrics,
    };
    let mut service = Service::new("proxy".to_owned(), app);
    service.add_tcp(&cfg.listen.to_string());
    server.add_service(service);
    tracing::info!(listen = %cfg.listen, upstreams = ?cfg.upstreams, in_process_app = with_app, "proxy role ready");
    server.run(RunArgs::default());
    tracing::info!("proxy role stopped");
    Ok(())
}
