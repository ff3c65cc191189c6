//! The orders feed: an adapter asks to follow the node's `orders` topic for
//! its carriers from a cursor it remembers (Follow), and the node streams
//! what an adapter needs to start polling (Orders frames).
//!
//! Why a projection and not the order records: an order in the log holds
//! the buyer's contacts (sealed) and other personal data. An adapter only
//! needs the tracking number, the carrier, the drop flag and the promised
//! window, so [`OrderEntry`] has exactly those fields and nothing else can
//! cross the wire: the encoder has no place to put a contact.
//!
//! Why the cursor travels in every frame: `next_offset` says where the
//! partition resumes, including past records the adapter is not given
//! (other carriers, ticks, undecodable values), so an adapter that saves
//! it after registering a frame's entries never misses one and never
//! starts over from zero.

use super::error::WireError;
use super::frame::Reader;
use super::header::{FrameType, seal_frame};
use super::{FRAME_HEADER_BYTES, TRACKING_NUMBER_BYTES_MAX};

/// Most entries in one Orders frame (and the largest `entries_max` a
/// Follow may ask for).
pub const ORDER_ENTRIES_MAX: u32 = 4_096;

/// Most partitions a Follow cursor may name.
pub const FOLLOW_PARTITIONS_MAX: u32 = 4_096;

/// Bits of the carrier mask that name a carrier in this version (codes 1
/// to 4: ups, fedex, usps, dhl).
pub const CARRIER_MASK_KNOWN: u32 = 0b1111;

/// Size of an Orders body's fixed part.
pub const ORDERS_BODY_FIXED_BYTES: usize = 32;

/// Size of an entry's fixed part (before the tracking number).
pub const ORDER_ENTRY_FIXED_BYTES: usize = 28;

const ENTRY_FLAG_DROP: u8 = 1;

/// Adapter → node, first frame of a follow stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowFrame {
    /// Bit `c - 1` asks for carrier code `c` (see [`CARRIER_MASK_KNOWN`]).
    pub carriers_mask: u32,
    /// Most entries per Orders frame (1..=[`ORDER_ENTRIES_MAX`]).
    pub entries_max: u32,
    /// Next offset to read per partition of `orders`; empty means from
    /// each partition's first retained record.
    pub cursor: Vec<u64>,
}

/// One order as an adapter sees it: no contacts, no buyer data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderEntry {
    /// Offset of the order record in its partition.
    pub offset: u64,
    /// Carrier code as on the wire (1 ups, 2 fedex, 3 usps, 4 dhl); kept
    /// raw so that a code from a newer node is skipped, not a decode error.
    pub carrier: u8,
    /// The order belongs to a drop (poll it as "matters now").
    pub drop: bool,
    /// Start of the promised delivery window, epoch ms.
    pub promised_from_ms: i64,
    /// End of the promised delivery window, epoch ms.
    pub promised_to_ms: i64,
    /// The tracking number (1..=64 bytes of UTF-8).
    pub tracking_number: String,
}

/// Node → adapter: the entries of one partition and the cursor after them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrdersFrame {
    /// Partition of `orders`.
    pub partition: u32,
    /// Partitions of `orders` (the size of the adapter's cursor).
    pub partitions: u32,
    /// Where this partition resumes after this frame.
    pub next_offset: u64,
    /// The partition's durable end when it was read (lag = head − next).
    pub head_offset: u64,
    /// The orders for the adapter's carriers, by increasing offset.
    pub entries: Vec<OrderEntry>,
}

impl FollowFrame {
    /// Encodes the frame with its header.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![0u8; FRAME_HEADER_BYTES];
        let n = u32::try_from(self.cursor.len()).unwrap_or(u32::MAX);
        for v in [self.carriers_mask, self.entries_max, n, 0] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for o in &self.cursor {
            out.extend_from_slice(&o.to_le_bytes());
        }
        seal_frame(&mut out, FrameType::Follow);
        out
    }

    pub(super) fn decode(r: &mut Reader<'_>) -> Result<FollowFrame, WireError> {
        let carriers_mask = r.u32()?;
        if carriers_mask == 0 || carriers_mask & !CARRIER_MASK_KNOWN != 0 {
            return Err(WireError::InvalidField {
                field: "follow carriers",
                value: u64::from(carriers_mask),
            });
        }
        let entries_max = r.u32()?;
        if entries_max == 0 || entries_max > ORDER_ENTRIES_MAX {
            return Err(WireError::InvalidField {
                field: "follow entries_max",
                value: u64::from(entries_max),
            });
        }
        let n = r.u32()?;
        if n > FOLLOW_PARTITIONS_MAX {
            return Err(WireError::InvalidField {
                field: "follow cursor partitions",
                value: u64::from(n),
            });
        }
        let reserved = r.u32()?;
        if reserved != 0 {
            return Err(WireError::ReservedNotZero {
                field: "follow reserved",
                value: u64::from(reserved),
            });
        }
        let cursor = (0..n).map(|_| r.u64()).collect::<Result<Vec<_>, _>>()?;
        Ok(FollowFrame {
            carriers_mask,
            entries_max,
            cursor,
        })
    }
}

impl OrdersFrame {
    /// Encodes the frame with its header. Tracking numbers longer than
    /// [`TRACKING_NUMBER_BYTES_MAX`] must have been left out by the caller
    /// (they are cut otherwise, which the decoder would still accept).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            FRAME_HEADER_BYTES
                + ORDERS_BODY_FIXED_BYTES
                + self.entries.len() * (ORDER_ENTRY_FIXED_BYTES + 24),
        );
        out.resize(FRAME_HEADER_BYTES, 0);
        out.extend_from_slice(&self.partition.to_le_bytes());
        let count = u32::try_from(self.entries.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&self.next_offset.to_le_bytes());
        out.extend_from_slice(&self.head_offset.to_le_bytes());
        out.extend_from_slice(&self.partitions.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        for e in &self.entries {
            out.extend_from_slice(&e.offset.to_le_bytes());
            out.extend_from_slice(&e.promised_from_ms.to_le_bytes());
            out.extend_from_slice(&e.promised_to_ms.to_le_bytes());
            out.push(e.carrier);
            out.push(if e.drop { ENTRY_FLAG_DROP } else { 0 });
            let tn = cut_utf8(&e.tracking_number, TRACKING_NUMBER_BYTES_MAX);
            out.extend_from_slice(&(tn.len() as u16).to_le_bytes());
            out.extend_from_slice(tn.as_bytes());
        }
        seal_frame(&mut out, FrameType::Orders);
        out
    }

    pub(super) fn decode(r: &mut Reader<'_>) -> Result<OrdersFrame, WireError> {
        let partition = r.u32()?;
        let count = r.u32()?;
        if count > ORDER_ENTRIES_MAX {
            return Err(WireError::InvalidField {
                field: "orders entry count",
                value: u64::from(count),
            });
        }
        let next_offset = r.u64()?;
        let head_offset = r.u64()?;
        let partitions = r.u32()?;
        if partitions == 0 || partition >= partitions {
            return Err(WireError::InvalidField {
                field: "orders partition",
                value: u64::from(partition),
            });
        }
        let reserved = r.u32()?;
        if reserved != 0 {
            return Err(WireError::ReservedNotZero {
                field: "orders reserved",
                value: u64::from(reserved),
            });
        }
        let mut entries = Vec::with_capacity(count as usize);
        let mut floor = 0u64;
        for index in 0..count {
            let offset = r.u64()?;
            if offset >= next_offset || (index > 0 && offset < floor) {
                return Err(WireError::InvalidField {
                    field: "orders entry offset",
                    value: offset,
                });
            }
            floor = offset.saturating_add(1);
            let promised_from_ms = r.i64()?;
            let promised_to_ms = r.i64()?;
            let carrier = r.u8()?;
            let flags = r.u8()?;
            if flags & !ENTRY_FLAG_DROP != 0 {
                return Err(WireError::ReservedNotZero {
                    field: "orders entry flags",
                    value: u64::from(flags),
                });
            }
            let tracking_number =
                r.text16("tracking number length", TRACKING_NUMBER_BYTES_MAX, 1)?;
            entries.push(OrderEntry {
                offset,
                carrier,
                drop: flags & ENTRY_FLAG_DROP != 0,
                promised_from_ms,
                promised_to_ms,
                tracking_number,
            });
        }
        Ok(OrdersFrame {
            partition,
            partitions,
            next_offset,
            head_offset,
            entries,
        })
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a
/// character boundary.
fn cut_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{FRAME_BODY_BYTES_MAX, Frame};

    #[test]
    fn follow_and_orders_round_trip() {
        let follow = FollowFrame {
            carriers_mask: 0b0101,
            entries_max: 512,
            cursor: vec![0, 7, 42],
        };
        let bytes = follow.encode();
        let (frame, used) = Frame::decode(&bytes, FRAME_BODY_BYTES_MAX).unwrap();
        assert_eq!(used, bytes.len());
        let Frame::Follow(back) = frame else {
            panic!("not a follow")
        };
        assert_eq!(back, follow);

        let orders = OrdersFrame {
            partition: 2,
            partitions: 8,
            next_offset: 10,
            head_offset: 12,
            entries: vec![
                OrderEntry {
                    offset: 3,
                    carrier: 1,
                    drop: true,
                    promised_from_ms: -1,
                    promised_to_ms: 5,
                    tracking_number: "1Z999AA10123456784".into(),
                },
                OrderEntry {
                    offset: 9,
                    carrier: 9,
                    drop: false,
                    promised_from_ms: 0,
                    promised_to_ms: 0,
                    tracking_number: "X".into(),
                },
            ],
        };
        let bytes = orders.encode();
        let (frame, _) = Frame::decode(&bytes, FRAME_BODY_BYTES_MAX).unwrap();
        let Frame::Orders(back) = frame else {
            panic!("not orders")
        };
        assert_eq!(back, orders, "an unknown carrier code survives decoding");
    }

    #[test]
    fn bad_follow_and_orders_are_typed() {
        let body = |f: &[u8]| f[FRAME_HEADER_BYTES..].to_vec();
        for (mask, max) in [(0, 1), (0b10000, 1), (1, 0), (1, ORDER_ENTRIES_MAX + 1)] {
            let f = FollowFrame {
                carriers_mask: mask,
                entries_max: max,
                cursor: vec![],
            };
            assert!(matches!(
                Frame::decode_body(FrameType::Follow, &body(&f.encode())),
                Err(WireError::InvalidField { .. })
            ));
        }
        let mut orders = OrdersFrame {
            partition: 0,
            partitions: 1,
            next_offset: 5,
            head_offset: 5,
            entries: vec![OrderEntry {
                offset: 5,
                carrier: 1,
                drop: false,
                promised_from_ms: 0,
                promised_to_ms: 0,
                tracking_number: "AB12".into(),
            }],
        };
        assert!(matches!(
            Frame::decode_body(FrameType::Orders, &body(&orders.encode())),
            Err(WireError::InvalidField {
                field: "orders entry offset",
                ..
            })
        ));
        orders.entries[0].offset = 4;
        let bytes = body(&orders.encode());
        assert!(Frame::decode_body(FrameType::Orders, &bytes).is_ok());
        assert!(matches!(
            Frame::decode_body(FrameType::Orders, &bytes[..bytes.len() - 1]),
            Err(WireError::Truncated { .. })
        ));
        let mut long = bytes.clone();
        long.push(0);
        assert!(matches!(
            Frame::decode_body(FrameType::Orders, &long),
            Err(WireError::TrailingBytes { .. })
        ));
    }
}
