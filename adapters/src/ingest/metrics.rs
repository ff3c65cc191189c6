//! Counters of the ingest server: plain atomics bumped on the hot path,
//! read as a consistent-enough [`IngestMetricsSnapshot`] by /metrics and
//! tests.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::wire::ErrorCode;

const CODES: usize = ErrorCode::MAX as usize + 1;

/// Live counters, shared by every connection task.
#[derive(Debug)]
pub struct IngestMetrics {
    pub(crate) connections_accepted: AtomicU64,
    pub(crate) connections_refused: AtomicU64,
    pub(crate) connections_open: AtomicU64,
    pub(crate) sessions_authenticated: AtomicU64,
    pub(crate) batches_acked: AtomicU64,
    pub(crate) events_acked: AtomicU64,
    pub(crate) duplicate_batches: AtomicU64,
    pub(crate) bytes_received: AtomicU64,
    pub(crate) dead_letters: AtomicU64,
    pub(crate) dead_letter_failures: AtomicU64,
    pub(crate) follow_streams_opened: AtomicU64,
    pub(crate) follow_streams_open: AtomicU64,
    pub(crate) follow_entries_sent: AtomicU64,
    pub(crate) follow_orders_skipped: AtomicU64,
    errors: [AtomicU64; CODES],
}

impl Default for IngestMetrics {
    fn default() -> Self {
        IngestMetrics {
            connections_accepted: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
            connections_open: AtomicU64::new(0),
            sessions_authenticated: AtomicU64::new(0),
            batches_acked: AtomicU64::new(0),
            events_acked: AtomicU64::new(0),
            duplicate_batches: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
            dead_letters: AtomicU64::new(0),
            dead_letter_failures: AtomicU64::new(0),
            follow_streams_opened: AtomicU64::new(0),
            follow_streams_open: AtomicU64::new(0),
            follow_entries_sent: AtomicU64::new(0),
            follow_orders_skipped: AtomicU64::new(0),
            errors: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

pub(crate) fn bump(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl IngestMetrics {
    pub(crate) fn error(&self, code: ErrorCode) {
        if let Some(c) = self.errors.get(usize::from(code.as_u16())) {
            bump(c, 1);
        }
    }

    /// A copy of every counter.
    pub fn snapshot(&self) -> IngestMetricsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        IngestMetricsSnapshot {
            connections_accepted: get(&self.connections_accepted),
            connections_refused: get(&self.connections_refused),
            connections_open: get(&self.connections_open),
            sessions_authenticated: get(&self.sessions_authenticated),
            batches_acked: get(&self.batches_acked),
            events_acked: get(&self.events_acked),
            duplicate_batches: get(&self.duplicate_batches),
            bytes_received: get(&self.bytes_received),
            dead_letters: get(&self.dead_letters),
            dead_letter_failures: get(&self.dead_letter_failures),
            follow_streams_opened: get(&self.follow_streams_opened),
            follow_streams_open: get(&self.follow_streams_open),
            follow_entries_sent: get(&self.follow_entries_sent),
            follow_orders_skipped: get(&self.follow_orders_skipped),
            errors: ErrorCode::ALL
                .into_iter()
                .map(|code| (code, get(&self.errors[usize::from(code.as_u16())])))
                .filter(|(_, n)| *n > 0)
                .collect(),
        }
    }
}

/// A point-in-time copy of [`IngestMetrics`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestMetricsSnapshot {
    /// QUIC connections accepted.
    pub connections_accepted: u64,
    /// Connection attempts refused (over `connections_max`, shutting down).
    pub connections_refused: u64,
    /// Connections currently open.
    pub connections_open: u64,
    /// Hellos accepted.
    pub sessions_authenticated: u64,
    /// Batches acknowledged (durable), duplicates included.
    pub batches_acked: u64,
    /// Events in acknowledged batches, duplicates excluded.
    pub events_acked: u64,
    /// Retries answered with original offsets.
    pub duplicate_batches: u64,
    /// Frame bytes received on batch streams.
    pub bytes_received: u64,
    /// Rejected inputs kept as dead letters.
    pub dead_letters: u64,
    /// Dead letters the sink failed to keep.
    pub dead_letter_failures: u64,
    /// Follow streams accepted (orders feed).
    pub follow_streams_opened: u64,
    /// Follow streams open now.
    pub follow_streams_open: u64,
    /// Order entries sent to adapters.
    pub follow_entries_sent: u64,
    /// Order records skipped by the feed (undecodable, or a tracking
    /// number longer than the wire allows).
    pub follow_orders_skipped: u64,
    /// Error replies sent, per code (codes with a zero count omitted).
    pub errors: Vec<(ErrorCode, u64)>,
}

impl IngestMetricsSnapshot {
    /// Error replies sent with `code`.
    pub fn errors_with(&self, code: ErrorCode) -> u64 {
        self.errors
            .iter()
            .find(|(c, _)| *c == code)
            .map_or(0, |(_, n)| *n)
    }
}
