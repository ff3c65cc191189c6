//! Case journals: what happened to a shipment since its exception opened,
//! kept only while an exception is open, so an escalation can carry a case
//! file without the state keeping every parcel's history.

use crate::ops::decision::Decision;
use crate::ops::outputs::{CaseDecision, CaseEvent};
use crate::ops::text::RuleText;

/// Scans kept per journal (the first ones after the exception opened).
pub const CASE_JOURNAL_EVENTS_MAX: usize = 16;
/// Decisions kept per journal.
pub const CASE_JOURNAL_DECISIONS_MAX: usize = 48;
/// Distinct rules kept per journal.
pub const CASE_JOURNAL_RULES_MAX: usize = 8;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CaseJournal {
    pub(crate) events: Vec<CaseEvent>,
    pub(crate) decisions: Vec<CaseDecision>,
    pub(crate) rules: Vec<RuleText>,
}

impl CaseJournal {
    pub(crate) fn push_event(&mut self, e: CaseEvent) {
        if self.events.len() < CASE_JOURNAL_EVENTS_MAX {
            self.events.push(e);
        }
    }

    pub(crate) fn push_decision(&mut self, d: &Decision) {
        if self.decisions.len() < CASE_JOURNAL_DECISIONS_MAX {
            self.decisions.push(CaseDecision {
                kind: d.kind,
                log_time_ms: d.log_time_ms,
                offset: d.source.offset,
                rule_id: d.rule_id,
                channel: d.channel,
            });
        }
        if !d.rule_id.is_empty()
            && self.rules.len() < CASE_JOURNAL_RULES_MAX
            && !self.rules.contains(&d.rule_id)
        {
            self.rules.push(d.rule_id);
        }
    }

    pub(crate) fn bytes_held(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.events.capacity() * std::mem::size_of::<CaseEvent>()
            + self.decisions.capacity() * std::mem::size_of::<CaseDecision>()
            + self.rules.capacity() * std::mem::size_of::<RuleText>()
    }
}
