//! The fixed 16-byte frame header: magic + version, type, flags, length and
//! CRC32C. It is parsed and checked before any body byte is trusted.

use super::error::WireError;
use super::{FRAME_BODY_BYTES_MAX, FRAME_HEADER_BYTES, WIRE_MAGIC, WIRE_VERSION};

/// The kinds of frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameType {
    /// Adapter → node, first frame of a connection: name, token, producer id.
    Hello = 1,
    /// Node → adapter: the session is accepted.
    HelloOk = 2,
    /// Adapter → node: a batch of records for one partition.
    Batch = 3,
    /// Node → adapter: a batch is durable, with its offsets.
    Ack = 4,
    /// Node → adapter: a request was refused, with a numeric code.
    Error = 5,
    /// Adapter → node, first frame of a follow stream: carriers and cursor.
    Follow = 6,
    /// Node → adapter: orders of one partition and the cursor after them.
    Orders = 7,
}

impl FrameType {
    /// Parses the type byte.
    pub fn from_u8(byte: u8) -> Option<FrameType> {
        match byte {
            1 => Some(FrameType::Hello),
            2 => Some(FrameType::HelloOk),
            3 => Some(FrameType::Batch),
            4 => Some(FrameType::Ack),
            5 => Some(FrameType::Error),
            6 => Some(FrameType::Follow),
            7 => Some(FrameType::Orders),
            _ => None,
        }
    }
}

/// A validated frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// What the body holds.
    pub frame_type: FrameType,
    /// Length of the body that follows the header, in bytes.
    pub body_bytes: u32,
    /// CRC32C over header bytes 0..12 followed by the body.
    pub crc: u32,
}

fn le_u32(bytes: &[u8; FRAME_HEADER_BYTES], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

impl FrameHeader {
    /// Parses and checks a header. `body_bytes_max` is the receiver's limit
    /// (at most [`FRAME_BODY_BYTES_MAX`]); a larger declared body is
    /// [`WireError::FrameTooLarge`] and must not be read.
    pub fn parse(
        bytes: &[u8; FRAME_HEADER_BYTES],
        body_bytes_max: usize,
    ) -> Result<FrameHeader, WireError> {
        if bytes[0..3] != WIRE_MAGIC[0..3] {
            return Err(WireError::BadMagic {
                found: [bytes[0], bytes[1], bytes[2], bytes[3]],
            });
        }
        if bytes[3] != WIRE_VERSION {
            return Err(WireError::UnknownVersion { version: bytes[3] });
        }
        let frame_type = FrameType::from_u8(bytes[4]).ok_or(WireError::UnknownFrameType {
            frame_type: bytes[4],
        })?;
        if bytes[5] != 0 {
            return Err(WireError::ReservedNotZero {
                field: "header flags",
                value: u64::from(bytes[5]),
            });
        }
        let reserved = u16::from_le_bytes([bytes[6], bytes[7]]);
        if reserved != 0 {
            return Err(WireError::ReservedNotZero {
                field: "header reserved",
                value: u64::from(reserved),
            });
        }
        let body_bytes = le_u32(bytes, 8);
        let limit = body_bytes_max.min(FRAME_BODY_BYTES_MAX);
        if body_bytes as usize > limit {
            return Err(WireError::FrameTooLarge {
                body_bytes,
                body_bytes_max: u32::try_from(limit).unwrap_or(u32::MAX),
            });
        }
        Ok(FrameHeader {
            frame_type,
            body_bytes,
            crc: le_u32(bytes, 12),
        })
    }

    /// Checks the body against the header's length and CRC.
    pub fn verify_body(
        &self,
        header: &[u8; FRAME_HEADER_BYTES],
        body: &[u8],
    ) -> Result<(), WireError> {
        if body.len() != self.body_bytes as usize {
            return Err(WireError::Truncated {
                needed: u64::from(self.body_bytes),
                available: body.len() as u64,
            });
        }
        let got = frame_crc(header, body);
        if got != self.crc {
            return Err(WireError::ChecksumMismatch {
                expected: self.crc,
                got,
            });
        }
        Ok(())
    }
}

/// CRC32C of a frame: header bytes 0..12 (everything but the CRC field),
/// then the body.
pub(crate) fn frame_crc(header: &[u8; FRAME_HEADER_BYTES], body: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&header[0..12]), body)
}

/// Writes a header for a body of `body_bytes` bytes whose CRC is `crc`
/// (computed by [`frame_crc`] over the header's first 12 bytes and the body).
pub(crate) fn write_header_prefix(out: &mut [u8], frame_type: FrameType, body_bytes: u32) {
    out[0..4].copy_from_slice(&WIRE_MAGIC);
    out[4] = frame_type as u8;
    out[5] = 0;
    out[6..8].copy_from_slice(&0u16.to_le_bytes());
    out[8..12].copy_from_slice(&body_bytes.to_le_bytes());
}

/// Completes a frame in place: `frame` holds a header placeholder followed
/// by the body; fills in the length and CRC.
pub(crate) fn seal_frame(frame: &mut [u8], frame_type: FrameType) {
    let body_bytes =
        u32::try_from(frame.len().saturating_sub(FRAME_HEADER_BYTES)).unwrap_or(u32::MAX);
    write_header_prefix(frame, frame_type, body_bytes);
    let (head, body) = frame.split_at_mut(FRAME_HEADER_BYTES);
    let crc = crc32c::crc32c_append(crc32c::crc32c(&head[0..12]), body);
    head[12..16].copy_from_slice(&crc.to_le_bytes());
}
