//! QUIC transport settings shared by the node and the adapters.
//!
//! Why larger windows than quinn's defaults: a batch frame is up to 4 MiB
//! and a connection pipelines dozens of them; with the default per-stream
//! window the sender would stall on flow control every few hundred
//! kilobytes, and on loopback throughput is bound by per-datagram work, so
//! fewer, fuller round trips matter.

use std::sync::Arc;
use std::time::Duration;

/// Per-stream receive window, in bytes.
pub const STREAM_RECEIVE_WINDOW_BYTES: u32 = 16 * 1024 * 1024;
/// Per-connection receive window, in bytes.
pub const CONNECTION_RECEIVE_WINDOW_BYTES: u32 = 64 * 1024 * 1024;
/// Per-connection send window, in bytes.
pub const CONNECTION_SEND_WINDOW_BYTES: u64 = 64 * 1024 * 1024;
/// Smallest UDP payload size accepted for `udp_payload_bytes_max`.
pub const UDP_PAYLOAD_BYTES_MIN: u16 = 1200;

/// Builds the transport configuration.
pub(crate) fn transport_config(
    bidi_streams_max: u32,
    idle_timeout_ms: u64,
    udp_payload_bytes_max: u16,
) -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.max_concurrent_bidi_streams(quinn::VarInt::from_u32(bidi_streams_max));
    t.max_concurrent_uni_streams(quinn::VarInt::from_u32(0));
    t.stream_receive_window(quinn::VarInt::from_u32(STREAM_RECEIVE_WINDOW_BYTES));
    t.receive_window(quinn::VarInt::from_u32(CONNECTION_RECEIVE_WINDOW_BYTES));
    t.send_window(CONNECTION_SEND_WINDOW_BYTES);
    let idle = quinn::VarInt::from_u64(idle_timeout_ms)
        .ok()
        .map(quinn::IdleTimeout::from);
    t.max_idle_timeout(idle);
    t.keep_alive_interval(Some(Duration::from_millis((idle_timeout_ms / 3).max(100))));
    let upper = udp_payload_bytes_max.max(UDP_PAYLOAD_BYTES_MIN);
    let mut mtu = quinn::MtuDiscoveryConfig::default();
    mtu.upper_bound(upper);
    t.mtu_discovery_config(Some(mtu));
    Arc::new(t)
}
