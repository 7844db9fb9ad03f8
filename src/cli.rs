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
}
