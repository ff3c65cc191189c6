//! Dropline's edges: the QUIC ingest server and client, carrier pollers and
//! webhook receivers, the HTTP API and pages, and notification channels.
//!
//! Built so far: the ingest wire format ([`wire`]) and notification
//! delivery ([`delivery`]).

pub mod delivery;
pub mod wire;
