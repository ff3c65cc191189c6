//! The built-in rules: every milestone a buyer cares about, critical ones on
//! every channel, pings as low-priority push digests, quiet hours for SMS
//! and push, at most 3 SMS a day. `docs/rules.example.toml` writes the same
//! defaults as a file (a test keeps the two equal).

use std::collections::HashMap;

use crate::model::{Channel, Priority, Status};
use crate::ops::text::RuleText;

use super::{ChannelSet, Layer, QuietHours, Rule, Rules, Settings};

fn rule(
    id: &str,
    when: Status,
    channels: &[Channel],
    priority: Priority,
    repeat: bool,
    digest: bool,
) -> Rule {
    let set = channels
        .iter()
        .fold(ChannelSet::default(), |s, c| s.with(*c));
    Rule {
        id: RuleText::truncated(id),
        when,
        sub_status_mask: 0,
        from_mask: 0,
        repeat,
        channels: set,
        template: RuleText::truncated(when.as_str()),
        priority,
        digest,
    }
}

pub(super) fn default_rules() -> Rules {
    use Channel::{Email, Push, Sms, Webhook};
    use Priority::{Critical, Low, Normal};
    let all = [Webhook, Email, Sms, Push];
    let rules = vec![
        rule(
            "label-created",
            Status::LabelCreated,
            &[Webhook],
            Low,
            false,
            false,
        ),
        rule(
            "picked-up",
            Status::PickedUp,
            &[Webhook, Email, Push],
            Normal,
            false,
            false,
        ),
        rule(
            "in-transit",
            Status::InTransit,
            &[Webhook, Push],
            Low,
            true,
            true,
        ),
        rule(
            "out-for-delivery",
            Status::OutForDelivery,
            &all,
            Critical,
            false,
            false,
        ),
        rule(
            "available-for-pickup",
            Status::AvailableForPickup,
            &[Webhook, Email, Sms],
            Critical,
            false,
            false,
        ),
        rule(
            "delivery-attempted",
            Status::DeliveryAttempted,
            &[Webhook, Email, Sms],
            Critical,
            true,
            false,
        ),
        rule("delivered", Status::Delivered, &all, Critical, false, false),
        rule(
            "exception",
            Status::Exception,
            &[Webhook, Email, Sms],
            Critical,
            true,
            false,
        ),
        rule(
            "returning",
            Status::ReturningToSender,
            &[Webhook, Email],
            Critical,
            false,
            false,
        ),
        rule(
            "returned",
            Status::ReturnedToSender,
            &[Webhook, Email],
            Normal,
            false,
            false,
        ),
        rule(
            "cancelled",
            Status::Cancelled,
            &[Webhook, Email],
            Normal,
            false,
            false,
        ),
        rule("stale", Status::Stale, &[Webhook], Normal, false, false),
    ];
    let settings = Settings {
        quiet_hours: Some(QuietHours {
            start_minute: 21 * 60,
            end_minute: 8 * 60,
            channels: ChannelSet::default().with(Sms).with(Push),
            priorities: (1 << Normal as u8) | (1 << Low as u8),
        }),
        caps_per_day: Some([0, 0, 3, 0]),
        digest_interval_minutes: Some(240),
    };
    Rules::from_layers(
        "built-in".to_string(),
        vec![Layer::new(rules, settings)],
        HashMap::new(),
        HashMap::new(),
    )
}
