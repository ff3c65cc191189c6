//! Reading and writing whole frames on QUIC streams, shared by the node and
//! the client.
//!
//! Why the header is read first and checked before the body: a peer that
//! declares a 4 GiB body must be refused without a byte of it being
//! buffered.

use quinn::{ReadExactError, RecvStream};

use crate::wire::{FRAME_HEADER_BYTES, FrameHeader, WireError};

/// Why a frame could not be read.
#[derive(Debug)]
pub(crate) enum ReadFailure {
    /// The bytes are not a valid frame. `received` counts the bytes of the
    /// frame that were read (the header and as much body as arrived);
    /// `framing_intact` says whether the next frame can still be found
    /// (only a checksum mismatch leaves the framing usable).
    Wire {
        err: WireError,
        received: usize,
        framing_intact: bool,
    },
    /// The stream or connection failed.
    Stream,
}

/// Reads one frame into `header` and `body`. `Ok(None)` when the stream
/// ended cleanly between frames.
pub(crate) async fn read_frame(
    recv: &mut RecvStream,
    header: &mut [u8; FRAME_HEADER_BYTES],
    body: &mut Vec<u8>,
    body_bytes_max: usize,
) -> Result<Option<FrameHeader>, ReadFailure> {
    match recv.read_exact(header).await {
        Ok(()) => {}
        Err(ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(ReadExactError::FinishedEarly(n)) => {
            return Err(ReadFailure::Wire {
                err: WireError::Truncated {
                    needed: FRAME_HEADER_BYTES as u64,
                    available: n as u64,
                },
                received: n,
                framing_intact: false,
            });
        }
        Err(ReadExactError::ReadError(_)) => return Err(ReadFailure::Stream),
    }
    let parsed = FrameHeader::parse(header, body_bytes_max).map_err(|err| ReadFailure::Wire {
        err,
        received: FRAME_HEADER_BYTES,
        framing_intact: false,
    })?;
    let len = parsed.body_bytes as usize;
    body.clear();
    body.resize(len, 0);
    match recv.read_exact(body).await {
        Ok(()) => {}
        Err(ReadExactError::FinishedEarly(n)) => {
            body.truncate(n);
            return Err(ReadFailure::Wire {
                err: WireError::Truncated {
                    needed: (FRAME_HEADER_BYTES + len) as u64,
                    available: (FRAME_HEADER_BYTES + n) as u64,
                },
                received: FRAME_HEADER_BYTES + n,
                framing_intact: false,
            });
        }
        Err(ReadExactError::ReadError(_)) => return Err(ReadFailure::Stream),
    }
    parsed
        .verify_body(header, body)
        .map_err(|err| ReadFailure::Wire {
            err,
            received: FRAME_HEADER_BYTES + len,
            framing_intact: true,
        })?;
    Ok(Some(parsed))
}
