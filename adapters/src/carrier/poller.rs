//! The adaptive poller: one task per carrier takes due shipments from its
//! queue whenever the carrier's limits, breaker and `Retry-After` allow,
//! asks the carrier in its own dialect, and reschedules each shipment at
//! the cadence its new state calls for.
//!
//! Request shapes: UPS `GET /api/track/v1/details/{n}`, FedEx `POST
//! /track/v1/trackingnumbers` with up to 30 numbers, USPS `GET
//! /tracking/v3/tracking/{n}?expand=DETAIL`, DHL `GET
//! /track/shipments?trackingNumber={n}` (with `DHL-API-Key`).

use std::sync::Arc;
use std::time::Duration;

use dropline_operators::model::{Carrier, EventSource};
use dropline_operators::normalize::{SkipReason, normalize};
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::config::CarrierConfig;
use super::core::{Shared, slot};
use super::metrics::add;
use super::sink::EventSink;

/// How long the poller sleeps when nothing is queued, in clock ms (it is
/// woken earlier by registrations).
const IDLE_WAKE_MS: i64 = 60_000;

enum Outcome {
    /// A body to normalize.
    Data(bytes::Bytes),
    /// The carrier does not know the number (yet).
    NotFound,
    /// 429: wait this many clock ms.
    RateLimited(i64),
    /// A failure counted by the breaker.
    Failed(String),
}

fn request(
    http: &reqwest::Client,
    carrier: Carrier,
    cc: &CarrierConfig,
    numbers: &[String],
) -> reqwest::RequestBuilder {
    let base = cc.base_url.trim_end_matches('/');
    let first = numbers.first().map_or("", String::as_str);
    match carrier {
        Carrier::Ups => http
            .get(format!("{base}/api/track/v1/details/{first}?locale=en_US"))
            .header("transId", "dropline")
            .header("transactionSrc", "dropline"),
        Carrier::Fedex => {
            let info: Vec<_> = numbers
                .iter()
                .map(|n| json!({"trackingNumberInfo": {"trackingNumber": n}}))
                .collect();
            http.post(format!("{base}/track/v1/trackingnumbers"))
                .json(&json!({"includeDetailedScans": true, "trackingInfo": info}))
        }
        Carrier::Usps => http.get(format!("{base}/tracking/v3/tracking/{first}?expand=DETAIL")),
        Carrier::Dhl => http
            .get(format!("{base}/track/shipments?trackingNumber={first}"))
            .header("DHL-API-Key", cc.api_key.as_str()),
    }
}

async fn fetch(req: reqwest::RequestBuilder, retry_after_default_ms: i64) -> Outcome {
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    let status = resp.status();
    if status.as_u16() == 429 {
        let ms = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<i64>().ok())
            .map_or(retry_after_default_ms, |s| s.saturating_mul(1000));
        return Outcome::RateLimited(ms);
    }
    if status.as_u16() == 404 {
        return Outcome::NotFound;
    }
    if !status.is_success() {
        return Outcome::Failed(format!("HTTP {status}"));
    }
    match resp.bytes().await {
        Ok(b) => Outcome::Data(b),
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

async fn poll_once<S: EventSink>(
    shared: Arc<Shared<S>>,
    carrier: Carrier,
    http: reqwest::Client,
    numbers: Vec<String>,
) {
    let Some(cc) = shared.config.carriers.get(carrier) else {
        return;
    };
    let m = shared.metrics.carrier(carrier);
    add(&m.requests, 1);
    add(&m.numbers_polled, numbers.len() as u64);
    let p = &shared.config.poller;
    let outcome = fetch(
        request(&http, carrier, cc, &numbers),
        p.retry_after_ms_default as i64,
    )
    .await;
    // The carrier counted the request before this instant: the rate
    // window of this request is measured from here.
    let answered = shared.clock.now_ms();
    let mut failed = None;
    let mut retry_until = answered;
    let rate_limited = matches!(outcome, Outcome::RateLimited(_));
    match outcome {
        Outcome::Data(body) => match normalize(carrier, &body, answered, EventSource::Poll) {
            Ok(n) => {
                add(&m.unknown_codes, n.unknown_codes.len() as u64);
                let missing = n
                    .skipped
                    .iter()
                    .filter(|s| matches!(s.reason, SkipReason::NotFound { .. }))
                    .count();
                add(&m.not_found, missing as u64);
                if shared
                    .hand_off(carrier, n.events, EventSource::Poll, false)
                    .await
                    .is_err()
                {
                    // The spool is full: ask again later (not the carrier's fault).
                    retry_until = answered + p.failure_retry_ms as i64;
                }
            }
            Err(e) => {
                let reason = e.to_string();
                add(&shared.metrics.dead_letters, 1);
                shared
                    .state_log
                    .dead_letter(carrier, EventSource::Poll, answered, &reason, &body);
                failed = Some(reason);
            }
        },
        Outcome::NotFound => add(&m.not_found, 1),
        Outcome::RateLimited(ms) => {
            add(&m.rate_limited, 1);
            retry_until = answered + ms.max(0);
        }
        Outcome::Failed(reason) => failed = Some(reason),
    }
    let now = shared.clock.now_ms();
    let mut core = shared.lock();
    if let Some(q) = core.queues[slot(carrier)].as_mut() {
        q.finish(now);
        if retry_until > answered && failed.is_none() && q.retry_after_until_ms < retry_until {
            q.retry_after_until_ms = retry_until;
        }
        match (rate_limited, q.rate_limited_since_ms) {
            (true, None) => {
                q.rate_limited_since_ms = Some(now);
                tracing::warn!(%carrier, retry_after_ms = retry_until - answered, "carrier answers 429; polling waits for its Retry-After");
            }
            (false, Some(since)) => {
                q.rate_limited_since_ms = None;
                tracing::info!(%carrier, rate_limited_ms = now - since, "carrier accepts requests again after 429s");
            }
            _ => {}
        }
        match &failed {
            Some(reason) => {
                add(&m.errors, 1);
                if q.breaker.failure(now) {
                    add(&m.breaker_opens, 1);
                    tracing::warn!(%carrier, %reason, "carrier failing; circuit breaker open");
                }
                retry_until = now + p.failure_retry_ms as i64;
            }
            None => {
                if q.breaker.success() {
                    tracing::info!(%carrier, "carrier answers again; circuit breaker closed");
                }
            }
        }
    }
    for n in &numbers {
        shared.reschedule(&mut core, n, now, retry_until);
    }
}

/// Runs `carrier`'s poller until `stop` turns true.
pub(crate) async fn run<S: EventSink>(
    shared: Arc<Shared<S>>,
    carrier: Carrier,
    http: reqwest::Client,
    mut stop: watch::Receiver<bool>,
) {
    let mut tasks = JoinSet::new();
    loop {
        if *stop.borrow() {
            break;
        }
        let now = shared.clock.now_ms();
        let silence_at = shared.check_silence(carrier, now);
        let wake_at = {
            let mut guard = shared.lock();
            let core = &mut *guard;
            let Some(q) = core.queues[slot(carrier)].as_mut() else {
                break;
            };
            while let Some(batch) = q.take_due(now, &core.registry.shipments) {
                tasks.spawn(poll_once(shared.clone(), carrier, http.clone(), batch));
            }
            q.next_wake(now)
        };
        let wake_at = match (wake_at, silence_at) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or(now + IDLE_WAKE_MS),
        };
        let sleep = shared.clock.sleep_until(wake_at);
        tokio::select! {
            () = sleep => {}
            () = shared.wake[slot(carrier)].notified() => {}
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            _ = stop.changed() => break,
        }
    }
    tasks.abort_all();
    // Wait for the aborted requests to be gone, so that nothing holds the
    // adapter's state once shutdown returns.
    while tasks.join_next().await.is_some() {}
}

/// The HTTP client pollers share.
pub(crate) fn http_client(timeout_ms: u64) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_millis(timeout_ms.max(1)))
        .build()
        .unwrap_or_default()
}
