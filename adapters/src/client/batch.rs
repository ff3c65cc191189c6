//! Many events handed over in one call ([`IngestClient::try_send_batch`]):
//! what a webhook receiver uses for the scans of one body.
//!
//! Same contract as calling `try_send` for each event in order, each
//! outcome on its own (an event refused for room does not stop the next
//! ones), but the events are encoded first, the batcher is locked once for
//! all of them, and the call waits once per spool batch they landed in
//! instead of once per event.

use std::time::Instant;

use dropline_operators::model::{CarrierEvent, partition_for};
use tokio::sync::watch;

use super::batcher::{SpoolState, held_bytes_of};
use super::metrics::add;
use super::{ClientError, IngestClient, lock};
use crate::wire::{BATCH_BODY_FIXED_BYTES, KEY_BYTES_MAX};

/// Where an event of the batch stands before the spool waits.
enum Taken {
    /// Refused before it was taken.
    Refused(ClientError),
    /// Taken; without a spool, done.
    Done,
    /// Taken; done once this spool batch (index into the waits) is durable.
    Waits(usize),
}

impl IngestClient {
    /// Takes `events` in order, refusing each one that does not fit with
    /// [`ClientError::SpoolFull`] at once (as
    /// [`IngestClient::try_send`] does). One outcome per event; with a
    /// spool, an `Ok` event is durable in it.
    pub async fn try_send_batch(&self, events: &[CarrierEvent]) -> Vec<Result<(), ClientError>> {
        let inner = &self.inner;
        let mut values = Vec::with_capacity(events.len() * 192);
        let mut ends = Vec::with_capacity(events.len());
        for e in events {
            e.encode_into(&mut values);
            ends.push(values.len());
        }
        let batch_fixed = BATCH_BODY_FIXED_BYTES as u64;
        let mut taken = Vec::with_capacity(events.len());
        let mut waits: Vec<watch::Receiver<SpoolState>> = Vec::new();
        let mut sealed = Vec::new();
        let mut started = false;
        let (mut held_total, mut events_taken) = (0u64, 0u64);
        {
            let now = Instant::now();
            let mut batcher = lock(&inner.batcher);
            let mut start = 0;
            for (e, &end) in events.iter().zip(&ends) {
                let value = &values[start..end];
                start = end;
                let key = e.tracking_number.as_bytes();
                if key.is_empty() || key.len() > KEY_BYTES_MAX {
                    taken.push(Taken::Refused(ClientError::InvalidKey { bytes: key.len() }));
                    continue;
                }
                let held = held_bytes_of(key.len(), value.len());
                if held + batch_fixed > inner.batch_bytes_max as u64 {
                    taken.push(Taken::Refused(ClientError::EventTooLarge {
                        bytes: held as usize,
                        bytes_max: inner.batch_bytes_max - BATCH_BODY_FIXED_BYTES,
                    }));
                    continue;
                }
                let permits = u32::try_from(held).unwrap_or(u32::MAX);
                match inner.room.try_acquire_many(permits) {
                    Ok(p) => p.forget(),
                    Err(tokio::sync::TryAcquireError::Closed) => {
                        taken.push(Taken::Refused(ClientError::Closed));
                        continue;
                    }
                    Err(tokio::sync::TryAcquireError::NoPermits) => {
                        add(&inner.metrics.spool_full_refusals, 1);
                        taken.push(Taken::Refused(ClientError::SpoolFull {
                            bytes: inner
                                .metrics
                                .held_bytes
                                .load(std::sync::atomic::Ordering::Relaxed)
                                + held_total,
                            bytes_max: inner.room_max,
                        }));
                        continue;
                    }
                }
                let partition = partition_for(key, inner.partitions);
                let pushed = batcher.push(
                    partition,
                    key,
                    value.len(),
                    |buf| buf.extend_from_slice(value),
                    now,
                );
                held_total += held;
                events_taken += 1;
                sealed.extend(pushed.sealed);
                started |= pushed.started;
                taken.push(match pushed.spooled {
                    None => Taken::Done,
                    Some(rx) => match waits.iter().position(|w| w.same_channel(&rx)) {
                        Some(i) => Taken::Waits(i),
                        None => {
                            waits.push(rx);
                            Taken::Waits(waits.len() - 1)
                        }
                    },
                });
            }
            add(&inner.metrics.held_bytes, held_total);
            add(&inner.metrics.held_events, events_taken);
            add(&inner.metrics.events_accepted, events_taken);
        }
        for s in sealed {
            inner.forward(s);
        }
        if started {
            inner.linger_wake.notify_one();
        }
        let mut spooled = Vec::with_capacity(waits.len());
        for mut rx in waits {
            let state = rx
                .wait_for(|s| *s != SpoolState::Pending)
                .await
                .map(|s| *s)
                .unwrap_or(SpoolState::Failed);
            spooled.push(state == SpoolState::Spooled);
        }
        taken
            .into_iter()
            .map(|t| match t {
                Taken::Refused(e) => Err(e),
                Taken::Done => Ok(()),
                Taken::Waits(i) if spooled.get(i).copied().unwrap_or(false) => Ok(()),
                Taken::Waits(_) => Err(ClientError::Closed),
            })
            .collect()
    }
}
