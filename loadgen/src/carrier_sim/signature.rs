//! How the simulated carriers sign their webhooks: HMAC-SHA256 of the raw
//! body under the carrier's secret, base64, in a per-carrier header
//! (docs/CARRIERS.md, "Carrier simulator").

use base64::Engine as _;
use dropline_operators::model::Carrier;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Header FedEx puts its webhook signature in.
pub const FEDEX_SIGNATURE_HEADER: &str = "fdx-signature";
/// Header of the configured-secret scheme used for UPS, USPS and DHL.
pub const HMAC_SIGNATURE_HEADER: &str = "x-dropline-signature";

/// The header a carrier's webhook signature travels in.
pub fn signature_header(carrier: Carrier) -> &'static str {
    match carrier {
        Carrier::Fedex => FEDEX_SIGNATURE_HEADER,
        Carrier::Ups | Carrier::Usps | Carrier::Dhl => HMAC_SIGNATURE_HEADER,
    }
}

/// Base64 HMAC-SHA256 of `body` under `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length; new_from_slice cannot fail for it.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}
