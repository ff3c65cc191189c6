//! Why a load run failed.

use std::path::PathBuf;

/// Errors of the load generator's runs (the simulators have their own).
#[derive(Debug, thiserror::Error)]
pub enum LoadgenError {
    /// The scenario's parameters are out of range.
    #[error("scenario: {0}")]
    Scenario(#[from] crate::scenario::ScenarioError),
    /// A histogram could not be created.
    #[error("histogram: {0}")]
    Histogram(#[from] hdrhistogram::CreationError),
    /// The embedded node's log failed.
    #[error("log: {0}")]
    Log(#[from] dropline_log::LogError),
    /// The embedded node's engine failed.
    #[error("engine: {0}")]
    Engine(#[from] dropline_engine::EngineError),
    /// The embedded node's QUIC ingest failed.
    #[error("QUIC ingest: {0}")]
    Ingest(#[from] dropline_adapters::ingest::IngestError),
    /// The ingest client failed.
    #[error("ingest client: {0}")]
    Client(#[from] dropline_adapters::client::ClientError),
    /// The carrier adapter failed.
    #[error("adapter: {0}")]
    Adapter(#[from] dropline_adapters::carrier::AdapterError),
    /// The carrier simulator failed to start.
    #[error("carrier simulator: {0}")]
    CarrierSim(#[from] crate::carrier_sim::CarrierSimError),
    /// An HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    /// A file or directory could not be written or read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The order writer thread stopped.
    #[error("the order writer stopped: {reason}")]
    OrderWriter {
        /// Why.
        reason: String,
    },
    /// The engine did not process the acknowledged input in time.
    #[error("the engine did not process the acknowledged input within {seconds} s")]
    ProcessTimeout {
        /// The limit.
        seconds: u64,
    },
    /// The run's configuration is inconsistent.
    #[error("invalid configuration: {field}: {reason}")]
    InvalidConfig {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
}

impl LoadgenError {
    /// An I/O error at `path`.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> LoadgenError {
        let path = path.into();
        move |source| LoadgenError::Io { path, source }
    }
}
