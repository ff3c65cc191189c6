//! `dropline bench e2e --orders N`: a superdrop through the whole path on
//! one machine. The load generator plays the carriers and pushes every
//! scan as a signed carrier webhook to the real adapter (with the carrier
//! simulator as its polling backstop), which sends over QUIC through its
//! durable spool to a node in this process: log, engine with the full
//! operator chain, fan-out into the notify topics, and a delivery worker
//! sending to the SMS/push provider simulator, a real SMTP server and a
//! marketplace webhook receiver.
//!
//! The timed figure (`seconds`) runs from the first send to the moment the
//! engine has processed every event the node acknowledged, outputs
//! durable. Delivery runs alongside and is then given `delivery_wait_s`
//! more to drain critical notifications; SMS is bounded by its sender
//! pool, so the run reports what was delivered by priority rather than
//! waiting for every message.
//!
//! `lost` counts acknowledged carrier events missing from the log (the
//! run fails if the engine does not process what is there);
//! `duplicate_notifications` counts every idempotency key seen more than
//! once at the sinks, including repeats the sinks recognised and dropped.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use dropline_adapters::delivery::DeliveryMetrics;
use dropline_adapters::delivery::scheduler::Class;
use dropline_loadgen::carrier_path::WebhookConfig;
use dropline_loadgen::node::EmbeddedConfig;
use dropline_loadgen::{LoadgenConfig, NodeSpec, Scenario, ScenarioConfig, Session, Transport};
use dropline_log::{Log, LogError};
use dropline_operators::model::{Channel, Priority, notify_topic};

use crate::delivery::DeliveryBenchError;
use crate::delivery_rig::{DeliveryRig, SmsPool, Smtp};
use crate::report::{Report, max_rss_mb};

/// Arguments of the end-to-end bench.
#[derive(Clone, Debug)]
pub struct E2eArgs {
    /// Orders in the superdrop (one parcel each, 10 to 20 scans each).
    pub orders: u64,
    /// Seed of the traffic.
    pub seed: u64,
    /// Partitions of the input topics.
    pub partitions: u32,
    /// Engine workers.
    pub workers: u32,
    /// Scans per webhook body.
    pub scans_per_webhook: usize,
    /// Webhooks in flight.
    pub inflight: usize,
    /// Time delivery is given after processing to drain critical
    /// notifications, s.
    pub delivery_wait_s: u64,
    /// The SMS sender pool.
    pub sms_pool: SmsPool,
    /// Data directory of the node (wiped first); `None`: a temporary one.
    pub dir: Option<PathBuf>,
}

impl Default for E2eArgs {
    fn default() -> Self {
        E2eArgs {
            orders: 200_000,
            seed: 1,
            partitions: 8,
            workers: 2,
            scans_per_webhook: 256,
            inflight: 256,
            delivery_wait_s: 30,
            sms_pool: SmsPool {
                long_codes: 10,
                toll_free: 2,
                short_codes: 1,
            },
            dir: None,
        }
    }
}

/// Why the bench failed.
#[derive(Debug, thiserror::Error)]
pub enum E2eError {
    /// The load run failed.
    #[error("load: {0}")]
    Load(#[from] dropline_loadgen::LoadgenError),
    /// Delivery could not start.
    #[error("delivery: {0}")]
    Delivery(#[from] DeliveryBenchError),
    /// Reading the notify topics failed.
    #[error("log: {0}")]
    Log(#[from] LogError),
    /// The data directory could not be prepared.
    #[error("{path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// The 1-minute load average, when the kernel reports it.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Notification intents the engine wrote, per priority.
fn intents(log: &Log, partitions: u32) -> Result<[u64; 3], LogError> {
    let mut out = [0u64; 3];
    for (i, priority) in Priority::ALL.into_iter().enumerate() {
        for channel in Channel::ALL {
            for p in 0..partitions {
                out[i] += log
                    .partition(&notify_topic(channel, priority), p)?
                    .next_offset();
            }
        }
    }
    Ok(out)
}

fn critical_backlog(metrics: &DeliveryMetrics) -> u64 {
    Channel::ALL
        .into_iter()
        .map(|channel| {
            metrics.backlog(Class {
                channel,
                priority: Priority::Critical,
            })
        })
        .sum()
}

/// Runs the bench.
pub fn run(args: &E2eArgs) -> Result<Report, E2eError> {
    if let Some(dir) = &args.dir
        && dir.exists()
    {
        std::fs::remove_dir_all(dir).map_err(|source| E2eError::Io {
            path: dir.clone(),
            source,
        })?;
    }
    dropline_loadgen::run::runtime()?.block_on(run_async(args))
}

async fn run_async(args: &E2eArgs) -> Result<Report, E2eError> {
    let load_start = load_average();
    let mut config = LoadgenConfig::new(ScenarioConfig {
        orders: args.orders,
        seed: args.seed,
        speedup: f64::INFINITY,
        ..ScenarioConfig::new(Scenario::Superdrop)
    });
    config.node = NodeSpec::Embedded(EmbeddedConfig {
        dir: args.dir.clone(),
        partitions: args.partitions,
        workers: args.workers,
        ..EmbeddedConfig::default()
    });
    config.transport = Transport::Carrier(WebhookConfig {
        scans_per_webhook: args.scans_per_webhook,
        inflight_max: args.inflight,
        ..WebhookConfig::default()
    });
    let mut session = Session::start(config).await?;
    let Some((log, data_dir)) = session
        .node()
        .map(|n| (n.log().clone(), n.dir().to_path_buf()))
    else {
        return Err(E2eError::Load(
            dropline_loadgen::LoadgenError::InvalidConfig {
                field: "node",
                reason: "the end-to-end bench needs its embedded node",
            },
        ));
    };
    let rig = DeliveryRig::start(&log, args.sms_pool, 0, Smtp::IfAvailable).await?;
    session.set_hooks_url(Some(rig.hooks_url()));
    let mut worker = rig.start_worker(log.clone(), data_dir.join("delivery.ckpt"), |cfg| {
        // Non-critical messages would wait for the buyers' mornings, and
        // the per-buyer cap would cut a drop's updates: off here, so the
        // order in which messages go out is the scheduler's alone.
        cfg.quiet_hours = None;
        cfg.buyer_cap = None;
        cfg.idle_poll_ms = 5;
    })?;

    let started = Instant::now();
    let sent = session.drive().await?;
    let seconds = session
        .settle()
        .await?
        .unwrap_or_else(|| started.elapsed().as_secs_f64());
    let processed_at = Instant::now();
    let [critical, normal, low] = intents(&log, args.partitions)?;
    let metrics = rig.metrics.clone();
    let wait = Duration::from_secs(args.delivery_wait_s);
    let drained =
        tokio::time::timeout(wait, worker.wait_state(|_| critical_backlog(&metrics) == 0))
            .await
            .is_ok()
            && critical_backlog(&metrics) == 0;
    let delivery_s = processed_at.elapsed().as_secs_f64();
    let delivered_at = started.elapsed().as_secs_f64();
    let critical_pending = critical_backlog(&metrics);
    let load = |f: fn(&dropline_adapters::delivery::metrics::ChannelCounters) -> u64| -> u64 {
        Channel::ALL
            .into_iter()
            .map(|c| f(metrics.channel(c)))
            .sum()
    };
    let critical_delivered = load(|c| c.critical_delivered.load(Ordering::Relaxed));
    let updates_delivered = load(|c| c.updates_delivered.load(Ordering::Relaxed));
    let skipped = load(|c| c.skipped_no_contact.load(Ordering::Relaxed));
    let per_channel: Vec<(Channel, u64)> = Channel::ALL
        .into_iter()
        .map(|c| {
            (
                c,
                metrics.channel(c).messages_accepted.load(Ordering::Relaxed),
            )
        })
        .collect();
    worker.stop().await.map_err(|e| DeliveryBenchError::Start {
        what: "delivery worker",
        reason: e.to_string(),
    })?;
    let repeats = rig.repeats();
    let violations = rig.providers.stats().violations;
    let smtp_server = rig.smtp_server();
    let sms_ceiling = rig.sms_ceiling_per_s;
    let critical_p50 = metrics.critical_latency_quantile_ms(0.50);
    let critical_p99 = metrics.critical_latency_quantile_ms(0.99);
    let rss = max_rss_mb().unwrap_or(0.0);
    let load_report = session.finish().await?;
    rig.shutdown().await;
    let audit = load_report.audit.unwrap_or_default();
    let c = load_report.counts;

    let share = |part: u64, whole: u64| {
        if whole == 0 {
            1.0
        } else {
            part as f64 / whole as f64
        }
    };
    let mut r = Report::new("e2e");
    r.set("orders", c.orders_acked)
        .set("events", c.events_sent)
        .set_f64("seconds", seconds, 3)
        .set_f64("events_per_s", c.events_sent as f64 / seconds.max(1e-9), 0)
        .set("lost", audit.lost)
        .set("duplicate_notifications", repeats.total())
        .set("critical_latency_ms_p99", critical_p99)
        .set_f64("max_rss_mb", rss, 1)
        .set_f64("ingest_s", sent.drained_us as f64 / 1e6, 3)
        .set("events_acked", c.events_acked)
        .set("events_failed", c.events_failed)
        .set("events_in_log", audit.records)
        .set("duplicates_in_log", audit.duplicates)
        .set(
            "repeated_scans_sent",
            load_report.duplicate_scans_sent.unwrap_or(0),
        )
        .set("webhook_retries", c.retries)
        .set_f64(
            "webhook_latency_ms_p99",
            load_report.event_latency.p99_ms,
            1,
        )
        .set("critical_latency_ms_p50", critical_p50)
        .set("critical_intents", critical)
        .set("critical_delivered", critical_delivered)
        .set("critical_pending", critical_pending)
        .set("critical_drained", drained)
        .set_f64(
            "critical_delivered_share",
            share(critical_delivered, critical),
            4,
        )
        .set("normal_intents", normal)
        .set("low_intents", low)
        .set(
            "normal_low_delivered",
            updates_delivered.saturating_sub(critical_delivered),
        )
        .set_f64(
            "normal_low_delivered_share",
            share(
                updates_delivered.saturating_sub(critical_delivered),
                normal + low,
            ),
            4,
        )
        .set("skipped_no_contact", skipped)
        .set_f64("delivery_wait_s", delivery_s, 2)
        .set_f64("delivery_end_s", delivered_at, 2);
    for (channel, messages) in per_channel {
        r.set(&format!("{}_messages", channel.as_str()), messages);
    }
    r.set("duplicates_delivered", repeats.delivered_twice)
        .set("repeats_dropped_by_sinks", repeats.dropped_by_sinks)
        .set("rate_limit_violations", violations)
        .set_f64("sms_pool_ceiling_per_s", sms_ceiling, 1)
        .set("smtp_server", smtp_server)
        .set("partitions", args.partitions)
        .set("workers", args.workers)
        .set("scans_per_webhook", args.scans_per_webhook as u64)
        .set(
            "cores",
            std::thread::available_parallelism().map_or(0, |n| n.get() as u64),
        )
        .set_f64("load_avg_1m_start", load_start.unwrap_or(-1.0), 2)
        .set_f64("load_avg_1m_end", load_average().unwrap_or(-1.0), 2);
    r.note("seconds: first webhook sent to every acknowledged event processed by the engine (outputs durable)");
    r.note("everything runs in this process: load generator, adapter, carrier and provider simulators, node, delivery (SMTP server: a child process)");
    r.note("critical latency: carrier event log time to provider acceptance, over delivered critical notifications; critical_pending were still queued at the end");
    r.note("duplicate_notifications: idempotency keys seen more than once at the sinks (dropped or delivered)");
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_superdrop_end_to_end() {
        let dir = tempfile::tempdir().unwrap();
        let args = E2eArgs {
            orders: 200,
            partitions: 4,
            scans_per_webhook: 8,
            inflight: 16,
            delivery_wait_s: 60,
            sms_pool: SmsPool {
                long_codes: 0,
                toll_free: 0,
                short_codes: 2,
            },
            dir: Some(dir.path().join("node")),
            ..E2eArgs::default()
        };
        let report = run(&args).unwrap();
        let json: serde_json::Value =
            serde_json::from_str(report.render().lines().last().unwrap()).unwrap();
        assert_eq!(json["bench"], "e2e");
        assert_eq!(json["orders"], 200);
        assert!(json["events"].as_u64().unwrap() > 200 * 10);
        assert_eq!(json["lost"], 0);
        assert_eq!(json["duplicates_in_log"], 0);
        assert_eq!(json["duplicates_delivered"], 0);
        assert!(json["critical_intents"].as_u64().unwrap() > 0);
        assert!(json["critical_delivered"].as_u64().unwrap() > 0);
        for key in [
            "seconds",
            "events_per_s",
            "critical_latency_ms_p99",
            "max_rss_mb",
            "smtp_server",
        ] {
            assert!(json.get(key).is_some(), "missing {key}");
        }
    }
}
