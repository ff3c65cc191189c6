//! The words of a message: subject or title and body, for a single update,
//! a consolidated one (several parcels of an order at one milestone) or a
//! digest (a buyer's low-priority updates over a window).

use dropline_operators::model::Status;

use super::super::notification::{Message, MessageKind};

/// A rendered message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    /// Email subject or push title.
    pub title: String,
    /// Text body (SMS text, push body, email text part).
    pub body: String,
}

/// Most updates listed in one digest body; the rest are counted.
const DIGEST_LINES_MAX: usize = 10;

fn phrase(status: Status) -> &'static str {
    match status {
        Status::LabelCreated => "has a shipping label",
        Status::PickedUp => "was picked up by the carrier",
        Status::InTransit => "is on its way",
        Status::OutForDelivery => "is out for delivery today",
        Status::AvailableForPickup => "is ready for pickup",
        Status::DeliveryAttempted => "missed a delivery attempt",
        Status::Delivered => "was delivered",
        Status::Exception => "has a delivery problem",
        Status::ReturningToSender => "is being returned to the sender",
        Status::ReturnedToSender => "was returned to the sender",
        Status::Cancelled => "was cancelled",
        Status::Stale => "has no recent tracking updates",
        Status::Unknown => "has a tracking update",
    }
}

/// Renders `m`.
pub fn render(m: &Message) -> Rendered {
    let Some(first) = m.members.first() else {
        return Rendered {
            title: String::new(),
            body: String::new(),
        };
    };
    let n = &first.notification;
    match m.kind {
        MessageKind::Single => Rendered {
            title: format!("Order {}: your parcel {}", n.order_id, phrase(n.status)),
            body: format!(
                "Order {}: {} parcel {} {}.",
                n.order_id,
                n.carrier.as_str().to_ascii_uppercase(),
                n.tracking_number,
                phrase(n.status)
            ),
        },
        MessageKind::Consolidated => {
            let mut numbers: Vec<&str> = m
                .members
                .iter()
                .map(|x| x.notification.tracking_number.as_str())
                .collect();
            numbers.sort_unstable();
            numbers.dedup();
            Rendered {
                title: format!(
                    "Order {}: {} parcels {}",
                    n.order_id,
                    numbers.len(),
                    phrase(n.status)
                ),
                body: format!(
                    "Order {}: {} parcels {} ({}).",
                    n.order_id,
                    numbers.len(),
                    phrase(n.status),
                    numbers.join(", ")
                ),
            }
        }
        MessageKind::Digest => {
            let mut body = format!("{} updates on your orders:", m.members.len());
            for x in m.members.iter().take(DIGEST_LINES_MAX) {
                let y = &x.notification;
                body.push_str(&format!(
                    "\n- order {}: parcel {} {}",
                    y.order_id,
                    y.tracking_number,
                    phrase(y.status)
                ));
            }
            if m.members.len() > DIGEST_LINES_MAX {
                body.push_str(&format!(
                    "\n- and {} more",
                    m.members.len() - DIGEST_LINES_MAX
                ));
            }
            Rendered {
                title: format!("{} updates on your orders", m.members.len()),
                body,
            }
        }
    }
}
