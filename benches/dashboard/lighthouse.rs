//! Lighthouse 12.2.3 (pinned in `benches/dashboard/package.json`) on Debian's chromium, one
//! run at a time, each in its own process group so that a run past its time limit takes its
//! browser with it; and what the bench reads from a JSON report.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

/// The browser and its flags.
pub const CHROME: &str = "/usr/bin/chromium";
pub const CHROME_FLAGS: &str = "--headless=new --no-sandbox --disable-gpu --disable-background-networking --disable-component-update --disable-sync --no-first-run";

/// A child in its own process group: the whole group gets SIGTERM, then SIGKILL, when dropped
/// (and SIGTERM when the bench dies first).
pub struct Group(Child);

impl Group {
    pub fn spawn(cmd: &mut Command) -> std::io::Result<Group> {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        // SAFETY: prctl is async-signal-safe and touches only the new process.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            })
        };
        cmd.spawn().map(Group)
    }

    /// Waits up to `limit` for the exit status; `None` when the limit passed (the group is
    /// then stopped).
    pub fn wait(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(status)) = self.0.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.stop();
        None
    }

    fn stop(&mut self) {
        let group = -(self.0.id() as i32);
        // SAFETY: signals the process group this bench started (its id is our child's pid).
        unsafe { libc::kill(group, libc::SIGTERM) };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            // The leader may be gone while the browser lingers: probe the group.
            // SAFETY: signal 0 only checks that the group still exists.
            let alive = unsafe { libc::kill(group, 0) } == 0;
            let _ = self.0.try_wait();
            if !alive {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // SAFETY: as above.
        unsafe { libc::kill(group, libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Lighthouse's form factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// The default: a mid-range phone, simulated slow 4G and 4x CPU slowdown.
    Mobile,
    /// `--preset=desktop`.
    Desktop,
}

impl Preset {
    pub fn name(self) -> &'static str {
        match self {
            Preset::Mobile => "mobile (default)",
            Preset::Desktop => "desktop (--preset=desktop)",
        }
    }
}

/// One report's figures.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub performance: Option<f64>,
    pub accessibility: Option<f64>,
    pub fcp_ms: f64,
    pub lcp_ms: f64,
    pub tbt_ms: f64,
    pub cls: f64,
    /// `transferSize` of the Script and Stylesheet requests.
    pub js_css_transfer: u64,
    /// The JS and CSS URLs (same origin).
    pub js_css_urls: Vec<String>,
    pub requests: usize,
    pub failing_a11y: Vec<String>,
    /// `id: title — display value (savings)`, biggest first.
    pub findings: Vec<(f64, String)>,
    /// Diagnostics worth reading whatever their score.
    pub diagnostics: Vec<String>,
    pub problems: Vec<String>,
    /// The machine's 1-minute load average when the run started (set by the caller).
    pub load_before: f64,
}

/// Runs Lighthouse once and reads its report.
pub fn run(
    node_dir: &Path,
    url: &str,
    preset: Preset,
    out: &Path,
    tmp: &Path,
    limit: Duration,
) -> anyhow::Result<Report> {
    let json = run_json(
        node_dir,
        url,
        preset,
        out,
        tmp,
        limit,
        "performance,accessibility",
    )?;
    Ok(read(&json))
}

/// Runs Lighthouse once on the `categories` given (comma-separated) and returns its JSON
/// report.
pub fn run_json(
    node_dir: &Path,
    url: &str,
    preset: Preset,
    out: &Path,
    tmp: &Path,
    limit: Duration,
    categories: &str,
) -> anyhow::Result<Value> {
    let cli = node_dir.join("node_modules/lighthouse/cli/index.js");
    let log = std::fs::File::create(out.with_extension("log"))?;
    let mut cmd = Command::new("node");
    cmd.arg(&cli)
        .arg(url)
        .args(["--output=json", "--quiet"])
        .arg(format!("--output-path={}", out.display()))
        .arg(format!("--only-categories={categories}"))
        .arg(format!("--chrome-flags={CHROME_FLAGS}"))
        .env("CHROME_PATH", CHROME)
        // chrome-launcher's throwaway profile goes here, removed with the bench's temp dir.
        .env("TMPDIR", tmp)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log));
    if preset == Preset::Desktop {
        cmd.arg("--preset=desktop");
    }
    let mut child =
        Group::spawn(&mut cmd).context("failed to start node (apt-get install nodejs)")?;
    let status = child.wait(limit);
    drop(child);
    let text = std::fs::read_to_string(out).ok();
    let Some(text) = text else {
        let log = std::fs::read_to_string(out.with_extension("log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(8).collect();
        bail!(
            "lighthouse wrote no report ({}); its last lines:\n{}",
            status.map_or("timed out".to_owned(), |s| s.to_string()),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    };
    serde_json::from_str(&text).context("lighthouse's report is not JSON")
}

fn score(json: &Value, category: &str) -> Option<f64> {
    json["categories"][category]["score"]
        .as_f64()
        .map(|s| (s * 100.0).round())
}

fn numeric(json: &Value, audit: &str) -> f64 {
    json["audits"][audit]["numericValue"]
        .as_f64()
        .unwrap_or(f64::NAN)
}

/// Reads the figures the bench prints from a Lighthouse JSON report.
pub fn read(json: &Value) -> Report {
    let mut report = Report {
        performance: score(json, "performance"),
        accessibility: score(json, "accessibility"),
        fcp_ms: numeric(json, "first-contentful-paint"),
        lcp_ms: numeric(json, "largest-contentful-paint"),
        tbt_ms: numeric(json, "total-blocking-time"),
        cls: numeric(json, "cumulative-layout-shift"),
        ..Report::default()
    };
    let items = json["audits"]["network-requests"]["details"]["items"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    report.requests = items.len();
    for item in &items {
        let kind = item["resourceType"].as_str().unwrap_or("");
        if kind == "Script" || kind == "Stylesheet" {
            report.js_css_transfer += item["transferSize"].as_f64().unwrap_or(0.0) as u64;
            if let Some(url) = item["url"].as_str().filter(|u| u.starts_with("http")) {
                report.js_css_urls.push(url.to_owned());
            }
        }
    }
    if let Some(e) = json["runtimeError"]["code"].as_str() {
        report.problems.push(format!(
            "runtime error {e}: {}",
            json["runtimeError"]["message"].as_str().unwrap_or("")
        ));
    }
    for w in json["runWarnings"].as_array().into_iter().flatten() {
        report
            .problems
            .push(format!("warning: {}", w.as_str().unwrap_or("")));
    }
    report.failing_a11y = failing(json, "accessibility");
    report.findings = findings(json);
    report.diagnostics = diagnostics(json);
    report
}

/// The category's audits that count and did not pass.
fn failing(json: &Value, category: &str) -> Vec<String> {
    let refs = json["categories"][category]["auditRefs"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    refs.iter()
        .filter_map(|r| {
            let id = r["id"].as_str()?;
            let audit = &json["audits"][id];
            let counted = matches!(
                audit["scoreDisplayMode"].as_str(),
                Some("binary" | "numeric" | "metricSavings")
            );
            let score = audit["score"].as_f64()?;
            (counted && score < 1.0).then(|| {
                let n = audit["details"]["items"].as_array().map_or(0, Vec::len);
                format!("{id} ({n} elements)")
            })
        })
        .collect()
}

/// The performance audits with savings or a failing score: opportunities and diagnostics.
fn findings(json: &Value) -> Vec<(f64, String)> {
    let refs = json["categories"]["performance"]["auditRefs"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut out: Vec<(f64, String)> = refs
        .iter()
        .filter(|r| r["group"] != "metrics")
        .filter_map(|r| {
            let id = r["id"].as_str()?;
            let audit = &json["audits"][id];
            let mode = audit["scoreDisplayMode"].as_str().unwrap_or("");
            if matches!(mode, "notApplicable" | "manual" | "error") {
                return None;
            }
            let savings_ms = audit["details"]["overallSavingsMs"].as_f64().unwrap_or(0.0);
            let savings_bytes = audit["details"]["overallSavingsBytes"]
                .as_f64()
                .unwrap_or(0.0);
            let metric: Vec<String> = audit["metricSavings"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| {
                    v.as_f64()
                        .filter(|x| *x > 0.0)
                        .map(|x| format!("{k} {x:.0}"))
                })
                .collect();
            let failing = audit["score"].as_f64().is_some_and(|s| s < 0.9);
            if !failing && savings_ms <= 0.0 && metric.is_empty() {
                return None;
            }
            let mut line = format!(
                "{id}: {} — {}",
                audit["title"].as_str().unwrap_or(""),
                audit["displayValue"].as_str().unwrap_or("")
            );
            if savings_ms > 0.0 || savings_bytes > 0.0 {
                line += &format!(
                    " (saves ~{savings_ms:.0} ms, {:.1} KiB)",
                    savings_bytes / 1024.0
                );
            }
            if !metric.is_empty() {
                line += &format!(" [metric savings: {}]", metric.join(", "));
            }
            let worst = worst_items(audit);
            if !worst.is_empty() {
                line += &format!("; worst: {}", worst.join(", "));
            }
            let weight =
                savings_ms.max(0.0) + 1000.0 * (1.0 - audit["score"].as_f64().unwrap_or(1.0));
            Some((weight, line))
        })
        .collect();
    out.sort_by(|a, b| b.0.total_cmp(&a.0));
    out
}

/// Up to three of an audit's items with a URL, biggest waste first: path (and the start of
/// the query string), and the bytes or ms it could save.
fn worst_items(audit: &Value) -> Vec<String> {
    let mut items: Vec<(f64, String)> = audit["details"]["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| {
            let url = item["url"].as_str()?;
            let path = url.splitn(4, '/').nth(3).map_or(url, |p| p);
            let short: String = path.chars().take(70).collect();
            let ellipsis = if path.chars().count() > 70 { "…" } else { "" };
            let bytes = item["wastedBytes"].as_f64().unwrap_or(0.0);
            let ms = item["wastedMs"].as_f64().unwrap_or(0.0);
            let cost = if bytes > 0.0 {
                format!("{:.1} KiB", bytes / 1024.0)
            } else {
                format!("{ms:.0} ms")
            };
            Some((bytes.max(ms), format!("/{short}{ellipsis} ({cost})")))
        })
        .collect();
    items.sort_by(|a, b| b.0.total_cmp(&a.0));
    let total = items.len();
    let mut out: Vec<String> = items.into_iter().take(3).map(|(_, s)| s).collect();
    if total > 3 {
        out.push(format!("and {} more", total - 3));
    }
    out
}

/// Diagnostics the dashboard's author wants whatever their score.
fn diagnostics(json: &Value) -> Vec<String> {
    [
        "server-response-time",
        "mainthread-work-breakdown",
        "bootup-time",
        "long-tasks",
        "dom-size",
        "total-byte-weight",
        "critical-request-chains",
        "network-rtt",
    ]
    .iter()
    .filter_map(|id| {
        let audit = &json["audits"][id];
        let value = audit["displayValue"].as_str()?;
        Some(format!(
            "{id}: {} — {value}",
            audit["title"].as_str().unwrap_or("")
        ))
    })
    .collect()
}

/// The median of the finite values (upper middle of an even count), NaN when none.
pub fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `benches/dashboard`, with Lighthouse installed there (`npm ci` when `node_modules` is
/// missing).
pub fn ensure_installed() -> anyhow::Result<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/dashboard");
    if !dir.join("node_modules/lighthouse/cli/index.js").exists() {
        eprintln!("installing Lighthouse: npm ci in {}", dir.display());
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .status()
            .context("npm not found: apt-get install npm")?;
        if !status.success() {
            bail!("npm ci failed in {}", dir.display());
        }
    }
    Ok(dir)
}
