//! Shared helpers for the operator-chain tests: building orders and events,
//! and driving a chain while collecting every output.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use dropline_operators::model::{
    Carrier, CarrierEvent, Channel, Contact, EventSource, Location, ShipmentOrder, Status,
    SubStatus,
};
use dropline_operators::ops::{
    Chain, ChainConfig, Decision, DecisionKind, NotificationIntent, Outputs, Rules, SourceRef,
};

/// 2024-07-01T12:00:00Z.
pub const T0: u64 = 1_719_835_200_000;
pub const MIN: u64 = 60_000;
pub const HOUR: u64 = 60 * MIN;

pub fn order(tn: &str, order_id: &str, buyer: &str, tz: &str) -> ShipmentOrder {
    ShipmentOrder {
        tracking_number: tn.into(),
        carrier: Carrier::Ups,
        marketplace: "dropshop".into(),
        seller: "seller-1".into(),
        order_id: order_id.into(),
        skus: vec!["SKU-1".into()],
        buyer_id: buyer.into(),
        promised_from_ms: (T0 + 48 * HOUR) as i64,
        promised_to_ms: (T0 + 96 * HOUR) as i64,
        buyer_locale: "en-US".into(),
        buyer_time_zone: tz.into(),
        destination_postal_code: "10001".into(),
        drop: true,
        contacts: Channel::ALL
            .into_iter()
            .map(|channel| Contact {
                channel,
                address: format!("sealed-{}", channel.as_str()),
                consent: true,
            })
            .collect(),
    }
}

pub fn event(
    tn: &str,
    status: Status,
    sub: SubStatus,
    occurred_ms: u64,
    city: &str,
    postal: &str,
) -> CarrierEvent {
    CarrierEvent {
        tracking_number: tn.into(),
        carrier: Carrier::Ups,
        status,
        sub_status: sub,
        raw_code: format!("{}-{}", status as u8, sub as u8),
        raw_text: status.as_str().into(),
        occurred_at_ms: occurred_ms as i64,
        local_time: "2024-07-01T08:00:00".into(),
        utc_offset_minutes: Some(-240),
        location: Location {
            city: (!city.is_empty()).then(|| city.into()),
            region: Some("NY".into()),
            postal_code: (!postal.is_empty()).then(|| postal.into()),
            country: Some("US".into()),
        },
        source: EventSource::Webhook,
        received_at_ms: occurred_ms as i64,
    }
}

/// A chain plus its outputs: `last` holds the latest call's outputs,
/// `all` everything since the start.
pub struct Harness {
    pub chain: Chain,
    pub last: Outputs,
    pub all: Outputs,
    pub next_offset: u64,
}

impl Harness {
    pub fn new(config: ChainConfig, rules: Rules) -> Harness {
        Harness {
            chain: Chain::new(config, Arc::new(rules)),
            last: Outputs::new(),
            all: Outputs::new(),
            next_offset: 0,
        }
    }

    pub fn default() -> Harness {
        Harness::new(ChainConfig::default(), Rules::default_rules())
    }

    fn collect(&mut self) {
        self.all.extend_from(&self.last);
    }

    pub fn order(&mut self, log_ms: u64, order: &ShipmentOrder) -> &Outputs {
        self.last.clear();
        let src = SourceRef::order(0, self.next_offset, log_ms);
        self.next_offset += 1;
        self.chain.on_order(src, order, &mut self.last);
        self.collect();
        &self.last
    }

    /// Feeds an event; returns its offset.
    pub fn event(&mut self, log_ms: u64, event: &CarrierEvent) -> u64 {
        self.last.clear();
        let offset = self.next_offset;
        self.next_offset += 1;
        let bytes = event.encode();
        let archived = CarrierEvent::access(&bytes).unwrap();
        self.chain.on_event(
            SourceRef::event(0, offset, log_ms),
            archived,
            &mut self.last,
        );
        self.collect();
        offset
    }

    pub fn tick(&mut self, log_ms: u64) -> &Outputs {
        self.last.clear();
        self.chain.on_tick(log_ms, &mut self.last);
        self.collect();
        &self.last
    }

    pub fn last_kinds(&self) -> Vec<DecisionKind> {
        self.last.decisions.iter().map(|d| d.kind).collect()
    }

    pub fn last_intents(&self, channel: Channel) -> Vec<NotificationIntent> {
        self.last
            .intents
            .iter()
            .filter(|i| i.channel == channel)
            .copied()
            .collect()
    }

    pub fn last_decision(&self, channel: Channel) -> Option<Decision> {
        self.last
            .decisions
            .iter()
            .find(|d| d.channel == Some(channel))
            .copied()
    }
}
