//! The adapters' side of the orders feed: a QUIC connection to the node's
//! ingest endpoint (the same TLS, ALPN and per-adapter token as the ingest
//! client), a Hello, then one stream that sends a Follow and reads Orders
//! frames for as long as the node keeps it open.
//!
//! Why its own connection: the ingest client's connection is rebuilt on
//! its own schedule (resends, backoff) and carries the spool's producer
//! id; the feed is read at the registration's pace and must not hold up
//! acks, nor be torn down by a batch stream's failure. It authenticates
//! exactly like the ingest client and asks the node for a producer id
//! (0), which it never uses.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use super::config::IngestClientConfig;
use super::error::ClientError;
use super::link::{Connected, hello};
use super::quic_client_config;
use crate::frame_io::{ReadFailure, read_frame};
use crate::wire::{FRAME_BODY_BYTES_MAX, FRAME_HEADER_BYTES, FollowFrame, Frame, OrdersFrame};

/// An open follow stream.
pub struct OrdersStream {
    endpoint: quinn::Endpoint,
    connection: quinn::Connection,
    // Kept open: finishing it is allowed, but an open send side lets the
    // node notice a vanished adapter while it waits for new orders.
    _send: quinn::SendStream,
    recv: quinn::RecvStream,
    header: [u8; FRAME_HEADER_BYTES],
    body: Vec<u8>,
}

impl std::fmt::Debug for OrdersStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrdersStream")
            .field("remote", &self.connection.remote_address())
            .finish_non_exhaustive()
    }
}

/// Connects to the node as `config` says, authenticates and sends
/// `follow`. A refused Hello is [`ClientError::Refused`] with the node's
/// code (e.g. `unauthenticated`).
pub async fn follow_orders(
    config: &IngestClientConfig,
    follow: &FollowFrame,
) -> Result<OrdersStream, ClientError> {
    let client_config = quic_client_config(
        &config.trust,
        2,
        config.idle_timeout_ms,
        config.udp_payload_bytes_max,
    )?;
    let bind: SocketAddr = if config.server_addr.is_ipv6() {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    };
    let endpoint = quinn::Endpoint::client(bind).map_err(|source| ClientError::Io {
        path: "udp socket".into(),
        source,
    })?;
    let unreachable = |reason: String| ClientError::Unreachable {
        addr: config.server_addr,
        reason,
    };
    let attempt = async {
        let (connection, _ok) = match hello(&endpoint, &client_config, config, 0).await {
            Ok(up) => up,
            Err(Connected::Refused(err)) => return Err(err),
            Err(Connected::Failed(reason)) => return Err(unreachable(reason)),
            Err(Connected::Up(_)) => return Err(ClientError::Closed),
        };
        let (mut send, recv) = connection
            .open_bi()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        send.write_all(&follow.encode())
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        Ok((connection, send, recv))
    };
    let limit = Duration::from_millis(config.connect_timeout_ms);
    let (connection, send, recv) = match tokio::time::timeout(limit, attempt).await {
        Ok(r) => r?,
        Err(_) => return Err(unreachable("connect timed out".into())),
    };
    Ok(OrdersStream {
        endpoint,
        connection,
        _send: send,
        recv,
        header: [0u8; FRAME_HEADER_BYTES],
        body: Vec::new(),
    })
}

impl OrdersStream {
    /// The next Orders frame; `Ok(None)` when the node ended the stream
    /// (it is shutting down). An Error frame from the node is
    /// [`ClientError::Refused`] with its code (`cursor_mismatch`,
    /// `orders_unavailable`, ...).
    pub async fn next(&mut self) -> Result<Option<OrdersFrame>, ClientError> {
        let read = read_frame(
            &mut self.recv,
            &mut self.header,
            &mut self.body,
            FRAME_BODY_BYTES_MAX,
        )
        .await;
        match read {
            Ok(None) => Ok(None),
            Err(ReadFailure::Stream) => Err(ClientError::FeedLost),
            Err(ReadFailure::Wire { err, .. }) => Err(ClientError::Wire(err)),
            Ok(Some(h)) => match Frame::decode_body(h.frame_type, &self.body)? {
                Frame::Orders(o) => Ok(Some(o)),
                Frame::Error(e) => Err(ClientError::Refused {
                    code: e.code,
                    message: e.message,
                }),
                other => Err(ClientError::UnexpectedFrame {
                    frame_type: other.frame_type() as u8,
                }),
            },
        }
    }

    /// The body of the last frame read (for inspection: tests assert on
    /// exactly what crossed the wire).
    pub fn last_frame_body(&self) -> &[u8] {
        &self.body
    }

    /// Closes the connection.
    pub fn close(self) {
        self.connection.close(0u32.into(), b"done");
        drop(self.endpoint);
    }
}
