//! Quick release-mode measurement of the log on this machine:
//! `cargo run --release -p dropline-log --example log_bench -- [records]
//! [producers] [batch_records] [dir]`.
//!
//! Appends `records` 250-byte records (key 16 bytes + value 234) from
//! `producers` threads with fsync durability, measuring each append's ack
//! latency; then replays everything on one thread; then looks up 1,000
//! keys; then closes and measures reopening (recovery). The reference is a
//! fresh file of the same size written in 1 MiB pieces with one fdatasync.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use dropline_log::{AppendRequest, Log, LogConfig, Record, TopicConfig};

const RECORD_BYTES: usize = 250;
const KEY_BYTES: usize = 16;
const DISTINCT_KEYS: u64 = 1_000_000;

fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn disk_reference(dir: &std::path::Path, bytes: u64) -> f64 {
    let path = dir.join(format!(
        "reference-{}.bin",
        Instant::now().elapsed().as_nanos()
    ));
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0x5au8; 1 << 20];
    let start = Instant::now();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        f.write_all(&chunk[..n]).unwrap();
        left -= n as u64;
    }
    f.sync_data().unwrap();
    bytes as f64 / start.elapsed().as_secs_f64() / 1e6
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let records: u64 = args
        .get(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000_000);
    let producers: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(4);
    let batch: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(500);
    let root = args
        .get(4)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("dropline-log-bench"));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let dir = root.join("data");
    let data_bytes = records * RECORD_BYTES as u64;
    let reference_before = disk_reference(&root, data_bytes);

    let log = Arc::new(Log::open(LogConfig::new(&dir)).unwrap());
    println!("io backend: {:?}", log.io_backend());
    log.create_topic("bench", TopicConfig::new(1)).unwrap();
    let start = Instant::now();
    let threads: Vec<_> = (0..producers)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                let p = log.partition("bench", 0).unwrap();
                let mut lat_us = Vec::new();
                let per = records / producers;
                let mut i = 0;
                let value = vec![b'v'; RECORD_BYTES - KEY_BYTES];
                while i < per {
                    let n = batch.min(per - i);
                    let keys: Vec<String> = (0..n)
                        .map(|j| format!("{:016}", (t * per + i + j) * 7919 % DISTINCT_KEYS))
                        .collect();
                    let recs: Vec<Record<'_>> = keys
                        .iter()
                        .map(|k| Record {
                            key: k.as_bytes(),
                            value: &value,
                        })
                        .collect();
                    let s = Instant::now();
                    p.append(&AppendRequest {
                        records: &recs,
                        producer: None,
                    })
                    .unwrap();
                    lat_us.push(s.elapsed().as_micros() as u64);
                    i += n;
                }
                lat_us
            })
        })
        .collect();
    let mut lat: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let append_s = start.elapsed().as_secs_f64();
    lat.sort_unstable();
    let p = log.partition("bench", 0).unwrap();
    let written = p.info().bytes;

    let start = Instant::now();
    let mut next = 0;
    let mut count = 0u64;
    let mut checksum = 0u64;
    while next < p.durable_offset() {
        for b in p.read(next, 4 << 20).unwrap() {
            for r in b.records() {
                count += 1;
                checksum = checksum.wrapping_add(r.key.len() as u64 + r.value.len() as u64);
            }
            next = b.last_offset() + 1;
        }
    }
    let read_s = start.elapsed().as_secs_f64();
    assert_eq!(count, records / producers * producers);

    let mut lookup_us = Vec::new();
    let mut found = 0;
    for i in 0..1000u64 {
        let key = format!("{:016}", i * 104_729 % DISTINCT_KEYS.min(records));
        let s = Instant::now();
        found += p.lookup_key(key.as_bytes()).unwrap().len();
        lookup_us.push(s.elapsed().as_micros() as u64);
    }
    lookup_us.sort_unstable();
    drop(p);
    let log = Arc::try_unwrap(log).unwrap();
    log.close().unwrap();
    let start = Instant::now();
    let log = Log::open(LogConfig::new(&dir)).unwrap();
    let recovery_ms = start.elapsed().as_secs_f64() * 1e3;
    let scanned: u64 = log
        .recovery_report()
        .partitions
        .iter()
        .map(|p| p.active_bytes_scanned)
        .sum();
    drop(log);
    let reference_after = disk_reference(&root, data_bytes);

    let mb_s = written as f64 / append_s / 1e6;
    println!(
        "records {records}, producers {producers}, batch {batch} records, {written} bytes on disk"
    );
    println!(
        "append: {:.0} records/s, {mb_s:.1} MB/s; ack latency us p50 {} p99 {} p99.9 {} max {}",
        records as f64 / append_s,
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        pct(&lat, 0.999),
        lat.last().copied().unwrap_or(0)
    );
    println!(
        "disk reference (fresh file, one fdatasync): before {reference_before:.1} MB/s, after {reference_after:.1} MB/s; append/reference {:.0}%",
        100.0 * mb_s / reference_before.min(reference_after).max(f64::MIN_POSITIVE)
    );
    println!(
        "replay: {:.2} M records/s ({checksum} bytes touched)",
        count as f64 / read_s / 1e6
    );
    println!(
        "key lookup (1000 keys, {found} records): us p50 {} p99 {} max {}",
        pct(&lookup_us, 0.5),
        pct(&lookup_us, 0.99),
        lookup_us.last().copied().unwrap_or(0)
    );
    println!("reopen (recovery): {recovery_ms:.1} ms, active segment bytes scanned {scanned}");
    let _ = std::fs::remove_dir_all(&root);
}
