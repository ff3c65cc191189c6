//! Notification delivery for `dropline up`: the stand-in providers (the
//! bundled provider simulator for SMS and push, a local signed-webhook
//! receiver, and a local SMTP server when one can be started, Debian's
//! python3-aiosmtpd) and the `[delivery]` section that points the node's
//! delivery at them, built here in code. Without an SMTP server, email
//! intents stay in their topics as backlog and the demo says so.

use std::net::SocketAddr;

use anyhow::Context;
use dropline_adapters::delivery::callbacks::SMS_INBOUND_PATH;
use dropline_loadgen::provider_sim::{
    ProviderSimConfig, ProviderSimHandle, SenderKind, SmsSenderConfig, run_provider_sim,
};
use dropline_loadgen::sinks::{SmtpSink, WebhookSink, WebhookSinkConfig};

use crate::node::config::{
    EmailSection, PushSection, SmsSection, SmsSenderEntry, SmsSenderKind, WebhookSection,
};
use crate::node::delivery::CallbacksListener;
use crate::node::{DeliverySection, Node};

/// Secret marketplace webhooks are signed with in the demo.
pub(crate) const DEMO_WEBHOOK_SECRET: &str = "demo-marketplace-webhook-secret";
/// The demo's SMS sender numbers: a short code and a long code.
const DEMO_SMS_SENDERS: [(&str, SenderKind, SmsSenderKind); 2] = [
    ("55501", SenderKind::ShortCode, SmsSenderKind::ShortCode),
    (
        "+15550000001",
        SenderKind::LongCode,
        SmsSenderKind::LongCode,
    ),
];
/// The demo's push project.
const DEMO_PUSH_PROJECT: &str = "dropline-demo";

/// The stand-ins the demo's delivery sends to.
pub(crate) struct DemoDelivery {
    pub(crate) providers: ProviderSimHandle,
    pub(crate) hooks: WebhookSink,
    pub(crate) smtp: Option<SmtpSink>,
}

/// Starts the stand-ins and the node's delivery pointed at them.
pub(crate) async fn start(node: &mut Node) -> anyhow::Result<DemoDelivery> {
    // Receipts and STOP replies from the providers come back here.
    let callbacks = CallbacksListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let mut sim = ProviderSimConfig::local();
    sim.sms_senders = DEMO_SMS_SENDERS
        .iter()
        .map(|(number, kind, _)| SmsSenderConfig {
            number: (*number).into(),
            kind: *kind,
        })
        .collect();
    sim.push_project = DEMO_PUSH_PROJECT.into();
    sim.inbound_url = Some(format!("{}{SMS_INBOUND_PATH}", callbacks.url()));
    let providers = run_provider_sim(sim)
        .await
        .context("starting the provider simulator")?;
    let hooks = WebhookSink::start(WebhookSinkConfig {
        secret: DEMO_WEBHOOK_SECRET.as_bytes().to_vec(),
        tolerance_s: 300,
        fail_every: 0,
        fail_status: 503,
    })
    .await
    .context("starting the webhook receiver")?;
    let smtp = SmtpSink::start().ok();

    let section = DeliverySection {
        webhook: Some(WebhookSection {
            secret: DEMO_WEBHOOK_SECRET.into(),
            ..WebhookSection::default()
        }),
        sms: Some(SmsSection {
            base_url: providers.base_url(),
            account_sid: providers.config().sms_account_sid.clone(),
            auth_token: "demo".into(),
            senders: DEMO_SMS_SENDERS
                .iter()
                .map(|(number, _, kind)| SmsSenderEntry {
                    number: (*number).into(),
                    kind: *kind,
                    per_second: None,
                    burst: None,
                })
                .collect(),
            ..SmsSection::default()
        }),
        push: Some(PushSection {
            base_url: providers.base_url(),
            project: DEMO_PUSH_PROJECT.into(),
            bearer_token: "demo".into(),
            ..PushSection::default()
        }),
        email: smtp.as_ref().map(|smtp| EmailSection {
            host: "127.0.0.1".into(),
            port: smtp.port(),
            from: "Dropline demo <notify@dropline.test>".into(),
            ..EmailSection::default()
        }),
        ..DeliverySection::default()
    };
    node.start_delivery(&section, callbacks)
        .await
        .context("starting notification delivery")?;
    Ok(DemoDelivery {
        providers,
        hooks,
        smtp,
    })
}

impl DemoDelivery {
    /// Stops the stand-ins (the node stops its delivery worker).
    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        self.providers.shutdown().await;
        drop(self.hooks);
        drop(self.smtp);
        Ok(())
    }
}
