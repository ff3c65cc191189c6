//! Dropline's edges: the QUIC ingest server and client, carrier pollers and
//! webhook receivers, the HTTP API and pages, and notification channels.
//!
//! Built so far: the ingest wire format ([`wire`]), the node's ingest
//! server ([`ingest`]), the adapters' client library with its spool
//! ([`client`]) and notification delivery ([`delivery`]).

pub mod carrier;
pub mod client;
pub mod cluster;
pub mod delivery;
pub mod forensics;
pub mod http;
pub mod ingest;
pub mod wire;

mod frame_io;
mod splitmix;
