//! Webhook signature verification: HMAC-SHA256 of the raw body under the
//! carrier's configured secret, base64, in the carrier's header (FedEx:
//! `fdx-signature`; UPS, USPS, DHL: `x-dropline-signature`). See
//! docs/CARRIERS.md, "Carrier simulator", for what is documented by the
//! carriers and what is our own scheme.

use base64::Engine as _;
use dropline_operators::model::Carrier;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Header of FedEx's signature.
pub const FEDEX_SIGNATURE_HEADER: &str = "fdx-signature";
/// Header of the configured-secret scheme (UPS, USPS, DHL).
pub const HMAC_SIGNATURE_HEADER: &str = "x-dropline-signature";

/// The header `carrier`'s signature arrives in.
pub fn signature_header(carrier: Carrier) -> &'static str {
    match carrier {
        Carrier::Fedex => FEDEX_SIGNATURE_HEADER,
        Carrier::Ups | Carrier::Usps | Carrier::Dhl => HMAC_SIGNATURE_HEADER,
    }
}

/// Why a signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No signature header.
    #[error("missing signature header")]
    Missing,
    /// The header is not base64 of 32 bytes.
    #[error("malformed signature header")]
    Malformed,
    /// The HMAC does not match the body.
    #[error("signature does not match the body")]
    Mismatch,
}

impl SignatureError {
    /// A short machine-readable reason.
    pub fn reason(self) -> &'static str {
        match self {
            SignatureError::Missing => "signature_missing",
            SignatureError::Malformed => "signature_malformed",
            SignatureError::Mismatch => "signature_mismatch",
        }
    }
}

/// Checks `header` (the signature header's value) against `body`, in
/// constant time.
pub fn verify(secret: &[u8], body: &[u8], header: Option<&[u8]>) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let given = base64::engine::general_purpose::STANDARD
        .decode(header.trim_ascii())
        .map_err(|_| SignatureError::Malformed)?;
    if given.len() != 32 {
        return Err(SignatureError::Malformed);
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| SignatureError::Mismatch)?;
    mac.update(body);
    mac.verify_slice(&given)
        .map_err(|_| SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_right_signature_only() {
        let body = br#"{"a":1}"#;
        let mut mac = Hmac::<Sha256>::new_from_slice(b"k").unwrap();
        mac.update(body);
        let good = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(verify(b"k", body, Some(good.as_bytes())), Ok(()));
        assert_eq!(
            verify(b"other", body, Some(good.as_bytes())),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"k", b"{}", Some(good.as_bytes())),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(verify(b"k", body, None), Err(SignatureError::Missing));
        assert_eq!(
            verify(b"k", body, Some(b"!!")),
            Err(SignatureError::Malformed)
        );
    }
}
