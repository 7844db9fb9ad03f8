//! `fastpick user create`: makes a user (or the first admin) from the command line.

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, bail};
use secrecy::{ExposeSecret, SecretString};

use crate::app::validate::is_email;
use crate::cli::{UserCommand, UserCreateArgs};
use crate::config::Settings;
use crate::password;

/// Runs a `user` subcommand.
pub async fn run(settings: &Settings, command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Create(args) => create(settings, args).await,
    }
}

/// Reads the password without echoing it: a prompt on a terminal, else stdin's first line.
fn read_password(from_stdin: bool) -> anyhow::Result<SecretString> {
    let stdin = std::io::stdin();
    let text = if from_stdin || !stdin.is_terminal() {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .context("failed to read the password from stdin")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        let first =
            rpassword::prompt_password("password: ").context("failed to read the password")?;
        let again = rpassword::prompt_password("again: ").context("failed to read the password")?;
        if first != again {
            bail!("the two passwords differ");
        }
        first
    };
    Ok(SecretString::from(text))
}

async fn create(settings: &Settings, args: UserCreateArgs) -> anyhow::Result<()> {
    if !is_email(&args.email) || args.email.chars().count() > 100 {
        bail!(
            "--email '{}' is not a valid e-mail address of at most 100 characters",
            args.email
        );
    }
    if args.name.trim().is_empty() || args.name.chars().count() > 50 {
        bail!("--name must have 1 to 50 characters");
    }
    let secret = read_password(args.password_stdin)?;
    let plain = secret.expose_secret();
    if plain.chars().count() < 8 || plain.len() > password::MAX_PASSWORD_BYTES {
        bail!("the password must have at least 8 characters and at most 72 bytes");
    }
    let hash = password::hash(plain.to_owned(), settings.auth.bcrypt_cost).await?;
    let pool = crate::db::connect_postgres(&settings.database).await?;
    let role = if args.admin { "ADMIN" } else { "USER" };
    let now = crate::domain::Clock::new(settings.app.timezone).now();
    let id: Option<i64> = sqlx::query_scalar(
        "insert into tb_user (created_at, updated_at, email, password, name, role)
         values ($1, $1, $2, $3, $4, $5) on conflict do nothing returning id",
    )
    .bind(now)
    .bind(&args.email)
    .bind(&hash)
    .bind(&args.name)
    .bind(role)
    .fetch_optional(&pool)
    .await
    .context("failed to insert the user (has `fastpick migrate` run?)")?;
    pool.close().await;
    match id {
        Some(id) => {
            println!("created {role} user {} (id {id})", args.email);
            Ok(())
        }
        None => bail!("a user with e-mail {} already exists", args.email),
    }
}
