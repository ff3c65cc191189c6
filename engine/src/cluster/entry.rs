//! One Raft entry is one log batch: how an entry becomes a batch on
//! append, and how a stored batch becomes an entry again.
//!
//! Why no second copy: the partition log is the Raft log. Raft index `i`
//! is the `i`-th batch of the partition (counted from 1); entry terms live
//! in the small leader-epoch list of the replica's state file
//! (`state.rs`), so the batch format needs no term field.
//!
//! Three kinds of entries:
//!
//! - a client proposal: its data *is* a batch (records, optional producer
//!   id and sequence), encoded by the leader with base offset 0 and the
//!   leader's clock reading; every replica places it with
//!   `Partition::append_replicated`, so the stored bytes are identical;
//! - an entry Raft makes itself (the empty entry a new leader appends,
//!   configuration changes): stored as a control batch of one record with
//!   an empty key and the value `DLRE`, entry type (u8), entry data;
//! - nothing else: a proposal whose batch could be mistaken for the second
//!   kind is refused ([`is_reserved`]).
//!
//! Reading back gives an entry with the same index, term and type; a
//! proposal's data comes back placed (offset and time stamped), which
//! placing again leaves unchanged.

use dropline_log::{
    AppendRequest, BatchPeek, BatchRef, Record, decode_batch, encode_unplaced_batch,
};
use raft::eraftpb::{Entry, EntryType};

use super::ClusterError;

/// Value prefix of the control record that stores a Raft-internal entry.
pub const RAFT_ENTRY_MAGIC: &[u8; 4] = b"DLRE";

/// The batch to append for `entry`.
pub fn entry_to_batch(entry: &Entry) -> Result<Vec<u8>, ClusterError> {
    let kind = entry.get_entry_type();
    if kind == EntryType::EntryNormal && !entry.get_data().is_empty() {
        return Ok(entry.get_data().to_vec());
    }
    let mut value = Vec::with_capacity(5 + entry.get_data().len());
    value.extend_from_slice(RAFT_ENTRY_MAGIC);
    value.push(match kind {
        EntryType::EntryNormal => 0,
        EntryType::EntryConfChange => 1,
        EntryType::EntryConfChangeV2 => 2,
    });
    value.extend_from_slice(entry.get_data());
    let records = [Record {
        key: b"",
        value: &value,
    }];
    Ok(encode_unplaced_batch(
        &AppendRequest {
            records: &records,
            producer: None,
        },
        true,
        0,
    )?)
}

/// The entry stored as `batch` at `index` with `term`.
pub fn batch_to_entry(batch: &[u8], index: u64, term: u64) -> Result<Entry, ClusterError> {
    let b = decode_batch(batch).map_err(|source| ClusterError::BadEntry { index, source })?;
    let mut e = Entry {
        index,
        term,
        ..Default::default()
    };
    if let Some(value) = raft_entry_value_of(&b) {
        let (kind, data) = value.split_at(1);
        e.set_entry_type(match kind[0] {
            1 => EntryType::EntryConfChange,
            2 => EntryType::EntryConfChangeV2,
            _ => EntryType::EntryNormal,
        });
        e.set_data(data.to_vec().into());
    } else {
        e.set_entry_type(EntryType::EntryNormal);
        e.set_data(b.as_bytes().to_vec().into());
    }
    Ok(e)
}

/// For a batch holding a Raft-internal entry: the bytes after the magic
/// (entry type, then data).
fn raft_entry_value(batch: &[u8]) -> Option<&[u8]> {
    // Only a control batch can hold one: the header says so without a
    // pass over the whole batch for its CRC.
    if !BatchPeek::of(batch).is_ok_and(|h| h.is_control()) {
        return None;
    }
    raft_entry_value_of(&decode_batch(batch).ok()?)
}

/// [`raft_entry_value`] of a decoded batch.
fn raft_entry_value_of<'a>(b: &BatchRef<'a>) -> Option<&'a [u8]> {
    if !b.is_control() || b.record_count() != 1 {
        return None;
    }
    let r = b.records().next()?;
    if !r.key.is_empty() {
        return None;
    }
    let rest = r.value.strip_prefix(RAFT_ENTRY_MAGIC.as_slice())?;
    (!rest.is_empty()).then_some(rest)
}

/// Whether a proposed batch looks like a Raft-internal entry (and must be
/// refused, or it would read back as one).
pub fn is_reserved(batch: &[u8]) -> bool {
    raft_entry_value(batch).is_some()
}
