//! `millrace`: the server, the sandboxes, the demo and a command-line client of the
//! management API, in one binary. This file only parses arguments and dispatches.

mod cli;
mod client;
mod demo;
mod registry;
mod server;

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    server::init_logging(cli.command.default_log_level());
    match cli.run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
