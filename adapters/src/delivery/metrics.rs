//! Delivery KPIs as metrics: delivery rate and latency per channel (from
//! the carrier event's log time to the provider's acceptance), the
//! critical-latency objective (95% within 60 s) and its histogram, cost per
//! update, and the counts behind them (failed sends, retries, 429s, waits
//! for a rate token, dead letters, suppressions, backlog per channel and
//! priority).
//!
//! Counters are atomics; latencies go into one HDR histogram per channel
//! behind a mutex taken once per accepted message, off the send path.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use dropline_operators::model::{Channel, Priority};
use hdrhistogram::Histogram;

use super::scheduler::Class;

/// Latency bucket bounds exported to Prometheus, seconds.
const LATENCY_BUCKETS_S: [f64; 13] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0,
];
/// Largest latency the histograms track, ms (longer ones are clamped).
const LATENCY_MS_MAX: u64 = 7 * 86_400_000;

/// Counters of one channel.
#[derive(Debug, Default)]
pub struct ChannelCounters {
    /// Messages the provider accepted.
    pub messages_accepted: AtomicU64,
    /// Updates (notifications) those messages carried.
    pub updates_delivered: AtomicU64,
    /// Messages that merged several updates of one order.
    pub messages_consolidated: AtomicU64,
    /// Digest messages.
    pub messages_digest: AtomicU64,
    /// Sends that failed (5xx, timeouts, refusals; 429s are counted apart).
    pub send_failures: AtomicU64,
    /// Retries scheduled.
    pub retries: AtomicU64,
    /// 429 answers.
    pub rate_limited: AtomicU64,
    /// Times ready messages found the channel's rate bucket empty and had
    /// to wait for a token.
    pub rate_limit_waits: AtomicU64,
    /// Time ready messages spent waiting for a rate token, ms.
    pub rate_limit_wait_ms: AtomicU64,
    /// Updates dead-lettered.
    pub dead_lettered: AtomicU64,
    /// Updates not sent because the contact opted out.
    pub suppressed_opted_out: AtomicU64,
    /// Updates not sent because of the per-buyer cap.
    pub suppressed_buyer_cap: AtomicU64,
    /// Updates with no usable contact (none, no consent, unreadable).
    pub skipped_no_contact: AtomicU64,
    /// Cost of accepted messages, millionths.
    pub cost_micro: AtomicU64,
    /// Critical updates delivered within the objective.
    pub critical_within_slo: AtomicU64,
    /// Critical updates delivered.
    pub critical_delivered: AtomicU64,
    /// Degradation level (0 normal, 1 low digests, 2 low paused, 3 normal
    /// digests too).
    pub degrade_level: AtomicU64,
}

/// All delivery metrics of a node.
#[derive(Debug)]
pub struct DeliveryMetrics {
    channels: [ChannelCounters; 4],
    latency_ms: [Mutex<Option<Histogram<u64>>>; 4],
    critical_latency_ms: Mutex<Option<Histogram<u64>>>,
    backlog: [AtomicU64; 12],
    /// Delivery receipts received from providers.
    pub receipts: AtomicU64,
    /// Opt-outs recorded (STOP replies, unsubscribe links).
    pub opt_outs: AtomicU64,
    /// Intent records that did not decode.
    pub undecodable: AtomicU64,
    /// Checkpoints written.
    pub checkpoints: AtomicU64,
}

/// A latency histogram; `None` only if the constant bounds were invalid.
fn histogram() -> Mutex<Option<Histogram<u64>>> {
    Mutex::new(Histogram::new_with_bounds(1, LATENCY_MS_MAX, 3).ok())
}

impl Default for DeliveryMetrics {
    fn default() -> Self {
        DeliveryMetrics {
            channels: Default::default(),
            latency_ms: [histogram(), histogram(), histogram(), histogram()],
            critical_latency_ms: histogram(),
            backlog: Default::default(),
            receipts: AtomicU64::new(0),
            opt_outs: AtomicU64::new(0),
            undecodable: AtomicU64::new(0),
            checkpoints: AtomicU64::new(0),
        }
    }
}

fn ci(c: Channel) -> usize {
    c as usize - 1
}

/// Appends a Prometheus histogram of a millisecond HDR histogram in
/// seconds. `label` is empty or ends with a comma (`channel="sms",`).
fn render_histogram(out: &mut String, name: &str, label: &str, h: &Histogram<u64>) {
    for b in LATENCY_BUCKETS_S {
        let bound_ms = (b * 1000.0) as u64;
        let n: u64 = h
            .iter_recorded()
            .filter(|v| v.value_iterated_to() <= bound_ms)
            .map(|v| v.count_at_value())
            .sum();
        let _ = writeln!(out, "{name}_bucket{{{label}le=\"{b}\"}} {n}");
    }
    let _ = writeln!(out, "{name}_bucket{{{label}le=\"+Inf\"}} {}", h.len());
    let sum_s = h.mean() * h.len() as f64 / 1000.0;
    let bare = label.trim_end_matches(',');
    if bare.is_empty() {
        let _ = writeln!(out, "{name}_sum {sum_s}\n{name}_count {}", h.len());
    } else {
        let _ = writeln!(out, "{name}_sum{{{bare}}} {sum_s}");
        let _ = writeln!(out, "{name}_count{{{bare}}} {}", h.len());
    }
}

impl DeliveryMetrics {
    /// The counters of a channel.
    pub fn channel(&self, c: Channel) -> &ChannelCounters {
        &self.channels[ci(c)]
    }

    /// Records an accepted message carrying `updates` updates, with the
    /// latency of each (ms from carrier event to acceptance).
    pub fn record_delivery(
        &self,
        channel: Channel,
        priority: Priority,
        latencies_ms: &[u64],
        cost_micro: u64,
        slo_ms: u64,
    ) {
        let c = self.channel(channel);
        c.messages_accepted.fetch_add(1, Ordering::Relaxed);
        c.updates_delivered
            .fetch_add(latencies_ms.len() as u64, Ordering::Relaxed);
        c.cost_micro.fetch_add(cost_micro, Ordering::Relaxed);
        {
            let mut g = self.latency_ms[ci(channel)]
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            for l in latencies_ms {
                let Some(h) = g.as_mut() else { break };
                let _ = h.record((*l).clamp(1, LATENCY_MS_MAX));
            }
        }
        if priority == Priority::Critical {
            let within = latencies_ms.iter().filter(|l| **l <= slo_ms).count() as u64;
            c.critical_within_slo.fetch_add(within, Ordering::Relaxed);
            c.critical_delivered
                .fetch_add(latencies_ms.len() as u64, Ordering::Relaxed);
            let mut g = self
                .critical_latency_ms
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            for l in latencies_ms {
                let Some(h) = g.as_mut() else { break };
                let _ = h.record((*l).clamp(1, LATENCY_MS_MAX));
            }
        }
    }

    /// Sets the backlog (records not finished) of a class.
    pub fn set_backlog(&self, class: Class, records: u64) {
        self.backlog[class.index()].store(records, Ordering::Relaxed);
    }

    /// The backlog of a class.
    pub fn backlog(&self, class: Class) -> u64 {
        self.backlog[class.index()].load(Ordering::Relaxed)
    }

    /// A quantile (0..=1) of critical latency over all channels, ms.
    pub fn critical_latency_quantile_ms(&self, q: f64) -> u64 {
        self.critical_latency_ms
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map_or(0, |h| h.value_at_quantile(q))
    }

    /// A quantile (0..=1) of a channel's delivery latency, ms.
    pub fn latency_quantile_ms(&self, channel: Channel, q: f64) -> u64 {
        self.latency_ms[ci(channel)]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map_or(0, |h| h.value_at_quantile(q))
    }

    /// Appends the Prometheus text exposition of every metric.
    pub fn render_prometheus(&self, out: &mut String) {
        type Field = fn(&ChannelCounters) -> &AtomicU64;
        let counters: [(&str, &str, Field); 16] = [
            (
                "dropline_delivery_messages_accepted_total",
                "Messages accepted by the provider.",
                |c| &c.messages_accepted,
            ),
            (
                "dropline_delivery_updates_delivered_total",
                "Updates carried by accepted messages.",
                |c| &c.updates_delivered,
            ),
            (
                "dropline_delivery_messages_consolidated_total",
                "Messages merging several updates of one order.",
                |c| &c.messages_consolidated,
            ),
            (
                "dropline_delivery_messages_digest_total",
                "Digest messages.",
                |c| &c.messages_digest,
            ),
            (
                "dropline_delivery_send_failures_total",
                "Sends that failed (5xx, timeouts, refusals; not 429).",
                |c| &c.send_failures,
            ),
            (
                "dropline_delivery_retries_total",
                "Retries scheduled.",
                |c| &c.retries,
            ),
            (
                "dropline_delivery_rate_limited_total",
                "429 answers from providers.",
                |c| &c.rate_limited,
            ),
            (
                "dropline_delivery_rate_limit_waits_total",
                "Times ready messages waited for a rate token.",
                |c| &c.rate_limit_waits,
            ),
            (
                "dropline_delivery_rate_limit_wait_ms_total",
                "Time ready messages spent waiting for a rate token, ms.",
                |c| &c.rate_limit_wait_ms,
            ),
            (
                "dropline_delivery_dead_lettered_total",
                "Updates given up and dead-lettered.",
                |c| &c.dead_lettered,
            ),
            (
                "dropline_delivery_suppressed_opted_out_total",
                "Updates not sent: contact opted out.",
                |c| &c.suppressed_opted_out,
            ),
            (
                "dropline_delivery_suppressed_buyer_cap_total",
                "Updates not sent: per-buyer cap.",
                |c| &c.suppressed_buyer_cap,
            ),
            (
                "dropline_delivery_skipped_no_contact_total",
                "Updates with no usable contact.",
                |c| &c.skipped_no_contact,
            ),
            (
                "dropline_delivery_cost_micro_total",
                "Cost of accepted messages, millionths of the currency unit.",
                |c| &c.cost_micro,
            ),
            (
                "dropline_delivery_critical_within_slo_total",
                "Critical updates delivered within the objective.",
                |c| &c.critical_within_slo,
            ),
            (
                "dropline_delivery_critical_delivered_total",
                "Critical updates delivered.",
                |c| &c.critical_delivered,
            ),
        ];
        for (name, help, field) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for ch in Channel::ALL {
                let v = field(self.channel(ch)).load(Ordering::Relaxed);
                let _ = writeln!(out, "{name}{{channel=\"{}\"}} {v}", ch.as_str());
            }
        }
        let name = "dropline_delivery_degrade_level";
        let _ = writeln!(
            out,
            "# HELP {name} 0 normal, 1 low in digests, 2 low paused, 3 normal in digests.\n# TYPE {name} gauge"
        );
        for ch in Channel::ALL {
            let v = self.channel(ch).degrade_level.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}{{channel=\"{}\"}} {v}", ch.as_str());
        }
        let name = "dropline_delivery_cost_per_update_micro";
        let _ = writeln!(
            out,
            "# HELP {name} Cost per delivered update, millionths.\n# TYPE {name} gauge"
        );
        for ch in Channel::ALL {
            let c = self.channel(ch);
            let updates = c.updates_delivered.load(Ordering::Relaxed);
            let cost = c.cost_micro.load(Ordering::Relaxed);
            let v = if updates == 0 {
                0.0
            } else {
                cost as f64 / updates as f64
            };
            let _ = writeln!(out, "{name}{{channel=\"{}\"}} {v}", ch.as_str());
        }
        let name = "dropline_delivery_backlog_records";
        let _ = writeln!(
            out,
            "# HELP {name} Notifications read or readable but not finished.\n# TYPE {name} gauge"
        );
        for class in Class::all() {
            let _ = writeln!(
                out,
                "{name}{{channel=\"{}\",priority=\"{}\"}} {}",
                class.channel.as_str(),
                class.priority.as_str(),
                self.backlog(class)
            );
        }
        let name = "dropline_delivery_latency_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Carrier event log time to provider acceptance.\n# TYPE {name} histogram"
        );
        for ch in Channel::ALL {
            let g = self.latency_ms[ci(ch)]
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(h) = g.as_ref() {
                let label = format!("channel=\"{}\",", ch.as_str());
                render_histogram(out, name, &label, h);
            }
        }
        let name = "dropline_delivery_critical_latency_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Critical updates only: carrier event log time to provider acceptance.\n# TYPE {name} histogram"
        );
        {
            let g = self
                .critical_latency_ms
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(h) = g.as_ref() {
                render_histogram(out, name, "", h);
            }
        }
        for (name, help, v) in [
            (
                "dropline_delivery_receipts_total",
                "Delivery receipts received.",
                &self.receipts,
            ),
            (
                "dropline_delivery_opt_outs_total",
                "Opt-outs recorded.",
                &self.opt_outs,
            ),
            (
                "dropline_delivery_undecodable_total",
                "Notify records that did not decode.",
                &self.undecodable,
            ),
            (
                "dropline_delivery_checkpoints_total",
                "Delivery checkpoints written.",
                &self.checkpoints,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
    }
}
