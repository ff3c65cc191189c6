//! `dropline topics create|list`: topic administration on a data directory.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use dropline_log::{Log, LogConfig, TopicConfig};

/// Arguments of `dropline topics`.
#[derive(Debug, clap::Args)]
pub(crate) struct TopicsArgs {
    #[command(subcommand)]
    command: TopicsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum TopicsCommand {
    /// Create a topic (idempotent when the configuration is the same).
    Create {
        /// Topic name.
        name: String,
        /// Number of partitions (fixed for the topic's life).
        #[arg(long, default_value_t = 8)]
        partitions: u32,
        /// Delete sealed segments older than this many hours (default 30 days).
        #[arg(long)]
        retention_hours: Option<u64>,
        /// Delete the oldest sealed segments past this many bytes per partition.
        #[arg(long)]
        retention_bytes: Option<u64>,
        /// Data directory.
        #[arg(long, default_value = "./dropline-data")]
        data_dir: PathBuf,
    },
    /// List topics with their partitions, offsets and sizes.
    List {
        /// Data directory.
        #[arg(long, default_value = "./dropline-data")]
        data_dir: PathBuf,
        /// One JSON object per topic instead of a table.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn run(args: TopicsArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        TopicsCommand::Create {
            name,
            partitions,
            retention_hours,
            retention_bytes,
            data_dir,
        } => {
            let log = open(&data_dir)?;
            let mut config = TopicConfig::new(partitions);
            if let Some(hours) = retention_hours {
                config.retention_ms = Some(hours.saturating_mul(3_600_000));
            }
            config.retention_bytes = retention_bytes;
            log.create_topic(&name, config)
                .with_context(|| format!("creating topic {name}"))?;
            println!("topic {name}: {partitions} partitions");
            log.close()?;
        }
        TopicsCommand::List { data_dir, json } => {
            let log = open(&data_dir)?;
            for topic in log.topics() {
                let records: u64 = topic
                    .partitions
                    .iter()
                    .map(|p| p.next_offset - p.start_offset)
                    .sum();
                let bytes: u64 = topic.partitions.iter().map(|p| p.bytes).sum();
                if json {
                    let partitions: Vec<_> = topic
                        .partitions
                        .iter()
                        .map(|p| {
                            serde_json::json!({
                                "partition": p.partition,
                                "start_offset": p.start_offset,
                                "next_offset": p.next_offset,
                                "durable_offset": p.durable_offset,
                                "bytes": p.bytes,
                                "segments": p.segments,
                                "poisoned": p.poisoned,
                            })
                        })
                        .collect();
                    println!(
                        "{}",
                        serde_json::json!({
                            "topic": topic.name,
                            "partitions": partitions,
                            "retention_ms": topic.config.retention_ms,
                            "retention_bytes": topic.config.retention_bytes,
                            "records": records,
                            "bytes": bytes,
                        })
                    );
                } else {
                    println!(
                        "{:<28} partitions={:<4} records={:<12} bytes={}",
                        topic.name,
                        topic.partitions.len(),
                        records,
                        bytes
                    );
                }
            }
            log.close()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn open(data_dir: &std::path::Path) -> anyhow::Result<Log> {
    Log::open(LogConfig::new(data_dir.join("log")))
        .with_context(|| format!("opening the log in {}", data_dir.display()))
}
