//! `dropline up`: the embedded single-node default with a demo drop.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::demo::{DemoConfig, run};
use crate::node::NodeConfig;

/// Arguments of `dropline up`.
#[derive(Debug, clap::Args)]
pub(crate) struct UpArgs {
    /// Data directory.
    #[arg(long, default_value = "./dropline-data")]
    data_dir: PathBuf,
    /// Orders in the demo drop.
    #[arg(long, default_value_t = 3000)]
    orders: u64,
    /// Seconds over which the demo's orders are created.
    #[arg(long, default_value_t = 120)]
    drop_seconds: u64,
    /// How much faster than real time carrier journeys run.
    #[arg(long, default_value_t = 2000.0)]
    speedup: f64,
    /// Seed of the simulated journeys.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// HTTP address of the node (tracking pages, dashboard, API).
    #[arg(long, default_value = "127.0.0.1:7480")]
    http_listen: std::net::SocketAddr,
    /// QUIC ingest address of the node.
    #[arg(long, default_value = "127.0.0.1:7400")]
    quic_listen: std::net::SocketAddr,
}

pub(crate) fn run_up(args: UpArgs) -> anyhow::Result<ExitCode> {
    let mut node = NodeConfig {
        data_dir: args.data_dir,
        ..NodeConfig::default()
    };
    node.http.listen = args.http_listen;
    node.quic.listen = args.quic_listen;
    let config = DemoConfig {
        node,
        orders: args.orders,
        drop_seconds: args.drop_seconds,
        speedup: args.speedup,
        seed: args.seed,
    };
    super::runtime()?.block_on(run(config))?;
    Ok(ExitCode::SUCCESS)
}
