//! The webhook pusher: scans that have just happened are pushed, signed,
//! to the adapter, one webhook per scan, and retried like a carrier would.
//!
//! Why one webhook per scan: that is how UPS Track Alert and FedEx AIV
//! push (an event per milestone), and it makes duplicates and reordering
//! per scan possible. A delivery answered 5xx, 429 or not at all is
//! retried with doubling delays until its retry window ends; one answered
//! with another 4xx is dropped, as carriers do not resend a payload the
//! receiver called bad.

use std::cmp::Reverse;
use std::sync::Arc;
use std::time::Duration;

use dropline_operators::model::Carrier;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::config::WebhookTarget;
use super::signature::{sign, signature_header};
use super::state::SimState;
use crate::carrier_format::{Journey, render_webhook};

/// One webhook to deliver.
struct Delivery {
    carrier: Carrier,
    body: Vec<u8>,
}

/// Starts the pusher; it runs until the returned task is aborted.
pub(crate) fn start(sim: Arc<SimState>, target: WebhookTarget) -> JoinHandle<()> {
    tokio::spawn(async move {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(target.timeout_ms))
            .build()
            .unwrap_or_default();
        let inflight = Arc::new(Semaphore::new(target.inflight_max.max(1) as usize));
        let mut tick = tokio::time::interval(Duration::from_millis(target.tick_ms.max(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            for batch in due(&sim, &target) {
                let Ok(permit) = inflight.clone().acquire_owned().await else {
                    return;
                };
                let (sim, client, target) = (sim.clone(), client.clone(), target.clone());
                tokio::spawn(async move {
                    for d in batch {
                        deliver(&sim, &client, &target, d).await;
                    }
                    drop(permit);
                });
            }
        }
    })
}

/// Webhooks for every scan that has happened and was not pushed yet,
/// grouped per shipment (each group delivered in order).
fn due(sim: &SimState, target: &WebhookTarget) -> Vec<Vec<Delivery>> {
    let now = sim.clock.now_ms();
    let mut inner = sim.lock();
    let mut out = Vec::new();
    while let Some(Reverse((at, i))) = inner.push_queue.peek().copied() {
        if at > now {
            break;
        }
        inner.push_queue.pop();
        let Some(s) = inner.shipments.get_mut(i) else {
            continue;
        };
        let carrier = s.carrier;
        let from = s.pushed;
        let to = s
            .journey
            .scans
            .iter()
            .take_while(|x| x.occurred_at_ms <= now)
            .count();
        s.pushed = to;
        if let Some(next) = s.journey.scans.get(to) {
            let next_at = next.occurred_at_ms;
            inner.push_queue.push(Reverse((next_at, i)));
        }
        if to <= from || !target.carriers.contains(&carrier) {
            continue;
        }
        if inner.faults.webhook_silence.contains(&carrier) {
            inner.stats.carriers.get_mut(carrier).webhooks_suppressed += (to - from) as u64;
            continue;
        }
        let Some(s) = inner.shipments.get(i) else {
            continue;
        };
        let mut journeys: Vec<Journey> = s.journey.scans[from..to]
            .iter()
            .map(|scan| Journey {
                tracking_number: s.journey.tracking_number.clone(),
                scans: vec![scan.clone()],
            })
            .collect();
        if inner.faults.out_of_order {
            journeys.reverse();
        }
        let duplicate = inner.faults.duplicate_webhooks;
        let mut batch = Vec::new();
        for j in journeys {
            let mut body = render_webhook(carrier, &j);
            if inner.malformed_now() {
                body.truncate(body.len() / 2);
                inner.stats.carriers.get_mut(carrier).webhooks_malformed += 1;
            }
            if duplicate {
                inner.stats.carriers.get_mut(carrier).webhooks_duplicated += 1;
                batch.push(Delivery {
                    carrier,
                    body: body.clone(),
                });
            }
            batch.push(Delivery { carrier, body });
        }
        out.push(batch);
    }
    out
}

async fn deliver(sim: &SimState, client: &reqwest::Client, target: &WebhookTarget, d: Delivery) {
    let url = format!(
        "{}/webhooks/{}",
        target.base_url.trim_end_matches('/'),
        d.carrier.as_str()
    );
    let secret = sim.config.secrets.get(d.carrier).clone();
    let signature = sign(secret.as_bytes(), &d.body);
    let started = tokio::time::Instant::now();
    let mut delay = Duration::from_millis(target.retry_initial_ms.max(1));
    loop {
        sim.lock().stats.carriers.get_mut(d.carrier).webhooks_sent += 1;
        let sent = client
            .post(&url)
            .header("content-type", "application/json")
            .header(signature_header(d.carrier), &signature)
            .body(d.body.clone())
            .send()
            .await;
        let retry = match sent {
            Ok(r) if r.status().is_success() => {
                sim.lock()
                    .stats
                    .carriers
                    .get_mut(d.carrier)
                    .webhooks_delivered += 1;
                return;
            }
            Ok(r)
                if r.status().is_client_error()
                    && r.status().as_u16() != 429
                    && r.status().as_u16() != 408 =>
            {
                sim.lock()
                    .stats
                    .carriers
                    .get_mut(d.carrier)
                    .webhooks_rejected += 1;
                return;
            }
            _ => true,
        };
        if retry {
            if started.elapsed() >= Duration::from_millis(target.retry_window_ms) {
                sim.lock()
                    .stats
                    .carriers
                    .get_mut(d.carrier)
                    .webhooks_abandoned += 1;
                return;
            }
            sim.lock()
                .stats
                .carriers
                .get_mut(d.carrier)
                .webhooks_retried += 1;
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(target.retry_max_ms.max(1)));
        }
    }
}
