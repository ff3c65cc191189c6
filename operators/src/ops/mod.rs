//! The operator chain: dedup, debounce, rules with order enrichment,
//! exceptions, fan-out and the shipment view, fused over one flat state
//! table per partition, with every decision recorded.
//!
//! Sans-IO: the engine passes records (zero-copy archives from the log)
//! with their log times and gets outputs back in reusable buffers. Nothing
//! here reads a clock, iterates a randomly ordered map into an output, or
//! allocates per event on the hot path.

mod apply;
mod arena;
pub mod chain;
pub mod config;
pub mod debounce;
pub mod decision;
pub mod dedup;
pub mod exceptions;
pub mod fanout;
mod hash;
mod interner;
pub mod journal;
mod lifecycle;
pub mod order_input;
pub mod outputs;
mod prefetch;
pub mod rules;
mod shipment;
pub mod snapshot;
mod table;
pub mod text;
pub mod timers;
pub mod view;
pub mod wire;

pub use chain::{Chain, ChainStats, EventInput, SELLER_BYTES_MAX};
pub use config::{ChainConfig, ChainConfigError};
pub use decision::{Decision, DecisionKind};
pub use exceptions::{ExceptionClass, Remediation};
pub use order_input::OrderInput;
pub use outputs::{
    CaseDecision, CaseEvent, CaseFile, CaseOrder, DeadLetter, DeadLetterReason, Escalation,
    EscalationKind, InputTopic, IntentId, LastEvent, LocationSummary, NotificationIntent,
    OpenException, OrderField, Outputs, ShipmentView, SourceRef, ViewChange,
};
pub use rules::{Rule, RuleMatch, Rules, RulesError, RulesErrorKind};
pub use snapshot::SnapshotError;
pub use text::{InlineStr, TrackingNumber};
pub use wire::WireError;
