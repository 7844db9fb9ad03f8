//! Typed, layered configuration: defaults, then the `--config` TOML file, then the original
//! `.env` names (DB_HOST, SECRET_KEY, ...), then `FASTPICK_SECTION__KEY` environment overrides.

use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};

use crate::role::{Role, RoleSet};

/// Everything the binary can be configured with; one section per concern.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub app: AppConfig,
    pub database: DatabaseConfig,
    pub redis: RedisConfig,
    pub auth: AuthConfig,
    pub issue: IssueConfig,
    pub search: SearchConfig,
    pub proxy: ProxyConfig,
    pub monitor: MonitorConfig,
    pub log: LogConfig,
}

/// The coupon API (app role).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AppConfig {
    /// Address the API listens on; the original served on port 8080.
    pub listen: SocketAddr,
    /// Runs the embedded migrations before serving.
    pub migrate_on_start: bool,
    /// Zone whose wall-clock time is "now" for coupon periods (the original ran in Asia/Seoul).
    #[serde(deserialize_with = "from_str")]
    pub timezone: chrono_tz::Tz,
    /// Origins allowed to call the API from a browser with credentials (exact match).
    pub cors_allowed_origins: Vec<String>,
    /// Seconds in-flight requests get to finish after SIGTERM.
    #[serde(deserialize_with = "duration")]
    pub shutdown_grace: Duration,
    /// Largest request line plus headers accepted (431 C014 above it); Tomcat's default.
    pub max_header_bytes: usize,
    /// Lets an ADMIN switch the issue strategy and the search cache at run time
    /// (`PUT /api/v1/admin/experiment`, for `fastpick lab`); off by default.
    pub experiment_switch: bool,
    /// Serves the storefront for every path outside `/api` and `/actuator`, as the proxy
    /// does, for running without the proxy (on in the demo); off by default.
    pub storefront: bool,
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            migrate_on_start: true,
            timezone: chrono_tz::Asia::Seoul,
            cors_allowed_origins: vec![
                "http://localhost:3000".into(),
                "http://192.168.56.111".into(),
            ],
            shutdown_grace: Duration::from_secs(20),
            max_header_bytes: 8 * 1024,
            experiment_switch: false,
            storefront: false,
        }
    }
}

/// PostgreSQL connection and pool.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    pub host: String,
    pub port: u16,
    pub name: String,
    pub username: String,
    #[serde(deserialize_with = "optional_secret")]
    pub password: Option<SecretString>,
    pub max_connections: u32,
    /// Connections kept open even when idle, so a burst does not wait for new ones.
    pub min_connections: u32,
    #[serde(deserialize_with = "duration")]
    pub acquire_timeout: Duration,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 5432,
            name: "fastpick".into(),
            username: "fastpick".into(),
            password: None,
            max_connections: 50,
            min_connections: 10,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// Redis connection and pool.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    pub host: String,
    pub port: u16,
    #[serde(deserialize_with = "optional_secret")]
    pub password: Option<SecretString>,
    pub pool_size: usize,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 6379,
            password: None,
            pool_size: 4,
        }
    }
}

/// JWT signing and password hashing.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// HMAC key (raw UTF-8 bytes, as the original); at least 32 bytes.
    #[serde(deserialize_with = "optional_secret")]
    pub secret_key: Option<SecretString>,
    #[serde(deserialize_with = "duration")]
    pub access_token_ttl: Duration,
    #[serde(deserialize_with = "duration")]
    pub refresh_token_ttl: Duration,
    /// bcrypt cost for new hashes; the original used 10.
    pub bcrypt_cost: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            secret_key: None,
            access_token_ttl: Duration::from_secs(30 * 60),
            refresh_token_ttl: Duration::from_secs(7 * 24 * 3600),
            bcrypt_cost: 10,
        }
    }
}

/// Coupon issuing under concurrency.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IssueConfig {
    /// How concurrent issue requests are controlled.
    pub strategy: IssueStrategy,
    /// What `redis-gate` does while Redis is unreachable.
    pub redis_down: RedisDown,
    /// How long gate state lives in Redis before it is rebuilt from PostgreSQL.
    #[serde(deserialize_with = "duration")]
    pub gate_ttl: Duration,
}

impl Default for IssueConfig {
    fn default() -> Self {
        Self {
            strategy: IssueStrategy::DbAtomic,
            redis_down: RedisDown::Fallback,
            gate_ttl: Duration::from_secs(300),
        }
    }
}

/// The issuing strategies (the experiment's switch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum IssueStrategy {
    /// SELECT ... FOR NO KEY UPDATE, then the checks in the app: the original's row lock.
    DbLock,
    /// One conditional UPDATE plus the unique (user, coupon) constraint, in one transaction.
    DbAtomic,
    /// A Redis Lua script admits or refuses in one round trip; only admitted requests write.
    RedisGate,
}

impl IssueStrategy {
    /// Returns the config and metrics name.
    pub fn as_str(self) -> &'static str {
        match self {
            IssueStrategy::DbLock => "db-lock",
            IssueStrategy::DbAtomic => "db-atomic",
            IssueStrategy::RedisGate => "redis-gate",
        }
    }
}

/// Coupon search (`GET /api/v1/coupons`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearchConfig {
    /// Where search pages are cached.
    pub cache: SearchCache,
    /// How long a cached page is served; also the staleness bound for what is not
    /// invalidated (issued quantities, time-driven status changes, changes made in SQL).
    #[serde(deserialize_with = "duration")]
    pub cache_ttl: Duration,
    /// Who searches when several requests miss the same page at once.
    pub refill: Refill,
    /// Matches counted exactly; past it, `totalElements` stops at the limit (or just past the
    /// requested page) while `last` stays exact.
    pub count_limit: i64,
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            cache: SearchCache::Redis,
            cache_ttl: Duration::from_secs(10),
            refill: Refill::Shared,
            count_limit: 1000,
        }
    }
}

/// The reverse proxy (proxy role): the original's nginx.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxyConfig {
    /// Address the proxy listens on (nginx listened on port 80).
    pub listen: SocketAddr,
    /// App instances for `/api/` and `/actuator/` ("ip:port"). Empty with the app role in the
    /// same process: the in-process app, reached without a socket.
    pub upstreams: Vec<String>,
    /// How an upstream is picked.
    pub balance: Balance,
    /// Client networks allowed to reach `/actuator/` (CIDR or single address).
    pub actuator_allow: Vec<String>,
    /// How often each upstream's health endpoint is checked.
    #[serde(deserialize_with = "duration")]
    pub health_check_interval: Duration,
    /// An upstream that fails a connection is skipped this long (passive ejection).
    #[serde(deserialize_with = "duration")]
    pub eject_for: Duration,
    /// Upstream TCP connect limit.
    #[serde(deserialize_with = "duration")]
    pub connect_timeout: Duration,
    /// Longest wait for each upstream read (the response head included); over it: 504.
    #[serde(deserialize_with = "duration")]
    pub read_timeout: Duration,
    /// Longest wait for each upstream write.
    #[serde(deserialize_with = "duration")]
    pub write_timeout: Duration,
    /// Idle upstream connections are kept this long for reuse.
    #[serde(deserialize_with = "duration")]
    pub keepalive_timeout: Duration,
    /// Slow clients are cut off: a whole request head must arrive within this (from accept or
    /// from its first byte), and each body read and keep-alive wait is bounded by it.
    #[serde(deserialize_with = "duration")]
    pub client_timeout: Duration,
    /// Largest request body accepted (413 above it); nginx's default is 1 MiB.
    pub max_body_bytes: u64,
    /// Largest request line plus headers accepted (431 above it).
    pub max_header_bytes: usize,
    /// Requests per second one client IP may send to `POST /api/v1/coupon-issues` (0: no limit).
    pub issue_rate_limit: u32,
    /// Access log lines: combined (nginx's format), json, or off.
    pub access_log: AccessLog,
    /// Worker threads of the proxy.
    pub threads: usize,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 80)),
            upstreams: Vec::new(),
            balance: Balance::RoundRobin,
            actuator_allow: vec!["127.0.0.1/32".into(), "::1/128".into()],
            health_check_interval: Duration::from_secs(1),
            eject_for: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(60),
            client_timeout: Duration::from_secs(10),
            max_body_bytes: 1024 * 1024,
            max_header_bytes: 16 * 1024,
            issue_rate_limit: 0,
            access_log: AccessLog::Combined,
            threads: 2,
        }
    }
}

/// The monitor (monitor role): the original's Prometheus with its postgres and redis
/// exporters.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MonitorConfig {
    /// Address of the query API, `/metrics` and the collectors' pages (Prometheus's port).
    pub listen: SocketAddr,
    /// Where sealed chunks and the head checkpoint are kept.
    pub data_dir: std::path::PathBuf,
    /// Default scrape interval of jobs that set none (prometheus.yml's global default).
    #[serde(deserialize_with = "duration")]
    pub scrape_interval: Duration,
    /// Default scrape timeout; never longer than a job's interval.
    #[serde(deserialize_with = "duration")]
    pub scrape_timeout: Duration,
    /// Scrape jobs.
    pub jobs: Vec<ScrapeJob>,
    /// An existing Prometheus configuration whose `scrape_configs` (static targets) are added
    /// to `jobs`, so a setup moves over unchanged.
    pub prometheus_config: Option<std::path::PathBuf>,
    /// Collects PostgreSQL's statistics (postgres_exporter's names) from `[database]`.
    pub postgres: bool,
    /// Collects Redis's INFO (redis_exporter's names) from `[redis]`.
    pub redis: bool,
    /// Command names (`comm`) of processes on this host to watch, e.g. `["postgres",
    /// "redis-server"]` when the databases run beside the monitor (process-exporter's
    /// names, job `processes`).
    pub processes: Vec<String>,
    /// Scrapes the monitor's own `/metrics` (job `fastpick-monitor`), as Prometheus's
    /// default configuration does.
    pub self_scrape: bool,
    /// Samples older than this are deleted (Prometheus's default is 15 days).
    #[serde(deserialize_with = "duration")]
    pub retention: Duration,
    /// Oldest data is deleted while the data directory holds more than this (0: no limit).
    pub retention_bytes: u64,
    /// How often new chunks and the head checkpoint are written: the most a SIGKILL loses.
    #[serde(deserialize_with = "duration")]
    pub flush_interval: Duration,
    /// How far back an instant query looks for a series' latest sample.
    #[serde(deserialize_with = "duration")]
    pub lookback: Duration,
    /// Samples one query may load before it is refused.
    pub query_max_samples: usize,
    /// Where samples are also sent with Prometheus remote write 1.0 (none: not sent).
    pub remote_write_url: Option<String>,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 9090)),
            data_dir: std::path::PathBuf::from("/var/lib/fastpick/monitor"),
            scrape_interval: Duration::from_secs(15),
            scrape_timeout: Duration::from_secs(10),
            jobs: Vec::new(),
            prometheus_config: None,
            postgres: false,
            redis: false,
            processes: Vec::new(),
            self_scrape: true,
            retention: Duration::from_secs(15 * 24 * 3600),
            retention_bytes: 0,
            flush_interval: Duration::from_secs(10),
            lookback: Duration::from_secs(300),
            query_max_samples: 50_000_000,
            remote_write_url: None,
        }
    }
}

/// One scrape job: the same path on every target (prometheus.yml's `scrape_configs` entry
/// with `static_configs`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrapeJob {
    /// The `job` label.
    pub name: String,
    /// "host:port" of each target; each becomes an `instance` label.
    pub targets: Vec<String>,
    #[serde(default = "default_metrics_path")]
    pub metrics_path: String,
    /// `http` (the only scheme served here).
    #[serde(default = "default_scheme")]
    pub scheme: String,
    /// This job's interval (the monitor's default when absent).
    #[serde(default, deserialize_with = "optional_duration")]
    pub interval: Option<Duration>,
    /// This job's timeout (the monitor's default when absent).
    #[serde(default, deserialize_with = "optional_duration")]
    pub timeout: Option<Duration>,
    /// Labels added to every series of the job's targets.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
}

fn default_metrics_path() -> String {
    "/metrics".into()
}

fn default_scheme() -> String {
    "http".into()
}

/// Upstream selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Balance {
    /// In turn.
    RoundRobin,
    /// The healthy upstream with the fewest requests in flight.
    LeastConn,
}

/// Access log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AccessLog {
    /// nginx's combined format, plus the request id and upstream time.
    Combined,
    /// One JSON object per request.
    Json,
    /// No access log.
    Off,
}

/// The search page cache's switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum SearchCache {
    /// Every search goes to PostgreSQL.
    Off,
    /// Pages are kept in Redis for `search.cache_ttl`.
    Redis,
}

impl SearchCache {
    /// Returns the config and metrics name.
    pub fn as_str(self) -> &'static str {
        match self {
            SearchCache::Off => "off",
            SearchCache::Redis => "redis",
        }
    }
}

/// How a missed page is refilled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Refill {
    /// One search per page at a time: misses during it wait for its body.
    Shared,
    /// Every miss searches PostgreSQL (what a plain cache-aside does; for comparison).
    Each,
}

/// What `redis-gate` does without Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RedisDown {
    /// Issues with `db-atomic` until Redis is back.
    Fallback,
    /// Answers 503 C010 until Redis is back.
    Unavailable,
}

/// Log output.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing filter such as `info` or `fastpick=debug,sqlx=warn`; RUST_LOG wins when set.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The original deployment's `.env` names and the keys they set (secrets are below).
const LEGACY_ENV: [(&str, &str); 6] = [
    ("DB_HOST", "database.host"),
    ("DB_PORT", "database.port"),
    ("DB_NAME", "database.name"),
    ("DB_USERNAME", "database.username"),
    ("REDIS_HOST", "redis.host"),
    ("REDIS_PORT", "redis.port"),
];

/// `FASTPICK_` variables that are not config keys: the config file's name, and the tools'
/// own (`fastpick load`/`lab --monitor`, `lab`'s admin, the deploy script's binary).
const NOT_CONFIG_ENV: [&str; 5] = ["config", "monitor", "admin_email", "admin_password", "bin"];

/// Secrets from the environment: (FASTPICK_ name, original name). They are taken byte for
/// byte, never parsed as numbers or quoted strings the way other environment values are.
const SECRET_ENV: [(&str, &str); 3] = [
    ("FASTPICK_DATABASE__PASSWORD", "DB_PASSWORD"),
    ("FASTPICK_REDIS__PASSWORD", "REDIS_PASSWORD"),
    ("FASTPICK_AUTH__SECRET_KEY", "SECRET_KEY"),
];

/// Shortest HMAC key accepted, in bytes (HS256 needs 256 bits).
pub const MIN_SECRET_KEY_BYTES: usize = 32;

impl Settings {
    /// Loads the layers in precedence order; the file is read only when a path is given.
    pub fn load(path_opt: Option<&Path>) -> anyhow::Result<Settings> {
        let mut figment = Figment::new();
        if let Some(path) = path_opt {
            if !path.is_file() {
                bail!("config file {} does not exist", path.display());
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        let legacy = Env::raw().filter_map(|key| {
            LEGACY_ENV
                .iter()
                .find(|(name, _)| key == *name)
                .map(|(_, target)| (*target).into())
        });
        // FASTPICK_CONFIG names the file itself (the --config flag), not a key in it; the
        // tools' own variables are not keys either.
        let prefixed = Env::prefixed("FASTPICK_")
            .filter(|key| {
                !NOT_CONFIG_ENV
                    .iter()
                    .any(|name| key.as_str().eq_ignore_ascii_case(name))
                    && !SECRET_ENV
                        .iter()
                        .any(|(name, _)| name[9..].eq_ignore_ascii_case(key.as_str()))
            })
            .split("__");
        let mut settings: Settings = figment
            .merge(legacy)
            .merge(prefixed)
            .extract()
            .map_err(|e| anyhow::anyhow!(flatten_figment_error(e)))
            .context("invalid configuration")?;
        let raw = |names: (&str, &str)| {
            [names.0, names.1]
                .into_iter()
                .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
                .map(SecretString::from)
        };
        let [db, redis, key] = SECRET_ENV;
        if let Some(v) = raw(db) {
            settings.database.password = Some(v);
        }
        if let Some(v) = raw(redis) {
            settings.redis.password = Some(v);
        }
        if let Some(v) = raw(key) {
            settings.auth.secret_key = Some(v);
        }
        Ok(settings)
    }

    /// Checks what the given roles need; the message names the key to fix.
    pub fn validate(&self, roles: &RoleSet) -> anyhow::Result<()> {
        if roles.contains(Role::App) {
            self.validate_app()?;
        }
        if roles.contains(Role::Monitor) {
            self.validate_monitor()?;
        }
        Ok(())
    }

    fn validate_monitor(&self) -> anyhow::Result<()> {
        let m = &self.monitor;
        if m.scrape_interval.is_zero() || m.scrape_timeout.is_zero() {
            bail!("monitor.scrape_interval and monitor.scrape_timeout must be longer than zero");
        }
        if m.flush_interval.is_zero() {
            bail!("monitor.flush_interval must be longer than zero");
        }
        if m.lookback.as_millis() < 1 {
            bail!("monitor.lookback must be at least 1ms");
        }
        for job in &m.jobs {
            if job.name.is_empty() {
                bail!("monitor.jobs: every job needs a name");
            }
            if job.scheme != "http" {
                bail!("monitor.jobs '{}': scheme must be http", job.name);
            }
            if !job.metrics_path.starts_with('/') {
                bail!(
                    "monitor.jobs '{}': metrics_path must start with '/'",
                    job.name
                );
            }
            if job.interval.is_some_and(|d| d.is_zero()) || job.timeout.is_some_and(|d| d.is_zero())
            {
                bail!(
                    "monitor.jobs '{}': interval and timeout must be longer than zero",
                    job.name
                );
            }
        }
        Ok(())
    }

    fn validate_app(&self) -> anyhow::Result<()> {
        let key = self.auth.secret_key.as_ref().context(
            "auth.secret_key is missing: set SECRET_KEY or FASTPICK_AUTH__SECRET_KEY (32+ bytes)",
        )?;
        let len = key.expose_secret().len();
        if len < MIN_SECRET_KEY_BYTES {
            bail!(
                "auth.secret_key is too short: {len} bytes, at least {MIN_SECRET_KEY_BYTES} are needed for HS256"
            );
        }
        if self.auth.access_token_ttl.is_zero() || self.auth.refresh_token_ttl.is_zero() {
            bail!("auth.access_token_ttl and auth.refresh_token_ttl must be longer than zero");
        }
        if !(4..=31).contains(&self.auth.bcrypt_cost) {
            bail!("auth.bcrypt_cost must be between 4 and 31");
        }
        if self.database.max_connections == 0 {
            bail!("database.max_connections must be at least 1");
        }
        if self.database.min_connections > self.database.max_connections {
            bail!("database.min_connections must not exceed database.max_connections");
        }
        if self.redis.pool_size == 0 {
            bail!("redis.pool_size must be at least 1");
        }
        if self.search.cache_ttl.as_secs() == 0 {
            bail!("search.cache_ttl must be at least 1s");
        }
        if self.search.count_limit < 1 {
            bail!("search.count_limit must be at least 1");
        }
        if self.app.max_header_bytes < 1024 {
            bail!("app.max_header_bytes must be at least 1024");
        }
        Ok(())
    }
}

/// Joins every figment error into one line per key.
fn flatten_figment_error(err: figment::Error) -> String {
    err.into_iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

fn from_str<'de, D, T>(de: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: std::fmt::Display,
{
    let text = String::deserialize(de)?;
    text.parse().map_err(serde::de::Error::custom)
}

/// Reads "30m", "7d", "1h 30m" (humantime) or a whole number of seconds.
fn duration<'de, D: Deserializer<'de>>(de: D) -> Result<Duration, D::Error> {
    let text = scalar_text(de)?;
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(&text).map_err(serde::de::Error::custom)
}

/// A duration that may be absent.
fn optional_duration<'de, D: Deserializer<'de>>(de: D) -> Result<Option<Duration>, D::Error> {
    duration(de).map(Some)
}

/// Secrets may look like numbers in an env file (`DB_PASSWORD=1234`); take them as text.
fn optional_secret<'de, D: Deserializer<'de>>(de: D) -> Result<Option<SecretString>, D::Error> {
    let text = scalar_text(de)?;
    Ok((!text.is_empty()).then(|| SecretString::from(text)))
}

/// Accepts a string, number or boolean and returns its text.
fn scalar_text<'de, D: Deserializer<'de>>(de: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Text(String),
        Int(i64),
        Uint(u64),
        Float(f64),
        Bool(bool),
    }
    Ok(match Scalar::deserialize(de)? {
        Scalar::Text(s) => s,
        Scalar::Int(n) => n.to_string(),
        Scalar::Uint(n) => n.to_string(),
        Scalar::Float(n) => n.to_string(),
        Scalar::Bool(b) => b.to_string(),
    })
}

#[cfg(test)]
// figment's Jail closures return its large error type; that is the crate's API.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    fn app_roles() -> RoleSet {
        "app".parse().expect("valid role")
    }

    #[test]
    fn switch_names_on_the_command_line_are_the_config_names() {
        use clap::ValueEnum;
        for s in IssueStrategy::value_variants() {
            let name = s.to_possible_value().expect("named");
            assert_eq!(name.get_name(), s.as_str());
        }
        for c in SearchCache::value_variants() {
            let name = c.to_possible_value().expect("named");
            assert_eq!(name.get_name(), c.as_str());
        }
    }

    #[test]
    fn legacy_env_names_and_prefixed_overrides_are_layered() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "f.toml",
                "[database]\nhost = \"file-host\"\nport = 1111\n[app]\nlisten = \"127.0.0.1:9000\"\n",
            )?;
            jail.set_env("DB_HOST", "legacy-host");
            jail.set_env("DB_PASSWORD", "0012345678");
            jail.set_env("REDIS_PASSWORD", "\"quoted\" ");
            jail.set_env("FASTPICK_DATABASE__PORT", "2222");
            jail.set_env("SECRET_KEY", "0123456789abcdef0123456789abcdef");
            jail.set_env("FASTPICK_AUTH__ACCESS_TOKEN_TTL", "15m");
            jail.set_env("FASTPICK_CONFIG", "f.toml");
            // The tools' own variables are not keys (FASTPICK_MONITOR would be a table).
            jail.set_env("FASTPICK_MONITOR", "http://127.0.0.1:9090");
            jail.set_env("FASTPICK_ADMIN_EMAIL", "admin@fastpick.local");
            jail.set_env("FASTPICK_ADMIN_PASSWORD", "not a key");
            jail.set_env("FASTPICK_BIN", "target/release/fastpick");
            let s = Settings::load(Some(Path::new("f.toml"))).expect("loads");
            assert_eq!(s.database.host, "legacy-host");
            assert_eq!(s.database.port, 2222);
            assert_eq!(
                s.database
                    .password
                    .as_ref()
                    .map(|p| p.expose_secret().to_owned()),
                Some("0012345678".into()),
                "secrets are taken byte for byte"
            );
            assert_eq!(
                s.redis
                    .password
                    .as_ref()
                    .map(|p| p.expose_secret().to_owned()),
                Some("\"quoted\" ".into())
            );
            assert_eq!(s.app.listen.port(), 9000);
            assert_eq!(s.auth.access_token_ttl, Duration::from_secs(900));
            s.validate(&app_roles()).expect("valid");
            Ok(())
        });
    }

    #[test]
    fn bad_values_name_their_key() {
        Jail::expect_with(|jail| {
            jail.set_env("FASTPICK_APP__TIMEZONE", "Mars/Olympus");
            let err = Settings::load(None).unwrap_err();
            assert!(format!("{err:#}").contains("timezone"), "{err:#}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.create_file("f.toml", "[database]\nhots = \"x\"\n")?;
            let err = Settings::load(Some(Path::new("f.toml"))).unwrap_err();
            assert!(format!("{err:#}").contains("hots"), "{err:#}");
            Ok(())
        });
    }

    #[test]
    fn app_needs_a_long_enough_secret_key() {
        Jail::expect_with(|jail| {
            let s = Settings::load(None).expect("loads");
            let err = s.validate(&app_roles()).unwrap_err().to_string();
            assert!(err.contains("auth.secret_key is missing"), "{err}");
            jail.set_env("SECRET_KEY", "s3cr3tXY");
            let s = Settings::load(None).expect("loads");
            let err = s.validate(&app_roles()).unwrap_err().to_string();
            assert!(err.contains("too short"), "{err}");
            assert!(
                !err.contains("s3cr3tXY"),
                "the key itself must not be echoed: {err}"
            );
            Ok(())
        });
    }

    #[test]
    fn missing_config_file_is_an_error() {
        let err = Settings::load(Some(Path::new("/nonexistent/fastpick.toml"))).unwrap_err();
        assert!(err.to_string().contains("does not exist"));
    }
}
