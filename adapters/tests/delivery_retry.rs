//! Retries, dead letters and their replay: a provider failing every send
//! with 500 makes each message use all its attempts and land in the
//! dead-letter topic with its reason; once the provider recovers, a replay
//! delivers them, except a recipient the provider refuses for good, which
//! is dead-lettered again as permanent. Webhook receivers answering 503 now
//! and then are retried until they accept, each message processed once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use dropline_adapters::delivery::dead_letter::read_dead_letters;
use dropline_adapters::delivery::scheduler::DeadLetterReason;
use dropline_adapters::delivery::{
    DEAD_LETTER_TOPIC, DeliveryDeps, DeliveryWorker, PlaintextContacts, SystemDeliveryClock,
    replay_dead_letters, seed,
};
use dropline_loadgen::provider_sim::Faults;
use dropline_operators::model::{Channel, Priority, Status};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_sends_retry_dead_letter_and_replay() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(dir.path()).await;
    let out = outside(None, 3).await;
    out.sim.set_faults(Faults {
        error_500_ppm: 1_000_000,
        ..Faults::default()
    });

    let buyers = 6;
    let orders: Vec<_> = (0..buyers)
        .map(|i| {
            order(
                i,
                &format!("1Z{i:06}"),
                &format!("ORD-{i}"),
                &out.hooks.base_url(),
                "UTC",
            )
        })
        .collect();
    let placed = seed::append_orders(&node.log, "orders", PARTITIONS, &orders).unwrap();
    let mut intents = Vec::new();
    let mut id = 1u128;
    for (k, o) in orders.iter().enumerate() {
        for channel in [Channel::Sms, Channel::Push, Channel::Webhook] {
            let mut n = seed::notification(
                id,
                &o.tracking_number,
                &o.order_id,
                &o.buyer_id,
                channel,
                Priority::Normal,
                Status::InTransit,
            );
            n.order_offset = placed[k].1;
            n.event_log_ms = now_ms();
            intents.push(n);
            id += 1;
        }
    }
    seed::append_notifications(&node.log, PARTITIONS, &intents).unwrap();

    let cfg = config(dir.path());
    let attempts = cfg.retry.attempts_max;
    let mut handle = DeliveryWorker::new(
        cfg,
        DeliveryDeps {
            log: node.log.clone(),
            clock: Arc::new(SystemDeliveryClock),
            senders: senders(&out.sim.base_url(), out.smtp.port(), &node.url, now_ms()),
            opt_outs: node.opt_outs.clone(),
            opener: Arc::new(PlaintextContacts),
            metrics: node.metrics.clone(),
        },
    )
    .unwrap()
    .start();
    handle.wait_finished(intents.len() as u64).await;

    // Every SMS and push used all attempts and was dead-lettered.
    let letters = read_dead_letters(&node.log, DEAD_LETTER_TOPIC, 0).unwrap();
    assert_eq!(letters.len(), 2 * buyers);
    for (_, l) in &letters {
        assert_eq!(l.reason, DeadLetterReason::AttemptsExhausted, "{l:?}");
        assert_eq!(l.attempts, attempts);
        assert!(l.error.contains("500"), "{}", l.error);
    }
    let stats = out.sim.stats();
    assert_eq!(stats.accepted, 0);
    assert_eq!(stats.errors_500, u64::from(attempts) * 2 * buyers as u64);
    let m = handle.metrics().clone();
    assert_eq!(
        m.channel(Channel::Sms)
            .dead_lettered
            .load(Ordering::Relaxed),
        buyers as u64
    );
    assert_eq!(
        m.channel(Channel::Push).retries.load(Ordering::Relaxed),
        u64::from(attempts) * buyers as u64
    );
    // Webhooks: the receiver failed every third request; all got through
    // once. (Every webhook finished above, after the receiver recorded
    // it; its published count is not waited on, as it can lag.)
    let h = out.hooks.stats();
    assert!(h.injected_failures > 0);
    assert_eq!(h.delivered, buyers as u64);
    assert_eq!(h.duplicates, 0);

    // The provider recovers, except for one number it refuses for good.
    out.sim.set_faults(Faults {
        reject_recipients: vec![sms_number(2)],
        ..Faults::default()
    });
    let report = replay_dead_letters(&node.log, DEAD_LETTER_TOPIC, None, |_| true).unwrap();
    assert_eq!(report.replayed, 2 * buyers as u64);
    handle
        .wait_finished((intents.len() + 2 * buyers) as u64)
        .await;
    assert_eq!(out.sim.stats().accepted, 2 * buyers as u64 - 1);
    let letters = read_dead_letters(&node.log, DEAD_LETTER_TOPIC, 0).unwrap();
    assert_eq!(letters.len(), 2 * buyers + 1);
    let last = &letters.last().unwrap().1;
    assert_eq!(last.reason, DeadLetterReason::Permanent);
    assert_eq!(last.attempts, 1);

    // A second replay picks up only what was dead-lettered since.
    let again = replay_dead_letters(&node.log, DEAD_LETTER_TOPIC, None, |l| {
        l.reason == DeadLetterReason::Permanent
    })
    .unwrap();
    assert_eq!((again.read, again.replayed), (1, 1));
    handle
        .wait_finished((intents.len() + 2 * buyers + 1) as u64)
        .await;
    handle.stop().await.unwrap();
    assert_eq!(out.sim.stats().violations, 0);
}
