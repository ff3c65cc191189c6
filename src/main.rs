//! `dropline`: one binary for the node, the adapters, the simulators, the
//! load generator, forensics and benchmarks. Parsing lives here; the work
//! lives in the crates.

mod cli;
mod demo;
mod node;

/// mimalloc instead of the system allocator: the node, adapter and delivery
/// paths allocate many short-lived buffers from several threads (HTTP bodies,
/// JSON, QUIC frames), and glibc's malloc spent about 30 % of the CPU of an
/// end-to-end run in its own bookkeeping (docs/BENCHMARKS.md, "End to end").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::run()
}
