//! Chaos at the carriers, against the adapter (in process, on the
//! simulator's accelerated clock): an outage (503s, then answers slower
//! than the request timeout) and its end, a storm of 429s with a long
//! `Retry-After`, and webhooks going silent so that polling takes over.
//! Each scenario checks that every scan the simulator invented reaches the
//! sink exactly once, that no carrier limit was exceeded, that the adapter
//! said what happened in its log, and prints how long recovery took.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod chaos_support;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use chaos_support::*;
use dropline_adapters::carrier::{
    AdapterHandle, EventSink, ScaledClock, SinkRefusal, run_adapter_with_clock,
};
use dropline_loadgen::carrier_sim::{
    CarrierSimHandle, FEDEX_LIMITS, Faults, GroundTruthScan, PerCarrier, RateWindow, WebhookTarget,
    run_carrier_sim,
};
use dropline_operators::model::{Carrier, CarrierEvent, EventSource};

const SPEEDUP: f64 = 2_000.0;

/// Keeps every event it is given (an acknowledging, durable sink).
#[derive(Default)]
struct MemorySink {
    events: Mutex<Vec<CarrierEvent>>,
}

impl EventSink for MemorySink {
    async fn accept(&self, events: &[CarrierEvent]) -> Vec<Result<(), SinkRefusal>> {
        self.events.lock().unwrap().extend(events.iter().cloned());
        events.iter().map(|_| Ok(())).collect()
    }
}

impl MemorySink {
    fn events(&self) -> Vec<CarrierEvent> {
        self.events.lock().unwrap().clone()
    }
    fn count(&self, source: EventSource) -> usize {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.source == source)
            .count()
    }
}

struct Rig {
    sim: CarrierSimHandle,
    adapter: AdapterHandle<MemorySink>,
    sink: Arc<MemorySink>,
    truth: Vec<GroundTruthScan>,
    _dir: tempfile::TempDir,
}

impl Rig {
    /// The simulator and an adapter for `carrier` only, with `shipments`
    /// registered; `webhooks`: whether the carrier pushes.
    async fn start(
        carrier: Carrier,
        limits: Vec<RateWindow>,
        shipments: usize,
        webhooks: bool,
        tune: impl FnOnce(&mut dropline_adapters::carrier::AdapterConfig),
    ) -> Rig {
        capture_logs();
        let per_carrier = PerCarrier::all(limits);
        let sim_config = sim_config(SPEEDUP, &per_carrier);
        let mut sim = run_carrier_sim(sim_config.clone()).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let pushing: &[Carrier] = if webhooks { &[carrier] } else { &[] };
        let mut config = adapter_config(
            dir.path(),
            &sim.base_url(),
            &sim_config,
            &[carrier],
            pushing,
        );
        tune(&mut config);
        let sink = Arc::new(MemorySink::default());
        let clock = Arc::new(ScaledClock::new(sim.clock().now_ms(), SPEEDUP));
        let adapter = run_adapter_with_clock(config, sink.clone(), clock)
            .await
            .unwrap();
        if webhooks {
            let mut target = WebhookTarget::new(adapter.base_url());
            target.carriers = vec![carrier];
            target.tick_ms = 5;
            sim.set_webhook_target(target);
        }
        for n in sim.register_generated(carrier, shipments).unwrap() {
            adapter.register(&n, carrier, !webhooks).unwrap();
        }
        let truth = sim.ground_truth(false);
        Rig {
            sim,
            adapter,
            sink,
            truth,
            _dir: dir,
        }
    }

    fn covered(&self) -> usize {
        covered(&self.sink.events(), &self.truth)
    }

    async fn wait_share(&self, share: f64) {
        let want = (share * self.truth.len() as f64).ceil() as usize;
        eventually(&format!("{want} of {} scans", self.truth.len()), || {
            self.covered() >= want
        })
        .await;
    }

    /// Waits for every scan, then checks each arrived once and no limit
    /// was exceeded.
    async fn finish(self) {
        self.wait_share(1.0).await;
        assert_exactly_once(&self.sink.events(), &self.truth);
        let stats = self.sim.stats();
        for carrier in Carrier::ALL {
            assert_eq!(
                stats.carriers.get(carrier).violations,
                0,
                "{carrier}: a rate limit was exceeded"
            );
        }
        self.adapter.shutdown().await;
        self.sim.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carrier_outage_then_recovery_loses_nothing() {
    let rig = Rig::start(
        Carrier::Ups,
        vec![RateWindow {
            requests: 600,
            window_ms: 3_600_000,
        }],
        6,
        false,
        |c| c.poller.request_timeout_ms = 200,
    )
    .await;
    rig.wait_share(0.25).await;

    // The carrier answers 503 to everything.
    rig.sim.set_faults(Faults {
        outage: vec![Carrier::Ups],
        ..Faults::default()
    });
    let outage = Instant::now();
    eventually("the breaker to open on 503s", || {
        rig.adapter.metrics().carrier(Carrier::Ups).breaker_opens >= 1
    })
    .await;
    report("carrier outage", "breaker opened", outage.elapsed());
    // Then it answers, but slower than the adapter waits (timeouts).
    let errors = rig.adapter.metrics().carrier(Carrier::Ups).errors;
    rig.sim.set_faults(Faults {
        slow_ms: 500,
        ..Faults::default()
    });
    eventually("requests to time out", || {
        rig.adapter.metrics().carrier(Carrier::Ups).errors >= errors + 2
    })
    .await;
    let during = rig.covered();

    // The carrier recovers.
    rig.sim.set_faults(Faults::default());
    let recovered = Instant::now();
    wait_logged(&[
        "carrier answers again; circuit breaker closed",
        "carrier=ups",
    ])
    .await;
    report(
        "carrier outage",
        "first good answer after the outage",
        recovered.elapsed(),
    );
    rig.wait_share(1.0).await;
    report(
        "carrier outage",
        "every scan collected after the outage",
        recovered.elapsed(),
    );
    assert!(rig.covered() > during, "scans arrived after the outage");
    let m = rig.adapter.metrics();
    let ups = m.carrier(Carrier::Ups);
    assert!(ups.errors > 0 && ups.breaker_opens >= 1, "{ups:?}");
    wait_logged(&[
        "carrier failing; circuit breaker open",
        "carrier=ups",
        "503",
    ])
    .await;
    wait_logged(&[
        "carrier answers again; circuit breaker closed",
        "carrier=ups",
    ])
    .await;
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storm_of_429s_is_waited_out_within_limits() {
    /// `Retry-After` of the storm: one simulated hour (1.8 s real).
    const RETRY_AFTER_S: u64 = 3_600;
    let inflight_max = 2u64;
    let rig = Rig::start(Carrier::Fedex, FEDEX_LIMITS.to_vec(), 20, false, |_| {}).await;
    rig.wait_share(0.25).await;

    let before = rig.sim.stats().carriers.fedex;
    let storm_began_ms = rig.sim.clock().now_ms();
    rig.sim.set_faults(Faults {
        storm_429: vec![Carrier::Fedex],
        storm_retry_after_s: RETRY_AFTER_S,
        ..Faults::default()
    });
    let storm = Instant::now();
    // Two answers of the storm: the second came after waiting out the
    // first one's Retry-After.
    eventually("two 429s", || {
        rig.adapter.metrics().carrier(Carrier::Fedex).rate_limited >= 2
    })
    .await;
    rig.sim.set_faults(Faults::default());
    let storm_ms = rig.sim.clock().now_ms() - storm_began_ms;
    let lifted = Instant::now();
    report("429 storm", "storm lasted", storm.elapsed());
    let during = rig.sim.stats().carriers.fedex;
    let storm_answers = during.storm_429 - before.storm_429;
    // Honouring Retry-After: at most one request per slot per Retry-After
    // (a poller that ignored it would ask every few simulated minutes).
    let allowed = (storm_ms as u64 / (RETRY_AFTER_S * 1_000) + 1) * inflight_max;
    assert!(
        storm_answers <= allowed,
        "{storm_answers} requests during a {storm_ms} ms storm with Retry-After {RETRY_AFTER_S} s"
    );
    rig.wait_share(1.0).await;
    report(
        "429 storm",
        "every scan collected after the storm",
        lifted.elapsed(),
    );
    wait_logged(&[
        "carrier answers 429; polling waits for its Retry-After",
        "carrier=fedex",
    ])
    .await;
    wait_logged(&["carrier accepts requests again after 429s", "carrier=fedex"]).await;
    let m = rig.adapter.metrics();
    assert_eq!(m.carrier(Carrier::Fedex).errors, 0, "429s are not failures");
    assert_eq!(
        rig.sim.stats().carriers.fedex.rate_limited,
        0,
        "no limit hit"
    );
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_webhooks_hand_over_to_polling_and_back() {
    let rig = Rig::start(
        Carrier::Usps,
        vec![RateWindow {
            requests: 600,
            window_ms: 3_600_000,
        }],
        8,
        true,
        |c| c.silence.threshold_ms = 30 * 60_000,
    )
    .await;
    eventually("webhooks to flow", || {
        rig.sink.count(EventSource::Webhook) >= 16
    })
    .await;
    assert!(!rig.adapter.is_silent(Carrier::Usps));

    rig.sim.set_faults(Faults {
        webhook_silence: vec![Carrier::Usps],
        ..Faults::default()
    });
    let silence = Instant::now();
    let polled_before = rig.sink.count(EventSource::Poll);
    eventually("the silence to be noticed", || {
        rig.adapter.is_silent(Carrier::Usps)
    })
    .await;
    report("webhook silence", "silence noticed", silence.elapsed());
    eventually("polling to take over", || {
        rig.sink.count(EventSource::Poll) >= polled_before + 8
    })
    .await;
    report(
        "webhook silence",
        "8 scans found by polling",
        silence.elapsed(),
    );

    rig.sim.set_faults(Faults::default());
    let back = Instant::now();
    eventually("the webhooks to be back", || {
        !rig.adapter.is_silent(Carrier::Usps)
    })
    .await;
    report("webhook silence", "webhooks back in use", back.elapsed());
    wait_logged(&[
        "webhooks silent; promoting shipments to polling",
        "carrier=usps",
    ])
    .await;
    wait_logged(&[
        "webhooks are back; polling returns to backstop cadence",
        "carrier=usps",
    ])
    .await;
    assert_eq!(
        rig.adapter
            .metrics()
            .carrier(Carrier::Usps)
            .silence_promotions,
        1
    );
    rig.finish().await;
}
