//! Load scenarios: what is sent, and when it is meant to be sent.
//!
//! A scenario turns the seeded superdrop workload ([`crate::workload`]) into
//! a plan: every order and carrier event with its intended send time, in
//! real microseconds from the start of the run. The sender is open-loop:
//! it sends each item at its intended time whatever happened to the
//! previous ones, and latency is measured from that intended time, so a
//! stall on the target side shows up in the figures instead of silently
//! slowing the offered load (coordinated omission).
//!
//! - `superdrop`: the drop as it happens, compressed `speedup` times: the
//!   orders within the first 30 simulated minutes, then every parcel's 10 to
//!   20 scans over the following simulated days, with the workload's noise
//!   (duplicates, ping storms, exceptions, late and out-of-order scans).
//! - `steady`: the same kind of traffic at a constant rate of carrier
//!   events for a fixed time.
//! - `burst`: the steady rate, then a step of 10 to 100 times that rate for
//!   a while, then the steady rate again, as when a drop lands on a running
//!   system.
//!
//! The plan is computed lazily (the workload keeps a small cursor per
//! parcel), so a 200,000-order drop does not materialize 2.4 million items.

use crate::workload::{WorkItem, Workload, WorkloadConfig};

/// Average carrier events per parcel in the workload (scans plus noise),
/// used to size the parcel pool of rate-driven scenarios.
pub const EVENTS_PER_PARCEL_AVG: u64 = 13;
/// Smallest accepted burst factor.
pub const BURST_FACTOR_MIN: f64 = 10.0;
/// Largest accepted burst factor.
pub const BURST_FACTOR_MAX: f64 = 100.0;
/// Simulated window within which a superdrop's orders arrive, in ms.
pub const SUPERDROP_ORDER_WINDOW_MS: u64 = 30 * 60 * 1000;

/// Which traffic shape to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// A superdrop: orders within 30 minutes, scans over days, compressed.
    Superdrop,
    /// A constant rate of carrier events.
    Steady,
    /// The steady rate with a 10x to 100x step in the middle.
    Burst,
}

impl Scenario {
    /// The scenario's name on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::Superdrop => "superdrop",
            Scenario::Steady => "steady",
            Scenario::Burst => "burst",
        }
    }

    /// Parses a name given by [`Scenario::as_str`].
    pub fn parse(name: &str) -> Option<Scenario> {
        [Scenario::Superdrop, Scenario::Steady, Scenario::Burst]
            .into_iter()
            .find(|s| s.as_str() == name)
    }
}

impl std::fmt::Display for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a scenario configuration was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScenarioError {
    /// A field is out of range.
    #[error("{field} = {value}: {reason}")]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// Its value.
        value: f64,
        /// What is allowed.
        reason: &'static str,
    },
}

/// A scenario's parameters. Times are real seconds unless named otherwise.
#[derive(Clone, Debug, PartialEq)]
pub struct ScenarioConfig {
    /// The shape.
    pub scenario: Scenario,
    /// Seed of every random choice: the same seed gives the same plan.
    pub seed: u64,
    /// Parcels (one order each). For `steady` and `burst`, 0 sizes the
    /// pool from the events to send.
    pub orders: u64,
    /// `superdrop`: simulated time runs this many times faster than real
    /// time. `f64::INFINITY` sends everything at once (as fast as the
    /// target takes it; latency is then queueing time).
    pub speedup: f64,
    /// `steady` and `burst`: carrier events per second at the base rate.
    pub rate_per_s: f64,
    /// `steady` and `burst`: length of the run, seconds.
    pub duration_s: f64,
    /// `burst`: the step's rate as a multiple of the base rate (10..=100).
    pub burst_factor: f64,
    /// `burst`: when the step starts, seconds from the start.
    pub burst_start_s: f64,
    /// `burst`: how long the step lasts, seconds.
    pub burst_len_s: f64,
    /// Stop after this many carrier events (0: no limit besides the
    /// scenario's own).
    pub events_max: u64,
    /// Simulated time of the drop's start, ms since the Unix epoch (the
    /// dates written in the scans).
    pub start_ms: u64,
}

impl ScenarioConfig {
    /// Defaults for `scenario`: a 200,000-order superdrop at 3,600x (an
    /// hour of carrier time per second), or 2,000 events/s for 60 s with a
    /// 20x burst from second 20 to 30.
    pub fn new(scenario: Scenario) -> ScenarioConfig {
        ScenarioConfig {
            scenario,
            seed: 1,
            orders: if scenario == Scenario::Superdrop {
                200_000
            } else {
                0
            },
            speedup: 3_600.0,
            rate_per_s: 2_000.0,
            duration_s: 60.0,
            burst_factor: 20.0,
            burst_start_s: 20.0,
            burst_len_s: 10.0,
            events_max: 0,
            start_ms: WorkloadConfig::default().start_ms,
        }
    }

    /// Checks the ranges.
    pub fn check(&self) -> Result<(), ScenarioError> {
        let bad = |field, value, reason| {
            Err(ScenarioError::OutOfRange {
                field,
                value,
                reason,
            })
        };
        match self.scenario {
            Scenario::Superdrop => {
                if self.orders == 0 {
                    return bad("orders", 0.0, "a superdrop needs at least one order");
                }
                if self.speedup.is_nan() || self.speedup <= 0.0 {
                    return bad("speedup", self.speedup, "must be positive");
                }
            }
            Scenario::Steady | Scenario::Burst => {
                if !(self.rate_per_s.is_finite() && self.rate_per_s > 0.0) {
                    return bad("rate_per_s", self.rate_per_s, "must be positive");
                }
                if !(self.duration_s.is_finite() && self.duration_s > 0.0) {
                    return bad("duration_s", self.duration_s, "must be positive");
                }
            }
        }
        if self.scenario == Scenario::Burst {
            if !(BURST_FACTOR_MIN..=BURST_FACTOR_MAX).contains(&self.burst_factor) {
                return bad("burst_factor", self.burst_factor, "must be within 10..=100");
            }
            if self.burst_start_s < 0.0
                || self.burst_len_s <= 0.0
                || self.burst_start_s + self.burst_len_s > self.duration_s
            {
                return bad(
                    "burst_len_s",
                    self.burst_len_s,
                    "the step must start at or after 0 and end within the run",
                );
            }
        }
        Ok(())
    }

    /// Carrier events the rate-driven scenarios send (their rate integrated
    /// over the run); `None` for a superdrop (every parcel's timeline).
    pub fn planned_events(&self) -> Option<u64> {
        let n = match self.scenario {
            Scenario::Superdrop => return None,
            Scenario::Steady => self.rate_per_s * self.duration_s,
            Scenario::Burst => {
                self.rate_per_s * (self.duration_s + (self.burst_factor - 1.0) * self.burst_len_s)
            }
        };
        let n = n.round() as u64;
        Some(if self.events_max > 0 {
            n.min(self.events_max)
        } else {
            n
        })
    }

    /// Parcels in the workload.
    pub fn parcels(&self) -> u64 {
        match self.planned_events() {
            Some(events) if self.orders == 0 => events.div_ceil(EVENTS_PER_PARCEL_AVG).max(1),
            _ => self.orders.max(1),
        }
    }

    fn workload(&self) -> WorkloadConfig {
        WorkloadConfig {
            seed: self.seed,
            shipments: self.parcels(),
            events_max: self.planned_events().unwrap_or(self.events_max),
            start_ms: self.start_ms,
            order_window_ms: SUPERDROP_ORDER_WINDOW_MS,
            tick_interval_ms: 0,
            ..WorkloadConfig::default()
        }
    }
}

/// One item of the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Planned {
    /// Intended send time, real µs from the start of the run.
    pub at_us: u64,
    /// Simulated time the item belongs to (its log time in the workload),
    /// ms since the Unix epoch.
    pub sim_ms: u64,
    /// What to send (never a tick).
    pub item: WorkItem,
}

/// The plan: [`Planned`] items in intended-time order.
pub struct Plan {
    config: ScenarioConfig,
    workload: Workload,
    /// Carrier events planned so far.
    events: u64,
    /// Intended time of the latest event (orders between events share it).
    last_at_us: u64,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("scenario", &self.config.scenario)
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

impl Plan {
    /// The plan of `config` (checked first).
    pub fn new(config: ScenarioConfig) -> Result<Plan, ScenarioError> {
        config.check()?;
        let workload = Workload::new(config.workload());
        Ok(Plan {
            config,
            workload,
            events: 0,
            last_at_us: 0,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ScenarioConfig {
        &self.config
    }

    /// Intended time of the `k`-th carrier event (0-based) of a
    /// rate-driven scenario, real µs from the start.
    pub fn rate_time_us(config: &ScenarioConfig, k: u64) -> u64 {
        let base = config.rate_per_s;
        let k = k as f64;
        let s = match config.scenario {
            Scenario::Superdrop | Scenario::Steady => k / base,
            Scenario::Burst => {
                let before = base * config.burst_start_s;
                let during = base * config.burst_factor * config.burst_len_s;
                if k < before {
                    k / base
                } else if k < before + during {
                    config.burst_start_s + (k - before) / (base * config.burst_factor)
                } else {
                    config.burst_start_s + config.burst_len_s + (k - before - during) / base
                }
            }
        };
        (s * 1e6) as u64
    }

    fn superdrop_time_us(&self, sim_ms: u64) -> u64 {
        let speedup = self.config.speedup;
        if speedup.is_infinite() {
            return 0;
        }
        let sim = sim_ms.saturating_sub(self.config.start_ms) as f64;
        (sim * 1000.0 / speedup) as u64
    }
}

impl Iterator for Plan {
    type Item = Planned;

    fn next(&mut self) -> Option<Planned> {
        loop {
            let (sim_ms, item) = self.workload.next()?;
            let at_us = match (&item, self.config.scenario) {
                (WorkItem::Tick, _) => continue,
                (_, Scenario::Superdrop) => self.superdrop_time_us(sim_ms),
                (WorkItem::Event(_), _) => {
                    let t = Plan::rate_time_us(&self.config, self.events);
                    self.last_at_us = t;
                    t
                }
                (WorkItem::Order(_), _) => self.last_at_us,
            };
            if matches!(item, WorkItem::Event(_)) {
                self.events += 1;
            }
            return Some(Planned {
                at_us,
                sim_ms,
                item,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dropline_operators::model::Status;
    use std::collections::HashSet;

    fn superdrop(orders: u64) -> ScenarioConfig {
        ScenarioConfig {
            orders,
            speedup: 1_000.0,
            ..ScenarioConfig::new(Scenario::Superdrop)
        }
    }

    #[test]
    fn same_seed_same_plan() {
        let a: Vec<_> = Plan::new(superdrop(300)).unwrap().collect();
        let b: Vec<_> = Plan::new(superdrop(300)).unwrap().collect();
        assert_eq!(a, b);
        let c: Vec<_> = Plan::new(ScenarioConfig {
            seed: 2,
            ..superdrop(300)
        })
        .unwrap()
        .collect();
        assert_ne!(a, c);
    }

    #[test]
    fn superdrop_orders_within_30_minutes_then_scans_over_days() {
        let cfg = superdrop(2_000);
        let plan: Vec<_> = Plan::new(cfg.clone()).unwrap().collect();
        let window_us = SUPERDROP_ORDER_WINDOW_MS * 1000 / 1000; // at 1,000x
        let mut orders = 0;
        let mut events = 0u64;
        let mut seen = HashSet::new();
        let (mut duplicates, mut exception_parcels) = (0u64, HashSet::new());
        let mut last = 0;
        for p in &plan {
            assert!(p.at_us >= last, "intended times never go back");
            last = p.at_us;
            match &p.item {
                WorkItem::Order(_) => {
                    orders += 1;
                    assert!(p.at_us < window_us, "order at {} µs", p.at_us);
                }
                WorkItem::Event(e) => {
                    events += 1;
                    if !seen.insert((e.tracking_number.clone(), e.occurred_at_ms)) {
                        duplicates += 1;
                    }
                    if e.status == Status::Exception {
                        exception_parcels.insert(e.tracking_number.clone());
                    }
                }
                WorkItem::Tick => panic!("no ticks in a plan"),
            }
        }
        assert_eq!(orders, 2_000);
        let per_parcel = events as f64 / 2_000.0;
        assert!((10.0..=20.0).contains(&per_parcel), "{per_parcel}");
        let dup = duplicates as f64 / events as f64;
        assert!((0.03..=0.07).contains(&dup), "duplicates {dup}");
        let exc = exception_parcels.len() as f64 / 2_000.0;
        assert!((0.02..=0.05).contains(&exc), "exceptions {exc}");
        // Days of carrier time after the half hour of orders.
        let span_days = last as f64 * 1_000.0 / 1e6 / 86_400.0;
        assert!(span_days > 2.0, "{span_days} days");
    }

    #[test]
    fn infinite_speedup_sends_everything_at_once() {
        let cfg = ScenarioConfig {
            speedup: f64::INFINITY,
            ..superdrop(50)
        };
        assert!(Plan::new(cfg).unwrap().all(|p| p.at_us == 0));
    }

    #[test]
    fn steady_sends_at_a_constant_rate() {
        let cfg = ScenarioConfig {
            rate_per_s: 500.0,
            duration_s: 10.0,
            ..ScenarioConfig::new(Scenario::Steady)
        };
        let plan: Vec<_> = Plan::new(cfg.clone()).unwrap().collect();
        let mut per_second = [0u64; 10];
        for p in &plan {
            if matches!(p.item, WorkItem::Event(_)) {
                per_second[(p.at_us / 1_000_000) as usize] += 1;
            }
        }
        assert_eq!(per_second, [500; 10]);
        assert!(plan.iter().any(|p| matches!(p.item, WorkItem::Order(_))));
        assert_eq!(cfg.planned_events(), Some(5_000));
    }

    #[test]
    fn burst_steps_by_its_factor_and_returns() {
        let cfg = ScenarioConfig {
            rate_per_s: 100.0,
            duration_s: 10.0,
            burst_factor: 50.0,
            burst_start_s: 4.0,
            burst_len_s: 2.0,
            ..ScenarioConfig::new(Scenario::Burst)
        };
        let mut per_second = [0u64; 10];
        for p in Plan::new(cfg.clone()).unwrap() {
            if matches!(p.item, WorkItem::Event(_)) {
                per_second[(p.at_us / 1_000_000) as usize] += 1;
            }
        }
        assert_eq!(
            per_second,
            [100, 100, 100, 100, 5_000, 5_000, 100, 100, 100, 100]
        );
        assert_eq!(cfg.planned_events(), Some(100 * 10 + 49 * 100 * 2));
    }

    #[test]
    fn out_of_range_is_refused() {
        let burst = |factor| ScenarioConfig {
            burst_factor: factor,
            ..ScenarioConfig::new(Scenario::Burst)
        };
        assert!(Plan::new(burst(5.0)).is_err());
        assert!(Plan::new(burst(101.0)).is_err());
        assert!(Plan::new(burst(10.0)).is_ok());
        assert!(
            Plan::new(ScenarioConfig {
                speedup: 0.0,
                ..superdrop(10)
            })
            .is_err()
        );
        assert_eq!(Scenario::parse("burst"), Some(Scenario::Burst));
        assert_eq!(Scenario::parse("nope"), None);
    }
}
