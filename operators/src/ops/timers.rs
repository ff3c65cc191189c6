//! Timers on log time: a wheel of one-minute buckets.
//!
//! Debounce release, the stale SLA, exception escalation and retirement are
//! deadlines in log time. Each shipment has at most one wake-up in the
//! wheel, for its earliest deadline (`Shipment::wake_min`); when it fires,
//! the chain handles every deadline that is due, as of its due time, and
//! schedules the next. A deadline that moves later needs no new entry (the
//! early wake-up reschedules), so the wheel costs nothing per ordinary scan.
//! Buckets are processed in minute order and entries in insertion order, so
//! firing order depends only on the input. Deadlines beyond the horizon
//! wake at the horizon and reschedule.

/// Minutes in the wheel (about 68 hours).
pub const TIMER_WHEEL_MINUTES: u32 = 4096;

#[derive(Debug, Clone)]
pub(crate) struct TimerWheel {
    pub(crate) buckets: Vec<Vec<u32>>,
    /// Next minute to process.
    pub(crate) pos_min: u32,
    pub(crate) started: bool,
}

impl Default for TimerWheel {
    fn default() -> Self {
        TimerWheel {
            buckets: (0..TIMER_WHEEL_MINUTES).map(|_| Vec::new()).collect(),
            pos_min: 0,
            started: false,
        }
    }
}

impl TimerWheel {
    /// The minute a deadline at `due_s` wakes at: its minute rounded up,
    /// kept within the wheel's horizon.
    pub(crate) fn wake_minute(&self, due_s: u32) -> u32 {
        let m = due_s.div_ceil(60).max(self.pos_min).max(1);
        m.min(self.pos_min + TIMER_WHEEL_MINUTES - 1)
    }

    /// Schedules record `idx` to wake at minute `m` (from `wake_minute`).
    pub(crate) fn schedule(&mut self, idx: u32, m: u32) {
        self.buckets[(m % TIMER_WHEEL_MINUTES) as usize].push(idx);
    }

    /// Starts the wheel at a log minute (the first record's).
    pub(crate) fn start(&mut self, now_min: u32) {
        if !self.started {
            self.started = true;
            self.pos_min = now_min;
        }
    }

    /// Takes the bucket of minute `m` (the caller returns it with `put_back`).
    pub(crate) fn take(&mut self, m: u32) -> Vec<u32> {
        std::mem::take(&mut self.buckets[(m % TIMER_WHEEL_MINUTES) as usize])
    }

    /// Returns a processed bucket's buffer, emptied, keeping entries that
    /// were scheduled into it meanwhile.
    pub(crate) fn put_back(&mut self, m: u32, mut buf: Vec<u32>) {
        let slot = &mut self.buckets[(m % TIMER_WHEEL_MINUTES) as usize];
        buf.clear();
        if slot.is_empty() {
            *slot = buf;
        } else {
            buf.append(slot);
            *slot = buf;
        }
    }

    pub(crate) fn bytes_held(&self) -> usize {
        self.buckets.capacity() * std::mem::size_of::<Vec<u32>>()
            + self.buckets.iter().map(|b| b.capacity() * 4).sum::<usize>()
    }
}
