//! The `dropline` binary as a user runs it: exit codes and output of the
//! administrative and tooling verbs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn dropline(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dropline"))
        .args(args)
        .output()
        .expect("run dropline")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

#[test]
fn normalize_prints_canonical_json_lines() {
    let fixture = repo("operators/tests/fixtures/usps/poll_item.json");
    let out = dropline(&["normalize", "--carrier", "usps", fixture.to_str().unwrap()]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!lines.is_empty());
    for line in &lines {
        for key in [
            "tracking_number",
            "carrier",
            "status",
            "sub_status",
            "occurred_at",
            "raw_code",
        ] {
            assert!(line.get(key).is_some(), "missing {key} in {line}");
        }
        for key in ["city", "region", "postal_code", "country"] {
            assert!(
                line["location"].get(key).is_some(),
                "missing location.{key}"
            );
        }
        assert_eq!(line["carrier"], "usps");
        assert!(line["occurred_at"].as_str().unwrap().ends_with('Z'));
    }
}

#[test]
fn normalize_rejects_a_malformed_file_with_exit_code_1() {
    let fixture = repo("operators/tests/fixtures/ups/malformed_bad_time.json");
    let out = dropline(&["normalize", "--carrier", "ups", fixture.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("not a valid ups payload"),
        "stderr: {stderr}"
    );
    assert!(
        stderr.contains("time"),
        "the reason names the field: {stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn normalize_rejects_an_unknown_carrier() {
    let out = dropline(&["normalize", "--carrier", "pony-express", "x.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unknown carrier"));
}

#[test]
fn topics_create_then_list() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let out = dropline(&[
        "topics",
        "create",
        "carrier-events",
        "--partitions",
        "3",
        "--data-dir",
        data,
    ]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let out = dropline(&["topics", "list", "--json", "--data-dir", data]);
    assert!(out.status.success());
    let topic: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(topic["topic"], "carrier-events");
    assert_eq!(topic["partitions"].as_array().unwrap().len(), 3);
    assert_eq!(topic["records"], 0);
}

#[test]
fn log_verify_is_clean_on_a_good_log_and_fails_on_a_corrupt_one() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good");
    let out = dropline(&[
        "topics",
        "create",
        "t",
        "--data-dir",
        good.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let out = dropline(&["log", "verify", "--data-dir", good.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "stdout: {}", text(&out.stdout));
    assert!(text(&out.stdout).contains("no problems found"));

    let bad = dir.path().join("bad");
    copy_dir(
        &repo("log/tests/fixtures/v2-sealed-corrupt"),
        &bad.join("log"),
    );
    let out = dropline(&["log", "verify", "--data-dir", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("problem:"), "stdout: {stdout}");
    assert!(
        stdout.contains(".log at byte"),
        "names the segment and offset: {stdout}"
    );

    // Damage inside the active segment that a later batch proves durable:
    // verify says so (recovery would refuse, not truncate).
    let damaged = dir.path().join("damaged");
    copy_dir(
        &repo("log/tests/fixtures/v2-damaged-durable"),
        &damaged.join("log"),
    );
    let out = dropline(&["log", "verify", "--data-dir", damaged.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("damaged durable batch"), "stdout: {stdout}");
}

#[test]
fn log_dump_prints_records_from_an_offset() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    copy_dir(&repo("log/tests/fixtures/v2-torn-tail"), &data.join("log"));
    let out = dropline(&[
        "log",
        "dump",
        "--topic",
        "t",
        "--from-offset",
        "3",
        "--limit",
        "2",
        "--json",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["offset"], 3);
    assert_eq!(lines[1]["offset"], 4);
}

/// `dropline log dump ... | head -1`: the command ends when its reader
/// goes away, without a panic (Rust ignores SIGPIPE; the printing commands
/// restore it).
#[test]
fn log_dump_into_a_closed_pipe_ends_without_a_panic() {
    use dropline_log::{AppendRequest, Log, LogConfig, Record, TopicConfig};
    use std::io::{BufRead as _, BufReader};
    use std::os::unix::process::ExitStatusExt as _;
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    {
        let log = Log::open(LogConfig::new(data.join("log"))).unwrap();
        log.create_topic("t", TopicConfig::new(1)).unwrap();
        let part = log.partition("t", 0).unwrap();
        let value = vec![b'x'; 200];
        let keys: Vec<String> = (0..1_000).map(|i| format!("parcel-{i}")).collect();
        let records: Vec<Record<'_>> = keys
            .iter()
            .map(|k| Record {
                key: k.as_bytes(),
                value: &value,
            })
            .collect();
        // 20,000 records: far more output than a pipe buffers.
        for _ in 0..20 {
            part.append(&AppendRequest {
                records: &records,
                producer: None,
            })
            .unwrap();
        }
        log.close().unwrap();
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_dropline"))
        // All of them: the default limit (100) fits in a pipe's buffer, and
        // the command could finish before the reader goes away.
        .args(["log", "dump", "--topic", "t", "--json", "--limit", "20000"])
        .arg("--data-dir")
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    // The reader is gone (dropped with the BufReader).
    assert!(first.contains("\"offset\":0"), "{first}");
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGPIPE),
        "ends by SIGPIPE: {:?} {stderr}",
        out.status
    );
}

#[test]
fn replay_dead_letters_resends_each_once_per_replay() {
    use dropline_log::{AppendRequest, Log, LogConfig, Record, TopicConfig};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    {
        let log = Log::open(LogConfig::new(data.join("log"))).unwrap();
        dropline_engine::ensure_topics(&log, 2).unwrap();
        log.create_topic("notify-dead-letters", TopicConfig::new(1))
            .unwrap();
        let letter = |id: &str, channel: &str, intent: &str| {
            serde_json::json!({
                "v": 1, "reason": "attempts_exhausted", "error": "HTTP 500",
                "attempts": 5, "rate_limited": 0, "channel": channel,
                "priority": "critical", "message_key": id, "intent_id": id,
                "partition": 1, "offset": 7, "at_ms": 1_700_000_000_000u64,
                "intent_hex": intent,
            })
            .to_string()
        };
        let values = [
            letter("aa01", "sms", "68656c6c6f"),
            letter("bb02", "email", "776f726c64"),
        ];
        let records: Vec<Record<'_>> = values
            .iter()
            .zip(["aa01", "bb02"])
            .map(|(v, k)| Record {
                key: k.as_bytes(),
                value: v.as_bytes(),
            })
            .collect();
        log.partition("notify-dead-letters", 0)
            .unwrap()
            .append(&AppendRequest {
                records: &records,
                producer: None,
            })
            .unwrap();
    }
    let d = data.to_str().unwrap();
    let out = dropline(&[
        "replay",
        "--dead-letters",
        "--channel",
        "sms",
        "--json",
        "--data-dir",
        d,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["read"], 2);
    assert_eq!(report["replayed"], 1);
    assert_eq!(report["skipped"], 1);
    // Nothing new since: a second replay sends nothing again.
    let again = dropline(&["replay", "--dead-letters", "--json", "--data-dir", d]);
    let again: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(again["replayed"], 0);

    let log = Log::open(LogConfig::new(data.join("log"))).unwrap();
    let resent = log
        .partition("notify-sms-critical", 1)
        .unwrap()
        .lookup_key(b"aa01")
        .unwrap();
    assert_eq!(resent.len(), 1);
    assert_eq!(resent[0].value, b"hello");
    let email = log
        .partition("notify-email-critical", 1)
        .unwrap()
        .lookup_key(b"bb02")
        .unwrap();
    assert!(email.is_empty(), "filtered out by --channel sms");
}

#[test]
fn log_verify_compare_reports_identical_lagging_and_diverging_replicas() {
    use dropline_log::{AppendRequest, Log, LogConfig, Record, TopicConfig};
    let append = |dir: &Path, values: &[&str]| {
        let log = Log::open(LogConfig::new(dir.join("log"))).unwrap();
        if log.partition("t", 1).is_err() {
            log.create_topic("t", TopicConfig::new(2)).unwrap();
        }
        for v in values {
            for p in [0, 1] {
                log.partition("t", p)
                    .unwrap()
                    .append(&AppendRequest {
                        records: &[Record {
                            key: b"k",
                            value: v.as_bytes(),
                        }],
                        producer: None,
                    })
                    .unwrap();
            }
        }
    };
    let compare = |a: &Path, b: &Path| {
        dropline(&[
            "log",
            "verify",
            "--compare",
            a.to_str().unwrap(),
            b.to_str().unwrap(),
        ])
    };
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    append(&a, &["one", "two", "three"]);
    let b = dir.path().join("b");
    copy_dir(&a, &b);

    let out = compare(&a, &b);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "stdout: {stdout}");
    assert!(
        stdout.contains("topic t partition 00000: 3 identical batch(es); both end at offset 3"),
        "stdout: {stdout}"
    );

    // A goes on alone: B lags, which is not a divergence.
    append(&a, &["four", "five"]);
    let out = compare(&a, &b);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "stdout: {stdout}");
    assert!(
        stdout.contains("B is 2 offset(s) (2 batch(es)) behind A (A ends at 5, B at 3)"),
        "stdout: {stdout}"
    );
    let out = compare(&b, &a);
    assert!(
        text(&out.stdout).contains("A is 2 offset(s) (2 batch(es)) behind B"),
        "{}",
        text(&out.stdout)
    );

    // B writes something else at offset 3: the first differing batch is
    // named with its segment and byte position on each side.
    append(&b, &["other"]);
    let out = compare(&a, &b);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "stdout: {stdout}");
    assert!(
        stdout.contains("DIVERGED at offset 3 after 3 identical batch(es)"),
        "stdout: {stdout}"
    );
    assert!(
        stdout.contains("00000000000000000000.log at byte"),
        "stdout: {stdout}"
    );
    assert!(stdout.contains("2 diverge"), "stdout: {stdout}");

    let out = dropline(&[
        "log",
        "verify",
        "--json",
        "--compare",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let first: serde_json::Value =
        serde_json::from_str(text(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(first["diverged"]["offset"], 3);
    assert_eq!(first["end_offset_a"], 5);
    assert_eq!(first["end_offset_b"], 4);
}

#[test]
fn cluster_init_with_hosts_puts_each_node_on_its_host_and_in_its_certificate() {
    use rustls::client::danger::ServerCertVerifier as _;
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let hosts = ["10.9.8.1", "10.9.8.2", "10.9.8.3"];
    let out = dropline(&[
        "cluster",
        "init",
        "--nodes",
        "3",
        "--hosts",
        &hosts.join(","),
        "--dir",
        root,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // Node 2 listens on its host on the fixed ports; every file lists every
    // host in node order.
    let file = std::fs::read_to_string(dir.path().join("node-2.toml")).unwrap();
    let config: toml::Value = toml::from_str(&file).unwrap();
    assert_eq!(config["quic"]["listen"].as_str(), Some("10.9.8.2:7471"));
    assert_eq!(config["http"]["listen"].as_str(), Some("10.9.8.2:7480"));
    let peers = config["cluster"]["peers"].as_array().unwrap();
    for (i, (peer, host)) in peers.iter().zip(hosts).enumerate() {
        assert_eq!(peer["id"].as_integer(), Some(i as i64 + 1));
        assert_eq!(peer["peer_addr"].as_str(), Some(&*format!("{host}:7470")));
        assert_eq!(peer["ingest_addr"].as_str(), Some(&*format!("{host}:7471")));
        assert_eq!(peer["http_addr"].as_str(), Some(&*format!("{host}:7480")));
    }

    // Node 2's certificate verifies, against the cluster CA, for its own
    // address and the adapters' server name, and not for another host's.
    let certs = dir.path().join("certs");
    let ca = CertificateDer::from_pem_file(certs.join("ca.pem")).unwrap();
    let cert = CertificateDer::from_pem_file(certs.join("node-2.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).unwrap();
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        std::sync::Arc::new(roots),
        std::sync::Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .unwrap();
    let verify = |name: &str| {
        verifier.verify_server_cert(
            &cert,
            &[],
            &ServerName::try_from(name.to_string()).unwrap(),
            &[],
            UnixTime::now(),
        )
    };
    verify("10.9.8.2").unwrap();
    verify("dropline-node").unwrap();
    assert!(
        verify("10.9.8.1").is_err(),
        "node 2's certificate names node 1's host"
    );
    assert!(
        verify("127.0.0.1").is_err(),
        "a --hosts certificate names loopback"
    );

    // One address per node, no more, no less, and no host twice.
    let out = dropline(&[
        "cluster",
        "init",
        "--nodes",
        "3",
        "--hosts",
        "10.9.8.1,10.9.8.2",
        "--dir",
        root,
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("one per node"),
        "{}",
        text(&out.stderr)
    );
    let out = dropline(&[
        "cluster",
        "init",
        "--nodes",
        "2",
        "--hosts",
        "10.9.8.1,10.9.8.1",
        "--dir",
        root,
    ]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("twice"), "{}", text(&out.stderr));
}

#[test]
fn cluster_init_without_hosts_stays_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let out = dropline(&[
        "cluster",
        "init",
        "--nodes",
        "2",
        "--dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let file = std::fs::read_to_string(dir.path().join("node-1.toml")).unwrap();
    let config: toml::Value = toml::from_str(&file).unwrap();
    for peer in config["cluster"]["peers"].as_array().unwrap() {
        for key in ["peer_addr", "ingest_addr", "http_addr"] {
            let addr: std::net::SocketAddr = peer[key].as_str().unwrap().parse().unwrap();
            assert!(addr.ip().is_loopback(), "{key} {addr}");
            assert_ne!(addr.port(), 0);
        }
    }
    // One admin token for the cluster, in every node's data directory
    // (where the node reads it), readable by its owner only.
    use std::os::unix::fs::PermissionsExt as _;
    let token = std::fs::read_to_string(dir.path().join("admin.token")).unwrap();
    assert_eq!(token.trim().len(), 64, "{token}");
    for id in 1..=2 {
        let path = dir.path().join(format!("node-{id}")).join("admin.token");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), token);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", path.display());
    }
}
