//! The bundled carrier simulator (`dropline carrier-sim`).
//!
//! Why it exists: carriers are where real-world failure lives (rate
//! limits, outages, duplicate and reordered webhooks, malformed bodies),
//! and none of it may need the internet to test. The simulator stands in
//! for UPS, FedEx, USPS and DHL at once: it invents a seeded journey for
//! every registered tracking number, lets its scans "happen" on a
//! simulated schedule that can run faster than real time, answers each
//! carrier's polling endpoint in its real shape under its real rate limits
//! (429 with `Retry-After` beyond them), pushes signed webhooks to an
//! adapter, and injects faults on command. It also keeps the ground truth
//! (every scan it invented) and counts every request, including any that
//! arrived while a limit was exhausted: a well-behaved poller keeps that
//! violation counter at zero.
//!
//! Endpoints: UPS `GET /api/track/v1/details/{n}`, FedEx `POST
//! /track/v1/trackingnumbers` (1 to 30 numbers), USPS `GET
//! /tracking/v3/tracking/{n}`, DHL `GET /track/shipments?trackingNumber=`;
//! admin `POST /admin/register`, `POST|GET /admin/faults`, `GET
//! /admin/stats`, `GET /admin/scans[?visible=true]`. Details and the
//! signing schemes: docs/CARRIERS.md, "Carrier simulator".

mod clock;
mod config;
mod journey;
mod limits;
mod routes;
mod signature;
mod state;
mod webhooks;

use std::net::SocketAddr;
use std::sync::Arc;

use dropline_operators::model::Carrier;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use clock::SimClock;
pub use config::{
    CarrierSimConfig, DHL_LIMITS, FEDEX_LIMITS, Faults, JOURNEY_SHAPE_DEFAULT, JourneyShape,
    PerCarrier, RateWindow, SHIPMENTS_MAX_DEFAULT, UPS_LIMITS, USPS_LIMITS, WebhookTarget,
    real_limits,
};
pub use routes::{REGISTER_COUNT_MAX, STORM_RETRY_AFTER_S};
pub use signature::{FEDEX_SIGNATURE_HEADER, HMAC_SIGNATURE_HEADER, sign, signature_header};
pub use state::{
    CarrierCounters, CarrierSimStats, GroundTruthScan, RegisterError, TRACKING_NUMBER_BYTES_MAX,
};

use state::SimState;

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum CarrierSimError {
    /// Binding the listening socket failed.
    #[error("binding {addr} failed: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// A running simulator; [`CarrierSimHandle::shutdown`] stops it (dropping
/// the handle stops it too).
pub struct CarrierSimHandle {
    addr: SocketAddr,
    sim: Arc<SimState>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    pusher: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for CarrierSimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CarrierSimHandle")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Starts the simulator on the current tokio runtime.
pub async fn run_carrier_sim(
    config: CarrierSimConfig,
) -> Result<CarrierSimHandle, CarrierSimError> {
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|source| CarrierSimError::Bind {
            addr: config.bind,
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| CarrierSimError::Bind {
            addr: config.bind,
            source,
        })?;
    let webhook = config.webhook.clone();
    let sim = Arc::new(SimState::new(config));
    let router = routes::router(sim.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
            let _ = stopped.await;
        });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "carrier simulator stopped");
        }
    });
    let pusher = webhook.map(|target| webhooks::start(sim.clone(), target));
    Ok(CarrierSimHandle {
        addr,
        sim,
        stop: Some(stop),
        server: Some(server),
        pusher,
    })
}

impl CarrierSimHandle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`, the base URL pollers are configured with.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The simulator's clock.
    pub fn clock(&self) -> SimClock {
        self.sim.clock
    }

    /// Registers tracking numbers; returns how many were new.
    pub fn register(&self, carrier: Carrier, numbers: &[String]) -> Result<usize, RegisterError> {
        self.sim.register(carrier, numbers)
    }

    /// Generates and registers `count` real-looking numbers.
    pub fn register_generated(
        &self,
        carrier: Carrier,
        count: usize,
    ) -> Result<Vec<String>, RegisterError> {
        self.sim.register_generated(carrier, count)
    }

    /// Every registered tracking number of `carrier`, in registration order.
    pub fn tracking_numbers(&self, carrier: Carrier) -> Vec<String> {
        self.sim
            .lock()
            .shipments
            .iter()
            .filter(|s| s.carrier == carrier)
            .map(|s| s.journey.tracking_number.clone())
            .collect()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> CarrierSimStats {
        self.sim.stats()
    }

    /// Every invented scan (`visible_only`: only those that happened by
    /// now), shipment by shipment, oldest first.
    pub fn ground_truth(&self, visible_only: bool) -> Vec<GroundTruthScan> {
        self.sim.ground_truth(visible_only)
    }

    /// Simulated time of the last scan of any journey.
    pub fn last_scan_ms(&self) -> Option<i64> {
        self.sim.last_scan_ms()
    }

    /// The faults in force.
    pub fn faults(&self) -> Faults {
        self.sim.lock().faults.clone()
    }

    /// Replaces the faults in force.
    pub fn set_faults(&self, faults: Faults) {
        self.sim.lock().faults = faults;
    }

    /// Starts pushing webhooks to `target` (replacing any earlier target),
    /// for adapters started after the simulator.
    pub fn set_webhook_target(&mut self, target: WebhookTarget) {
        if let Some(p) = self.pusher.take() {
            p.abort();
        }
        self.pusher = Some(webhooks::start(self.sim.clone(), target));
    }

    /// Stops the server and the webhook pusher.
    pub async fn shutdown(mut self) {
        self.stop_now();
        if let Some(s) = self.server.take() {
            let _ = s.await;
        }
    }

    fn stop_now(&mut self) {
        if let Some(p) = self.pusher.take() {
            p.abort();
        }
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

impl Drop for CarrierSimHandle {
    fn drop(&mut self) {
        self.stop_now();
    }
}
