//! The cluster's own certificate authority and the node certificates it
//! signs, and the TLS configurations of the peer endpoint: a node accepts
//! a peer connection only from a client certificate signed by the cluster
//! CA, and connects only to servers whose certificate the CA signed.
//!
//! Files in a certificate directory: `ca.pem` (the CA certificate, shared by
//! every node), `ca-key.pem` (its key; keep it off the nodes once the
//! certificates are made), `node-<id>.pem` and `node-<id>-key.pem`. Keys are
//! written with mode 0600.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// ALPN of node-to-node connections (never the ingest ALPN: an adapter
/// cannot reach the peer protocol, nor a peer the ingest one by mistake).
pub const PEER_ALPN: &[u8] = b"dropline-peer/1";

/// Why certificates could not be made or loaded.
#[derive(Debug, thiserror::Error)]
pub enum PeerTlsError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A file is not the PEM it should be.
    #[error("{path}: {reason}")]
    BadPem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },
    /// Generating a key or certificate failed.
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error("tls configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client verifier could not be built from the CA.
    #[error("client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// QUIC needs a TLS 1.3 cipher suite the provider lacks.
    #[error("no TLS 1.3 cipher suite usable by QUIC")]
    NoInitialCipherSuite,
}

/// The DNS name in node `id`'s certificate, and the server name peers
/// connect to it with.
pub fn node_name(id: u64) -> String {
    format!("node-{id}")
}

fn io_err(path: &Path, source: std::io::Error) -> PeerTlsError {
    PeerTlsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), PeerTlsError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(|e| io_err(path, e))?;
    f.write_all(bytes).map_err(|e| io_err(path, e))?;
    f.sync_all().map_err(|e| io_err(path, e))
}

/// Creates a cluster CA and one certificate per node in `dir` (created if
/// absent). Node `id`'s certificate names `node-<id>` and every address in
/// `extra_names` (e.g. `127.0.0.1`, a host name). Existing files are
/// replaced.
pub fn generate_cluster_certs(
    dir: &Path,
    nodes: &[u64],
    extra_names: &[String],
) -> Result<(), PeerTlsError> {
    let named: Vec<(u64, Vec<String>)> =
        nodes.iter().map(|&id| (id, extra_names.to_vec())).collect();
    generate_cluster_certs_named(dir, &named)
}

/// Like [`generate_cluster_certs`], with names per node: node `id`'s
/// certificate names `node-<id>` and its own list (e.g. the address of its
/// host, which no other node's certificate names).
pub fn generate_cluster_certs_named(
    dir: &Path,
    nodes: &[(u64, Vec<String>)],
) -> Result<(), PeerTlsError> {
    std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "dropline cluster CA");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    write_file(
        &dir.join("ca-key.pem"),
        ca_key.serialize_pem().as_bytes(),
        0o600,
    )?;
    write_file(&dir.join("ca.pem"), ca_cert.pem().as_bytes(), 0o644)?;
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    for (id, extra_names) in nodes {
        let id = *id;
        let mut names = vec![node_name(id)];
        names.extend(extra_names.iter().cloned());
        let mut params = rcgen::CertificateParams::new(names)?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, node_name(id));
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = rcgen::KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;
        write_file(
            &dir.join(format!("node-{id}-key.pem")),
            key.serialize_pem().as_bytes(),
            0o600,
        )?;
        write_file(
            &dir.join(format!("node-{id}.pem")),
            cert.pem().as_bytes(),
            0o644,
        )?;
    }
    Ok(())
}

/// One node's peer identity: the cluster CA and its own certificate.
#[derive(Debug)]
pub struct PeerTls {
    ca: Vec<CertificateDer<'static>>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, PeerTlsError> {
    let bytes = std::fs::read(path).map_err(|e| io_err(path, e))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|_| PeerTlsError::BadPem {
            path: path.to_path_buf(),
            reason: "not a PEM certificate chain",
        })?;
    if certs.is_empty() {
        return Err(PeerTlsError::BadPem {
            path: path.to_path_buf(),
            reason: "no certificate in file",
        });
    }
    Ok(certs)
}

impl PeerTls {
    /// Loads node `id`'s identity from a directory made by
    /// [`generate_cluster_certs`].
    pub fn load(dir: &Path, id: u64) -> Result<PeerTls, PeerTlsError> {
        let ca = read_certs(&dir.join("ca.pem"))?;
        let chain = read_certs(&dir.join(format!("node-{id}.pem")))?;
        let key_path = dir.join(format!("node-{id}-key.pem"));
        let key_bytes = std::fs::read(&key_path).map_err(|e| io_err(&key_path, e))?;
        let key = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|_| PeerTlsError::BadPem {
            path: key_path.clone(),
            reason: "no PEM private key in file",
        })?;
        Ok(PeerTls { ca, chain, key })
    }

    fn roots(&self) -> Result<Arc<rustls::RootCertStore>, PeerTlsError> {
        let mut roots = rustls::RootCertStore::empty();
        for c in &self.ca {
            roots.add(c.clone())?;
        }
        Ok(Arc::new(roots))
    }

    /// The server side: TLS 1.3, ALPN [`PEER_ALPN`], client certificates
    /// required and verified against the cluster CA.
    pub fn server_config(&self) -> Result<quinn::ServerConfig, PeerTlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            self.roots()?,
            provider.clone(),
        )
        .build()?;
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        tls.alpn_protocols = vec![PEER_ALPN.to_vec()];
        tls.max_early_data_size = 0;
        let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
            .map_err(|_| PeerTlsError::NoInitialCipherSuite)?;
        Ok(quinn::ServerConfig::with_crypto(Arc::new(crypto)))
    }

    /// The client side: presents this node's certificate, trusts only
    /// servers the cluster CA signed.
    pub fn client_config(&self) -> Result<quinn::ClientConfig, PeerTlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(self.roots()?)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())?;
        tls.alpn_protocols = vec![PEER_ALPN.to_vec()];
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
            .map_err(|_| PeerTlsError::NoInitialCipherSuite)?;
        Ok(quinn::ClientConfig::new(Arc::new(crypto)))
    }
}
