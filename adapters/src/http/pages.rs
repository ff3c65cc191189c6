//! The HTML pages and the widget script: the buyer's tracking page, the
//! storefront widget and the ops dashboard.
//!
//! Why inline and server-rendered: the tracking page is what buyers open
//! from an SMS on a phone during a drop; it must paint from the first
//! response (the current view is embedded in the HTML, no second request)
//! and then go live over SSE. No build step and no external assets, so the
//! node serves it alone and a CDN can cache it by URL.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use dropline_operators::model::Carrier;

use super::app::App;
use super::tracking::{AccessQuery, access_for, render};

const TRACK_HTML: &str = include_str!("assets/track.html");
const WIDGET_JS: &str = include_str!("assets/widget.js");
const DASHBOARD_HTML: &str = include_str!("assets/dashboard.html");

/// JSON safe to embed in a `<script>` element.
fn script_json(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v)
        .unwrap_or_else(|_| "null".into())
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

fn html_text(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `GET /track/{carrier}/{tracking_number}`.
pub(crate) async fn track_page(
    State(app): State<Arc<App>>,
    Path((carrier, tn)): Path<(String, String)>,
    Query(q): Query<AccessQuery>,
) -> Response {
    let snap = app.views.get(&tn);
    let parsed = Carrier::parse(&carrier);
    let known = match (&snap, parsed) {
        (Some(s), Some(c)) => s.carrier.is_none_or(|k| k == c),
        _ => false,
    };
    let Some(snap) = snap.filter(|_| known) else {
        let body = format!(
            "<!doctype html><meta charset=utf-8><meta name=viewport content=\"width=device-width, initial-scale=1\"><title>Not found</title><p style=\"font:16px system-ui;margin:2rem\">No shipment {} with carrier {}.</p>",
            html_text(&tn),
            html_text(&carrier)
        );
        return (StatusCode::NOT_FOUND, Html(body)).into_response();
    };
    let access = access_for(&app, &snap, &q);
    let view = render(&app, &snap, access);
    let body = TRACK_HTML
        .replace("{{TRACKING_NUMBER}}", &html_text(&tn))
        .replace("{{CARRIER_JSON}}", &script_json(&carrier))
        .replace("{{TN_JSON}}", &script_json(&tn))
        .replace("{{INITIAL_JSON}}", &script_json(&view));
    let mut resp = Html(body).into_response();
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=0, must-revalidate"),
    );
    resp
}

/// `GET /widget.js`.
pub(crate) async fn widget() -> Response {
    let mut resp = WIDGET_JS.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    resp
}

/// `GET /dashboard` (the page itself holds no data; it polls the admin
/// stats with the token from its URL fragment, which is never sent to the
/// server).
pub(crate) async fn dashboard() -> Response {
    let mut resp = Html(DASHBOARD_HTML).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
