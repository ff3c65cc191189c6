//! `dropline normalize --carrier C FILE`: a carrier payload in, canonical
//! events out as JSON lines. Exit code 1 with the reason on a malformed file.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use dropline_operators::model::Carrier;
use dropline_operators::normalize::normalize_to_json_lines;

/// Arguments of `dropline normalize`.
#[derive(Debug, clap::Args)]
pub(crate) struct NormalizeArgs {
    /// Carrier whose format the file is in: ups, fedex, usps or dhl.
    #[arg(long, value_parser = parse_carrier)]
    carrier: Carrier,
    /// A polling response or webhook body; `-` reads standard input.
    file: PathBuf,
}

fn parse_carrier(text: &str) -> Result<Carrier, String> {
    Carrier::parse(text).ok_or_else(|| format!("unknown carrier {text:?} (ups, fedex, usps, dhl)"))
}

pub(crate) fn run(args: NormalizeArgs) -> anyhow::Result<ExitCode> {
    let payload = if args.file.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)?;
        buf
    } else {
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match normalize_to_json_lines(args.carrier, &payload, &mut out) {
        Ok(_) => {
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            out.flush()?;
            eprintln!(
                "dropline normalize: {}: not a valid {} payload: {err}",
                args.file.display(),
                args.carrier
            );
            Ok(ExitCode::FAILURE)
        }
    }
}
