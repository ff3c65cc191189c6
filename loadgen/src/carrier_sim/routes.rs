//! HTTP routes: each carrier's polling endpoint in its real shape, and the
//! admin calls.
//!
//! Every polling request is counted and charged to the carrier's buckets
//! before anything else, as real carriers count every call; faults apply
//! after that.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use dropline_operators::model::Carrier;
use serde::Deserialize;
use serde_json::{Value, json};

use super::config::Faults;
use super::state::{GroundTruthScan, SimState};
use crate::carrier_format::{FEDEX_TRACKING_NUMBERS_PER_REQUEST_MAX, Journey, render_poll};

/// `Retry-After` sent during a 429 storm unless the faults name another,
/// in simulated seconds.
pub const STORM_RETRY_AFTER_S: u64 = 30;

pub(crate) fn router(state: Arc<SimState>) -> Router {
    Router::new()
        .route("/api/track/v1/details/{number}", get(ups))
        .route("/track/v1/trackingnumbers", post(fedex))
        .route("/tracking/v3/tracking/{number}", get(usps))
        .route("/track/shipments", get(dhl))
        .route("/admin/register", post(register))
        .route("/admin/faults", post(set_faults).get(get_faults))
        .route("/admin/stats", get(stats))
        .route("/admin/scans", get(scans))
        .with_state(state)
}

fn json_response(status: StatusCode, body: Vec<u8>, content_type: &'static str) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn too_many(retry_after_s: u64) -> Response {
    let mut r = json_response(
        StatusCode::TOO_MANY_REQUESTS,
        br#"{"errors":[{"code":"429","message":"Too Many Requests"}]}"#.to_vec(),
        "application/json",
    );
    if let Ok(v) = HeaderValue::from_str(&retry_after_s.max(1).to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// What the carrier-specific code needs from the shared checks.
enum Gate {
    /// Answer this at once.
    Answer(Response),
    /// Build the answer from these visible journeys (None: no scans yet or
    /// unknown), then apply the malformed and slow faults.
    Serve {
        journeys: Vec<(String, Option<Journey>)>,
        malformed: bool,
        slow_ms: u64,
    },
}

fn gate(sim: &SimState, carrier: Carrier, numbers: &[String]) -> Gate {
    let now = sim.clock.now_ms();
    let elapsed = sim.clock.elapsed_sim_ms();
    let mut inner = sim.lock();
    let counters = inner.stats.carriers.get_mut(carrier);
    counters.requests += 1;
    counters.numbers_requested += numbers.len() as u64;
    if let Err(wait_ms) = inner.limiters.get_mut(carrier).take(elapsed) {
        let counters = inner.stats.carriers.get_mut(carrier);
        counters.violations += 1;
        if sim.config.enforce_limits {
            counters.rate_limited += 1;
            return Gate::Answer(too_many((wait_ms / 1000.0).ceil() as u64));
        }
    }
    let faults = &inner.faults;
    if faults.storm_429.contains(&carrier) {
        let retry_after_s = match faults.storm_retry_after_s {
            0 => STORM_RETRY_AFTER_S,
            s => s,
        };
        inner.stats.carriers.get_mut(carrier).storm_429 += 1;
        return Gate::Answer(too_many(retry_after_s));
    }
    if faults.outage.contains(&carrier) {
        inner.stats.carriers.get_mut(carrier).outage_503 += 1;
        return Gate::Answer(json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            br#"{"errors":[{"code":"SERVICE.UNAVAILABLE","message":"Service unavailable"}]}"#
                .to_vec(),
            "application/json",
        ));
    }
    let slow_ms = faults.slow_ms;
    let journeys: Vec<(String, Option<Journey>)> = numbers
        .iter()
        .map(|n| {
            let j = inner
                .index
                .get(n)
                .and_then(|i| inner.shipments.get(*i))
                .filter(|s| s.carrier == carrier)
                .map(|s| s.visible(now))
                .filter(|j| !j.scans.is_empty());
            (n.clone(), j)
        })
        .collect();
    let counters = inner.stats.carriers.get_mut(carrier);
    if journeys.iter().all(|(_, j)| j.is_none()) {
        counters.not_found += 1;
    } else {
        counters.served += 1;
    }
    let malformed = inner.malformed_now();
    if malformed {
        inner.stats.carriers.get_mut(carrier).malformed_responses += 1;
    }
    Gate::Serve {
        journeys,
        malformed,
        slow_ms,
    }
}

async fn finish(response: Response, malformed: bool, slow_ms: u64) -> Response {
    if slow_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(slow_ms)).await;
    }
    if !malformed {
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let cut = bytes.len() / 2;
    Response::from_parts(parts, axum::body::Body::from(bytes.slice(..cut)))
}

async fn ups(State(sim): State<Arc<SimState>>, Path(number): Path<String>) -> Response {
    let (journeys, malformed, slow_ms) = match gate(&sim, Carrier::Ups, &[number]) {
        Gate::Answer(r) => return r,
        Gate::Serve {
            journeys,
            malformed,
            slow_ms,
        } => (journeys, malformed, slow_ms),
    };
    let response = match journeys.into_iter().next() {
        Some((_, Some(j))) => json_response(
            StatusCode::OK,
            render_poll(Carrier::Ups, &[j]),
            "application/json",
        ),
        other => {
            let n = other.map(|(n, _)| n).unwrap_or_default();
            let body = json!({"trackResponse": {"shipment": [{
                "inquiryNumber": n,
                "package": [],
                "warnings": [{"code": "TW0001", "message": "Tracking Information Not Found"}]
            }]}});
            json_response(
                StatusCode::OK,
                body.to_string().into_bytes(),
                "application/json",
            )
        }
    };
    finish(response, malformed, slow_ms).await
}

fn fedex_not_found(number: &str) -> Value {
    json!({
        "trackingNumber": number,
        "trackResults": [{
            "trackingNumberInfo": {"trackingNumber": number, "carrierCode": "FDXE"},
            "error": {
                "code": "TRACKING.TRACKINGNUMBER.NOTFOUND",
                "message": "Tracking number cannot be found. Please correct the tracking number and try again."
            }
        }]
    })
}

fn fedex_bad_request(message: &str) -> Response {
    let body = json!({"transactionId": "sim", "errors": [{
        "code": "TRACKING.TRACKINGNUMBER.INVALID", "message": message
    }]});
    json_response(
        StatusCode::BAD_REQUEST,
        body.to_string().into_bytes(),
        "application/json",
    )
}

/// Tracking numbers of a FedEx Track request body.
fn fedex_numbers(body: &[u8]) -> Option<Vec<String>> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let infos = v.get("trackingInfo")?.as_array()?;
    infos
        .iter()
        .map(|i| {
            i.get("trackingNumberInfo")?
                .get("trackingNumber")?
                .as_str()
                .map(str::to_string)
        })
        .collect()
}

async fn fedex(State(sim): State<Arc<SimState>>, body: Bytes) -> Response {
    let Some(numbers) = fedex_numbers(&body) else {
        let mut inner = sim.lock();
        let c = inner.stats.carriers.get_mut(Carrier::Fedex);
        c.requests += 1;
        c.bad_requests += 1;
        return fedex_bad_request(
            "Invalid request body: trackingInfo[].trackingNumberInfo.trackingNumber expected.",
        );
    };
    if numbers.is_empty() || numbers.len() > FEDEX_TRACKING_NUMBERS_PER_REQUEST_MAX {
        let mut inner = sim.lock();
        let c = inner.stats.carriers.get_mut(Carrier::Fedex);
        c.requests += 1;
        c.bad_requests += 1;
        return fedex_bad_request("Between 1 and 30 tracking numbers are allowed per request.");
    }
    let (journeys, malformed, slow_ms) = match gate(&sim, Carrier::Fedex, &numbers) {
        Gate::Answer(r) => return r,
        Gate::Serve {
            journeys,
            malformed,
            slow_ms,
        } => (journeys, malformed, slow_ms),
    };
    let found: Vec<Journey> = journeys.iter().filter_map(|(_, j)| j.clone()).collect();
    let mut doc: Value = if found.is_empty() {
        json!({"transactionId": "sim", "output": {"completeTrackResults": []}})
    } else {
        serde_json::from_slice(&render_poll(Carrier::Fedex, &found)).unwrap_or(Value::Null)
    };
    if let Some(results) = doc
        .pointer_mut("/output/completeTrackResults")
        .and_then(Value::as_array_mut)
    {
        for (n, j) in &journeys {
            if j.is_none() {
                results.push(fedex_not_found(n));
            }
        }
    }
    let response = json_response(
        StatusCode::OK,
        doc.to_string().into_bytes(),
        "application/json",
    );
    finish(response, malformed, slow_ms).await
}

async fn usps(State(sim): State<Arc<SimState>>, Path(number): Path<String>) -> Response {
    let (journeys, malformed, slow_ms) = match gate(&sim, Carrier::Usps, &[number]) {
        Gate::Answer(r) => return r,
        Gate::Serve {
            journeys,
            malformed,
            slow_ms,
        } => (journeys, malformed, slow_ms),
    };
    let response = match journeys.into_iter().next() {
        Some((_, Some(j))) => json_response(
            StatusCode::OK,
            render_poll(Carrier::Usps, &[j]),
            "application/json",
        ),
        _ => {
            let body = json!({"apiVersion": "v3", "error": {
                "code": "404",
                "message": "The tracking number may be incorrect or the status update is not yet available."
            }});
            json_response(
                StatusCode::NOT_FOUND,
                body.to_string().into_bytes(),
                "application/json",
            )
        }
    };
    finish(response, malformed, slow_ms).await
}

/// Query of the DHL Unified endpoint.
#[derive(Debug, Deserialize)]
struct DhlQuery {
    #[serde(rename = "trackingNumber")]
    tracking_number: Option<String>,
}

async fn dhl(State(sim): State<Arc<SimState>>, Query(q): Query<DhlQuery>) -> Response {
    let Some(number) = q.tracking_number.filter(|n| !n.is_empty()) else {
        let mut inner = sim.lock();
        let c = inner.stats.carriers.get_mut(Carrier::Dhl);
        c.requests += 1;
        c.bad_requests += 1;
        let body = json!({"type": "about:blank", "title": "Bad Request", "status": 400,
            "detail": "trackingNumber is required"});
        return json_response(
            StatusCode::BAD_REQUEST,
            body.to_string().into_bytes(),
            "application/problem+json",
        );
    };
    let (journeys, malformed, slow_ms) = match gate(&sim, Carrier::Dhl, &[number]) {
        Gate::Answer(r) => return r,
        Gate::Serve {
            journeys,
            malformed,
            slow_ms,
        } => (journeys, malformed, slow_ms),
    };
    let response = match journeys.into_iter().next() {
        Some((_, Some(j))) => json_response(
            StatusCode::OK,
            render_poll(Carrier::Dhl, &[j]),
            "application/json",
        ),
        _ => {
            let body = json!({"type": "about:blank", "title": "No result found", "status": 404,
                "detail": "No shipment with given tracking number found."});
            json_response(
                StatusCode::NOT_FOUND,
                body.to_string().into_bytes(),
                "application/problem+json",
            )
        }
    };
    finish(response, malformed, slow_ms).await
}

/// Body of `POST /admin/register`: given numbers, or `count` generated ones.
#[derive(Debug, Deserialize)]
struct RegisterBody {
    carrier: Carrier,
    #[serde(default)]
    tracking_numbers: Vec<String>,
    #[serde(default)]
    tracking_number: Option<String>,
    #[serde(default)]
    count: usize,
}

/// Most numbers one register call may generate.
pub const REGISTER_COUNT_MAX: usize = 100_000;

async fn register(State(sim): State<Arc<SimState>>, Json(body): Json<RegisterBody>) -> Response {
    let mut numbers = body.tracking_numbers;
    numbers.extend(body.tracking_number);
    if body.count > REGISTER_COUNT_MAX {
        return (
            StatusCode::BAD_REQUEST,
            format!("count above {REGISTER_COUNT_MAX}"),
        )
            .into_response();
    }
    let registered = sim.register(body.carrier, &numbers).and_then(|_| {
        let mut generated = sim.register_generated(body.carrier, body.count)?;
        numbers.append(&mut generated);
        Ok(numbers)
    });
    match registered {
        Ok(numbers) => {
            Json(json!({"carrier": body.carrier, "tracking_numbers": numbers})).into_response()
        }
        Err(e) => (StatusCode::UNPROCESSABLE_ENTITY, e.to_string()).into_response(),
    }
}

async fn set_faults(State(sim): State<Arc<SimState>>, Json(faults): Json<Faults>) -> Response {
    sim.lock().faults = faults.clone();
    Json(faults).into_response()
}

async fn get_faults(State(sim): State<Arc<SimState>>) -> Response {
    Json(sim.lock().faults.clone()).into_response()
}

async fn stats(State(sim): State<Arc<SimState>>) -> Response {
    Json(sim.stats()).into_response()
}

/// Query of `GET /admin/scans`.
#[derive(Debug, Deserialize)]
struct ScansQuery {
    #[serde(default)]
    visible: bool,
}

async fn scans(State(sim): State<Arc<SimState>>, Query(q): Query<ScansQuery>) -> Response {
    let scans: Vec<GroundTruthScan> = sim.ground_truth(q.visible);
    Json(scans).into_response()
}
