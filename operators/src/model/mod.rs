//! The canonical model: events, orders, statuses and notification
//! vocabulary, with rkyv archives for the log and JSON for the edges.

pub mod event;
pub mod notification;
pub mod order;
pub mod partition;
pub mod status;
pub mod time;

pub use event::{
    ArchivedCarrierEvent, Carrier, CarrierEvent, EVENT_FORMAT_V1, EventDecodeError, EventSource,
    Location,
};
pub use notification::{Channel, Priority, notify_topic};
pub use order::{Contact, ORDER_FORMAT_V1, ShipmentOrder};
pub use partition::{key_hash, partition_for};
pub use status::{Status, SubStatus};
