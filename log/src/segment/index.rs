//! Per-segment indexes and the `.idx` file that holds them once a segment is
//! sealed.
//!
//! Why one file per sealed segment: it is the segment's footer (length,
//! offsets and times, checked cheaply at open so sealed segments need no
//! scan), its sparse offset/time index, its key index and the producer
//! snapshot, written once, atomically, at seal. Layout: docs/FORMAT.md.
//!
//! The sparse index serves both offset and time seeks: log time is
//! non-decreasing in offset order within a partition, so the entries are
//! sorted by both.

use std::path::Path;

use crate::error::LogError;
use crate::partition::producer::ProducerTable;

/// Magic of an index file; the last byte is the format version.
pub(crate) const INDEX_MAGIC: [u8; 4] = [b'D', b'L', b'I', 1];
pub(crate) const INDEX_HEADER_BYTES: usize = 80;
pub(crate) const SPARSE_ENTRY_BYTES: usize = 16;
pub(crate) const KEY_ENTRY_BYTES: usize = 16;

/// Hash of a key for the key index: 64-bit FNV-1a followed by the
/// SplitMix64 finaliser (FNV alone mixes the low bits of similar tracking
/// numbers poorly). Part of the on-disk format: never change it without a
/// version bump.
pub fn key_hash(key: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// A sparse index entry: the batch at `position` starts at `rel_offset`
/// (relative to the segment's base) and has log time `first_time_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SparseEntry {
    pub(crate) rel_offset: u32,
    pub(crate) position: u32,
    pub(crate) first_time_ms: u64,
}

/// A key index entry: a record with key hash `hash` is in the batch at
/// `position` with relative offset `rel_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct KeyEntry {
    pub(crate) hash: u64,
    pub(crate) position: u32,
    pub(crate) rel_offset: u32,
}

/// The in-memory indexes of a segment being written or scanned.
#[derive(Debug, Default, Clone)]
pub(crate) struct IndexBuilder {
    pub(crate) sparse: Vec<SparseEntry>,
    /// Key entries in append order (sorted at seal).
    pub(crate) keys: Vec<KeyEntry>,
    interval_bytes: u32,
    last_sparse_position: Option<u32>,
    pub(crate) first_time_ms: Option<u64>,
    pub(crate) last_time_ms: u64,
    /// A sorted copy of a prefix of `keys`, for lookups.
    lookup: KeyLookupCache,
}

/// Key entries of the active segment not yet in the sorted copy, past
/// which a lookup merges them in. Below it, a lookup scans them linearly
/// (a few microseconds).
pub(crate) const LOOKUP_UNSORTED_ENTRIES_MAX: usize = 4096;

/// A sorted copy of the first `covered` key entries of an active segment,
/// built by the first key lookup that needs it and extended by later ones.
///
/// Why lazily and not on every append: appends are the hot path and most
/// segments are never looked up by key while active; forensic lookups
/// (`dropline replay`) on a busy node were scanning hundreds of thousands
/// of unsorted entries per topic. Each refresh sorts only the new entries
/// and merges them, so a lookup costs O(log n) plus at most
/// [`LOOKUP_UNSORTED_ENTRIES_MAX`] scanned entries, amortized.
#[derive(Debug, Default)]
struct KeyLookupCache(std::sync::Mutex<SortedPrefix>);

#[derive(Debug, Default, Clone)]
struct SortedPrefix {
    covered: usize,
    /// `(hash, position)` of `keys[..covered]`, sorted.
    entries: Vec<(u64, u32)>,
}

impl Clone for KeyLookupCache {
    fn clone(&self) -> Self {
        KeyLookupCache(std::sync::Mutex::new(crate::locking::lock(&self.0).clone()))
    }
}

impl IndexBuilder {
    pub(crate) fn new(interval_bytes: u32) -> Self {
        IndexBuilder {
            interval_bytes: interval_bytes.max(1),
            ..Default::default()
        }
    }

    /// Records a batch written at `position`.
    pub(crate) fn add_batch<'k>(
        &mut self,
        position: u32,
        rel_offset: u32,
        first_time_ms: u64,
        last_time_ms: u64,
        keys: Option<impl Iterator<Item = &'k [u8]>>,
    ) {
        let due = match self.last_sparse_position {
            None => true,
            Some(p) => position.saturating_sub(p) >= self.interval_bytes,
        };
        if due {
            self.sparse.push(SparseEntry {
                rel_offset,
                position,
                first_time_ms,
            });
            self.last_sparse_position = Some(position);
        }
        if self.first_time_ms.is_none() {
            self.first_time_ms = Some(first_time_ms);
        }
        self.last_time_ms = self.last_time_ms.max(last_time_ms);
        if let Some(keys) = keys {
            for (i, key) in keys.enumerate() {
                self.keys.push(KeyEntry {
                    hash: key_hash(key),
                    position,
                    rel_offset: rel_offset.saturating_add(i as u32),
                });
            }
        }
    }

    /// Position to start scanning from to find `rel_offset`.
    pub(crate) fn seek_offset(&self, rel_offset: u32) -> u32 {
        let i = self.sparse.partition_point(|e| e.rel_offset <= rel_offset);
        if i == 0 {
            0
        } else {
            self.sparse[i - 1].position
        }
    }

    /// Position to start scanning from to find the first batch with log time
    /// at or after `time_ms`.
    pub(crate) fn seek_time(&self, time_ms: u64) -> u32 {
        let i = self.sparse.partition_point(|e| e.first_time_ms < time_ms);
        if i == 0 {
            0
        } else {
            self.sparse[i - 1].position
        }
    }

    /// Batch positions holding records whose key hashes to `hash`, in
    /// ascending order.
    pub(crate) fn key_positions(&self, hash: u64) -> Vec<u32> {
        let mut sorted = crate::locking::lock(&self.lookup.0);
        if self.keys.len() - sorted.covered > LOOKUP_UNSORTED_ENTRIES_MAX {
            let mut new: Vec<(u64, u32)> = self.keys[sorted.covered..]
                .iter()
                .map(|e| (e.hash, e.position))
                .collect();
            new.sort_unstable();
            let old = std::mem::take(&mut sorted.entries);
            sorted.entries = merge_sorted(old, new);
            sorted.covered = self.keys.len();
        }
        let start = sorted.entries.partition_point(|&(h, _)| h < hash);
        let mut v: Vec<u32> = sorted.entries[start..]
            .iter()
            .take_while(|&&(h, _)| h == hash)
            .map(|&(_, p)| p)
            .collect();
        v.extend(
            self.keys[sorted.covered..]
                .iter()
                .filter(|e| e.hash == hash)
                .map(|e| e.position),
        );
        drop(sorted);
        // Positions of the sorted part ascend, and every unsorted entry was
        // appended after them, so its positions are not smaller.
        v.dedup();
        v
    }
}

/// Merges two sorted vectors into one.
fn merge_sorted(a: Vec<(u64, u32)>, b: Vec<(u64, u32)>) -> Vec<(u64, u32)> {
    if a.is_empty() {
        return b;
    }
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i] <= b[j] {
            out.push(a[i]);
            i += 1;
        } else {
            out.push(b[j]);
            j += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// The fixed header of an index file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexHeader {
    pub(crate) segment_bytes: u64,
    pub(crate) base_offset: u64,
    pub(crate) next_offset: u64,
    pub(crate) first_time_ms: u64,
    pub(crate) last_time_ms: u64,
    pub(crate) sparse_count: u32,
    pub(crate) key_count: u32,
    pub(crate) producer_count: u32,
    pub(crate) body_crc: u32,
}

fn header_crc(h: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&h[0..4]), &h[8..INDEX_HEADER_BYTES])
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}
fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Encodes the complete index file of a sealed segment.
pub(crate) fn encode_index_file(
    segment_bytes: u64,
    base_offset: u64,
    next_offset: u64,
    builder: &IndexBuilder,
    producers: &ProducerTable,
) -> Vec<u8> {
    let mut keys = builder.keys.clone();
    keys.sort_unstable();
    // Header and body in one buffer: the body of a full segment's index is
    // megabytes, and copying it behind the header doubled the allocation.
    let mut table = Vec::new();
    let producer_count = producers.encode(&mut table);
    let mut h = Vec::with_capacity(
        INDEX_HEADER_BYTES
            + builder.sparse.len() * SPARSE_ENTRY_BYTES
            + keys.len() * KEY_ENTRY_BYTES
            + table.len(),
    );
    h.resize(INDEX_HEADER_BYTES, 0);
    for e in &builder.sparse {
        h.extend_from_slice(&e.rel_offset.to_le_bytes());
        h.extend_from_slice(&e.position.to_le_bytes());
        h.extend_from_slice(&e.first_time_ms.to_le_bytes());
    }
    for e in &keys {
        h.extend_from_slice(&e.hash.to_le_bytes());
        h.extend_from_slice(&e.position.to_le_bytes());
        h.extend_from_slice(&e.rel_offset.to_le_bytes());
    }
    h.extend_from_slice(&table);
    let body_crc = crc32c::crc32c(&h[INDEX_HEADER_BYTES..]);
    h[0..4].copy_from_slice(&INDEX_MAGIC);
    h[8..16].copy_from_slice(&segment_bytes.to_le_bytes());
    h[16..24].copy_from_slice(&base_offset.to_le_bytes());
    h[24..32].copy_from_slice(&next_offset.to_le_bytes());
    h[32..40].copy_from_slice(&builder.first_time_ms.unwrap_or(0).to_le_bytes());
    h[40..48].copy_from_slice(&builder.last_time_ms.to_le_bytes());
    h[48..52].copy_from_slice(&(builder.sparse.len() as u32).to_le_bytes());
    h[52..56].copy_from_slice(&(keys.len() as u32).to_le_bytes());
    h[56..60].copy_from_slice(&producer_count.to_le_bytes());
    h[60..64].copy_from_slice(&body_crc.to_le_bytes());
    let crc = header_crc(&h);
    h[4..8].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Parses and checks an index file header.
pub(crate) fn decode_index_header(path: &Path, bytes: &[u8]) -> Result<IndexHeader, LogError> {
    let corrupt = |reason| LogError::CorruptFile {
        path: path.to_path_buf(),
        reason,
    };
    if bytes.len() < INDEX_HEADER_BYTES {
        return Err(corrupt("index header truncated"));
    }
    if bytes[0..3] != INDEX_MAGIC[0..3] {
        return Err(corrupt("bad index magic"));
    }
    if bytes[3] != INDEX_MAGIC[3] {
        return Err(LogError::UnknownVersion {
            segment: path.to_path_buf(),
            file_offset: 0,
            version: bytes[3],
        });
    }
    if le_u32(bytes, 4) != header_crc(bytes) {
        return Err(corrupt("index header checksum mismatch"));
    }
    let h = IndexHeader {
        segment_bytes: le_u64(bytes, 8),
        base_offset: le_u64(bytes, 16),
        next_offset: le_u64(bytes, 24),
        first_time_ms: le_u64(bytes, 32),
        last_time_ms: le_u64(bytes, 40),
        sparse_count: le_u32(bytes, 48),
        key_count: le_u32(bytes, 52),
        producer_count: le_u32(bytes, 56),
        body_crc: le_u32(bytes, 60),
    };
    if h.next_offset < h.base_offset || h.last_time_ms < h.first_time_ms {
        return Err(corrupt("index header fields inconsistent"));
    }
    Ok(h)
}

/// A checked, mapped index file body.
#[derive(Debug)]
pub(crate) struct IndexBody<'a> {
    pub(crate) sparse: &'a [u8],
    pub(crate) keys: &'a [u8],
    pub(crate) producers: &'a [u8],
}

/// Splits a whole index file into its sections, checking the body CRC.
pub(crate) fn split_index_body<'a>(
    path: &Path,
    h: &IndexHeader,
    file: &'a [u8],
    check_crc: bool,
) -> Result<IndexBody<'a>, LogError> {
    let corrupt = |reason| LogError::CorruptFile {
        path: path.to_path_buf(),
        reason,
    };
    let body = file
        .get(INDEX_HEADER_BYTES..)
        .ok_or_else(|| corrupt("index truncated"))?;
    if check_crc && crc32c::crc32c(body) != h.body_crc {
        return Err(corrupt("index body checksum mismatch"));
    }
    let sparse_len = h.sparse_count as usize * SPARSE_ENTRY_BYTES;
    let keys_len = h.key_count as usize * KEY_ENTRY_BYTES;
    if body.len() < sparse_len + keys_len {
        return Err(corrupt("index sections exceed the file"));
    }
    let (sparse, rest) = body.split_at(sparse_len);
    let (keys, producers) = rest.split_at(keys_len);
    Ok(IndexBody {
        sparse,
        keys,
        producers,
    })
}

impl IndexBody<'_> {
    fn sparse_at(&self, i: usize) -> SparseEntry {
        let b = &self.sparse[i * SPARSE_ENTRY_BYTES..];
        SparseEntry {
            rel_offset: le_u32(b, 0),
            position: le_u32(b, 4),
            first_time_ms: le_u64(b, 8),
        }
    }
    fn sparse_len(&self) -> usize {
        self.sparse.len() / SPARSE_ENTRY_BYTES
    }
    pub(crate) fn sparse_entries(&self) -> impl Iterator<Item = SparseEntry> + '_ {
        (0..self.sparse_len()).map(|i| self.sparse_at(i))
    }
    pub(crate) fn key_at(&self, i: usize) -> KeyEntry {
        let b = &self.keys[i * KEY_ENTRY_BYTES..];
        KeyEntry {
            hash: le_u64(b, 0),
            position: le_u32(b, 8),
            rel_offset: le_u32(b, 12),
        }
    }
    pub(crate) fn key_len(&self) -> usize {
        self.keys.len() / KEY_ENTRY_BYTES
    }
    fn partition_point(len: usize, mut pred: impl FnMut(usize) -> bool) -> usize {
        let (mut lo, mut hi) = (0usize, len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if pred(mid) { lo = mid + 1 } else { hi = mid }
        }
        lo
    }
    pub(crate) fn seek_offset(&self, rel_offset: u32) -> u32 {
        let i = Self::partition_point(self.sparse_len(), |i| {
            self.sparse_at(i).rel_offset <= rel_offset
        });
        if i == 0 {
            0
        } else {
            self.sparse_at(i - 1).position
        }
    }
    pub(crate) fn seek_time(&self, time_ms: u64) -> u32 {
        let i = Self::partition_point(self.sparse_len(), |i| {
            self.sparse_at(i).first_time_ms < time_ms
        });
        if i == 0 {
            0
        } else {
            self.sparse_at(i - 1).position
        }
    }
    /// Batch positions holding records whose key hashes to `hash`: a binary
    /// search, then a walk over the equal entries.
    pub(crate) fn key_positions(&self, hash: u64) -> Vec<u32> {
        let n = self.key_len();
        let mut i = Self::partition_point(n, |i| self.key_at(i).hash < hash);
        let mut v = Vec::new();
        while i < n {
            let e = self.key_at(i);
            if e.hash != hash {
                break;
            }
            if v.last() != Some(&e.position) {
                v.push(e.position);
            }
            i += 1;
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sorted-prefix lookup answers exactly what a scan of every entry
    /// answers, before and after refreshes, with keys repeated within and
    /// across batches.
    #[test]
    fn active_key_lookup_equals_a_full_scan() {
        let mut b = IndexBuilder::new(4096);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut position = 0u32;
        let mut rel = 0u32;
        for round in 0..40 {
            for _ in 0..150 {
                let keys: Vec<Vec<u8>> = (0..8)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        format!("TRK{}", x % 700).into_bytes()
                    })
                    .collect();
                b.add_batch(position, rel, 0, 0, Some(keys.iter().map(Vec::as_slice)));
                position += 2000;
                rel += 8;
            }
            for k in (0..700).step_by(37 + round) {
                let hash = key_hash(format!("TRK{k}").as_bytes());
                let mut naive: Vec<u32> = b
                    .keys
                    .iter()
                    .filter(|e| e.hash == hash)
                    .map(|e| e.position)
                    .collect();
                naive.dedup();
                assert_eq!(b.key_positions(hash), naive, "round {round} key {k}");
            }
        }
        assert!(crate::locking::lock(&b.lookup.0).covered > LOOKUP_UNSORTED_ENTRIES_MAX);
        // A clone answers the same.
        let c = b.clone();
        let hash = key_hash(b"TRK5");
        assert_eq!(c.key_positions(hash), b.key_positions(hash));
    }
}
