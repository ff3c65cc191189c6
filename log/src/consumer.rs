//! Committed consumer offsets: one small checksummed file per (group,
//! topic, partition), replaced atomically.
//!
//! Why a file each and not one table: commits of different partitions (one
//! per engine worker) never contend, and a torn write can damage at most
//! nothing (the rename is atomic) rather than every group's position.

use std::path::{Path, PathBuf};

use crate::error::LogError;

/// Magic of an offset file; the last byte is the format version.
const OFFSET_MAGIC: [u8; 4] = [b'D', b'L', b'O', 1];
const OFFSET_FILE_BYTES: usize = 16;

pub(crate) fn offset_path(dir: &Path, group: &str, topic: &str, partition: u32) -> PathBuf {
    dir.join("consumers")
        .join(group)
        .join(format!("{topic}.{partition:05}.offset"))
}

pub(crate) fn encode(offset: u64) -> Vec<u8> {
    let mut b = vec![0u8; OFFSET_FILE_BYTES];
    b[0..4].copy_from_slice(&OFFSET_MAGIC);
    b[8..16].copy_from_slice(&offset.to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&b[0..4]), &b[8..]);
    b[4..8].copy_from_slice(&crc.to_le_bytes());
    b
}

pub(crate) fn decode(path: &Path, b: &[u8]) -> Result<u64, LogError> {
    let corrupt = |reason| LogError::CorruptFile {
        path: path.to_path_buf(),
        reason,
    };
    if b.len() != OFFSET_FILE_BYTES || b[0..3] != OFFSET_MAGIC[0..3] {
        return Err(corrupt("not a consumer offset file"));
    }
    if b[3] != OFFSET_MAGIC[3] {
        return Err(LogError::UnknownVersion {
            segment: path.to_path_buf(),
            file_offset: 0,
            version: b[3],
        });
    }
    let crc = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    if crc != crc32c::crc32c_append(crc32c::crc32c(&b[0..4]), &b[8..]) {
        return Err(corrupt("consumer offset checksum mismatch"));
    }
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[8..16]);
    Ok(u64::from_le_bytes(a))
}
