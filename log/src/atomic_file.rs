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
    let tmp = tmp_path(path);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| LogError::io(&tmp, e))?;
    f.write_all(bytes).map_err(|e| LogError::io(&tmp, e))?;
    f.sync_all().map_err(|e| LogError::io(&tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| LogError::io(path, e))?;
    if sync_dir && let Some(dir) = path.parent() {
        crate::io::sync_dir(dir).map_err(|e| LogError::io(dir, e))?;
    }
    Ok(())
}
