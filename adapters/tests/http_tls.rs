//! HTTPS on the node's HTTP edge: with `tls` configured the server speaks
//! only TLS (the node's self-signed certificate here), a client that trusts
//! that certificate gets real answers, and a plain-HTTP or garbage client
//! is refused without disturbing others.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod http_support;

use std::sync::Arc;

use dropline_adapters::ingest::{SELF_SIGNED_CERT_FILE, TlsSource};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn client_config(dir: &std::path::Path) -> Arc<rustls::ClientConfig> {
    let pem = std::fs::read(dir.join(SELF_SIGNED_CERT_FILE)).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// One HTTP/1.1 request over TLS; returns the whole response text.
async fn https_get(
    addr: std::net::SocketAddr,
    config: Arc<rustls::ClientConfig>,
    path: &str,
) -> String {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(config);
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tls.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn https_serves_trusting_clients_and_refuses_plain_ones() {
    let dir = tempfile::tempdir().unwrap();
    let cert_dir = dir.path().join("identity");
    let node = http_support::start_with(
        dir.path(),
        |c| {
            c.tls = Some(TlsSource::SelfSigned {
                dir: cert_dir.clone(),
            })
        },
        |_| {},
    )
    .await;
    let addr = node.handle.local_addr();
    let config = client_config(&cert_dir);

    let health = https_get(addr, config.clone(), "/healthz").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");

    // Plain HTTP on the TLS port: the server answers with a TLS alert or
    // closes, never with an HTTP response.
    let mut plain = TcpStream::connect(addr).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let _ = plain.read_to_end(&mut got).await;
    assert!(
        !got.starts_with(b"HTTP/"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );

    // A client that does not trust the certificate fails its handshake.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let stranger = Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
    );
    let tcp = TcpStream::connect(addr).await.unwrap();
    let refused = tokio_rustls::TlsConnector::from(stranger)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await;
    assert!(refused.is_err());

    // The refused clients did not disturb the server: the public API still
    // answers over TLS (an unknown parcel is a typed 404).
    let missing = https_get(addr, config, "/v1/shipments/ups/1Z000000000000000X").await;
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    assert!(missing.contains("application/problem+json"), "{missing}");
}
