//! One replica of one partition: raft-rs's `RawNode` over
//! [`ReplicaStorage`], driven sans-IO.
//!
//! The caller owns time and I/O: it calls [`Replica::tick`] on its clock,
//! hands in messages from peers ([`Replica::step`]) and proposals
//! ([`Replica::propose`]), then [`Replica::ready`] for the messages to send
//! at once, and, when it is time for the fdatasync (at once, or after
//! gathering more work: group commit), [`Replica::sync`] for the messages
//! that may only be sent once the entries are durable. Acks come out of
//! [`Replica::take_acks`].
//!
//! What "acked" means: the batch's entry is committed, i.e. durable (synced
//! through [`Replica::sync`]) on a majority, the leader included (raft-rs
//! counts the leader's own entries only once they are reported persisted),
//! and this replica has it durably at the offsets in the ack.
//!
//! Idempotent producers across leaders: before proposing a producer batch
//! the leader asks Raft's not yet persisted entries, its log (unsynced
//! tail and durable part) and its own not yet applied proposals whether
//! the batch is already there; if it is,
//! it is not proposed again, and the caller is answered once it commits.
//! A batch proposed by an earlier leader that never reached this one is
//! proposed again; the earlier copy is cut off when that leader rejoins,
//! since its entry was never committed.

use std::collections::{HashMap, HashSet};

use dropline_log::{AppendAck, AppendRequest, BatchPeek, ProducerSeq, Record};
use raft::eraftpb::Message;
use raft::{Config, RawNode, StateRole};

use super::ClusterError;
use super::entry::is_reserved;
use super::log_store::ProducerCheck;
use super::storage::ReplicaStorage;

/// Raft timing and flow settings, in ticks of the caller's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaConfig {
    /// This replica's id (non-zero).
    pub id: u64,
    /// Ticks without a leader before a follower campaigns (randomised by
    /// the caller's tick jitter, see [`Replica::new`]).
    pub election_ticks: usize,
    /// Ticks between a leader's heartbeats.
    pub heartbeat_ticks: usize,
    /// Bytes of entries per append message.
    pub message_bytes_max: u64,
    /// Append messages in flight per follower.
    pub inflight_messages_max: usize,
    /// Bytes of proposed but uncommitted entries a leader accepts; beyond
    /// it proposals are refused (backpressure).
    pub uncommitted_bytes_max: u64,
}

impl ReplicaConfig {
    /// Defaults for replica `id`: election after 10 ticks, heartbeat every
    /// 2, 1 MiB per message, 64 messages in flight, 64 MiB uncommitted.
    pub fn new(id: u64) -> ReplicaConfig {
        ReplicaConfig {
            id,
            election_ticks: 10,
            heartbeat_ticks: 2,
            message_bytes_max: 1 << 20,
            inflight_messages_max: 64,
            uncommitted_bytes_max: 64 << 20,
        }
    }
}

/// The answer to a proposal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proposal {
    /// Proposed at this Raft index; the ack comes when it commits.
    Proposed {
        /// Raft index.
        index: u64,
    },
    /// Already in the log and committed: the original ack.
    AlreadyCommitted(AppendAck),
    /// Already in the log, not yet committed: the ack comes when it commits.
    Pending,
    /// Older than the producer window the log remembers: appended long ago.
    Stale,
    /// This replica is not the leader; `leader` is the one it knows (0: none).
    NotLeader {
        /// Leader id hint.
        leader: u64,
    },
    /// Refused (sequence gap, reserved batch shape, or Raft dropped it
    /// because of backpressure or a leader transfer); retry later.
    Refused {
        /// Why.
        reason: &'static str,
    },
}

/// A committed producer batch, acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    /// The producer batch.
    pub producer: ProducerSeq,
    /// Offset of its first record.
    pub base_offset: u64,
    /// Offset of its last record.
    pub last_offset: u64,
}

/// One replica of a partition.
pub struct Replica {
    node: RawNode<ReplicaStorage>,
    /// Ready numbers whose entries are in the unsynced tail, with the
    /// messages to send once they are durable.
    unsynced: Vec<(u64, Vec<Message>)>,
    /// Ready numbers whose entries are written, their fdatasync pending
    /// ([`Replica::start_sync`]), with the messages that wait for it.
    in_flight: Vec<(u64, Vec<Message>)>,
    /// Producer batches this leader proposed and has not applied:
    /// (raft index, term).
    proposed: HashMap<ProducerSeq, (u64, u64)>,
    /// Producer batches someone waits for here.
    waiting: HashSet<ProducerSeq>,
    acks: Vec<Ack>,
    applied: u64,
    /// Offset after the last applied entry.
    applied_offset_end: u64,
    /// The producers of Raft's unstable entries, each entry decoded once.
    unstable: UnstableProducers,
}

/// The producer batches among Raft's unstable entries (held by Raft, not
/// yet handed to storage). A leader asks for every producer proposal, and
/// a turn can carry hundreds of them, so each entry is decoded once
/// instead of the whole unstable list per proposal.
///
/// Valid while Raft's unstable list starts at the same index and still
/// holds the last decoded entry with the same term: by Raft's log matching
/// property the entries before it are then the same too. Anything else
/// (entries handed to storage, a conflicting suffix replaced) rebuilds it.
#[derive(Debug, Default)]
struct UnstableProducers {
    offset: u64,
    decoded: usize,
    last_term: u64,
    producers: HashSet<ProducerSeq>,
}

impl UnstableProducers {
    fn holds(&mut self, unstable: &raft::Unstable, p: ProducerSeq) -> bool {
        let entries = &unstable.entries;
        let valid = self.offset == unstable.offset
            && self.decoded <= entries.len()
            && (self.decoded == 0 || entries[self.decoded - 1].term == self.last_term);
        if !valid {
            self.offset = unstable.offset;
            self.decoded = 0;
            self.producers.clear();
        }
        for e in &entries[self.decoded..] {
            if !e.get_data().is_empty()
                && let Some(q) = BatchPeek::of(e.get_data()).ok().and_then(|b| b.producer())
            {
                self.producers.insert(q);
            }
        }
        self.decoded = entries.len();
        self.last_term = entries.last().map_or(0, |e| e.term);
        self.producers.contains(&p)
    }
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("id", &self.node.raft.id)
            .field("term", &self.node.raft.term)
            .field("role", &self.node.raft.state)
            .field("applied", &self.applied)
            .finish_non_exhaustive()
    }
}

impl Replica {
    /// Starts a replica over `storage`. raft-rs draws each election timeout
    /// from the thread's RNG in `[min, max)`; the range is pinned to one
    /// value here so a seeded simulation stays deterministic, and callers
    /// spread elections by jittering their ticks instead.
    pub fn new(config: ReplicaConfig, storage: ReplicaStorage) -> Result<Replica, ClusterError> {
        let applied = raft::Storage::initial_state(&storage)?.hard_state.commit;
        let applied_offset_end = storage
            .log()
            .placement(applied)
            .map_or(0, |(_, last)| last + 1);
        let c = Config {
            id: config.id,
            election_tick: config.election_ticks,
            heartbeat_tick: config.heartbeat_ticks,
            min_election_tick: config.election_ticks,
            max_election_tick: config.election_ticks + 1,
            max_size_per_msg: config.message_bytes_max,
            max_inflight_msgs: config.inflight_messages_max,
            max_uncommitted_size: config.uncommitted_bytes_max,
            applied,
            check_quorum: true,
            pre_vote: true,
            ..Config::default()
        };
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let node = RawNode::new(&c, storage, &logger)?;
        Ok(Replica {
            node,
            unsynced: Vec::new(),
            in_flight: Vec::new(),
            proposed: HashMap::new(),
            waiting: HashSet::new(),
            acks: Vec::new(),
            applied,
            applied_offset_end,
            unstable: UnstableProducers::default(),
        })
    }

    /// This replica's id.
    pub fn id(&self) -> u64 {
        self.node.raft.id
    }
    /// Current term.
    pub fn term(&self) -> u64 {
        self.node.raft.term
    }
    /// Whether this replica is the leader of its term.
    pub fn is_leader(&self) -> bool {
        self.node.raft.state == StateRole::Leader
    }
    /// The leader this replica knows (0: none).
    pub fn leader(&self) -> u64 {
        self.node.raft.leader_id
    }
    /// Index of the last entry applied (committed and durable here).
    pub fn applied_index(&self) -> u64 {
        self.applied
    }
    /// Offset after the last applied entry: readers of a replicated
    /// partition stay below it.
    pub fn committed_offset(&self) -> u64 {
        self.applied_offset_end
    }
    /// This replica's Raft role.
    pub fn role(&self) -> StateRole {
        self.node.raft.state
    }
    /// Raft's commit index as this replica knows it.
    pub fn commit_index(&self) -> u64 {
        self.node.raft.raft_log.committed
    }
    /// Index of the last entry in this replica's log (durable or not).
    pub fn last_index(&self) -> u64 {
        self.node.raft.raft_log.last_index()
    }
    /// Each other voter's id and matched index as the leader tracks them
    /// (empty unless leader), for status and lag metrics.
    pub fn follower_matches(&self) -> Vec<(u64, u64)> {
        if !self.is_leader() {
            return Vec::new();
        }
        let me = self.id();
        let mut out: Vec<(u64, u64)> = self
            .node
            .raft
            .prs()
            .iter()
            .filter(|(id, _)| **id != me)
            .map(|(id, pr)| (*id, pr.matched))
            .collect();
        out.sort_unstable();
        out
    }
    /// Raft's view of each follower's progress (leader only), for
    /// diagnostics.
    pub fn progress_summary(&self) -> String {
        let mut out = String::new();
        for (id, pr) in self.node.raft.prs().iter() {
            out.push_str(&format!(
                "[{id}: matched {} next {} {:?} paused {} inflight_full {}] ",
                pr.matched,
                pr.next_idx,
                pr.state,
                pr.is_paused(),
                pr.ins.full()
            ));
        }
        out
    }

    /// The storage (log and state).
    pub fn storage(&self) -> &ReplicaStorage {
        self.node.store()
    }

    /// Tells Raft that a message to `peer` was lost (the transport's
    /// connection failed or timed out): Raft then probes that follower
    /// again instead of waiting for acks of appends it believes in flight.
    /// A transport must call this whenever it drops a message; raft-rs
    /// assumes otherwise reliable, ordered delivery between reports.
    pub fn report_unreachable(&mut self, peer: u64) {
        self.node.report_unreachable(peer);
    }

    /// Advances Raft's clock by one tick.
    pub fn tick(&mut self) {
        self.node.tick();
    }

    /// Hands in a message from a peer.
    pub fn step(&mut self, m: Message) -> Result<(), ClusterError> {
        match self.node.step(m) {
            // Messages of peers outside the voter set, or stale responses.
            Ok(()) | Err(raft::Error::StepPeerNotFound) | Err(raft::Error::StepLocalMsg) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Proposes a batch of `records`, stamped with the leader's clock
    /// `now_ms`. With a producer, a retry is recognised (see the module
    /// docs) instead of being appended twice.
    pub fn propose(
        &mut self,
        records: &[Record<'_>],
        producer: Option<ProducerSeq>,
        now_ms: u64,
    ) -> Result<Proposal, ClusterError> {
        let batch = dropline_log::encode_unplaced_batch(
            &AppendRequest { records, producer },
            false,
            now_ms,
        )?;
        self.propose_batch(batch)
    }

    /// [`Replica::propose`] of a batch encoded by the caller with
    /// [`dropline_log::encode_unplaced_batch`] (the node's ingest threads
    /// encode it, so the driver thread does not); its producer is the one
    /// in its header.
    pub fn propose_batch(&mut self, batch: Vec<u8>) -> Result<Proposal, ClusterError> {
        let producer = BatchPeek::of(&batch)
            .map_err(|source| ClusterError::BadEntry { index: 0, source })?
            .producer();
        if !self.is_leader() {
            return Ok(Proposal::NotLeader {
                leader: self.leader(),
            });
        }
        if let Some(p) = producer {
            if let Some(&(index, term)) = self.proposed.get(&p) {
                if self.node.raft.raft_log.term(index).ok() == Some(term) {
                    self.waiting.insert(p);
                    return Ok(Proposal::Pending);
                }
                self.proposed.remove(&p);
            }
            // Entries Raft holds but has not handed to storage yet (stepped
            // in from the previous leader, no `ready` since).
            if self.unstable_holds(p) {
                self.waiting.insert(p);
                return Ok(Proposal::Pending);
            }
            match self.node.store().log().check_producer(p) {
                ProducerCheck::New => {}
                ProducerCheck::Appended(ack) if ack.last_offset < self.applied_offset_end => {
                    return Ok(Proposal::AlreadyCommitted(AppendAck {
                        duplicate: true,
                        ..ack
                    }));
                }
                ProducerCheck::Appended(_) | ProducerCheck::InTail => {
                    self.waiting.insert(p);
                    return Ok(Proposal::Pending);
                }
                ProducerCheck::Stale => return Ok(Proposal::Stale),
                // The predecessor is proposed here and not applied yet: the
                // batch goes behind it in the same leader's log, so it can
                // only commit after it (a producer pipelines its batches).
                ProducerCheck::OutOfOrder if self.follows_uncommitted(p) => {}
                ProducerCheck::OutOfOrder => {
                    return Ok(Proposal::Refused {
                        reason: "producer sequence gap",
                    });
                }
            }
        }
        if is_reserved(&batch) {
            return Ok(Proposal::Refused {
                reason: "the batch has the shape of a Raft-internal entry",
            });
        }
        match self.node.propose(Vec::new(), batch) {
            Ok(()) => {}
            Err(raft::Error::ProposalDropped) => {
                return Ok(Proposal::Refused {
                    reason: "proposal dropped (uncommitted limit or leader transfer)",
                });
            }
            Err(e) => return Err(e.into()),
        }
        let index = self.node.raft.raft_log.last_index();
        if let Some(p) = producer {
            self.proposed.insert(p, (index, self.node.raft.term));
            self.waiting.insert(p);
        }
        Ok(Proposal::Proposed { index })
    }

    /// Whether `p`'s predecessor is in this replica's Raft log but not yet
    /// in its partition log: proposed by this leader in its current term,
    /// or stepped in from an earlier leader and not yet handed to storage.
    fn follows_uncommitted(&mut self, p: ProducerSeq) -> bool {
        if p.sequence == 0 {
            return false;
        }
        let prev = ProducerSeq {
            producer_id: p.producer_id,
            sequence: p.sequence - 1,
        };
        if let Some(&(index, term)) = self.proposed.get(&prev)
            && self.node.raft.raft_log.term(index).ok() == Some(term)
        {
            return true;
        }
        self.unstable_holds(prev)
    }

    /// Whether Raft holds a batch of `p` it has not handed to storage yet.
    fn unstable_holds(&mut self, p: ProducerSeq) -> bool {
        self.unstable.holds(&self.node.raft.raft_log.unstable, p)
    }

    /// Processes Raft's pending work: persists the hard state and cuts a
    /// conflicting suffix (durably), puts new entries in the log's unsynced
    /// tail, applies committed entries, and returns the messages that may
    /// be sent now. Call [`Replica::sync`] before the others can go out.
    pub fn ready(&mut self) -> Result<Vec<Message>, ClusterError> {
        let mut out = Vec::new();
        if !self.node.has_ready() {
            return Ok(out);
        }
        let mut rd = self.node.ready();
        out.extend(rd.take_messages());
        if !rd.snapshot().is_empty() {
            return Err(ClusterError::Unsupported {
                what: "Raft snapshots (no log compaction yet)",
            });
        }
        self.node.mut_store().persist(rd.hs(), rd.entries())?;
        let committed = rd.take_committed_entries();
        let after_sync = rd.take_persisted_messages();
        let number = rd.number();
        self.unsynced.push((number, after_sync));
        self.node.advance_append_async(rd);
        self.apply(&committed)?;
        Ok(out)
    }

    /// Whether entries or messages wait for [`Replica::sync`].
    pub fn needs_sync(&self) -> bool {
        !self.unsynced.is_empty()
    }

    /// Makes the unsynced tail durable (one fdatasync), tells Raft, and
    /// returns the messages that waited for it: [`Replica::start_sync`],
    /// a wait, then [`Replica::poll_sync`].
    pub fn sync(&mut self) -> Result<Vec<Message>, ClusterError> {
        self.start_sync()?;
        self.node.mut_store().log_mut().wait_durable()?;
        self.finish_sync()
    }

    /// Writes the unsynced tail to the partition, whose syncer runs the
    /// covering fdatasync meanwhile; the caller goes on (proposals, peer
    /// messages, more readies) and calls [`Replica::poll_sync`] when it
    /// completes. Returns the partition offset whose durability completes
    /// it (`None`: nothing pending), for a wake-up through
    /// [`dropline_log::Partition::data_ready`].
    pub fn start_sync(&mut self) -> Result<Option<u64>, ClusterError> {
        if !self.unsynced.is_empty() {
            self.node.mut_store().log_mut().start_sync()?;
            self.in_flight.append(&mut self.unsynced);
        }
        Ok(self.node.store().log().pending_offset())
    }

    /// Whether a write started by [`Replica::start_sync`] awaits its
    /// fdatasync.
    pub fn sync_pending(&self) -> bool {
        !self.in_flight.is_empty()
    }

    /// If the pending fdatasync completed: tells Raft and returns the
    /// messages that waited for it (and those of the `ready` that follows).
    /// Never blocks; empty while it runs.
    pub fn poll_sync(&mut self) -> Result<Vec<Message>, ClusterError> {
        if self.in_flight.is_empty() || !self.node.mut_store().log_mut().poll_durable()? {
            return Ok(Vec::new());
        }
        self.finish_sync()
    }

    /// Everything written is durable: every ready in flight is persisted.
    fn finish_sync(&mut self) -> Result<Vec<Message>, ClusterError> {
        let Some(&(number, _)) = self.in_flight.last() else {
            return Ok(Vec::new());
        };
        let mut out: Vec<Message> = self
            .in_flight
            .drain(..)
            .flat_map(|(_, msgs)| msgs)
            .collect();
        self.node.on_persist_ready(number);
        // Persisting may commit (the leader counts itself now) and free
        // messages; they come out of the next `ready`.
        out.extend(self.ready()?);
        Ok(out)
    }

    /// Acks of committed producer batches someone waits for here.
    pub fn take_acks(&mut self) -> Vec<Ack> {
        std::mem::take(&mut self.acks)
    }

    fn apply(&mut self, committed: &[raft::eraftpb::Entry]) -> Result<(), ClusterError> {
        let Some(last) = committed.last() else {
            return Ok(());
        };
        for e in committed {
            let log = self.node.store().log();
            let Some((base, last_offset)) = log.placement(e.index) else {
                return Err(ClusterError::Unavailable { index: e.index });
            };
            if (!self.waiting.is_empty() || !self.proposed.is_empty())
                && let Some(p) = log.producer_of(e.index)?
            {
                self.proposed.remove(&p);
                if self.waiting.remove(&p) {
                    self.acks.push(Ack {
                        producer: p,
                        base_offset: base,
                        last_offset,
                    });
                }
            }
            self.applied_offset_end = last_offset + 1;
        }
        self.applied = last.index;
        self.node.advance_apply_to(self.applied);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::eraftpb::Entry;

    fn entry(index: u64, term: u64, producer: Option<(u64, u64)>) -> Entry {
        let mut e = Entry {
            index,
            term,
            ..Entry::default()
        };
        if let Some((producer_id, sequence)) = producer {
            let data = dropline_log::encode_unplaced_batch(
                &AppendRequest {
                    records: &[Record {
                        key: b"k",
                        value: b"v",
                    }],
                    producer: Some(ProducerSeq {
                        producer_id,
                        sequence,
                    }),
                },
                false,
                1,
            )
            .expect("encodes");
            e.data = data.into();
        }
        e
    }

    fn seq(producer_id: u64, sequence: u64) -> ProducerSeq {
        ProducerSeq {
            producer_id,
            sequence,
        }
    }

    #[test]
    fn unstable_producers_follow_appends_replacements_and_persistence() {
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let mut u = raft::Unstable::new(5, logger);
        let mut c = UnstableProducers::default();
        assert!(!c.holds(&u, seq(1, 0)));

        // Appended behind what was decoded: only the new entries are read.
        u.truncate_and_append(&[entry(5, 1, None), entry(6, 1, Some((1, 0)))]);
        assert!(c.holds(&u, seq(1, 0)));
        u.truncate_and_append(&[entry(7, 1, Some((1, 1)))]);
        assert!(c.holds(&u, seq(1, 1)));
        assert_eq!(c.decoded, 3);

        // A new leader replaces the suffix from index 6: the old batches
        // are gone, the new one is there.
        u.truncate_and_append(&[entry(6, 2, Some((2, 0)))]);
        assert!(!c.holds(&u, seq(1, 0)));
        assert!(!c.holds(&u, seq(1, 1)));
        assert!(c.holds(&u, seq(2, 0)));

        // Replaced by an equally long suffix of another term: the last
        // decoded entry's term tells.
        u.truncate_and_append(&[entry(6, 3, Some((3, 0)))]);
        assert!(!c.holds(&u, seq(2, 0)));
        assert!(c.holds(&u, seq(3, 0)));

        // Handed to storage: nothing is unstable any more.
        u.stable_entries(6, 3);
        assert!(u.entries.is_empty());
        assert!(!c.holds(&u, seq(3, 0)));
    }
}
