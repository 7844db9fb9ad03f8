//! `fastpick seed users`: load-test users in the real schema (bcrypt, hashed in parallel) and a
//! users.csv the original k6 script and `fastpick load race` read.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

use anyhow::{Context, bail};
use rand::Rng;
use rand::distr::Alphanumeric;

use crate::cli::SeedUsersArgs;
use crate::config::{MIN_SECRET_KEY_BYTES, Settings};
use crate::domain::Clock;
use crate::seed::progress;
use crate::token::TokenKeys;

/// The CSV header: k6's script reads `token` or `accessToken`.
pub const CSV_HEADER: &str = "email,password,accessToken,token";

/// One seeded user, with its plain password (for users.csv only).
struct SeedUser {
    id: i64,
    email: String,
    password: String,
    hash: String,
}

/// Runs `seed users`.
pub async fn run(settings: &Settings, args: SeedUsersArgs) -> anyhow::Result<()> {
    use secrecy::ExposeSecret;
    let secret = settings
        .auth
        .secret_key
        .as_ref()
        .filter(|k| k.expose_secret().len() >= MIN_SECRET_KEY_BYTES)
        .context("auth.secret_key (SECRET_KEY) of 32+ bytes is needed to sign the users' tokens: use the app's key")?;
    let tokens = TokenKeys::new(secret, args.token_ttl, args.token_ttl);
    let pool = crate::db::connect_postgres(&settings.database).await?;
    crate::db::run_migrations(&pool).await?;
    let emails: Vec<String> = (1..=args.count)
        .map(|i| format!("{}{i}@load.fastpick.test", args.prefix))
        .collect();
    let mut users = hash_all(emails, settings.auth.bcrypt_cost).await?;
    let now = Clock::new(settings.app.timezone).now();
    let mut tx = pool.begin().await?;
    let existing: i64 = sqlx::query_scalar(
        "select count(*) from tb_user where email like $1 || '%@load.fastpick.test'",
    )
    .bind(&args.prefix)
    .fetch_one(&mut *tx)
    .await?;
    if existing > 0 && !args.reset {
        bail!(
            "{existing} users named {}N@load.fastpick.test exist already: pass --reset to replace them",
            args.prefix
        );
    }
    if existing > 0 {
        for table in ["tb_issued_coupon", "tb_refresh_token"] {
            let sql = format!(
                "delete from {table} where user_id in (select id from tb_user where email like $1 || '%@load.fastpick.test')"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&args.prefix)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("delete from tb_user where email like $1 || '%@load.fastpick.test'")
            .bind(&args.prefix)
            .execute(&mut *tx)
            .await?;
        eprintln!("reset: removed {existing} earlier load-test users and their coupons");
    }
    let emails: Vec<&str> = users.iter().map(|u| u.email.as_str()).collect();
    let hashes: Vec<&str> = users.iter().map(|u| u.hash.as_str()).collect();
    let ids: Vec<(String, i64)> = sqlx::query_as(
        "insert into tb_user (created_at, updated_at, email, password, name, role)
         select $1, $1, e, h, split_part(e, '@', 1), 'USER' from unnest($2::text[], $3::text[]) as t(e, h)
         returning email, id",
    )
    .bind(now)
    .bind(&emails)
    .bind(&hashes)
    .fetch_all(&mut *tx)
    .await?;
    let ids: std::collections::HashMap<String, i64> = ids.into_iter().collect();
    for user in &mut users {
        user.id = ids
            .get(&user.email)
            .copied()
            .context("a seeded user has no id")?;
    }
    // Written beside the target first, renamed once the users are committed.
    let partial = args.out.with_extension("csv.partial");
    write_csv(&partial, &users, &tokens, args.token_ttl)?;
    tx.commit().await?;
    std::fs::rename(&partial, &args.out)
        .with_context(|| format!("failed to write {}", args.out.display()))?;
    println!(
        "seeded {} users; wrote {} (mode 0600, holds passwords and tokens valid for {})",
        users.len(),
        args.out.display(),
        humantime::format_duration(args.token_ttl)
    );
    Ok(())
}

/// Gives every user a random password and hashes them all on all cores, with a progress bar.
async fn hash_all(emails: Vec<String>, cost: u32) -> anyhow::Result<Vec<SeedUser>> {
    let plain: Vec<(String, String)> = emails
        .into_iter()
        .map(|e| {
            (
                e,
                rand::rng()
                    .sample_iter(&Alphanumeric)
                    .take(16)
                    .map(char::from)
                    .collect(),
            )
        })
        .collect();
    tokio::task::spawn_blocking(move || {
        let bar = progress(plain.len() as u64, "hashing");
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let chunk = plain.len().div_ceil(workers).max(1);
        let users: anyhow::Result<Vec<Vec<SeedUser>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = plain
                .chunks(chunk)
                .map(|part| {
                    let bar = bar.clone();
                    scope.spawn(move || {
                        part.iter()
                            .map(|(email, password)| {
                                let hash = crate::password::hash_blocking(password, cost)?;
                                bar.inc(1);
                                Ok(SeedUser {
                                    // Known once inserted.
                                    id: 0,
                                    email: email.clone(),
                                    password: password.clone(),
                                    hash,
                                })
                            })
                            .collect::<anyhow::Result<Vec<_>>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .map_err(|_| anyhow::anyhow!("hashing thread panicked"))?
                })
                .collect()
        });
        bar.finish_and_clear();
        Ok(users?.into_iter().flatten().collect())
    })
    .await?
}

/// Writes users.csv readable only by its owner.
fn write_csv(
    path: &std::path::Path,
    users: &[SeedUser],
    tokens: &TokenKeys,
    ttl: Duration,
) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("failed to write {}", path.display()))?;
    let mut out = String::with_capacity(users.len() * 400);
    out.push_str(CSV_HEADER);
    out.push('\n');
    for user in users {
        let token = tokens.access_token(user.id, &user.email, "USER", ttl)?;
        out.push_str(&format!(
            "{},{},{token},{token}\n",
            user.email, user.password
        ));
    }
    file.write_all(out.as_bytes())?;
    Ok(())
}
