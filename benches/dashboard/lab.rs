//! A day of the lab, written straight into a monitor data dir: the captured expositions of the
//! app, postgres_exporter and redis_exporter (`tests/fixtures/exposition/`), a proxy, the
//! monitor itself and the host's process groups, one scrape of every target every second,
//! through the store's public API (`Db::append_batch`, `Db::flush`), as the monitor's scrape
//! loops write them: `job`/`instance` labels, one timestamp per target and scrape (its phase
//! plus a few ms of jitter), `up` and the `scrape_*` series, staleness markers when a series
//! goes away.
//!
//! What moves: races (1000 VUs on one coupon, db-lock) every 3 h and search runs (40 req/s,
//! Redis cache) every 6 h, each with a ramp and a ±15 % wobble. Counters climb at an idle rate
//! and faster under load; gauges wander around a level that load raises; histograms take a
//! whole number of requests a second, spread over the buckets by a log-normal latency whose
//! median grows under load, so buckets stay cumulative and monotone; the app and proxy
//! restart once (90 s down, counters from zero). Lock waits exist only during races. Every
//! draw comes from one seeded generator, so a seed and a length give the same samples (the
//! catch-up seconds at the end, up to the wall clock, vary).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use anyhow::{Context, bail};
use fastpick::metrics::parse::{self, Format, Kind};
use fastpick::monitor::series::{Labels, stale_nan};
use fastpick::monitor::tsdb::{AppendSummary, Db};

/// A small xorshift64* generator, so every run with a seed gives the same samples.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f64 {
        let u = self.unit().max(1e-12);
        let v = self.unit();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// A Poisson count with mean `rate` (normal approximation above 30).
    fn count(&mut self, rate: f64) -> f64 {
        if rate <= 0.0 {
            return 0.0;
        }
        if rate > 30.0 {
            return (rate + rate.sqrt() * self.normal()).round().max(0.0);
        }
        let limit = (-rate).exp();
        let (mut k, mut p) = (0.0, self.unit());
        while p > limit {
            k += 1.0;
            p *= self.unit();
        }
        k
    }
}

/// What a load window runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    Race,
    Search,
}

/// A run, in scrape steps from the start of the range (`end` exclusive).
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub scenario: Scenario,
    pub start: i64,
    pub end: i64,
}

/// Races of 5 min every 3 h (the last ending 15 min before the end), search runs of 20 min
/// every 6 h (the last starting 1 h 40 min before the end).
pub fn schedule(steps: i64) -> Vec<Window> {
    let mut out = Vec::new();
    for k in 0.. {
        let end = steps - 15 * 60 - k * 3 * 3600;
        if end - 300 < 0 {
            break;
        }
        out.push(Window {
            scenario: Scenario::Race,
            start: end - 300,
            end,
        });
    }
    for k in 0.. {
        let start = steps - 100 * 60 - k * 6 * 3600;
        if start < 0 {
            break;
        }
        out.push(Window {
            scenario: Scenario::Search,
            start,
            end: start + 1200,
        });
    }
    out.sort_by_key(|w| w.start);
    out
}

/// How hard each scenario runs this second, 0 to about 1.15.
#[derive(Debug, Clone, Copy, Default)]
struct Load {
    race: f64,
    search: f64,
}

impl Load {
    fn at(windows: &[Window], step: i64, wobble: f64) -> Load {
        let mut load = Load::default();
        for w in windows.iter().filter(|w| (w.start..w.end).contains(&step)) {
            // 20 s ramp up, 10 s down.
            let ramp = ((step - w.start + 1) as f64 / 20.0)
                .min((w.end - step) as f64 / 10.0)
                .min(1.0);
            match w.scenario {
                Scenario::Race => load.race = ramp * wobble,
                Scenario::Search => load.search = ramp * wobble,
            }
        }
        load
    }

    fn of(&self, scenario: Scenario) -> f64 {
        match scenario {
            Scenario::Race => self.race,
            Scenario::Search => self.search,
        }
    }
}

/// A per-second figure when idle, plus what a full race and a full search run add.
#[derive(Debug, Clone, Copy, Default)]
struct Rates {
    idle: f64,
    race: f64,
    search: f64,
}

const fn r(idle: f64, race: f64, search: f64) -> Rates {
    Rates { idle, race, search }
}

impl Rates {
    fn at(&self, load: Load) -> f64 {
        self.idle + self.race * load.race + self.search * load.search
    }
}

/// How one series moves from one scrape to the next.
#[derive(Debug, Clone, Copy)]
enum Rule {
    Const,
    /// Climbs by `rate` a second; whole counts when `unit` is 1, otherwise continuous and
    /// rounded to `unit` (bytes, microseconds).
    Counter {
        rate: Rates,
        unit: f64,
    },
    /// Wanders around `base + add` (the idle part of `add` included), pulled back 5 % a
    /// second, with `noise` (standard deviation a second), rounded to `unit`.
    Gauge {
        base: Option<f64>,
        add: Rates,
        noise: f64,
        unit: f64,
    },
    /// A histogram's `_bucket{le}`, `_count` or `_sum`, of a request group.
    Bucket {
        group: usize,
        le: f64,
    },
    Count {
        group: usize,
    },
    Sum {
        group: usize,
    },
}

fn counter(idle: f64, race: f64, search: f64) -> Rule {
    Rule::Counter {
        rate: r(idle, race, search),
        unit: 1.0,
    }
}

fn flow(idle: f64, race: f64, search: f64, unit: f64) -> Rule {
    Rule::Counter {
        rate: r(idle, race, search),
        unit,
    }
}

fn gauge(race: f64, search: f64, noise: f64, unit: f64) -> Rule {
    Rule::Gauge {
        base: None,
        add: r(0.0, race, search),
        noise,
        unit,
    }
}

fn level(base: f64, race: f64, search: f64, noise: f64, unit: f64) -> Rule {
    Rule::Gauge {
        base: Some(base),
        add: r(0.0, race, search),
        noise,
        unit,
    }
}

/// A histogram's requests: their rate, and a log-normal latency whose median is `median`
/// seconds times `1 + slow` under load.
#[derive(Debug, Clone, Copy)]
struct Requests {
    rate: Rates,
    median: f64,
    slow: Rates,
    sigma: f64,
}

fn requests(rate: Rates, median: f64, slow: Rates, sigma: f64) -> Requests {
    Requests {
        rate,
        median,
        slow,
        sigma,
    }
}

/// One histogram's requests this second.
#[derive(Debug, Clone, Copy, Default)]
struct Drawn {
    n: f64,
    /// Shared by the buckets, so `floor(n·F(le) + u)` rises with `le`.
    u: f64,
    median: f64,
    sigma: f64,
}

/// The standard normal CDF (Abramowitz and Stegun 7.1.26, error under 1.5e-7).
fn phi(x: f64) -> f64 {
    let z = x.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * z);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-z * z).exp();
    if x >= 0.0 {
        0.5 * (1.0 + erf)
    } else {
        0.5 * (1.0 - erf)
    }
}

/// One series of a target.
#[derive(Debug, Clone)]
struct Sim {
    labels: Labels,
    rule: Rule,
    value: f64,
    /// A gauge's unrounded value.
    level: f64,
    base: f64,
    /// Exposed only while this scenario runs (a staleness marker follows).
    only: Option<Scenario>,
    shown: bool,
}

impl Sim {
    fn new(labels: Labels, rule: Rule, value: f64) -> Sim {
        let base = match rule {
            Rule::Gauge { base: Some(b), .. } => b,
            _ => value,
        };
        Sim {
            labels,
            rule,
            value,
            level: value,
            base,
            only: None,
            shown: false,
        }
    }

    fn advance(&mut self, load: Load, drawn: &[Drawn], rng: &mut Rng) {
        match self.rule {
            Rule::Const => {}
            Rule::Counter { rate, unit } => {
                let rate = rate.at(load);
                if unit == 1.0 {
                    self.value += rng.count(rate);
                } else if rate > 0.0 {
                    self.level += rate * (0.7 + 0.6 * rng.unit());
                    self.value = (self.level / unit).floor() * unit;
                }
            }
            Rule::Gauge {
                add, noise, unit, ..
            } => {
                let target = self.base + add.at(load);
                self.level += (target - self.level) * 0.05 + noise * rng.normal();
                self.level = self.level.max(0.0);
                self.value = if unit > 0.0 {
                    (self.level / unit).round() * unit
                } else {
                    self.level
                };
            }
            Rule::Bucket { group, le } => {
                let d = drawn[group];
                let share = if le.is_infinite() {
                    1.0
                } else {
                    phi((le.ln() - d.median.ln()) / d.sigma)
                };
                self.value += (d.n * share + d.u).floor().min(d.n);
            }
            Rule::Count { group } => self.value += drawn[group].n,
            Rule::Sum { group } => {
                let d = drawn[group];
                // A log-normal's mean is its median times exp(σ²/2).
                let mean = d.median * (d.sigma * d.sigma / 2.0).exp();
                self.level += d.n * mean * (0.9 + 0.2 * rng.unit());
                self.value = self.level;
            }
        }
    }

    /// A restarted process: counters and histograms from zero.
    fn reset(&mut self) {
        if matches!(
            self.rule,
            Rule::Counter { .. } | Rule::Bucket { .. } | Rule::Count { .. } | Rule::Sum { .. }
        ) {
            self.value = 0.0;
            self.level = 0.0;
        }
    }
}

/// Which families a target's rules come from.
#[derive(Debug, Clone, Copy)]
enum Program {
    App,
    Proxy,
    Postgres,
    Redis,
    Processes,
    Monitor,
}

/// One scrape target.
struct Target {
    job: &'static str,
    instance: String,
    phase_ms: i64,
    program: Program,
    sims: Vec<Sim>,
    groups: Vec<Requests>,
    drawn: Vec<Drawn>,
    /// The always-present series' samples, rewritten in place every scrape.
    batch: Vec<(Labels, i64, f64)>,
    /// Indices into `sims` of `batch`'s series, then of the optional ones.
    always: Vec<usize>,
    optional: Vec<usize>,
    /// `up`, `scrape_duration_seconds`, ... that the series filter kept.
    scrape: Vec<(Labels, i64, f64)>,
    /// Samples in the whole exposition (`scrape_samples_scraped`), filter or not.
    exposed: usize,
    /// Median scrape duration, seconds.
    scrape_seconds: Rates,
    /// Steps (start, end) the target is down.
    outage: Option<(i64, i64)>,
}

/// Which series are written.
#[derive(Debug, Clone)]
pub enum Filter {
    All,
    /// Only these metric names (the boards' queries name them).
    Names(BTreeSet<String>),
}

impl Filter {
    fn keeps(&self, name: &str) -> bool {
        match self {
            Filter::All => true,
            Filter::Names(names) => names.contains(name) || name == "fastpick_experiment_info",
        }
    }
}

/// Every identifier in the boards' queries: the metric names the dashboard reads.
pub fn board_names(boards: &serde_json::Value) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut exprs = Vec::new();
    collect_exprs(boards, &mut exprs);
    for expr in exprs {
        for token in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')) {
            if !token.is_empty() && !token.starts_with(|c: char| c.is_ascii_digit()) {
                names.insert(token.to_owned());
            }
        }
    }
    names
}

fn collect_exprs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => collect_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}

fn label<'a>(labels: &'a [(String, String)], name: &str) -> &'a str {
    labels
        .iter()
        .find(|(n, _)| n == name)
        .map_or("", |(_, v)| v.as_str())
}

const LES: [&str; 17] = [
    "0.0005", "0.001", "0.002", "0.004", "0.008", "0.016", "0.032", "0.064", "0.128", "0.256",
    "0.512", "1.024", "2.048", "4.096", "8.192", "16.384", "+Inf",
];

fn histogram_text(name: &str, labels: &str, les: &[&str]) -> String {
    let mut text = format!("# TYPE {name} histogram\n");
    for le in les {
        text += &format!("{name}_bucket{{{labels},le=\"{le}\"}} 0\n");
    }
    text += &format!("{name}_sum{{{labels}}} 0\n{name}_count{{{labels}}} 0\n");
    text
}

fn process_text(application: &str, rss: u64, cpu: f64) -> String {
    let a = format!("application=\"{application}\"");
    let mut text = String::new();
    for (name, v) in [
        ("cpu_seconds", cpu),
        ("resident_memory_bytes", rss as f64),
        ("virtual_memory_bytes", 1_210_056_704.0),
        ("open_fds", 21.0),
        ("threads", 4.0),
    ] {
        text +=
            &format!("# TYPE fastpick_process_{name} gauge\nfastpick_process_{name}{{{a}}} {v}\n");
    }
    text
}

/// What the app exposes beyond the capture: the issue route and counters a race creates,
/// the cache results a search run creates, and the experiment's switches.
fn app_extra() -> String {
    let a = "application=\"fastpick-be\"";
    let mut text = String::new();
    for (status, outcome) in [
        ("200", "SUCCESS"),
        ("400", "CLIENT_ERROR"),
        ("503", "SERVER_ERROR"),
    ] {
        text += &histogram_text(
            "http_server_requests_seconds",
            &format!(
                "{a},method=\"POST\",uri=\"/api/v1/coupon-issues\",status=\"{status}\",outcome=\"{outcome}\""
            ),
            &LES,
        );
    }
    text += "# TYPE fastpick_issue_requests_total counter\n";
    for outcome in ["issued", "CP04", "CP05"] {
        text += &format!(
            "fastpick_issue_requests_total{{{a},strategy=\"db-lock\",outcome=\"{outcome}\"}} 0\n"
        );
    }
    text += "# TYPE fastpick_search_cache_lookups_total counter\n";
    for result in ["hit", "unavailable"] {
        text += &format!("fastpick_search_cache_lookups_total{{{a},result=\"{result}\"}} 0\n");
    }
    text += &format!(
        "# TYPE fastpick_experiment_info gauge\nfastpick_experiment_info{{{a},strategy=\"db-lock\",search_cache=\"redis\"}} 1\n"
    );
    text
}

/// The proxy's exposition as its registry writes it (no capture exists).
fn proxy_text() -> String {
    let a = "application=\"fastpick-proxy\"";
    let mut text = "# TYPE fastpick_proxy_requests_total counter\n".to_owned();
    for (route, status) in [
        ("api", "200"),
        ("api", "400"),
        ("api", "404"),
        ("api", "502"),
        ("api", "503"),
        ("actuator", "200"),
        ("ui", "200"),
        ("ui", "304"),
        ("denied", "403"),
        ("limited", "429"),
    ] {
        text += &format!(
            "fastpick_proxy_requests_total{{{a},route=\"{route}\",status=\"{status}\"}} 0\n"
        );
    }
    let les: Vec<String> = (0..16)
        .map(|i| format!("{}", 0.00025 * f64::from(1u32 << i)))
        .chain(["+Inf".to_owned()])
        .collect();
    let les: Vec<&str> = les.iter().map(String::as_str).collect();
    for upstream in ["127.0.0.1:8081", "127.0.0.1:8082"] {
        let l = format!("{a},upstream=\"{upstream}\"");
        text += &histogram_text("fastpick_proxy_upstream_seconds", &l, &les);
        text += &format!(
            "# TYPE fastpick_proxy_upstream_up gauge\nfastpick_proxy_upstream_up{{{l}}} 1\n"
        );
        text += &format!(
            "# TYPE fastpick_proxy_upstream_requests_in_flight gauge\nfastpick_proxy_upstream_requests_in_flight{{{l}}} 0\n"
        );
    }
    text += &format!(
        "# TYPE fastpick_proxy_requests_in_flight gauge\nfastpick_proxy_requests_in_flight{{{a}}} 0\n"
    );
    text += &format!(
        "# TYPE fastpick_proxy_slow_heads_total counter\nfastpick_proxy_slow_heads_total{{{a}}} 0\n"
    );
    text + &process_text("fastpick-proxy", 31_457_280, 0.41)
}

/// The built-in collector's own families (`pg_locks_waiting` only while something waits).
fn postgres_extra() -> String {
    let mut text = "# TYPE pg_stat_activity_waiting gauge\n".to_owned();
    for t in ["Client", "IO", "LWLock", "Lock"] {
        text += &format!(
            "pg_stat_activity_waiting{{datname=\"postgres\",wait_event_type=\"{t}\"}} 0\n"
        );
    }
    text += "# TYPE pg_locks_waiting gauge\n";
    for (mode, locktype) in [("sharelock", "transactionid"), ("exclusivelock", "tuple")] {
        text += &format!(
            "pg_locks_waiting{{datname=\"postgres\",mode=\"{mode}\",locktype=\"{locktype}\"}} 0\n"
        );
    }
    text
}

/// Commands the app sends during search runs that the capture has not seen.
fn redis_extra() -> String {
    let mut text = String::new();
    for cmd in ["get", "del"] {
        for family in [
            "redis_commands_total",
            "redis_commands_duration_seconds_total",
            "redis_commands_failed_calls_total",
            "redis_commands_rejected_calls_total",
        ] {
            text += &format!("{family}{{cmd=\"{cmd}\"}} 0\n");
        }
    }
    text
}

fn processes_text() -> String {
    let mut text = String::new();
    for (group, procs, rss) in [("postgres", 7, 96_000_000), ("redis-server", 1, 9_000_000)] {
        let g = format!("groupname=\"{group}\"");
        text += &format!("namedprocess_namegroup_num_procs{{{g}}} {procs}\n");
        text += &format!("namedprocess_namegroup_cpu_seconds_total{{{g}}} 12.5\n");
        text += &format!("namedprocess_namegroup_memory_bytes{{{g},memtype=\"resident\"}} {rss}\n");
        text += &format!(
            "namedprocess_namegroup_memory_bytes{{{g},memtype=\"virtual\"}} {}\n",
            rss * 4
        );
        text += &format!("namedprocess_namegroup_num_threads{{{g}}} {procs}\n");
    }
    text
}

fn monitor_text() -> String {
    let a = "application=\"fastpick-monitor\"";
    let mut text = process_text("fastpick-monitor", 14_000_000, 3.2);
    for (name, kind, v) in [
        ("fastpick_monitor_samples_appended_total", "counter", 0.0),
        ("fastpick_monitor_series", "gauge", 900.0),
        ("fastpick_monitor_head_bytes", "gauge", 400_000.0),
        ("fastpick_monitor_disk_bytes", "gauge", 1_000_000.0),
    ] {
        text += &format!("# TYPE {name} {kind}\n{name}{{{a}}} {v}\n");
    }
    text
}

/// The app's request groups: rates (idle, full race, full search run), median latency, how
/// much slower under load, spread.
fn app_requests(base: &str, labels: &[(String, String)]) -> Requests {
    if base == "fastpick_search_statement_seconds" {
        let (median, rate) = match label(labels, "statement") {
            "count" => (0.012, 8.0),
            "page" => (0.003, 8.0),
            _ => (0.002, 8.0),
        };
        return requests(r(0.0, 0.0, rate), median, r(0.0, 0.5, 1.5), 0.6);
    }
    match (
        label(labels, "method"),
        label(labels, "uri"),
        label(labels, "status"),
    ) {
        ("GET", "/actuator/prometheus", _) => {
            requests(r(1.0, 0.0, 0.0), 0.0008, r(0.0, 2.0, 0.5), 0.4)
        }
        ("GET", "/api/v1/coupons", "200") => {
            requests(r(0.0, 0.0, 40.0), 0.004, r(0.0, 0.0, 1.5), 1.1)
        }
        ("GET", "/api/v1/coupons/{id}", "200") => {
            requests(r(0.02, 0.0, 6.0), 0.003, r(0.0, 0.0, 1.0), 0.6)
        }
        ("POST", "/api/v1/coupon-issues", "200") => {
            requests(r(0.0, 0.35, 0.0), 0.030, r(0.0, 3.0, 0.0), 0.8)
        }
        ("POST", "/api/v1/coupon-issues", "400") => {
            requests(r(0.0, 240.0, 0.0), 0.025, r(0.0, 6.0, 0.0), 0.9)
        }
        // C010: the pool's acquire timeout now and then at the peak of a race.
        ("POST", "/api/v1/coupon-issues", "503") => {
            requests(r(0.0, 0.08, 0.0), 2.0, r(0.0, 0.0, 0.0), 0.2)
        }
        ("POST", "/api/v1/coupon-issues", _) => {
            requests(r(0.0, 0.5, 0.0), 0.0002, r(0.0, 0.0, 0.0), 0.5)
        }
        _ => requests(r(0.001, 0.2, 0.2), 0.0003, r(0.0, 0.0, 0.0), 0.5),
    }
}

fn proxy_requests(_base: &str, _labels: &[(String, String)]) -> Requests {
    // Two upstreams share the API traffic.
    requests(r(0.5, 120.0, 23.0), 0.003, r(0.0, 10.0, 1.2), 1.0)
}

/// The processes every FastPick role exports (`fastpick_process_*`), by how busy it gets.
fn process_rule(name: &str, race: f64, search: f64) -> Option<Rule> {
    Some(match name.strip_prefix("fastpick_process_")? {
        "cpu_seconds" => flow(0.004, race, search, 0.01),
        "resident_memory_bytes" => gauge(race * 40e6, search * 30e6, 60_000.0, 4096.0),
        "virtual_memory_bytes" => gauge(race * 100e6, search * 50e6, 0.0, 65536.0),
        "open_fds" => gauge(race * 60.0, search * 15.0, 0.3, 1.0),
        "threads" => Rule::Const,
        _ => return None,
    })
}

fn app_rule(name: &str, labels: &[(String, String)]) -> Rule {
    if let Some(rule) = process_rule(name, 0.9, 0.45) {
        return rule;
    }
    match (name, label(labels, "outcome"), label(labels, "result")) {
        ("fastpick_issue_requests_total", "issued", _) => counter(0.0, 0.35, 0.0),
        ("fastpick_issue_requests_total", "CP04", _) => counter(0.0, 230.0, 0.0),
        ("fastpick_issue_requests_total", "CP05", _) => counter(0.0, 10.0, 0.0),
        ("fastpick_search_cache_lookups_total", _, "hit") => counter(0.0, 0.0, 32.0),
        ("fastpick_search_cache_lookups_total", _, "miss") => counter(0.0, 0.0, 8.0),
        ("fastpick_db_pool_connections", _, _) if label(labels, "state") == "active" => {
            gauge(18.0, 4.0, 0.4, 1.0)
        }
        ("fastpick_db_pool_connections", _, _) => level(10.0, -8.0, -2.0, 0.4, 1.0),
        _ => Rule::Const,
    }
}

fn proxy_rule(name: &str, labels: &[(String, String)]) -> Rule {
    if let Some(rule) = process_rule(name, 0.35, 0.15) {
        return rule;
    }
    match (name, label(labels, "route"), label(labels, "status")) {
        ("fastpick_proxy_requests_total", "api", "200") => counter(0.02, 0.35, 46.0),
        ("fastpick_proxy_requests_total", "api", "400") => counter(0.0, 240.0, 0.0),
        ("fastpick_proxy_requests_total", "api", "404") => counter(0.001, 0.2, 0.3),
        ("fastpick_proxy_requests_total", "api", "502") => counter(0.0, 0.02, 0.0),
        ("fastpick_proxy_requests_total", "api", "503") => counter(0.0, 0.08, 0.0),
        ("fastpick_proxy_requests_total", "actuator", _) => counter(1.0, 0.0, 0.0),
        ("fastpick_proxy_requests_total", "ui", _) => counter(0.01, 0.0, 0.0),
        ("fastpick_proxy_requests_total", "denied", _) => counter(0.001, 0.0, 0.0),
        ("fastpick_proxy_requests_total", "limited", _) => counter(0.0, 60.0, 0.0),
        ("fastpick_proxy_requests_in_flight", _, _) => gauge(60.0, 3.0, 1.5, 1.0),
        ("fastpick_proxy_upstream_requests_in_flight", _, _) => gauge(30.0, 1.5, 1.0, 1.0),
        ("fastpick_proxy_slow_heads_total", _, _) => counter(0.0005, 0.0, 0.0),
        _ => Rule::Const,
    }
}

fn postgres_rule(name: &str, labels: &[(String, String)]) -> Rule {
    let app_db = label(labels, "datname") == "postgres";
    if name == "process_cpu_seconds_total" {
        return flow(0.002, 0.01, 0.01, 0.01);
    }
    if !app_db {
        return match name.strip_prefix("pg_stat_database_") {
            Some("xact_commit" | "blks_hit" | "tup_returned" | "tup_fetched") => {
                counter(0.05, 0.0, 0.0)
            }
            _ => Rule::Const,
        };
    }
    let state = label(labels, "state");
    let mode = label(labels, "mode");
    match (name, state, mode) {
        ("pg_stat_activity_count", "active", _) => level(1.0, 14.0, 3.0, 0.5, 1.0),
        ("pg_stat_activity_count", "idle", _) => level(9.0, -6.0, -2.0, 0.5, 1.0),
        ("pg_stat_activity_count", "idle in transaction", _) => level(0.0, 4.0, 0.0, 0.3, 1.0),
        ("pg_locks_count", _, "accesssharelock") => level(1.0, 22.0, 6.0, 0.8, 1.0),
        ("pg_locks_count", _, "rowexclusivelock") => level(0.0, 16.0, 0.0, 0.8, 1.0),
        ("pg_locks_count", _, "rowsharelock") => level(0.0, 14.0, 0.0, 0.8, 1.0),
        ("pg_locks_count", _, "exclusivelock") => level(0.0, 6.0, 0.0, 0.5, 1.0),
        ("pg_locks_count", _, "sharelock") => level(0.0, 10.0, 0.0, 0.6, 1.0),
        ("pg_locks_waiting", _, "sharelock") => level(0.0, 9.0, 0.0, 0.8, 1.0),
        ("pg_locks_waiting", _, _) => level(0.0, 3.0, 0.0, 0.5, 1.0),
        ("pg_stat_activity_waiting", _, _) => match label(labels, "wait_event_type") {
            "Lock" => level(0.0, 11.0, 0.0, 0.8, 1.0),
            "LWLock" => level(0.0, 1.0, 0.3, 0.3, 1.0),
            "IO" => level(0.0, 0.3, 0.6, 0.3, 1.0),
            _ => level(0.2, 3.0, 0.5, 0.3, 1.0),
        },
        ("pg_stat_database_xact_commit", _, _) => counter(3.0, 260.0, 30.0),
        ("pg_stat_database_xact_rollback", _, _) => counter(0.0, 2.0, 0.0),
        ("pg_stat_database_deadlocks", _, _) => counter(0.0, 0.003, 0.0),
        ("pg_stat_database_blks_hit", _, _) => counter(120.0, 9_000.0, 24_000.0),
        ("pg_stat_database_blks_read", _, _) => counter(0.05, 6.0, 25.0),
        ("pg_stat_database_tup_returned", _, _) => counter(600.0, 4_000.0, 60_000.0),
        ("pg_stat_database_tup_fetched", _, _) => counter(120.0, 2_500.0, 9_000.0),
        ("pg_stat_database_tup_inserted" | "pg_stat_database_tup_updated", _, _) => {
            counter(0.0, 0.35, 0.0)
        }
        ("pg_stat_database_temp_bytes", _, _) => flow(0.0, 0.0, 40_000.0, 8192.0),
        ("pg_stat_database_temp_files", _, _) => counter(0.0, 0.0, 0.005),
        ("pg_stat_database_numbackends", _, _) => level(10.0, 12.0, 2.0, 0.5, 1.0),
        _ => Rule::Const,
    }
}

fn redis_rule(name: &str, labels: &[(String, String)]) -> Rule {
    let cmd = label(labels, "cmd");
    let calls = match cmd {
        "get" => r(0.0, 0.0, 40.0),
        "set" => r(0.0, 0.0, 8.0),
        "del" => r(0.0, 0.002, 0.0),
        "info" => r(1.0, 0.0, 0.0),
        "ping" => r(0.2, 0.0, 0.0),
        _ => r(0.0, 0.0, 0.0),
    };
    match name {
        "redis_commands_total" => Rule::Counter {
            rate: calls,
            unit: 1.0,
        },
        // About 4 µs a call (INFO about 60).
        "redis_commands_duration_seconds_total" => {
            let per_call = if cmd == "info" { 60e-6 } else { 4e-6 };
            Rule::Counter {
                rate: r(
                    calls.idle * per_call,
                    calls.race * per_call,
                    calls.search * per_call,
                ),
                unit: 1e-6,
            }
        }
        "redis_commands_processed_total" => counter(1.2, 0.0, 48.0),
        "redis_keyspace_hits_total" => counter(0.0, 0.0, 32.0),
        "redis_keyspace_misses_total" => counter(0.0, 0.0, 8.0),
        "redis_expired_keys_total" => counter(0.0, 0.0, 2.0),
        "redis_net_input_bytes_total" => flow(40.0, 0.0, 2_400.0, 1.0),
        "redis_net_output_bytes_total" => flow(5_000.0, 0.0, 90_000.0, 1.0),
        "redis_cpu_sys_seconds_total" | "redis_cpu_user_seconds_total" => {
            flow(0.001, 0.0005, 0.02, 1e-6)
        }
        "redis_memory_used_bytes" => gauge(0.0, 2.5e6, 4_000.0, 8.0),
        "redis_memory_used_rss_bytes" => gauge(0.0, 3.0e6, 8_000.0, 4096.0),
        "redis_connected_clients" => level(2.0, 0.0, 2.0, 0.1, 1.0),
        "redis_db_keys" if label(labels, "db") == "db0" => gauge(0.0, 900.0, 3.0, 1.0),
        "redis_uptime_in_seconds" => counter(1.0, 0.0, 0.0),
        _ => Rule::Const,
    }
}

fn processes_rule(name: &str, labels: &[(String, String)]) -> Rule {
    let pg = label(labels, "groupname") == "postgres";
    match (name, pg) {
        ("namedprocess_namegroup_cpu_seconds_total", true) => flow(0.01, 1.1, 0.6, 0.01),
        ("namedprocess_namegroup_cpu_seconds_total", false) => flow(0.002, 0.001, 0.03, 0.01),
        ("namedprocess_namegroup_memory_bytes", true) => gauge(150e6, 60e6, 200_000.0, 4096.0),
        ("namedprocess_namegroup_memory_bytes", false) => gauge(0.0, 3e6, 8_000.0, 4096.0),
        ("namedprocess_namegroup_num_procs", true) => level(7.0, 14.0, 3.0, 0.4, 1.0),
        _ => Rule::Const,
    }
}

fn monitor_rule(name: &str, _labels: &[(String, String)]) -> Rule {
    if let Some(rule) = process_rule(name, 0.02, 0.02) {
        return rule;
    }
    match name {
        "fastpick_monitor_samples_appended_total" => counter(900.0, 0.0, 0.0),
        _ => Rule::Const,
    }
}

impl Program {
    fn rule(self, name: &str, labels: &[(String, String)]) -> Rule {
        match self {
            Program::App => app_rule(name, labels),
            Program::Proxy => proxy_rule(name, labels),
            Program::Postgres => postgres_rule(name, labels),
            Program::Redis => redis_rule(name, labels),
            Program::Processes => processes_rule(name, labels),
            Program::Monitor => monitor_rule(name, labels),
        }
    }

    fn requests(self, base: &str, labels: &[(String, String)]) -> Requests {
        match self {
            Program::App => app_requests(base, labels),
            _ => proxy_requests(base, labels),
        }
    }

    /// Series that exist only while a scenario runs.
    fn only(self, name: &str) -> Option<Scenario> {
        match (self, name) {
            (Program::Postgres, "pg_locks_waiting") => Some(Scenario::Race),
            _ => None,
        }
    }
}

/// A histogram series' family, part and `le`.
fn histogram_part(family: &str, sample: &str, labels: &[(String, String)]) -> Option<(usize, f64)> {
    let part = sample.strip_prefix(family)?;
    match part {
        "_bucket" => {
            let le = label(labels, "le");
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((0, le))
        }
        "_count" => Some((1, 0.0)),
        "_sum" => Some((2, 0.0)),
        _ => None,
    }
}

impl Target {
    #[allow(clippy::too_many_arguments)]
    fn build(
        job: &'static str,
        instance: &str,
        phase_ms: i64,
        program: Program,
        texts: &[&str],
        filter: &Filter,
        scrape_seconds: Rates,
        outage: Option<(i64, i64)>,
    ) -> anyhow::Result<Target> {
        let mut sims = Vec::new();
        let mut groups: Vec<Requests> = Vec::new();
        let mut group_of: HashMap<(String, Vec<(String, String)>), usize> = HashMap::new();
        let mut exposed = 0;
        let mut seen = BTreeSet::new();
        for text in texts {
            let families = parse::parse(text, Format::Text004)
                .with_context(|| format!("failed to parse the {job} exposition"))?;
            for family in families {
                for sample in family.samples {
                    // The built-in collectors leave out the exporter's `server` label.
                    let labels: Vec<(String, String)> = sample
                        .labels
                        .into_iter()
                        .filter(|(n, _)| n != "server" && n != "job" && n != "instance")
                        .collect();
                    exposed += 1;
                    let mut pairs = labels.clone();
                    pairs.push(("__name__".into(), sample.name.clone()));
                    pairs.push(("job".into(), job.into()));
                    pairs.push(("instance".into(), instance.into()));
                    let series_labels = Labels::new(pairs);
                    if !filter.keeps(&sample.name) || !seen.insert(series_labels.clone()) {
                        continue;
                    }
                    let hist = (family.kind == Kind::Histogram)
                        .then(|| histogram_part(&family.name, &sample.name, &labels))
                        .flatten();
                    let rule = match hist {
                        Some((part, le)) => {
                            let key_labels: Vec<(String, String)> =
                                labels.iter().filter(|(n, _)| n != "le").cloned().collect();
                            let next = groups.len();
                            let group = *group_of
                                .entry((family.name.clone(), key_labels))
                                .or_insert(next);
                            if group == next {
                                groups.push(program.requests(&family.name, &labels));
                            }
                            match part {
                                0 => Rule::Bucket { group, le },
                                1 => Rule::Count { group },
                                _ => Rule::Sum { group },
                            }
                        }
                        None => program.rule(&sample.name, &labels),
                    };
                    let mut sim = Sim::new(series_labels, rule, sample.value);
                    sim.only = program.only(&sample.name);
                    sims.push(sim);
                }
            }
        }
        let scrape = [
            "up",
            "scrape_duration_seconds",
            "scrape_samples_scraped",
            "scrape_samples_post_metric_relabeling",
            "scrape_series_added",
        ]
        .into_iter()
        .filter(|n| filter.keeps(n))
        .map(|n| {
            let l = Labels::from_pairs(&[("__name__", n), ("job", job), ("instance", instance)]);
            (l, 0, 0.0)
        })
        .collect();
        let always: Vec<usize> = (0..sims.len())
            .filter(|&i| sims[i].only.is_none())
            .collect();
        let optional = (0..sims.len())
            .filter(|&i| sims[i].only.is_some())
            .collect();
        let batch = always
            .iter()
            .map(|&i| (sims[i].labels.clone(), 0, 0.0))
            .collect();
        let drawn = vec![Drawn::default(); groups.len()];
        Ok(Target {
            job,
            instance: instance.to_owned(),
            phase_ms,
            program,
            sims,
            groups,
            drawn,
            batch,
            always,
            optional,
            scrape,
            exposed,
            scrape_seconds,
            outage,
        })
    }

    fn series(&self) -> usize {
        self.sims.len() + self.scrape.len()
    }

    /// Appends scrape `step` at `t` ms; returns what the store did.
    fn scrape(&mut self, db: &Db, step: i64, t: i64, load: Load, rng: &mut Rng) -> AppendSummary {
        let mut total = AppendSummary::default();
        let mut add = |s: AppendSummary| {
            total.appended += s.appended;
            total.out_of_order += s.out_of_order;
            total.duplicate_conflicts += s.duplicate_conflicts;
            total.invalid += s.invalid;
        };
        let down = self.outage.is_some_and(|(a, b)| (a..b).contains(&step));
        if self.outage.is_some_and(|(_, b)| b == step) {
            self.sims.iter_mut().for_each(Sim::reset);
        }
        let mut extra = Vec::new();
        if down {
            for sim in self.sims.iter_mut().filter(|s| s.shown) {
                extra.push((sim.labels.clone(), t, stale_nan()));
                sim.shown = false;
            }
        } else {
            self.draw(load, rng);
            for (slot, &i) in self.always.iter().enumerate() {
                let sim = &mut self.sims[i];
                sim.advance(load, &self.drawn, rng);
                sim.shown = true;
                self.batch[slot].1 = t;
                self.batch[slot].2 = sim.value;
            }
            for &i in &self.optional {
                let sim = &mut self.sims[i];
                let on = sim.only.is_some_and(|s| load.of(s) > 0.0);
                if on {
                    sim.advance(load, &self.drawn, rng);
                    extra.push((sim.labels.clone(), t, sim.value));
                } else if sim.shown {
                    extra.push((sim.labels.clone(), t, stale_nan()));
                }
                sim.shown = on;
            }
            add(db.append_batch(&self.batch));
        }
        add(db.append_batch(&extra));
        let scraped = if down { 0.0 } else { self.exposed as f64 };
        let median = self.scrape_seconds.at(load);
        let seconds = if down {
            0.0004 + 0.0002 * rng.unit()
        } else {
            median * (0.5 * rng.normal()).exp()
        };
        for (labels, st, v) in &mut self.scrape {
            *st = t;
            *v = match labels.metric_name() {
                Some("up") => f64::from(u8::from(!down)),
                Some("scrape_duration_seconds") => seconds,
                Some("scrape_series_added") => 0.0,
                _ => scraped,
            };
        }
        add(db.append_batch(&self.scrape));
        total
    }

    /// This second's requests of every histogram group.
    fn draw(&mut self, load: Load, rng: &mut Rng) {
        for (g, d) in self.groups.iter().zip(self.drawn.iter_mut()) {
            let slow = 1.0 + g.slow.race * load.race + g.slow.search * load.search;
            *d = Drawn {
                n: rng.count(g.rate.at(load)),
                u: rng.unit(),
                median: g.median * slow,
                sigma: g.sigma,
            };
        }
    }
}

/// The lab's targets and their schedule.
pub struct Lab {
    targets: Vec<Target>,
    pub windows: Vec<Window>,
    pub steps: i64,
    pub start_ms: i64,
    rng: Rng,
}

/// What was written.
#[derive(Debug, Default, Clone)]
pub struct Written {
    pub series: usize,
    pub samples: u64,
    pub rejected: u64,
    pub steps: i64,
    pub end_ms: i64,
    /// Series per job.
    pub per_job: BTreeMap<String, usize>,
}

impl Lab {
    /// The lab over `steps` seconds ending at `end_ms`; `monitor` is the monitor's own
    /// `instance` (its listen address), so its self-scrape continues the backfilled series.
    pub fn new(
        steps: i64,
        end_ms: i64,
        seed: u64,
        filter: &Filter,
        monitor: &str,
    ) -> anyhow::Result<Lab> {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/exposition");
        let read = |name: &str| {
            std::fs::read_to_string(fixtures.join(name))
                .with_context(|| format!("failed to read tests/fixtures/exposition/{name}"))
        };
        let (app, postgres, redis) = (
            read("fastpick-text004.txt")?,
            read("postgres-exporter.txt")?,
            read("redis-exporter.txt")?,
        );
        let windows = schedule(steps);
        let outage = restart(steps, &windows);
        let lab_instance = "127.0.0.1:8080";
        let targets = vec![
            Target::build(
                "fastpick-app",
                lab_instance,
                137,
                Program::App,
                &[&app, &app_extra()],
                filter,
                r(0.0015, 0.004, 0.002),
                outage,
            )?,
            Target::build(
                "fastpick-proxy",
                lab_instance,
                412,
                Program::Proxy,
                &[&proxy_text()],
                filter,
                r(0.0008, 0.003, 0.001),
                outage,
            )?,
            Target::build(
                "postgres",
                "127.0.0.1:5432",
                655,
                Program::Postgres,
                &[&postgres, &postgres_extra()],
                filter,
                r(0.012, 0.03, 0.01),
                None,
            )?,
            Target::build(
                "redis",
                "127.0.0.1:6379",
                890,
                Program::Redis,
                &[&redis, &redis_extra()],
                filter,
                r(0.002, 0.0, 0.001),
                None,
            )?,
            Target::build(
                "processes",
                "localhost",
                251,
                Program::Processes,
                &[&processes_text()],
                filter,
                r(0.003, 0.002, 0.001),
                None,
            )?,
            Target::build(
                "fastpick-monitor",
                monitor,
                50,
                Program::Monitor,
                &[&monitor_text()],
                filter,
                r(0.0006, 0.0, 0.0),
                None,
            )?,
        ];
        if targets.iter().all(|t| t.sims.is_empty()) {
            bail!("the series filter kept no series");
        }
        Ok(Lab {
            targets,
            windows,
            steps,
            start_ms: end_ms - steps * 1000,
            rng: Rng::new(seed),
        })
    }

    /// Series that will be written.
    pub fn series(&self) -> usize {
        self.targets.iter().map(Target::series).sum()
    }

    /// The app's and proxy's restart (steps), if the range has one.
    pub fn outage(&self) -> Option<(i64, i64)> {
        self.targets.first().and_then(|t| t.outage)
    }

    /// Writes every scrape, then catches up with the wall clock (`now_ms` is asked after the
    /// planned steps; the extra seconds are idle). Flushes every `flush_every` steps.
    pub fn write(
        &mut self,
        db: &Db,
        flush_every: i64,
        now_ms: impl Fn() -> i64,
    ) -> anyhow::Result<Written> {
        let mut written = Written {
            series: self.series(),
            per_job: self
                .targets
                .iter()
                .map(|t| (t.job.to_owned(), t.series()))
                .collect(),
            ..Written::default()
        };
        let mut step = 0;
        let mut reported = 0;
        loop {
            let t_base = self.start_ms + step * 1000;
            if step >= self.steps && t_base > now_ms() {
                break;
            }
            let wobble = 0.85 + 0.3 * self.rng.unit();
            let load = Load::at(&self.windows, step, wobble);
            for target in &mut self.targets {
                // A few ms of timer jitter; now and then a late tick.
                let jitter = if self.rng.unit() < 0.01 {
                    10 + (self.rng.unit() * 30.0) as i64
                } else {
                    (self.rng.unit() * 5.0) as i64
                };
                let t = t_base + target.phase_ms + jitter;
                let s = target.scrape(db, step, t, load, &mut self.rng);
                written.samples += s.appended as u64;
                written.rejected += (s.out_of_order + s.duplicate_conflicts + s.invalid) as u64;
            }
            if step % flush_every == flush_every - 1 {
                db.flush().context("flush failed")?;
            }
            let hour = step / 3600;
            if hour > reported && step % 3600 == 0 {
                reported = hour;
                eprintln!("... {hour} h of {} h written", self.steps / 3600);
            }
            step += 1;
        }
        db.flush().context("flush failed")?;
        written.steps = step;
        written.end_ms = self.start_ms + step * 1000;
        Ok(written)
    }

    /// Jobs and their programs, for the printout.
    pub fn jobs(&self) -> Vec<(&'static str, String, &'static str)> {
        self.targets
            .iter()
            .map(|t| {
                let source = match t.program {
                    Program::App => "fastpick-text004.txt + issue route, issue outcomes, cache results, experiment info",
                    Program::Proxy => "fastpick_proxy_* as src/proxy/metrics.rs registers them",
                    Program::Postgres => "postgres-exporter.txt (no server label) + pg_locks_waiting, pg_stat_activity_waiting",
                    Program::Redis => "redis-exporter.txt + get, del",
                    Program::Processes => "namedprocess_namegroup_* for postgres, redis-server",
                    Program::Monitor => "fastpick_process_*, fastpick_monitor_*",
                };
                (t.job, t.instance.clone(), source)
            })
            .collect()
    }
}

/// A 90 s restart of the app and proxy a little before the middle of the range, clear of
/// every run.
fn restart(steps: i64, windows: &[Window]) -> Option<(i64, i64)> {
    let mut start = steps * 45 / 100;
    while windows
        .iter()
        .any(|w| w.start - 120 < start + 90 && start < w.end + 120)
    {
        start += 600;
    }
    (start + 90 < steps && steps >= 3600).then_some((start, start + 90))
}
