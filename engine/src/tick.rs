//! Tick records: how log time advances on partitions nobody writes to.
//!
//! Why ticks: operators run on log time, so in a quiet hour a debounce
//! window or an SLA timer would never fire, and the merge of a partition's
//! inputs could not prove an idle input has nothing earlier to offer. The
//! node appends a tick (a control-flagged batch, empty key,
//! [`crate::TICK_VALUE`]) to every input partition that stayed idle for
//! `tick_interval_ms`; workers also request one at once on an input that
//! holds back ready data. Ticks are records in the log, so a replay fires
//! the same timers at the same places.
//!
//! [`IdleTicker`] decides (sans-IO); [`spawn_ticker`] is the thread that
//! watches the real partitions.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use dropline_log::{LogError, Partition, Record};

use crate::control::TICK_VALUE;

/// Decides which watched partitions are due a tick.
#[derive(Debug, Clone)]
pub struct IdleTicker {
    interval_ms: u64,
    watched: Vec<(u64, u64)>,
}

impl IdleTicker {
    /// Watches `n` partitions, ticking each after `interval_ms` without an
    /// append.
    pub fn new(n: usize, interval_ms: u64, now_ms: u64) -> Self {
        IdleTicker {
            interval_ms: interval_ms.max(1),
            watched: vec![(u64::MAX, now_ms); n],
        }
    }

    /// Given each partition's next offset at `now_ms`, pushes the indexes of
    /// those idle for the interval onto `due` (and restarts their wait).
    pub fn due(&mut self, now_ms: u64, next_offsets: &[u64], due: &mut Vec<usize>) {
        for (i, (&next, w)) in next_offsets.iter().zip(&mut self.watched).enumerate() {
            if next != w.0 {
                *w = (next, now_ms);
            } else if now_ms.saturating_sub(w.1) >= self.interval_ms {
                w.1 = now_ms;
                due.push(i);
            }
        }
    }
}

/// Appends one tick record to `partition` (without waiting for it to be
/// durable: readers see it once it is).
pub fn append_tick(partition: &Partition) -> Result<(), LogError> {
    let (_ack, _durable) = partition.append_control(&[Record {
        key: b"",
        value: TICK_VALUE,
    }])?;
    Ok(())
}

pub(crate) fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Starts the thread that ticks idle `partitions` every `interval_ms` until
/// `stop` receives a message or is disconnected.
pub fn spawn_ticker(
    partitions: Vec<Arc<Partition>>,
    interval_ms: u64,
    stop: Receiver<()>,
) -> std::io::Result<JoinHandle<Result<(), LogError>>> {
    std::thread::Builder::new()
        .name("dropline-ticker".into())
        .spawn(move || {
            let mut ticker = IdleTicker::new(partitions.len(), interval_ms, wall_ms());
            let poll = Duration::from_millis((interval_ms / 4).clamp(1, 250));
            let mut offsets = Vec::with_capacity(partitions.len());
            let mut due = Vec::new();
            loop {
                match stop.recv_timeout(poll) {
                    Err(RecvTimeoutError::Timeout) => {}
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => return Ok(()),
                }
                offsets.clear();
                offsets.extend(partitions.iter().map(|p| p.next_offset()));
                due.clear();
                ticker.due(wall_ms(), &offsets, &mut due);
                for &i in &due {
                    match append_tick(&partitions[i]) {
                        Ok(()) => {}
                        // A full disk: the partition is due again after
                        // another interval, by which space may be back.
                        Err(e) if e.is_storage_full() => {
                            tracing::debug!(partition = %partitions[i].topic(), error = %e, "tick refused: disk full");
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_only_partitions_idle_for_the_interval() {
        let mut t = IdleTicker::new(2, 1000, 0);
        let mut due = Vec::new();
        t.due(0, &[5, 7], &mut due);
        t.due(999, &[5, 8], &mut due);
        assert!(due.is_empty());
        t.due(1000, &[5, 8], &mut due);
        assert_eq!(due, [0]);
        due.clear();
        t.due(1999, &[6, 8], &mut due);
        assert_eq!(due, [1]);
        due.clear();
        t.due(2500, &[6, 8], &mut due);
        assert!(due.is_empty());
    }
}
