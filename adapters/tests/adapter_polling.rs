//! The adaptive poller against the carrier simulator on simulated time:
//! it never exceeds a carrier's rate limit (counted by the simulator,
//! with limits that bind), batches FedEx numbers, collects every scan
//! exactly once; and webhook silence promotes a carrier's shipments to
//! polling until the webhooks return.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod adapter_support;

use std::sync::Arc;

use adapter_support::*;
use dropline_adapters::carrier::run_adapter_with_clock;
use dropline_loadgen::carrier_sim::{
    DHL_LIMITS, Faults, PerCarrier, RateWindow, USPS_LIMITS, WebhookTarget, run_carrier_sim,
};
use dropline_operators::model::{Carrier, EventSource};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_never_exceeds_any_carrier_limit() {
    // USPS and DHL at their real limits; UPS (unpublished) and FedEx
    // (1,400 per 10 s, which no test could reach) scaled down so that
    // every limit binds: demand below is several times each limit.
    let limits = PerCarrier {
        ups: vec![RateWindow {
            requests: 10,
            window_ms: 3_600_000,
        }],
        fedex: vec![RateWindow {
            requests: 4,
            window_ms: 3_600_000,
        }],
        usps: USPS_LIMITS.to_vec(),
        dhl: DHL_LIMITS.to_vec(),
    };
    let speedup = 4_000.0;
    let sim_config = sim_config(speedup, &limits);
    let sim = run_carrier_sim(sim_config.clone()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = adapter_config(dir.path(), &sim.base_url(), &limits, &sim_config, &[]);
    config.poller.limit_headroom_percent = 5;
    let sink = Arc::new(TestSink::default());
    let adapter = run_adapter_with_clock(config, sink.clone(), scaled_clock(speedup))
        .await
        .unwrap();
    for (carrier, n) in [
        (Carrier::Ups, 6),
        (Carrier::Fedex, 35),
        (Carrier::Usps, 15),
        (Carrier::Dhl, 4),
    ] {
        for tn in sim.register_generated(carrier, n).unwrap() {
            assert!(adapter.register(&tn, carrier, true).unwrap());
        }
    }
    let truth = sim.ground_truth(false);
    sink.wait_until(|events| covers(events, &truth)).await;

    let events = sink.events.lock().unwrap().clone();
    let c = counts(&events);
    assert_eq!(c.len(), truth.len());
    assert!(c.values().all(|n| *n == 1), "every scan handed on once");
    assert!(events.iter().all(|e| e.source == EventSource::Poll));
    let stats = sim.stats();
    let m = adapter.metrics();
    for carrier in Carrier::ALL {
        let s = stats.carriers.get(carrier);
        assert_eq!(s.violations, 0, "{carrier}: {s:?}");
        assert_eq!(s.rate_limited, 0, "{carrier}");
        assert!(s.requests > 0, "{carrier}");
        assert_eq!(m.carrier(carrier).rate_limited, 0);
        assert_eq!(m.carrier(carrier).errors, 0);
    }
    // The limits bound: each carrier used most of its budget over the run.
    let hours = (stats.sim_now_ms - START_MS) as f64 / 3_600_000.0;
    assert!(
        stats.carriers.usps.requests as f64 > 0.5 * 60.0 * hours,
        "{} in {hours} h",
        stats.carriers.usps.requests
    );
    // FedEx requests carried many numbers each.
    let fedex = &stats.carriers.fedex;
    assert!(fedex.numbers_requested >= 10 * fedex.requests, "{fedex:?}");
    assert!(fedex.numbers_requested / fedex.requests <= 30);
    adapter.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_silence_promotes_polling_until_webhooks_return() {
    let limits = PerCarrier::all(vec![RateWindow {
        requests: 600,
        window_ms: 3_600_000,
    }]);
    let speedup = 2_000.0;
    let mut sim_config = sim_config(speedup, &limits);
    sim_config.journey.scans_min = 16;
    sim_config.journey.scans_max = 20;
    let mut sim = run_carrier_sim(sim_config.clone()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = adapter_config(
        dir.path(),
        &sim.base_url(),
        &limits,
        &sim_config,
        &[Carrier::Usps],
    );
    config.carriers.ups = None;
    config.carriers.fedex = None;
    config.carriers.dhl = None;
    config.silence.threshold_ms = 30 * 60_000;
    let sink = Arc::new(TestSink::default());
    let adapter = run_adapter_with_clock(config, sink.clone(), scaled_clock(speedup))
        .await
        .unwrap();
    let mut target = WebhookTarget::new(adapter.base_url());
    target.carriers = vec![Carrier::Usps];
    target.tick_ms = 5;
    sim.set_webhook_target(target);
    let numbers = sim.register_generated(Carrier::Usps, 8).unwrap();
    for tn in &numbers {
        adapter.register(tn, Carrier::Usps, false).unwrap();
    }

    // Webhooks flow: polling is a backstop (first poll, then hours apart).
    sink.wait_until(|events| {
        events
            .iter()
            .filter(|e| e.source == EventSource::Webhook)
            .count()
            >= 16
    })
    .await;
    assert!(!adapter.is_silent(Carrier::Usps));
    let polls_before = sim.stats().carriers.usps.requests;
    assert!(polls_before <= numbers.len() as u64, "{polls_before}");

    // The carrier's webhooks stop: after the threshold, its shipments are
    // polled, and scans that happen during the silence arrive by polling.
    sim.set_faults(Faults {
        webhook_silence: vec![Carrier::Usps],
        ..Faults::default()
    });
    sink.wait_until(|events| {
        events
            .iter()
            .filter(|e| e.source == EventSource::Poll)
            .count()
            >= 8
    })
    .await;
    assert!(adapter.is_silent(Carrier::Usps));
    let m = adapter.metrics();
    assert_eq!(m.carrier(Carrier::Usps).silence_promotions, 1);
    assert!(sim.stats().carriers.usps.requests > polls_before);
    assert!(sim.stats().carriers.usps.webhooks_suppressed > 0);

    // Webhooks return: the silence ends with the first one.
    let webhooks_so_far = m.carrier(Carrier::Usps).webhook_events;
    sim.set_faults(Faults::default());
    sink.wait_until(|events| {
        events
            .iter()
            .filter(|e| e.source == EventSource::Webhook)
            .count() as u64
            > webhooks_so_far
    })
    .await;
    assert!(!adapter.is_silent(Carrier::Usps));
    assert_eq!(
        adapter.metrics().carrier(Carrier::Usps).silence_promotions,
        1
    );
    // Nothing was handed on twice, whichever way it came.
    let events = sink.events.lock().unwrap().clone();
    assert!(counts(&events).values().all(|n| *n == 1));
    adapter.shutdown().await;
    sim.shutdown().await;
}
