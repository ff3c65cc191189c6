//! The carrier path: scans pushed as signed carrier webhooks, in each
//! carrier's real format, to the real adapter, which verifies, normalizes,
//! drops repeats and hands new scans to the node over QUIC through its
//! durable spool.
//!
//! The load generator plays the carriers' push side itself rather than
//! letting the carrier simulator push: the simulator pushes on its own
//! clock, and an open-loop measurement needs each webhook sent at its
//! planned time. The bodies are the simulator's renderings and carry its
//! signatures; the simulator itself runs beside the adapter as the target
//! of the adapter's polling backstop (it holds none of the run's parcels,
//! so those polls find nothing the webhooks did not bring).
//!
//! A webhook's acknowledgement is the adapter's 200, which it answers only
//! once every new scan in it is durable in its spool; a 503 (spool full)
//! or a 429 is retried with doubling delays, honoring `Retry-After`, for
//! up to an hour, as carriers do. The node's own acknowledgement of the
//! spooled events follows, and the run waits for it before it audits the
//! log.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use dropline_adapters::carrier::{
    AdapterConfig, AdapterHandle, AdapterMetricsSnapshot, CarrierConfig, ClientSink,
    published_limits, run_adapter,
};
use dropline_adapters::client::{IngestClientConfig, SpoolConfig};
use dropline_operators::model::{Carrier, CarrierEvent, Location};
use tokio::sync::Semaphore;

use crate::audit::{Identity, Ledger};
use crate::carrier_format::{Journey, JourneyScan, render_webhook_batch};
use crate::carrier_sim::{
    CarrierSimConfig, CarrierSimHandle, PerCarrier, run_carrier_sim, sign, signature_header,
};
use crate::error::LoadgenError;
use crate::node::NodeTarget;
use crate::open_loop::Target;
use crate::orders::OrderSink;
use crate::recorder::{Kind, Recorder};
use crate::scenario::Planned;
use crate::workload::WorkItem;

/// How webhooks are pushed.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookConfig {
    /// Scans per webhook body (1: a webhook per scan, as UPS and FedEx
    /// push milestones; more: several parcels of one carrier per body).
    pub scans_per_webhook: usize,
    /// Webhooks in flight at once; beyond it the sender waits (and the
    /// wait is charged to the waiting scans' latency).
    pub inflight_max: usize,
    /// Time a webhook request may take, ms.
    pub timeout_ms: u64,
    /// First retry delay after a 503, 429 or failure, ms (doubling; a
    /// longer `Retry-After` is honored).
    pub retry_initial_ms: u64,
    /// Largest retry delay of its own, ms.
    pub retry_max_ms: u64,
    /// A webhook is given up once retrying it would take longer than this
    /// since its first attempt, ms (carriers retry for hours).
    pub retry_window_ms: u64,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            scans_per_webhook: 1,
            inflight_max: 256,
            timeout_ms: 30_000,
            retry_initial_ms: 50,
            retry_max_ms: 2_000,
            retry_window_ms: 3_600_000,
        }
    }
}

/// The adapter and its companions for one run.
pub struct AdapterRig {
    adapter: AdapterHandle<ClientSink>,
    sim: CarrierSimHandle,
    secrets: PerCarrier<String>,
}

impl std::fmt::Debug for AdapterRig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdapterRig")
            .field("adapter", &self.adapter.addr())
            .finish_non_exhaustive()
    }
}

impl AdapterRig {
    /// Starts the carrier simulator (polling backstop) and an adapter on
    /// the wall clock sending to `node`, with its state and spool under
    /// `state_dir`. `speedup` is the simulator's (the run's) time scale.
    pub async fn start(
        node: &NodeTarget,
        state_dir: &Path,
        speedup: f64,
        start_ms: i64,
    ) -> Result<AdapterRig, LoadgenError> {
        let loopback: std::net::SocketAddr = ([127, 0, 0, 1], 0).into();
        let mut sim_config = CarrierSimConfig::new(loopback);
        sim_config.speedup = if speedup.is_finite() { speedup } else { 1.0 };
        sim_config.start_ms = start_ms;
        let secrets = sim_config.secrets.clone();
        let sim = run_carrier_sim(sim_config).await?;
        let mut config = AdapterConfig::new(loopback, state_dir.join("adapter-state"));
        for carrier in Carrier::ALL {
            *config.carriers.get_mut(carrier) = Some(CarrierConfig {
                base_url: sim.base_url(),
                webhooks: true,
                webhook_secret: secrets.get(carrier).clone(),
                limits: published_limits(carrier),
                inflight_max: 1,
                api_key: String::new(),
            });
        }
        let mut client = IngestClientConfig::new(
            node.addr,
            node.trust.clone(),
            node.adapter.clone(),
            node.token.as_bytes().to_vec(),
        );
        client.server_name = node.server_name.clone();
        client.partitions = node.partitions;
        client.spool = Some(SpoolConfig {
            dir: state_dir.join("spool"),
        });
        let sink = Arc::new(ClientSink::connect(client).await?);
        let adapter = run_adapter(config, sink).await?;
        Ok(AdapterRig {
            adapter,
            sim,
            secrets,
        })
    }

    /// The adapter's base URL (webhooks go to `/webhooks/{carrier}`).
    pub fn base_url(&self) -> String {
        self.adapter.base_url()
    }

    /// Starts tracking a parcel of a drop (as the node's orders would).
    pub fn register(&self, tracking_number: &str, carrier: Carrier) -> Result<(), LoadgenError> {
        self.adapter.register(tracking_number, carrier, true)?;
        Ok(())
    }

    /// The adapter's counters.
    pub fn metrics(&self) -> AdapterMetricsSnapshot {
        self.adapter.metrics()
    }

    /// Events the node acknowledged to the adapter.
    pub fn node_acked(&self) -> u64 {
        self.adapter.sink().client().metrics().events_acked
    }

    /// Waits until the node acknowledged every event the adapter took.
    pub async fn flush(&self) -> Result<(), LoadgenError> {
        self.adapter.sink().client().flush().await?;
        Ok(())
    }

    /// Stops the adapter, its ingest client (so that nothing writes to the
    /// spool any more) and the simulator.
    pub async fn shutdown(self) {
        let sink = self.adapter.sink().clone();
        self.adapter.shutdown().await;
        if let Ok(sink) = Arc::try_unwrap(sink) {
            sink.abort().await;
        }
        self.sim.shutdown().await;
    }
}

/// A scan as the carrier formats take it (locations upper-case, as the
/// normalizers give them back).
fn journey_scan(e: &CarrierEvent) -> JourneyScan {
    let up = |s: &Option<String>| s.as_ref().map(|v| v.to_uppercase());
    JourneyScan {
        status: e.status,
        sub_status: e.sub_status,
        occurred_at_ms: e.occurred_at_ms,
        utc_offset_minutes: e.utc_offset_minutes.unwrap_or(0),
        location: Location {
            city: up(&e.location.city),
            region: up(&e.location.region),
            postal_code: e.location.postal_code.clone(),
            country: up(&e.location.country),
        },
    }
}

/// Scans grouped into journeys per parcel, first appearance first.
fn journeys(scans: &[(CarrierEvent, u64)]) -> Vec<Journey> {
    let mut order: Vec<Journey> = Vec::new();
    let mut at: HashMap<&str, usize> = HashMap::new();
    for (e, _) in scans {
        let i = *at.entry(e.tracking_number.as_str()).or_insert_with(|| {
            order.push(Journey {
                tracking_number: e.tracking_number.clone(),
                scans: Vec::new(),
            });
            order.len() - 1
        });
        order[i].scans.push(journey_scan(e));
    }
    order
}

/// One webhook on its way.
struct Push {
    carrier: Carrier,
    body: axum::body::Bytes,
    intended_us: Vec<u64>,
    ids: Vec<u64>,
}

/// Scans to the adapter as webhooks, orders to an order sink.
pub struct WebhookTarget {
    rig: AdapterRig,
    config: WebhookConfig,
    client: reqwest::Client,
    pending: Mutex<PerCarrier<Vec<(CarrierEvent, u64)>>>,
    inflight: Arc<Semaphore>,
    recorder: Arc<Recorder>,
    ledger: Arc<Ledger>,
    orders: OrderSink,
}

impl std::fmt::Debug for WebhookTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookTarget")
            .field("rig", &self.rig)
            .finish_non_exhaustive()
    }
}

impl WebhookTarget {
    /// Pushes to `rig`'s adapter.
    pub fn new(
        rig: AdapterRig,
        config: WebhookConfig,
        recorder: Arc<Recorder>,
        orders: OrderSink,
    ) -> Result<WebhookTarget, LoadgenError> {
        if config.scans_per_webhook == 0 || config.inflight_max == 0 {
            return Err(LoadgenError::InvalidConfig {
                field: "scans_per_webhook/inflight_max",
                reason: "must be positive",
            });
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms))
            .pool_max_idle_per_host(config.inflight_max)
            .build()?;
        Ok(WebhookTarget {
            inflight: Arc::new(Semaphore::new(config.inflight_max)),
            rig,
            config,
            client,
            pending: Mutex::new(PerCarrier::default()),
            recorder,
            ledger: Arc::new(Ledger::new(Identity::Scan)),
            orders,
        })
    }

    /// What the adapter acknowledged.
    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    /// The adapter and simulator.
    pub fn rig(&self) -> &AdapterRig {
        &self.rig
    }

    /// Stops pushing; returns the rig.
    pub fn into_rig(self) -> AdapterRig {
        self.rig
    }

    fn take(&self, carrier: Carrier, all: bool) -> Option<Vec<(CarrierEvent, u64)>> {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let p = pending.get_mut(carrier);
        if p.is_empty() || (!all && p.len() < self.config.scans_per_webhook) {
            return None;
        }
        Some(std::mem::take(p))
    }

    async fn push(&self, carrier: Carrier, scans: Vec<(CarrierEvent, u64)>) {
        let Ok(permit) = self.inflight.clone().acquire_owned().await else {
            return;
        };
        let url = format!("{}/webhooks/{}", self.rig.base_url(), carrier.as_str());
        let secret = self.rig.secrets.get(carrier).clone();
        let (client, config) = (self.client.clone(), self.config.clone());
        let (recorder, ledger) = (self.recorder.clone(), self.ledger.clone());
        // Rendering happens off the sender, which must keep the schedule.
        tokio::spawn(async move {
            let push = Push {
                carrier,
                body: render_webhook_batch(carrier, &journeys(&scans)).into(),
                intended_us: scans.iter().map(|(_, t)| *t).collect(),
                ids: scans.iter().map(|(e, _)| Identity::Scan.of(e)).collect(),
            };
            deliver(&client, &url, &secret, &config, push, &recorder, &ledger).await;
            drop(permit);
        });
    }
}

/// The delay a `Retry-After` header (seconds) asks for.
fn retry_after(r: &reqwest::Response) -> Option<Duration> {
    r.headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

async fn deliver(
    client: &reqwest::Client,
    url: &str,
    secret: &str,
    config: &WebhookConfig,
    push: Push,
    recorder: &Recorder,
    ledger: &Ledger,
) {
    let signature = sign(secret.as_bytes(), &push.body);
    let started = tokio::time::Instant::now();
    let window = Duration::from_millis(config.retry_window_ms);
    let mut delay = Duration::from_millis(config.retry_initial_ms.max(1));
    loop {
        let answer = client
            .post(url)
            .header("content-type", "application/json")
            .header(signature_header(push.carrier), &signature)
            // A retry resends the same bytes without copying them.
            .body(push.body.clone())
            .send()
            .await;
        let wait = match answer {
            Ok(r) if r.status().is_success() => {
                recorder.acked(Kind::Event, &push.intended_us);
                ledger.acked(push.ids);
                return;
            }
            Ok(r) if r.status().is_client_error() && !matches!(r.status().as_u16(), 408 | 429) => {
                tracing::warn!(status = %r.status(), carrier = %push.carrier, "webhook refused");
                break;
            }
            // A 503 (spool full) or 429 says when to come back.
            Ok(r) => retry_after(&r).map_or(delay, |after| after.max(delay)),
            Err(_) => delay,
        };
        if started.elapsed() + wait > window {
            tracing::warn!(carrier = %push.carrier, "webhook given up after its retry window");
            break;
        }
        recorder.retried();
        tokio::time::sleep(wait).await;
        delay = (delay * 2).min(Duration::from_millis(config.retry_max_ms.max(1)));
    }
    recorder.failed(Kind::Event, push.intended_us.len() as u64);
}

impl Target for WebhookTarget {
    async fn submit(&self, item: Planned) -> Result<(), LoadgenError> {
        match item.item {
            WorkItem::Order(o) => {
                self.rig.register(&o.tracking_number, o.carrier)?;
                self.orders.submit(o, item.at_us).await
            }
            WorkItem::Event(e) => {
                let carrier = e.carrier;
                self.pending
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get_mut(carrier)
                    .push((e, item.at_us));
                if let Some(scans) = self.take(carrier, false) {
                    self.push(carrier, scans).await;
                }
                Ok(())
            }
            WorkItem::Tick => Ok(()),
        }
    }

    async fn idle(&self) -> Result<(), LoadgenError> {
        for carrier in Carrier::ALL {
            if let Some(scans) = self.take(carrier, true) {
                self.push(carrier, scans).await;
            }
        }
        Ok(())
    }

    async fn drain(&self) -> Result<(), LoadgenError> {
        self.idle().await?;
        let _all = self
            .inflight
            .acquire_many(self.config.inflight_max as u32)
            .await;
        self.orders.drain().await?;
        self.rig.flush().await
    }
}
