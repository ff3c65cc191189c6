//! `dropline serve` with `[http] tls = true` serves its HTTP edge over
//! HTTPS with the node's own certificate (the self-signed pair it creates
//! in the data directory), and says so in its start-up lines.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};

/// Kills the node when the test ends, whatever happens.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free(addr: &str) -> String {
    std::net::TcpListener::bind(addr)
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string()
}

#[test]
fn serve_with_http_tls_answers_over_https_only() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let quic = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let http = free("127.0.0.1:0");
    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\npartitions = 2\nworkers = 1\npin_cores = false\n\
             [quic]\nlisten = \"{quic}\"\n[http]\nlisten = \"{http}\"\ntls = true\n"
        ),
    )
    .unwrap();
    let mut node = Child(
        Command::new(env!("CARGO_BIN_EXE_dropline"))
            .args(["serve", "--config"])
            .arg(&config)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Wait for the ready line; the HTTP line names the scheme.
    let mut http_line = String::new();
    for line in BufReader::new(node.0.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if line.trim_start().starts_with("HTTP") {
            http_line = line.clone();
        }
        if line == "ready" {
            break;
        }
    }
    assert!(
        http_line.contains(&format!("https://{http}/")),
        "{http_line:?}"
    );

    let pem = std::fs::read(data.join("node-cert.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let conn =
        rustls::ClientConnection::new(Arc::new(client), ServerName::try_from("localhost").unwrap())
            .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, TcpStream::connect(&http).unwrap());
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    let _ = tls.read_to_string(&mut response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response:?}");

    // Plain HTTP on the same port gets no HTTP answer.
    let mut plain = TcpStream::connect(&http).unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let _ = plain.read_to_end(&mut got);
    assert!(
        !got.starts_with(b"HTTP/"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    drop(node);
}
