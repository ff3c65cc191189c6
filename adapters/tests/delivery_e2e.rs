//! End to end: intents in a real log delivered on all four channels to the
//! provider simulator, a real SMTP server and a webhook receiver; email
//! read back from the SMTP server; consolidation of one order's parcels;
//! opted-out and non-consenting contacts receive nothing, including after a
//! STOP reply and an unsubscribe click while the worker runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashSet;
use std::sync::Arc;

use dropline_adapters::delivery::channel::webhook::WebhookPayload;
use dropline_adapters::delivery::{
    DeliveryDeps, DeliveryWorker, Notification, PlaintextContacts, SystemDeliveryClock, seed,
};
use dropline_operators::model::{Channel, Priority, Status};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_on_every_channel_and_honours_opt_outs() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(dir.path()).await;
    let out = outside(Some(format!("{}/delivery/sms/inbound", node.url)), 0).await;

    // 12 buyers, one parcel each; buyer 0 has a second parcel in the same
    // order. Buyer 10 opted out of SMS before; buyer 11 gave no email
    // consent for this order.
    let buyers = 12;
    let mut orders = Vec::new();
    for i in 0..buyers {
        orders.push(order(
            i,
            &format!("1Z{i:06}"),
            &format!("ORD-{i}"),
            &out.hooks.base_url(),
            "UTC",
        ));
    }
    orders.push(order(0, "1Z999999", "ORD-0", &out.hooks.base_url(), "UTC"));
    if let Some(c) = orders[11]
        .contacts
        .iter_mut()
        .find(|c| c.channel == Channel::Email)
    {
        c.consent = false;
    }
    node.opt_outs
        .opt_out_contact(Channel::Sms, &sms_number(10), "stop")
        .unwrap();
    let placed = seed::append_orders(&node.log, "orders", PARTITIONS, &orders).unwrap();

    let t0 = now_ms();
    let mut intents: Vec<Notification> = Vec::new();
    let mut id = 1u128;
    for (k, o) in orders.iter().enumerate() {
        let status = if k == 0 || k == buyers {
            Status::Delivered
        } else {
            Status::OutForDelivery
        };
        for channel in Channel::ALL {
            let mut n = seed::notification(
                id,
                &o.tracking_number,
                &o.order_id,
                &o.buyer_id,
                channel,
                Priority::Critical,
                status,
            );
            n.order_offset = placed[k].1;
            n.event_log_ms = t0;
            intents.push(n);
            id += 1;
        }
    }
    seed::append_notifications(&node.log, PARTITIONS, &intents).unwrap();

    let cfg = config(dir.path());
    let worker = DeliveryWorker::new(
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
    .unwrap();
    let mut handle = worker.start();
    handle.wait_finished(intents.len() as u64).await;

    // Per channel: 12 messages (buyer 0's two parcels are one message),
    // minus buyer 10's SMS and buyer 11's email.
    let sms: Vec<_> = out
        .sim
        .messages()
        .into_iter()
        .filter(|m| m.channel == dropline_loadgen::provider_sim::SimChannel::Sms)
        .collect();
    let push: Vec<_> = out
        .sim
        .messages()
        .into_iter()
        .filter(|m| m.channel == dropline_loadgen::provider_sim::SimChannel::Push)
        .collect();
    assert_eq!(sms.len(), buyers - 1, "sms: {sms:?}");
    assert_eq!(push.len(), buyers);
    assert!(
        sms.iter().all(|m| m.to != sms_number(10)),
        "opted-out number got an SMS"
    );
    let consolidated: Vec<_> = sms.iter().filter(|m| m.to == sms_number(0)).collect();
    assert_eq!(consolidated.len(), 1);
    assert!(
        consolidated[0].body.contains("2 parcels"),
        "{}",
        consolidated[0].body
    );
    let keys: HashSet<_> = out
        .sim
        .messages()
        .iter()
        .map(|m| m.idempotency_key.clone().unwrap())
        .collect();
    assert_eq!(
        keys.len(),
        out.sim.messages().len(),
        "an idempotency key was accepted twice"
    );
    let stats = out.sim.stats();
    assert_eq!(stats.violations, 0);
    assert_eq!(stats.duplicates, 0);

    out.smtp.wait_delivered(buyers - 1).await;
    let mails = out.smtp.received();
    assert_eq!(mails.len(), buyers - 1, "{mails:?}");
    assert!(mails.iter().all(|m| !m.duplicate));
    assert!(
        mails.iter().all(|m| m.to != vec![email_address(11)]),
        "email sent without consent"
    );
    for m in &mails {
        assert_eq!(
            m.message_id,
            format!("<{}@dropline.invalid>", m.idempotency_key)
        );
        assert!(
            m.list_unsubscribe.contains("/delivery/unsubscribe?token="),
            "{m:?}"
        );
    }

    // Every webhook was answered before its notification finished, and the
    // receiver records before it answers: no wait needed (its published
    // count can lag when two requests end together).
    let hook_stats = out.hooks.stats();
    assert_eq!(hook_stats.bad_signature, 0);
    assert_eq!(hook_stats.delivered, buyers as u64);
    let bodies: Vec<WebhookPayload> = out
        .hooks
        .received()
        .into_iter()
        .map(|r| serde_json::from_value(r.body).unwrap())
        .collect();
    assert!(
        bodies
            .iter()
            .all(|b| b.version == "1" && b.kind == "shipment.notification")
    );
    assert_eq!(
        bodies.iter().map(|b| b.updates.len()).sum::<usize>(),
        orders.len()
    );

    // A STOP reply through the provider, and an unsubscribe click, while
    // the worker runs; then one more update for each of those contacts.
    let status = out
        .sim
        .send_inbound(&sms_number(3), SHORT_CODE, "STOP")
        .await
        .unwrap();
    assert_eq!(status, 200);
    let link = mails
        .iter()
        .find(|m| m.to == vec![email_address(4)])
        .unwrap()
        .list_unsubscribe
        .clone();
    let url = link.trim_start_matches('<').trim_end_matches('>');
    let resp = reqwest::get(url).await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut more = Vec::new();
    for (k, channel) in [(3usize, Channel::Sms), (4usize, Channel::Email)] {
        let o = &orders[k];
        let mut n = seed::notification(
            id,
            &o.tracking_number,
            &o.order_id,
            &o.buyer_id,
            channel,
            Priority::Critical,
            Status::Delivered,
        );
        n.order_offset = placed[k].1;
        n.event_log_ms = now_ms();
        more.push(n);
        id += 1;
    }
    seed::append_notifications(&node.log, PARTITIONS, &more).unwrap();
    handle
        .wait_finished((intents.len() + more.len()) as u64)
        .await;
    let metrics = handle.metrics().clone();
    handle.stop().await.unwrap();
    assert_eq!(
        out.sim
            .messages()
            .iter()
            .filter(|m| m.to == sms_number(3))
            .count(),
        1
    );
    assert_eq!(
        out.smtp
            .received()
            .iter()
            .filter(|m| m.to == vec![email_address(4)])
            .count(),
        1
    );
    let suppressed = |c: Channel| {
        metrics
            .channel(c)
            .suppressed_opted_out
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    assert_eq!(suppressed(Channel::Sms), 2);
    assert_eq!(suppressed(Channel::Email), 1);
    assert_eq!(
        out.sim.stats().refused_opted_out,
        0,
        "the provider had to refuse an opted-out number"
    );

    let mut text = String::new();
    metrics.render_prometheus(&mut text);
    assert!(
        text.contains("dropline_delivery_messages_accepted_total{channel=\"sms\"} 11"),
        "{text}"
    );
    assert!(
        text.contains("dropline_delivery_critical_delivered_total{channel=\"push\"} 13"),
        "{text}"
    );
}
