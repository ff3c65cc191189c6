//! The result of a load run: a readable table, one JSON object (the last
//! line a run prints), and the figures the HTML report plots.

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde_json::{Map, Value};

use crate::audit::Audit;
use crate::recorder::Snapshot;

/// Percentiles of one latency histogram, ms.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Percentiles {
    /// Values recorded.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

impl Percentiles {
    /// From a histogram of µs.
    pub fn of_us(h: &Histogram<u64>) -> Percentiles {
        let ms = |us: u64| us as f64 / 1000.0;
        Percentiles {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

/// Everything a run reports.
#[derive(Clone, Debug)]
pub struct LoadReport {
    /// Scenario name.
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// `carrier` (webhooks through the adapter) or `raw` (QUIC).
    pub mode: String,
    /// `embedded` or the node's QUIC address.
    pub node: String,
    /// Where orders went.
    pub orders_to: String,
    /// `superdrop`: simulated time per real time.
    pub speedup: f64,
    /// Scans per webhook body (carrier mode).
    pub scans_per_webhook: u64,
    /// Planned send span, seconds (intended time of the last item).
    pub planned_s: f64,
    /// Until the last item was handed over, seconds.
    pub send_s: f64,
    /// Until every item was acknowledged, seconds.
    pub acked_s: f64,
    /// Until the engine had processed every acknowledged input, seconds
    /// (embedded node only).
    pub processed_s: Option<f64>,
    /// Counters of the run.
    pub counts: crate::recorder::Counts,
    /// Exceptions among the events sent.
    pub exceptions_sent: u64,
    /// Repeats of a scan sent (carrier mode: acknowledged scans minus
    /// distinct ones).
    pub duplicate_scans_sent: Option<u64>,
    /// Latency of events from intended time to acknowledgement.
    pub event_latency: Percentiles,
    /// Latency of orders from intended time to acknowledgement.
    pub order_latency: Percentiles,
    /// How late the sender handed items over.
    pub send_lag: Percentiles,
    /// The log audit (embedded node only).
    pub audit: Option<Audit>,
    /// Repeats the adapter dropped (carrier mode).
    pub adapter_duplicates_dropped: Option<u64>,
    /// Events the node acknowledged to the sender or adapter.
    pub node_acked: u64,
    /// Where the HTML report was written.
    pub html_path: Option<String>,
    /// Measurements for plots (not in the JSON).
    pub snapshot: Snapshot,
}

fn f2(v: f64) -> Value {
    Value::from((v * 100.0).round() / 100.0)
}

impl LoadReport {
    /// Events acknowledged per second of the run.
    pub fn events_per_s(&self) -> f64 {
        if self.acked_s > 0.0 {
            self.counts.events_acked as f64 / self.acked_s
        } else {
            0.0
        }
    }

    /// Events offered per second by the plan.
    pub fn offered_per_s(&self) -> f64 {
        if self.planned_s > 0.0 {
            self.counts.events_sent as f64 / self.planned_s
        } else {
            f64::INFINITY
        }
    }

    /// Acknowledged events missing from the log (`None` when the log
    /// could not be read back: a remote node). For a remote node, events
    /// taken but never acknowledged are reported as `unacked` instead.
    pub fn lost(&self) -> Option<u64> {
        self.audit.map(|a| a.lost)
    }

    /// The JSON object.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        let c = &self.counts;
        let mut set = |k: &str, v: Value| {
            m.insert(k.to_string(), v);
        };
        set("loadgen", Value::from(self.scenario.clone()));
        set("seed", Value::from(self.seed));
        set("mode", Value::from(self.mode.clone()));
        set("node", Value::from(self.node.clone()));
        if self.speedup.is_finite() {
            set("speedup", f2(self.speedup));
        } else {
            set("speedup", Value::from("max"));
        }
        set("scans_per_webhook", Value::from(self.scans_per_webhook));
        set("orders_sent", Value::from(c.orders_sent));
        set("orders_acked", Value::from(c.orders_acked));
        set("orders_failed", Value::from(c.orders_failed));
        set("events_sent", Value::from(c.events_sent));
        set("events_acked", Value::from(c.events_acked));
        set("events_failed", Value::from(c.events_failed));
        set("retries", Value::from(c.retries));
        set("exceptions_sent", Value::from(self.exceptions_sent));
        if let Some(d) = self.duplicate_scans_sent {
            set("duplicate_scans_sent", Value::from(d));
        }
        set("planned_s", f2(self.planned_s));
        set("send_s", f2(self.send_s));
        set("acked_s", f2(self.acked_s));
        if let Some(p) = self.processed_s {
            set("processed_s", f2(p));
        }
        let offered = self.offered_per_s();
        set(
            "offered_events_per_s",
            if offered.is_finite() {
                f2(offered)
            } else {
                Value::from("max")
            },
        );
        set("events_per_s", f2(self.events_per_s()));
        for (prefix, p) in [
            ("event_latency_ms", &self.event_latency),
            ("order_latency_ms", &self.order_latency),
            ("send_lag_ms", &self.send_lag),
        ] {
            set(&format!("{prefix}_p50"), f2(p.p50_ms));
            set(&format!("{prefix}_p99"), f2(p.p99_ms));
            set(&format!("{prefix}_p999"), f2(p.p999_ms));
            set(&format!("{prefix}_max"), f2(p.max_ms));
        }
        set("node_acked", Value::from(self.node_acked));
        if let Some(d) = self.adapter_duplicates_dropped {
            set("adapter_duplicates_dropped", Value::from(d));
        }
        match &self.audit {
            Some(a) => {
                set("verified", Value::from(true));
                set("lost", Value::from(a.lost));
                set("duplicates_in_log", Value::from(a.duplicates));
                set("unexpected_in_log", Value::from(a.unexpected));
            }
            None => {
                set("verified", Value::from(false));
                set(
                    "unacked",
                    Value::from(
                        c.events_sent
                            .saturating_sub(c.events_acked + c.events_failed),
                    ),
                );
            }
        }
        if let Some(path) = &self.html_path {
            set("html", Value::from(path.clone()));
        }
        Value::Object(m)
    }

    /// The readable table.
    pub fn table(&self) -> String {
        let c = &self.counts;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "== dropline loadgen {} (seed {}, {} mode, node {}) ==",
            self.scenario, self.seed, self.mode, self.node
        );
        let row = |out: &mut String, k: &str, v: String| {
            let _ = writeln!(out, "  {k:<28} {v}");
        };
        row(
            &mut out,
            "orders sent / acked / failed",
            format!(
                "{} / {} / {}  ({})",
                c.orders_sent, c.orders_acked, c.orders_failed, self.orders_to
            ),
        );
        row(
            &mut out,
            "events sent / acked / failed",
            format!(
                "{} / {} / {}",
                c.events_sent, c.events_acked, c.events_failed
            ),
        );
        if let Some(d) = self.duplicate_scans_sent {
            row(&mut out, "repeated scans sent", format!("{d}"));
        }
        row(
            &mut out,
            "exceptions sent",
            format!("{}", self.exceptions_sent),
        );
        row(
            &mut out,
            "planned / sent / acked",
            format!(
                "{:.2} s / {:.2} s / {:.2} s",
                self.planned_s, self.send_s, self.acked_s
            ),
        );
        if let Some(p) = self.processed_s {
            row(&mut out, "processed by the engine", format!("{p:.2} s"));
        }
        let offered = self.offered_per_s();
        row(
            &mut out,
            "offered / achieved events/s",
            if offered.is_finite() {
                format!("{offered:.0} / {:.0}", self.events_per_s())
            } else {
                format!("as fast as possible / {:.0}", self.events_per_s())
            },
        );
        let _ = writeln!(
            out,
            "  {:<28} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "latency (ms)", "p50", "p90", "p99", "p99.9", "max"
        );
        for (name, p) in [
            ("event, from intended time", &self.event_latency),
            ("order, from intended time", &self.order_latency),
            ("sender lag", &self.send_lag),
        ] {
            let _ = writeln!(
                out,
                "  {name:<28} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                p.p50_ms, p.p90_ms, p.p99_ms, p.p999_ms, p.max_ms
            );
        }
        match &self.audit {
            Some(a) => row(
                &mut out,
                "log audit",
                format!(
                    "lost {}, duplicated {}, unexpected {} ({} records)",
                    a.lost, a.duplicates, a.unexpected, a.records
                ),
            ),
            None => row(
                &mut out,
                "log audit",
                "not possible against a remote node (acks only)".into(),
            ),
        }
        if let Some(path) = &self.html_path {
            row(&mut out, "HTML report", path.clone());
        }
        out
    }
}
