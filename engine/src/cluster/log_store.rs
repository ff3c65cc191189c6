//! The partition log as a Raft log: raft index `i` is the `i`-th batch of
//! the partition (from offset 0), with a written-but-not-durable tail.
//!
//! Why an explicit unsynced tail: Raft may count an entry only once it is
//! durable on a member, and a crash may lose whatever was not fdatasynced.
//! Entries handed to [`PartitionReplicaLog::append`] wait in memory until
//! [`PartitionReplicaLog::start_sync`] writes them to the partition (the
//! partition's syncer runs the covering fdatasync) and
//! [`PartitionReplicaLog::mark_durable`] records that it completed;
//! [`PartitionReplicaLog::sync`] does both, waiting. Between the two the
//! entries are *written*: kept in memory too (Raft reads them to send to
//! followers; the partition serves only durable data), and never cut off
//! the partition while their fdatasync may still run (a truncation waits
//! for it first). [`PartitionReplicaLog::crash`] drops the tail, as a
//! power cut drops the page cache. Batching the tail into one write per
//! Raft ready is the group commit.
//!
//! Index to offset: an in-memory vector of (base offset, last offset) per
//! entry, rebuilt by reading the partition at open (8 + 8 bytes per entry;
//! bounded by the partition's retention once compaction exists).

use std::sync::Arc;

use dropline_log::{AppendAck, BatchPeek, Durable, Partition, ProducerSeq};

use super::ClusterError;

/// What a producer batch would be, checked before it is proposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProducerCheck {
    /// Not in the log: propose it.
    New,
    /// In the log at these offsets (durable here).
    Appended(AppendAck),
    /// In the unsynced tail: wait for it.
    InTail,
    /// Older than the window the log remembers: it was appended long ago.
    Stale,
    /// A gap in the producer's sequence: refused.
    OutOfOrder,
}

/// One partition used as a Raft log.
#[derive(Debug)]
pub struct PartitionReplicaLog {
    partition: Arc<Partition>,
    /// (base offset, last offset) of each entry in the partition (durable
    /// or written); entry `i` at `i - 1`.
    placed: Vec<(u64, u64)>,
    /// How many of `placed` are known durable.
    durable: usize,
    /// The batches of `placed[durable..]`: written, fdatasync pending.
    writing: Vec<Vec<u8>>,
    /// The handle of the newest write, until it is known durable.
    pending: Option<Durable>,
    /// Entries written by Raft but not yet in the partition.
    tail: Vec<Vec<u8>>,
}

impl PartitionReplicaLog {
    /// Wraps a partition that holds only replicated batches (from offset
    /// 0): reads it once to map entries to offsets.
    pub fn open(partition: Arc<Partition>) -> Result<PartitionReplicaLog, ClusterError> {
        if partition.start_offset() != 0 {
            return Err(ClusterError::Unsupported {
                what: "a replicated partition whose start was removed by retention",
            });
        }
        let mut placed = Vec::new();
        let mut next = 0;
        let end = partition.next_offset();
        while next < end {
            let views = partition.read(next, 1 << 20)?;
            if views.is_empty() {
                break;
            }
            for v in &views {
                placed.push((v.base_offset(), v.last_offset()));
                next = v.last_offset() + 1;
            }
        }
        Ok(PartitionReplicaLog {
            partition,
            durable: placed.len(),
            placed,
            writing: Vec::new(),
            pending: None,
            tail: Vec::new(),
        })
    }

    /// The partition.
    pub fn partition(&self) -> &Arc<Partition> {
        &self.partition
    }

    /// Index of the last entry (durable, written or in the tail).
    pub fn last_index(&self) -> u64 {
        (self.placed.len() + self.tail.len()) as u64
    }

    /// Index of the last durable entry.
    pub fn durable_index(&self) -> u64 {
        self.durable as u64
    }

    /// Index of the last entry in the partition (durable or written).
    pub fn written_index(&self) -> u64 {
        self.placed.len() as u64
    }

    /// Offsets of an entry in the partition (durable or written).
    pub fn placement(&self, index: u64) -> Option<(u64, u64)> {
        let i = usize::try_from(index.checked_sub(1)?).ok()?;
        self.placed.get(i).copied()
    }

    /// The stored batch of entry `index` (placed if durable, as written
    /// or proposed if not durable yet).
    pub fn batch(&self, index: u64) -> Result<Vec<u8>, ClusterError> {
        self.with_batch(index, |batch| Ok(batch.to_vec()))
    }

    /// The producer of entry `index`'s batch, from its header alone (every
    /// stored batch was validated when it was appended or read).
    pub fn producer_of(&self, index: u64) -> Result<Option<ProducerSeq>, ClusterError> {
        self.with_batch(index, |batch| {
            BatchPeek::of(batch)
                .map(|b| b.producer())
                .map_err(|source| ClusterError::BadEntry { index, source })
        })
    }

    /// Calls `f` on entry `index`'s batch where it is: in memory (written
    /// or in the tail) or read from the partition.
    fn with_batch<R>(
        &self,
        index: u64,
        f: impl FnOnce(&[u8]) -> Result<R, ClusterError>,
    ) -> Result<R, ClusterError> {
        let durable = self.durable as u64;
        if index == 0 || index > self.last_index() {
            return Err(ClusterError::Unavailable { index });
        }
        if index > durable {
            let at = usize::try_from(index - durable - 1).unwrap_or(usize::MAX);
            return match self.writing.iter().chain(self.tail.iter()).nth(at) {
                Some(batch) => f(batch),
                None => Err(ClusterError::Unavailable { index }),
            };
        }
        let (base, _) = self.placed[(index - 1) as usize];
        let views = self.partition.read(base, 1)?;
        match views.first() {
            Some(v) if v.base_offset() == base => f(v.as_bytes()),
            _ => Err(ClusterError::Unavailable { index }),
        }
    }

    /// Adds an entry's batch to the unsynced tail.
    pub fn append(&mut self, batch: Vec<u8>) {
        self.tail.push(batch);
    }

    /// Keeps entries `1..=keep` and removes the rest, durably. Cutting into
    /// the partition first waits for a pending fdatasync: the partition must
    /// not publish a durable offset over bytes it no longer holds.
    pub fn truncate(&mut self, keep: u64) -> Result<(), ClusterError> {
        let written = self.placed.len() as u64;
        if keep >= written {
            let keep_tail = usize::try_from(keep - written).unwrap_or(usize::MAX);
            self.tail.truncate(keep_tail);
            return Ok(());
        }
        self.tail.clear();
        self.wait_durable()?;
        let (cut, _) = self.placed[keep as usize];
        self.partition.truncate_to(cut)?;
        self.placed.truncate(keep as usize);
        self.durable = self.placed.len();
        Ok(())
    }

    /// Writes the tail to the partition and waits for the fdatasync that
    /// covers it. Everything up to [`Self::last_index`] is durable after.
    pub fn sync(&mut self) -> Result<(), ClusterError> {
        self.start_sync()?;
        self.wait_durable()
    }

    /// Writes the tail to the partition; its fdatasync runs on the
    /// partition's syncer. Returns the index of the last entry written.
    pub fn start_sync(&mut self) -> Result<u64, ClusterError> {
        for mut batch in std::mem::take(&mut self.tail) {
            // Kept as written (re-stamped in place, no copy): what this
            // replica serves to the others until it is durable.
            let (ack, durable) = self.partition.append_replicated_owned(&mut batch)?;
            self.placed.push((ack.base_offset, ack.last_offset));
            self.writing.push(batch);
            self.pending = Some(durable);
        }
        Ok(self.written_index())
    }

    /// Whether every written entry is durable (checks, never blocks).
    pub fn poll_durable(&mut self) -> Result<bool, ClusterError> {
        match &self.pending {
            None => Ok(true),
            Some(d) if d.is_durable() => {
                self.mark_durable();
                Ok(true)
            }
            Some(_) => {
                if self.partition.is_poisoned() {
                    // The fdatasync failed: waiting returns its error.
                    self.wait_durable()?;
                }
                Ok(false)
            }
        }
    }

    /// Blocks until every written entry is durable.
    pub fn wait_durable(&mut self) -> Result<(), ClusterError> {
        if let Some(d) = self.pending.take() {
            d.wait()?;
        }
        self.mark_durable();
        Ok(())
    }

    /// The durable offset the newest write waits for (`None`: nothing
    /// pending), for an asynchronous wake-up ([`Partition::data_ready`]).
    pub fn pending_offset(&self) -> Option<u64> {
        self.pending.as_ref().map(|d| d.target_offset())
    }

    fn mark_durable(&mut self) {
        self.pending = None;
        self.durable = self.placed.len();
        self.writing.clear();
    }

    /// Loses the unsynced tail, as a crash before the fdatasync would.
    pub fn crash(&mut self) {
        self.tail.clear();
    }

    /// What proposing a batch of `p` would do (see [`ProducerCheck`]).
    /// The tail is looked at first: the log's producer table knows only
    /// durable batches.
    pub fn check_producer(&self, p: ProducerSeq) -> ProducerCheck {
        let in_tail = |batch: &Vec<u8>| BatchPeek::of(batch).ok().and_then(|b| b.producer());
        let mut newest = None;
        for q in self.tail.iter().filter_map(in_tail) {
            if q.producer_id != p.producer_id {
                continue;
            }
            if q.sequence == p.sequence {
                return ProducerCheck::InTail;
            }
            newest = Some(q.sequence);
        }
        match newest {
            Some(n) if n.wrapping_add(1) == p.sequence => return ProducerCheck::New,
            Some(n) if n < p.sequence => return ProducerCheck::OutOfOrder,
            // None, or a retry older than the tail's newest: the table decides.
            _ => {}
        }
        match self.partition.check_producer(p) {
            Ok(None) => ProducerCheck::New,
            Ok(Some(ack)) => ProducerCheck::Appended(ack),
            Err(dropline_log::LogError::StaleSequence { .. }) => ProducerCheck::Stale,
            Err(_) => ProducerCheck::OutOfOrder,
        }
    }
}
