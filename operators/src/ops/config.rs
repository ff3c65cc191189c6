//! The chain's configuration: windows, SLAs and bounds, each with its unit
//! in its name. Windows are in log time.

use crate::ops::dedup::DEDUP_WINDOW_MS_MAX;

const MINUTE_MS: u64 = 60 * 1000;
const HOUR_MS: u64 = 60 * MINUTE_MS;
const DAY_MS: u64 = 24 * HOUR_MS;

/// Largest debounce, SLA or retention setting, ms (they are kept as u32
/// seconds offsets in the state).
pub const CHAIN_DURATION_MS_MAX: u64 = 365 * DAY_MS;

/// Configuration of one partition's chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainConfig {
    /// The partition this chain owns (recorded in source references of
    /// timer outputs).
    pub partition: u32,
    /// Dedup window (default 24 h; at most `DEDUP_WINDOW_MS_MAX`).
    pub dedup_window_ms: u64,
    /// Dedup window in drop mode (default 72 h).
    pub dedup_window_drop_mode_ms: u64,
    /// Debounce window for pings (default 30 min).
    pub debounce_ms: u64,
    /// Debounce window in drop mode (default 2 h).
    pub debounce_drop_mode_ms: u64,
    /// No scan for this long: stale (default 48 h).
    pub stale_after_ms: u64,
    /// An exception unresolved this long is escalated (default 24 h).
    pub exception_escalate_after_ms: u64,
    /// Parcels of one order reaching a milestone within this window share
    /// one message (default 15 min).
    pub consolidate_window_ms: u64,
    /// A delivered (or returned, cancelled) shipment leaves the state this
    /// long after its last scan (default 72 h).
    pub retain_terminal_ms: u64,
    /// A shipment with no scan for this long leaves the state (default 30 days).
    pub retain_idle_ms: u64,
    /// Most shipments held; beyond it the least recently used (delivered
    /// ones first) is evicted with a recorded decision (default 4 M).
    pub shipments_max: u32,
    /// Shipments to pre-size the state for (drop mode pre-warming; default 0).
    pub shipments_initial: u32,
    /// Most opt-outs held (default 1 M); beyond it opt-outs are dead-lettered.
    pub opt_outs_max: u32,
    /// Most buyers with caps counted today (default 4 M); beyond it new
    /// buyers are not capped until older days are swept.
    pub buyer_caps_max: u32,
    /// Most consolidation entries (default 262 144); beyond it parcels are
    /// not consolidated until expired entries are swept.
    pub consolidation_entries_max: u32,
    /// Most open-exception case journals (default 65 536); beyond it case
    /// files hold the order and current state only.
    pub case_journals_max: u32,
    /// Most distinct sellers interned (default 1 M); beyond it seller
    /// overrides do not apply to new sellers.
    pub sellers_max: u32,
    /// Most distinct marketplaces interned (default 4096, at most 65 535).
    pub marketplaces_max: u32,
    /// In drop mode, normal-priority intents become digests too (default false).
    pub drop_mode_digest_normal: bool,
}

impl Default for ChainConfig {
    fn default() -> Self {
        ChainConfig {
            partition: 0,
            dedup_window_ms: DAY_MS,
            dedup_window_drop_mode_ms: 3 * DAY_MS,
            debounce_ms: 30 * MINUTE_MS,
            debounce_drop_mode_ms: 2 * HOUR_MS,
            stale_after_ms: 48 * HOUR_MS,
            exception_escalate_after_ms: DAY_MS,
            consolidate_window_ms: 15 * MINUTE_MS,
            retain_terminal_ms: 3 * DAY_MS,
            retain_idle_ms: 30 * DAY_MS,
            shipments_max: 4_000_000,
            shipments_initial: 0,
            opt_outs_max: 1_000_000,
            buyer_caps_max: 4_000_000,
            consolidation_entries_max: 262_144,
            case_journals_max: 65_536,
            sellers_max: 1_000_000,
            marketplaces_max: 4096,
            drop_mode_digest_normal: false,
        }
    }
}

/// A configuration value outside its range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("chain config: {field} = {value} is outside {min}..={max}")]
pub struct ChainConfigError {
    /// Which field.
    pub field: &'static str,
    /// Its value.
    pub value: u64,
    /// Smallest allowed.
    pub min: u64,
    /// Largest allowed.
    pub max: u64,
}

impl ChainConfig {
    /// Checks every field's range. `Chain::new` clamps instead, so a
    /// running chain never fails on configuration; call this at startup to
    /// refuse a bad configuration loudly.
    pub fn validate(&self) -> Result<(), ChainConfigError> {
        let checks: [(&'static str, u64, u64, u64); 13] = [
            (
                "dedup_window_ms",
                self.dedup_window_ms,
                0,
                DEDUP_WINDOW_MS_MAX,
            ),
            (
                "dedup_window_drop_mode_ms",
                self.dedup_window_drop_mode_ms,
                0,
                DEDUP_WINDOW_MS_MAX,
            ),
            ("debounce_ms", self.debounce_ms, 0, CHAIN_DURATION_MS_MAX),
            (
                "debounce_drop_mode_ms",
                self.debounce_drop_mode_ms,
                0,
                CHAIN_DURATION_MS_MAX,
            ),
            (
                "stale_after_ms",
                self.stale_after_ms,
                MINUTE_MS,
                CHAIN_DURATION_MS_MAX,
            ),
            (
                "exception_escalate_after_ms",
                self.exception_escalate_after_ms,
                MINUTE_MS,
                CHAIN_DURATION_MS_MAX,
            ),
            (
                "consolidate_window_ms",
                self.consolidate_window_ms,
                0,
                CHAIN_DURATION_MS_MAX,
            ),
            (
                "retain_terminal_ms",
                self.retain_terminal_ms,
                MINUTE_MS,
                CHAIN_DURATION_MS_MAX,
            ),
            (
                "retain_idle_ms",
                self.retain_idle_ms,
                MINUTE_MS,
                CHAIN_DURATION_MS_MAX,
            ),
            (
                "shipments_max",
                u64::from(self.shipments_max),
                1,
                u64::from(u32::MAX - 1),
            ),
            (
                "shipments_initial",
                u64::from(self.shipments_initial),
                0,
                u64::from(self.shipments_max),
            ),
            (
                "marketplaces_max",
                u64::from(self.marketplaces_max),
                1,
                u64::from(u16::MAX),
            ),
            (
                "sellers_max",
                u64::from(self.sellers_max),
                1,
                u64::from(u32::MAX - 1),
            ),
        ];
        for (field, value, min, max) in checks {
            if value < min || value > max {
                return Err(ChainConfigError {
                    field,
                    value,
                    min,
                    max,
                });
            }
        }
        Ok(())
    }

    /// A copy with every field clamped into its range.
    pub(crate) fn clamped(&self) -> ChainConfig {
        let d = |v: u64, min: u64| v.clamp(min, CHAIN_DURATION_MS_MAX);
        ChainConfig {
            dedup_window_ms: self.dedup_window_ms.min(DEDUP_WINDOW_MS_MAX),
            dedup_window_drop_mode_ms: self.dedup_window_drop_mode_ms.min(DEDUP_WINDOW_MS_MAX),
            debounce_ms: d(self.debounce_ms, 0),
            debounce_drop_mode_ms: d(self.debounce_drop_mode_ms, 0),
            stale_after_ms: d(self.stale_after_ms, MINUTE_MS),
            exception_escalate_after_ms: d(self.exception_escalate_after_ms, MINUTE_MS),
            consolidate_window_ms: d(self.consolidate_window_ms, 0),
            retain_terminal_ms: d(self.retain_terminal_ms, MINUTE_MS),
            retain_idle_ms: d(self.retain_idle_ms, MINUTE_MS),
            shipments_max: self.shipments_max.clamp(1, u32::MAX - 1),
            shipments_initial: self.shipments_initial.min(self.shipments_max),
            marketplaces_max: self.marketplaces_max.clamp(1, u32::from(u16::MAX)),
            sellers_max: self.sellers_max.clamp(1, u32::MAX - 1),
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_clamping_fixes_bad_values() {
        ChainConfig::default().validate().unwrap();
        let bad = ChainConfig {
            dedup_window_ms: DEDUP_WINDOW_MS_MAX + 1,
            ..ChainConfig::default()
        };
        let err = bad.validate().unwrap_err();
        assert_eq!(err.field, "dedup_window_ms");
        bad.clamped().validate().unwrap();
    }
}
