//! Runs the HTTP benchmark without the CLI:
//! `cargo run --release -p dropline-bench --example bench_http -- [--shipments N]
//! [--connections K] [--seconds S] [--sse-probes P] [--server-threads T] [--client-threads T]`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = dropline_bench::http::HttpBenchArgs::default();
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut it = argv.chunks(2);
    for pair in &mut it {
        let [flag, value] = pair else {
            eprintln!("usage: bench_http [--flag value]...");
            return ExitCode::from(2);
        };
        let n: u64 = match value.parse() {
            Ok(n) => n,
            Err(_) => {
                eprintln!("{flag}: not a number: {value}");
                return ExitCode::from(2);
            }
        };
        match flag.as_str() {
            "--shipments" => args.shipments = u32::try_from(n).unwrap_or(u32::MAX),
            "--connections" => args.connections = u32::try_from(n).unwrap_or(u32::MAX),
            "--seconds" => args.seconds = n,
            "--sse-probes" => args.sse_probes = u32::try_from(n).unwrap_or(u32::MAX),
            "--server-threads" => args.server_threads = usize::try_from(n).unwrap_or(1),
            "--client-threads" => args.client_threads = usize::try_from(n).unwrap_or(1),
            other => {
                eprintln!("unknown flag {other}");
                return ExitCode::from(2);
            }
        }
    }
    match dropline_bench::http::run(&args) {
        Ok(report) => {
            report.print();
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench http: {e}");
            ExitCode::FAILURE
        }
    }
}
