//! Positioned writes and fdatasync, through io_uring where the kernel allows
//! it and through `pwrite`/`fdatasync` otherwise.
//!
//! Why a probe at open and not a compile-time choice: containers and
//! seccomp profiles often forbid io_uring on kernels that support it; the
//! only reliable test is to try a write and an fdatasync on the data
//! directory. The choice and the reason for a fallback are reported by
//! `Log::io_backend`.
//!
//! Why io_uring helps here: the syncer submits the fdatasyncs of all dirty
//! partitions at once instead of one after another.
//!
//! Every operation first asks the optional [`FaultInjector`], so tests can
//! make a chosen write or fdatasync fail and check that the partition is
//! poisoned.

mod uring;

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use crate::config::IoMode;

/// The I/O path chosen at open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IoBackend {
    /// Writes and fdatasyncs go through io_uring.
    IoUring,
    /// Writes use `pwrite` and fdatasync the plain syscall.
    Pwrite {
        /// Why io_uring is not used.
        reason: PwriteReason,
    },
}

/// Why the `pwrite` fallback was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PwriteReason {
    /// The configuration asked for it (`IoMode::Pwrite`).
    Forced,
    /// Setting up a ring failed (kernel too old, io_uring disabled, or
    /// forbidden by seccomp).
    SetupFailed {
        /// The OS error, e.g. "Operation not permitted (os error 1)".
        error: String,
    },
    /// A ring was created but a probe write or fdatasync on the data
    /// directory failed.
    ProbeFailed {
        /// The OS error.
        error: String,
    },
}

/// Test hook consulted before every segment write and fdatasync. Returning
/// an error makes the operation fail with that error without touching the
/// disk.
pub trait FaultInjector: Send + Sync {
    /// Called before writing `len` bytes at `file_offset` of `path`.
    fn before_write(&self, path: &Path, file_offset: u64, len: usize) -> io::Result<()> {
        let _ = (path, file_offset, len);
        Ok(())
    }
    /// Called before an fdatasync of `path`.
    fn before_sync(&self, path: &Path) -> io::Result<()> {
        let _ = path;
        Ok(())
    }
}

/// The log's disk I/O: backend plus optional fault injection.
pub(crate) struct DiskIo {
    uring: Option<uring::Rings>,
    backend: IoBackend,
    faults: Option<Arc<dyn FaultInjector>>,
}

impl std::fmt::Debug for DiskIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskIo")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl DiskIo {
    /// Chooses the backend, probing io_uring with a real write and fdatasync
    /// of a scratch file in `dir`.
    pub(crate) fn open(mode: IoMode, dir: &Path, faults: Option<Arc<dyn FaultInjector>>) -> DiskIo {
        if mode == IoMode::Pwrite {
            return DiskIo {
                uring: None,
                backend: IoBackend::Pwrite {
                    reason: PwriteReason::Forced,
                },
                faults,
            };
        }
        match uring::Rings::probe(dir) {
            Ok(rings) => DiskIo {
                uring: Some(rings),
                backend: IoBackend::IoUring,
                faults,
            },
            Err(reason) => {
                tracing::info!(?reason, "io_uring unavailable, using pwrite");
                DiskIo {
                    uring: None,
                    backend: IoBackend::Pwrite { reason },
                    faults,
                }
            }
        }
    }

    pub(crate) fn backend(&self) -> IoBackend {
        self.backend.clone()
    }

    /// Writes all of `buf` at `pos`.
    pub(crate) fn write_all_at(
        &self,
        file: &File,
        path: &Path,
        buf: &[u8],
        pos: u64,
    ) -> io::Result<()> {
        if let Some(f) = &self.faults {
            f.before_write(path, pos, buf.len())?;
        }
        match &self.uring {
            Some(r) => r.write_all_at(file, buf, pos),
            None => file.write_all_at(buf, pos),
        }
    }

    /// fdatasyncs several files, concurrently where the backend allows.
    pub(crate) fn sync_many(&self, files: &[(&File, &Path)]) -> Vec<io::Result<()>> {
        let mut results: Vec<Option<io::Result<()>>> = Vec::with_capacity(files.len());
        let mut todo: Vec<(usize, &File)> = Vec::with_capacity(files.len());
        for (i, (file, path)) in files.iter().enumerate() {
            match self.faults.as_ref().map(|f| f.before_sync(path)) {
                Some(Err(e)) => results.push(Some(Err(e))),
                _ => {
                    results.push(None);
                    todo.push((i, file));
                }
            }
        }
        match &self.uring {
            Some(r) => {
                let fs: Vec<&File> = todo.iter().map(|(_, f)| *f).collect();
                for ((i, _), res) in todo.iter().zip(r.sync_many(&fs)) {
                    results[*i] = Some(res);
                }
            }
            None => {
                for (i, f) in &todo {
                    results[*i] = Some(f.sync_data());
                }
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(io::Error::other("fdatasync not performed"))))
            .collect()
    }

    /// fdatasyncs one file.
    pub(crate) fn sync(&self, file: &File, path: &Path) -> io::Result<()> {
        self.sync_many(&[(file, path)])
            .pop()
            .unwrap_or_else(|| Err(io::Error::other("fdatasync not performed")))
    }
}

/// Lowers the calling thread's CPU and I/O priority, for work that must
/// not delay appends and their fdatasyncs: sealing a rolled segment (its
/// key index sort and index file write) and zero-filling the spare
/// segment. Best effort: a failure leaves the thread at normal priority.
/// On Linux a thread's nice value and I/O priority are its own; the I/O
/// class is best-effort at its lowest level rather than idle, so that a
/// disk kept busy by appends still finishes seals (idle I/O could wait
/// for as long as the burst lasts, holding unsealed segments in memory).
#[cfg_attr(
    target_os = "linux",
    expect(unsafe_code, reason = "setpriority and ioprio_set are FFI calls")
)]
pub(crate) fn lower_thread_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain syscalls on the calling thread (`who` 0 is the caller
    // for both `setpriority` with PRIO_PROCESS on Linux threads and
    // `ioprio_set` with IOPRIO_WHO_PROCESS); no memory is passed.
    unsafe {
        const IOPRIO_WHO_PROCESS: libc::c_long = 1;
        const IOPRIO_CLASS_BE: libc::c_long = 2;
        const IOPRIO_CLASS_SHIFT: libc::c_long = 13;
        const LOWEST_BE_LEVEL: libc::c_long = 7;
        let _ = libc::setpriority(libc::PRIO_PROCESS, 0, BACKGROUND_NICE);
        let _ = libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            0 as libc::c_long,
            (IOPRIO_CLASS_BE << IOPRIO_CLASS_SHIFT) | LOWEST_BE_LEVEL,
        );
    }
}

/// Writes `len` bytes of `file` at `offset` back to the disk and waits
/// for them (`sync_file_range` with wait-before, write and wait-after), so
/// that a large file is handed to the disk a piece at a time. Not a
/// durability point: it neither commits metadata nor flushes the disk's
/// cache; the caller's fsync does that. Elsewhere than Linux, nothing.
#[cfg_attr(
    target_os = "linux",
    expect(unsafe_code, reason = "sync_file_range is an FFI call")
)]
pub(crate) fn write_back(file: &std::fs::File, offset: u64, len: u64) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE
            | libc::SYNC_FILE_RANGE_WRITE
            | libc::SYNC_FILE_RANGE_WAIT_AFTER;
        let (Ok(offset), Ok(len)) = (
            libc::off64_t::try_from(offset),
            libc::off64_t::try_from(len),
        ) else {
            return Ok(());
        };
        // SAFETY: the descriptor is open for the duration of the call (it
        // is borrowed from `file`); no memory is passed.
        let rc = unsafe { libc::sync_file_range(file.as_raw_fd(), offset, len, flags) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
    Ok(())
}

/// The nice value of background log threads (see [`lower_thread_priority`]).
const BACKGROUND_NICE: libc::c_int = 10;

/// fsyncs a directory so that creations, renames and unlinks in it are
/// durable. Directories are not segment data, so this bypasses the backend.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
