//! The command line: `--role` to run servers, or one of the tool subcommands.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::role::RoleSet;

/// FastPick: flash-sale coupon service with its proxy, monitoring and load lab in one binary.
#[derive(Debug, Parser)]
#[command(name = "fastpick", version, subcommand_negates_reqs = true)]
pub struct Cli {
    /// Roles to run in this process: proxy, app, monitor, a '+'-joined set (proxy+app), or all.
    #[arg(long, required = true, value_name = "ROLES")]
    pub role: Option<RoleSet>,

    /// TOML config file (see config/); environment variables override it.
    #[arg(
        long,
        short = 'c',
        global = true,
        env = "FASTPICK_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,

    /// Proxy role: take the listening socket over from the running fastpick, then send that one
    /// SIGQUIT (a zero-downtime upgrade; see systemd/fastpick-proxy@.service).
    #[arg(long, requires = "role")]
    pub upgrade: bool,

    /// Proxy role: run in the background once started, with a pid file (systemd Type=forking).
    #[arg(long, requires = "role")]
    pub daemon: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Tools that run once and exit.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Applies the embedded database migrations and exits.
    Migrate,
    /// Manages users.
    #[command(subcommand)]
    User(UserCommand),
    /// Runs the app with demo data, starting local PostgreSQL and Redis when none is configured.
    Demo(DemoArgs),
    /// Loads data at the original's scale: coupons by its recipe, load-test users.
    #[command(subcommand)]
    Seed(SeedCommand),
    /// Drives load at a running FastPick (or the original): the two k6 scenarios.
    Load(crate::load::LoadArgs),
    /// One command per experiment of the lab: races every issue strategy, or searches with
    /// the cache off and on, against a running deployment, and prints one table.
    Lab(crate::lab::LabArgs),
}

/// `fastpick seed ...`
#[derive(Debug, Subcommand)]
pub enum SeedCommand {
    /// Inserts coupons made by the original recipe, with their keyword rows.
    Coupons(SeedCouponsArgs),
    /// Inserts load-test users and writes users.csv (e-mail, password, token).
    Users(SeedUsersArgs),
}

/// How `seed coupons` loads rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SeedVia {
    /// COPY ... FROM STDIN (fast).
    Copy,
    /// Multi-row INSERT statements of 1,000 coupons (for comparison).
    Insert,
}

/// `fastpick seed coupons`
#[derive(Debug, Clone, Args)]
pub struct SeedCouponsArgs {
    /// How many coupons.
    #[arg(long, default_value_t = 1_000_000)]
    pub count: u32,
    /// Adds to coupons already there.
    #[arg(long, conflicts_with = "reset")]
    pub append: bool,
    /// Removes every coupon (and its keywords and issued coupons) first.
    #[arg(long)]
    pub reset: bool,
    /// Loading method.
    #[arg(long, value_enum, default_value_t = SeedVia::Copy)]
    pub via: SeedVia,
}

/// `fastpick seed users`
#[derive(Debug, Clone, Args)]
pub struct SeedUsersArgs {
    /// How many users.
    #[arg(long, default_value_t = 1000)]
    pub count: u32,
    /// Where to write the CSV (mode 0600: it holds passwords and tokens).
    #[arg(long, default_value = "users.csv")]
    pub out: PathBuf,
    /// E-mails are <prefix><n>@load.fastpick.test.
    #[arg(long, default_value = "loadtest")]
    pub prefix: String,
    /// Replaces earlier users with the same prefix (and their issued coupons).
    #[arg(long)]
    pub reset: bool,
    /// Lifetime of the tokens in the CSV (the app's own logins stay at auth.access_token_ttl).
    #[arg(long, default_value = "12h", value_parser = humantime::parse_duration)]
    pub token_ttl: std::time::Duration,
}

/// `fastpick user ...`
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Creates a user; the password is prompted for (or read from stdin), never taken as a flag.
    Create(UserCreateArgs),
}

/// `fastpick user create`
#[derive(Debug, Args)]
pub struct UserCreateArgs {
    /// Login e-mail address.
    #[arg(long)]
    pub email: String,
    /// Display name.
    #[arg(long)]
    pub name: String,
    /// Gives the user the ADMIN role (needed for /api/v1/admin/**).
    #[arg(long)]
    pub admin: bool,
    /// Reads the password from the first line of stdin instead of prompting.
    #[arg(long)]
    pub password_stdin: bool,
}

/// `fastpick demo`
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Coupons to create (with the original seed recipe).
    #[arg(long, default_value_t = 2000)]
    pub coupons: u32,
    /// Where the API listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// Where the monitor listens (Prometheus's port): it scrapes the API and collects
    /// PostgreSQL and Redis every second, keeping its data in a temp dir.
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub monitor_listen: std::net::SocketAddr,
    /// Runs the API alone, without the monitor.
    #[arg(long)]
    pub no_monitor: bool,
}
