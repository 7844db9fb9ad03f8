//! The proxy role on pingora: the original's nginx (API.md 1.1). With the app role in the
//! same process (`--role proxy+app`, as on VM1) the app runs as a pingora service and the
//! proxy reaches it over a Unix socket, without a TCP hop.
//!
//! Signals are pingora's: SIGTERM drains (in-flight requests finish), SIGINT stops at once,
//! SIGQUIT hands the listening socket to a new process started with `--upgrade` and then
//! drains (a zero-downtime upgrade). Each process has its own in-process app socket, so the
//! old and the new one never share it.

pub mod allow;
pub mod assets;
pub mod handler;
pub mod head_deadline;
pub mod limit;
pub mod metrics;
pub mod upstream;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use async_trait::async_trait;
use pingora::lb::LoadBalancer;
use pingora::lb::selection::RoundRobin;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{RunArgs, Server, ShutdownWatch};
use pingora::services::ServiceReadyNotifier;
use pingora::services::background::{BackgroundService, background_service};
use pingora::services::listening::Service;

use crate::config::Settings;
use crate::proxy::handler::Proxy;
use crate::proxy::head_deadline::WithHeadDeadline;
use crate::proxy::upstream::{Pool, Remote};
use crate::role::{Role, RoleSet};

/// How this process starts (command-line flags).
#[derive(Debug, Clone, Copy, Default)]
pub struct Process {
    /// Take the listening socket over from a running process.
    pub upgrade: bool,
    /// Detach, with a pid file, once ready.
    pub daemon: bool,
}

/// Where pingora keeps its pid file and upgrade socket, and we the in-process app's socket:
/// systemd's RuntimeDirectory (one per unit) when set, else the temp dir, named after the
/// listen port.
pub fn runtime_path(settings: &Settings, what: &str) -> PathBuf {
    match std::env::var_os("RUNTIME_DIRECTORY") {
        Some(dir) => PathBuf::from(dir).join(what),
        None => {
            std::env::temp_dir().join(format!("fastpick-{}-{what}", settings.proxy.listen.port()))
        }
    }
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
    /// The proxy's, to see when it no longer needs the app.
    proxy: Arc<metrics::ProxyMetrics>,
}

impl InProcessApp {
    /// Resolves when the app should stop: after pingora's shutdown, once the proxy has no
    /// request in flight (they may still need the app), or after `app.shutdown_grace`.
    async fn stopped(
        mut shutdown: ShutdownWatch,
        proxy: Arc<metrics::ProxyMetrics>,
        grace: Duration,
    ) {
        let _ = shutdown.changed().await;
        let deadline = tokio::time::Instant::now() + grace;
        while proxy.requests_in_flight() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[async_trait]
impl BackgroundService for InProcessApp {
    /// Ready (so the proxy starts accepting) once the app listens on its socket.
    ///
    /// The app gets a work-stealing runtime of its own, as `--role app` has: pingora runs a
    /// background service on one thread, and the proxy's per-thread runtimes keep every task
    /// on the thread that spawned it. Built here, after pingora daemonizes.
    async fn start_with_ready_notifier(
        &self,
        shutdown: ShutdownWatch,
        ready: ServiceReadyNotifier,
    ) {
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("fastpick-app")
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => {
                // A proxy without its app would answer 502 forever: stop instead.
                tracing::error!(error = %e, "in-process app failed to start its runtime");
                std::process::exit(1);
            }
        };
        let (settings, socket, proxy) = (
            self.settings.clone(),
            self.socket.clone(),
            self.proxy.clone(),
        );
        let app = runtime.spawn(async move {
            let state = match crate::app::build_state(&settings).await {
                Ok(state) => state,
                Err(e) => {
                    tracing::error!(error = %e, "in-process app failed to start");
                    std::process::exit(1);
                }
            };
            let _ = std::fs::remove_file(&socket);
            let listener = match tokio::net::UnixListener::bind(&socket) {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(error = %e, socket = %socket.display(), "in-process app failed to bind");
                    std::process::exit(1);
                }
            };
            ready.notify_ready();
            let stop = Self::stopped(shutdown, proxy, settings.app.shutdown_grace);
            if let Err(e) = crate::app::serve(&settings, state, listener, stop).await {
                tracing::error!(error = %e, "in-process app failed");
            }
            let _ = std::fs::remove_file(&socket);
        });
        if let Err(e) = app.await {
            tracing::error!(error = %e, "in-process app stopped abnormally");
        }
        // Not dropped in place: dropping a runtime blocks, which an async context may not.
        runtime.shutdown_background();
    }
}

/// A name part no other live process uses (pid and start time).
fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{}-{nanos:x}", std::process::id())
}

/// Runs the proxy (and the app, when asked) until a signal stops pingora. Blocks; call it
/// outside any async runtime.
pub fn run(settings: Settings, roles: &RoleSet, process: Process) -> anyhow::Result<()> {
    let cfg = settings.proxy.clone();
    // pingora binds inside its service task and only panics there: find a taken port first
    // (unless the port comes from the running process).
    if !process.upgrade {
        drop(
            std::net::TcpListener::bind(cfg.listen)
                .with_context(|| format!("failed to bind proxy.listen {}", cfg.listen))?,
        );
    }
    let with_app = roles.contains(Role::App);
    let conf = ServerConf {
        threads: cfg.threads.max(1),
        // One runtime per thread, each keeping its connections (nginx's worker model): no
        // task stealing between threads, measured 10-20% more requests per second here.
        work_stealing: false,
        // pingora waits this long after SIGTERM before stopping its runtimes (default 300 s).
        grace_period_seconds: Some(1),
        graceful_shutdown_timeout_seconds: Some(settings.app.shutdown_grace.as_secs().max(1)),
        pid_file: runtime_path(&settings, "proxy.pid").display().to_string(),
        upgrade_sock: runtime_path(&settings, "upgrade.sock")
            .display()
            .to_string(),
        // Not `daemon_wait_for_ready`: pingora's parent installs its SIGUSR1 handler after
        // forking, and a quick child's signal then kills it (seen in the upgrade test).
        ..ServerConf::default()
    };
    let opt = Opt {
        upgrade: process.upgrade,
        daemon: process.daemon,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    // As a service, so it runs after daemonizing: the starting process returns at once and
    // the new one waits (pingora retries for 5 s) for the old one's SIGQUIT to hand the
    // listening socket over.
    let bootstrap = server.bootstrap_as_a_service();
    let metrics = Arc::new(metrics::ProxyMetrics::new());
    let mut in_process_app = None;
    let pool = if cfg.upstreams.is_empty() {
        if !with_app {
            bail!(
                "proxy.upstreams is empty: list the app instances (ip:port), or run --role proxy+app"
            );
        }
        // Named for this process: during an upgrade the old and the new app both run.
        let socket = runtime_path(&settings, &format!("app-{}.sock", unique_suffix()));
        let app = server.add_service(background_service(
            "app",
            InProcessApp {
                settings: settings.clone(),
                socket: socket.clone(),
                proxy: metrics.clone(),
            },
        ));
        app.add_dependency(&bootstrap);
        in_process_app = Some(app);
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
    // Unbuffered reads: pingora's default is a 64 KiB buffer per client connection, zeroed
    // and so resident (4 MiB at 64 connections); request heads are read into their own
    // buffer either way. Writes keep their small buffer (head and body in one send).
    let reads = pingora::listeners::L4BufferSettings {
        read: Some(0),
        write: None,
    };
    service.add_listener(
        pingora::listeners::ListenerConfig::tcp(cfg.listen.to_string()).l4_buffer(reads),
    );
    let proxy = server.add_service(service);
    proxy.add_dependency(&bootstrap);
    if let Some(app) = in_process_app {
        proxy.add_dependency(&app);
    }
    tracing::info!(listen = %cfg.listen, upstreams = ?cfg.upstreams, in_process_app = with_app, "proxy role ready");
    server.run(RunArgs::default());
    tracing::info!("proxy role stopped");
    Ok(())
}
