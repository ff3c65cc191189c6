//! Feeds arbitrary bytes to the batch decoder: it must return an error or a
//! batch whose records iterate within bounds, and never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(batch) = dropline_log::decode_batch(data) {
        let mut n = 0u32;
        for r in batch.records() {
            assert!(r.offset >= batch.base_offset() && r.offset <= batch.last_offset());
            assert!(r.log_time_ms >= batch.first_time_ms() && r.log_time_ms <= batch.last_time_ms());
            n += 1;
        }
        assert_eq!(n, batch.record_count());
        assert!(batch.encoded_len() <= data.len());
    }
});
