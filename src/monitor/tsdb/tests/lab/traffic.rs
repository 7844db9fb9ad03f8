//! The lab's targets as a traffic model: the captured expositions parsed into series, each
//! given a way to move (see `rules`), scraped with one timestamp per target and scrape.

use std::collections::HashMap;

use crate::monitor::series::Labels;

use super::rules::{REDIS_LOAD_CMDS, app_group, app_kind, label, noise, postgres_kind, redis_kind};

const FASTPICK: &str =
    include_str!("../../../../../tests/fixtures/exposition/fastpick-text004.txt");
const POSTGRES: &str =
    include_str!("../../../../../tests/fixtures/exposition/postgres-exporter.txt");
const REDIS: &str = include_str!("../../../../../tests/fixtures/exposition/redis-exporter.txt");

/// A small xorshift generator, so every run produces the same samples.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in `[0, 1)`.
    pub(super) fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n`.
    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// A count with mean `rate`: uniform in `0..=2·rate`, or 0/1 for rates under one.
    fn count(&mut self, rate: f64) -> u64 {
        if rate <= 0.0 {
            0
        } else if rate < 1.0 {
            u64::from(self.chance(rate))
        } else {
            self.below((2.0 * rate) as u64 + 1)
        }
    }
}

/// How a series' value moves from one scrape to the next. Rates are per second, split
/// into the quiet half (`idle`) and the loaded half (`load`).
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    Constant,
    /// `value = ticks · step / scale`, ticks growing by [`Rng::count`].
    Counter {
        idle: f64,
        load: f64,
        step: u64,
        scale: f64,
    },
    /// Moves by ±1..=3 steps with the given chance per scrape, staying within `max` steps.
    Walk {
        idle: f64,
        load: f64,
        step: f64,
        max: i64,
    },
    /// A fresh full-precision value in `[lo, hi)` with the given chance per scrape.
    Noise {
        idle: f64,
        load: f64,
        lo: f64,
        hi: f64,
    },
    /// A Go heap: grows by up to `grow` bytes a scrape, back to `lo` past `hi` (a GC).
    Heap {
        lo: u64,
        hi: u64,
        grow: u64,
    },
    /// A histogram's bucket (`le` as a fraction of requests), count or sum.
    Bucket {
        group: usize,
        share: f64,
    },
    Count {
        group: usize,
    },
    Sum {
        group: usize,
    },
}

/// Requests per second of one histogram (all its series move together).
#[derive(Debug, Clone, Copy)]
pub(super) struct Group {
    pub(super) idle: f64,
    pub(super) load: f64,
    /// Mean latency in seconds, for the `_sum`.
    pub(super) mean: f64,
    /// Requests in the current scrape.
    pub(super) now: u64,
}

#[derive(Debug, Clone)]
struct SimSeries {
    labels: Labels,
    kind: Kind,
    value: f64,
    ticks: u64,
    steps: i64,
    /// The value a walk starts from.
    base: f64,
    /// Index of the first scrape that has the series.
    from: i64,
}

/// One scrape target.
pub(super) struct Target {
    pub(super) job: &'static str,
    phase_ms: i64,
    series: Vec<SimSeries>,
    groups: Vec<Group>,
}

impl Target {
    /// Number of series (all of them, including those that appear under load).
    pub(super) fn len(&self) -> usize {
        self.series.len()
    }
}

/// An exposition line: metric name, labels, value.
type Line = (String, Vec<(String, String)>, f64);

/// Parses text exposition lines; comments are skipped.
fn parse(text: &str) -> Vec<Line> {
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = line[..name_end].to_owned();
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices();
            let mut label = String::new();
            let mut end = body.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '}' => {
                        end = i + 1;
                        break;
                    }
                    ',' | ' ' => {}
                    '=' => {
                        chars.next(); // the opening quote
                        let mut value = String::new();
                        while let Some((_, c)) = chars.next() {
                            match c {
                                '"' => break,
                                '\\' => value.push(chars.next().map_or('\\', |(_, c)| c)),
                                c => value.push(c),
                            }
                        }
                        labels.push((std::mem::take(&mut label), value));
                    }
                    c => label.push(c),
                }
            }
            rest = &body[end..];
        }
        let value = rest.split_whitespace().next().unwrap_or("0");
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or(0.0),
        };
        out.push((name, labels, value));
    }
    out
}

/// The proxy's exposition, as its registry writes it (no capture exists).
fn proxy_exposition() -> String {
    let mut text = String::new();
    let app = "application=\"fastpick-proxy\"";
    for (route, status) in [
        ("api", "200"),
        ("api", "404"),
        ("api", "409"),
        ("api", "502"),
        ("actuator", "200"),
        ("ui", "200"),
        ("ui", "304"),
        ("denied", "403"),
        ("limited", "429"),
    ] {
        text += &format!(
            "fastpick_proxy_requests_total{{{app},route=\"{route}\",status=\"{status}\"}} 3\n"
        );
    }
    let les = [
        "0.0005", "0.001", "0.002", "0.004", "0.008", "0.016", "0.032", "0.064", "0.128", "0.256",
        "0.512", "1.024", "2.048", "4.096", "8.192", "16.384", "+Inf",
    ];
    for upstream in ["127.0.0.1:8081", "127.0.0.1:8082"] {
        let l = format!("{app},upstream=\"{upstream}\"");
        for le in les {
            text += &format!("fastpick_proxy_upstream_seconds_bucket{{{l},le=\"{le}\"}} 2\n");
        }
        text += &format!("fastpick_proxy_upstream_seconds_sum{{{l}}} 0.0123\n");
        text += &format!("fastpick_proxy_upstream_seconds_count{{{l}}} 2\n");
        text += &format!("fastpick_proxy_upstream_up{{{l}}} 1\n");
        text += &format!("fastpick_proxy_upstream_requests_in_flight{{{l}}} 0\n");
    }
    text += &format!("fastpick_proxy_requests_in_flight{{{app}}} 0\n");
    text += &format!("fastpick_proxy_slow_heads_total{{{app}}} 0\n");
    for (name, v) in [
        ("cpu_seconds", "0.41"),
        ("resident_memory_bytes", "31457280"),
        ("virtual_memory_bytes", "1210056704"),
        ("open_fds", "21"),
        ("threads", "4"),
    ] {
        text += &format!("fastpick_process_{name}{{{app}}} {v}\n");
    }
    text
}

/// Series the app exposes only once load starts: the coupon-issue routes.
fn app_load_exposition() -> String {
    let mut text = String::new();
    let les = [
        "0.0005", "0.001", "0.002", "0.004", "0.008", "0.016", "0.032", "0.064", "0.128", "0.256",
        "0.512", "1.024", "2.048", "4.096", "8.192", "16.384", "+Inf",
    ];
    for (status, outcome) in [("201", "SUCCESS"), ("409", "CLIENT_ERROR")] {
        let l = format!(
            "application=\"fastpick-be\",method=\"POST\",uri=\"/api/v1/coupon-issues\",status=\"{status}\",outcome=\"{outcome}\""
        );
        for le in les {
            text += &format!("http_server_requests_seconds_bucket{{{l},le=\"{le}\"}} 0\n");
        }
        text += &format!("http_server_requests_seconds_sum{{{l}}} 0\n");
        text += &format!("http_server_requests_seconds_count{{{l}}} 0\n");
    }
    text
}

/// Commands redis sees only under load, with their per-command families.
fn redis_load_exposition() -> String {
    let mut text = String::new();
    for (cmd, _) in REDIS_LOAD_CMDS {
        if cmd == "set" {
            continue;
        }
        for family in [
            "redis_commands_total",
            "redis_commands_duration_seconds_total",
            "redis_commands_failed_calls_total",
            "redis_commands_rejected_calls_total",
            "redis_latency_percentiles_usec_sum",
            "redis_latency_percentiles_usec_count",
        ] {
            text += &format!("{family}{{cmd=\"{cmd}\"}} 0\n");
        }
        for q in ["50", "99", "99.9"] {
            text +=
                &format!("redis_latency_percentiles_usec{{cmd=\"{cmd}\",quantile=\"{q}\"}} 0\n");
        }
    }
    text
}

/// Groups the histogram series of an exposition; returns each series' kind.
fn histogram_kinds(
    parsed: &[Line],
    groups: &mut Vec<Group>,
    group_of: impl Fn(&[(String, String)]) -> Group,
) -> HashMap<usize, Kind> {
    let mut by_key: HashMap<(String, Vec<(String, String)>), usize> = HashMap::new();
    let mut kinds = HashMap::new();
    for (i, (name, labels, _)) in parsed.iter().enumerate() {
        let (base, part) = match name.rsplit_once('_') {
            Some((b, p @ ("bucket" | "count" | "sum"))) => (b, p),
            _ => continue,
        };
        let is_histogram = base.starts_with("http_server_requests_seconds")
            || base.starts_with("fastpick_search_statement_seconds")
            || base.starts_with("fastpick_proxy_upstream_seconds");
        if !is_histogram {
            continue;
        }
        let key_labels: Vec<(String, String)> =
            labels.iter().filter(|(n, _)| n != "le").cloned().collect();
        let group = *by_key
            .entry((base.to_owned(), key_labels))
            .or_insert_with(|| {
                groups.push(group_of(labels));
                groups.len() - 1
            });
        let kind = match part {
            "bucket" => {
                let le = label(labels, "le");
                let le: f64 = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap_or(0.0)
                };
                // Latencies spread log-uniformly over 0.5..64× the group's mean / 8.
                let mean = groups[group].mean.max(1e-4);
                let share = ((le / (mean / 8.0)).log2() / 7.0).clamp(0.0, 1.0);
                Kind::Bucket { group, share }
            }
            "count" => Kind::Count { group },
            _ => Kind::Sum { group },
        };
        kinds.insert(i, kind);
    }
    kinds
}

/// Builds a target from expositions present from the start and from `load_from`.
fn target(
    job: &'static str,
    instance: &str,
    phase_ms: i64,
    texts: [(&str, i64); 2],
    kind_of: fn(&str, &[(String, String)]) -> Kind,
    group_of: fn(&[(String, String)]) -> Group,
) -> Target {
    let mut parsed = Vec::new();
    let mut from = Vec::new();
    for (text, start) in texts {
        let lines = parse(text);
        from.extend(std::iter::repeat_n(start, lines.len()));
        parsed.extend(lines);
    }
    let mut groups = Vec::new();
    let hist = histogram_kinds(&parsed, &mut groups, group_of);
    let mut series: Vec<SimSeries> = parsed
        .into_iter()
        .enumerate()
        .map(|(i, (name, mut labels, value))| {
            let kind = hist
                .get(&i)
                .copied()
                .unwrap_or_else(|| kind_of(&name, &labels));
            let ticks = match kind {
                Kind::Counter { step, scale, .. } => (value * scale / step as f64).max(0.0) as u64,
                _ => 0,
            };
            labels.push(("__name__".into(), name));
            labels.push(("job".into(), job.into()));
            labels.push(("instance".into(), instance.into()));
            SimSeries {
                labels: Labels::new(labels),
                kind,
                value,
                ticks,
                steps: 0,
                base: value,
                from: from[i],
            }
        })
        .collect();
    for name in [
        "up",
        "scrape_duration_seconds",
        "scrape_samples_scraped",
        "scrape_samples_post_metric_relabeling",
        "scrape_series_added",
    ] {
        let kind = match name {
            "scrape_duration_seconds" => noise(0.001, 0.02),
            _ => Kind::Constant,
        };
        series.push(SimSeries {
            labels: Labels::from_pairs(&[("__name__", name), ("job", job), ("instance", instance)]),
            kind,
            value: f64::from(u8::from(name == "up")),
            ticks: 0,
            steps: 0,
            base: 0.0,
            from: 0,
        });
    }
    Target {
        job,
        phase_ms,
        series,
        groups,
    }
}

fn no_group(_: &[(String, String)]) -> Group {
    Group {
        idle: 0.0,
        load: 0.0,
        mean: 0.001,
        now: 0,
    }
}

/// The lab's four targets; series that appear under load start at scrape `load_from`.
pub(super) fn lab_targets(load_from: i64) -> Vec<Target> {
    let app_load = app_load_exposition();
    let proxy = proxy_exposition();
    let redis_load = redis_load_exposition();
    vec![
        target(
            "app",
            "127.0.0.1:8080",
            137,
            [(FASTPICK, 0), (&app_load, load_from)],
            app_kind,
            app_group,
        ),
        target(
            "proxy",
            "127.0.0.1:8443",
            412,
            [(&proxy, 0), ("", 0)],
            app_kind,
            |labels| {
                let (idle, load) = if label(labels, "upstream").is_empty() {
                    (0.0, 0.0)
                } else {
                    (0.0, 320.0)
                };
                Group {
                    idle,
                    load,
                    mean: 0.006,
                    now: 0,
                }
            },
        ),
        target(
            "postgres",
            "127.0.0.1:9187",
            655,
            [(POSTGRES, 0), ("", 0)],
            postgres_kind,
            no_group,
        ),
        target(
            "redis",
            "127.0.0.1:9121",
            890,
            [(REDIS, 0), (&redis_load, load_from)],
            redis_kind,
            no_group,
        ),
    ]
}

impl Target {
    /// The samples of scrape `step` (at `t0 + step` seconds plus phase and jitter).
    pub(super) fn scrape(
        &mut self,
        step: i64,
        loaded: bool,
        t0: i64,
        rng: &mut Rng,
    ) -> Vec<(Labels, i64, f64)> {
        // A few ms of timer and scheduling jitter; now and then a late tick.
        let jitter = if rng.chance(0.01) {
            10 + rng.below(30)
        } else {
            rng.below(5)
        };
        let t = t0 + step * 1000 + self.phase_ms + jitter as i64;
        // Load ramps up over a minute and wobbles by ±20 % from second to second.
        let level = if loaded { 0.8 + 0.4 * rng.unit() } else { 0.0 };
        for g in &mut self.groups {
            g.now = rng.count(g.idle + (g.load - g.idle) * level);
        }
        let mut out = Vec::with_capacity(self.series.len());
        for s in &mut self.series {
            if step < s.from {
                continue;
            }
            s.advance(&self.groups, loaded, level, rng);
            out.push((s.labels.clone(), t, s.value));
        }
        out
    }
}

impl SimSeries {
    fn advance(&mut self, groups: &[Group], loaded: bool, level: f64, rng: &mut Rng) {
        let pick = |idle: f64, load: f64| if loaded { load } else { idle };
        match self.kind {
            Kind::Constant => {}
            Kind::Counter {
                idle,
                load,
                step,
                scale,
            } => {
                let rate = if loaded {
                    idle + (load - idle) * level
                } else {
                    idle
                };
                self.ticks += rng.count(rate);
                self.value = (self.ticks * step) as f64 / scale;
            }
            Kind::Walk {
                idle,
                load,
                step,
                max,
            } => {
                if rng.chance(pick(idle, load)) {
                    let by = 1 + rng.below(3) as i64;
                    let by = if rng.chance(0.5) { by } else { -by };
                    self.steps = (self.steps + by).clamp(-max, max);
                    self.value = walked(self.base, self.steps, step);
                }
            }
            Kind::Noise { idle, load, lo, hi } => {
                if rng.chance(pick(idle, load)) {
                    self.value = lo + (hi - lo) * rng.unit();
                }
            }
            Kind::Heap { lo, hi, grow } => {
                let v = (self.value as u64).max(lo) + rng.below(grow);
                self.value = if v > hi { lo + rng.below(grow) } else { v } as f64;
            }
            Kind::Bucket { group, share } => {
                let r = groups[group].now as f64;
                let spread = (r * share + rng.unit() * r * 0.05).floor().min(r);
                self.value += spread;
            }
            Kind::Count { group } => self.value += groups[group].now as f64,
            Kind::Sum { group } => {
                let g = groups[group];
                self.value += g.now as f64 * g.mean * (0.7 + 0.6 * rng.unit());
            }
        }
    }
}

/// A walk's value `steps` steps from `base`, never negative; fractional steps are kept
/// decimal (`n / 100` is what parsing "1.23" gives).
fn walked(base: f64, steps: i64, step: f64) -> f64 {
    if step >= 1.0 {
        return (base + steps as f64 * step).max(0.0);
    }
    let per_unit = (1.0 / step).round();
    let n = (base * per_unit).round() + steps as f64;
    n.max(0.0) / per_unit
}
