//! The bundled notification-provider simulator (`dropline provider-sim`).
//!
//! Why it exists: in a drop the providers are the bottleneck, so delivery
//! must be tested against something that behaves like them: the SMS send
//! API (form-encoded, per-sender throughput, 429 with `Retry-After`,
//! idempotency tokens, STOP replies, status callbacks) and the push send
//! API (JSON, a per-project quota per minute). The simulator also audits
//! itself: every accepted send is checked against the limit over a sliding
//! window, independently of the bucket that enforces it, and every
//! idempotency key is remembered so a repeated send is recorded as a
//! duplicate and not sent again.
//!
//! Endpoints: `POST /2010-04-01/Accounts/{sid}/Messages.json`,
//! `POST /v1/projects/{project}/messages:send`, `GET /admin/stats`,
//! `GET /admin/messages`, `POST /admin/faults`, `POST /admin/inbound`.

mod callbacks;
mod config;
mod limits;
mod routes;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use callbacks::InboundError;
pub use config::{
    Faults, LONG_CODE_LIMIT, PUSH_PROJECT_LIMIT, ProviderSimConfig, RateLimit, SHORT_CODE_LIMIT,
    SenderKind, SmsSenderConfig, TOLL_FREE_LIMIT,
};
pub use routes::{IDEMPOTENCY_HEADER, SMS_IDEMPOTENCY_HEADER_ALT};
pub use state::{AcceptedMessage, ProviderStats, RECORDED_MESSAGES_MAX, SenderStats, SimChannel};

use callbacks::CallbackQueue;
use routes::{AppState, InboundSms};
use state::SimState;

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProviderSimError {
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

/// A running simulator. Dropping it leaves the server running until the
/// runtime stops; call [`ProviderSimHandle::shutdown`] to stop it.
pub struct ProviderSimHandle {
    addr: SocketAddr,
    app: AppState,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for ProviderSimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderSimHandle")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Starts the simulator on the current tokio runtime.
pub async fn run_provider_sim(
    config: ProviderSimConfig,
) -> Result<ProviderSimHandle, ProviderSimError> {
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|source| ProviderSimError::Bind {
            addr: config.bind,
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| ProviderSimError::Bind {
            addr: config.bind,
            source,
        })?;
    let sim = Arc::new(SimState::new(config));
    let app = AppState {
        callbacks: CallbackQueue::start(sim.clone()),
        sim,
    };
    let router = routes::router(app.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
            let _ = stopped.await;
        });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "provider simulator stopped");
        }
    });
    Ok(ProviderSimHandle {
        addr,
        app,
        stop: Some(stop),
        task,
    })
}

impl ProviderSimHandle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`, the base URL clients are configured with.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &ProviderSimConfig {
        &self.app.sim.config
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> ProviderStats {
        self.app.sim.lock().stats.clone()
    }

    /// Every message accepted so far (up to [`RECORDED_MESSAGES_MAX`]).
    pub fn messages(&self) -> Vec<AcceptedMessage> {
        self.app.sim.lock().messages.clone()
    }

    /// Replaces the injected faults.
    pub fn set_faults(&self, faults: Faults) {
        self.app.sim.set_faults(faults);
    }

    /// Waits until at least `n` distinct messages were accepted.
    pub async fn wait_accepted(&self, n: u64) {
        let mut rx = self.app.sim.subscribe_accepted();
        let _ = rx.wait_for(|v| *v >= n).await;
    }

    /// Simulates an inbound SMS (a STOP reply from `from` to sender `to`):
    /// records it and posts it to the configured inbound URL. Returns the
    /// node's HTTP status.
    pub async fn send_inbound(
        &self,
        from: &str,
        to: &str,
        body: &str,
    ) -> Result<u16, InboundError> {
        let msg = InboundSms {
            from: from.to_string(),
            to: to.to_string(),
            body: body.to_string(),
        };
        self.app.callbacks.post_inbound(&self.app.sim, &msg).await
    }

    /// Stops accepting connections and waits for the server to finish.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}
