//! Opt-outs: contacts that replied STOP or clicked an unsubscribe link,
//! and orders whose buyer withdrew consent. Nothing is sent to them.
//!
//! Why a log topic: opt-outs must survive restarts and be replayable like
//! everything else, and an append is durable when it returns (fsync). The
//! topic holds fingerprints, not addresses: an HMAC of the channel and the
//! normalised address under the node's secret, so the topic holds no
//! personal data and an unsubscribe token (the fingerprint) cannot be
//! forged for someone else's address.
//!
//! Record value (v1): JSON `{"v":1,"fp":"<64 hex>","reason":"stop"}` for a
//! contact, `{"v":1,"order":"<id>","reason":"..."}` for an order; key: the
//! fingerprint or `order:<id>`.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use dropline_log::{AppendRequest, Log, LogError, Record, TopicConfig};
use dropline_operators::model::Channel;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The opt-out topic.
pub const OPT_OUT_TOPIC: &str = "opt-outs";
/// Bytes read per call while loading the topic.
const LOAD_READ_BYTES: usize = 1 << 20;

/// Why an opt-out could not be recorded or loaded.
#[derive(Debug, thiserror::Error)]
pub enum OptOutError {
    /// The log failed.
    #[error("opt-out topic: {0}")]
    Log(#[from] LogError),
}

#[derive(Serialize, Deserialize)]
struct OptOutRecord {
    v: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    order: Option<String>,
    reason: String,
}

/// Normalises an address so that `Foo@Example.com ` and `foo@example.com`
/// are one contact.
fn normalise(channel: Channel, address: &str) -> String {
    let a = address.trim();
    match channel {
        Channel::Email => a.to_ascii_lowercase(),
        Channel::Sms => a
            .chars()
            .filter(|c| *c == '+' || c.is_ascii_digit())
            .collect(),
        _ => a.to_string(),
    }
}

/// The durable opt-out set. Share with `Arc`.
#[derive(Debug)]
pub struct OptOutStore {
    log: Arc<Log>,
    secret: Vec<u8>,
    contacts: RwLock<HashSet<String>>,
    orders: RwLock<HashSet<String>>,
}

impl OptOutStore {
    /// Opens the store: creates the topic if needed and loads it.
    pub fn open(log: Arc<Log>, secret: &[u8]) -> Result<OptOutStore, OptOutError> {
        log.create_topic(
            OPT_OUT_TOPIC,
            TopicConfig {
                retention_ms: None,
                ..TopicConfig::new(1)
            },
        )?;
        let p = log.partition(OPT_OUT_TOPIC, 0)?;
        let mut contacts = HashSet::new();
        let mut orders = HashSet::new();
        let mut at = p.start_offset();
        loop {
            let batches = p.read(at, LOAD_READ_BYTES)?;
            if batches.is_empty() {
                break;
            }
            for b in &batches {
                for r in b.records() {
                    if let Ok(rec) = serde_json::from_slice::<OptOutRecord>(r.value)
                        && rec.v == 1
                    {
                        if let Some(fp) = rec.fp {
                            contacts.insert(fp);
                        }
                        if let Some(o) = rec.order {
                            orders.insert(o);
                        }
                    }
                    at = r.offset + 1;
                }
            }
        }
        Ok(OptOutStore {
            log,
            secret: secret.to_vec(),
            contacts: RwLock::new(contacts),
            orders: RwLock::new(orders),
        })
    }

    /// The fingerprint of a contact: also its unsubscribe token.
    pub fn fingerprint(&self, channel: Channel, address: &str) -> String {
        let mut m = match Hmac::<Sha256>::new_from_slice(&self.secret) {
            Ok(m) => m,
            Err(_) => Hmac::<Sha256>::new(&Default::default()),
        };
        m.update(channel.as_str().as_bytes());
        m.update(&[0x1f]);
        m.update(normalise(channel, address).as_bytes());
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let digest = m.finalize().into_bytes();
        let mut out = String::with_capacity(digest.len() * 2);
        for b in digest {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        out
    }

    fn append(&self, key: &str, rec: &OptOutRecord) -> Result<(), OptOutError> {
        let value = serde_json::to_vec(rec).unwrap_or_default();
        let p = self.log.partition(OPT_OUT_TOPIC, 0)?;
        p.append(&AppendRequest {
            records: &[Record {
                key: key.as_bytes(),
                value: &value,
            }],
            producer: None,
        })?;
        Ok(())
    }

    /// Records that a contact opted out (durable when this returns).
    pub fn opt_out_contact(
        &self,
        channel: Channel,
        address: &str,
        reason: &str,
    ) -> Result<(), OptOutError> {
        let fp = self.fingerprint(channel, address);
        self.opt_out_token(&fp, reason)
    }

    /// Records an opt-out by fingerprint (an unsubscribe link's token).
    /// Returns after the append is durable.
    pub fn opt_out_token(&self, fingerprint: &str, reason: &str) -> Result<(), OptOutError> {
        if self.read_contacts().contains(fingerprint) {
            return Ok(());
        }
        self.append(
            fingerprint,
            &OptOutRecord {
                v: 1,
                fp: Some(fingerprint.to_string()),
                order: None,
                reason: reason.to_string(),
            },
        )?;
        self.contacts
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(fingerprint.to_string());
        Ok(())
    }

    /// Records that the buyer withdrew consent for one order.
    pub fn opt_out_order(&self, order_id: &str, reason: &str) -> Result<(), OptOutError> {
        self.append(
            &format!("order:{order_id}"),
            &OptOutRecord {
                v: 1,
                fp: None,
                order: Some(order_id.to_string()),
                reason: reason.to_string(),
            },
        )?;
        self.orders
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(order_id.to_string());
        Ok(())
    }

    fn read_contacts(&self) -> std::sync::RwLockReadGuard<'_, HashSet<String>> {
        self.contacts.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether nothing may be sent to this contact about this order.
    pub fn is_opted_out(&self, channel: Channel, address: &str, order_id: &str) -> bool {
        self.orders
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(order_id)
            || {
                // The HMAC is the costly part: skipped while nobody opted out.
                let contacts = self.read_contacts();
                !contacts.is_empty() && contacts.contains(&self.fingerprint(channel, address))
            }
    }

    /// Number of opted-out contacts and orders.
    pub fn len(&self) -> usize {
        self.read_contacts().len() + self.orders.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether nobody opted out.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
