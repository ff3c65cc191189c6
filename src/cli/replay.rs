//! `dropline replay`: a parcel's whole history and the reason for every
//! decision about it, or a time range re-fed to a consumer group.
//!
//! It reads the data directory directly, so it runs while the node is
//! stopped (the log admits one process at a time). Against a running node,
//! the same report is served at `/v1/forensics/{tracking_number}`, and
//! `--node` fetches it from there.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use dropline_adapters::forensics::{
    ParcelHistory, ReplayOptions, parse_time, render_human, replay_parcel, replay_topic_range,
};

/// Arguments of `dropline replay`.
#[derive(Debug, clap::Args)]
pub(crate) struct ReplayArgs {
    /// The parcel to explain.
    #[arg(long, required_unless_present_any = ["topic", "dead_letters"])]
    tracking_number: Option<String>,
    /// Show the parcel's state as of this time (RFC 3339 or epoch ms).
    #[arg(long, requires = "tracking_number")]
    at: Option<String>,
    /// Re-feed this topic's range to a consumer group instead.
    #[arg(long, conflicts_with = "tracking_number", requires_all = ["from", "group"])]
    topic: Option<String>,
    /// Start of the range (RFC 3339 or epoch ms).
    #[arg(long)]
    from: Option<String>,
    /// End of the range (reported as stop offsets).
    #[arg(long)]
    to: Option<String>,
    /// Consumer group whose offsets are reset to the range's start.
    #[arg(long)]
    group: Option<String>,
    /// Print JSON instead of the readable report.
    #[arg(long)]
    json: bool,
    /// Data directory (the node must be stopped), or with `--node` the
    /// one holding the node's `admin.token`.
    #[arg(long, default_value = "./dropline-data")]
    data_dir: PathBuf,
    /// Ask a running node instead (`http://127.0.0.1:7480`); forensics is
    /// an admin route, so this needs the admin token.
    #[arg(long)]
    node: Option<String>,
    /// Admin token for `--node` (default: `admin.token` in `--data-dir`).
    #[arg(long)]
    token: Option<String>,
    /// Re-send dead-lettered notifications: append those not replayed yet
    /// back to their notify topics (the node must be stopped; the delivery
    /// worker sends them on its next start, under the same idempotency
    /// keys).
    #[arg(long)]
    dead_letters: bool,
    /// With `--dead-letters`: only this channel (`sms`, `email`, `push`,
    /// `webhook`).
    #[arg(long, requires = "dead_letters")]
    channel: Option<String>,
    /// With `--dead-letters`: start at this dead-letter offset (replays
    /// older ones again) instead of after the last replay.
    #[arg(long, requires = "dead_letters")]
    from_offset: Option<u64>,
}

fn time(text: &str) -> anyhow::Result<u64> {
    parse_time(text).with_context(|| format!("{text:?} is neither RFC 3339 nor epoch milliseconds"))
}

pub(crate) fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    if args.dead_letters {
        return replay_dead_letters(&args);
    }
    if let Some(topic) = &args.topic {
        let (Some(from), Some(group)) = (&args.from, &args.group) else {
            anyhow::bail!("--topic needs --from and --group");
        };
        let to = args.to.as_deref().map(time).transpose()?;
        let log = super::topics::open(&args.data_dir)?;
        let reset = replay_topic_range(&log, topic, time(from)?, to, group)?;
        if args.json {
            println!("{}", serde_json::to_string(&reset)?);
        } else {
            println!(
                "group {} reset to {} from {} ({} records to re-read)",
                reset.group, reset.topic, from, reset.records
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let Some(number) = &args.tracking_number else {
        anyhow::bail!("give --tracking-number or --topic");
    };
    let at = args.at.as_deref().map(time).transpose()?;
    let history: ParcelHistory = match &args.node {
        Some(base) => {
            let mut url = format!("{}/v1/forensics/{number}", base.trim_end_matches('/'));
            if let Some(at) = at {
                url.push_str(&format!("?at={at}"));
            }
            let token = super::admin::admin_token(args.token.as_deref(), &args.data_dir)?;
            super::runtime()?.block_on(async {
                let response = reqwest::Client::new()
                    .get(&url)
                    .bearer_auth(token)
                    .send()
                    .await
                    .with_context(|| format!("GET {url}"))?;
                let status = response.status();
                if !status.is_success() {
                    anyhow::bail!(
                        "GET {url}: {status}: {}",
                        response.text().await.unwrap_or_default()
                    );
                }
                Ok(response.json::<ParcelHistory>().await?)
            })?
        }
        None => {
            let log = super::topics::open(&args.data_dir)?;
            replay_parcel(&log, number, at, &ReplayOptions::default())?
        }
    };
    if args.json {
        println!("{}", serde_json::to_string(&history)?);
    } else {
        print!("{}", render_human(&history));
    }
    Ok(ExitCode::SUCCESS)
}

fn replay_dead_letters(args: &ReplayArgs) -> anyhow::Result<ExitCode> {
    use dropline_adapters::delivery::{DEAD_LETTER_TOPIC, replay_dead_letters};
    let log = std::sync::Arc::new(super::topics::open(&args.data_dir)?);
    if log.partition(DEAD_LETTER_TOPIC, 0).is_err() {
        println!("no dead letters ({DEAD_LETTER_TOPIC} does not exist)");
        return Ok(ExitCode::SUCCESS);
    }
    let channel = args.channel.clone();
    let report = replay_dead_letters(&log, DEAD_LETTER_TOPIC, args.from_offset, |l| {
        channel.as_deref().is_none_or(|c| l.channel.as_str() == c)
    })?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "dead letters: {} read, {} re-sent to their notify topics, {} skipped; next replay starts at offset {}",
            report.read, report.replayed, report.skipped, report.next_offset
        );
    }
    Ok(ExitCode::SUCCESS)
}
