//! The disk's own bandwidth, measured in the same run as a benchmark: write
//! `bytes` to a fresh file in large blocks, then one fdatasync, like
//! `dd bs=1M conv=fdatasync`. The file is kept until the guard drops so the
//! benchmark that follows cannot reuse its freshly freed blocks (which the
//! disk serves several times faster than never-written ones).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Size of each write, like `dd bs=1M`.
pub const REFERENCE_BLOCK_BYTES: usize = 1 << 20;

/// One reference measurement; deletes its file when dropped.
#[derive(Debug)]
pub struct DiskReference {
    /// Bytes written.
    pub bytes: u64,
    /// Seconds from the first write to the end of the fdatasync.
    pub seconds: f64,
    path: PathBuf,
}

impl DiskReference {
    /// Bandwidth in MB/s (10^6 bytes per second).
    pub fn mb_per_s(&self) -> f64 {
        if self.seconds <= 0.0 {
            return 0.0;
        }
        self.bytes as f64 / self.seconds / 1e6
    }
}

impl Drop for DiskReference {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Writes `bytes` (rounded up to whole blocks) to a new file in `dir` and
/// fdatasyncs it once, timing both.
pub fn measure_fdatasync(dir: &Path, bytes: u64, tag: &str) -> std::io::Result<DiskReference> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("disk-reference-{tag}-{}.bin", std::process::id()));
    let mut file: File = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)?;
    // Non-zero, non-repeating-looking content, so no layer can shortcut it.
    let mut block = vec![0u8; REFERENCE_BLOCK_BYTES];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for chunk in block.chunks_exact_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes());
    }
    let blocks = bytes.div_ceil(REFERENCE_BLOCK_BYTES as u64).max(1);
    let start = Instant::now();
    for _ in 0..blocks {
        file.write_all(&block)?;
    }
    file.sync_data()?;
    let seconds = start.elapsed().as_secs_f64();
    Ok(DiskReference {
        bytes: blocks * REFERENCE_BLOCK_BYTES as u64,
        seconds,
        path,
    })
}

/// The disk's own latency for one small durable append: `samples` times,
/// write `write_bytes` at the end of a fresh file, then fdatasync it.
/// What an ack can cost at best when every ack waits for an fdatasync.
#[derive(Debug, Clone, Copy)]
pub struct SyncLatency {
    /// Bytes written before each fdatasync.
    pub write_bytes: usize,
    /// Median microseconds per write + fdatasync.
    pub p50_us: u64,
    /// 99th percentile, microseconds.
    pub p99_us: u64,
}

/// Bytes appended before each fdatasync of [`measure_sync_latency`].
pub const LATENCY_WRITE_BYTES: usize = 256 << 10;

/// Measures [`SyncLatency`] with `samples` appends of `write_bytes` each to
/// a fresh file in `dir`, removed afterwards.
pub fn measure_sync_latency(
    dir: &Path,
    write_bytes: usize,
    samples: usize,
) -> std::io::Result<SyncLatency> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("disk-latency-{}.bin", std::process::id()));
    let mut file: File = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)?;
    let block = vec![0x5au8; write_bytes.max(1)];
    let mut us = Vec::with_capacity(samples.max(1));
    let result = (|| {
        for _ in 0..samples.max(1) {
            let start = Instant::now();
            file.write_all(&block)?;
            file.sync_data()?;
            us.push(u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX));
        }
        Ok::<(), std::io::Error>(())
    })();
    let _ = std::fs::remove_file(&path);
    result?;
    us.sort_unstable();
    let at = |q: f64| us[((us.len() - 1) as f64 * q).round() as usize];
    Ok(SyncLatency {
        write_bytes,
        p50_us: at(0.5),
        p99_us: at(0.99),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let reference = measure_fdatasync(dir.path(), 3 << 20, "t").unwrap();
        assert_eq!(reference.bytes, 3 << 20);
        assert!(reference.mb_per_s() > 0.0);
        let path = reference.path.clone();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 3 << 20);
        drop(reference);
        assert!(!path.exists());
    }

    #[test]
    fn sync_latency_is_ordered_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let lat = measure_sync_latency(dir.path(), 4096, 20).unwrap();
        assert_eq!(lat.write_bytes, 4096);
        assert!(lat.p50_us > 0 && lat.p50_us <= lat.p99_us);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
