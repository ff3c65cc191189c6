//! Bad input never takes the node down: malformed frames, wrong tokens,
//! oversized and truncated batches and unknown versions get typed errors,
//! are counted and dead-lettered, while another adapter keeps being served.
//! Also: a retried batch is answered with its original offsets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use dropline_adapters::client::{IngestClient, ServerTrust, quic_client_config};
use dropline_adapters::ingest::{IngestSink, MemorySink, ServerHandle};
use dropline_adapters::wire::{
    AckFrame, BatchBuilder, ErrorCode, ErrorFrame, FRAME_BODY_BYTES_MAX, FRAME_HEADER_BYTES, Frame,
    HelloFrame, encode_frame,
};
use dropline_operators::model::partition_for;

/// A raw wire-level session for sending hand-made frames.
struct Raw {
    connection: quinn::Connection,
    _endpoint: quinn::Endpoint,
    producer_id: u64,
    partitions: u32,
}

async fn raw_connect(
    server: &ServerHandle,
    adapter: &str,
    token: &[u8],
) -> Result<Raw, ErrorFrame> {
    let trust = ServerTrust::PinnedSha256(server.fingerprint_sha256().to_string());
    let config = quic_client_config(&trust, 8, 10_000, 1452).unwrap();
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let connection = endpoint
        .connect_with(config, server.local_addr(), "dropline-node")
        .unwrap()
        .await
        .unwrap();
    let (mut send, mut recv) = connection.open_bi().await.unwrap();
    let hello = encode_frame(&Frame::Hello(HelloFrame {
        producer_id: 0,
        adapter: adapter.into(),
        token: token.to_vec(),
    }));
    send.write_all(&hello).await.unwrap();
    send.finish().unwrap();
    let reply = recv.read_to_end(1 << 16).await.unwrap();
    match Frame::decode(&reply, FRAME_BODY_BYTES_MAX).unwrap().0 {
        Frame::HelloOk(ok) => Ok(Raw {
            connection,
            _endpoint: endpoint,
            producer_id: ok.producer_id,
            partitions: ok.partitions,
        }),
        Frame::Error(e) => Err(e),
        other => panic!("unexpected {other:?}"),
    }
}

/// Sends `bytes` on a fresh stream, finishes it, and returns every reply.
async fn exchange(raw: &Raw, bytes: &[u8]) -> Vec<Frame<'static>> {
    let (mut send, mut recv) = raw.connection.open_bi().await.unwrap();
    send.write_all(bytes).await.unwrap();
    send.finish().unwrap();
    let replies = recv.read_to_end(1 << 20).await.unwrap_or_default();
    let replies: &'static [u8] = Box::leak(replies.into_boxed_slice());
    let mut out = Vec::new();
    let mut at = 0;
    while at < replies.len() {
        let (frame, used) = Frame::decode(&replies[at..], FRAME_BODY_BYTES_MAX).unwrap();
        out.push(frame);
        at += used;
    }
    out
}

fn error_codes(frames: &[Frame<'_>]) -> Vec<ErrorCode> {
    frames
        .iter()
        .filter_map(|f| match f {
            Frame::Error(e) => e.error_code(),
            _ => None,
        })
        .collect()
}

fn acks(frames: &[Frame<'_>]) -> Vec<AckFrame> {
    frames
        .iter()
        .filter_map(|f| match f {
            Frame::Ack(a) => Some(*a),
            _ => None,
        })
        .collect()
}

/// A valid batch of events `from..to` that all hash to one partition.
fn batch_for(raw: &Raw, sequence: u64, events: &[u64]) -> (u32, Vec<u8>) {
    let mut b = BatchBuilder::new();
    let partition = partition_for(event(events[0]).tracking_number.as_bytes(), raw.partitions);
    for i in events {
        let e = event(*i);
        assert_eq!(
            partition_for(e.tracking_number.as_bytes(), raw.partitions),
            partition
        );
        b.push(e.tracking_number.as_bytes(), &e.encode()).unwrap();
    }
    (partition, b.finish(raw.producer_id, sequence, partition, 0))
}

/// Event indices that hash to `partition`.
fn events_in(partition: u32, partitions: u32, n: usize) -> Vec<u64> {
    (1_000_000..)
        .filter(|i| partition_for(event(*i).tracking_number.as_bytes(), partitions) == partition)
        .take(n)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_returns_original_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(MemorySink::new(4));
    let server = start(dir.path(), loopback(), sink.clone()).await;
    let raw = raw_connect(&server, "adapter-a", TOKEN_A).await.unwrap();
    let (p, first) = batch_for(&raw, 1, &events_in(1, 4, 3));
    let (_, second) = batch_for(&raw, 2, &events_in(1, 4, 6)[3..]);
    let replies = exchange(&raw, &[first.clone(), second, first].concat()).await;
    let acks = acks(&replies);
    assert_eq!(acks.len(), 3, "{replies:?}");
    assert_eq!(
        (acks[0].partition, acks[0].sequence, acks[0].duplicate),
        (p, 1, false)
    );
    assert_eq!((acks[0].base_offset, acks[0].last_offset), (0, 2));
    assert_eq!((acks[1].base_offset, acks[1].last_offset), (3, 5));
    assert!(acks[2].duplicate);
    assert_eq!(
        (acks[2].base_offset, acks[2].last_offset),
        (0, 2),
        "the retry gets the original offsets"
    );
    assert_eq!(sink.records(p).len(), 6);
    assert_eq!(server.metrics().duplicate_batches, 1);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_typed_counted_dead_lettered_and_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(MemorySink::new(4));
    let server = start(dir.path(), loopback(), sink.clone()).await;

    // A well-behaved adapter is connected throughout.
    let good = IngestClient::connect(client_config(&server, "adapter-b", TOKEN_B))
        .await
        .unwrap();
    for i in 0..500 {
        good.send(&event(i)).await.unwrap();
    }

    // Wrong token: refused with a typed error, the connection closed.
    let refused = raw_connect(&server, "adapter-a", b"not-the-token")
        .await
        .err()
        .unwrap();
    assert_eq!(refused.error_code(), Some(ErrorCode::Unauthenticated));
    assert!(refused.fatal);
    let refused = raw_connect(&server, "nobody", TOKEN_A).await.err().unwrap();
    assert_eq!(refused.error_code(), Some(ErrorCode::Unauthenticated));

    let raw = raw_connect(&server, "adapter-a", TOKEN_A).await.unwrap();
    let evs = events_in(2, raw.partitions, 4);
    let (_, valid) = batch_for(&raw, 1, &evs[..2]);

    // Bad checksum: rejected, but the framing holds, so the next (valid)
    // batch on the same stream is still appended.
    let mut bad_crc = valid.clone();
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0xff;
    let replies = exchange(&raw, &[bad_crc, valid.clone()].concat()).await;
    assert_eq!(error_codes(&replies), vec![ErrorCode::ChecksumMismatch]);
    assert_eq!(acks(&replies).len(), 1);

    // Unknown version: fatal for the stream.
    let mut v9 = valid.clone();
    v9[3] = 9;
    assert_eq!(
        error_codes(&exchange(&raw, &v9).await),
        vec![ErrorCode::UnknownVersion]
    );

    // Bad magic.
    let mut junk = valid.clone();
    junk[0..3].copy_from_slice(b"GET");
    assert_eq!(
        error_codes(&exchange(&raw, &junk).await),
        vec![ErrorCode::BadMagic]
    );

    // Oversized: the header declares more than the node accepts; refused
    // before the body is read.
    let mut oversized = valid[..FRAME_HEADER_BYTES].to_vec();
    oversized[8..12].copy_from_slice(&(FRAME_BODY_BYTES_MAX as u32 + 1).to_le_bytes());
    assert_eq!(
        error_codes(&exchange(&raw, &oversized).await),
        vec![ErrorCode::FrameTooLarge]
    );

    // Truncated: the stream ends in the middle of a batch.
    let truncated = &valid[..valid.len() - 7];
    assert_eq!(
        error_codes(&exchange(&raw, truncated).await),
        vec![ErrorCode::Truncated]
    );

    // Internally truncated: a correct CRC over a body whose record runs
    // past its end.
    let mut inner = BatchBuilder::new();
    inner.push(b"1Z0000000000000002", b"x").unwrap();
    let mut short = inner.finish(raw.producer_id, 2, 2, 0);
    let rec_len_at = FRAME_HEADER_BYTES + 24 + 2;
    short[rec_len_at..rec_len_at + 4].copy_from_slice(&100u32.to_le_bytes());
    let body_len = short.len() - FRAME_HEADER_BYTES;
    let crc = crc32c::crc32c_append(crc32c::crc32c(&short[0..12]), &short[FRAME_HEADER_BYTES..]);
    short[12..16].copy_from_slice(&crc.to_le_bytes());
    assert_eq!(body_len, 24 + 6 + 18 + 1);
    assert_eq!(
        error_codes(&exchange(&raw, &short).await),
        vec![ErrorCode::MalformedBody]
    );

    // A record whose key hashes elsewhere, and a value that is no event.
    let other = events_in(3, raw.partitions, 1)[0];
    let mut wrong = BatchBuilder::new();
    let e = event(other);
    wrong
        .push(e.tracking_number.as_bytes(), &e.encode())
        .unwrap();
    let wrong = wrong.finish(raw.producer_id, 2, 2, 0);
    assert_eq!(
        error_codes(&exchange(&raw, &wrong).await),
        vec![ErrorCode::WrongPartition]
    );
    let mut garbage = BatchBuilder::new();
    garbage
        .push(
            event(evs[2]).tracking_number.as_bytes(),
            b"\x01not an archive",
        )
        .unwrap();
    let garbage = garbage.finish(raw.producer_id, 2, 2, 0);
    assert_eq!(
        error_codes(&exchange(&raw, &garbage).await),
        vec![ErrorCode::InvalidEvent]
    );

    // The session still works after all of that.
    let (_, next) = batch_for(&raw, 2, &evs[2..4]);
    assert_eq!(acks(&exchange(&raw, &next).await).len(), 1);

    // The good adapter was served throughout.
    for i in 500..1_000 {
        good.send(&event(i)).await.unwrap();
    }
    good.flush().await.unwrap();
    assert_eq!(good.metrics().events_acked, 1_000);

    let m = server.metrics();
    for code in [
        ErrorCode::Unauthenticated,
        ErrorCode::ChecksumMismatch,
        ErrorCode::UnknownVersion,
        ErrorCode::BadMagic,
        ErrorCode::FrameTooLarge,
        ErrorCode::Truncated,
        ErrorCode::MalformedBody,
        ErrorCode::WrongPartition,
        ErrorCode::InvalidEvent,
    ] {
        assert!(m.errors_with(code) >= 1, "{code:?} counted: {m:?}");
    }
    assert_eq!(m.errors_with(ErrorCode::Unauthenticated), 2);
    let letters = sink.dead_letters();
    assert_eq!(m.dead_letters, letters.len() as u64);
    let kept = |code| {
        letters
            .iter()
            .find(|l| l.code == code)
            .unwrap_or_else(|| panic!("{code:?} kept"))
    };
    assert_eq!(
        kept(ErrorCode::ChecksumMismatch).payload.len(),
        valid.len(),
        "whole frame kept"
    );
    assert_eq!(
        kept(ErrorCode::Truncated).payload,
        truncated,
        "what arrived is kept"
    );
    assert_eq!(
        kept(ErrorCode::FrameTooLarge).payload.len(),
        FRAME_HEADER_BYTES
    );
    assert_eq!(kept(ErrorCode::InvalidEvent).adapter, "adapter-a");
    assert!(
        kept(ErrorCode::Unauthenticated).payload.is_empty(),
        "tokens are never stored"
    );

    // Partition 2 holds exactly the four valid events.
    let stored: Vec<Vec<u8>> = sink.records(2).into_iter().map(|r| r.key).collect();
    let expected: Vec<Vec<u8>> = evs
        .iter()
        .map(|i| event(*i).tracking_number.into_bytes())
        .collect();
    let from_raw: Vec<Vec<u8>> = stored
        .into_iter()
        .filter(|k| expected.contains(k))
        .collect();
    assert_eq!(from_raw, expected);
    assert_eq!(sink.partitions(), 4);
    good.close().await.unwrap();
    server.shutdown().await;
}
