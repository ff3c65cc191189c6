//! The adapter's durable state: a Dropline log of its own (in
//! `state_dir/log`) with two topics.
//!
//! - `adapter-state` (key = tracking number): `Register` (carrier, drop
//!   flag), `Seen` (a scan's fingerprint, status and instant, appended
//!   after the scan's event is durable in the ingest spool) and `Retired`.
//!   Replayed at start to rebuild the registry and the seen sets.
//! - `dead-letters` (key = carrier name): webhook and poll bodies that
//!   could not be read, with the reason, kept for inspection and replay.
//!
//! Why Seen records need not be awaited: after a crash the seen sets are
//! rebuilt from this log *and* from the events still in the ingest
//! spool, which keeps far more than the few milliseconds a Seen record
//! can lag behind its event. An event is therefore known as seen after a
//! restart exactly when it was durably accepted, so a carrier's retry of
//! a webhook we took but did not answer is recognised and not sent twice.
//!
//! Record layout (little-endian): `version:u8 = 1, kind:u8, carrier:u8`,
//! then for `R` (register) `drop:u8`; for `S` (seen) `fingerprint:u64,
//! status:u8, occurred_at_ms:i64`; for `X` (retired) nothing. Dead
//! letters: `version:u8 = 1, carrier:u8, source:u8 (1 webhook, 2 poll),
//! received_at_ms:i64, reason_len:u16, reason, payload`.

use std::path::Path;
use std::sync::Arc;

use dropline_log::{AppendRequest, Log, LogConfig, Partition, Record, TopicConfig};
use dropline_operators::model::{Carrier, EventSource, Status};

use super::error::AdapterError;

/// Topic of registrations and seen scans.
pub const STATE_TOPIC: &str = "adapter-state";
/// Topic of unreadable carrier payloads.
pub const DEAD_LETTER_TOPIC: &str = "dead-letters";
/// Format version of state and dead-letter records.
pub const STATE_FORMAT_V1: u8 = 1;
/// Largest payload kept in a dead letter, in bytes (longer ones are cut).
pub const DEAD_LETTER_PAYLOAD_BYTES_MAX: usize = 256 * 1024;
/// Bytes read per call while replaying.
const REPLAY_READ_BYTES: usize = 4 * 1024 * 1024;

/// One replayed state record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StateRecord {
    Register {
        tracking_number: String,
        carrier: Carrier,
        drop: bool,
    },
    Seen {
        tracking_number: String,
        carrier: Carrier,
        fingerprint: u64,
        status: Status,
        occurred_at_ms: i64,
    },
    Retired {
        tracking_number: String,
        carrier: Carrier,
    },
}

fn carrier_of(b: u8) -> Option<Carrier> {
    Carrier::ALL.into_iter().find(|c| *c as u8 == b)
}

fn status_of(b: u8) -> Option<Status> {
    Status::ALL.into_iter().find(|s| *s as u8 == b)
}

fn encode(record: &StateRecord) -> (String, Vec<u8>) {
    let mut v = vec![STATE_FORMAT_V1];
    let key = match record {
        StateRecord::Register {
            tracking_number,
            carrier,
            drop,
        } => {
            v.extend_from_slice(&[b'R', *carrier as u8, u8::from(*drop)]);
            tracking_number
        }
        StateRecord::Seen {
            tracking_number,
            carrier,
            fingerprint,
            status,
            occurred_at_ms,
        } => {
            v.extend_from_slice(&[b'S', *carrier as u8]);
            v.extend_from_slice(&fingerprint.to_le_bytes());
            v.push(*status as u8);
            v.extend_from_slice(&occurred_at_ms.to_le_bytes());
            tracking_number
        }
        StateRecord::Retired {
            tracking_number,
            carrier,
        } => {
            v.extend_from_slice(&[b'X', *carrier as u8]);
            tracking_number
        }
    };
    (key.clone(), v)
}

fn decode(key: &[u8], v: &[u8]) -> Option<StateRecord> {
    let tracking_number = std::str::from_utf8(key).ok()?.to_string();
    if v.first() != Some(&STATE_FORMAT_V1) {
        return None;
    }
    let carrier = carrier_of(*v.get(2)?)?;
    match v.get(1)? {
        b'R' => Some(StateRecord::Register {
            tracking_number,
            carrier,
            drop: *v.get(3)? != 0,
        }),
        b'S' => {
            let fingerprint = u64::from_le_bytes(v.get(3..11)?.try_into().ok()?);
            let status = status_of(*v.get(11)?)?;
            let occurred_at_ms = i64::from_le_bytes(v.get(12..20)?.try_into().ok()?);
            Some(StateRecord::Seen {
                tracking_number,
                carrier,
                fingerprint,
                status,
                occurred_at_ms,
            })
        }
        b'X' => Some(StateRecord::Retired {
            tracking_number,
            carrier,
        }),
        _ => None,
    }
}

/// The open state log.
pub(crate) struct StateLog {
    _log: Log,
    state: Arc<Partition>,
    dead_letters: Arc<Partition>,
}

impl std::fmt::Debug for StateLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateLog").finish_non_exhaustive()
    }
}

impl StateLog {
    /// Opens (creating) the log and replays every state record.
    pub(crate) fn open(
        dir: &Path,
        retention_ms: u64,
    ) -> Result<(StateLog, Vec<StateRecord>), AdapterError> {
        let log = Log::open(LogConfig::new(dir.join("log")))?;
        for topic in [STATE_TOPIC, DEAD_LETTER_TOPIC] {
            log.create_topic(
                topic,
                TopicConfig {
                    partitions: 1,
                    retention_ms: Some(retention_ms),
                    retention_bytes: None,
                    segment_bytes_max: None,
                },
            )?;
        }
        let state = log.partition(STATE_TOPIC, 0)?;
        let dead_letters = log.partition(DEAD_LETTER_TOPIC, 0)?;
        let mut records = Vec::new();
        let mut from = state.start_offset();
        loop {
            let views = state.read(from, REPLAY_READ_BYTES)?;
            let Some(last) = views.last() else { break };
            from = last.batch().last_offset() + 1;
            for view in &views {
                for r in view.batch().records() {
                    if let Some(rec) = decode(r.key, r.value) {
                        records.push(rec);
                    }
                }
            }
        }
        Ok((
            StateLog {
                _log: log,
                state,
                dead_letters,
            },
            records,
        ))
    }

    /// Appends records (durable at the next group commit; not awaited).
    pub(crate) fn append(&self, records: &[StateRecord]) {
        // Failures are logged by `append_durable`.
        let _ = self.append_durable(records);
    }

    /// Appends records and returns what completes once they are durable
    /// (`None` for nothing to append). Appends are durable in order, so
    /// the last one's future covers every earlier one.
    pub(crate) fn append_durable(
        &self,
        records: &[StateRecord],
    ) -> Result<Option<dropline_log::Durable>, dropline_log::LogError> {
        if records.is_empty() {
            return Ok(None);
        }
        let encoded: Vec<(String, Vec<u8>)> = records.iter().map(encode).collect();
        let recs: Vec<Record<'_>> = encoded
            .iter()
            .map(|(k, v)| Record {
                key: k.as_bytes(),
                value: v,
            })
            .collect();
        match self.state.append_pending(&AppendRequest {
            records: &recs,
            producer: None,
        }) {
            Ok((_, durable)) => Ok(Some(durable)),
            Err(err) => {
                tracing::error!(%err, "adapter state log append failed");
                Err(err)
            }
        }
    }

    /// Keeps an unreadable payload with its reason.
    pub(crate) fn dead_letter(
        &self,
        carrier: Carrier,
        source: EventSource,
        received_at_ms: i64,
        reason: &str,
        payload: &[u8],
    ) {
        let reason = &reason.as_bytes()[..reason.len().min(1024)];
        let payload = &payload[..payload.len().min(DEAD_LETTER_PAYLOAD_BYTES_MAX)];
        let mut v = Vec::with_capacity(14 + reason.len() + payload.len());
        v.extend_from_slice(&[STATE_FORMAT_V1, carrier as u8, source as u8]);
        v.extend_from_slice(&received_at_ms.to_le_bytes());
        v.extend_from_slice(&(reason.len() as u16).to_le_bytes());
        v.extend_from_slice(reason);
        v.extend_from_slice(payload);
        let rec = [Record {
            key: carrier.as_str().as_bytes(),
            value: &v,
        }];
        if let Err(err) = self.dead_letters.append_pending(&AppendRequest {
            records: &rec,
            producer: None,
        }) {
            tracing::error!(%err, "adapter dead-letter append failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let recs = vec![
            StateRecord::Register {
                tracking_number: "1Z999AA10123456784".into(),
                carrier: Carrier::Ups,
                drop: true,
            },
            StateRecord::Seen {
                tracking_number: "1Z999AA10123456784".into(),
                carrier: Carrier::Ups,
                fingerprint: 0xDEAD_BEEF_0123,
                status: Status::OutForDelivery,
                occurred_at_ms: -5,
            },
            StateRecord::Retired {
                tracking_number: "1Z999AA10123456784".into(),
                carrier: Carrier::Ups,
            },
        ];
        {
            let (log, replayed) = StateLog::open(dir.path(), 86_400_000).unwrap();
            assert!(replayed.is_empty());
            log.append(&recs);
            log.dead_letter(Carrier::Ups, EventSource::Webhook, 1, "bad json", b"{");
        }
        let (_log, replayed) = StateLog::open(dir.path(), 86_400_000).unwrap();
        assert_eq!(replayed, recs);
    }
}
