//! Checkpoints: one file per partition holding the processor's snapshot,
//! the input positions it corresponds to and the output sequences.
//!
//! Why one file per partition and not per worker: state is per partition,
//! so a restart with a different worker count just hands each partition's
//! file to its new owner. Why the output sequences are in it: after a crash
//! the task replays from the checkpoint's input offsets and must give the
//! regenerated output batches the sequences they had the first time.
//!
//! A checkpoint is saved only after every output batch of the steps it
//! covers is durable (the driver orders this). It is written atomically:
//! temp file, fsync, rename over the old one, fsync the directory; a crash
//! at any point leaves either the old or the new file, never a torn one.
//! Every file carries magic, version and a CRC32C, and a damaged one is
//! refused with a typed error rather than silently replayed from zero.
//!
//! Layout (little-endian, offsets in bytes):
//!
//! | at  | size | field |
//! |-----|------|-------|
//! | 0   | 4    | magic `DLK` + version byte 1 |
//! | 4   | 4    | CRC32C of bytes 8..end |
//! | 8   | 8    | total length in bytes |
//! | 16  | 4    | partition |
//! | 20  | 4    | reserved, 0 |
//! | 24  | 8    | input batches processed |
//! | 32  | 8    | log time of the last processed batch |
//! | 40  | 8    | log time of the last tick fired |
//! | 48  | 48   | per input (control, orders, carrier events): next offset u64, frontier log time u64 |
//! | 96  | 8    | drop mode: manual (0 unset, 1 off, 2 on) u8, window set u8, applied u8, 5 reserved |
//! | 104 | 16   | drop window from, to (log time ms) |
//! | 120 | 4    | output topic count N |
//! | 124 | 4    | reserved, 0 |
//! | 128 | 8N   | next sequence per output topic, by topic index |
//! | ..  | 8    | processor snapshot length L |
//! | ..  | L    | processor snapshot |

use std::path::{Path, PathBuf};

use crate::control::DropSchedule;
use crate::input::INPUT_COUNT;
use crate::merge::InputPosition;
use crate::output::{OUTPUT_TOPIC_COUNT, OutputSequences};

/// Magic of a checkpoint file; the last byte is the format version.
pub const CHECKPOINT_MAGIC: [u8; 4] = [b'D', b'L', b'K', 1];
const FIXED_BYTES: usize = 128;

/// What a checkpoint holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointState {
    /// The partition.
    pub partition: u32,
    /// Input batches processed since the partition's first start.
    pub batches_processed: u64,
    /// Log time of the last processed batch.
    pub log_time_ms: u64,
    /// Log time of the last tick fired.
    pub last_tick_ms: u64,
    /// Where each input resumes (by [`crate::input::InputKind::index`]).
    pub inputs: [InputPosition; INPUT_COUNT],
    /// Drop-mode state.
    pub drop: DropSchedule,
    /// Next output sequences.
    pub sequences: OutputSequences,
    /// The processor's snapshot.
    pub processor: Vec<u8>,
}

/// Why checkpoint bytes were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointFormatError {
    /// Shorter than its header or its declared length.
    #[error("truncated checkpoint: need {needed} bytes, have {available}")]
    Truncated {
        /// Bytes needed.
        needed: u64,
        /// Bytes present.
        available: u64,
    },
    /// Not a checkpoint.
    #[error("bad checkpoint magic {found:02x?}")]
    BadMagic {
        /// The bytes found.
        found: [u8; 4],
    },
    /// A version this build cannot read.
    #[error("unknown checkpoint version {version}")]
    UnknownVersion {
        /// The version byte.
        version: u8,
    },
    /// The CRC does not match.
    #[error("checkpoint checksum mismatch: stored {expected:#010x}, computed {got:#010x}")]
    ChecksumMismatch {
        /// Stored CRC.
        expected: u32,
        /// Computed CRC.
        got: u32,
    },
    /// A field holds a value the format forbids.
    #[error("invalid checkpoint field {field}: {value}")]
    InvalidField {
        /// The field.
        field: &'static str,
        /// Its value.
        value: u64,
    },
}

/// Errors of checkpoint storage.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// An I/O operation failed.
    #[error("checkpoint i/o error on {path}: {source}")]
    Io {
        /// File or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A checkpoint file is damaged.
    #[error("corrupt checkpoint {path}: {source}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: CheckpointFormatError,
    },
    /// The file belongs to another partition.
    #[error("checkpoint {path} is for partition {found}, expected {expected}")]
    WrongPartition {
        /// The file.
        path: PathBuf,
        /// The partition asked for.
        expected: u32,
        /// The partition in the file.
        found: u32,
    },
}

impl CheckpointState {
    /// Encodes the checkpoint.
    pub fn encode(&self) -> Vec<u8> {
        let total = FIXED_BYTES + 8 * OUTPUT_TOPIC_COUNT + 8 + self.processor.len();
        let mut b = Vec::with_capacity(total);
        b.extend_from_slice(&CHECKPOINT_MAGIC);
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&(total as u64).to_le_bytes());
        b.extend_from_slice(&self.partition.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        for v in [self.batches_processed, self.log_time_ms, self.last_tick_ms] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        for p in &self.inputs {
            b.extend_from_slice(&p.next_offset.to_le_bytes());
            b.extend_from_slice(&p.frontier_ms.to_le_bytes());
        }
        let manual = match self.drop.manual {
            None => 0u8,
            Some(false) => 1,
            Some(true) => 2,
        };
        b.extend_from_slice(&[
            manual,
            u8::from(self.drop.window.is_some()),
            u8::from(self.drop.applied),
            0,
            0,
            0,
            0,
            0,
        ]);
        let (from, to) = self.drop.window.unwrap_or((0, 0));
        b.extend_from_slice(&from.to_le_bytes());
        b.extend_from_slice(&to.to_le_bytes());
        b.extend_from_slice(&(OUTPUT_TOPIC_COUNT as u32).to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        debug_assert_eq!(b.len(), FIXED_BYTES);
        for s in self.sequences.as_array() {
            b.extend_from_slice(&s.to_le_bytes());
        }
        b.extend_from_slice(&(self.processor.len() as u64).to_le_bytes());
        b.extend_from_slice(&self.processor);
        debug_assert_eq!(b.len(), total);
        let crc = crc32c::crc32c(&b[8..]);
        b[4..8].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and verifies a checkpoint.
    pub fn decode(b: &[u8]) -> Result<CheckpointState, CheckpointFormatError> {
        let truncated = |needed: usize| CheckpointFormatError::Truncated {
            needed: needed as u64,
            available: b.len() as u64,
        };
        if b.len() < FIXED_BYTES {
            return Err(truncated(FIXED_BYTES));
        }
        let u32_at = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let u64_at = |at: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[at..at + 8]);
            u64::from_le_bytes(a)
        };
        if b[0..3] != CHECKPOINT_MAGIC[0..3] {
            return Err(CheckpointFormatError::BadMagic {
                found: [b[0], b[1], b[2], b[3]],
            });
        }
        if b[3] != CHECKPOINT_MAGIC[3] {
            return Err(CheckpointFormatError::UnknownVersion { version: b[3] });
        }
        let total = u64_at(8);
        if total != b.len() as u64 {
            return Err(CheckpointFormatError::Truncated {
                needed: total,
                available: b.len() as u64,
            });
        }
        let (expected, got) = (u32_at(4), crc32c::crc32c(&b[8..]));
        if expected != got {
            return Err(CheckpointFormatError::ChecksumMismatch { expected, got });
        }
        let topics = u32_at(120) as usize;
        if topics != OUTPUT_TOPIC_COUNT {
            return Err(CheckpointFormatError::InvalidField {
                field: "output topic count",
                value: topics as u64,
            });
        }
        let seq_end = FIXED_BYTES + 8 * topics;
        if b.len() < seq_end + 8 {
            return Err(truncated(seq_end + 8));
        }
        let mut inputs = [InputPosition::default(); INPUT_COUNT];
        for (i, p) in inputs.iter_mut().enumerate() {
            p.next_offset = u64_at(48 + 16 * i);
            p.frontier_ms = u64_at(56 + 16 * i);
        }
        let manual = match b[96] {
            0 => None,
            1 => Some(false),
            2 => Some(true),
            v => {
                return Err(CheckpointFormatError::InvalidField {
                    field: "drop manual",
                    value: u64::from(v),
                });
            }
        };
        let window = (b[97] != 0).then(|| (u64_at(104), u64_at(112)));
        let mut seqs = [0u64; OUTPUT_TOPIC_COUNT];
        for (i, s) in seqs.iter_mut().enumerate() {
            *s = u64_at(FIXED_BYTES + 8 * i);
        }
        let len = u64_at(seq_end);
        let start = seq_end + 8;
        if len != (b.len() - start) as u64 {
            return Err(CheckpointFormatError::InvalidField {
                field: "processor snapshot length",
                value: len,
            });
        }
        Ok(CheckpointState {
            partition: u32_at(16),
            batches_processed: u64_at(24),
            log_time_ms: u64_at(32),
            last_tick_ms: u64_at(40),
            inputs,
            drop: DropSchedule {
                manual,
                window,
                applied: b[98] != 0,
            },
            sequences: OutputSequences::from_array(seqs),
            processor: b[start..].to_vec(),
        })
    }
}

/// Where checkpoints are kept. The real one is a directory; the simulation
/// keeps them in memory and injects torn writes.
pub trait CheckpointStore: Send + Sync {
    /// The newest complete checkpoint of `partition`, if any.
    fn load(&self, partition: u32) -> Result<Option<CheckpointState>, CheckpointError>;
    /// Atomically replaces the checkpoint of `state.partition`.
    fn save(&self, state: &CheckpointState) -> Result<(), CheckpointError>;
}

/// Checkpoints as files `partition-<p>.ckpt` in a directory.
#[derive(Debug, Clone)]
pub struct DirCheckpointStore {
    dir: PathBuf,
}

impl DirCheckpointStore {
    /// A store in `dir` (created if missing).
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, CheckpointError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|source| CheckpointError::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(DirCheckpointStore { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of `partition`.
    pub fn path(&self, partition: u32) -> PathBuf {
        self.dir.join(format!("partition-{partition:05}.ckpt"))
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl CheckpointStore for DirCheckpointStore {
    fn load(&self, partition: u32) -> Result<Option<CheckpointState>, CheckpointError> {
        let path = self.path(partition);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let state = CheckpointState::decode(&bytes).map_err(|source| CheckpointError::Corrupt {
            path: path.clone(),
            source,
        })?;
        if state.partition != partition {
            return Err(CheckpointError::WrongPartition {
                path,
                expected: partition,
                found: state.partition,
            });
        }
        Ok(Some(state))
    }

    fn save(&self, state: &CheckpointState) -> Result<(), CheckpointError> {
        dropline_log::write_atomic(&self.path(state.partition), &state.encode()).map_err(
            |e| match e {
                dropline_log::LogError::Io { path, source } => CheckpointError::Io { path, source },
                other => CheckpointError::Io {
                    path: self.path(state.partition),
                    source: std::io::Error::other(other),
                },
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CheckpointState {
        let mut seqs = [0u64; OUTPUT_TOPIC_COUNT];
        seqs[3] = 9;
        seqs[15] = 77;
        CheckpointState {
            partition: 4,
            batches_processed: 123,
            log_time_ms: 1_700_000_000_000,
            last_tick_ms: 1_699_999_999_000,
            inputs: [
                InputPosition {
                    next_offset: 5,
                    frontier_ms: 6,
                },
                InputPosition {
                    next_offset: 7,
                    frontier_ms: 8,
                },
                InputPosition {
                    next_offset: 9,
                    frontier_ms: 10,
                },
            ],
            drop: DropSchedule {
                manual: None,
                window: Some((100, 200)),
                applied: true,
            },
            sequences: OutputSequences::from_array(seqs),
            processor: b"state bytes".to_vec(),
        }
    }

    #[test]
    fn round_trips_and_every_damage_is_refused() {
        let s = sample();
        let b = s.encode();
        assert_eq!(CheckpointState::decode(&b).unwrap(), s);
        for i in 0..b.len() {
            let mut d = b.clone();
            d[i] ^= 0x40;
            assert!(
                CheckpointState::decode(&d).is_err(),
                "flip at byte {i} accepted"
            );
        }
        for len in 0..b.len() {
            assert!(CheckpointState::decode(&b[..len]).is_err());
        }
        let mut v2 = b.clone();
        v2[3] = 2;
        assert_eq!(
            CheckpointState::decode(&v2).unwrap_err(),
            CheckpointFormatError::UnknownVersion { version: 2 }
        );
    }

    #[test]
    fn dir_store_replaces_atomically_and_ignores_a_torn_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirCheckpointStore::open(dir.path()).unwrap();
        assert!(store.load(4).unwrap().is_none());
        let mut s = sample();
        store.save(&s).unwrap();
        s.batches_processed = 124;
        // A crash in the middle of the next save leaves a torn temp file:
        // the previous checkpoint is still the one loaded.
        std::fs::write(store.path(4).with_extension("ckpt.tmp"), &s.encode()[..50]).unwrap();
        assert_eq!(store.load(4).unwrap().unwrap().batches_processed, 123);
        store.save(&s).unwrap();
        assert_eq!(store.load(4).unwrap().unwrap(), s);
        std::fs::copy(store.path(4), store.path(5)).unwrap();
        assert!(matches!(
            store.load(5),
            Err(CheckpointError::WrongPartition {
                expected: 5,
                found: 4,
                ..
            })
        ));
        let mut bytes = std::fs::read(store.path(4)).unwrap();
        bytes[20] ^= 1;
        std::fs::write(store.path(4), bytes).unwrap();
        assert!(matches!(
            store.load(4),
            Err(CheckpointError::Corrupt { .. })
        ));
    }
}
