//! Dropline's edges: the QUIC ingest server and client, carrier pollers and
//! webhook receivers, the HTTP API and pages, and notification channels.
//!
//! Built so far: the ingest wire format ([`wire`]).

pub mod wire;
