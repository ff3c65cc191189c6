//! Instants as integers (milliseconds since the Unix epoch, UTC) inside
//! Dropline, and as RFC 3339 strings at the JSON edge.

use chrono::{DateTime, SecondsFormat, Utc};

/// Formats epoch milliseconds as RFC 3339 UTC with millisecond precision
/// (`2024-11-22T18:58:00.000Z`). Out-of-range values format as the epoch.
pub fn format_rfc3339_ms(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses an RFC 3339 instant (any offset) into epoch milliseconds.
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// Serde adapter: `i64` epoch milliseconds as an RFC 3339 UTC string.
pub mod rfc3339_ms {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    /// Serializes epoch milliseconds as RFC 3339 UTC.
    pub fn serialize<S: Serializer>(ms: &i64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format_rfc3339_ms(*ms))
    }

    /// Deserializes an RFC 3339 string into epoch milliseconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
        let text = String::deserialize(deserializer)?;
        super::parse_rfc3339_ms(&text)
            .ok_or_else(|| D::Error::custom(format!("not an RFC 3339 instant: {text:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let ms = 1_732_301_880_123;
        let text = format_rfc3339_ms(ms);
        assert_eq!(text, "2024-11-22T18:58:00.123Z");
        assert_eq!(parse_rfc3339_ms(&text), Some(ms));
        assert_eq!(parse_rfc3339_ms("2024-11-22T13:58:00.123-05:00"), Some(ms));
        assert_eq!(parse_rfc3339_ms("2024-11-22T13:58:00"), None);
    }
}
