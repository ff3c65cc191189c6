//! The OpenAPI 3.1 description of the HTTP API, served at `/openapi.json`.
//!
//! Why hand-written: the document is the contract storefront developers
//! read; writing it by hand keeps it readable, and the test
//! `http_openapi` holds it to the code: every registered route is
//! documented and every documented path is served, and real responses
//! validate against the documented schemas.

/// The document.
pub const DOCUMENT: &str = include_str!("assets/openapi.json");
