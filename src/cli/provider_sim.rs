//! `dropline provider-sim`: the bundled stand-in for SMS and push
//! providers (form-encoded SMS sends, FCM-style pushes) that enforces their
//! rate limits with 429, records what it accepted, and calls back with
//! delivery receipts and STOP replies.

use std::net::SocketAddr;
use std::process::ExitCode;

use dropline_loadgen::provider_sim::{ProviderSimConfig, run_provider_sim};

/// Arguments of `dropline provider-sim`.
#[derive(Debug, clap::Args)]
pub(crate) struct ProviderSimArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7700")]
    listen: SocketAddr,
    /// Where to send delivery receipts and inbound messages (STOP).
    #[arg(long)]
    inbound_url: Option<String>,
    /// Seed of injected faults.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

pub(crate) fn run(args: ProviderSimArgs) -> anyhow::Result<ExitCode> {
    let mut config = ProviderSimConfig::local();
    config.bind = args.listen;
    config.inbound_url = args.inbound_url;
    config.seed = args.seed;
    super::runtime()?.block_on(async {
        let sim = run_provider_sim(config).await?;
        println!("dropline provider-sim running at {}", sim.base_url());
        println!("  stats   {}/admin/stats", sim.base_url());
        println!("ready");
        tokio::signal::ctrl_c().await?;
        sim.shutdown().await;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
