//! The compact binary layout shared by output encodings and snapshots:
//! explicit widths, little-endian, strings as a length then bytes. Never
//! `usize` on the wire. Readers return typed errors, never panic.

use super::text::InlineStr;

/// Errors reading an encoded output or snapshot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The bytes ended before the value did.
    #[error("truncated: needed {needed} bytes at offset {offset}, {available} available")]
    Truncated {
        /// Where the read started.
        offset: usize,
        /// Bytes the field needed.
        needed: usize,
        /// Bytes left.
        available: usize,
    },
    /// The version byte is not one this build knows.
    #[error("unknown {what} version {version}")]
    UnknownVersion {
        /// Which encoding.
        what: &'static str,
        /// The version byte found.
        version: u8,
    },
    /// A tag byte does not name a known variant.
    #[error("invalid {field} value {value} at offset {offset}")]
    InvalidTag {
        /// Which field.
        field: &'static str,
        /// The byte found.
        value: u64,
        /// Where.
        offset: usize,
    },
    /// A string is not UTF-8 or does not fit its field.
    #[error("invalid text in {field} at offset {offset}")]
    InvalidText {
        /// Which field.
        field: &'static str,
        /// Where.
        offset: usize,
    },
    /// Bytes were left over after the value.
    #[error("{extra} trailing bytes")]
    Trailing {
        /// How many.
        extra: usize,
    },
}

/// Appends little-endian fields to a buffer.
pub(crate) struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(out: &'a mut Vec<u8>) -> Self {
        Writer { out }
    }
    /// A writer that first makes room for `bytes_max` more bytes, so the
    /// fields of a record of bounded size never reallocate one by one.
    #[inline]
    pub(crate) fn reserving(out: &'a mut Vec<u8>, bytes_max: usize) -> Self {
        out.reserve(bytes_max);
        Writer { out }
    }
    #[inline]
    pub(crate) fn u8(&mut self, v: u8) -> &mut Self {
        self.out.push(v);
        self
    }
    #[inline]
    pub(crate) fn bool(&mut self, v: bool) -> &mut Self {
        self.u8(u8::from(v))
    }
    #[inline]
    pub(crate) fn u16(&mut self, v: u16) -> &mut Self {
        self.out.extend_from_slice(&v.to_le_bytes());
        self
    }
    #[inline]
    pub(crate) fn u32(&mut self, v: u32) -> &mut Self {
        self.out.extend_from_slice(&v.to_le_bytes());
        self
    }
    #[inline]
    pub(crate) fn u64(&mut self, v: u64) -> &mut Self {
        self.out.extend_from_slice(&v.to_le_bytes());
        self
    }
    #[inline]
    pub(crate) fn i64(&mut self, v: i64) -> &mut Self {
        self.out.extend_from_slice(&v.to_le_bytes());
        self
    }
    #[inline]
    pub(crate) fn u128(&mut self, v: u128) -> &mut Self {
        self.out.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// An inline string, encoded exactly as [`Writer::str8`] encodes its
    /// bytes (a length byte, then the text). Why not `str8`: the text is
    /// copied as its whole fixed-size array (a constant-size copy the
    /// compiler inlines, instead of a `memcpy` call of a variable length)
    /// and the bytes past its length are cut off again.
    #[inline]
    pub(crate) fn inline<const N: usize>(&mut self, s: &InlineStr<N>) -> &mut Self {
        let (len, bytes) = s.raw();
        let end = self.out.len() + 1 + usize::from(len);
        self.out.push(len);
        self.out.extend_from_slice(bytes);
        self.out.truncate(end);
        self
    }
    /// A short string: one length byte (callers keep text under 256 bytes).
    #[inline]
    pub(crate) fn str8(&mut self, s: impl AsRef<[u8]>) -> &mut Self {
        let bytes = s.as_ref();
        let len = bytes.len().min(usize::from(u8::MAX));
        self.u8(len as u8);
        self.out.extend_from_slice(&bytes[..len]);
        self
    }
    #[inline]
    pub(crate) fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.out.extend_from_slice(b);
        self
    }
}

/// Reads little-endian fields from a slice.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let available = self.bytes.len() - self.pos;
        if n > available {
            return Err(WireError::Truncated {
                offset: self.pos,
                needed: n,
                available,
            });
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const K: usize>(&mut self) -> Result<[u8; K], WireError> {
        let mut a = [0u8; K];
        a.copy_from_slice(self.take(K)?);
        Ok(a)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }
    pub(crate) fn bool(&mut self, field: &'static str) -> Result<bool, WireError> {
        let offset = self.pos;
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(WireError::InvalidTag {
                field,
                value: u64::from(v),
                offset,
            }),
        }
    }
    pub(crate) fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    pub(crate) fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub(crate) fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    pub(crate) fn i64(&mut self) -> Result<i64, WireError> {
        Ok(i64::from_le_bytes(self.array()?))
    }
    pub(crate) fn u128(&mut self) -> Result<u128, WireError> {
        Ok(u128::from_le_bytes(self.array()?))
    }

    pub(crate) fn str8(&mut self, field: &'static str) -> Result<&'a str, WireError> {
        let offset = self.pos;
        let len = usize::from(self.u8()?);
        let b = self.take(len)?;
        std::str::from_utf8(b).map_err(|_| WireError::InvalidText { field, offset })
    }

    pub(crate) fn inline<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<InlineStr<N>, WireError> {
        let offset = self.pos;
        let s = self.str8(field)?;
        InlineStr::new(s).ok_or(WireError::InvalidText { field, offset })
    }

    /// A tag byte mapped through `parse`.
    pub(crate) fn tag<T>(
        &mut self,
        field: &'static str,
        parse: impl FnOnce(u8) -> Option<T>,
    ) -> Result<T, WireError> {
        let offset = self.pos;
        let v = self.u8()?;
        parse(v).ok_or(WireError::InvalidTag {
            field,
            value: u64::from(v),
            offset,
        })
    }

    /// Fails when bytes remain.
    pub(crate) fn finish(&self) -> Result<(), WireError> {
        let extra = self.bytes.len() - self.pos;
        if extra == 0 {
            Ok(())
        } else {
            Err(WireError::Trailing { extra })
        }
    }

    /// Reads and checks a version byte.
    pub(crate) fn version(&mut self, what: &'static str, known: u8) -> Result<(), WireError> {
        let version = self.u8()?;
        if version == known {
            Ok(())
        } else {
            Err(WireError::UnknownVersion { what, version })
        }
    }
}

/// Byte codes for the model's enums (their `repr(u8)` discriminants).
pub(crate) mod codes {
    use crate::model::{Carrier, Channel, Priority, Status, SubStatus};

    // Each `ALL` lists its enum in discriminant order from 1, so a code
    // indexes it directly; the filter keeps the lookup exact regardless.
    #[inline]
    pub(crate) fn status(v: u8) -> Option<Status> {
        Status::ALL
            .get(usize::from(v).wrapping_sub(1))
            .copied()
            .filter(|s| *s as u8 == v)
    }
    #[inline]
    pub(crate) fn sub_status(v: u8) -> Option<SubStatus> {
        SubStatus::ALL
            .get(usize::from(v))
            .copied()
            .filter(|s| *s as u8 == v)
    }
    #[inline]
    pub(crate) fn carrier(v: u8) -> Option<Carrier> {
        Carrier::ALL
            .get(usize::from(v).wrapping_sub(1))
            .copied()
            .filter(|c| *c as u8 == v)
    }
    pub(crate) fn channel(v: u8) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| *c as u8 == v)
    }
    pub(crate) fn priority(v: u8) -> Option<Priority> {
        Priority::ALL.into_iter().find(|p| *p as u8 == v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let mut buf = Vec::new();
        Writer::new(&mut buf)
            .u8(7)
            .u32(0xdead_beef)
            .i64(-5)
            .str8("héllo")
            .u128(9);
        let mut r = Reader::new(&buf);
        assert_eq!(r.u8().unwrap(), 7);
        assert_eq!(r.u32().unwrap(), 0xdead_beef);
        assert_eq!(r.i64().unwrap(), -5);
        assert_eq!(r.str8("s").unwrap(), "héllo");
        assert_eq!(r.u128().unwrap(), 9);
        r.finish().unwrap();
        let mut short = Reader::new(&buf[..3]);
        short.u8().unwrap();
        assert!(matches!(
            short.u32(),
            Err(WireError::Truncated {
                offset: 1,
                needed: 4,
                available: 2
            })
        ));
    }

    #[test]
    fn enum_codes_round_trip() {
        use crate::model::{Status, SubStatus};
        for s in Status::ALL {
            assert_eq!(codes::status(s as u8), Some(s));
        }
        for s in SubStatus::ALL {
            assert_eq!(codes::sub_status(*s as u8), Some(*s));
        }
        assert_eq!(codes::status(0), None);
        for c in crate::model::Carrier::ALL {
            assert_eq!(codes::carrier(c as u8), Some(c));
        }
        for v in [0u8, 14, 255] {
            assert_eq!(codes::status(v), None, "{v}");
        }
        for v in [0u8, 5, 255] {
            assert_eq!(codes::carrier(v), None, "{v}");
        }
    }
}
