//! The shipment table: a flat open-addressing index from tracking-number
//! hash to a slot in a dense record vector.
//!
//! Slots are one `u64` each (32-bit tag from the key hash, 32-bit record
//! index), probed linearly from a home computed by multiply-shift over any
//! capacity, so the index costs about 10 bytes per shipment at its 0.8 load
//! bound. Records live densely in a `Vec` with a free list, so the table's
//! load factor never multiplies the size of the records. Deletion shifts
//! entries back (no tombstones), so probes stay short under churn.

/// Largest load factor before the index grows, as a ratio.
const LOAD_NUM: usize = 4;
const LOAD_DEN: usize = 5;
/// Smallest index capacity.
const SLOTS_MIN: usize = 16;

#[derive(Debug, Default, Clone)]
pub(crate) struct Index {
    slots: Vec<u64>,
    len: usize,
}

#[inline]
fn tag_of(hash: u64) -> u32 {
    (hash >> 32) as u32
}

#[inline]
fn home(tag: u32, cap: usize) -> usize {
    ((u64::from(tag) * cap as u64) >> 32) as usize
}

impl Index {
    pub(crate) fn with_capacity(entries: usize) -> Index {
        let mut index = Index::default();
        index.reserve(entries);
        index
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<u64>()
    }

    /// Makes room for `entries` without growing.
    pub(crate) fn reserve(&mut self, entries: usize) {
        let needed = (entries * LOAD_DEN).div_ceil(LOAD_NUM).max(SLOTS_MIN);
        if needed > self.slots.len() {
            self.rebuild(needed);
        }
    }

    fn rebuild(&mut self, cap: usize) {
        let old = std::mem::replace(&mut self.slots, vec![0u64; cap]);
        for slot in old.into_iter().filter(|s| *s != 0) {
            let mut i = home((slot >> 32) as u32, cap);
            while self.slots[i] != 0 {
                i = if i + 1 == cap { 0 } else { i + 1 };
            }
            self.slots[i] = slot;
        }
    }

    /// Finds the record for `hash`; `is_match(idx)` confirms the full key.
    #[inline]
    pub(crate) fn find(&self, hash: u64, mut is_match: impl FnMut(u32) -> bool) -> Option<u32> {
        let cap = self.slots.len();
        if cap == 0 {
            return None;
        }
        let tag = tag_of(hash);
        let mut i = home(tag, cap);
        loop {
            let slot = self.slots[i];
            if slot == 0 {
                return None;
            }
            if (slot >> 32) as u32 == tag {
                let idx = (slot as u32).wrapping_sub(1);
                if is_match(idx) {
                    return Some(idx);
                }
            }
            i = if i + 1 == cap { 0 } else { i + 1 };
        }
    }

    /// Prefetches the slot where a probe for `hash` starts.
    #[inline]
    pub(crate) fn prefetch(&self, hash: u64) {
        let cap = self.slots.len();
        if cap != 0 {
            crate::ops::prefetch::prefetch_item(&self.slots, home(tag_of(hash), cap));
        }
    }

    /// The record of the first entry whose tag matches `hash`, without
    /// confirming the key: a guess, good enough to prefetch the record.
    #[inline]
    pub(crate) fn guess(&self, hash: u64) -> Option<u32> {
        self.find(hash, |_| true)
    }

    /// Inserts a new entry (the caller checked it is absent).
    pub(crate) fn insert(&mut self, hash: u64, idx: u32) {
        if (self.len + 1) * LOAD_DEN > self.slots.len() * LOAD_NUM {
            let grown = (self.slots.len() * 3 / 2).max(SLOTS_MIN);
            self.rebuild(grown);
        }
        let cap = self.slots.len();
        let tag = tag_of(hash);
        let mut i = home(tag, cap);
        while self.slots[i] != 0 {
            i = if i + 1 == cap { 0 } else { i + 1 };
        }
        self.slots[i] = (u64::from(tag) << 32) | u64::from(idx.wrapping_add(1));
        self.len += 1;
    }

    /// Removes the entry pointing at `idx` (found through `hash`).
    pub(crate) fn remove(&mut self, hash: u64, idx: u32) -> bool {
        let cap = self.slots.len();
        if cap == 0 {
            return false;
        }
        let want = (u64::from(tag_of(hash)) << 32) | u64::from(idx.wrapping_add(1));
        let mut i = home(tag_of(hash), cap);
        loop {
            let slot = self.slots[i];
            if slot == 0 {
                return false;
            }
            if slot == want {
                break;
            }
            i = if i + 1 == cap { 0 } else { i + 1 };
        }
        // Backward-shift deletion: move later entries of the cluster into the
        // hole when their home is not between the hole and their position.
        let mut hole = i;
        let mut j = i;
        loop {
            j = if j + 1 == cap { 0 } else { j + 1 };
            let slot = self.slots[j];
            if slot == 0 {
                break;
            }
            let h = home((slot >> 32) as u32, cap);
            let between = if hole <= j {
                hole < h && h <= j
            } else {
                hole < h || h <= j
            };
            if !between {
                self.slots[hole] = slot;
                hole = j;
            }
        }
        self.slots[hole] = 0;
        self.len -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn matches_a_model_under_churn() {
        let mut index = Index::default();
        let mut model: HashMap<u64, u32> = HashMap::new();
        let mut x: u64 = 1;
        for step in 0..20_000u32 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            // Few distinct keys, so removals and re-inserts happen often;
            // keys share tags to exercise the full-key check.
            let key = (x >> 50) | ((x >> 60) << 32);
            let present = index.find(key, |idx| model.get(&key) == Some(&idx));
            assert_eq!(present, model.get(&key).copied(), "step {step}");
            if let Some(idx) = present {
                if step % 3 == 0 {
                    assert!(index.remove(key, idx));
                    model.remove(&key);
                }
            } else {
                index.insert(key, step);
                model.insert(key, step);
            }
            assert_eq!(index.len(), model.len());
        }
        for (k, v) in &model {
            assert_eq!(index.find(*k, |idx| idx == *v), Some(*v));
        }
    }
}
