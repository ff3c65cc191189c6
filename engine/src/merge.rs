//! The deterministic merge of a partition task's three inputs.
//!
//! Why: a replay after a crash must make exactly the decisions the first
//! run made, so the order in which control records, orders and carrier
//! events reach the operators must depend only on the log's contents, never
//! on when the worker happened to read each input. Batches are processed in
//! the order of the key (log time, input rank, base offset), which is a
//! total order over everything the three inputs will ever hold.
//!
//! A batch at time `T` from input `A` is the next in that order once every
//! other input either has a pending batch (whose key can be compared) or a
//! frontier (the log time of the last batch read from it) that proves any
//! future batch there sorts after it: frontier `> T`, or `== T` with a
//! higher rank. Log time never decreases within a partition, so the proof
//! holds on replay too. When no proof exists the merger names the input
//! that holds the ready batch back; the task then asks the node for a tick
//! on it (liveness), and the node's idle ticks bound the wait anyway.
//!
//! Pure state machine: no I/O, no clock. Queues are bounded by
//! `queue_batches_max` per input; the caller stops reading a full input.

use std::collections::VecDeque;

use crate::input::{BatchMeta, INPUT_COUNT, InputKind};

/// What the merger can do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// The head batch of this input is next in the merge order.
    Ready(InputKind),
    /// A batch is pending on `pending` but `waiting_on` (an input with no
    /// pending batch) could still receive an earlier one.
    Blocked {
        /// Input of the earliest pending batch.
        pending: InputKind,
        /// The first input whose frontier does not yet prove the order.
        waiting_on: InputKind,
    },
    /// Nothing is pending.
    Idle,
}

/// Errors pushing a batch: the input broke the log's ordering guarantees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    /// The batch's log time is older than the input's frontier.
    #[error(
        "{input:?}: batch at offset {base_offset} has log time {time_ms} before the frontier {frontier_ms}"
    )]
    TimeWentBack {
        /// The input.
        input: InputKind,
        /// The batch's first offset.
        base_offset: u64,
        /// The batch's first log time.
        time_ms: u64,
        /// The input's frontier.
        frontier_ms: u64,
    },
    /// The batch does not follow the previous one of its input.
    #[error("{input:?}: batch at offset {base_offset} does not follow offset {expected}")]
    OffsetGap {
        /// The input.
        input: InputKind,
        /// The batch's first offset.
        base_offset: u64,
        /// The offset expected next.
        expected: u64,
    },
    /// The input's queue is full (the caller must not read it).
    #[error("{input:?}: queue full ({queue_batches_max} batches)")]
    QueueFull {
        /// The input.
        input: InputKind,
        /// The bound.
        queue_batches_max: usize,
    },
}

/// Per-input state: pending batches, the offset the next batch must start
/// at, and the frontier.
#[derive(Debug)]
struct Lane<B> {
    queue: VecDeque<(BatchMeta, B)>,
    next_offset: u64,
    frontier_ms: u64,
}

/// The merge scheduler of one partition task.
#[derive(Debug)]
pub struct Merger<B> {
    lanes: [Lane<B>; INPUT_COUNT],
    queue_batches_max: usize,
}

/// Where an input stands when the merger is (re)created: the offset of the
/// next batch and the log time of the last batch before it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InputPosition {
    /// Offset the next batch starts at.
    pub next_offset: u64,
    /// Log time of the last batch before `next_offset` (0 if none).
    pub frontier_ms: u64,
}

impl<B> Merger<B> {
    /// A merger whose inputs start at `positions` (indexed by
    /// [`InputKind::index`]), holding at most `queue_batches_max` batches
    /// per input (at least one).
    pub fn new(positions: [InputPosition; INPUT_COUNT], queue_batches_max: usize) -> Self {
        let lane = |p: InputPosition| Lane {
            queue: VecDeque::new(),
            next_offset: p.next_offset,
            frontier_ms: p.frontier_ms,
        };
        Merger {
            lanes: positions.map(lane),
            queue_batches_max: queue_batches_max.max(1),
        }
    }

    /// Whether `input` has room for another batch.
    pub fn has_room(&self, input: InputKind) -> bool {
        self.lanes[input.index()].queue.len() < self.queue_batches_max
    }

    /// Offset the next batch read from `input` must start at (batches
    /// starting earlier are trimmed by the caller).
    pub fn read_offset(&self, input: InputKind) -> u64 {
        self.lanes[input.index()].next_offset
    }

    /// Log time of the last batch read from `input`.
    pub fn frontier_ms(&self, input: InputKind) -> u64 {
        self.lanes[input.index()].frontier_ms
    }

    /// Batches pending on `input`.
    pub fn pending(&self, input: InputKind) -> usize {
        self.lanes[input.index()].queue.len()
    }

    /// Batches pending over all inputs.
    pub fn pending_total(&self) -> usize {
        self.lanes.iter().map(|l| l.queue.len()).sum()
    }

    /// Queues a batch read from `input`. It must start at
    /// [`Merger::read_offset`] and not go back in log time.
    pub fn push(&mut self, input: InputKind, meta: BatchMeta, batch: B) -> Result<(), MergeError> {
        let queue_batches_max = self.queue_batches_max;
        let lane = &mut self.lanes[input.index()];
        if lane.queue.len() >= queue_batches_max {
            return Err(MergeError::QueueFull {
                input,
                queue_batches_max,
            });
        }
        if meta.base_offset != lane.next_offset {
            return Err(MergeError::OffsetGap {
                input,
                base_offset: meta.base_offset,
                expected: lane.next_offset,
            });
        }
        if meta.first_time_ms < lane.frontier_ms {
            return Err(MergeError::TimeWentBack {
                input,
                base_offset: meta.base_offset,
                time_ms: meta.first_time_ms,
                frontier_ms: lane.frontier_ms,
            });
        }
        debug_assert!(meta.last_offset >= meta.base_offset);
        debug_assert!(meta.last_time_ms >= meta.first_time_ms);
        lane.next_offset = meta.last_offset + 1;
        lane.frontier_ms = meta.last_time_ms;
        lane.queue.push_back((meta, batch));
        Ok(())
    }

    /// What can be done next.
    pub fn readiness(&self) -> Readiness {
        let mut best: Option<(u64, u8, u64, InputKind)> = None;
        for input in InputKind::ALL {
            if let Some((m, _)) = self.lanes[input.index()].queue.front() {
                let key = (m.first_time_ms, input.rank(), m.base_offset, input);
                if best.is_none_or(|b| key < b) {
                    best = Some(key);
                }
            }
        }
        let Some((time_ms, rank, _, pending)) = best else {
            return Readiness::Idle;
        };
        for other in InputKind::ALL {
            let lane = &self.lanes[other.index()];
            if other == pending || !lane.queue.is_empty() {
                continue;
            }
            let proven =
                lane.frontier_ms > time_ms || (lane.frontier_ms == time_ms && other.rank() > rank);
            if !proven {
                return Readiness::Blocked {
                    pending,
                    waiting_on: other,
                };
            }
        }
        Readiness::Ready(pending)
    }

    /// Whether any pending batch, on any input, holds records other than
    /// ticks.
    pub fn has_pending_data(&self) -> bool {
        self.lanes
            .iter()
            .any(|lane| lane.queue.iter().any(|(meta, _)| !meta.control))
    }

    /// Takes the head batch of `input` (normally the one
    /// [`Readiness::Ready`] named).
    pub fn pop(&mut self, input: InputKind) -> Option<(BatchMeta, B)> {
        self.lanes[input.index()].queue.pop_front()
    }

    /// Takes the next batch in merge order, if it is proven next.
    pub fn pop_ready(&mut self) -> Option<(InputKind, BatchMeta, B)> {
        match self.readiness() {
            Readiness::Ready(input) => self.pop(input).map(|(m, b)| (input, m, b)),
            Readiness::Blocked { .. } | Readiness::Idle => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn meta(base: u64, n: u64, t: u64) -> BatchMeta {
        BatchMeta {
            base_offset: base,
            last_offset: base + n - 1,
            first_time_ms: t,
            last_time_ms: t,
            control: false,
        }
    }

    fn merger() -> Merger<u32> {
        Merger::new([InputPosition::default(); INPUT_COUNT], 4)
    }

    #[test]
    fn waits_for_a_frontier_on_every_other_input() {
        let mut m = merger();
        let next = |m: &mut Merger<u32>| m.pop_ready().map(|(i, _, b)| (i, b));
        m.push(InputKind::CarrierEvents, meta(0, 10, 100), 1)
            .unwrap();
        assert_eq!(
            m.readiness(),
            Readiness::Blocked {
                pending: InputKind::CarrierEvents,
                waiting_on: InputKind::Control
            }
        );
        m.push(InputKind::Control, meta(0, 1, 100), 2).unwrap();
        // Control at 100 is first, but orders could still hold something
        // earlier.
        assert_eq!(
            m.readiness(),
            Readiness::Blocked {
                pending: InputKind::Control,
                waiting_on: InputKind::Orders
            }
        );
        m.push(InputKind::Orders, meta(0, 1, 100), 3).unwrap();
        assert_eq!(next(&mut m), Some((InputKind::Control, 2)));
        // Control's frontier is 100 and control ranks before orders: a later
        // control record could still come at 100.
        assert!(matches!(
            m.readiness(),
            Readiness::Blocked {
                pending: InputKind::Orders,
                waiting_on: InputKind::Control
            }
        ));
        m.push(InputKind::Control, meta(1, 1, 101), 4).unwrap();
        assert_eq!(next(&mut m), Some((InputKind::Orders, 3)));
        assert!(matches!(
            m.readiness(),
            Readiness::Blocked {
                pending: InputKind::CarrierEvents,
                waiting_on: InputKind::Orders
            }
        ));
        m.push(InputKind::Orders, meta(1, 1, 105), 5).unwrap();
        assert_eq!(next(&mut m), Some((InputKind::CarrierEvents, 1)));
        // Events' frontier (100) is behind control's next batch (101).
        assert!(matches!(
            m.readiness(),
            Readiness::Blocked {
                pending: InputKind::Control,
                waiting_on: InputKind::CarrierEvents
            }
        ));
        m.push(InputKind::CarrierEvents, meta(10, 1, 200), 6)
            .unwrap();
        assert_eq!(next(&mut m), Some((InputKind::Control, 4)));
        assert!(matches!(
            m.readiness(),
            Readiness::Blocked {
                waiting_on: InputKind::Control,
                ..
            }
        ));
        m.push(InputKind::Control, meta(2, 1, 300), 7).unwrap();
        assert_eq!(next(&mut m), Some((InputKind::Orders, 5)));
        assert!(matches!(m.readiness(), Readiness::Blocked { .. }));
    }

    #[test]
    fn equal_time_higher_rank_frontier_proves_order() {
        let mut m = merger();
        m.push(InputKind::Control, meta(0, 1, 50), 1).unwrap();
        m.push(InputKind::Orders, meta(0, 1, 50), 2).unwrap();
        m.push(InputKind::CarrierEvents, meta(0, 1, 50), 3).unwrap();
        assert_eq!(m.pop_ready().map(|(i, _, _)| i), Some(InputKind::Control));
        // Control's frontier is 50 == T and control ranks lower than orders:
        // a control record at 50 could still come.
        assert!(matches!(
            m.readiness(),
            Readiness::Blocked {
                waiting_on: InputKind::Control,
                ..
            }
        ));
        // Once control moves on, orders then events at 50 go in rank order.
        m.push(InputKind::Control, meta(1, 1, 51), 4).unwrap();
        assert_eq!(m.pop_ready().map(|(i, _, _)| i), Some(InputKind::Orders));
        // Orders' frontier 50 with rank 1 < 2: blocked until orders moves on.
        assert!(matches!(
            m.readiness(),
            Readiness::Blocked {
                waiting_on: InputKind::Orders,
                ..
            }
        ));
        m.push(InputKind::Orders, meta(1, 1, 51), 5).unwrap();
        assert_eq!(
            m.pop_ready().map(|(i, _, _)| i),
            Some(InputKind::CarrierEvents)
        );
    }

    #[test]
    fn rejects_gaps_time_travel_and_overflow() {
        let mut m = merger();
        m.push(InputKind::Orders, meta(0, 2, 10), 0).unwrap();
        assert!(matches!(
            m.push(InputKind::Orders, meta(5, 1, 10), 0),
            Err(MergeError::OffsetGap { expected: 2, .. })
        ));
        assert!(matches!(
            m.push(InputKind::Orders, meta(2, 1, 9), 0),
            Err(MergeError::TimeWentBack {
                frontier_ms: 10,
                ..
            })
        ));
        for i in 0..3 {
            m.push(InputKind::Orders, meta(2 + i, 1, 10), 0).unwrap();
        }
        assert!(!m.has_room(InputKind::Orders));
        assert!(matches!(
            m.push(InputKind::Orders, meta(5, 1, 10), 0),
            Err(MergeError::QueueFull { .. })
        ));
    }

    /// A generated input: batches (record count, time increment).
    fn input_strategy() -> impl Strategy<Value = Vec<(u64, u64)>> {
        prop::collection::vec((1u64..4, 0u64..3), 0..12)
    }

    fn build(spec: &[(u64, u64)]) -> Vec<BatchMeta> {
        let (mut off, mut t) = (0, 1);
        spec.iter()
            .map(|&(n, dt)| {
                t += dt;
                let m = meta(off, n, t);
                off += n;
                m
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Whatever the order and chunking in which batches are read, the
        /// merged order is the sorted order of (time, rank, offset).
        #[test]
        fn order_is_independent_of_read_timing(
            specs in [input_strategy(), input_strategy(), input_strategy()],
            schedule in prop::collection::vec(0usize..4, 0..200),
        ) {
            let inputs: Vec<Vec<BatchMeta>> = specs.iter().map(|s| build(s)).collect();
            let mut expected: Vec<(u64, u8, u64)> = Vec::new();
            for input in InputKind::ALL {
                for m in &inputs[input.index()] {
                    expected.push((m.first_time_ms, input.rank(), m.base_offset));
                }
            }
            expected.sort_unstable();
            let mut m: Merger<()> = Merger::new([InputPosition::default(); INPUT_COUNT], 2);
            let mut read = [0usize; INPUT_COUNT];
            let mut got = Vec::new();
            let read_one = |m: &mut Merger<()>, read: &mut [usize; INPUT_COUNT], i: usize| {
                if m.has_room(InputKind::ALL[i]) && read[i] < inputs[i].len() {
                    m.push(InputKind::ALL[i], inputs[i][read[i]], ()).unwrap();
                    read[i] += 1;
                    true
                } else {
                    false
                }
            };
            // The schedule decides which input is read when.
            for choice in schedule {
                if choice < INPUT_COUNT {
                    read_one(&mut m, &mut read, choice);
                } else if let Some((input, meta, ())) = m.pop_ready() {
                    got.push((meta.first_time_ms, input.rank(), meta.base_offset));
                }
            }
            // Then everything is read, and each input is closed by one
            // far-future tick once exhausted (as the node's idle ticks do).
            let mut ticked = [false; INPUT_COUNT];
            for _ in 0..1000 {
                if let Some((input, meta, ())) = m.pop_ready() {
                    if !meta.control {
                        got.push((meta.first_time_ms, input.rank(), meta.base_offset));
                    }
                    continue;
                }
                let mut progressed = false;
                for i in 0..INPUT_COUNT {
                    progressed |= read_one(&mut m, &mut read, i);
                    let input = InputKind::ALL[i];
                    if !ticked[i] && read[i] == inputs[i].len() && m.has_room(input) {
                        let off = m.read_offset(input);
                        m.push(input, BatchMeta { control: true, ..meta(off, 1, 1_000_000) }, ()).unwrap();
                        ticked[i] = true;
                        progressed = true;
                    }
                }
                if !progressed && m.readiness() == Readiness::Idle {
                    break;
                }
            }
            prop_assert_eq!(got, expected);
        }
    }
}
