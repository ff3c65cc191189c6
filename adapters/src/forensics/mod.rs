//! Forensic replay: what did we know about parcel X at 14:02, and why did
//! we (not) notify?
//!
//! Why through the key index and a re-run: every topic that holds a
//! parcel's records is keyed by its tracking number, so its whole history
//! (archive included) is a handful of key-index lookups, milliseconds at
//! any log size, never a scan. The engine's `decisions` topic says what was
//! decided; re-running the operator chain over the parcel's own orders and
//! events (with the `control` records in force) up to TIME rebuilds its
//! state as of then and re-derives those decisions from the same inputs at
//! the same log times, which is what makes the explanation trustworthy.
//! Per-buyer caps and per-order consolidation depend on other parcels; the
//! re-run cannot see those, so the recorded decisions are authoritative
//! and the re-run is reported next to them.
//!
//! The output is a pure function of the log's contents (no wall clock, no
//! timings), so it is identical before and after a node restart.

mod explain;
mod range;
mod render;

use std::sync::Arc;

use dropline_engine::control::{ControlRecord, DropSchedule};
use dropline_log::{Log, LogError, OwnedRecord};
use dropline_operators::model::time::{format_rfc3339_ms, parse_rfc3339_ms};
use dropline_operators::model::{
    CarrierEvent, Channel, Priority, ShipmentOrder, notify_topic, partition_for,
};
use dropline_operators::ops::outputs::InputTopic;
use dropline_operators::ops::{
    Chain, ChainConfig, Decision, Escalation, NotificationIntent, Outputs, Rules, ShipmentView,
    SourceRef,
};
use serde::{Deserialize, Serialize};

pub use explain::explain;
pub use range::{PartitionReset, RangeReset, replay_topic_range};
pub use render::render_human;

/// Topic names read by forensics.
pub const CARRIER_EVENTS_TOPIC: &str = "carrier-events";
/// The orders topic.
pub const ORDERS_TOPIC: &str = "orders";
/// The control topic.
pub const CONTROL_TOPIC: &str = "control";
/// The shipment views topic.
pub const SHIPMENT_VIEWS_TOPIC: &str = "shipment-views";
/// The decisions topic.
pub const DECISIONS_TOPIC: &str = "decisions";
/// The escalations topic.
pub const ESCALATIONS_TOPIC: &str = "escalations";
/// Most control records read for a re-run (the control topic is small:
/// drop-mode switches, rule reloads, opt-outs).
pub const CONTROL_RECORDS_MAX: usize = 1_000_000;
/// Bytes per read of the control topic.
const CONTROL_READ_BYTES: usize = 1 << 20;

/// Why a replay failed.
#[derive(Debug, thiserror::Error)]
pub enum ForensicsError {
    /// Reading the log failed.
    #[error("reading {topic}: {source}")]
    Log {
        /// The topic.
        topic: String,
        /// The cause.
        #[source]
        source: LogError,
    },
    /// The tracking number is empty or too long.
    #[error("invalid tracking number {tracking_number:?}")]
    InvalidTrackingNumber {
        /// What was given.
        tracking_number: String,
    },
    /// The control topic holds more records than a re-run reads.
    #[error("the control topic holds more than {CONTROL_RECORDS_MAX} records")]
    TooManyControlRecords,
    /// The topic does not exist.
    #[error("no topic {topic}")]
    NoTopic {
        /// The topic.
        topic: String,
    },
}

fn log_err(topic: &str) -> impl FnOnce(LogError) -> ForensicsError + '_ {
    move |source| ForensicsError::Log {
        topic: topic.to_string(),
        source,
    }
}

/// How to re-run the chain (the node passes its own settings).
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// Chain configuration (windows, SLAs); `partition` is set per parcel.
    pub chain: ChainConfig,
    /// Rules in force before any reload in `control`.
    pub rules: Arc<Rules>,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            chain: ChainConfig::default(),
            rules: Arc::new(Rules::default_rules()),
        }
    }
}

/// Parses a TIME argument: RFC 3339, or epoch milliseconds.
pub fn parse_time(text: &str) -> Option<u64> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok();
    }
    parse_rfc3339_ms(text).and_then(|ms| u64::try_from(ms).ok())
}

/// Where a record sits, and when it was appended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct At {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Offset.
    pub offset: u64,
    /// Log time (RFC 3339).
    pub log_time: String,
    /// Log time, ms.
    pub log_time_ms: u64,
}

fn at(topic: &str, partition: u32, r: &OwnedRecord) -> At {
    At {
        topic: topic.to_string(),
        partition,
        offset: r.offset,
        log_time: format_rfc3339_ms(i64::try_from(r.log_time_ms).unwrap_or(0)),
        log_time_ms: r.log_time_ms,
    }
}

/// A contact without its address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactSummary {
    /// The channel.
    pub channel: Channel,
    /// Consent given.
    pub consent: bool,
    /// The stored address is sealed (it is never shown).
    pub sealed: bool,
}

/// An order as forensics shows it (no addresses).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderSummary {
    /// Where.
    pub at: At,
    /// Marketplace.
    pub marketplace: String,
    /// Seller.
    pub seller: String,
    /// Order id.
    pub order_id: String,
    /// Buyer id.
    pub buyer_id: String,
    /// Promised window (RFC 3339).
    pub promised_from: String,
    /// Promised window end (RFC 3339).
    pub promised_to: String,
    /// Buyer time zone.
    pub buyer_time_zone: String,
    /// Part of a drop.
    pub drop: bool,
    /// Contacts.
    pub contacts: Vec<ContactSummary>,
}

/// A carrier event with its position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Where.
    pub at: At,
    /// The canonical event.
    pub event: CarrierEvent,
}

/// A recorded view change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewRecord {
    /// Where.
    pub at: At,
    /// The view.
    pub view: ShipmentView,
}

/// A recorded decision with its explanation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// Where it is recorded (`None` for decisions of the re-run).
    pub at: Option<At>,
    /// The decision.
    pub decision: Decision,
    /// One sentence: what was decided and why.
    pub explanation: String,
}

/// A notification intent from a `notify-*` topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntentRecord {
    /// Where.
    pub at: At,
    /// The intent.
    pub intent: NotificationIntent,
}

/// A recorded escalation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EscalationRecord {
    /// Where.
    pub at: At,
    /// The escalation.
    pub escalation: Escalation,
}

/// A control record in force during the re-run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlSummary {
    /// Where.
    pub at: At,
    /// What it said.
    pub what: String,
}

/// Records that did not decode (kept visible, never dropped silently).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Undecodable {
    /// Where.
    pub at: At,
    /// Bytes of the value.
    pub value_bytes: usize,
}

/// Everything known about one parcel, as of a time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParcelHistory {
    /// The parcel.
    pub tracking_number: String,
    /// Its partition of the input topics.
    pub partition: u32,
    /// The TIME asked for (RFC 3339), if any.
    pub as_of: Option<String>,
    /// The TIME asked for, ms.
    pub as_of_ms: Option<u64>,
    /// Orders, in offset order.
    pub orders: Vec<OrderSummary>,
    /// Carrier events, in offset order.
    pub events: Vec<EventRecord>,
    /// View changes the engine recorded.
    pub views: Vec<ViewRecord>,
    /// Decisions the engine recorded (authoritative).
    pub decisions: Vec<DecisionRecord>,
    /// Notification intents emitted.
    pub notifications: Vec<IntentRecord>,
    /// Escalations.
    pub escalations: Vec<EscalationRecord>,
    /// Control records in force for the re-run.
    pub control: Vec<ControlSummary>,
    /// The parcel's state as of TIME, from the re-run.
    pub state: Option<ShipmentView>,
    /// Decisions derived by the re-run up to TIME.
    pub replayed_decisions: Vec<DecisionRecord>,
    /// Decision kinds recorded but not re-derived, or re-derived but not
    /// recorded (cross-parcel caps and consolidation, or a different rule
    /// set in force), by (source offset, kind, channel).
    pub differences: Vec<String>,
    /// Records that did not decode.
    pub undecodable: Vec<Undecodable>,
}

fn partitions_of(log: &Log, topic: &str) -> Option<u32> {
    log.topics()
        .into_iter()
        .find(|t| t.name == topic)
        .map(|t| t.config.partitions)
}

/// `lookup_key` on the parcel's partition of `topic`; empty if the topic
/// does not exist.
fn lookup(log: &Log, topic: &str, key: &[u8]) -> Result<(u32, Vec<OwnedRecord>), ForensicsError> {
    let Some(n) = partitions_of(log, topic) else {
        return Ok((0, Vec::new()));
    };
    let p = partition_for(key, n);
    let part = log.partition(topic, p).map_err(log_err(topic))?;
    Ok((p, part.lookup_key(key).map_err(log_err(topic))?))
}

fn before(at_ms: Option<u64>, r: &OwnedRecord) -> bool {
    at_ms.is_none_or(|t| r.log_time_ms <= t)
}

/// Control records up to `at_ms`, in offset order.
fn control_records(log: &Log, at_ms: Option<u64>) -> Result<Vec<OwnedRecord>, ForensicsError> {
    let Some(_) = partitions_of(log, CONTROL_TOPIC) else {
        return Ok(Vec::new());
    };
    let part = log
        .partition(CONTROL_TOPIC, 0)
        .map_err(log_err(CONTROL_TOPIC))?;
    let mut out = Vec::new();
    let mut next = part.start_offset();
    'read: loop {
        let batches = part
            .read(next, CONTROL_READ_BYTES)
            .map_err(log_err(CONTROL_TOPIC))?;
        if batches.is_empty() {
            break;
        }
        for b in &batches {
            if !b.is_control() {
                for r in b.records().filter(|r| r.offset >= next) {
                    if at_ms.is_some_and(|t| r.log_time_ms > t) {
                        break 'read;
                    }
                    if out.len() >= CONTROL_RECORDS_MAX {
                        return Err(ForensicsError::TooManyControlRecords);
                    }
                    out.push(OwnedRecord {
                        offset: r.offset,
                        log_time_ms: r.log_time_ms,
                        key: r.key.to_vec(),
                        value: r.value.to_vec(),
                    });
                }
            }
            next = next.max(b.last_offset() + 1);
        }
    }
    Ok(out)
}

fn order_summary(at: At, o: &ShipmentOrder) -> OrderSummary {
    OrderSummary {
        at,
        marketplace: o.marketplace.clone(),
        seller: o.seller.clone(),
        order_id: o.order_id.clone(),
        buyer_id: o.buyer_id.clone(),
        promised_from: format_rfc3339_ms(o.promised_from_ms),
        promised_to: format_rfc3339_ms(o.promised_to_ms),
        buyer_time_zone: o.buyer_time_zone.clone(),
        drop: o.drop,
        contacts: o
            .contacts
            .iter()
            .map(|c| ContactSummary {
                channel: c.channel,
                consent: c.consent,
                sealed: c.address.starts_with(crate::http::seal::SEALED_PREFIX),
            })
            .collect(),
    }
}

/// One input of the re-run, merged by (log time, rank, offset) like the
/// engine's merge scheduler: control first, then orders, then events.
enum Input<'a> {
    Control(&'a OwnedRecord),
    Order(&'a OwnedRecord),
    Event(&'a OwnedRecord),
}

impl Input<'_> {
    fn key(&self) -> (u64, u8, u64) {
        match self {
            Input::Control(r) => (r.log_time_ms, 0, r.offset),
            Input::Order(r) => (r.log_time_ms, 1, r.offset),
            Input::Event(r) => (r.log_time_ms, 2, r.offset),
        }
    }
}

fn describe_control(c: &ControlRecord<'_>) -> String {
    match c {
        ControlRecord::DropMode { on } => format!("drop mode {}", if *on { "on" } else { "off" }),
        ControlRecord::DropWindow { from_ms, to_ms } => format!(
            "drop mode window {} .. {}",
            format_rfc3339_ms(i64::try_from(*from_ms).unwrap_or(0)),
            format_rfc3339_ms(i64::try_from(*to_ms).unwrap_or(0))
        ),
        ControlRecord::RulesReload { rules } => format!("rules reload ({} bytes)", rules.len()),
        ControlRecord::OptOut { channel, .. } => format!(
            "buyer opted out of {}",
            channel.map_or("every channel", Channel::as_str)
        ),
    }
}

struct Rerun {
    state: Option<ShipmentView>,
    decisions: Vec<Decision>,
    control: Vec<ControlSummary>,
}

fn rerun(
    tn: &str,
    partition: u32,
    orders: &[OwnedRecord],
    events: &[OwnedRecord],
    control: &[OwnedRecord],
    at_ms: Option<u64>,
    opts: &ReplayOptions,
) -> Rerun {
    let buyers: Vec<String> = orders
        .iter()
        .filter_map(|r| ShipmentOrder::decode(&r.value))
        .map(|o| o.buyer_id)
        .collect();
    let mut inputs: Vec<Input<'_>> = control
        .iter()
        .map(Input::Control)
        .chain(orders.iter().map(Input::Order))
        .chain(events.iter().map(Input::Event))
        .collect();
    inputs.sort_by_key(Input::key);
    let mut cfg = opts.chain.clone();
    cfg.partition = partition;
    let mut chain = Chain::new(cfg, opts.rules.clone());
    let mut drop = DropSchedule::default();
    let mut out = Outputs::new();
    let mut decisions = Vec::new();
    let mut summaries = Vec::new();
    for input in &inputs {
        let (t, _, _) = input.key();
        if let Some(on) = drop.transition(t) {
            chain.set_drop_mode(on, t, &mut out);
        }
        match input {
            Input::Control(r) => {
                let Ok(rec) = ControlRecord::decode(&r.value) else {
                    continue;
                };
                let src = SourceRef {
                    topic: InputTopic::Control,
                    partition: 0,
                    offset: r.offset,
                    log_time_ms: r.log_time_ms,
                };
                let relevant = match rec {
                    ControlRecord::DropMode { .. } | ControlRecord::DropWindow { .. } => {
                        drop.apply(&rec);
                        if let Some(on) = drop.transition(t) {
                            chain.set_drop_mode(on, t, &mut out);
                        }
                        true
                    }
                    ControlRecord::RulesReload { rules } => {
                        match std::str::from_utf8(rules)
                            .ok()
                            .and_then(|text| Rules::from_toml_str(text, "control").ok())
                        {
                            Some(r) => {
                                chain.set_rules(Arc::new(r));
                                true
                            }
                            None => false,
                        }
                    }
                    ControlRecord::OptOut { channel, buyer_id } => {
                        let mine = buyers.iter().any(|b| b == buyer_id);
                        if mine {
                            for c in channel.map_or(Channel::ALL.to_vec(), |c| vec![c]) {
                                chain.apply_opt_out(src, buyer_id, c, &mut out);
                            }
                        }
                        mine
                    }
                };
                if relevant {
                    summaries.push(ControlSummary {
                        at: at(CONTROL_TOPIC, 0, r),
                        what: describe_control(&rec),
                    });
                }
            }
            Input::Order(r) => {
                if let Some(o) = ShipmentOrder::decode(&r.value) {
                    chain.on_order(
                        SourceRef::order(partition, r.offset, r.log_time_ms),
                        &o,
                        &mut out,
                    );
                }
            }
            Input::Event(r) => {
                if let Ok(e) = CarrierEvent::access(&r.value) {
                    chain.on_event(
                        SourceRef::event(partition, r.offset, r.log_time_ms),
                        e,
                        &mut out,
                    );
                }
            }
        }
        decisions.extend(
            out.decisions
                .iter()
                .filter(|d| d.tracking_number.as_str() == tn),
        );
        out.clear();
    }
    if let Some(t) = at_ms {
        chain.on_tick(t, &mut out);
        decisions.extend(
            out.decisions
                .iter()
                .filter(|d| d.tracking_number.as_str() == tn),
        );
        out.clear();
    }
    Rerun {
        state: chain.shipment_view(tn),
        decisions,
        control: summaries,
    }
}

type DecisionKey = (u64, &'static str, Option<Channel>);

fn decision_key(d: &Decision) -> DecisionKey {
    (d.source.offset, d.kind.as_str(), d.channel)
}

fn differences(recorded: &[DecisionRecord], replayed: &[DecisionRecord]) -> Vec<String> {
    if recorded.is_empty() {
        return Vec::new();
    }
    let rec: Vec<DecisionKey> = recorded.iter().map(|d| decision_key(&d.decision)).collect();
    let rep: Vec<DecisionKey> = replayed.iter().map(|d| decision_key(&d.decision)).collect();
    let mut out = Vec::new();
    for k in &rec {
        if !rep.contains(k) {
            out.push(format!(
                "recorded, not re-derived: {} at source offset {} ({})",
                k.1,
                k.0,
                k.2.map_or("-", Channel::as_str)
            ));
        }
    }
    for k in &rep {
        if !rec.contains(k) {
            out.push(format!(
                "re-derived, not recorded: {} at source offset {} ({})",
                k.1,
                k.0,
                k.2.map_or("-", Channel::as_str)
            ));
        }
    }
    out
}

/// The parcel's full history from the log (archive included) as of
/// `at_ms` (log time; `None`: everything), its state then, and every
/// decision taken about it.
pub fn replay_parcel(
    log: &Log,
    tracking_number: &str,
    at_ms: Option<u64>,
    opts: &ReplayOptions,
) -> Result<ParcelHistory, ForensicsError> {
    let tn = tracking_number.trim();
    if tn.is_empty() || tn.len() > dropline_operators::ops::TrackingNumber::CAPACITY {
        return Err(ForensicsError::InvalidTrackingNumber {
            tracking_number: tracking_number.to_string(),
        });
    }
    let key = tn.as_bytes();
    let mut undecodable = Vec::new();
    let (partition, mut order_recs) = lookup(log, ORDERS_TOPIC, key)?;
    order_recs.retain(|r| before(at_ms, r));
    let (ev_partition, mut event_recs) = lookup(log, CARRIER_EVENTS_TOPIC, key)?;
    event_recs.retain(|r| before(at_ms, r));
    let partition = if order_recs.is_empty() {
        ev_partition
    } else {
        partition
    };

    let mut orders = Vec::new();
    for r in &order_recs {
        match ShipmentOrder::decode(&r.value) {
            Some(o) => orders.push(order_summary(at(ORDERS_TOPIC, partition, r), &o)),
            None => undecodable.push(Undecodable {
                at: at(ORDERS_TOPIC, partition, r),
                value_bytes: r.value.len(),
            }),
        }
    }
    let mut events = Vec::new();
    for r in &event_recs {
        match CarrierEvent::decode(&r.value) {
            Ok(e) => events.push(EventRecord {
                at: at(CARRIER_EVENTS_TOPIC, ev_partition, r),
                event: e,
            }),
            Err(_) => undecodable.push(Undecodable {
                at: at(CARRIER_EVENTS_TOPIC, ev_partition, r),
                value_bytes: r.value.len(),
            }),
        }
    }

    let (vp, view_recs) = lookup(log, SHIPMENT_VIEWS_TOPIC, key)?;
    let mut views = Vec::new();
    for r in view_recs.iter().filter(|r| before(at_ms, r)) {
        match ShipmentView::decode(&r.value) {
            Ok(v) => views.push(ViewRecord {
                at: at(SHIPMENT_VIEWS_TOPIC, vp, r),
                view: v,
            }),
            Err(_) => undecodable.push(Undecodable {
                at: at(SHIPMENT_VIEWS_TOPIC, vp, r),
                value_bytes: r.value.len(),
            }),
        }
    }
    let (dp, dec_recs) = lookup(log, DECISIONS_TOPIC, key)?;
    let mut decisions = Vec::new();
    for r in dec_recs.iter().filter(|r| before(at_ms, r)) {
        match Decision::decode(&r.value) {
            Ok(d) => decisions.push(DecisionRecord {
                at: Some(at(DECISIONS_TOPIC, dp, r)),
                explanation: explain(&d),
                decision: d,
            }),
            Err(_) => undecodable.push(Undecodable {
                at: at(DECISIONS_TOPIC, dp, r),
                value_bytes: r.value.len(),
            }),
        }
    }
    let mut notifications = Vec::new();
    for c in Channel::ALL {
        for p in Priority::ALL {
            let topic = notify_topic(c, p);
            let (np, recs) = lookup(log, &topic, key)?;
            for r in recs.iter().filter(|r| before(at_ms, r)) {
                match NotificationIntent::decode(&r.value) {
                    Ok(i) => notifications.push(IntentRecord {
                        at: at(&topic, np, r),
                        intent: i,
                    }),
                    Err(_) => undecodable.push(Undecodable {
                        at: at(&topic, np, r),
                        value_bytes: r.value.len(),
                    }),
                }
            }
        }
    }
    notifications.sort_by_key(|n| (n.at.log_time_ms, n.at.offset, n.at.topic.clone()));
    let (ep, esc_recs) = lookup(log, ESCALATIONS_TOPIC, key)?;
    let mut escalations = Vec::new();
    for r in esc_recs.iter().filter(|r| before(at_ms, r)) {
        match Escalation::decode(&r.value) {
            Ok(e) => escalations.push(EscalationRecord {
                at: at(ESCALATIONS_TOPIC, ep, r),
                escalation: e,
            }),
            Err(_) => undecodable.push(Undecodable {
                at: at(ESCALATIONS_TOPIC, ep, r),
                value_bytes: r.value.len(),
            }),
        }
    }

    let control = control_records(log, at_ms)?;
    let re = rerun(
        tn,
        partition,
        &order_recs,
        &event_recs,
        &control,
        at_ms,
        opts,
    );
    let replayed_decisions: Vec<DecisionRecord> = re
        .decisions
        .iter()
        .map(|d| DecisionRecord {
            at: None,
            explanation: explain(d),
            decision: *d,
        })
        .collect();
    Ok(ParcelHistory {
        tracking_number: tn.to_string(),
        partition,
        as_of: at_ms.map(|t| format_rfc3339_ms(i64::try_from(t).unwrap_or(0))),
        as_of_ms: at_ms,
        orders,
        events,
        views,
        differences: differences(&decisions, &replayed_decisions),
        decisions,
        notifications,
        escalations,
        control: re.control,
        state: re.state,
        replayed_decisions,
        undecodable,
    })
}
