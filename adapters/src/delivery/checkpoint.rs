//! Consumer progress of a delivery worker: per notify partition, the offset
//! below which everything is finished, and the finished offsets above it.
//!
//! Why not just an offset: messages finish out of order (critical first,
//! retries later, one message merging members of several partitions), so
//! committing "everything below the oldest unfinished" alone would re-send,
//! after a crash, every message that finished above it. Keeping the
//! finished set above the committed offset means a restart re-sends only
//! what was in flight at the crash, and those go with the same idempotency
//! keys, so providers and sinks drop them.
//!
//! Why one file for all partitions: a message covering members in two
//! partitions must be marked finished in both at once. The file is written
//! whole (temp, fsync, rename, fsync directory).
//!
//! Format v1, little-endian: magic `DLDC` then version byte 1; u32 entry
//! count; per entry: u8 class index, u32 partition, u64 committed offset,
//! u32 done count, that many u64 offsets; then CRC32C of everything before.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Magic bytes; the last byte of the header is the version.
pub const CHECKPOINT_MAGIC: &[u8; 4] = b"DLDC";
/// Current format version.
pub const CHECKPOINT_VERSION: u8 = 1;

/// Why a checkpoint could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// File system error.
    #[error("checkpoint {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Bad magic, unknown version, truncation or CRC mismatch.
    #[error("checkpoint {path} is corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: &'static str,
    },
}

/// Progress in one partition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartitionProgress {
    /// Everything below is finished.
    pub committed: u64,
    /// Finished offsets at or above `committed`.
    pub done_above: BTreeSet<u64>,
    /// Read but not finished (not persisted).
    pub in_flight: BTreeSet<u64>,
    /// Next offset to read (not persisted; starts at `committed`).
    pub read_next: u64,
}

impl PartitionProgress {
    fn from_committed(committed: u64, done_above: BTreeSet<u64>) -> PartitionProgress {
        PartitionProgress {
            committed,
            done_above,
            in_flight: BTreeSet::new(),
            read_next: committed,
        }
    }

    /// Whether `offset` finished before (skip it when re-read).
    pub fn is_done(&self, offset: u64) -> bool {
        offset < self.committed || self.done_above.contains(&offset)
    }

    /// A record was read and is being worked on.
    pub fn start(&mut self, offset: u64) {
        self.in_flight.insert(offset);
    }

    /// A record was finished (delivered, suppressed or dead-lettered).
    pub fn finish(&mut self, offset: u64) {
        self.in_flight.remove(&offset);
        self.done_above.insert(offset);
        self.advance();
    }

    /// Moves the read position past `offset` (a record skipped or started).
    pub fn read_past(&mut self, offset: u64) {
        self.read_next = self.read_next.max(offset + 1);
        self.advance();
    }

    fn advance(&mut self) {
        let low = self
            .in_flight
            .first()
            .copied()
            .unwrap_or(self.read_next)
            .min(self.read_next);
        // Everything below `low` was read and is not in flight, so done.
        if low > self.committed {
            self.committed = low;
            self.done_above = self.done_above.split_off(&low);
        }
    }
}

/// All partitions' progress, keyed by (class index, partition).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// Progress per (class index, partition).
    pub partitions: BTreeMap<(u8, u32), PartitionProgress>,
}

impl Checkpoint {
    /// Encodes the persisted part.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(CHECKPOINT_MAGIC);
        out.push(CHECKPOINT_VERSION);
        out.extend_from_slice(&(self.partitions.len() as u32).to_le_bytes());
        for ((class, partition), p) in &self.partitions {
            out.push(*class);
            out.extend_from_slice(&partition.to_le_bytes());
            out.extend_from_slice(&p.committed.to_le_bytes());
            out.extend_from_slice(&(p.done_above.len() as u32).to_le_bytes());
            for o in &p.done_above {
                out.extend_from_slice(&o.to_le_bytes());
            }
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes [`Checkpoint::encode`]'s output.
    pub fn decode(path: &Path, bytes: &[u8]) -> Result<Checkpoint, CheckpointError> {
        let corrupt = |reason| CheckpointError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        if bytes.len() < 13 {
            return Err(corrupt("shorter than header and CRC"));
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        let mut crc_bytes = [0u8; 4];
        crc_bytes.copy_from_slice(crc);
        if crc32c::crc32c(body) != u32::from_le_bytes(crc_bytes) {
            return Err(corrupt("CRC mismatch"));
        }
        if &body[..4] != CHECKPOINT_MAGIC {
            return Err(corrupt("bad magic"));
        }
        if body[4] != CHECKPOINT_VERSION {
            return Err(corrupt("unknown version"));
        }
        let mut r = Cursor { b: body, at: 5 };
        let n = r.u32().ok_or_else(|| corrupt("truncated"))?;
        let mut partitions = BTreeMap::new();
        for _ in 0..n {
            let class = r.u8().ok_or_else(|| corrupt("truncated"))?;
            let partition = r.u32().ok_or_else(|| corrupt("truncated"))?;
            let committed = r.u64().ok_or_else(|| corrupt("truncated"))?;
            let count = r.u32().ok_or_else(|| corrupt("truncated"))?;
            let mut done = BTreeSet::new();
            for _ in 0..count {
                done.insert(r.u64().ok_or_else(|| corrupt("truncated"))?);
            }
            partitions.insert(
                (class, partition),
                PartitionProgress::from_committed(committed, done),
            );
        }
        if r.at != body.len() {
            return Err(corrupt("trailing bytes"));
        }
        Ok(Checkpoint { partitions })
    }

    /// Loads the checkpoint; an absent file is an empty checkpoint.
    pub fn load(path: &Path) -> Result<Checkpoint, CheckpointError> {
        match std::fs::read(path) {
            Ok(b) => Checkpoint::decode(path, &b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Checkpoint::default()),
            Err(source) => Err(CheckpointError::Io {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Writes the checkpoint atomically with the log's `write_atomic`:
    /// temp file, fsync, rename, fsync of the directory.
    pub fn store(&self, path: &Path) -> Result<(), CheckpointError> {
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|source| CheckpointError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        dropline_log::write_atomic(path, &self.encode()).map_err(|e| match e {
            dropline_log::LogError::Io { path, source } => CheckpointError::Io { path, source },
            other => CheckpointError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::other(other),
            },
        })
    }
}

struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let s = self.b.get(self.at..self.at + N)?;
        self.at += N;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|a| a[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take::<4>().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take::<8>().map(u64::from_le_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_order_finishes_advance_the_commit_and_round_trip() {
        let mut p = PartitionProgress::default();
        for o in 0..5 {
            p.start(o);
            p.read_past(o);
        }
        p.finish(3);
        p.finish(1);
        assert_eq!(p.committed, 0);
        p.finish(0);
        assert_eq!(p.committed, 2);
        assert!(p.is_done(3) && !p.is_done(2) && !p.is_done(4));
        let mut c = Checkpoint::default();
        c.partitions.insert((4, 7), p.clone());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.ckpt");
        c.store(&path).unwrap();
        let back = Checkpoint::load(&path).unwrap();
        let q = &back.partitions[&(4, 7)];
        assert_eq!(q.committed, 2);
        assert!(q.is_done(3) && !q.is_done(2) && !q.is_done(4));
        let mut bytes = c.encode();
        bytes[6] ^= 1;
        assert!(Checkpoint::decode(&path, &bytes).is_err());
    }
}
