//! The open-loop sender: every planned item is handed to the target at its
//! intended time, whatever happened to the items before it.
//!
//! A target may make the sender wait (its in-flight bound is reached, its
//! buffer is full): the sender then falls behind the schedule, and every
//! item it hands over late still has its latency measured from its
//! intended time ([`crate::recorder`]), so the stall is visible in the
//! figures. Acknowledgements are reported by the target to the recorder
//! as they arrive, concurrently with sending.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::LoadgenError;
use crate::recorder::{Kind, Recorder};
use crate::scenario::Planned;
use crate::workload::WorkItem;

/// Where planned items go.
pub trait Target: Send + Sync {
    /// Takes one item (an order or a carrier event; never a tick). May wait
    /// while the target is saturated. Acknowledgements go to the recorder.
    fn submit(&self, item: Planned) -> impl Future<Output = Result<(), LoadgenError>> + Send;

    /// Nothing else is due right now: send what is held in partial batches.
    fn idle(&self) -> impl Future<Output = Result<(), LoadgenError>> + Send;

    /// Waits until every submitted item is acknowledged or has failed.
    fn drain(&self) -> impl Future<Output = Result<(), LoadgenError>> + Send;
}

/// What the sender did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sent {
    /// Orders handed to the target.
    pub orders: u64,
    /// Carrier events handed to the target.
    pub events: u64,
    /// Real µs from time zero until the last item was handed over.
    pub send_us: u64,
    /// Real µs from time zero until the target was drained.
    pub drained_us: u64,
}

/// Hands every item of `plan` to `target` at its intended time (measured
/// from `recorder`'s time zero), then drains the target.
pub async fn drive<T: Target>(
    plan: impl Iterator<Item = Planned>,
    target: &T,
    recorder: &Recorder,
) -> Result<Sent, LoadgenError> {
    let mut sent = Sent::default();
    for item in plan {
        let due = recorder.start() + Duration::from_micros(item.at_us);
        if Instant::now() < due {
            target.idle().await?;
            tokio::time::sleep_until(due).await;
        }
        let kind = match &item.item {
            WorkItem::Order(_) => {
                sent.orders += 1;
                Kind::Order
            }
            WorkItem::Event(_) => {
                sent.events += 1;
                Kind::Event
            }
            WorkItem::Tick => continue,
        };
        recorder.sent(kind, item.at_us);
        target.submit(item).await?;
    }
    target.idle().await?;
    sent.send_us = recorder.now_us();
    target.drain().await?;
    sent.drained_us = recorder.now_us();
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{Workload, WorkloadConfig};
    use std::sync::Mutex;

    /// Acknowledges every item at once, except that taking item `stall_at`
    /// blocks the sender for `stall` first.
    struct StallingTarget<'a> {
        recorder: &'a Recorder,
        stall_at: u64,
        stall: Duration,
        taken: Mutex<u64>,
    }

    impl Target for StallingTarget<'_> {
        async fn submit(&self, item: Planned) -> Result<(), LoadgenError> {
            let n = {
                let mut t = self.taken.lock().unwrap();
                *t += 1;
                *t - 1
            };
            if n == self.stall_at {
                tokio::time::sleep(self.stall).await;
            }
            self.recorder.acked(Kind::Event, &[item.at_us]);
            Ok(())
        }
        async fn idle(&self) -> Result<(), LoadgenError> {
            Ok(())
        }
        async fn drain(&self) -> Result<(), LoadgenError> {
            Ok(())
        }
    }

    fn events(n: u64, spacing_us: u64) -> Vec<Planned> {
        let mut w = Workload::new(WorkloadConfig {
            shipments: 20,
            tick_interval_ms: 0,
            ..WorkloadConfig::default()
        });
        let mut out = Vec::new();
        while (out.len() as u64) < n {
            let (sim_ms, item) = w.next().unwrap();
            if matches!(item, WorkItem::Event(_)) {
                out.push(Planned {
                    at_us: out.len() as u64 * spacing_us,
                    sim_ms,
                    item,
                });
            }
        }
        out
    }

    /// With tokio's clock paused, time only moves when every task waits:
    /// a simulated clock. The sender is stalled 2 s while taking the 4th
    /// of ten events planned 100 ms apart; the six events planned during
    /// the stall are handed over late and their latency counts from their
    /// intended times, not from when they were finally sent.
    #[tokio::test(start_paused = true)]
    async fn a_stalled_sender_charges_the_stall_to_every_late_event() {
        let recorder = Recorder::new().unwrap();
        let target = StallingTarget {
            recorder: &recorder,
            stall_at: 3,
            stall: Duration::from_secs(2),
            taken: Mutex::new(0),
        };
        let sent = drive(events(10, 100_000).into_iter(), &target, &recorder)
            .await
            .unwrap();
        assert_eq!(sent.events, 10);
        let snap = recorder.snapshot();
        let h = &snap.event_latency_us;
        assert_eq!(h.len(), 10);
        // Items 0..=2 on time; item 3 waited 2 s; items 4..=9 (planned at
        // 0.4..0.9 s) were sent at 2.3 s.
        let ms = |us: u64| us / 1_000;
        assert_eq!(ms(h.max()), 2_000);
        assert_eq!(
            h.count_between(1_390_000, 1_910_000),
            6,
            "every event planned during the stall is charged the wait"
        );
        assert_eq!(
            h.count_between(0, 1_000),
            3,
            "the three before were on time"
        );
        assert!((1_495..=1_505).contains(&ms(h.value_at_quantile(0.5))));
        // The sender's own lag says the same.
        assert_eq!(ms(snap.send_lag_us.max()), 1_900);
        assert_eq!(snap.counts.events_acked, 10);
        assert_eq!(ms(sent.drained_us), 2_300);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unstalled_sender_keeps_the_schedule() {
        let recorder = Recorder::new().unwrap();
        let target = StallingTarget {
            recorder: &recorder,
            stall_at: u64::MAX,
            stall: Duration::ZERO,
            taken: Mutex::new(0),
        };
        drive(events(10, 100_000).into_iter(), &target, &recorder)
            .await
            .unwrap();
        let snap = recorder.snapshot();
        assert!(
            snap.event_latency_us.max() < 1_000,
            "{}",
            snap.event_latency_us.max()
        );
        let intended: u64 = snap.timeline.iter().map(|b| b.intended).sum();
        assert_eq!(intended, 10);
    }
}
