//! `dropline up`: one node, the carrier simulator and an adapter in one
//! process, and a demo drop flowing through them.
//!
//! The pieces are the real ones: the adapter receives signed webhooks from
//! the simulator and polls it under the carriers' rate limits, sends over
//! QUIC with TLS to the node, which appends, processes and serves the
//! tracking page. Orders are created through the node's public HTTP API,
//! as a storefront would right after checkout; the adapter learns their
//! tracking numbers from the node's orders feed (a Follow stream on its
//! QUIC connection), not from an in-process call. The simulator runs its
//! journeys `speedup` times faster than real time (and the adapter's clock
//! with it), so days of scans pass in minutes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use dropline_adapters::carrier::{
    AdapterConfig, CarrierConfig, NodeConfig as AdapterNodeConfig, ScaledClock, connect_node,
    published_limits, run_adapter_with_clock,
};
use dropline_adapters::http::AdminToken;
use dropline_loadgen::carrier_format::tracking_number;
use dropline_loadgen::carrier_sim::{CarrierSimConfig, WebhookTarget, run_carrier_sim};
use dropline_operators::model::Carrier;
use dropline_operators::model::time::format_rfc3339_ms;

use crate::node::config::ShipmentKeyEntry;
use crate::node::{DEFAULT_ADAPTER, DEFAULT_TOKEN_FILE, Node, NodeConfig, read_or_create_token};

mod delivery;

/// The demo storefront's marketplace.
const DEMO_MARKETPLACE: &str = "demo-market";
/// File (in the data dir) holding the demo marketplace's key.
const DEMO_MARKET_KEY_FILE: &str = "demo-market.key";

/// What `dropline up` runs.
#[derive(Debug, Clone)]
pub(crate) struct DemoConfig {
    /// The node's configuration (data dir, addresses).
    pub(crate) node: NodeConfig,
    /// Orders in the demo drop.
    pub(crate) orders: u64,
    /// Seconds over which the orders are created.
    pub(crate) drop_seconds: u64,
    /// How much faster than real time carrier journeys run.
    pub(crate) speedup: f64,
    /// Seed of the simulator's journeys.
    pub(crate) seed: u64,
}

/// Time zones of the demo's buyers.
const DEMO_TIME_ZONES: [&str; 5] = [
    "America/New_York",
    "Europe/London",
    "Asia/Tokyo",
    "America/Los_Angeles",
    "Australia/Sydney",
];

/// Shared secret the demo's simulator signs webhooks with, per carrier.
fn demo_secret(carrier: Carrier) -> String {
    format!("demo-{}-webhook-secret", carrier.as_str())
}

fn now_ms() -> i64 {
    i64::try_from(crate::node::wall_clock_ms()).unwrap_or(i64::MAX)
}

/// Runs the demo until Ctrl-C.
pub(crate) async fn run(config: DemoConfig) -> anyhow::Result<()> {
    let data_dir: PathBuf = config.node.data_dir.clone();
    // The demo's storefront creates orders with its marketplace's key, as
    // a real one would; the node keeps only the key's SHA-256.
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let market_key = read_or_create_token(&data_dir, DEMO_MARKET_KEY_FILE)?;
    let mut node_config = config.node.clone();
    node_config.http.shipment_keys.push(ShipmentKeyEntry {
        marketplace: DEMO_MARKETPLACE.into(),
        token_sha256: AdminToken::from_plain(&market_key).sha256_hex(),
    });
    let mut node = Node::start(&node_config).await?;
    let quic = node.quic_addr().context("QUIC ingest did not start")?;
    let http = node.http_addr().context("HTTP did not start")?;

    let start_ms = now_ms();
    let mut sim_config = CarrierSimConfig::new("127.0.0.1:0".parse()?);
    sim_config.seed = config.seed;
    sim_config.speedup = config.speedup;
    sim_config.start_ms = start_ms;
    for carrier in Carrier::ALL {
        *sim_config.secrets.get_mut(carrier) = demo_secret(carrier);
    }
    let mut sim = run_carrier_sim(sim_config)
        .await
        .context("starting the carrier simulator")?;

    let token = std::fs::read_to_string(data_dir.join(DEFAULT_TOKEN_FILE))
        .context("reading the adapter token")?;
    let mut adapter_config = AdapterConfig::new("127.0.0.1:0".parse()?, data_dir.join("adapter"));
    adapter_config.node = Some(AdapterNodeConfig {
        addr: quic,
        server_name: "dropline-node".into(),
        fingerprint_sha256: node.fingerprint(),
        adapter: DEFAULT_ADAPTER.into(),
        token: token.trim().to_string(),
        spool_dir: data_dir.join("adapter-spool"),
        partitions: Some(config.node.partitions),
    });
    for carrier in Carrier::ALL {
        *adapter_config.carriers.get_mut(carrier) = Some(CarrierConfig {
            base_url: sim.base_url(),
            webhooks: true,
            webhook_secret: demo_secret(carrier),
            limits: published_limits(carrier),
            inflight_max: 2,
            api_key: String::new(),
        });
    }
    let sink = Arc::new(
        connect_node(&adapter_config)
            .await
            .context("connecting the adapter to the node")?,
    );
    let clock = Arc::new(ScaledClock::new(start_ms, config.speedup));
    let adapter = run_adapter_with_clock(adapter_config, sink, clock)
        .await
        .context("starting the adapter")?;
    sim.set_webhook_target(WebhookTarget::new(adapter.base_url()));
    let delivery = delivery::start(&mut node).await?;
    let hooks_url = format!("{}/hooks/demo", delivery.hooks.base_url());

    // The storefront's client: every creation carries the marketplace key.
    let mut headers = reqwest::header::HeaderMap::new();
    let mut auth = reqwest::header::HeaderValue::from_str(&format!("Bearer {market_key}"))
        .context("the marketplace key is not a valid header value")?;
    auth.set_sensitive(true);
    headers.insert(reqwest::header::AUTHORIZATION, auth);
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .context("building the storefront's HTTP client")?;
    let sample = tracking_number(Carrier::Ups, 0);
    println!("dropline up: node, adapter, carrier simulator and notification delivery running");
    println!("  dashboard       http://{http}/dashboard");
    println!("  sample parcel   http://{http}/track/ups/{sample}?postal_code=10001");
    println!("  metrics         http://{http}/metrics");
    println!(
        "  SMS/push sim    {}/admin/stats",
        delivery.providers.base_url()
    );
    match &delivery.smtp {
        Some(smtp) => println!("  SMTP server     127.0.0.1:{}", smtp.port()),
        None => {
            println!("  SMTP server     none (install python3-aiosmtpd); email intents stay queued")
        }
    }
    println!("  data dir        {}", data_dir.display());
    println!(
        "  demo drop       {} orders over {} s, carrier time x{}",
        config.orders, config.drop_seconds, config.speedup
    );
    println!("Ctrl-C stops everything.");

    let drop = run_drop(
        &config, &client, http, &hooks_url, &sim, &adapter, &delivery,
    );
    tokio::select! {
        r = drop => r?,
        r = tokio::signal::ctrl_c() => r?,
    }
    println!("stopping");
    adapter.shutdown().await;
    sim.shutdown().await;
    node.shutdown().await?;
    delivery.stop().await?;
    Ok(())
}

/// Creates the demo's orders at an even pace, then keeps reporting.
async fn run_drop<S: dropline_adapters::carrier::EventSink>(
    config: &DemoConfig,
    client: &reqwest::Client,
    http: std::net::SocketAddr,
    hooks_url: &str,
    sim: &dropline_loadgen::carrier_sim::CarrierSimHandle,
    adapter: &dropline_adapters::carrier::AdapterHandle<S>,
    delivery: &delivery::DemoDelivery,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let per_order =
        Duration::from_secs_f64(config.drop_seconds.max(1) as f64 / config.orders.max(1) as f64);
    let mut created = 0u64;
    let mut last_report = Instant::now();
    for i in 0..config.orders {
        let carrier = Carrier::ALL[usize::try_from(i % 4).unwrap_or(0)];
        let number = tracking_number(carrier, i / 4);
        // The carrier knows the parcel from its label; the adapter learns
        // of it from the node's orders feed once the order is appended.
        sim.register(carrier, std::slice::from_ref(&number))
            .map_err(|e| anyhow::anyhow!("registering {number}: {e}"))?;
        create_order(client, http, hooks_url, carrier, &number, i).await?;
        created += 1;
        if last_report.elapsed() >= Duration::from_secs(1) {
            last_report = Instant::now();
            print_progress(created, &adapter.metrics(), &sim.stats(), delivery);
        }
        let due = started + per_order.mul_f64((i + 1) as f64);
        tokio::time::sleep_until(due.into()).await;
    }
    println!("demo drop: all {created} orders created; scans keep arriving");
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        print_progress(created, &adapter.metrics(), &sim.stats(), delivery);
    }
}

fn print_progress(
    orders: u64,
    adapter: &dropline_adapters::carrier::AdapterMetricsSnapshot,
    sim: &dropline_loadgen::carrier_sim::CarrierSimStats,
    delivery: &delivery::DemoDelivery,
) {
    let providers = delivery.providers.stats();
    let hooks = delivery.hooks.stats();
    let emails = delivery.smtp.as_ref().map_or(0, |s| s.received().len());
    println!(
        "  orders {orders:>6}  tracked {:>6}  scans {:>7}  adapter in {:>7}  spooled {:>5}  sent: sms+push {:>6}  webhooks {:>6}  email {:>6}",
        adapter.orders.learned,
        sim.scans_visible,
        adapter.events_in,
        adapter.spool_depth_events,
        providers.accepted,
        hooks.delivered,
        emails
    );
}

/// Creates one order through the public API, as a storefront would.
async fn create_order(
    client: &reqwest::Client,
    http: std::net::SocketAddr,
    hooks_url: &str,
    carrier: Carrier,
    number: &str,
    i: u64,
) -> anyhow::Result<()> {
    let now = now_ms();
    let body = serde_json::json!({
        "tracking_number": number,
        "carrier": carrier.as_str(),
        "order_id": format!("DEMO-{:06}", i / 2),
        "marketplace": DEMO_MARKETPLACE,
        "seller": format!("seller-{}", i % 7),
        "buyer_id": format!("buyer-{i}"),
        "skus": [format!("SKU-{}", i % 13)],
        "promised_window": {
            "from": format_rfc3339_ms(now + 2 * 86_400_000),
            "to": format_rfc3339_ms(now + 4 * 86_400_000),
        },
        "buyer_locale": "en-US",
        // Buyers around the world: whatever the hour, some are awake and
        // some are in their quiet hours (non-critical messages wait).
        "buyer_time_zone": DEMO_TIME_ZONES[usize::try_from(i % 5).unwrap_or(0)],
        "destination_postal_code": "10001",
        "drop": true,
        "contacts": [
            {"channel": "email", "address": format!("buyer{i}@example.com"), "consent": true},
            {"channel": "sms", "address": format!("+1555{:07}", i % 10_000_000), "consent": !i.is_multiple_of(3)},
            {"channel": "push", "address": format!("push-token-{i}"), "consent": true},
            {"channel": "webhook", "address": hooks_url, "consent": true},
        ],
    });
    let response = client
        .post(format!("http://{http}/v1/shipments"))
        .json(&body)
        .send()
        .await
        .with_context(|| format!("creating the order of {number}"))?;
    if !response.status().is_success() {
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        anyhow::bail!("creating the order of {number}: {status}: {text}");
    }
    Ok(())
}
