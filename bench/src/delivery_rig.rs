//! The receiving end of notifications for the benchmarks that deliver:
//! the node's callback endpoints (receipts, STOP replies), the SMS and
//! push provider simulator with a configured sender pool, a real SMTP
//! server (python3-aiosmtpd) and a signed-webhook receiver, the senders
//! pointed at them, a delivery worker over a log, and the count of what
//! arrived twice.
//!
//! Shared by `bench delivery` (a backlog of intents) and `bench e2e` (the
//! engine's own intents after a superdrop), so both measure the same
//! delivery set-up.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use dropline_adapters::delivery::channel::{
    EmailConfig, EmailSender, PushConfig, PushSender, SmsConfig, SmsSender, SmsSenderNumber,
    WebhookConfig, WebhookSender,
};
use dropline_adapters::delivery::{
    ChannelSender, DeliveryConfig, DeliveryDeps, DeliveryHandle, DeliveryMetrics, DeliveryWorker,
    OptOutStore, PlaintextContacts, Rate, SystemDeliveryClock, delivery_router,
};
use dropline_loadgen::provider_sim::{
    Faults, LONG_CODE_LIMIT, ProviderSimConfig, ProviderSimHandle, SHORT_CODE_LIMIT, SenderKind,
    SmsSenderConfig, TOLL_FREE_LIMIT, run_provider_sim,
};
use dropline_loadgen::sinks::{SmtpSink, SmtpSinkError, WebhookSink, WebhookSinkConfig};
use dropline_log::Log;
use dropline_operators::model::Channel;

use crate::delivery::DeliveryBenchError;

/// Secret marketplace webhooks are signed with.
pub const WEBHOOK_SECRET: &[u8] = b"bench-webhook-secret";
/// Secret of the unsubscribe links.
pub const OPT_OUT_SECRET: &[u8] = b"bench-opt-out-secret";

/// The SMS sender pool: how many numbers of each kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SmsPool {
    /// Long codes (1 message/s each).
    pub long_codes: u32,
    /// Toll-free numbers (3/s each).
    pub toll_free: u32,
    /// Short codes (100/s each).
    pub short_codes: u32,
}

/// Whether email needs the SMTP server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Smtp {
    /// Fail when python3-aiosmtpd is missing.
    Required,
    /// Without it, email is not delivered (its intents stay queued).
    IfAvailable,
}

/// What arrived more than once at the sinks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Repeats {
    /// Repeats of an idempotency key that a sink recognised and dropped.
    pub dropped_by_sinks: u64,
    /// Updates delivered twice (a key accepted twice, an intent in two
    /// delivered webhook bodies).
    pub delivered_twice: u64,
}

impl Repeats {
    /// Every repeated idempotency key seen at the sinks.
    pub fn total(&self) -> u64 {
        self.dropped_by_sinks + self.delivered_twice
    }
}

/// The stand-ins, running.
pub struct DeliveryRig {
    /// The SMS and push provider simulator.
    pub providers: ProviderSimHandle,
    /// The SMTP server, if it could be started.
    pub smtp: Option<SmtpSink>,
    /// The marketplace webhook receiver.
    pub hooks: WebhookSink,
    /// Base URL of the node's callback endpoints.
    pub node_url: String,
    /// Sum of the SMS pool's rates, messages per second.
    pub sms_ceiling_per_s: f64,
    /// Delivery metrics (shared with the worker).
    pub metrics: Arc<DeliveryMetrics>,
    opt_outs: Arc<OptOutStore>,
    pool: Vec<SmsSenderNumber>,
    callbacks: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for DeliveryRig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryRig")
            .field("node_url", &self.node_url)
            .finish_non_exhaustive()
    }
}

pub(crate) fn start_err(what: &'static str, e: impl std::fmt::Display) -> DeliveryBenchError {
    DeliveryBenchError::Start {
        what,
        reason: e.to_string(),
    }
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl DeliveryRig {
    /// Starts the callback endpoints (opt-outs kept in `log`), the
    /// provider simulator with `pool` and `error_500_ppm` injected
    /// failures, the SMTP server and the webhook receiver.
    pub async fn start(
        log: &Arc<Log>,
        pool: SmsPool,
        error_500_ppm: u32,
        smtp: Smtp,
    ) -> Result<DeliveryRig, DeliveryBenchError> {
        let opt_outs = Arc::new(
            OptOutStore::open(log.clone(), OPT_OUT_SECRET).map_err(|e| start_err("opt-outs", e))?,
        );
        let metrics = Arc::new(DeliveryMetrics::default());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let node_url = format!("http://{}", listener.local_addr()?);
        let app = delivery_router(opt_outs.clone(), metrics.clone());
        let callbacks = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });

        let mut sim_cfg = ProviderSimConfig::local();
        sim_cfg.sms_senders.clear();
        let mut numbers = Vec::new();
        for (kind, n, prefix, limit) in [
            (
                SenderKind::ShortCode,
                pool.short_codes,
                "5550",
                SHORT_CODE_LIMIT,
            ),
            (
                SenderKind::TollFree,
                pool.toll_free,
                "+1888555",
                TOLL_FREE_LIMIT,
            ),
            (
                SenderKind::LongCode,
                pool.long_codes,
                "+1555000",
                LONG_CODE_LIMIT,
            ),
        ] {
            for k in 0..n {
                let number = format!("{prefix}{k:04}");
                sim_cfg.sms_senders.push(SmsSenderConfig {
                    number: number.clone(),
                    kind,
                });
                numbers.push(SmsSenderNumber {
                    number,
                    rate: Rate {
                        per_second: limit.per_second,
                        burst: limit.burst,
                    },
                });
            }
        }
        let sms_ceiling_per_s: f64 = numbers.iter().map(|s| s.rate.per_second).sum();
        sim_cfg.faults = Faults {
            error_500_ppm,
            ..Faults::default()
        };
        sim_cfg.inbound_url = Some(format!("{node_url}/delivery/sms/inbound"));
        let providers = run_provider_sim(sim_cfg)
            .await
            .map_err(|e| start_err("provider simulator", e))?;
        let smtp = match (SmtpSink::start(), smtp) {
            (Ok(s), _) => Some(s),
            (Err(SmtpSinkError::Missing), Smtp::IfAvailable) => None,
            (Err(e), _) => return Err(e.into()),
        };
        let hooks = WebhookSink::start(WebhookSinkConfig {
            secret: WEBHOOK_SECRET.to_vec(),
            tolerance_s: 300,
            fail_every: 0,
            fail_status: 503,
        })
        .await?;
        Ok(DeliveryRig {
            providers,
            smtp,
            hooks,
            node_url,
            sms_ceiling_per_s,
            metrics,
            opt_outs,
            pool: numbers,
            callbacks,
        })
    }

    /// Where marketplace webhooks go (`{url}/hooks/{marketplace}`).
    pub fn hooks_url(&self) -> String {
        self.hooks.base_url()
    }

    /// Which SMTP server email goes to, for reports.
    pub fn smtp_server(&self) -> &'static str {
        match self.smtp {
            Some(_) => "python3-aiosmtpd",
            None => "none (python3-aiosmtpd missing; email not delivered)",
        }
    }

    /// One sender per channel that has a stand-in.
    fn senders(&self) -> (Vec<Channel>, Vec<Arc<ChannelSender>>) {
        let now = now_ms();
        let mut channels = vec![Channel::Webhook, Channel::Sms, Channel::Push];
        let mut senders = vec![
            Arc::new(ChannelSender::Webhook(WebhookSender::new(WebhookConfig {
                default_secret: WEBHOOK_SECRET.to_vec(),
                ..WebhookConfig::default()
            }))),
            Arc::new(ChannelSender::Sms(SmsSender::new(
                SmsConfig {
                    base_url: self.providers.base_url(),
                    account_sid: "ACdropline".into(),
                    auth_token: "token".into(),
                    senders: self.pool.clone(),
                    status_callback_url: Some(format!("{}/delivery/sms/status", self.node_url)),
                    rate_margin: 0.97,
                    timeout_ms: 10_000,
                },
                now,
            ))),
            Arc::new(ChannelSender::Push(PushSender::new(
                PushConfig {
                    base_url: self.providers.base_url(),
                    project: "dropline-demo".into(),
                    bearer_token: "token".into(),
                    rate: Rate {
                        per_second: 10_000.0,
                        burst: 10_000,
                    },
                    timeout_ms: 10_000,
                },
                now,
            ))),
        ];
        if let Some(smtp) = &self.smtp {
            channels.push(Channel::Email);
            senders.push(Arc::new(ChannelSender::Email(EmailSender::new(
                EmailConfig {
                    host: "127.0.0.1".into(),
                    port: smtp.port(),
                    from: "Dropline <notify@dropline.test>".into(),
                    unsubscribe_base_url: self.node_url.clone(),
                    pool_connections_max: 8,
                    timeout_ms: 10_000,
                },
            ))));
        }
        (channels, senders)
    }

    /// Starts a delivery worker over `log` (checkpoint at `checkpoint`)
    /// sending to the stand-ins; `tune` adjusts its configuration.
    pub fn start_worker(
        &self,
        log: Arc<Log>,
        checkpoint: PathBuf,
        tune: impl FnOnce(&mut DeliveryConfig),
    ) -> Result<DeliveryHandle, DeliveryBenchError> {
        let (channels, senders) = self.senders();
        let mut cfg = DeliveryConfig::new(checkpoint);
        cfg.channels = channels;
        tune(&mut cfg);
        let worker = DeliveryWorker::new(
            cfg,
            DeliveryDeps {
                log,
                clock: Arc::new(SystemDeliveryClock),
                senders,
                opt_outs: self.opt_outs.clone(),
                opener: Arc::new(PlaintextContacts),
                metrics: self.metrics.clone(),
            },
        )
        .map_err(|e| start_err("delivery worker", e))?;
        Ok(worker.start())
    }

    /// What arrived more than once.
    pub fn repeats(&self) -> Repeats {
        let sim_stats = self.providers.stats();
        let hook_stats = self.hooks.stats();
        let mut dropped = sim_stats.duplicates + hook_stats.duplicates;
        let mut twice = 0u64;
        if let Some(smtp) = &self.smtp {
            let mails = smtp.received();
            dropped += mails.iter().filter(|m| m.duplicate).count() as u64;
            let mut seen = HashSet::new();
            twice += mails
                .iter()
                .filter(|m| !m.duplicate && !seen.insert(m.idempotency_key.clone()))
                .count() as u64;
        }
        let mut seen = HashSet::new();
        twice += self
            .providers
            .messages()
            .iter()
            .filter(|m| !seen.insert(m.idempotency_key.clone()))
            .count() as u64;
        // Webhook bodies list the intents they carry: an intent in two
        // delivered bodies is a duplicate notification.
        let mut seen = HashSet::new();
        twice += self
            .hooks
            .received()
            .iter()
            .flat_map(|r| {
                r.body["updates"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|u| u["intent_id"].as_str().unwrap_or("").to_string())
            })
            .filter(|id| !seen.insert(id.clone()))
            .count() as u64;
        Repeats {
            dropped_by_sinks: dropped,
            delivered_twice: twice,
        }
    }

    /// Stops the provider simulator and the callback endpoints (the SMTP
    /// server and webhook receiver stop when dropped).
    pub async fn shutdown(self) {
        self.providers.shutdown().await;
        self.callbacks.abort();
    }
}
