//! `POST /v1/shipments`: shipment creation right after checkout.
//!
//! Why idempotency lives in the log and not in a table: a storefront
//! retries on timeouts, across node restarts. Before appending, the handler
//! looks the tracking number up in `orders` through the key index (the
//! authoritative, durable answer, milliseconds at any log size); a retry
//! of the same (marketplace, order id, tracking number) gets the original
//! offset back with `created: false`, and different data under the same
//! keys is a 409. Concurrent requests for one tracking number are
//! serialised by an in-flight table, so two racing retries cannot both
//! append. An order with several parcels is created once per parcel.
//!
//! Contact addresses are sealed before the append ([`super::seal`]). Bad
//! input is answered with a typed problem, counted, and kept in
//! `dead-letters` with its payload sealed too (it may hold an address).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dropline_log::{AppendRequest, Log, LogError, Record};
use dropline_operators::model::time::parse_rfc3339_ms;
use dropline_operators::model::{Carrier, Channel, Contact, ShipmentOrder, partition_for};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::app::App;
use super::dead_letter::{self, DeadLetterSource};
use super::problem::{Problem, ProblemKind};
use super::seal::ContactSealer;
use super::views::ORDERS_TOPIC;

/// Most SKUs per parcel.
pub const SKUS_MAX: usize = 100;
/// Most contacts per order.
pub const CONTACTS_MAX: usize = 8;
/// Longest contact address, bytes.
pub const ADDRESS_BYTES_MAX: usize = 512;
/// Longest tracking number, bytes (the operators' inline capacity).
pub const TRACKING_NUMBER_BYTES_MAX: usize = 40;

/// The promised delivery window, RFC 3339 instants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromisedWindow {
    /// Start.
    pub from: String,
    /// End.
    pub to: String,
}

/// One way to reach the buyer, as the storefront sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactInput {
    /// `webhook`, `email`, `sms` or `push`.
    pub channel: String,
    /// The address (sealed before it is stored).
    pub address: String,
    /// Whether the buyer consented to this channel.
    pub consent: bool,
}

/// The body of `POST /v1/shipments`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateShipment {
    /// The carrier's tracking number.
    pub tracking_number: String,
    /// `ups`, `fedex`, `usps` or `dhl`.
    pub carrier: String,
    /// The marketplace's order id.
    pub order_id: String,
    /// The marketplace.
    pub marketplace: String,
    /// The seller.
    pub seller: String,
    /// Stable buyer id (caps and opt-outs key on it).
    pub buyer_id: String,
    /// Items in the parcel.
    #[serde(default)]
    pub skus: Vec<String>,
    /// The promised delivery window.
    pub promised_window: PromisedWindow,
    /// BCP 47 locale.
    pub buyer_locale: String,
    /// IANA time zone.
    pub buyer_time_zone: String,
    /// Destination postal code.
    pub destination_postal_code: String,
    /// Part of a drop.
    #[serde(default)]
    pub drop: bool,
    /// Ways to reach the buyer.
    #[serde(default)]
    pub contacts: Vec<ContactInput>,
}

/// The answer to a creation (201 when created, 200 for a repeat).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipmentCreated {
    /// The tracking number.
    pub tracking_number: String,
    /// The carrier.
    pub carrier: Carrier,
    /// False when this repeated an earlier creation.
    pub created: bool,
    /// Partition of `orders` holding the order.
    pub partition: u32,
    /// Offset of the order record.
    pub offset: u64,
    /// Unlocks the full timeline without the postal code.
    pub order_token: String,
    /// Path of the tracking page.
    pub tracking_url: String,
}

fn printable(s: &str) -> bool {
    !s.chars().any(char::is_control)
}

fn text(field: &'static str, v: &str, max: usize) -> Result<(), Problem> {
    if v.is_empty() || v.len() > max {
        return Err(Problem::invalid(field, format!("must be 1..={max} bytes")));
    }
    if !printable(v) {
        return Err(Problem::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

fn valid_address(channel: Channel, a: &str) -> bool {
    match channel {
        Channel::Email => {
            let mut parts = a.splitn(2, '@');
            matches!((parts.next(), parts.next()), (Some(l), Some(d)) if !l.is_empty() && d.contains('.'))
                && !a.contains(char::is_whitespace)
        }
        Channel::Sms => a
            .strip_prefix('+')
            .is_some_and(|d| (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit())),
        Channel::Push => !a.contains(char::is_whitespace),
        Channel::Webhook => a.starts_with("https://") || a.starts_with("http://"),
    }
}

/// Validates a request and builds the order (addresses still in the clear).
pub fn validate(req: &CreateShipment) -> Result<ShipmentOrder, Problem> {
    let tn = &req.tracking_number;
    if tn.len() < 4
        || tn.len() > TRACKING_NUMBER_BYTES_MAX
        || !tn.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(Problem::invalid(
            "tracking_number",
            format!("must be 4..={TRACKING_NUMBER_BYTES_MAX} ASCII letters and digits"),
        ));
    }
    let carrier = Carrier::parse(&req.carrier)
        .ok_or_else(|| Problem::invalid("carrier", "must be one of ups, fedex, usps, dhl"))?;
    text("order_id", &req.order_id, 64)?;
    text("marketplace", &req.marketplace, 32)?;
    text(
        "seller",
        &req.seller,
        dropline_operators::ops::SELLER_BYTES_MAX,
    )?;
    text("buyer_id", &req.buyer_id, 64)?;
    if req.skus.len() > SKUS_MAX {
        return Err(Problem::invalid("skus", format!("at most {SKUS_MAX} SKUs")));
    }
    for s in &req.skus {
        text("skus", s, 64)?;
    }
    let from = parse_rfc3339_ms(&req.promised_window.from)
        .ok_or_else(|| Problem::invalid("promised_window.from", "must be an RFC 3339 instant"))?;
    let to = parse_rfc3339_ms(&req.promised_window.to)
        .ok_or_else(|| Problem::invalid("promised_window.to", "must be an RFC 3339 instant"))?;
    if to < from {
        return Err(Problem::invalid(
            "promised_window.to",
            "must not be before `from`",
        ));
    }
    let loc = &req.buyer_locale;
    if loc.len() < 2
        || loc.len() > 35
        || !loc.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(Problem::invalid(
            "buyer_locale",
            "must be a BCP 47 tag such as en-US",
        ));
    }
    if req.buyer_time_zone.parse::<chrono_tz::Tz>().is_err() {
        return Err(Problem::invalid(
            "buyer_time_zone",
            "must be an IANA time zone such as America/Chicago",
        ));
    }
    let pc = &req.destination_postal_code;
    if pc.is_empty()
        || pc.len() > 12
        || !pc
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b' ' || b == b'-')
    {
        return Err(Problem::invalid(
            "destination_postal_code",
            "must be 1..=12 letters, digits, spaces or dashes",
        ));
    }
    if req.contacts.len() > CONTACTS_MAX {
        return Err(Problem::invalid(
            "contacts",
            format!("at most {CONTACTS_MAX} contacts"),
        ));
    }
    let mut contacts = Vec::with_capacity(req.contacts.len());
    for c in &req.contacts {
        let channel = Channel::parse(&c.channel).ok_or_else(|| {
            Problem::invalid(
                "contacts.channel",
                "must be one of webhook, email, sms, push",
            )
        })?;
        if c.address.is_empty()
            || c.address.len() > ADDRESS_BYTES_MAX
            || !valid_address(channel, &c.address)
        {
            return Err(Problem::invalid(
                "contacts.address",
                format!("not a valid {} address", channel.as_str()),
            ));
        }
        contacts.push(Contact {
            channel,
            address: c.address.clone(),
            consent: c.consent,
        });
    }
    Ok(ShipmentOrder {
        tracking_number: tn.clone(),
        carrier,
        marketplace: req.marketplace.clone(),
        seller: req.seller.clone(),
        order_id: req.order_id.clone(),
        skus: req.skus.clone(),
        buyer_id: req.buyer_id.clone(),
        promised_from_ms: from,
        promised_to_ms: to,
        buyer_locale: req.buyer_locale.clone(),
        buyer_time_zone: req.buyer_time_zone.clone(),
        destination_postal_code: req.destination_postal_code.clone(),
        drop: req.drop,
        contacts,
    })
}

/// Tracking numbers whose creation is being appended right now.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    map: Mutex<HashMap<String, Arc<Notify>>>,
}

/// Removes its tracking number from the in-flight table when dropped.
struct InFlightGuard {
    table: Arc<InFlight>,
    key: String,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let mut map = self
            .table
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = map.remove(&self.key) {
            n.notify_waiters();
        }
    }
}

impl InFlight {
    async fn enter(self: &Arc<Self>, key: &str) -> InFlightGuard {
        loop {
            let notify = {
                let mut map = self
                    .map
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                match map.get(key) {
                    Some(n) => n.clone(),
                    None => {
                        map.insert(key.to_string(), Arc::new(Notify::new()));
                        return InFlightGuard {
                            table: self.clone(),
                            key: key.to_string(),
                        };
                    }
                }
            };
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // The guard may have been dropped between the lock and enable().
            let still = self
                .map
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(key)
                .is_some_and(|n| Arc::ptr_eq(n, &notify));
            if still {
                notified.await;
            }
        }
    }
}

/// What an existing order record says about a creation request.
enum Existing {
    None,
    Same { partition: u32, offset: u64 },
    Conflict(&'static str),
}

fn same_order(old: &ShipmentOrder, new: &ShipmentOrder, sealer: &ContactSealer) -> bool {
    let plain = |o: &ShipmentOrder| {
        let mut o = o.clone();
        for c in &mut o.contacts {
            if ContactSealer::is_sealed(&c.address) {
                c.address = sealer.open(c.channel, &c.address).unwrap_or_default();
            }
        }
        o
    };
    plain(old) == plain(new)
}

fn find_existing(
    log: &Log,
    partition: u32,
    order: &ShipmentOrder,
    sealer: &ContactSealer,
) -> Result<Existing, LogError> {
    let part = log.partition(ORDERS_TOPIC, partition)?;
    for r in part.lookup_key(order.tracking_number.as_bytes())? {
        let Some(old) = ShipmentOrder::decode(&r.value) else {
            continue;
        };
        if old.marketplace != order.marketplace || old.order_id != order.order_id {
            return Ok(Existing::Conflict(
                "the tracking number belongs to another order",
            ));
        }
        return Ok(if same_order(&old, order, sealer) {
            Existing::Same {
                partition,
                offset: r.offset,
            }
        } else {
            Existing::Conflict("the order exists with different data")
        });
    }
    Ok(Existing::None)
}

fn orders_partitions(log: &Log) -> Option<u32> {
    log.topics()
        .into_iter()
        .find(|t| t.name == ORDERS_TOPIC)
        .map(|t| t.config.partitions)
}

/// Outcome of the blocking part of a creation.
enum Outcome {
    Created { partition: u32, offset: u64 },
    Repeat { partition: u32, offset: u64 },
}

fn create_blocking(
    log: &Log,
    sealer: &ContactSealer,
    order: &ShipmentOrder,
) -> Result<Outcome, Problem> {
    let partitions = orders_partitions(log).ok_or_else(|| {
        Problem::new(
            ProblemKind::Unavailable,
            "the orders topic does not exist yet",
        )
        .retry_after(1)
    })?;
    let partition = partition_for(order.tracking_number.as_bytes(), partitions);
    let internal = |e: LogError| Problem::new(ProblemKind::Internal, format!("orders log: {e}"));
    match find_existing(log, partition, order, sealer).map_err(internal)? {
        Existing::Same { partition, offset } => return Ok(Outcome::Repeat { partition, offset }),
        Existing::Conflict(why) => return Err(Problem::new(ProblemKind::Conflict, why)),
        Existing::None => {}
    }
    let mut sealed = order.clone();
    for c in &mut sealed.contacts {
        c.address = sealer
            .seal(c.channel, &c.address)
            .map_err(|e| Problem::new(ProblemKind::Internal, format!("sealing a contact: {e}")))?;
    }
    let value = sealed.encode();
    let part = log.partition(ORDERS_TOPIC, partition).map_err(internal)?;
    let ack = part
        .append(&AppendRequest {
            records: &[Record {
                key: order.tracking_number.as_bytes(),
                value: &value,
            }],
            producer: None,
        })
        .map_err(internal)?;
    Ok(Outcome::Created {
        partition,
        offset: ack.base_offset,
    })
}

/// The handler.
pub(crate) async fn create_shipment(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match create(&app, &headers, &body).await {
        Ok((status, created)) => (status, axum::Json(created)).into_response(),
        Err(p) => {
            app.metrics.creation_rejected(p.kind());
            if matches!(
                p.kind(),
                Some(
                    ProblemKind::MalformedBody
                        | ProblemKind::InvalidField
                        | ProblemKind::Conflict
                        | ProblemKind::Unauthorized
                        | ProblemKind::NotPermitted
                )
            ) {
                dead_letter::keep(&app, DeadLetterSource::CreateShipment, p.kind(), &body).await;
            }
            let unauthorized = p.kind() == Some(ProblemKind::Unauthorized);
            let mut response = p.into_response();
            if unauthorized {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer"),
                );
            }
            response
        }
    }
}

/// The marketplace the request's key may create orders for: `Ok(None)`
/// when the node takes creations without keys.
fn authorize<'a>(app: &'a App, headers: &HeaderMap) -> Result<Option<&'a str>, Problem> {
    let Some(keys) = &app.config.shipment_keys else {
        return Ok(None);
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(presented) = presented else {
        return Err(Problem::new(
            ProblemKind::Unauthorized,
            "send Authorization: Bearer <marketplace key>",
        ));
    };
    // Every key is checked (each in constant time), so the time taken does
    // not say which key came close.
    let mut found = None;
    for key in keys {
        if key.token.verify(presented) && found.is_none() {
            found = Some(key.marketplace.as_str());
        }
    }
    found
        .map(Some)
        .ok_or_else(|| Problem::new(ProblemKind::Unauthorized, "unknown marketplace key"))
}

async fn create(
    app: &Arc<App>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(StatusCode, ShipmentCreated), Problem> {
    let allowed = authorize(app, headers)?;
    let req: CreateShipment = serde_json::from_slice(body)
        .map_err(|e| Problem::new(ProblemKind::MalformedBody, e.to_string()))?;
    if let Some(allowed) = allowed
        && req.marketplace != allowed
    {
        return Err(Problem::new(
            ProblemKind::NotPermitted,
            format!(
                "this key creates orders of marketplace {allowed:?}, not {:?}",
                req.marketplace
            ),
        ));
    }
    let order = validate(&req)?;
    let Ok(_permit) = app.creations.clone().try_acquire_owned() else {
        return Err(
            Problem::new(ProblemKind::Unavailable, "too many creations in flight").retry_after(1),
        );
    };
    let guard = app.in_flight.enter(&order.tracking_number).await;
    let log = app.state.log.clone();
    let sealer = app.state.sealer.clone();
    let order2 = order.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        // The guard lives until the append is done, even if the client
        // went away, so a retry waits for this append instead of racing it.
        let _guard = guard;
        create_blocking(&log, &sealer, &order2)
    })
    .await
    .map_err(|_| Problem::new(ProblemKind::Internal, "the creation task failed"))??;
    let (status, created, partition, offset) = match outcome {
        Outcome::Created { partition, offset } => (StatusCode::CREATED, true, partition, offset),
        Outcome::Repeat { partition, offset } => (StatusCode::OK, false, partition, offset),
    };
    app.metrics.creation_accepted(created);
    Ok((
        status,
        ShipmentCreated {
            tracking_url: format!(
                "/track/{}/{}",
                order.carrier.as_str(),
                order.tracking_number
            ),
            order_token: app
                .state
                .sealer
                .order_token(&order.tracking_number, &order.order_id),
            tracking_number: order.tracking_number,
            carrier: order.carrier,
            created,
            partition,
            offset,
        },
    ))
}
