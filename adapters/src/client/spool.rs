//! The adapter's durable spool: a Dropline log of its own with one topic,
//! `spool`, partitioned like the node's `carrier-events`.
//!
//! Why the log: it already gives durable group-committed appends, CRC'd
//! batches, torn-tail recovery, committed consumer offsets and retention.
//! Each sealed batch is appended as one spool batch tagged with the
//! client's (producer id, sequence), so after a restart the exact batches
//! that may have reached the node are rebuilt byte for byte and resent with
//! the same sequences; the node answers them as duplicates. The consumer
//! offset of group `ingest-client` marks what the node acknowledged; it is
//! committed in the background every [`SPOOL_COMMIT_INTERVAL_MS`] (a batch
//! acked but not yet committed is simply resent after a crash, harmlessly).
//!
//! Disk bound: events held (spooled, not acknowledged) are capped by
//! `buffered_bytes_max`; size retention deletes the oldest sealed segments
//! beyond twice that plus two segments, which by then hold only
//! acknowledged batches (the spool's encoding adds at most a factor of two
//! over the counted bytes for 1-byte events, far less for real ones).
//!
//! Files: `<dir>/spool.meta` (producer id and partition count), `<dir>/
//! seq-shift` (per-partition count of batches the node rejected for good,
//! which moves later sequences down), `<dir>/log/` (the log).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use dropline_log::{
    AppendRequest, BATCH_BYTES_MAX, Log, LogConfig, Partition, ProducerSeq, Record, TopicConfig,
};
use tokio::sync::mpsc;

use super::batcher::{Sealed, SpoolState, held_bytes_of};
use super::config::SpoolConfig;
use super::error::ClientError;
use super::metrics::sub;
use super::{Inner, lock};
use crate::wire::{BatchBuilder, BatchView, FRAME_HEADER_BYTES};

/// The spool's topic.
pub const SPOOL_TOPIC: &str = "spool";
/// Consumer group whose committed offset marks acknowledged batches.
pub const SPOOL_GROUP: &str = "ingest-client";
/// Segment size of the spool topic, in bytes.
pub const SPOOL_SEGMENT_BYTES: u64 = 16 * 1024 * 1024;
/// Interval between background commits of acknowledged offsets, in ms.
pub const SPOOL_COMMIT_INTERVAL_MS: u64 = 100;
/// Bytes read per call when reloading unacknowledged batches.
const RELOAD_READ_BYTES: usize = 4 * 1024 * 1024;

const META_FILE: &str = "spool.meta";
const SHIFT_FILE: &str = "seq-shift";
const META_MAGIC: [u8; 4] = [b'D', b'L', b'S', 1];
const META_BYTES: usize = 20;

/// What reopening a spool found.
pub(crate) struct Recovered {
    pub(crate) batches: Vec<Sealed>,
    pub(crate) next_sequence: Vec<u64>,
}

/// An open spool.
pub(crate) struct Spool {
    log: Log,
    dir: PathBuf,
    producer_id: u64,
    partitions: Vec<Arc<Partition>>,
    /// Per partition, the offset to commit next (acknowledged prefix end).
    pending: Mutex<Vec<Option<u64>>>,
    shifts: Mutex<Vec<u64>>,
    stop: AtomicBool,
}

fn io(path: &Path, source: std::io::Error) -> ClientError {
    ClientError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Atomically and durably replaces `path` (the log's `write_atomic`: temp
/// file, fsync, rename, fsync of the directory), with the client's I/O
/// error.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ClientError> {
    dropline_log::write_atomic(path, bytes).map_err(|e| match e {
        dropline_log::LogError::Io { path, source } => ClientError::Io { path, source },
        other => io(path, std::io::Error::other(other)),
    })
}

fn encode_meta(producer_id: u64, partitions: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(META_BYTES);
    b.extend_from_slice(&META_MAGIC);
    b.extend_from_slice(&producer_id.to_le_bytes());
    b.extend_from_slice(&partitions.to_le_bytes());
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

fn decode_meta(path: &Path, b: &[u8]) -> Result<(u64, u32), ClientError> {
    let bad = |reason| ClientError::BadSpool {
        path: path.to_path_buf(),
        reason,
    };
    if b.len() != META_BYTES || b[0..4] != META_MAGIC {
        return Err(bad("not a spool meta file of version 1"));
    }
    let crc = u32::from_le_bytes([b[16], b[17], b[18], b[19]]);
    if crc != crc32c::crc32c(&b[..16]) {
        return Err(bad("spool meta checksum mismatch"));
    }
    let producer_id = u64::from_le_bytes(b[4..12].try_into().map_err(|_| bad("short"))?);
    let partitions = u32::from_le_bytes([b[12], b[13], b[14], b[15]]);
    Ok((producer_id, partitions))
}

fn encode_shifts(shifts: &[u64]) -> Vec<u8> {
    let mut b: Vec<u8> = shifts.iter().flat_map(|s| s.to_le_bytes()).collect();
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

fn decode_shifts(path: &Path, b: &[u8], partitions: u32) -> Result<Vec<u64>, ClientError> {
    let n = partitions as usize;
    if b.len() != n * 8 + 4 {
        return Err(ClientError::BadSpool {
            path: path.to_path_buf(),
            reason: "sequence shift file has the wrong size",
        });
    }
    let crc = u32::from_le_bytes([b[n * 8], b[n * 8 + 1], b[n * 8 + 2], b[n * 8 + 3]]);
    if crc != crc32c::crc32c(&b[..n * 8]) {
        return Err(ClientError::BadSpool {
            path: path.to_path_buf(),
            reason: "sequence shift checksum mismatch",
        });
    }
    Ok(b[..n * 8]
        .chunks_exact(8)
        .map(|c| {
            c.iter()
                .rev()
                .fold(0u64, |acc, x| (acc << 8) | u64::from(*x))
        })
        .collect())
}

impl Spool {
    /// The producer id and partition count of an existing spool.
    pub(crate) fn peek_meta(config: &SpoolConfig) -> Result<Option<(u64, u32)>, ClientError> {
        let path = config.dir.join(META_FILE);
        match std::fs::read(&path) {
            Ok(b) => decode_meta(&path, &b).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path, e)),
        }
    }

    /// Opens (creating if needed) the spool and reloads every batch not yet
    /// acknowledged. `held_bytes_max` sizes retention.
    pub(crate) fn open(
        config: &SpoolConfig,
        producer_id: u64,
        partitions: u32,
        held_bytes_max: u64,
    ) -> Result<(Spool, Recovered), ClientError> {
        let dir = config.dir.clone();
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        let meta_path = dir.join(META_FILE);
        let (producer_id, partitions) = match Spool::peek_meta(config)? {
            Some(m) => m,
            None => {
                write_atomic(&meta_path, &encode_meta(producer_id, partitions))?;
                (producer_id, partitions)
            }
        };
        let shift_path = dir.join(SHIFT_FILE);
        let shifts = match std::fs::read(&shift_path) {
            Ok(b) => decode_shifts(&shift_path, &b, partitions)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => vec![0; partitions as usize],
            Err(e) => return Err(io(&shift_path, e)),
        };
        let log = Log::open(LogConfig::new(dir.join("log")))?;
        let retention = held_bytes_max
            .saturating_mul(2)
            .saturating_add(2 * SPOOL_SEGMENT_BYTES + 2 * BATCH_BYTES_MAX as u64);
        log.create_topic(
            SPOOL_TOPIC,
            TopicConfig {
                partitions,
                retention_ms: None,
                retention_bytes: Some(retention),
                segment_bytes_max: Some(SPOOL_SEGMENT_BYTES),
            },
        )?;
        let mut parts = Vec::with_capacity(partitions as usize);
        let mut batches = Vec::new();
        let mut next_sequence = Vec::with_capacity(partitions as usize);
        for p in 0..partitions {
            let part = log.partition(SPOOL_TOPIC, p)?;
            let committed = log
                .consumer_offset(SPOOL_GROUP, SPOOL_TOPIC, p)?
                .unwrap_or(0)
                .max(part.start_offset());
            let mut last_seq = None;
            let mut from = committed;
            loop {
                let views = part.read(from, RELOAD_READ_BYTES)?;
                if views.is_empty() {
                    break;
                }
                for view in &views {
                    let batch = view.batch();
                    let Some(ps) = batch.producer() else { continue };
                    last_seq = Some(ps.sequence);
                    if batch.base_offset() < committed {
                        continue;
                    }
                    let mut builder = BatchBuilder::new();
                    let mut held = 0u64;
                    for r in batch.records() {
                        builder
                            .push(r.key, r.value)
                            .map_err(|_| ClientError::BadSpool {
                                path: dir.clone(),
                                reason: "spool record has an invalid key",
                            })?;
                        held += held_bytes_of(r.key.len(), r.value.len());
                    }
                    let sequence = ps.sequence - shifts[p as usize];
                    let records = builder.records();
                    let frame = builder.finish(producer_id, sequence, p, 0);
                    batches.push(Sealed {
                        partition: p,
                        sequence,
                        frame: frame.into(),
                        records,
                        held_bytes: held,
                        sealed_at: Instant::now(),
                        spool_next_offset: Some(batch.last_offset() + 1),
                        spooled: None,
                    });
                    from = batch.last_offset() + 1;
                }
                if let Some(v) = views.last() {
                    from = v.batch().last_offset() + 1;
                }
            }
            if last_seq.is_none() && part.next_offset() > 0 {
                // Everything is acknowledged: the last batch still holds the
                // last sequence used.
                if let Some(v) = part.read(part.next_offset() - 1, 1)?.last() {
                    last_seq = v.batch().producer().map(|ps| ps.sequence);
                }
            }
            next_sequence.push(last_seq.map_or(1, |s| s + 1));
            parts.push(part);
        }
        let spool = Spool {
            log,
            dir,
            producer_id,
            partitions: parts,
            pending: Mutex::new(vec![None; partitions as usize]),
            shifts: Mutex::new(shifts),
            stop: AtomicBool::new(false),
        };
        Ok((
            spool,
            Recovered {
                batches,
                next_sequence,
            },
        ))
    }

    /// The spool's producer id.
    pub(crate) fn producer_id(&self) -> u64 {
        self.producer_id
    }

    /// Records that the node acknowledged everything of `partition` below
    /// `next_offset` (committed in the background).
    pub(crate) fn acked(&self, partition: u32, next_offset: u64) {
        if let Some(slot) = lock(&self.pending).get_mut(partition as usize) {
            *slot = Some(next_offset);
        }
    }

    /// Durably records that one more batch of `partition` was rejected for
    /// good, so later sequences move down by one after a restart too.
    pub(crate) fn shift(&self, partition: u32) -> Result<(), ClientError> {
        let mut shifts = lock(&self.shifts);
        if let Some(s) = shifts.get_mut(partition as usize) {
            *s += 1;
        }
        write_atomic(&self.dir.join(SHIFT_FILE), &encode_shifts(&shifts))
    }

    /// Commits every pending acknowledged offset and applies retention.
    pub(crate) fn commit_all(&self) {
        let pending: Vec<(usize, u64)> = lock(&self.pending)
            .iter_mut()
            .enumerate()
            .filter_map(|(p, o)| o.take().map(|o| (p, o)))
            .collect();
        if pending.is_empty() {
            return;
        }
        for (p, offset) in pending {
            if let Err(err) =
                self.log
                    .commit_consumer_offset(SPOOL_GROUP, SPOOL_TOPIC, p as u32, offset)
            {
                tracing::warn!(%err, partition = p, "spool commit failed; will resend after a restart");
            }
        }
        let now_ms = crate::ingest::now_ms();
        if let Err(err) = self.log.enforce_retention(now_ms) {
            tracing::warn!(%err, "spool retention failed");
        }
    }

    /// Starts the background committer thread; it stops when the spool is
    /// dropped or `stop` is set.
    pub(crate) fn start_committer(self: &Arc<Spool>) {
        let weak: Weak<Spool> = Arc::downgrade(self);
        let _ = std::thread::Builder::new()
            .name("dropline-spool-commit".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_millis(SPOOL_COMMIT_INTERVAL_MS));
                    let Some(spool) = weak.upgrade() else { return };
                    if spool.stop.load(Ordering::Relaxed) {
                        return;
                    }
                    spool.commit_all();
                }
            });
    }

    /// Stops the committer after a last commit.
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        self.commit_all();
    }
}

/// The spool writer task: appends sealed batches to the spool in order,
/// waits for the group commit, tells the waiting senders, and passes the
/// batches on to the link.
pub(crate) async fn run_writer(
    spool: Arc<Spool>,
    inner: Arc<Inner>,
    mut rx: mpsc::UnboundedReceiver<Sealed>,
    link: mpsc::UnboundedSender<Sealed>,
) {
    let mut group: Vec<Sealed> = Vec::new();
    while let Some(first) = rx.recv().await {
        group.push(first);
        while let Ok(more) = rx.try_recv() {
            group.push(more);
        }
        let mut durables = Vec::with_capacity(group.len());
        for s in &mut group {
            let body = s.frame.get(FRAME_HEADER_BYTES..).unwrap_or(&[]);
            let outcome = BatchView::parse(body).ok().and_then(|view| {
                let records: Vec<Record<'_>> = view.records().map(Record::from).collect();
                let part = spool.partitions.get(s.partition as usize)?;
                let request = AppendRequest {
                    records: &records,
                    producer: Some(ProducerSeq {
                        producer_id: spool.producer_id,
                        sequence: s.sequence,
                    }),
                };
                match part.append_pending(&request) {
                    Ok((ack, durable)) => Some((ack.last_offset + 1, durable)),
                    Err(err) => {
                        tracing::error!(%err, "spool append failed");
                        None
                    }
                }
            });
            durables.push(outcome);
        }
        for (mut s, outcome) in group.drain(..).zip(durables) {
            let ok = match outcome {
                Some((next, durable)) => match durable.await {
                    Ok(()) => {
                        s.spool_next_offset = Some(next);
                        true
                    }
                    Err(err) => {
                        tracing::error!(%err, "spool fdatasync failed");
                        false
                    }
                },
                None => false,
            };
            let state = if ok {
                SpoolState::Spooled
            } else {
                SpoolState::Failed
            };
            if let Some(tx) = s.spooled.take() {
                let _ = tx.send(state);
            }
            if ok {
                let _ = link.send(s);
            } else {
                let m = &inner.metrics;
                sub(&m.held_bytes, s.held_bytes);
                sub(&m.held_events, u64::from(s.records));
                sub(&m.events_accepted, u64::from(s.records));
                inner.room.add_permits(s.held_bytes as usize);
            }
        }
    }
}
