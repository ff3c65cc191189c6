//! `dropline up`: the embedded single-node default.

use std::process::ExitCode;

/// Arguments of `dropline up`.
#[derive(Debug, clap::Args)]
pub(crate) struct UpArgs {
    /// Data directory.
    #[arg(long, default_value = "./dropline-data")]
    data_dir: std::path::PathBuf,
}

pub(crate) fn run(args: UpArgs) -> anyhow::Result<ExitCode> {
    let _ = args.data_dir;
    println!("dropline up: the embedded node with its demo drop is not assembled yet.");
    println!("Available now: see `dropline --help`.");
    Ok(ExitCode::SUCCESS)
}
