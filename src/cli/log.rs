//! `dropline log dump|verify`: reading and checking a data directory.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use dropline_operators::model::CarrierEvent;
use dropline_operators::model::time::{format_rfc3339_ms, parse_rfc3339_ms};

/// Arguments of `dropline log`.
#[derive(Debug, clap::Args)]
pub(crate) struct LogArgs {
    #[command(subcommand)]
    command: LogCommand,
}

#[derive(Debug, clap::Subcommand)]
enum LogCommand {
    /// Print records of one partition from an offset or a time.
    Dump {
        /// Topic to read.
        #[arg(long)]
        topic: String,
        /// Partition to read.
        #[arg(long, default_value_t = 0)]
        partition: u32,
        /// First offset to print (default: the first retained one).
        #[arg(long, conflicts_with = "from_time")]
        from_offset: Option<u64>,
        /// First log time to print: RFC 3339 or epoch milliseconds.
        #[arg(long)]
        from_time: Option<String>,
        /// Records to print at most.
        #[arg(long, default_value_t = 100)]
        limit: u64,
        /// One JSON object per record.
        #[arg(long)]
        json: bool,
        /// Data directory.
        #[arg(long, default_value = "./dropline-data")]
        data_dir: PathBuf,
    },
    /// Check every batch of every segment; exit code 1 when anything is wrong.
    /// With `--compare A B`: check that two replicas' common prefixes are
    /// byte-identical and say how far each is behind (exit code 1 on a
    /// divergence).
    Verify {
        /// Data directory.
        #[arg(long, default_value = "./dropline-data")]
        data_dir: PathBuf,
        /// Two replicas' data (or log) directories to compare.
        #[arg(long, num_args = 2, value_names = ["DIR_A", "DIR_B"])]
        compare: Option<Vec<PathBuf>>,
        /// With --compare: one JSON object per partition.
        #[arg(long, requires = "compare")]
        json: bool,
    },
}

pub(crate) fn run(args: LogArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        LogCommand::Dump {
            topic,
            partition,
            from_offset,
            from_time,
            limit,
            json,
            data_dir,
        } => dump(
            &data_dir,
            &topic,
            partition,
            from_offset,
            from_time,
            limit,
            json,
        ),
        LogCommand::Verify {
            compare: Some(dirs),
            json,
            ..
        } => match dirs.as_slice() {
            [a, b] => super::log_compare::compare(a, b, json),
            _ => anyhow::bail!("--compare takes two directories"),
        },
        LogCommand::Verify { data_dir, .. } => verify(&data_dir),
    }
}

fn parse_time(text: &str) -> anyhow::Result<u64> {
    if let Ok(ms) = text.parse::<u64>() {
        return Ok(ms);
    }
    let ms = parse_rfc3339_ms(text)
        .with_context(|| format!("{text:?} is neither RFC 3339 nor epoch milliseconds"))?;
    u64::try_from(ms).context("time before 1970")
}

fn dump(
    data_dir: &std::path::Path,
    topic: &str,
    partition: u32,
    from_offset: Option<u64>,
    from_time: Option<String>,
    limit: u64,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let log = super::topics::open(data_dir)?;
    let part = log
        .partition(topic, partition)
        .with_context(|| format!("topic {topic} partition {partition}"))?;
    let mut offset = match (from_offset, from_time) {
        (Some(o), _) => o,
        (None, Some(t)) => match part.offset_for_time(parse_time(&t)?)? {
            Some(o) => o,
            None => part.durable_offset(),
        },
        (None, None) => part.start_offset(),
    };
    let end = part.durable_offset();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut printed = 0u64;
    'outer: while offset < end && printed < limit {
        let views = part.read(offset, 1 << 20)?;
        if views.is_empty() {
            break;
        }
        for view in &views {
            for record in view.records() {
                if record.offset < offset {
                    continue;
                }
                if printed >= limit {
                    break 'outer;
                }
                print_record(&mut out, &record, view.is_control(), json)?;
                printed += 1;
            }
            offset = view.last_offset() + 1;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn print_record(
    out: &mut impl Write,
    record: &dropline_log::RecordView<'_>,
    control: bool,
    json: bool,
) -> std::io::Result<()> {
    let key = String::from_utf8_lossy(record.key);
    let time = format_rfc3339_ms(i64::try_from(record.log_time_ms).unwrap_or(i64::MAX));
    let event = CarrierEvent::decode(record.value).ok();
    if json {
        let value = match &event {
            Some(e) => serde_json::to_value(e).unwrap_or(serde_json::Value::Null),
            None => serde_json::Value::String(escape(record.value)),
        };
        let line = serde_json::json!({
            "offset": record.offset,
            "log_time": time,
            "control": control,
            "key": key,
            "value": value,
        });
        writeln!(out, "{line}")
    } else {
        let value = match &event {
            Some(e) => format!(
                "{} {}/{} {:?} at {}",
                e.carrier,
                e.status,
                e.sub_status,
                e.raw_code,
                format_rfc3339_ms(e.occurred_at_ms)
            ),
            None => escape(record.value),
        };
        let kind = if control { " control" } else { "" };
        writeln!(out, "{:>10} {time}{kind} {key} {value}", record.offset)
    }
}

/// Printable form of an opaque value: UTF-8 text as is (truncated), bytes
/// as hex.
fn escape(value: &[u8]) -> String {
    const SHOWN_BYTES_MAX: usize = 200;
    let shown = &value[..value.len().min(SHOWN_BYTES_MAX)];
    let mut text = match std::str::from_utf8(shown) {
        Ok(t) if !t.chars().any(|c| c.is_control()) => t.to_string(),
        _ => shown.iter().map(|b| format!("{b:02x}")).collect(),
    };
    if value.len() > SHOWN_BYTES_MAX {
        text.push_str(&format!("... ({} bytes)", value.len()));
    }
    text
}

fn verify(data_dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    let dir = data_dir.join("log");
    let report =
        dropline_log::verify(&dir).with_context(|| format!("verifying {}", dir.display()))?;
    println!(
        "checked {} segments, {} batches, {} records in {}",
        report.segments,
        report.batches,
        report.records,
        dir.display()
    );
    if report.is_clean() {
        println!("no problems found");
        return Ok(ExitCode::SUCCESS);
    }
    for problem in &report.problems {
        println!("problem: {problem}");
    }
    println!("{} problem(s) found", report.problems.len());
    Ok(ExitCode::FAILURE)
}
