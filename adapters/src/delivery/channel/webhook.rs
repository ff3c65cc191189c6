//! Marketplace webhooks: a JSON body in the documented, versioned format
//! (docs/WEBHOOKS.md, docs/webhook-v1.schema.json), signed with
//! HMAC-SHA256 over `"<timestamp>.<body>"`, with a limit on concurrent
//! requests per endpoint so one slow marketplace cannot take every slot.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use super::super::notification::{Message, MessageKind};
use super::super::scheduler::SendOutcome;
use super::signature::{IDEMPOTENCY_KEY_HEADER, SIGNATURE_HEADER, sign};
use super::{classify, http_client};

/// Version of the webhook body format (`version` field and header).
pub const WEBHOOK_FORMAT_VERSION: &str = "1";
/// Header naming the body format version.
pub const WEBHOOK_VERSION_HEADER: &str = "Dropline-Webhook-Version";
/// Most endpoints with their own concurrency limit tracked at once.
const ENDPOINTS_MAX: usize = 10_000;

/// Webhook sending settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookConfig {
    /// Secret of marketplaces without their own.
    pub default_secret: Vec<u8>,
    /// Secret per marketplace.
    pub secrets: BTreeMap<String, Vec<u8>>,
    /// Requests in flight per endpoint URL.
    pub per_endpoint_concurrency: usize,
    /// Whole-request timeout, ms.
    pub timeout_ms: u64,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            default_secret: b"dropline-webhook-secret".to_vec(),
            secrets: BTreeMap::new(),
            per_endpoint_concurrency: 8,
            timeout_ms: 10_000,
        }
    }
}

/// One update in a webhook body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookUpdate {
    /// The notification intent's id (32 hex digits).
    pub intent_id: String,
    /// The parcel.
    pub tracking_number: String,
    /// Its carrier (`ups`, `fedex`, `usps`, `dhl`).
    pub carrier: String,
    /// The marketplace's order id.
    pub order_id: String,
    /// The buyer.
    pub buyer_id: String,
    /// Canonical status (snake case).
    pub status: String,
    /// Canonical sub-status.
    pub sub_status: String,
    /// Message template chosen by the rule.
    pub template: String,
    /// The rule.
    pub rule_id: String,
    /// Log time of the carrier event, ms since the epoch.
    pub event_log_ms: u64,
}

/// The webhook body, format version 1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookPayload {
    /// Format version: `"1"`.
    pub version: String,
    /// Event type: `shipment.notification`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Idempotency key (`dl-` + 32 hex); receivers drop repeats.
    pub id: String,
    /// `single`, `consolidated` or `digest`.
    pub message_kind: MessageKind,
    /// `critical`, `normal` or `low`.
    pub priority: String,
    /// The marketplace.
    pub marketplace: String,
    /// When this body was built, ms since the epoch.
    pub sent_at_ms: u64,
    /// The updates (one unless consolidated or a digest).
    pub updates: Vec<WebhookUpdate>,
}

impl WebhookPayload {
    /// The body for `m`.
    pub fn from_message(m: &Message, now_ms: u64) -> WebhookPayload {
        WebhookPayload {
            version: WEBHOOK_FORMAT_VERSION.into(),
            kind: "shipment.notification".into(),
            id: m.idempotency_key(),
            message_kind: m.kind,
            priority: m.priority.as_str().into(),
            marketplace: m
                .members
                .first()
                .map(|x| x.notification.marketplace.clone())
                .unwrap_or_default(),
            sent_at_ms: now_ms,
            updates: m
                .members
                .iter()
                .map(|x| {
                    let n = &x.notification;
                    WebhookUpdate {
                        intent_id: n.id_hex(),
                        tracking_number: n.tracking_number.clone(),
                        carrier: n.carrier.as_str().into(),
                        order_id: n.order_id.clone(),
                        buyer_id: n.buyer_id.clone(),
                        status: n.status.as_str().into(),
                        sub_status: n.sub_status.as_str().into(),
                        template: n.template.clone(),
                        rule_id: n.rule_id.clone(),
                        event_log_ms: n.event_log_ms,
                    }
                })
                .collect(),
        }
    }
}

/// Sends signed webhooks.
#[derive(Debug)]
pub struct WebhookSender {
    config: WebhookConfig,
    client: reqwest::Client,
    endpoints: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl WebhookSender {
    /// A sender with `config`.
    pub fn new(config: WebhookConfig) -> WebhookSender {
        WebhookSender {
            client: http_client(config.timeout_ms),
            config,
            endpoints: Mutex::new(HashMap::new()),
        }
    }

    fn endpoint(&self, url: &str) -> Arc<Semaphore> {
        let mut g = self.endpoints.lock().unwrap_or_else(|e| e.into_inner());
        if g.len() >= ENDPOINTS_MAX && !g.contains_key(url) {
            g.retain(|_, s| Arc::strong_count(s) > 1);
        }
        g.entry(url.to_string())
            .or_insert_with(|| {
                Arc::new(Semaphore::new(self.config.per_endpoint_concurrency.max(1)))
            })
            .clone()
    }

    /// Posts `m` to its contact's URL.
    pub async fn send(&self, m: &Message, now_ms: u64) -> SendOutcome {
        let url = m.address().to_string();
        let payload = WebhookPayload::from_message(m, now_ms);
        let body = serde_json::to_vec(&payload).unwrap_or_default();
        let secret = self
            .config
            .secrets
            .get(&payload.marketplace)
            .unwrap_or(&self.config.default_secret);
        let signature = sign(secret, now_ms / 1000, &body);
        let sem = self.endpoint(&url);
        let Ok(_permit) = sem.acquire_owned().await else {
            return SendOutcome::Retryable {
                error: "endpoint limiter closed".into(),
                retry_after_ms: None,
            };
        };
        let result = self
            .client
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .header(IDEMPOTENCY_KEY_HEADER, payload.id.as_str())
            .header(WEBHOOK_VERSION_HEADER, WEBHOOK_FORMAT_VERSION)
            .body(body)
            .send()
            .await;
        classify(result).await
    }
}
