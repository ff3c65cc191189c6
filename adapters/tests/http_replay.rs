//! Forensic replay over a log written by the real engine: it explains a
//! suppressed notification (opt-out, no consent) with its rule and source
//! offsets, serves the same JSON over HTTP, and gives identical output
//! after the node restarts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod http_support;

use std::sync::Arc;
use std::time::Duration;

use dropline_adapters::forensics::{
    ReplayOptions, render_human, replay_parcel, replay_topic_range,
};
use dropline_engine::{ChainFactory, ControlRecord, Engine, EngineConfig, append_control};
use dropline_log::{AppendRequest, Log, Record};
use dropline_operators::model::{
    Carrier, CarrierEvent, Channel, EventSource, Location, Status, SubStatus, partition_for,
};
use dropline_operators::ops::DecisionKind;
use http_support::*;

/// Generous bound on waiting for the engine (it is an upper bound on a
/// wait for an event, not a timing assertion).
const ENGINE_WAIT: Duration = Duration::from_secs(120);

fn event(tn: &str, status: Status, sub: SubStatus, at_ms: i64) -> CarrierEvent {
    CarrierEvent {
        tracking_number: tn.into(),
        carrier: Carrier::Ups,
        status,
        sub_status: sub,
        raw_code: "OT".into(),
        raw_text: "Out For Delivery Today".into(),
        occurred_at_ms: at_ms,
        local_time: "2024-11-21T08:00:00".into(),
        utc_offset_minutes: Some(-300),
        location: Location {
            city: Some("Atlanta".into()),
            region: Some("GA".into()),
            postal_code: Some("30301".into()),
            country: Some("US".into()),
        },
        source: EventSource::Synthetic,
        received_at_ms: at_ms + 500,
    }
}

fn append_event(log: &Log, e: &CarrierEvent) -> dropline_log::AppendAck {
    let p = partition_for(e.tracking_number.as_bytes(), PARTITIONS);
    let value = e.encode();
    log.partition("carrier-events", p)
        .unwrap()
        .append(&AppendRequest {
            records: &[Record {
                key: e.tracking_number.as_bytes(),
                value: &value,
            }],
            producer: None,
        })
        .unwrap()
}

fn wait_engine(engine: &Engine, log: &Log) {
    let control = log.partition("control", 0).unwrap().next_offset();
    let targets: Vec<[u64; 3]> = (0..PARTITIONS)
        .map(|p| {
            [
                control,
                log.partition("orders", p).unwrap().next_offset(),
                log.partition("carrier-events", p).unwrap().next_offset(),
            ]
        })
        .collect();
    assert!(
        engine.wait_processed(&targets, ENGINE_WAIT),
        "the engine did not catch up"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_explains_suppressions_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let tn = "1Z999AA10123456784";
    let (json_before, human_before, event_log_ms) = {
        let (node, _admin) = start_admin(dir.path()).await;
        let mut cfg = EngineConfig::new(1, dir.path().join("checkpoints"));
        cfg.pin_cores = false;
        let engine =
            Engine::start(&node.log, cfg, Arc::new(ChainFactory::with_defaults())).unwrap();

        let r = create(&node, &order_json(tn, "ORD-1")).await;
        assert_eq!(r.status().as_u16(), 201);
        // The buyer opts out of email before the parcel goes out.
        append_control(
            &node.log,
            &ControlRecord::OptOut {
                channel: Some(Channel::Email),
                buyer_id: "buyer-7731",
            },
        )
        .unwrap();
        let ack = append_event(
            &node.log,
            &event(
                tn,
                Status::OutForDelivery,
                SubStatus::OnVehicle,
                1_732_190_400_000,
            ),
        );
        let log = node.log.clone();
        let engine = tokio::task::spawn_blocking(move || {
            wait_engine(&engine, &log);
            engine
        })
        .await
        .unwrap();

        let log = node.log.clone();
        let h = tokio::task::spawn_blocking(move || {
            replay_parcel(&log, tn, None, &ReplayOptions::default()).unwrap()
        })
        .await
        .unwrap();
        assert_eq!(h.orders.len(), 1);
        assert_eq!(h.events.len(), 1);
        assert_eq!(h.events[0].at.offset, ack.base_offset);
        assert!(h.orders[0].contacts.iter().all(|c| c.sealed));
        assert_eq!(h.state.unwrap().status, Some(Status::OutForDelivery));

        // The engine's recorded decisions explain the suppressions.
        let find = |kind: DecisionKind, ch: Channel| {
            h.decisions
                .iter()
                .find(|d| d.decision.kind == kind && d.decision.channel == Some(ch))
                .unwrap_or_else(|| panic!("no {kind:?} on {ch:?} in {:#?}", h.decisions))
        };
        let opt_out = find(DecisionKind::SuppressedOptOut, Channel::Email);
        assert_eq!(opt_out.decision.rule_id.as_str(), "out-for-delivery");
        assert_eq!(opt_out.decision.source.offset, ack.base_offset);
        assert_eq!(
            opt_out.decision.source.partition,
            partition_for(tn.as_bytes(), PARTITIONS)
        );
        assert!(
            opt_out.explanation.contains("opted out of email"),
            "{}",
            opt_out.explanation
        );
        assert!(opt_out.explanation.contains(&format!(
            "carrier-events[{}]@{}",
            opt_out.decision.source.partition, ack.base_offset
        )));
        let no_consent = find(DecisionKind::SuppressedNoConsent, Channel::Sms);
        assert!(
            no_consent
                .explanation
                .contains("no contact with consent on sms")
        );
        // Nothing went out on email or SMS; the re-run agrees with the record.
        assert!(
            h.notifications
                .iter()
                .all(|n| n.intent.channel != Channel::Email && n.intent.channel != Channel::Sms)
        );
        assert!(
            h.replayed_decisions
                .iter()
                .any(|d| d.decision.kind == DecisionKind::SuppressedOptOut)
        );
        assert!(h.differences.is_empty(), "{:?}", h.differences);
        assert_eq!(h.control.len(), 1);
        let human = render_human(&h);
        assert!(human.contains("suppressed_opt_out"), "{human}");

        // As of just before the scan: no out-for-delivery, no suppression.
        let log = node.log.clone();
        let early = tokio::task::spawn_blocking(move || {
            replay_parcel(
                &log,
                tn,
                Some(ack.log_time_ms - 1),
                &ReplayOptions::default(),
            )
            .unwrap()
        })
        .await
        .unwrap();
        assert!(early.events.is_empty());
        assert!(
            early
                .decisions
                .iter()
                .all(|d| d.decision.kind != DecisionKind::SuppressedOptOut)
        );
        assert_ne!(
            early.state.and_then(|s| s.status),
            Some(Status::OutForDelivery)
        );

        // The HTTP endpoint serves the same JSON.
        let served: serde_json::Value = node
            .client
            .get(format!("{}/v1/forensics/{tn}", node.base))
            .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(served, serde_json::to_value(&h).unwrap());

        let log = node.log.clone();
        tokio::task::spawn_blocking(move || engine.stop().unwrap())
            .await
            .unwrap();
        node.handle.shutdown().await.unwrap();
        drop(log);
        let json = serde_json::to_string(&h).unwrap();
        (json, human, ack.log_time_ms)
    };

    // Restart: reopen the log (the node's Arc was the last holder).
    let log = open_log(dir.path());
    let after = replay_parcel(&log, tn, None, &ReplayOptions::default()).unwrap();
    assert_eq!(serde_json::to_string(&after).unwrap(), json_before);
    assert_eq!(render_human(&after), human_before);

    // Re-feed a range to a consumer group: offsets reset to the event.
    let reset = replay_topic_range(
        &log,
        "carrier-events",
        event_log_ms,
        None,
        "delivery-replay",
    )
    .unwrap();
    let p = partition_for(tn.as_bytes(), PARTITIONS);
    assert_eq!(reset.partitions[p as usize].from_offset, 0);
    assert_eq!(
        log.consumer_offset("delivery-replay", "carrier-events", p)
            .unwrap(),
        Some(0)
    );
    // The event and the idle ticks appended after it.
    assert!(reset.records >= 1);
}
