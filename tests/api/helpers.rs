//! The test harness: one real PostgreSQL per test binary (a fresh database per test), one real
//! Redis per test, and the app served on a free loopback port.

use std::time::Duration;

use chrono::NaiveDateTime;
use fastpick::config::Settings;
use fastpick::domain::Clock;
use fastpick::local::{self, Supervised};
use fastpick::token::{Claims, TokenKeys};
use rand::Rng;
use reqwest::{Client, Method, Response};
use secrecy::SecretString;
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::OnceCell;

pub const SECRET: &str = "integration-test-secret-that-is-long-enough-0123";

static POSTGRES: OnceCell<Supervised> = OnceCell::const_new();

/// Where `promtool` is (Debian's prometheus package).
const PROMTOOL: &str = "/usr/bin/promtool";

/// Fetches a metrics endpoint with an optional `Accept`: (content type, body).
pub async fn scrape(client: &Client, url: &str, accept_opt: Option<&str>) -> (String, String) {
    let mut req = client.get(url);
    if let Some(accept) = accept_opt {
        req = req.header("accept", accept);
    }
    let resp = req.send().await.expect("scrape sent");
    assert_eq!(resp.status(), 200, "scrape of {url}");
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (content_type, resp.text().await.expect("scrape body"))
}

/// Runs `promtool check metrics` on Prometheus text; `Err` holds its report (parse errors
/// and lint problems) with the text it was given.
pub fn promtool_check(text: &str) -> Result<(), String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(PROMTOOL)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{PROMTOOL} must be installed (prometheus package): {e}"));
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(text.as_bytes()).expect("text written");
    drop(stdin);
    let out = child.wait_with_output().expect("promtool ran");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && report.trim().is_empty() {
        Ok(())
    } else {
        Err(format!("promtool ({}):\n{report}\non:\n{text}", out.status))
    }
}

/// Returns the shared PostgreSQL server, starting it on first use.
pub async fn postgres() -> &'static Supervised {
    POSTGRES
        .get_or_init(|| async {
            tokio::task::spawn_blocking(local::start_postgres)
                .await
                .expect("postgres start task")
                .expect("postgres starts")
        })
        .await
}

/// A running app with its own database and Redis.
pub struct TestApp {
    pub base: String,
    pub db: PgPool,
    pub client: Client,
    pub tokens: TokenKeys,
    pub clock: Clock,
    pub redis: Option<Supervised>,
    pub db_port: u16,
    pub db_name: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// Settings pointing at a database and a Redis on loopback, with a fast bcrypt cost.
pub fn test_settings(pg_port: u16, db_name: &str, redis_port: u16) -> Settings {
    let mut s = Settings::default();
    s.app.listen = "127.0.0.1:0".parse().expect("addr");
    s.database.host = "127.0.0.1".into();
    s.database.port = pg_port;
    s.database.name = db_name.into();
    s.database.username = "postgres".into();
    s.database.max_connections = 30;
    s.redis.host = "127.0.0.1".into();
    s.redis.port = redis_port;
    s.auth.secret_key = Some(SecretString::from(SECRET.to_owned()));
    s.auth.bcrypt_cost = 4;
    s
}

/// Makes a fresh, empty database on the shared server and returns its name.
pub async fn fresh_database() -> (u16, String) {
    let pg = postgres().await;
    let name = format!("t_{:016x}", rand::rng().random::<u64>());
    local::create_database(pg.port, &name)
        .await
        .expect("create database");
    (pg.port, name)
}

/// Starts a PostgreSQL server of the test's own (to stop or restart it) with a database
/// "own", and a Redis; returns both servers and settings pointing at them.
pub async fn own_servers() -> (Supervised, Supervised, Settings) {
    let pg = tokio::task::spawn_blocking(local::start_postgres)
        .await
        .expect("postgres start task")
        .expect("postgres starts");
    local::create_database(pg.port, "own")
        .await
        .expect("create database");
    let redis = tokio::task::spawn_blocking(local::start_redis)
        .await
        .expect("redis start task")
        .expect("redis starts");
    let settings = test_settings(pg.port, "own", redis.port);
    (pg, redis, settings)
}

/// Starts an app on a fresh database and its own Redis.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts an app on a fresh database and its own Redis, with settings changed by `configure`.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let (pg_port, name) = fresh_database().await;
    let redis = tokio::task::spawn_blocking(local::start_redis)
        .await
        .expect("redis start task")
        .expect("redis starts");
    let mut settings = test_settings(pg_port, &name, redis.port);
    configure(&mut settings);
    spawn_with(settings, Some(redis)).await
}

/// Starts an app with the given settings.
pub async fn spawn_with(settings: Settings, redis: Option<Supervised>) -> TestApp {
    let state = fastpick::app::build_state(&settings)
        .await
        .expect("app state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let db = state.db.clone();
    let serve_settings = settings.clone();
    let server = tokio::spawn(async move {
        fastpick::app::serve(&serve_settings, state, listener, async {
            let _ = rx.await;
        })
        .await
    });
    let secret = SecretString::from(SECRET.to_owned());
    TestApp {
        base,
        db,
        client: Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client"),
        tokens: TokenKeys::new(
            &secret,
            settings.auth.access_token_ttl,
            settings.auth.refresh_token_ttl,
        ),
        clock: Clock::new(settings.app.timezone),
        redis,
        db_port: settings.database.port,
        db_name: settings.database.name.clone(),
        shutdown: Some(tx),
        server: Some(server),
    }
}

/// A response read whole: status and JSON body (Null when not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    async fn read(resp: Response) -> Reply {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
        }
    }

    /// The error code, for error envelopes.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    /// Asserts an error envelope with this status and code, and returns its errors list.
    pub fn assert_error(&self, status: u16, code: &str) -> Vec<Value> {
        assert_eq!(self.status, status, "status of {:?}", self.body);
        assert_eq!(self.code(), code, "code of {:?}", self.body);
        assert_eq!(
            self.body["status"], status,
            "envelope status of {:?}",
            self.body
        );
        assert!(
            self.body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "message of {:?}",
            self.body
        );
        self.body["errors"]
            .as_array()
            .cloned()
            .expect("errors array")
    }

    /// Asserts the success envelope and returns `data`.
    pub fn data(&self) -> &Value {
        assert_eq!(self.status, 200, "status of {:?}", self.body);
        assert_eq!(self.body["code"], "S000");
        assert_eq!(self.body["message"], "Success");
        &self.body["data"]
    }
}

impl TestApp {
    /// Sends a request with an optional bearer token and optional JSON body.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        json: Option<&Value>,
    ) -> Reply {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(j) = json {
            req = req.json(j);
        }
        Reply::read(req.send().await.expect("request sent")).await
    }

    /// Sends a raw body with a content type.
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: &str,
    ) -> Reply {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body.to_owned());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        Reply::read(req.send().await.expect("request sent")).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.send(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, json: Value) -> Reply {
        self.send(Method::POST, path, token, Some(&json)).await
    }

    /// Inserts a user directly and returns (id, access token).
    pub async fn user(&self, email: &str, role: &str) -> (i64, String) {
        let hash = fastpick::password::hash_blocking("password123", 4).expect("hash");
        let id: i64 = sqlx::query_scalar(
            "insert into tb_user (created_at, updated_at, email, password, name, role)
             values (now(), now(), $1, $2, 'tester', $3) returning id",
        )
        .bind(email)
        .bind(hash)
        .bind(role)
        .fetch_one(&self.db)
        .await
        .expect("insert user");
        let pair = self.tokens.issue_pair(id, email, role).expect("tokens");
        (id, pair.access)
    }

    /// Inserts `n` users (one statement, one shared hash) and returns their access tokens.
    pub async fn users(&self, n: usize) -> Vec<String> {
        self.users_named("racer", n).await
    }

    /// Inserts `n` users named `<prefix><i>@test.kr` and returns their access tokens.
    pub async fn users_named(&self, prefix: &str, n: usize) -> Vec<String> {
        let hash = fastpick::password::hash_blocking("password123", 4).expect("hash");
        let emails: Vec<String> = (0..n).map(|i| format!("{prefix}{i}@test.kr")).collect();
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "insert into tb_user (created_at, updated_at, email, password, name, role)
             select now(), now(), e, $2, 'racer', 'USER' from unnest($1::text[]) as e
             returning id, email",
        )
        .bind(&emails)
        .bind(&hash)
        .fetch_all(&self.db)
        .await
        .expect("insert users");
        rows.iter()
            .map(|(id, e)| {
                self.tokens
                    .issue_pair(*id, e, "USER")
                    .expect("tokens")
                    .access
            })
            .collect()
    }

    /// Writes a users.csv for the load tool and returns its path.
    pub fn users_csv(&self, tokens: &[String]) -> std::path::PathBuf {
        let path =
            std::env::temp_dir().join(format!("fastpick-users-{}.csv", rand::random::<u64>()));
        let body: String = tokens.iter().map(|t| format!("u@x,pw,{t},{t}\n")).collect();
        std::fs::write(&path, format!("email,password,accessToken,token\n{body}")).expect("csv");
        path
    }

    /// The app's /actuator/prometheus text.
    pub async fn metrics_text(&self) -> String {
        self.scrape(None).await.1
    }

    /// Fetches /actuator/prometheus with an optional `Accept`: (content type, body).
    pub async fn scrape(&self, accept_opt: Option<&str>) -> (String, String) {
        scrape(
            &self.client,
            &format!("{}/actuator/prometheus", self.base),
            accept_opt,
        )
        .await
    }

    /// The app's "now".
    pub fn now(&self) -> NaiveDateTime {
        self.clock.now()
    }

    /// Inserts a coupon directly (with keywords from brand and title) and returns its id.
    pub async fn coupon(&self, c: CouponSpec<'_>) -> i64 {
        let now = self.now();
        let id: i64 = sqlx::query_scalar(
            "insert into tb_coupon (created_at, updated_at, brand, title, summary, description, total_quantity,
                 issued_quantity, limit_per_user, is_sold_out, start_at, end_at, use_status)
             values ($1, $1, $2, $3, 'summary', 'description', $4, $5, 1, false, $6, $7, $8) returning id",
        )
        .bind(now)
        .bind(c.brand)
        .bind(c.title)
        .bind(c.total)
        .bind(c.issued)
        .bind(now + chrono::Duration::hours(c.start_h))
        .bind(now + chrono::Duration::hours(c.end_h))
        .bind(c.use_status)
        .fetch_one(&self.db)
        .await
        .expect("insert coupon");
        let keywords = fastpick::domain::extract_keywords(c.brand, c.title);
        sqlx::query("insert into tb_coupon_keyword (created_at, coupon_id, keyword) select now(), $1, unnest($2::text[])")
            .bind(id)
            .bind(&keywords)
            .execute(&self.db)
            .await
            .expect("insert keywords");
        id
    }

    /// Starts Redis again on its old port (empty) and waits until the app's health check
    /// sees it.
    pub async fn restart_redis_on(&mut self, port: u16) {
        self.redis = Some(
            tokio::task::spawn_blocking(move || local::start_redis_on(port))
                .await
                .expect("task")
                .expect("redis back"),
        );
        let start = std::time::Instant::now();
        while self.get("/actuator/health/redis", None).await.status != 200 {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "redis client did not reconnect"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Signs arbitrary claims with the app's secret (for expired or odd tokens).
    pub fn sign(&self, claims: &Claims) -> String {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            claims,
            &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .expect("sign")
    }

    /// Stops the server gracefully and returns what serve() returned.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.server.take() {
            Some(handle) => handle.await.expect("server task"),
            None => Ok(()),
        }
    }
}

/// The ids of a page's content, in order.
pub fn ids(page: &Value) -> Vec<i64> {
    page["content"]
        .as_array()
        .expect("content")
        .iter()
        .map(|c| c["id"].as_i64().expect("id"))
        .collect()
}

/// A coupon to insert; hours are relative to now.
#[derive(Debug, Clone, Copy)]
pub struct CouponSpec<'a> {
    pub brand: &'a str,
    pub title: &'a str,
    pub total: i32,
    pub issued: i32,
    pub start_h: i64,
    pub end_h: i64,
    pub use_status: &'a str,
}

impl Default for CouponSpec<'_> {
    fn default() -> Self {
        CouponSpec {
            brand: "NIKE",
            title: "[단독] NIKE 스니커즈",
            total: 100,
            issued: 0,
            start_h: -1,
            end_h: 24,
            use_status: "AVAILABLE",
        }
    }
}

/// `fastpick --role proxy+app`, VM1's process, on the test app's database and Redis, killed
/// when dropped.
pub struct Vm1 {
    child: std::process::Child,
    pub base: String,
    /// Where its log (stderr) goes when started by [`start_vm1_logged`].
    pub log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Vm1 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts VM1's process with extra `[proxy]` and `[auth]` settings (TOML lines) and waits
/// until the proxy answers the API through the in-process app. Its access log is off.
pub async fn start_vm1(app: &TestApp, proxy_toml: &str, auth_toml: &str) -> Vm1 {
    launch_vm1(app, proxy_toml, auth_toml, None).await
}

/// The same with the access log on in `format` (`combined` or `json`), in JSON log lines
/// written to `Vm1::log` with the other warnings.
pub async fn start_vm1_logged(app: &TestApp, proxy_toml: &str, format: &str) -> Vm1 {
    launch_vm1(app, proxy_toml, "", Some(format)).await
}

async fn launch_vm1(
    app: &TestApp,
    proxy_toml: &str,
    auth_toml: &str,
    access_log: Option<&str>,
) -> Vm1 {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = fastpick::local::free_port().expect("port");
    let redis = app.redis.as_ref().expect("the app's own redis").port;
    let config = dir.path().join("fastpick.toml");
    let log_path = dir.path().join("fastpick.log");
    let (access, log, stderr) = match access_log {
        None => ("off", "level = \"warn\"\n", std::process::Stdio::inherit()),
        Some(format) => (
            format,
            "format = \"json\"\nlevel = \"warn,fastpick::access=info\"\n",
            std::fs::File::create(&log_path).expect("log file").into(),
        ),
    };
    std::fs::write(
        &config,
        format!(
            "[proxy]\nlisten = \"127.0.0.1:{port}\"\naccess_log = \"{access}\"\nthreads = 1\n{proxy_toml}\
             [database]\nhost = \"127.0.0.1\"\nport = {}\nname = \"{}\"\nusername = \"postgres\"\n\
             [redis]\nhost = \"127.0.0.1\"\nport = {redis}\n\
             [auth]\nbcrypt_cost = 4\n{auth_toml}[log]\n{log}",
            app.db_port, app.db_name
        ),
    )
    .expect("config");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_fastpick"));
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("FASTPICK_") || k == "RUST_LOG")
    {
        cmd.env_remove(key);
    }
    let child = cmd
        .args(["--role", "proxy+app", "--config"])
        .arg(&config)
        .env("FASTPICK_AUTH__SECRET_KEY", SECRET)
        .env("RUNTIME_DIRECTORY", dir.path())
        .stdin(std::process::Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("fastpick starts");
    let vm1 = Vm1 {
        child,
        base: format!("http://127.0.0.1:{port}"),
        log: log_path,
        _dir: dir,
    };
    let started = std::time::Instant::now();
    while reqwest::get(format!("{}/api/v1/coupons", vm1.base))
        .await
        .map_or(true, |r| r.status() != 200)
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "proxy+app did not serve within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    vm1
}
