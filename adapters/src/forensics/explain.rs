//! One sentence per decision: what was decided about the parcel and why,
//! with the rule and the source record, for support and incident review.

use dropline_operators::model::Channel;
use dropline_operators::model::time::format_rfc3339_ms;
use dropline_operators::ops::outputs::InputTopic;
use dropline_operators::ops::{Decision, DecisionKind};

fn topic(t: InputTopic) -> &'static str {
    match t {
        InputTopic::Events => "carrier-events",
        InputTopic::Orders => "orders",
        InputTopic::Control => "control",
    }
}

fn when(ms: u64) -> String {
    format_rfc3339_ms(i64::try_from(ms).unwrap_or(0))
}

/// Explains one decision.
pub fn explain(d: &Decision) -> String {
    let ch = d.channel.map_or("-", Channel::as_str);
    let rule = if d.rule_id.is_empty() {
        String::new()
    } else {
        format!(" (rule {})", d.rule_id)
    };
    let what = match d.kind {
        DecisionKind::Deduplicated => {
            "duplicate scan dropped: the same scan was seen within the dedup window".to_string()
        }
        DecisionKind::Late => {
            "late scan kept out of the view: older than the newest accepted scan".to_string()
        }
        DecisionKind::Unmapped => "unmapped carrier code: counted, view unchanged".to_string(),
        DecisionKind::Debounced => {
            "ping held by debounce: same place within the debounce window".to_string()
        }
        DecisionKind::Superseded => format!(
            "held ping at offset {} replaced by this newer scan",
            d.related_offset
                .map_or_else(|| "?".into(), |o| o.to_string())
        ),
        DecisionKind::Released => format!(
            "held ping at offset {} released when its window closed",
            d.related_offset
                .map_or_else(|| "?".into(), |o| o.to_string())
        ),
        DecisionKind::NoRule => format!(
            "accepted {}; no rule notifies this milestone",
            d.status.as_str()
        ),
        DecisionKind::NoOrder => format!(
            "accepted {}; no order known, so nobody to notify",
            d.status.as_str()
        ),
        DecisionKind::Notified => format!(
            "notified on {ch}{rule}{}",
            d.intent_id
                .map_or(String::new(), |i| format!(", intent {i}"))
        ),
        DecisionKind::SuppressedOptOut => {
            format!("not sent on {ch}{rule}: the buyer opted out of {ch}")
        }
        DecisionKind::SuppressedNoConsent => {
            format!("not sent on {ch}{rule}: no contact with consent on {ch}")
        }
        DecisionKind::SuppressedCap => {
            format!("not sent on {ch}{rule}: the buyer's daily cap on {ch} is reached")
        }
        DecisionKind::Consolidated => format!(
            "merged on {ch}{rule} into the message of another parcel of the same order{}",
            d.intent_id
                .map_or(String::new(), |i| format!(" (intent {i})"))
        ),
        DecisionKind::HeldQuietHours => format!(
            "emitted on {ch}{rule}, held for quiet hours until {}",
            when(d.until_ms)
        ),
        DecisionKind::Digested => format!(
            "emitted on {ch}{rule} as part of a digest sent at {}",
            when(d.until_ms)
        ),
        DecisionKind::Stale => "no scan within the stale SLA: marked stale".to_string(),
        DecisionKind::Escalated => "exception unresolved past its SLA: escalated".to_string(),
        DecisionKind::OrderLinked => "order linked to the parcel".to_string(),
        DecisionKind::Evicted => "evicted from operator state to respect shipments_max".to_string(),
        DecisionKind::Retired => {
            "retired from operator state after its terminal status".to_string()
        }
        DecisionKind::SuppressedByRule => {
            format!("not sent{rule}: the matching rule notifies nobody")
        }
        DecisionKind::NotATransition => {
            format!("not sent{rule}: the milestone repeated and the rule notifies transitions only")
        }
    };
    format!(
        "{} {} [{}]: {what}; source {}[{}]@{}",
        when(d.log_time_ms),
        d.kind.as_str(),
        d.status.as_str(),
        topic(d.source.topic),
        d.source.partition,
        d.source.offset
    )
}
