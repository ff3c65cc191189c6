//! Software prefetch of per-shipment state.
//!
//! Why: with a million active shipments, the table slot, the record and
//! the text block of each event are cache misses, and the chain would wait
//! on main memory three times per event. The batch entry point
//! ([`Chain::on_events`](super::Chain::on_events)) knows the next events'
//! tracking numbers, so it asks for their state a few events ahead and the
//! loads overlap with the work on earlier events. A prefetch is only a
//! hint: it never changes what the chain computes.

/// Asks the CPU to bring the cache line holding `p` into cache.
///
/// `p` may be any address, valid or not: nothing is read through it.
#[inline(always)]
#[expect(
    unsafe_code,
    reason = "the prefetch intrinsic is an unsafe fn; it performs no access"
)]
pub(crate) fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `prefetcht0` is a hint that performs no architecturally
    // visible memory access: it cannot fault, even on an invalid or
    // unmapped address, and it reads or writes no Rust-visible memory, so
    // no aliasing or validity rule is involved. SSE (which provides it) is
    // part of the x86_64 baseline, so the instruction always exists.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Prefetches the cache lines of `slice[i]` (nothing if out of bounds).
#[inline(always)]
pub(crate) fn prefetch_item<T>(slice: &[T], i: usize) {
    if i < slice.len() {
        let p = slice.as_ptr().wrapping_add(i).cast::<u8>();
        let size = std::mem::size_of::<T>();
        let mut off = 0;
        while off < size {
            prefetch(p.wrapping_add(off));
            off += 64;
        }
        // The last byte's line, when the item straddles one more line.
        prefetch(p.wrapping_add(size.saturating_sub(1)));
    }
}
