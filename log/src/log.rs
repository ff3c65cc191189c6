//! The log: a data directory of topics, each with a fixed number of
//! partitions.
//!
//! Why a lock file: every safety argument of the storage (append-only files,
//! nothing mapped is truncated) assumes one writer process per directory.
//! `Log::open` takes an exclusive `flock` on `<dir>/LOCK`, held until the
//! `Log` is closed or dropped, and only then recovers and maps segments.
//!
//! Layout: `<dir>/LOCK`, `<dir>/topics/<topic>/topic.meta`,
//! `<dir>/topics/<topic>/<partition:05>/<base:020>.{log,idx}`,
//! `<dir>/consumers/<group>/<topic>.<partition:05>.offset`; the archive
//! mirrors `topics/` under `archive_dir`.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::config::{Durability, LogConfig, TopicConfig};
use crate::error::LogError;
use crate::io::{DiskIo, IoBackend, sync_dir};
use crate::limits::{PARTITIONS_MAX, SEGMENT_BYTES_MAX_LIMIT, SEGMENT_BYTES_MAX_MIN};
use crate::locking;
use crate::partition::recovery::{RecoveryReport, open_partition};
use crate::partition::{DeletedSegment, Partition, PartitionSettings};
use crate::syncer::Syncer;
use crate::topic::{self, TopicInfo, validate_name};
use crate::{atomic_file, consumer};

const TOPIC_META_FILE: &str = "topic.meta";

/// What a retention run removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Segments deleted (and archived, if configured), oldest first per
    /// partition.
    pub deleted: Vec<DeletedSegment>,
}

#[derive(Debug)]
struct Topic {
    config: TopicConfig,
    partitions: Vec<Arc<Partition>>,
}

/// A data directory of topics. `Send + Sync`; share it with `Arc`.
#[derive(Debug)]
pub struct Log {
    config: LogConfig,
    lock: Option<File>,
    io: Arc<DiskIo>,
    syncer: Mutex<Syncer>,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    create: Mutex<()>,
    report: RecoveryReport,
}

fn partition_dir(root: &Path, topic: &str, partition: u32) -> PathBuf {
    root.join("topics")
        .join(topic)
        .join(format!("{partition:05}"))
}

fn check_segment_bytes(v: u64) -> Result<(), LogError> {
    if !(SEGMENT_BYTES_MAX_MIN..=SEGMENT_BYTES_MAX_LIMIT).contains(&v) {
        return Err(LogError::InvalidConfig {
            field: "segment_bytes_max",
            value: v,
            reason: "must be within 4 KiB..=2 GiB",
        });
    }
    Ok(())
}

impl Log {
    /// Opens (creating if needed) the data directory: takes the lock,
    /// chooses the I/O backend, recovers every partition and starts the
    /// syncer. What recovery did is in [`Log::recovery_report`].
    pub fn open(config: LogConfig) -> Result<Log, LogError> {
        check_segment_bytes(config.segment_bytes_max)?;
        if config.index_interval_bytes == 0 {
            return Err(LogError::InvalidConfig {
                field: "index_interval_bytes",
                value: 0,
                reason: "must be positive",
            });
        }
        let interval = match config.durability {
            Durability::Interval { interval_ms: 0 } => {
                return Err(LogError::InvalidConfig {
                    field: "interval_ms",
                    value: 0,
                    reason: "must be positive",
                });
            }
            Durability::Interval { interval_ms } => Some(Duration::from_millis(interval_ms)),
            _ => None,
        };
        let dir = &config.dir;
        std::fs::create_dir_all(dir.join("topics")).map_err(|e| LogError::io(dir, e))?;
        let lock_path = dir.join("LOCK");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| LogError::io(&lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(LogError::Locked { dir: dir.clone() });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(LogError::io(&lock_path, e)),
        }
        let io = Arc::new(DiskIo::open(
            config.io_mode,
            dir,
            config.fault_injector.clone(),
        ));
        let syncer = Syncer::start(io.clone(), interval).map_err(|e| LogError::io(dir, e))?;
        let mut log = Log {
            config,
            lock: Some(lock),
            io,
            syncer: Mutex::new(syncer),
            topics: RwLock::new(BTreeMap::new()),
            create: Mutex::new(()),
            report: RecoveryReport::default(),
        };
        let topics_dir = log.config.dir.join("topics");
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&topics_dir).map_err(|e| LogError::io(&topics_dir, e))? {
            let entry = entry.map_err(|e| LogError::io(&topics_dir, e))?;
            if let Some(name) = entry.file_name().to_str()
                && validate_name(name).is_ok()
                && entry.path().join(TOPIC_META_FILE).exists()
            {
                names.push(name.to_string());
            }
        }
        names.sort();
        let mut report = RecoveryReport::default();
        for name in names {
            let meta_path = topics_dir.join(&name).join(TOPIC_META_FILE);
            let bytes = std::fs::read(&meta_path).map_err(|e| LogError::io(&meta_path, e))?;
            let config = topic::decode(&meta_path, &bytes)?;
            let topic = log.open_topic(&name, config, &mut report)?;
            locking::write(&log.topics).insert(name, topic);
        }
        tracing::info!(
            partitions = report.partitions.len(),
            active_bytes_scanned = report
                .partitions
                .iter()
                .map(|p| p.active_bytes_scanned)
                .sum::<u64>(),
            torn_tails_truncated = report.truncations().count(),
            indexes_rebuilt = report
                .partitions
                .iter()
                .map(|p| p.rebuilt_indexes.len())
                .sum::<usize>(),
            "log recovered: every active segment checked batch by batch"
        );
        log.report = report;
        Ok(log)
    }

    fn open_topic(
        &self,
        name: &str,
        config: TopicConfig,
        report: &mut RecoveryReport,
    ) -> Result<Arc<Topic>, LogError> {
        let syncer = locking::lock(&self.syncer).shared().clone();
        let mut partitions = Vec::with_capacity(config.partitions as usize);
        for p in 0..config.partitions {
            let settings = PartitionSettings {
                topic: name.to_string(),
                partition: p,
                dir: partition_dir(&self.config.dir, name, p),
                archive_dir: self
                    .config
                    .archive_dir
                    .as_ref()
                    .map(|a| partition_dir(a, name, p)),
                segment_bytes_max: config
                    .segment_bytes_max
                    .unwrap_or(self.config.segment_bytes_max),
                index_interval_bytes: self.config.index_interval_bytes,
                durability: self.config.durability,
                clock: self.config.clock.clone(),
                io: self.io.clone(),
                syncer: syncer.clone(),
                storage_full_probe_interval_ms: self.config.storage_full_probe_interval_ms,
                preallocate_segments: self.config.preallocate_segments,
            };
            let (partition, rec) = open_partition(settings)?;
            report.partitions.push(rec);
            partitions.push(partition);
        }
        Ok(Arc::new(Topic { config, partitions }))
    }

    /// What recovery found and repaired when this log was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.report
    }

    /// The I/O path chosen at open, with the reason for a fallback.
    pub fn io_backend(&self) -> IoBackend {
        self.io.backend()
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.config.dir
    }

    /// The configuration the log was opened with.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Creates a topic. Idempotent when the topic exists with the same
    /// configuration; `TopicExists` when it exists with another.
    pub fn create_topic(&self, name: &str, config: TopicConfig) -> Result<(), LogError> {
        validate_name(name)?;
        if config.partitions == 0 || config.partitions > PARTITIONS_MAX {
            return Err(LogError::InvalidConfig {
                field: "partitions",
                value: u64::from(config.partitions),
                reason: "must be within 1..=4096",
            });
        }
        if let Some(s) = config.segment_bytes_max {
            check_segment_bytes(s)?;
        }
        let _guard = locking::lock(&self.create);
        if let Some(t) = locking::read(&self.topics).get(name) {
            return if t.config == config {
                Ok(())
            } else {
                Err(LogError::TopicExists {
                    topic: name.to_string(),
                })
            };
        }
        let dir = self.config.dir.join("topics").join(name);
        std::fs::create_dir_all(&dir).map_err(|e| LogError::io(&dir, e))?;
        let parent = self.config.dir.join("topics");
        sync_dir(&parent).map_err(|e| LogError::io(&parent, e))?;
        atomic_file::write(&dir.join(TOPIC_META_FILE), &topic::encode(&config), true)?;
        let mut scratch = RecoveryReport::default();
        let topic = self.open_topic(name, config, &mut scratch)?;
        locking::write(&self.topics).insert(name.to_string(), topic);
        Ok(())
    }

    /// Every topic with its configuration and per-partition figures.
    pub fn topics(&self) -> Vec<TopicInfo> {
        locking::read(&self.topics)
            .iter()
            .map(|(name, t)| TopicInfo {
                name: name.clone(),
                config: t.config,
                partitions: t.partitions.iter().map(|p| p.info()).collect(),
            })
            .collect()
    }

    /// A partition of a topic.
    pub fn partition(&self, topic: &str, partition: u32) -> Result<Arc<Partition>, LogError> {
        let topics = locking::read(&self.topics);
        let t = topics.get(topic).ok_or_else(|| LogError::TopicNotFound {
            topic: topic.to_string(),
        })?;
        t.partitions
            .get(partition as usize)
            .cloned()
            .ok_or(LogError::PartitionNotFound {
                topic: topic.to_string(),
                partition,
                partitions: t.config.partitions,
            })
    }

    /// Deletes (after archiving, if an archive is configured) every sealed
    /// segment past its topic's age or size retention at time `now_ms`.
    pub fn enforce_retention(&self, now_ms: u64) -> Result<RetentionReport, LogError> {
        let topics: Vec<Arc<Topic>> = locking::read(&self.topics).values().cloned().collect();
        let mut report = RetentionReport::default();
        for t in topics {
            for p in &t.partitions {
                report.deleted.extend(p.enforce_retention(
                    now_ms,
                    t.config.retention_ms,
                    t.config.retention_bytes,
                )?);
            }
        }
        Ok(report)
    }

    /// Durably records that `group` has consumed `topic`/`partition` up to
    /// (not including) `offset`: temp file, fsync, rename, fsync directory.
    pub fn commit_consumer_offset(
        &self,
        group: &str,
        topic: &str,
        partition: u32,
        offset: u64,
    ) -> Result<(), LogError> {
        validate_name(group)?;
        self.partition(topic, partition)?;
        let path = consumer::offset_path(&self.config.dir, group, topic, partition);
        if let Some(dir) = path.parent()
            && !dir.exists()
        {
            std::fs::create_dir_all(dir).map_err(|e| LogError::io(dir, e))?;
            let consumers = self.config.dir.join("consumers");
            sync_dir(&consumers).map_err(|e| LogError::io(&consumers, e))?;
            sync_dir(&self.config.dir).map_err(|e| LogError::io(&self.config.dir, e))?;
        }
        atomic_file::write(&path, &consumer::encode(offset), true)
    }

    /// The offset last committed by `group`, if any.
    pub fn consumer_offset(
        &self,
        group: &str,
        topic: &str,
        partition: u32,
    ) -> Result<Option<u64>, LogError> {
        validate_name(group)?;
        self.partition(topic, partition)?;
        let path = consumer::offset_path(&self.config.dir, group, topic, partition);
        match std::fs::read(&path) {
            Ok(b) => consumer::decode(&path, &b).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(LogError::io(&path, e)),
        }
    }

    fn shutdown(&mut self) -> Result<(), LogError> {
        let mut first_err = None;
        let topics: Vec<Arc<Topic>> = locking::read(&self.topics).values().cloned().collect();
        for t in topics {
            for p in &t.partitions {
                if let Err(e) = p.close_partition() {
                    first_err.get_or_insert(e);
                }
            }
        }
        locking::lock(&self.syncer).stop();
        if let Some(lock) = self.lock.take() {
            let _ = lock.unlock();
        }
        first_err.map_or(Ok(()), Err)
    }

    /// fdatasyncs everything written, refuses further appends, stops the
    /// syncer and releases the directory lock.
    pub fn close(mut self) -> Result<(), LogError> {
        self.shutdown()
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        if self.lock.is_some()
            && let Err(e) = self.shutdown()
        {
            tracing::error!(error = %e, "closing the log on drop failed");
        }
    }
}
