//! Notification delivery: per-channel workers that read the notify topics
//! (`notify-<channel>-<priority>`) and send marketplace webhooks, email,
//! SMS and push, critical first, within each provider's limits, never
//! twice.
//!
//! Layout: [`worker`] drives I/O around the sans-IO [`scheduler`]
//! (grouping, holds, retries, caps); [`channel`] holds the senders;
//! [`checkpoint`] the consumer progress; [`opt_out`] and [`dead_letter`]
//! the two topics delivery writes; [`callbacks`] the HTTP endpoints for
//! STOP replies, receipts and unsubscribe links; [`metrics`] the KPIs.
//! The design is in docs/DELIVERY.md, the webhook format in
//! docs/WEBHOOKS.md.

pub mod callbacks;
pub mod channel;
pub mod checkpoint;
pub mod clock;
pub mod config;
pub mod contact;
pub mod dead_letter;
pub mod intent;
pub mod metrics;
pub mod notification;
pub mod opt_out;
pub mod quiet_hours;
pub mod retry;
pub mod scheduler;
pub mod seed;
pub mod token_bucket;
pub mod worker;

pub use callbacks::delivery_router;
pub use channel::ChannelSender;
pub use clock::{DeliveryClock, ManualClock, SystemDeliveryClock};
pub use config::{BuyerCap, ChannelCosts, DegradeThresholds, DeliveryConfig};
pub use contact::{ContactOpener, PlaintextContacts};
pub use dead_letter::{DEAD_LETTER_TOPIC, DeadLetterRecord, ReplayReport, replay_dead_letters};
pub use intent::{decode_notification, encode_notification};
pub use metrics::DeliveryMetrics;
pub use notification::{Message, MessageKind, Notification};
pub use opt_out::{OPT_OUT_TOPIC, OptOutStore};
pub use quiet_hours::QuietHours;
pub use retry::RetryPolicy;
pub use token_bucket::{Rate, TokenBucket};
pub use worker::{DeliveryDeps, DeliveryError, DeliveryHandle, DeliveryWorker, WorkerState};
