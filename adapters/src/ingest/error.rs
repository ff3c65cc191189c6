//! Errors starting or running the ingest server.

use std::path::PathBuf;

/// Why the ingest server could not start.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Reading or writing a file (certificate, key) failed.
    #[error("i/o error on {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A PEM file holds no usable certificate or key.
    #[error("{path}: {reason}")]
    BadPem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },
    /// Generating the self-signed certificate failed.
    #[error("generating the node certificate failed: {0}")]
    CertGeneration(#[from] rcgen::Error),
    /// rustls refused the certificate or key.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// The TLS provider lacks the cipher suite QUIC needs.
    #[error("TLS provider lacks the QUIC initial cipher suite")]
    NoInitialCipherSuite,
    /// Binding the UDP socket failed.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A configuration value is out of range.
    #[error("invalid configuration {field} = {value}: {reason}")]
    InvalidConfig {
        /// The field.
        field: &'static str,
        /// Its value.
        value: u64,
        /// The allowed range.
        reason: &'static str,
    },
}
