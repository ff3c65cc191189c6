//! Notification rules: which milestones notify whom, on which channels,
//! with which template and priority; quiet hours, daily caps and digests.
//!
//! Rules come in layers: the defaults, then overrides per marketplace, then
//! per seller (of a marketplace). For a scan, the most specific layer with a
//! matching rule wins; a rule with `channels = []` is how an override turns
//! a milestone off. Settings (quiet hours, caps, digest interval) resolve
//! field by field the same way. Rules are immutable once loaded and shared
//! through an `Arc`; a reload builds a new `Rules` and swaps it in, and a
//! file that fails to load leaves the previous rules in force (the caller
//! keeps them: loading returns a `Result`).

mod config;
mod defaults;

use std::collections::HashMap;

use crate::model::{Channel, Priority, Status, SubStatus};
use crate::ops::text::RuleText;

pub use config::{RULES_NAME_BYTES_MAX, RulesError, RulesErrorKind};

/// Version of the rules file format (`version = 1`).
pub const RULES_FORMAT_VERSION: i64 = 1;

/// A set of channels (bit `channel as u8 - 1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub struct ChannelSet(pub u8);

impl ChannelSet {
    /// Adds a channel.
    pub fn with(self, c: Channel) -> ChannelSet {
        ChannelSet(self.0 | Self::bit(c))
    }
    /// Whether the set holds the channel.
    pub fn contains(self, c: Channel) -> bool {
        self.0 & Self::bit(c) != 0
    }
    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// The channels in the set, in `Channel::ALL` order.
    pub fn iter(self) -> impl Iterator<Item = Channel> {
        Channel::ALL.into_iter().filter(move |c| self.contains(*c))
    }
    fn bit(c: Channel) -> u8 {
        1 << (c as u8 - 1)
    }
}

/// One rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Its id (recorded in decisions; part of intent ids).
    pub id: RuleText,
    /// The milestone it fires on.
    pub when: Status,
    /// Sub-statuses it is limited to (bit per sub-status; 0: any).
    pub sub_status_mask: u64,
    /// Previous milestones it is limited to (bit per status; 0: any).
    pub from_mask: u16,
    /// Also fire when the milestone repeats (pings); otherwise transitions only.
    pub repeat: bool,
    /// Channels to notify (empty: notify nobody).
    pub channels: ChannelSet,
    /// Message template.
    pub template: RuleText,
    /// Priority of the intents.
    pub priority: Priority,
    /// Deliver as part of a digest.
    pub digest: bool,
}

impl Rule {
    fn matches(&self, sub: SubStatus, previous: Option<Status>) -> bool {
        if self.sub_status_mask != 0 && self.sub_status_mask & (1u64 << (sub as u8)) == 0 {
            return false;
        }
        if self.from_mask != 0 {
            match previous {
                Some(p) if self.from_mask & (1u16 << (p as u8)) != 0 => {}
                _ => return false,
            }
        }
        true
    }
}

/// Quiet hours in the buyer's local time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuietHours {
    /// Start, minutes after local midnight.
    pub start_minute: u16,
    /// End, minutes after local midnight (may be before start: spans midnight).
    pub end_minute: u16,
    /// Channels they apply to.
    pub channels: ChannelSet,
    /// Priorities they apply to (bit `priority as u8`).
    pub priorities: u8,
}

impl QuietHours {
    /// Whether they apply to this channel and priority.
    pub fn applies(&self, channel: Channel, priority: Priority) -> bool {
        self.channels.contains(channel) && self.priorities & (1 << (priority as u8)) != 0
    }

    /// Minutes until the quiet period ends, when `minute_of_day` is inside it.
    pub fn minutes_left(&self, minute_of_day: u16) -> Option<u16> {
        let (s, e, m) = (self.start_minute, self.end_minute, minute_of_day);
        if s == e {
            return None;
        }
        let inside = if s < e {
            m >= s && m < e
        } else {
            m >= s || m < e
        };
        if !inside {
            return None;
        }
        Some(if m < e { e - m } else { 24 * 60 - m + e })
    }
}

/// Layer settings; `None` defers to the next, less specific layer.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Settings {
    /// Quiet hours.
    pub quiet_hours: Option<QuietHours>,
    /// Daily caps per channel (`Channel::ALL` order; 0: no cap).
    pub caps_per_day: Option<[u8; 4]>,
    /// Digest slot interval, minutes.
    pub digest_interval_minutes: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub(crate) struct Layer {
    /// Rules sorted by milestone (file order kept within one milestone).
    pub(crate) rules: Vec<Rule>,
    /// Per status (index `status as usize`): the range of `rules`.
    pub(crate) by_status: [(u16, u16); 14],
    pub(crate) settings: Settings,
}

impl Layer {
    pub(crate) fn new(mut rules: Vec<Rule>, settings: Settings) -> Layer {
        rules.sort_by_key(|r| r.when as u8);
        let mut by_status = [(0u16, 0u16); 14];
        for (i, r) in rules.iter().enumerate() {
            let slot = &mut by_status[r.when as usize];
            if slot.1 == 0 {
                slot.0 = i as u16;
            }
            slot.1 = i as u16 + 1;
        }
        Layer {
            rules,
            by_status,
            settings,
        }
    }

    fn candidates(&self, status: Status) -> &[Rule] {
        let (a, b) = self.by_status[status as usize];
        &self.rules[usize::from(a)..usize::from(b)]
    }
}

/// Index of a layer in a `Rules` (0 is the defaults).
pub type LayerId = u16;

/// The outcome of matching a scan against the rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleMatch<'a> {
    /// No rule for this milestone.
    None,
    /// A rule matched but fires on transitions only and the milestone repeated.
    NotATransition(&'a Rule),
    /// The rule to apply.
    Fire(&'a Rule),
}

/// A loaded rule set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rules {
    source: String,
    pub(crate) layers: Vec<Layer>,
    marketplaces: HashMap<String, LayerId>,
    sellers: HashMap<String, HashMap<String, LayerId>>,
}

/// Settings with every field resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResolvedSettings {
    /// Quiet hours, if any layer sets them.
    pub quiet_hours: Option<QuietHours>,
    /// Daily caps per channel (0: none).
    pub caps_per_day: [u8; 4],
    /// Digest slot interval, minutes.
    pub digest_interval_minutes: u32,
}

/// Digest interval when no layer sets one.
pub const DIGEST_INTERVAL_MINUTES_DEFAULT: u32 = 240;

impl Rules {
    /// The built-in rules (see `docs/rules.example.toml` for the same
    /// defaults written as a file).
    pub fn default_rules() -> Rules {
        defaults::default_rules()
    }

    /// Parses a rules file. Errors carry the file name, the 1-based line and
    /// the reason.
    pub fn from_toml_str(text: &str, file_name: &str) -> Result<Rules, RulesError> {
        config::parse(text, file_name)
    }

    pub(crate) fn from_layers(
        source: String,
        layers: Vec<Layer>,
        marketplaces: HashMap<String, LayerId>,
        sellers: HashMap<String, HashMap<String, LayerId>>,
    ) -> Rules {
        Rules {
            source,
            layers,
            marketplaces,
            sellers,
        }
    }

    /// Where the rules came from (file name, or `built-in`).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Total number of rules across layers.
    pub fn rule_count(&self) -> usize {
        self.layers.iter().map(|l| l.rules.len()).sum()
    }

    /// The layer of a marketplace's overrides.
    pub fn marketplace_layer(&self, marketplace: &str) -> Option<LayerId> {
        self.marketplaces.get(marketplace).copied()
    }

    /// The layer of a seller's overrides.
    pub fn seller_layer(&self, marketplace: &str, seller: &str) -> Option<LayerId> {
        self.sellers.get(marketplace)?.get(seller).copied()
    }

    /// Whether any seller has overrides.
    pub(crate) fn has_seller_overrides(&self) -> bool {
        !self.sellers.is_empty()
    }

    /// Sellers with overrides, as (marketplace, seller, layer).
    pub(crate) fn seller_overrides(&self) -> impl Iterator<Item = (&str, &str, LayerId)> {
        self.sellers.iter().flat_map(|(m, sellers)| {
            sellers
                .iter()
                .map(move |(s, l)| (m.as_str(), s.as_str(), *l))
        })
    }

    /// Matches a scan against the layers, most specific first.
    pub(crate) fn match_layers(
        &self,
        chain: &[Option<LayerId>; 2],
        status: Status,
        sub: SubStatus,
        previous: Option<Status>,
    ) -> RuleMatch<'_> {
        let specific = chain.iter().flatten().copied();
        for layer in specific.chain(std::iter::once(0)) {
            let Some(layer) = self.layers.get(usize::from(layer)) else {
                continue;
            };
            for rule in layer.candidates(status) {
                if rule.matches(sub, previous) {
                    if !rule.repeat && previous == Some(status) {
                        return RuleMatch::NotATransition(rule);
                    }
                    return RuleMatch::Fire(rule);
                }
            }
        }
        RuleMatch::None
    }

    /// Resolves settings across the layers, most specific first.
    pub(crate) fn settings_for(&self, chain: &[Option<LayerId>; 2]) -> ResolvedSettings {
        let mut quiet = None;
        let mut caps = None;
        let mut digest = None;
        let specific = chain.iter().flatten().copied();
        for layer in specific.chain(std::iter::once(0)) {
            if let Some(l) = self.layers.get(usize::from(layer)) {
                quiet = quiet.or(l.settings.quiet_hours);
                caps = caps.or(l.settings.caps_per_day);
                digest = digest.or(l.settings.digest_interval_minutes);
            }
        }
        ResolvedSettings {
            quiet_hours: quiet,
            caps_per_day: caps.unwrap_or([0; 4]),
            digest_interval_minutes: digest.unwrap_or(DIGEST_INTERVAL_MINUTES_DEFAULT).max(1),
        }
    }

    /// Which rule applies to a scan of an order from `marketplace`/`seller`
    /// (for tools and forensics; the chain uses interned layer ids).
    pub fn evaluate(
        &self,
        marketplace: &str,
        seller: &str,
        status: Status,
        sub_status: SubStatus,
        previous: Option<Status>,
    ) -> RuleMatch<'_> {
        let chain = [
            self.seller_layer(marketplace, seller),
            self.marketplace_layer(marketplace),
        ];
        self.match_layers(&chain, status, sub_status, previous)
    }

    /// Settings that apply to an order from `marketplace`/`seller`.
    pub fn settings(&self, marketplace: &str, seller: &str) -> ResolvedSettings {
        let chain = [
            self.seller_layer(marketplace, seller),
            self.marketplace_layer(marketplace),
        ];
        self.settings_for(&chain)
    }

    /// The default layer's rules.
    pub fn default_layer_rules(&self) -> &[Rule] {
        self.layers.first().map_or(&[], |l| &l.rules)
    }

    /// The default layer's settings.
    pub fn default_settings(&self) -> Settings {
        self.layers
            .first()
            .map(|l| l.settings.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_hours_span_midnight() {
        let q = QuietHours {
            start_minute: 21 * 60,
            end_minute: 8 * 60,
            channels: ChannelSet::default().with(Channel::Sms),
            priorities: 0b1110,
        };
        assert_eq!(q.minutes_left(22 * 60), Some(10 * 60));
        assert_eq!(q.minutes_left(7 * 60 + 59), Some(1));
        assert_eq!(q.minutes_left(8 * 60), None);
        assert_eq!(q.minutes_left(12 * 60), None);
        assert!(q.applies(Channel::Sms, Priority::Low));
        assert!(!q.applies(Channel::Email, Priority::Low));
    }

    #[test]
    fn defaults_cover_the_critical_milestones() {
        let rules = Rules::default_rules();
        for s in Status::ALL.into_iter().filter(|s| s.is_critical()) {
            let m = rules.evaluate("m", "s", s, SubStatus::None, Some(Status::InTransit));
            assert!(
                matches!(m, RuleMatch::Fire(r) if r.priority == Priority::Critical),
                "{s}"
            );
        }
        let ping = rules.evaluate(
            "m",
            "s",
            Status::InTransit,
            SubStatus::ArrivalScan,
            Some(Status::InTransit),
        );
        assert!(matches!(ping, RuleMatch::Fire(r) if r.digest && r.priority == Priority::Low));
        let again = rules.evaluate(
            "m",
            "s",
            Status::Delivered,
            SubStatus::None,
            Some(Status::Delivered),
        );
        assert!(matches!(again, RuleMatch::NotATransition(_)));
    }
}
