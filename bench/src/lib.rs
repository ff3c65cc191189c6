//! `dropline bench ...`: system benchmarks with references measured in the
//! same run, HDR latency histograms, and one JSON object as the last line.

pub mod cluster;
pub mod compare;
pub mod delivery;
pub mod delivery_rig;
pub mod disk;
pub mod e2e;
pub mod forensics;
pub mod http;
pub mod ingest;
pub mod log;
pub mod operators;
pub mod pipeline;
pub mod redis;
pub mod report;

pub use report::{Report, latency_histogram_us, max_rss_mb};
