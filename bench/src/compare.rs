//! `dropline bench compare`: the same 250-byte records through Dropline's
//! durable ingest (adapters over QUIC, fsync'd log, durable acks) and
//! through Redis Streams with `appendfsync always` and `everysec`, next to
//! the disk's own fdatasync bandwidth and latency, all in one run.
//!
//! Why one command: the machine is shared and its disk's cost per
//! fdatasync moves by a factor of several within minutes, so a ratio is
//! only meaningful between figures taken minutes apart. The runs go one
//! after the other, never concurrently.

use std::path::PathBuf;

use crate::disk::{LATENCY_WRITE_BYTES, measure_fdatasync, measure_sync_latency};
use crate::ingest::{EVENT_BYTES, EVENT_KEY_BYTES, IngestBenchArgs, write_key_slice};
use crate::redis::{AppendFsync, RedisRun, xadd_run};
use crate::report::{Report, max_rss_mb};

/// Samples of the disk's write + fdatasync latency.
pub const SYNC_LATENCY_SAMPLES: usize = 200;

/// Arguments of `dropline bench compare`.
#[derive(Debug, Clone)]
pub struct CompareArgs {
    /// Records through each system.
    pub records: u64,
    /// Concurrent Dropline adapters (QUIC clients).
    pub adapters: u32,
    /// Records per Dropline batch.
    pub batch: u32,
    /// Partitions of Dropline's `carrier-events`.
    pub partitions: u32,
    /// Scratch directory for the log, Redis's files and the disk reference.
    pub dir: PathBuf,
}

/// Errors of the comparison.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// Dropline's ingest run failed.
    #[error("dropline ingest: {0}")]
    Ingest(#[from] crate::ingest::IngestBenchError),
    /// A Redis run failed (Redis is required here: the comparison is the
    /// point).
    #[error("redis: {0}")]
    Redis(#[from] crate::redis::RedisError),
    /// The disk reference failed.
    #[error("disk reference: {0}")]
    Io(#[from] std::io::Error),
    /// The Dropline run lost or duplicated records: no ratio is reported.
    #[error("dropline lost {lost} and duplicated {duplicates} records")]
    NotExactlyOnce {
        /// Records sent and not found in the log.
        lost: u64,
        /// Records found more than once.
        duplicates: u64,
    },
}

/// Runs the comparison.
pub fn run(args: &CompareArgs) -> Result<Report, CompareError> {
    std::fs::create_dir_all(&args.dir)?;
    let data_bytes = args.records * EVENT_BYTES as u64;
    let disk = measure_fdatasync(&args.dir, data_bytes, "compare")?;
    let disk_mb_per_s = disk.mb_per_s();
    drop(disk);
    let latency = measure_sync_latency(&args.dir, LATENCY_WRITE_BYTES, SYNC_LATENCY_SAMPLES)?;

    let (ours, value) = crate::ingest::measure(&IngestBenchArgs {
        events: args.records,
        adapters: args.adapters,
        batch: args.batch,
        partitions: args.partitions,
        udp_payload_bytes_max: 1452,
        linger_us: 5_000,
        dir: args.dir.clone(),
    })?;
    let field = |k: &str| ours.get(k).and_then(serde_json::Value::as_f64);
    let lost = field("lost").unwrap_or(f64::NAN) as u64;
    let duplicates = field("duplicates").unwrap_or(f64::NAN) as u64;
    if lost != 0 || duplicates != 0 {
        return Err(CompareError::NotExactlyOnce { lost, duplicates });
    }
    let ours_per_s = field("events_per_s").unwrap_or(0.0);
    let ours_p99 = field("ack_latency_us_p99").unwrap_or(0.0);

    let redis = |fsync| {
        xadd_run(
            &args.dir,
            fsync,
            args.records,
            EVENT_KEY_BYTES,
            write_key_slice,
            &value,
        )
    };
    let always = redis(AppendFsync::Always)?;
    let everysec = redis(AppendFsync::Everysec)?;

    let mb = |per_s: f64| per_s * EVENT_BYTES as f64 / 1e6;
    let mut report = Report::new("compare");
    report
        .set("records", args.records)
        .set("record_bytes", EVENT_BYTES as u64)
        .set("adapters", args.adapters)
        .set("partitions", args.partitions)
        .set_f64("disk_fdatasync_mb_per_s", disk_mb_per_s, 1)
        .set("disk_sync_latency_us_p50", latency.p50_us)
        .set("disk_sync_latency_us_p99", latency.p99_us)
        .set_f64("dropline_events_per_s", ours_per_s, 0)
        .set_f64("dropline_mb_per_s", mb(ours_per_s), 1)
        .set_f64("dropline_ack_latency_us_p99", ours_p99, 0)
        .set("dropline_lost", lost)
        .set("dropline_duplicates", duplicates)
        .set_f64(
            "dropline_vs_disk",
            mb(ours_per_s) / disk_mb_per_s.max(f64::MIN_POSITIVE),
            3,
        );
    set_redis(&mut report, "redis_always", &always, ours_per_s);
    set_redis(&mut report, "redis_everysec", &everysec, ours_per_s);
    report.note(format!(
        "same {}-byte records, {} each; Redis: {} connections pipelined {} deep; \
         Dropline: {} adapters over QUIC/TLS, fsync durability, acks after fdatasync",
        EVENT_BYTES,
        args.records,
        crate::redis::CONNECTIONS,
        crate::redis::PIPELINE_DEPTH,
        args.adapters
    ));
    report.note(
        "ratio_* = Dropline events/s divided by the other system's; below 1.0 Dropline loses",
    );
    if let Some(rss) = max_rss_mb() {
        report.set_f64("max_rss_mb", rss, 1);
    }
    Ok(report)
}

fn set_redis(report: &mut Report, prefix: &str, run: &RedisRun, ours_per_s: f64) {
    let per_s = run.entries_per_s();
    report
        .set_f64(&format!("{prefix}_events_per_s"), per_s, 0)
        .set(
            &format!("{prefix}_ack_latency_us_p99"),
            run.ack_latency_us.value_at_quantile(0.99),
        )
        .set_f64(
            &format!("ratio_vs_{prefix}"),
            ours_per_s / per_s.max(f64::MIN_POSITIVE),
            2,
        );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Needs Debian's redis-server (CI installs it): the comparison is
    /// meaningless without it, so its absence fails the test.
    #[test]
    fn small_comparison_reports_every_system() {
        let dir = tempfile::tempdir().unwrap();
        let report = run(&CompareArgs {
            records: 4_000,
            adapters: 2,
            batch: 256,
            partitions: 2,
            dir: dir.path().to_path_buf(),
        })
        .unwrap();
        let f = |k: &str| report.get(k).and_then(serde_json::Value::as_f64).unwrap();
        assert_eq!(f("dropline_lost"), 0.0);
        assert_eq!(f("dropline_duplicates"), 0.0);
        for key in [
            "disk_fdatasync_mb_per_s",
            "dropline_events_per_s",
            "redis_always_events_per_s",
            "redis_everysec_events_per_s",
            "ratio_vs_redis_always",
            "ratio_vs_redis_everysec",
        ] {
            assert!(f(key) > 0.0, "{key} = {}", f(key));
        }
        let ratio = f("dropline_events_per_s") / f("redis_always_events_per_s");
        assert!((ratio - f("ratio_vs_redis_always")).abs() < 0.01);
        // Only the test's own scratch files were there; all are gone.
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
