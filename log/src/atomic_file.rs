//! Atomic replacement of small files: write a temporary file, fsync it,
//! rename it over the target, fsync the directory.
//!
//! Why all four steps: without the file fsync a crash can leave the rename
//! pointing at an empty file; without the directory fsync the rename itself
//! may be lost. Readers therefore see either the old or the new contents,
//! and every such file also carries its own checksum. Leftover `*.tmp` files
//! from a crash are removed at open.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::error::LogError;

/// Suffix of temporary files.
pub(crate) const TMP_SUFFIX: &str = ".tmp";

pub(crate) fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(TMP_SUFFIX);
    PathBuf::from(s)
}

/// Atomically and durably replaces `path` with `bytes`: the same four
/// steps the log uses for its own small files, for other crates' state
/// files.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), LogError> {
    write(path, bytes, true)
}

/// Atomically replaces `path` with `bytes`. With `sync_dir == false` the
/// caller promises to fsync the directory itself before relying on it.
pub(crate) fn write(path: &Path, bytes: &[u8], sync_dir: bool) -> Result<(), LogError> {
    write_in_chunks(path, bytes, sync_dir, bytes.len(), None)
}

/// Bytes of an index file written back to the disk at a time (see
/// [`write_paced`]).
pub(crate) const PACED_WRITE_CHUNK_BYTES: usize = 1 << 20;

/// How [`write_paced`] spreads a file's write-back.
pub(crate) struct Pace<'a> {
    /// Time to spread the chunks over (zero: as fast as the disk takes them).
    pub(crate) spread: Duration,
    /// Once set, the remaining chunks go without pauses (someone waits).
    pub(crate) hurry: &'a AtomicBool,
}

/// Like [`write`], for large files written while appends are running (the
/// key index of a sealed segment, 8 MiB for a full 128 MiB segment of
/// 250-byte records): each [`PACED_WRITE_CHUNK_BYTES`] chunk is written
/// back before the next is written, and the chunks are spread evenly over
/// `pace.spread`, so the disk's queue never holds more than one chunk of it
/// ahead of an appender's fdatasync and its bandwidth is shared. Written in
/// one piece, the whole file reached the disk at the final fsync, in one
/// burst that the fdatasyncs issued meanwhile waited behind (`bench log`
/// over 10 million records: ack p99 22 ms while a seal wrote, 9.5 ms
/// otherwise). The final fsync then has only the metadata left.
pub(crate) fn write_paced(
    path: &Path,
    bytes: &[u8],
    sync_dir: bool,
    pace: &Pace<'_>,
) -> Result<(), LogError> {
    write_in_chunks(path, bytes, sync_dir, PACED_WRITE_CHUNK_BYTES, Some(pace))
}

/// How far a paced write that has written `written` of `total` bytes after
/// `elapsed` is ahead of an even spread over `spread` (zero when behind,
/// and once everything is written: the last chunk never waits).
fn ahead_of_pace(spread: Duration, written: u64, total: u64, elapsed: Duration) -> Duration {
    if written >= total || total == 0 {
        return Duration::ZERO;
    }
    spread
        .mul_f64(written as f64 / total as f64)
        .saturating_sub(elapsed)
}

fn write_in_chunks(
    path: &Path,
    bytes: &[u8],
    sync_dir: bool,
    chunk: usize,
    pace: Option<&Pace<'_>>,
) -> Result<(), LogError> {
    let started = Instant::now();
    let tmp = tmp_path(path);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| LogError::io(&tmp, e))?;
    let mut written = 0u64;
    for part in bytes.chunks(chunk.max(1)) {
        f.write_all(part).map_err(|e| LogError::io(&tmp, e))?;
        if part.len() < bytes.len() {
            crate::io::write_back(&f, written, part.len() as u64)
                .map_err(|e| LogError::io(&tmp, e))?;
        }
        written += part.len() as u64;
        if let Some(pace) = pace
            && !pace.hurry.load(Ordering::Acquire)
        {
            let ahead = ahead_of_pace(pace.spread, written, bytes.len() as u64, started.elapsed());
            if !ahead.is_zero() {
                std::thread::sleep(ahead);
            }
        }
    }
    f.sync_all().map_err(|e| LogError::io(&tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| LogError::io(path, e))?;
    if sync_dir && let Some(dir) = path.parent() {
        crate::io::sync_dir(dir).map_err(|e| LogError::io(dir, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_paced_write_is_spread_evenly_and_never_waits_after_the_last_chunk() {
        let s = Duration::from_millis(800);
        // A quarter written at once: a fifth of the spread (200 ms) ahead.
        assert_eq!(
            ahead_of_pace(s, 25, 100, Duration::ZERO),
            Duration::from_millis(200)
        );
        assert_eq!(
            ahead_of_pace(s, 25, 100, Duration::from_millis(150)),
            Duration::from_millis(50)
        );
        // Behind the pace, or done: no pause.
        assert_eq!(
            ahead_of_pace(s, 25, 100, Duration::from_millis(300)),
            Duration::ZERO
        );
        assert_eq!(ahead_of_pace(s, 100, 100, Duration::ZERO), Duration::ZERO);
        assert_eq!(ahead_of_pace(s, 0, 0, Duration::ZERO), Duration::ZERO);
        assert_eq!(
            ahead_of_pace(Duration::ZERO, 50, 100, Duration::ZERO),
            Duration::ZERO
        );
    }

    /// A file written in write-back chunks (more than one, and a partial
    /// last one) reads back as written and replaces the old contents; told
    /// to hurry, a write paced over an hour does not pause.
    #[test]
    fn a_paced_write_replaces_the_file_whole() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("big.idx");
        std::fs::write(&path, b"old").expect("old contents");
        let bytes: Vec<u8> = (0..PACED_WRITE_CHUNK_BYTES * 2 + 12_345)
            .map(|i| (i % 251) as u8)
            .collect();
        let hurry = AtomicBool::new(true);
        let pace = Pace {
            spread: Duration::from_secs(3600),
            hurry: &hurry,
        };
        write_paced(&path, &bytes, true, &pace).expect("paced write");
        assert_eq!(std::fs::read(&path).expect("read back"), bytes);
        assert!(
            !tmp_path(&path).exists(),
            "the temporary file is renamed away"
        );
    }
}
