//! One batch stream: frames are read, checked and appended in arrival
//! order, and acknowledged in the same order once durable.
//!
//! Why two halves joined in one task: the reader must keep appending while
//! earlier batches wait for their group-commit fdatasync (that is what
//! makes pipelining pay), and the writer must answer strictly in order so
//! the adapter can match replies to batches. A bounded queue between them,
//! and the connection's window permits travelling with each batch, bound
//! what one connection can hold.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, mpsc};

use super::metrics::bump;
use super::server::Shared;
use super::session::{Session, error_frame, keep_dead_letter};
use super::sink::{IngestSink, ProducerSeq};
use crate::frame_io::{ReadFailure, read_frame};
use crate::wire::{
    AckFrame, BatchView, ErrorCode, FRAME_HEADER_BYTES, Frame, FrameType, RecordRef, encode_frame,
};
use dropline_operators::model::{CarrierEvent, partition_for};

enum Reply<D> {
    /// An appended batch waiting to be durable.
    Pending {
        durable: D,
        partition: u32,
        sequence: u64,
        records: u32,
        _permit: OwnedSemaphorePermit,
    },
    /// An encoded Error frame to send as is.
    Now(Vec<u8>),
}

/// A refusal of one batch: its code, the batch it names, the message.
struct Refusal {
    code: ErrorCode,
    batch: Option<(u32, u64)>,
    message: String,
}

/// Checks a parsed batch against the session and, if configured, every
/// record against the partitioner and the event format.
fn check_batch<'a>(
    view: &BatchView<'a>,
    session: &Session,
    partitions: u32,
    validate_events: bool,
    records: &mut Vec<RecordRef<'a>>,
) -> Result<(), Refusal> {
    let batch = Some((view.partition, view.sequence));
    let refuse = |code, message| {
        Err(Refusal {
            code,
            batch,
            message,
        })
    };
    if view.producer_id != session.producer_id {
        return refuse(
            ErrorCode::ProducerMismatch,
            format!(
                "batch producer {} is not the session's {}",
                view.producer_id, session.producer_id
            ),
        );
    }
    if view.partition >= partitions {
        return refuse(
            ErrorCode::PartitionOutOfRange,
            format!("partition {} of {}", view.partition, partitions),
        );
    }
    for (index, r) in view.records().enumerate() {
        if partition_for(r.key, partitions) != view.partition {
            return refuse(
                ErrorCode::WrongPartition,
                format!(
                    "record {index}: key belongs to partition {}",
                    partition_for(r.key, partitions)
                ),
            );
        }
        if validate_events {
            match CarrierEvent::access(r.value) {
                Ok(event) if event.tracking_number.as_bytes() == r.key => {}
                Ok(_) => {
                    return refuse(
                        ErrorCode::InvalidEvent,
                        format!("record {index}: key differs from the event's tracking number"),
                    );
                }
                Err(err) => {
                    return refuse(ErrorCode::InvalidEvent, format!("record {index}: {err}"));
                }
            }
        }
        records.push(r);
    }
    Ok(())
}

/// Runs one stream to its end: a follow stream when its first frame is a
/// Follow (see [`super::follow`]), a batch stream otherwise.
pub(crate) async fn run<S: IngestSink>(
    shared: Arc<Shared<S>>,
    session: Arc<Session>,
    send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) {
    let mut header = [0u8; FRAME_HEADER_BYTES];
    let mut body = Vec::new();
    let mut shutdown = shared.shutdown.clone();
    let body_max = shared.config.frame_body_bytes_max as usize;
    let first = tokio::select! {
        read = read_frame(&mut recv, &mut header, &mut body, body_max) => read,
        _ = shutdown.changed() => return,
    };
    if matches!(&first, Ok(Some(h)) if h.frame_type == FrameType::Follow) {
        super::follow::run(shared, session, send, recv, &body).await;
        return;
    }
    let depth = shared.config.inflight_batches_max as usize;
    let (tx, rx) = mpsc::channel::<Reply<S::Durable>>(depth);
    let reader = read_batches(&shared, &session, recv, tx, first, header, body);
    let writer = write_replies(&shared, send, rx);
    tokio::join!(reader, writer);
}

async fn read_batches<S: IngestSink>(
    shared: &Shared<S>,
    session: &Session,
    mut recv: quinn::RecvStream,
    tx: mpsc::Sender<Reply<S::Durable>>,
    first: Result<Option<crate::wire::FrameHeader>, ReadFailure>,
    mut header: [u8; FRAME_HEADER_BYTES],
    mut body: Vec<u8>,
) {
    let mut first = Some(first);
    let mut shutdown = shared.shutdown.clone();
    let partitions = shared.sink.partitions();
    let body_max = shared.config.frame_body_bytes_max as usize;
    loop {
        if *shutdown.borrow() {
            break;
        }
        let read = match first.take() {
            Some(read) => read,
            None => tokio::select! {
                read = read_frame(&mut recv, &mut header, &mut body, body_max) => read,
                _ = shutdown.changed() => break,
            },
        };
        let refusal = match read {
            Ok(None) | Err(ReadFailure::Stream) => break,
            Err(ReadFailure::Wire {
                err,
                received,
                framing_intact,
            }) => {
                let code = ErrorCode::from(&err);
                let kept_body = received.saturating_sub(FRAME_HEADER_BYTES).min(body.len());
                let kept = [
                    &header[..received.min(FRAME_HEADER_BYTES)],
                    &body[..kept_body],
                ]
                .concat();
                keep_dead_letter(shared, code, &session.adapter, &kept);
                shared.metrics.error(code);
                let _ = tx
                    .send(Reply::Now(error_frame(
                        code,
                        None,
                        !framing_intact,
                        err.to_string(),
                    )))
                    .await;
                if framing_intact {
                    continue;
                }
                let _ = recv.stop(code.as_u16().into());
                break;
            }
            Ok(Some(h)) if h.frame_type != FrameType::Batch => {
                let code = ErrorCode::UnexpectedFrame;
                shared.metrics.error(code);
                let message = format!("expected Batch, got {:?}", h.frame_type);
                let _ = tx
                    .send(Reply::Now(error_frame(code, None, true, message)))
                    .await;
                let _ = recv.stop(code.as_u16().into());
                break;
            }
            Ok(Some(_)) => {
                bump(
                    &shared.metrics.bytes_received,
                    (FRAME_HEADER_BYTES + body.len()) as u64,
                );
                match Frame::decode_body(FrameType::Batch, &body) {
                    Ok(Frame::Batch(view)) => {
                        let mut records = Vec::with_capacity(view.record_count as usize);
                        match check_batch(
                            &view,
                            session,
                            partitions,
                            shared.config.validate_events,
                            &mut records,
                        ) {
                            Err(refusal) => Some(refusal),
                            Ok(()) => {
                                let Ok(permit) = session.window.clone().acquire_owned().await
                                else {
                                    break;
                                };
                                let producer = ProducerSeq {
                                    producer_id: view.producer_id,
                                    sequence: view.sequence,
                                };
                                match shared.sink.append(view.partition, producer, &records) {
                                    Ok(durable) => {
                                        let pending = Reply::Pending {
                                            durable,
                                            partition: view.partition,
                                            sequence: view.sequence,
                                            records: view.record_count,
                                            _permit: permit,
                                        };
                                        if tx.send(pending).await.is_err() {
                                            break;
                                        }
                                        None
                                    }
                                    Err(err) => {
                                        // Not a bad input: the batch stays with the
                                        // adapter, which retries or resolves it.
                                        let code = err.code();
                                        shared.metrics.error(code);
                                        let frame = error_frame(
                                            code,
                                            Some((view.partition, view.sequence)),
                                            false,
                                            err.to_string(),
                                        );
                                        if tx.send(Reply::Now(frame)).await.is_err() {
                                            break;
                                        }
                                        None
                                    }
                                }
                            }
                        }
                    }
                    Ok(_) => None,
                    Err(err) => Some(Refusal {
                        code: ErrorCode::from(&err),
                        batch: BatchView::peek(&body).map(|(_, seq, part)| (part, seq)),
                        message: err.to_string(),
                    }),
                }
            }
        };
        if let Some(Refusal {
            code,
            batch,
            message,
        }) = refusal
        {
            keep_dead_letter(
                shared,
                code,
                &session.adapter,
                &[&header[..], &body[..]].concat(),
            );
            shared.metrics.error(code);
            if tx
                .send(Reply::Now(error_frame(code, batch, false, message)))
                .await
                .is_err()
            {
                break;
            }
        }
    }
}

async fn write_replies<S: IngestSink>(
    shared: &Shared<S>,
    mut send: quinn::SendStream,
    mut rx: mpsc::Receiver<Reply<S::Durable>>,
) {
    let mut alive = true;
    while let Some(reply) = rx.recv().await {
        let frame = match reply {
            Reply::Now(frame) => frame,
            Reply::Pending {
                durable,
                partition,
                sequence,
                records,
                _permit,
            } => match durable.await {
                Ok(ack) => {
                    bump(&shared.metrics.batches_acked, 1);
                    if ack.duplicate {
                        bump(&shared.metrics.duplicate_batches, 1);
                    } else {
                        bump(&shared.metrics.events_acked, u64::from(records));
                    }
                    encode_frame(&Frame::Ack(AckFrame {
                        sequence,
                        partition,
                        duplicate: ack.duplicate,
                        base_offset: ack.base_offset,
                        last_offset: ack.last_offset,
                        log_time_ms: ack.log_time_ms,
                    }))
                }
                Err(err) => {
                    let code = err.code();
                    shared.metrics.error(code);
                    error_frame(code, Some((partition, sequence)), false, err.to_string())
                }
            },
        };
        // Keep draining after the peer is gone, so appended batches still
        // release their window permits in order.
        if alive && send.write_all(&frame).await.is_err() {
            alive = false;
        }
    }
    if alive {
        let _ = send.finish();
    }
}
