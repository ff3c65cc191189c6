//! The node's certificate: created self-signed on first start (and then
//! kept), or loaded from configured PEM files; and the TLS 1.3 server
//! configuration built from it.
//!
//! Why self-signed by default: a node must be reachable by adapters before
//! anyone runs a CA. The node prints the certificate's SHA-256 fingerprint,
//! and adapters pin it (see `crate::client::ServerTrust`).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use super::config::TlsSource;
use super::error::IngestError;
use crate::wire::ALPN;

/// File name of the self-signed certificate in the data directory.
pub const SELF_SIGNED_CERT_FILE: &str = "node-cert.pem";
/// File name of the self-signed certificate's private key.
pub const SELF_SIGNED_KEY_FILE: &str = "node-key.pem";
/// Names the self-signed certificate is issued for.
pub const SELF_SIGNED_NAMES: [&str; 2] = ["dropline-node", "localhost"];

/// The certificate chain and key the node serves.
#[derive(Debug)]
pub(crate) struct NodeIdentity {
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) key: PrivateKeyDer<'static>,
}

/// SHA-256 of a DER certificate as lowercase hex (64 characters): what the
/// node prints and adapters pin.
pub fn cert_fingerprint_sha256(cert_der: &[u8]) -> String {
    let digest = Sha256::digest(cert_der);
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn io_err(path: &Path, source: std::io::Error) -> IngestError {
    IngestError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn read_pem(path: &Path) -> Result<Vec<u8>, IngestError> {
    std::fs::read(path).map_err(|e| io_err(path, e))
}

fn load_files(cert_pem: &Path, key_pem: &Path) -> Result<NodeIdentity, IngestError> {
    let cert_bytes = read_pem(cert_pem)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_bytes)
        .collect::<Result<_, _>>()
        .map_err(|_| IngestError::BadPem {
            path: cert_pem.to_path_buf(),
            reason: "not a PEM certificate chain",
        })?;
    if chain.is_empty() {
        return Err(IngestError::BadPem {
            path: cert_pem.to_path_buf(),
            reason: "no certificate in file",
        });
    }
    let key_bytes = read_pem(key_pem)?;
    let key = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|_| IngestError::BadPem {
        path: key_pem.to_path_buf(),
        reason: "no PEM private key in file",
    })?;
    Ok(NodeIdentity { chain, key })
}

/// Writes `bytes` to `path` atomically (temp file, fsync, rename, fsync of
/// the directory) with owner-only permissions.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), IngestError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp: PathBuf = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| io_err(&tmp, e))?;
    f.write_all(bytes).map_err(|e| io_err(&tmp, e))?;
    f.sync_all().map_err(|e| io_err(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io_err(path, e))?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_err(dir, e))?;
    }
    Ok(())
}

/// Loads the configured identity, creating the self-signed one on first
/// start.
pub(crate) fn load_or_create(source: &TlsSource) -> Result<NodeIdentity, IngestError> {
    match source {
        TlsSource::Files { cert_pem, key_pem } => load_files(cert_pem, key_pem),
        TlsSource::SelfSigned { dir } => {
            let cert_path = dir.join(SELF_SIGNED_CERT_FILE);
            let key_path = dir.join(SELF_SIGNED_KEY_FILE);
            if cert_path.exists() && key_path.exists() {
                return load_files(&cert_path, &key_path);
            }
            std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
            let names: Vec<String> = SELF_SIGNED_NAMES.iter().map(|s| s.to_string()).collect();
            let certified = rcgen::generate_simple_self_signed(names)?;
            // Key first: a crash between the two writes leaves no
            // certificate, so the next start generates a fresh pair.
            write_private(&key_path, certified.signing_key.serialize_pem().as_bytes())?;
            write_private(&cert_path, certified.cert.pem().as_bytes())?;
            load_files(&cert_path, &key_path)
        }
    }
}

/// The HTTPS server configuration for the same identity: TLS 1.3 and 1.2
/// (browsers and storefront back ends still speak 1.2), ALPN `http/1.1`.
pub(crate) fn https_server_config(
    source: &TlsSource,
) -> Result<Arc<rustls::ServerConfig>, IngestError> {
    let identity = load_or_create(source)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(identity.chain, identity.key)?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(tls))
}

/// The TLS 1.3 server configuration with the Dropline ALPN and 0-RTT off.
pub(crate) fn server_crypto(
    identity: NodeIdentity,
) -> Result<quinn::crypto::rustls::QuicServerConfig, IngestError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(identity.chain, identity.key)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    // 0-RTT refused: see the module docs of `crate::ingest`.
    tls.max_early_data_size = 0;
    quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|_| IngestError::NoInitialCipherSuite)
}
