//! A load run from start to report: the node (embedded or remote), the
//! path to it (carrier webhooks through the adapter, or raw QUIC), the
//! open-loop sender, the wait for the engine, the audit of the log and the
//! reports.
//!
//! [`Session`] exposes the phases so that a benchmark can hang more on a
//! run (notification delivery, say) between sending and reporting;
//! [`run`] does them all in order.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dropline_log::Log;
use dropline_operators::model::Status;

use crate::audit::Audit;
use crate::carrier_path::{AdapterRig, WebhookConfig, WebhookTarget};
use crate::error::LoadgenError;
use crate::node::{EmbeddedConfig, EmbeddedNode, NodeTarget};
use crate::open_loop::{Sent, drive};
use crate::orders::{HttpOrders, LogOrders, OrderSink, deliverable};
use crate::progress::Progress;
use crate::raw::RawTarget;
use crate::recorder::Recorder;
use crate::report::{LoadReport, Percentiles};
use crate::scenario::{Plan, Planned, Scenario, ScenarioConfig};
use crate::workload::WorkItem;

/// Default time the engine may take to process what was acknowledged, s.
pub const PROCESS_TIMEOUT_S_DEFAULT: u64 = 900;

/// How events reach the node.
#[derive(Clone, Debug, PartialEq)]
pub enum Transport {
    /// Signed carrier webhooks to the adapter, which sends over QUIC.
    Carrier(WebhookConfig),
    /// Canonical events straight over QUIC.
    Raw,
}

/// Which node takes the load.
#[derive(Clone, Debug)]
pub enum NodeSpec {
    /// One started in this process (its log is audited afterwards).
    Embedded(EmbeddedConfig),
    /// A running node.
    Remote {
        /// Its QUIC ingest and credentials.
        target: NodeTarget,
        /// Its HTTP address, to create orders through the API (none: no
        /// orders are sent).
        http: Option<SocketAddr>,
    },
}

/// A load run's settings.
#[derive(Clone, Debug)]
pub struct LoadgenConfig {
    /// What to send and when.
    pub scenario: ScenarioConfig,
    /// How.
    pub transport: Transport,
    /// To which node.
    pub node: NodeSpec,
    /// Directory of the HTML report (`<scenario>-<seed>.html`); none: no
    /// HTML.
    pub report_dir: Option<PathBuf>,
    /// Draw the live progress line on stderr.
    pub progress: bool,
    /// Receiver of the marketplace webhooks the orders ask for (none: the
    /// buyers' webhook consent is withdrawn).
    pub hooks_url: Option<String>,
    /// Longest wait for the engine after the last acknowledgement, s.
    pub process_timeout_s: u64,
}

impl LoadgenConfig {
    /// A run of `scenario` through the adapters against an embedded node.
    pub fn new(scenario: ScenarioConfig) -> LoadgenConfig {
        LoadgenConfig {
            scenario,
            transport: Transport::Carrier(WebhookConfig::default()),
            node: NodeSpec::Embedded(EmbeddedConfig::default()),
            report_dir: None,
            progress: false,
            hooks_url: None,
            process_timeout_s: PROCESS_TIMEOUT_S_DEFAULT,
        }
    }
}

enum AnyTarget {
    Carrier(Box<WebhookTarget>),
    Raw(RawTarget),
}

/// A run in progress.
pub struct Session {
    config: LoadgenConfig,
    recorder: Arc<Recorder>,
    node: Option<EmbeddedNode>,
    target: AnyTarget,
    orders_to: &'static str,
    _scratch: Option<tempfile::TempDir>,
    sent: Option<Sent>,
    processed_s: Option<f64>,
    exceptions: Arc<AtomicU64>,
    planned_us: Arc<AtomicU64>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("scenario", &self.config.scenario.scenario)
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Starts the node (if embedded) and the path to it. Must run on a
    /// multi-threaded tokio runtime.
    pub async fn start(config: LoadgenConfig) -> Result<Session, LoadgenError> {
        config.scenario.check()?;
        let (node, target, http) = match &config.node {
            NodeSpec::Embedded(e) => {
                let node = EmbeddedNode::start(e.clone()).await?;
                let target = node.target().clone();
                (Some(node), target, None)
            }
            NodeSpec::Remote { target, http } => (None, target.clone(), *http),
        };
        let scratch = match &node {
            Some(_) => None,
            None => Some(
                tempfile::Builder::new()
                    .prefix("dropline-loadgen-")
                    .tempdir()
                    .map_err(LoadgenError::io(std::env::temp_dir()))?,
            ),
        };
        let state_dir = match (&node, &scratch) {
            (Some(n), _) => n.dir().join("loadgen-adapter"),
            (None, Some(s)) => s.path().to_path_buf(),
            (None, None) => std::env::temp_dir(),
        };
        let rig = match &config.transport {
            Transport::Carrier(_) => Some(
                AdapterRig::start(
                    &target,
                    &state_dir,
                    config.scenario.speedup,
                    config.scenario.start_ms as i64,
                )
                .await?,
            ),
            Transport::Raw => None,
        };
        let recorder = Arc::new(Recorder::new()?);
        let orders = match (&node, http) {
            (Some(n), _) => OrderSink::Log(LogOrders::start(
                n.log().clone(),
                n.partitions(),
                recorder.clone(),
            )?),
            (None, Some(addr)) => OrderSink::Http(HttpOrders::new(addr, recorder.clone())?),
            (None, None) => OrderSink::Skip,
        };
        let orders_to = orders.describe();
        let target =
            match (&config.transport, rig) {
                (Transport::Carrier(w), Some(rig)) => AnyTarget::Carrier(Box::new(
                    WebhookTarget::new(rig, w.clone(), recorder.clone(), orders)?,
                )),
                _ => AnyTarget::Raw(RawTarget::connect(&target, recorder.clone(), orders).await?),
            };
        Ok(Session {
            config,
            recorder,
            node,
            target,
            orders_to,
            _scratch: scratch,
            sent: None,
            processed_s: None,
            exceptions: Arc::new(AtomicU64::new(0)),
            planned_us: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Sets the receiver of the orders' marketplace webhooks (before
    /// [`Session::drive`]; a benchmark starts its receiver on the node's
    /// log, so only after the session).
    pub fn set_hooks_url(&mut self, url: Option<String>) {
        self.config.hooks_url = url;
    }

    /// The embedded node's log.
    pub fn log(&self) -> Option<&Arc<Log>> {
        self.node.as_ref().map(EmbeddedNode::log)
    }

    /// The embedded node.
    pub fn node(&self) -> Option<&EmbeddedNode> {
        self.node.as_ref()
    }

    /// The measurements so far.
    pub fn recorder(&self) -> &Arc<Recorder> {
        &self.recorder
    }

    /// Sends the whole plan on schedule and waits until every item is
    /// acknowledged (through the adapters: acknowledged by the node too).
    pub async fn drive(&mut self) -> Result<Sent, LoadgenError> {
        let plan = Plan::new(self.config.scenario.clone())?;
        let hooks = self.config.hooks_url.clone();
        let (exceptions, planned_us) = (self.exceptions.clone(), self.planned_us.clone());
        let plan = plan.map(move |mut p: Planned| {
            planned_us.fetch_max(p.at_us, Ordering::Relaxed);
            match &mut p.item {
                WorkItem::Order(o) => deliverable(o, hooks.as_deref()),
                WorkItem::Event(e) if e.status == Status::Exception => {
                    exceptions.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
            p
        });
        let progress = self.config.progress.then(|| {
            Progress::start(
                format!("loadgen {}", self.config.scenario.scenario),
                self.recorder.clone(),
                self.config.scenario.planned_events(),
            )
        });
        let sent = match &self.target {
            AnyTarget::Carrier(t) => drive(plan, t.as_ref(), &self.recorder).await,
            AnyTarget::Raw(t) => drive(plan, t, &self.recorder).await,
        };
        if let Some(p) = progress {
            p.finish().await;
        }
        let sent = sent?;
        self.sent = Some(sent);
        Ok(sent)
    }

    /// Waits until the embedded engine has processed everything in the
    /// log; returns the seconds since the start of sending (`None` for a
    /// remote node).
    pub async fn settle(&mut self) -> Result<Option<f64>, LoadgenError> {
        let Some(node) = &self.node else {
            return Ok(None);
        };
        let timeout = Duration::from_secs(self.config.process_timeout_s);
        let done = tokio::task::block_in_place(|| node.wait_processed(timeout))?;
        if !done {
            return Err(LoadgenError::ProcessTimeout {
                seconds: self.config.process_timeout_s,
            });
        }
        let s = self.recorder.now_us() as f64 / 1e6;
        self.processed_s = Some(s);
        Ok(Some(s))
    }

    /// Audits the log (embedded), writes the HTML report, stops everything
    /// and returns the report.
    pub async fn finish(self) -> Result<LoadReport, LoadgenError> {
        let audit: Option<Audit> = match (&self.node, &self.target) {
            (Some(node), AnyTarget::Carrier(t)) => Some(t.ledger().audit(node.log())?),
            (Some(node), AnyTarget::Raw(t)) => Some(t.ledger().audit(node.log())?),
            _ => None,
        };
        let snapshot = self.recorder.snapshot();
        let mut counts = snapshot.counts;
        if let AnyTarget::Raw(t) = &self.target {
            // Batches the node refused for good (kept in its dead letters).
            counts.events_failed += t.rejected();
        }
        let sent = self.sent.unwrap_or_default();
        let s = &self.config.scenario;
        let (mode, scans_per_webhook, dup_sent, dropped, node_acked) = match &self.target {
            AnyTarget::Carrier(t) => {
                let m = t.rig().metrics();
                (
                    "carrier",
                    match &self.config.transport {
                        Transport::Carrier(w) => w.scans_per_webhook as u64,
                        Transport::Raw => 0,
                    },
                    Some(counts.events_acked.saturating_sub(t.ledger().len() as u64)),
                    Some(m.carriers.iter().map(|c| c.duplicates).sum()),
                    t.rig().node_acked(),
                )
            }
            AnyTarget::Raw(_) => ("raw", 0, None, None, counts.events_acked),
        };
        let mut report = LoadReport {
            scenario: s.scenario.as_str().to_string(),
            seed: s.seed,
            mode: mode.into(),
            node: match &self.config.node {
                NodeSpec::Embedded(_) => "embedded".into(),
                NodeSpec::Remote { target, .. } => target.addr.to_string(),
            },
            orders_to: self.orders_to.into(),
            speedup: if s.scenario == Scenario::Superdrop {
                s.speedup
            } else {
                1.0
            },
            scans_per_webhook,
            planned_s: self.planned_us.load(Ordering::Relaxed) as f64 / 1e6,
            send_s: sent.send_us as f64 / 1e6,
            acked_s: sent.drained_us as f64 / 1e6,
            processed_s: self.processed_s,
            counts,
            exceptions_sent: self.exceptions.load(Ordering::Relaxed),
            duplicate_scans_sent: dup_sent,
            event_latency: Percentiles::of_us(&snapshot.event_latency_us),
            order_latency: Percentiles::of_us(&snapshot.order_latency_us),
            send_lag: Percentiles::of_us(&snapshot.send_lag_us),
            audit,
            adapter_duplicates_dropped: dropped,
            node_acked,
            html_path: None,
            snapshot,
        };
        if let Some(dir) = &self.config.report_dir {
            std::fs::create_dir_all(dir).map_err(LoadgenError::io(dir))?;
            let path = dir.join(format!("{}-{}.html", report.scenario, report.seed));
            report.html_path = Some(path.display().to_string());
            let page = crate::html::render(&report);
            std::fs::write(&path, page).map_err(LoadgenError::io(&path))?;
        }
        match self.target {
            AnyTarget::Carrier(t) => t.into_rig().shutdown().await,
            AnyTarget::Raw(t) => t.close().await,
        }
        if let Some(node) = self.node {
            node.shutdown().await?;
        }
        Ok(report)
    }
}

/// The runtime a run uses: two workers (the machine this is sized for has
/// two cores; the embedded engine adds its own threads).
pub fn runtime() -> Result<tokio::runtime::Runtime, LoadgenError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(LoadgenError::io("tokio runtime"))
}

/// Runs every phase of `config` on a runtime of its own.
pub fn run(config: LoadgenConfig) -> Result<LoadReport, LoadgenError> {
    runtime()?.block_on(async {
        let mut session = Session::start(config).await?;
        session.drive().await?;
        session.settle().await?;
        session.finish().await
    })
}
