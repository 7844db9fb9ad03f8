//! The monitor role against real servers: a fixture exposition server of the tests' own,
//! the real Prometheus side by side (differential), PostgreSQL and Redis for the built-in
//! collectors, SIGKILL and restart for the store, remote write into Prometheus, and the
//! dashboard in a real browser.

mod collectors;
mod crash;
mod dashboard;
mod differential;
mod endpoints;
mod fixture;
mod remote_write;

use std::time::Duration;

use fastpick::config::{ScrapeJob, Settings};
use serde_json::Value;

/// A monitor served in this process on a free port, with its own data directory.
pub struct TestMonitor {
    pub base: String,
    pub client: reqwest::Client,
    pub dir: std::path::PathBuf,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// A scrape job of one target every `interval`.
pub fn job(name: &str, target: &str, path: &str, interval: Duration) -> ScrapeJob {
    ScrapeJob {
        name: name.into(),
        targets: vec![target.into()],
        metrics_path: path.into(),
        scheme: "http".into(),
        interval: Some(interval),
        timeout: Some(interval),
        labels: Default::default(),
    }
}

/// Settings for a monitor on loopback with a fresh data directory and the given jobs.
pub fn monitor_settings(jobs: Vec<ScrapeJob>) -> Settings {
    let mut s = Settings::default();
    s.monitor.listen = "127.0.0.1:0".parse().expect("addr");
    s.monitor.data_dir = fresh_dir("monitor");
    s.monitor.jobs = jobs;
    s.monitor.flush_interval = Duration::from_secs(1);
    // The tests count series and samples of their own targets only.
    s.monitor.self_scrape = false;
    s
}

/// A new empty directory under the temp dir.
pub fn fresh_dir(kind: &str) -> std::path::PathBuf {
    use rand::Rng;
    let dir = std::env::temp_dir().join(format!(
        "fastpick-test-{kind}-{:016x}",
        rand::rng().random::<u64>()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

impl TestMonitor {
    /// Starts a monitor with these settings and waits until it answers.
    pub async fn start(settings: Settings) -> TestMonitor {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let dir = settings.monitor.data_dir.clone();
        let server = tokio::spawn(async move {
            fastpick::monitor::serve(&settings, listener, async {
                let _ = rx.await;
            })
            .await
        });
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        let monitor = TestMonitor {
            base,
            client,
            dir,
            shutdown: Some(tx),
            server: Some(server),
        };
        monitor.wait_ready().await;
        monitor
    }

    async fn wait_ready(&self) {
        let url = format!("{}/-/ready", self.base);
        for _ in 0..600 {
            if let Ok(r) = self.client.get(&url).send().await
                && r.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("monitor at {} never became ready", self.base);
    }

    /// GETs an API path and returns (status, JSON body).
    pub async fn get(&self, path_and_query: &str) -> (u16, Value) {
        get_json(&self.client, &format!("{}{path_and_query}", self.base)).await
    }

    /// Stops the monitor (flushing its store) and returns its data directory.
    pub async fn stop(mut self) -> std::path::PathBuf {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("monitor task").expect("monitor ran");
        }
        self.dir.clone()
    }
}

impl Drop for TestMonitor {
    /// Stopped or not (a failed assert), the monitor goes and its directory with it.
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// GETs a URL and returns (status, JSON body or Null).
pub async fn get_json(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let response = client.get(url).send().await.expect("request sent");
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// Percent-encodes a query parameter value.
pub fn enc(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
