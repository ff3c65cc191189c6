//! How far a partition is written and durable, and the handles that wait
//! for it.
//!
//! Why separate from the writer: appenders waiting for their fdatasync,
//! tail-following readers and async servers all wait on "durable offset
//! reached N", and must not contend with the writer's lock while they do.
//! [`Durable`] is both a blocking handle and a `Future` (waker-based, no
//! runtime dependency).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::error::LogError;
use crate::locking;

#[derive(Debug, Default)]
struct WaitState {
    durable_offset: u64,
    poisoned: Option<String>,
    closed: bool,
    next_waker_id: u64,
    /// Registered async waiters: id -> (target offset, waker).
    wakers: BTreeMap<u64, (u64, Waker)>,
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
        let cause = locking::lock(&self.state)
            .poisoned
            .clone()
            .unwrap_or_default();
        LogError::Poisoned {
            topic: self.topic.clone(),
            partition: self.partition,
            cause,
        }
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
            .filter(|(_, (t, _))| *t <= offset)
            .map(|(id, _)| *id)
            .collect();
        let wakers: Vec<Waker> = ready
            .into_iter()
            .filter_map(|id| s.wakers.remove(&id))
            .map(|(_, w)| w)
            .collect();
        drop(s);
        self.cond.notify_all();
        wakers.into_iter().for_each(Waker::wake);
    }

    /// Marks the partition permanently failed.
    pub(crate) fn poison(&self, cause: String) {
        let mut s = locking::lock(&self.state);
        if s.poisoned.is_none() {
            tracing::error!(topic = %self.topic, partition = self.partition, %cause, "partition writer poisoned");
            s.poisoned = Some(cause);
        }
        self.poisoned.store(true, Ordering::Release);
        let wakers: Vec<Waker> = std::mem::take(&mut s.wakers)
            .into_values()
            .map(|(_, w)| w)
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
            .map(|(_, w)| w)
            .collect();
        drop(s);
        self.cond.notify_all();
        wakers.into_iter().for_each(Waker::wake);
    }

    fn check(&self, s: &WaitState, target: u64) -> Option<Result<(), LogError>> {
        if s.durable_offset >= target {
            return Some(Ok(()));
        }
        if let Some(cause) = &s.poisoned {
            return Some(Err(LogError::Poisoned {
                topic: self.topic.clone(),
                partition: self.partition,
                cause: cause.clone(),
            }));
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
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut s = locking::lock(&self.state);
        loop {
            if let Some(r) = self.check(&s, target) {
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
        id: &mut Option<u64>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), LogError>> {
        let mut s = locking::lock(&self.state);
        if let Some(r) = self.check(&s, target) {
            if let Some(i) = id.take() {
                s.wakers.remove(&i);
            }
            return Poll::Ready(r);
        }
        let i = *id.get_or_insert_with(|| {
            s.next_waker_id += 1;
            s.next_waker_id
        });
        s.wakers.insert(i, (target, cx.waker().clone()));
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
    waker_id: Option<u64>,
}

impl Durable {
    pub(crate) fn new(progress: Arc<Progress>, target: u64) -> Durable {
        Durable {
            progress,
            target,
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
    }

    /// Blocks until the append is durable. Fails with `Poisoned` if the
    /// covering write or fdatasync failed, `Closed` if the log closed first.
    pub fn wait(self) -> Result<(), LogError> {
        self.progress
            .wait(self.target, None)
            .unwrap_or(Err(LogError::Closed))
    }
}

impl Future for Durable {
    type Output = Result<(), LogError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.progress
            .poll_target(this.target, &mut this.waker_id, cx)
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
