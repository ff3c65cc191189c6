//! One follow stream: an authenticated adapter asked (Follow) for the
//! orders of its carriers from its cursor; the node sends Orders frames,
//! partition by partition, as long as the stream lives, and new ones as
//! they are appended.
//!
//! Backpressure: the node holds one frame per stream at a time and writes
//! it before reading on, so an adapter that registers slowly (and so reads
//! slowly) stops the node through QUIC's stream flow control; what it has
//! not read yet stays in the log, not in memory.
//!
//! Progress: a frame goes out when it has entries. Records the adapter is
//! not given (other carriers, tick records) move the cursor too; that
//! move is reported in an entry-less frame once the stream has caught up
//! and [`FOLLOW_PROGRESS_INTERVAL_MS`] has passed, so the adapter's cursor
//! and lag stay close without a frame per tick.

use std::sync::Arc;
use std::time::Duration;

use super::metrics::bump;
use super::orders_feed::OrdersFeed;
use super::server::Shared;
use super::session::{Session, error_frame};
use super::sink::IngestSink;
use crate::wire::{ErrorCode, FollowFrame, Frame, FrameType, OrdersFrame};

/// Longest time an entry-less cursor move waits before it is reported, ms.
pub const FOLLOW_PROGRESS_INTERVAL_MS: u64 = 5_000;

struct OpenGuard<'a>(&'a std::sync::atomic::AtomicU64);
impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// What ended a wait for new orders.
enum Wake {
    Data,
    Progress,
    Stop,
    Failed,
}

/// Runs a follow stream whose first frame (`body`) was a Follow.
pub(crate) async fn run<S: IngestSink>(
    shared: Arc<Shared<S>>,
    session: Arc<Session>,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    body: &[u8],
) {
    let follow = match Frame::decode_body(FrameType::Follow, body) {
        Ok(Frame::Follow(f)) => f,
        Ok(other) => {
            let message = format!("expected Follow, got {:?}", other.frame_type());
            return refuse(&shared, send, ErrorCode::UnexpectedFrame, message).await;
        }
        Err(err) => {
            let code = ErrorCode::from(&err);
            return refuse(&shared, send, code, err.to_string()).await;
        }
    };
    let Some(feed) = shared.sink.orders_feed() else {
        let message = "this node serves no orders feed".to_string();
        return refuse(&shared, send, ErrorCode::OrdersUnavailable, message).await;
    };
    let mut next = match start_cursor(&feed, &follow) {
        Ok(next) => next,
        Err(message) => {
            return refuse(&shared, send, ErrorCode::CursorMismatch, message).await;
        }
    };
    bump(&shared.metrics.follow_streams_opened, 1);
    bump(&shared.metrics.follow_streams_open, 1);
    let _open = OpenGuard(&shared.metrics.follow_streams_open);
    tracing::info!(adapter = %session.adapter, carriers = follow.carriers_mask, "adapter follows the orders feed");

    let partitions = feed.partitions();
    let entries_max = follow.entries_max as usize;
    let mut reported = next.clone();
    let mut progress_due: Option<tokio::time::Instant> = None;
    let mut shutdown = shared.shutdown.clone();
    let mut recv_open = true;
    let mut probe = [0u8; 1];
    loop {
        if *shutdown.borrow() {
            break;
        }
        let mut sent = false;
        for p in 0..partitions {
            let read = match feed.read(p, next[p as usize], follow.carriers_mask, entries_max) {
                Ok(r) => r,
                Err(err) => {
                    let message = format!("reading orders partition {p}: {err}");
                    return refuse(&shared, send, ErrorCode::OrdersUnavailable, message).await;
                }
            };
            bump(
                &shared.metrics.follow_orders_skipped,
                read.undecodable + read.oversized,
            );
            next[p as usize] = read.next_offset;
            if read.entries.is_empty() {
                continue;
            }
            let head = feed.partition(p).map_or(0, |part| part.durable_offset());
            let count = read.entries.len() as u64;
            let frame = OrdersFrame {
                partition: p,
                partitions,
                next_offset: read.next_offset,
                head_offset: head.max(read.next_offset),
                entries: read.entries,
            }
            .encode();
            if send.write_all(&frame).await.is_err() {
                return;
            }
            bump(&shared.metrics.follow_entries_sent, count);
            reported[p as usize] = read.next_offset;
            sent = true;
        }
        if sent {
            continue;
        }
        if next != reported && progress_due.is_none() {
            progress_due = Some(
                tokio::time::Instant::now() + Duration::from_millis(FOLLOW_PROGRESS_INTERVAL_MS),
            );
        }
        let wake = {
            let ready: Vec<_> = (0..partitions)
                .filter_map(|p| feed.data_ready(p, next[p as usize]))
                .map(Box::pin)
                .collect();
            let any_ready = futures_util::future::select_all(ready);
            let due = progress_due;
            tokio::select! {
                (r, _, _) = any_ready => if r.is_ok() { Wake::Data } else { Wake::Failed },
                _ = async { if let Some(d) = due { tokio::time::sleep_until(d).await } }, if due.is_some() => Wake::Progress,
                _ = shutdown.changed() => Wake::Stop,
                _ = send.stopped() => Wake::Stop,
                r = recv.read(&mut probe), if recv_open => match r {
                    // The adapter finished its side: fine, keep sending.
                    Ok(None) => { recv_open = false; Wake::Data }
                    // Anything after the Follow is not allowed.
                    Ok(Some(_)) | Err(_) => Wake::Stop,
                },
            }
        };
        match wake {
            Wake::Data => {}
            Wake::Stop => break,
            Wake::Failed => {
                let message = "the orders log cannot be followed now".to_string();
                return refuse(&shared, send, ErrorCode::OrdersUnavailable, message).await;
            }
            Wake::Progress => {
                progress_due = None;
                for p in 0..partitions as usize {
                    if next[p] == reported[p] {
                        continue;
                    }
                    let head = feed
                        .partition(p as u32)
                        .map_or(0, |part| part.durable_offset());
                    let frame = OrdersFrame {
                        partition: p as u32,
                        partitions,
                        next_offset: next[p],
                        head_offset: head.max(next[p]),
                        entries: Vec::new(),
                    }
                    .encode();
                    if send.write_all(&frame).await.is_err() {
                        return;
                    }
                    reported[p] = next[p];
                }
            }
        }
    }
    let _ = send.finish();
}

/// The cursor to start from: the adapter's, checked against the topic, or
/// each partition's first retained offset. An offset below the retained
/// start (retention removed those orders) starts at the start.
fn start_cursor(feed: &OrdersFeed, follow: &FollowFrame) -> Result<Vec<u64>, String> {
    let partitions = feed.partitions();
    if partitions == 0 {
        return Err("the orders topic has no partitions".into());
    }
    if !follow.cursor.is_empty() && follow.cursor.len() != partitions as usize {
        return Err(format!(
            "the cursor names {} partitions, orders has {partitions}",
            follow.cursor.len()
        ));
    }
    let mut next = Vec::with_capacity(partitions as usize);
    for p in 0..partitions {
        let Some(part) = feed.partition(p) else {
            return Err(format!("orders partition {p} is missing"));
        };
        let (start, end) = (part.start_offset(), part.next_offset());
        let want = follow.cursor.get(p as usize).copied().unwrap_or(start);
        if want > end {
            return Err(format!(
                "the cursor of partition {p} is at {want}, beyond its end {end}"
            ));
        }
        next.push(want.max(start));
    }
    Ok(next)
}

/// Answers a refused Follow with a fatal Error frame, counts it and ends
/// the stream.
async fn refuse<S: IngestSink>(
    shared: &Shared<S>,
    mut send: quinn::SendStream,
    code: ErrorCode,
    message: String,
) {
    shared.metrics.error(code);
    tracing::warn!(code = code.name(), %message, "follow refused");
    let _ = send
        .write_all(&error_frame(code, None, true, message))
        .await;
    let _ = send.finish();
}
