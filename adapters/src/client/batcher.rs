//! Per-partition batch assembly: events are encoded straight into the
//! frame of their partition's open batch, which is sealed when it reaches
//! `batch_records_max` or `batch_bytes_max`, or when its linger time runs
//! out.
//!
//! Without a spool, a batch whose linger ran out while its partition's
//! window to the node is full stays open until the window has room (or it
//! fills): sealing it could not send it any sooner, and under load it
//! keeps growing instead of queueing as one small batch among many, each
//! costing the node an append, a replication round and an ack. With a
//! spool the linger always seals, because sealing is what makes the
//! events durable in the spool.
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

    /// Seals every open batch whose linger time has run out, except on
    /// partitions `window_full` names (all of them with `force`).
    pub(crate) fn seal_due(
        &mut self,
        now: Instant,
        force: bool,
        window_full: &dyn Fn(u32) -> bool,
    ) -> Vec<Sealed> {
        let due: Vec<u32> = self
            .open
            .iter()
            .enumerate()
            .filter(|(p, o)| {
                o.first_at.is_some_and(|t| {
                    force || (now >= t + self.linger && !self.held(*p as u32, window_full))
                })
            })
            .map(|(p, _)| p as u32)
            .collect();
        due.into_iter().filter_map(|p| self.seal(p)).collect()
    }

    /// When the oldest open batch's linger runs out, among the partitions
    /// whose batches are not held for a full window.
    pub(crate) fn next_deadline(&self, window_full: &dyn Fn(u32) -> bool) -> Option<Instant> {
        self.open
            .iter()
            .enumerate()
            .filter(|(p, _)| !self.held(*p as u32, window_full))
            .filter_map(|(_, o)| o.first_at)
            .min()
            .map(|t| t + self.linger)
    }

    /// Whether `partition`'s open batch stays open past its linger (module
    /// docs): never in spool mode.
    fn held(&self, partition: u32, window_full: &dyn Fn(u32) -> bool) -> bool {
        !self.spool_mode && window_full(partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batcher(spool_mode: bool) -> Batcher {
        Batcher::new(
            2,
            vec![0, 0],
            7,
            1_000,
            1 << 20,
            Duration::from_millis(5),
            spool_mode,
        )
    }

    fn push(b: &mut Batcher, partition: u32, now: Instant) -> Pushed {
        b.push(partition, b"key", 3, |v| v.extend_from_slice(b"val"), now)
    }

    #[test]
    fn a_full_window_keeps_the_batch_open_past_its_linger() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_millis(6);
        let mut b = batcher(false);
        let _ = push(&mut b, 0, t0);
        let _ = push(&mut b, 1, t0);
        let full = |p: u32| p == 0;
        // Partition 0's window is full: its batch is not due and is not
        // sealed; partition 1's is.
        assert_eq!(b.next_deadline(&full), Some(t0 + Duration::from_millis(5)));
        let sealed = b.seal_due(later, false, &full);
        assert_eq!(sealed.iter().map(|s| s.partition).collect::<Vec<_>>(), [1]);
        assert_eq!(b.next_deadline(&full), None);
        // It keeps taking events, into the same batch.
        let _ = push(&mut b, 0, later);
        // Room again: sealed at once, both events in one batch.
        let sealed = b.seal_due(later, false, &|_| false);
        assert_eq!(sealed.len(), 1);
        assert_eq!((sealed[0].partition, sealed[0].records), (0, 2));
        // Closing seals whatever is open, held or not.
        let _ = push(&mut b, 0, later);
        assert_eq!(b.seal_due(later, true, &full).len(), 1);
    }

    #[test]
    fn with_a_spool_the_linger_always_seals() {
        let t0 = Instant::now();
        let mut b = batcher(true);
        let _ = push(&mut b, 0, t0);
        let full = |_: u32| true;
        assert_eq!(b.next_deadline(&full), Some(t0 + Duration::from_millis(5)));
        let sealed = b.seal_due(t0 + Duration::from_millis(6), false, &full);
        assert_eq!(sealed.len(), 1);
    }
}
