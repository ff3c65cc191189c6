//! The orders feed's cursor on the adapter's disk: the next offset to read
//! in each partition of the node's `orders` topic.
//!
//! Layout (little-endian): magic `DLF` + version 1 (4 bytes), partitions
//! u32, then partitions × u64 next offsets, then CRC32C over everything
//! before it. Replaced atomically (temp file, fsync, rename, directory
//! fsync), so a reader sees the old cursor or the new one. A damaged file
//! is refused with a typed error, never silently read as zero.

use std::path::{Path, PathBuf};

use super::error::ClientError;
use super::spool::write_atomic;
use crate::wire::FOLLOW_PARTITIONS_MAX;

/// File name of the cursor inside the adapter's state directory.
pub const FOLLOW_CURSOR_FILE: &str = "orders-cursor";

const MAGIC: [u8; 4] = [b'D', b'L', b'F', 1];

/// Where the adapter resumes the orders feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowCursor {
    path: PathBuf,
    /// Next offset per partition; empty: from the start.
    pub next: Vec<u64>,
}

impl FollowCursor {
    /// An empty cursor (from the start) kept in `dir`.
    pub fn empty(dir: &Path) -> FollowCursor {
        FollowCursor {
            path: dir.join(FOLLOW_CURSOR_FILE),
            next: Vec::new(),
        }
    }

    /// Loads the cursor kept in `dir` (an empty one when there is none).
    pub fn load(dir: &Path) -> Result<FollowCursor, ClientError> {
        let path = dir.join(FOLLOW_CURSOR_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(FollowCursor {
                    path,
                    next: Vec::new(),
                });
            }
            Err(source) => return Err(ClientError::Io { path, source }),
        };
        let bad = |reason| ClientError::BadSpool {
            path: path.clone(),
            reason,
        };
        if bytes.len() < 12 || bytes[0..3] != MAGIC[0..3] {
            return Err(bad("not an orders cursor"));
        }
        if bytes[3] != MAGIC[3] {
            return Err(bad("unknown orders cursor version"));
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
        if crc32c::crc32c(body) != stored {
            return Err(bad("orders cursor checksum mismatch"));
        }
        let n = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
        if n > FOLLOW_PARTITIONS_MAX || body.len() != 8 + 8 * n as usize {
            return Err(bad("orders cursor length does not match its partitions"));
        }
        let next = body[8..]
            .chunks_exact(8)
            .map(|c| {
                let mut a = [0u8; 8];
                a.copy_from_slice(c);
                u64::from_le_bytes(a)
            })
            .collect();
        Ok(FollowCursor { path, next })
    }

    /// Writes the cursor atomically (blocking: temp, fsync, rename, fsync).
    pub fn save(&self) -> Result<(), ClientError> {
        let mut b = Vec::with_capacity(12 + 8 * self.next.len());
        b.extend_from_slice(&MAGIC);
        let n = u32::try_from(self.next.len()).unwrap_or(u32::MAX);
        b.extend_from_slice(&n.to_le_bytes());
        for o in &self.next {
            b.extend_from_slice(&o.to_le_bytes());
        }
        let crc = crc32c::crc32c(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        write_atomic(&self.path, &b)
    }

    /// Sets partition `p`'s next offset, sizing the cursor to `partitions`
    /// (a cursor of another size is dropped: it belonged to another topic).
    pub fn advance(&mut self, partitions: u32, p: u32, next_offset: u64) {
        if self.next.len() != partitions as usize {
            self.next = vec![0; partitions as usize];
        }
        if let Some(slot) = self.next.get_mut(p as usize) {
            *slot = next_offset;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = FollowCursor::load(dir.path()).unwrap();
        assert!(c.next.is_empty());
        c.advance(4, 2, 17);
        c.save().unwrap();
        let back = FollowCursor::load(dir.path()).unwrap();
        assert_eq!(back.next, vec![0, 0, 17, 0]);
        let path = dir.path().join(FOLLOW_CURSOR_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[9] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            FollowCursor::load(dir.path()),
            Err(ClientError::BadSpool { .. })
        ));
    }
}
