//! `dropline bench delivery`: a superdrop-shaped backlog of notification
//! intents in a real log, delivered on all four channels against the
//! provider simulator, a real SMTP server (python3-aiosmtpd) and a webhook
//! receiver.
//!
//! What it shows: critical notifications go out first (critical latency
//! p95/p99 from the intent's event time to the provider's acceptance,
//! against the 60 s objective) while the SMS pool runs at its limit, with
//! no rate-limit violation observed by the simulator and no message
//! delivered twice. Throughput is bounded by the providers' limits: the SMS
//! pool's figure is reported next to its configured ceiling.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use dropline_adapters::delivery::{Notification, seed};
use dropline_loadgen::sinks::SmtpSinkError;
use dropline_log::{Log, LogConfig, LogError};
use dropline_operators::model::{Carrier, Channel, Contact, Priority, ShipmentOrder, Status};

use crate::Report;
use crate::delivery_rig::{DeliveryRig, SmsPool, Smtp, now_ms, start_err};

const ORDERS_TOPIC: &str = "orders";

/// Arguments of the delivery bench.
#[derive(Clone, Debug)]
pub struct DeliveryBenchArgs {
    /// Notification intents to deliver.
    pub notifications: u64,
    /// Partitions of `orders` and the notify topics.
    pub partitions: u32,
    /// SMS long codes in the sender pool (1/s each).
    pub long_codes: u32,
    /// SMS toll-free numbers in the pool (3/s each).
    pub toll_free: u32,
    /// SMS short codes in the pool (100/s each).
    pub short_codes: u32,
    /// Injected provider 500s, per million sends.
    pub error_500_ppm: u32,
    /// Seed of the intent mix.
    pub seed: u64,
}

impl Default for DeliveryBenchArgs {
    fn default() -> Self {
        DeliveryBenchArgs {
            notifications: 10_000,
            partitions: 4,
            long_codes: 10,
            toll_free: 2,
            short_codes: 1,
            error_500_ppm: 0,
            seed: 1,
        }
    }
}

/// Why the bench failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryBenchError {
    /// The log failed.
    #[error("log: {0}")]
    Log(#[from] LogError),
    /// I/O (temporary directory, runtime, sockets).
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The SMTP server could not start.
    #[error("{0}")]
    Smtp(#[from] SmtpSinkError),
    /// A component could not start.
    #[error("{what}: {reason}")]
    Start {
        /// The component.
        what: &'static str,
        /// Its error.
        reason: String,
    },
}

struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn percent(&mut self) -> u64 {
        self.next() % 100
    }
}

fn order(i: u64, tracking: &str, order_id: &str, hooks_url: &str) -> ShipmentOrder {
    ShipmentOrder {
        tracking_number: tracking.into(),
        carrier: Carrier::ALL[(i % 4) as usize],
        marketplace: "superdrop".into(),
        seller: "seller-1".into(),
        order_id: order_id.into(),
        skus: vec!["DROP-1".into()],
        buyer_id: format!("buyer-{i}"),
        promised_from_ms: 0,
        promised_to_ms: 0,
        buyer_locale: "en-US".into(),
        buyer_time_zone: "UTC".into(),
        destination_postal_code: "10001".into(),
        drop: true,
        contacts: vec![
            Contact {
                channel: Channel::Email,
                address: format!("buyer{i}@example.test"),
                consent: true,
            },
            Contact {
                channel: Channel::Sms,
                address: format!("+1555{i:07}"),
                consent: true,
            },
            Contact {
                channel: Channel::Push,
                address: format!("push-{i}"),
                consent: true,
            },
            Contact {
                channel: Channel::Webhook,
                address: format!("{hooks_url}/hooks/superdrop"),
                consent: true,
            },
        ],
    }
}

/// Runs the bench.
pub fn run(args: &DeliveryBenchArgs) -> Result<Report, DeliveryBenchError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run_async(args))
}

async fn run_async(args: &DeliveryBenchArgs) -> Result<Report, DeliveryBenchError> {
    let dir = tempfile::tempdir()?;
    let log = Arc::new(Log::open(LogConfig::new(dir.path().join("log")))?);
    seed::create_topics(&log, ORDERS_TOPIC, args.partitions)?;
    // The outside world.
    let rig = DeliveryRig::start(
        &log,
        SmsPool {
            long_codes: args.long_codes,
            toll_free: args.toll_free,
            short_codes: args.short_codes,
        },
        args.error_500_ppm,
        Smtp::Required,
    )
    .await?;
    let metrics = rig.metrics.clone();
    let sms_ceiling_per_s = rig.sms_ceiling_per_s;
    let hooks_base = rig.hooks_url();

    // A superdrop-shaped backlog: every buyer's order, then a burst of
    // intents, 20% critical, 40% normal, 40% low, over the four channels
    // (webhook 35%, email 25%, push 25%, SMS 15%); one order in twenty has
    // a second parcel whose updates consolidate with the first.
    let orders_n = (args.notifications / 2).max(1);
    let mut orders = Vec::with_capacity(orders_n as usize);
    for i in 0..orders_n {
        orders.push(order(
            i,
            &format!("DL{i:010}"),
            &format!("SD-{i}"),
            &hooks_base,
        ));
        if i % 20 == 0 {
            orders.push(order(
                i,
                &format!("DM{i:010}"),
                &format!("SD-{i}"),
                &hooks_base,
            ));
        }
    }
    let placed = seed::append_orders(&log, ORDERS_TOPIC, args.partitions, &orders)?;
    let mut mix = Mix(args.seed);
    let t0 = now_ms();
    let mut intents: Vec<Notification> = Vec::with_capacity(args.notifications as usize);
    for k in 0..args.notifications {
        let oi = (mix.next() % orders.len() as u64) as usize;
        let o = &orders[oi];
        let c = mix.percent();
        let channel = if c < 35 {
            Channel::Webhook
        } else if c < 60 {
            Channel::Email
        } else if c < 85 {
            Channel::Push
        } else {
            Channel::Sms
        };
        let p = mix.percent();
        let (priority, status) = if p < 20 {
            (Priority::Critical, Status::OutForDelivery)
        } else if p < 60 {
            (Priority::Normal, Status::InTransit)
        } else {
            (Priority::Low, Status::PickedUp)
        };
        let mut n = seed::notification(
            u128::from(k + 1) << 64 | u128::from(args.seed),
            &o.tracking_number,
            &o.order_id,
            &o.buyer_id,
            channel,
            priority,
            status,
        );
        n.order_offset = placed[oi].1;
        n.event_log_ms = t0;
        n.created_log_ms = t0;
        intents.push(n);
    }
    seed::append_notifications(&log, args.partitions, &intents)?;
    let mut per_channel: HashMap<Channel, u64> = HashMap::new();
    for n in &intents {
        *per_channel.entry(n.channel).or_default() += 1;
    }

    let mut handle = rig.start_worker(log.clone(), dir.path().join("delivery.ckpt"), |cfg| {
        cfg.quiet_hours = None;
        cfg.buyer_cap = None;
        cfg.digest_window_ms = 5_000;
        cfg.idle_poll_ms = 5;
    })?;
    let started = Instant::now();
    handle.wait_finished(args.notifications).await;
    let wall_s = started.elapsed().as_secs_f64();
    handle
        .stop()
        .await
        .map_err(|e| start_err("delivery worker", e))?;

    let sim_stats = rig.providers.stats();
    let repeats = rig.repeats();

    let load = |c: Channel,
                f: fn(
        &dropline_adapters::delivery::metrics::ChannelCounters,
    ) -> &std::sync::atomic::AtomicU64| {
        f(metrics.channel(c)).load(Ordering::Relaxed)
    };
    let delivered: u64 = Channel::ALL
        .iter()
        .map(|c| load(*c, |x| &x.updates_delivered))
        .sum();
    let dead: u64 = Channel::ALL
        .iter()
        .map(|c| load(*c, |x| &x.dead_lettered))
        .sum();
    let cost: u64 = Channel::ALL
        .iter()
        .map(|c| load(*c, |x| &x.cost_micro))
        .sum();
    let critical: u64 = Channel::ALL
        .iter()
        .map(|c| load(*c, |x| &x.critical_delivered))
        .sum();
    let critical_ok: u64 = Channel::ALL
        .iter()
        .map(|c| load(*c, |x| &x.critical_within_slo))
        .sum();
    let sms_messages = load(Channel::Sms, |x| &x.messages_accepted);

    let mut r = Report::new("delivery");
    r.set("notifications", args.notifications)
        .set("delivered", delivered)
        .set("duplicates", repeats.delivered_twice)
        .set("rate_limit_violations", sim_stats.violations)
        .set("dead_letters", dead)
        .set_f64(
            "critical_p95_s",
            metrics.critical_latency_quantile_ms(0.95) as f64 / 1000.0,
            3,
        )
        .set_f64(
            "critical_p99_s",
            metrics.critical_latency_quantile_ms(0.99) as f64 / 1000.0,
            3,
        )
        .set_f64(
            "critical_within_slo_share",
            if critical == 0 {
                1.0
            } else {
                critical_ok as f64 / critical as f64
            },
            4,
        )
        .set("critical_delivered", critical)
        .set_f64("wall_s", wall_s, 2)
        .set_f64("notifications_per_s", args.notifications as f64 / wall_s, 1);
    for c in Channel::ALL {
        let name = c.as_str();
        r.set(
            &format!("{name}_intents"),
            per_channel.get(&c).copied().unwrap_or(0),
        )
        .set(
            &format!("{name}_messages"),
            load(c, |x| &x.messages_accepted),
        )
        .set_f64(
            &format!("{name}_p99_s"),
            metrics.latency_quantile_ms(c, 0.99) as f64 / 1000.0,
            3,
        );
    }
    r.set_f64("sms_messages_per_s", sms_messages as f64 / wall_s, 1)
        .set_f64("sms_pool_ceiling_per_s", sms_ceiling_per_s, 1)
        .set(
            "consolidated_messages",
            Channel::ALL
                .iter()
                .map(|c| load(*c, |x| &x.messages_consolidated))
                .sum::<u64>(),
        )
        .set("rejected_429", sim_stats.rejected_429)
        .set("repeats_dropped_by_sinks", repeats.dropped_by_sinks)
        .set("webhook_bad_signatures", rig.hooks.stats().bad_signature)
        .set_f64(
            "cost_per_update_micro",
            if delivered == 0 {
                0.0
            } else {
                cost as f64 / delivered as f64
            },
            1,
        )
        .set("partitions", args.partitions);
    r.note("latency: intent event log time (all appended at t0, a backlog) to provider acceptance");
    r.note("duplicates: an update delivered twice at a sink; repeats_dropped_by_sinks: re-sends the sinks dropped by key");
    rig.shutdown().await;
    Ok(r)
}
