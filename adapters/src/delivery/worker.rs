//! The delivery worker: reads the notify topics, asks the scheduler what
//! to send, sends it within the providers' limits, and records progress
//! only after the provider accepted (or the message was finished
//! otherwise).
//!
//! The never-twice protocol: (1) every request carries the message's
//! deterministic idempotency key; (2) a notification is marked finished in
//! the checkpoint only after its message was accepted, suppressed or
//! dead-lettered (durably); (3) after a crash, the worker re-reads from
//! the checkpoint, skips what is marked finished, and rebuilds the same
//! messages from the rest, so anything that was accepted but not yet
//! checkpointed goes out again with the same key and the provider or the
//! receiver drops it.
//!
//! Critical first: each loop reads critical topics before normal and low,
//! and each channel's free send slots go to critical, then normal, then low.
//! Under backlog, low degrades to digests, then pauses (left in the log),
//! then normal goes to digests; critical never waits for them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use dropline_log::{Log, LogError, Partition};
use dropline_operators::model::{Channel, Priority, notify_topic};
use tokio::sync::watch;
use tokio::task::{JoinError, JoinSet};

use super::channel::ChannelSender;
use super::checkpoint::{Checkpoint, CheckpointError, PartitionProgress};
use super::clock::DeliveryClock;
use super::config::DeliveryConfig;
use super::contact::{ContactOpener, OrderContacts};
use super::dead_letter::{DeadLetterError, append_dead_letters, ensure_topic};
use super::intent::decode_notification;
use super::metrics::DeliveryMetrics;
use super::notification::{Member, Message, MessageKind, SourcePos};
use super::opt_out::OptOutStore;
use super::scheduler::{Class, Effect, Scheduler, SendOutcome, Suppressed};

/// How often the worker looks for notify topics created after it started.
const TOPIC_DISCOVERY_INTERVAL_MS: u64 = 1_000;
/// Ms the worker waits for sends in flight when asked to stop.
const SHUTDOWN_DRAIN_MS: u64 = 10_000;

/// Why the worker stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The log failed.
    #[error("delivery: log: {0}")]
    Log(#[from] LogError),
    /// The checkpoint could not be read or written.
    #[error("delivery: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// A dead letter could not be written.
    #[error("delivery: {0}")]
    DeadLetter(#[from] DeadLetterError),
}

/// Degradation level of a channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum DegradeLevel {
    /// Everything goes out as it comes.
    Normal = 0,
    /// Low-priority updates go into digests.
    LowDigest = 1,
    /// Low-priority updates are paused (left in the log).
    LowPaused = 2,
    /// Normal-priority updates go into digests too.
    NormalDigest = 3,
}

struct Reader {
    class: Class,
    partition: Arc<Partition>,
    last_log_ms: u64,
}

/// A send in flight: the message stays here, not only in the task, so a
/// task that panics gives its message back as a failed attempt instead of
/// losing it (and its channel slot) for good.
struct InFlightSend {
    message: Arc<Message>,
    slot: usize,
}

type Joined = Result<(tokio::task::Id, SendOutcome), JoinError>;

/// Everything a worker needs besides its configuration.
pub struct DeliveryDeps {
    /// The log with the notify, orders and dead-letter topics.
    pub log: Arc<Log>,
    /// The clock (quiet hours, backoff, windows of caught-up partitions).
    pub clock: Arc<dyn DeliveryClock>,
    /// One sender per delivered channel.
    pub senders: Vec<Arc<ChannelSender>>,
    /// The opt-out store.
    pub opt_outs: Arc<OptOutStore>,
    /// Opens sealed contact addresses.
    pub opener: Arc<dyn ContactOpener>,
    /// Where KPIs go.
    pub metrics: Arc<DeliveryMetrics>,
}

/// What a worker is doing, published after every loop.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerState {
    /// Notifications finished and checkpointed since start.
    pub finished: u64,
    /// Notifications read since start (skipped re-reads not counted).
    pub read: u64,
    /// Notifications waiting for their grouping window to close.
    pub grouping: usize,
    /// Notifications in held messages (quiet hours, not-before, backoff).
    pub held: usize,
    /// Notifications in messages ready to send.
    pub ready: usize,
    /// Notifications in messages being sent.
    pub in_flight: usize,
}

/// A running worker.
#[derive(Debug)]
pub struct DeliveryHandle {
    stop: watch::Sender<bool>,
    state: watch::Receiver<WorkerState>,
    task: tokio::task::JoinHandle<Result<(), DeliveryError>>,
    metrics: Arc<DeliveryMetrics>,
}

impl DeliveryHandle {
    /// The worker's metrics.
    pub fn metrics(&self) -> &Arc<DeliveryMetrics> {
        &self.metrics
    }

    /// The latest published state.
    pub fn state(&self) -> WorkerState {
        *self.state.borrow()
    }

    /// Waits until at least `n` notifications finished (delivered,
    /// suppressed, skipped or dead-lettered, and checkpointed) since start,
    /// or the worker stopped.
    pub async fn wait_finished(&mut self, n: u64) {
        let _ = self.state.wait_for(|s| s.finished >= n).await;
    }

    /// Waits until the state satisfies `pred`, or the worker stopped.
    pub async fn wait_state(&mut self, pred: impl FnMut(&WorkerState) -> bool) {
        let _ = self.state.wait_for(pred).await;
    }

    /// Asks the worker to stop (after sends in flight end) and waits.
    pub async fn stop(self) -> Result<(), DeliveryError> {
        let _ = self.stop.send(true);
        match self.task.await {
            Ok(r) => r,
            Err(_) => Ok(()),
        }
    }
}

/// Reads notify topics and delivers them.
pub struct DeliveryWorker {
    config: DeliveryConfig,
    log: Arc<Log>,
    clock: Arc<dyn DeliveryClock>,
    senders: [Option<Arc<ChannelSender>>; 4],
    opt_outs: Arc<OptOutStore>,
    contacts: OrderContacts,
    metrics: Arc<DeliveryMetrics>,
    scheduler: Scheduler,
    checkpoint: Checkpoint,
    readers: Vec<Reader>,
    in_flight: JoinSet<SendOutcome>,
    in_flight_sends: HashMap<tokio::task::Id, InFlightSend>,
    in_flight_per_channel: [usize; 4],
    in_flight_members: [usize; 12],
    levels: [DegradeLevel; 4],
    /// Per channel, since when ready messages have waited for a rate token.
    rate_wait_since_ms: [Option<u64>; 4],
    dirty: bool,
    last_checkpoint: std::time::Instant,
    last_discovery_ms: u64,
    finished: u64,
    read_count: u64,
    state_tx: watch::Sender<WorkerState>,
    effects: Vec<Effect>,
}

fn ci(c: Channel) -> usize {
    c as usize - 1
}

impl DeliveryWorker {
    /// Builds a worker: loads the checkpoint, creates the dead-letter topic.
    pub fn new(
        config: DeliveryConfig,
        deps: DeliveryDeps,
    ) -> Result<DeliveryWorker, DeliveryError> {
        ensure_topic(&deps.log, &config.dead_letter_topic)?;
        let checkpoint = Checkpoint::load(&config.checkpoint_path)?;
        let mut senders: [Option<Arc<ChannelSender>>; 4] = Default::default();
        for s in deps.senders {
            let ch = s.channel();
            if config.channels.contains(&ch) {
                senders[ci(ch)] = Some(s);
            }
        }
        let contacts = OrderContacts::new(
            deps.log.clone(),
            &config.orders_topic,
            deps.opener,
            config.order_cache_entries_max,
            config.webhook_endpoints.clone(),
        );
        let (state_tx, _) = watch::channel(WorkerState::default());
        Ok(DeliveryWorker {
            scheduler: Scheduler::new(config.clone()),
            config,
            log: deps.log,
            clock: deps.clock,
            senders,
            opt_outs: deps.opt_outs,
            contacts,
            metrics: deps.metrics,
            checkpoint,
            readers: Vec::new(),
            in_flight: JoinSet::new(),
            in_flight_sends: HashMap::new(),
            in_flight_per_channel: [0; 4],
            in_flight_members: [0; 12],
            levels: [DegradeLevel::Normal; 4],
            rate_wait_since_ms: [None; 4],
            dirty: false,
            last_checkpoint: std::time::Instant::now(),
            last_discovery_ms: 0,
            finished: 0,
            read_count: 0,
            state_tx,
            effects: Vec::new(),
        })
    }

    /// Starts the worker on the current runtime.
    pub fn start(self) -> DeliveryHandle {
        let (stop, stop_rx) = watch::channel(false);
        let state = self.state_tx.subscribe();
        let metrics = self.metrics.clone();
        let task = tokio::spawn(self.run(stop_rx));
        DeliveryHandle {
            stop,
            state,
            task,
            metrics,
        }
    }

    fn discover(&mut self, now_ms: u64) {
        if now_ms.saturating_sub(self.last_discovery_ms) < TOPIC_DISCOVERY_INTERVAL_MS
            && !self.readers.is_empty()
        {
            return;
        }
        self.last_discovery_ms = now_ms;
        let topics = self.log.topics();
        for class in Class::all() {
            if self.senders[ci(class.channel)].is_none() {
                continue;
            }
            let name = notify_topic(class.channel, class.priority);
            let Some(t) = topics.iter().find(|t| t.name == name) else {
                continue;
            };
            for pi in &t.partitions {
                let known = self
                    .readers
                    .iter()
                    .any(|r| r.class == class && r.partition.id() == pi.partition);
                if known {
                    continue;
                }
                if let Ok(p) = self.log.partition(&name, pi.partition) {
                    let progress = self
                        .checkpoint
                        .partitions
                        .entry((class.index() as u8, pi.partition))
                        .or_default();
                    // Records retention removed cannot be delivered.
                    if progress.committed < p.start_offset() {
                        *progress = PartitionProgress {
                            committed: p.start_offset(),
                            read_next: p.start_offset(),
                            ..PartitionProgress::default()
                        };
                    }
                    self.readers.push(Reader {
                        class,
                        partition: p,
                        last_log_ms: 0,
                    });
                }
            }
        }
        self.readers
            .sort_by_key(|r| (r.class.priority, r.class.channel, r.partition.id()));
    }

    fn update_levels(&mut self) {
        let mut backlog = [0u64; 12];
        for r in &self.readers {
            let key = (r.class.index() as u8, r.partition.id());
            let committed = self
                .checkpoint
                .partitions
                .get(&key)
                .map_or(0, |p| p.committed);
            backlog[r.class.index()] += r.partition.durable_offset().saturating_sub(committed);
        }
        for class in Class::all() {
            self.metrics.set_backlog(class, backlog[class.index()]);
        }
        let t = self.config.degrade;
        for ch in Channel::ALL {
            let total: u64 = Priority::ALL
                .into_iter()
                .map(|priority| {
                    backlog[Class {
                        channel: ch,
                        priority,
                    }
                    .index()]
                })
                .sum();
            let level = if total > t.normal_digest_backlog {
                DegradeLevel::NormalDigest
            } else if total > t.low_pause_backlog {
                DegradeLevel::LowPaused
            } else if total > t.low_digest_backlog {
                DegradeLevel::LowDigest
            } else {
                DegradeLevel::Normal
            };
            let was = self.levels[ci(ch)];
            if level != was {
                // Operators see the switch in the log, not only as a gauge.
                if level > was {
                    tracing::warn!(channel = ch.as_str(), from = ?was, to = ?level, backlog = total, "delivery degrades: backlog past its threshold");
                } else {
                    tracing::info!(channel = ch.as_str(), from = ?was, to = ?level, backlog = total, "delivery recovers: backlog back under its threshold");
                }
            }
            self.levels[ci(ch)] = level;
            self.metrics
                .channel(ch)
                .degrade_level
                .store(level as u64, std::sync::atomic::Ordering::Relaxed);
        }
    }

    fn pending(&self, class: Class) -> usize {
        self.scheduler.pending(class) + self.in_flight_members[class.index()]
    }

    fn finish(&mut self, source: SourcePos) {
        if let Some(p) = self.checkpoint.partitions.get_mut(&(
            Class {
                channel: source.channel,
                priority: source.priority,
            }
            .index() as u8,
            source.partition,
        )) {
            p.finish(source.offset);
        }
        self.finished += 1;
        self.dirty = true;
    }

    fn read(&mut self, now_ms: u64) -> Result<(), DeliveryError> {
        let budget_end = self.read_count + self.config.read_records_per_loop_max as u64;
        for i in 0..self.readers.len() {
            if self.read_count >= budget_end {
                break;
            }
            let class = self.readers[i].class;
            let level = self.levels[ci(class.channel)];
            if class.priority == Priority::Low && level >= DegradeLevel::LowPaused {
                continue;
            }
            let as_digest_class = (class.priority == Priority::Low
                && level >= DegradeLevel::LowDigest)
                || (class.priority == Priority::Normal && level >= DegradeLevel::NormalDigest);
            let key = (class.index() as u8, self.readers[i].partition.id());
            loop {
                if self.pending(class) >= self.config.pending_per_class_max
                    || self.read_count >= budget_end
                {
                    break;
                }
                let Some(progress) = self.checkpoint.partitions.get(&key) else {
                    break;
                };
                if progress.done_above.len() >= self.config.done_above_commit_max {
                    break;
                }
                let from = progress.read_next;
                let partition = self.readers[i].partition.clone();
                if from >= partition.durable_offset() {
                    break;
                }
                let batches = partition.read(from, self.config.read_bytes_max)?;
                if batches.is_empty() {
                    break;
                }
                for b in &batches {
                    for r in b.records() {
                        if r.offset < from {
                            continue;
                        }
                        self.readers[i].last_log_ms = r.log_time_ms;
                        let source = SourcePos {
                            channel: class.channel,
                            priority: class.priority,
                            partition: partition.id(),
                            offset: r.offset,
                            log_time_ms: r.log_time_ms,
                        };
                        self.intake(key, source, r.value, as_digest_class, now_ms);
                    }
                }
            }
        }
        Ok(())
    }

    fn intake(
        &mut self,
        key: (u8, u32),
        source: SourcePos,
        value: &[u8],
        as_digest_class: bool,
        _now_ms: u64,
    ) {
        let Some(progress) = self.checkpoint.partitions.get_mut(&key) else {
            return;
        };
        if progress.is_done(source.offset) {
            progress.read_past(source.offset);
            return;
        }
        progress.start(source.offset);
        progress.read_past(source.offset);
        self.read_count += 1;
        let counters = self.metrics.channel(source.channel);
        let notification = match decode_notification(value) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, offset = source.offset, "undecodable notify record");
                self.metrics
                    .undecodable
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.finish(source);
                return;
            }
        };
        let contact = match self.contacts.resolve(&notification, source.partition) {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "no contact");
                counters
                    .skipped_no_contact
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.finish(source);
                return;
            }
        };
        if self
            .opt_outs
            .is_opted_out(source.channel, &contact.address, &notification.order_id)
        {
            counters
                .suppressed_opted_out
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.finish(source);
            return;
        }
        let as_digest = notification.digest || as_digest_class;
        self.scheduler.add(
            Member {
                notification,
                source,
                contact,
                raw: value.to_vec(),
            },
            as_digest,
        );
    }

    fn frontiers(&self, now_ms: u64) -> [u64; 12] {
        let mut f = [u64::MAX; 12];
        let caught_up_ms = now_ms.saturating_sub(self.config.group_close_slack_ms);
        for r in &self.readers {
            let key = (r.class.index() as u8, r.partition.id());
            let read_next = self
                .checkpoint
                .partitions
                .get(&key)
                .map_or(0, |p| p.read_next);
            let t = if read_next >= r.partition.durable_offset() {
                caught_up_ms.max(r.last_log_ms)
            } else {
                r.last_log_ms
            };
            let i = r.class.index();
            f[i] = f[i].min(t);
        }
        f
    }

    fn process_effects(&mut self) -> Result<(), DeliveryError> {
        let effects = std::mem::take(&mut self.effects);
        for e in effects {
            match e {
                Effect::Delivered {
                    message,
                    accepted_at_ms,
                } => {
                    let counters = self.metrics.channel(message.channel);
                    match message.kind {
                        MessageKind::Consolidated => {
                            counters
                                .messages_consolidated
                                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        MessageKind::Digest => {
                            counters
                                .messages_digest
                                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        MessageKind::Single => {}
                    }
                    let latencies: Vec<u64> = message
                        .members
                        .iter()
                        .map(|m| accepted_at_ms.saturating_sub(m.notification.event_log_ms))
                        .collect();
                    self.metrics.record_delivery(
                        message.channel,
                        message.priority,
                        &latencies,
                        self.config.costs.of(message.channel),
                        self.config.critical_slo_ms,
                    );
                    tracing::debug!(
                        channel = message.channel.as_str(),
                        priority = message.priority.as_str(),
                        key = %message.idempotency_key(),
                        updates = message.members.len(),
                        "delivered"
                    );
                    for m in &message.members {
                        self.finish(m.source);
                    }
                }
                Effect::Suppressed { message, reason } => {
                    let counters = self.metrics.channel(message.channel);
                    let counter = match reason {
                        Suppressed::BuyerCap => &counters.suppressed_buyer_cap,
                        Suppressed::OptedOut => &counters.suppressed_opted_out,
                    };
                    counter.fetch_add(
                        message.members.len() as u64,
                        std::sync::atomic::Ordering::Relaxed,
                    );
                    for m in &message.members {
                        self.finish(m.source);
                    }
                }
                Effect::DeadLetter { message, reason } => {
                    append_dead_letters(
                        &self.log,
                        &self.config.dead_letter_topic,
                        &message,
                        reason,
                        self.clock.now_ms(),
                    )?;
                    self.metrics
                        .channel(message.channel)
                        .dead_lettered
                        .fetch_add(
                            message.members.len() as u64,
                            std::sync::atomic::Ordering::Relaxed,
                        );
                    for m in &message.members {
                        self.finish(m.source);
                    }
                }
            }
        }
        Ok(())
    }

    /// Starts sends; returns the ms until a rate token frees up, if a
    /// channel is waiting for one.
    fn dispatch(&mut self) -> Option<u64> {
        let mut wait: Option<u64> = None;
        for ch in Channel::ALL {
            let Some(sender) = self.senders[ci(ch)].clone() else {
                continue;
            };
            let allow_low = self.levels[ci(ch)] < DegradeLevel::LowPaused;
            while self.in_flight_per_channel[ci(ch)] < self.config.in_flight_per_channel_max
                && self.scheduler.has_ready(ch, allow_low)
            {
                let now_ms = self.clock.now_ms();
                let counters = self.metrics.channel(ch);
                let slot = match sender.try_acquire(now_ms) {
                    Ok(s) => s,
                    Err(w) => {
                        if self.rate_wait_since_ms[ci(ch)].is_none() {
                            self.rate_wait_since_ms[ci(ch)] = Some(now_ms);
                            counters
                                .rate_limit_waits
                                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        wait = Some(wait.map_or(w, |x| x.min(w)));
                        break;
                    }
                };
                if let Some(since) = self.rate_wait_since_ms[ci(ch)].take() {
                    counters.rate_limit_wait_ms.fetch_add(
                        now_ms.saturating_sub(since),
                        std::sync::atomic::Ordering::Relaxed,
                    );
                }
                let Some(message) = self.scheduler.pop(ch, allow_low) else {
                    break;
                };
                if self.opt_outs.is_opted_out(
                    ch,
                    message.address(),
                    &message
                        .members
                        .first()
                        .map(|m| m.notification.order_id.clone())
                        .unwrap_or_default(),
                ) {
                    self.effects.push(Effect::Suppressed {
                        message,
                        reason: Suppressed::OptedOut,
                    });
                    continue;
                }
                let token = self.opt_outs.fingerprint(ch, message.address());
                let class = Class {
                    channel: message.channel,
                    priority: message.priority,
                };
                self.in_flight_per_channel[ci(ch)] += 1;
                self.in_flight_members[class.index()] += message.members.len();
                let sender = sender.clone();
                let message = Arc::new(message);
                let sending = Arc::clone(&message);
                let task = self
                    .in_flight
                    .spawn(async move { sender.send(&sending, slot, now_ms, &token).await });
                self.in_flight_sends
                    .insert(task.id(), InFlightSend { message, slot });
            }
        }
        wait
    }

    /// A send task ended: with an outcome, or by panicking (counted as a
    /// failed attempt, so the message is retried and, past its attempts,
    /// dead-lettered).
    fn joined(&mut self, joined: Joined) {
        let (id, outcome) = match joined {
            Ok(done) => done,
            Err(e) => {
                tracing::error!(error = %e, "a send task failed; the send counts as a failed attempt");
                (
                    e.id(),
                    SendOutcome::Retryable {
                        error: format!("send task failed: {e}"),
                        retry_after_ms: None,
                    },
                )
            }
        };
        let Some(InFlightSend { message, slot }) = self.in_flight_sends.remove(&id) else {
            return;
        };
        // The task has ended, so this is normally the only reference.
        let message = Arc::try_unwrap(message).unwrap_or_else(|shared| (*shared).clone());
        self.complete(message, slot, outcome);
    }

    fn complete(&mut self, message: Message, slot: usize, outcome: SendOutcome) {
        let now_ms = self.clock.now_ms();
        let ch = message.channel;
        let class = Class {
            channel: message.channel,
            priority: message.priority,
        };
        self.in_flight_per_channel[ci(ch)] -= 1;
        self.in_flight_members[class.index()] -= message.members.len();
        let counters = self.metrics.channel(ch);
        match &outcome {
            SendOutcome::RateLimited { .. } => {
                counters
                    .rate_limited
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if let Some(s) = &self.senders[ci(ch)] {
                    s.on_rate_limited(slot, now_ms);
                }
            }
            SendOutcome::Retryable { error, .. } => {
                tracing::debug!(%error, key = %message.idempotency_key(), "send failed; will retry");
                counters
                    .send_failures
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                counters
                    .retries
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            SendOutcome::Permanent { error } => {
                tracing::debug!(%error, key = %message.idempotency_key(), "send refused for good");
                counters
                    .send_failures
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            SendOutcome::Accepted => {}
        }
        self.scheduler
            .complete(message, outcome, now_ms, &mut self.effects);
    }

    /// Writes the checkpoint when there is progress and the interval
    /// passed. The interval is measured on the monotonic clock: it batches
    /// I/O and has nothing to do with the (injectable) decision clock.
    fn checkpoint_if_due(&mut self, force: bool) -> Result<(), DeliveryError> {
        let elapsed_ms = self.last_checkpoint.elapsed().as_millis() as u64;
        if self.dirty && (force || elapsed_ms >= self.config.checkpoint_interval_ms) {
            self.checkpoint.store(&self.config.checkpoint_path)?;
            self.metrics
                .checkpoints
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.dirty = false;
            self.last_checkpoint = std::time::Instant::now();
        }
        Ok(())
    }

    fn publish(&self) {
        let (grouping, held, ready) = self.scheduler.counts();
        let state = WorkerState {
            // Only checkpointed progress counts as finished.
            finished: if self.dirty {
                self.state_tx.borrow().finished
            } else {
                self.finished
            },
            read: self.read_count,
            grouping,
            held,
            ready,
            in_flight: self.in_flight_members.iter().sum(),
        };
        self.state_tx.send_if_modified(|s| {
            if *s == state {
                false
            } else {
                *s = state;
                true
            }
        });
    }

    /// Runs until `stop` turns true, then lets sends in flight finish (up
    /// to a bound) and writes a last checkpoint.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> Result<(), DeliveryError> {
        loop {
            let now_ms = self.clock.now_ms();
            self.discover(now_ms);
            self.update_levels();
            self.read(now_ms)?;
            let frontiers = self.frontiers(now_ms);
            self.scheduler
                .tick(now_ms, |c| frontiers[c.index()], &mut self.effects);
            self.process_effects()?;
            let token_wait = self.dispatch();
            self.process_effects()?;
            self.checkpoint_if_due(false)?;
            self.publish();
            let mut wake_ms = self.config.idle_poll_ms.max(1);
            if let Some(w) = token_wait {
                wake_ms = wake_ms.min(w.max(1));
            }
            if let Some(due) = self.scheduler.next_due_ms() {
                wake_ms = wake_ms.min(due.saturating_sub(now_ms).max(1));
            }
            if self.dirty {
                wake_ms = wake_ms.min(self.config.checkpoint_interval_ms.max(1));
            }
            tokio::select! {
                Some(joined) = self.in_flight.join_next_with_id(), if !self.in_flight.is_empty() => {
                    self.joined(joined);
                    while let Some(joined) = self.in_flight.try_join_next_with_id() {
                        self.joined(joined);
                    }
                    self.process_effects()?;
                }
                _ = tokio::time::sleep(Duration::from_millis(wake_ms)) => {}
                _ = stop.changed() => break,
            }
        }
        let drain = tokio::time::timeout(Duration::from_millis(SHUTDOWN_DRAIN_MS), async {
            let mut done = Vec::new();
            while let Some(joined) = self.in_flight.join_next_with_id().await {
                done.push(joined);
            }
            done
        })
        .await
        .unwrap_or_default();
        for joined in drain {
            self.joined(joined);
        }
        self.process_effects()?;
        self.checkpoint_if_due(true)?;
        self.publish();
        Ok(())
    }
}

/// Progress of the worker's partitions, for tools: (topic, partition) ->
/// committed offset.
pub fn committed_offsets(checkpoint: &Checkpoint) -> BTreeMap<(String, u32), u64> {
    checkpoint
        .partitions
        .iter()
        .filter_map(|((class, partition), p)| {
            let c = Class::all().nth(usize::from(*class))?;
            Some((
                (notify_topic(c.channel, c.priority), *partition),
                p.committed,
            ))
        })
        .collect()
}
