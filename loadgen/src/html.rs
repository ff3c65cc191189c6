//! The HTML report: one self-contained page with the run's table and three
//! plots drawn as inline SVG (no scripts, nothing fetched): throughput over
//! time (planned, sent, acknowledged), latency over time (mean and worst
//! per interval), and the latency percentile distribution, where the tail
//! that averages hide is plotted on a log scale of 1/(1 - quantile).

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use crate::recorder::{Bucket, TIMELINE_BUCKET_US};
use crate::report::LoadReport;

/// Most points per plotted line (timeline buckets are merged beyond it).
pub const PLOT_POINTS_MAX: usize = 400;
const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 300.0;
const MARGIN_LEFT: f64 = 70.0;
const MARGIN_RIGHT: f64 = 20.0;
const MARGIN_TOP: f64 = 34.0;
const MARGIN_BOTTOM: f64 = 46.0;

/// One line of a plot.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// CSS colour.
    pub color: &'static str,
    /// (x, y) points in data units.
    pub points: Vec<(f64, f64)>,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A readable number for an axis label.
fn tick_label(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else if a >= 0.01 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// The step of 1, 2 or 5 times a power of ten nearest above `raw`, so
/// that axis ticks fall on round numbers.
fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    let f = raw / magnitude;
    let nice = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

/// A line chart as an `<svg>` element. With `y_log` the y axis is base 10
/// logarithmic (values at or below 0 are drawn at the bottom); `x_labels`
/// optionally names x positions (else five evenly spaced numbers).
pub fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    y_log: bool,
    x_labels: Option<&[(f64, String)]>,
) -> String {
    let all = series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in all {
        x0 = x0.min(x);
        x1 = x1.max(x);
        if !y_log || y > 0.0 {
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
    }
    if x0 > x1 {
        (x0, x1) = (0.0, 1.0);
    }
    if y0 > y1 {
        (y0, y1) = (0.0, 1.0);
    }
    let ty = |y: f64| if y_log { y.max(1e-3).log10() } else { y };
    let (ly0, ly1) = if y_log {
        (ty(y0).floor(), ty(y1).ceil().max(ty(y0).floor() + 1.0))
    } else {
        (0.0_f64.min(y0), if y1 > 0.0 { y1 * 1.08 } else { 1.0 })
    };
    let x1 = if x1 > x0 { x1 } else { x0 + 1.0 };
    let pw = WIDTH - MARGIN_LEFT - MARGIN_RIGHT;
    let ph = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM;
    let px = |x: f64| MARGIN_LEFT + (x - x0) / (x1 - x0) * pw;
    let py = |y: f64| {
        let v = ty(y).clamp(ly0, ly1);
        MARGIN_TOP + ph - (v - ly0) / (ly1 - ly0) * ph
    };
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="plot" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{t}">"#,
        t = escape(title)
    );
    let _ = write!(
        svg,
        r#"<text x="{MARGIN_LEFT}" y="20" class="title">{}</text>"#,
        escape(title)
    );
    // Axes and grid.
    let _ = write!(
        svg,
        r##"<rect x="{MARGIN_LEFT}" y="{MARGIN_TOP}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>"##
    );
    let y_ticks: Vec<f64> = if y_log {
        (ly0 as i64..=ly1 as i64)
            .map(|e| 10f64.powi(e as i32))
            .collect()
    } else {
        let step = nice_step((ly1 - ly0) / 4.0);
        (0..)
            .map(|i| ly0 + step * f64::from(i))
            .take_while(|v| *v <= ly1)
            .collect()
    };
    for v in y_ticks {
        let y = py(v);
        let _ = write!(
            svg,
            r##"<line x1="{MARGIN_LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#e3e3e3"/><text x="{}" y="{:.1}" text-anchor="end" class="tick">{}</text>"##,
            MARGIN_LEFT + pw,
            MARGIN_LEFT - 6.0,
            y + 4.0,
            tick_label(v)
        );
    }
    let x_ticks: Vec<(f64, String)> = match x_labels {
        Some(l) => l.to_vec(),
        None => {
            let step = nice_step((x1 - x0) / 5.0);
            let first = (x0 / step).ceil() * step;
            (0..)
                .map(|i| first + step * f64::from(i))
                .take_while(|v| *v <= x1 + step * 1e-9)
                .map(|v| (v, tick_label(v)))
                .collect()
        }
    };
    for (v, label) in x_ticks {
        let x = px(v);
        let _ = write!(
            svg,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{MARGIN_TOP}" y2="{}" stroke="#eeeeee"/><text x="{x:.1}" y="{}" text-anchor="middle" class="tick">{}</text>"##,
            MARGIN_TOP + ph,
            MARGIN_TOP + ph + 16.0,
            escape(&label)
        );
    }
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle" class="axis">{}</text>"#,
        MARGIN_LEFT + pw / 2.0,
        HEIGHT - 8.0,
        escape(x_label)
    );
    let _ = write!(
        svg,
        r#"<text x="14" y="{}" text-anchor="middle" class="axis" transform="rotate(-90 14 {})">{}</text>"#,
        MARGIN_TOP + ph / 2.0,
        MARGIN_TOP + ph / 2.0,
        escape(y_label)
    );
    // Lines and legend.
    for (i, s) in series.iter().enumerate() {
        let pts: Vec<String> = s
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{}" stroke-width="1.6" points="{}"/>"#,
            s.color,
            pts.join(" ")
        );
        let lx = MARGIN_LEFT + 10.0 + 170.0 * i as f64;
        let _ = write!(
            svg,
            r#"<rect x="{lx}" y="{}" width="12" height="3" fill="{}"/><text x="{}" y="{}" class="legend">{}</text>"#,
            MARGIN_TOP + 8.0,
            s.color,
            lx + 16.0,
            MARGIN_TOP + 13.0,
            escape(&s.name)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Merges timeline buckets so that at most [`PLOT_POINTS_MAX`] remain;
/// returns (start time s, width s, merged bucket) triples.
fn merged(timeline: &[Bucket]) -> Vec<(f64, f64, Bucket)> {
    let k = timeline.len().div_ceil(PLOT_POINTS_MAX).max(1);
    let width_s = k as f64 * TIMELINE_BUCKET_US as f64 / 1e6;
    timeline
        .chunks(k)
        .enumerate()
        .map(|(i, c)| {
            let mut b = Bucket::default();
            for x in c {
                b.intended += x.intended;
                b.sent += x.sent;
                b.acked += x.acked;
                b.latency_sum_us += x.latency_sum_us;
                b.latency_max_us = b.latency_max_us.max(x.latency_max_us);
            }
            (i as f64 * width_s, width_s, b)
        })
        .collect()
}

/// Throughput over time, events per second.
pub fn throughput_chart(timeline: &[Bucket]) -> String {
    let m = merged(timeline);
    let line = |name: &str, color, f: fn(&Bucket) -> u64| Series {
        name: name.into(),
        color,
        points: m.iter().map(|(t, w, b)| (*t, f(b) as f64 / w)).collect(),
    };
    line_chart(
        "Throughput",
        "time since start (s)",
        "carrier events per second",
        &[
            line("planned", "#9aa5b1", |b| b.intended),
            line("sent", "#3b82f6", |b| b.sent),
            line("acknowledged", "#16a34a", |b| b.acked),
        ],
        false,
        None,
    )
}

/// Latency over time: mean and worst of the events acknowledged in each
/// interval, ms, log scale.
pub fn latency_over_time_chart(timeline: &[Bucket]) -> String {
    let m = merged(timeline);
    let acked: Vec<_> = m.iter().filter(|(_, _, b)| b.acked > 0).collect();
    line_chart(
        "Latency over time (from intended send time)",
        "time since start (s)",
        "latency (ms)",
        &[
            Series {
                name: "mean".into(),
                color: "#3b82f6",
                points: acked
                    .iter()
                    .map(|(t, _, b)| (*t, b.latency_mean_us() as f64 / 1000.0))
                    .collect(),
            },
            Series {
                name: "max".into(),
                color: "#dc2626",
                points: acked
                    .iter()
                    .map(|(t, _, b)| (*t, b.latency_max_us as f64 / 1000.0))
                    .collect(),
            },
        ],
        true,
        None,
    )
}

/// The percentile distribution of a latency histogram (µs): x is
/// log10(1 / (1 - q)), labelled with the percentile.
pub fn percentile_chart(
    title: &str,
    histograms: &[(&str, &'static str, &Histogram<u64>)],
) -> String {
    let nines = |q: f64| (1.0 / (1.0 - q.min(0.999_999))).log10();
    let series: Vec<Series> = histograms
        .iter()
        .filter(|(_, _, h)| !h.is_empty())
        .map(|(name, color, h)| Series {
            name: (*name).into(),
            color,
            points: h
                .iter_quantiles(1)
                .map(|v| {
                    (
                        nines(v.quantile_iterated_to()),
                        h.highest_equivalent(v.value_iterated_to()) as f64 / 1000.0,
                    )
                })
                .collect(),
        })
        .collect();
    let labels: Vec<(f64, String)> = [
        (0.0, "0%"),
        (0.9, "90%"),
        (0.99, "99%"),
        (0.999, "99.9%"),
        (0.9999, "99.99%"),
        (0.99999, "99.999%"),
    ]
    .iter()
    .map(|(q, label)| (nines(*q), (*label).to_string()))
    .collect();
    line_chart(
        title,
        "percentile",
        "latency (ms)",
        &series,
        true,
        Some(&labels),
    )
}

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:24px;color:#1f2933}\
table{border-collapse:collapse;margin:12px 0}td,th{padding:3px 10px;border-bottom:1px solid #e4e7eb;text-align:left}\
td.n{text-align:right;font-variant-numeric:tabular-nums}.plot{display:block;margin:18px 0}\
.title{font-weight:600;font-size:14px}.tick,.legend{font-size:11px;fill:#52606d}.axis{font-size:12px;fill:#323f4b}";

/// The whole page.
pub fn render(report: &LoadReport) -> String {
    let snap = &report.snapshot;
    let mut page = String::new();
    let _ = write!(
        page,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>dropline loadgen {} (seed {})</title><style>{STYLE}</style></head><body>",
        escape(&report.scenario),
        report.seed
    );
    let _ = write!(
        page,
        "<h1>dropline loadgen: {} (seed {})</h1><p>{} mode, node {}, orders {}.</p>",
        escape(&report.scenario),
        report.seed,
        escape(&report.mode),
        escape(&report.node),
        escape(&report.orders_to)
    );
    page.push_str(&throughput_chart(&snap.timeline));
    page.push_str(&latency_over_time_chart(&snap.timeline));
    page.push_str(&percentile_chart(
        "Latency percentiles (from intended send time)",
        &[
            ("events", "#3b82f6", &snap.event_latency_us),
            ("orders", "#f59e0b", &snap.order_latency_us),
            ("sender lag", "#9aa5b1", &snap.send_lag_us),
        ],
    ));
    page.push_str("<table><tr><th>figure</th><th>value</th></tr>");
    if let serde_json::Value::Object(m) = report.to_json() {
        for (k, v) in m {
            let _ = write!(
                page,
                "<tr><td>{}</td><td class=\"n\">{}</td></tr>",
                escape(&k),
                escape(&v.to_string())
            );
        }
    }
    page.push_str("</table>");
    page.push_str(
        "<p>Latency is measured from each item's intended send time, so a stalled sender or target \
         shows in every item that waited behind it (no coordinated omission).</p></body></html>\n",
    );
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_fall_on_round_numbers() {
        assert_eq!(nice_step(0.37), 0.5);
        assert_eq!(nice_step(1_913.0), 2_000.0);
        assert_eq!(nice_step(7.0), 10.0);
        assert_eq!(nice_step(0.0), 1.0);
    }

    #[test]
    fn a_chart_draws_one_polyline_per_series_and_escapes_text() {
        let svg = line_chart(
            "a <b> & c",
            "x",
            "y",
            &[
                Series {
                    name: "one".into(),
                    color: "#000",
                    points: vec![(0.0, 1.0), (1.0, 2.0), (2.0, 4.0)],
                },
                Series {
                    name: "two".into(),
                    color: "#f00",
                    points: vec![(0.0, 3.0), (2.0, 1.0)],
                },
            ],
            false,
            None,
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("a &lt;b&gt; &amp; c"));
    }

    #[test]
    fn the_percentile_plot_reaches_the_maximum() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        for v in 1..=10_000u64 {
            h.record(v * 100).unwrap();
        }
        let svg = percentile_chart("p", &[("events", "#00f", &h)]);
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert!(svg.contains("99.9%"));
        assert!(svg.contains(">1000<"), "a tick at 1000 ms: {svg}");
    }
}
