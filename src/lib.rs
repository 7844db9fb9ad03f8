//! FastPick: the flash-sale coupon service and the lab around it, in one binary.

pub mod app; // the coupon API (app role)
pub mod cli; // command-line arguments
pub mod cmd; // one-shot tools: migrate, user, demo
pub mod config; // typed, layered settings
pub mod db; // PostgreSQL and Redis pools, migrations
pub mod domain; // pure coupon rules: status, keywords, clock
pub mod load; // the load tool: the k6 scenarios, HDR histograms, thresholds
pub mod local; // local PostgreSQL and Redis servers for the demo and the tests
pub mod password; // bcrypt hashing off the runtime
pub mod procstat; // process CPU, memory and fds from /proc
pub mod proxy; // the proxy role on pingora: nginx's job
pub mod role; // the roles a process can run
pub mod seed; // data at scale: coupons by the original recipe, load-test users
pub mod telemetry; // tracing subscriber
pub mod token; // JWT access and refresh tokens

use anyhow::{Context, bail};

use crate::cli::{Cli, Command};
use crate::config::Settings;
use crate::role::{Role, RoleSet};

/// Runs what the command line asks for.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(cli.config.as_deref())?;
    let config_given = cli.config.is_some();
    telemetry::init(&settings.log);
    if cli.command.is_none()
        && let Some(roles) = cli.role.as_ref().filter(|r| r.contains(Role::Proxy))
    {
        // pingora runs its own runtimes (and the app inside them when asked).
        check_roles(&settings, roles)?;
        let process = proxy::Process {
            upgrade: cli.upgrade,
            daemon: cli.daemon,
        };
        return proxy::run(settings, roles, process);
    }
    if cli.upgrade || cli.daemon {
        bail!("--upgrade and --daemon are for the proxy role (pingora's upgrade and daemon mode)");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    match (cli.command, cli.role) {
        (Some(Command::Migrate), _) => runtime.block_on(cmd::migrate(&settings)),
        (Some(Command::User(user)), _) => runtime.block_on(cmd::user::run(&settings, user)),
        (Some(Command::Demo(args)), _) => {
            runtime.block_on(cmd::demo::run(settings, args, config_given))
        }
        (Some(Command::Seed(seed)), _) => runtime.block_on(seed::run(&settings, seed)),
        (Some(Command::Load(args)), _) => runtime.block_on(load::run(args)),
        (None, Some(roles)) => runtime.block_on(run_roles(settings, roles)),
        (None, None) => bail!("nothing to do: pass --role or a subcommand (see --help)"),
    }
}

/// Starts the given roles in this process and runs them until SIGTERM or SIGINT.
pub async fn run_roles(settings: Settings, roles: RoleSet) -> anyhow::Result<()> {
    check_roles(&settings, &roles)?;
    if roles.contains(Role::App) {
        let listener = bind(settings.app.listen)
            .with_context(|| format!("failed to bind app.listen {}", settings.app.listen))?;
        let state = app::build_state(&settings).await?;
        app::serve(&settings, state, listener, shutdown_signal()).await?;
    }
    Ok(())
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
