//! Fixed-capacity strings for outputs and per-shipment text.
//!
//! Intents, views and decisions are produced for most events; carrying their
//! identifiers inline (a length byte and a fixed array) keeps the output
//! buffers free of per-event allocations and makes every output a flat,
//! copyable value. Each capacity is a documented limit: input longer than
//! it is rejected where the text is an identifier, and truncated (at a
//! character boundary) where it is display text.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _};

/// A UTF-8 string of at most `N` bytes (`N` at most 255), stored inline.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct InlineStr<const N: usize> {
    len: u8,
    bytes: [u8; N],
}

/// A tracking number (carriers use at most 34 characters; 40 leaves room).
pub type TrackingNumber = InlineStr<40>;
/// A rule id or template name from the rules file.
pub type RuleText = InlineStr<32>;
/// An order id or buyer id from the storefront.
pub type IdText = InlineStr<64>;
/// A marketplace name.
pub type MarketplaceText = InlineStr<32>;

impl<const N: usize> InlineStr<N> {
    /// Capacity in bytes.
    pub const CAPACITY: usize = N;

    /// The empty string.
    pub const fn empty() -> Self {
        InlineStr {
            len: 0,
            bytes: [0; N],
        }
    }

    /// Copies `text` when it fits, `None` when it is longer than `N` bytes.
    pub fn new(text: &str) -> Option<Self> {
        let src = text.as_bytes();
        if src.len() > N || src.len() > usize::from(u8::MAX) {
            return None;
        }
        let mut bytes = [0u8; N];
        bytes[..src.len()].copy_from_slice(src);
        Some(InlineStr {
            len: u8::try_from(src.len()).ok()?,
            bytes,
        })
    }

    /// Copies `text`, cutting it at the last character boundary that fits.
    pub fn truncated(text: &str) -> Self {
        let mut end = text.len().min(N).min(usize::from(u8::MAX));
        while end > 0 && !text.is_char_boundary(end) {
            end -= 1;
        }
        InlineStr::new(&text[..end]).unwrap_or_else(InlineStr::empty)
    }

    /// Copies bytes that are UTF-8 by construction (taken whole from a
    /// `&str`, like the text arena's blocks), cut to fit like
    /// [`InlineStr::truncated`]. Text that fits is copied without
    /// re-validation; anything else goes through `truncated`.
    #[inline]
    pub(crate) fn from_utf8_bytes(bytes: &[u8]) -> Self {
        if bytes.len() <= N && N <= usize::from(u8::MAX) {
            let mut out = InlineStr::empty();
            out.bytes[..bytes.len()].copy_from_slice(bytes);
            out.len = bytes.len() as u8;
            out
        } else {
            InlineStr::truncated(std::str::from_utf8(bytes).unwrap_or(""))
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Construction only ever copies whole characters of a `&str`, so the
        // bytes are valid UTF-8; the fallback is unreachable in practice.
        std::str::from_utf8(self.as_bytes()).unwrap_or("")
    }

    /// The length byte and the whole backing array (bytes past the length
    /// are zero or stale), for encoders that copy a fixed size.
    #[inline]
    pub(crate) fn raw(&self) -> (u8, &[u8; N]) {
        (self.len, &self.bytes)
    }

    /// The text's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Whether the string is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }
}

impl<const N: usize> Default for InlineStr<N> {
    fn default() -> Self {
        InlineStr::empty()
    }
}

impl<const N: usize> fmt::Debug for InlineStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl<const N: usize> fmt::Display for InlineStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<const N: usize> Serialize for InlineStr<N> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de, const N: usize> Deserialize<'de> for InlineStr<N> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        InlineStr::new(&text)
            .ok_or_else(|| D::Error::custom(format!("text longer than {N} bytes: {text:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_and_rejects() {
        let s = InlineStr::<4>::new("abcd").unwrap();
        assert_eq!(s.as_str(), "abcd");
        assert!(InlineStr::<4>::new("abcde").is_none());
        assert!(InlineStr::<4>::new("").unwrap().is_empty());
    }

    #[test]
    fn truncates_at_char_boundary() {
        // "é" is two bytes: cutting at 4 would split it.
        assert_eq!(InlineStr::<4>::truncated("abcé").as_str(), "abc");
        assert_eq!(InlineStr::<5>::truncated("abcé").as_str(), "abcé");
    }

    #[test]
    fn json_is_a_plain_string() {
        let s = TrackingNumber::new("1Z999").unwrap();
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"1Z999\"");
        let back: TrackingNumber = serde_json::from_str("\"1Z999\"").unwrap();
        assert_eq!(back, s);
        assert!(serde_json::from_str::<InlineStr<2>>("\"abc\"").is_err());
    }
}
