//! `fastpick lab`: one command per experiment of the original lab, run from the load host
//! against a running deployment (`fastpick demo` on one machine, or VM1's proxy in the four-host
//! topology). Each command logs in as an ADMIN, switches the app through
//! `/api/v1/admin/experiment`, runs the load scenario once per variant, reads the database's
//! truth through the API and what the servers did from the monitor, and prints one table;
//! `--json`/`--markdown` write it as report files, and each run is an annotation on the
//! monitor's dashboard. The app's switches are put back as they were at the end.

pub mod api;
pub mod race;
pub mod report;
pub mod search;
pub mod server;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::lab::api::{Admin, Credentials, Switches};
use crate::load::CommonArgs;

/// `fastpick lab`
#[derive(Debug, Args)]
pub struct LabArgs {
    #[command(subcommand)]
    pub experiment: Experiment,
}

/// The experiments.
#[derive(Debug, Subcommand)]
pub enum Experiment {
    /// First-come issuing: the 1,000-VU race once per issue strategy, checked against the
    /// database.
    Race(race::RaceLabArgs),
    /// Coupon search with the page cache off and on.
    Search(search::SearchLabArgs),
}

/// Options every experiment has.
#[derive(Debug, Clone, Args)]
pub struct LabCommon {
    /// The deployment's base URL: VM1's proxy, or the app.
    #[arg(long, env = "BASE_URL", default_value = "http://127.0.0.1:8080")]
    pub base_url: String,
    /// The monitor (FastPick's or Prometheus) for the server-side figures and the annotations.
    #[arg(
        long,
        env = "FASTPICK_MONITOR",
        default_value = "http://127.0.0.1:9090"
    )]
    pub monitor: String,
    /// Runs without a monitor: no server-side figures, no annotations.
    #[arg(long)]
    pub no_monitor: bool,
    /// The monitor's scrape job of the app, whose process CPU is reported.
    #[arg(long, default_value = "fastpick-app")]
    pub app_job: String,
    /// An ADMIN's e-mail; the password is read from FASTPICK_ADMIN_PASSWORD. Without it,
    /// the ADMIN line of --credentials (or of a running demo's credentials file) is used.
    #[arg(long, env = "FASTPICK_ADMIN_EMAIL")]
    pub admin_email: Option<String>,
    /// A credentials file as `fastpick demo` writes it (ROLE, e-mail, password; tab-separated).
    #[arg(long, value_name = "FILE")]
    pub credentials: Option<PathBuf>,
    /// Writes the report (every figure) as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Writes the table as Markdown to this file.
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// Per-request timeout; a request over it counts as failed.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Hides the live progress line.
    #[arg(long)]
    pub quiet: bool,
}

impl LabCommon {
    /// The monitor's URL, unless `--no-monitor`.
    fn monitor_url(&self) -> Option<String> {
        (!self.no_monitor).then(|| self.monitor.clone())
    }

    /// The monitor to read figures from, unless `--no-monitor`.
    fn monitor(&self) -> anyhow::Result<Option<server::Monitor>> {
        self.monitor_url()
            .map(|url| server::Monitor::new(&url, &self.app_job))
            .transpose()
    }

    /// The load tool's options for one run.
    fn load_args(&self) -> CommonArgs {
        CommonArgs {
            base_url: self.base_url.clone(),
            timeout: self.timeout,
            json: None,
            quiet: self.quiet,
            monitor: self.monitor_url(),
            k6: crate::load::k6::K6Args::default(),
        }
    }

    /// Logs in as the ADMIN and checks that the app lets it switch.
    async fn admin(&self) -> anyhow::Result<(Admin, Switches)> {
        let credentials =
            Credentials::find(self.admin_email.as_deref(), self.credentials.as_deref())?;
        let admin = Admin::login(&self.base_url, &credentials).await?;
        let switches = admin.switches().await?;
        if !switches.switchable {
            anyhow::bail!(
                "the app at {} does not let an ADMIN switch the experiment: set app.experiment_switch = true (or FASTPICK_APP__EXPERIMENT_SWITCH=true) on VM1",
                self.base_url
            );
        }
        println!(
            "lab: {} as {} ({}); switches now: strategy {}, cache {}",
            self.base_url,
            credentials.email,
            credentials.source,
            switches.issue_strategy,
            switches.search_cache
        );
        Ok((admin, switches))
    }
}

/// Puts the switches back as they were before the experiment.
async fn restore(admin: &Admin, before: &Switches) {
    if let Err(e) = admin
        .switch(Some(&before.issue_strategy), Some(&before.search_cache))
        .await
    {
        eprintln!("warning: could not put the app's switches back: {e:#}");
    }
}

/// Runs `one` for each variant in turn, stopping at the first that fails, then puts the
/// switches back; returns the rows made and how the runs ended.
async fn each<V, R, Fut>(
    admin: &Admin,
    before: &Switches,
    variants: &[V],
    label: fn(V) -> &'static str,
    mut one: impl FnMut(V) -> Fut,
) -> (Vec<R>, anyhow::Result<()>)
where
    V: Copy,
    Fut: Future<Output = anyhow::Result<R>>,
{
    // A signal ends the experiment, not the process, so the switches are still put back.
    // During a run the load tool stops the run ([`crate::load::Interrupted`]) and ends its
    // band on the dashboard; between runs this flag stops the next one from starting.
    let signalled = Arc::new(AtomicBool::new(false));
    let listener = tokio::spawn({
        let signalled = signalled.clone();
        async move {
            crate::server::shutdown_signal().await;
            signalled.store(true, Ordering::SeqCst);
        }
    });
    let mut rows = Vec::new();
    let mut ran = Ok(());
    for &variant in variants {
        let result = match signalled.load(Ordering::SeqCst) {
            true => Err(crate::load::Interrupted.into()),
            false => one(variant).await,
        };
        match result {
            Ok(row) => rows.push(row),
            Err(e) => {
                ran = Err(e.context(format!("the run with {} failed", label(variant))));
                break;
            }
        }
    }
    listener.abort();
    restore(admin, before).await;
    (rows, ran)
}

/// The experiment's outcome once its report is out: a failed run, or the variants that
/// missed (`what` says how), fail the command.
fn verdict<'a>(
    ran: anyhow::Result<()>,
    missed: impl Iterator<Item = &'a str>,
    what: &str,
) -> anyhow::Result<()> {
    ran?;
    let missed: Vec<&str> = missed.collect();
    if !missed.is_empty() {
        anyhow::bail!("{what}: {}", missed.join(", "));
    }
    Ok(())
}

/// Runs an experiment; fails when a variant was not exact or missed its thresholds.
pub async fn run(args: LabArgs) -> anyhow::Result<()> {
    match args.experiment {
        Experiment::Race(a) => race::run(&a).await,
        Experiment::Search(a) => search::run(&a).await,
    }
}
