//! Notification delivery for `dropline up`: the delivery worker reads the
//! engine's notify topics and sends SMS and push through the bundled
//! provider simulator, marketplace webhooks to a local signed-webhook
//! receiver, and email to a local SMTP server when one can be started
//! (Debian's python3-aiosmtpd); without it, email intents stay in their
//! topics as backlog and the demo says so.

use std::sync::Arc;

use anyhow::Context;
use dropline_adapters::delivery::channel::{
    EmailConfig, EmailSender, PushConfig, PushSender, SmsConfig, SmsSender, SmsSenderNumber,
    WebhookConfig, WebhookSender,
};
use dropline_adapters::delivery::{
    ChannelSender, DeliveryConfig, DeliveryDeps, DeliveryHandle, DeliveryMetrics, DeliveryWorker,
    OptOutStore, Rate, SystemDeliveryClock, delivery_router,
};
use dropline_adapters::http::ContactSealer;
use dropline_loadgen::provider_sim::{
    LONG_CODE_LIMIT, ProviderSimConfig, ProviderSimHandle, SHORT_CODE_LIMIT, SenderKind,
    SmsSenderConfig, run_provider_sim,
};
use dropline_loadgen::sinks::{SmtpSink, WebhookSink, WebhookSinkConfig};
use dropline_log::Log;
use dropline_operators::model::Channel;

/// Secret marketplace webhooks are signed with in the demo.
pub(crate) const DEMO_WEBHOOK_SECRET: &[u8] = b"demo-marketplace-webhook-secret";
/// Secret of the demo's unsubscribe links.
const DEMO_OPT_OUT_SECRET: &[u8] = b"demo-opt-out-secret";

/// The delivery side of the demo and the stand-ins it sends to.
pub(crate) struct DemoDelivery {
    pub(crate) worker: DeliveryHandle,
    pub(crate) providers: ProviderSimHandle,
    pub(crate) hooks: WebhookSink,
    pub(crate) smtp: Option<SmtpSink>,
    callbacks: tokio::task::JoinHandle<()>,
}

/// Starts the providers, the receivers and the delivery worker.
pub(crate) async fn start(
    log: Arc<Log>,
    data_dir: &std::path::Path,
) -> anyhow::Result<DemoDelivery> {
    let opt_outs = Arc::new(
        OptOutStore::open(log.clone(), DEMO_OPT_OUT_SECRET).context("opening the opt-out store")?,
    );
    let metrics = Arc::new(DeliveryMetrics::default());
    // Receipts and STOP replies from the providers come back here.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let callbacks_url = format!("http://{}", listener.local_addr()?);
    let app = delivery_router(opt_outs.clone(), metrics.clone());
    let callbacks = tokio::spawn(async move {
        let _ = axum_serve(listener, app).await;
    });

    let mut sim = ProviderSimConfig::local();
    sim.sms_senders = vec![
        SmsSenderConfig {
            number: "55501".into(),
            kind: SenderKind::ShortCode,
        },
        SmsSenderConfig {
            number: "+15550000001".into(),
            kind: SenderKind::LongCode,
        },
    ];
    sim.inbound_url = Some(format!("{callbacks_url}/delivery/sms/inbound"));
    let providers = run_provider_sim(sim)
        .await
        .context("starting the provider simulator")?;
    let hooks = WebhookSink::start(WebhookSinkConfig {
        secret: DEMO_WEBHOOK_SECRET.to_vec(),
        tolerance_s: 300,
        fail_every: 0,
        fail_status: 503,
    })
    .await
    .context("starting the webhook receiver")?;
    let smtp = SmtpSink::start().ok();

    let now = crate::node::wall_clock_ms();
    let mut senders = vec![
        Arc::new(ChannelSender::Webhook(WebhookSender::new(WebhookConfig {
            default_secret: DEMO_WEBHOOK_SECRET.to_vec(),
            ..WebhookConfig::default()
        }))),
        Arc::new(ChannelSender::Sms(SmsSender::new(
            SmsConfig {
                base_url: providers.base_url(),
                account_sid: "ACdropline".into(),
                auth_token: "demo".into(),
                senders: vec![
                    SmsSenderNumber {
                        number: "55501".into(),
                        rate: Rate {
                            per_second: SHORT_CODE_LIMIT.per_second,
                            burst: SHORT_CODE_LIMIT.burst,
                        },
                    },
                    SmsSenderNumber {
                        number: "+15550000001".into(),
                        rate: Rate {
                            per_second: LONG_CODE_LIMIT.per_second,
                            burst: LONG_CODE_LIMIT.burst,
                        },
                    },
                ],
                status_callback_url: Some(format!("{callbacks_url}/delivery/sms/status")),
                rate_margin: 0.97,
                timeout_ms: 10_000,
            },
            now,
        ))),
        Arc::new(ChannelSender::Push(PushSender::new(
            PushConfig {
                base_url: providers.base_url(),
                project: "dropline-demo".into(),
                bearer_token: "demo".into(),
                rate: Rate {
                    per_second: 10_000.0,
                    burst: 10_000,
                },
                timeout_ms: 10_000,
            },
            now,
        ))),
    ];
    let mut channels = vec![Channel::Webhook, Channel::Sms, Channel::Push];
    if let Some(smtp) = &smtp {
        channels.push(Channel::Email);
        senders.push(Arc::new(ChannelSender::Email(EmailSender::new(
            EmailConfig {
                host: "127.0.0.1".into(),
                port: smtp.port(),
                from: "Dropline demo <notify@dropline.test>".into(),
                unsubscribe_base_url: callbacks_url.clone(),
                pool_connections_max: 4,
                timeout_ms: 10_000,
            },
        ))));
    }
    let mut config = DeliveryConfig::new(data_dir.join("delivery.ckpt"));
    config.channels = channels;
    let opener = Arc::new(
        ContactSealer::load_or_create(data_dir).context("loading the contact-sealing key")?,
    );
    let worker = DeliveryWorker::new(
        config,
        DeliveryDeps {
            log,
            clock: Arc::new(SystemDeliveryClock),
            senders,
            opt_outs,
            opener,
            metrics,
        },
    )
    .context("starting the delivery worker")?
    .start();
    Ok(DemoDelivery {
        worker,
        providers,
        hooks,
        smtp,
        callbacks,
    })
}

async fn axum_serve(listener: tokio::net::TcpListener, app: axum::Router) -> std::io::Result<()> {
    axum::serve(listener, app).await
}

impl DemoDelivery {
    /// Stops the worker (it checkpoints) and the stand-ins.
    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        self.worker.stop().await.context("stopping delivery")?;
        self.providers.shutdown().await;
        self.callbacks.abort();
        drop(self.hooks);
        drop(self.smtp);
        Ok(())
    }
}
