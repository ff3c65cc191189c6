//! `dropline bench operators`: the whole operator chain (dedup, debounce,
//! rules with enrichment, exceptions, fan-out, shipment view, decisions) on
//! one core over a generated superdrop.
//!
//! The workload is generated and encoded in batches outside the timed
//! region, as the log would hold it (rkyv archives behind a version byte).
//! Three figures are timed: the chain alone over events already validated
//! (`events_per_s`), and validation of the archives (what the engine pays
//! per event to read them in place), reported separately and combined in
//! `events_per_s_with_access`; encoding the outputs as the engine does is
//! timed apart too (`encode_ns_per_event`, and everything together in
//! `events_per_s_with_access_and_encode`). Consecutive events go to the
//! chain in runs of at most `EVENTS_PER_CALL` through its batch entry point
//! (`Chain::on_events`, which prefetches the state of the next events), and
//! output buffers are drained between runs, as the engine does. State size
//! is taken at the peak number of active shipments and counts everything
//! the chain holds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dropline_loadgen::workload::{WorkItem, Workload, WorkloadConfig};
use dropline_operators::model::{
    ArchivedCarrierEvent, CarrierEvent, EventDecodeError, ShipmentOrder,
};
use dropline_operators::ops::{Chain, ChainConfig, EventInput, Outputs, Rules, SourceRef};

use crate::report::{Report, max_rss_mb};

/// Arguments of `dropline bench operators` (the CLI maps its flags here).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorsArgs {
    /// Carrier events to process.
    pub events: u64,
    /// Parcels in the drop (one order each).
    pub shipments: u64,
    /// Workload seed.
    pub seed: u64,
    /// Records per generated batch.
    pub batch_records: usize,
    /// Run the chain in drop mode.
    pub drop_mode: bool,
    /// Hand events to the chain one at a time (`Chain::on_event`, no
    /// prefetching) instead of in runs, to measure what the batch entry
    /// point gains.
    pub per_event: bool,
}

impl Default for OperatorsArgs {
    fn default() -> Self {
        OperatorsArgs {
            events: 10_000_000,
            shipments: 1_000_000,
            seed: WorkloadConfig::default().seed,
            batch_records: 65_536,
            drop_mode: false,
            per_event: false,
        }
    }
}

/// A failure of the operators bench.
#[derive(Debug, thiserror::Error)]
pub enum OperatorsBenchError {
    /// A generated event did not validate (a bug in the generator or model).
    #[error("generated event {index} does not decode: {source}")]
    Decode {
        /// Index of the event in the run.
        index: u64,
        /// Why.
        source: EventDecodeError,
    },
    /// Nothing to measure.
    #[error("the run processed no events (events = {events}, shipments = {shipments})")]
    Empty {
        /// Requested events.
        events: u64,
        /// Requested shipments.
        shipments: u64,
    },
}

/// Decisions buffered before the harness drains the outputs (the engine
/// drains after each call into the chain; a small drain keeps outputs in
/// cache).
const OUTPUT_DRAIN_DECISIONS: usize = 1024;

/// Most consecutive events handed to the chain in one call (the engine
/// hands over an input batch's events in calls of the same size).
const EVENTS_PER_CALL: usize = 256;

enum Record {
    Order(Box<ShipmentOrder>),
    Event { start: usize, end: usize },
    Tick,
}

#[derive(Default)]
struct Totals {
    events: u64,
    orders: u64,
    ticks: u64,
    intents: u64,
    decisions: u64,
    views: u64,
    escalations: u64,
    dead_letters: u64,
    /// Bytes of the outputs' encodings (what the engine appends).
    encoded_bytes: u64,
    /// Time spent draining: encoding every output as the engine does.
    encode_time: Duration,
    encoded: Vec<u8>,
}

impl Totals {
    /// Encodes every output into one reused buffer, as the engine does
    /// before appending, then clears the outputs.
    fn drain(&mut self, out: &mut Outputs) {
        let t = Instant::now();
        let buf = &mut self.encoded;
        buf.clear();
        for v in &out.views {
            v.encode(buf);
        }
        for i in &out.intents {
            i.encode(buf);
        }
        for e in &out.escalations {
            e.encode(buf);
        }
        for d in &out.decisions {
            d.encode(buf);
        }
        for d in &out.dead_letters {
            d.encode(buf);
        }
        self.encoded_bytes += buf.len() as u64;
        self.intents += out.intents.len() as u64;
        self.decisions += out.decisions.len() as u64;
        self.views += out.views.len() as u64;
        self.escalations += out.escalations.len() as u64;
        self.dead_letters += out.dead_letters.len() as u64;
        out.clear();
        self.encode_time += t.elapsed();
    }
}

/// Runs the bench and returns its report.
pub fn run(args: &OperatorsArgs) -> Result<Report, OperatorsBenchError> {
    let started = Instant::now();
    let mut workload = Workload::new(WorkloadConfig {
        seed: args.seed,
        shipments: args.shipments,
        events_max: args.events,
        ..WorkloadConfig::default()
    });
    let shipments = u32::try_from(args.shipments).unwrap_or(u32::MAX - 1);
    let config = ChainConfig {
        shipments_initial: shipments,
        shipments_max: shipments.max(ChainConfig::default().shipments_max),
        ..ChainConfig::default()
    };
    let mut chain = Chain::new(config, Arc::new(Rules::default_rules()));
    let mut out = Outputs::new();
    if args.drop_mode {
        chain.set_drop_mode(true, 0, &mut out);
    }
    let setup = started.elapsed();

    let mut totals = Totals::default();
    let (mut chain_time, mut access_time, mut generate_time) =
        (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut records: Vec<(u64, Record)> = Vec::with_capacity(args.batch_records);
    let mut bytes: Vec<u8> = Vec::new();
    let (mut peak_shipments, mut peak_state_bytes) = (0usize, 0usize);
    let mut offset = 0u64;
    loop {
        let t = Instant::now();
        records.clear();
        bytes.clear();
        for (log_ms, item) in workload.by_ref().take(args.batch_records.max(1)) {
            let record = match item {
                WorkItem::Order(o) => Record::Order(Box::new(o)),
                WorkItem::Event(e) => {
                    let start = bytes.len();
                    e.encode_into(&mut bytes);
                    Record::Event {
                        start,
                        end: bytes.len(),
                    }
                }
                WorkItem::Tick => Record::Tick,
            };
            records.push((log_ms, record));
        }
        generate_time += t.elapsed();
        if records.is_empty() {
            break;
        }

        let t = Instant::now();
        let mut refs: Vec<&ArchivedCarrierEvent> = Vec::with_capacity(records.len());
        for (_, r) in &records {
            if let Record::Event { start, end } = r {
                let event = CarrierEvent::access(&bytes[*start..*end]).map_err(|source| {
                    OperatorsBenchError::Decode {
                        index: totals.events + refs.len() as u64,
                        source,
                    }
                })?;
                refs.push(event);
            }
        }
        access_time += t.elapsed();

        let t = Instant::now();
        let mut next_event = 0;
        let mut run: Vec<EventInput<'_>> = Vec::with_capacity(EVENTS_PER_CALL);
        for (log_ms, r) in &records {
            let run_max = if args.per_event { 1 } else { EVENTS_PER_CALL };
            if !matches!(r, Record::Event { .. }) || run.len() >= run_max {
                chain.on_events(&run, &mut out);
                run.clear();
                if out.decisions.len() >= OUTPUT_DRAIN_DECISIONS {
                    totals.drain(&mut out);
                }
            }
            match r {
                Record::Order(o) => {
                    chain.on_order(SourceRef::order(0, offset, *log_ms), o.as_ref(), &mut out);
                    totals.orders += 1;
                }
                Record::Event { .. } => {
                    run.push(EventInput {
                        source: SourceRef::event(0, offset, *log_ms),
                        event: refs[next_event],
                    });
                    next_event += 1;
                    totals.events += 1;
                }
                Record::Tick => {
                    chain.on_tick(*log_ms, &mut out);
                    totals.ticks += 1;
                }
            }
            offset += 1;
        }
        chain.on_events(&run, &mut out);
        totals.drain(&mut out);
        chain_time += t.elapsed();

        if chain.shipments() >= peak_shipments {
            peak_shipments = chain.shipments();
            peak_state_bytes = chain.state_bytes();
        }
    }
    if totals.events == 0 {
        return Err(OperatorsBenchError::Empty {
            events: args.events,
            shipments: args.shipments,
        });
    }

    let encode_s = totals.encode_time.as_secs_f64();
    let chain_s = (chain_time.saturating_sub(totals.encode_time)).as_secs_f64();
    let access_s = access_time.as_secs_f64();
    let events = totals.events as f64;
    let stats = *chain.stats();
    let mut report = Report::new("operators");
    report
        .set("events", totals.events)
        .set("shipments", args.shipments)
        .set("orders", totals.orders)
        .set("ticks", totals.ticks)
        .set_f64("events_per_s", events / chain_s, 0)
        .set_f64("ns_per_event", chain_s * 1e9 / events, 1)
        .set_f64("events_per_s_with_access", events / (chain_s + access_s), 0)
        .set_f64("access_ns_per_event", access_s * 1e9 / events, 1)
        .set_f64("encode_ns_per_event", encode_s * 1e9 / events, 1)
        .set_f64(
            "events_per_s_with_access_and_encode",
            events / (chain_s + access_s + encode_s),
            0,
        )
        .set_f64(
            "output_bytes_per_event",
            totals.encoded_bytes as f64 / events,
            1,
        )
        .set("notifications", totals.intents)
        .set("decisions", totals.decisions)
        .set("view_changes", totals.views)
        .set("escalations", totals.escalations)
        .set("dead_letters", totals.dead_letters)
        .set("duplicates", stats.duplicates)
        .set("debounced", stats.debounced)
        .set("late", stats.late)
        .set("active_shipments_peak", peak_shipments as u64)
        .set_f64(
            "state_bytes_per_shipment",
            peak_state_bytes as f64 / peak_shipments.max(1) as f64,
            1,
        )
        .set_f64(
            "state_mb_peak",
            peak_state_bytes as f64 / (1 << 20) as f64,
            1,
        )
        .set("drop_mode", args.drop_mode)
        .set("per_event", args.per_event)
        .set_f64(
            "generate_s",
            generate_time.as_secs_f64() + setup.as_secs_f64(),
            2,
        )
        .set_f64("chain_s", chain_s, 3);
    if let Some(rss) = max_rss_mb() {
        report.set_f64("max_rss_mb", rss, 1);
    }
    report.note("one core; the chain alone is timed (generation and encoding are not)");
    report.note("events_per_s_with_access adds rkyv validation of each archived event");
    report.note(
        "encode_ns_per_event: encoding every output as the engine does (not in events_per_s)",
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_run_reports_the_required_fields() {
        let report = run(&OperatorsArgs {
            events: 20_000,
            shipments: 2_000,
            batch_records: 4096,
            ..OperatorsArgs::default()
        })
        .unwrap();
        for key in [
            "events",
            "events_per_s",
            "notifications",
            "state_bytes_per_shipment",
        ] {
            assert!(report.get(key).is_some(), "{key}");
        }
        assert_eq!(report.get("events").unwrap(), 20_000);
        assert!(report.get("notifications").unwrap().as_u64().unwrap() > 0);
        let text = report.render();
        let json: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        assert_eq!(json["bench"], "operators");
    }
}
