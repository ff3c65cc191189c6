//! Loading a rules file (TOML) with errors that point at a line.
//!
//! Syntax and shape errors come from the TOML parser with a byte span;
//! meaning errors (an unknown status, a bad clock time, a duplicate id) are
//! checked here against the value's span. Both become
//! `file:line: reason`, so an operator fixes a bad reload without guessing.

use std::collections::HashMap;
use std::fmt;

use serde::Deserialize;
use toml::Spanned;

use crate::model::{Channel, Priority, Status, SubStatus};
use crate::ops::text::RuleText;

use super::{ChannelSet, Layer, LayerId, QuietHours, RULES_FORMAT_VERSION, Rule, Rules, Settings};

/// Longest marketplace or seller name in a rules file, bytes.
pub const RULES_NAME_BYTES_MAX: usize = 64;

/// A rules file that could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {kind}")]
pub struct RulesError {
    /// The file name given to the loader.
    pub file: String,
    /// 1-based line of the offending value.
    pub line: u32,
    /// What is wrong.
    pub kind: RulesErrorKind,
}

/// What is wrong with a rules file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RulesErrorKind {
    /// The TOML parser rejected the text or its shape (the parser's message).
    #[error("{message}")]
    Syntax {
        /// The parser's message.
        message: String,
    },
    /// `version` is not one this build reads.
    #[error("unsupported rules version {version} (this build reads {RULES_FORMAT_VERSION})")]
    UnsupportedVersion {
        /// The version found.
        version: i64,
    },
    /// Not a status of the taxonomy.
    #[error("unknown status {name:?}")]
    UnknownStatus {
        /// The name found.
        name: String,
    },
    /// Not a sub-status of the taxonomy.
    #[error("unknown sub-status {name:?}")]
    UnknownSubStatus {
        /// The name found.
        name: String,
    },
    /// Not a channel.
    #[error("unknown channel {name:?} (expected webhook, email, sms or push)")]
    UnknownChannel {
        /// The name found.
        name: String,
    },
    /// Not a priority.
    #[error("unknown priority {name:?} (expected critical, normal or low)")]
    UnknownPriority {
        /// The name found.
        name: String,
    },
    /// Not a `HH:MM` clock time.
    #[error("bad clock time {text:?} (expected HH:MM, 00:00 to 23:59)")]
    BadClockTime {
        /// The text found.
        text: String,
    },
    /// Two rules in one layer share an id.
    #[error("duplicate rule id {id:?} in the same layer")]
    DuplicateRuleId {
        /// The id.
        id: String,
    },
    /// A marketplace appears twice.
    #[error("duplicate marketplace {name:?}")]
    DuplicateMarketplace {
        /// The name.
        name: String,
    },
    /// A seller of a marketplace appears twice.
    #[error("duplicate seller {name:?} of marketplace {marketplace:?}")]
    DuplicateSeller {
        /// Marketplace.
        marketplace: String,
        /// Seller.
        name: String,
    },
    /// A text field is empty.
    #[error("{field} must not be empty")]
    Empty {
        /// Which field.
        field: &'static str,
    },
    /// A text field is too long.
    #[error("{field} is longer than {bytes_max} bytes")]
    TooLong {
        /// Which field.
        field: &'static str,
        /// The limit.
        bytes_max: usize,
    },
    /// A number is outside its range.
    #[error("{field} = {value} is outside {min}..={max}")]
    OutOfRange {
        /// Which field.
        field: &'static str,
        /// The value found.
        value: i64,
        /// Smallest allowed.
        min: i64,
        /// Largest allowed.
        max: i64,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    version: Option<Spanned<i64>>,
    settings: Option<SettingsDoc>,
    #[serde(default)]
    rule: Vec<RuleDoc>,
    #[serde(default)]
    marketplace: Vec<MarketplaceDoc>,
    #[serde(default)]
    seller: Vec<SellerDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsDoc {
    quiet_hours: Option<QuietDoc>,
    caps_per_day: Option<CapsDoc>,
    digest_interval_minutes: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuietDoc {
    start: Spanned<String>,
    end: Spanned<String>,
    channels: Option<Vec<Spanned<String>>>,
    priorities: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CapsDoc {
    webhook: Option<Spanned<i64>>,
    email: Option<Spanned<i64>>,
    sms: Option<Spanned<i64>>,
    push: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDoc {
    id: Spanned<String>,
    when: Spanned<String>,
    sub_status: Option<Vec<Spanned<String>>>,
    from: Option<Vec<Spanned<String>>>,
    repeat: Option<bool>,
    channels: Vec<Spanned<String>>,
    template: Option<Spanned<String>>,
    priority: Option<Spanned<String>>,
    digest: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MarketplaceDoc {
    name: Spanned<String>,
    settings: Option<SettingsDoc>,
    #[serde(default)]
    rule: Vec<RuleDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SellerDoc {
    marketplace: Spanned<String>,
    name: Spanned<String>,
    settings: Option<SettingsDoc>,
    #[serde(default)]
    rule: Vec<RuleDoc>,
}

struct Ctx<'a> {
    text: &'a str,
    file: &'a str,
}

impl Ctx<'_> {
    fn line(&self, offset: usize) -> u32 {
        let end = offset.min(self.text.len());
        let newlines = self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        u32::try_from(newlines + 1).unwrap_or(u32::MAX)
    }

    fn err<T>(&self, span: std::ops::Range<usize>, kind: RulesErrorKind) -> Result<T, RulesError> {
        Err(RulesError {
            file: self.file.to_string(),
            line: self.line(span.start),
            kind,
        })
    }

    fn text<'s>(
        &self,
        value: &'s Spanned<String>,
        field: &'static str,
        bytes_max: usize,
    ) -> Result<&'s str, RulesError> {
        let s = value.get_ref().as_str();
        if s.is_empty() {
            return self.err(value.span(), RulesErrorKind::Empty { field });
        }
        if s.len() > bytes_max {
            return self.err(value.span(), RulesErrorKind::TooLong { field, bytes_max });
        }
        Ok(s)
    }

    fn status(&self, v: &Spanned<String>) -> Result<Status, RulesError> {
        Status::parse(v.get_ref()).map_or_else(
            || {
                self.err(
                    v.span(),
                    RulesErrorKind::UnknownStatus {
                        name: v.get_ref().clone(),
                    },
                )
            },
            Ok,
        )
    }

    fn channel(&self, v: &Spanned<String>) -> Result<Channel, RulesError> {
        Channel::parse(v.get_ref()).map_or_else(
            || {
                self.err(
                    v.span(),
                    RulesErrorKind::UnknownChannel {
                        name: v.get_ref().clone(),
                    },
                )
            },
            Ok,
        )
    }

    fn priority(&self, v: &Spanned<String>) -> Result<Priority, RulesError> {
        Priority::parse(v.get_ref()).map_or_else(
            || {
                self.err(
                    v.span(),
                    RulesErrorKind::UnknownPriority {
                        name: v.get_ref().clone(),
                    },
                )
            },
            Ok,
        )
    }

    fn clock(&self, v: &Spanned<String>) -> Result<u16, RulesError> {
        let text = v.get_ref();
        let parsed = text.split_once(':').and_then(|(h, m)| {
            if h.len() != 2 || m.len() != 2 {
                return None;
            }
            let h: u16 = h.parse().ok()?;
            let m: u16 = m.parse().ok()?;
            (h < 24 && m < 60).then_some(h * 60 + m)
        });
        parsed.map_or_else(
            || {
                self.err(
                    v.span(),
                    RulesErrorKind::BadClockTime { text: text.clone() },
                )
            },
            Ok,
        )
    }

    fn ranged(
        &self,
        v: &Spanned<i64>,
        field: &'static str,
        min: i64,
        max: i64,
    ) -> Result<i64, RulesError> {
        let value = *v.get_ref();
        if value < min || value > max {
            return self.err(
                v.span(),
                RulesErrorKind::OutOfRange {
                    field,
                    value,
                    min,
                    max,
                },
            );
        }
        Ok(value)
    }

    fn settings(&self, doc: Option<&SettingsDoc>) -> Result<Settings, RulesError> {
        let Some(doc) = doc else {
            return Ok(Settings::default());
        };
        let quiet_hours = match &doc.quiet_hours {
            None => None,
            Some(q) => {
                let channels = match &q.channels {
                    None => ChannelSet::default().with(Channel::Sms).with(Channel::Push),
                    Some(list) => {
                        let mut set = ChannelSet::default();
                        for c in list {
                            set = set.with(self.channel(c)?);
                        }
                        set
                    }
                };
                let priorities = match &q.priorities {
                    None => (1 << Priority::Normal as u8) | (1 << Priority::Low as u8),
                    Some(list) => {
                        let mut bits = 0u8;
                        for p in list {
                            bits |= 1 << self.priority(p)? as u8;
                        }
                        bits
                    }
                };
                Some(QuietHours {
                    start_minute: self.clock(&q.start)?,
                    end_minute: self.clock(&q.end)?,
                    channels,
                    priorities,
                })
            }
        };
        let caps_per_day = match &doc.caps_per_day {
            None => None,
            Some(c) => {
                let mut caps = [0u8; 4];
                let fields = [
                    (&c.webhook, Channel::Webhook, "caps_per_day.webhook"),
                    (&c.email, Channel::Email, "caps_per_day.email"),
                    (&c.sms, Channel::Sms, "caps_per_day.sms"),
                    (&c.push, Channel::Push, "caps_per_day.push"),
                ];
                for (value, channel, field) in fields {
                    if let Some(v) = value {
                        caps[channel as usize - 1] = self.ranged(v, field, 0, 255)? as u8;
                    }
                }
                Some(caps)
            }
        };
        let digest_interval_minutes = match &doc.digest_interval_minutes {
            None => None,
            Some(v) => Some(self.ranged(v, "digest_interval_minutes", 1, 7 * 24 * 60)? as u32),
        };
        Ok(Settings {
            quiet_hours,
            caps_per_day,
            digest_interval_minutes,
        })
    }

    fn rule(&self, doc: &RuleDoc) -> Result<Rule, RulesError> {
        let id = self.text(&doc.id, "rule id", RuleText::CAPACITY)?;
        let when = self.status(&doc.when)?;
        let mut sub_status_mask = 0u64;
        for s in doc.sub_status.iter().flatten() {
            let sub = SubStatus::parse(s.get_ref()).map_or_else(
                || {
                    self.err(
                        s.span(),
                        RulesErrorKind::UnknownSubStatus {
                            name: s.get_ref().clone(),
                        },
                    )
                },
                Ok,
            )?;
            sub_status_mask |= 1u64 << (sub as u8);
        }
        let mut from_mask = 0u16;
        for s in doc.from.iter().flatten() {
            from_mask |= 1u16 << (self.status(s)? as u8);
        }
        let mut channels = ChannelSet::default();
        for c in &doc.channels {
            channels = channels.with(self.channel(c)?);
        }
        let template = match &doc.template {
            Some(t) => self.text(t, "template", RuleText::CAPACITY)?,
            None => when.as_str(),
        };
        let priority = match &doc.priority {
            Some(p) => self.priority(p)?,
            None if when.is_critical() => Priority::Critical,
            None => Priority::Normal,
        };
        Ok(Rule {
            id: RuleText::truncated(id),
            when,
            sub_status_mask,
            from_mask,
            repeat: doc.repeat.unwrap_or(false),
            channels,
            template: RuleText::truncated(template),
            priority,
            digest: doc.digest.unwrap_or(false),
        })
    }

    fn layer(
        &self,
        rules: &[RuleDoc],
        settings: Option<&SettingsDoc>,
    ) -> Result<Layer, RulesError> {
        let mut out = Vec::with_capacity(rules.len());
        for doc in rules {
            let rule = self.rule(doc)?;
            if out.iter().any(|r: &Rule| r.id == rule.id) {
                return self.err(
                    doc.id.span(),
                    RulesErrorKind::DuplicateRuleId {
                        id: doc.id.get_ref().clone(),
                    },
                );
            }
            out.push(rule);
        }
        Ok(Layer::new(out, self.settings(settings)?))
    }
}

pub(super) fn parse(text: &str, file: &str) -> Result<Rules, RulesError> {
    let ctx = Ctx { text, file };
    let doc: FileDoc = toml::from_str(text).map_err(|e| RulesError {
        file: file.to_string(),
        line: e.span().map_or(1, |s| ctx.line(s.start)),
        kind: RulesErrorKind::Syntax {
            message: e.message().trim().to_string(),
        },
    })?;
    if let Some(v) = &doc.version
        && *v.get_ref() != RULES_FORMAT_VERSION
    {
        return ctx.err(
            v.span(),
            RulesErrorKind::UnsupportedVersion {
                version: *v.get_ref(),
            },
        );
    }
    let mut layers = vec![ctx.layer(&doc.rule, doc.settings.as_ref())?];
    let mut marketplaces: HashMap<String, LayerId> = HashMap::new();
    for m in &doc.marketplace {
        let name = ctx.text(&m.name, "marketplace name", RULES_NAME_BYTES_MAX)?;
        if marketplaces.contains_key(name) {
            return ctx.err(
                m.name.span(),
                RulesErrorKind::DuplicateMarketplace {
                    name: name.to_string(),
                },
            );
        }
        layers.push(ctx.layer(&m.rule, m.settings.as_ref())?);
        marketplaces.insert(name.to_string(), (layers.len() - 1) as LayerId);
    }
    let mut sellers: HashMap<String, HashMap<String, LayerId>> = HashMap::new();
    for s in &doc.seller {
        let marketplace = ctx.text(&s.marketplace, "seller marketplace", RULES_NAME_BYTES_MAX)?;
        let name = ctx.text(&s.name, "seller name", RULES_NAME_BYTES_MAX)?;
        let of_marketplace = sellers.entry(marketplace.to_string()).or_default();
        if of_marketplace.contains_key(name) {
            return ctx.err(
                s.name.span(),
                RulesErrorKind::DuplicateSeller {
                    marketplace: marketplace.to_string(),
                    name: name.to_string(),
                },
            );
        }
        layers.push(ctx.layer(&s.rule, s.settings.as_ref())?);
        of_marketplace.insert(name.to_string(), (layers.len() - 1) as LayerId);
    }
    if layers.len() > usize::from(LayerId::MAX) {
        return ctx.err(
            0..0,
            RulesErrorKind::OutOfRange {
                field: "layers",
                value: layers.len() as i64,
                min: 1,
                max: i64::from(LayerId::MAX),
            },
        );
    }
    Ok(Rules::from_layers(
        file.to_string(),
        layers,
        marketplaces,
        sellers,
    ))
}

impl fmt::Display for Rules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rules from {} ({} rules)",
            self.source(),
            self.rule_count()
        )
    }
}
