//! The per-partition processor: what the engine runs over a partition's
//! merged inputs.
//!
//! Why a trait: the worker loop, the merge, checkpoints and the
//! deterministic simulation must not depend on the operator chain's
//! internals. The production implementation wraps the operator chain
//! (`chain_processor`); tests use small deterministic processors.
//!
//! Contract: given the same snapshot and the same sequence of calls, a
//! processor produces the same outputs. It reads no clock and does no I/O;
//! time comes in as log time.

use crate::control::ControlRecord;
use crate::input::SourceRef;
use crate::output::OutputSink;

/// A data record of an input batch, with where it comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataRecord<'a> {
    /// The record's source.
    pub src: SourceRef,
    /// Its key.
    pub key: &'a [u8],
    /// Its value.
    pub value: &'a [u8],
}

/// A deterministic processor of one partition's merged inputs.
pub trait Processor: Send {
    /// A data record from `orders` or `carrier-events`.
    fn on_record(&mut self, src: SourceRef, key: &[u8], value: &[u8], out: &mut OutputSink);

    /// The data records of one input batch, in offset order. Must produce
    /// exactly what [`Processor::on_record`] on each in turn produces; a
    /// processor overrides it to work on several records at once (the
    /// operator chain prefetches the state of the next ones).
    fn on_records(&mut self, records: &[DataRecord<'_>], out: &mut OutputSink) {
        for r in records {
            self.on_record(r.src, r.key, r.value, out);
        }
    }

    /// Log time advanced to `log_time_ms` (a tick): fire due timers.
    fn on_tick(&mut self, log_time_ms: u64, out: &mut OutputSink);

    /// A control record other than drop mode (rule reloads, opt-outs).
    fn on_control(&mut self, src: SourceRef, record: &ControlRecord<'_>, out: &mut OutputSink);

    /// Drop mode switched at `log_time_ms`.
    fn set_drop_mode(&mut self, on: bool, log_time_ms: u64, out: &mut OutputSink);

    /// Appends a snapshot of the state to `out`.
    fn snapshot(&self, out: &mut Vec<u8>);

    /// Approximate bytes of state held (for metrics).
    fn state_bytes(&self) -> usize;
}

/// Creates processors for partitions, fresh or from a snapshot.
pub trait ProcessorFactory: Send + Sync + 'static {
    /// The processor type.
    type Processor: Processor + 'static;
    /// Why a snapshot could not be restored.
    type RestoreError: std::error::Error + Send + Sync + 'static;

    /// A processor with empty state for `partition` of `partitions`.
    fn create(&self, partition: u32, partitions: u32) -> Self::Processor;

    /// A processor restored from a snapshot written by
    /// [`Processor::snapshot`].
    fn restore(
        &self,
        partition: u32,
        partitions: u32,
        snapshot: &[u8],
    ) -> Result<Self::Processor, Self::RestoreError>;
}
