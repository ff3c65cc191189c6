//! Small load runs end to end against an embedded node: through the real
//! adapter with signed carrier webhooks, and raw over QUIC. Every
//! acknowledged event must be in the log exactly once, and processed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use dropline_loadgen::carrier_path::WebhookConfig;
use dropline_loadgen::node::EmbeddedConfig;
use dropline_loadgen::{LoadgenConfig, NodeSpec, Scenario, ScenarioConfig, Transport, run};

fn embedded() -> NodeSpec {
    NodeSpec::Embedded(EmbeddedConfig {
        partitions: 4,
        workers: 2,
        pin_cores: false,
        ..EmbeddedConfig::default()
    })
}

#[test]
fn a_small_superdrop_through_the_adapter_loses_nothing() {
    let reports = tempfile::tempdir().unwrap();
    let mut config = LoadgenConfig::new(ScenarioConfig {
        orders: 120,
        // A week of carrier time in about three seconds.
        speedup: 200_000.0,
        seed: 7,
        ..ScenarioConfig::new(Scenario::Superdrop)
    });
    config.node = embedded();
    config.transport = Transport::Carrier(WebhookConfig {
        scans_per_webhook: 4,
        ..WebhookConfig::default()
    });
    config.report_dir = Some(reports.path().to_path_buf());
    let report = run(config).unwrap();
    let c = report.counts;
    assert_eq!(c.orders_sent, 120);
    assert_eq!(c.orders_acked, 120);
    assert!(c.events_sent > 120 * 10, "{}", c.events_sent);
    assert_eq!(c.events_acked, c.events_sent);
    assert_eq!(c.events_failed, 0);
    let audit = report.audit.unwrap();
    assert_eq!(audit.lost, 0, "{audit:?}");
    assert_eq!(audit.duplicates, 0, "{audit:?}");
    assert_eq!(audit.unexpected, 0, "{audit:?}");
    // The workload repeats about 5% of scans; the adapter drops them, so
    // the log holds one record per distinct scan.
    let repeats = report.duplicate_scans_sent.unwrap();
    assert!(repeats > 0);
    assert_eq!(audit.records, c.events_acked - repeats);
    assert!(report.processed_s.is_some());

    let json = report.to_json();
    assert_eq!(json["loadgen"], "superdrop");
    assert_eq!(json["lost"], 0);
    assert_eq!(json["verified"], true);
    assert!(json["event_latency_ms_p99"].as_f64().unwrap() > 0.0);

    let path = reports.path().join("superdrop-7.html");
    assert_eq!(report.html_path.as_deref(), Some(path.to_str().unwrap()));
    let html = std::fs::read_to_string(&path).unwrap();
    assert_eq!(html.matches("<svg").count(), 3, "three plots");
    assert!(html.contains("Throughput"));
    assert!(html.contains("Latency percentiles"));
    assert!(html.matches("<polyline").count() >= 6);
    assert!(!html.contains("<script"));
}

#[test]
fn a_steady_run_over_raw_quic_loses_nothing() {
    let mut config = LoadgenConfig::new(ScenarioConfig {
        rate_per_s: 2_000.0,
        duration_s: 1.0,
        seed: 3,
        ..ScenarioConfig::new(Scenario::Steady)
    });
    config.node = embedded();
    config.transport = Transport::Raw;
    let report = run(config).unwrap();
    let c = report.counts;
    assert_eq!(c.events_sent, 2_000);
    assert_eq!(c.events_acked, 2_000);
    let audit = report.audit.unwrap();
    assert_eq!(
        (audit.lost, audit.duplicates, audit.unexpected),
        (0, 0, 0),
        "{audit:?}"
    );
    // Straight over QUIC, repeats are appended as sent.
    assert_eq!(audit.records, 2_000);
    assert!(report.event_latency.count == 2_000);
}
