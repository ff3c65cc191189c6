//! The node's notification delivery: the channel senders named in
//! `[delivery]`, the callbacks endpoint (STOP replies, SMS receipts,
//! unsubscribe links), and the delivery worker reading the engine's notify
//! topics next to it. Nothing here decides what to send or when; that is
//! the worker's (`dropline_adapters::delivery`).
//!
//! Why the callbacks have their own listener: providers and buyers' mail
//! clients reach them from outside, while the node's HTTP listener carries
//! the admin API and dashboard; operators can expose one and not the other.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use dropline_adapters::delivery::channel::{
    EmailConfig, EmailSender, PushConfig, PushSender, SmsConfig, SmsSender, SmsSenderNumber,
    WebhookConfig, WebhookSender,
};
use dropline_adapters::delivery::{
    BuyerCap, ChannelSender, DeliveryConfig, DeliveryDeps, DeliveryHandle, DeliveryMetrics,
    DeliveryWorker, OptOutStore, Rate, SystemDeliveryClock, delivery_router,
};
use dropline_adapters::http::ContactSealer;
use dropline_log::Log;
use dropline_operators::model::Channel;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::config::DeliverySection;

/// The worker's checkpoint, in the data directory.
pub(crate) const DELIVERY_CHECKPOINT_FILE: &str = "delivery.ckpt";
/// The key of unsubscribe tokens and opt-out fingerprints, in the data
/// directory (created on first start, mode 0600).
pub(crate) const OPT_OUT_SECRET_FILE: &str = "opt-out.secret";

/// The callbacks' listener, bound first so that its URL can be handed to
/// providers (status callbacks, inbound messages) before delivery starts.
pub(crate) struct CallbacksListener {
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
}

impl CallbacksListener {
    /// Binds `addr` (port 0 picks a free one).
    pub(crate) async fn bind(addr: SocketAddr) -> anyhow::Result<CallbacksListener> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the delivery callbacks on {addr}"))?;
        let addr = listener.local_addr()?;
        Ok(CallbacksListener { listener, addr })
    }

    /// `http://<bound address>`.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Running delivery: the worker and the callbacks server.
pub(crate) struct NodeDelivery {
    worker: DeliveryHandle,
    callbacks_addr: SocketAddr,
    callbacks_stop: Option<oneshot::Sender<()>>,
    callbacks: JoinHandle<()>,
    channels: Vec<Channel>,
}

impl NodeDelivery {
    /// Where the callbacks listen.
    pub(crate) fn callbacks_addr(&self) -> SocketAddr {
        self.callbacks_addr
    }

    /// The channels delivered.
    pub(crate) fn channels(&self) -> &[Channel] {
        &self.channels
    }

    /// Stops the worker (sends in flight end, it checkpoints), then the
    /// callbacks server.
    pub(crate) async fn stop(mut self) -> anyhow::Result<()> {
        let stopped = self.worker.stop().await.context("stopping delivery");
        if let Some(stop) = self.callbacks_stop.take() {
            let _ = stop.send(());
        }
        let _ = self.callbacks.await;
        stopped
    }
}

/// Starts delivery as `section` says, over `log`, with its files in
/// `data_dir`, counting into `metrics`.
pub(crate) async fn start(
    section: &DeliverySection,
    log: Arc<Log>,
    data_dir: &Path,
    metrics: Arc<DeliveryMetrics>,
    callbacks: CallbacksListener,
) -> anyhow::Result<NodeDelivery> {
    let public_url = section
        .public_url
        .clone()
        .unwrap_or_else(|| callbacks.url())
        .trim_end_matches('/')
        .to_string();
    let (channels, senders) = senders(section, &public_url)?;
    let secret = super::read_or_create_token(data_dir, OPT_OUT_SECRET_FILE)?;
    let opt_outs = Arc::new(
        OptOutStore::open(Arc::clone(&log), secret.as_bytes())
            .context("opening the opt-out store")?,
    );
    let opener = Arc::new(
        ContactSealer::load_or_create(data_dir).context("loading the contact-sealing key")?,
    );
    let worker = DeliveryWorker::new(
        worker_config(section, data_dir, channels.clone()),
        DeliveryDeps {
            log,
            clock: Arc::new(SystemDeliveryClock),
            senders,
            opt_outs: Arc::clone(&opt_outs),
            opener,
            metrics: Arc::clone(&metrics),
        },
    )
    .context("starting the delivery worker")?
    .start();

    let app = delivery_router(opt_outs, metrics);
    let (callbacks_stop, stopped) = oneshot::channel::<()>();
    let CallbacksListener { listener, addr } = callbacks;
    let server = tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = stopped.await;
        });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "delivery callbacks stopped");
        }
    });
    tracing::info!(callbacks = %addr, ?channels, "delivery running");
    Ok(NodeDelivery {
        worker,
        callbacks_addr: addr,
        callbacks_stop: Some(callbacks_stop),
        callbacks: server,
        channels,
    })
}

/// The worker's configuration from the section.
fn worker_config(
    section: &DeliverySection,
    data_dir: &Path,
    channels: Vec<Channel>,
) -> DeliveryConfig {
    let mut config = DeliveryConfig::new(data_dir.join(DELIVERY_CHECKPOINT_FILE));
    config.channels = channels;
    config.consolidation_window_ms = section.consolidation_window_ms;
    config.digest_window_ms = section.digest_window_ms;
    config.in_flight_per_channel_max = section.in_flight_per_channel_max.max(1);
    config.quiet_hours = Some(section.quiet_hours);
    config.buyer_cap = (section.buyer_cap_messages_max > 0).then_some(BuyerCap {
        messages_max: section.buyer_cap_messages_max,
        window_ms: section.buyer_cap_window_ms.max(1),
    });
    config.retry = section.retry;
    config.degrade = section.degrade;
    for (channel, micro) in &section.cost_micro_per_message {
        config
            .costs
            .micro_per_message
            .insert(channel.clone(), *micro);
    }
    config.critical_slo_ms = section.critical_slo_ms;
    if let Some(webhook) = &section.webhook {
        config.webhook_endpoints = webhook
            .marketplaces
            .iter()
            .filter_map(|(name, m)| Some((name.clone(), m.endpoint.clone()?)))
            .collect();
    }
    config
}

/// One sender per configured channel, checked for what each needs.
fn senders(
    section: &DeliverySection,
    public_url: &str,
) -> anyhow::Result<(Vec<Channel>, Vec<Arc<ChannelSender>>)> {
    for channel in section.cost_micro_per_message.keys() {
        anyhow::ensure!(
            Channel::ALL.iter().any(|c| c.as_str() == channel),
            "delivery.cost_micro_per_message: unknown channel {channel:?} (webhook, email, sms, push)"
        );
    }
    let now_ms = super::wall_clock_ms();
    let mut channels = Vec::new();
    let mut senders = Vec::new();
    if let Some(w) = &section.webhook {
        anyhow::ensure!(
            !w.secret.is_empty(),
            "delivery.webhook.secret must be set (webhooks are always signed)"
        );
        channels.push(Channel::Webhook);
        senders.push(Arc::new(ChannelSender::Webhook(WebhookSender::new(
            WebhookConfig {
                default_secret: w.secret.as_bytes().to_vec(),
                secrets: w
                    .marketplaces
                    .iter()
                    .filter_map(|(name, m)| Some((name.clone(), m.secret.clone()?.into_bytes())))
                    .collect(),
                per_endpoint_concurrency: w.per_endpoint_concurrency.max(1),
                timeout_ms: w.timeout_ms,
            },
        ))));
    }
    if let Some(e) = &section.email {
        anyhow::ensure!(!e.host.is_empty(), "delivery.email.host must be set");
        channels.push(Channel::Email);
        senders.push(Arc::new(ChannelSender::Email(EmailSender::new(
            EmailConfig {
                host: e.host.clone(),
                port: e.port,
                from: e.from.clone(),
                unsubscribe_base_url: public_url.to_string(),
                pool_connections_max: e.pool_connections_max,
                timeout_ms: e.timeout_ms,
            },
        ))));
    }
    if let Some(s) = &section.sms {
        anyhow::ensure!(!s.base_url.is_empty(), "delivery.sms.base_url must be set");
        anyhow::ensure!(
            !s.senders.is_empty(),
            "delivery.sms needs at least one [[delivery.sms.senders]]"
        );
        channels.push(Channel::Sms);
        senders.push(Arc::new(ChannelSender::Sms(SmsSender::new(
            SmsConfig {
                base_url: s.base_url.clone(),
                account_sid: s.account_sid.clone(),
                auth_token: s.auth_token.clone(),
                senders: s
                    .senders
                    .iter()
                    .map(|n| {
                        let (per_second, burst) = n.kind.default_rate();
                        SmsSenderNumber {
                            number: n.number.clone(),
                            rate: Rate {
                                per_second: n.per_second.unwrap_or(per_second),
                                burst: n.burst.unwrap_or(burst),
                            },
                        }
                    })
                    .collect(),
                status_callback_url: Some(format!(
                    "{public_url}{}",
                    dropline_adapters::delivery::callbacks::SMS_STATUS_PATH
                )),
                rate_margin: s.rate_margin,
                timeout_ms: s.timeout_ms,
            },
            now_ms,
        ))));
    }
    if let Some(p) = &section.push {
        anyhow::ensure!(!p.base_url.is_empty(), "delivery.push.base_url must be set");
        channels.push(Channel::Push);
        senders.push(Arc::new(ChannelSender::Push(PushSender::new(
            PushConfig {
                base_url: p.base_url.clone(),
                project: p.project.clone(),
                bearer_token: p.bearer_token.clone(),
                rate: Rate {
                    per_second: p.per_second,
                    burst: p.burst,
                },
                timeout_ms: p.timeout_ms,
            },
            now_ms,
        ))));
    }
    Ok((channels, senders))
}
