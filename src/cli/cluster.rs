//! `dropline cluster init|status`: write a cluster's certificates and
//! per-node configuration files (loopback on free ports, or one host per
//! node on fixed ports with `--hosts`); read a node's cluster status.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use crate::node::config::to_hex;

/// Arguments of `dropline cluster`.
#[derive(Debug, clap::Args)]
pub(crate) struct ClusterArgs {
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ClusterCommand {
    /// Write a cluster CA, one certificate per node, an adapter token and
    /// one `node-<id>.toml` per node (loopback addresses on free ports, or
    /// one host per node with `--hosts`).
    Init(InitArgs),
    /// Print a node's cluster status (roles, terms, leaders, lag).
    Status(StatusArgs),
}

/// Arguments of `dropline cluster init`.
#[derive(Debug, clap::Args)]
pub(crate) struct InitArgs {
    /// Nodes.
    #[arg(long, default_value_t = 3)]
    nodes: u64,
    /// Directory for `certs/`, `node-<id>/` data, `node-<id>.toml` and
    /// `adapter.token`.
    #[arg(long)]
    dir: PathBuf,
    /// Partitions of `carrier-events`.
    #[arg(long, default_value_t = crate::node::config::PARTITIONS_DEFAULT)]
    partitions: u32,
    /// Replicas per partition.
    #[arg(long, default_value_t = crate::node::config::REPLICATION_DEFAULT)]
    replication: usize,
    /// Raft tick, in ms.
    #[arg(long, default_value_t = crate::node::config::CLUSTER_TICK_MS_DEFAULT)]
    tick_ms: u64,
    /// One IP address per node, comma-separated, in node order (as many as
    /// `--nodes`): node `i` listens on the `i`-th address on the fixed
    /// ports below, and its certificate names that address. Without it,
    /// every node is on 127.0.0.1 on ports free at that moment.
    #[arg(long, value_delimiter = ',')]
    hosts: Vec<IpAddr>,
    /// With `--hosts`: the UDP port of node-to-node QUIC on every host.
    #[arg(long, default_value_t = PEER_PORT_DEFAULT)]
    peer_port: u16,
    /// With `--hosts`: the UDP port of QUIC ingest (adapters) on every host.
    #[arg(long, default_value_t = INGEST_PORT_DEFAULT)]
    ingest_port: u16,
    /// With `--hosts`: the TCP port of HTTP (health, metrics, cluster
    /// status) on every host.
    #[arg(long, default_value_t = HTTP_PORT_DEFAULT)]
    http_port: u16,
}

/// Node-to-node QUIC (UDP) with `--hosts`.
pub(crate) const PEER_PORT_DEFAULT: u16 = 7470;
/// QUIC ingest (UDP) with `--hosts`.
pub(crate) const INGEST_PORT_DEFAULT: u16 = 7471;
/// HTTP (TCP) with `--hosts`; also `cluster status`'s default port.
pub(crate) const HTTP_PORT_DEFAULT: u16 = 7480;

/// Arguments of `dropline cluster status`.
#[derive(Debug, clap::Args)]
pub(crate) struct StatusArgs {
    /// The node's HTTP address (`host:port` or a URL).
    #[arg(long, default_value = "127.0.0.1:7480")]
    node: String,
    /// Print the JSON as served.
    #[arg(long)]
    json: bool,
    /// The node's data directory (or the `cluster init` directory), whose
    /// `admin.token` is sent.
    #[arg(long, default_value = "data")]
    data_dir: PathBuf,
    /// Admin token (instead of reading it from `--data-dir`).
    #[arg(long)]
    token: Option<String>,
}

pub(crate) fn run(args: ClusterArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        ClusterCommand::Init(a) => init(&a),
        ClusterCommand::Status(a) => status(&a),
    }
}

/// A loopback port free now (bound and released; the kernel does not hand
/// it out again soon).
fn free_udp_port() -> anyhow::Result<u16> {
    Ok(std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

fn free_tcp_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

struct Planned {
    id: u64,
    peer: SocketAddr,
    ingest: SocketAddr,
    http: SocketAddr,
    /// The names in the node's certificate besides `node-<id>`.
    cert_names: Vec<String>,
}

/// Each node's addresses and certificate names: loopback on free ports, or
/// node `i` on `hosts[i]` on the fixed ports.
fn plan(args: &InitArgs, ids: &[u64]) -> anyhow::Result<Vec<Planned>> {
    let mut planned = Vec::new();
    if args.hosts.is_empty() {
        for &id in ids {
            let lo = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            planned.push(Planned {
                id,
                peer: lo(free_udp_port()?),
                ingest: lo(free_udp_port()?),
                http: lo(free_tcp_port()?),
                cert_names: vec![
                    "127.0.0.1".to_string(),
                    "localhost".to_string(),
                    SERVER_NAME.to_string(),
                ],
            });
        }
        return Ok(planned);
    }
    if args.hosts.len() as u64 != args.nodes {
        anyhow::bail!(
            "--hosts names {} addresses for {} nodes: give one per node",
            args.hosts.len(),
            args.nodes
        );
    }
    for (i, host) in args.hosts.iter().enumerate() {
        if args.hosts[..i].contains(host) {
            anyhow::bail!(
                "--hosts names {host} twice: each node needs its own host (the ports are fixed)"
            );
        }
    }
    if args.peer_port == args.ingest_port {
        anyhow::bail!("--peer-port and --ingest-port are both UDP: they must differ");
    }
    for (&id, &host) in ids.iter().zip(&args.hosts) {
        planned.push(Planned {
            id,
            peer: SocketAddr::new(host, args.peer_port),
            ingest: SocketAddr::new(host, args.ingest_port),
            http: SocketAddr::new(host, args.http_port),
            cert_names: vec![host.to_string(), SERVER_NAME.to_string()],
        });
    }
    Ok(planned)
}

/// The name every node's certificate carries, which adapters connect with.
const SERVER_NAME: &str = "dropline-node";

fn quoted(path: &Path) -> String {
    toml_string(&path.display().to_string())
}

fn toml_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

fn init(args: &InitArgs) -> anyhow::Result<ExitCode> {
    if args.nodes == 0 || args.nodes > 64 {
        anyhow::bail!("--nodes must be within 1..=64");
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let dir = std::fs::canonicalize(&args.dir)?;
    let certs = dir.join("certs");
    let ids: Vec<u64> = (1..=args.nodes).collect();
    let planned = plan(args, &ids)?;
    let names: Vec<(u64, Vec<String>)> = planned
        .iter()
        .map(|p| (p.id, p.cert_names.clone()))
        .collect();
    dropline_adapters::cluster::generate_cluster_certs_named(&certs, &names)
        .context("writing the cluster certificates")?;
    let token = crate::node::read_or_create_token(&dir, "adapter.token")?;
    // One admin token for the cluster, in every node's data directory
    // (where the node reads it) and beside the files for the operator.
    let admin = crate::node::read_or_create_token(&dir, crate::node::ADMIN_TOKEN_FILE)?;
    for p in &planned {
        let data = dir.join(format!("node-{}", p.id));
        std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
        crate::node::write_secret(&data.join(crate::node::ADMIN_TOKEN_FILE), &admin, false)?;
    }
    let token_sha256 = to_hex(&dropline_adapters::ingest::token_sha256(token.as_bytes()));
    let mut peers = String::new();
    for p in &planned {
        let _ = write!(
            peers,
            "\n[[cluster.peers]]\nid = {}\nname = \"node-{}\"\npeer_addr = \"{}\"\ningest_addr = \"{}\"\nhttp_addr = \"{}\"\n",
            p.id, p.id, p.peer, p.ingest, p.http
        );
    }
    let kind = if args.hosts.is_empty() {
        "loopback cluster"
    } else {
        "cluster, one host per node"
    };
    for p in &planned {
        let text = format!(
            "# Node {id} of a {n}-node {kind} (dropline cluster init).\n\
             data_dir = {data}\n\
             partitions = {partitions}\n\
             \n[quic]\nlisten = \"{ingest}\"\n\
             \n[[quic.adapters]]\nname = \"default\"\ntoken_sha256 = \"{token_sha256}\"\n\
             \n[http]\nlisten = \"{http}\"\n\
             \n[cluster]\nnode_id = {id}\nname = \"node-{id}\"\nreplication = {replication}\ntick_ms = {tick}\ncerts_dir = {certs}\n{peers}",
            id = p.id,
            n = args.nodes,
            data = quoted(&dir.join(format!("node-{}", p.id))),
            partitions = args.partitions,
            ingest = p.ingest,
            http = p.http,
            replication = args.replication,
            tick = args.tick_ms,
            certs = quoted(&certs),
        );
        let path = dir.join(format!("node-{}.toml", p.id));
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    println!("cluster of {} nodes in {}", args.nodes, dir.display());
    for p in &planned {
        println!(
            "  node {}: dropline serve --config {}   (ingest {}, http {})",
            p.id,
            dir.join(format!("node-{}.toml", p.id)).display(),
            p.ingest,
            p.http
        );
    }
    println!(
        "adapters: token in {}, trust {} (server name dropline-node)",
        dir.join("adapter.token").display(),
        certs.join("ca.pem").display()
    );
    println!(
        "admin: token in {} (and each node's data directory); dropline cluster status --node <http> --data-dir {}",
        dir.join(crate::node::ADMIN_TOKEN_FILE).display(),
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn status(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let token = super::admin::admin_token(args.token.as_deref(), &args.data_dir)?;
    let base = if args.node.starts_with("http") {
        args.node.trim_end_matches('/').to_string()
    } else {
        format!("http://{}", args.node)
    };
    let url = format!("{base}{}", crate::node::cluster::STATUS_PATH);
    let value: serde_json::Value = super::runtime()?.block_on(async {
        let response = reqwest::Client::new()
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .with_context(|| format!("calling {url}"))?;
        let code = response.status();
        let text = response.text().await.unwrap_or_default();
        if !code.is_success() {
            anyhow::bail!("{url}: {code}: {text}");
        }
        serde_json::from_str(&text).with_context(|| format!("{url}: not JSON: {text}"))
    })?;
    if args.json {
        println!("{value}");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "node {} ({}), elections {}",
        value["node_id"], value["name"], value["elections"]
    );
    println!(
        "{:>9} {:>10} {:>6} {:>7} {:>8} {:>8} {:>10}  followers (id:lag)",
        "partition", "role", "term", "leader", "commit", "applied", "offset"
    );
    for p in value["partitions"].as_array().into_iter().flatten() {
        let followers: Vec<String> = p["followers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| format!("{}:{}", f["id"], f["lag"]))
            .collect();
        println!(
            "{:>9} {:>10} {:>6} {:>7} {:>8} {:>8} {:>10}  {}{}",
            p["partition"].to_string(),
            p["role"].as_str().unwrap_or("?"),
            p["term"].to_string(),
            p["leader"].to_string(),
            p["commit_index"].to_string(),
            p["applied_index"].to_string(),
            p["committed_offset"].to_string(),
            followers.join(" "),
            if p["failed"].as_bool() == Some(true) {
                "  FAILED"
            } else {
                ""
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}
