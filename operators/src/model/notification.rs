//! Notification vocabulary shared by the rules, fan-out and delivery:
//! channels and priorities.

use serde::{Deserialize, Serialize};

/// A channel a notification goes out on.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[rkyv(compare(PartialEq), derive(Debug, Clone, Copy, PartialEq, Eq))]
#[repr(u8)]
pub enum Channel {
    /// Signed JSON webhook to the marketplace.
    Webhook = 1,
    /// Email over SMTP.
    Email = 2,
    /// SMS through a provider API.
    Sms = 3,
    /// Mobile push through a provider API.
    Push = 4,
}

impl Channel {
    /// Every channel.
    pub const ALL: [Channel; 4] = [
        Channel::Webhook,
        Channel::Email,
        Channel::Sms,
        Channel::Push,
    ];

    /// Lower-case name used in topic names, rules files and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Webhook => "webhook",
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Push => "push",
        }
    }

    /// Parses the lower-case name.
    pub fn parse(name: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

/// How urgently a notification must go out. Critical first; degrade from
/// the bottom.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[rkyv(compare(PartialEq), derive(Debug, Clone, Copy, PartialEq, Eq))]
#[repr(u8)]
pub enum Priority {
    /// Exception, attempt, out for delivery, pickup, delivered, returning.
    Critical = 1,
    /// Ordinary milestones.
    Normal = 2,
    /// Pings that can wait for a digest.
    Low = 3,
}

impl Priority {
    /// Every priority, most urgent first.
    pub const ALL: [Priority; 3] = [Priority::Critical, Priority::Normal, Priority::Low];

    /// Lower-case name used in topic names, rules files and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Critical => "critical",
            Priority::Normal => "normal",
            Priority::Low => "low",
        }
    }

    /// Parses the lower-case name.
    pub fn parse(name: &str) -> Option<Priority> {
        Priority::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

/// Name of the topic holding intents for one channel and priority:
/// `notify-<channel>-<priority>`.
pub fn notify_topic(channel: Channel, priority: Priority) -> String {
    format!("notify-{}-{}", channel.as_str(), priority.as_str())
}
