//! The replica storage over a real, fdatasynced partition log: entries map
//! to batches and back, terms come from the leader epochs, a conflicting
//! suffix is cut off, and a crash before the fdatasync loses exactly the
//! unsynced tail, with the state file trimmed to match on reopen; entries
//! written before their fdatasync completes are served from memory and a
//! cut into them waits for it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use dropline_engine::cluster::{PartitionReplicaLog, ReplicaStorage, StateFile};
use dropline_log::{
    AppendRequest, Durability, Log, LogConfig, ProducerSeq, Record, TopicConfig,
    encode_unplaced_batch,
};
use raft::Storage;
use raft::eraftpb::{Entry, EntryType, HardState};

fn open(dir: &Path) -> (Log, ReplicaStorage) {
    let mut c = LogConfig::new(dir.join("log"));
    c.durability = Durability::Fsync;
    c.segment_bytes_max = 8 * 1024;
    let log = Log::open(c).expect("open");
    if log.partition("p", 0).is_err() {
        log.create_topic("p", TopicConfig::new(1)).expect("topic");
    }
    let part = log.partition("p", 0).expect("partition");
    let s = ReplicaStorage::open(
        PartitionReplicaLog::open(part).expect("replica log"),
        StateFile::new(dir.join("p-0.raft")),
        vec![1, 2, 3],
    )
    .expect("storage");
    (log, s)
}

fn proposal(index: u64, term: u64, seq: u64) -> Entry {
    let key = format!("parcel-{seq}");
    let records = [Record {
        key: key.as_bytes(),
        value: b"in transit",
    }];
    let batch = encode_unplaced_batch(
        &AppendRequest {
            records: &records,
            producer: Some(ProducerSeq {
                producer_id: 5,
                sequence: seq,
            }),
        },
        false,
        1_000 + seq,
    )
    .expect("encode");
    let mut e = Entry {
        index,
        term,
        ..Default::default()
    };
    e.set_data(batch.into());
    e
}

fn noop(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        ..Default::default()
    }
}

fn hs(term: u64, vote: u64, commit: u64) -> HardState {
    HardState {
        term,
        vote,
        commit,
        ..Default::default()
    }
}

fn partition_bytes(s: &ReplicaStorage) -> Vec<Vec<u8>> {
    (1..=s.log().durable_index())
        .map(|i| s.log().batch(i).expect("batch"))
        .collect()
}

#[test]
fn entries_terms_conflicts_and_a_crash_before_the_fdatasync() {
    let dir = tempfile::tempdir().expect("tmp");
    let (log, mut s) = open(dir.path());
    let first: Vec<Entry> = std::iter::once(noop(1, 1))
        .chain((2..=5).map(|i| proposal(i, 1, i)))
        .collect();
    s.persist(Some(&hs(1, 1, 0)), &first).expect("persist");
    s.log_mut().sync().expect("sync");
    // A new leader in term 2 overwrites entries 4 and 5 and adds 6.
    let second = vec![noop(4, 2), proposal(5, 2, 4), proposal(6, 2, 5)];
    s.persist(Some(&hs(2, 2, 3)), &second).expect("persist");
    s.log_mut().sync().expect("sync");
    assert_eq!(s.last_index().expect("last"), 6);
    let terms: Vec<u64> = (0..=6).map(|i| s.term(i).expect("term")).collect();
    assert_eq!(terms, vec![0, 1, 1, 1, 2, 2, 2]);
    let entries = s
        .entries(1, 7, None, raft::GetEntriesContext::empty(false))
        .expect("entries");
    assert_eq!(entries.len(), 6);
    assert!(entries[0].get_data().is_empty() && entries[3].get_data().is_empty());
    assert_eq!(entries[0].get_entry_type(), EntryType::EntryNormal);
    let seqs: Vec<Option<u64>> = entries
        .iter()
        .map(|e| {
            (!e.get_data().is_empty()).then(|| {
                dropline_log::decode_batch(e.get_data())
                    .expect("decode")
                    .producer()
                    .expect("producer")
                    .sequence
            })
        })
        .collect();
    assert_eq!(seqs, vec![None, Some(2), Some(3), None, Some(4), Some(5)]);
    // Offsets are dense across the cut.
    let mut next = 0;
    for i in 1..=6 {
        let (base, last) = s.log().placement(i).expect("placed");
        assert_eq!(base, next);
        next = last + 1;
    }
    let before_crash = partition_bytes(&s);
    // Term 3 appends two entries but crashes before the fdatasync.
    s.persist(Some(&hs(3, 3, 6)), &[noop(7, 3), proposal(8, 3, 6)])
        .expect("persist");
    assert_eq!(s.last_index().expect("last"), 8);
    drop(s);
    log.close().expect("close");
    let (log, s) = open(dir.path());
    assert_eq!(
        s.last_index().expect("last"),
        6,
        "the unsynced tail is lost"
    );
    assert_eq!(partition_bytes(&s), before_crash);
    let state = s.initial_state().expect("state");
    assert_eq!((state.hard_state.term, state.hard_state.vote), (3, 3));
    assert!(state.hard_state.commit <= 6);
    assert_eq!(
        s.state().epochs,
        vec![(1, 1), (2, 4)],
        "epoch of term 3 trimmed"
    );
    assert_eq!(s.term(6).expect("term"), 2);
    drop(s);
    log.close().expect("close");
}

#[test]
fn two_replicas_store_the_same_entries_byte_for_byte() {
    let (a_dir, b_dir) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let (_la, mut a) = open(a_dir.path());
    let (_lb, mut b) = open(b_dir.path());
    let entries: Vec<Entry> = std::iter::once(noop(1, 1))
        .chain((2..=300).map(|i| proposal(i, 1 + i / 100, i)))
        .collect();
    // Replica a gets them in one ready; b in many, as a follower would.
    a.persist(Some(&hs(4, 1, 0)), &entries).expect("persist");
    a.log_mut().sync().expect("sync");
    for chunk in entries.chunks(7) {
        b.persist(Some(&hs(4, 1, 0)), chunk).expect("persist");
        b.log_mut().sync().expect("sync");
    }
    assert_eq!(partition_bytes(&a), partition_bytes(&b));
    // Entries read back from a and stored on a third replica are placed
    // identically again.
    let c_dir = tempfile::tempdir().expect("tmp");
    let (_lc, mut c) = open(c_dir.path());
    let read = a
        .entries(1, 301, None, raft::GetEntriesContext::empty(false))
        .expect("entries");
    c.persist(Some(&hs(4, 1, 0)), &read).expect("persist");
    c.log_mut().sync().expect("sync");
    assert_eq!(partition_bytes(&a), partition_bytes(&c));
    assert!(
        a.log().partition().info().segments > 1,
        "rolled segments covered"
    );
}

/// The driver's pipelined fdatasync: entries written to the partition but
/// not yet known durable are still served (from memory) to Raft, count as
/// durable only once the covering fdatasync completed, and a conflicting
/// suffix that cuts into them waits for that fdatasync before truncating.
#[test]
fn written_entries_before_their_fdatasync_and_a_cut_into_them() {
    let dir = tempfile::tempdir().expect("tmp");
    let (log, mut s) = open(dir.path());
    let first: Vec<Entry> = std::iter::once(noop(1, 1))
        .chain((2..=4).map(|i| proposal(i, 1, i)))
        .collect();
    s.persist(Some(&hs(1, 1, 0)), &first).expect("persist");
    s.log_mut().sync().expect("sync");
    assert_eq!(s.log().durable_index(), 4);
    // Term 1 goes on: entries 5 and 6 written, their fdatasync started.
    s.persist(None, &[proposal(5, 1, 5), proposal(6, 1, 6)])
        .expect("persist");
    assert_eq!(s.log_mut().start_sync().expect("start sync"), 6);
    assert_eq!(s.log().written_index(), 6);
    // Not known durable until polled or waited for: durable_index stays,
    // reads of 5 and 6 come from memory, as written (re-stamped in place
    // with their offsets, the form a durable read returns too).
    assert!(s.log().pending_offset().is_some());
    assert_eq!(s.log().durable_index(), 4);
    let e6 = s
        .entries(6, 7, None, raft::GetEntriesContext::empty(false))
        .expect("entries");
    let proposed = proposal(6, 1, 6);
    let (served, proposed) = (
        dropline_log::decode_batch(e6[0].get_data()).expect("served batch"),
        dropline_log::decode_batch(proposed.get_data()).expect("proposed batch"),
    );
    let records = |b: &dropline_log::BatchRef<'_>| {
        b.records()
            .map(|r| (r.key.to_vec(), r.value.to_vec()))
            .collect::<Vec<_>>()
    };
    assert_eq!(records(&served), records(&proposed));
    assert_eq!(served.producer(), proposed.producer());
    assert_eq!(
        served.base_offset(),
        s.log().placement(6).expect("placed").0
    );
    // Term 2 overwrites entries 5 and 6: the cut waits for the pending
    // fdatasync, then removes them from the partition.
    s.persist(Some(&hs(2, 2, 4)), &[noop(5, 2), proposal(6, 2, 5)])
        .expect("persist");
    assert_eq!(s.log().pending_offset(), None);
    assert_eq!(s.log().durable_index(), 4);
    s.log_mut().sync().expect("sync");
    assert_eq!(s.log().durable_index(), 6);
    let terms: Vec<u64> = (4..=6).map(|i| s.term(i).expect("term")).collect();
    assert_eq!(terms, vec![1, 2, 2]);
    let (base, _) = s.log().placement(6).expect("placed");
    let (_, last5) = s.log().placement(5).expect("placed");
    assert_eq!(base, last5 + 1, "offsets stay dense across the cut");
    // What is durable survives a reopen as written.
    let before = partition_bytes(&s);
    drop(s);
    log.close().expect("close");
    let (log, s) = open(dir.path());
    assert_eq!(s.last_index().expect("last"), 6);
    assert_eq!(partition_bytes(&s), before);
    drop(s);
    log.close().expect("close");
}
