//! The text arena: each shipment's tracking number, order id and buyer id,
//! stored once, back to back, as length-prefixed strings.
//!
//! Outputs need these strings (intents name the order and buyer; timer
//! outputs name the parcel), but fixed inline fields sized for the longest
//! id would double the state. Blocks freed by an order update or a removed
//! shipment are counted as dead; the owner compacts the arena when dead
//! bytes exceed live ones. The layout never affects outputs.

/// Largest arena, bytes (block positions are u32).
pub(crate) const TEXT_ARENA_BYTES_MAX: usize = u32::MAX as usize;

#[derive(Debug, Default, Clone)]
pub(crate) struct TextArena {
    pub(crate) bytes: Vec<u8>,
    pub(crate) dead: usize,
}

/// The strings of one block, to store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Texts<'a> {
    pub(crate) tracking_number: &'a str,
    pub(crate) order_id: &'a str,
    pub(crate) buyer_id: &'a str,
}

/// The strings of one block as stored: UTF-8 by construction (copied whole
/// from `&str`s bounded below 256 bytes), so reads skip re-validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TextBytes<'a> {
    pub(crate) tracking_number: &'a [u8],
    pub(crate) order_id: &'a [u8],
    pub(crate) buyer_id: &'a [u8],
}

impl TextArena {
    pub(crate) fn with_capacity(bytes: usize) -> TextArena {
        TextArena {
            bytes: Vec::with_capacity(bytes),
            dead: 0,
        }
    }

    /// Appends a block; `None` when the arena is at its size limit.
    pub(crate) fn push(&mut self, t: Texts<'_>) -> Option<u32> {
        let at = u32::try_from(self.bytes.len()).ok()?;
        let need = 3 + t.tracking_number.len() + t.order_id.len() + t.buyer_id.len();
        if self.bytes.len() + need > TEXT_ARENA_BYTES_MAX {
            return None;
        }
        for s in [t.tracking_number, t.order_id, t.buyer_id] {
            // Callers bound each string to at most 64 bytes.
            self.bytes.push(s.len().min(255) as u8);
            self.bytes
                .extend_from_slice(&s.as_bytes()[..s.len().min(255)]);
        }
        Some(at)
    }

    /// Prefetches the block at `at` (blocks are at most a few dozen bytes:
    /// one or two cache lines).
    #[inline]
    pub(crate) fn prefetch(&self, at: u32) {
        let at = at as usize;
        if at < self.bytes.len() {
            let p = self.bytes.as_ptr().wrapping_add(at);
            crate::ops::prefetch::prefetch(p);
            crate::ops::prefetch::prefetch(p.wrapping_add(63));
        }
    }

    /// Length of the block at `at`.
    pub(crate) fn block_len(&self, at: u32) -> usize {
        let mut pos = at as usize;
        for _ in 0..3 {
            let Some(&len) = self.bytes.get(pos) else {
                return 0;
            };
            pos += 1 + usize::from(len);
        }
        pos - at as usize
    }

    /// The strings of the block at `at` (empty if it is invalid).
    #[inline]
    pub(crate) fn get(&self, at: u32) -> TextBytes<'_> {
        let mut pos = at as usize;
        let mut out: [&[u8]; 3] = [&[]; 3];
        for slot in &mut out {
            let Some(&len) = self.bytes.get(pos) else {
                break;
            };
            let start = pos + 1;
            let end = (start + usize::from(len)).min(self.bytes.len());
            *slot = &self.bytes[start..end];
            pos = end;
        }
        TextBytes {
            tracking_number: out[0],
            order_id: out[1],
            buyer_id: out[2],
        }
    }

    /// Marks the block at `at` as dead.
    pub(crate) fn free(&mut self, at: u32) {
        let len = self.block_len(at);
        if at as usize + len == self.bytes.len() {
            self.bytes.truncate(at as usize);
        } else {
            self.dead += len;
        }
    }

    /// Whether compaction would pay off.
    pub(crate) fn wants_compaction(&self) -> bool {
        self.dead > 1 << 16 && self.dead * 2 > self.bytes.len()
    }

    pub(crate) fn bytes_held(&self) -> usize {
        self.bytes.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_round_trip() {
        let mut arena = TextArena::default();
        let t = Texts {
            tracking_number: "1Z999",
            order_id: "ORD-1",
            buyer_id: "",
        };
        let a = arena.push(t).unwrap();
        let b = arena
            .push(Texts {
                tracking_number: "9400",
                order_id: "",
                buyer_id: "B7",
            })
            .unwrap();
        let got = arena.get(a);
        assert_eq!(
            (got.tracking_number, got.order_id, got.buyer_id),
            (&b"1Z999"[..], &b"ORD-1"[..], &b""[..])
        );
        assert_eq!(arena.get(b).buyer_id, b"B7");
        assert_eq!(arena.block_len(a), 3 + 5 + 5);
        arena.free(a);
        assert_eq!(arena.dead, 13);
        arena.free(b);
        assert_eq!(arena.dead, 13, "the last block is truncated away");
        assert_eq!(arena.bytes.len(), 13);
    }
}
