//! `dropline serve`: run a node until Ctrl-C.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::node::{Node, NodeConfig};

/// Arguments of `dropline serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// Node configuration file (TOML); defaults apply without one.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data directory (overrides the file).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// QUIC ingest address (overrides the file).
    #[arg(long)]
    quic_listen: Option<std::net::SocketAddr>,
    /// HTTP address (overrides the file).
    #[arg(long)]
    http_listen: Option<std::net::SocketAddr>,
}

pub(crate) fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let mut config = match &args.config {
        Some(path) => NodeConfig::load(path)?,
        None => NodeConfig::default(),
    };
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    if let Some(addr) = args.quic_listen {
        config.quic.listen = addr;
    }
    if let Some(addr) = args.http_listen {
        config.http.listen = addr;
    }
    let runtime = super::runtime()?;
    if let Some(section) = config.cluster.clone() {
        return runtime.block_on(serve_cluster(&config, &section));
    }
    runtime.block_on(async {
        let node = Node::start(&config).await?;
        println!("dropline node running");
        println!("  data dir      {}", config.data_dir.display());
        if let Some(addr) = node.quic_addr() {
            println!("  QUIC ingest   {addr}");
        }
        println!("  TLS sha256    {}", node.fingerprint());
        if let Some(addr) = node.http_addr() {
            let scheme = if config.http.tls { "https" } else { "http" };
            println!("  HTTP          {scheme}://{addr}/");
            println!("  dashboard     {scheme}://{addr}/dashboard");
        }
        match node.delivery() {
            Some(d) => {
                let channels: Vec<&str> = d.channels().iter().map(|c| c.as_str()).collect();
                println!("  delivery      {}", channels.join(", "));
                println!("  callbacks     http://{}/delivery", d.callbacks_addr());
            }
            None => println!("  delivery      off (no [delivery] section)"),
        }
        println!("ready");
        tokio::signal::ctrl_c().await?;
        println!("stopping");
        node.shutdown().await?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `serve` with a `[cluster]` section: replicated ingest only (the engine
/// does not run in cluster mode yet).
async fn serve_cluster(
    config: &crate::node::NodeConfig,
    section: &crate::node::config::ClusterSection,
) -> anyhow::Result<ExitCode> {
    let node = crate::node::cluster::ClusterServe::start(config, section).await?;
    println!("dropline cluster node {} running", section.node_id);
    println!("  data dir      {}", config.data_dir.display());
    println!("  QUIC ingest   {}", node.quic_addr());
    println!("  TLS sha256    {}", node.fingerprint());
    println!("  HTTP          http://{}/metrics", node.http_addr());
    println!(
        "  engine        not running: cluster mode replicates ingest only (docs/OPERATIONS.md, Cluster)"
    );
    println!("ready");
    tokio::signal::ctrl_c().await?;
    println!("stopping");
    node.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
