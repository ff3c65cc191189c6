//! `dropline bench pipeline`: the engine over a superdrop-shaped log with
//! durable outputs.
//!
//! The log is filled first (not timed): one order per shipment, then the
//! shipments' scans in waves (label, pickup, several in-transit pings, out
//! for delivery, delivered; 10 to 20 scans each, some exceptions), with
//! carrier retries duplicated. Then the engine starts with `--workers`
//! pinned workers and is timed until every input record is processed with
//! its outputs fdatasync'd. Notifications are read back from the
//! `notify-*` topics and their deterministic ids checked for duplicates.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dropline_engine::{
    ChainFactory, Engine, EngineConfig, EngineError, InputKind, OutputTopic, ensure_topics,
};
use dropline_log::{AppendRequest, Log, LogConfig, LogError, Record};
use dropline_operators::model::{
    Carrier, CarrierEvent, Channel, Contact, EventSource, Location, ShipmentOrder, Status,
    SubStatus, partition_for,
};
use dropline_operators::ops::NotificationIntent;

use crate::report::{Report, max_rss_mb};

/// Arguments of the pipeline bench.
#[derive(Debug, Clone)]
pub struct PipelineArgs {
    /// Carrier events to generate (shipments = events / 15).
    pub events: u64,
    /// Engine workers.
    pub workers: u32,
    /// Partitions of the input topics.
    pub partitions: u32,
    /// Records per appended input batch.
    pub batch_records: usize,
    /// Data directory (wiped first).
    pub dir: PathBuf,
    /// Workload seed.
    pub seed: u64,
}

/// Errors of the pipeline bench.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The log failed.
    #[error("log: {0}")]
    Log(#[from] LogError),
    /// The engine failed.
    #[error("engine: {0}")]
    Engine(#[from] EngineError),
    /// The data directory could not be prepared.
    #[error("data directory {path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The engine did not finish in time.
    #[error("the engine did not process the workload within {seconds} s")]
    Timeout {
        /// The limit.
        seconds: u64,
    },
}

/// How often the resident-memory sampler reads `/proc/self/status`.
const RSS_SAMPLE_INTERVAL_MS: u64 = 20;

/// Peak resident memory by kind while the engine runs, sampled: anonymous
/// memory (heap: operator state, buffers) apart from file pages mapped by
/// the process (the log's segments, read in place), which the kernel counts
/// in the RSS too and drops under memory pressure.
struct RssSampler {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<(f64, f64)>,
}

/// (anonymous, file-backed) resident MB now, from `/proc/self/status`.
fn rss_by_kind_mb() -> Option<(f64, f64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb = |key: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(key))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    Some((kb("RssAnon:")? / 1024.0, kb("RssFile:")? / 1024.0))
}

impl RssSampler {
    fn start() -> RssSampler {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let (mut anon, mut file) = (0f64, 0f64);
            loop {
                if let Some((a, f)) = rss_by_kind_mb() {
                    anon = anon.max(a);
                    file = file.max(f);
                }
                if flag.load(std::sync::atomic::Ordering::Relaxed) {
                    return (anon, file);
                }
                std::thread::sleep(Duration::from_millis(RSS_SAMPLE_INTERVAL_MS));
            }
        });
        RssSampler { stop, thread }
    }

    fn finish(self) -> (f64, f64) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap_or((0.0, 0.0))
    }
}

/// Longest the bench waits for the engine.
const PROCESS_TIMEOUT_S: u64 = 900;

/// Average carrier events per shipment (scans plus retried duplicates).
const EVENTS_PER_SHIPMENT: u64 = 15;

/// SplitMix64, for a reproducible workload without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn tracking_number(i: u64) -> String {
    format!("1ZDL{i:014}")
}

fn order(i: u64, tn: &str) -> ShipmentOrder {
    ShipmentOrder {
        tracking_number: tn.to_string(),
        carrier: Carrier::Ups,
        marketplace: "superdrop".into(),
        seller: format!("seller-{}", i % 50),
        order_id: format!("order-{i}"),
        skus: vec!["SKU-DROP-1".into()],
        buyer_id: format!("buyer-{i}"),
        promised_from_ms: 1_700_300_000_000,
        promised_to_ms: 1_700_500_000_000,
        buyer_locale: "en-US".into(),
        buyer_time_zone: "America/Chicago".into(),
        destination_postal_code: "60601".into(),
        drop: true,
        contacts: vec![
            Contact {
                channel: Channel::Email,
                address: format!("sealed:buyer-{i}@example.com"),
                consent: true,
            },
            Contact {
                channel: Channel::Sms,
                address: format!("sealed:+1555{:07}", i % 10_000_000),
                consent: i.is_multiple_of(3),
            },
        ],
    }
}

/// The scan plan of one shipment: 10 to 20 (status, sub-status) steps.
fn scans(rng: &mut Rng) -> Vec<(Status, SubStatus, &'static str)> {
    let n = 10 + rng.below(11) as usize;
    let mut v = vec![
        (Status::LabelCreated, SubStatus::InfoReceived, "MP"),
        (Status::PickedUp, SubStatus::Accepted, "OR"),
    ];
    let exception = rng.below(20) == 0;
    while v.len() < n - 2 {
        let sub = if v.len() % 2 == 0 {
            SubStatus::ArrivalScan
        } else {
            SubStatus::DepartureScan
        };
        v.push((Status::InTransit, sub, "IT"));
        if exception && v.len() == n / 2 {
            v.push((Status::Exception, SubStatus::DelayWeather, "X"));
        }
    }
    v.truncate(n - 2);
    v.push((Status::OutForDelivery, SubStatus::OnVehicle, "OT"));
    v.push((Status::Delivered, SubStatus::LeftSafePlace, "KB"));
    v
}

fn event(tn: &str, step: usize, scan: (Status, SubStatus, &'static str)) -> Vec<u8> {
    let at = 1_700_000_000_000 + step as i64 * 3_600_000;
    CarrierEvent {
        tracking_number: tn.to_string(),
        carrier: Carrier::Ups,
        status: scan.0,
        sub_status: scan.1,
        raw_code: scan.2.into(),
        raw_text: format!("{:?}", scan.0),
        occurred_at_ms: at,
        local_time: "2023-11-14T17:13:20".into(),
        utc_offset_minutes: Some(-300),
        location: Location {
            city: Some("Louisville".into()),
            region: Some("KY".into()),
            postal_code: None,
            country: Some("US".into()),
        },
        source: EventSource::Webhook,
        received_at_ms: at + 500,
    }
    .encode()
}

/// Appends buffered records per partition in batches of `batch` records.
struct Appender<'a> {
    log: &'a Log,
    topic: &'static str,
    partitions: u32,
    batch: usize,
    pending: Vec<Vec<(Vec<u8>, Vec<u8>)>>,
    records: u64,
}

impl Appender<'_> {
    fn push(&mut self, key: String, value: Vec<u8>) -> Result<(), LogError> {
        let p = partition_for(key.as_bytes(), self.partitions);
        let buf = &mut self.pending[p as usize];
        buf.push((key.into_bytes(), value));
        if buf.len() >= self.batch {
            self.flush_partition(p)?;
        }
        Ok(())
    }

    fn flush_partition(&mut self, p: u32) -> Result<(), LogError> {
        let buf = std::mem::take(&mut self.pending[p as usize]);
        if buf.is_empty() {
            return Ok(());
        }
        let records: Vec<Record<'_>> = buf
            .iter()
            .map(|(k, v)| Record { key: k, value: v })
            .collect();
        let (_, _durable) = self
            .log
            .partition(self.topic, p)?
            .append_pending(&AppendRequest {
                records: &records,
                producer: None,
            })?;
        self.records += records.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), LogError> {
        for p in 0..self.partitions {
            self.flush_partition(p)?;
        }
        Ok(())
    }
}

/// Fills the log; returns (orders, carrier events).
fn fill(log: &Log, args: &PipelineArgs) -> Result<(u64, u64), LogError> {
    let shipments = (args.events / EVENTS_PER_SHIPMENT).max(1);
    let mut rng = Rng(args.seed);
    let mk = |topic| Appender {
        log,
        topic,
        partitions: args.partitions,
        batch: args.batch_records.max(1),
        pending: vec![Vec::new(); args.partitions as usize],
        records: 0,
    };
    let mut orders = mk(InputKind::Orders.topic());
    let mut events = mk(InputKind::CarrierEvents.topic());
    let mut plans = Vec::with_capacity(shipments as usize);
    for i in 0..shipments {
        let tn = tracking_number(i);
        orders.push(tn.clone(), order(i, &tn).encode())?;
        plans.push(scans(&mut rng));
    }
    orders.flush()?;
    // Waves: the w-th scan of every shipment, then the next; a carrier
    // retry resends about one scan in fifteen.
    let waves = plans.iter().map(Vec::len).max().unwrap_or(0);
    let mut pushed = 0u64;
    'waves: for w in 0..waves {
        for (i, plan) in plans.iter().enumerate() {
            let Some(&scan) = plan.get(w) else { continue };
            let tn = tracking_number(i as u64);
            let value = event(&tn, w, scan);
            if rng.below(15) == 0 {
                events.push(tn.clone(), value.clone())?;
                pushed += 1;
            }
            events.push(tn, value)?;
            pushed += 1;
            if pushed >= args.events {
                break 'waves;
            }
        }
    }
    events.flush()?;
    Ok((orders.records, events.records))
}

/// Runs the bench and returns its report.
pub fn run(args: &PipelineArgs) -> Result<Report, PipelineError> {
    let io = |path: &PathBuf| {
        let path = path.clone();
        move |source| PipelineError::Io { path, source }
    };
    if args.dir.exists() {
        std::fs::remove_dir_all(&args.dir).map_err(io(&args.dir))?;
    }
    let data = args.dir.join("log");
    let log = Log::open(LogConfig::new(&data))?;
    ensure_topics(&log, args.partitions)?;
    let fill_start = Instant::now();
    let (orders, events) = fill(&log, args)?;
    let fill_s = fill_start.elapsed().as_secs_f64();
    let targets: Vec<[u64; 3]> = (0..args.partitions)
        .map(|p| {
            let end = |input: InputKind| {
                log.partition(input.topic(), input.topic_partition(p))
                    .map(|part| part.next_offset())
            };
            Ok([0, end(InputKind::Orders)?, end(InputKind::CarrierEvents)?])
        })
        .collect::<Result<_, LogError>>()?;
    // Everything filled must be durable before the clock starts.
    for p in 0..args.partitions {
        for input in [InputKind::Orders, InputKind::CarrierEvents] {
            let part = log.partition(input.topic(), p)?;
            while part.durable_offset() < part.next_offset() {
                part.wait_for_data(part.next_offset().saturating_sub(1), Duration::from_secs(1));
            }
        }
    }

    let config = EngineConfig::new(args.workers, args.dir.join("checkpoints"));
    let (fill_anon_mb, fill_file_mb) = rss_by_kind_mb().unwrap_or((0.0, 0.0));
    let sampler = RssSampler::start();
    let start = Instant::now();
    let engine = Engine::start(&log, config, Arc::new(ChainFactory::with_defaults()))?;
    let done = engine.wait_processed(&targets, Duration::from_secs(PROCESS_TIMEOUT_S));
    let elapsed_s = start.elapsed().as_secs_f64();
    let (run_anon_mb, run_file_mb) = sampler.finish();
    let metrics = engine.metrics().clone();
    engine.stop()?;
    if !done {
        return Err(PipelineError::Timeout {
            seconds: PROCESS_TIMEOUT_S,
        });
    }

    let (mut notifications, mut ids) = (0u64, HashSet::new());
    let mut undecodable = 0u64;
    for t in OutputTopic::all().filter(|t| matches!(t, OutputTopic::Notify(..))) {
        for p in 0..args.partitions {
            let part = log.partition(&t.name(), p)?;
            let mut from = 0;
            loop {
                let batches = part.read(from, 4 << 20)?;
                if batches.is_empty() {
                    break;
                }
                for b in &batches {
                    for r in b.records().filter(|r| r.offset >= from) {
                        notifications += 1;
                        match NotificationIntent::decode(r.value) {
                            Ok(i) => {
                                ids.insert(i.id);
                            }
                            Err(_) => undecodable += 1,
                        }
                    }
                    from = b.last_offset() + 1;
                }
            }
        }
    }
    let duplicates = notifications - undecodable - ids.len() as u64;
    let views: u64 = (0..args.partitions)
        .map(|p| {
            log.partition("shipment-views", p)
                .map(|part| part.next_offset())
        })
        .sum::<Result<u64, LogError>>()?;
    let records = orders + events;
    let latency = metrics.batch_latency_us();
    let mut report = Report::new("pipeline");
    report
        .set("events", events)
        .set("orders", orders)
        .set("workers", args.workers)
        .set("partitions", args.partitions)
        .set_f64("fill_s", fill_s, 2)
        .set_f64("elapsed_s", elapsed_s, 3)
        .set_f64("events_per_s", records as f64 / elapsed_s, 0)
        .set_f64("events_per_s_per_worker", records as f64 / elapsed_s / f64::from(args.workers), 0)
        .set("notifications", notifications)
        .set("duplicate_notifications", duplicates)
        .set("shipment_view_changes", views)
        .set_latency("batch_latency_us", &latency)
        .set_f64("max_rss_mb", max_rss_mb().unwrap_or(0.0), 1)
        .set_f64("rss_anon_mb_after_fill", fill_anon_mb, 1)
        .set_f64("rss_file_mb_after_fill", fill_file_mb, 1)
        .set_f64("rss_anon_mb_peak_run", run_anon_mb, 1)
        .set_f64("rss_file_mb_peak_run", run_file_mb, 1)
        .note("events_per_s counts every input record (orders and carrier events) processed with durable outputs")
        .note("the log is filled before the timed run; fill_s is not part of elapsed_s")
        .note("max_rss_mb is the whole process (fill, run, read-back); rss_file_* are log pages mapped for reading, rss_anon_* heap");
    drop(log);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_drop_notifies_once_per_intent() {
        let dir = tempfile::tempdir().unwrap();
        let args = PipelineArgs {
            events: 3_000,
            workers: 2,
            partitions: 4,
            batch_records: 256,
            dir: dir.path().join("bench"),
            seed: 1,
        };
        let report = run(&args).unwrap();
        let json: serde_json::Value =
            serde_json::from_str(report.render().lines().last().unwrap()).unwrap();
        assert_eq!(json["bench"], "pipeline");
        assert!(json["events"].as_u64().unwrap() >= 3_000);
        assert!(json["notifications"].as_u64().unwrap() > 0);
        assert_eq!(json["duplicate_notifications"], 0);
        for key in [
            "events_per_s",
            "events_per_s_per_worker",
            "batch_latency_us_p99",
            "max_rss_mb",
            "workers",
        ] {
            assert!(json.get(key).is_some(), "missing {key}");
        }
    }
}
