//! FastPick: the flash-sale coupon service and the lab around it, in one binary.

pub mod alloc; // the global allocator: mimalloc, plain calls where the layout allows
pub mod app; // the coupon API (app role)
pub mod cli; // command-line arguments
pub mod cmd; // one-shot tools: migrate, user, demo
pub mod config; // typed, layered settings
pub mod db; // PostgreSQL and Redis pools, migrations
pub mod domain; // pure coupon rules: status, keywords, clock
pub mod envelope; // the wire envelopes and the code table every role answers in
pub mod head_guard; // request-head size, deadline and envelope rejections on every client connection
pub mod lab; // one command per experiment: race every strategy, search cache off/on, one table
pub mod load; // the load tool: the k6 scenarios, HDR histograms, thresholds
pub mod local; // local PostgreSQL and Redis servers for the demo and the tests
pub mod metrics; // Prometheus metrics every role shares: registry, buckets, process gauges, exposition
pub mod monitor; // the monitor role: scrape, store, PromQL, the Prometheus HTTP API
pub mod password; // bcrypt hashing off the runtime
pub mod proxy; // the proxy role on pingora: nginx's job
pub mod role; // the roles a process can run
pub mod seed; // data at scale: coupons by the original recipe, load-test users
pub mod server; // puts roles into a process: listeners, signals, pingora, the in-process app
pub mod telemetry; // tracing subscriber
pub mod token; // JWT access and refresh tokens
pub mod web; // embedded web UIs served with ETag, 304, precompressed bodies and hashed-name caching

use anyhow::{Context, bail};

use crate::cli::{Cli, Command};
use crate::config::Settings;

/// Runs what the command line asks for: roles (through [`server::run`]) or a tool.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(cli.config.as_deref())?;
    let config_given = cli.config.is_some();
    telemetry::init(&settings.log);
    let process = server::Process {
        upgrade: cli.upgrade,
        daemon: cli.daemon,
    };
    let command = match (cli.command, cli.role) {
        (None, Some(roles)) => return server::run(settings, &roles, process),
        (None, None) => bail!("nothing to do: pass --role or a subcommand (see --help)"),
        (Some(command), _) => command,
    };
    if cli.upgrade || cli.daemon {
        bail!("--upgrade and --daemon are for the proxy role (pingora's upgrade and daemon mode)");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    match command {
        Command::Migrate => runtime.block_on(cmd::migrate(&settings)),
        Command::User(user) => runtime.block_on(cmd::user::run(&settings, user)),
        Command::Demo(args) => runtime.block_on(cmd::demo::run(settings, args, config_given)),
        Command::Seed(seed) => runtime.block_on(seed::run(&settings, seed)),
        Command::Load(args) => runtime.block_on(load::run(args)),
        Command::Lab(args) => runtime.block_on(lab::run(args)),
    }
}
