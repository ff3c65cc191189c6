//! `dropline carrier-sim`: the bundled stand-in for UPS, FedEx, USPS and
//! DHL, serving their polling APIs under their rate limits and pushing
//! signed webhooks.

use std::net::SocketAddr;
use std::process::ExitCode;

use dropline_loadgen::carrier_sim::{CarrierSimConfig, WebhookTarget, run_carrier_sim};

/// Arguments of `dropline carrier-sim`.
#[derive(Debug, clap::Args)]
pub(crate) struct CarrierSimArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7600")]
    listen: SocketAddr,
    /// Seed of the invented journeys.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Shipments invented per carrier at start.
    #[arg(long, default_value_t = 0)]
    shipments_per_carrier: u32,
    /// How much faster than real time journeys advance.
    #[arg(long, default_value_t = 1.0)]
    speedup: f64,
    /// Base URL of an adapter to push webhooks to (`http://host:port`).
    #[arg(long)]
    webhook_url: Option<String>,
}

pub(crate) fn run(args: CarrierSimArgs) -> anyhow::Result<ExitCode> {
    let mut config = CarrierSimConfig::new(args.listen);
    config.seed = args.seed;
    config.shipments_per_carrier = args.shipments_per_carrier;
    config.speedup = args.speedup;
    if let Some(url) = args.webhook_url {
        config.webhook = Some(WebhookTarget::new(url));
    }
    super::runtime()?.block_on(async {
        let sim = run_carrier_sim(config).await?;
        println!("dropline carrier-sim running at {}", sim.base_url());
        println!("ready");
        tokio::signal::ctrl_c().await?;
        sim.shutdown().await;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
