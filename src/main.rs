//! Entry point: parses the command line and hands over to [`fastpick::run`].

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = fastpick::cli::Cli::parse();
    match fastpick::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("fastpick: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
