//! `dropline loadgen <scenario>`: seeded, open-loop load against a running
//! node (`--node`) or one started in-process (`--embedded`); prints a
//! table and, as its last line, one JSON object, and writes an HTML report
//! with plots. See docs/LOADGEN.md.

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use dropline_adapters::client::ServerTrust;
use dropline_loadgen::carrier_path::WebhookConfig;
use dropline_loadgen::node::{EmbeddedConfig, NODE_SERVER_NAME, NodeTarget};
use dropline_loadgen::{LoadgenConfig, NodeSpec, Scenario, ScenarioConfig, Transport};

/// Arguments of `dropline loadgen`.
#[derive(Debug, clap::Args)]
pub(crate) struct LoadgenArgs {
    /// `superdrop`, `steady` or `burst`.
    #[arg(value_parser = parse_scenario)]
    scenario: Scenario,
    /// Seed of the traffic: the same seed sends the same items.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Parcels (one order each); superdrop default 200000, steady and
    /// burst size the pool from the events to send.
    #[arg(long)]
    orders: Option<u64>,
    /// Superdrop: carrier time runs this many times faster than real time
    /// (`max`: everything at once).
    #[arg(long, default_value = "3600", value_parser = parse_speedup)]
    speedup: f64,
    /// Steady and burst: carrier events per second at the base rate.
    #[arg(long, default_value_t = 2_000.0)]
    rate: f64,
    /// Steady and burst: length of the run, seconds.
    #[arg(long, default_value_t = 60.0)]
    duration: f64,
    /// Burst: the step's rate as a multiple of the base rate (10 to 100).
    #[arg(long, default_value_t = 20.0)]
    burst_factor: f64,
    /// Burst: seconds from the start to the step.
    #[arg(long, default_value_t = 20.0)]
    burst_start: f64,
    /// Burst: seconds the step lasts.
    #[arg(long, default_value_t = 10.0)]
    burst_len: f64,
    /// Stop after this many carrier events (0: no limit).
    #[arg(long, default_value_t = 0)]
    events_max: u64,
    /// Send canonical events straight over QUIC instead of carrier
    /// webhooks through an adapter.
    #[arg(long)]
    raw: bool,
    /// Scans per webhook body (1: one webhook per scan).
    #[arg(long, default_value_t = 1)]
    scans_per_webhook: usize,
    /// Webhooks in flight at once.
    #[arg(long, default_value_t = 256)]
    inflight: usize,
    /// Start a node in this process over a fresh data directory.
    #[arg(long, conflicts_with = "node")]
    embedded: bool,
    /// Embedded node: data directory (default: a temporary one, removed).
    #[arg(long, requires = "embedded")]
    data_dir: Option<PathBuf>,
    /// Embedded node: partitions of the input topics.
    #[arg(long, default_value_t = 8)]
    partitions: u32,
    /// Embedded node: engine workers.
    #[arg(long, default_value_t = 2)]
    workers: u32,
    /// A running node's QUIC ingest address.
    #[arg(long)]
    node: Option<SocketAddr>,
    /// Adapter name at the node.
    #[arg(long, default_value = "default")]
    adapter: String,
    /// The adapter's token.
    #[arg(long, conflicts_with = "token_file")]
    token: Option<String>,
    /// File holding the adapter's token (the node's `adapter.token`).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// SHA-256 fingerprint of the node's certificate (as `dropline serve`
    /// prints it).
    #[arg(long, conflicts_with = "ca_cert")]
    fingerprint: Option<String>,
    /// PEM CA certificate the node's certificate chains to.
    #[arg(long)]
    ca_cert: Option<PathBuf>,
    /// Name checked in the node's certificate.
    #[arg(long, default_value = NODE_SERVER_NAME)]
    server_name: String,
    /// A running node's HTTP address, to create orders through the API
    /// (without it, no orders are sent to a running node).
    #[arg(long, requires = "node")]
    http: Option<SocketAddr>,
    /// Receiver of the marketplace webhooks the orders ask for.
    #[arg(long)]
    hooks_url: Option<String>,
    /// Directory of the HTML report.
    #[arg(long, default_value = "target/loadgen")]
    report_dir: PathBuf,
    /// Draw the progress line even when stderr is not a terminal.
    #[arg(long)]
    progress: bool,
}

fn parse_scenario(s: &str) -> Result<Scenario, String> {
    Scenario::parse(s).ok_or_else(|| format!("unknown scenario {s:?} (superdrop, steady, burst)"))
}

fn parse_speedup(s: &str) -> Result<f64, String> {
    if s == "max" {
        return Ok(f64::INFINITY);
    }
    s.parse::<f64>()
        .map_err(|e| format!("{s:?}: {e}"))
        .and_then(|v| {
            if v > 0.0 {
                Ok(v)
            } else {
                Err("must be positive".into())
            }
        })
}

fn node_spec(args: &LoadgenArgs) -> anyhow::Result<NodeSpec> {
    if args.embedded {
        return Ok(NodeSpec::Embedded(EmbeddedConfig {
            dir: args.data_dir.clone(),
            partitions: args.partitions,
            workers: args.workers,
            ..EmbeddedConfig::default()
        }));
    }
    let addr = args
        .node
        .context("give --embedded, or --node with the node's QUIC address")?;
    let token = match (&args.token, &args.token_file) {
        (Some(t), _) => t.clone(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .with_context(|| format!("reading {}", path.display()))?
            .trim()
            .to_string(),
        (None, None) => anyhow::bail!("--node needs --token or --token-file"),
    };
    let trust = match (&args.fingerprint, &args.ca_cert) {
        (Some(f), _) => ServerTrust::PinnedSha256(f.clone()),
        (None, Some(ca)) => ServerTrust::CaCertPem(ca.clone()),
        (None, None) => anyhow::bail!("--node needs --fingerprint or --ca-cert"),
    };
    Ok(NodeSpec::Remote {
        target: NodeTarget {
            addr,
            server_name: args.server_name.clone(),
            trust,
            adapter: args.adapter.clone(),
            token,
            partitions: None,
        },
        http: args.http,
    })
}

pub(crate) fn run(args: LoadgenArgs) -> anyhow::Result<ExitCode> {
    let defaults = ScenarioConfig::new(args.scenario);
    let scenario = ScenarioConfig {
        seed: args.seed,
        orders: args.orders.unwrap_or(defaults.orders),
        speedup: args.speedup,
        rate_per_s: args.rate,
        duration_s: args.duration,
        burst_factor: args.burst_factor,
        burst_start_s: args.burst_start,
        burst_len_s: args.burst_len,
        events_max: args.events_max,
        ..defaults
    };
    let mut config = LoadgenConfig::new(scenario);
    config.node = node_spec(&args)?;
    config.transport = if args.raw {
        Transport::Raw
    } else {
        Transport::Carrier(WebhookConfig {
            scans_per_webhook: args.scans_per_webhook,
            inflight_max: args.inflight,
            ..WebhookConfig::default()
        })
    };
    config.report_dir = Some(args.report_dir.clone());
    config.progress = args.progress || std::io::stderr().is_terminal();
    config.hooks_url = args.hooks_url.clone();
    let report = dropline_loadgen::run(config)?;
    print!("{}", report.table());
    println!("{}", report.to_json());
    Ok(ExitCode::SUCCESS)
}
