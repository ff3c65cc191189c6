//! `dropline adapter --config adapter.toml`: carrier webhooks and polling,
//! normalized and sent to the node over QUIC through a durable spool.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use dropline_adapters::carrier::{AdapterConfig, connect_node, run_adapter};

/// Arguments of `dropline adapter`.
#[derive(Debug, clap::Args)]
pub(crate) struct AdapterArgs {
    /// Adapter configuration (see docs/adapter.example.toml).
    #[arg(long)]
    config: PathBuf,
}

pub(crate) fn run(args: AdapterArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("reading {}", args.config.display()))?;
    let config =
        AdapterConfig::from_toml(&text).with_context(|| format!("in {}", args.config.display()))?;
    super::runtime()?.block_on(async {
        let sink = Arc::new(
            connect_node(&config)
                .await
                .context("connecting to the node")?,
        );
        let adapter = run_adapter(config, sink)
            .await
            .context("starting the adapter")?;
        println!("dropline adapter running");
        println!("  webhooks   {}/webhooks/{{carrier}}", adapter.base_url());
        println!("  metrics    {}/metrics", adapter.base_url());
        println!("ready");
        tokio::signal::ctrl_c().await?;
        println!("stopping");
        adapter.shutdown().await;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
