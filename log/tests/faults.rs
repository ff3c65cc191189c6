#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Fault injection: a failed write or fdatasync poisons the partition
//! writer for good; nothing is retried silently; a restart recovers.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use dropline_log::*;

#[derive(Debug, Default)]
struct Faults {
    fail_write: AtomicBool,
    fail_sync: AtomicBool,
}

impl FaultInjector for Faults {
    fn before_write(&self, _: &Path, _: u64, _: usize) -> std::io::Result<()> {
        if self.fail_write.load(Ordering::SeqCst) {
            return Err(std::io::Error::other("injected fault"));
        }
        Ok(())
    }
    fn before_sync(&self, _: &Path) -> std::io::Result<()> {
        if self.fail_sync.load(Ordering::SeqCst) {
            return Err(std::io::Error::other("injected fault"));
        }
        Ok(())
    }
}

fn open(dir: &Path, faults: &Arc<Faults>, mode: IoMode) -> Log {
    let mut c = LogConfig::new(dir);
    c.segment_bytes_max = 4096;
    c.io_mode = mode;
    c.fault_injector = Some(faults.clone());
    Log::open(c).unwrap()
}

fn req<'a>(records: &'a [Record<'a>]) -> AppendRequest<'a> {
    AppendRequest {
        records,
        producer: None,
    }
}

#[test]
fn failed_fdatasync_poisons_the_partition_and_fails_waiters() {
    for mode in [IoMode::Auto, IoMode::Pwrite] {
        let dir = tempfile::tempdir().unwrap();
        let faults = Arc::new(Faults::default());
        let log = open(dir.path(), &faults, mode);
        log.create_topic("t", TopicConfig::new(2)).unwrap();
        let p = log.partition("t", 0).unwrap();
        let r = [Record {
            key: b"k",
            value: b"v",
        }];
        p.append(&req(&r)).unwrap();
        faults.fail_sync.store(true, Ordering::SeqCst);
        let err = p.append(&req(&r)).unwrap_err();
        assert!(
            matches!(err, LogError::Poisoned { ref topic, partition: 0, .. } if topic == "t"),
            "{err}"
        );
        assert!(p.is_poisoned());
        assert_eq!(
            p.durable_offset(),
            1,
            "the failed batch never became visible"
        );
        // Never retried: even after the disk "recovers", the writer refuses.
        faults.fail_sync.store(false, Ordering::SeqCst);
        assert!(matches!(p.append(&req(&r)), Err(LogError::Poisoned { .. })));
        assert!(matches!(
            p.append_pending(&req(&r)),
            Err(LogError::Poisoned { .. })
        ));
        assert_eq!(p.read(0, 1 << 20).unwrap().len(), 1);
        // Other partitions are unaffected.
        log.partition("t", 1).unwrap().append(&req(&r)).unwrap();
        assert!(log.topics()[0].partitions[0].poisoned);
        drop(p);
        let _ = log.close();
        // A restart runs recovery and accepts appends again.
        let log = open(dir.path(), &faults, mode);
        let p = log.partition("t", 0).unwrap();
        assert!(!p.is_poisoned());
        let ack = p.append(&req(&r)).unwrap();
        assert!(ack.base_offset >= 1);
    }
}

#[test]
fn failed_write_returns_the_io_error_then_poisoned() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(Faults::default());
    let log = open(dir.path(), &faults, IoMode::Auto);
    log.create_topic("t", TopicConfig::new(1)).unwrap();
    let p = log.partition("t", 0).unwrap();
    let r = [Record {
        key: b"k",
        value: b"v",
    }];
    faults.fail_write.store(true, Ordering::SeqCst);
    assert!(matches!(p.append(&req(&r)), Err(LogError::Io { .. })));
    faults.fail_write.store(false, Ordering::SeqCst);
    assert!(matches!(p.append(&req(&r)), Err(LogError::Poisoned { .. })));
    assert_eq!(p.next_offset(), 0);
}

#[test]
fn failed_fdatasync_while_sealing_a_segment_poisons() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(Faults::default());
    let log = open(dir.path(), &faults, IoMode::Pwrite);
    log.create_topic("t", TopicConfig::new(1)).unwrap();
    let p = log.partition("t", 0).unwrap();
    let v = vec![1u8; 1500];
    let r = [Record {
        key: b"k",
        value: &v,
    }];
    p.append(&req(&r)).unwrap();
    p.append(&req(&r)).unwrap();
    // The next append must roll (4 KiB segments) and its seal fdatasync fails.
    faults.fail_sync.store(true, Ordering::SeqCst);
    let err = p.append_pending(&req(&r)).unwrap_err();
    assert!(matches!(err, LogError::Io { .. }), "{err}");
    assert!(p.is_poisoned());
    assert!(matches!(p.append(&req(&r)), Err(LogError::Poisoned { .. })));
}
