//! Dropline's tracking domain, pure and deterministic: the canonical event
//! model, carrier normalizers, and the dedup, debounce, rules, exception and
//! fan-out operators. No I/O, no clock, no threads.

pub mod model;
pub mod normalize;
pub mod ops;
