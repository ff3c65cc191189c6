//! The audit after a run: was every acknowledged carrier event appended to
//! the node's log exactly once?
//!
//! The sender keeps a ledger of what the target acknowledged. Through the
//! adapters, a scan is identified by its tracking number and the second
//! it happened (the adapter drops repeats of a scan, carriers print whole
//! seconds, and a parcel's scans are at least a second apart), so the log
//! must hold each acknowledged scan once. Straight over QUIC every event
//! is appended as sent, duplicates included, so an event is identified by
//! its tracking number, instant and receive time. Identities are 64-bit
//! hashes: a few bytes per event even for millions of them.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, PoisonError};

use dropline_engine::TICK_VALUE;
use dropline_log::{Log, LogError};
use dropline_operators::model::CarrierEvent;

/// The topic carrier events are appended to.
pub const CARRIER_EVENTS_TOPIC: &str = "carrier-events";
/// Bytes read per call while reading the log back.
const READ_BYTES_MAX: usize = 8 * 1024 * 1024;

/// How an event is identified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Identity {
    /// Tracking number and the whole second of the scan (adapter path).
    Scan,
    /// Tracking number, instant and receive time (raw ingest).
    Event,
}

impl Identity {
    /// The identity of `e`.
    pub fn of(self, e: &CarrierEvent) -> u64 {
        let mut h = DefaultHasher::new();
        e.tracking_number.hash(&mut h);
        match self {
            Identity::Scan => e.occurred_at_ms.div_euclid(1000).hash(&mut h),
            Identity::Event => {
                e.occurred_at_ms.hash(&mut h);
                e.received_at_ms.hash(&mut h);
            }
        }
        h.finish()
    }
}

/// What the target acknowledged, by identity.
#[derive(Debug)]
pub struct Ledger {
    identity: Identity,
    acked: Mutex<HashMap<u64, u32>>,
}

/// The outcome of comparing the ledger with the log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Audit {
    /// Distinct acknowledged identities.
    pub acked: u64,
    /// Acknowledged events (copies of an identity counted) not found in
    /// the log.
    pub lost: u64,
    /// Extra copies in the log beyond what was acknowledged.
    pub duplicates: u64,
    /// Records in the log that were never acknowledged to the sender
    /// (another producer, or an earlier run in the same directory).
    pub unexpected: u64,
    /// Carrier-event records read (idle ticks not counted).
    pub records: u64,
    /// Records whose value did not decode as an event.
    pub undecodable: u64,
}

impl Ledger {
    /// An empty ledger.
    pub fn new(identity: Identity) -> Ledger {
        Ledger {
            identity,
            acked: Mutex::new(HashMap::new()),
        }
    }

    /// The identity scheme.
    pub fn identity(&self) -> Identity {
        self.identity
    }

    /// Records acknowledged identities. Through the adapters a repeat of
    /// a scan is expected once in the log however often it was sent.
    pub fn acked(&self, ids: impl IntoIterator<Item = u64>) {
        let mut m = self.acked.lock().unwrap_or_else(PoisonError::into_inner);
        for id in ids {
            let n = m.entry(id).or_insert(0);
            *n = match self.identity {
                Identity::Scan => 1,
                Identity::Event => n.saturating_add(1),
            };
        }
    }

    /// Distinct acknowledged identities.
    pub fn len(&self) -> usize {
        self.acked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether nothing was acknowledged.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads every `carrier-events` record of `log` and compares.
    pub fn audit(&self, log: &Log) -> Result<Audit, LogError> {
        let expected = self.acked.lock().unwrap_or_else(PoisonError::into_inner);
        let mut found: HashMap<u64, u32> = HashMap::with_capacity(expected.len());
        let mut audit = Audit {
            acked: expected.len() as u64,
            ..Audit::default()
        };
        let partitions = log
            .topics()
            .into_iter()
            .find(|t| t.name == CARRIER_EVENTS_TOPIC)
            .map_or(0, |t| t.config.partitions);
        for p in 0..partitions {
            let part = log.partition(CARRIER_EVENTS_TOPIC, p)?;
            let mut from = part.start_offset();
            loop {
                let views = part.read(from, READ_BYTES_MAX)?;
                let Some(last) = views.last() else { break };
                from = last.batch().last_offset() + 1;
                for v in &views {
                    for r in v.batch().records() {
                        if r.key.is_empty() && r.value == TICK_VALUE {
                            continue;
                        }
                        audit.records += 1;
                        match CarrierEvent::decode(r.value) {
                            Ok(e) => *found.entry(self.identity.of(&e)).or_insert(0) += 1,
                            Err(_) => audit.undecodable += 1,
                        }
                    }
                }
            }
        }
        for (id, want) in expected.iter() {
            let got = found.get(id).copied().unwrap_or(0);
            audit.lost += u64::from(want.saturating_sub(got));
            audit.duplicates += u64::from(got.saturating_sub(*want));
        }
        audit.unexpected = found
            .iter()
            .filter(|(id, _)| !expected.contains_key(id))
            .map(|(_, n)| u64::from(*n))
            .sum();
        Ok(audit)
    }
}
