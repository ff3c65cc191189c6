//! `dropline bench forensics`: how long `dropline replay --tracking-number`
//! takes for one parcel in a large log.
//!
//! The log is built the way a node builds it: the pipeline bench generates
//! a superdrop-shaped input (orders and carrier events) and runs the real
//! engine over it, so the output topics (views, decisions, notifications,
//! escalations) hold what a node's would. Then parcels picked at random
//! from the orders topic are replayed one after the other, each a full
//! forensic answer: key-index lookups in every topic, decoding, and the
//! deterministic re-run of the operator chain over the parcel's records.

use std::path::PathBuf;
use std::time::Instant;

use dropline_adapters::forensics::{ORDERS_TOPIC, ReplayOptions, replay_parcel};
use dropline_log::{Log, LogConfig};

use crate::pipeline::{PipelineArgs, PipelineError};
use crate::report::{Report, latency_histogram_us, max_rss_mb};

/// Arguments of `dropline bench forensics`.
#[derive(Debug, Clone)]
pub struct ForensicsArgs {
    /// Carrier events in the log.
    pub events: u64,
    /// Parcels to replay.
    pub lookups: usize,
    /// Partitions of the input topics.
    pub partitions: u32,
    /// Data directory (wiped first).
    pub dir: PathBuf,
    /// Workload seed.
    pub seed: u64,
}

/// Errors of the forensics bench.
#[derive(Debug, thiserror::Error)]
pub enum ForensicsBenchError {
    /// Building the log failed.
    #[error("building the log: {0}")]
    Pipeline(#[from] PipelineError),
    /// The log failed.
    #[error("log: {0}")]
    Log(#[from] dropline_log::LogError),
    /// A replay failed.
    #[error("replay: {0}")]
    Replay(#[from] dropline_adapters::forensics::ForensicsError),
    /// A histogram could not be created.
    #[error("histogram: {0}")]
    Histogram(#[from] hdrhistogram::CreationError),
    /// The log held no parcel to replay.
    #[error("the orders topic is empty")]
    NoParcels,
}

/// Builds the log, then replays `lookups` random parcels.
pub fn run(args: &ForensicsArgs) -> Result<Report, ForensicsBenchError> {
    let build_started = Instant::now();
    let pipeline = crate::pipeline::run(&PipelineArgs {
        events: args.events,
        workers: 2,
        partitions: args.partitions,
        batch_records: 1024,
        dir: args.dir.clone(),
        seed: args.seed,
    })?;
    let build_s = build_started.elapsed().as_secs_f64();

    let log = Log::open(LogConfig::new(args.dir.join("log")))?;
    let parcels = sample_parcels(&log, args.partitions, args.lookups, args.seed)?;
    if parcels.is_empty() {
        return Err(ForensicsBenchError::NoParcels);
    }
    let opts = ReplayOptions::default();
    let mut us = latency_histogram_us()?;
    let (mut events, mut decisions, mut notifications, mut differences) = (0, 0, 0, 0);
    for tn in &parcels {
        let started = Instant::now();
        let history = replay_parcel(&log, tn, None, &opts)?;
        let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        us.saturating_record(took.max(1));
        events += history.events.len();
        decisions += history.decisions.len();
        notifications += history.notifications.len();
        differences += history.differences.len();
    }
    let field = |k: &str| pipeline.get(k).cloned().unwrap_or(serde_json::Value::Null);

    let mut report = Report::new("forensics");
    report
        .set("events", args.events)
        .set("log_records_in", field("events"))
        .set("partitions", args.partitions)
        .set("lookups", parcels.len())
        .set_f64("lookup_ms_p50", us.value_at_quantile(0.5) as f64 / 1e3, 3)
        .set_f64("lookup_ms_p99", us.value_at_quantile(0.99) as f64 / 1e3, 3)
        .set_f64("lookup_ms_max", us.max() as f64 / 1e3, 3)
        .set_f64("events_per_parcel", events as f64 / parcels.len() as f64, 1)
        .set_f64(
            "decisions_per_parcel",
            decisions as f64 / parcels.len() as f64,
            1,
        )
        .set_f64(
            "notifications_per_parcel",
            notifications as f64 / parcels.len() as f64,
            1,
        )
        .set("replay_differences", differences)
        .set_f64("build_seconds", build_s, 1);
    if let Some(rss) = max_rss_mb() {
        report.set_f64("max_rss_mb", rss, 1);
    }
    report.note(
        "each lookup is a whole `dropline replay --tracking-number` answer: every topic's \
         key index, decoding, and the re-run of the operator chain over the parcel",
    );
    report.note(
        "replay_differences counts recorded decisions the re-run did not reproduce (must be 0)",
    );
    Ok(report)
}

/// Up to `n` tracking numbers spread over the orders topic, chosen by a
/// seeded stride so repeated runs replay the same parcels.
fn sample_parcels(
    log: &Log,
    partitions: u32,
    n: usize,
    seed: u64,
) -> Result<Vec<String>, ForensicsBenchError> {
    let mut keys = Vec::new();
    for p in 0..partitions {
        let part = log.partition(ORDERS_TOPIC, p)?;
        let mut from = part.start_offset();
        loop {
            let views = part.read(from, 4 << 20)?;
            let Some(last) = views.last() else { break };
            from = last.last_offset() + 1;
            for v in &views {
                // Tick records (liveness, empty key) are not parcels.
                keys.extend(
                    v.records()
                        .filter(|r| !r.key.is_empty())
                        .filter_map(|r| std::str::from_utf8(r.key).ok().map(str::to_string)),
                );
            }
        }
    }
    if keys.is_empty() || n == 0 {
        return Ok(Vec::new());
    }
    let mut x = seed | 1;
    let mut picked = Vec::with_capacity(n);
    for _ in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        picked.push(keys[(x % keys.len() as u64) as usize].clone());
    }
    Ok(picked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_parcels_of_a_small_log_without_differences() {
        let dir = tempfile::tempdir().unwrap();
        let report = run(&ForensicsArgs {
            events: 20_000,
            lookups: 50,
            partitions: 2,
            dir: dir.path().join("f"),
            seed: 3,
        })
        .unwrap();
        let f = |k: &str| report.get(k).and_then(serde_json::Value::as_f64).unwrap();
        assert_eq!(f("lookups"), 50.0);
        assert!(f("events_per_parcel") >= 1.0);
        assert!(f("notifications_per_parcel") > 0.0);
        assert_eq!(f("replay_differences"), 0.0);
        assert!(f("lookup_ms_p50") > 0.0);
    }
}
