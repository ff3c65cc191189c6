//! raft-rs's `Storage` over the partition log and the replica state file,
//! and the persistence steps of a Raft ready in crash-safe order.
//!
//! Order of a ready's persistence (each step durable before the next
//! matters):
//!
//! 1. A conflicting suffix is cut off the log (`truncate_to`, durable).
//! 2. The state file is saved if the hard state's term or vote changed or
//!    new epochs begin (after step 1, so it never names a term for an entry
//!    that is about to be cut; before step 3, so every appended entry's
//!    term is known).
//! 3. The entries go to the log's unsynced tail; `sync` writes them and
//!    waits for the fdatasync. Only then is Raft told they are persisted
//!    (and only then are the messages that depend on it sent).
//!
//! On open, epochs starting past the log's end (saved in step 2, entries
//! lost before step 3's fdatasync) are trimmed, and the saved commit index
//! is clamped to the log's length.

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, StorageError};

use super::ClusterError;
use super::entry::{batch_to_entry, entry_to_batch};
use super::log_store::PartitionReplicaLog;
use super::state::{ReplicaState, StateFile};

/// A replica's storage: the log, the state and the fixed voter set.
#[derive(Debug)]
pub struct ReplicaStorage {
    log: PartitionReplicaLog,
    state: ReplicaState,
    file: StateFile,
    voters: Vec<u64>,
}

impl ReplicaStorage {
    /// Opens the storage over `log` and `file` (created empty if absent).
    pub fn open(
        log: PartitionReplicaLog,
        file: StateFile,
        voters: Vec<u64>,
    ) -> Result<ReplicaStorage, ClusterError> {
        let mut state = file.load()?.unwrap_or_default();
        let last = log.last_index();
        state.trim_after(last);
        state.commit = state.commit.min(last);
        if last > 0 && state.epochs.first().is_none_or(|&(_, first)| first != 1) {
            return Err(ClusterError::CorruptState {
                path: file.path().to_path_buf(),
            });
        }
        Ok(ReplicaStorage {
            log,
            state,
            file,
            voters,
        })
    }

    /// The log.
    pub fn log(&self) -> &PartitionReplicaLog {
        &self.log
    }

    /// The log, mutably (the driver's sync and crash steps).
    pub fn log_mut(&mut self) -> &mut PartitionReplicaLog {
        &mut self.log
    }

    /// The saved state.
    pub fn state(&self) -> &ReplicaState {
        &self.state
    }

    /// Steps 1-3 above except the fdatasync: cuts a conflicting suffix,
    /// saves the state if needed, and puts the entries in the log's tail.
    pub fn persist(
        &mut self,
        hs: Option<&HardState>,
        entries: &[Entry],
    ) -> Result<(), ClusterError> {
        let mut save = false;
        if let Some(first) = entries.first() {
            let last = self.log.last_index();
            if first.index <= last {
                self.log.truncate(first.index - 1)?;
                self.state.trim_after(first.index - 1);
                save = true;
            } else if first.index != last + 1 {
                return Err(ClusterError::Gap {
                    expected: last + 1,
                    got: first.index,
                });
            }
            for e in entries {
                save |= self.state.note(e.term, e.index);
            }
        }
        if let Some(hs) = hs {
            if hs.term != self.state.term || hs.vote != self.state.vote {
                save = true;
            }
            self.state.term = hs.term;
            self.state.vote = hs.vote;
            self.state.commit = hs.commit;
        }
        if save {
            let mut saved = self.state.clone();
            // Never name a commit past what this replica holds durably.
            saved.commit = saved.commit.min(self.log.durable_index());
            self.file.save(&saved)?;
        }
        for e in entries {
            self.log.append(entry_to_batch(e)?);
        }
        Ok(())
    }

    fn raft_err(e: ClusterError) -> raft::Error {
        match e {
            ClusterError::Unavailable { .. } => raft::Error::Store(StorageError::Unavailable),
            other => raft::Error::Store(StorageError::Other(Box::new(other))),
        }
    }
}

impl raft::Storage for ReplicaStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        let hs = HardState {
            term: self.state.term,
            vote: self.state.vote,
            commit: self.state.commit,
            ..Default::default()
        };
        Ok(RaftState {
            hard_state: hs,
            conf_state: ConfState::from((self.voters.clone(), Vec::<u64>::new())),
        })
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        let max_size = max_size.into().unwrap_or(u64::MAX);
        let mut out = Vec::new();
        let mut size = 0u64;
        for index in low..high {
            let batch = self.log.batch(index).map_err(Self::raft_err)?;
            size = size.saturating_add(batch.len() as u64);
            if !out.is_empty() && size > max_size {
                break;
            }
            out.push(
                batch_to_entry(&batch, index, self.state.term_of(index)).map_err(Self::raft_err)?,
            );
        }
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx > self.log.last_index() {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        Ok(self.state.term_of(idx))
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.log.last_index())
    }

    fn snapshot(&self, _request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        // No compaction yet, so every entry is in the log and Raft never
        // needs a snapshot to catch a follower up.
        Err(raft::Error::Store(
            StorageError::SnapshotTemporarilyUnavailable,
        ))
    }
}
