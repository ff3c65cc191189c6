//! A marketplace's webhook receiver, as docs/WEBHOOKS.md tells one to
//! write it: verify `Dropline-Signature` (HMAC-SHA256 over
//! `"<t>.<body>"`, timestamps older than the tolerance refused), then drop
//! repeats of `Dropline-Idempotency-Key` (acknowledged, not processed
//! again). Written from the document, independently of the sender's code,
//! so that a test of the two together checks the document too.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::sync::{oneshot, watch};

/// Receiver settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookSinkConfig {
    /// The shared secret.
    pub secret: Vec<u8>,
    /// Oldest signature timestamp accepted, seconds from now.
    pub tolerance_s: u64,
    /// Answer this status to every n-th request (0: never), to test retries.
    pub fail_every: u32,
    /// The status of those failures.
    pub fail_status: u16,
}

/// Counters of the receiver.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookSinkStats {
    /// Requests received.
    pub requests: u64,
    /// Distinct messages processed.
    pub delivered: u64,
    /// Repeats of a processed key (acknowledged, dropped).
    pub duplicates: u64,
    /// Requests refused for a bad or stale signature.
    pub bad_signature: u64,
    /// Requests answered with an injected failure.
    pub injected_failures: u64,
}

/// A processed webhook.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReceivedWebhook {
    /// Request path.
    pub path: String,
    /// Idempotency key.
    pub key: String,
    /// The JSON body.
    pub body: serde_json::Value,
}

#[derive(Default)]
struct Inner {
    stats: WebhookSinkStats,
    seen: HashSet<String>,
    received: Vec<ReceivedWebhook>,
    per_path: HashMap<String, u64>,
}

#[derive(Clone)]
struct SinkState {
    config: WebhookSinkConfig,
    inner: Arc<Mutex<Inner>>,
    delivered: watch::Sender<u64>,
}

/// A running receiver.
#[derive(Debug)]
pub struct WebhookSink {
    addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    delivered: watch::Receiver<u64>,
    stop: Option<oneshot::Sender<()>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// Checks a `Dropline-Signature` header as docs/WEBHOOKS.md specifies.
pub fn verify_signature(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now_s: u64,
    tolerance_s: u64,
) -> bool {
    let mut t: Option<u64> = None;
    let mut sigs: Vec<&str> = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse().ok(),
            Some(("v1", v)) => sigs.push(v),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    if now_s.abs_diff(t) > tolerance_s {
        return false;
    }
    sigs.iter().any(|sig| {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
            return false;
        };
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        let Some(bytes) = (0..sig.len())
            .step_by(2)
            .map(|i| {
                sig.get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            })
            .collect::<Option<Vec<u8>>>()
        else {
            return false;
        };
        mac.verify_slice(&bytes).is_ok()
    })
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

async fn receive(
    State(s): State<SinkState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = headers
        .get("dropline-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let key = headers
        .get("dropline-idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let mut g = s.inner.lock().unwrap_or_else(|e| e.into_inner());
    g.stats.requests += 1;
    if s.config.fail_every > 0
        && g.stats
            .requests
            .is_multiple_of(u64::from(s.config.fail_every))
    {
        g.stats.injected_failures += 1;
        return StatusCode::from_u16(s.config.fail_status)
            .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    }
    if !verify_signature(
        &s.config.secret,
        header,
        &body,
        now_s(),
        s.config.tolerance_s,
    ) {
        g.stats.bad_signature += 1;
        return StatusCode::UNAUTHORIZED;
    }
    if !g.seen.insert(key.clone()) {
        g.stats.duplicates += 1;
        return StatusCode::OK;
    }
    g.stats.delivered += 1;
    *g.per_path.entry(uri.path().to_string()).or_default() += 1;
    let body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    g.received.push(ReceivedWebhook {
        path: uri.path().to_string(),
        key,
        body,
    });
    let n = g.stats.delivered;
    drop(g);
    // Two requests finishing together may publish out of order: keep the
    // published count from going down (it would stay one short).
    s.delivered.send_if_modified(|v| {
        let newer = n > *v;
        if newer {
            *v = n;
        }
        newer
    });
    StatusCode::OK
}

impl WebhookSink {
    /// Starts a receiver on 127.0.0.1 (any port) accepting every path.
    pub async fn start(config: WebhookSinkConfig) -> std::io::Result<WebhookSink> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Mutex::new(Inner::default()));
        let (tx, delivered) = watch::channel(0);
        let state = SinkState {
            config,
            inner: inner.clone(),
            delivered: tx,
        };
        let app = Router::new().fallback(receive).with_state(state);
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(WebhookSink {
            addr,
            inner,
            delivered,
            stop: Some(stop),
        })
    }

    /// `http://<addr>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Counters.
    pub fn stats(&self) -> WebhookSinkStats {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .stats
            .clone()
    }

    /// Processed webhooks.
    pub fn received(&self) -> Vec<ReceivedWebhook> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .received
            .clone()
    }

    /// Waits until `n` distinct messages were processed.
    pub async fn wait_delivered(&self, n: u64) {
        let mut rx = self.delivered.clone();
        let _ = rx.wait_for(|v| *v >= n).await;
    }
}

impl Drop for WebhookSink {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}
