//! The HTTP edge's own counters, rendered on `/metrics` next to what the
//! node's other parts plug in.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use super::problem::ProblemKind;

/// Counters of the HTTP edge. Relaxed atomics: figures, not synchronisation.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    /// Tracking lookups answered 200.
    pub tracking_ok: AtomicU64,
    /// Tracking lookups answered 304.
    pub tracking_not_modified: AtomicU64,
    /// Tracking lookups of unknown shipments.
    pub tracking_not_found: AtomicU64,
    /// Requests refused by the rate limit.
    pub rate_limited: AtomicU64,
    /// Shipments created.
    pub creations_created: AtomicU64,
    /// Creations that repeated an earlier one.
    pub creations_repeated: AtomicU64,
    /// Creations refused as bad input.
    pub creations_invalid: AtomicU64,
    /// Creations refused as conflicting.
    pub creations_conflict: AtomicU64,
    /// Creations refused for a missing or wrong marketplace key.
    pub creations_unauthorized: AtomicU64,
    /// Creations refused because the key is another marketplace's.
    pub creations_not_permitted: AtomicU64,
    /// Creations refused for other reasons (busy, internal).
    pub creations_failed: AtomicU64,
    /// Dead letters kept.
    pub dead_letters: AtomicU64,
    /// Dead letters that could not be kept.
    pub dead_letters_failed: AtomicU64,
    /// SSE streams open now.
    pub sse_streams_open: AtomicU64,
    /// SSE events sent.
    pub sse_events: AtomicU64,
    /// SSE streams refused (limit reached).
    pub sse_refused: AtomicU64,
    /// Admin requests refused for a missing or wrong token.
    pub admin_unauthorized: AtomicU64,
}

fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl HttpMetrics {
    pub(crate) fn creation_accepted(&self, created: bool) {
        inc(if created {
            &self.creations_created
        } else {
            &self.creations_repeated
        });
    }

    pub(crate) fn creation_rejected(&self, kind: Option<ProblemKind>) {
        inc(match kind {
            Some(ProblemKind::MalformedBody | ProblemKind::InvalidField) => &self.creations_invalid,
            Some(ProblemKind::Conflict) => &self.creations_conflict,
            Some(ProblemKind::Unauthorized) => &self.creations_unauthorized,
            Some(ProblemKind::NotPermitted) => &self.creations_not_permitted,
            _ => &self.creations_failed,
        });
    }

    pub(crate) fn dead_letter(&self) {
        inc(&self.dead_letters);
    }

    pub(crate) fn dead_letter_failed(&self) {
        inc(&self.dead_letters_failed);
    }

    /// Appends the Prometheus text of these counters.
    pub fn render_prometheus(&self, out: &mut String) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP dropline_http_tracking_responses_total Tracking lookups by outcome."
        );
        let _ = writeln!(out, "# TYPE dropline_http_tracking_responses_total counter");
        for (outcome, c) in [
            ("ok", &self.tracking_ok),
            ("not_modified", &self.tracking_not_modified),
            ("not_found", &self.tracking_not_found),
        ] {
            let _ = writeln!(
                out,
                "dropline_http_tracking_responses_total{{outcome=\"{outcome}\"}} {}",
                get(c)
            );
        }
        let _ = writeln!(
            out,
            "# HELP dropline_http_rate_limited_total Requests refused by the per-client rate limit."
        );
        let _ = writeln!(out, "# TYPE dropline_http_rate_limited_total counter");
        let _ = writeln!(
            out,
            "dropline_http_rate_limited_total {}",
            get(&self.rate_limited)
        );
        let _ = writeln!(
            out,
            "# HELP dropline_http_creations_total Shipment creations by outcome."
        );
        let _ = writeln!(out, "# TYPE dropline_http_creations_total counter");
        for (outcome, c) in [
            ("created", &self.creations_created),
            ("repeated", &self.creations_repeated),
            ("invalid", &self.creations_invalid),
            ("conflict", &self.creations_conflict),
            ("unauthorized", &self.creations_unauthorized),
            ("not_permitted", &self.creations_not_permitted),
            ("failed", &self.creations_failed),
        ] {
            let _ = writeln!(
                out,
                "dropline_http_creations_total{{outcome=\"{outcome}\"}} {}",
                get(c)
            );
        }
        let _ = writeln!(
            out,
            "# HELP dropline_http_dead_letters_total Rejected HTTP input kept in dead-letters."
        );
        let _ = writeln!(out, "# TYPE dropline_http_dead_letters_total counter");
        let _ = writeln!(
            out,
            "dropline_http_dead_letters_total {}",
            get(&self.dead_letters)
        );
        let _ = writeln!(
            out,
            "# HELP dropline_http_dead_letters_failed_total Dead letters that could not be appended."
        );
        let _ = writeln!(
            out,
            "# TYPE dropline_http_dead_letters_failed_total counter"
        );
        let _ = writeln!(
            out,
            "dropline_http_dead_letters_failed_total {}",
            get(&self.dead_letters_failed)
        );
        let _ = writeln!(out, "# HELP dropline_http_sse_streams Open SSE streams.");
        let _ = writeln!(out, "# TYPE dropline_http_sse_streams gauge");
        let _ = writeln!(
            out,
            "dropline_http_sse_streams {}",
            get(&self.sse_streams_open)
        );
        let _ = writeln!(
            out,
            "# HELP dropline_http_sse_events_total SSE events sent."
        );
        let _ = writeln!(out, "# TYPE dropline_http_sse_events_total counter");
        let _ = writeln!(
            out,
            "dropline_http_sse_events_total {}",
            get(&self.sse_events)
        );
        let _ = writeln!(
            out,
            "# HELP dropline_http_sse_refused_total SSE streams refused at the limit."
        );
        let _ = writeln!(out, "# TYPE dropline_http_sse_refused_total counter");
        let _ = writeln!(
            out,
            "dropline_http_sse_refused_total {}",
            get(&self.sse_refused)
        );
        let _ = writeln!(
            out,
            "# HELP dropline_http_admin_unauthorized_total Admin requests with a missing or wrong token."
        );
        let _ = writeln!(out, "# TYPE dropline_http_admin_unauthorized_total counter");
        let _ = writeln!(
            out,
            "dropline_http_admin_unauthorized_total {}",
            get(&self.admin_unauthorized)
        );
    }
}
