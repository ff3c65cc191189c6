#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The batch decoder on untrusted bytes: arbitrary input never panics, and
//! any single-byte change to a valid batch is detected. (A cargo-fuzz
//! target for the same property lives in log/fuzz/.)

use dropline_log::*;
use proptest::prelude::*;

/// Makes a valid encoded batch by appending it to a scratch log.
fn valid_batch(records: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let mut c = LogConfig::new(dir.path());
    c.durability = Durability::None;
    let log = Log::open(c).unwrap();
    log.create_topic("t", TopicConfig::new(1)).unwrap();
    let p = log.partition("t", 0).unwrap();
    let recs: Vec<Record<'_>> = records
        .iter()
        .map(|(k, v)| Record { key: k, value: v })
        .collect();
    p.append(&AppendRequest {
        records: &recs,
        producer: Some(ProducerSeq {
            producer_id: 3,
            sequence: 9,
        }),
    })
    .unwrap();
    p.read(0, 1).unwrap()[0].as_bytes().to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_batch(&bytes);
        let _ = BatchPeek::of(&bytes);
    }

    #[test]
    fn arbitrary_bytes_behind_a_valid_header_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..512),
        count in 0u32..20,
        len_delta in 0usize..600,
    ) {
        // A plausible header makes the decoder go past the first checks.
        let mut b = Vec::new();
        b.extend_from_slice(&BATCH_MAGIC);
        b.extend_from_slice(&((BATCH_HEADER_BYTES + len_delta) as u32).to_le_bytes());
        b.extend_from_slice(&[0u8; 16]);
        b.extend_from_slice(&count.to_le_bytes());
        b.resize(BATCH_HEADER_BYTES, 0);
        b.extend_from_slice(&body);
        let _ = decode_batch(&b);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn every_single_byte_change_is_detected(
        records in proptest::collection::vec((proptest::collection::vec(any::<u8>(), 0..20), proptest::collection::vec(any::<u8>(), 0..60)), 1..5),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..40),
    ) {
        let batch = valid_batch(&records);
        let decoded = decode_batch(&batch).unwrap();
        prop_assert_eq!(decoded.record_count() as usize, records.len());
        let got: Vec<(Vec<u8>, Vec<u8>)> = decoded.records().map(|r| (r.key.to_vec(), r.value.to_vec())).collect();
        prop_assert_eq!(&got, &records);
        prop_assert_eq!(decoded.producer(), Some(ProducerSeq { producer_id: 3, sequence: 9 }));
        for (at, x) in flips {
            let mut damaged = batch.clone();
            damaged[at.index(batch.len())] ^= x;
            prop_assert!(decode_batch(&damaged).is_err());
        }
        for cut in [0, 1, BATCH_HEADER_BYTES - 1, BATCH_HEADER_BYTES, batch.len() - 1] {
            prop_assert!(decode_batch(&batch[..cut]).is_err());
        }
    }
}

/// The header peek reads the producer and control flag without the CRC:
/// it still answers on a batch whose body is damaged (which `decode_batch`
/// refuses), and refuses a header that does not parse.
#[test]
fn the_header_peek_reads_producer_and_kind_without_the_crc() {
    let mut batch = valid_batch(&[(b"k".to_vec(), b"value".to_vec())]);
    let peek = BatchPeek::of(&batch).unwrap();
    assert_eq!(
        peek.producer(),
        Some(ProducerSeq {
            producer_id: 3,
            sequence: 9
        })
    );
    assert!(!peek.is_control());
    let last = batch.len() - 1;
    batch[last] ^= 0xff;
    assert!(decode_batch(&batch).is_err());
    assert!(BatchPeek::of(&batch).unwrap().producer().is_some());
    batch[0] = b'X';
    assert!(BatchPeek::of(&batch).is_err());
    assert!(BatchPeek::of(&batch[..10]).is_err());
}
