//! The small durable state of one replica besides its log: Raft's hard
//! state (term, vote, commit) and the leader epochs (the term of each
//! stretch of the log), in one file replaced atomically.
//!
//! Why one file: both change rarely (elections and leader changes, not
//! appends), and one atomic replacement keeps them consistent with each
//! other. Why leader epochs and not a term per batch: the batch format
//! stays as it is, and a term is a property of a stretch of entries (all
//! entries of one leader's term are contiguous), as in Kafka's
//! leader-epoch checkpoint. `term(i)` is the term of the last epoch whose
//! first index is at most `i`.
//!
//! Crash ordering (see `storage.rs`): epochs are saved before the entries
//! they describe are appended, and after a conflicting suffix has been cut
//! off, so the file may name epochs starting past the log's end (trimmed
//! on open) but never a wrong term for an entry the log holds. The commit
//! index saved may lag (it is saved with term and vote changes only) and is
//! clamped to the log's length on open; Raft learns the rest from the
//! leader.
//!
//! Layout (little-endian): magic `DLR` + version 1, CRC32C of everything
//! after the CRC field, body length u32, reserved u32, then term u64, vote
//! u64, commit u64, epoch count u32, reserved u32, and per epoch: term u64,
//! first index u64.

use std::path::{Path, PathBuf};

use super::ClusterError;

/// Magic of the replica state file; the last byte is the version.
pub const STATE_MAGIC: [u8; 4] = [b'D', b'L', b'R', 1];
/// Sanity bound on the epoch count when decoding (16 MiB of epochs). One
/// epoch is added per term in which a leader appended entries; without log
/// compaction nothing removes them yet (see docs/ARCHITECTURE.md,
/// "Cluster").
pub const EPOCHS_MAX: usize = 1 << 20;
const HEADER_BYTES: usize = 16;

/// Hard state and leader epochs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicaState {
    /// Current term.
    pub term: u64,
    /// Vote in the current term (0: none).
    pub vote: u64,
    /// A commit index known to be committed (may lag).
    pub commit: u64,
    /// (term, first raft index), both strictly increasing.
    pub epochs: Vec<(u64, u64)>,
}

impl ReplicaState {
    /// The term of the entry at `index` (0 for index 0 or no epochs).
    pub fn term_of(&self, index: u64) -> u64 {
        if index == 0 {
            return 0;
        }
        let at = self.epochs.partition_point(|&(_, first)| first <= index);
        at.checked_sub(1).map_or(0, |i| self.epochs[i].0)
    }

    /// Drops epochs that start after `last_index`.
    pub fn trim_after(&mut self, last_index: u64) {
        self.epochs.retain(|&(_, first)| first <= last_index);
    }

    /// Notes that the entry at `index` has `term`; true if an epoch was added.
    pub fn note(&mut self, term: u64, index: u64) -> bool {
        if self.epochs.last().is_some_and(|&(t, _)| t == term) {
            return false;
        }
        self.epochs.push((term, index));
        true
    }

    /// The file bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(32 + self.epochs.len() * 16);
        body.extend_from_slice(&self.term.to_le_bytes());
        body.extend_from_slice(&self.vote.to_le_bytes());
        body.extend_from_slice(&self.commit.to_le_bytes());
        body.extend_from_slice(&(self.epochs.len() as u32).to_le_bytes());
        body.extend_from_slice(&0u32.to_le_bytes());
        for &(t, f) in &self.epochs {
            body.extend_from_slice(&t.to_le_bytes());
            body.extend_from_slice(&f.to_le_bytes());
        }
        let mut out = Vec::with_capacity(HEADER_BYTES + body.len());
        out.extend_from_slice(&STATE_MAGIC);
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&body);
        let crc = crc32c::crc32c(&out[8..]);
        out[4..8].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Parses file bytes; `None` if damaged or of an unknown version.
    pub fn decode(b: &[u8]) -> Option<ReplicaState> {
        if b.len() < HEADER_BYTES || b[0..4] != STATE_MAGIC {
            return None;
        }
        let u32_at = |at: usize| -> Option<u32> {
            Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
        };
        let u64_at = |at: usize| -> Option<u64> {
            Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
        };
        if u32_at(4)? != crc32c::crc32c(&b[8..]) {
            return None;
        }
        let body_len = u32_at(8)? as usize;
        if b.len() != HEADER_BYTES + body_len || body_len < 32 {
            return None;
        }
        let o = HEADER_BYTES;
        let count = u32_at(o + 24)? as usize;
        if count > EPOCHS_MAX || body_len != 32 + count * 16 {
            return None;
        }
        let mut epochs = Vec::with_capacity(count);
        for i in 0..count {
            epochs.push((u64_at(o + 32 + i * 16)?, u64_at(o + 40 + i * 16)?));
        }
        let ordered = epochs
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1);
        ordered.then_some(ReplicaState {
            term: u64_at(o)?,
            vote: u64_at(o + 8)?,
            commit: u64_at(o + 16)?,
            epochs,
        })
    }
}

/// Where a replica's state file lives; replaced atomically (temp file,
/// fsync, rename, fsync of the directory).
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    /// The state file at `path` (its directory must exist).
    pub fn new(path: impl Into<PathBuf>) -> StateFile {
        StateFile { path: path.into() }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved state, `None` if there is no file yet; a damaged file is
    /// an error, never silently an empty state (that could vote twice).
    pub fn load(&self) -> Result<Option<ReplicaState>, ClusterError> {
        match std::fs::read(&self.path) {
            Ok(b) => ReplicaState::decode(&b)
                .map(Some)
                .ok_or_else(|| ClusterError::CorruptState {
                    path: self.path.clone(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ClusterError::Io {
                path: self.path.clone(),
                source,
            }),
        }
    }

    /// Replaces the file with `state`, durably.
    pub fn save(&self, state: &ReplicaState) -> Result<(), ClusterError> {
        Ok(dropline_log::write_atomic(&self.path, &state.encode())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_round_trip_and_damage_is_refused() {
        let mut s = ReplicaState {
            term: 7,
            vote: 2,
            commit: 40,
            epochs: vec![],
        };
        assert!(s.note(1, 1));
        assert!(!s.note(1, 2));
        assert!(s.note(3, 10));
        assert!(s.note(7, 25));
        assert_eq!(
            (
                s.term_of(0),
                s.term_of(1),
                s.term_of(9),
                s.term_of(10),
                s.term_of(99)
            ),
            (0, 1, 1, 3, 7)
        );
        let b = s.encode();
        assert_eq!(ReplicaState::decode(&b), Some(s.clone()));
        for i in 0..b.len() {
            let mut d = b.clone();
            d[i] ^= 0x10;
            assert_eq!(ReplicaState::decode(&d), None, "flip at {i}");
        }
        assert_eq!(ReplicaState::decode(&b[..b.len() - 1]), None);
        s.trim_after(24);
        assert_eq!(s.epochs, vec![(1, 1), (3, 10)]);
        let dir = tempfile::tempdir().expect("tmp");
        let f = StateFile::new(dir.path().join("p.raft"));
        assert_eq!(f.load().expect("load"), None);
        f.save(&s).expect("save");
        assert_eq!(f.load().expect("load"), Some(s));
        std::fs::write(f.path(), b"junk").expect("write");
        assert!(matches!(f.load(), Err(ClusterError::CorruptState { .. })));
    }
}
