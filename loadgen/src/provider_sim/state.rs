//! What the simulator knows: limits per sender, accepted messages by
//! idempotency key, opted-out recipients, faults and counters.
//!
//! One std mutex guards it; handlers take it for a few map operations and
//! never across an await.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::config::{Faults, ProviderSimConfig};
use super::limits::{Audit, Bucket};

/// Most accepted messages kept for `GET /admin/messages`; later ones are
/// counted but not kept.
pub const RECORDED_MESSAGES_MAX: usize = 2_000_000;

/// Which API a message came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SimChannel {
    /// The SMS API.
    Sms,
    /// The push API.
    Push,
}

/// A message the simulator accepted (and would have sent on).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcceptedMessage {
    /// SMS or push.
    pub channel: SimChannel,
    /// The provider's id of the message (`SM...` or the push message name).
    pub sid: String,
    /// The idempotency key the client sent, if any.
    pub idempotency_key: Option<String>,
    /// Sender number (SMS) or project (push).
    pub sender: String,
    /// Recipient number (SMS) or device token (push).
    pub to: String,
    /// Push title (empty for SMS).
    pub title: String,
    /// Text of the message.
    pub body: String,
    /// Push data fields (empty for SMS).
    pub data: BTreeMap<String, String>,
    /// Wall-clock time of acceptance, ms since the epoch.
    pub accepted_at_ms: u64,
}

/// Counters of one sender number or push project.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SenderStats {
    /// Sends accepted.
    pub accepted: u64,
    /// Sends refused with 429.
    pub rejected_429: u64,
    /// Accepted sends that the independent audit found over the limit.
    pub violations: u64,
}

/// Everything `GET /admin/stats` reports.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderStats {
    /// Distinct messages accepted (each would reach a phone once).
    pub accepted: u64,
    /// Repeated requests with an already accepted idempotency key:
    /// answered with the original result and not sent again.
    pub duplicates: u64,
    /// Sends refused with 429 (over a rate limit).
    pub rejected_429: u64,
    /// Sends answered with an injected 500.
    pub errors_500: u64,
    /// Sends refused with a permanent 4xx (bad recipient or sender).
    pub rejected_permanent: u64,
    /// Sends refused because the recipient had replied STOP.
    pub refused_opted_out: u64,
    /// Sends answered slowly on purpose.
    pub slow_answers: u64,
    /// Accepted sends the audit found over a limit (should stay 0).
    pub violations: u64,
    /// Delivery receipts posted to status callbacks.
    pub receipts_posted: u64,
    /// Receipts that could not be posted (queue full or post failed).
    pub receipts_failed: u64,
    /// Inbound messages (STOP replies) posted to the node.
    pub inbound_posted: u64,
    /// Per SMS sender number, and `push:<project>` for push.
    pub per_sender: BTreeMap<String, SenderStats>,
}

struct Limiter {
    bucket: Bucket,
    audit: Audit,
}

/// What the simulator decides about one send.
pub(crate) enum Decision {
    /// A repeat of an accepted key: answer with the original sid.
    Duplicate { sid: String },
    /// Injected server error.
    Error500,
    /// Permanent refusal with the provider's error code.
    Permanent { code: u32, message: &'static str },
    /// Over the limit: retry after this many ms.
    RateLimited { retry_after_ms: u64 },
    /// Accepted with this sid; answer after `delay_ms`.
    Accepted { sid: String, delay_ms: u64 },
}

pub(crate) struct Inner {
    limiters: HashMap<String, Limiter>,
    by_key: HashMap<String, String>,
    opted_out: HashSet<(String, String)>,
    faults: Faults,
    rng: u64,
    next_sid: u64,
    pub(crate) stats: ProviderStats,
    pub(crate) messages: Vec<AcceptedMessage>,
}

/// The shared state of one simulator.
pub(crate) struct SimState {
    pub(crate) config: ProviderSimConfig,
    inner: Mutex<Inner>,
    accepted_tx: tokio::sync::watch::Sender<u64>,
}

/// A send as the handlers parsed it.
pub(crate) struct SendRequest {
    pub(crate) channel: SimChannel,
    pub(crate) idempotency_key: Option<String>,
    pub(crate) sender: String,
    pub(crate) to: String,
    pub(crate) title: String,
    pub(crate) body: String,
    pub(crate) data: BTreeMap<String, String>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Bodies that opt a number out, as carriers recognise them.
pub(crate) fn is_stop_word(body: &str) -> bool {
    matches!(
        body.trim().to_ascii_uppercase().as_str(),
        "STOP" | "STOPALL" | "UNSUBSCRIBE" | "CANCEL" | "END" | "QUIT"
    )
}

impl SimState {
    pub(crate) fn new(config: ProviderSimConfig) -> SimState {
        let now = Instant::now();
        let mut limiters = HashMap::new();
        for s in &config.sms_senders {
            let limit = config.limit_for(s.kind);
            limiters.insert(
                s.number.clone(),
                Limiter {
                    bucket: Bucket::new(limit, now),
                    audit: Audit::new(limit, now),
                },
            );
        }
        limiters.insert(
            push_sender(&config.push_project),
            Limiter {
                bucket: Bucket::new(config.push_limit, now),
                audit: Audit::new(config.push_limit, now),
            },
        );
        let (accepted_tx, _) = tokio::sync::watch::channel(0);
        SimState {
            inner: Mutex::new(Inner {
                limiters,
                by_key: HashMap::new(),
                opted_out: HashSet::new(),
                faults: config.faults.clone(),
                rng: config.seed,
                next_sid: 1,
                stats: ProviderStats::default(),
                messages: Vec::new(),
            }),
            config,
            accepted_tx,
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults;
    }

    /// Number of distinct accepted messages, watchable.
    pub(crate) fn subscribe_accepted(&self) -> tokio::sync::watch::Receiver<u64> {
        self.accepted_tx.subscribe()
    }

    /// Records an inbound message; a STOP word opts `from` out of `to`.
    pub(crate) fn record_inbound(&self, from: &str, to: &str, body: &str) {
        if is_stop_word(body) {
            self.lock()
                .opted_out
                .insert((from.to_string(), to.to_string()));
        }
    }

    /// Decides and records one send.
    pub(crate) fn decide(&self, req: SendRequest) -> Decision {
        let mut g = self.lock();
        let inner = &mut *g;
        if let Some(key) = &req.idempotency_key
            && let Some(sid) = inner.by_key.get(key)
        {
            inner.stats.duplicates += 1;
            return Decision::Duplicate { sid: sid.clone() };
        }
        let limiter_key = match req.channel {
            SimChannel::Sms => req.sender.clone(),
            SimChannel::Push => push_sender(&req.sender),
        };
        let roll = splitmix(&mut inner.rng) % 1_000_000;
        if roll < u64::from(inner.faults.error_500_ppm) {
            inner.stats.errors_500 += 1;
            return Decision::Error500;
        }
        if inner.faults.reject_recipients.iter().any(|r| r == &req.to) {
            inner.stats.rejected_permanent += 1;
            return match req.channel {
                SimChannel::Sms => Decision::Permanent {
                    code: 21211,
                    message: "The 'To' number is not a valid phone number.",
                },
                SimChannel::Push => Decision::Permanent {
                    code: 404,
                    message: "UNREGISTERED",
                },
            };
        }
        if req.channel == SimChannel::Sms
            && inner
                .opted_out
                .contains(&(req.to.clone(), req.sender.clone()))
        {
            inner.stats.refused_opted_out += 1;
            return Decision::Permanent {
                code: 21610,
                message: "Attempt to send to unsubscribed recipient",
            };
        }
        let now = Instant::now();
        let Some(limiter) = inner.limiters.get_mut(&limiter_key) else {
            inner.stats.rejected_permanent += 1;
            return match req.channel {
                SimChannel::Sms => Decision::Permanent {
                    code: 21606,
                    message: "The 'From' phone number provided is not a valid message-capable phone number for this account.",
                },
                SimChannel::Push => Decision::Permanent {
                    code: 403,
                    message: "SENDER_ID_MISMATCH",
                },
            };
        };
        let sender_stats = inner.stats.per_sender.entry(limiter_key).or_default();
        if let Err(wait) = limiter.bucket.take(now) {
            sender_stats.rejected_429 += 1;
            inner.stats.rejected_429 += 1;
            return Decision::RateLimited {
                retry_after_ms: wait.as_millis() as u64 + 1,
            };
        }
        if limiter.audit.record(now) {
            sender_stats.violations += 1;
            inner.stats.violations += 1;
        }
        sender_stats.accepted += 1;
        inner.stats.accepted += 1;
        let sid = match req.channel {
            SimChannel::Sms => format!("SM{:032x}", inner.next_sid),
            SimChannel::Push => format!("projects/{}/messages/{}", req.sender, inner.next_sid),
        };
        inner.next_sid += 1;
        if let Some(key) = &req.idempotency_key {
            inner.by_key.insert(key.clone(), sid.clone());
        }
        let slow_roll = splitmix(&mut inner.rng) % 1_000_000;
        let delay_ms = if slow_roll < u64::from(inner.faults.slow_ppm) {
            inner.stats.slow_answers += 1;
            inner.faults.slow_ms
        } else {
            0
        };
        if inner.messages.len() < RECORDED_MESSAGES_MAX {
            inner.messages.push(AcceptedMessage {
                channel: req.channel,
                sid: sid.clone(),
                idempotency_key: req.idempotency_key,
                sender: req.sender,
                to: req.to,
                title: req.title,
                body: req.body,
                data: req.data,
                accepted_at_ms: now_ms(),
            });
        }
        let accepted = inner.stats.accepted;
        drop(g);
        // Two requests finishing together may publish out of order: keep
        // the published count from going down (it would stay one short).
        self.accepted_tx.send_if_modified(|v| {
            let newer = accepted > *v;
            if newer {
                *v = accepted;
            }
            newer
        });
        Decision::Accepted { sid, delay_ms }
    }
}

/// The limiter and stats key of a push project.
pub(crate) fn push_sender(project: &str) -> String {
    format!("push:{project}")
}
