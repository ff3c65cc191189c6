//! Group commit: one thread per log fdatasyncs every partition written since
//! its last round and completes the appends each fdatasync covers.
//!
//! Why one thread per log and not per partition: on a 2-core machine with a
//! hundred partitions, a thread each would spend the cores on scheduling.
//! Writers never wait for each other's fdatasync: while a round runs, new
//! batches keep landing in the page cache and the next round covers them
//! all, so the number of fdatasyncs adapts to the load. Under io_uring the
//! fdatasyncs of one round are submitted together.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::io::DiskIo;
use crate::locking;
use crate::partition::Partition;

#[derive(Default)]
struct Queue {
    dirty: Vec<Arc<Partition>>,
    shutdown: bool,
}

/// What partitions share with the syncer thread.
pub(crate) struct SyncerShared {
    queue: Mutex<Queue>,
    cond: Condvar,
    io: Arc<DiskIo>,
    interval: Option<Duration>,
}

impl std::fmt::Debug for SyncerShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncerShared")
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl SyncerShared {
    /// Queues a partition that has unsynced writes.
    pub(crate) fn enqueue(&self, p: Arc<Partition>) {
        let mut q = locking::lock(&self.queue);
        q.dirty.push(p);
        drop(q);
        if self.interval.is_none() {
            self.cond.notify_one();
        }
    }
}

/// The syncer thread and its handle.
#[derive(Debug)]
pub(crate) struct Syncer {
    shared: Arc<SyncerShared>,
    thread: Option<JoinHandle<()>>,
}

impl Syncer {
    /// Starts the thread. `interval`: `None` syncs as soon as a partition is
    /// dirty (fsync mode); `Some` syncs once per interval.
    pub(crate) fn start(io: Arc<DiskIo>, interval: Option<Duration>) -> std::io::Result<Syncer> {
        let shared = Arc::new(SyncerShared {
            queue: Mutex::new(Queue::default()),
            cond: Condvar::new(),
            io,
            interval,
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("dropline-log-sync".into())
            .spawn(move || run(&s))?;
        Ok(Syncer {
            shared,
            thread: Some(thread),
        })
    }

    pub(crate) fn shared(&self) -> &Arc<SyncerShared> {
        &self.shared
    }

    /// Syncs what is queued, then stops the thread.
    pub(crate) fn stop(&mut self) {
        locking::lock(&self.shared.queue).shutdown = true;
        self.shared.cond.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(s: &SyncerShared) {
    let mut next_tick = s.interval.map(|i| Instant::now() + i);
    loop {
        let batch = {
            let mut q = locking::lock(&s.queue);
            loop {
                if q.shutdown {
                    break;
                }
                match next_tick {
                    None if !q.dirty.is_empty() => break,
                    None => {
                        q = s
                            .cond
                            .wait(q)
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                    }
                    Some(t) => match t.checked_duration_since(Instant::now()) {
                        None => break,
                        Some(left) => {
                            q = s
                                .cond
                                .wait_timeout(q, left)
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .0;
                        }
                    },
                }
            }
            if let (Some(t), Some(i)) = (next_tick.as_mut(), s.interval) {
                *t = Instant::now() + i;
            }
            let shutdown = q.shutdown;
            (std::mem::take(&mut q.dirty), shutdown)
        };
        let (dirty, shutdown) = batch;
        sync_round(s, dirty);
        if shutdown {
            // Anything queued during the last round is synced before exit.
            let rest = std::mem::take(&mut locking::lock(&s.queue).dirty);
            sync_round(s, rest);
            return;
        }
    }
}

fn sync_round(s: &SyncerShared, dirty: Vec<Arc<Partition>>) {
    if dirty.is_empty() {
        return;
    }
    let snaps: Vec<_> = dirty
        .iter()
        .filter_map(|p| p.sync_snapshot().map(|snap| (p, snap)))
        .collect();
    let files: Vec<_> = snaps
        .iter()
        .map(|(_, snap)| (&snap.segment.file, snap.segment.log_path.as_path()))
        .collect();
    let results = s.io.sync_many(&files);
    for ((p, snap), res) in snaps.iter().zip(results) {
        p.sync_done(snap, res);
    }
}
