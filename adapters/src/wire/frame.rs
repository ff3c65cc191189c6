//! The control frames (Hello, HelloOk, Ack, Error) and whole-frame
//! encoding and decoding.

use super::batch::BatchView;
use super::error::WireError;
use super::follow::{FollowFrame, OrdersFrame};
use super::header::{FrameHeader, FrameType, seal_frame};
use super::{ADAPTER_NAME_BYTES_MAX, ERROR_MESSAGE_BYTES_MAX, FRAME_HEADER_BYTES, TOKEN_BYTES_MAX};
use crate::wire::codes::ErrorCode;

/// Adapter → node, the first frame of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelloFrame {
    /// The adapter's producer id; 0 asks the node to assign one.
    pub producer_id: u64,
    /// The adapter's configured name (1..=64 bytes of UTF-8).
    pub adapter: String,
    /// The adapter's secret token (1..=256 bytes).
    pub token: Vec<u8>,
}

/// Node → adapter: the session is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HelloOkFrame {
    /// The node's id.
    pub node_id: u64,
    /// The producer id the adapter must use (its own, or the assigned one).
    pub producer_id: u64,
    /// Partition count of `carrier-events`.
    pub partitions: u32,
    /// Largest frame body the node accepts, in bytes.
    pub frame_body_bytes_max: u32,
    /// Most unacknowledged batches the node holds per connection.
    pub inflight_batches_max: u32,
}

/// Node → adapter: a batch is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckFrame {
    /// The batch's sequence.
    pub sequence: u64,
    /// The batch's partition.
    pub partition: u32,
    /// The batch was a retry of one already appended: these are the
    /// original offsets.
    pub duplicate: bool,
    /// Offset of the batch's first record.
    pub base_offset: u64,
    /// Offset of the batch's last record.
    pub last_offset: u64,
    /// Log time stamped on the batch, ms since the Unix epoch.
    pub log_time_ms: u64,
}

/// Node → adapter: something was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorFrame {
    /// The numeric code (see [`ErrorCode`]); kept raw so that codes from a
    /// newer node survive decoding.
    pub code: u16,
    /// The batch the error is about, as (partition, sequence), if any.
    pub batch: Option<(u32, u64)>,
    /// After this frame the node closes the stream (or, for a session
    /// error, the connection).
    pub fatal: bool,
    /// Human-readable detail (at most [`ERROR_MESSAGE_BYTES_MAX`] bytes).
    pub message: String,
}

impl ErrorFrame {
    /// The code, if this build knows it.
    pub fn error_code(&self) -> Option<ErrorCode> {
        ErrorCode::from_u16(self.code)
    }
}

/// A decoded frame. Batches borrow the receive buffer.
#[derive(Debug, Clone)]
pub enum Frame<'a> {
    /// See [`HelloFrame`].
    Hello(HelloFrame),
    /// See [`HelloOkFrame`].
    HelloOk(HelloOkFrame),
    /// A batch, read in place.
    Batch(BatchView<'a>),
    /// See [`AckFrame`].
    Ack(AckFrame),
    /// See [`ErrorFrame`].
    Error(ErrorFrame),
    /// See [`FollowFrame`].
    Follow(FollowFrame),
    /// See [`OrdersFrame`].
    Orders(OrdersFrame),
}

const ACK_FLAG_DUPLICATE: u32 = 1;
const ERROR_FLAG_BATCH: u16 = 1;
const ERROR_FLAG_FATAL: u16 = 2;

/// A bounds-checked cursor over a body.
pub(super) struct Reader<'a> {
    body: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }
    pub(super) fn i64(&mut self) -> Result<i64, WireError> {
        Ok(self.u64()? as i64)
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.body.len())
            .ok_or(WireError::Truncated {
                needed: (self.at as u64).saturating_add(n as u64),
                available: self.body.len() as u64,
            })?;
        let s = &self.body[self.at..end];
        self.at = end;
        Ok(s)
    }
    pub(super) fn u16(&mut self) -> Result<u16, WireError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    pub(super) fn u32(&mut self) -> Result<u32, WireError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub(super) fn u64(&mut self) -> Result<u64, WireError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn bytes16(
        &mut self,
        field: &'static str,
        max: usize,
        min: usize,
    ) -> Result<&'a [u8], WireError> {
        let n = usize::from(self.u16()?);
        if n > max || n < min {
            return Err(WireError::InvalidField {
                field,
                value: n as u64,
            });
        }
        self.take(n)
    }
    pub(super) fn text16(
        &mut self,
        field: &'static str,
        max: usize,
        min: usize,
    ) -> Result<String, WireError> {
        let b = self.bytes16(field, max, min)?;
        std::str::from_utf8(b)
            .map(str::to_string)
            .map_err(|_| WireError::InvalidUtf8 { field })
    }
    fn end(&self, frame_type: FrameType) -> Result<(), WireError> {
        if self.at == self.body.len() {
            Ok(())
        } else {
            Err(WireError::TrailingBytes {
                frame_type: frame_type as u8,
                bytes: (self.body.len() - self.at) as u64,
            })
        }
    }
}

impl<'a> Frame<'a> {
    /// The frame's type.
    pub fn frame_type(&self) -> FrameType {
        match self {
            Frame::Hello(_) => FrameType::Hello,
            Frame::HelloOk(_) => FrameType::HelloOk,
            Frame::Batch(_) => FrameType::Batch,
            Frame::Ack(_) => FrameType::Ack,
            Frame::Error(_) => FrameType::Error,
            Frame::Follow(_) => FrameType::Follow,
            Frame::Orders(_) => FrameType::Orders,
        }
    }

    /// Decodes a body whose header has been parsed and verified.
    pub fn decode_body(frame_type: FrameType, body: &'a [u8]) -> Result<Frame<'a>, WireError> {
        let mut r = Reader { body, at: 0 };
        let frame = match frame_type {
            FrameType::Batch => return BatchView::parse(body).map(Frame::Batch),
            FrameType::Follow => Frame::Follow(FollowFrame::decode(&mut r)?),
            FrameType::Orders => Frame::Orders(OrdersFrame::decode(&mut r)?),
            FrameType::Hello => {
                let producer_id = r.u64()?;
                let adapter = r.text16("adapter name length", ADAPTER_NAME_BYTES_MAX, 1)?;
                let token = r.bytes16("token length", TOKEN_BYTES_MAX, 1)?.to_vec();
                Frame::Hello(HelloFrame {
                    producer_id,
                    adapter,
                    token,
                })
            }
            FrameType::HelloOk => {
                let node_id = r.u64()?;
                let producer_id = r.u64()?;
                let partitions = r.u32()?;
                let frame_body_bytes_max = r.u32()?;
                let inflight_batches_max = r.u32()?;
                let reserved = r.u32()?;
                if reserved != 0 {
                    return Err(WireError::ReservedNotZero {
                        field: "hello_ok reserved",
                        value: u64::from(reserved),
                    });
                }
                if partitions == 0 {
                    return Err(WireError::InvalidField {
                        field: "partitions",
                        value: 0,
                    });
                }
                Frame::HelloOk(HelloOkFrame {
                    node_id,
                    producer_id,
                    partitions,
                    frame_body_bytes_max,
                    inflight_batches_max,
                })
            }
            FrameType::Ack => {
                let sequence = r.u64()?;
                let partition = r.u32()?;
                let flags = r.u32()?;
                if flags & !ACK_FLAG_DUPLICATE != 0 {
                    return Err(WireError::ReservedNotZero {
                        field: "ack flags",
                        value: u64::from(flags),
                    });
                }
                Frame::Ack(AckFrame {
                    sequence,
                    partition,
                    duplicate: flags & ACK_FLAG_DUPLICATE != 0,
                    base_offset: r.u64()?,
                    last_offset: r.u64()?,
                    log_time_ms: r.u64()?,
                })
            }
            FrameType::Error => {
                let code = r.u16()?;
                let flags = r.u16()?;
                if flags & !(ERROR_FLAG_BATCH | ERROR_FLAG_FATAL) != 0 {
                    return Err(WireError::ReservedNotZero {
                        field: "error flags",
                        value: u64::from(flags),
                    });
                }
                let partition = r.u32()?;
                let sequence = r.u64()?;
                let message = r.text16("error message length", ERROR_MESSAGE_BYTES_MAX, 0)?;
                Frame::Error(ErrorFrame {
                    code,
                    batch: (flags & ERROR_FLAG_BATCH != 0).then_some((partition, sequence)),
                    fatal: flags & ERROR_FLAG_FATAL != 0,
                    message,
                })
            }
        };
        r.end(frame_type)?;
        Ok(frame)
    }

    /// Decodes one whole frame from the front of `bytes`; returns it and
    /// the number of bytes it used.
    pub fn decode(bytes: &'a [u8], body_bytes_max: usize) -> Result<(Frame<'a>, usize), WireError> {
        let header: &[u8; FRAME_HEADER_BYTES] = bytes
            .get(..FRAME_HEADER_BYTES)
            .and_then(|h| h.try_into().ok())
            .ok_or(WireError::Truncated {
                needed: FRAME_HEADER_BYTES as u64,
                available: bytes.len() as u64,
            })?;
        let parsed = FrameHeader::parse(header, body_bytes_max)?;
        let total = FRAME_HEADER_BYTES + parsed.body_bytes as usize;
        let body = bytes
            .get(FRAME_HEADER_BYTES..total)
            .ok_or(WireError::Truncated {
                needed: total as u64,
                available: bytes.len() as u64,
            })?;
        parsed.verify_body(header, body)?;
        Ok((Frame::decode_body(parsed.frame_type, body)?, total))
    }
}

fn put_bytes16(out: &mut Vec<u8>, bytes: &[u8], max: usize) {
    let n = bytes.len().min(max);
    // `max` is at most u16::MAX for every caller.
    out.extend_from_slice(&u16::try_from(n).unwrap_or(u16::MAX).to_le_bytes());
    out.extend_from_slice(&bytes[..n]);
}

/// Encodes a control frame (Hello, HelloOk, Ack, Error, Follow, Orders)
/// with its header.
/// Batches are built with [`crate::wire::BatchBuilder`]; passing one here
/// re-encodes its records. Over-long text fields are cut to their limits
/// (an error message at a UTF-8 boundary).
pub fn encode_frame(frame: &Frame<'_>) -> Vec<u8> {
    let mut out = vec![0u8; FRAME_HEADER_BYTES];
    match frame {
        Frame::Hello(h) => {
            out.extend_from_slice(&h.producer_id.to_le_bytes());
            put_bytes16(&mut out, h.adapter.as_bytes(), ADAPTER_NAME_BYTES_MAX);
            put_bytes16(&mut out, &h.token, TOKEN_BYTES_MAX);
        }
        Frame::HelloOk(h) => {
            for v in [h.node_id, h.producer_id] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            for v in [
                h.partitions,
                h.frame_body_bytes_max,
                h.inflight_batches_max,
                0,
            ] {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        Frame::Batch(b) => {
            let mut builder = crate::wire::BatchBuilder::new();
            for r in b.records() {
                // Records of a parsed view are already within limits.
                let _ = builder.push(r.key, r.value);
            }
            return builder.finish(b.producer_id, b.sequence, b.partition, 0);
        }
        Frame::Ack(a) => {
            out.extend_from_slice(&a.sequence.to_le_bytes());
            out.extend_from_slice(&a.partition.to_le_bytes());
            let flags = if a.duplicate { ACK_FLAG_DUPLICATE } else { 0 };
            out.extend_from_slice(&flags.to_le_bytes());
            for v in [a.base_offset, a.last_offset, a.log_time_ms] {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        Frame::Error(e) => {
            out.extend_from_slice(&e.code.to_le_bytes());
            let mut flags = 0u16;
            if e.batch.is_some() {
                flags |= ERROR_FLAG_BATCH;
            }
            if e.fatal {
                flags |= ERROR_FLAG_FATAL;
            }
            out.extend_from_slice(&flags.to_le_bytes());
            let (partition, sequence) = e.batch.unwrap_or((0, 0));
            out.extend_from_slice(&partition.to_le_bytes());
            out.extend_from_slice(&sequence.to_le_bytes());
            let mut cut = e.message.len().min(ERROR_MESSAGE_BYTES_MAX);
            while !e.message.is_char_boundary(cut) {
                cut -= 1;
            }
            put_bytes16(
                &mut out,
                &e.message.as_bytes()[..cut],
                ERROR_MESSAGE_BYTES_MAX,
            );
        }
        Frame::Follow(f) => return f.encode(),
        Frame::Orders(o) => return o.encode(),
    }
    seal_frame(&mut out, frame.frame_type());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{BatchBuilder, FRAME_BODY_BYTES_MAX, RecordRef};

    fn round_trip(frame: Frame<'_>) {
        let bytes = encode_frame(&frame);
        let (decoded, used) = Frame::decode(&bytes, FRAME_BODY_BYTES_MAX).unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(format!("{decoded:?}"), format!("{frame:?}"));
    }

    #[test]
    fn control_frames_round_trip() {
        round_trip(Frame::Hello(HelloFrame {
            producer_id: 7,
            adapter: "ups-webhooks".into(),
            token: b"s3cret".to_vec(),
        }));
        round_trip(Frame::HelloOk(HelloOkFrame {
            node_id: 1,
            producer_id: 7,
            partitions: 16,
            frame_body_bytes_max: 1 << 22,
            inflight_batches_max: 64,
        }));
        round_trip(Frame::Ack(AckFrame {
            sequence: 9,
            partition: 3,
            duplicate: true,
            base_offset: 100,
            last_offset: 199,
            log_time_ms: 1_700_000_000_000,
        }));
        round_trip(Frame::Error(ErrorFrame {
            code: ErrorCode::WrongPartition.as_u16(),
            batch: Some((3, 9)),
            fatal: false,
            message: "record 4 belongs to partition 2".into(),
        }));
    }

    #[test]
    fn batch_builds_and_reads_in_place() {
        let mut b = BatchBuilder::new();
        b.push(b"1Z1", b"value-one").unwrap();
        b.push(b"1Z2", b"").unwrap();
        assert!(b.push(b"", b"x").is_err(), "empty keys are refused");
        let bytes = b.finish(42, 5, 2, 0);
        assert_eq!(b.records(), 0, "builder is reset");
        let (frame, _) = Frame::decode(&bytes, FRAME_BODY_BYTES_MAX).unwrap();
        let Frame::Batch(view) = frame else {
            panic!("not a batch")
        };
        assert_eq!(
            (view.producer_id, view.sequence, view.partition),
            (42, 5, 2)
        );
        let records: Vec<RecordRef<'_>> = view.records().collect();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].key, b"1Z1");
        assert_eq!(records[0].value, b"value-one");
        assert_eq!(records[1].value, b"");
    }

    #[test]
    fn header_damage_is_typed() {
        let bytes = encode_frame(&Frame::Ack(AckFrame {
            sequence: 1,
            partition: 0,
            duplicate: false,
            base_offset: 0,
            last_offset: 0,
            log_time_ms: 0,
        }));
        let mut bad = bytes.clone();
        bad[0] = b'X';
        assert!(matches!(
            Frame::decode(&bad, 1024),
            Err(WireError::BadMagic { .. })
        ));
        let mut bad = bytes.clone();
        bad[3] = 9;
        assert_eq!(
            Frame::decode(&bad, 1024).unwrap_err(),
            WireError::UnknownVersion { version: 9 }
        );
        let mut bad = bytes.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(
            Frame::decode(&bad, 1024),
            Err(WireError::ChecksumMismatch { .. })
        ));
        assert!(matches!(
            Frame::decode(&bytes[..bytes.len() - 1], 1024),
            Err(WireError::Truncated { .. })
        ));
        assert!(matches!(
            Frame::decode(&bytes, 8),
            Err(WireError::FrameTooLarge {
                body_bytes: 40,
                body_bytes_max: 8
            })
        ));
        let mut bad = bytes;
        bad[4] = 77;
        assert_eq!(
            Frame::decode(&bad, 1024).unwrap_err(),
            WireError::UnknownFrameType { frame_type: 77 }
        );
    }
}
