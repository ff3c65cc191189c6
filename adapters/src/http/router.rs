//! The route table: every route the server answers, registered in one
//! place and recorded, so the OpenAPI document can be checked against what
//! is actually served.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use serde::Serialize;

use super::app::App;
use super::config::REQUEST_BODY_BYTES_MAX;
use super::problem::{Problem, ProblemKind};
use super::rate_limit::Verdict;
use super::{admin, create, openapi, pages, tracking};

/// One registered route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RouteInfo {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// The path template (`/v1/shipments/{carrier}/{tracking_number}`).
    pub path: &'static str,
    /// Behind the per-client rate limit.
    pub rate_limited: bool,
    /// Behind the admin bearer token.
    pub admin: bool,
}

struct Table {
    public: Router<Arc<App>>,
    limited: Router<Arc<App>>,
    routes: Vec<RouteInfo>,
}

impl Table {
    fn add(
        mut self,
        method: &'static str,
        path: &'static str,
        handler: MethodRouter<Arc<App>>,
        rate_limited: bool,
        admin: bool,
    ) -> Table {
        self.routes.push(RouteInfo {
            method,
            path,
            rate_limited,
            admin,
        });
        if rate_limited {
            self.limited = self.limited.route(path, handler);
        } else {
            self.public = self.public.route(path, handler);
        }
        self
    }
}

/// Every route the server registers, in registration order.
pub fn route_table() -> Vec<RouteInfo> {
    table().routes
}

fn table() -> Table {
    let t = Table {
        public: Router::new(),
        limited: Router::new(),
        routes: Vec::new(),
    };
    t.add(
        "POST",
        "/v1/shipments",
        post(create::create_shipment),
        false,
        false,
    )
    .add(
        "GET",
        "/v1/shipments/{carrier}/{tracking_number}",
        get(tracking::get_shipment),
        true,
        false,
    )
    .add(
        "GET",
        "/v1/shipments/{carrier}/{tracking_number}/events",
        get(tracking::shipment_events),
        true,
        false,
    )
    .add(
        "GET",
        "/track/{carrier}/{tracking_number}",
        get(pages::track_page),
        true,
        false,
    )
    .add("GET", "/widget.js", get(pages::widget), false, false)
    .add("GET", "/dashboard", get(pages::dashboard), false, false)
    .add("GET", "/openapi.json", get(openapi_json), false, false)
    .add("GET", "/metrics", get(metrics), false, false)
    .add("GET", "/healthz", get(healthz), false, false)
    .add("GET", "/readyz", get(readyz), false, false)
    .add("GET", "/v1/admin/status", get(admin::status), false, true)
    .add("GET", "/v1/admin/topics", get(admin::topics), false, true)
    .add("GET", "/v1/admin/stats", get(admin::stats), false, true)
    .add(
        "POST",
        "/v1/admin/drop-mode",
        post(admin::drop_mode),
        false,
        true,
    )
    .add(
        "GET",
        "/v1/forensics/{tracking_number}",
        get(admin::forensics_parcel),
        false,
        true,
    )
}

/// Builds the router over `app`, with the route list.
pub(crate) fn build(app: Arc<App>) -> (Router, Vec<RouteInfo>) {
    let t = table();
    let limited = t
        .limited
        .route_layer(middleware::from_fn_with_state(app.clone(), rate_limit))
        .layer(middleware::map_response(allow_any_origin));
    let router = t
        .public
        .merge(limited)
        .layer(DefaultBodyLimit::max(REQUEST_BODY_BYTES_MAX))
        .with_state(app);
    (router, t.routes)
}

async fn allow_any_origin(mut resp: Response) -> Response {
    // Public tracking data is embeddable by any storefront (the widget).
    resp.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    resp
}

async fn rate_limit(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    if let Some(rl) = &app.rate_limiter
        && let Some(ConnectInfo(addr)) = req.extensions().get::<ConnectInfo<SocketAddr>>()
        && let Verdict::Refuse(wait) = rl.check(addr.ip(), Instant::now())
    {
        app.metrics
            .rate_limited
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return Problem::new(
            ProblemKind::RateLimited,
            "slow down: too many requests from this client",
        )
        .retry_after(wait)
        .into_response();
    }
    next.run(req).await
}

async fn openapi_json() -> Response {
    let mut resp = (
        [(header::CONTENT_TYPE, "application/json")],
        openapi::DOCUMENT,
    )
        .into_response();
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    resp
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    let log = &app.state.log;
    let poisoned: Vec<(String, u32)> = log
        .topics()
        .into_iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .filter(|p| p.poisoned)
                .map(|p| (t.name.clone(), p.partition))
                .collect::<Vec<_>>()
        })
        .collect();
    if !poisoned.is_empty() {
        // A full disk clears by itself; any other poisoning needs a restart.
        let full = poisoned.iter().all(|(topic, p)| {
            log.partition(topic, *p)
                .is_ok_and(|part| part.is_storage_full())
        });
        let why = if full {
            "not ready: the disk is full; appends resume by themselves once space returns\n"
        } else {
            "not ready: a log partition is poisoned\n"
        };
        return (StatusCode::SERVICE_UNAVAILABLE, why).into_response();
    }
    if let Some(why) = app.state.readiness.iter().find_map(|r| r.not_ready()) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response();
    }
    if !app.views.is_caught_up() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: catching up with the log\n",
        )
            .into_response();
    }
    "ready\n".into_response()
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let mut out = String::with_capacity(8 * 1024);
    app.metrics.render_prometheus(&mut out);
    let v = app.views.stats();
    let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    use std::fmt::Write as _;
    let _ = writeln!(
        out,
        "# HELP dropline_http_views_shipments Shipments held by the tracking view store."
    );
    let _ = writeln!(out, "# TYPE dropline_http_views_shipments gauge");
    let _ = writeln!(out, "dropline_http_views_shipments {}", app.views.len());
    let _ = writeln!(
        out,
        "# HELP dropline_http_views_applied_total Records applied to the view store."
    );
    let _ = writeln!(out, "# TYPE dropline_http_views_applied_total counter");
    let _ = writeln!(
        out,
        "dropline_http_views_applied_total{{topic=\"shipment-views\"}} {}",
        load(&v.views_applied)
    );
    let _ = writeln!(
        out,
        "dropline_http_views_applied_total{{topic=\"orders\"}} {}",
        load(&v.orders_applied)
    );
    let _ = writeln!(
        out,
        "# HELP dropline_http_views_undecodable_total Records the view store could not decode."
    );
    let _ = writeln!(out, "# TYPE dropline_http_views_undecodable_total counter");
    let _ = writeln!(
        out,
        "dropline_http_views_undecodable_total {}",
        load(&v.undecodable)
    );
    let _ = writeln!(
        out,
        "# HELP dropline_http_views_tail_errors_total Failed reads of shipment-views/orders (logged, retried)."
    );
    let _ = writeln!(out, "# TYPE dropline_http_views_tail_errors_total counter");
    let _ = writeln!(
        out,
        "dropline_http_views_tail_errors_total {}",
        load(&v.tail_errors)
    );
    let _ = writeln!(
        out,
        "# HELP dropline_http_views_evicted_total Shipments forgotten to stay within views_max."
    );
    let _ = writeln!(out, "# TYPE dropline_http_views_evicted_total counter");
    let _ = writeln!(
        out,
        "dropline_http_views_evicted_total {}",
        load(&v.evicted)
    );
    for src in &app.state.metrics {
        src.render_prometheus(&mut out);
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}
