//! `dropline status` and `dropline drop-mode on|off`: small admin verbs
//! against a running node's admin API; `dropline marketplace-key`, which
//! makes a key for `POST /v1/shipments` without any node.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::node::ADMIN_TOKEN_FILE;

/// Where the node is and how to authenticate.
#[derive(Debug, clap::Args)]
pub(crate) struct NodeArgs {
    /// The node's HTTP address.
    #[arg(long, default_value = "http://127.0.0.1:7480")]
    node: String,
    /// Data directory holding `admin.token` (or give --token).
    #[arg(long, default_value = "./dropline-data")]
    data_dir: PathBuf,
    /// Admin token.
    #[arg(long)]
    token: Option<String>,
}

impl NodeArgs {
    fn token(&self) -> anyhow::Result<String> {
        admin_token(self.token.as_deref(), &self.data_dir)
    }
}

/// The admin token: `given`, or the one the node wrote to its data
/// directory.
pub(crate) fn admin_token(
    given: Option<&str>,
    data_dir: &std::path::Path,
) -> anyhow::Result<String> {
    match given {
        Some(t) => Ok(t.to_string()),
        None => {
            let path = data_dir.join(ADMIN_TOKEN_FILE);
            Ok(std::fs::read_to_string(&path)
                .with_context(|| format!("reading {} (or give --token)", path.display()))?
                .trim()
                .to_string())
        }
    }
}

/// Arguments of `dropline drop-mode`.
#[derive(Debug, clap::Args)]
pub(crate) struct DropModeArgs {
    /// `on` or `off`.
    #[arg(value_parser = ["on", "off"])]
    state: String,
    #[command(flatten)]
    node: NodeArgs,
}

async fn call(
    method: reqwest::Method,
    node: &NodeArgs,
    path: &str,
    body: Option<serde_json::Value>,
) -> anyhow::Result<serde_json::Value> {
    let url = format!("{}{path}", node.node.trim_end_matches('/'));
    let client = reqwest::Client::new();
    let mut request = client.request(method, &url).bearer_auth(node.token()?);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("calling {url}"))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if !status.is_success() {
        anyhow::bail!("{url}: {status}: {text}");
    }
    serde_json::from_str(&text).with_context(|| format!("{url}: not JSON: {text}"))
}

pub(crate) fn status(args: NodeArgs) -> anyhow::Result<ExitCode> {
    let value =
        super::runtime()?.block_on(call(reqwest::Method::GET, &args, "/v1/admin/status", None))?;
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn drop_mode(args: DropModeArgs) -> anyhow::Result<ExitCode> {
    let on = args.state == "on";
    let value = super::runtime()?.block_on(call(
        reqwest::Method::POST,
        &args.node,
        "/v1/admin/drop-mode",
        Some(serde_json::json!({ "on": on })),
    ))?;
    println!("{}", serde_json::to_string(&value)?);
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `dropline marketplace-key`.
#[derive(Debug, clap::Args)]
pub(crate) struct MarketplaceKeyArgs {
    /// The marketplace whose orders the key may create.
    #[arg(long)]
    marketplace: String,
}

/// Makes a random key and prints it once, with the `[[http.shipment_keys]]`
/// entry that holds only its SHA-256 (the node never stores the key).
pub(crate) fn marketplace_key(args: MarketplaceKeyArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        !args.marketplace.is_empty() && !args.marketplace.contains(['"', '\\', '\n']),
        "--marketplace must be a non-empty name without quotes, backslashes or newlines"
    );
    let mut seed = [0u8; 32];
    crate::node::getrandom_from_urandom(&mut seed)?;
    let key = crate::node::config::to_hex(&seed);
    let sha256 = dropline_adapters::http::AdminToken::from_plain(&key).sha256_hex();
    println!("# The key, for the marketplace's storefront only (shown once):");
    println!("#   Authorization: Bearer {key}");
    println!("# For the node's configuration:");
    println!("[[http.shipment_keys]]");
    println!("marketplace = \"{}\"", args.marketplace);
    println!("token_sha256 = \"{sha256}\"");
    Ok(ExitCode::SUCCESS)
}
