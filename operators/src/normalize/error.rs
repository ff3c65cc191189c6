//! Why a payload could not be normalized.
//!
//! A normalizer never panics on carrier input and never guesses past a
//! broken payload: it says which carrier, where in the document and why, so
//! an adapter can dead-letter the body with a reason an operator can act on.

use crate::model::Carrier;

/// A payload that could not be turned into canonical events.
#[derive(Debug, thiserror::Error)]
pub enum NormalizeError {
    /// The body is larger than [`super::PAYLOAD_BYTES_MAX`].
    #[error("{carrier}: payload is {bytes} bytes, more than the {max} allowed")]
    TooLarge {
        /// Carrier the payload was read as.
        carrier: Carrier,
        /// Size of the payload.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// The body is not JSON (syntax error or truncated document).
    #[error("{carrier}: not valid JSON at line {line}, column {column}: {reason}")]
    NotJson {
        /// Carrier the payload was read as.
        carrier: Carrier,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What the parser saw.
        reason: String,
    },
    /// The body is JSON but a value has the wrong type (a number where the
    /// carrier sends a string, an object where it sends a list).
    #[error("{carrier}: unexpected JSON shape at line {line}, column {column}: {reason}")]
    Shape {
        /// Carrier the payload was read as.
        carrier: Carrier,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What the parser expected and found.
        reason: String,
    },
    /// The document is none of the shapes accepted for this carrier.
    #[error("{carrier}: unrecognized document, expected {expected}")]
    UnrecognizedEnvelope {
        /// Carrier the payload was read as.
        carrier: Carrier,
        /// The accepted shapes, briefly.
        expected: &'static str,
    },
    /// A field every event needs is absent or empty.
    #[error("{carrier}: missing required field {path}")]
    MissingField {
        /// Carrier the payload was read as.
        carrier: Carrier,
        /// JSON path of the field (`trackResponse.shipment[0].package[1].trackingNumber`).
        path: String,
    },
    /// A field is present but its value cannot be read.
    #[error("{carrier}: invalid value {value:?} at {path}: {reason}")]
    InvalidField {
        /// Carrier the payload was read as.
        carrier: Carrier,
        /// JSON path of the field.
        path: String,
        /// The offending value (truncated to [`super::ERROR_VALUE_CHARS_MAX`] characters).
        value: String,
        /// What was expected.
        reason: &'static str,
    },
    /// The whole response is an error document from the carrier (UPS
    /// `response.errors`, FedEx `errors`, USPS `error`, DHL problem+json).
    #[error("{carrier}: the carrier answered with error {code}: {message}")]
    CarrierError {
        /// Carrier the payload was read as.
        carrier: Carrier,
        /// The carrier's error code (`TV1002`, `TRACKING.TRACKINGNUMBER.NOTFOUND`, `404`).
        code: String,
        /// The carrier's message.
        message: String,
    },
    /// The payload holds more events than [`super::EVENTS_PER_PAYLOAD_MAX`].
    #[error("{carrier}: more than {max} events in one payload")]
    TooManyEvents {
        /// Carrier the payload was read as.
        carrier: Carrier,
        /// The limit.
        max: usize,
    },
    /// Writing JSON lines to the output failed.
    #[error("writing normalized events failed: {source}")]
    Output {
        /// The underlying I/O error.
        #[from]
        source: std::io::Error,
    },
}

impl NormalizeError {
    /// A stable snake_case name for the kind of error, for metrics labels,
    /// dead-letter reasons and tests.
    pub fn kind(&self) -> &'static str {
        match self {
            NormalizeError::TooLarge { .. } => "too_large",
            NormalizeError::NotJson { .. } => "not_json",
            NormalizeError::Shape { .. } => "shape",
            NormalizeError::UnrecognizedEnvelope { .. } => "unrecognized_envelope",
            NormalizeError::MissingField { .. } => "missing_field",
            NormalizeError::InvalidField { .. } => "invalid_field",
            NormalizeError::CarrierError { .. } => "carrier_error",
            NormalizeError::TooManyEvents { .. } => "too_many_events",
            NormalizeError::Output { .. } => "output",
        }
    }

    /// The carrier the payload was read as, if the error is about a payload.
    pub fn carrier(&self) -> Option<Carrier> {
        match self {
            NormalizeError::TooLarge { carrier, .. }
            | NormalizeError::NotJson { carrier, .. }
            | NormalizeError::Shape { carrier, .. }
            | NormalizeError::UnrecognizedEnvelope { carrier, .. }
            | NormalizeError::MissingField { carrier, .. }
            | NormalizeError::InvalidField { carrier, .. }
            | NormalizeError::CarrierError { carrier, .. }
            | NormalizeError::TooManyEvents { carrier, .. } => Some(*carrier),
            NormalizeError::Output { .. } => None,
        }
    }

    /// Maps a serde_json error to `NotJson` or `Shape`.
    pub(crate) fn from_json(carrier: Carrier, err: &serde_json::Error) -> NormalizeError {
        let (line, column) = (err.line(), err.column());
        // The message without serde_json's " at line L column C" suffix,
        // which the structured fields already carry.
        let full = err.to_string();
        let reason = match full.rfind(" at line ") {
            Some(at) => full[..at].to_owned(),
            None => full,
        };
        match err.classify() {
            serde_json::error::Category::Data => NormalizeError::Shape {
                carrier,
                line,
                column,
                reason,
            },
            _ => NormalizeError::NotJson {
                carrier,
                line,
                column,
                reason,
            },
        }
    }

    /// An `InvalidField` with the value truncated for the message.
    pub(crate) fn invalid(
        carrier: Carrier,
        path: String,
        value: &str,
        reason: &'static str,
    ) -> NormalizeError {
        NormalizeError::InvalidField {
            carrier,
            path,
            value: value.chars().take(super::ERROR_VALUE_CHARS_MAX).collect(),
            reason,
        }
    }
}
