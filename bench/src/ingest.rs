//! `dropline bench ingest`: adapters send 250-byte canonical events over
//! QUIC on loopback to a node that appends them to a real log with fsync
//! durability and acknowledges only durable batches. The log is read back
//! at the end: every sent event must be present exactly once.
//!
//! Where `redis-server` is installed, the same records then go through
//! Redis Streams XADD with `appendfsync always` in the same run (pipelined,
//! see [`crate::redis`]), and the ratio is reported; `dropline bench
//! compare` adds `everysec` and the disk's own bandwidth.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use dropline_adapters::client::{BatchAcked, IngestClient, IngestClientConfig, ServerTrust};
use dropline_adapters::ingest::{
    AdapterCredential, CARRIER_EVENTS_TOPIC, IngestServerConfig, LogSink, serve,
};
use dropline_log::{Log, LogConfig, LogError};
use dropline_operators::model::{Carrier, CarrierEvent, EventSource, Location, Status, SubStatus};

use crate::redis::AppendFsync;
use crate::report::{Report, latency_histogram_us, max_rss_mb};

/// Size of each benchmark event (key plus encoded value), in bytes.
pub const EVENT_BYTES: usize = 250;
/// Length of the generated tracking numbers (the key), in bytes.
const KEY_BYTES: usize = 18;

/// Arguments of `dropline bench ingest`.
#[derive(Debug, Clone)]
pub struct IngestBenchArgs {
    /// Events to send in total.
    pub events: u64,
    /// Concurrent adapters (one client each).
    pub adapters: u32,
    /// Records per batch.
    pub batch: u32,
    /// Partitions of `carrier-events`.
    pub partitions: u32,
    /// Largest UDP payload QUIC may use, in bytes.
    pub udp_payload_bytes_max: u16,
    /// Client linger time, in µs.
    pub linger_us: u64,
    /// Directory for the log (a fresh subdirectory is used per run).
    pub dir: PathBuf,
}

/// Errors of the ingest benchmark.
#[derive(Debug, thiserror::Error)]
pub enum IngestBenchError {
    /// The log failed.
    #[error("log: {0}")]
    Log(#[from] LogError),
    /// The ingest server failed.
    #[error("ingest server: {0}")]
    Server(#[from] dropline_adapters::ingest::IngestError),
    /// The client failed.
    #[error("ingest client: {0}")]
    Client(#[from] dropline_adapters::client::ClientError),
    /// I/O failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A histogram could not be created.
    #[error("histogram: {0}")]
    Histogram(#[from] hdrhistogram::CreationError),
    /// Arguments out of range.
    #[error("invalid argument: {0}")]
    Invalid(&'static str),
    /// The Redis reference run failed.
    #[error("redis: {0}")]
    Redis(#[from] crate::redis::RedisError),
}

/// A canonical event whose key plus encoded value is [`EVENT_BYTES`].
pub(crate) fn template() -> (CarrierEvent, Vec<u8>) {
    let mut event = CarrierEvent {
        tracking_number: "1Z0000000000000000".into(),
        carrier: Carrier::Ups,
        status: Status::InTransit,
        sub_status: SubStatus::None,
        raw_code: "I".into(),
        raw_text: String::new(),
        occurred_at_ms: 1_700_000_000_000,
        local_time: "2023-11-14T17:13:20".into(),
        utc_offset_minutes: Some(-300),
        location: Location {
            city: Some("Louisville".into()),
            region: Some("KY".into()),
            postal_code: Some("40201".into()),
            country: Some("US".into()),
        },
        source: EventSource::Synthetic,
        received_at_ms: 1_700_000_000_500,
    };
    let mut text_len = 0;
    loop {
        event.raw_text = "x".repeat(text_len);
        let value = event.encode();
        if KEY_BYTES + value.len() >= EVENT_BYTES {
            return (event, value);
        }
        text_len += 1;
    }
}

/// Writes `1Z<adapter:2><index:14>` into `key`.
fn write_key(key: &mut [u8; KEY_BYTES], adapter: u32, index: u64) {
    key[0] = b'1';
    key[1] = b'Z';
    let mut a = adapter;
    for slot in key[2..4].iter_mut().rev() {
        *slot = b'0' + (a % 10) as u8;
        a /= 10;
    }
    let mut i = index;
    for slot in key[4..].iter_mut().rev() {
        *slot = b'0' + (i % 10) as u8;
        i /= 10;
    }
}

pub(crate) fn parse_key(key: &[u8]) -> Option<(u32, u64)> {
    if key.len() != KEY_BYTES || &key[..2] != b"1Z" {
        return None;
    }
    let text = std::str::from_utf8(&key[2..]).ok()?;
    Some((text[..2].parse().ok()?, text[2..].parse().ok()?))
}

/// Runs the benchmark.
pub fn run(args: &IngestBenchArgs) -> Result<Report, IngestBenchError> {
    let (mut report, value) = measure(args)?;
    match crate::redis::xadd_run(
        &args.dir,
        AppendFsync::Always,
        args.events,
        KEY_BYTES,
        write_key_slice,
        &value,
    ) {
        Ok(redis) => {
            let redis_per_s = redis.entries_per_s();
            report.set_f64("redis_xadd_always_events_per_s", redis_per_s, 0);
            let ours = report
                .get("events_per_s")
                .and_then(serde_json::Value::as_f64)
                .unwrap_or(0.0);
            report.set_f64("ratio_vs_redis", ours / redis_per_s.max(1.0), 2);
        }
        Err(crate::redis::RedisError::NotInstalled(_)) => {
            report.note("redis-server not on PATH: no same-run Redis reference");
        }
        Err(e) => return Err(e.into()),
    }
    if let Some(rss) = max_rss_mb() {
        report.set_f64("max_rss_mb", rss, 1);
    }
    Ok(report)
}

/// The QUIC ingest run alone: its report and the encoded value template
/// (250 bytes with the key), so references can write the same records.
pub fn measure(args: &IngestBenchArgs) -> Result<(Report, Vec<u8>), IngestBenchError> {
    if args.events == 0 || args.adapters == 0 || args.adapters > 99 || args.batch == 0 {
        return Err(IngestBenchError::Invalid(
            "events, adapters (1..=99) and batch must be positive",
        ));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let run_dir = args.dir.join(format!("ingest-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&run_dir);
    std::fs::create_dir_all(&run_dir)?;
    let result = runtime.block_on(run_quic(args, &run_dir));
    let _ = std::fs::remove_dir_all(&run_dir);
    result.map(|(report, (value, _))| (report, value))
}

/// [`write_key`] over a slice, for the Redis reference: `key` must be
/// [`KEY_BYTES`] long (other lengths are left untouched).
pub fn write_key_slice(key: &mut [u8], adapter: u32, index: u64) {
    if let Ok(key) = <&mut [u8; KEY_BYTES]>::try_from(key) {
        write_key(key, adapter, index);
    }
}

/// Length of the generated tracking numbers (the key), in bytes.
pub const EVENT_KEY_BYTES: usize = KEY_BYTES;

/// A sample of the records (first adapter's keys), for the Redis run.
type Sample = (Vec<u8>, u64);

async fn run_quic(
    args: &IngestBenchArgs,
    dir: &std::path::Path,
) -> Result<(Report, Sample), IngestBenchError> {
    let log = Arc::new(Log::open(LogConfig::new(dir.join("log")))?);
    let sink = LogSink::open(log.clone(), args.partitions)?;
    let mut server_config = IngestServerConfig::new(
        "127.0.0.1:0"
            .parse()
            .map_err(|_| IngestBenchError::Invalid("addr"))?,
        dir,
    );
    let token = b"bench-token".to_vec();
    server_config.adapters = (0..args.adapters)
        .map(|a| AdapterCredential::from_token(format!("bench-{a}"), &token))
        .collect();
    server_config.udp_payload_bytes_max = args.udp_payload_bytes_max;
    let server = serve(server_config, sink).await?;

    let (_, value_template) = template();
    let tracking_at = value_template
        .windows(KEY_BYTES)
        .position(|w| w == b"1Z0000000000000000")
        .ok_or(IngestBenchError::Invalid(
            "template has no inline tracking number",
        ))?;
    let histogram = Arc::new(Mutex::new(latency_histogram_us()?));
    let per_adapter = args.events.div_ceil(u64::from(args.adapters));
    let mut clients = Vec::new();
    for a in 0..args.adapters {
        let mut config = IngestClientConfig::new(
            server.local_addr(),
            ServerTrust::PinnedSha256(server.fingerprint_sha256().to_string()),
            format!("bench-{a}"),
            token.clone(),
        );
        config.batch_records_max = args.batch;
        config.batch_bytes_max = 4 * 1024 * 1024;
        config.linger_us = args.linger_us;
        // Enough for every partition's window of full batches, so the
        // latency figure is not dominated by queueing in the client.
        config.buffered_bytes_max =
            (u64::from(args.partitions) * 8 * u64::from(args.batch) * EVENT_BYTES as u64)
                .max(8 << 20);
        config.udp_payload_bytes_max = args.udp_payload_bytes_max;
        config.partitions = Some(args.partitions);
        let h = histogram.clone();
        config.ack_observer = Some(Arc::new(move |ack: &BatchAcked| {
            if let Ok(mut h) = h.lock() {
                let _ = h.record_n(ack.ack_latency_us.max(1), u64::from(ack.records));
            }
        }));
        clients.push(Arc::new(IngestClient::connect(config).await?));
    }

    let start = Instant::now();
    let mut tasks = Vec::new();
    for (a, client) in clients.iter().enumerate() {
        let client = client.clone();
        let mut value = value_template.clone();
        let first = per_adapter * a as u64;
        let last = (first + per_adapter).min(args.events);
        tasks.push(tokio::spawn(async move {
            let mut key = [0u8; KEY_BYTES];
            for i in first..last {
                write_key(&mut key, a as u32, i);
                value[tracking_at..tracking_at + KEY_BYTES].copy_from_slice(&key);
                client.send_encoded(&key, &value).await?;
            }
            client.flush().await
        }));
    }
    for t in tasks {
        t.await
            .map_err(|_| IngestBenchError::Invalid("sender task panicked"))??;
    }
    let seconds = start.elapsed().as_secs_f64();
    let metrics: Vec<_> = clients.iter().map(|c| c.metrics()).collect();
    for c in clients {
        if let Ok(c) = Arc::try_unwrap(c) {
            c.close().await?;
        }
    }
    server.shutdown().await;

    // Read everything back: each sent event exactly once.
    let mut seen = vec![0u8; args.events as usize];
    let mut foreign = 0u64;
    for p in 0..args.partitions {
        let part = log.partition(CARRIER_EVENTS_TOPIC, p)?;
        let mut from = part.start_offset();
        loop {
            let views = part.read(from, 8 * 1024 * 1024)?;
            let Some(last) = views.last() else { break };
            from = last.batch().last_offset() + 1;
            for v in &views {
                for r in v.batch().records() {
                    match parse_key(r.key) {
                        Some((a, i)) if i < args.events && i / per_adapter == u64::from(a) => {
                            seen[i as usize] = seen[i as usize].saturating_add(1);
                        }
                        _ => foreign += 1,
                    }
                }
            }
        }
    }
    let lost = seen.iter().filter(|n| **n == 0).count() as u64;
    let duplicates: u64 = seen
        .iter()
        .map(|n| u64::from(n.saturating_sub(1)))
        .sum::<u64>()
        + foreign;

    let histogram = histogram
        .lock()
        .map(|h| h.clone())
        .unwrap_or_else(|e| e.into_inner().clone());
    let mut report = Report::new("ingest");
    report
        .set("events", args.events)
        .set("adapters", args.adapters)
        .set("batch", args.batch)
        .set("partitions", args.partitions)
        .set("event_bytes", EVENT_BYTES as u64)
        .set("durability", "fsync")
        .set("udp_payload_bytes_max", args.udp_payload_bytes_max)
        .set("linger_us", args.linger_us)
        .set_f64("seconds", seconds, 3)
        .set_f64("events_per_s", args.events as f64 / seconds, 0)
        .set_f64(
            "mb_per_s",
            args.events as f64 * EVENT_BYTES as f64 / seconds / 1e6,
            1,
        );
    report.set_latency("ack_latency_us", &histogram);
    report
        .set(
            "batches_sent",
            metrics.iter().map(|m| m.batches_sent).sum::<u64>(),
        )
        .set(
            "batches_resent",
            metrics.iter().map(|m| m.batches_resent).sum::<u64>(),
        )
        .set("lost", lost)
        .set("duplicates", duplicates);
    report.note(
        "ack latency: from a batch being sealed by the client to its durable ack (per event)",
    );
    drop(log);
    Ok((report, (value_template, per_adapter.min(args.events))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_250_bytes_and_keys_round_trip() {
        let (event, value) = template();
        assert_eq!(KEY_BYTES + value.len(), EVENT_BYTES, "{event:?}");
        let mut key = [0u8; KEY_BYTES];
        write_key(&mut key, 7, 123_456);
        assert_eq!(parse_key(&key), Some((7, 123_456)));
    }

    #[test]
    fn small_run_loses_and_duplicates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let args = IngestBenchArgs {
            events: 5_000,
            adapters: 2,
            batch: 256,
            partitions: 4,
            udp_payload_bytes_max: 1452,
            linger_us: 1_000,
            dir: dir.path().to_path_buf(),
        };
        let report = run(&args).unwrap();
        assert_eq!(report.get("lost").unwrap(), 0);
        assert_eq!(report.get("duplicates").unwrap(), 0);
        assert_eq!(report.get("events").unwrap(), 5_000);
    }
}
