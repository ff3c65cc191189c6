//! The value format of ingest dead letters in the `dead-letters` topic
//! (docs/FORMAT.md, "Wire (QUIC ingest)", "Dead letters").
//!
//! Why the raw bytes and not a parsed form: a rejected frame is, by
//! definition, not trusted to parse; keeping the bytes as received (up to
//! the log's record limit) lets an operator inspect or replay exactly what
//! arrived.

use super::sink::DeadLetter;
use crate::wire::ErrorCode;

/// Version byte at the start of an ingest dead-letter value.
pub const DEAD_LETTER_FORMAT_V1: u8 = 1;
/// Source byte: the QUIC ingest endpoint.
const SOURCE_QUIC_INGEST: u8 = 1;
const FIXED_BYTES: usize = 24;

/// Key of ingest dead letters in the `dead-letters` topic.
pub const DEAD_LETTER_KEY: &[u8] = b"ingest";

/// Encodes a dead letter as a `dead-letters` record value.
pub fn encode_dead_letter(letter: &DeadLetter<'_>) -> Vec<u8> {
    let name = &letter.adapter.as_bytes()[..letter.adapter.len().min(usize::from(u16::MAX))];
    let mut out = Vec::with_capacity(FIXED_BYTES + 2 + name.len() + letter.payload.len());
    out.push(DEAD_LETTER_FORMAT_V1);
    out.push(SOURCE_QUIC_INGEST);
    out.extend_from_slice(&letter.code.as_u16().to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&letter.received_at_ms.to_le_bytes());
    out.extend_from_slice(&letter.input_bytes.to_le_bytes());
    out.extend_from_slice(&(name.len() as u16).to_le_bytes());
    out.extend_from_slice(name);
    out.extend_from_slice(letter.payload);
    out
}

/// A decoded ingest dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterRecord {
    /// The rejection's code (raw, for codes newer than this build).
    pub code: u16,
    /// When the node received the input, ms since the Unix epoch.
    pub received_at_ms: u64,
    /// Length of the input as received.
    pub input_bytes: u64,
    /// The adapter that sent it (empty before authentication).
    pub adapter: String,
    /// The kept bytes.
    pub payload: Vec<u8>,
}

impl DeadLetterRecord {
    /// Decodes a value written by [`encode_dead_letter`]; `None` if it is
    /// not one.
    pub fn decode(value: &[u8]) -> Option<DeadLetterRecord> {
        if value.len() < FIXED_BYTES + 2
            || value[0] != DEAD_LETTER_FORMAT_V1
            || value[1] != SOURCE_QUIC_INGEST
        {
            return None;
        }
        let code = u16::from_le_bytes([value[2], value[3]]);
        let received_at_ms = u64::from_le_bytes(value[8..16].try_into().ok()?);
        let input_bytes = u64::from_le_bytes(value[16..24].try_into().ok()?);
        let name_len = usize::from(u16::from_le_bytes([value[24], value[25]]));
        let name = value.get(26..26 + name_len)?;
        Some(DeadLetterRecord {
            code,
            received_at_ms,
            input_bytes,
            adapter: String::from_utf8(name.to_vec()).ok()?,
            payload: value[26 + name_len..].to_vec(),
        })
    }

    /// The code, if this build knows it.
    pub fn error_code(&self) -> Option<ErrorCode> {
        ErrorCode::from_u16(self.code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let letter = DeadLetter {
            code: ErrorCode::ChecksumMismatch,
            adapter: "ups",
            received_at_ms: 42,
            input_bytes: 9,
            payload: b"abc",
        };
        let rec = DeadLetterRecord::decode(&encode_dead_letter(&letter)).unwrap();
        assert_eq!(rec.error_code(), Some(ErrorCode::ChecksumMismatch));
        assert_eq!(
            (
                rec.adapter.as_str(),
                rec.input_bytes,
                rec.payload.as_slice()
            ),
            ("ups", 9, &b"abc"[..])
        );
        assert_eq!(DeadLetterRecord::decode(b"junk"), None);
    }
}
