//! SMS through a provider API shaped like the common one: a form-encoded
//! `POST /2010-04-01/Accounts/{sid}/Messages.json` with `To`, `From`,
//! `Body` and `StatusCallback`, basic auth, and an idempotency header.
//!
//! Why a pool of senders with a bucket each: a long code sends one message
//! a second, so throughput comes from more numbers (or a short code), and
//! each number's limit is enforced here before the provider has to refuse.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::super::notification::Message;
use super::super::scheduler::SendOutcome;
use super::super::token_bucket::{Rate, TokenBucket};
use super::render::render;
use super::{IDEMPOTENCY_HEADER, classify, http_client};

/// One sender number and its limit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SmsSenderNumber {
    /// The number (`From`).
    pub number: String,
    /// Its limit.
    pub rate: Rate,
}

/// SMS provider settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SmsConfig {
    /// Provider base URL (`http://127.0.0.1:port` for the simulator).
    pub base_url: String,
    /// Account sid.
    pub account_sid: String,
    /// Auth token (basic auth password).
    pub auth_token: String,
    /// Sender numbers.
    pub senders: Vec<SmsSenderNumber>,
    /// Where the provider posts delivery receipts.
    pub status_callback_url: Option<String>,
    /// Share of each sender's published rate actually used (0..=1), so
    /// that network jitter does not push a send over the provider's limit.
    pub rate_margin: f64,
    /// Whole-request timeout, ms.
    pub timeout_ms: u64,
}

/// Sends SMS.
#[derive(Debug)]
pub struct SmsSender {
    config: SmsConfig,
    client: reqwest::Client,
    buckets: Mutex<Vec<TokenBucket>>,
    url: String,
}

impl SmsSender {
    /// A sender with `config`, buckets full at `now_ms`.
    pub fn new(config: SmsConfig, now_ms: u64) -> SmsSender {
        let buckets = config
            .senders
            .iter()
            .map(|s| {
                TokenBucket::new(
                    Rate {
                        per_second: s.rate.per_second * config.rate_margin.clamp(0.01, 1.0),
                        burst: s.rate.burst,
                    },
                    now_ms,
                )
            })
            .collect();
        SmsSender {
            url: format!(
                "{}/2010-04-01/Accounts/{}/Messages.json",
                config.base_url.trim_end_matches('/'),
                config.account_sid
            ),
            client: http_client(config.timeout_ms),
            buckets: Mutex::new(buckets),
            config,
        }
    }

    /// The first sender with a token, or ms until one has one.
    pub fn try_acquire(&self, now_ms: u64) -> Result<usize, u64> {
        let mut g = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let mut wait = u64::MAX;
        for (i, b) in g.iter_mut().enumerate() {
            match b.try_take(now_ms) {
                Ok(()) => return Ok(i),
                Err(w) => wait = wait.min(w),
            }
        }
        Err(if wait == u64::MAX { 1_000 } else { wait })
    }

    /// The provider refused a send from `slot` with 429.
    pub fn on_rate_limited(&self, slot: usize, now_ms: u64) {
        let mut g = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = g.get_mut(slot) {
            b.drain(now_ms);
        }
    }

    /// Sends `m` from sender `slot`.
    pub async fn send(&self, m: &Message, slot: usize) -> SendOutcome {
        let Some(from) = self.config.senders.get(slot) else {
            return SendOutcome::Permanent {
                error: format!("no sender number {slot}"),
            };
        };
        let text = render(m).body;
        let mut form: Vec<(&str, &str)> = vec![
            ("To", m.address()),
            ("From", from.number.as_str()),
            ("Body", text.as_str()),
        ];
        if let Some(cb) = &self.config.status_callback_url {
            form.push(("StatusCallback", cb.as_str()));
        }
        let result = self
            .client
            .post(&self.url)
            .basic_auth(&self.config.account_sid, Some(&self.config.auth_token))
            .header(IDEMPOTENCY_HEADER, m.idempotency_key())
            .form(&form)
            .send()
            .await;
        classify(result).await
    }
}
