//! A slow notification provider (every push answered after 100 ms) under a
//! backlog of low-priority updates: critical notifications appended while
//! the backlog waits are delivered before it drains (their latency is
//! measured and printed), low-priority updates degrade to digests, nothing
//! is lost and no idempotency key reaches the provider twice. When the
//! provider is fast again the backlog drains; the time is printed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod chaos_support;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use chaos_support::*;
use dropline_adapters::delivery::channel::{PushConfig, PushSender};
use dropline_adapters::delivery::{
    ChannelSender, DegradeThresholds, DeliveryConfig, DeliveryDeps, DeliveryMetrics,
    DeliveryWorker, Notification, OptOutStore, PlaintextContacts, Rate, RetryPolicy,
    SystemDeliveryClock, seed,
};
use dropline_loadgen::provider_sim::{Faults, ProviderSimConfig, SimChannel, run_provider_sim};
use dropline_log::{Log, LogConfig};
use dropline_operators::model::{Carrier, Channel, Contact, Priority, ShipmentOrder, Status};

const PARTITIONS: u32 = 2;
/// Buyers with low-priority updates, three each.
const LOW_BUYERS: usize = 150;
const LOW_PER_BUYER: usize = 3;
/// Buyers with one critical update each, appended during the backlog.
const CRITICAL_BUYERS: usize = 20;
/// Answer time of the slow provider, ms.
const SLOW_MS: u64 = 100;
/// Send slots of the push channel: the slow provider then takes about
/// 40 messages per second.
const SLOTS: usize = 4;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn token(buyer: usize) -> String {
    format!("push-token-{buyer}")
}

fn order(buyer: usize) -> ShipmentOrder {
    ShipmentOrder {
        tracking_number: format!("1ZSLOW{buyer:010}"),
        carrier: Carrier::Ups,
        marketplace: "chaos-market".into(),
        seller: "seller-1".into(),
        order_id: format!("ORD-{buyer}"),
        skus: vec!["SKU-1".into()],
        buyer_id: format!("buyer-{buyer}"),
        promised_from_ms: 0,
        promised_to_ms: 0,
        buyer_locale: "en-US".into(),
        buyer_time_zone: "UTC".into(),
        destination_postal_code: "10001".into(),
        drop: true,
        contacts: vec![Contact {
            channel: Channel::Push,
            address: token(buyer),
            consent: true,
        }],
    }
}

fn config(dir: &std::path::Path) -> DeliveryConfig {
    let mut c = DeliveryConfig::new(dir.join("delivery.ckpt"));
    c.channels = vec![Channel::Push];
    c.in_flight_per_channel_max = SLOTS;
    c.consolidation_window_ms = 200;
    c.digest_window_ms = 1_000;
    c.group_close_slack_ms = 100;
    c.quiet_hours = None;
    c.buyer_cap = None;
    c.idle_poll_ms = 5;
    c.checkpoint_interval_ms = 10;
    c.degrade = DegradeThresholds {
        low_digest_backlog: 50,
        low_pause_backlog: 100_000,
        normal_digest_backlog: 200_000,
    };
    c.retry = RetryPolicy {
        attempts_max: 3,
        backoff_base_ms: 2,
        backoff_cap_ms: 20,
        budget_ratio: 1.0,
        budget_floor: 1_000,
        rate_limited_max: 10_000,
    };
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_provider_keeps_critical_first_and_degrades_low_to_digests() {
    capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(LogConfig::new(dir.path().join("log"))).unwrap());
    seed::create_topics(&log, "orders", PARTITIONS).unwrap();
    let opt_outs = Arc::new(OptOutStore::open(log.clone(), b"chaos-opt-out-secret").unwrap());

    let mut sim_config = ProviderSimConfig::local();
    sim_config.faults = Faults {
        slow_ppm: 1_000_000,
        slow_ms: SLOW_MS,
        ..Faults::default()
    };
    let sim = run_provider_sim(sim_config).await.unwrap();

    let buyers = LOW_BUYERS + CRITICAL_BUYERS;
    let orders: Vec<ShipmentOrder> = (0..buyers).map(order).collect();
    let placed = seed::append_orders(&log, "orders", PARTITIONS, &orders).unwrap();
    let intent = |id: u128, buyer: usize, priority, status| -> Notification {
        let o = &orders[buyer];
        let mut n = seed::notification(
            id,
            &o.tracking_number,
            &o.order_id,
            &o.buyer_id,
            Channel::Push,
            priority,
            status,
        );
        n.order_offset = placed[buyer].1;
        n.event_log_ms = now_ms();
        n
    };
    // The backlog: three low-priority updates per buyer.
    let mut id = 1u128;
    let mut low = Vec::new();
    for status in [Status::LabelCreated, Status::PickedUp, Status::InTransit] {
        for buyer in 0..LOW_BUYERS {
            low.push(intent(id, buyer, Priority::Low, status));
            id += 1;
        }
    }
    assert_eq!(low.len(), LOW_BUYERS * LOW_PER_BUYER);
    seed::append_notifications(&log, PARTITIONS, &low).unwrap();

    let metrics = Arc::new(DeliveryMetrics::default());
    let push = ChannelSender::Push(PushSender::new(
        PushConfig {
            base_url: sim.base_url(),
            project: "dropline-demo".into(),
            bearer_token: "token".into(),
            rate: Rate {
                per_second: 10_000.0,
                burst: 1_000,
            },
            timeout_ms: 5_000,
        },
        now_ms(),
    ));
    let worker = DeliveryWorker::new(
        config(dir.path()),
        DeliveryDeps {
            log: log.clone(),
            clock: Arc::new(SystemDeliveryClock),
            senders: vec![Arc::new(push)],
            opt_outs,
            opener: Arc::new(PlaintextContacts),
            metrics: metrics.clone(),
        },
    )
    .unwrap();
    let mut handle = worker.start();
    eventually("the backlog to start draining", || {
        !sim.messages().is_empty()
    })
    .await;
    let level = metrics
        .channel(Channel::Push)
        .degrade_level
        .load(Ordering::Relaxed);
    assert!(
        level >= 1,
        "a backlog over the threshold degrades low (level {level})"
    );
    // The switch is in the log, with its channel, for the operator.
    wait_logged(&["delivery degrades", "push"]).await;

    // Critical updates arrive while the slow provider works on the backlog.
    let critical: Vec<Notification> = (LOW_BUYERS..buyers)
        .map(|buyer| {
            intent(
                id + buyer as u128,
                buyer,
                Priority::Critical,
                Status::OutForDelivery,
            )
        })
        .collect();
    let appended_ms = now_ms();
    seed::append_notifications(&log, PARTITIONS, &critical).unwrap();
    let critical_tokens: HashSet<String> = (LOW_BUYERS..buyers).map(token).collect();
    let critical_accepted = || -> HashMap<String, u64> {
        sim.messages()
            .into_iter()
            .filter(|m| critical_tokens.contains(&m.to))
            .map(|m| (m.to, m.accepted_at_ms))
            .collect()
    };
    eventually("every critical notification to be accepted", || {
        critical_accepted().len() == CRITICAL_BUYERS
    })
    .await;
    let mut latency_ms: Vec<u64> = critical_accepted()
        .values()
        .map(|t| t.saturating_sub(appended_ms))
        .collect();
    latency_ms.sort_unstable();
    let total = (low.len() + critical.len()) as u64;
    let finished_then = handle.state().finished;
    println!(
        "CHAOS slow provider: critical latency p50 {} ms, max {} ms (provider answers in {SLOW_MS} ms); {finished_then} of {total} updates finished then",
        latency_ms[latency_ms.len() / 2],
        latency_ms[latency_ms.len() - 1]
    );
    // Critical first: the low-priority backlog was still waiting when the
    // last critical notification was accepted.
    assert!(
        finished_then < total - CRITICAL_BUYERS as u64,
        "the backlog had drained before the critical notifications went out"
    );
    let low_tokens: HashSet<String> = (0..LOW_BUYERS).map(token).collect();
    let low_so_far = sim
        .messages()
        .iter()
        .filter(|m| low_tokens.contains(&m.to))
        .count();
    println!(
        "CHAOS slow provider: {low_so_far} low-priority messages sent before the critical ones were all out"
    );

    // The provider recovers; the backlog drains.
    sim.set_faults(Faults::default());
    let recovered = Instant::now();
    handle.wait_finished(total).await;
    report(
        "slow provider",
        "backlog drained after the provider recovered",
        recovered.elapsed(),
    );
    let m = metrics.channel(Channel::Push);
    let digests = m.messages_digest.load(Ordering::Relaxed);
    let critical_delivered = m.critical_delivered.load(Ordering::Relaxed);
    let within = m.critical_within_slo.load(Ordering::Relaxed);
    handle.stop().await.unwrap();

    // Low degraded to digests: fewer messages than updates, and some of
    // them digests.
    let messages = sim.messages();
    let low_messages = messages
        .iter()
        .filter(|m| low_tokens.contains(&m.to))
        .count();
    println!(
        "CHAOS slow provider: {} low-priority updates went out as {low_messages} messages ({digests} digests)",
        low.len()
    );
    assert!(digests > 0, "no digest was sent");
    assert!(
        low_messages < low.len(),
        "low-priority updates were not grouped"
    );
    // Nothing lost: every buyer heard from us.
    let reached: HashSet<&str> = messages.iter().map(|m| m.to.as_str()).collect();
    for buyer in 0..buyers {
        assert!(
            reached.contains(token(buyer).as_str()),
            "buyer {buyer} got nothing"
        );
    }
    assert!(messages.iter().all(|m| m.channel == SimChannel::Push));
    // Never twice.
    let keys: HashSet<_> = messages
        .iter()
        .map(|m| m.idempotency_key.clone().unwrap())
        .collect();
    assert_eq!(
        keys.len(),
        messages.len(),
        "an idempotency key was sent twice"
    );
    let stats = sim.stats();
    assert_eq!(stats.duplicates, 0);
    assert_eq!(stats.violations, 0);
    assert_eq!(critical_delivered, CRITICAL_BUYERS as u64);
    println!("CHAOS slow provider: {within} of {critical_delivered} critical within the SLO");
    assert_eq!(
        within, critical_delivered,
        "every critical notification met its objective"
    );
}
