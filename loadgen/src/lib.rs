//! Traffic and stand-ins for the outside world: the load generator, the
//! carrier simulator, the notification-provider simulator and the
//! notification sinks.
//!
//! The load generator (`dropline loadgen`): [`scenario`] plans seeded
//! traffic from the superdrop [`workload`], [`open_loop`] sends it on
//! schedule through [`carrier_path`] (signed carrier webhooks to the real
//! adapter) or [`raw`] (QUIC) to a [`node`], [`recorder`] measures from
//! each item's intended time, [`audit`] checks the log afterwards, and
//! [`report`], [`html`] and [`progress`] tell the story; [`run`] strings
//! the phases together.

pub mod audit;
pub mod carrier_format;
pub mod carrier_path;
pub mod carrier_sim;
pub mod error;
pub mod html;
pub mod node;
pub mod open_loop;
pub mod orders;
pub mod progress;
pub mod provider_sim;
pub mod raw;
pub mod recorder;
pub mod report;
pub mod run;
pub mod scenario;
pub mod sinks;
pub mod workload;

pub use error::LoadgenError;
pub use run::{LoadgenConfig, NodeSpec, Session, Transport, run};
pub use scenario::{Scenario, ScenarioConfig};
