//! Webhook signatures verify with the documented scheme (HMAC-SHA256 over
//! `"<t>.<body>"`, `Dropline-Signature: t=<unix>,v1=<hex>`), checked by a
//! receiver written from the document; a tampered body, another secret or
//! an old timestamp fail.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use dropline_adapters::delivery::channel::signature::{SignatureError, sign, verify};
use dropline_loadgen::sinks::verify_signature;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const SECRET: &[u8] = b"whsec_test";

#[test]
fn documented_scheme_round_trips_and_rejects_tampering() {
    let body = br#"{"version":"1","type":"shipment.notification","id":"dl-00"}"#;
    let t = 1_750_000_000u64;
    let header = sign(SECRET, t, body);

    // The document's recipe, computed here by hand.
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(header, format!("t={t},v1={hex}"));

    // The independent receiver and the library agree.
    assert!(verify_signature(SECRET, &header, body, t + 10, 300));
    assert_eq!(verify(SECRET, &header, body, t + 10, 300), Ok(()));

    let mut tampered = body.to_vec();
    tampered[5] ^= 1;
    assert!(!verify_signature(SECRET, &header, &tampered, t, 300));
    assert_eq!(
        verify(SECRET, &header, &tampered, t, 300),
        Err(SignatureError::Mismatch)
    );
    assert!(!verify_signature(b"other", &header, body, t, 300));
    assert!(!verify_signature(SECRET, &header, body, t + 301, 300));
    assert!(matches!(
        verify(SECRET, &header, body, t + 301, 300),
        Err(SignatureError::Stale { .. })
    ));
    // Replaying the body with a fresh timestamp but the old signature fails.
    let forged = header.replace(&format!("t={t}"), &format!("t={}", t + 301));
    assert!(!verify_signature(SECRET, &forged, body, t + 301, 300));
}
