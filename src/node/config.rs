//! The node's configuration file (`dropline serve --config node.toml`).
//! Every field has a default, so an empty file (or none) runs a single
//! node on loopback.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

/// Default partitions of the input topics.
pub(crate) const PARTITIONS_DEFAULT: u32 = 8;
/// Default QUIC ingest address.
pub(crate) const QUIC_LISTEN_DEFAULT: &str = "127.0.0.1:7400";
/// Default HTTP address.
pub(crate) const HTTP_LISTEN_DEFAULT: &str = "127.0.0.1:7480";

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
    /// Idle partitions get a tick record this often, in ms.
    pub(crate) tick_interval_ms: u64,
    /// QUIC ingest.
    pub(crate) quic: QuicConfig,
    /// HTTP API, pages and metrics.
    pub(crate) http: HttpSection,
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
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            data_dir: PathBuf::from("./dropline-data"),
            partitions: PARTITIONS_DEFAULT,
            workers: None,
            pin_cores: true,
            durability: "fsync".into(),
            tick_interval_ms: 1000,
            quic: QuicConfig::default(),
            http: HttpSection::default(),
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
}
