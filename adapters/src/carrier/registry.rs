//! The shipments this adapter tracks, with the scans it has already
//! handed on (so that a scan seen again in a poll answer or a repeated
//! webhook is not sent twice).
//!
//! Why a scan fingerprint and not the whole event: the same scan arrives
//! through polling and webhooks, with or without a postal code; the
//! carrier, tracking number, instant and raw code identify it.

use std::collections::HashMap;

use dropline_operators::model::{Carrier, CarrierEvent, Status};
use sha2::{Digest, Sha256};

/// Most scan fingerprints kept per shipment (a parcel has 10 to 20 scans;
/// beyond this the oldest are forgotten).
pub const SEEN_PER_SHIPMENT_MAX: usize = 512;
/// Longest tracking number accepted, in bytes.
pub const TRACKING_NUMBER_BYTES_MAX: usize = 64;

/// The identity of one scan.
pub fn fingerprint(
    carrier: Carrier,
    tracking_number: &str,
    occurred_at_ms: i64,
    raw_code: &str,
) -> u64 {
    let mut h = Sha256::new();
    h.update([carrier as u8]);
    h.update(tracking_number.as_bytes());
    h.update([0]);
    h.update(occurred_at_ms.to_le_bytes());
    h.update(raw_code.as_bytes());
    let d = h.finalize();
    u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

/// [`fingerprint`] of an event.
pub fn event_fingerprint(e: &CarrierEvent) -> u64 {
    fingerprint(e.carrier, &e.tracking_number, e.occurred_at_ms, &e.raw_code)
}

/// One tracked shipment.
#[derive(Debug, Clone)]
pub(crate) struct Shipment {
    pub(crate) carrier: Carrier,
    pub(crate) drop: bool,
    /// Latest scan by instant: (occurred_at_ms, status).
    pub(crate) latest: Option<(i64, Status)>,
    /// Adapter-clock time a terminal status was first seen.
    pub(crate) finished_at_ms: Option<i64>,
    /// Fingerprints of scans handed on (or being handed on).
    pub(crate) seen: Vec<u64>,
    /// No longer polled.
    pub(crate) retired: bool,
    /// Bumped at every reschedule; older queue entries are stale.
    pub(crate) generation: u64,
}

impl Shipment {
    pub(crate) fn new(carrier: Carrier, drop: bool) -> Shipment {
        Shipment {
            carrier,
            drop,
            latest: None,
            finished_at_ms: None,
            seen: Vec::new(),
            retired: false,
            generation: 0,
        }
    }

    pub(crate) fn has_seen(&self, fp: u64) -> bool {
        self.seen.contains(&fp)
    }

    pub(crate) fn mark_seen(&mut self, fp: u64) {
        if !self.seen.contains(&fp) {
            if self.seen.len() >= SEEN_PER_SHIPMENT_MAX {
                self.seen.remove(0);
            }
            self.seen.push(fp);
        }
    }

    pub(crate) fn unmark(&mut self, fp: u64) {
        self.seen.retain(|s| *s != fp);
    }

    /// Records a scan's status; returns true when it made the shipment
    /// finished.
    pub(crate) fn observe(&mut self, occurred_at_ms: i64, status: Status, now_ms: i64) -> bool {
        if self.latest.is_none_or(|(t, _)| occurred_at_ms >= t) {
            self.latest = Some((occurred_at_ms, status));
        }
        let finished = self.latest.is_some_and(|(_, s)| s.is_terminal());
        if finished && self.finished_at_ms.is_none() {
            self.finished_at_ms = Some(now_ms);
            return true;
        }
        if !finished {
            self.finished_at_ms = None;
        }
        false
    }

    /// Whether this shipment matters now: out for delivery, an open
    /// exception or failed attempt, or part of a drop.
    pub(crate) fn urgent(&self) -> bool {
        self.drop
            || matches!(
                self.latest.map(|(_, s)| s),
                Some(Status::OutForDelivery | Status::Exception | Status::DeliveryAttempted)
            )
    }

    /// Not finished and not retired.
    pub(crate) fn active(&self) -> bool {
        !self.retired && self.finished_at_ms.is_none()
    }
}

/// Every tracked shipment by tracking number.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    pub(crate) shipments: HashMap<String, Shipment>,
}

impl Registry {
    /// Active shipments of `carrier`.
    pub(crate) fn active_count(&self, carrier: Carrier) -> usize {
        self.shipments
            .values()
            .filter(|s| s.carrier == carrier && s.active())
            .count()
    }
}
