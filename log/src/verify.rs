//! Offline verification of a data directory: every batch of every segment
//! and every index file.
//!
//! Why it reads files with plain reads and not mmap: `verify` may run while
//! no lock is held (or next to a live node); a copy cannot fault if another
//! process truncates a file during the check, a mapping could.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::batch::BATCH_FORMAT_VERSION;
use crate::error::{BatchError, LogError};
use crate::segment::index::{IndexBuilder, decode_index_header, split_index_body};
use crate::segment::parse_file_name;
use crate::segment::scan::{find_durable_witness, scan_batches};

/// What is wrong at one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProblemKind {
    /// A batch inside a sealed segment (or before the tail of the active
    /// one) does not decode.
    BadBatch {
        /// Why.
        error: BatchError,
    },
    /// The last segment ends in bytes that do not decode and that no later
    /// batch proves durable: a torn write that recovery will truncate (or a
    /// write in flight, if a node is running).
    TornTail {
        /// Why.
        error: BatchError,
        /// Bytes from the problem to the end of the file.
        bytes: u64,
    },
    /// A batch of the active segment does not decode although a later batch
    /// records a durable length past it: durable (possibly acknowledged)
    /// data was damaged. Recovery refuses to open the log
    /// ([`crate::LogError::DamagedDurableBatch`]) until the segment is
    /// restored or deliberately cut.
    DamagedDurable {
        /// Why.
        error: BatchError,
        /// Byte offset of the later batch that proves it durable.
        witness_offset: u64,
        /// The segment's durable length that batch records.
        durable_bytes: u64,
    },
    /// A sealed segment has no index file.
    IndexMissing,
    /// An index file is unreadable or inconsistent with its segment.
    IndexInvalid {
        /// What is wrong.
        reason: String,
    },
    /// Segments of a partition do not continue each other's offsets.
    OffsetGap {
        /// Offset the segment should start at.
        expected: u64,
        /// Offset it starts at.
        found: u64,
    },
    /// A topic metadata file is unreadable.
    TopicMetaInvalid {
        /// What is wrong.
        reason: String,
    },
    /// A file could not be read.
    Unreadable {
        /// The I/O error.
        error: String,
    },
}

/// One problem found by [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file.
    pub path: PathBuf,
    /// Byte offset in the file, where it applies.
    pub file_offset: Option<u64>,
    /// What is wrong.
    pub kind: ProblemKind,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(o) = self.file_offset {
            write!(f, " at byte {o}")?;
        }
        match &self.kind {
            ProblemKind::BadBatch { error } => write!(f, ": bad batch: {error}"),
            ProblemKind::TornTail { error, bytes } => write!(
                f,
                ": torn tail of {bytes} bytes, not proven durable (recovery truncates it): {error}"
            ),
            ProblemKind::DamagedDurable {
                error,
                witness_offset,
                durable_bytes,
            } => write!(
                f,
                ": damaged durable batch: {error}; the batch at byte {witness_offset} records a \
                 durable length of {durable_bytes} bytes, so this batch was fdatasynced (and \
                 possibly acknowledged) before it was damaged; recovery refuses to open the log \
                 until the segment is restored or cut at this byte"
            ),
            ProblemKind::IndexMissing => write!(f, ": sealed segment has no index"),
            ProblemKind::IndexInvalid { reason } => write!(f, ": invalid index: {reason}"),
            ProblemKind::OffsetGap { expected, found } => {
                write!(f, ": starts at offset {found}, expected {expected}")
            }
            ProblemKind::TopicMetaInvalid { reason } => {
                write!(f, ": invalid topic metadata: {reason}")
            }
            ProblemKind::Unreadable { error } => write!(f, ": unreadable: {error}"),
        }
    }
}

/// The result of [`verify`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Segment files checked.
    pub segments: u64,
    /// Batches that decoded.
    pub batches: u64,
    /// Records in those batches.
    pub records: u64,
    /// Everything found wrong, in directory order.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// True when nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Batch position -> (relative offset, first log time).
type BatchPositions = HashMap<u32, (u32, u64)>;

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, LogError> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| LogError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    v.sort();
    Ok(v)
}

/// Checks every batch of every segment and every index file under the data
/// directory `dir`. Problems are listed in the report (the call fails only
/// if `dir` itself cannot be listed); it never modifies anything.
pub fn verify(dir: &Path) -> Result<VerifyReport, LogError> {
    let mut r = VerifyReport::default();
    let topics = dir.join("topics");
    for topic in sorted_entries(&topics)? {
        if !topic.is_dir() {
            continue;
        }
        let meta = topic.join("topic.meta");
        match std::fs::read(&meta)
            .map_err(|e| LogError::io(&meta, e))
            .and_then(|b| crate::topic::decode(&meta, &b))
        {
            Ok(_) => {}
            Err(e) => r.problems.push(Problem {
                path: meta,
                file_offset: None,
                kind: ProblemKind::TopicMetaInvalid {
                    reason: e.to_string(),
                },
            }),
        }
        for part in sorted_entries(&topic)? {
            if part.is_dir() {
                verify_partition(&part, &mut r)?;
            }
        }
    }
    Ok(r)
}

fn verify_partition(dir: &Path, r: &mut VerifyReport) -> Result<(), LogError> {
    let mut bases = Vec::new();
    for p in sorted_entries(dir)? {
        if let Some(b) = p
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| parse_file_name(n, "log"))
        {
            bases.push(b);
        }
    }
    let mut expected: Option<u64> = None;
    for (i, &base) in bases.iter().enumerate() {
        let is_last = i + 1 == bases.len();
        let log_path = dir.join(crate::segment::log_file_name(base));
        let idx_path = dir.join(crate::segment::index_file_name(base));
        r.segments += 1;
        if let Some(e) = expected
            && e != base
        {
            r.problems.push(Problem {
                path: log_path.clone(),
                file_offset: Some(0),
                kind: ProblemKind::OffsetGap {
                    expected: e,
                    found: base,
                },
            });
        }
        let bytes = match std::fs::read(&log_path) {
            Ok(b) => b,
            Err(e) => {
                r.problems.push(Problem {
                    path: log_path,
                    file_offset: None,
                    kind: ProblemKind::Unreadable {
                        error: e.to_string(),
                    },
                });
                expected = None;
                continue;
            }
        };
        let mut builder = IndexBuilder::new(u32::MAX);
        let mut batch_at: HashMap<u32, (u32, u64)> = HashMap::new();
        let has_idx = idx_path.exists();
        let mut pos = 0usize;
        let mut next_offset = base;
        let mut damaged = false;
        // Scan; after a bad batch whose header is still sane, skip it and
        // go on, so that one flipped bit does not hide later problems.
        while pos < bytes.len() {
            let (mut batches, mut records) = (0u64, 0u64);
            let end = scan_batches(&bytes[pos..], next_offset, |at, b| {
                batches += 1;
                records += u64::from(b.record_count());
                let at = (pos as u64 + at) as u32;
                let rel = u32::try_from(b.base_offset() - base).unwrap_or(u32::MAX);
                batch_at.insert(at, (rel, b.first_time_ms()));
                let keys = (!b.is_control()).then(|| b.records().map(|rec| rec.key));
                builder.add_batch(at, rel, b.first_time_ms(), b.last_time_ms(), keys);
            });
            r.batches += batches;
            r.records += records;
            next_offset = end.next_offset;
            let bad_at = pos + end.valid_len as usize;
            let Some(error) = end.error else {
                break;
            };
            // Zeros to the end of a segment without index are the free
            // space of a preallocated segment (segment/prealloc.rs), not
            // damage; recovery keeps (active) or cuts (rolled) them.
            if !has_idx && crate::segment::prealloc::is_zero(&bytes[bad_at..]) {
                break;
            }
            damaged = true;
            let mut skip = crate::batch::parse_header(&bytes[bad_at..])
                .ok()
                .filter(|h| {
                    h.base_offset == next_offset && bad_at + h.batch_bytes as usize <= bytes.len()
                });
            // The active segment: say what recovery will do (see
            // partition/recovery.rs): refuse durable damage or a newer
            // format version, truncate anything else.
            let active = is_last && !has_idx;
            let kind = if !active {
                ProblemKind::BadBatch { error }
            } else if let Some(w) =
                find_durable_witness(&bytes, bad_at as u64, next_offset, end.last_time_ms)
            {
                ProblemKind::DamagedDurable {
                    error,
                    witness_offset: w.file_offset,
                    durable_bytes: w.durable_bytes,
                }
            } else if matches!(error, BatchError::UnknownVersion { version } if version > BATCH_FORMAT_VERSION)
            {
                skip = None;
                ProblemKind::BadBatch { error }
            } else {
                skip = None;
                ProblemKind::TornTail {
                    error,
                    bytes: (bytes.len() - bad_at) as u64,
                }
            };
            r.problems.push(Problem {
                path: log_path.clone(),
                file_offset: Some(bad_at as u64),
                kind,
            });
            match skip {
                Some(h) => {
                    pos = bad_at + h.batch_bytes as usize;
                    next_offset = h.base_offset + u64::from(h.record_count);
                    // The damaged header's record count may be damaged
                    // too: a valid next batch says where offsets go on.
                    if let Ok(b) = crate::batch::decode_batch(&bytes[pos..])
                        && b.base_offset() > h.base_offset
                    {
                        next_offset = b.base_offset();
                    }
                }
                None => break,
            }
        }
        expected = Some(next_offset);
        if !has_idx {
            if !is_last {
                r.problems.push(Problem {
                    path: idx_path,
                    file_offset: None,
                    kind: ProblemKind::IndexMissing,
                });
            }
            continue;
        }
        let checked = if damaged {
            None
        } else {
            Some((next_offset, &builder, &batch_at))
        };
        match check_index(&idx_path, bytes.len() as u64, checked) {
            Ok(idx_next) if damaged => expected = Some(idx_next),
            Ok(_) => {}
            Err(reason) => r.problems.push(Problem {
                path: idx_path,
                file_offset: None,
                kind: ProblemKind::IndexInvalid { reason },
            }),
        }
    }
    Ok(())
}

/// Checks an index file against its segment; with `rebuilt` (the segment
/// scanned clean) also every entry. Returns the index's next offset.
fn check_index(
    path: &Path,
    segment_bytes: u64,
    rebuilt: Option<(u64, &IndexBuilder, &BatchPositions)>,
) -> Result<u64, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let h = decode_index_header(path, &bytes).map_err(|e| e.to_string())?;
    let body = split_index_body(path, &h, &bytes, true).map_err(|e| e.to_string())?;
    if h.segment_bytes != segment_bytes {
        return Err(format!(
            "records segment length {}, file has {segment_bytes}",
            h.segment_bytes
        ));
    }
    if crate::partition::producer::ProducerTable::decode(body.producers, h.producer_count).is_none()
    {
        return Err("producer snapshot is malformed".to_string());
    }
    let Some((next_offset, rebuilt, batch_at)) = rebuilt else {
        return Ok(h.next_offset);
    };
    if h.next_offset != next_offset {
        return Err(format!(
            "records next offset {}, segment ends at {next_offset}",
            h.next_offset
        ));
    }
    for e in body.sparse_entries() {
        if batch_at.get(&e.position) != Some(&(e.rel_offset, e.first_time_ms)) {
            return Err(format!(
                "sparse entry at position {} does not match a batch",
                e.position
            ));
        }
    }
    let mut keys = rebuilt.keys.clone();
    keys.sort_unstable();
    if keys.len() != body.key_len() || keys.iter().enumerate().any(|(i, k)| *k != body.key_at(i)) {
        return Err("key index does not match the segment's records".to_string());
    }
    Ok(h.next_offset)
}
