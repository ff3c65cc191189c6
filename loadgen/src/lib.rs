//! Traffic and stand-ins for the outside world: load scenarios, the carrier
//! simulator and the notification-provider simulator.
//!
//! Built so far: the carrier payload renderers ([`carrier_format`]) and the
//! provider simulator ([`provider_sim`]).

pub mod carrier_format;
pub mod carrier_sim;
pub mod provider_sim;
pub mod sinks;
pub mod workload;
