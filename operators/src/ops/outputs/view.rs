//! Shipment view changes: the tracking API's current state per parcel.
//!
//! Each change carries the whole compact state (status, promised window vs
//! estimate, staleness, open exception). The last event's location text is
//! carried on scan-driven changes only (`last_event.location`), because the
//! state does not keep location text per shipment (see the state budget in
//! `ops::shipment`); a consumer keeps the last location it saw, or reads the
//! event at `last_event.offset`.

use serde::{Deserialize, Serialize};

use crate::model::{Carrier, Status, SubStatus};
use crate::ops::exceptions::{ExceptionClass, Remediation};
use crate::ops::text::{InlineStr, TrackingNumber};
use crate::ops::wire::{Reader, WireError, Writer, codes};

use super::read_opt_i64;

/// Version byte of the view encoding.
pub const VIEW_FORMAT_V1: u8 = 1;

/// Longest encoded view change, bytes.
const VIEW_BYTES_MAX: usize = 1 + 41 + 1 + 8 + 3 + (1 + 16 + 1 + 41 + 9 + 13 + 5) + 27 + 2 + 12;

/// What caused a view change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum ViewChange {
    /// A scan was accepted.
    Scan = 1,
    /// A debounced scan was released when its window closed.
    Released = 2,
    /// The order arrived (promised window known).
    OrderLinked = 3,
    /// No scan within the SLA: the shipment is stale.
    Stale = 4,
    /// An exception stayed unresolved past the SLA and was escalated.
    Escalated = 5,
    /// The shipment left the state (retired after delivery, or evicted).
    Removed = 6,
}

impl ViewChange {
    fn from_code(v: u8) -> Option<ViewChange> {
        [
            ViewChange::Scan,
            ViewChange::Released,
            ViewChange::OrderLinked,
            ViewChange::Stale,
            ViewChange::Escalated,
            ViewChange::Removed,
        ]
        .into_iter()
        .find(|c| *c as u8 == v)
    }
}

/// Location text of a scan, truncated to display sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LocationSummary {
    /// City or facility (at most 40 bytes).
    pub city: InlineStr<40>,
    /// Region code (at most 8 bytes).
    pub region: InlineStr<8>,
    /// Postal code (at most 12 bytes).
    pub postal_code: InlineStr<12>,
    /// ISO country (at most 4 bytes).
    pub country: InlineStr<4>,
}

/// The latest accepted scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastEvent {
    /// Its offset in `carrier-events`.
    pub offset: u64,
    /// When it happened (carrier time), ms since the epoch.
    pub occurred_at_ms: i64,
    /// Where, on scan-driven changes.
    pub location: Option<LocationSummary>,
}

/// An exception that has not been resolved by later progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenException {
    /// Its class.
    pub class: ExceptionClass,
    /// The remediation offered.
    pub remediation: Remediation,
    /// Log time it opened.
    pub since_log_ms: u64,
    /// Whether it was escalated.
    pub escalated: bool,
}

/// One change of a shipment's view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipmentView {
    /// The parcel.
    pub tracking_number: TrackingNumber,
    /// What changed.
    pub change: ViewChange,
    /// Log time of the change.
    pub updated_log_ms: u64,
    /// The carrier, once known.
    pub carrier: Option<Carrier>,
    /// Current milestone (`None` until the first scan).
    pub status: Option<Status>,
    /// Its sub-status.
    pub sub_status: SubStatus,
    /// The latest accepted scan.
    pub last_event: Option<LastEvent>,
    /// Promised delivery window start (from the order).
    pub promised_from_ms: Option<i64>,
    /// Promised delivery window end (from the order).
    pub promised_to_ms: Option<i64>,
    /// Estimated delivery (see `ops::view` for the estimate).
    pub estimate_ms: Option<i64>,
    /// The estimate is past the promised window.
    pub late: bool,
    /// No scan within the stale SLA.
    pub stale: bool,
    /// The open exception, if any.
    pub open_exception: Option<OpenException>,
}

impl ShipmentView {
    /// Appends the binary encoding.
    #[inline]
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut w = Writer::reserving(out, VIEW_BYTES_MAX);
        w.u8(VIEW_FORMAT_V1).inline(&self.tracking_number);
        // Fixed-width runs are assembled in arrays and appended whole.
        let mut mid = [0u8; 30];
        mid[0] = self.change as u8;
        mid[1..9].copy_from_slice(&self.updated_log_ms.to_le_bytes());
        mid[9] = self.carrier.map_or(0, |c| c as u8);
        mid[10] = self.status.map_or(0, |s| s as u8);
        mid[11] = self.sub_status as u8;
        let location = match &self.last_event {
            None => {
                w.bytes(&mid[..13]);
                None
            }
            Some(e) => {
                mid[12] = 1;
                mid[13..21].copy_from_slice(&e.offset.to_le_bytes());
                mid[21..29].copy_from_slice(&e.occurred_at_ms.to_le_bytes());
                mid[29] = u8::from(e.location.is_some());
                w.bytes(&mid);
                e.location.as_ref()
            }
        };
        if let Some(l) = location {
            w.inline(&l.city)
                .inline(&l.region)
                .inline(&l.postal_code)
                .inline(&l.country);
        }
        let mut tail = [0u8; 41];
        let mut n = 0;
        for v in [self.promised_from_ms, self.promised_to_ms, self.estimate_ms] {
            if let Some(v) = v {
                tail[n] = 1;
                tail[n + 1..n + 9].copy_from_slice(&v.to_le_bytes());
                n += 9;
            } else {
                n += 1;
            }
        }
        tail[n] = u8::from(self.late);
        tail[n + 1] = u8::from(self.stale);
        n += 2;
        if let Some(x) = &self.open_exception {
            tail[n] = 1;
            tail[n + 1] = x.class as u8;
            tail[n + 2] = x.remediation as u8;
            tail[n + 3..n + 11].copy_from_slice(&x.since_log_ms.to_le_bytes());
            tail[n + 11] = u8::from(x.escalated);
            n += 12;
        } else {
            n += 1;
        }
        w.bytes(&tail[..n]);
    }

    /// Decodes [`ShipmentView::encode`]'s output.
    pub fn decode(bytes: &[u8]) -> Result<ShipmentView, WireError> {
        let mut r = Reader::new(bytes);
        r.version("view", VIEW_FORMAT_V1)?;
        let tracking_number = r.inline("view.tracking_number")?;
        let change = r.tag("view.change", ViewChange::from_code)?;
        let updated_log_ms = r.u64()?;
        let carrier = r.tag("view.carrier", |v| {
            if v == 0 {
                Some(None)
            } else {
                codes::carrier(v).map(Some)
            }
        })?;
        let status = r.tag("view.status", |v| {
            if v == 0 {
                Some(None)
            } else {
                codes::status(v).map(Some)
            }
        })?;
        let sub_status = r.tag("view.sub_status", codes::sub_status)?;
        let last_event = if r.bool("view.last_event")? {
            let offset = r.u64()?;
            let occurred_at_ms = r.i64()?;
            let location = if r.bool("view.location")? {
                Some(LocationSummary {
                    city: r.inline("view.city")?,
                    region: r.inline("view.region")?,
                    postal_code: r.inline("view.postal_code")?,
                    country: r.inline("view.country")?,
                })
            } else {
                None
            };
            Some(LastEvent {
                offset,
                occurred_at_ms,
                location,
            })
        } else {
            None
        };
        let promised_from_ms = read_opt_i64(&mut r, "view.promised_from")?;
        let promised_to_ms = read_opt_i64(&mut r, "view.promised_to")?;
        let estimate_ms = read_opt_i64(&mut r, "view.estimate")?;
        let late = r.bool("view.late")?;
        let stale = r.bool("view.stale")?;
        let open_exception = if r.bool("view.open_exception")? {
            Some(OpenException {
                class: r.tag("view.exception_class", ExceptionClass::from_code)?,
                remediation: r.tag("view.remediation", Remediation::from_code)?,
                since_log_ms: r.u64()?,
                escalated: r.bool("view.escalated")?,
            })
        } else {
            None
        };
        r.finish()?;
        Ok(ShipmentView {
            tracking_number,
            change,
            updated_log_ms,
            carrier,
            status,
            sub_status,
            last_event,
            promised_from_ms,
            promised_to_ms,
            estimate_ms,
            late,
            stale,
            open_exception,
        })
    }
}
