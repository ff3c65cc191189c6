//! Records of the `control` topic and the admin calls that append them:
//! drop mode (a switch and a scheduled window), rule reloads, opt-outs.
//!
//! Why control is a topic and not an API call into the workers: every
//! worker must apply a switch at the same point of its input on every run,
//! replays included. As a record in a log that every partition task merges
//! by log time, a switch takes effect at a deterministic position.
//!
//! Value layout (little-endian): magic `DLC` + version byte 1, a kind byte,
//! then the kind's payload:
//! - 1 drop mode: `on` u8 (0 or 1)
//! - 2 drop window: `from_ms` u64, `to_ms` u64 (log time, `to` exclusive)
//! - 3 rules reload: the rules document's bytes (the rest of the value)
//! - 4 opt-out: channel u8 (0 = every channel), then the buyer id (UTF-8,
//!   the rest of the value)
//!
//! Tick records are not control-topic records: they are control-flagged
//! batches (the log's `ATTR_CONTROL`) appended to any input partition, with
//! an empty key and [`TICK_VALUE`] as the value.

use dropline_log::{AppendRequest, Log, LogError, Record};
use dropline_operators::model::Channel;

use crate::input::CONTROL_TOPIC;

/// Magic of a control record value; the last byte is the format version.
pub const CONTROL_MAGIC: [u8; 4] = [b'D', b'L', b'C', 1];
/// The value of a tick record.
pub const TICK_VALUE: &[u8] = b"DLTK";

const KIND_DROP_MODE: u8 = 1;
const KIND_DROP_WINDOW: u8 = 2;
const KIND_RULES_RELOAD: u8 = 3;
const KIND_OPT_OUT: u8 = 4;

/// A decoded control record, borrowing the record's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlRecord<'a> {
    /// Switch drop mode on or off now (cancels any scheduled window).
    DropMode {
        /// On or off.
        on: bool,
    },
    /// Drop mode on for log times in `[from_ms, to_ms)` (replaces any
    /// earlier window and manual switch).
    DropWindow {
        /// Start, log time in ms.
        from_ms: u64,
        /// End (exclusive), log time in ms.
        to_ms: u64,
    },
    /// New rules for the chain.
    RulesReload {
        /// The rules document.
        rules: &'a [u8],
    },
    /// A buyer opted out of notifications.
    OptOut {
        /// The channel, or `None` for every channel.
        channel: Option<Channel>,
        /// The buyer.
        buyer_id: &'a str,
    },
}

/// Why a control value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ControlDecodeError {
    /// The value does not start with the control magic.
    #[error("not a control record (bad magic)")]
    BadMagic,
    /// The magic's version byte is unknown.
    #[error("unknown control record version {version}")]
    UnknownVersion {
        /// The version found.
        version: u8,
    },
    /// The kind byte is unknown.
    #[error("unknown control record kind {kind}")]
    UnknownKind {
        /// The kind found.
        kind: u8,
    },
    /// The payload is malformed.
    #[error("malformed control record of kind {kind}: {reason}")]
    Malformed {
        /// The kind.
        kind: u8,
        /// What is wrong.
        reason: &'static str,
    },
}

impl ControlRecord<'_> {
    /// Appends the encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&CONTROL_MAGIC);
        match *self {
            ControlRecord::DropMode { on } => {
                out.push(KIND_DROP_MODE);
                out.push(u8::from(on));
            }
            ControlRecord::DropWindow { from_ms, to_ms } => {
                out.push(KIND_DROP_WINDOW);
                out.extend_from_slice(&from_ms.to_le_bytes());
                out.extend_from_slice(&to_ms.to_le_bytes());
            }
            ControlRecord::RulesReload { rules } => {
                out.push(KIND_RULES_RELOAD);
                out.extend_from_slice(rules);
            }
            ControlRecord::OptOut { channel, buyer_id } => {
                out.push(KIND_OPT_OUT);
                out.push(channel.map_or(0, |c| c as u8));
                out.extend_from_slice(buyer_id.as_bytes());
            }
        }
    }

    /// Decodes a control value.
    pub fn decode(value: &[u8]) -> Result<ControlRecord<'_>, ControlDecodeError> {
        if value.len() < 5 || value[0..3] != CONTROL_MAGIC[0..3] {
            return Err(ControlDecodeError::BadMagic);
        }
        if value[3] != CONTROL_MAGIC[3] {
            return Err(ControlDecodeError::UnknownVersion { version: value[3] });
        }
        let kind = value[4];
        let payload = &value[5..];
        let malformed = |reason| ControlDecodeError::Malformed { kind, reason };
        match kind {
            KIND_DROP_MODE => match payload {
                [0] => Ok(ControlRecord::DropMode { on: false }),
                [1] => Ok(ControlRecord::DropMode { on: true }),
                _ => Err(malformed("expected one byte, 0 or 1")),
            },
            KIND_DROP_WINDOW => {
                let (Some(from), Some(to), 16) =
                    (payload.get(0..8), payload.get(8..16), payload.len())
                else {
                    return Err(malformed("expected two u64"));
                };
                let from_ms = u64::from_le_bytes(from.try_into().map_err(|_| malformed("from"))?);
                let to_ms = u64::from_le_bytes(to.try_into().map_err(|_| malformed("to"))?);
                if to_ms < from_ms {
                    return Err(malformed("window ends before it starts"));
                }
                Ok(ControlRecord::DropWindow { from_ms, to_ms })
            }
            KIND_RULES_RELOAD => Ok(ControlRecord::RulesReload { rules: payload }),
            KIND_OPT_OUT => {
                let (&c, id) = payload.split_first().ok_or(malformed("missing channel"))?;
                let channel = match c {
                    0 => None,
                    n => Some(
                        Channel::ALL
                            .into_iter()
                            .find(|ch| *ch as u8 == n)
                            .ok_or(malformed("unknown channel"))?,
                    ),
                };
                let buyer_id =
                    std::str::from_utf8(id).map_err(|_| malformed("buyer id is not UTF-8"))?;
                if buyer_id.is_empty() {
                    return Err(malformed("empty buyer id"));
                }
                Ok(ControlRecord::OptOut { channel, buyer_id })
            }
            kind => Err(ControlDecodeError::UnknownKind { kind }),
        }
    }
}

/// Appends a control record to the `control` topic and waits until it is
/// durable. Returns its offset.
pub fn append_control(log: &Log, record: &ControlRecord<'_>) -> Result<u64, LogError> {
    let mut value = Vec::with_capacity(32);
    record.encode(&mut value);
    let partition = log.partition(CONTROL_TOPIC, 0)?;
    let ack = partition.append(&AppendRequest {
        records: &[Record {
            key: b"",
            value: &value,
        }],
        producer: None,
    })?;
    Ok(ack.base_offset)
}

/// The admin switch: drop mode on or off, now (`window: None`), or on for
/// a scheduled window of log time `Some((from_ms, to_ms))` (then `on` is
/// ignored). Returns the control record's offset.
pub fn request_drop_mode(log: &Log, on: bool, window: Option<(u64, u64)>) -> Result<u64, LogError> {
    let record = match window {
        Some((from_ms, to_ms)) => ControlRecord::DropWindow { from_ms, to_ms },
        None => ControlRecord::DropMode { on },
    };
    append_control(log, &record)
}

/// Drop-mode state of one partition task: the manual switch and the
/// scheduled window, evaluated at each processed batch's log time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropSchedule {
    /// The manual switch, if set (a window clears it).
    pub manual: Option<bool>,
    /// The scheduled window `[from, to)`, if any (a manual switch clears it).
    pub window: Option<(u64, u64)>,
    /// Whether drop mode is applied to the operators now.
    pub applied: bool,
}

impl DropSchedule {
    /// Takes a control record into account (ignores other kinds).
    pub fn apply(&mut self, record: &ControlRecord<'_>) {
        match *record {
            ControlRecord::DropMode { on } => {
                self.manual = Some(on);
                self.window = None;
            }
            ControlRecord::DropWindow { from_ms, to_ms } => {
                self.window = Some((from_ms, to_ms));
                self.manual = None;
            }
            ControlRecord::RulesReload { .. } | ControlRecord::OptOut { .. } => {}
        }
    }

    /// Whether drop mode should be on at `log_time_ms`.
    pub fn wanted(&self, log_time_ms: u64) -> bool {
        match (self.manual, self.window) {
            (Some(on), _) => on,
            (None, Some((from, to))) => (from..to).contains(&log_time_ms),
            (None, None) => false,
        }
    }

    /// If the wanted state differs from the applied one at `log_time_ms`,
    /// records the change and returns the new state.
    pub fn transition(&mut self, log_time_ms: u64) -> Option<bool> {
        let wanted = self.wanted(log_time_ms);
        (wanted != self.applied).then(|| {
            self.applied = wanted;
            wanted
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_bad_ones_are_typed() {
        let records = [
            ControlRecord::DropMode { on: true },
            ControlRecord::DropWindow {
                from_ms: 5,
                to_ms: 9,
            },
            ControlRecord::RulesReload { rules: b"[rules]" },
            ControlRecord::OptOut {
                channel: Some(Channel::Sms),
                buyer_id: "b-1",
            },
            ControlRecord::OptOut {
                channel: None,
                buyer_id: "b-2",
            },
        ];
        for r in records {
            let mut v = Vec::new();
            r.encode(&mut v);
            assert_eq!(ControlRecord::decode(&v).unwrap(), r);
        }
        assert_eq!(
            ControlRecord::decode(b"xyz12").unwrap_err(),
            ControlDecodeError::BadMagic
        );
        assert_eq!(
            ControlRecord::decode(&[b'D', b'L', b'C', 9, 1]).unwrap_err(),
            ControlDecodeError::UnknownVersion { version: 9 }
        );
        assert_eq!(
            ControlRecord::decode(&[b'D', b'L', b'C', 1, 77]).unwrap_err(),
            ControlDecodeError::UnknownKind { kind: 77 }
        );
        assert!(matches!(
            ControlRecord::decode(&[b'D', b'L', b'C', 1, 1, 7]).unwrap_err(),
            ControlDecodeError::Malformed { kind: 1, .. }
        ));
    }

    #[test]
    fn schedule_follows_window_and_switch() {
        let mut s = DropSchedule::default();
        assert_eq!(s.transition(0), None);
        s.apply(&ControlRecord::DropWindow {
            from_ms: 100,
            to_ms: 200,
        });
        assert_eq!(s.transition(99), None);
        assert_eq!(s.transition(100), Some(true));
        assert_eq!(s.transition(150), None);
        assert_eq!(s.transition(200), Some(false));
        s.apply(&ControlRecord::DropMode { on: true });
        assert_eq!(s.transition(300), Some(true));
        s.apply(&ControlRecord::DropMode { on: false });
        assert_eq!(s.transition(301), Some(false));
    }
}
