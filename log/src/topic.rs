//! Topic metadata: the `topic.meta` file and name rules.
//!
//! Why a checksummed binary file: the partition count and retention of a
//! topic decide where data lives and when it dies; a silently damaged
//! config must be refused, not guessed. Written atomically (atomic_file.rs).

use std::path::Path;

use crate::config::TopicConfig;
use crate::error::LogError;
use crate::limits::NAME_BYTES_MAX;
use crate::partition::PartitionInfo;

/// Magic of `topic.meta`; the last byte is the format version.
pub(crate) const TOPIC_MAGIC: [u8; 4] = [b'D', b'L', b'T', 1];
const TOPIC_META_BYTES: usize = 40;
const HAS_RETENTION_MS: u32 = 1;
const HAS_RETENTION_BYTES: u32 = 2;
const HAS_SEGMENT_BYTES_MAX: u32 = 4;

/// A topic and its partitions' figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    /// Topic name.
    pub name: String,
    /// Its configuration.
    pub config: TopicConfig,
    /// One entry per partition.
    pub partitions: Vec<PartitionInfo>,
}

/// Checks a topic or consumer-group name: 1..=NAME_BYTES_MAX bytes of
/// `[A-Za-z0-9._-]`, not `.` or `..`.
pub(crate) fn validate_name(name: &str) -> Result<(), LogError> {
    let bad = |reason| {
        Err(LogError::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() || name.len() > NAME_BYTES_MAX {
        return bad("length must be 1..=200 bytes");
    }
    if name == "." || name == ".." {
        return bad("reserved name");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return bad("only A-Z, a-z, 0-9, '.', '_' and '-' are allowed");
    }
    Ok(())
}

pub(crate) fn encode(c: &TopicConfig) -> Vec<u8> {
    let mut b = vec![0u8; TOPIC_META_BYTES];
    b[0..4].copy_from_slice(&TOPIC_MAGIC);
    let mut flags = 0;
    if c.retention_ms.is_some() {
        flags |= HAS_RETENTION_MS;
    }
    if c.retention_bytes.is_some() {
        flags |= HAS_RETENTION_BYTES;
    }
    if c.segment_bytes_max.is_some() {
        flags |= HAS_SEGMENT_BYTES_MAX;
    }
    b[8..12].copy_from_slice(&c.partitions.to_le_bytes());
    b[12..16].copy_from_slice(&flags.to_le_bytes());
    b[16..24].copy_from_slice(&c.retention_ms.unwrap_or(0).to_le_bytes());
    b[24..32].copy_from_slice(&c.retention_bytes.unwrap_or(0).to_le_bytes());
    b[32..40].copy_from_slice(&c.segment_bytes_max.unwrap_or(0).to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&b[0..4]), &b[8..]);
    b[4..8].copy_from_slice(&crc.to_le_bytes());
    b
}

pub(crate) fn decode(path: &Path, b: &[u8]) -> Result<TopicConfig, LogError> {
    let corrupt = |reason| LogError::CorruptFile {
        path: path.to_path_buf(),
        reason,
    };
    if b.len() != TOPIC_META_BYTES || b[0..3] != TOPIC_MAGIC[0..3] {
        return Err(corrupt("not a topic metadata file"));
    }
    if b[3] != TOPIC_MAGIC[3] {
        return Err(LogError::UnknownVersion {
            segment: path.to_path_buf(),
            file_offset: 0,
            version: b[3],
        });
    }
    let u32_at = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    let u64_at = |at: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[at..at + 8]);
        u64::from_le_bytes(a)
    };
    if u32_at(4) != crc32c::crc32c_append(crc32c::crc32c(&b[0..4]), &b[8..]) {
        return Err(corrupt("topic metadata checksum mismatch"));
    }
    let flags = u32_at(12);
    Ok(TopicConfig {
        partitions: u32_at(8),
        retention_ms: (flags & HAS_RETENTION_MS != 0).then(|| u64_at(16)),
        retention_bytes: (flags & HAS_RETENTION_BYTES != 0).then(|| u64_at(24)),
        segment_bytes_max: (flags & HAS_SEGMENT_BYTES_MAX != 0).then(|| u64_at(32)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_round_trips_and_rejects_damage() {
        let c = TopicConfig {
            partitions: 3,
            retention_ms: None,
            retention_bytes: Some(9),
            segment_bytes_max: Some(1 << 20),
        };
        let mut b = encode(&c);
        assert_eq!(decode(Path::new("t"), &b).unwrap(), c);
        b[9] ^= 1;
        assert!(matches!(
            decode(Path::new("t"), &b),
            Err(LogError::CorruptFile { .. })
        ));
        assert!(validate_name("events.v1-x_2").is_ok());
        assert!(
            validate_name("a/b").is_err()
                && validate_name("..").is_err()
                && validate_name("").is_err()
        );
    }
}
