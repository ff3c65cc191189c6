//! The inputs of a partition task and the batches read from them.
//!
//! Why a trait over batches: the partition task and the merge scheduler are
//! pure state machines that the real worker drives with zero-copy views of
//! the log's mapped segments and the deterministic simulation drives with
//! in-memory batches. Both only need a batch's position (offsets, log time,
//! whether it is a control batch) and its records.

/// The three inputs of a partition task, declared in merge rank order: at
/// equal log time, control records go first (a drop-mode switch applies to
/// the batch appended in the same millisecond), then orders (enrichment
/// data before the events it enriches), then carrier events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum InputKind {
    /// The single-partition `control` topic, read by every partition task.
    Control = 0,
    /// `orders[p]`.
    Orders = 1,
    /// `carrier-events[p]`.
    CarrierEvents = 2,
}

/// Number of inputs of a partition task.
pub const INPUT_COUNT: usize = 3;

impl InputKind {
    /// Every input, in rank order.
    pub const ALL: [InputKind; INPUT_COUNT] = [
        InputKind::Control,
        InputKind::Orders,
        InputKind::CarrierEvents,
    ];

    /// Merge rank: lower ranks go first at equal log time.
    pub fn rank(self) -> u8 {
        self as u8
    }

    /// Index into per-input arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The topic this input reads.
    pub fn topic(self) -> &'static str {
        match self {
            InputKind::Control => CONTROL_TOPIC,
            InputKind::Orders => ORDERS_TOPIC,
            InputKind::CarrierEvents => CARRIER_EVENTS_TOPIC,
        }
    }

    /// The partition of this input's topic that partition task `partition`
    /// reads (`control` has one partition).
    pub fn topic_partition(self, partition: u32) -> u32 {
        match self {
            InputKind::Control => 0,
            InputKind::Orders | InputKind::CarrierEvents => partition,
        }
    }
}

/// The control topic (drop mode, rule reloads, opt-outs; one partition).
pub const CONTROL_TOPIC: &str = "control";
/// The orders topic (enrichment data).
pub const ORDERS_TOPIC: &str = "orders";
/// The carrier events topic.
pub const CARRIER_EVENTS_TOPIC: &str = "carrier-events";

/// Where a batch sits in its input: what the merge scheduler orders on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchMeta {
    /// Offset of the first record.
    pub base_offset: u64,
    /// Offset of the last record.
    pub last_offset: u64,
    /// Log time of the first record (the merge key).
    pub first_time_ms: u64,
    /// Log time of the last record (the input's frontier once read).
    pub last_time_ms: u64,
    /// A control batch: tick records the node appends to idle partitions.
    pub control: bool,
}

/// One record of an input batch, borrowed from the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputRecord<'a> {
    /// The record's offset.
    pub offset: u64,
    /// Its log time.
    pub log_time_ms: u64,
    /// The key (a tracking number; empty for ticks and control records).
    pub key: &'a [u8],
    /// The value.
    pub value: &'a [u8],
}

/// A batch read from an input, as the partition task consumes it.
pub trait InputBatch {
    /// The batch's position.
    fn meta(&self) -> BatchMeta;
    /// Calls `f` for each record in offset order. The records borrow the
    /// batch, so a caller may gather them and process them together.
    fn for_each_record<'a>(&'a self, f: &mut dyn FnMut(InputRecord<'a>));
    /// Number of records.
    fn record_count(&self) -> u64 {
        let m = self.meta();
        m.last_offset - m.base_offset + 1
    }
}

/// Identifies the record an operator is processing: which input, which
/// partition of it, its offset and log time. Deterministic notification ids
/// derive from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceRef {
    /// The input.
    pub input: InputKind,
    /// Partition of the input's topic.
    pub partition: u32,
    /// Offset of the record.
    pub offset: u64,
    /// Log time of the record.
    pub log_time_ms: u64,
}
