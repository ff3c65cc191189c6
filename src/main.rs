//! `dropline`: one binary for the node, the adapters, the simulators, the
//! load generator, forensics and benchmarks. Parsing lives here; the work
//! lives in the crates.

mod cli;
mod demo;
mod node;

fn main() -> std::process::ExitCode {
    cli::run()
}
