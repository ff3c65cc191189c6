//! Dropline's runtime: workers pinned to cores that own partitions and run
//! the fused operator chain over the log, with bounded batch queues,
//! checkpoints, tick records, drop mode and a metrics registry.
//!
//! Not built yet: this crate is a placeholder for issue 5.
