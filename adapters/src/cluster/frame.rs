//! The peer frame: every Raft message for one peer produced in one turn of
//! the driver, in one length-prefixed, checksummed frame (layout in
//! docs/FORMAT.md, "Peer frame").
//!
//! Header (16 bytes, little-endian): magic `DLPR`, version u8 (1), flags u8
//! (0), reserved u16 (0), body_bytes u32, CRC32C of the body u32. Body:
//! count u32, then per message: group (partition) u32, message_bytes u32,
//! the raft-rs `eraftpb::Message` in protobuf encoding.

use protobuf::Message as _;
use raft::eraftpb::Message;

/// First bytes of every peer frame.
pub const PEER_FRAME_MAGIC: &[u8; 4] = b"DLPR";
/// The peer frame version this build writes and reads.
pub const PEER_FRAME_VERSION: u8 = 1;
/// Header bytes before the body.
pub const PEER_FRAME_HEADER_BYTES: usize = 16;
/// The largest body accepted (a turn's messages to one peer; each append
/// message is bounded by the replicas' `message_bytes_max`).
pub const PEER_FRAME_BODY_BYTES_MAX: usize = 256 << 20;

/// Why a peer frame was refused. The connection that carried it is closed
/// with [`PeerFrameError::close_code`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerFrameError {
    /// The frame does not start with `DLPR`.
    #[error("bad magic {got:02x?}")]
    BadMagic {
        /// The first four bytes.
        got: [u8; 4],
    },
    /// An unknown version.
    #[error("unknown peer frame version {got}")]
    UnknownVersion {
        /// Version byte.
        got: u8,
    },
    /// Flags or reserved bits set.
    #[error("reserved header bits set")]
    ReservedNotZero,
    /// The declared body is larger than accepted.
    #[error("body of {bytes} bytes exceeds {max}")]
    TooLarge {
        /// Declared size.
        bytes: u64,
        /// The limit.
        max: u64,
    },
    /// The CRC32C does not match the body.
    #[error("checksum mismatch (header {expected:#010x}, body {actual:#010x})")]
    ChecksumMismatch {
        /// Checksum in the header.
        expected: u32,
        /// Checksum of the body received.
        actual: u32,
    },
    /// The stream ended inside a frame.
    #[error("truncated frame")]
    Truncated,
    /// The body's lengths do not add up, or a message is not a valid
    /// protobuf Raft message.
    #[error("malformed body: {what}")]
    Malformed {
        /// What is wrong.
        what: &'static str,
    },
}

impl PeerFrameError {
    /// The QUIC application close code of a connection closed for this
    /// error (stable; listed in docs/FORMAT.md).
    pub fn close_code(&self) -> u32 {
        match self {
            PeerFrameError::BadMagic { .. } => 1,
            PeerFrameError::UnknownVersion { .. } => 2,
            PeerFrameError::ReservedNotZero => 3,
            PeerFrameError::TooLarge { .. } => 4,
            PeerFrameError::ChecksumMismatch { .. } => 5,
            PeerFrameError::Truncated => 6,
            PeerFrameError::Malformed { .. } => 7,
        }
    }
}

/// Encodes `messages` (group id, message) as one frame. A message that
/// does not encode (protobuf refuses it) is left out, as if lost.
pub fn encode_frame(messages: &[(u32, Message)]) -> Vec<u8> {
    let mut body = Vec::with_capacity(4 + messages.len() * 64);
    body.extend_from_slice(&[0; 4]);
    let mut count: u32 = 0;
    for (group, m) in messages {
        let Ok(bytes) = m.write_to_bytes() else {
            continue;
        };
        count += 1;
        body.extend_from_slice(&group.to_le_bytes());
        body.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        body.extend_from_slice(&bytes);
    }
    body[..4].copy_from_slice(&count.to_le_bytes());
    let mut out = Vec::with_capacity(PEER_FRAME_HEADER_BYTES + body.len());
    out.extend_from_slice(PEER_FRAME_MAGIC);
    out.push(PEER_FRAME_VERSION);
    out.push(0);
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// Checks a header; returns the body length and its expected CRC32C.
pub fn decode_header(h: &[u8; PEER_FRAME_HEADER_BYTES]) -> Result<(usize, u32), PeerFrameError> {
    let magic = [h[0], h[1], h[2], h[3]];
    if &magic != PEER_FRAME_MAGIC {
        return Err(PeerFrameError::BadMagic { got: magic });
    }
    if h[4] != PEER_FRAME_VERSION {
        return Err(PeerFrameError::UnknownVersion { got: h[4] });
    }
    if h[5] != 0 || h[6] != 0 || h[7] != 0 {
        return Err(PeerFrameError::ReservedNotZero);
    }
    let len = u32::from_le_bytes([h[8], h[9], h[10], h[11]]) as usize;
    if len > PEER_FRAME_BODY_BYTES_MAX {
        return Err(PeerFrameError::TooLarge {
            bytes: len as u64,
            max: PEER_FRAME_BODY_BYTES_MAX as u64,
        });
    }
    Ok((len, u32::from_le_bytes([h[12], h[13], h[14], h[15]])))
}

fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], PeerFrameError> {
    if b.len() < n {
        return Err(PeerFrameError::Malformed {
            what: "a length runs past the body",
        });
    }
    let (head, rest) = b.split_at(n);
    *b = rest;
    Ok(head)
}

fn u32_at(b: &mut &[u8]) -> Result<u32, PeerFrameError> {
    let s = take(b, 4)?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// Checks a body against its CRC and decodes its messages.
pub fn decode_body(body: &[u8], crc: u32) -> Result<Vec<(u32, Message)>, PeerFrameError> {
    let actual = crc32c::crc32c(body);
    if actual != crc {
        return Err(PeerFrameError::ChecksumMismatch {
            expected: crc,
            actual,
        });
    }
    let mut b = body;
    let count = u32_at(&mut b)? as usize;
    // Each message takes at least 8 bytes: a count beyond that is a lie.
    if count > b.len() / 8 {
        return Err(PeerFrameError::Malformed {
            what: "message count exceeds the body",
        });
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let group = u32_at(&mut b)?;
        let len = u32_at(&mut b)? as usize;
        let bytes = take(&mut b, len)?;
        let m = Message::parse_from_bytes(bytes).map_err(|_| PeerFrameError::Malformed {
            what: "not a protobuf Raft message",
        })?;
        out.push((group, m));
    }
    if !b.is_empty() {
        return Err(PeerFrameError::Malformed {
            what: "trailing bytes after the last message",
        });
    }
    Ok(out)
}

/// Decodes one whole frame (header and body) held in memory.
pub fn decode_frame(frame: &[u8]) -> Result<Vec<(u32, Message)>, PeerFrameError> {
    let Some(h) = frame.first_chunk::<PEER_FRAME_HEADER_BYTES>() else {
        return Err(PeerFrameError::Truncated);
    };
    let (len, crc) = decode_header(h)?;
    let body = &frame[PEER_FRAME_HEADER_BYTES..];
    if body.len() < len {
        return Err(PeerFrameError::Truncated);
    }
    if body.len() > len {
        return Err(PeerFrameError::Malformed {
            what: "bytes after the frame",
        });
    }
    decode_body(body, crc)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn round_trip_and_every_corruption_is_typed() {
        let mut m = Message::default();
        m.set_msg_type(raft::eraftpb::MessageType::MsgHeartbeat);
        m.from = 1;
        m.to = 2;
        m.term = 7;
        let f = encode_frame(&[(3, m.clone()), (9, m.clone())]);
        let back = decode_frame(&f).unwrap();
        assert_eq!(back, vec![(3, m.clone()), (9, m)]);
        for i in 0..f.len() {
            let mut g = f.clone();
            g[i] ^= 0x40;
            assert!(decode_frame(&g).is_err(), "flip at {i} accepted");
        }
        for n in 0..f.len() {
            assert!(decode_frame(&f[..n]).is_err());
        }
    }
}
