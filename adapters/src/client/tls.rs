//! How an adapter decides to trust the node: a pinned SHA-256 fingerprint
//! of the node's certificate (what a self-signed node prints on first
//! start), or a CA certificate.
//!
//! Why pinning still checks the handshake signature: the fingerprint only
//! says which certificate is acceptable; the TLS 1.3 signature proves the
//! peer holds its private key.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use super::error::ClientError;
use crate::ingest::cert_fingerprint_sha256;
use crate::wire::ALPN;

/// How the client verifies the node's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerTrust {
    /// Accept exactly the certificate with this SHA-256 fingerprint
    /// (64 hex digits, case and `:` separators ignored).
    PinnedSha256(String),
    /// Verify the chain against this PEM CA certificate and the name in
    /// `IngestClientConfig::server_name`.
    CaCertPem(PathBuf),
}

#[derive(Debug)]
struct PinnedVerifier {
    fingerprint: String,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if cert_fingerprint_sha256(end_entity) == self.fingerprint {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn normalize_fingerprint(s: &str) -> String {
    s.chars()
        .filter(|c| *c != ':')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// The QUIC client crypto configuration for `trust`.
pub(crate) fn client_crypto(
    trust: &ServerTrust,
) -> Result<quinn::crypto::rustls::QuicClientConfig, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(ClientError::Tls)?;
    let mut tls = match trust {
        ServerTrust::PinnedSha256(fp) => {
            let fingerprint = normalize_fingerprint(fp);
            if fingerprint.len() != 64 || !fingerprint.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(ClientError::BadFingerprint {
                    fingerprint: fp.clone(),
                });
            }
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinnedVerifier {
                    fingerprint,
                    provider,
                }))
                .with_no_client_auth()
        }
        ServerTrust::CaCertPem(path) => {
            let bytes = std::fs::read(path).map_err(|source| ClientError::Io {
                path: path.clone(),
                source,
            })?;
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&bytes) {
                let cert = cert.map_err(|_| ClientError::BadCaCert { path: path.clone() })?;
                roots.add(cert).map_err(ClientError::Tls)?;
            }
            if roots.is_empty() {
                return Err(ClientError::BadCaCert { path: path.clone() });
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    tls.alpn_protocols = vec![ALPN.to_vec()];
    // Never 0-RTT: see the module docs of `crate::ingest`.
    tls.enable_early_data = false;
    quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|_| ClientError::NoInitialCipherSuite)
}
