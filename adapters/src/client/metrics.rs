//! Counters of the ingest client.

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters of one client.
#[derive(Debug, Default)]
pub struct ClientMetrics {
    pub(crate) events_accepted: AtomicU64,
    pub(crate) events_acked: AtomicU64,
    pub(crate) events_rejected: AtomicU64,
    pub(crate) batches_sent: AtomicU64,
    pub(crate) batches_acked: AtomicU64,
    pub(crate) batches_duplicate: AtomicU64,
    pub(crate) batches_rejected: AtomicU64,
    pub(crate) batches_resent: AtomicU64,
    pub(crate) connects: AtomicU64,
    pub(crate) connect_failures: AtomicU64,
    pub(crate) connections_lost: AtomicU64,
    pub(crate) leader_redirects: AtomicU64,
    pub(crate) spool_full_refusals: AtomicU64,
    pub(crate) held_bytes: AtomicU64,
    pub(crate) held_events: AtomicU64,
}

pub(crate) fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

pub(crate) fn sub(c: &AtomicU64, n: u64) {
    c.fetch_sub(n, Ordering::Relaxed);
}

impl ClientMetrics {
    /// A copy of every counter.
    pub fn snapshot(&self) -> ClientMetricsSnapshot {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ClientMetricsSnapshot {
            events_accepted: g(&self.events_accepted),
            events_acked: g(&self.events_acked),
            events_rejected: g(&self.events_rejected),
            batches_sent: g(&self.batches_sent),
            batches_acked: g(&self.batches_acked),
            batches_duplicate: g(&self.batches_duplicate),
            batches_rejected: g(&self.batches_rejected),
            batches_resent: g(&self.batches_resent),
            connects: g(&self.connects),
            connect_failures: g(&self.connect_failures),
            connections_lost: g(&self.connections_lost),
            leader_redirects: g(&self.leader_redirects),
            spool_full_refusals: g(&self.spool_full_refusals),
            spool_depth_bytes: g(&self.held_bytes),
            spool_depth_events: g(&self.held_events),
        }
    }
}

/// A point-in-time copy of [`ClientMetrics`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientMetricsSnapshot {
    /// Events taken by `send`/`try_send`.
    pub events_accepted: u64,
    /// Events in batches the node acknowledged.
    pub events_acked: u64,
    /// Events in batches the node rejected for good (kept in its dead letters).
    pub events_rejected: u64,
    /// Batch transmissions, resends included.
    pub batches_sent: u64,
    /// Batches acknowledged.
    pub batches_acked: u64,
    /// Acks that were answers to retries (original offsets).
    pub batches_duplicate: u64,
    /// Batches rejected for good.
    pub batches_rejected: u64,
    /// Batches sent again after a lost connection.
    pub batches_resent: u64,
    /// Successful connections (handshake and Hello).
    pub connects: u64,
    /// Failed connection attempts.
    pub connect_failures: u64,
    /// Connections lost or dropped after an error.
    pub connections_lost: u64,
    /// `not_leader` answers followed (the partition moved to the hinted
    /// leader, or to the next node when there was no hint).
    pub leader_redirects: u64,
    /// Events refused because the spool or buffer was full.
    pub spool_full_refusals: u64,
    /// Bytes of events held until acknowledged (spool depth).
    pub spool_depth_bytes: u64,
    /// Events held until acknowledged (spool depth).
    pub spool_depth_events: u64,
}
