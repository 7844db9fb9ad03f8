//! `fastpick seed`: data at the original's scale. Coupons by the original recipe, loaded with
//! COPY in one transaction; load-test users with bcrypt hashes and a users.csv for k6 and
//! `fastpick load`.

pub mod coupons;
pub mod recipe;
pub mod users;

use crate::cli::SeedCommand;
use crate::config::Settings;

pub use recipe::{NewCoupon, recipe_coupon};

/// Runs a `seed` subcommand.
pub async fn run(settings: &Settings, command: SeedCommand) -> anyhow::Result<()> {
    match command {
        SeedCommand::Coupons(args) => coupons::run(settings, args).await,
        SeedCommand::Users(args) => users::run(settings, args).await,
    }
}

/// A progress bar on stderr (drawn only on a terminal).
pub(crate) fn progress(len: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    let style = indicatif::ProgressStyle::with_template(
        "{msg:>9} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} ({per_sec}, eta {eta})",
    );
    if let Ok(style) = style {
        bar.set_style(style);
    }
    bar.set_message(what.to_owned());
    bar
}
