//! The `race` scenario (coupon-issue-test.js): N virtual users, each with its own token from
//! users.csv, wait at a common barrier, then each sends one POST /api/v1/coupon-issues for the
//! same coupon. The original script's checks are reported by their names: "is acceptable
//! response" (200, 202 or 400), "success or out of stock" (200/202, or 400 CP04/CP05) and "no
//! system error" (neither 500 nor no answer); its threshold is `http_req_failed: rate<0.05`,
//! where k6 counts every status >= 400, so sold-out answers fail it unless
//! `--expected-statuses` says they are expected.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use hyper::Method;
use hyper::body::Bytes;
use tokio::sync::Barrier;

use crate::load::client::{Conn, Outcome, Target, Timed};
use crate::load::k6::Threshold;
use crate::load::stats::{Sample, Stats, Summary, Thresholds};
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
    /// The original's threshold `http_req_failed: rate<X` (X = 0.05); k6 counts every status
    /// >= 400 unless `--expected-statuses` says otherwise.
    #[arg(long, default_value_t = 0.05)]
    pub max_failed_rate: f64,
    /// Opens each VU's connection after the barrier, as k6 does (its VUs connect on their
    /// first request), instead of before it; the connects then race too and show in
    /// http_req_connecting.
    #[arg(long)]
    pub connect_at_barrier: bool,
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

/// The original script's check names.
pub const ACCEPTABLE: &str = "is acceptable response";
pub const SUCCESS_OR_OUT_OF_STOCK: &str = "success or out of stock";
pub const NO_SYSTEM_ERROR: &str = "no system error";

/// The original's checks on one answer, as k6 records them: in order, and when a 400's body
/// is not JSON, `r.json()` throws in "success or out of stock", which k6 records as failed
/// and which ends the check call before "no system error".
pub fn checks(outcome: &Outcome) -> Vec<(&'static str, bool)> {
    let status = match outcome {
        Outcome::Http(status, _) => *status,
        // k6's status for no answer.
        Outcome::Timeout | Outcome::Error(_) => 0,
    };
    let acceptable = matches!(status, 200 | 202 | 400);
    let success = match outcome {
        Outcome::Http(200 | 202, _) => Some(true),
        Outcome::Http(400, body) => {
            serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .map(|v| {
                    v["code"]
                        .as_str()
                        .is_some_and(|c| c == "CP04" || c == "CP05")
                })
        }
        _ => Some(false),
    };
    match success {
        Some(success) => vec![
            (ACCEPTABLE, acceptable),
            (SUCCESS_OR_OUT_OF_STOCK, success),
            (NO_SYSTEM_ERROR, status != 500 && status != 0),
        ],
        None => vec![(ACCEPTABLE, acceptable), (SUCCESS_OR_OUT_OF_STOCK, false)],
    }
}

/// Tells whether an answer is one the race expects: issued, or sold out / already issued.
#[cfg(test)]
fn is_correct(outcome: &Outcome) -> bool {
    checks(outcome).iter().all(|(_, ok)| *ok)
}

/// The original script's thresholds with this bar.
pub fn original_thresholds(max_failed_rate: f64) -> Vec<Threshold> {
    vec![Threshold {
        metric: "http_req_failed".to_owned(),
        expr: format!("rate<{max_failed_rate}"),
        agg: crate::load::k6::Agg::Rate,
        op: crate::load::k6::Op::Lt,
        bound: max_failed_rate,
    }]
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
    let stats = Stats::expecting(args.common.k6.expected_statuses.clone());
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
        let early = !args.connect_at_barrier;
        handles.push(tokio::spawn(async move {
            let token = &tokens[vu % tokens.len()];
            let mut conn = Conn::new(target);
            if early {
                // Connections open before the barrier: the race is on the coupon, not on
                // accept(). A failed connect is retried (and counted) by the send.
                let _ = conn.connect().await;
            }
            barrier.wait().await;
            // Judged and recorded after the race, so the tool's own bookkeeping does not
            // delay the answers still coming in.
            conn.send_timed(
                Method::POST,
                "/api/v1/coupon-issues",
                Some(token),
                Some(body),
                timeout,
            )
            .await
        }));
    }
    let vus = Arc::new(AtomicUsize::new(args.vus));
    let progress = Progress::start(stats.clone(), vus, args.common.quiet);
    barrier.wait().await;
    let start = Instant::now();
    let mut answers: Vec<Timed> = Vec::with_capacity(handles.len());
    for h in handles {
        answers.push(h.await.context("a virtual user failed")?);
    }
    let elapsed = start.elapsed();
    let mut recorder = stats.recorder();
    for answer in &answers {
        recorder.sample(Sample {
            duration: answer.duration,
            connecting: answer.connecting,
            phases: answer.phases,
            outcome: &answer.outcome,
            checks: &checks(&answer.outcome),
        });
    }
    drop(recorder);
    progress.stop();
    let thresholds = Thresholds::or_given(
        original_thresholds(args.max_failed_rate),
        &args.common.k6.thresholds,
    );
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
    fn checks_are_the_originals_in_k6s_order() {
        let http = |s, b: &str| Outcome::Http(s, Bytes::from(b.to_owned()));
        let names = |o: &Outcome| -> Vec<(&str, bool)> { checks(o) };
        assert_eq!(
            names(&http(400, r#"{"code":"CP04"}"#)),
            [
                (ACCEPTABLE, true),
                (SUCCESS_OR_OUT_OF_STOCK, true),
                (NO_SYSTEM_ERROR, true)
            ]
        );
        assert_eq!(
            names(&http(400, r#"{"code":"CP03"}"#)),
            [
                (ACCEPTABLE, true),
                (SUCCESS_OR_OUT_OF_STOCK, false),
                (NO_SYSTEM_ERROR, true)
            ]
        );
        assert_eq!(
            names(&http(503, "")),
            [
                (ACCEPTABLE, false),
                (SUCCESS_OR_OUT_OF_STOCK, false),
                (NO_SYSTEM_ERROR, true)
            ],
            "the original's 'no system error' is only 500 or no answer"
        );
        assert_eq!(
            names(&Outcome::Timeout),
            [
                (ACCEPTABLE, false),
                (SUCCESS_OR_OUT_OF_STOCK, false),
                (NO_SYSTEM_ERROR, false)
            ]
        );
        assert_eq!(
            names(&http(400, "<html>")),
            [(ACCEPTABLE, true), (SUCCESS_OR_OUT_OF_STOCK, false)],
            "r.json() throws: k6 stops the check call there"
        );
        assert_eq!(
            original_thresholds(0.05)[0].to_string(),
            "http_req_failed: rate<0.05"
        );
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
