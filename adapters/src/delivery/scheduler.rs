//! The sans-IO core of delivery: grouping (consolidation and digests),
//! holds (quiet hours, not-before times, backoff), per-buyer caps, the
//! ready queues by priority, and what happens after each send.
//!
//! Why groups close on log time: a message's idempotency key is derived
//! from its members, so after a crash the same members must form the same
//! message again. Members are grouped by their records' log times into
//! fixed windows, and a window closes only when every partition of its
//! topic has been read past it (or is caught up and the window ended
//! `group_close_slack_ms` ago). What is in a window then depends only on
//! the log, not on when the worker happened to read it.
//!
//! Time comes in as arguments; effects go out in a vector. No I/O here.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};

use dropline_operators::model::{Channel, Priority};

use super::config::DeliveryConfig;
use super::notification::{Member, Message, MessageKind, SourcePos};
use super::retry::{Jitter, RetryBudget};

/// A (channel, priority) pair: one set of notify topics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Class {
    /// The channel.
    pub channel: Channel,
    /// The priority.
    pub priority: Priority,
}

impl Class {
    /// Index in 0..12.
    pub fn index(self) -> usize {
        (self.channel as usize - 1) * 3 + (self.priority as usize - 1)
    }

    /// Every class.
    pub fn all() -> impl Iterator<Item = Class> {
        Channel::ALL.into_iter().flat_map(|channel| {
            Priority::ALL
                .into_iter()
                .map(move |priority| Class { channel, priority })
        })
    }
}

/// Why members were finished without being sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Suppressed {
    /// The per-buyer cap was reached.
    BuyerCap,
    /// The contact opted out (checked again just before sending).
    OptedOut,
}

/// What the driver must do after a scheduler step.
#[derive(Debug)]
pub enum Effect {
    /// The provider accepted the message: its members are done.
    Delivered {
        /// The message.
        message: Message,
        /// When it was accepted, ms.
        accepted_at_ms: u64,
    },
    /// The message's members are done without a send.
    Suppressed {
        /// The message.
        message: Message,
        /// Why.
        reason: Suppressed,
    },
    /// The message goes to the dead-letter topic; then its members are done.
    DeadLetter {
        /// The message (with attempts and last error).
        message: Message,
        /// Why it was given up.
        reason: DeadLetterReason,
    },
}

/// Why a message was given up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterReason {
    /// The provider refused it permanently (bad number, unregistered token).
    Permanent,
    /// Every attempt failed.
    AttemptsExhausted,
    /// The retry budget was spent.
    RetryBudgetExhausted,
    /// Too many 429 answers.
    RateLimitedTooOften,
}

impl DeadLetterReason {
    /// Snake-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterReason::Permanent => "permanent",
            DeadLetterReason::AttemptsExhausted => "attempts_exhausted",
            DeadLetterReason::RetryBudgetExhausted => "retry_budget_exhausted",
            DeadLetterReason::RateLimitedTooOften => "rate_limited_too_often",
        }
    }
}

/// How a send ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendOutcome {
    /// Accepted by the provider (or already accepted under this key).
    Accepted,
    /// A failure worth retrying (5xx, timeout, connection refused).
    Retryable {
        /// What happened.
        error: String,
        /// The provider's `Retry-After`, if any, ms.
        retry_after_ms: Option<u64>,
    },
    /// 429: over the provider's limit; retry after this many ms.
    RateLimited {
        /// Wait, ms.
        retry_after_ms: u64,
    },
    /// Refused for good.
    Permanent {
        /// What the provider said.
        error: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct GroupKey {
    class: Class,
    digest: bool,
    key: String,
    address: String,
}

#[derive(Debug, Default)]
struct Group {
    members: Vec<Member>,
}

/// The delivery core for one worker.
#[derive(Debug)]
pub struct Scheduler {
    config: DeliveryConfig,
    groups: BTreeMap<(u64, GroupKey), Group>,
    members_grouped: [usize; 12],
    held: BinaryHeap<Reverse<(u64, u64)>>,
    held_messages: HashMap<u64, Message>,
    held_seq: u64,
    held_members: [usize; 12],
    ready: [VecDeque<Message>; 12],
    ready_members: [usize; 12],
    caps: HashMap<String, (u64, u32)>,
    budget: RetryBudget,
    jitter: Jitter,
}

impl Scheduler {
    /// An empty scheduler.
    pub fn new(config: DeliveryConfig) -> Scheduler {
        Scheduler {
            budget: RetryBudget::new(&config.retry),
            jitter: Jitter::new(config.jitter_seed),
            config,
            groups: BTreeMap::new(),
            members_grouped: [0; 12],
            held: BinaryHeap::new(),
            held_messages: HashMap::new(),
            held_seq: 0,
            held_members: [0; 12],
            ready: Default::default(),
            ready_members: [0; 12],
            caps: HashMap::new(),
        }
    }

    /// Notifications of `class` held here (grouping, held or ready; not in
    /// flight).
    pub fn pending(&self, class: Class) -> usize {
        let i = class.index();
        self.members_grouped[i] + self.held_members[i] + self.ready_members[i]
    }

    /// Notifications waiting for their window to close, in held messages
    /// and in ready messages, over all classes.
    pub fn counts(&self) -> (usize, usize, usize) {
        (
            self.members_grouped.iter().sum(),
            self.held_members.iter().sum(),
            self.ready_members.iter().sum(),
        )
    }

    /// Adds a notification. `as_digest` puts it in its buyer's digest.
    pub fn add(&mut self, member: Member, as_digest: bool) {
        let class = Class {
            channel: member.source.channel,
            priority: member.source.priority,
        };
        let (window, key) = if as_digest {
            (
                self.config.digest_window_ms,
                member.notification.buyer_id.clone(),
            )
        } else {
            (
                self.config.consolidation_window_ms,
                format!(
                    "{}\u{1f}{}",
                    member.notification.order_id,
                    member.notification.status.as_str()
                ),
            )
        };
        let bucket_end = member
            .source
            .log_time_ms
            .checked_div(window)
            .map_or(0, |b| (b + 1) * window);
        let gk = GroupKey {
            class,
            digest: as_digest,
            key,
            address: member.contact.address.clone(),
        };
        self.members_grouped[class.index()] += 1;
        self.groups
            .entry((bucket_end, gk))
            .or_default()
            .members
            .push(member);
    }

    /// Closes groups whose window is over (`frontier_ms(class)` is the log
    /// time every partition of the class has been read to), forcing the
    /// oldest closed when a class holds more than its maximum; releases
    /// held messages that are due.
    pub fn tick(
        &mut self,
        now_ms: u64,
        frontier_ms: impl Fn(Class) -> u64,
        effects: &mut Vec<Effect>,
    ) {
        // Groups are ordered by window end: stop at the first window no
        // class has reached, unless a class is over its maximum and must
        // have its oldest groups forced out.
        let max = self.config.pending_per_class_max;
        let any_over = self.members_grouped.iter().any(|n| *n >= max);
        let horizon = Class::all().map(&frontier_ms).max().unwrap_or(0);
        let mut closing = Vec::new();
        for (bucket_end, gk) in self.groups.keys() {
            if *bucket_end > horizon && !any_over {
                break;
            }
            let over = self.members_grouped[gk.class.index()] >= max;
            if *bucket_end <= frontier_ms(gk.class) || over {
                closing.push((*bucket_end, gk.clone()));
            }
        }
        for k in closing {
            if let Some(group) = self.groups.remove(&k) {
                let class = k.1.class;
                self.members_grouped[class.index()] -= group.members.len();
                let kind = if k.1.digest {
                    MessageKind::Digest
                } else if group.members.len() > 1 {
                    MessageKind::Consolidated
                } else {
                    MessageKind::Single
                };
                let message = Message::new(class.channel, kind, group.members);
                self.admit(message, now_ms, effects);
            }
        }
        while let Some(Reverse((due, seq))) = self.held.peek().copied() {
            if due > now_ms {
                break;
            }
            self.held.pop();
            if let Some(m) = self.held_messages.remove(&seq) {
                let i = class_of(&m).index();
                self.held_members[i] -= m.members.len();
                self.push_ready(m);
            }
        }
    }

    /// When the next held message is due, if any.
    pub fn next_due_ms(&self) -> Option<u64> {
        self.held.peek().map(|Reverse((due, _))| *due)
    }

    /// The earliest window end among open groups, if any.
    pub fn next_window_end_ms(&self) -> Option<u64> {
        self.groups.keys().next().map(|(end, _)| *end)
    }

    fn admit(&mut self, message: Message, now_ms: u64, effects: &mut Vec<Effect>) {
        if message.priority != Priority::Critical
            && let Some(cap) = self.config.buyer_cap
        {
            let buyer = message
                .members
                .first()
                .map(|m| m.notification.buyer_id.clone())
                .unwrap_or_default();
            let window = now_ms / cap.window_ms.max(1);
            if self.caps.len() >= self.config.buyer_cap_entries_max {
                self.caps.retain(|_, (w, _)| *w == window);
            }
            let entry = self.caps.entry(buyer).or_insert((window, 0));
            if entry.0 != window {
                *entry = (window, 0);
            }
            if entry.1 >= cap.messages_max {
                effects.push(Effect::Suppressed {
                    message,
                    reason: Suppressed::BuyerCap,
                });
                return;
            }
            entry.1 += 1;
        }
        let mut due = message
            .members
            .iter()
            .map(|m| m.notification.send_after_ms)
            .max()
            .unwrap_or(0);
        if message.priority != Priority::Critical
            && let Some(q) = self.config.quiet_hours
            && let Some(contact) = message.contact()
            && let Some(release) = q.release_at_ms(now_ms.max(due), &contact.time_zone)
        {
            due = due.max(release);
        }
        if due > now_ms {
            self.hold(message, due);
        } else {
            self.push_ready(message);
        }
    }

    fn hold(&mut self, message: Message, due_ms: u64) {
        let i = class_of(&message).index();
        self.held_members[i] += message.members.len();
        self.held_seq += 1;
        self.held.push(Reverse((due_ms, self.held_seq)));
        self.held_messages.insert(self.held_seq, message);
    }

    fn push_ready(&mut self, message: Message) {
        let i = class_of(&message).index();
        self.ready_members[i] += message.members.len();
        self.ready[i].push_back(message);
    }

    /// Whether `channel` has a message ready at a priority allowed now.
    pub fn has_ready(&self, channel: Channel, allow_low: bool) -> bool {
        Priority::ALL.into_iter().any(|priority| {
            (allow_low || priority != Priority::Low)
                && !self.ready[Class { channel, priority }.index()].is_empty()
        })
    }

    /// The next message for `channel`: critical, then normal, then low
    /// (unless low is paused).
    pub fn pop(&mut self, channel: Channel, allow_low: bool) -> Option<Message> {
        for priority in Priority::ALL {
            if priority == Priority::Low && !allow_low {
                continue;
            }
            let i = Class { channel, priority }.index();
            if let Some(m) = self.ready[i].pop_front() {
                self.ready_members[i] -= m.members.len();
                if m.attempts == 0 && m.rate_limited == 0 {
                    self.budget.on_first_attempt();
                }
                return Some(m);
            }
        }
        None
    }

    /// Records how a send of `message` ended.
    pub fn complete(
        &mut self,
        mut message: Message,
        outcome: SendOutcome,
        now_ms: u64,
        effects: &mut Vec<Effect>,
    ) {
        match outcome {
            SendOutcome::Accepted => effects.push(Effect::Delivered {
                message,
                accepted_at_ms: now_ms,
            }),
            SendOutcome::Permanent { error } => {
                message.attempts += 1;
                message.last_error = Some(error);
                effects.push(Effect::DeadLetter {
                    message,
                    reason: DeadLetterReason::Permanent,
                });
            }
            SendOutcome::RateLimited { retry_after_ms } => {
                message.rate_limited += 1;
                message.last_error = Some("429 too many requests".into());
                if message.rate_limited > self.config.retry.rate_limited_max {
                    effects.push(Effect::DeadLetter {
                        message,
                        reason: DeadLetterReason::RateLimitedTooOften,
                    });
                } else {
                    self.hold(message, now_ms + retry_after_ms.max(1));
                }
            }
            SendOutcome::Retryable {
                error,
                retry_after_ms,
            } => {
                message.attempts += 1;
                message.last_error = Some(error);
                if message.attempts >= self.config.retry.attempts_max {
                    effects.push(Effect::DeadLetter {
                        message,
                        reason: DeadLetterReason::AttemptsExhausted,
                    });
                } else if !self.budget.try_retry() {
                    effects.push(Effect::DeadLetter {
                        message,
                        reason: DeadLetterReason::RetryBudgetExhausted,
                    });
                } else {
                    let backoff = self
                        .config
                        .retry
                        .backoff_ms(message.attempts, self.jitter.next_u64());
                    let wait = backoff.max(retry_after_ms.unwrap_or(0));
                    self.hold(message, now_ms + wait);
                }
            }
        }
    }

    /// Puts a popped message back at the front of its queue (the contact
    /// opted out meanwhile is handled by the driver; this is for sends that
    /// could not start).
    pub fn unpop(&mut self, message: Message) {
        let i = class_of(&message).index();
        self.ready_members[i] += message.members.len();
        self.ready[i].push_front(message);
    }
}

fn class_of(m: &Message) -> Class {
    Class {
        channel: m.channel,
        priority: m.priority,
    }
}

/// The source positions of a message's members.
pub fn sources(m: &Message) -> impl Iterator<Item = SourcePos> + '_ {
    m.members.iter().map(|x| x.source)
}
