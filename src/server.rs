//! The one place that puts roles into a process: listeners, signals, pingora's `Server` with
//! one service per role, the in-process app of `--role proxy+app`, and the pid file and
//! upgrade socket. Roles never import each other; they meet only here.
//!
//! - `--role app`: the API on a work-stealing runtime of its own; SIGTERM or SIGINT drains.
//! - any role set with `proxy`: pingora owns the process. SIGTERM drains (in-flight requests
//!   finish), SIGINT stops at once, SIGQUIT hands the listening socket to a new process
//!   started with `--upgrade` and then drains: a zero-downtime upgrade. With the app, each
//!   process has its own app (pools and all) on the proxy's runtime, reached without a socket.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use async_trait::async_trait;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{ListenFds, RunArgs, Server, ShutdownWatch};
use pingora::services::background::{BackgroundService, background_service};
use pingora::services::{ServiceReadyNotifier, ServiceWithDependents};

use tokio::runtime::Runtime;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Settings;
use crate::proxy::front::Front;
use crate::proxy::upstream::Remote;
use crate::role::{Role, RoleSet};

/// How this process starts (command-line flags).
#[derive(Debug, Clone, Copy, Default)]
pub struct Process {
    /// Take the listening socket over from a running process.
    pub upgrade: bool,
    /// Detach, with a pid file, once ready.
    pub daemon: bool,
}

/// The shortest grace period pingora may be given after a graceful stop (SIGTERM, or
/// SIGQUIT for an upgrade): the proxy's wait for heads on their way and its settling time
/// for connections accepted at the last moment. It then ends as soon as the proxy's
/// connections are drained (`Drain`), at most after `app.shutdown_grace`.
const MIN_GRACE_PERIOD: Duration = Duration::from_secs(
    crate::proxy::downstream::SHUTDOWN_LINGER.as_secs()
        + crate::proxy::downstream::SHUTDOWN_SETTLE.as_secs(),
);

/// Runs the given roles in this process until a signal stops them. Blocks; call it outside
/// any async runtime.
pub fn run(settings: Settings, roles: &RoleSet, process: Process) -> anyhow::Result<()> {
    if (process.upgrade || process.daemon) && !roles.contains(Role::Proxy) {
        bail!("--upgrade and --daemon are for the proxy role (pingora's upgrade and daemon mode)");
    }
    if process.upgrade && roles.contains(Role::Monitor) {
        // Two processes cannot share the monitor's port and store: restart it instead.
        bail!("--upgrade cannot hand the monitor over; run the monitor in a process of its own");
    }
    settings.validate(roles)?;
    if roles.contains(Role::Proxy) {
        return run_with_pingora(settings, roles, process);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    runtime.block_on(run_without_proxy(settings, roles))
}

/// Runs the app, the monitor or both on one runtime until SIGTERM or SIGINT.
async fn run_without_proxy(settings: Settings, roles: &RoleSet) -> anyhow::Result<()> {
    let app = match roles.contains(Role::App) {
        true => Some(
            bind(settings.app.listen)
                .with_context(|| format!("failed to bind app.listen {}", settings.app.listen))?,
        ),
        false => None,
    };
    let monitor = match roles.contains(Role::Monitor) {
        true => Some(bind(settings.monitor.listen).with_context(|| {
            format!("failed to bind monitor.listen {}", settings.monitor.listen)
        })?),
        false => None,
    };
    serve_without_proxy(settings, app, monitor).await
}

/// Serves the app and the monitor on the listeners given, on this runtime, until SIGTERM or
/// SIGINT (also `fastpick demo`'s way to run them).
pub async fn serve_without_proxy(
    settings: Settings,
    app_listener: Option<tokio::net::TcpListener>,
    monitor_listener: Option<tokio::net::TcpListener>,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let app = async {
        let Some(listener) = app_listener else {
            return Ok(());
        };
        let state = crate::app::build_state(&settings).await?;
        crate::app::serve(&settings, state, listener, stopped(stop_rx.clone())).await
    };
    let monitor = async {
        let Some(listener) = monitor_listener else {
            return Ok(());
        };
        crate::monitor::serve(&settings, listener, stopped(stop_rx.clone())).await
    };
    tokio::try_join!(app, monitor).map(|_| ())
}

/// Serves the monitor role on `monitor.listen` until `stopped` resolves.
async fn run_monitor(
    settings: &Settings,
    stopped: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = bind(settings.monitor.listen)
        .with_context(|| format!("failed to bind monitor.listen {}", settings.monitor.listen))?;
    crate::monitor::serve(settings, listener, stopped).await
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

/// SIGTERM and SIGINT, caught from the moment this is made (the process no longer dies of
/// them).
pub struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    /// Installs the handlers; needs a runtime.
    pub fn install() -> std::io::Result<StopSignals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(StopSignals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Resolves on the next of the two; names it.
    pub async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// Resolves on the first SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    match StopSignals::install() {
        Ok(mut signals) => {
            let name = signals.recv().await;
            tracing::info!("{name} received");
        }
        Err(e) => {
            tracing::error!(error = %e, "failed to install signal handlers; stop with SIGKILL");
            std::future::pending().await
        }
    }
}

/// Where pingora keeps its pid file and upgrade socket: systemd's RuntimeDirectory (one per unit) when set, else the temp dir, named after the
/// listen port.
pub fn runtime_path(settings: &Settings, what: &str) -> PathBuf {
    match std::env::var_os("RUNTIME_DIRECTORY") {
        Some(dir) => PathBuf::from(dir).join(what),
        None => {
            std::env::temp_dir().join(format!("fastpick-{}-{what}", settings.proxy.listen.port()))
        }
    }
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
    let mut server = Server::new_with_opt_and_conf(opt, pingora_conf(&settings, with_app));
    // As a service, so it runs after daemonizing: the starting process returns at once and
    // the new one waits (pingora retries for 5 s) for the old one's SIGQUIT to hand the
    // listening socket over.
    let bootstrap = server.bootstrap_as_a_service();
    let proxy = if cfg.upstreams.is_empty() {
        if !with_app {
            bail!(
                "proxy.upstreams is empty: list the app instances (ip:port), or run --role proxy+app"
            );
        }
        let (proxy, drain, front) = crate::proxy::front(&cfg)?;
        server.end_grace_period_when(move || drain.drained());
        server.add_service(ProxyWithApp {
            proxy,
            front,
            settings: settings.clone(),
        })
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
        let (proxy, drain) = crate::proxy::service(&server.configuration, &cfg, remote)?;
        server.end_grace_period_when(move || drain.drained());
        server.add_service(proxy)
    };
    proxy.add_dependency(&bootstrap);
    let monitor = roles.contains(Role::Monitor).then(|| {
        let (monitor, handle) = SideRole::monitor(&settings);
        server
            .add_service(background_service("monitor", monitor))
            .add_dependency(&bootstrap);
        handle
    });
    tracing::info!(listen = %cfg.listen, upstreams = ?cfg.upstreams, in_process_app = with_app, "proxy role ready");
    server.run(RunArgs::default());
    tracing::info!("proxy role stopped");
    if let Some(handle) = monitor {
        handle.stop();
    }
    Ok(())
}

/// pingora's settings from ours: threads, runtimes, grace periods, pid file, upgrade socket.
fn pingora_conf(settings: &Settings, with_app: bool) -> ServerConf {
    ServerConf {
        threads: settings.proxy.threads.max(1),
        // The proxy alone: one runtime per thread, each keeping its connections (nginx's
        // worker model): no task stealing between threads, measured 10-20% more requests per
        // second here. With the app: one work-stealing runtime, as the app has alone, so its
        // database and Redis sockets are served by the threads that run its handlers.
        work_stealing: with_app,
        // Its longest: in-flight requests (the in-process app's too) get `app.shutdown_grace`
        // to finish, as the app has alone; pingora cancels its runtimes' tasks after it.
        grace_period_seconds: Some(settings.app.shutdown_grace.max(MIN_GRACE_PERIOD).as_secs()),
        graceful_shutdown_timeout_seconds: Some(settings.app.shutdown_grace.as_secs().max(1)),
        pid_file: runtime_path(settings, "proxy.pid").display().to_string(),
        upgrade_sock: runtime_path(settings, "upgrade.sock").display().to_string(),
        // Not `daemon_wait_for_ready`: pingora's parent installs its SIGUSR1 handler after
        // forking, and a quick child's signal then kills it (seen in the upgrade test).
        ..ServerConf::default()
    }
}

/// `--role proxy+app`: the proxy's listening service, with the app built first on the
/// same runtime (its pools and Redis client live there) and its router handed to the
/// proxy's front. The proxy accepts only once the app is ready; the app exits the process
/// when it cannot start, since a proxy without its app would answer 502 forever. Its pools
/// close with the runtime, after pingora has drained the proxy's requests.
struct ProxyWithApp {
    proxy: crate::proxy::FrontService,
    front: Arc<Front>,
    settings: Settings,
}

#[async_trait]
impl ServiceWithDependents for ProxyWithApp {
    async fn start_service(
        &mut self,
        fds: Option<ListenFds>,
        shutdown: ShutdownWatch,
        listeners_per_fd: usize,
        ready: ServiceReadyNotifier,
    ) {
        let router = match crate::app::build_state(&self.settings)
            .await
            .and_then(|state| crate::app::router(state, &self.settings.app.cors_allowed_origins))
        {
            Ok(router) => router,
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "in-process app failed to start");
                std::process::exit(1);
            }
        };
        self.front.set(router);
        tracing::info!("in-process app ready");
        ServiceWithDependents::start_service(
            &mut self.proxy,
            fds,
            shutdown,
            listeners_per_fd,
            ready,
        )
        .await;
    }

    fn name(&self) -> &str {
        ServiceWithDependents::name(&self.proxy)
    }

    fn threads(&self) -> Option<usize> {
        ServiceWithDependents::threads(&self.proxy)
    }
}

/// A role's runtime and serving task, kept outside pingora so that the role outlives the
/// proxy's runtimes.
type Running = Arc<std::sync::Mutex<Option<(Runtime, JoinHandle<()>)>>>;

/// Spawns a role's serving task on its runtime; the task calls `ready` once it accepts and
/// returns once the stop flag turns true.
type Launch = Box<
    dyn Fn(&Runtime, watch::Receiver<bool>, ServiceReadyNotifier) -> JoinHandle<()> + Send + Sync,
>;

/// A role beside the proxy inside pingora's server (the in-process app, the monitor).
/// pingora starts it (after it daemonizes) as a background service on a work-stealing
/// runtime of its own, as the role has when it runs alone: pingora runs a background service
/// on one thread, and the proxy's per-thread runtimes keep every task on the thread that
/// spawned it. [`SideHandle::stop`] stops it once pingora has stopped the proxy, so no
/// proxied request, not even one accepted just before a SIGQUIT whose head is still on its
/// way, can find the app gone.
struct SideRole {
    name: &'static str,
    launch: Launch,
    running: Running,
    stop: watch::Receiver<bool>,
}

/// Stops a side role.
struct SideHandle {
    name: &'static str,
    running: Running,
    stop: watch::Sender<bool>,
}

impl SideRole {
    fn new(name: &'static str, launch: Launch) -> (Self, SideHandle) {
        let running = Running::default();
        let (stop_tx, stop_rx) = watch::channel(false);
        let role = SideRole {
            name,
            launch,
            running: running.clone(),
            stop: stop_rx,
        };
        let handle = SideHandle {
            name,
            running,
            stop: stop_tx,
        };
        (role, handle)
    }

    /// The monitor on `monitor.listen`; exits the process when it cannot start.
    fn monitor(settings: &Settings) -> (Self, SideHandle) {
        let settings = settings.clone();
        let launch: Launch = Box::new(move |runtime, mut stop, ready| {
            let settings = settings.clone();
            runtime.spawn(async move {
                ready.notify_ready();
                let stopped = async move {
                    let _ = stop.wait_for(|stop| *stop).await;
                };
                if let Err(e) = run_monitor(&settings, stopped).await {
                    tracing::error!(error = format!("{e:#}"), "monitor role failed");
                    std::process::exit(1);
                }
            })
        });
        SideRole::new("monitor", launch)
    }
}

impl SideHandle {
    /// Lets in-flight requests finish, closes the role's pools and stops its runtime. Call
    /// it outside any async runtime.
    fn stop(self) {
        let _ = self.stop.send(true);
        let running = self.running.lock().map(|mut r| r.take());
        if let Ok(Some((runtime, task))) = running {
            if let Err(e) = runtime.block_on(task) {
                tracing::error!(error = %e, role = self.name, "role stopped abnormally");
            }
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

#[async_trait]
impl BackgroundService for SideRole {
    /// Ready (so the proxy starts accepting) once the role accepts connections.
    async fn start_with_ready_notifier(
        &self,
        _shutdown: ShutdownWatch,
        ready: ServiceReadyNotifier,
    ) {
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name(format!("fastpick-{}", self.name))
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => {
                tracing::error!(error = %e, role = self.name, "failed to start the role's runtime");
                std::process::exit(1);
            }
        };
        let task = (self.launch)(&runtime, self.stop.clone(), ready);
        if let Ok(mut running) = self.running.lock() {
            *running = Some((runtime, task));
        }
    }
}
