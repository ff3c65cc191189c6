//! Configuration of the delivery workers: every limit named, with its unit.

use std::collections::BTreeMap;
use std::path::PathBuf;

use dropline_operators::model::Channel;
use serde::{Deserialize, Serialize};

use super::quiet_hours::QuietHours;
use super::retry::RetryPolicy;

/// Per-buyer cap on non-critical messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuyerCap {
    /// Most non-critical messages per buyer per window.
    pub messages_max: u32,
    /// The window, in ms (aligned to the epoch).
    pub window_ms: u64,
}

/// Backlog thresholds (records not yet delivered, per channel) at which
/// delivery degrades from the bottom. Critical is never degraded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DegradeThresholds {
    /// Above this, low-priority updates go into digests.
    pub low_digest_backlog: u64,
    /// Above this, low-priority updates are paused (left in the log).
    pub low_pause_backlog: u64,
    /// Above this, normal-priority updates go into digests too.
    pub normal_digest_backlog: u64,
}

impl Default for DegradeThresholds {
    fn default() -> Self {
        DegradeThresholds {
            low_digest_backlog: 10_000,
            low_pause_backlog: 100_000,
            normal_digest_backlog: 200_000,
        }
    }
}

/// What one channel message costs, in millionths of a currency unit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelCosts {
    /// Cost per message, by channel name (`webhook`, `email`, `sms`, `push`).
    pub micro_per_message: BTreeMap<String, u64>,
}

impl Default for ChannelCosts {
    fn default() -> Self {
        let mut m = BTreeMap::new();
        m.insert("webhook".into(), 0);
        m.insert("email".into(), 100);
        m.insert("sms".into(), 7_900);
        m.insert("push".into(), 0);
        ChannelCosts {
            micro_per_message: m,
        }
    }
}

impl ChannelCosts {
    /// Cost of one message on `channel`.
    pub fn of(&self, channel: Channel) -> u64 {
        self.micro_per_message
            .get(channel.as_str())
            .copied()
            .unwrap_or(0)
    }
}

/// Configuration of a [`super::DeliveryWorker`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeliveryConfig {
    /// Consumer group name (checkpoint file name).
    pub group: String,
    /// Channels this worker delivers.
    pub channels: Vec<Channel>,
    /// Where the checkpoint (offsets and done sets) lives.
    pub checkpoint_path: PathBuf,
    /// Topic holding the orders (contacts are read there).
    pub orders_topic: String,
    /// Topic receiving dead letters.
    pub dead_letter_topic: String,
    /// Bytes read from a partition per read call.
    pub read_bytes_max: usize,
    /// Notifications taken in per loop (critical topics first), so that
    /// sending starts while a large backlog is still being read.
    pub read_records_per_loop_max: usize,
    /// Most notifications held (grouping, queued, in flight) per channel
    /// and priority before reading that topic pauses.
    pub pending_per_class_max: usize,
    /// Sends in flight per channel.
    pub in_flight_per_channel_max: usize,
    /// Notifications of one order and status whose records' log times fall
    /// in the same window of this many ms become one message; 0 disables.
    pub consolidation_window_ms: u64,
    /// Low-priority updates of one buyer in the same window of this many
    /// ms become one digest.
    pub digest_window_ms: u64,
    /// How long after a window ends, once a partition is caught up, it is
    /// closed (covers appends stamped before but made durable after).
    pub group_close_slack_ms: u64,
    /// Quiet hours for non-critical messages; `None` disables.
    pub quiet_hours: Option<QuietHours>,
    /// Per-buyer cap on non-critical messages; `None` disables.
    pub buyer_cap: Option<BuyerCap>,
    /// Entries of the per-buyer cap table before old windows are dropped.
    pub buyer_cap_entries_max: usize,
    /// Backlog thresholds for degradation.
    pub degrade: DegradeThresholds,
    /// Retries.
    pub retry: RetryPolicy,
    /// Seed of the backoff jitter.
    pub jitter_seed: u64,
    /// Most ms between checkpoint writes while there is progress.
    pub checkpoint_interval_ms: u64,
    /// Most done offsets kept above a partition's committed offset; past
    /// it, reading that partition waits for the oldest to finish.
    pub done_above_commit_max: usize,
    /// Wait between polls of the log when nothing is due, ms.
    pub idle_poll_ms: u64,
    /// Cost per message per channel (KPI).
    pub costs: ChannelCosts,
    /// Critical-notification latency objective, ms (95% within it).
    pub critical_slo_ms: u64,
    /// Entries of the order cache (contact lookups).
    pub order_cache_entries_max: usize,
    /// Webhook endpoint per marketplace; a marketplace listed here gets its
    /// webhooks there, whatever webhook contact its orders carry.
    pub webhook_endpoints: BTreeMap<String, String>,
}

impl DeliveryConfig {
    /// Defaults for all channels with the checkpoint at `checkpoint_path`.
    pub fn new(checkpoint_path: impl Into<PathBuf>) -> DeliveryConfig {
        DeliveryConfig {
            group: "delivery".into(),
            channels: Channel::ALL.to_vec(),
            checkpoint_path: checkpoint_path.into(),
            orders_topic: "orders".into(),
            dead_letter_topic: super::dead_letter::DEAD_LETTER_TOPIC.into(),
            read_bytes_max: 1 << 20,
            read_records_per_loop_max: 4_096,
            pending_per_class_max: 50_000,
            in_flight_per_channel_max: 64,
            consolidation_window_ms: 2_000,
            digest_window_ms: 3_600_000,
            group_close_slack_ms: 500,
            quiet_hours: Some(QuietHours::default()),
            buyer_cap: Some(BuyerCap {
                messages_max: 20,
                window_ms: 86_400_000,
            }),
            buyer_cap_entries_max: 1_000_000,
            degrade: DegradeThresholds::default(),
            retry: RetryPolicy::default(),
            jitter_seed: 0x5eed,
            checkpoint_interval_ms: 100,
            done_above_commit_max: 200_000,
            idle_poll_ms: 20,
            costs: ChannelCosts::default(),
            critical_slo_ms: 60_000,
            order_cache_entries_max: 100_000,
            webhook_endpoints: BTreeMap::new(),
        }
    }
}
