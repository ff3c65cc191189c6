//! Traffic and stand-ins for the outside world: load scenarios, the carrier
//! simulator and the notification-provider simulator.
//!
//! Not built yet: this crate is a placeholder for issues 6, 8 and 9.
