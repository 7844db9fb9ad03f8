//! What the benchmarks share: the release binary started as a child process on loopback.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::bail;

/// A running `fastpick --role app`, stopped with SIGTERM when dropped.
pub struct App(Child);

impl Drop for App {
    fn drop(&mut self) {
        // SAFETY: signals our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

/// The secret the benchmarks sign tokens with.
pub const SECRET: &str = "benchmark-secret-that-is-long-enough-for-hs256";

/// Starts the app on `port` against database `bench` on the given servers, with extra
/// environment settings, and waits until it accepts connections.
pub fn start_app(pg: u16, redis: u16, port: u16, env: &[(&str, String)]) -> anyhow::Result<App> {
    let child = Command::new(env!("CARGO_BIN_EXE_fastpick"))
        .args(["--role", "app"])
        .env("DB_HOST", "127.0.0.1")
        .env("DB_PORT", pg.to_string())
        .env("DB_NAME", "bench")
        .env("DB_USERNAME", "postgres")
        .env("REDIS_PORT", redis.to_string())
        .env("SECRET_KEY", SECRET)
        .env("FASTPICK_APP__LISTEN", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .spawn()?;
    let app = App(child);
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if start.elapsed() > Duration::from_secs(60) {
            bail!("app did not start");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(app)
}
