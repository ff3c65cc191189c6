//! The provider simulator's configuration: who may send how fast, which
//! faults to inject, and where the node listens for callbacks.
//!
//! Plain data with no clap types, so the CLI, the bench and the tests build
//! it the same way.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// Kind of SMS sender number; each kind has its own throughput.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SenderKind {
    /// A 10-digit US long code (about 1 segment per second).
    LongCode,
    /// A US toll-free number (about 3 per second).
    TollFree,
    /// A short code (about 100 per second).
    ShortCode,
}

/// One SMS sender number the simulated account owns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmsSenderConfig {
    /// The number, as sent in `From` (E.164 or a short code).
    pub number: String,
    /// What kind of number it is.
    pub kind: SenderKind,
}

/// A token-bucket limit: `per_second` sustained, `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RateLimit {
    /// Sustained messages per second.
    pub per_second: f64,
    /// Messages that may go at once after an idle period (bucket size).
    pub burst: u32,
}

/// Faults injected into answers, decided by a seeded generator.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Faults {
    /// Share of sends answered with 500 (not accepted), per million.
    pub error_500_ppm: u32,
    /// Share of sends answered slowly (accepted after `slow_ms`), per million.
    pub slow_ppm: u32,
    /// Delay of a slow answer, in ms.
    pub slow_ms: u64,
    /// Recipients (numbers or push tokens) always refused with a permanent
    /// 400 error (invalid number, unregistered token).
    pub reject_recipients: Vec<String>,
}

/// Configuration of [`super::run_provider_sim`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProviderSimConfig {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    pub bind: SocketAddr,
    /// The account sid in the SMS path (`/2010-04-01/Accounts/{sid}/...`).
    pub sms_account_sid: String,
    /// Sender numbers the account owns; sends from other numbers are
    /// refused with 400 (code 21606, not a valid sender for this account).
    pub sms_senders: Vec<SmsSenderConfig>,
    /// Limit of a long code.
    pub long_code_limit: RateLimit,
    /// Limit of a toll-free number.
    pub toll_free_limit: RateLimit,
    /// Limit of a short code.
    pub short_code_limit: RateLimit,
    /// The push project id in the path (`/v1/projects/{project}/...`).
    pub push_project: String,
    /// Limit per push project (FCM: 600k per minute).
    pub push_limit: RateLimit,
    /// Injected faults; changeable at run time with `POST /admin/faults`.
    pub faults: Faults,
    /// Seed of the fault generator.
    pub seed: u64,
    /// Where inbound SMS (STOP replies) are posted, form-encoded like the
    /// provider's inbound webhook; `None` drops them.
    pub inbound_url: Option<String>,
    /// Most delivery receipts queued for posting; more are dropped and
    /// counted.
    pub callback_queue_max: usize,
}

/// US long code: one segment per second.
pub const LONG_CODE_LIMIT: RateLimit = RateLimit {
    per_second: 1.0,
    burst: 1,
};
/// US toll-free number: three per second.
pub const TOLL_FREE_LIMIT: RateLimit = RateLimit {
    per_second: 3.0,
    burst: 3,
};
/// Short code: a hundred per second.
pub const SHORT_CODE_LIMIT: RateLimit = RateLimit {
    per_second: 100.0,
    burst: 100,
};
/// FCM: 600k messages per minute per project, bursts of a second's worth.
pub const PUSH_PROJECT_LIMIT: RateLimit = RateLimit {
    per_second: 10_000.0,
    burst: 10_000,
};

impl ProviderSimConfig {
    /// A simulator on `127.0.0.1:0` with one long code, one toll-free number
    /// and one short code, the published limits, and no faults.
    pub fn local() -> ProviderSimConfig {
        ProviderSimConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            sms_account_sid: "ACdropline".to_string(),
            sms_senders: vec![
                SmsSenderConfig {
                    number: "+15550000001".to_string(),
                    kind: SenderKind::LongCode,
                },
                SmsSenderConfig {
                    number: "+18885550001".to_string(),
                    kind: SenderKind::TollFree,
                },
                SmsSenderConfig {
                    number: "55501".to_string(),
                    kind: SenderKind::ShortCode,
                },
            ],
            long_code_limit: LONG_CODE_LIMIT,
            toll_free_limit: TOLL_FREE_LIMIT,
            short_code_limit: SHORT_CODE_LIMIT,
            push_project: "dropline-demo".to_string(),
            push_limit: PUSH_PROJECT_LIMIT,
            faults: Faults::default(),
            seed: 1,
            inbound_url: None,
            callback_queue_max: 65_536,
        }
    }

    /// The limit that applies to a kind of sender.
    pub fn limit_for(&self, kind: SenderKind) -> RateLimit {
        match kind {
            SenderKind::LongCode => self.long_code_limit,
            SenderKind::TollFree => self.toll_free_limit,
            SenderKind::ShortCode => self.short_code_limit,
        }
    }
}
