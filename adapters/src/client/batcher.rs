//! Per-partition batch assembly: events are encoded straight into the
//! frame of their partition's open batch, which is sealed when it reaches
//! `batch_records_max` or `batch_bytes_max`, or when its linger time runs
//! out.
//!
//! Why encode into the frame: the event is written once, into the bytes
//! that go on the wire; sealing a batch fills in its header and CRC and
//! moves the buffer out without copying.

use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::watch;

use crate::wire::{BatchBuilder, RECORD_HEADER_BYTES};

/// What a `send` in spool mode waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SpoolState {
    /// The batch is still open or being written.
    Pending,
    /// The batch is durable in the spool.
    Spooled,
    /// Writing the spool failed; the events were not taken.
    Failed,
}

/// A sealed batch on its way to the node.
#[derive(Debug)]
pub(crate) struct Sealed {
    pub(crate) partition: u32,
    pub(crate) sequence: u64,
    pub(crate) frame: Bytes,
    pub(crate) records: u32,
    /// Bytes counted against `buffered_bytes_max`.
    pub(crate) held_bytes: u64,
    pub(crate) sealed_at: Instant,
    /// Spool mode: the spool offset after the batch's last record.
    pub(crate) spool_next_offset: Option<u64>,
    /// Spool mode: told when the batch is durable in the spool.
    pub(crate) spooled: Option<watch::Sender<SpoolState>>,
}

struct Open {
    builder: BatchBuilder,
    first_at: Option<Instant>,
    held_bytes: u64,
    spooled: Option<watch::Sender<SpoolState>>,
}

/// All open batches of one client.
pub(crate) struct Batcher {
    open: Vec<Open>,
    next_sequence: Vec<u64>,
    producer_id: u64,
    batch_records_max: u32,
    batch_bytes_max: usize,
    linger: Duration,
    spool_mode: bool,
}

/// What `push` did.
pub(crate) struct Pushed {
    /// Batches sealed by this push (the previous open batch if the event did
    /// not fit, and/or the batch the event filled).
    pub(crate) sealed: Vec<Sealed>,
    /// The open batch went from empty to non-empty (the linger timer must
    /// be re-armed).
    pub(crate) started: bool,
    /// Spool mode: resolves when the event's batch is spooled.
    pub(crate) spooled: Option<watch::Receiver<SpoolState>>,
}

/// Record size counted against the buffer bound.
pub(crate) fn held_bytes_of(key: usize, value: usize) -> u64 {
    (RECORD_HEADER_BYTES + key + value) as u64
}

impl Batcher {
    pub(crate) fn new(
        partitions: u32,
        next_sequence: Vec<u64>,
        producer_id: u64,
        batch_records_max: u32,
        batch_bytes_max: usize,
        linger: Duration,
        spool_mode: bool,
    ) -> Batcher {
        let open = (0..partitions)
            .map(|_| Open {
                builder: BatchBuilder::new(),
                first_at: None,
                held_bytes: 0,
                spooled: None,
            })
            .collect();
        Batcher {
            open,
            next_sequence,
            producer_id,
            batch_records_max,
            batch_bytes_max,
            linger,
            spool_mode,
        }
    }

    fn seal(&mut self, partition: u32) -> Option<Sealed> {
        let p = partition as usize;
        let open = self.open.get_mut(p)?;
        if open.builder.records() == 0 {
            return None;
        }
        let sequence = self.next_sequence[p];
        self.next_sequence[p] += 1;
        let records = open.builder.records();
        let hint = open.builder.frame_bytes();
        let frame = open
            .builder
            .finish(self.producer_id, sequence, partition, hint);
        let held_bytes = std::mem::take(&mut open.held_bytes);
        open.first_at = None;
        Some(Sealed {
            partition,
            sequence,
            frame: Bytes::from(frame),
            records,
            held_bytes,
            sealed_at: Instant::now(),
            spool_next_offset: None,
            spooled: open.spooled.take(),
        })
    }

    /// Adds one record to `partition`'s open batch; `write_value` writes
    /// the value bytes. The caller has checked key length and record size.
    pub(crate) fn push(
        &mut self,
        partition: u32,
        key: &[u8],
        value_bytes: usize,
        write_value: impl FnOnce(&mut Vec<u8>),
        now: Instant,
    ) -> Pushed {
        let mut sealed = Vec::new();
        let p = partition as usize;
        if !self.open[p]
            .builder
            .fits(key.len(), value_bytes, self.batch_bytes_max)
        {
            sealed.extend(self.seal(partition));
        }
        let open = &mut self.open[p];
        let started = open.builder.records() == 0;
        if started {
            open.first_at = Some(now);
        }
        // Key length was checked by the caller, so this cannot fail.
        let _ = open.builder.push_with(key, write_value);
        open.held_bytes += held_bytes_of(key.len(), value_bytes);
        let spooled = if self.spool_mode {
            Some(
                open.spooled
                    .get_or_insert_with(|| watch::channel(SpoolState::Pending).0)
                    .subscribe(),
            )
        } else {
            None
        };
        if open.builder.records() >= self.batch_records_max {
            sealed.extend(self.seal(partition));
        }
        Pushed {
            sealed,
            started,
            spooled,
        }
    }

    /// Seals every open batch whose linger time has run out (all of them
    /// with `force`).
    pub(crate) fn seal_due(&mut self, now: Instant, force: bool) -> Vec<Sealed> {
        let due: Vec<u32> = self
            .open
            .iter()
            .enumerate()
            .filter(|(_, o)| o.first_at.is_some_and(|t| force || now >= t + self.linger))
            .map(|(p, _)| p as u32)
            .collect();
        due.into_iter().filter_map(|p| self.seal(p)).collect()
    }

    /// When the oldest open batch's linger runs out.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.open
            .iter()
            .filter_map(|o| o.first_at)
            .min()
            .map(|t| t + self.linger)
    }
}
