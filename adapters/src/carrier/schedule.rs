//! One carrier's poll queue: shipments by next poll time (a binary heap),
//! with the carrier's rate limits, circuit breaker, `Retry-After` and
//! in-flight bound deciding when the next request may leave.
//!
//! Sans-IO: every method takes `now`; the poller task does the waiting
//! and the HTTP. Rescheduling bumps the shipment's generation instead of
//! searching the heap; entries of an older generation are skipped.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use super::breaker::Breaker;
use super::rate_window::{RateLimit, RateWindows};
use super::registry::Shipment;

/// One carrier's queue.
#[derive(Debug)]
pub(crate) struct CarrierQueue {
    heap: BinaryHeap<Reverse<(i64, u64, String)>>,
    pub(crate) limits: RateWindows,
    pub(crate) breaker: Breaker,
    inflight: u32,
    inflight_max: u32,
    /// No request before this (a 429's `Retry-After`).
    pub(crate) retry_after_until_ms: i64,
    /// When the current run of 429s began (cleared by the next answer
    /// that is not a 429), for the log lines that open and close it.
    pub(crate) rate_limited_since_ms: Option<i64>,
    /// Numbers per request (FedEx takes 30).
    batch_max: usize,
    /// When a request leaves, numbers due within this much later ride
    /// along (filling a FedEx batch early costs nothing; an extra request
    /// costs rate budget), in ms.
    batch_lookahead_ms: i64,
}

impl CarrierQueue {
    pub(crate) fn new(
        limits: &[RateLimit],
        headroom_percent: u8,
        breaker: Breaker,
        inflight_max: u32,
        batch_max: usize,
        batch_lookahead_ms: u64,
    ) -> CarrierQueue {
        CarrierQueue {
            heap: BinaryHeap::new(),
            limits: RateWindows::new(limits, headroom_percent),
            breaker,
            inflight: 0,
            inflight_max: inflight_max.max(1),
            retry_after_until_ms: i64::MIN,
            rate_limited_since_ms: None,
            batch_max: batch_max.max(1),
            batch_lookahead_ms: batch_lookahead_ms as i64,
        }
    }

    /// Queues a poll of `tracking_number` at `at_ms` for `generation`.
    pub(crate) fn schedule(&mut self, tracking_number: String, at_ms: i64, generation: u64) {
        self.heap
            .push(Reverse((at_ms, generation, tracking_number)));
    }

    /// When a request could leave next; `None` when only an answer or a
    /// new registration can change that.
    pub(crate) fn next_wake(&mut self, now_ms: i64) -> Option<i64> {
        if self.inflight >= self.inflight_max {
            return None;
        }
        let Reverse((head, _, _)) = self.heap.peek()?;
        let mut at = (*head).max(self.retry_after_until_ms);
        at = at.max(self.limits.ready_at(now_ms)?);
        at = at.max(self.breaker.ready_at(now_ms)?);
        Some(at)
    }

    /// Takes the due numbers of one request, if one may leave now.
    pub(crate) fn take_due(
        &mut self,
        now_ms: i64,
        shipments: &HashMap<String, Shipment>,
    ) -> Option<Vec<String>> {
        if self.inflight >= self.inflight_max || now_ms < self.retry_after_until_ms {
            return None;
        }
        if self.limits.ready_at(now_ms)? > now_ms || self.breaker.ready_at(now_ms)? > now_ms {
            return None;
        }
        let mut batch: Vec<String> = Vec::new();
        while batch.len() < self.batch_max {
            let Some(Reverse((at, generation, _))) = self.heap.peek() else {
                break;
            };
            let horizon = if batch.is_empty() {
                now_ms
            } else {
                now_ms + self.batch_lookahead_ms
            };
            if *at > horizon {
                break;
            }
            let generation = *generation;
            let Some(Reverse((_, _, tn))) = self.heap.pop() else {
                break;
            };
            let live = shipments
                .get(&tn)
                .is_some_and(|s| s.generation == generation && !s.retired);
            if live && !batch.contains(&tn) {
                batch.push(tn);
            }
        }
        if batch.is_empty() {
            return None;
        }
        self.limits.start();
        self.breaker.start(now_ms);
        self.inflight += 1;
        Some(batch)
    }

    /// A request's answer (or failure) came back.
    pub(crate) fn finish(&mut self, now_ms: i64) {
        self.inflight = self.inflight.saturating_sub(1);
        self.limits.finish(now_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dropline_operators::model::Carrier;

    fn shipments(n: usize) -> HashMap<String, Shipment> {
        (0..n)
            .map(|i| (format!("n{i}"), Shipment::new(Carrier::Fedex, false)))
            .collect()
    }

    #[test]
    fn batches_due_numbers_within_limits() {
        let limits = [RateLimit {
            requests: 2,
            window_ms: 1_000,
        }];
        let mut q = CarrierQueue::new(&limits, 0, Breaker::new(3, 10_000), 4, 30, 0);
        let s = shipments(70);
        for i in 0..70 {
            q.schedule(format!("n{i}"), i as i64, 0);
        }
        assert_eq!(q.next_wake(0), Some(0));
        let first = q.take_due(100, &s).unwrap();
        assert_eq!(first.len(), 30, "FedEx-sized batch");
        let second = q.take_due(100, &s).unwrap();
        assert_eq!(second.len(), 30);
        // Two in flight fill the window: only an answer frees a slot.
        assert_eq!(q.take_due(100, &s), None);
        assert_eq!(q.next_wake(100), None);
        q.finish(150);
        q.finish(160);
        assert_eq!(q.next_wake(200), Some(1_150));
        assert_eq!(q.take_due(1_149, &s), None);
        assert_eq!(q.take_due(1_150, &s).unwrap().len(), 10);
    }

    #[test]
    fn stale_generations_are_skipped_and_retry_after_holds() {
        let mut q = CarrierQueue::new(
            &[RateLimit {
                requests: 10,
                window_ms: 1_000,
            }],
            0,
            Breaker::new(3, 10_000),
            1,
            1,
            0,
        );
        let mut s = shipments(2);
        q.schedule("n0".into(), 0, 0);
        q.schedule("n1".into(), 5, 0);
        s.get_mut("n0").unwrap().generation = 1;
        q.retry_after_until_ms = 50;
        assert_eq!(q.next_wake(10), Some(50));
        assert_eq!(q.take_due(10, &s), None);
        assert_eq!(q.take_due(50, &s), Some(vec!["n1".to_string()]));
    }
}
