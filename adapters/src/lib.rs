//! Dropline's edges: the QUIC ingest server and client, carrier pollers and
//! webhook receivers, the HTTP API and pages, and notification channels.
//!
//! Not built yet: this crate is a placeholder for issues 6, 7 and 8.
