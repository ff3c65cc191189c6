//! Preallocated segment files: zero-filled to their full size before the
//! writer uses them, so that an append overwrites blocks that already
//! exist inside the file.
//!
//! Why zeros and not `fallocate`: with a segment that grows on every
//! append, each group commit's fdatasync must also commit the file's new
//! size and extents (an ext4 journal commit per round). `fallocate`
//! reserves blocks as *unwritten* extents, and the first write into one
//! still changes extent metadata, so the journal commit stays; measured on
//! the development VM (256 KiB write + fdatasync, 400 rounds): a growing
//! file 161-211 MB/s with p99 10.5-12.3 ms, a `fallocate`d one 155-215 MB/s
//! with p99 9.8-18.8 ms, a zero-filled one 356-415 MB/s with p99
//! 1.8-3.1 ms. Only blocks that were really written (and the size made
//! durable) make an overwrite's fdatasync a pure data flush.
//!
//! Why a spare: zero-filling 128 MiB takes a quarter to half a second, too
//! long for a roll under the writer lock. Each preallocating partition
//! keeps one spare file (`SPARE_FILE_NAME`) prepared by a background
//! thread; a roll renames it to the new segment's name. A roll that finds
//! no spare ready creates a plain (growing) segment as before and does not
//! wait. A spare left by a crash (or a close) is truncated and refilled
//! by the next open's thread, not unlinked on the open path (unlinking a
//! 128 MiB file took about 100 ms of `bench log`'s recovery); a log
//! opened without preallocation deletes it.
//!
//! Why the spare yields to appends: its zero writes share the disk with
//! the appends. Zero-filling spares while a partition appended as fast as
//! it could cut `bench log`'s append bandwidth to 0.32-0.39 of the disk
//! (against 0.71-0.80 without spares, 0.46-0.64 before preallocation), so
//! the thread pauses while the partition appends more than
//! `ZERO_FILL_YIELD_BYTES_PER_S`, and fills in the quieter moments. Under
//! sustained full-speed appends the rolled segments therefore grow as
//! without preallocation; after a burst, the next one is ready.
//!
//! How a preallocated segment ends: the data is followed by zeros up to the
//! file's length. A zero header is never a valid batch (the magic is
//! non-zero), so the scan stops there; recovery and `verify` then accept an
//! all-zero rest of the file as free space instead of a torn tail (see
//! docs/FORMAT.md, "Preallocated segments"). Sealing cuts the file to its
//! data before the index file is written, so sealed segments look exactly
//! like unpreallocated ones.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::locking;

/// Name of a partition's spare segment file while it is prepared and until
/// a roll renames it. Ends in `.tmp`, so a crash's leftover is removed at
/// open.
pub(crate) const SPARE_FILE_NAME: &str = "next-segment.log.tmp";

/// Size of each zero write while preallocating.
pub(crate) const ZERO_FILL_CHUNK_BYTES: usize = 1 << 20;

/// The spare's zero-filling pauses while its partition appends more than
/// this many bytes per second.
pub(crate) const ZERO_FILL_YIELD_BYTES_PER_S: u64 = 8 << 20;

/// How long the spare's zero-filling pauses before looking again.
pub(crate) const ZERO_FILL_PAUSE_MS: u64 = 20;

/// Zero-filling fdatasyncs after every this many bytes, so that a spare
/// prepared while appends run reaches the disk in small pieces: one
/// fdatasync of a whole 128 MiB spare queued every append's fdatasync
/// behind a quarter second of writeback (ack maxima of 236 ms measured).
pub(crate) const ZERO_FILL_SYNC_BYTES: u64 = 4 << 20;

/// Whether every byte is zero (the free end of a preallocated segment).
pub(crate) fn is_zero(bytes: &[u8]) -> bool {
    // OR-folding fixed chunks vectorizes; a byte-wise `all` does not.
    bytes
        .chunks(4096)
        .all(|c| c.iter().fold(0u8, |acc, b| acc | b) == 0)
}

/// Writes zeros over `[0, len)` of `file`, then fdatasyncs it, so that the
/// blocks and the file size are durable. Returns `Ok(false)` if `cancel`
/// was raised before the end. With `appended` (a partition's count of
/// appended bytes), pauses while that grows faster than
/// `ZERO_FILL_YIELD_BYTES_PER_S`.
pub(crate) fn zero_fill(
    file: &File,
    len: u64,
    cancel: &AtomicBool,
    appended: Option<&AtomicU64>,
) -> std::io::Result<bool> {
    let zeros = vec![0u8; ZERO_FILL_CHUNK_BYTES];
    let mut pos = 0u64;
    let mut seen = appended.map(|a| (a.load(Ordering::Relaxed), Instant::now()));
    while pos < len {
        if cancel.load(Ordering::Acquire) {
            return Ok(false);
        }
        if let (Some(a), Some((bytes, at))) = (appended, seen.as_mut()) {
            let now = (a.load(Ordering::Relaxed), Instant::now());
            let secs = now.1.duration_since(*at).as_secs_f64().max(1e-3);
            let busy = (now.0 - *bytes) as f64 / secs > ZERO_FILL_YIELD_BYTES_PER_S as f64;
            (*bytes, *at) = now;
            if busy {
                std::thread::sleep(Duration::from_millis(ZERO_FILL_PAUSE_MS));
                continue;
            }
        }
        let n = (len - pos).min(ZERO_FILL_CHUNK_BYTES as u64) as usize;
        file.write_all_at(&zeros[..n], pos)?;
        pos += n as u64;
        if pos.is_multiple_of(ZERO_FILL_SYNC_BYTES) && pos < len {
            file.sync_data()?;
        }
    }
    file.sync_data()?;
    Ok(true)
}

/// Creates `path` (which must not exist) and zero-fills it to `len` bytes.
/// On failure the file is removed again.
pub(crate) fn create_zero_filled(path: &Path, len: u64) -> std::io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)?;
    match zero_fill(&file, len, &AtomicBool::new(false), None) {
        Ok(_) => Ok(file),
        Err(e) => {
            drop(file);
            let _ = std::fs::remove_file(path);
            Err(e)
        }
    }
}

#[derive(Debug)]
enum Slot {
    /// Nothing prepared (none yet, taken, or the last attempt failed).
    Empty,
    /// A background thread is zero-filling the spare file.
    Preparing,
    /// The spare file is zero-filled and durable.
    Ready(File),
}

/// One partition's spare segment file and the thread that prepares it.
#[derive(Debug)]
pub(crate) struct Spare {
    path: PathBuf,
    bytes: u64,
    slot: Arc<Mutex<Slot>>,
    cancel: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Bytes the partition has appended, which the zero-filling yields to.
    appended: Arc<AtomicU64>,
}

impl Spare {
    /// A spare of `bytes` bytes in the partition directory `dir`; nothing
    /// is prepared until [`Spare::prepare`].
    pub(crate) fn new(dir: &Path, bytes: u64) -> Spare {
        Spare {
            path: dir.join(SPARE_FILE_NAME),
            bytes,
            slot: Arc::new(Mutex::new(Slot::Empty)),
            cancel: Arc::new(AtomicBool::new(false)),
            thread: Mutex::new(None),
            appended: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Counts `bytes` appended to the partition (one relaxed add).
    pub(crate) fn note_appended(&self, bytes: u64) {
        self.appended.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Starts preparing the spare in the background unless one is ready or
    /// being prepared. Never blocks on I/O.
    pub(crate) fn prepare(&self) {
        {
            let mut slot = locking::lock(&self.slot);
            if !matches!(*slot, Slot::Empty) || self.cancel.load(Ordering::Acquire) {
                return;
            }
            *slot = Slot::Preparing;
        }
        let mut thread = locking::lock(&self.thread);
        if let Some(done) = thread.take() {
            // The slot was not `Preparing`, so this thread has finished.
            let _ = done.join();
        }
        let (path, bytes) = (self.path.clone(), self.bytes);
        let (slot, cancel) = (self.slot.clone(), self.cancel.clone());
        let appended = self.appended.clone();
        let spawned = std::thread::Builder::new()
            .name("dropline-prealloc".into())
            .spawn(move || {
                crate::io::lower_thread_priority();
                let res = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&path)
                    .and_then(|f| {
                        zero_fill(&f, bytes, &cancel, Some(&appended)).map(|done| (f, done))
                    });
                let mut slot = locking::lock(&slot);
                *slot = match res {
                    Ok((f, true)) => Slot::Ready(f),
                    // Cancelled by a close: the file stays for the next
                    // open to refill (unlinking it would slow the close).
                    Ok((_, false)) => Slot::Empty,
                    Err(e) => {
                        tracing::warn!(spare = %path.display(), error = %e, "preparing a spare segment failed; the next roll creates a growing segment");
                        let _ = std::fs::remove_file(&path);
                        Slot::Empty
                    }
                };
            });
        match spawned {
            Ok(h) => *thread = Some(h),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the segment preallocation thread");
                *locking::lock(&self.slot) = Slot::Empty;
            }
        }
    }

    /// Renames the ready spare to `path` and returns it, or `None` if no
    /// spare is ready (the caller creates a plain segment). The caller
    /// fsyncs the directory.
    pub(crate) fn take_into(&self, path: &Path) -> std::io::Result<Option<File>> {
        let mut slot = locking::lock(&self.slot);
        if !matches!(*slot, Slot::Ready(_)) {
            return Ok(None);
        }
        if path.exists() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "segment file already exists",
            ));
        }
        std::fs::rename(&self.path, path)?;
        match std::mem::replace(&mut *slot, Slot::Empty) {
            Slot::Ready(f) => Ok(Some(f)),
            _ => Ok(None),
        }
    }

    /// Stops a preparation in progress and waits for its thread; later
    /// [`Spare::prepare`] calls do nothing.
    pub(crate) fn shutdown(&self) {
        self.cancel.store(true, Ordering::Release);
        if let Some(h) = locking::lock(&self.thread).take() {
            let _ = h.join();
        }
    }

    /// Waits until a preparation in progress has finished; true if a spare
    /// is ready. For tests, which must not sleep.
    #[cfg(test)]
    pub(crate) fn wait_ready(&self) -> bool {
        if let Some(h) = locking::lock(&self.thread).take() {
            let _ = h.join();
        }
        matches!(*locking::lock(&self.slot), Slot::Ready(_))
    }
}

impl Drop for Spare {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_zero_checks_every_byte() {
        assert!(is_zero(&[]));
        assert!(is_zero(&[0; 37]));
        for i in 0..37 {
            let mut b = [0u8; 37];
            b[i] = 1;
            assert!(!is_zero(&b), "byte {i}");
        }
    }

    #[test]
    fn a_spare_is_zero_filled_renamed_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let spare = Spare::new(dir.path(), 3 * ZERO_FILL_CHUNK_BYTES as u64 + 5);
        let target = dir.path().join("a.log");
        assert!(spare.take_into(&target).unwrap().is_none());
        spare.prepare();
        assert!(spare.wait_ready());
        let f = spare.take_into(&target).unwrap().unwrap();
        assert_eq!(
            f.metadata().unwrap().len(),
            3 * ZERO_FILL_CHUNK_BYTES as u64 + 5
        );
        assert!(is_zero(&std::fs::read(&target).unwrap()));
        assert!(!dir.path().join(SPARE_FILE_NAME).exists());
        // Taken: nothing ready until prepared again; a name in use is refused.
        assert!(
            spare
                .take_into(&dir.path().join("b.log"))
                .unwrap()
                .is_none()
        );
        spare.prepare();
        assert!(spare.wait_ready());
        assert!(spare.take_into(&target).is_err());
        spare.shutdown();
        spare.prepare();
        assert!(dir.path().join(SPARE_FILE_NAME).exists());
    }
}
