//! The one place that puts roles into a process: listeners, signals, pingora's `Server` with
//! one service per role, the in-process app of `--role proxy+app`, and the pid file and
//! upgrade socket. Roles never import each other; they meet only here.
//!
//! - `--role app`: the API on a work-stealing runtime of its own; SIGTERM or SIGINT drains.
//! - any role set with `proxy`: pingora owns the process. SIGTERM drains (in-flight requests
//!   finish), SIGINT stops at once, SIGQUIT hands the listening socket to a new process
//!   started with `--upgrade` and then drains: a zero-downtime upgrade. Each process has its
//!   own in-process app socket, so the old and the new one never share it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use async_trait::async_trait;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{RunArgs, Server, ShutdownWatch};
use pingora::services::ServiceReadyNotifier;
use pingora::services::background::{BackgroundService, background_service};

use tokio::runtime::Runtime;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Settings;
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

/// pingora's wait after a shutdown signal before it stops its runtimes (its default is
/// 300 s): the proxy's wait for heads on their way, then a second for their requests.
const GRACE_PERIOD: Duration =
    Duration::from_secs(crate::proxy::downstream::SHUTDOWN_LINGER.as_secs() + 1);

/// Runs the given roles in this process until a signal stops them. Blocks; call it outside
/// any async runtime.
pub fn run(settings: Settings, roles: &RoleSet, process: Process) -> anyhow::Result<()> {
    if (process.upgrade || process.daemon) && !roles.contains(Role::Proxy) {
        bail!("--upgrade and --daemon are for the proxy role (pingora's upgrade and daemon mode)");
    }
    check_roles(&settings, roles)?;
    if roles.contains(Role::Proxy) {
        return run_with_pingora(settings, roles, process);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    runtime.block_on(run_app(settings))
}

/// Refuses roles not built yet and settings the roles cannot run with.
fn check_roles(settings: &Settings, roles: &RoleSet) -> anyhow::Result<()> {
    let unbuilt = roles.unbuilt();
    if !unbuilt.is_empty() {
        let names: Vec<&str> = unbuilt.iter().map(|r| r.as_str()).collect();
        bail!(
            "role {} is not built yet in this version of fastpick; available roles: app, proxy",
            names.join(", ")
        );
    }
    settings.validate(roles)
}

/// Serves the app role on `app.listen` until SIGTERM or SIGINT.
async fn run_app(settings: Settings) -> anyhow::Result<()> {
    let listener = bind(settings.app.listen)
        .with_context(|| format!("failed to bind app.listen {}", settings.app.listen))?;
    serve_app(settings, listener).await
}

/// Serves the app role on a bound listener until SIGTERM or SIGINT (also `fastpick demo`'s).
pub async fn serve_app(
    settings: Settings,
    listener: tokio::net::TcpListener,
) -> anyhow::Result<()> {
    let state = crate::app::build_state(&settings).await?;
    crate::app::serve(&settings, state, listener, shutdown_signal()).await
}

/// Pending connections a listener queues before the kernel drops new ones (the default of
/// 1,024 overflows when 1,000 load-test users connect at once).
const LISTEN_BACKLOG: u32 = 4096;

/// Binds a TCP listener with a deep accept queue.
pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    // Inherited by accepted connections (Linux): answers go out at once, as nginx's tcp_nodelay.
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Resolves on the first SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("failed to install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
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

/// A name part no other live process uses (pid and start time).
fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{}-{nanos:x}", std::process::id())
}

/// Runs the proxy (and the app, when asked) as pingora services.
fn run_with_pingora(settings: Settings, roles: &RoleSet, process: Process) -> anyhow::Result<()> {
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
    let opt = Opt {
        upgrade: process.upgrade,
        daemon: process.daemon,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, pingora_conf(&settings));
    // As a service, so it runs after daemonizing: the starting process returns at once and
    // the new one waits (pingora retries for 5 s) for the old one's SIGQUIT to hand the
    // listening socket over.
    let bootstrap = server.bootstrap_as_a_service();
    let mut in_process_app = None;
    let pool = if cfg.upstreams.is_empty() {
        if !with_app {
            bail!(
                "proxy.upstreams is empty: list the app instances (ip:port), or run --role proxy+app"
            );
        }
        // Named for this process: during an upgrade the old and the new app both run.
        let socket = runtime_path(&settings, &format!("app-{}.sock", unique_suffix()));
        let (app, handle) = InProcessApp::new(&settings, socket.clone());
        let app = server.add_service(background_service("app", app));
        app.add_dependency(&bootstrap);
        in_process_app = Some((app, handle));
        Pool::InProcess(socket.display().to_string())
    } else {
        if with_app {
            bail!(
                "with --role proxy+app leave proxy.upstreams empty: the proxy uses the in-process app"
            );
        }
        // pingora's load balancer is its own health-check background service.
        let checks = background_service("health checks", Remote::balancer(&cfg)?);
        let remote = Remote::new(&cfg, checks.task());
        server.add_service(checks);
        Pool::Remote(remote)
    };
    let service = crate::proxy::service(&server.configuration, &cfg, pool)?;
    let proxy = server.add_service(service);
    proxy.add_dependency(&bootstrap);
    if let Some((app, _)) = &in_process_app {
        proxy.add_dependency(app);
    }
    tracing::info!(listen = %cfg.listen, upstreams = ?cfg.upstreams, in_process_app = with_app, "proxy role ready");
    server.run(RunArgs::default());
    tracing::info!("proxy role stopped");
    if let Some((_, handle)) = in_process_app {
        handle.stop();
    }
    Ok(())
}

/// pingora's settings from ours: threads, runtimes, grace periods, pid file, upgrade socket.
fn pingora_conf(settings: &Settings) -> ServerConf {
    ServerConf {
        threads: settings.proxy.threads.max(1),
        // One runtime per thread, each keeping its connections (nginx's worker model): no
        // task stealing between threads, measured 10-20% more requests per second here.
        work_stealing: false,
        grace_period_seconds: Some(GRACE_PERIOD.as_secs()),
        graceful_shutdown_timeout_seconds: Some(settings.app.shutdown_grace.as_secs().max(1)),
        pid_file: runtime_path(settings, "proxy.pid").display().to_string(),
        upgrade_sock: runtime_path(settings, "upgrade.sock").display().to_string(),
        // Not `daemon_wait_for_ready`: pingora's parent installs its SIGUSR1 handler after
        // forking, and a quick child's signal then kills it (seen in the upgrade test).
        ..ServerConf::default()
    }
}

/// The in-process app's runtime and serving task, kept outside pingora so that the app
/// outlives the proxy's runtimes.
type Running = Arc<std::sync::Mutex<Option<(Runtime, JoinHandle<()>)>>>;

/// The app role inside pingora's server, on a Unix socket. pingora starts it (after it
/// daemonizes) as a background service; [`AppHandle::stop`] stops it once pingora has
/// stopped the proxy, so no proxied request, not even one accepted just before a SIGQUIT
/// whose head is still on its way, can find the app gone.
struct InProcessApp {
    settings: Settings,
    socket: PathBuf,
    running: Running,
    stop: watch::Receiver<bool>,
}

/// Stops the in-process app.
struct AppHandle {
    running: Running,
    stop: watch::Sender<bool>,
}

impl InProcessApp {
    fn new(settings: &Settings, socket: PathBuf) -> (Self, AppHandle) {
        let running = Running::default();
        let (stop_tx, stop_rx) = watch::channel(false);
        let app = InProcessApp {
            settings: settings.clone(),
            socket,
            running: running.clone(),
            stop: stop_rx,
        };
        (
            app,
            AppHandle {
                running,
                stop: stop_tx,
            },
        )
    }
}

impl AppHandle {
    /// Lets in-flight app requests finish (bounded by `app.shutdown_grace`), closes the
    /// pools and stops the app's runtime. Call it outside any async runtime.
    fn stop(self) {
        let _ = self.stop.send(true);
        let running = self.running.lock().map(|mut r| r.take());
        if let Ok(Some((runtime, task))) = running {
            if let Err(e) = runtime.block_on(task) {
                tracing::error!(error = %e, "in-process app stopped abnormally");
            }
            runtime.shutdown_timeout(Duration::from_secs(1));
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
        _shutdown: ShutdownWatch,
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
        let (settings, socket) = (self.settings.clone(), self.socket.clone());
        let mut stop = self.stop.clone();
        let task = runtime.spawn(async move {
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
            let stopped = async move {
                let _ = stop.wait_for(|stop| *stop).await;
            };
            if let Err(e) = crate::app::serve(&settings, state, listener, stopped).await {
                tracing::error!(error = %e, "in-process app failed");
            }
            let _ = std::fs::remove_file(&socket);
        });
        if let Ok(mut running) = self.running.lock() {
            *running = Some((runtime, task));
        }
    }
}
