//! How far a partition is written and durable, and the handles that wait
//! for it.
//!
//! Why separate from the writer: appenders waiting for their fdatasync,
//! tail-following readers and async servers all wait on "durable offset
//! reached N", and must not contend with the writer's lock while they do.
//! [`Durable`] is both a blocking handle and a `Future` (waker-based, no
//! runtime dependency).
//!
//! Why handles carry a generation: a partition poisoned by a full disk is
//! rewound to its durable prefix and appends resume (see
//! `storage_full.rs`), so the offsets of a batch that was written but never
//! made durable are given to a later batch. A handle of the earlier batch
//! must not complete when the later one becomes durable: each rewind starts
//! a new generation, and a handle from an older one completes only if its
//! target was durable when its generation ended.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::error::LogError;
use crate::locking;

/// Rewinds whose end offsets are remembered for handles of older
/// generations; a handle older than all of them fails (its batch is then
/// retried, and the producer table answers the retry if it was durable).
const REWINDS_REMEMBERED_MAX: usize = 16;

#[derive(Debug, Default)]
struct WaitState {
    durable_offset: u64,
    poisoned: Option<String>,
    /// The poisoning failure was a full disk or quota (`ENOSPC`,
    /// `EDQUOT`): the writer may be rewound once space returns.
    storage_full: bool,
    /// When an append last probed for space (rate limit of the probes).
    probed_at: Option<Instant>,
    /// Rewinds so far (the generation of new handles).
    generation: u64,
    /// (generation ended, durable offset then), oldest first.
    rewinds: VecDeque<(u64, u64)>,
    closed: bool,
    next_waker_id: u64,
    /// Registered async waiters: id -> (target offset, generation, waker).
    wakers: BTreeMap<u64, (u64, u64, Waker)>,
}

/// Written/durable/start offsets of one partition plus its failure state.
#[derive(Debug)]
pub(crate) struct Progress {
    pub(crate) topic: String,
    pub(crate) partition: u32,
    state: Mutex<WaitState>,
    cond: Condvar,
    durable_offset: AtomicU64,
    pub(crate) next_offset: AtomicU64,
    pub(crate) start_offset: AtomicU64,
    poisoned: AtomicBool,
    closed: AtomicBool,
    /// Mirror of `WaitState::generation`, read when a handle is made (under
    /// the writer lock, which every rewind holds).
    generation: AtomicU64,
}

impl Progress {
    pub(crate) fn new(
        topic: &str,
        partition: u32,
        start: u64,
        next: u64,
        durable: u64,
    ) -> Progress {
        Progress {
            topic: topic.to_string(),
            partition,
            state: Mutex::new(WaitState {
                durable_offset: durable,
                ..Default::default()
            }),
            cond: Condvar::new(),
            durable_offset: AtomicU64::new(durable),
            next_offset: AtomicU64::new(next),
            start_offset: AtomicU64::new(start),
            poisoned: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            generation: AtomicU64::new(0),
        }
    }

    pub(crate) fn durable_offset(&self) -> u64 {
        self.durable_offset.load(Ordering::Acquire)
    }

    pub(crate) fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(crate) fn poisoned_error(&self) -> LogError {
        let s = locking::lock(&self.state);
        self.error_of(&s)
    }

    /// `StorageFull` if the disk filled up, else `Poisoned`.
    fn error_of(&self, s: &WaitState) -> LogError {
        let cause = s.poisoned.clone().unwrap_or_default();
        if s.storage_full {
            LogError::StorageFull {
                topic: self.topic.clone(),
                partition: self.partition,
                cause,
            }
        } else {
            LogError::Poisoned {
                topic: self.topic.clone(),
                partition: self.partition,
                cause,
            }
        }
    }

    /// Whether the writer is poisoned by a full disk (and may resume).
    pub(crate) fn is_storage_full(&self) -> bool {
        self.is_poisoned() && locking::lock(&self.state).storage_full
    }

    /// Whether an append should probe for space now: the writer is
    /// poisoned by a full disk and the last probe is `interval` ago.
    /// Records the probe time when it says yes.
    pub(crate) fn storage_probe_due(&self, interval: Duration) -> bool {
        let mut s = locking::lock(&self.state);
        if s.poisoned.is_none() || !s.storage_full {
            return false;
        }
        let now = Instant::now();
        if s.probed_at
            .is_some_and(|t| now.duration_since(t) < interval)
        {
            return false;
        }
        s.probed_at = Some(now);
        true
    }

    /// The writer was rewound to `durable` (which is the durable offset):
    /// clears the poisoning and starts a new generation of handles.
    /// Called under the writer lock.
    pub(crate) fn rewound(&self, durable: u64) {
        let mut s = locking::lock(&self.state);
        debug_assert_eq!(s.durable_offset, durable);
        let ended = s.generation;
        s.rewinds.push_back((ended, durable));
        while s.rewinds.len() > REWINDS_REMEMBERED_MAX {
            s.rewinds.pop_front();
        }
        s.generation = ended + 1;
        s.poisoned = None;
        s.storage_full = false;
        s.probed_at = None;
        self.generation.store(ended + 1, Ordering::Release);
        self.next_offset.store(durable, Ordering::Release);
        self.poisoned.store(false, Ordering::Release);
    }

    /// The partition was truncated to `offset` (a replica cutting off a
    /// conflicting suffix, durably): everything below is durable, nothing
    /// at or after exists, and handles of cut-off batches belong to an
    /// ended generation. Called under the writer lock.
    pub(crate) fn truncated(&self, offset: u64) {
        {
            let mut s = locking::lock(&self.state);
            s.durable_offset = offset;
            self.durable_offset.store(offset, Ordering::Release);
        }
        self.rewound(offset);
    }

    /// Everything below `offset` is durable: wake whoever waits for it.
    pub(crate) fn publish_durable(&self, offset: u64) {
        let mut s = locking::lock(&self.state);
        if offset <= s.durable_offset {
            return;
        }
        s.durable_offset = offset;
        self.durable_offset.store(offset, Ordering::Release);
        let ready: Vec<u64> = s
            .wakers
            .iter()
            .filter(|(_, (t, g, _))| *t <= offset && *g == s.generation)
            .map(|(id, _)| *id)
            .collect();
        let wakers: Vec<Waker> = ready
            .into_iter()
            .filter_map(|id| s.wakers.remove(&id))
            .map(|(_, _, w)| w)
            .collect();
        drop(s);
        self.cond.notify_all();
        wakers.into_iter().for_each(Waker::wake);
    }

    /// Marks the partition failed: appends are refused until a restart
    /// (or, for a full disk, until `storage_full.rs` rewinds it).
    pub(crate) fn poison(&self, cause: String) {
        self.poison_with(cause, false);
    }

    /// As [`Progress::poison`], saying whether the failure was a full disk.
    pub(crate) fn poison_with(&self, cause: String, storage_full: bool) {
        let mut s = locking::lock(&self.state);
        if s.poisoned.is_none() {
            if storage_full {
                tracing::error!(topic = %self.topic, partition = self.partition, %cause, "disk full: partition refuses appends until space returns");
            } else {
                tracing::error!(topic = %self.topic, partition = self.partition, %cause, "partition writer poisoned");
            }
            s.poisoned = Some(cause);
            s.storage_full = storage_full;
            s.probed_at = Some(Instant::now());
        }
        self.poisoned.store(true, Ordering::Release);
        let wakers: Vec<Waker> = std::mem::take(&mut s.wakers)
            .into_values()
            .map(|(_, _, w)| w)
            .collect();
        drop(s);
        self.cond.notify_all();
        wakers.into_iter().for_each(Waker::wake);
    }

    pub(crate) fn close(&self) {
        let mut s = locking::lock(&self.state);
        s.closed = true;
        self.closed.store(true, Ordering::Release);
        let wakers: Vec<Waker> = std::mem::take(&mut s.wakers)
            .into_values()
            .map(|(_, _, w)| w)
            .collect();
        drop(s);
        self.cond.notify_all();
        wakers.into_iter().for_each(Waker::wake);
    }

    fn check(&self, s: &WaitState, target: u64, generation: u64) -> Option<Result<(), LogError>> {
        if generation != s.generation {
            // Made before a rewind: what was durable when its generation
            // ended is all it can count on.
            let durable_then = s
                .rewinds
                .iter()
                .find(|(g, _)| *g == generation)
                .map(|(_, d)| *d);
            return Some(match durable_then {
                Some(d) if d >= target => Ok(()),
                _ => Err(LogError::StorageFull {
                    topic: self.topic.clone(),
                    partition: self.partition,
                    cause: "the batch was written before the disk filled up and was \
                            removed unacknowledged when appends resumed"
                        .into(),
                }),
            });
        }
        if s.durable_offset >= target {
            return Some(Ok(()));
        }
        if s.poisoned.is_some() {
            return Some(Err(self.error_of(s)));
        }
        if s.closed {
            return Some(Err(LogError::Closed));
        }
        None
    }

    /// Blocks until the durable offset reaches `target` or `timeout` passes
    /// (`None`: no timeout). Returns `None` on timeout.
    pub(crate) fn wait(
        &self,
        target: u64,
        timeout: Option<Duration>,
    ) -> Option<Result<(), LogError>> {
        let generation = self.generation.load(Ordering::Acquire);
        self.wait_in(target, generation, timeout)
    }

    /// As [`Progress::wait`], for a handle made in `generation`.
    fn wait_in(
        &self,
        target: u64,
        generation: u64,
        timeout: Option<Duration>,
    ) -> Option<Result<(), LogError>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut s = locking::lock(&self.state);
        loop {
            if let Some(r) = self.check(&s, target, generation) {
                return Some(r);
            }
            s = match deadline {
                None => self
                    .cond
                    .wait(s)
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
                Some(d) => {
                    let left = d.checked_duration_since(Instant::now())?;
                    self.cond
                        .wait_timeout(s, left)
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .0
                }
            };
        }
    }

    fn poll_target(
        &self,
        target: u64,
        generation: u64,
        id: &mut Option<u64>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), LogError>> {
        let mut s = locking::lock(&self.state);
        if let Some(r) = self.check(&s, target, generation) {
            if let Some(i) = id.take() {
                s.wakers.remove(&i);
            }
            return Poll::Ready(r);
        }
        let i = *id.get_or_insert_with(|| {
            s.next_waker_id += 1;
            s.next_waker_id
        });
        s.wakers.insert(i, (target, generation, cx.waker().clone()));
        Poll::Pending
    }

    fn deregister(&self, id: Option<u64>) {
        if let Some(i) = id {
            locking::lock(&self.state).wakers.remove(&i);
        }
    }
}

/// Completes when the fdatasync covering an append is done (immediately
/// under `Durability::None`). Block with [`Durable::wait`] or `.await` it.
#[derive(Debug)]
#[must_use = "an append is only durable once its Durable completes"]
pub struct Durable {
    progress: Arc<Progress>,
    target: u64,
    generation: u64,
    waker_id: Option<u64>,
}

impl Durable {
    pub(crate) fn new(progress: Arc<Progress>, target: u64) -> Durable {
        let generation = progress.generation.load(Ordering::Acquire);
        Durable {
            progress,
            target,
            generation,
            waker_id: None,
        }
    }

    /// The durable offset this handle waits for (one past the append's last
    /// offset).
    pub fn target_offset(&self) -> u64 {
        self.target
    }

    /// Whether the covering fdatasync has completed.
    pub fn is_durable(&self) -> bool {
        self.progress.durable_offset() >= self.target
            && self.progress.generation.load(Ordering::Acquire) == self.generation
    }

    /// Blocks until the append is durable. Fails with `Poisoned` if the
    /// covering write or fdatasync failed, `Closed` if the log closed first.
    pub fn wait(self) -> Result<(), LogError> {
        self.progress
            .wait_in(self.target, self.generation, None)
            .unwrap_or(Err(LogError::Closed))
    }
}

impl Future for Durable {
    type Output = Result<(), LogError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.progress
            .poll_target(this.target, this.generation, &mut this.waker_id, cx)
    }
}

impl Drop for Durable {
    fn drop(&mut self) {
        self.progress.deregister(self.waker_id.take());
    }
}

/// Completes when the record at a given offset is durable (tail following
/// for async readers); see `Partition::data_ready`.
#[derive(Debug)]
pub struct DataReady(pub(crate) Durable);

impl Future for DataReady {
    type Output = Result<(), LogError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.get_mut().0).poll(cx)
    }
}
