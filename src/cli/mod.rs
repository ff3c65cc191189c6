//! Command-line surface (clap derive). Each subcommand parses its
//! arguments and calls library code; nothing here decides anything.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod up;

/// Dropline: stream processing for real-time shipment tracking.
#[derive(Debug, Parser)]
#[command(name = "dropline", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the embedded single-node default with a demo drop.
    Up(up::UpArgs),
}

/// Parses the command line, runs the subcommand and maps errors to exit
/// code 1 with the error chain on stderr.
pub(crate) fn run() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up(args) => up::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("dropline: {err:#}");
            ExitCode::FAILURE
        }
    }
}
