//! The production processor: the operator chain behind the engine's
//! [`Processor`] trait.
//!
//! Why an adapter: the engine speaks log records and output topics, the
//! chain speaks archived events, orders and typed outputs. This module
//! decodes inputs (events are read in place from the mapped segment, with no
//! copy), calls the chain, and encodes each output into its topic keyed by
//! tracking number. Inputs the chain cannot even decode are dead-lettered
//! here, with the source and the reason, and never dropped.

use std::sync::Arc;

use dropline_operators::model::{CarrierEvent, Channel, ShipmentOrder};
use dropline_operators::ops::outputs::{InputTopic, Outputs, SourceRef as ChainSource};
use dropline_operators::ops::{Chain, ChainConfig, EventInput, Rules, SnapshotError};

use crate::control::ControlRecord;
use crate::input::{InputKind, SourceRef};
use crate::output::{OutputSink, OutputTopic};
use crate::processor::{DataRecord, Processor, ProcessorFactory};

/// Most events handed to the chain per call: enough for its prefetching to
/// run ahead, few enough that the outputs drained after each call stay in
/// cache.
const EVENTS_PER_CALL: usize = 256;

/// Runs the operator chain of one partition.
pub struct ChainProcessor {
    chain: Chain,
    outputs: Outputs,
    config: ChainConfig,
    dead_letters_decode_total: u64,
}

impl std::fmt::Debug for ChainProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainProcessor")
            .field("partition", &self.config.partition)
            .field("shipments", &self.chain.shipments())
            .field("state_bytes", &self.chain.state_bytes())
            .finish_non_exhaustive()
    }
}

impl ChainProcessor {
    /// The chain.
    pub fn chain(&self) -> &Chain {
        &self.chain
    }

    /// Inputs dead-lettered here because they could not be decoded.
    pub fn dead_letters_decode_total(&self) -> u64 {
        self.dead_letters_decode_total
    }

    /// Moves the chain's outputs into the engine's sink, each encoded in its
    /// topic and keyed by tracking number.
    fn drain(&mut self, sink: &mut OutputSink) {
        let o = &mut self.outputs;
        for v in &o.views {
            sink.push_with(
                OutputTopic::ShipmentViews,
                v.tracking_number.as_bytes(),
                |b| v.encode(b),
            );
        }
        for i in &o.intents {
            sink.push_with(
                OutputTopic::Notify(i.channel, i.priority),
                i.tracking_number.as_bytes(),
                |b| i.encode(b),
            );
        }
        for e in &o.escalations {
            sink.push_with(
                OutputTopic::Escalations,
                e.tracking_number.as_bytes(),
                |b| e.encode(b),
            );
        }
        for d in &o.decisions {
            sink.push_with(OutputTopic::Decisions, d.tracking_number.as_bytes(), |b| {
                d.encode(b)
            });
        }
        for d in &o.dead_letters {
            let key = source_key(d.source.topic, d.source.partition, d.source.offset);
            sink.push_with(OutputTopic::DeadLetters, key.as_bytes(), |b| d.encode(b));
        }
        o.clear();
    }

    /// Runs the chain over gathered events and drains its outputs.
    fn flush_events(&mut self, run: &mut Vec<EventInput<'_>>, out: &mut OutputSink) {
        if run.is_empty() {
            return;
        }
        self.chain.on_events(run, &mut self.outputs);
        run.clear();
        self.drain(out);
    }

    fn dead_letter_undecodable(
        &mut self,
        src: SourceRef,
        value: &[u8],
        reason: &str,
        sink: &mut OutputSink,
    ) {
        self.dead_letters_decode_total += 1;
        let key = source_key(chain_topic(src.input), src.partition, src.offset);
        sink.push_with(OutputTopic::DeadLetters, key.as_bytes(), |b| {
            b.extend_from_slice(b"engine:decode:");
            b.extend_from_slice(reason.as_bytes());
            b.push(0);
            b.extend_from_slice(value);
        });
    }
}

fn chain_topic(input: InputKind) -> InputTopic {
    match input {
        InputKind::Control => InputTopic::Control,
        InputKind::Orders => InputTopic::Orders,
        InputKind::CarrierEvents => InputTopic::Events,
    }
}

fn source_key(topic: InputTopic, partition: u32, offset: u64) -> String {
    let name = match topic {
        InputTopic::Events => "carrier-events",
        InputTopic::Orders => "orders",
        InputTopic::Control => "control",
    };
    format!("{name}/{partition}@{offset}")
}

fn chain_source(src: SourceRef) -> ChainSource {
    ChainSource {
        topic: chain_topic(src.input),
        partition: src.partition,
        offset: src.offset,
        log_time_ms: src.log_time_ms,
    }
}

impl Processor for ChainProcessor {
    fn on_record(&mut self, src: SourceRef, _key: &[u8], value: &[u8], out: &mut OutputSink) {
        match src.input {
            InputKind::CarrierEvents => match CarrierEvent::access(value) {
                Ok(event) => self
                    .chain
                    .on_event(chain_source(src), event, &mut self.outputs),
                Err(e) => self.dead_letter_undecodable(src, value, &e.to_string(), out),
            },
            InputKind::Orders => match ShipmentOrder::decode(value) {
                Some(order) => self
                    .chain
                    .on_order(chain_source(src), &order, &mut self.outputs),
                None => self.dead_letter_undecodable(src, value, "invalid order", out),
            },
            InputKind::Control => {}
        }
        self.drain(out);
    }

    fn on_records(&mut self, records: &[DataRecord<'_>], out: &mut OutputSink) {
        let mut run: Vec<EventInput<'_>> = Vec::with_capacity(EVENTS_PER_CALL);
        for r in records {
            if r.src.input != InputKind::CarrierEvents {
                self.flush_events(&mut run, out);
                self.on_record(r.src, r.key, r.value, out);
                continue;
            }
            match CarrierEvent::access(r.value) {
                Ok(event) => {
                    run.push(EventInput {
                        source: chain_source(r.src),
                        event,
                    });
                    if run.len() == EVENTS_PER_CALL {
                        self.flush_events(&mut run, out);
                    }
                }
                Err(e) => {
                    // The chain's outputs of the events before it go first,
                    // so each topic keeps record order.
                    self.flush_events(&mut run, out);
                    self.dead_letter_undecodable(r.src, r.value, &e.to_string(), out);
                }
            }
        }
        self.flush_events(&mut run, out);
    }

    fn on_tick(&mut self, log_time_ms: u64, out: &mut OutputSink) {
        self.chain.on_tick(log_time_ms, &mut self.outputs);
        self.drain(out);
    }

    fn on_control(&mut self, src: SourceRef, record: &ControlRecord<'_>, out: &mut OutputSink) {
        match *record {
            ControlRecord::RulesReload { rules } => {
                let parsed = std::str::from_utf8(rules)
                    .map_err(|_| "rules are not UTF-8".to_string())
                    .and_then(|text| {
                        Rules::from_toml_str(text, "control").map_err(|e| e.to_string())
                    });
                match parsed {
                    Ok(r) => self.chain.set_rules(Arc::new(r)),
                    // Every partition reads control; partition 0 keeps the
                    // rejected reload once.
                    Err(reason) if self.config.partition == 0 => {
                        self.dead_letter_undecodable(src, rules, &reason, out);
                    }
                    Err(_) => {}
                }
            }
            ControlRecord::OptOut { channel, buyer_id } => {
                let s = chain_source(src);
                match channel {
                    Some(c) => self.chain.apply_opt_out(s, buyer_id, c, &mut self.outputs),
                    None => {
                        for c in Channel::ALL {
                            self.chain.apply_opt_out(s, buyer_id, c, &mut self.outputs);
                        }
                    }
                }
            }
            ControlRecord::DropMode { .. } | ControlRecord::DropWindow { .. } => {}
        }
        self.drain(out);
    }

    fn set_drop_mode(&mut self, on: bool, log_time_ms: u64, out: &mut OutputSink) {
        self.chain.set_drop_mode(on, log_time_ms, &mut self.outputs);
        self.drain(out);
    }

    fn snapshot(&self, out: &mut Vec<u8>) {
        self.chain.snapshot(out);
    }

    fn state_bytes(&self) -> usize {
        self.chain.state_bytes()
    }
}

/// Creates chain processors with one configuration and rule set.
#[derive(Debug, Clone)]
pub struct ChainFactory {
    /// The chain configuration (its `partition` is set per partition).
    pub config: ChainConfig,
    /// The rules every partition starts with (reloads arrive as control
    /// records).
    pub rules: Arc<Rules>,
}

impl ChainFactory {
    /// The default configuration and rules.
    pub fn with_defaults() -> Self {
        ChainFactory {
            config: ChainConfig::default(),
            rules: Arc::new(Rules::default_rules()),
        }
    }

    fn config_for(&self, partition: u32) -> ChainConfig {
        ChainConfig {
            partition,
            ..self.config.clone()
        }
    }
}

impl ProcessorFactory for ChainFactory {
    type Processor = ChainProcessor;
    type RestoreError = SnapshotError;

    fn create(&self, partition: u32, _partitions: u32) -> ChainProcessor {
        let config = self.config_for(partition);
        ChainProcessor {
            chain: Chain::new(config.clone(), self.rules.clone()),
            outputs: Outputs::new(),
            config,
            dead_letters_decode_total: 0,
        }
    }

    fn restore(
        &self,
        partition: u32,
        _partitions: u32,
        snapshot: &[u8],
    ) -> Result<ChainProcessor, SnapshotError> {
        let config = self.config_for(partition);
        Ok(ChainProcessor {
            chain: Chain::restore(config.clone(), self.rules.clone(), snapshot)?,
            outputs: Outputs::new(),
            config,
            dead_letters_decode_total: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use dropline_operators::model::{Carrier, EventSource, Location, Status, SubStatus};

    use super::*;

    fn event(tn: &str, status: Status, sub: SubStatus, at: i64) -> Vec<u8> {
        CarrierEvent {
            tracking_number: tn.into(),
            carrier: Carrier::Ups,
            status,
            sub_status: sub,
            raw_code: "X".into(),
            raw_text: "x".into(),
            occurred_at_ms: at,
            local_time: "2023-11-14T17:13:20".into(),
            utc_offset_minutes: None,
            location: Location::default(),
            source: EventSource::Webhook,
            received_at_ms: at,
        }
        .encode()
    }

    fn src(offset: u64, t: u64) -> SourceRef {
        SourceRef {
            input: InputKind::CarrierEvents,
            partition: 0,
            offset,
            log_time_ms: t,
        }
    }

    fn collect(sink: &mut OutputSink) -> Vec<(OutputTopic, Vec<u8>, Vec<u8>)> {
        let mut seqs = crate::output::OutputSequences::default();
        let mut batches = Vec::new();
        sink.cut(0, &mut seqs, 1 << 20, 1000, &mut batches);
        batches
            .iter()
            .flat_map(|b| b.records().map(|(k, v)| (b.topic, k.to_vec(), v.to_vec())))
            .collect()
    }

    #[test]
    fn a_batch_of_records_gives_what_one_record_at_a_time_gives() {
        use dropline_operators::model::{Contact, ShipmentOrder};
        let t0 = 1_700_000_000_000u64;
        let mut values: Vec<(InputKind, Vec<u8>, Vec<u8>)> = Vec::new();
        for i in 0..700u64 {
            let tn = format!("1ZB{:04}", i % 90);
            if i % 90 == i && i % 3 == 0 {
                let order = ShipmentOrder {
                    tracking_number: tn.clone(),
                    carrier: Carrier::Ups,
                    marketplace: "m".into(),
                    seller: "s".into(),
                    order_id: format!("o-{}", i / 2),
                    skus: vec![],
                    buyer_id: format!("b-{}", i % 7),
                    promised_from_ms: 0,
                    promised_to_ms: 0,
                    buyer_locale: "en-US".into(),
                    buyer_time_zone: "UTC".into(),
                    destination_postal_code: "1".into(),
                    drop: false,
                    contacts: vec![Contact {
                        channel: Channel::Sms,
                        address: "sealed:x".into(),
                        consent: true,
                    }],
                };
                values.push((InputKind::Orders, tn.clone().into_bytes(), order.encode()));
            }
            let (status, sub) = [
                (Status::PickedUp, SubStatus::Accepted),
                (Status::InTransit, SubStatus::ArrivalScan),
                (Status::OutForDelivery, SubStatus::OnVehicle),
                (Status::Delivered, SubStatus::LeftSafePlace),
            ][(i / 90) as usize % 4];
            let value = match i % 97 {
                13 => b"garbage".to_vec(),
                29 => event("", status, sub, i as i64),
                _ => event(&tn, status, sub, i as i64 * 1000),
            };
            values.push((InputKind::CarrierEvents, tn.into_bytes(), value));
        }
        let records: Vec<DataRecord<'_>> = values
            .iter()
            .enumerate()
            .map(|(i, (input, k, v))| DataRecord {
                src: SourceRef {
                    input: *input,
                    partition: 0,
                    offset: i as u64,
                    log_time_ms: t0 + i as u64 * 10_000,
                },
                key: k,
                value: v,
            })
            .collect();
        let factory = ChainFactory::with_defaults();
        let (mut one, mut all) = (factory.create(0, 1), factory.create(0, 1));
        let (mut s1, mut s2) = (OutputSink::default(), OutputSink::default());
        for r in &records {
            one.on_record(r.src, r.key, r.value, &mut s1);
        }
        for chunk in records.chunks(300) {
            all.on_records(chunk, &mut s2);
        }
        let (o1, o2) = (collect(&mut s1), collect(&mut s2));
        assert!(o1.iter().any(|(t, _, _)| *t == OutputTopic::DeadLetters));
        assert!(
            o1.iter()
                .any(|(t, _, _)| matches!(t, OutputTopic::Notify(..)))
        );
        assert_eq!(o1, o2);
    }

    #[test]
    fn events_become_views_and_a_restored_chain_continues_identically() {
        let factory = ChainFactory::with_defaults();
        let mut a = factory.create(0, 1);
        let mut sink = OutputSink::default();
        let t0 = 1_700_000_000_000u64;
        a.on_record(
            src(0, t0),
            b"1ZA",
            &event("1ZA", Status::PickedUp, SubStatus::Accepted, 1),
            &mut sink,
        );
        a.on_record(src(1, t0), b"1ZA", b"not an event", &mut sink);
        let first = collect(&mut sink);
        assert!(
            first
                .iter()
                .any(|(t, k, _)| *t == OutputTopic::ShipmentViews && k == b"1ZA")
        );
        assert!(
            first
                .iter()
                .any(|(t, k, _)| *t == OutputTopic::DeadLetters && k == b"carrier-events/0@1")
        );
        let mut snap = Vec::new();
        a.snapshot(&mut snap);
        let mut b = factory.restore(0, 1, &snap).unwrap();
        let next = event("1ZA", Status::OutForDelivery, SubStatus::OnVehicle, 2);
        let (mut sa, mut sb) = (OutputSink::default(), OutputSink::default());
        a.on_record(src(2, t0 + 10), b"1ZA", &next, &mut sa);
        b.on_record(src(2, t0 + 10), b"1ZA", &next, &mut sb);
        a.on_tick(t0 + 3_600_000, &mut sa);
        b.on_tick(t0 + 3_600_000, &mut sb);
        let (oa, ob) = (collect(&mut sa), collect(&mut sb));
        assert!(!oa.is_empty());
        assert_eq!(oa, ob);
    }
}
