//! Property tests of the ingest wire format: the decoder never panics on
//! arbitrary or damaged bytes, and whatever the builder writes reads back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use dropline_adapters::wire::{
    BatchBuilder, FRAME_BODY_BYTES_MAX, FRAME_HEADER_BYTES, Frame, WIRE_MAGIC, WireError,
};
use proptest::prelude::*;

fn records() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>)>> {
    prop::collection::vec(
        (
            prop::collection::vec(any::<u8>(), 1..40),
            prop::collection::vec(any::<u8>(), 0..300),
        ),
        1..40,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = Frame::decode(&bytes, FRAME_BODY_BYTES_MAX);
    }

    #[test]
    fn arbitrary_bodies_behind_a_valid_header_never_panic(
        frame_type in 0u8..8,
        body in prop::collection::vec(any::<u8>(), 0..2048),
    ) {
        // A correct header and CRC over random bodies reaches the body
        // decoders, which must reject garbage with a typed error.
        let mut bytes = vec![0u8; FRAME_HEADER_BYTES];
        bytes[0..4].copy_from_slice(&WIRE_MAGIC);
        bytes[4] = frame_type;
        bytes[8..12].copy_from_slice(&(body.len() as u32).to_le_bytes());
        let crc = crc32c::crc32c_append(crc32c::crc32c(&bytes[0..12]), &body);
        bytes[12..16].copy_from_slice(&crc.to_le_bytes());
        bytes.extend_from_slice(&body);
        if let Ok((Frame::Batch(view), _)) = Frame::decode(&bytes, FRAME_BODY_BYTES_MAX) {
            prop_assert_eq!(view.records().count() as u32, view.record_count);
        }
    }

    #[test]
    fn batches_round_trip_and_damage_is_detected(
        recs in records(),
        producer in any::<u64>(),
        sequence in any::<u64>(),
        partition in any::<u32>(),
        flip in any::<prop::sample::Index>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut builder = BatchBuilder::new();
        for (k, v) in &recs {
            builder.push(k, v).unwrap();
        }
        let bytes = builder.finish(producer, sequence, partition, 0);
        let (frame, used) = Frame::decode(&bytes, FRAME_BODY_BYTES_MAX).unwrap();
        prop_assert_eq!(used, bytes.len());
        let Frame::Batch(view) = frame else { panic!("not a batch") };
        prop_assert_eq!((view.producer_id, view.sequence, view.partition), (producer, sequence, partition));
        let back: Vec<(Vec<u8>, Vec<u8>)> = view.records().map(|r| (r.key.to_vec(), r.value.to_vec())).collect();
        prop_assert_eq!(&back, &recs);

        // Any single bit flip is caught (by magic, version, type, length or CRC).
        let mut damaged = bytes.clone();
        let i = flip.index(damaged.len());
        damaged[i] ^= 0x10;
        prop_assert!(Frame::decode(&damaged, FRAME_BODY_BYTES_MAX).is_err());

        // Any truncation is a typed Truncated error.
        let n = cut.index(bytes.len());
        let truncated = Frame::decode(&bytes[..n], FRAME_BODY_BYTES_MAX);
        prop_assert!(matches!(truncated, Err(WireError::Truncated { .. })), "{truncated:?}");
    }
}
