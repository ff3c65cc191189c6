//! Command-line surface (clap derive). Each subcommand parses its
//! arguments and calls library code; nothing here decides anything.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod log;
mod normalize;
mod topics;
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
    /// Create and list topics.
    Topics(topics::TopicsArgs),
    /// Dump and verify the log.
    Log(log::LogArgs),
    /// Normalize a carrier payload into canonical events (JSON lines).
    Normalize(normalize::NormalizeArgs),
    /// Run a benchmark; the last line printed is one JSON object.
    Bench(bench::BenchArgs),
    /// Internal: the appending child that `bench log` kills with SIGKILL.
    #[command(name = "__log-append-child", hide = true)]
    LogAppendChild(bench::AppendChildArgs),
}

/// Parses the command line, runs the subcommand and maps errors to exit
/// code 1 with the error chain on stderr.
pub(crate) fn run() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up(args) => up::run(args),
        Command::Topics(args) => topics::run(args),
        Command::Log(args) => log::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Normalize(args) => normalize::run(args),
        Command::LogAppendChild(args) => bench::append_child(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("dropline: {err:#}");
            ExitCode::FAILURE
        }
    }
}
