//! The binary itself: roles, config errors, migrate, user create, graceful shutdown.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{SECRET, fresh_database};

const LEGACY: [&str; 9] = [
    "DB_HOST",
    "DB_PORT",
    "DB_NAME",
    "DB_USERNAME",
    "DB_PASSWORD",
    "REDIS_HOST",
    "REDIS_PORT",
    "REDIS_PASSWORD",
    "SECRET_KEY",
];

/// The binary with a clean configuration environment.
fn fastpick() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fastpick"));
    for key in LEGACY {
        cmd.env_remove(key);
    }
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("FASTPICK_")) {
        cmd.env_remove(key);
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// Points the binary at a database through the original's .env names.
fn with_db(cmd: &mut Command, pg_port: u16, db: &str) {
    cmd.env("DB_HOST", "127.0.0.1")
        .env("DB_PORT", pg_port.to_string())
        .env("DB_NAME", db)
        .env("DB_USERNAME", "postgres");
}

#[test]
fn bad_roles_and_flags_refuse_to_start_with_a_clear_message() {
    let out = fastpick().args(["--role", "nginx"]).output().expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown role"));
    let out = fastpick().output().expect("runs");
    assert!(
        !out.status.success(),
        "no role and no subcommand is an error"
    );
    // pingora's upgrade and daemon mode belong to the proxy role.
    for flag in ["--upgrade", "--daemon"] {
        let out = fastpick()
            .args(["--role", "app", flag])
            .output()
            .expect("runs");
        assert!(!out.status.success(), "app {flag} must not start");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("for the proxy role"),
            "{flag}"
        );
    }
}

#[test]
fn missing_or_bad_config_names_the_key() {
    let out = fastpick().args(["--role", "app"]).output().expect("runs");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("auth.secret_key"),
        "{out:?}"
    );
    let out = fastpick()
        .args(["--role", "app"])
        .env("SECRET_KEY", SECRET)
        .env("FASTPICK_DATABASE__PORT", "eighty")
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.to_lowercase().contains("database.port"),
        "{err}"
    );
    let out = fastpick()
        .args(["--role", "app", "--config", "/nonexistent.toml"])
        .output()
        .expect("runs");
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.toml"));
}

#[test]
fn shipped_config_files_parse() {
    for file in [
        "config/fastpick.toml",
        "config/local.toml",
        "config/production.toml",
        "config/monitor.toml",
    ] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        let settings = fastpick::config::Settings::load(Some(&path))
            .unwrap_or_else(|e| panic!("{file}: {e:#}"));
        assert_eq!(settings.app.listen.port(), 8080, "{file}");
    }
}

/// Runs `user create` for root@test.kr with extra flags, the password on stdin.
fn user_create(pg_port: u16, db: &str, extra: &[&str], password: &str) -> std::process::Output {
    let mut cmd = fastpick();
    with_db(&mut cmd, pg_port, db);
    let mut child = cmd
        .args([
            "user",
            "create",
            "--email",
            "root@test.kr",
            "--name",
            "root",
            "--password-stdin",
        ])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawns");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(format!("{password}\n").as_bytes())
        .expect("write");
    drop(stdin);
    child.wait_with_output().expect("waits")
}

#[tokio::test]
async fn migrate_then_user_create_makes_an_admin_without_echoing_the_password() {
    let (port, db) = fresh_database().await;
    let mut migrate = fastpick();
    with_db(&mut migrate, port, &db);
    let out = migrate.arg("migrate").output().expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = user_create(port, &db, &["--admin"], "correct-horse-battery");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{all}");
    assert!(
        !all.contains("correct-horse-battery"),
        "password echoed: {all}"
    );
    let url = format!("postgres://postgres@127.0.0.1:{port}/{db}");
    let pool = sqlx::PgPool::connect(&url).await.expect("connect");
    let (role, hash): (String, String) =
        sqlx::query_as("select role, password from tb_user where email = 'root@test.kr'")
            .fetch_one(&pool)
            .await
            .expect("user");
    assert_eq!(role, "ADMIN");
    assert!(bcrypt::verify("correct-horse-battery", &hash).expect("valid hash"));
    let out = user_create(port, &db, &[], "another-password");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
}

#[tokio::test]
async fn app_role_serves_until_sigterm_then_exits_cleanly() {
    let (port, db) = fresh_database().await;
    let redis = tokio::task::spawn_blocking(fastpick::local::start_redis)
        .await
        .expect("task")
        .expect("redis");
    let listen_port = fastpick::local::free_port().expect("port");
    let mut cmd = fastpick();
    with_db(&mut cmd, port, &db);
    let mut child = cmd
        .args(["--role", "app"])
        .env("SECRET_KEY", SECRET)
        .env("REDIS_PORT", redis.port.to_string())
        .env("FASTPICK_APP__LISTEN", format!("127.0.0.1:{listen_port}"))
        .env("FASTPICK_LOG__FORMAT", "json")
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawns");
    let client = reqwest::Client::new();
    let health = format!("http://127.0.0.1:{listen_port}/actuator/health");
    let start = Instant::now();
    let mut status = 0;
    while start.elapsed() < Duration::from_secs(30) {
        if let Ok(r) = client.get(&health).send().await {
            status = r.status().as_u16();
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, 200, "app did not become healthy");
    // SAFETY: kill only sends a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = tokio::task::spawn_blocking(move || {
        let mut stderr = child.stderr.take().expect("stderr");
        let status = child.wait().expect("waits");
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut text).ok();
        (status, text)
    })
    .await
    .expect("task");
    assert!(out.0.success(), "exit {:?}: {}", out.0, out.1);
    assert!(out.1.contains("app role stopped"), "{}", out.1);
    assert!(!out.1.contains(SECRET), "secret logged");
    assert!(
        out.1.lines().all(|l| l.trim_start().starts_with('{')),
        "JSON log lines expected: {}",
        out.1
    );
}

#[tokio::test]
async fn a_server_error_is_logged_once_with_its_cause() {
    let (pg, redis, settings) = crate::helpers::own_servers().await;
    let port = fastpick::local::free_port().expect("port");
    let mut app = fastpick()
        .args(["--role", "app"])
        .env("DB_HOST", "127.0.0.1")
        .env("DB_PORT", pg.port.to_string())
        .env("DB_NAME", &settings.database.name)
        .env("DB_USERNAME", "postgres")
        .env("REDIS_PORT", redis.port.to_string())
        .env("SECRET_KEY", SECRET)
        .env("FASTPICK_APP__LISTEN", format!("127.0.0.1:{port}"))
        .env("FASTPICK_DATABASE__ACQUIRE_TIMEOUT", "500ms")
        .env("FASTPICK_LOG__LEVEL", "info")
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("app starts");
    let base = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    while !reqwest::get(format!("{base}/actuator/health"))
        .await
        .is_ok_and(|r| r.status() == 200)
    {
        assert!(start.elapsed() < Duration::from_secs(30), "app not healthy");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::task::spawn_blocking(move || pg.stop())
        .await
        .expect("stopped");
    let failed = reqwest::get(format!("{base}/api/v1/coupons/1"))
        .await
        .expect("answered");
    assert_eq!(failed.status(), 503);
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(app.id() as i32, libc::SIGTERM) };
    let out = tokio::task::spawn_blocking(move || {
        let mut err = String::new();
        std::io::Read::read_to_string(app.stderr.as_mut().expect("stderr"), &mut err)
            .expect("read stderr");
        let _ = app.wait();
        err
    })
    .await
    .expect("log");
    let failures: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("request failed"))
        .collect();
    assert_eq!(failures.len(), 1, "one line per failed request:\n{out}");
    assert!(failures[0].contains("C010"), "{}", failures[0]);
    drop(redis);
}
