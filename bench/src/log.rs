//! `dropline bench log`: durable appends from concurrent producers, replay,
//! key lookups and crash recovery of one log directory, next to the disk's
//! own sequential fdatasync bandwidth measured in the same run.
//!
//! The disk reference writes a fresh file as large as the data the log will
//! write, before and after the log runs, and keeps both files until the end
//! so that neither side reuses blocks the other freed (freed blocks are
//! served several times faster than never-written ones).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use dropline_log::{
    AppendRequest, Durability, IoMode, Log, LogConfig, LogError, Record, TopicConfig,
};
use hdrhistogram::Histogram;

use crate::disk::{LATENCY_WRITE_BYTES, measure_fdatasync, measure_sync_latency};
use crate::report::{Report, latency_histogram_us, max_rss_mb};

/// Topic the benchmark writes.
pub const BENCH_TOPIC: &str = "bench-log";
/// Key lookups sampled for the lookup latency.
pub const KEY_LOOKUPS: usize = 1000;
/// Appends the crash child makes at most (the parent kills it long before).
pub const CHILD_APPENDS_MAX: u64 = 1_000_000;
/// Samples of the disk's own write + fdatasync latency.
pub const SYNC_LATENCY_SAMPLES: usize = 400;
/// Distinct keys are `records / RECORDS_PER_KEY` (10M records, 1M keys).
pub const RECORDS_PER_KEY: u64 = 10;
/// By default the benchmark's log zero-fills its segments ahead of the
/// data (`LogConfig::preallocate_segments`; `--preallocate false` for the
/// A/B); the crash child always does.
pub const PREALLOCATE_SEGMENTS: bool = true;

/// Arguments of `dropline bench log`.
#[derive(Debug, Clone)]
pub struct LogBenchArgs {
    /// Records to append.
    pub records: u64,
    /// Bytes per record, key included.
    pub record_bytes: usize,
    /// Concurrent producer threads.
    pub producers: usize,
    /// Records per append (one batch).
    pub batch_records: usize,
    /// Appends each producer keeps waiting for their fdatasync at once
    /// (1: append, wait, append; more: pipelined like the ingest server,
    /// which keeps several batches per connection in flight).
    pub in_flight: usize,
    /// Partitions of the benchmark topic.
    pub partitions: u32,
    /// Durability mode of the log.
    pub durability: Durability,
    /// I/O path of appends: probe io_uring (`Auto`) or always `pwrite`.
    pub io_mode: IoMode,
    /// Zero-fill segments ahead of the data.
    pub preallocate: bool,
    /// Directory for the log and the disk reference files.
    pub dir: PathBuf,
    /// Path of the `dropline` binary, used to run the crash-recovery child.
    /// `None` skips the kill -9 measurement and reports a clean reopen.
    pub child_exe: Option<PathBuf>,
}

/// Errors of the log benchmark.
#[derive(Debug, thiserror::Error)]
pub enum LogBenchError {
    /// The log failed.
    #[error("log: {0}")]
    Log(#[from] LogError),
    /// File or process I/O failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// Arguments out of range.
    #[error("invalid argument: {0}")]
    Invalid(&'static str),
    /// A histogram could not be created.
    #[error("histogram: {0}")]
    Histogram(#[from] hdrhistogram::CreationError),
    /// A producer thread panicked.
    #[error("producer thread panicked")]
    ProducerPanicked,
    /// The crash child did not behave.
    #[error("crash child: {0}")]
    Child(String),
}

fn key_for(index: u64, keys: u64) -> String {
    format!("TRK{:015}", index % keys.max(1))
}

/// Runs the benchmark and returns its report.
pub fn run(args: &LogBenchArgs) -> Result<Report, LogBenchError> {
    if args.records == 0 || args.producers == 0 || args.batch_records == 0 {
        return Err(LogBenchError::Invalid(
            "records, producers and batch must be > 0",
        ));
    }
    if args.record_bytes < 32 {
        return Err(LogBenchError::Invalid("record-bytes must be at least 32"));
    }
    std::fs::create_dir_all(&args.dir)?;
    let log_dir = args.dir.join("log");
    if log_dir.exists() {
        std::fs::remove_dir_all(&log_dir)?;
    }
    let data_bytes = args.records * args.record_bytes as u64;

    let reference_before = measure_fdatasync(&args.dir, data_bytes, "before")?;
    let sync_latency = measure_sync_latency(&args.dir, LATENCY_WRITE_BYTES, SYNC_LATENCY_SAMPLES)?;

    let mut config = LogConfig::new(&log_dir);
    config.durability = args.durability;
    config.io_mode = args.io_mode;
    // Segments zero-filled ahead of the data (the first one while the
    // topic is created, before the clock starts; later ones in the
    // background during the appends, whose disk writes they share).
    config.preallocate_segments = args.preallocate;
    let log = Arc::new(Log::open(config.clone())?);
    log.create_topic(BENCH_TOPIC, TopicConfig::new(args.partitions.max(1)))?;
    let io_backend = format!("{:?}", log.io_backend());

    // Appends.
    let keys = (args.records / RECORDS_PER_KEY).max(1);
    // Each producer's batches are laid out before the clock starts, so the
    // figure is the log's and not the formatting of keys.
    let work: Vec<Vec<(u32, Vec<String>)>> = (0..args.producers)
        .map(|producer| producer_batches(args, producer, keys))
        .collect();
    let started = Instant::now();
    let mut handles = Vec::with_capacity(args.producers);
    for batches in work {
        let log = Arc::clone(&log);
        let args = args.clone();
        handles.push(std::thread::spawn(move || produce(&log, &args, &batches)));
    }
    let mut ack_latency = latency_histogram_us()?;
    for handle in handles {
        let hist = handle
            .join()
            .map_err(|_| LogBenchError::ProducerPanicked)??;
        ack_latency
            .add(&hist)
            .map_err(|_| LogBenchError::Invalid("histogram bounds"))?;
    }
    let append_seconds = started.elapsed().as_secs_f64();

    // Replay from the page cache.
    let started = Instant::now();
    let mut replayed = 0u64;
    let mut checksum = 0u64;
    for p in 0..args.partitions.max(1) {
        let partition = log.partition(BENCH_TOPIC, p)?;
        let mut offset = partition.start_offset();
        let end = partition.durable_offset();
        while offset < end {
            let views = partition.read(offset, 4 << 20)?;
            if views.is_empty() {
                break;
            }
            for view in &views {
                for record in view.records() {
                    replayed += 1;
                    checksum = checksum.wrapping_add(record.value.len() as u64);
                }
                offset = view.last_offset() + 1;
            }
        }
    }
    let read_seconds = started.elapsed().as_secs_f64();
    if replayed != args.records {
        return Err(LogBenchError::Child(format!(
            "replay found {replayed} records, {} were appended",
            args.records
        )));
    }

    // Key lookups: the full history of one key, across all its segments.
    let mut lookup_us = latency_histogram_us()?;
    let mut found = 0usize;
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..KEY_LOOKUPS {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let key = key_for(x % keys, keys);
        let p = partition_of(key.as_bytes(), args.partitions);
        let partition = log.partition(BENCH_TOPIC, p)?;
        let t = Instant::now();
        let records = partition.lookup_key(key.as_bytes())?;
        let us = u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX);
        lookup_us.saturating_record(us.max(1));
        found += records.len();
    }
    drop(log);

    // Recovery after kill -9 of a process appending to this directory.
    let (recovery_ms, recovery_kind, truncated) = match &args.child_exe {
        Some(exe) => recover_after_kill(exe, &config)?,
        None => {
            let t = Instant::now();
            let log = Log::open(config.clone())?;
            let ms = t.elapsed().as_secs_f64() * 1e3;
            drop(log);
            (ms, "clean reopen", 0)
        }
    };

    let reference_after = measure_fdatasync(&args.dir, data_bytes, "after")?;
    let disk_before = reference_before.mb_per_s();
    let disk_after = reference_after.mb_per_s();
    let disk_mb_per_s = median(&[disk_before, disk_after]);
    drop(reference_before);
    drop(reference_after);

    let append_records_per_s = args.records as f64 / append_seconds;
    let append_mb_per_s = data_bytes as f64 / append_seconds / 1e6;
    let mut report = Report::new("log");
    report
        .set("records", args.records)
        .set("record_bytes", args.record_bytes)
        .set("producers", args.producers)
        .set("batch_records", args.batch_records)
        .set("in_flight", args.in_flight)
        .set("partitions", args.partitions)
        .set("durability", durability_name(args.durability))
        .set("io_backend", io_backend)
        .set("preallocated_segments", args.preallocate)
        .set_f64("append_records_per_s", append_records_per_s, 0)
        .set_f64("append_mb_per_s", append_mb_per_s, 1)
        .set("ack_latency_us_p50", ack_latency.value_at_quantile(0.5))
        .set("ack_latency_us_p99", ack_latency.value_at_quantile(0.99))
        .set("ack_latency_us_max", ack_latency.max())
        .set_f64("read_records_per_s", replayed as f64 / read_seconds, 0)
        .set("keys", keys)
        .set("key_lookups", KEY_LOOKUPS)
        .set("key_lookup_records_found", found)
        .set_f64(
            "key_lookup_ms_p50",
            lookup_us.value_at_quantile(0.5) as f64 / 1e3,
            3,
        )
        .set_f64(
            "key_lookup_ms_p99",
            lookup_us.value_at_quantile(0.99) as f64 / 1e3,
            3,
        )
        .set_f64("recovery_ms", recovery_ms, 1)
        .set("recovery_kind", recovery_kind)
        .set("recovery_truncated_bytes", truncated)
        .set_f64("disk_fdatasync_mb_per_s", disk_mb_per_s, 1)
        .set("disk_sync_latency_us_p50", sync_latency.p50_us)
        .set("disk_sync_latency_us_p99", sync_latency.p99_us)
        .set_f64(
            "append_vs_disk",
            append_mb_per_s / disk_mb_per_s.max(f64::MIN_POSITIVE),
            3,
        );
    if let Some(rss) = max_rss_mb() {
        report.set_f64("max_rss_mb", rss, 1);
    }
    report.note(format!(
        "disk reference: {:.1} MB/s before, {:.1} MB/s after (fresh files of {} bytes, one fdatasync each)",
        disk_before, disk_after,
        data_bytes
    ));
    report.note(format!(
        "disk latency reference: write {} KiB + fdatasync, p50 {:.2} ms, p99 {:.2} ms ({} samples)",
        sync_latency.write_bytes >> 10,
        sync_latency.p50_us as f64 / 1e3,
        sync_latency.p99_us as f64 / 1e3,
        SYNC_LATENCY_SAMPLES
    ));
    report.set("replay_value_bytes", checksum);
    Ok(report)
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn durability_name(d: Durability) -> String {
    match d {
        Durability::Fsync => "fsync".into(),
        Durability::Interval { interval_ms } => format!("interval-{interval_ms}ms"),
        Durability::None => "none".into(),
    }
}

/// Parses `auto` (io_uring if the kernel allows it) or `pwrite`.
pub fn parse_io_mode(text: &str) -> Option<IoMode> {
    match text {
        "auto" => Some(IoMode::Auto),
        "pwrite" => Some(IoMode::Pwrite),
        _ => None,
    }
}

/// Parses `fsync`, `none` or `interval:<ms>`.
pub fn parse_durability(text: &str) -> Option<Durability> {
    match text {
        "fsync" => Some(Durability::Fsync),
        "none" => Some(Durability::None),
        other => {
            let ms = other.strip_prefix("interval:")?.parse().ok()?;
            Some(Durability::Interval { interval_ms: ms })
        }
    }
}

fn partition_of(key: &[u8], partitions: u32) -> u32 {
    dropline_operators::model::partition_for(key, partitions.max(1))
}

/// A producer's appends: (partition, keys of the batch's records). Record
/// i goes to producer i % producers; within a producer, records are grouped
/// per partition into batches.
fn producer_batches(args: &LogBenchArgs, producer: usize, keys: u64) -> Vec<(u32, Vec<String>)> {
    let partitions = args.partitions.max(1);
    let mut per_partition: Vec<Vec<String>> = vec![Vec::new(); partitions as usize];
    for i in (producer as u64..args.records).step_by(args.producers) {
        let key = key_for(i, keys);
        per_partition[partition_of(key.as_bytes(), partitions) as usize].push(key);
    }
    let mut out = Vec::new();
    for (p, keys) in per_partition.into_iter().enumerate() {
        let p = u32::try_from(p).unwrap_or(0);
        for chunk in keys.chunks(args.batch_records) {
            out.push((p, chunk.to_vec()));
        }
    }
    out
}

fn produce(
    log: &Log,
    args: &LogBenchArgs,
    batches: &[(u32, Vec<String>)],
) -> Result<Histogram<u64>, LogBenchError> {
    let mut hist = latency_histogram_us()?;
    let value_len = args.record_bytes.saturating_sub(18);
    let value = vec![b'v'; value_len];
    let in_flight = args.in_flight.max(1);
    let mut waiting: std::collections::VecDeque<(Instant, dropline_log::Durable)> =
        std::collections::VecDeque::with_capacity(in_flight);
    let mut records: Vec<Record<'_>> = Vec::with_capacity(args.batch_records);
    let mut current = None;
    let mut partition = None;
    for (p, keys) in batches {
        if current != Some(*p) {
            partition = Some(log.partition(BENCH_TOPIC, *p)?);
            current = Some(*p);
        }
        let Some(partition) = &partition else {
            continue;
        };
        records.clear();
        records.extend(keys.iter().map(|k| Record {
            key: k.as_bytes(),
            value: &value,
        }));
        let t = Instant::now();
        let (_, durable) = partition.append_pending(&AppendRequest {
            records: &records,
            producer: None,
        })?;
        waiting.push_back((t, durable));
        // Acks already complete are recorded when seen; when the window is
        // full, wait for the oldest.
        while let Some((started, durable)) = waiting.pop_front() {
            if waiting.len() + 1 >= in_flight || durable.is_durable() {
                durable.wait()?;
                record_us(&mut hist, started);
            } else {
                waiting.push_front((started, durable));
                break;
            }
        }
    }
    for (started, durable) in waiting {
        durable.wait()?;
        record_us(&mut hist, started);
    }
    Ok(hist)
}

fn record_us(hist: &mut Histogram<u64>, started: Instant) {
    let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    hist.saturating_record(us.max(1));
}

/// Runs `exe __log-append-child --dir D`, waits until it reports durable
/// appends, kills it with SIGKILL, and times `Log::open` of the directory.
fn recover_after_kill(
    exe: &Path,
    config: &LogConfig,
) -> Result<(f64, &'static str, u64), LogBenchError> {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(exe)
        .arg("__log-append-child")
        .arg("--dir")
        .arg(&config.dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| LogBenchError::Child("no stdout".into()))?;
    let mut lines = BufReader::new(stdout).lines();
    let mut acked = 0u32;
    while acked < 200 {
        match lines.next() {
            Some(Ok(line)) if line.starts_with("acked") => acked += 1,
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => return Err(LogBenchError::Child("child exited before acking".into())),
        }
    }
    child.kill()?;
    child.wait()?;
    let t = Instant::now();
    let log = Log::open(config.clone())?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let truncated = log
        .recovery_report()
        .truncations()
        .map(|t| t.bytes_removed)
        .sum::<u64>();
    drop(log);
    Ok((ms, "kill -9 of an appending process", truncated))
}

/// The child side of the recovery measurement: appends 250-byte records in
/// batches of 64 to the benchmark topic until killed, printing `acked N`
/// after each durable append. Used by `dropline __log-append-child`.
pub fn append_until_killed(dir: &Path) -> Result<(), LogBenchError> {
    use std::io::Write;
    let mut config = LogConfig::new(dir);
    config.preallocate_segments = PREALLOCATE_SEGMENTS;
    let log = Log::open(config)?;
    let partition = log.partition(BENCH_TOPIC, 0)?;
    let value = vec![b'c'; 232];
    let stdout = std::io::stdout();
    let mut n = 0u64;
    loop {
        let keys: Vec<String> = (0..64).map(|i| key_for(n * 64 + i, u64::MAX)).collect();
        let records: Vec<Record<'_>> = keys
            .iter()
            .map(|k| Record {
                key: k.as_bytes(),
                value: &value,
            })
            .collect();
        let ack = partition.append(&AppendRequest {
            records: &records,
            producer: None,
        })?;
        n += 1;
        let mut out = stdout.lock();
        writeln!(out, "acked {}", ack.last_offset)?;
        out.flush()?;
        if n >= CHILD_APPENDS_MAX {
            return Ok(());
        }
    }
}
