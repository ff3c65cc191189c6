//! Runs the delivery benchmark without the CLI:
//! `cargo run -p dropline-bench --example bench_delivery -- [--notifications N]
//! [--partitions P] [--long-codes L] [--toll-free T] [--short-codes S] [--error-500-ppm E]`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = dropline_bench::delivery::DeliveryBenchArgs::default();
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let [flag, value] = pair else {
            eprintln!("usage: bench_delivery [--flag value]...");
            return ExitCode::from(2);
        };
        let Ok(n) = value.parse::<u64>() else {
            eprintln!("{flag}: not a number: {value}");
            return ExitCode::from(2);
        };
        let small = u32::try_from(n).unwrap_or(u32::MAX);
        match flag.as_str() {
            "--notifications" => args.notifications = n,
            "--partitions" => args.partitions = small,
            "--long-codes" => args.long_codes = small,
            "--toll-free" => args.toll_free = small,
            "--short-codes" => args.short_codes = small,
            "--error-500-ppm" => args.error_500_ppm = small,
            _ => {
                eprintln!("unknown flag {flag}");
                return ExitCode::from(2);
            }
        }
    }
    match dropline_bench::delivery::run(&args) {
        Ok(report) => {
            report.print();
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench delivery: {e}");
            ExitCode::FAILURE
        }
    }
}
