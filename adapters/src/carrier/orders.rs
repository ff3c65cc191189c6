//! Following the node's orders feed: the adapter learns the tracking
//! numbers shipment creation appends to the node's `orders` topic, for its
//! configured carriers, and registers each with its poller exactly as
//! [`super::AdapterHandle::register`] does (a drop order "matters now").
//!
//! Why the cursor is saved only after the registrations are durable: the
//! cursor says "everything before this is registered". Each frame's
//! registrations go to the state log first; the cursor moves once the
//! last of them is durable (appends are durable in order), and is saved
//! at most every `cursor_save_interval_ms` and at shutdown. A crash loses
//! at most that much cursor progress, and the node then sends those
//! orders again: registering a known number writes nothing and changes
//! nothing, so a replay costs nothing and misses nothing.
//!
//! Failures (node unreachable, refused, stream lost) are counted, logged
//! once at warn and then quietly until the feed works again, and retried
//! with capped jittered backoff. An entry this adapter cannot register
//! (unknown carrier code, carrier not configured, bad tracking number,
//! registry full) is counted with its reason and skipped.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use dropline_operators::model::Carrier;
use tokio::sync::watch;

use super::core::Shared;
use super::error::AdapterError;
use super::metrics::{OrderSkip, add};
use super::sink::EventSink;
use crate::client::backoff::Backoff;
use crate::client::{ClientError, FollowCursor, IngestClientConfig, OrdersStream, follow_orders};
use crate::splitmix::SplitMix64;
use crate::wire::{ErrorCode, FollowFrame, OrdersFrame};

/// How a follow stream ended without an error.
enum Ended {
    /// The adapter is stopping.
    Stopped,
    /// The node ended the stream (it is shutting down).
    ByNode,
}

/// The carriers this adapter polls, as a Follow mask.
fn carriers_mask<S>(shared: &Shared<S>) -> u32 {
    Carrier::ALL
        .into_iter()
        .filter(|c| shared.config.carriers.get(*c).is_some())
        .fold(0u32, |m, c| m | 1u32 << (c as u8 - 1))
}

/// Saves the cursor off the async threads; a failure is logged (the next
/// save retries, and a lost save only means orders are sent again).
async fn save(cursor: &FollowCursor) {
    let c = cursor.clone();
    match tokio::task::spawn_blocking(move || c.save()).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => tracing::warn!(%err, "saving the orders cursor failed"),
        Err(err) => tracing::warn!(%err, "saving the orders cursor failed"),
    }
}

/// Follows the feed until `stopped`.
pub(crate) async fn run<S: EventSink>(
    shared: Arc<Shared<S>>,
    client: IngestClientConfig,
    mut stopped: watch::Receiver<bool>,
) {
    let mask = carriers_mask(&shared);
    if mask == 0 {
        return;
    }
    let config = shared.config.orders.clone();
    let metrics = &shared.metrics.orders;
    let mut cursor = match FollowCursor::load(&shared.config.state_dir) {
        Ok(c) => c,
        Err(err) => {
            tracing::error!(%err, "the orders cursor is unreadable; following the orders feed from the start (registering again changes nothing)");
            add(&metrics.cursor_resets, 1);
            FollowCursor::empty(&shared.config.state_dir)
        }
    };
    let mut backoff = Backoff::new(
        config.backoff_initial_ms,
        config.backoff_max_ms,
        SplitMix64::from_entropy(),
    );
    let mut failing = false;
    loop {
        if *stopped.borrow() {
            break;
        }
        let follow = FollowFrame {
            carriers_mask: mask,
            entries_max: config.entries_max,
            cursor: cursor.next.clone(),
        };
        let connected = tokio::select! {
            r = follow_orders(&client, &follow) => r,
            _ = stopped.wait_for(|s| *s) => break,
        };
        let outcome = match connected {
            Ok(stream) => {
                add(&metrics.follows, 1);
                metrics.following.store(1, Ordering::Relaxed);
                backoff.reset();
                if failing {
                    tracing::info!("following the node's orders feed again");
                }
                failing = false;
                let r = follow_stream(&shared, stream, &mut cursor, &mut stopped).await;
                metrics.following.store(0, Ordering::Relaxed);
                r
            }
            Err(err) => Err(err),
        };
        match outcome {
            Ok(Ended::Stopped) => break,
            Ok(Ended::ByNode) => {}
            Err(ClientError::Refused { code, message })
                if code == ErrorCode::CursorMismatch.as_u16() =>
            {
                add(&metrics.errors, 1);
                add(&metrics.cursor_resets, 1);
                tracing::warn!(%message, "the node does not know this orders cursor; following from the start (registering again changes nothing)");
                cursor.next.clear();
                save(&cursor).await;
            }
            Err(err) => {
                add(&metrics.errors, 1);
                if failing {
                    tracing::debug!(%err, "orders feed still unavailable");
                } else {
                    tracing::warn!(%err, "orders feed unavailable; retrying with backoff");
                }
                failing = true;
            }
        }
        let delay = Duration::from_millis(backoff.next_delay_ms());
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stopped.wait_for(|s| *s) => break,
        }
    }
    save(&cursor).await;
}

/// Reads one follow stream until it ends, registering its entries and
/// moving (and now and then saving) the cursor.
async fn follow_stream<S: EventSink>(
    shared: &Shared<S>,
    mut stream: OrdersStream,
    cursor: &mut FollowCursor,
    stopped: &mut watch::Receiver<bool>,
) -> Result<Ended, ClientError> {
    let interval = Duration::from_millis(shared.config.orders.cursor_save_interval_ms);
    let mut save_due: Option<tokio::time::Instant> = None;
    let mut lags: Vec<u64> = Vec::new();
    enum Next {
        Frame(Result<Option<OrdersFrame>, ClientError>),
        Save,
        Stop,
    }
    let result = loop {
        let due = save_due;
        let next = tokio::select! {
            f = stream.next() => Next::Frame(f),
            _ = async { if let Some(d) = due { tokio::time::sleep_until(d).await } }, if due.is_some() => Next::Save,
            _ = stopped.wait_for(|s| *s) => Next::Stop,
        };
        let frame = match next {
            Next::Save => {
                save_due = None;
                save(cursor).await;
                continue;
            }
            Next::Stop => break Ok(Ended::Stopped),
            Next::Frame(Ok(Some(f))) => f,
            Next::Frame(Ok(None)) => break Ok(Ended::ByNode),
            Next::Frame(Err(err)) => break Err(err),
        };
        if let Err(err) = register_frame(shared, &frame).await {
            tracing::error!(%err, "orders feed registrations are not durable; the cursor stays");
            break Err(ClientError::FeedLost);
        }
        cursor.advance(frame.partitions, frame.partition, frame.next_offset);
        if lags.len() != frame.partitions as usize {
            lags = vec![0; frame.partitions as usize];
        }
        if let Some(l) = lags.get_mut(frame.partition as usize) {
            *l = frame.head_offset.saturating_sub(frame.next_offset);
        }
        shared
            .metrics
            .orders
            .cursor_lag
            .store(lags.iter().sum(), Ordering::Relaxed);
        if save_due.is_none() {
            save_due = Some(tokio::time::Instant::now() + interval);
        }
    };
    stream.close();
    if save_due.is_some() {
        save(cursor).await;
    }
    result
}

/// Registers a frame's entries; completes once they are durable.
async fn register_frame<S: EventSink>(
    shared: &Shared<S>,
    frame: &OrdersFrame,
) -> Result<(), AdapterError> {
    let m = &shared.metrics.orders;
    let mut last = None;
    for e in &frame.entries {
        add(&m.entries, 1);
        let Some(carrier) = Carrier::ALL.into_iter().find(|c| *c as u8 == e.carrier) else {
            skip(shared, OrderSkip::UnknownCarrier, &e.tracking_number);
            continue;
        };
        match shared.register_durable(&e.tracking_number, carrier, e.drop) {
            Ok((new, durable)) => {
                if new {
                    add(&m.learned, 1);
                }
                if durable.is_some() {
                    last = durable;
                }
            }
            Err(AdapterError::CarrierNotConfigured { .. }) => {
                skip(shared, OrderSkip::CarrierNotConfigured, &e.tracking_number);
            }
            Err(AdapterError::InvalidTrackingNumber { .. }) => {
                skip(shared, OrderSkip::InvalidTrackingNumber, &e.tracking_number);
            }
            Err(AdapterError::Full { .. }) => {
                skip(shared, OrderSkip::Full, &e.tracking_number);
            }
            Err(err) => return Err(err),
        }
    }
    if let Some(durable) = last {
        durable.await?;
    }
    Ok(())
}

fn skip<S>(shared: &Shared<S>, reason: OrderSkip, tracking_number: &str) {
    add(&shared.metrics.orders.skipped[reason as usize], 1);
    tracing::warn!(
        reason = reason.as_str(),
        tracking_number,
        "order from the feed skipped"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::carrier::config::{AdapterConfig, CarrierConfig, published_limits};
    use crate::carrier::sink::SinkRefusal;
    use crate::wire::OrderEntry;
    use dropline_operators::model::CarrierEvent;

    struct NullSink;

    impl EventSink for NullSink {
        async fn accept(&self, events: &[CarrierEvent]) -> Vec<Result<(), SinkRefusal>> {
            events.iter().map(|_| Ok(())).collect()
        }
    }

    fn entry(offset: u64, carrier: u8, tn: &str) -> OrderEntry {
        OrderEntry {
            offset,
            carrier,
            drop: true,
            promised_from_ms: 0,
            promised_to_ms: 0,
            tracking_number: tn.to_string(),
        }
    }

    #[tokio::test]
    async fn bad_entries_are_counted_and_skipped_and_repeats_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = AdapterConfig::new("127.0.0.1:0".parse().unwrap(), dir.path());
        config.carriers.ups = Some(CarrierConfig {
            base_url: "http://127.0.0.1:9".into(),
            webhooks: false,
            webhook_secret: String::new(),
            limits: published_limits(Carrier::Ups),
            inflight_max: 1,
            api_key: String::new(),
        });
        let handle = crate::carrier::run_adapter(config, Arc::new(NullSink))
            .await
            .unwrap();
        assert_eq!(carriers_mask(&handle.shared), 0b0001);
        let frame = OrdersFrame {
            partition: 0,
            partitions: 1,
            next_offset: 10,
            head_offset: 10,
            entries: vec![
                entry(1, 9, "AAAA1"),
                entry(2, Carrier::Fedex as u8, "FDX12345"),
                entry(3, Carrier::Ups as u8, &"9".repeat(65)),
                entry(4, Carrier::Ups as u8, "1Z999AA10123456784"),
            ],
        };
        register_frame(&handle.shared, &frame).await.unwrap();
        register_frame(&handle.shared, &frame).await.unwrap();
        let m = handle.metrics();
        assert_eq!(m.orders.entries, 8);
        assert_eq!(m.orders.learned, 1);
        for reason in [
            "unknown_carrier",
            "carrier_not_configured",
            "invalid_tracking_number",
        ] {
            assert_eq!(m.orders.skipped_for(reason), 2, "{reason}");
        }
        assert_eq!(m.shipments, 1);
        let (new, durable) = handle
            .shared
            .register_durable("1Z999AA10123456784", Carrier::Ups, true)
            .unwrap();
        assert!(!new && durable.is_none(), "a repeat writes nothing");
        handle.shutdown().await;
    }
}
