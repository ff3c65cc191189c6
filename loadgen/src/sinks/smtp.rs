//! A real SMTP server for tests and the bench: Debian's `python3-aiosmtpd`
//! running a small recording handler (`smtp_sink.py`, embedded here).
//!
//! Why a real server: email delivery must be checked against an SMTP
//! implementation we did not write. The handler records every message as
//! a JSON line and drops repeats of an idempotency key (the sink-side
//! check), so a test can read back exactly what arrived.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// The interpreter that has Debian's aiosmtpd (not a pyenv one on PATH).
pub const SYSTEM_PYTHON: &str = "/usr/bin/python3";
const SCRIPT: &str = include_str!("smtp_sink.py");

/// Why the SMTP sink could not start.
#[derive(Debug, thiserror::Error)]
pub enum SmtpSinkError {
    /// aiosmtpd is not installed.
    #[error(
        "{SYSTEM_PYTHON} cannot import aiosmtpd: install python3-aiosmtpd (apt-get install -y python3-aiosmtpd)"
    )]
    Missing,
    /// Starting or talking to the process failed.
    #[error("SMTP sink: {0}")]
    Io(#[from] std::io::Error),
    /// The process exited before saying it was ready.
    #[error("SMTP sink exited before it was ready")]
    NotReady,
}

/// One received message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedEmail {
    /// `Message-ID` header.
    pub message_id: String,
    /// `X-Dropline-Idempotency-Key` header.
    pub idempotency_key: String,
    /// Envelope recipients.
    pub to: Vec<String>,
    /// Subject.
    pub subject: String,
    /// `List-Unsubscribe` header.
    pub list_unsubscribe: String,
    /// The key was seen before: acknowledged, not delivered again.
    pub duplicate: bool,
}

/// A running SMTP sink; killed on drop.
#[derive(Debug)]
pub struct SmtpSink {
    port: u16,
    child: Child,
    received: Arc<Mutex<Vec<ReceivedEmail>>>,
    count: watch::Receiver<usize>,
    _script: tempfile_path::TempScript,
}

mod tempfile_path {
    use std::path::PathBuf;

    /// The script written to a temporary file, removed on drop.
    #[derive(Debug)]
    pub(crate) struct TempScript(pub(crate) PathBuf);

    impl Drop for TempScript {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

impl SmtpSink {
    /// Starts the server on a free loopback port and waits until it listens.
    pub fn start() -> Result<SmtpSink, SmtpSinkError> {
        let check = Command::new(SYSTEM_PYTHON)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !matches!(check, Ok(s) if s.success()) {
            return Err(SmtpSinkError::Missing);
        }
        let path: PathBuf = std::env::temp_dir().join(format!(
            "dropline-smtp-sink-{}-{}.py",
            std::process::id(),
            SCRIPT_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::write(&path, SCRIPT)?;
        let script = tempfile_path::TempScript(path.clone());
        // Its own process group: a Ctrl-C at the terminal stops the Rust
        // process, which then stops the sink, rather than hitting both.
        let mut child = Command::new(SYSTEM_PYTHON)
            .arg(&path)
            .arg("0")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()?;
        let stdout = child.stdout.take().ok_or(SmtpSinkError::NotReady)?;
        let mut lines = BufReader::new(stdout).lines();
        let port = loop {
            match lines.next() {
                Some(Ok(l)) => {
                    if let Some(p) = l.strip_prefix("READY ") {
                        break p
                            .trim()
                            .parse::<u16>()
                            .map_err(|_| SmtpSinkError::NotReady)?;
                    }
                }
                _ => {
                    let _ = child.kill();
                    return Err(SmtpSinkError::NotReady);
                }
            }
        };
        let received = Arc::new(Mutex::new(Vec::new()));
        let (tx, count) = watch::channel(0usize);
        let sink = received.clone();
        std::thread::spawn(move || {
            let mut delivered = 0usize;
            for line in lines.map_while(Result::ok) {
                if let Ok(r) = serde_json::from_str::<ReceivedEmail>(&line) {
                    if !r.duplicate {
                        delivered += 1;
                    }
                    sink.lock().unwrap_or_else(|e| e.into_inner()).push(r);
                    tx.send_replace(delivered);
                }
            }
        });
        Ok(SmtpSink {
            port,
            child,
            received,
            count,
            _script: script,
        })
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Everything received so far, repeats included.
    pub fn received(&self) -> Vec<ReceivedEmail> {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits until at least `n` distinct messages were delivered (repeats
    /// of a key not counted).
    pub async fn wait_delivered(&self, n: usize) {
        let mut rx = self.count.clone();
        let _ = rx.wait_for(|v| *v >= n).await;
    }

    /// Distinct idempotency keys received and delivered.
    pub fn delivered_keys(&self) -> Vec<String> {
        self.received()
            .into_iter()
            .filter(|r| !r.duplicate)
            .map(|r| r.idempotency_key)
            .collect()
    }
}

static SCRIPT_COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
