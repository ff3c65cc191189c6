//! Shared pieces of the delivery tests: the simulated outside world
//! (provider simulator, a real SMTP server, a webhook receiver), the
//! node's callback endpoints, and seeding orders and intents into a log.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use dropline_adapters::delivery::channel::{
    EmailConfig, PushConfig, SmsConfig, SmsSenderNumber, WebhookConfig,
};
use dropline_adapters::delivery::channel::{EmailSender, PushSender, SmsSender, WebhookSender};
use dropline_adapters::delivery::{
    ChannelSender, DeliveryConfig, DeliveryMetrics, OptOutStore, Rate, RetryPolicy,
    delivery_router, seed,
};
use dropline_loadgen::provider_sim::{
    ProviderSimConfig, ProviderSimHandle, RateLimit, SenderKind, SmsSenderConfig, run_provider_sim,
};
use dropline_loadgen::sinks::{SmtpSink, WebhookSink, WebhookSinkConfig};
use dropline_log::{Log, LogConfig};
use dropline_operators::model::{Carrier, Channel, Contact, ShipmentOrder};

pub const PARTITIONS: u32 = 2;
pub const WEBHOOK_SECRET: &[u8] = b"test-webhook-secret";
pub const OPT_OUT_SECRET: &[u8] = b"test-opt-out-secret";
pub const SHORT_CODE: &str = "55501";
pub const SHORT_CODE_LIMIT: RateLimit = RateLimit {
    per_second: 100.0,
    burst: 20,
};

/// The simulated outside world.
pub struct Outside {
    pub sim: ProviderSimHandle,
    pub smtp: SmtpSink,
    pub hooks: WebhookSink,
}

/// Starts the provider simulator (one short code), the SMTP server and the
/// webhook receiver. `inbound_url`: where the simulator posts STOP replies.
pub async fn outside(inbound_url: Option<String>, hook_fail_every: u32) -> Outside {
    let mut cfg = ProviderSimConfig::local();
    cfg.sms_senders = vec![SmsSenderConfig {
        number: SHORT_CODE.into(),
        kind: SenderKind::ShortCode,
    }];
    cfg.short_code_limit = SHORT_CODE_LIMIT;
    cfg.inbound_url = inbound_url;
    let sim = run_provider_sim(cfg).await.expect("provider simulator");
    let smtp = SmtpSink::start().expect("the SMTP server (python3-aiosmtpd) must be installed");
    let hooks = WebhookSink::start(WebhookSinkConfig {
        secret: WEBHOOK_SECRET.to_vec(),
        tolerance_s: 300,
        fail_every: hook_fail_every,
        fail_status: 503,
    })
    .await
    .expect("webhook receiver");
    Outside { sim, smtp, hooks }
}

/// Senders for every channel, pointed at `o`.
pub fn senders(
    sim_url: &str,
    smtp_port: u16,
    node_url: &str,
    now_ms: u64,
) -> Vec<Arc<ChannelSender>> {
    vec![
        Arc::new(ChannelSender::Webhook(WebhookSender::new(WebhookConfig {
            default_secret: WEBHOOK_SECRET.to_vec(),
            per_endpoint_concurrency: 4,
            timeout_ms: 5_000,
            ..WebhookConfig::default()
        }))),
        Arc::new(ChannelSender::Email(EmailSender::new(EmailConfig {
            host: "127.0.0.1".into(),
            port: smtp_port,
            from: "Dropline <notify@dropline.test>".into(),
            unsubscribe_base_url: node_url.into(),
            pool_connections_max: 4,
            timeout_ms: 5_000,
        }))),
        Arc::new(ChannelSender::Sms(SmsSender::new(
            SmsConfig {
                base_url: sim_url.into(),
                account_sid: "ACdropline".into(),
                auth_token: "token".into(),
                senders: vec![SmsSenderNumber {
                    number: SHORT_CODE.into(),
                    rate: Rate {
                        per_second: SHORT_CODE_LIMIT.per_second,
                        burst: SHORT_CODE_LIMIT.burst,
                    },
                }],
                status_callback_url: Some(format!("{node_url}/delivery/sms/status")),
                rate_margin: 0.95,
                timeout_ms: 5_000,
            },
            now_ms,
        ))),
        Arc::new(ChannelSender::Push(PushSender::new(
            PushConfig {
                base_url: sim_url.into(),
                project: "dropline-demo".into(),
                bearer_token: "token".into(),
                rate: Rate {
                    per_second: 10_000.0,
                    burst: 1_000,
                },
                timeout_ms: 5_000,
            },
            now_ms,
        ))),
    ]
}

/// A delivery configuration for tests: small windows, no quiet hours or
/// caps (tests that want them turn them on), quick retries.
pub fn config(dir: &std::path::Path) -> DeliveryConfig {
    let mut c = DeliveryConfig::new(dir.join("delivery.ckpt"));
    c.consolidation_window_ms = 200;
    c.group_close_slack_ms = 100;
    c.quiet_hours = None;
    c.buyer_cap = None;
    c.idle_poll_ms = 5;
    c.checkpoint_interval_ms = 10;
    c.retry = RetryPolicy {
        attempts_max: 3,
        backoff_base_ms: 2,
        backoff_cap_ms: 20,
        budget_ratio: 1.0,
        budget_floor: 1_000,
        rate_limited_max: 10_000,
    };
    c
}

pub fn open_log(dir: &std::path::Path) -> Arc<Log> {
    Arc::new(Log::open(LogConfig::new(dir.join("log"))).expect("log"))
}

/// The node side of a test: the log, opt-outs, metrics and the callback
/// endpoints on a loopback port.
pub struct Node {
    pub log: Arc<Log>,
    pub opt_outs: Arc<OptOutStore>,
    pub metrics: Arc<DeliveryMetrics>,
    pub url: String,
}

pub async fn node(dir: &std::path::Path) -> Node {
    let log = open_log(dir);
    seed::create_topics(&log, "orders", PARTITIONS).unwrap();
    let opt_outs = Arc::new(OptOutStore::open(log.clone(), OPT_OUT_SECRET).unwrap());
    let metrics = Arc::new(DeliveryMetrics::default());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = delivery_router(opt_outs.clone(), metrics.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Node {
        log,
        opt_outs,
        metrics,
        url,
    }
}

pub fn sms_number(i: usize) -> String {
    format!("+1555{i:07}")
}

pub fn email_address(i: usize) -> String {
    format!("buyer{i}@example.test")
}

/// An order for buyer `i` with a contact on every channel.
pub fn order(
    i: usize,
    tracking_number: &str,
    order_id: &str,
    hooks_url: &str,
    tz: &str,
) -> ShipmentOrder {
    ShipmentOrder {
        tracking_number: tracking_number.into(),
        carrier: Carrier::Ups,
        marketplace: "demo-market".into(),
        seller: "seller-1".into(),
        order_id: order_id.into(),
        skus: vec!["SKU-1".into()],
        buyer_id: format!("buyer-{i}"),
        promised_from_ms: 0,
        promised_to_ms: 0,
        buyer_locale: "en-US".into(),
        buyer_time_zone: tz.into(),
        destination_postal_code: "10001".into(),
        drop: true,
        contacts: vec![
            Contact {
                channel: Channel::Email,
                address: email_address(i),
                consent: true,
            },
            Contact {
                channel: Channel::Sms,
                address: sms_number(i),
                consent: true,
            },
            Contact {
                channel: Channel::Push,
                address: format!("push-token-{i}"),
                consent: true,
            },
            Contact {
                channel: Channel::Webhook,
                address: format!("{hooks_url}/hooks/demo-market"),
                consent: true,
            },
        ],
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}
