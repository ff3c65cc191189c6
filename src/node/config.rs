//! The node's configuration file (`dropline serve --config node.toml`).
//! Every field has a default, so an empty file (or none) runs a single
//! node on loopback. Notification delivery runs when the file has a
//! `[delivery]` section (see docs/DELIVERY.md for every key).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use dropline_adapters::delivery::{DegradeThresholds, QuietHours, RetryPolicy};
use serde::Deserialize;

/// Default partitions of the input topics.
pub(crate) const PARTITIONS_DEFAULT: u32 = 8;
/// Default QUIC ingest address.
pub(crate) const QUIC_LISTEN_DEFAULT: &str = "127.0.0.1:7400";
/// Default HTTP address.
pub(crate) const HTTP_LISTEN_DEFAULT: &str = "127.0.0.1:7480";
/// Default address of the delivery callbacks (STOP replies, SMS receipts,
/// unsubscribe links).
pub(crate) const DELIVERY_CALLBACKS_LISTEN_DEFAULT: &str = "127.0.0.1:7481";

/// The node's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct NodeConfig {
    /// Where the log, checkpoints, certificate and keys live.
    pub(crate) data_dir: PathBuf,
    /// Partitions of `carrier-events` and `orders` (fixed at creation).
    pub(crate) partitions: u32,
    /// Engine workers, one per core (default: the machine's cores).
    pub(crate) workers: Option<u32>,
    /// Pin engine workers to cores.
    pub(crate) pin_cores: bool,
    /// `fsync` (default), `interval:<ms>` or `none` (benchmarks only).
    pub(crate) durability: String,
    /// Zero-fill each log segment to its full size before appending to it,
    /// with the next one prepared in the background, so that an append's
    /// fdatasync does not also commit the file system's journal for a
    /// growing file (lower ack tails; docs/FORMAT.md, "Preallocated
    /// segments"). Costs one segment (128 MiB) per partition up front.
    pub(crate) preallocate_segments: bool,
    /// Idle partitions get a tick record this often, in ms.
    pub(crate) tick_interval_ms: u64,
    /// QUIC ingest.
    pub(crate) quic: QuicConfig,
    /// HTTP API, pages and metrics.
    pub(crate) http: HttpSection,
    /// Notification delivery; absent: the node writes notification
    /// intents but sends nothing.
    pub(crate) delivery: Option<DeliverySection>,
    /// A replicated cluster; absent: a single node.
    pub(crate) cluster: Option<ClusterSection>,
}

/// Default replicas per partition.
pub(crate) const REPLICATION_DEFAULT: usize = 3;
/// Default Raft tick, in ms (an election after 10 ticks without a leader).
pub(crate) const CLUSTER_TICK_MS_DEFAULT: u64 = 100;

/// `[cluster]`: this node's place in a replicated cluster (see
/// docs/OPERATIONS.md, "Cluster"). Every node's file lists the same peers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClusterSection {
    /// This node's id: one of `peers`.
    pub(crate) node_id: u64,
    /// A name for people (logs, status); default `node-<id>`.
    #[serde(default)]
    pub(crate) name: Option<String>,
    /// Replicas per partition (default 3, at most the node count).
    #[serde(default = "replication_default")]
    pub(crate) replication: usize,
    /// Directory with `ca.pem` and this node's `node-<id>.pem` and
    /// `node-<id>-key.pem` (written by `dropline cluster init`).
    pub(crate) certs_dir: PathBuf,
    /// Raft tick, in ms.
    #[serde(default = "tick_ms_default")]
    pub(crate) tick_ms: u64,
    /// Every node of the cluster, this one included, in placement order.
    pub(crate) peers: Vec<PeerEntry>,
}

fn replication_default() -> usize {
    REPLICATION_DEFAULT
}

fn tick_ms_default() -> u64 {
    CLUSTER_TICK_MS_DEFAULT
}

/// `[[cluster.peers]]`: one node as every node knows it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PeerEntry {
    /// Node id (non-zero, unique; its Raft id).
    pub(crate) id: u64,
    /// A name for people.
    #[serde(default)]
    pub(crate) name: Option<String>,
    /// UDP address of its peer endpoint (QUIC, mutual TLS).
    pub(crate) peer_addr: SocketAddr,
    /// `host:port` adapters reach its QUIC ingest at (what a follower
    /// answers `not_leader` with).
    pub(crate) ingest_addr: String,
    /// Its HTTP address (status and metrics), if it serves one.
    #[serde(default)]
    pub(crate) http_addr: Option<SocketAddr>,
}

/// `[quic]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct QuicConfig {
    /// UDP address to listen on.
    pub(crate) listen: SocketAddr,
    /// PEM certificate chain; with `key_pem`, replaces the self-signed one.
    pub(crate) cert_pem: Option<PathBuf>,
    /// PEM private key of `cert_pem`.
    pub(crate) key_pem: Option<PathBuf>,
    /// Adapters allowed to connect.
    pub(crate) adapters: Vec<AdapterEntry>,
}

/// `[[quic.adapters]]`: an adapter's name and the SHA-256 of its token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AdapterEntry {
    /// Name the adapter sends in its Hello.
    pub(crate) name: String,
    /// Lower-case hex SHA-256 of its token (`dropline` never stores tokens).
    pub(crate) token_sha256: String,
}

/// `[http]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct HttpSection {
    /// TCP address to listen on.
    pub(crate) listen: SocketAddr,
    /// Serve HTTPS with the node's certificate (`[quic] cert_pem/key_pem`,
    /// or the self-signed pair in the data directory) instead of plain
    /// HTTP. Off by default: `up` and loopback setups stay on plain HTTP,
    /// and a TLS-terminating proxy in front also works.
    pub(crate) tls: bool,
    /// `[[http.shipment_keys]]`: marketplaces' keys for `POST
    /// /v1/shipments`. None configured: the route is open (guard the port).
    pub(crate) shipment_keys: Vec<ShipmentKeyEntry>,
}

/// One `[[http.shipment_keys]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ShipmentKeyEntry {
    /// The marketplace whose orders the key creates.
    pub(crate) marketplace: String,
    /// SHA-256 of the key, 64 hex digits (the node never stores the key).
    pub(crate) token_sha256: String,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            data_dir: PathBuf::from("./dropline-data"),
            partitions: PARTITIONS_DEFAULT,
            workers: None,
            pin_cores: true,
            durability: "fsync".into(),
            preallocate_segments: false,
            tick_interval_ms: 1000,
            quic: QuicConfig::default(),
            http: HttpSection::default(),
            delivery: None,
            cluster: None,
        }
    }
}

impl Default for QuicConfig {
    fn default() -> Self {
        QuicConfig {
            listen: QUIC_LISTEN_DEFAULT
                .parse()
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 7400))),
            cert_pem: None,
            key_pem: None,
            adapters: Vec::new(),
        }
    }
}

impl Default for HttpSection {
    fn default() -> Self {
        HttpSection {
            listen: HTTP_LISTEN_DEFAULT
                .parse()
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 7480))),
            tls: false,
            shipment_keys: Vec::new(),
        }
    }
}

/// `[delivery]`: the delivery worker, where its callbacks listen, how it
/// groups and paces messages, and one sub-section per channel it delivers
/// (a channel without one is not delivered: its intents wait in the log).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct DeliverySection {
    /// TCP address of the callbacks: SMS STOP replies and delivery
    /// receipts, email unsubscribe links.
    pub(crate) callbacks_listen: SocketAddr,
    /// Base URL providers and buyers reach the callbacks at (status
    /// callbacks, unsubscribe links); default `http://<callbacks address>`.
    pub(crate) public_url: Option<String>,
    /// Notifications of one order and status whose log times fall in one
    /// window this long become one message, ms.
    pub(crate) consolidation_window_ms: u64,
    /// Low-priority updates of one buyer in one window this long become
    /// one digest, ms.
    pub(crate) digest_window_ms: u64,
    /// Sends in flight per channel.
    pub(crate) in_flight_per_channel_max: usize,
    /// Local hours (buyer's time zone) when non-critical messages wait;
    /// equal hours: none.
    pub(crate) quiet_hours: QuietHours,
    /// Most non-critical messages per buyer per `buyer_cap_window_ms`;
    /// 0: no cap.
    pub(crate) buyer_cap_messages_max: u32,
    /// The per-buyer cap's window, ms.
    pub(crate) buyer_cap_window_ms: u64,
    /// Retries and backoff.
    pub(crate) retry: RetryPolicy,
    /// Backlog thresholds for degrading low and normal priority.
    pub(crate) degrade: DegradeThresholds,
    /// Cost of one message per channel (`webhook`, `email`, `sms`,
    /// `push`), millionths of a currency unit; unlisted channels keep the
    /// defaults.
    pub(crate) cost_micro_per_message: BTreeMap<String, u64>,
    /// Critical-notification latency objective (95% within it), ms.
    pub(crate) critical_slo_ms: u64,
    /// `[delivery.webhook]`: signed marketplace webhooks.
    pub(crate) webhook: Option<WebhookSection>,
    /// `[delivery.email]`: SMTP.
    pub(crate) email: Option<EmailSection>,
    /// `[delivery.sms]`: the SMS provider API.
    pub(crate) sms: Option<SmsSection>,
    /// `[delivery.push]`: the push provider API.
    pub(crate) push: Option<PushSection>,
}

impl Default for DeliverySection {
    fn default() -> Self {
        DeliverySection {
            callbacks_listen: DELIVERY_CALLBACKS_LISTEN_DEFAULT
                .parse()
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 7481))),
            public_url: None,
            consolidation_window_ms: 2_000,
            digest_window_ms: 3_600_000,
            in_flight_per_channel_max: 64,
            quiet_hours: QuietHours::default(),
            buyer_cap_messages_max: 20,
            buyer_cap_window_ms: 86_400_000,
            retry: RetryPolicy::default(),
            degrade: DegradeThresholds::default(),
            cost_micro_per_message: BTreeMap::new(),
            critical_slo_ms: 60_000,
            webhook: None,
            email: None,
            sms: None,
            push: None,
        }
    }
}

/// `[delivery.webhook]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct WebhookSection {
    /// Secret webhooks are signed with (HMAC-SHA256, docs/WEBHOOKS.md)
    /// unless their marketplace has its own. Required.
    pub(crate) secret: String,
    /// Requests in flight per endpoint URL.
    pub(crate) per_endpoint_concurrency: usize,
    /// Whole-request timeout, ms.
    pub(crate) timeout_ms: u64,
    /// `[delivery.webhook.marketplaces.<name>]`: a marketplace's endpoint
    /// and secret.
    pub(crate) marketplaces: BTreeMap<String, MarketplaceEntry>,
}

impl Default for WebhookSection {
    fn default() -> Self {
        WebhookSection {
            secret: String::new(),
            per_endpoint_concurrency: 8,
            timeout_ms: 10_000,
            marketplaces: BTreeMap::new(),
        }
    }
}

/// One marketplace's webhook settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct MarketplaceEntry {
    /// Its endpoint; when set, its webhooks go here whatever webhook
    /// contact the order carries.
    pub(crate) endpoint: Option<String>,
    /// Its own signing secret.
    pub(crate) secret: Option<String>,
}

/// `[delivery.email]`: plain SMTP to a relay (no TLS or AUTH yet).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct EmailSection {
    /// SMTP host.
    pub(crate) host: String,
    /// SMTP port.
    pub(crate) port: u16,
    /// `From` address (`Name <address>`).
    pub(crate) from: String,
    /// Idle connections kept open to the relay.
    pub(crate) pool_connections_max: u32,
    /// Bound on one whole send, ms.
    pub(crate) timeout_ms: u64,
}

impl Default for EmailSection {
    fn default() -> Self {
        EmailSection {
            host: "127.0.0.1".into(),
            port: 25,
            from: "Dropline <notify@localhost>".into(),
            pool_connections_max: 4,
            timeout_ms: 10_000,
        }
    }
}

/// Kind of an SMS sender number, which sets its default rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum SmsSenderKind {
    /// A 10-digit long code: 1 message/s.
    LongCode,
    /// A toll-free number: 3 messages/s.
    TollFree,
    /// A short code: 100 messages/s.
    ShortCode,
}

impl SmsSenderKind {
    /// Published sending rate (messages per second) and burst.
    pub(crate) fn default_rate(self) -> (f64, u32) {
        match self {
            SmsSenderKind::LongCode => (1.0, 1),
            SmsSenderKind::TollFree => (3.0, 3),
            SmsSenderKind::ShortCode => (100.0, 100),
        }
    }
}

/// `[[delivery.sms.senders]]`: one sender number.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SmsSenderEntry {
    /// The number (`+15550000001`, or a short code `55501`).
    pub(crate) number: String,
    /// Its kind (`long_code`, `toll_free`, `short_code`).
    pub(crate) kind: SmsSenderKind,
    /// Messages per second, when the provider granted a rate other than
    /// the kind's published one.
    #[serde(default)]
    pub(crate) per_second: Option<f64>,
    /// Burst, with `per_second`.
    #[serde(default)]
    pub(crate) burst: Option<u32>,
}

/// `[delivery.sms]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct SmsSection {
    /// The provider API's base URL. Required.
    pub(crate) base_url: String,
    /// Account id (in the path and basic auth).
    pub(crate) account_sid: String,
    /// Account token (basic auth).
    pub(crate) auth_token: String,
    /// Share of each sender's rate used, 0..=1 (stay under the provider's
    /// own limiter).
    pub(crate) rate_margin: f64,
    /// Whole-request timeout, ms.
    pub(crate) timeout_ms: u64,
    /// Sender numbers; at least one.
    pub(crate) senders: Vec<SmsSenderEntry>,
}

impl Default for SmsSection {
    fn default() -> Self {
        SmsSection {
            base_url: String::new(),
            account_sid: String::new(),
            auth_token: String::new(),
            rate_margin: 0.97,
            timeout_ms: 10_000,
            senders: Vec::new(),
        }
    }
}

/// `[delivery.push]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct PushSection {
    /// The provider API's base URL. Required.
    pub(crate) base_url: String,
    /// Project id (in the path).
    pub(crate) project: String,
    /// Bearer token.
    pub(crate) bearer_token: String,
    /// The project's quota, messages per second (600k a minute: 10 000).
    pub(crate) per_second: f64,
    /// Burst.
    pub(crate) burst: u32,
    /// Whole-request timeout, ms.
    pub(crate) timeout_ms: u64,
}

impl Default for PushSection {
    fn default() -> Self {
        PushSection {
            base_url: String::new(),
            project: String::new(),
            bearer_token: String::new(),
            per_second: 10_000.0,
            burst: 10_000,
            timeout_ms: 10_000,
        }
    }
}

impl NodeConfig {
    /// Reads a TOML file; errors name the file, line and reason.
    pub(crate) fn load(path: &Path) -> anyhow::Result<NodeConfig> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }
}

/// Decodes 64 hex digits into 32 bytes.
pub(crate) fn parse_sha256_hex(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = char::from(pair[0]).to_digit(16)?;
        let lo = char::from(pair[1]).to_digit(16)?;
        out[i] = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

/// Lower-case hex of bytes.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        let config: NodeConfig = toml::from_str("").unwrap();
        assert_eq!(config.partitions, PARTITIONS_DEFAULT);
        assert_eq!(config.quic.listen.port(), 7400);
    }

    #[test]
    fn unknown_fields_are_rejected_with_the_line() {
        let err = toml::from_str::<NodeConfig>("partitions = 4\npartitons = 5\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("partitons"), "{text}");
        assert!(text.contains("line 2") || text.contains("2 |"), "{text}");
    }

    #[test]
    fn shipment_keys_are_read_per_marketplace() {
        let config: NodeConfig = toml::from_str(
            r#"
[[http.shipment_keys]]
marketplace = "dropshop"
token_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

[[http.shipment_keys]]
marketplace = "cardvault"
token_sha256 = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"
"#,
        )
        .unwrap();
        let markets: Vec<&str> = config
            .http
            .shipment_keys
            .iter()
            .map(|k| k.marketplace.as_str())
            .collect();
        assert_eq!(markets, ["dropshop", "cardvault"]);
        assert!(
            toml::from_str::<NodeConfig>("")
                .unwrap()
                .http
                .shipment_keys
                .is_empty()
        );
        let err = toml::from_str::<NodeConfig>(
            "[[http.shipment_keys]]\nmarketplace = \"x\"\ntoken = \"plain\"\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("token"), "{err}");
    }

    #[test]
    fn preallocation_is_off_unless_asked() {
        assert!(
            !toml::from_str::<NodeConfig>("")
                .unwrap()
                .preallocate_segments
        );
        let config: NodeConfig = toml::from_str(
            "preallocate_segments = true
",
        )
        .unwrap();
        assert!(config.preallocate_segments);
        assert!(
            super::super::log_config(&config)
                .unwrap()
                .preallocate_segments
        );
    }

    #[test]
    fn no_delivery_section_means_no_delivery() {
        let config: NodeConfig = toml::from_str("partitions = 4\n").unwrap();
        assert!(config.delivery.is_none());
    }

    #[test]
    fn delivery_section_names_the_providers_and_keeps_defaults() {
        let config: NodeConfig = toml::from_str(
            r#"
[delivery]
callbacks_listen = "127.0.0.1:0"
quiet_hours = { start_hour = 22, end_hour = 7 }
retry = { attempts_max = 3 }
cost_micro_per_message = { sms = 5000 }

[delivery.webhook]
secret = "s"

[delivery.webhook.marketplaces.cardvault]
endpoint = "https://cardvault.example/hooks"

[delivery.email]
host = "smtp.internal"
port = 2525

[delivery.sms]
base_url = "http://127.0.0.1:7700"

[[delivery.sms.senders]]
number = "55501"
kind = "short_code"

[[delivery.sms.senders]]
number = "+15550000001"
kind = "long_code"
per_second = 2.0
burst = 2
"#,
        )
        .unwrap();
        let d = config.delivery.unwrap();
        assert_eq!(d.callbacks_listen.port(), 0);
        assert_eq!((d.quiet_hours.start_hour, d.quiet_hours.end_hour), (22, 7));
        assert_eq!(d.retry.attempts_max, 3);
        assert_eq!(
            d.retry.backoff_base_ms,
            RetryPolicy::default().backoff_base_ms
        );
        assert_eq!(d.cost_micro_per_message["sms"], 5000);
        let w = d.webhook.unwrap();
        assert_eq!(w.per_endpoint_concurrency, 8);
        assert_eq!(
            w.marketplaces["cardvault"].endpoint.as_deref(),
            Some("https://cardvault.example/hooks")
        );
        let e = d.email.unwrap();
        assert_eq!((e.host.as_str(), e.port), ("smtp.internal", 2525));
        let sms = d.sms.unwrap();
        assert_eq!(sms.senders[0].kind.default_rate(), (100.0, 100));
        assert_eq!(sms.senders[1].per_second, Some(2.0));
        assert!(d.push.is_none());
    }

    #[test]
    fn the_documented_delivery_section_parses() {
        let doc = include_str!("../../docs/DELIVERY.md");
        let start = doc
            .find("```toml\n[delivery]")
            .expect("the example in DELIVERY.md");
        let body = &doc[start + "```toml\n".len()..];
        let example = &body[..body.find("```").expect("the end of the example")];
        let config: NodeConfig = toml::from_str(example).unwrap();
        let d = config.delivery.unwrap();
        assert_eq!(d.sms.unwrap().senders.len(), 2);
        assert!(d.webhook.unwrap().marketplaces.contains_key("cardvault"));
        assert_eq!(d.push.unwrap().per_second, 10_000.0);
    }

    #[test]
    fn a_misspelt_delivery_key_is_rejected() {
        let err = toml::from_str::<NodeConfig>("[delivery.sms]\nbase_ulr = \"x\"\n").unwrap_err();
        assert!(err.to_string().contains("base_ulr"), "{err}");
        let err =
            toml::from_str::<NodeConfig>("[delivery]\nretry = { attempts = 3 }\n").unwrap_err();
        assert!(err.to_string().contains("attempts"), "{err}");
    }

    #[test]
    fn adapters_and_hex() {
        let config: NodeConfig = toml::from_str(
            "[[quic.adapters]]\nname = \"ups\"\ntoken_sha256 = \"00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff\"\n",
        )
        .unwrap();
        let hash = parse_sha256_hex(&config.quic.adapters[0].token_sha256).unwrap();
        assert_eq!(hash[1], 0xff);
        assert_eq!(to_hex(&hash), config.quic.adapters[0].token_sha256);
        assert!(parse_sha256_hex("zz").is_none());
    }

    #[test]
    fn cluster_section_with_defaults() {
        let config: NodeConfig = toml::from_str(
            "[cluster]\nnode_id = 2\ncerts_dir = \"/c\"\n\
             [[cluster.peers]]\nid = 1\npeer_addr = \"127.0.0.1:9001\"\ningest_addr = \"127.0.0.1:7401\"\n\
             [[cluster.peers]]\nid = 2\npeer_addr = \"127.0.0.1:9002\"\ningest_addr = \"127.0.0.1:7402\"\nhttp_addr = \"127.0.0.1:7482\"\n",
        )
        .unwrap();
        let c = config.cluster.unwrap();
        assert_eq!(c.node_id, 2);
        assert_eq!(c.replication, REPLICATION_DEFAULT);
        assert_eq!(c.tick_ms, CLUSTER_TICK_MS_DEFAULT);
        assert_eq!(c.peers.len(), 2);
        assert_eq!(
            c.peers[1].http_addr,
            Some("127.0.0.1:7482".parse().unwrap())
        );
        assert!(NodeConfig::default().cluster.is_none());
        let unknown: Result<NodeConfig, _> =
            toml::from_str("[cluster]\nnode_id = 1\ncerts_dir = \"/c\"\npeers = []\nbogus = 1\n");
        assert!(unknown.is_err(), "unknown keys are refused");
    }
}
