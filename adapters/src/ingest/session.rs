//! One adapter connection: the Hello handshake on the first stream, then
//! one task per batch stream, all sharing the connection's in-flight
//! window.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::auth::authenticate;
use super::metrics::bump;
use super::server::Shared;
use super::sink::{DeadLetter, IngestSink};
use super::stream;
use crate::frame_io::{ReadFailure, read_frame};
use crate::splitmix::SplitMix64;
use crate::wire::{
    ADAPTER_NAME_BYTES_MAX, ErrorCode, ErrorFrame, FRAME_HEADER_BYTES, Frame, HelloOkFrame,
    TOKEN_BYTES_MAX, encode_frame,
};

/// How long a refused connection stays open for the peer to read the
/// Error frame, in ms.
const REFUSAL_FLUSH_MS: u64 = 1_000;

/// Largest Hello body: producer id, two length prefixes, name and token.
const HELLO_BODY_BYTES_MAX: usize = 8 + 2 + ADAPTER_NAME_BYTES_MAX + 2 + TOKEN_BYTES_MAX;

/// What a batch stream needs to know about its session.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) adapter: String,
    pub(crate) producer_id: u64,
    pub(crate) window: Arc<Semaphore>,
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Keeps `payload` as a dead letter (cut to the configured limit) and counts it.
pub(crate) fn keep_dead_letter<S: IngestSink>(
    shared: &Shared<S>,
    code: ErrorCode,
    adapter: &str,
    payload: &[u8],
) {
    let limit = super::config::DEAD_LETTER_PAYLOAD_BYTES_MAX;
    let letter = DeadLetter {
        code,
        adapter,
        received_at_ms: now_ms(),
        input_bytes: payload.len() as u64,
        payload: &payload[..payload.len().min(limit)],
    };
    match shared.sink.dead_letter(&letter) {
        Ok(()) => bump(&shared.metrics.dead_letters, 1),
        Err(err) => {
            bump(&shared.metrics.dead_letter_failures, 1);
            tracing::warn!(%err, code = code.name(), "could not keep a dead letter");
        }
    }
}

pub(crate) fn error_frame(
    code: ErrorCode,
    batch: Option<(u32, u64)>,
    fatal: bool,
    message: String,
) -> Vec<u8> {
    encode_frame(&Frame::Error(ErrorFrame {
        code: code.as_u16(),
        batch,
        fatal,
        message,
    }))
}

struct OpenGuard<'a>(&'a std::sync::atomic::AtomicU64);
impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Runs one connection to its end.
pub(crate) async fn run<S: IngestSink>(shared: Arc<Shared<S>>, incoming: quinn::Incoming) {
    bump(&shared.metrics.connections_accepted, 1);
    bump(&shared.metrics.connections_open, 1);
    let _open = OpenGuard(&shared.metrics.connections_open);
    let Ok(connection) = incoming.await else {
        return;
    };
    let hello_limit = Duration::from_millis(shared.config.hello_timeout_ms);
    let session = match tokio::time::timeout(hello_limit, handshake(&shared, &connection)).await {
        Ok(Handshake::Accepted(session)) => Arc::new(session),
        Ok(Handshake::Gone) => return,
        Ok(Handshake::Refused { mut send, code }) => {
            // Closing right away could discard the queued Error frame; give
            // the peer a bounded moment to read it.
            let _ = send.finish();
            let flush = Duration::from_millis(REFUSAL_FLUSH_MS);
            let _ = tokio::time::timeout(flush, send.stopped()).await;
            connection.close(code.as_u16().into(), b"session refused");
            return;
        }
        Err(_) => {
            shared.metrics.error(ErrorCode::HelloTimeout);
            connection.close(ErrorCode::HelloTimeout.as_u16().into(), b"no hello in time");
            return;
        }
    };
    let mut streams = JoinSet::new();
    let mut shutdown = shared.shutdown.clone();
    loop {
        tokio::select! {
            accepted = connection.accept_bi() => match accepted {
                Ok((send, recv)) => {
                    streams.spawn(stream::run(shared.clone(), session.clone(), send, recv));
                }
                Err(_) => break,
            },
            Some(_) = streams.join_next(), if !streams.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }
    // Stream tasks stop reading at shutdown and drain their acks.
    while streams.join_next().await.is_some() {}
    connection.close(ErrorCode::ShuttingDown.as_u16().into(), b"shutting down");
}

enum Handshake {
    Accepted(Session),
    Refused {
        send: quinn::SendStream,
        code: ErrorCode,
    },
    Gone,
}

/// Reads the Hello on the first stream and answers it.
async fn handshake<S: IngestSink>(shared: &Shared<S>, connection: &quinn::Connection) -> Handshake {
    let Ok((mut send, mut recv)) = connection.accept_bi().await else {
        return Handshake::Gone;
    };
    let mut header = [0u8; FRAME_HEADER_BYTES];
    let mut body = Vec::new();
    let refuse = |code: ErrorCode, message: String| {
        shared.metrics.error(code);
        (code, error_frame(code, None, true, message))
    };
    let reply = match read_frame(&mut recv, &mut header, &mut body, HELLO_BODY_BYTES_MAX).await {
        Ok(Some(h)) => match Frame::decode_body(h.frame_type, &body) {
            Ok(Frame::Hello(hello)) => {
                if authenticate(&shared.config.adapters, &hello.adapter, &hello.token) {
                    let producer_id = if hello.producer_id == 0 {
                        SplitMix64::from_entropy().nonzero_id()
                    } else {
                        hello.producer_id
                    };
                    let ok = encode_frame(&Frame::HelloOk(HelloOkFrame {
                        node_id: shared.config.node_id,
                        producer_id,
                        partitions: shared.sink.partitions(),
                        frame_body_bytes_max: shared.config.frame_body_bytes_max,
                        inflight_batches_max: shared.config.inflight_batches_max,
                    }));
                    if send.write_all(&ok).await.is_err() {
                        return Handshake::Gone;
                    }
                    let _ = send.finish();
                    bump(&shared.metrics.sessions_authenticated, 1);
                    return Handshake::Accepted(Session {
                        adapter: hello.adapter,
                        producer_id,
                        window: Arc::new(Semaphore::new(
                            shared.config.inflight_batches_max as usize,
                        )),
                    });
                }
                // The token itself is never stored: only who tried.
                keep_dead_letter(shared, ErrorCode::Unauthenticated, &hello.adapter, &[]);
                refuse(
                    ErrorCode::Unauthenticated,
                    format!(
                        "adapter {:?} is not accepted with this token",
                        hello.adapter
                    ),
                )
            }
            Ok(other) => refuse(
                ErrorCode::UnexpectedFrame,
                format!("expected Hello, got {:?}", other.frame_type()),
            ),
            Err(err) => {
                let code = ErrorCode::from(&err);
                keep_dead_letter(shared, code, "", &[&header[..], &body[..]].concat());
                refuse(code, err.to_string())
            }
        },
        Ok(None) | Err(ReadFailure::Stream) => return Handshake::Gone,
        Err(ReadFailure::Wire { err, received, .. }) => {
            let code = ErrorCode::from(&err);
            let mut kept = header[..received.min(FRAME_HEADER_BYTES)].to_vec();
            kept.extend_from_slice(
                &body[..body.len().min(received.saturating_sub(FRAME_HEADER_BYTES))],
            );
            keep_dead_letter(shared, code, "", &kept);
            refuse(code, err.to_string())
        }
    };
    let (code, frame) = reply;
    let _ = send.write_all(&frame).await;
    Handshake::Refused { send, code }
}
