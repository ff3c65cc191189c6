//! Finding whom to send to: the order record at the intent's
//! `order_offset` in `orders`, its contact for the channel, and the opening
//! of that contact's sealed address.
//!
//! Why addresses are looked up at send time: intents and operator state
//! never hold personal data; only this edge opens an address, right before
//! it is used. The API seals addresses in `orders`; [`ContactOpener`] is
//! the seam where the opening happens ([`PlaintextContacts`] until sealing
//! exists).
//!
//! Marketplace webhooks go to the endpoint the node's configuration names
//! for the order's marketplace when there is one (the operator registered
//! it), else to the webhook contact the order carries.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use dropline_log::{Log, LogError};
use dropline_operators::model::{Channel, ShipmentOrder};

use super::notification::{Notification, ResolvedContact};

/// Why an address could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// The sealed value does not authenticate (wrong key or tampered).
    #[error("the sealed address does not open")]
    DoesNotOpen,
}

/// Opens an address as stored in the `orders` topic.
pub trait ContactOpener: Send + Sync + std::fmt::Debug {
    /// The plain address for `channel`.
    fn open(&self, channel: Channel, stored: &str) -> Result<String, OpenError>;
}

/// Addresses are stored in the clear.
#[derive(Debug, Default, Clone, Copy)]
pub struct PlaintextContacts;

impl ContactOpener for PlaintextContacts {
    fn open(&self, _channel: Channel, stored: &str) -> Result<String, OpenError> {
        Ok(stored.to_string())
    }
}

/// Why a notification has no contact to send to.
#[derive(Debug, thiserror::Error)]
pub enum ContactError {
    /// Reading `orders` failed.
    #[error("reading the order at {topic}[{partition}]@{offset}: {source}")]
    Log {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The offset.
        offset: u64,
        /// The log's error.
        #[source]
        source: LogError,
    },
    /// No order record at that offset (or it does not decode).
    #[error("no order at {partition}@{offset}")]
    NoOrder {
        /// The partition.
        partition: u32,
        /// The offset.
        offset: u64,
    },
    /// The order has no contact for the channel.
    #[error("the order has no {channel:?} contact")]
    NoContact {
        /// The channel.
        channel: Channel,
    },
    /// The buyer did not consent to this channel for this order.
    #[error("no consent for {channel:?} on this order")]
    NoConsent {
        /// The channel.
        channel: Channel,
    },
    /// The address did not open.
    #[error(transparent)]
    Open(#[from] OpenError),
}

/// Reads orders from the log, with a bounded cache.
#[derive(Debug)]
pub struct OrderContacts {
    log: Arc<Log>,
    topic: String,
    opener: Arc<dyn ContactOpener>,
    cache: HashMap<(u32, u64), Arc<ShipmentOrder>>,
    cache_max: usize,
    webhook_endpoints: BTreeMap<String, String>,
}

/// Bytes read around an order record; orders are small.
const ORDER_READ_BYTES: usize = 64 * 1024;

impl OrderContacts {
    /// Reads `topic` of `log`, opening addresses with `opener`; webhooks
    /// of a marketplace in `webhook_endpoints` go to its endpoint.
    pub fn new(
        log: Arc<Log>,
        topic: &str,
        opener: Arc<dyn ContactOpener>,
        cache_max: usize,
        webhook_endpoints: BTreeMap<String, String>,
    ) -> OrderContacts {
        OrderContacts {
            log,
            topic: topic.to_string(),
            opener,
            cache: HashMap::new(),
            cache_max: cache_max.max(1),
            webhook_endpoints,
        }
    }

    fn order(&mut self, partition: u32, offset: u64) -> Result<Arc<ShipmentOrder>, ContactError> {
        if let Some(o) = self.cache.get(&(partition, offset)) {
            return Ok(o.clone());
        }
        let log_err = |source| ContactError::Log {
            topic: self.topic.clone(),
            partition,
            offset,
            source,
        };
        let p = self
            .log
            .partition(&self.topic, partition)
            .map_err(log_err)?;
        let batches = p.read(offset, ORDER_READ_BYTES).map_err(log_err)?;
        // Decode and cache every order of the batch read: orders created
        // together (a drop's checkout burst) are looked up together.
        if self.cache.len() >= self.cache_max {
            self.cache.clear();
        }
        let mut found = None;
        for b in &batches {
            for r in b.records() {
                if r.offset != offset && self.cache.len() >= self.cache_max {
                    continue;
                }
                if let Some(o) = ShipmentOrder::decode(r.value) {
                    let o = Arc::new(o);
                    if r.offset == offset {
                        found = Some(o.clone());
                    }
                    self.cache.insert((partition, r.offset), o);
                }
            }
        }
        let order = found.ok_or(ContactError::NoOrder { partition, offset })?;
        Ok(order)
    }

    /// The contact for `n`, whose record is in `partition` of its notify
    /// topic (the order is in the same partition of `orders`).
    pub fn resolve(
        &mut self,
        n: &Notification,
        partition: u32,
    ) -> Result<ResolvedContact, ContactError> {
        let order = self.order(partition, n.order_offset)?;
        if n.channel == Channel::Webhook
            && let Some(endpoint) = self.webhook_endpoints.get(&order.marketplace)
        {
            return Ok(ResolvedContact {
                address: endpoint.clone(),
                time_zone: order.buyer_time_zone.clone(),
                locale: order.buyer_locale.clone(),
            });
        }
        let contact = order
            .contacts
            .iter()
            .find(|c| c.channel == n.channel)
            .ok_or(ContactError::NoContact { channel: n.channel })?;
        if !contact.consent {
            return Err(ContactError::NoConsent { channel: n.channel });
        }
        Ok(ResolvedContact {
            address: self.opener.open(n.channel, &contact.address)?,
            time_zone: order.buyer_time_zone.clone(),
            locale: order.buyer_locale.clone(),
        })
    }
}
