//! Entry point: parses the command line and hands over to [`fastpick::run`].

use clap::Parser;

/// mimalloc: less time in the allocator on the request path than the system malloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
