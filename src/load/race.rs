//! The `race` scenario (coupon-issue-test.js): N virtual users, each with its own token from
//! users.csv, wait at a common barrier, then each sends one POST /api/v1/coupon-issues for the
//! same coupon. 200/202 and 400 CP04/CP05 are correct; anything else (5xx, other codes,
//! connection errors, timeouts) is failed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use hyper::Method;
use hyper::body::Bytes;
use tokio::sync::Barrier;

use crate::load::client::{Conn, Outcome, Target};
use crate::load::stats::{Stats, Summary, Thresholds};
use crate::load::{CommonArgs, Progress, raise_fd_limit};

/// `fastpick load race`
#[derive(Debug, Clone, Args)]
pub struct RaceArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// users.csv from `fastpick seed users` (columns token or accessToken).
    #[arg(long, default_value = "users.csv")]
    pub users: PathBuf,
    /// The coupon every VU asks for (the original hard-coded 19).
    #[arg(long, default_value_t = 19)]
    pub coupon_id: i64,
    /// Virtual users, one request each; VU n uses row (n-1) mod rows of the CSV.
    #[arg(long, default_value_t = 1000)]
    pub vus: usize,
    /// Highest share of failed requests that passes (the original's threshold: 5%).
    #[arg(long, default_value_t = 0.05)]
    pub max_failed_rate: f64,
}

/// Reads the tokens column of a users.csv.
pub fn read_tokens(path: &Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read {}", path.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .collect();
    let column = header
        .iter()
        .position(|h| *h == "token")
        .or_else(|| header.iter().position(|h| *h == "accessToken"))
        .with_context(|| format!("{} has no token or accessToken column", path.display()))?;
    let tokens: Vec<String> = lines
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| l.split(',').nth(column).map(|t| t.trim().to_owned()))
        .collect();
    if tokens.is_empty() {
        bail!("{} holds no users", path.display());
    }
    Ok(tokens)
}

/// Tells whether an answer is one the race expects: issued, or sold out / already issued.
fn is_correct(outcome: &Outcome) -> bool {
    match outcome {
        Outcome::Http(200 | 202, _) => true,
        Outcome::Http(400, body) => serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v["code"].as_str().map(|c| c == "CP04" || c == "CP05"))
            .unwrap_or(false),
        _ => false,
    }
}

/// What the monitor's annotation says about a race.
pub fn tags(args: &RaceArgs) -> std::collections::BTreeMap<String, String> {
    std::collections::BTreeMap::from([
        ("vus".to_owned(), args.vus.to_string()),
        ("coupon_id".to_owned(), args.coupon_id.to_string()),
        ("size".to_owned(), format!("{} VUs", args.vus)),
    ])
}

/// Runs the race with the users of `args.users` and returns its summary.
pub async fn run(args: &RaceArgs) -> anyhow::Result<Summary> {
    race(args, read_tokens(&args.users)?).await
}

/// Runs the race with these users' tokens (`args.users` unread); the elapsed time is from the
/// barrier to the last answer.
pub async fn race(args: &RaceArgs, tokens: Vec<String>) -> anyhow::Result<Summary> {
    if tokens.is_empty() {
        bail!("the race needs at least one user");
    }
    raise_fd_limit();
    let target = Target::parse(&args.common.base_url).await?;
    let tokens = Arc::new(tokens);
    let stats = Stats::new();
    let barrier = Arc::new(Barrier::new(args.vus + 1));
    let body = Bytes::from(format!("{{\"couponId\":{}}}", args.coupon_id));
    let mut handles = Vec::with_capacity(args.vus);
    for vu in 0..args.vus {
        let (target, tokens, barrier, body) = (
            target.clone(),
            tokens.clone(),
            barrier.clone(),
            body.clone(),
        );
        let timeout = args.common.timeout;
        handles.push(tokio::spawn(async move {
            let token = &tokens[vu % tokens.len()];
            let mut conn = Conn::new(target);
            // Connections open before the barrier: the race is on the coupon, not on accept().
            // A failed connect is retried (and counted) by send().
            let _ = conn.connect().await;
            barrier.wait().await;
            let sent = Instant::now();
            let outcome = conn
                .send(
                    Method::POST,
                    "/api/v1/coupon-issues",
                    Some(token),
                    Some(body),
                    timeout,
                )
                .await;
            // Judged and recorded after the race, so the tool's own bookkeeping does not
            // delay the answers still coming in.
            (sent.elapsed(), outcome)
        }));
    }
    let vus = Arc::new(AtomicUsize::new(args.vus));
    let progress = Progress::start(stats.clone(), vus, args.common.quiet);
    barrier.wait().await;
    let start = Instant::now();
    let mut answers = Vec::with_capacity(handles.len());
    for h in handles {
        answers.push(h.await.context("a virtual user failed")?);
    }
    let elapsed = start.elapsed();
    let mut recorder = stats.recorder();
    for (latency, outcome) in &answers {
        let correct = is_correct(outcome);
        let not_5xx = !matches!(
            outcome,
            Outcome::Http(500..=599, _) | Outcome::Error(_) | Outcome::Timeout
        );
        let checks = [
            ("status is 200/202, or 400 CP04/CP05", correct),
            ("no 5xx, no connection error", not_5xx),
        ];
        recorder.record(*latency, outcome, correct, &checks);
    }
    drop(recorder);
    progress.stop();
    let thresholds = Thresholds {
        max_failed_rate: Some(args.max_failed_rate),
        max_p99: None,
    };
    Ok(stats.summary("race", elapsed, &thresholds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn correct_answers_are_issued_sold_out_or_already_issued() {
        let http = |s, b: &str| Outcome::Http(s, Bytes::from(b.to_owned()));
        assert!(is_correct(&http(200, "{}")));
        assert!(is_correct(&http(202, "")));
        assert!(is_correct(&http(400, r#"{"code":"CP04"}"#)));
        assert!(is_correct(&http(400, r#"{"code":"CP05"}"#)));
        assert!(!is_correct(&http(400, r#"{"code":"CP03"}"#)));
        assert!(!is_correct(&http(401, r#"{"code":"C003"}"#)));
        assert!(!is_correct(&http(503, "")));
        assert!(!is_correct(&Outcome::Timeout));
    }

    #[test]
    fn tokens_come_from_token_or_access_token_column() {
        let dir = std::env::temp_dir().join(format!("fastpick-csv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let a = dir.join("a.csv");
        std::fs::write(&a, "email,password,accessToken\nx@y,pw,T1\nz@y,pw,T2\n").expect("write");
        assert_eq!(read_tokens(&a).expect("reads"), vec!["T1", "T2"]);
        std::fs::write(&a, "token,email\nT9,q@y\n").expect("write");
        assert_eq!(read_tokens(&a).expect("reads"), vec!["T9"]);
        std::fs::write(&a, "email\nx@y\n").expect("write");
        assert!(read_tokens(&a).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }
}
