//! Stand-ins for the receiving end of notifications: a real SMTP server
//! that records what it received, and a marketplace webhook receiver that
//! verifies signatures. Both drop repeats of an idempotency key, as the
//! delivery design expects of sinks, and count them.

pub mod smtp;
pub mod webhook;

pub use smtp::{ReceivedEmail, SYSTEM_PYTHON, SmtpSink, SmtpSinkError};
pub use webhook::{
    ReceivedWebhook, WebhookSink, WebhookSinkConfig, WebhookSinkStats, verify_signature,
};
