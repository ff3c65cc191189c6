//! `dropline bench ...`: system benchmarks. Each prints a readable summary
//! and, as its last line, one JSON object.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

/// Arguments of `dropline bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Debug, clap::Subcommand)]
enum BenchCommand {
    /// Durable appends, replay, key lookups and crash recovery of the log.
    Log {
        /// Records to append.
        #[arg(long, default_value_t = 1_000_000)]
        records: u64,
        /// Bytes per record, key included.
        #[arg(long, default_value_t = 250)]
        record_bytes: usize,
        /// Concurrent producer threads.
        #[arg(long, default_value_t = 4)]
        producers: usize,
        /// Records per append.
        #[arg(long, default_value_t = 64)]
        batch: usize,
        /// Appends each producer keeps in flight (waiting for their
        /// fdatasync) before it waits for the oldest.
        #[arg(long, default_value_t = 1)]
        in_flight: usize,
        /// Partitions of the benchmark topic.
        #[arg(long, default_value_t = 1)]
        partitions: u32,
        /// `fsync` (default), `interval:<ms>` or `none`.
        #[arg(long, default_value = "fsync")]
        durability: String,
        /// I/O path of appends: `auto` (io_uring where the kernel allows
        /// it, else pwrite) or `pwrite`.
        #[arg(long, default_value = "auto")]
        io: String,
        /// Zero-fill segments ahead of the data (`false` for an A/B).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        preallocate: bool,
        /// Directory for the log and the disk reference files.
        #[arg(long, default_value = "target/bench-log")]
        dir: PathBuf,
    },
    /// A replicated cluster of child `serve` processes; the leader of
    /// partition 0 is killed halfway (single-node ingest as the reference).
    Cluster {
        /// Nodes.
        #[arg(long, default_value_t = 3)]
        nodes: u64,
        /// Events to send.
        #[arg(long, default_value_t = 200_000)]
        events: u64,
        /// Partitions of `carrier-events`.
        #[arg(long, default_value_t = 4)]
        partitions: u32,
        /// Records per batch.
        #[arg(long, default_value_t = 256)]
        batch: u32,
        /// Client linger time, in µs.
        #[arg(long, default_value_t = 2_000)]
        linger_us: u64,
        /// Directory for the nodes' data.
        #[arg(long, default_value = "target/bench-cluster")]
        dir: PathBuf,
    },
    /// Adapters sending 250-byte events over QUIC with durable acks.
    Ingest {
        /// Events to send in total.
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Concurrent adapters (one client each).
        #[arg(long, default_value_t = 2)]
        adapters: u32,
        /// Records per batch.
        #[arg(long, default_value_t = 4096)]
        batch: u32,
        /// Partitions of carrier-events.
        #[arg(long, default_value_t = 8)]
        partitions: u32,
        /// Largest UDP payload QUIC may use, in bytes.
        #[arg(long, default_value_t = 1452)]
        udp_payload_bytes: u16,
        /// Client linger time, in µs.
        #[arg(long, default_value_t = 5_000)]
        linger_us: u64,
        /// Directory for the log.
        #[arg(long, default_value = "target/bench-ingest")]
        dir: PathBuf,
    },
    /// Notification delivery on all channels against the provider
    /// simulator, a real SMTP server and a webhook receiver.
    Delivery {
        /// Notification intents to deliver.
        #[arg(long, default_value_t = 10_000)]
        notifications: u64,
        /// Partitions of orders and the notify topics.
        #[arg(long, default_value_t = 4)]
        partitions: u32,
        /// SMS long codes in the sender pool (1/s each).
        #[arg(long, default_value_t = 10)]
        long_codes: u32,
        /// SMS toll-free numbers in the pool (3/s each).
        #[arg(long, default_value_t = 2)]
        toll_free: u32,
        /// SMS short codes in the pool (100/s each).
        #[arg(long, default_value_t = 1)]
        short_codes: u32,
        /// Injected provider 500s, per million sends.
        #[arg(long, default_value_t = 0)]
        error_500_ppm: u32,
    },
    /// The whole operator chain on one core over generated drop input.
    Operators {
        /// Carrier events to process.
        #[arg(long, default_value_t = 5_000_000)]
        events: u64,
        /// Parcels in the drop (one order each).
        #[arg(long, default_value_t = 1_000_000)]
        shipments: u64,
        /// Workload seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Run the chain in drop mode.
        #[arg(long)]
        drop_mode: bool,
    },
    /// Tracking lookups with ETag hits over keep-alive HTTP, and SSE latency.
    Http {
        /// Shipments in the view store.
        #[arg(long, default_value_t = 100_000)]
        shipments: u32,
        /// Concurrent keep-alive connections.
        #[arg(long, default_value_t = 64)]
        connections: u32,
        /// Seconds of load.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Directory of the log (wiped first).
        #[arg(long, default_value = "target/bench-http")]
        dir: PathBuf,
    },
    /// The engine over a superdrop-shaped log, with durable outputs.
    Pipeline {
        /// Carrier events to generate (about 15 per shipment).
        #[arg(long, default_value_t = 2_400_000)]
        events: u64,
        /// Engine workers.
        #[arg(long, default_value_t = 2)]
        workers: u32,
        /// Partitions of the input topics.
        #[arg(long, default_value_t = 8)]
        partitions: u32,
        /// Records per appended input batch.
        #[arg(long, default_value_t = 1024)]
        batch: usize,
        /// Workload seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Data directory (wiped first).
        #[arg(long, default_value = "target/bench-pipeline")]
        dir: PathBuf,
    },
    /// A superdrop through the whole path: carrier webhooks, adapter,
    /// QUIC, log, engine, fan-out and delivery, in one process.
    E2e {
        /// Orders in the superdrop (10 to 20 scans each).
        #[arg(long, default_value_t = 200_000)]
        orders: u64,
        /// Traffic seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Partitions of the input topics.
        #[arg(long, default_value_t = 8)]
        partitions: u32,
        /// Engine workers.
        #[arg(long, default_value_t = 2)]
        workers: u32,
        /// Scans per carrier webhook body.
        #[arg(long, default_value_t = 256)]
        scans_per_webhook: usize,
        /// Webhooks in flight.
        #[arg(long, default_value_t = 256)]
        inflight: usize,
        /// Seconds delivery may take after processing to drain critical
        /// notifications.
        #[arg(long, default_value_t = 30)]
        delivery_wait_s: u64,
        /// SMS long codes in the sender pool (1/s each).
        #[arg(long, default_value_t = 10)]
        long_codes: u32,
        /// SMS toll-free numbers in the pool (3/s each).
        #[arg(long, default_value_t = 2)]
        toll_free: u32,
        /// SMS short codes in the pool (100/s each).
        #[arg(long, default_value_t = 1)]
        short_codes: u32,
        /// Data directory of the node (wiped first).
        #[arg(long, default_value = "target/bench-e2e")]
        dir: PathBuf,
    },
    /// `dropline replay --tracking-number` for random parcels of a log built
    /// by the real engine from a superdrop-shaped input.
    Forensics {
        /// Carrier events in the log.
        #[arg(long, default_value_t = 10_000_000)]
        events: u64,
        /// Parcels to replay.
        #[arg(long, default_value_t = 1000)]
        lookups: usize,
        /// Partitions of the input topics.
        #[arg(long, default_value_t = 8)]
        partitions: u32,
        /// Workload seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Data directory (wiped first).
        #[arg(long, default_value = "target/bench-forensics")]
        dir: PathBuf,
    },
    /// The same 250-byte records through Dropline's durable ingest and
    /// Redis Streams (appendfsync always and everysec), next to the disk's
    /// own fdatasync bandwidth. Needs Debian's redis-server.
    Compare {
        /// Records through each system.
        #[arg(long, default_value_t = 1_000_000)]
        records: u64,
        /// Concurrent Dropline adapters.
        #[arg(long, default_value_t = 2)]
        adapters: u32,
        /// Records per Dropline batch.
        #[arg(long, default_value_t = 4096)]
        batch: u32,
        /// Partitions of carrier-events.
        #[arg(long, default_value_t = 8)]
        partitions: u32,
        /// Scratch directory.
        #[arg(long, default_value = "target/bench-compare")]
        dir: PathBuf,
    },
}

pub(crate) fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        BenchCommand::Log {
            records,
            record_bytes,
            producers,
            batch,
            in_flight,
            partitions,
            durability,
            io,
            preallocate,
            dir,
        } => {
            let durability = dropline_bench::log::parse_durability(&durability)
                .with_context(|| format!("unknown durability {durability:?}"))?;
            let io_mode = dropline_bench::log::parse_io_mode(&io)
                .with_context(|| format!("unknown io mode {io:?} (auto or pwrite)"))?;
            let args = dropline_bench::log::LogBenchArgs {
                records,
                record_bytes,
                producers,
                batch_records: batch,
                in_flight,
                partitions,
                durability,
                io_mode,
                preallocate,
                dir,
                child_exe: std::env::current_exe().ok(),
            };
            let report = dropline_bench::log::run(&args)?;
            report.print();
        }
        BenchCommand::Cluster {
            nodes,
            events,
            partitions,
            batch,
            linger_us,
            dir,
        } => {
            let args = dropline_bench::cluster::ClusterBenchArgs {
                nodes,
                events,
                partitions,
                batch,
                linger_us,
                dir,
                exe: std::env::current_exe()?,
            };
            let report = dropline_bench::cluster::run(&args)?;
            report.print();
        }
        BenchCommand::Ingest {
            events,
            adapters,
            batch,
            partitions,
            udp_payload_bytes,
            linger_us,
            dir,
        } => {
            let args = dropline_bench::ingest::IngestBenchArgs {
                events,
                adapters,
                batch,
                partitions,
                udp_payload_bytes_max: udp_payload_bytes,
                linger_us,
                dir,
            };
            let report = dropline_bench::ingest::run(&args)?;
            report.print();
        }
        BenchCommand::Delivery {
            notifications,
            partitions,
            long_codes,
            toll_free,
            short_codes,
            error_500_ppm,
        } => {
            let args = dropline_bench::delivery::DeliveryBenchArgs {
                notifications,
                partitions,
                long_codes,
                toll_free,
                short_codes,
                error_500_ppm,
                ..Default::default()
            };
            let report = dropline_bench::delivery::run(&args)?;
            report.print();
        }
        BenchCommand::Operators {
            events,
            shipments,
            seed,
            drop_mode,
        } => {
            let args = dropline_bench::operators::OperatorsArgs {
                events,
                shipments,
                seed,
                drop_mode,
                ..Default::default()
            };
            let report = dropline_bench::operators::run(&args)?;
            report.print();
        }
        BenchCommand::Http {
            shipments,
            connections,
            seconds,
            dir,
        } => {
            let args = dropline_bench::http::HttpBenchArgs {
                shipments,
                connections,
                seconds,
                dir,
                ..Default::default()
            };
            let report = dropline_bench::http::run(&args)?;
            report.print();
        }
        BenchCommand::Pipeline {
            events,
            workers,
            partitions,
            batch,
            seed,
            dir,
        } => {
            let args = dropline_bench::pipeline::PipelineArgs {
                events,
                workers,
                partitions,
                batch_records: batch,
                dir,
                seed,
            };
            let report = dropline_bench::pipeline::run(&args)?;
            report.print();
        }
        BenchCommand::E2e {
            orders,
            seed,
            partitions,
            workers,
            scans_per_webhook,
            inflight,
            delivery_wait_s,
            long_codes,
            toll_free,
            short_codes,
            dir,
        } => {
            let args = dropline_bench::e2e::E2eArgs {
                orders,
                seed,
                partitions,
                workers,
                scans_per_webhook,
                inflight,
                delivery_wait_s,
                sms_pool: dropline_bench::delivery_rig::SmsPool {
                    long_codes,
                    toll_free,
                    short_codes,
                },
                dir: Some(dir),
            };
            let report = dropline_bench::e2e::run(&args)?;
            report.print();
        }
        BenchCommand::Forensics {
            events,
            lookups,
            partitions,
            seed,
            dir,
        } => {
            let args = dropline_bench::forensics::ForensicsArgs {
                events,
                lookups,
                partitions,
                dir,
                seed,
            };
            let report = dropline_bench::forensics::run(&args)?;
            report.print();
        }
        BenchCommand::Compare {
            records,
            adapters,
            batch,
            partitions,
            dir,
        } => {
            let args = dropline_bench::compare::CompareArgs {
                records,
                adapters,
                batch,
                partitions,
                dir,
            };
            let report = dropline_bench::compare::run(&args)?;
            report.print();
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Arguments of the hidden crash child used by `bench log`.
#[derive(Debug, clap::Args)]
pub(crate) struct AppendChildArgs {
    /// Log directory to append to.
    #[arg(long)]
    dir: PathBuf,
}

pub(crate) fn append_child(args: AppendChildArgs) -> anyhow::Result<ExitCode> {
    dropline_bench::log::append_until_killed(&args.dir)?;
    Ok(ExitCode::SUCCESS)
}
