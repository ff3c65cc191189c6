//! The channels: signed marketplace webhooks, SMTP email, and the SMS and
//! push provider APIs. Each turns a [`Message`] into one request and the
//! answer into a [`SendOutcome`]; retries, order and limits are decided by
//! the scheduler, not here.
//!
//! Every request carries the message's idempotency key, so a re-send after
//! a crash is dropped by the provider or the receiver (the sink-side
//! check).

pub mod email;
pub mod push;
pub mod render;
pub mod signature;
pub mod sms;
pub mod smtp_pool;
pub mod webhook;

use std::time::Duration;

use dropline_operators::model::Channel;
use reqwest::StatusCode;

use super::notification::Message;
use super::scheduler::SendOutcome;

pub use email::{EmailConfig, EmailSender};
pub use push::{PushConfig, PushSender};
pub use sms::{SmsConfig, SmsSender, SmsSenderNumber};
pub use webhook::{
    WEBHOOK_FORMAT_VERSION, WebhookConfig, WebhookPayload, WebhookSender, WebhookUpdate,
};

/// Header with the idempotency key on provider requests.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// One configured sender per channel.
#[derive(Debug)]
pub enum ChannelSender {
    /// Marketplace webhooks.
    Webhook(WebhookSender),
    /// SMTP email.
    Email(EmailSender),
    /// SMS provider API.
    Sms(SmsSender),
    /// Push provider API.
    Push(PushSender),
}

impl ChannelSender {
    /// The channel.
    pub fn channel(&self) -> Channel {
        match self {
            ChannelSender::Webhook(_) => Channel::Webhook,
            ChannelSender::Email(_) => Channel::Email,
            ChannelSender::Sms(_) => Channel::Sms,
            ChannelSender::Push(_) => Channel::Push,
        }
    }

    /// Takes a rate token for the next send: the sender slot to use, or ms
    /// to wait. Channels without provider limits always have one.
    pub fn try_acquire(&self, now_ms: u64) -> Result<usize, u64> {
        match self {
            ChannelSender::Sms(s) => s.try_acquire(now_ms),
            ChannelSender::Push(p) => p.try_acquire(now_ms),
            ChannelSender::Webhook(_) | ChannelSender::Email(_) => Ok(0),
        }
    }

    /// The provider answered 429 on `slot`: stop using it for a while.
    pub fn on_rate_limited(&self, slot: usize, now_ms: u64) {
        match self {
            ChannelSender::Sms(s) => s.on_rate_limited(slot, now_ms),
            ChannelSender::Push(p) => p.on_rate_limited(now_ms),
            ChannelSender::Webhook(_) | ChannelSender::Email(_) => {}
        }
    }

    /// Sends `message` on `slot`; `unsubscribe_token` is the contact's
    /// opt-out token (email links).
    pub async fn send(
        &self,
        message: &Message,
        slot: usize,
        now_ms: u64,
        unsubscribe_token: &str,
    ) -> SendOutcome {
        match self {
            ChannelSender::Webhook(w) => w.send(message, now_ms).await,
            ChannelSender::Email(e) => e.send(message, unsubscribe_token).await,
            ChannelSender::Sms(s) => s.send(message, slot).await,
            ChannelSender::Push(p) => p.send(message).await,
        }
    }
}

/// Parses `Retry-After` (seconds) into ms.
pub(crate) fn retry_after_ms(resp: &reqwest::Response) -> Option<u64> {
    resp.headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map(|s| s.saturating_mul(1000))
}

/// Maps an HTTP answer to an outcome: 2xx accepted, 429 rate-limited,
/// 408/5xx retryable, other 4xx permanent.
pub(crate) async fn classify(result: Result<reqwest::Response, reqwest::Error>) -> SendOutcome {
    match result {
        Err(e) => SendOutcome::Retryable {
            error: format!("request failed: {e}"),
            retry_after_ms: None,
        },
        Ok(resp) => {
            let status = resp.status();
            let retry_after = retry_after_ms(&resp);
            if status.is_success() {
                return SendOutcome::Accepted;
            }
            let body = resp.text().await.unwrap_or_default();
            let error = format!("{status}: {}", body.chars().take(200).collect::<String>());
            if status == StatusCode::TOO_MANY_REQUESTS {
                SendOutcome::RateLimited {
                    retry_after_ms: retry_after.unwrap_or(1_000),
                }
            } else if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
                SendOutcome::Retryable {
                    error,
                    retry_after_ms: retry_after,
                }
            } else {
                SendOutcome::Permanent { error }
            }
        }
    }
}

/// An HTTP client with a whole-request timeout.
pub(crate) fn http_client(timeout_ms: u64) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_millis(timeout_ms.max(1)))
        .pool_max_idle_per_host(64)
        .build()
        .unwrap_or_default()
}
