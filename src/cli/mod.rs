//! Command-line surface (clap derive). Each subcommand parses its
//! arguments and calls library code; nothing here decides anything.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod adapter;
mod admin;
mod bench;
mod carrier_sim;
mod cluster;
mod loadgen;
mod log;
mod log_compare;
mod normalize;
mod provider_sim;
mod replay;
mod serve;
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
    /// Run a node (log, engine, QUIC ingest, HTTP) until Ctrl-C.
    Serve(serve::ServeArgs),
    /// Run a carrier adapter (webhooks, polling) that sends to a node.
    Adapter(adapter::AdapterArgs),
    /// A replicated cluster: write its certificates and node files, show a node's status.
    Cluster(cluster::ClusterArgs),
    /// Run the carrier simulator (UPS, FedEx, USPS and DHL formats).
    CarrierSim(carrier_sim::CarrierSimArgs),
    /// A parcel's history and every decision about it, or re-feed a range.
    Replay(replay::ReplayArgs),
    /// A running node's status.
    Status(admin::NodeArgs),
    /// Switch a running node's drop mode.
    DropMode(admin::DropModeArgs),
    /// Make a marketplace's key for creating shipments (prints the node's config entry).
    MarketplaceKey(admin::MarketplaceKeyArgs),
    /// Seeded open-loop load (superdrop, steady, burst) with an HTML report.
    Loadgen(Box<loadgen::LoadgenArgs>),
    /// Run the SMS and push provider simulator.
    ProviderSim(provider_sim::ProviderSimArgs),
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
    let filter = tracing_subscriber::EnvFilter::try_from_env("DROPLINE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    if matches!(
        cli.command,
        Command::Cluster(_)
            | Command::Replay(_)
            | Command::Status(_)
            | Command::Topics(_)
            | Command::Log(_)
            | Command::Normalize(_)
    ) {
        end_quietly_on_closed_pipe();
    }
    let result = match cli.command {
        Command::Up(args) => up::run_up(args),
        Command::Serve(args) => serve::run(args),
        Command::Adapter(args) => adapter::run(args),
        Command::Cluster(args) => cluster::run(args),
        Command::CarrierSim(args) => carrier_sim::run(args),
        Command::Replay(args) => replay::run(args),
        Command::Status(args) => admin::status(args),
        Command::DropMode(args) => admin::drop_mode(args),
        Command::MarketplaceKey(args) => admin::marketplace_key(args),
        Command::Loadgen(args) => loadgen::run(*args),
        Command::ProviderSim(args) => provider_sim::run(args),
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

/// The node's async runtime: two worker threads beside the engine's pinned
/// workers (the machine this is sized for has two cores).
/// The commands that print records or reports for a shell pipeline end
/// quietly when the reader goes away (`dropline log dump ... | head`), as
/// other Unix tools do, instead of panicking in `println!` on EPIPE. Rust
/// ignores SIGPIPE; this restores the default for those commands only:
/// the long-running ones (node, adapter, simulators, benches) keep
/// ignoring it, so a peer closing a pipe or socket never kills them.
#[allow(unsafe_code)]
fn end_quietly_on_closed_pipe() {
    // SAFETY: `signal` with `SIG_DFL` only resets a disposition; it runs
    // before this command starts any thread.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}
