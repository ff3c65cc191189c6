//! `GET /v1/shipments/{carrier}/{tracking_number}` and its SSE stream
//! `.../events`: the public tracking API.
//!
//! Why two levels: anyone holding a tracking number may see where a parcel
//! stands (status, estimate, promised window), but the timeline with
//! places and the exception with its action links tell where someone lives
//! and what went wrong; they need the destination postal code or the
//! per-order token the storefront received at creation. Contact data never
//! appears at either level: the store does not even hold it.
//!
//! Why ETags from a content hash: the store is rebuilt from the log on
//! restart, so a hash of what is served stays the same across restarts and
//! nodes; a client polling with `If-None-Match` costs one hash lookup and
//! an empty 304.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use dropline_operators::model::time::format_rfc3339_ms;
use dropline_operators::model::{Carrier, Status, SubStatus};
use dropline_operators::ops::{ExceptionClass, LocationSummary, Remediation};
use serde::{Deserialize, Serialize};

use super::app::App;
use super::problem::{Problem, ProblemKind};
use super::views::{Snapshot, normalise_postal_code};

/// What a caller may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Status, estimate and promised window only.
    Public,
    /// Everything the tracking page shows: timeline, places, exception.
    Full,
}

/// Credentials for the full view.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct AccessQuery {
    /// The destination postal code.
    pub(crate) postal_code: Option<String>,
    /// The per-order token from the creation response.
    pub(crate) token: Option<String>,
}

impl AccessQuery {
    fn has_credentials(&self) -> bool {
        self.postal_code.is_some() || self.token.is_some()
    }
}

/// An instant window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Start (RFC 3339).
    pub from: String,
    /// End (RFC 3339).
    pub to: String,
}

/// A place, as display text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Place {
    /// City or facility.
    pub city: Option<String>,
    /// Region code.
    pub region: Option<String>,
    /// Country code.
    pub country: Option<String>,
}

/// One scan on the timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineItem {
    /// When it happened (RFC 3339).
    pub occurred_at: String,
    /// The milestone.
    pub status: Option<Status>,
    /// Its sub-status.
    pub sub_status: SubStatus,
    /// Where.
    pub location: Option<Place>,
}

/// A link offered to the buyer for an exception.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// The remediation kind.
    pub kind: Remediation,
    /// Button text.
    pub label: String,
    /// Where it leads.
    pub url: String,
}

/// The open exception.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExceptionInfo {
    /// Its class.
    pub class: ExceptionClass,
    /// The remediation.
    pub remediation: Remediation,
    /// Since (RFC 3339, log time).
    pub since: String,
    /// Escalated to a human.
    pub escalated: bool,
    /// What the buyer can do.
    pub action: Option<Action>,
}

/// The tracking response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackingResponse {
    /// The tracking number.
    pub tracking_number: String,
    /// The carrier.
    pub carrier: Option<Carrier>,
    /// What this response includes.
    pub access: Access,
    /// Current milestone (`null` before the first scan).
    pub status: Option<Status>,
    /// Last change (RFC 3339).
    pub updated_at: Option<String>,
    /// Estimated delivery (RFC 3339).
    pub estimated_delivery: Option<String>,
    /// The promised window.
    pub promised_window: Option<Window>,
    /// The estimate is past the promised window.
    pub late: bool,
    /// No scan for longer than the stale SLA.
    pub stale: bool,
    /// Sub-status of the current milestone (full view).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_status: Option<SubStatus>,
    /// Where the last scan happened (full view).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_location: Option<Place>,
    /// The open exception (full view).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exception: Option<ExceptionInfo>,
    /// Scans, oldest first (full view).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<Vec<TimelineItem>>,
}

fn opt(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

fn place(l: &LocationSummary) -> Place {
    Place {
        city: opt(l.city.as_str()),
        region: opt(l.region.as_str()),
        country: opt(l.country.as_str()),
    }
}

fn action(app: &App, carrier: Option<Carrier>, tn: &str, r: Remediation) -> Option<Action> {
    let links = &app.config.action_links;
    let (label, template) = match r {
        Remediation::None | Remediation::InformationalNotice => return None,
        Remediation::AddressVerificationLink => {
            ("Verify your address", &links.address_verification)
        }
        Remediation::CustomsDocumentsLink => {
            ("Provide customs documents", &links.customs_documents)
        }
        Remediation::ClaimPath => ("File a claim", &links.claim),
        Remediation::ContactSupport => ("Contact support", &links.support),
    };
    let url = template
        .replace("{carrier}", carrier.map_or("", Carrier::as_str))
        .replace("{tracking_number}", tn);
    Some(Action {
        kind: r,
        label: label.to_string(),
        url,
    })
}

/// Builds the response for `snap` at `access`.
pub(crate) fn render(app: &App, snap: &Snapshot, access: Access) -> TrackingResponse {
    let v = snap.view.as_ref();
    let promised = match (&snap.order, v) {
        (Some(o), _) => Some((o.promised_from_ms, o.promised_to_ms)),
        (None, Some(v)) => v.promised_from_ms.zip(v.promised_to_ms),
        _ => None,
    };
    let estimate = v.and_then(|v| v.estimate_ms).or(if v.is_none() {
        promised.map(|p| p.1)
    } else {
        None
    });
    let mut r = TrackingResponse {
        tracking_number: snap.tracking_number.clone(),
        carrier: snap.carrier,
        access,
        status: v.and_then(|v| v.status),
        updated_at: v.map(|v| format_rfc3339_ms(i64::try_from(v.updated_log_ms).unwrap_or(0))),
        estimated_delivery: estimate.map(format_rfc3339_ms),
        promised_window: promised.map(|(f, t)| Window {
            from: format_rfc3339_ms(f),
            to: format_rfc3339_ms(t),
        }),
        late: v.is_some_and(|v| v.late),
        stale: v.is_some_and(|v| v.stale),
        sub_status: None,
        last_location: None,
        exception: None,
        timeline: None,
    };
    if access == Access::Full {
        r.sub_status = v.map(|v| v.sub_status);
        r.last_location = v
            .and_then(|v| v.last_event)
            .and_then(|e| e.location)
            .map(|l| place(&l));
        r.exception = v.and_then(|v| v.open_exception).map(|x| ExceptionInfo {
            class: x.class,
            remediation: x.remediation,
            since: format_rfc3339_ms(i64::try_from(x.since_log_ms).unwrap_or(0)),
            escalated: x.escalated,
            action: action(app, snap.carrier, &snap.tracking_number, x.remediation),
        });
        r.timeline = Some(
            snap.timeline
                .iter()
                .map(|t| TimelineItem {
                    occurred_at: format_rfc3339_ms(t.occurred_at_ms),
                    status: t.status,
                    sub_status: t.sub_status,
                    location: t.location.as_ref().map(place),
                })
                .collect(),
        );
    }
    r
}

/// The access a query grants for `snap`.
pub(crate) fn access_for(app: &App, snap: &Snapshot, q: &AccessQuery) -> Access {
    let Some(order) = &snap.order else {
        return Access::Public;
    };
    if let Some(pc) = &q.postal_code
        && !order.postal_code_norm.is_empty()
        && normalise_postal_code(pc) == order.postal_code_norm
    {
        return Access::Full;
    }
    if let Some(t) = &q.token
        && app
            .state
            .sealer
            .verify_order_token(&snap.tracking_number, &order.order_id, t)
    {
        return Access::Full;
    }
    Access::Public
}

/// The ETag of a content hash at an access level.
pub(crate) fn etag(hash: u64, access: Access) -> String {
    String::from_utf8_lossy(&etag_bytes(hash, access)).into_owned()
}

/// The ETag as bytes, built without allocating (the 304 fast path).
fn etag_bytes(hash: u64, access: Access) -> [u8; 19] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'"'; 19];
    for (i, slot) in out[1..17].iter_mut().enumerate() {
        *slot = DIGITS[((hash >> (60 - 4 * i)) & 0xf) as usize];
    }
    out[17] = match access {
        Access::Public => b'p',
        Access::Full => b'f',
    };
    out
}

fn etag_matches(headers: &HeaderMap, tag: &[u8]) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(|t| {
            let t = t.trim_ascii();
            t.strip_prefix(b"W/").unwrap_or(t)
        })
        .any(|t| t == tag || t == b"*")
}

fn not_found(app: &App) -> Response {
    app.metrics
        .tracking_not_found
        .fetch_add(1, Ordering::Relaxed);
    Problem::new(
        ProblemKind::NotFound,
        "no shipment with this carrier and tracking number",
    )
    .into_response()
}

fn carrier_matches(path_carrier: &str, known: Option<Carrier>) -> bool {
    match (Carrier::parse(path_carrier), known) {
        (Some(p), Some(k)) => p == k,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

fn cache_headers(h: &mut HeaderMap, app: &App, tag: &[u8], access: Access) {
    if let Ok(v) = HeaderValue::from_bytes(tag) {
        h.insert(header::ETAG, v);
    }
    let v = match access {
        Access::Public => &app.cache_control_public,
        Access::Full => &app.cache_control_private,
    };
    h.insert(header::CACHE_CONTROL, v.clone());
}

/// `GET /v1/shipments/{carrier}/{tracking_number}`.
pub(crate) async fn get_shipment(
    State(app): State<Arc<App>>,
    Path((carrier, tn)): Path<(String, String)>,
    Query(q): Query<AccessQuery>,
    headers: HeaderMap,
) -> Response {
    if !q.has_credentials() {
        // Fast path: the hash alone decides a 304.
        let Some((hash, known)) = app.views.content_hash(&tn) else {
            return not_found(&app);
        };
        if !carrier_matches(&carrier, known) {
            return not_found(&app);
        }
        let tag = etag_bytes(hash, Access::Public);
        if etag_matches(&headers, &tag) {
            app.metrics
                .tracking_not_modified
                .fetch_add(1, Ordering::Relaxed);
            let mut resp = StatusCode::NOT_MODIFIED.into_response();
            cache_headers(resp.headers_mut(), &app, &tag, Access::Public);
            return resp;
        }
    }
    let Some(snap) = app.views.get(&tn) else {
        return not_found(&app);
    };
    if !carrier_matches(&carrier, snap.carrier) {
        return not_found(&app);
    }
    let access = access_for(&app, &snap, &q);
    let tag = etag_bytes(snap.content_hash, access);
    if etag_matches(&headers, &tag) {
        app.metrics
            .tracking_not_modified
            .fetch_add(1, Ordering::Relaxed);
        let mut resp = StatusCode::NOT_MODIFIED.into_response();
        cache_headers(resp.headers_mut(), &app, &tag, access);
        return resp;
    }
    app.metrics.tracking_ok.fetch_add(1, Ordering::Relaxed);
    let mut resp = axum::Json(render(&app, &snap, access)).into_response();
    cache_headers(resp.headers_mut(), &app, &tag, access);
    resp
}

/// State of one SSE stream.
struct SseState {
    app: Arc<App>,
    tn: String,
    query: AccessQuery,
    rx: tokio::sync::watch::Receiver<u64>,
    shutdown: tokio::sync::watch::Receiver<bool>,
    first: bool,
    _permit: tokio::sync::OwnedSemaphorePermit,
    _open: OpenStream,
}

/// Counts an open stream while it lives.
struct OpenStream(Arc<super::metrics::HttpMetrics>);

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.sse_streams_open.fetch_sub(1, Ordering::Relaxed);
    }
}

fn sse_event(app: &App, tn: &str, q: &AccessQuery) -> Option<Event> {
    let snap = app.views.get(tn)?;
    let access = access_for(app, &snap, q);
    let body = serde_json::to_string(&render(app, &snap, access)).ok()?;
    app.metrics.sse_events.fetch_add(1, Ordering::Relaxed);
    Some(
        Event::default()
            .event("shipment")
            .id(etag(snap.content_hash, access).trim_matches('"'))
            .data(body),
    )
}

/// `GET /v1/shipments/{carrier}/{tracking_number}/events`: the current
/// state at once, then every change, as `shipment` events.
pub(crate) async fn shipment_events(
    State(app): State<Arc<App>>,
    Path((carrier, tn)): Path<(String, String)>,
    Query(q): Query<AccessQuery>,
) -> Response {
    let Some((_, known)) = app.views.content_hash(&tn) else {
        return not_found(&app);
    };
    if !carrier_matches(&carrier, known) {
        return not_found(&app);
    }
    let Ok(permit) = app.sse_streams.clone().try_acquire_owned() else {
        app.metrics.sse_refused.fetch_add(1, Ordering::Relaxed);
        return Problem::new(ProblemKind::Unavailable, "too many live streams")
            .retry_after(5)
            .into_response();
    };
    let Some(rx) = app.views.subscribe(&tn) else {
        return not_found(&app);
    };
    app.metrics.sse_streams_open.fetch_add(1, Ordering::Relaxed);
    let state = SseState {
        shutdown: app.shutdown.subscribe(),
        _open: OpenStream(app.metrics.clone()),
        app: app.clone(),
        tn,
        query: q,
        rx,
        first: true,
        _permit: permit,
    };
    let stream = futures_util::stream::unfold(state, |mut s| async move {
        loop {
            if s.first {
                s.first = false;
                s.rx.borrow_and_update();
            } else {
                tokio::select! {
                    changed = s.rx.changed() => {
                        if changed.is_err() {
                            return None;
                        }
                    }
                    _ = s.shutdown.changed() => return None,
                }
                if *s.shutdown.borrow() {
                    return None;
                }
            }
            if let Some(ev) = sse_event(&s.app, &s.tn, &s.query) {
                return Some((Ok::<Event, Infallible>(ev), s));
            }
            // Evicted meanwhile: nothing to send, wait for the next change.
        }
    });
    let keep_alive =
        KeepAlive::new().interval(Duration::from_secs(app.config.sse_keep_alive_s.max(1)));
    let mut resp = Sse::new(stream).keep_alive(keep_alive).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_are_quoted_hex_with_the_access_level() {
        assert_eq!(
            etag(0x0123_4567_89ab_cdef, Access::Public),
            "\"0123456789abcdefp\""
        );
        assert_eq!(etag(u64::MAX, Access::Full), "\"fffffffffffffffff\"");
        let mut h = HeaderMap::new();
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"x\", W/\"0123456789abcdefp\""),
        );
        assert!(etag_matches(
            &h,
            &etag_bytes(0x0123_4567_89ab_cdef, Access::Public)
        ));
        assert!(!etag_matches(
            &h,
            &etag_bytes(0x0123_4567_89ab_cdef, Access::Full)
        ));
    }
}
