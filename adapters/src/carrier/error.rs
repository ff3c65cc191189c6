//! Errors of the adapter process.

use std::net::SocketAddr;

use dropline_operators::model::Carrier;

/// Why the adapter could not start or refused a call.
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    /// `adapter.toml` is not valid TOML for the configuration.
    #[error("adapter configuration: {reason}")]
    ConfigParse {
        /// The parser's message (line and column included).
        reason: String,
    },
    /// A configuration value is out of range.
    #[error("invalid configuration {field}: {reason}")]
    InvalidConfig {
        /// The field.
        field: &'static str,
        /// The allowed range.
        reason: &'static str,
    },
    /// Binding the HTTP listener failed.
    #[error("binding {addr} failed: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The state log failed.
    #[error("state log: {0}")]
    StateLog(#[from] dropline_log::LogError),
    /// The ingest client failed to start.
    #[error("ingest client: {0}")]
    Client(#[from] crate::client::ClientError),
    /// The adapter holds its maximum of shipments.
    #[error("the adapter tracks its maximum of {shipments_max} shipments")]
    Full {
        /// The limit.
        shipments_max: usize,
    },
    /// The carrier has no section in the configuration.
    #[error("carrier {carrier} is not configured")]
    CarrierNotConfigured {
        /// The carrier.
        carrier: Carrier,
    },
    /// The tracking number is empty or too long.
    #[error("invalid tracking number of {bytes} bytes")]
    InvalidTrackingNumber {
        /// Its length.
        bytes: usize,
    },
    /// The configuration has no `[node]` section.
    #[error("the configuration has no [node] section")]
    NoNode,
}
