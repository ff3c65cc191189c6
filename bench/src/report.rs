//! How every `dropline bench ...` reports: a readable summary on stdout,
//! then, as the very last line, one JSON object. Latency figures come from
//! HDR histograms; memory from the kernel's high-water mark.

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde_json::{Map, Value};

/// A benchmark's result: ordered key/value pairs, printed as a table and as
/// the final JSON line.
#[derive(Debug, Default)]
pub struct Report {
    title: String,
    fields: Map<String, Value>,
    notes: Vec<String>,
}

impl Report {
    /// Starts a report for the named bench (the JSON `bench` key).
    pub fn new(bench: &str) -> Self {
        let mut fields = Map::new();
        fields.insert("bench".into(), Value::from(bench));
        Report {
            title: bench.to_string(),
            fields,
            notes: Vec::new(),
        }
    }

    /// Sets a field (later sets of the same key replace earlier ones).
    pub fn set(&mut self, key: &str, value: impl Into<Value>) -> &mut Self {
        self.fields.insert(key.to_string(), value.into());
        self
    }

    /// Sets a float rounded to `digits` decimals, so the JSON stays readable.
    pub fn set_f64(&mut self, key: &str, value: f64, digits: i32) -> &mut Self {
        let scale = 10f64.powi(digits);
        let rounded = (value * scale).round() / scale;
        self.set(key, rounded)
    }

    /// Adds `<prefix>_p50`, `_p99`, `_p999` and `_max` from a histogram.
    pub fn set_latency(&mut self, prefix: &str, histogram: &Histogram<u64>) -> &mut Self {
        self.set(&format!("{prefix}_p50"), histogram.value_at_quantile(0.50));
        self.set(&format!("{prefix}_p99"), histogram.value_at_quantile(0.99));
        self.set(
            &format!("{prefix}_p999"),
            histogram.value_at_quantile(0.999),
        );
        self.set(&format!("{prefix}_max"), histogram.max());
        self
    }

    /// Adds a free-text line to the human summary (not to the JSON).
    pub fn note(&mut self, line: impl Into<String>) -> &mut Self {
        self.notes.push(line.into());
        self
    }

    /// A field's current value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields.get(key)
    }

    /// The human summary followed by the JSON line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "== dropline bench {} ==", self.title);
        let width = self.fields.keys().map(String::len).max().unwrap_or(0);
        for (key, value) in &self.fields {
            if key == "bench" {
                continue;
            }
            let _ = writeln!(out, "  {key:<width$}  {value}");
        }
        for line in &self.notes {
            let _ = writeln!(out, "  note: {line}");
        }
        out.push_str(&Value::Object(self.fields.clone()).to_string());
        out.push('\n');
        out
    }

    /// Prints [`Report::render`] to stdout.
    pub fn print(&self) {
        print!("{}", self.render());
    }
}

/// A latency histogram in microseconds, 1 µs to 60 s, 3 significant digits.
pub fn latency_histogram_us() -> Result<Histogram<u64>, hdrhistogram::CreationError> {
    Histogram::new_with_bounds(1, 60_000_000, 3)
}

/// The process's peak resident set size in MiB (VmHWM), when the kernel
/// reports it.
pub fn max_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Ticks per second of the times in `/proc/<pid>/stat`.
const USER_HZ: f64 = 100.0;

/// CPU time (user + system) a process has used so far, from
/// `/proc/<pid>/stat`; `None` for `pid` reads this process.
pub fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the command name (which may hold spaces) start at the
    // state, field 3; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    // In USER_HZ ticks, which Linux fixes at 100 per second for every
    // user-visible interface on the architectures we run on.
    Some((utime + stime) as f64 / USER_HZ)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_line_is_the_json_object() {
        let mut report = Report::new("log");
        report
            .set("records", 10)
            .set_f64("append_mb_per_s", 123.456, 1);
        let mut h = latency_histogram_us().unwrap();
        h.record(100).unwrap();
        h.record(2000).unwrap();
        report.set_latency("ack_latency_us", &h);
        let text = report.render();
        let last = text.lines().last().unwrap();
        let json: Value = serde_json::from_str(last).unwrap();
        assert_eq!(json["bench"], "log");
        assert_eq!(json["records"], 10);
        assert_eq!(json["append_mb_per_s"], 123.5);
        assert_eq!(json["ack_latency_us_max"], h.max());
        assert!(text.contains("records"));
    }

    #[test]
    fn cpu_time_grows_with_work() {
        let before = cpu_seconds(None).unwrap();
        let mut x = 1u64;
        let started = std::time::Instant::now();
        // Spins until the kernel has charged at least one more tick (read
        // back by pid this time), or fails after a generous bound.
        loop {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
            }
            let now = cpu_seconds(Some(std::process::id())).unwrap();
            if now > before {
                break;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(60),
                "CPU time stayed at {before} s"
            );
        }
    }

    #[test]
    fn rss_is_reported_on_linux() {
        assert!(max_rss_mb().unwrap() > 0.0);
    }
}
