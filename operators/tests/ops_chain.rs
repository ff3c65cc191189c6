//! Unit tests of each operator through the chain's public API.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ops_support;

use dropline_operators::model::{Channel, Priority, Status, SubStatus};
use dropline_operators::ops::{
    ChainConfig, DeadLetter, DeadLetterReason, Decision, DecisionKind, Escalation,
    NotificationIntent, Remediation, Rules, ShipmentView, ViewChange,
};
use ops_support::{HOUR, Harness, MIN, T0, event, order};

const TN: &str = "1Z999AA10123456784";

fn with_order(tz: &str) -> Harness {
    let mut h = Harness::default();
    h.order(T0, &order(TN, "ORD-1", "buyer-1", tz));
    h
}

#[test]
fn dedup_ignores_location_reformatting() {
    let mut h = with_order("America/New_York");
    let first = event(
        TN,
        Status::PickedUp,
        SubStatus::Accepted,
        T0,
        "New York",
        "10001",
    );
    h.event(T0 + MIN, &first);
    assert_eq!(h.last.views.len(), 1);
    // Same scan, location text reformatted and the postal code missing.
    let mut again = first.clone();
    again.location.city = Some("NEW YORK, NY".into());
    again.location.postal_code = None;
    h.event(T0 + 2 * MIN, &again);
    assert_eq!(h.last_kinds(), vec![DecisionKind::Deduplicated]);
    assert!(h.last.views.is_empty() && h.last.intents.is_empty());
    // A different instant is a different scan.
    let later = event(
        TN,
        Status::PickedUp,
        SubStatus::Accepted,
        T0 + 1000,
        "New York",
        "10001",
    );
    h.event(T0 + 3 * MIN, &later);
    assert_ne!(h.last_kinds(), vec![DecisionKind::Deduplicated]);
}

#[test]
fn dedup_window_expires() {
    let mut h = with_order("UTC");
    let e = event(
        TN,
        Status::InTransit,
        SubStatus::ArrivalScan,
        T0,
        "Memphis",
        "38118",
    );
    h.event(T0, &e);
    h.event(T0 + 25 * HOUR, &e);
    assert_ne!(
        h.last_kinds(),
        vec![DecisionKind::Deduplicated],
        "outside the 24 h window"
    );
}

#[test]
fn debounce_holds_pings_and_releases_on_tick() {
    let mut h = with_order("UTC");
    h.event(
        T0,
        &event(
            TN,
            Status::InTransit,
            SubStatus::ArrivalScan,
            T0,
            "Memphis",
            "38118",
        ),
    );
    assert_eq!(h.last.views.len(), 1);
    let held = h.event(
        T0 + 5 * MIN,
        &event(
            TN,
            Status::InTransit,
            SubStatus::DepartureScan,
            T0 + 5 * MIN,
            "MEMPHIS",
            "38118",
        ),
    );
    assert_eq!(h.last_kinds(), vec![DecisionKind::Debounced]);
    assert_eq!(h.last.decisions[0].until_ms, T0 + 30 * MIN);
    assert!(h.last.views.is_empty());
    h.tick(T0 + 29 * MIN);
    assert!(h.last.decisions.is_empty(), "window still open");
    h.tick(T0 + 31 * MIN);
    let released = h.last.decisions[0];
    assert_eq!(released.kind, DecisionKind::Released);
    assert_eq!(
        released.log_time_ms,
        T0 + 30 * MIN,
        "as of the window's end"
    );
    assert_eq!(released.related_offset, Some(held));
    let view = h.last.views[0];
    assert_eq!(view.change, ViewChange::Released);
    assert_eq!(view.last_event.unwrap().offset, held);
    assert_eq!(view.sub_status, SubStatus::DepartureScan);
    // The default in-transit rule notifies pings as low-priority digests.
    assert!(
        h.last
            .intents
            .iter()
            .all(|i| i.digest && i.priority == Priority::Low)
    );
    assert!(!h.last.intents.is_empty());
}

#[test]
fn debounce_passes_location_changes_and_critical_scans() {
    let mut h = with_order("UTC");
    h.event(
        T0,
        &event(
            TN,
            Status::InTransit,
            SubStatus::ArrivalScan,
            T0,
            "Memphis",
            "38118",
        ),
    );
    h.event(
        T0 + MIN,
        &event(
            TN,
            Status::InTransit,
            SubStatus::ArrivalScan,
            T0 + MIN,
            "Louisville",
            "40209",
        ),
    );
    assert_eq!(h.last.views.len(), 1, "a new city passes");
    h.event(
        T0 + 2 * MIN,
        &event(
            TN,
            Status::InTransit,
            SubStatus::DepartureScan,
            T0 + 2 * MIN,
            "Louisville",
            "40209",
        ),
    );
    assert_eq!(h.last_kinds(), vec![DecisionKind::Debounced]);
    h.event(
        T0 + 3 * MIN,
        &event(
            TN,
            Status::OutForDelivery,
            SubStatus::OnVehicle,
            T0 + 3 * MIN,
            "Louisville",
            "40209",
        ),
    );
    assert_eq!(h.last.decisions[0].kind, DecisionKind::Superseded);
    assert_eq!(h.last.views[0].status, Some(Status::OutForDelivery));
    assert!(
        h.last_intents(Channel::Sms)
            .iter()
            .all(|i| i.priority == Priority::Critical)
    );
    assert_eq!(h.last_intents(Channel::Sms).len(), 1);
}

#[test]
fn late_scans_do_not_regress_the_view() {
    let mut h = with_order("UTC");
    h.event(
        T0,
        &event(
            TN,
            Status::OutForDelivery,
            SubStatus::OnVehicle,
            T0,
            "Austin",
            "78701",
        ),
    );
    h.event(
        T0 + MIN,
        &event(
            TN,
            Status::InTransit,
            SubStatus::ArrivalScan,
            T0 - HOUR,
            "Austin",
            "78701",
        ),
    );
    assert_eq!(h.last_kinds(), vec![DecisionKind::Late]);
    assert!(h.last.views.is_empty() && h.last.intents.is_empty());
}

#[test]
fn quiet_hours_follow_the_buyer_time_zone() {
    // 03:00 UTC is 23:00 in New York (EDT): inside 21:00-08:00.
    let night = T0 + 15 * HOUR;
    let mut h = with_order("America/New_York");
    h.event(
        night,
        &event(
            TN,
            Status::PickedUp,
            SubStatus::Accepted,
            night,
            "Newark",
            "07102",
        ),
    );
    let push = h.last_decision(Channel::Push).unwrap();
    assert_eq!(push.kind, DecisionKind::HeldQuietHours);
    // 08:00 EDT is 12:00 UTC, nine hours later.
    assert_eq!(push.until_ms, night + 9 * HOUR);
    assert_eq!(
        h.last_intents(Channel::Push)[0].send_after_ms,
        night + 9 * HOUR
    );
    assert_eq!(
        h.last_decision(Channel::Email).unwrap().kind,
        DecisionKind::Notified,
        "email is not quiet"
    );
    // The same instant is 03:00 for a buyer in UTC... also quiet, but in
    // Tokyo it is noon: not quiet.
    let mut tokyo = Harness::default();
    tokyo.order(T0, &order(TN, "ORD-1", "buyer-1", "Asia/Tokyo"));
    tokyo.event(
        night,
        &event(
            TN,
            Status::PickedUp,
            SubStatus::Accepted,
            night,
            "Newark",
            "07102",
        ),
    );
    assert_eq!(
        tokyo.last_decision(Channel::Push).unwrap().kind,
        DecisionKind::Notified
    );
    // Critical notifications are not held by default.
    h.event(
        night + MIN,
        &event(
            TN,
            Status::Delivered,
            SubStatus::LeftSafePlace,
            night + MIN,
            "Newark",
            "07102",
        ),
    );
    assert_eq!(
        h.last_decision(Channel::Sms).unwrap().kind,
        DecisionKind::Notified
    );
}

fn sms_rules(cap: u8) -> Rules {
    Rules::from_toml_str(
        &format!(
            r#"
version = 1
[settings]
caps_per_day = {{ sms = {cap} }}
[[rule]]
id = "ping-sms"
when = "in_transit"
repeat = true
channels = ["sms"]
priority = "normal"
[[rule]]
id = "ofd"
when = "out_for_delivery"
channels = ["sms"]
"#
        ),
        "caps.toml",
    )
    .unwrap()
}

#[test]
fn per_buyer_caps_suppress_but_never_critical() {
    let mut h = Harness::new(ChainConfig::default(), sms_rules(2));
    h.order(T0, &order(TN, "ORD-1", "buyer-1", "UTC"));
    let cities = [
        ("Memphis", "38118"),
        ("Dallas", "75201"),
        ("Austin", "78701"),
    ];
    let mut kinds = Vec::new();
    for (i, (city, postal)) in cities.into_iter().enumerate() {
        let t = T0 + i as u64 * MIN;
        h.event(
            t,
            &event(
                TN,
                Status::InTransit,
                SubStatus::ArrivalScan,
                t,
                city,
                postal,
            ),
        );
        kinds.push(h.last_decision(Channel::Sms).unwrap().kind);
    }
    assert_eq!(
        kinds,
        vec![
            DecisionKind::Notified,
            DecisionKind::Notified,
            DecisionKind::SuppressedCap
        ]
    );
    let t = T0 + 10 * MIN;
    h.event(
        t,
        &event(
            TN,
            Status::OutForDelivery,
            SubStatus::OnVehicle,
            t,
            "Austin",
            "78701",
        ),
    );
    assert_eq!(
        h.last_decision(Channel::Sms).unwrap().kind,
        DecisionKind::Notified
    );
    // The cap counts per buyer: another parcel of the same buyer is capped too.
    let other = "1Z999AA10123456785";
    h.order(t, &order(other, "ORD-2", "buyer-1", "UTC"));
    h.event(
        t + MIN,
        &event(
            other,
            Status::InTransit,
            SubStatus::ArrivalScan,
            t,
            "Reno",
            "89501",
        ),
    );
    assert_eq!(
        h.last_decision(Channel::Sms).unwrap().kind,
        DecisionKind::SuppressedCap
    );
}

#[test]
fn opt_outs_and_missing_consent_suppress() {
    let mut h = with_order("UTC");
    let src = dropline_operators::ops::SourceRef {
        topic: dropline_operators::ops::InputTopic::Control,
        partition: 0,
        offset: 0,
        log_time_ms: T0,
    };
    let mut out = dropline_operators::ops::Outputs::new();
    h.chain
        .apply_opt_out(src, "buyer-1", Channel::Sms, &mut out);
    assert!(out.is_empty());
    h.event(
        T0 + MIN,
        &event(
            TN,
            Status::Delivered,
            SubStatus::Signed,
            T0,
            "Austin",
            "78701",
        ),
    );
    assert_eq!(
        h.last_decision(Channel::Sms).unwrap().kind,
        DecisionKind::SuppressedOptOut
    );
    assert_eq!(
        h.last_decision(Channel::Email).unwrap().kind,
        DecisionKind::Notified
    );
    assert!(h.last_intents(Channel::Sms).is_empty());

    let mut h = Harness::default();
    let mut o = order(TN, "ORD-1", "buyer-1", "UTC");
    o.contacts.retain(|c| c.channel != Channel::Push);
    o.contacts
        .iter_mut()
        .for_each(|c| c.consent = c.channel != Channel::Sms);
    h.order(T0, &o);
    h.event(
        T0 + MIN,
        &event(
            TN,
            Status::Delivered,
            SubStatus::Signed,
            T0,
            "Austin",
            "78701",
        ),
    );
    assert_eq!(
        h.last_decision(Channel::Sms).unwrap().kind,
        DecisionKind::SuppressedNoConsent
    );
    assert_eq!(
        h.last_decision(Channel::Push).unwrap().kind,
        DecisionKind::SuppressedNoConsent
    );
    assert_eq!(
        h.last_decision(Channel::Webhook).unwrap().kind,
        DecisionKind::Notified
    );
}

#[test]
fn parcels_of_one_order_are_consolidated() {
    let mut h = Harness::default();
    let (a, b, c) = (
        "1ZAAA0000000000001",
        "1ZAAA0000000000002",
        "1ZAAA0000000000003",
    );
    h.order(T0, &order(a, "ORD-9", "buyer-9", "UTC"));
    h.order(T0, &order(b, "ORD-9", "buyer-9", "UTC"));
    h.order(T0, &order(c, "ORD-10", "buyer-9", "UTC"));
    h.event(
        T0 + MIN,
        &event(
            a,
            Status::Delivered,
            SubStatus::LeftSafePlace,
            T0,
            "Austin",
            "78701",
        ),
    );
    let first = h.last_intents(Channel::Email)[0];
    h.event(
        T0 + 5 * MIN,
        &event(
            b,
            Status::Delivered,
            SubStatus::LeftSafePlace,
            T0 + 4 * MIN,
            "Austin",
            "78701",
        ),
    );
    assert!(h.last.intents.is_empty(), "{:?}", h.last.intents);
    let d = h.last_decision(Channel::Email).unwrap();
    assert_eq!(d.kind, DecisionKind::Consolidated);
    assert_eq!(d.intent_id, Some(first.id));
    // Another order is not merged; nor is the same order after the window.
    h.event(
        T0 + 6 * MIN,
        &event(
            c,
            Status::Delivered,
            SubStatus::LeftSafePlace,
            T0 + 5 * MIN,
            "Austin",
            "78701",
        ),
    );
    assert_eq!(h.last_intents(Channel::Email).len(), 1);
}

#[test]
fn exceptions_carry_their_remediation() {
    let cases = [
        (
            SubStatus::AddressIssue,
            Remediation::AddressVerificationLink,
        ),
        (SubStatus::CustomsHold, Remediation::CustomsDocumentsLink),
        (SubStatus::DelayWeather, Remediation::InformationalNotice),
        (SubStatus::Damaged, Remediation::ClaimPath),
        (SubStatus::Lost, Remediation::ClaimPath),
    ];
    for (sub, want) in cases {
        let mut h = with_order("UTC");
        h.event(
            T0 + MIN,
            &event(TN, Status::Exception, sub, T0, "Austin", "78701"),
        );
        let intents = &h.last.intents;
        assert!(!intents.is_empty());
        assert!(
            intents
                .iter()
                .all(|i| i.remediation == want && i.priority == Priority::Critical),
            "{sub}"
        );
        let open = h.last.views[0].open_exception.unwrap();
        assert_eq!(open.remediation, want);
    }
}

#[test]
fn stale_after_48h_without_a_scan() {
    let mut h = with_order("UTC");
    let scan = h.event(
        T0,
        &event(
            TN,
            Status::PickedUp,
            SubStatus::Accepted,
            T0,
            "Austin",
            "78701",
        ),
    );
    h.tick(T0 + 47 * HOUR);
    assert!(h.last.views.is_empty());
    h.tick(T0 + 48 * HOUR + 2 * MIN);
    let stale: Vec<&Decision> = h
        .last
        .decisions
        .iter()
        .filter(|d| d.kind == DecisionKind::Stale)
        .collect();
    assert_eq!(stale.len(), 1);
    assert_eq!(stale[0].log_time_ms, T0 + 48 * HOUR);
    assert_eq!(stale[0].source.offset, scan);
    let view = h.last.views[0];
    assert!(view.stale && view.change == ViewChange::Stale);
    let hook = h.last_intents(Channel::Webhook);
    assert_eq!(hook.len(), 1);
    assert_eq!(hook[0].status, Status::Stale);
    // A new scan clears it.
    let t = T0 + 50 * HOUR;
    h.event(
        t,
        &event(
            TN,
            Status::InTransit,
            SubStatus::ArrivalScan,
            t,
            "Dallas",
            "75201",
        ),
    );
    assert!(!h.last.views[0].stale);
}

#[test]
fn unresolved_exception_escalates_with_a_case_file() {
    let mut h = with_order("UTC");
    let before = h.event(
        T0,
        &event(
            TN,
            Status::InTransit,
            SubStatus::ArrivalScan,
            T0,
            "Austin",
            "78701",
        ),
    );
    let exc = h.event(
        T0 + HOUR,
        &event(
            TN,
            Status::Exception,
            SubStatus::AddressIssue,
            T0 + HOUR,
            "Austin",
            "78701",
        ),
    );
    h.tick(T0 + 25 * HOUR + 5 * MIN);
    assert_eq!(h.last.escalations.len(), 1);
    let e: &Escalation = &h.last.escalations[0];
    assert_eq!(e.exception_offset, exc);
    assert_eq!(e.breached_log_ms, T0 + 25 * HOUR);
    assert_eq!(e.remediation, Remediation::AddressVerificationLink);
    let case = &e.case_file;
    assert_eq!(
        case.events.iter().map(|e| e.offset).collect::<Vec<_>>(),
        vec![before, exc]
    );
    assert!(
        case.decisions
            .iter()
            .any(|d| d.kind == DecisionKind::Notified && d.channel == Some(Channel::Sms))
    );
    assert_eq!(
        case.rules.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        vec!["exception"]
    );
    assert_eq!(case.order.as_ref().unwrap().order_id.as_str(), "ORD-1");
    assert!(
        h.last
            .decisions
            .iter()
            .any(|d| d.kind == DecisionKind::Escalated)
    );
    assert!(
        h.last
            .views
            .iter()
            .any(|v| v.open_exception.is_some_and(|x| x.escalated))
    );
    // Encodes and decodes.
    let mut buf = Vec::new();
    e.encode(&mut buf);
    assert_eq!(&Escalation::decode(&buf).unwrap(), e);

    // Resolved in time: no escalation.
    let mut h = with_order("UTC");
    h.event(
        T0,
        &event(
            TN,
            Status::Exception,
            SubStatus::DelayWeather,
            T0,
            "Austin",
            "78701",
        ),
    );
    h.event(
        T0 + 5 * HOUR,
        &event(
            TN,
            Status::InTransit,
            SubStatus::ProblemResolved,
            T0 + 5 * HOUR,
            "Austin",
            "78701",
        ),
    );
    assert!(h.last.views[0].open_exception.is_none());
    h.tick(T0 + 30 * HOUR);
    assert!(h.all.escalations.is_empty());
}

#[test]
fn drop_mode_turns_low_priority_into_digests_and_widens_windows() {
    let mut h = with_order("UTC");
    let mut out = dropline_operators::ops::Outputs::new();
    h.event(
        T0,
        &event(
            TN,
            Status::LabelCreated,
            SubStatus::InfoReceived,
            T0,
            "Austin",
            "78701",
        ),
    );
    assert!(
        !h.last_intents(Channel::Webhook)[0].digest,
        "low but not a digest outside drop mode"
    );

    let mut d = with_order("UTC");
    d.chain.set_drop_mode(true, T0, &mut out);
    d.event(
        T0,
        &event(
            TN,
            Status::LabelCreated,
            SubStatus::InfoReceived,
            T0,
            "Austin",
            "78701",
        ),
    );
    let hook = d.last_intents(Channel::Webhook)[0];
    assert!(hook.digest);
    assert_eq!(hook.send_after_ms, T0 + 4 * HOUR, "next 4-hour digest slot");
    assert_eq!(
        d.last_decision(Channel::Webhook).unwrap().kind,
        DecisionKind::Digested
    );
    // Critical never waits.
    d.event(
        T0 + MIN,
        &event(
            TN,
            Status::OutForDelivery,
            SubStatus::OnVehicle,
            T0 + MIN,
            "Austin",
            "78701",
        ),
    );
    assert!(
        d.last
            .intents
            .iter()
            .all(|i| !i.digest && i.send_after_ms == 0)
    );
    // Debounce is coarser: pings 45 minutes apart at one place are held.
    let other = "1Z999AA10123456799";
    d.order(T0, &order(other, "ORD-2", "buyer-2", "UTC"));
    d.event(
        T0,
        &event(
            other,
            Status::InTransit,
            SubStatus::ArrivalScan,
            T0,
            "Reno",
            "89501",
        ),
    );
    d.event(
        T0 + 45 * MIN,
        &event(
            other,
            Status::InTransit,
            SubStatus::DepartureScan,
            T0 + 45 * MIN,
            "Reno",
            "89501",
        ),
    );
    assert_eq!(d.last_kinds(), vec![DecisionKind::Debounced]);
}

#[test]
fn eviction_prefers_delivered_and_records_a_decision() {
    let config = ChainConfig {
        shipments_max: 2,
        ..ChainConfig::default()
    };
    let mut h = Harness::new(config, Rules::default_rules());
    let (a, b, c) = (
        "1ZEVICT00000000001",
        "1ZEVICT00000000002",
        "1ZEVICT00000000003",
    );
    h.event(
        T0,
        &event(
            a,
            Status::InTransit,
            SubStatus::ArrivalScan,
            T0,
            "Austin",
            "78701",
        ),
    );
    h.event(
        T0,
        &event(
            b,
            Status::Delivered,
            SubStatus::Signed,
            T0,
            "Austin",
            "78701",
        ),
    );
    h.event(
        T0 + MIN,
        &event(
            c,
            Status::InTransit,
            SubStatus::ArrivalScan,
            T0,
            "Austin",
            "78701",
        ),
    );
    let evicted: Vec<&Decision> = h
        .last
        .decisions
        .iter()
        .filter(|d| d.kind == DecisionKind::Evicted)
        .collect();
    assert_eq!(evicted.len(), 1);
    assert_eq!(evicted[0].tracking_number.as_str(), b);
    assert_eq!(h.chain.shipments(), 2);
    assert!(h.chain.shipment_view(b).is_none());
    assert!(h.chain.shipment_view(a).is_some());
}

#[test]
fn delivered_shipments_retire_after_retention() {
    let mut h = with_order("UTC");
    h.event(
        T0,
        &event(
            TN,
            Status::Delivered,
            SubStatus::Signed,
            T0,
            "Austin",
            "78701",
        ),
    );
    assert_eq!(h.chain.shipments(), 1);
    h.tick(T0 + 73 * HOUR);
    assert!(
        h.last
            .decisions
            .iter()
            .any(|d| d.kind == DecisionKind::Retired)
    );
    assert!(h.last.views.iter().any(|v| v.change == ViewChange::Removed));
    assert_eq!(h.chain.shipments(), 0);
}

#[test]
fn bad_tracking_numbers_are_dead_lettered() {
    let mut h = Harness::default();
    h.event(
        T0,
        &event(
            &"9".repeat(41),
            Status::InTransit,
            SubStatus::ArrivalScan,
            T0,
            "",
            "",
        ),
    );
    assert_eq!(
        h.last.dead_letters[0].reason,
        DeadLetterReason::TrackingNumberTooLong { bytes: 41 }
    );
    h.event(
        T0,
        &event("", Status::InTransit, SubStatus::ArrivalScan, T0, "", ""),
    );
    assert_eq!(
        h.last.dead_letters[0].reason,
        DeadLetterReason::TrackingNumberEmpty
    );
    let mut buf = Vec::new();
    h.last.dead_letters[0].encode(&mut buf);
    assert_eq!(DeadLetter::decode(&buf).unwrap(), h.last.dead_letters[0]);
    let mut o = order(TN, &"x".repeat(65), "b", "UTC");
    h.order(T0, &o);
    assert!(matches!(
        h.last.dead_letters[0].reason,
        DeadLetterReason::OrderFieldTooLong { .. }
    ));
    o.order_id = "ok".into();
    h.order(T0, &o);
    assert!(h.last.dead_letters.is_empty());
}

#[test]
fn events_before_the_order_are_recorded_as_no_order() {
    let mut h = Harness::default();
    h.event(
        T0,
        &event(
            TN,
            Status::PickedUp,
            SubStatus::Accepted,
            T0,
            "Austin",
            "78701",
        ),
    );
    assert_eq!(h.last_kinds(), vec![DecisionKind::NoOrder]);
    assert_eq!(h.last.views.len(), 1);
    h.order(T0 + MIN, &order(TN, "ORD-1", "buyer-1", "UTC"));
    assert_eq!(h.last_kinds(), vec![DecisionKind::OrderLinked]);
    assert_eq!(h.last.views[0].change, ViewChange::OrderLinked);
    assert_eq!(h.last.views[0].status, Some(Status::PickedUp));
}

#[test]
fn intent_ids_are_deterministic_and_outputs_round_trip() {
    let run = || {
        let mut h = with_order("America/Chicago");
        h.event(
            T0,
            &event(
                TN,
                Status::OutForDelivery,
                SubStatus::OnVehicle,
                T0,
                "Austin",
                "78701",
            ),
        );
        h.event(
            T0 + HOUR,
            &event(
                TN,
                Status::Delivered,
                SubStatus::Signed,
                T0 + HOUR,
                "Austin",
                "78701",
            ),
        );
        h.all
    };
    let (a, b) = (run(), run());
    assert_eq!(a.intents, b.intents);
    let ids: std::collections::HashSet<_> = a.intents.iter().map(|i| i.id).collect();
    assert_eq!(
        ids.len(),
        a.intents.len(),
        "ids are unique per channel and scan"
    );
    let mut buf = Vec::new();
    for i in &a.intents {
        buf.clear();
        i.encode(&mut buf);
        assert_eq!(&NotificationIntent::decode(&buf).unwrap(), i);
        let json = serde_json::to_string(i).unwrap();
        assert_eq!(
            &serde_json::from_str::<NotificationIntent>(&json).unwrap(),
            i
        );
        assert!(json.contains(&format!("\"{}\"", i.id)));
    }
    for v in &a.views {
        buf.clear();
        v.encode(&mut buf);
        assert_eq!(&ShipmentView::decode(&buf).unwrap(), v);
    }
    for d in &a.decisions {
        buf.clear();
        d.encode(&mut buf);
        assert_eq!(&Decision::decode(&buf).unwrap(), d);
    }
    buf.clear();
    a.intents[0].encode(&mut buf);
    assert!(NotificationIntent::decode(&buf[..buf.len() - 1]).is_err());
    buf[0] = 9;
    assert!(matches!(
        NotificationIntent::decode(&buf),
        Err(dropline_operators::ops::WireError::UnknownVersion { version: 9, .. })
    ));
}

#[test]
fn snapshot_restore_round_trips_state() {
    let mut h = with_order("Europe/Berlin");
    h.event(
        T0,
        &event(
            TN,
            Status::InTransit,
            SubStatus::ArrivalScan,
            T0,
            "Berlin",
            "10115",
        ),
    );
    h.event(
        T0 + MIN,
        &event(
            TN,
            Status::InTransit,
            SubStatus::DepartureScan,
            T0 + MIN,
            "Berlin",
            "10115",
        ),
    );
    let mut snap = Vec::new();
    h.chain.snapshot(&mut snap);
    let restored = dropline_operators::ops::Chain::restore(
        ChainConfig::default(),
        std::sync::Arc::new(Rules::default_rules()),
        &snap,
    )
    .unwrap();
    let mut again = Vec::new();
    restored.snapshot(&mut again);
    assert_eq!(snap, again);
    assert_eq!(restored.shipments(), 1);
    assert_eq!(restored.shipment_view(TN), h.chain.shipment_view(TN));
    assert!(matches!(
        dropline_operators::ops::Chain::restore(
            ChainConfig::default(),
            std::sync::Arc::new(Rules::default_rules()),
            &snap[..snap.len() - 3]
        ),
        Err(dropline_operators::ops::SnapshotError::Wire(_))
    ));
    assert!(matches!(
        dropline_operators::ops::Chain::restore(
            ChainConfig::default(),
            std::sync::Arc::new(Rules::default_rules()),
            b"nope"
        ),
        Err(dropline_operators::ops::SnapshotError::BadMagic)
    ));
}
