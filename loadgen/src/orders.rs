//! Where a run's orders go: straight into an embedded node's `orders`
//! topic (as the shipment API appends them), through a remote node's
//! `POST /v1/shipments`, or nowhere when the run has no way to create
//! them (carrier events are then processed without order data).
//!
//! The workload's contacts are placeholders; [`deliverable`] turns them
//! into addresses the bundled notification stand-ins accept (an SMTP
//! mailbox, an SMS number, a push token, the marketplace webhook URL).

use std::sync::{Arc, Mutex, PoisonError};

use dropline_adapters::http::{ContactInput, CreateShipment, PromisedWindow};
use dropline_log::{AppendRequest, Log, LogError, Record};
use dropline_operators::model::time::format_rfc3339_ms;
use dropline_operators::model::{Channel, ShipmentOrder, partition_for};
use tokio::sync::{Semaphore, mpsc};

use crate::error::LoadgenError;
use crate::recorder::{Kind, Recorder};

/// The topic orders are appended to.
pub const ORDERS_TOPIC: &str = "orders";
/// Most orders appended in one batch by the order writer.
pub const ORDERS_PER_APPEND_MAX: usize = 4_096;
/// Orders queued for the order writer before the sender waits.
pub const ORDER_QUEUE_MAX: usize = 65_536;
/// Order creations in flight against a remote node's API.
pub const HTTP_ORDERS_INFLIGHT_MAX: usize = 64;

/// Rewrites the workload's placeholder contacts into deliverable
/// addresses: `<buyer>@buyers.example`, a +1 555 number, a push token, and
/// `hooks_url` for the marketplace webhook (the webhook contact is dropped
/// when there is no receiver: the API refuses an address that is not a
/// URL).
pub fn deliverable(order: &mut ShipmentOrder, hooks_url: Option<&str>) {
    let buyer = order.buyer_id.to_lowercase();
    let digits: u64 = buyer
        .bytes()
        .filter(u8::is_ascii_digit)
        .fold(0, |n, d| (n * 10 + u64::from(d - b'0')) % 10_000_000);
    let marketplace = order.marketplace.clone();
    order
        .contacts
        .retain(|c| c.channel != Channel::Webhook || hooks_url.is_some());
    for c in &mut order.contacts {
        c.address = match c.channel {
            Channel::Email => format!("{buyer}@buyers.example"),
            Channel::Sms => format!("+1555{digits:07}"),
            Channel::Push => format!("push-{buyer}"),
            Channel::Webhook => format!(
                "{}/hooks/{marketplace}",
                hooks_url.unwrap_or_default().trim_end_matches('/')
            ),
        };
    }
}

/// The API body creating `order`.
pub fn create_request(order: &ShipmentOrder) -> CreateShipment {
    CreateShipment {
        tracking_number: order.tracking_number.clone(),
        carrier: order.carrier.as_str().to_string(),
        order_id: order.order_id.clone(),
        marketplace: order.marketplace.clone(),
        seller: order.seller.clone(),
        buyer_id: order.buyer_id.clone(),
        skus: order.skus.clone(),
        promised_window: PromisedWindow {
            from: format_rfc3339_ms(order.promised_from_ms),
            to: format_rfc3339_ms(order.promised_to_ms),
        },
        buyer_locale: order.buyer_locale.clone(),
        buyer_time_zone: order.buyer_time_zone.clone(),
        destination_postal_code: order.destination_postal_code.clone(),
        drop: order.drop,
        contacts: order
            .contacts
            .iter()
            .map(|c| ContactInput {
                channel: c.channel.as_str().to_string(),
                address: c.address.clone(),
                consent: c.consent,
            })
            .collect(),
    }
}

type Queued = (ShipmentOrder, u64);

/// Appends orders to a log from a thread of its own, in batches per
/// partition, acknowledging each once its batch is durable.
pub struct LogOrders {
    tx: Mutex<Option<mpsc::Sender<Queued>>>,
    writer: Mutex<Option<std::thread::JoinHandle<Result<(), LogError>>>>,
}

impl std::fmt::Debug for LogOrders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogOrders").finish_non_exhaustive()
    }
}

impl LogOrders {
    /// Starts the writer for `log`'s `orders` topic of `partitions`.
    pub fn start(
        log: Arc<Log>,
        partitions: u32,
        recorder: Arc<Recorder>,
    ) -> Result<LogOrders, LoadgenError> {
        let (tx, rx) = mpsc::channel(ORDER_QUEUE_MAX);
        let writer = std::thread::Builder::new()
            .name("loadgen-orders".into())
            .spawn(move || write_orders(&log, partitions, rx, &recorder))
            .map_err(LoadgenError::io("loadgen-orders thread"))?;
        Ok(LogOrders {
            tx: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
        })
    }

    /// Queues one order (waits while the queue is full).
    pub async fn submit(&self, order: ShipmentOrder, intended_us: u64) -> Result<(), LoadgenError> {
        let tx = self
            .tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let Some(tx) = tx else {
            return Err(LoadgenError::OrderWriter {
                reason: "already drained".into(),
            });
        };
        tx.send((order, intended_us))
            .await
            .map_err(|_| LoadgenError::OrderWriter {
                reason: "the writer thread ended".into(),
            })
    }

    /// Waits until every queued order is durable.
    pub async fn drain(&self) -> Result<(), LoadgenError> {
        drop(
            self.tx
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        let writer = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(writer) = writer else { return Ok(()) };
        let joined = tokio::task::spawn_blocking(move || writer.join())
            .await
            .map_err(|e| LoadgenError::OrderWriter {
                reason: e.to_string(),
            })?;
        match joined {
            Ok(r) => Ok(r?),
            Err(_) => Err(LoadgenError::OrderWriter {
                reason: "the writer thread panicked".into(),
            }),
        }
    }
}

fn write_orders(
    log: &Log,
    partitions: u32,
    mut rx: mpsc::Receiver<Queued>,
    recorder: &Recorder,
) -> Result<(), LogError> {
    let parts = (0..partitions)
        .map(|p| log.partition(ORDERS_TOPIC, p))
        .collect::<Result<Vec<_>, _>>()?;
    let mut batch: Vec<Queued> = Vec::with_capacity(ORDERS_PER_APPEND_MAX);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < ORDERS_PER_APPEND_MAX {
            match rx.try_recv() {
                Ok(q) => batch.push(q),
                Err(_) => break,
            }
        }
        for (p, part) in parts.iter().enumerate() {
            let mine: Vec<&Queued> = batch
                .iter()
                .filter(|(o, _)| {
                    partition_for(o.tracking_number.as_bytes(), partitions) == p as u32
                })
                .collect();
            if mine.is_empty() {
                continue;
            }
            let values: Vec<Vec<u8>> = mine.iter().map(|(o, _)| o.encode()).collect();
            let records: Vec<Record<'_>> = mine
                .iter()
                .zip(&values)
                .map(|((o, _), v)| Record {
                    key: o.tracking_number.as_bytes(),
                    value: v,
                })
                .collect();
            part.append(&AppendRequest {
                records: &records,
                producer: None,
            })?;
            let intended: Vec<u64> = mine.iter().map(|(_, t)| *t).collect();
            recorder.acked(Kind::Order, &intended);
        }
        batch.clear();
    }
    Ok(())
}

/// Creates orders through a node's `POST /v1/shipments`.
#[derive(Debug)]
pub struct HttpOrders {
    url: String,
    client: reqwest::Client,
    inflight: Arc<Semaphore>,
    recorder: Arc<Recorder>,
}

impl HttpOrders {
    /// Orders go to `http://{addr}/v1/shipments`.
    pub fn new(
        addr: std::net::SocketAddr,
        recorder: Arc<Recorder>,
    ) -> Result<HttpOrders, LoadgenError> {
        Ok(HttpOrders {
            url: format!("http://{addr}/v1/shipments"),
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()?,
            inflight: Arc::new(Semaphore::new(HTTP_ORDERS_INFLIGHT_MAX)),
            recorder,
        })
    }

    /// Starts one creation (waits while too many are in flight).
    pub async fn submit(&self, order: ShipmentOrder, intended_us: u64) -> Result<(), LoadgenError> {
        let Ok(permit) = self.inflight.clone().acquire_owned().await else {
            return Ok(());
        };
        let (client, url, recorder) =
            (self.client.clone(), self.url.clone(), self.recorder.clone());
        tokio::spawn(async move {
            let body = create_request(&order);
            match client.post(&url).json(&body).send().await {
                Ok(r) if r.status().is_success() => {
                    recorder.acked(Kind::Order, &[intended_us]);
                }
                answer => {
                    if recorder.counts().orders_failed == 0 {
                        let reason = match answer {
                            Ok(r) => {
                                format!("{}: {}", r.status(), r.text().await.unwrap_or_default())
                            }
                            Err(e) => e.to_string(),
                        };
                        tracing::warn!(%reason, tracking_number = %order.tracking_number, "order creation refused");
                    }
                    recorder.failed(Kind::Order, 1);
                }
            }
            drop(permit);
        });
        Ok(())
    }

    /// Waits for every creation in flight.
    pub async fn drain(&self) -> Result<(), LoadgenError> {
        let _all = self
            .inflight
            .acquire_many(HTTP_ORDERS_INFLIGHT_MAX as u32)
            .await;
        Ok(())
    }
}

/// Where a run's orders go.
#[derive(Debug)]
pub enum OrderSink {
    /// Not sent (the run has no way to create them).
    Skip,
    /// Appended to an embedded node's log.
    Log(LogOrders),
    /// Created through a node's HTTP API.
    Http(HttpOrders),
}

impl OrderSink {
    /// Sends one order.
    pub async fn submit(&self, order: ShipmentOrder, intended_us: u64) -> Result<(), LoadgenError> {
        match self {
            OrderSink::Skip => Ok(()),
            OrderSink::Log(l) => l.submit(order, intended_us).await,
            OrderSink::Http(h) => h.submit(order, intended_us).await,
        }
    }

    /// Waits until every order sent is acknowledged.
    pub async fn drain(&self) -> Result<(), LoadgenError> {
        match self {
            OrderSink::Skip => Ok(()),
            OrderSink::Log(l) => l.drain().await,
            OrderSink::Http(h) => h.drain().await,
        }
    }

    /// Where orders go, for reports.
    pub fn describe(&self) -> &'static str {
        match self {
            OrderSink::Skip => "not sent",
            OrderSink::Log(_) => "appended to the embedded node's orders topic",
            OrderSink::Http(_) => "POST /v1/shipments",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{WorkItem, Workload, WorkloadConfig};

    fn first_order() -> ShipmentOrder {
        Workload::new(WorkloadConfig {
            shipments: 3,
            ..WorkloadConfig::default()
        })
        .find_map(|(_, item)| match item {
            WorkItem::Order(o) => Some(o),
            _ => None,
        })
        .unwrap()
    }

    #[test]
    fn contacts_become_deliverable_addresses() {
        let mut o = first_order();
        deliverable(&mut o, Some("http://127.0.0.1:9/"));
        let address = |ch| {
            o.contacts
                .iter()
                .find(|c| c.channel == ch)
                .map(|c| c.address.clone())
        };
        assert!(
            address(Channel::Email)
                .unwrap()
                .ends_with("@buyers.example")
        );
        assert!(address(Channel::Sms).unwrap().starts_with("+1555"));
        assert_eq!(
            address(Channel::Webhook).unwrap(),
            format!("http://127.0.0.1:9/hooks/{}", o.marketplace)
        );
        let body = serde_json::to_value(create_request(&o)).unwrap();
        assert_eq!(body["contacts"].as_array().unwrap().len(), 4);
        assert_eq!(body["carrier"], o.carrier.as_str());
    }

    #[test]
    fn without_a_receiver_the_webhook_contact_is_dropped() {
        let mut o = first_order();
        deliverable(&mut o, None);
        assert!(o.contacts.iter().all(|c| c.channel != Channel::Webhook));
        assert_eq!(o.contacts.len(), 3);
    }
}
