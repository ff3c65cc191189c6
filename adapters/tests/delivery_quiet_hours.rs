//! Quiet hours in the buyer's time zone hold non-critical messages (on an
//! injected clock) while critical ones go out at once; moving the clock to
//! the morning releases them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;

use dropline_adapters::delivery::{
    DeliveryDeps, DeliveryWorker, ManualClock, PlaintextContacts, QuietHours, seed,
};
use dropline_operators::model::{Channel, Priority, Status};
use support::*;

/// A fixed-offset zone where it is 23:xx now.
fn zone_at_23h(now_ms: u64) -> String {
    let utc_hour = ((now_ms / 3_600_000) % 24) as i64;
    let mut offset = (23 - utc_hour).rem_euclid(24);
    if offset > 14 {
        offset -= 24;
    }
    match offset {
        0 => "Etc/GMT".to_string(),
        // The Etc zones' signs are inverted (Etc/GMT-3 is UTC+3).
        o if o > 0 => format!("Etc/GMT-{o}"),
        o => format!("Etc/GMT+{}", -o),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_hours_hold_non_critical_until_morning() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(dir.path()).await;
    let out = outside(None, 0).await;
    let start = now_ms();
    let clock = ManualClock::new(start);
    let tz = zone_at_23h(start);

    let o = order(0, "1Z000000", "ORD-0", &out.hooks.base_url(), &tz);
    let placed =
        seed::append_orders(&node.log, "orders", PARTITIONS, std::slice::from_ref(&o)).unwrap();
    let mut intents = Vec::new();
    for (id, (channel, priority, status)) in [
        (Channel::Sms, Priority::Critical, Status::OutForDelivery),
        (Channel::Sms, Priority::Normal, Status::InTransit),
        (Channel::Push, Priority::Low, Status::PickedUp),
    ]
    .into_iter()
    .enumerate()
    {
        let mut n = seed::notification(
            id as u128 + 1,
            &o.tracking_number,
            &o.order_id,
            &o.buyer_id,
            channel,
            priority,
            status,
        );
        n.order_offset = placed[0].1;
        n.event_log_ms = start;
        intents.push(n);
    }
    seed::append_notifications(&node.log, PARTITIONS, &intents).unwrap();

    let mut cfg = config(dir.path());
    cfg.quiet_hours = Some(QuietHours::default());
    cfg.consolidation_window_ms = 0;
    let mut handle = DeliveryWorker::new(
        cfg,
        DeliveryDeps {
            log: node.log.clone(),
            clock: clock.clone(),
            senders: senders(&out.sim.base_url(), out.smtp.port(), &node.url, start),
            opt_outs: node.opt_outs.clone(),
            opener: Arc::new(PlaintextContacts),
            metrics: node.metrics.clone(),
        },
    )
    .unwrap()
    .start();

    // The critical SMS goes out; the other two are held.
    handle.wait_state(|s| s.finished == 1 && s.held == 2).await;
    let sent = out.sim.messages();
    assert_eq!(sent.len(), 1);
    assert!(
        sent[0].body.contains("out for delivery"),
        "{}",
        sent[0].body
    );

    // An hour later it is still night there.
    clock.advance_ms(3_600_000);
    handle.wait_state(|s| s.read == 3).await;
    assert_eq!(handle.state().held, 2);
    assert_eq!(out.sim.messages().len(), 1);

    // At 08:00 local (at most nine hours after 23:00) they go.
    clock.advance_ms(8 * 3_600_000);
    handle.wait_finished(3).await;
    handle.stop().await.unwrap();
    assert_eq!(out.sim.messages().len(), 3);
}
