//! io_uring rings for positioned writes and batched fdatasync.
//!
//! Why two rings: the writer path and the syncer thread must not wait on
//! each other's completions; each ring sits behind its own mutex.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Mutex;

use io_uring::{IoUring, opcode, types};

use super::PwriteReason;

/// Entries of the write ring (one write is in flight at a time).
const WRITE_RING_ENTRIES: u32 = 4;
/// Entries of the sync ring: fdatasyncs submitted together.
const SYNC_RING_ENTRIES: u32 = 128;

pub(super) struct Rings {
    write: Mutex<Option<IoUring>>,
    sync: Mutex<Option<IoUring>>,
}

fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINTR | libc::EAGAIN | libc::EBUSY)
    )
}

fn broken() -> io::Error {
    io::Error::other("io_uring ring is unusable after an earlier submission failure")
}

impl Rings {
    pub(super) fn probe(dir: &Path) -> Result<Rings, PwriteReason> {
        let setup = |n| {
            IoUring::new(n).map_err(|e| PwriteReason::SetupFailed {
                error: e.to_string(),
            })
        };
        let rings = Rings {
            write: Mutex::new(Some(setup(WRITE_RING_ENTRIES)?)),
            sync: Mutex::new(Some(setup(SYNC_RING_ENTRIES)?)),
        };
        let path = dir.join(".io-probe");
        let probe = || -> io::Result<()> {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(true)
                .read(true)
                .write(true)
                .open(&path)?;
            rings.write_all_at(&file, b"dropline io_uring probe", 0)?;
            for r in rings.sync_many(&[&file]) {
                r?;
            }
            let mut buf = [0u8; 23];
            std::os::unix::fs::FileExt::read_exact_at(&file, &mut buf, 0)?;
            if &buf != b"dropline io_uring probe" {
                return Err(io::Error::other("probe write read back different bytes"));
            }
            Ok(())
        };
        let res = probe();
        let _ = std::fs::remove_file(&path);
        res.map_err(|e| PwriteReason::ProbeFailed {
            error: e.to_string(),
        })?;
        Ok(rings)
    }

    pub(super) fn write_all_at(&self, file: &File, buf: &[u8], pos: u64) -> io::Result<()> {
        let mut guard = crate::locking::lock(&self.write);
        let mut done = 0usize;
        while done < buf.len() {
            let rest = &buf[done..];
            let len = u32::try_from(rest.len()).unwrap_or(u32::MAX);
            let entry = opcode::Write::new(types::Fd(file.as_raw_fd()), rest.as_ptr(), len)
                .offset(pos + done as u64)
                .build()
                .user_data(0);
            let res = submit_and_reap(guard.as_mut(), &[entry]);
            let res = match res {
                Ok(mut v) => v.pop().unwrap_or(-libc::EIO),
                Err(e) => {
                    *guard = None;
                    return Err(e);
                }
            };
            if res < 0 {
                return Err(io::Error::from_raw_os_error(-res));
            }
            if res == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "io_uring write wrote nothing",
                ));
            }
            done += res as usize;
        }
        Ok(())
    }

    pub(super) fn sync_many(&self, files: &[&File]) -> Vec<io::Result<()>> {
        let mut guard = crate::locking::lock(&self.sync);
        let mut out = Vec::with_capacity(files.len());
        for chunk in files.chunks(SYNC_RING_ENTRIES as usize) {
            let entries: Vec<_> = chunk
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    opcode::Fsync::new(types::Fd(f.as_raw_fd()))
                        .flags(types::FsyncFlags::DATASYNC)
                        .build()
                        .user_data(i as u64)
                })
                .collect();
            match submit_and_reap(guard.as_mut(), &entries) {
                Ok(results) => out.extend(results.into_iter().map(|r| {
                    if r < 0 {
                        Err(io::Error::from_raw_os_error(-r))
                    } else {
                        Ok(())
                    }
                })),
                Err(e) => {
                    *guard = None;
                    let kind = e.kind();
                    out.extend(
                        chunk
                            .iter()
                            .map(|_| Err(io::Error::new(kind, e.to_string()))),
                    );
                }
            }
        }
        out
    }
}

/// Submits `entries` and waits for all their completions; returns each
/// entry's result in entry order (indexed by `user_data`).
///
/// An `Err` means no entry reached the kernel, and the caller must drop the
/// ring so that the queued entries are never submitted later.
#[expect(
    unsafe_code,
    reason = "pushing io_uring submission entries that point at caller buffers"
)]
fn submit_and_reap(
    ring: Option<&mut IoUring>,
    entries: &[io_uring::squeue::Entry],
) -> io::Result<Vec<i32>> {
    let Some(ring) = ring else {
        return Err(broken());
    };
    {
        let mut sq = ring.submission();
        for e in entries {
            // SAFETY: each entry points at a buffer (or only a file
            // descriptor) borrowed by our caller for the whole call. This
            // function does not return while any pushed entry is in the
            // kernel: once `submit` reports the entries consumed we wait for
            // every completion, retrying interrupted waits, and abort the
            // process if waiting fails for good (the kernel would still own
            // a pointer into memory we are about to release). If submission
            // itself fails, the caller drops the ring, which discards the
            // unsubmitted entries without the kernel ever reading them.
            unsafe { sq.push(e) }
                .map_err(|_| io::Error::other("io_uring submission queue full"))?;
        }
    }
    let mut submitted = 0usize;
    while submitted < entries.len() {
        match ring.submit() {
            Ok(n) => submitted += n,
            Err(e) if is_transient(&e) && submitted > 0 => continue,
            Err(e) if submitted == 0 => return Err(e),
            Err(e) => {
                tracing::error!(error = %e, "io_uring submission failed with entries in flight");
                std::process::abort();
            }
        }
    }
    let mut results = vec![0i32; entries.len()];
    let mut reaped = 0usize;
    while reaped < entries.len() {
        let mut progressed = false;
        for cqe in ring.completion() {
            if let Some(slot) = results.get_mut(cqe.user_data() as usize) {
                *slot = cqe.result();
            }
            reaped += 1;
            progressed = true;
        }
        if reaped < entries.len() && !progressed {
            match ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if is_transient(&e) => {}
                Err(e) => {
                    tracing::error!(error = %e, "io_uring wait failed with entries in flight");
                    std::process::abort();
                }
            }
        }
    }
    Ok(results)
}
