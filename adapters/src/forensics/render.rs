//! The human form of a parcel history (`dropline replay` without `--json`).

use std::fmt::Write as _;

use dropline_operators::model::time::format_rfc3339_ms;

use super::ParcelHistory;

fn ms(t: Option<i64>) -> String {
    t.map_or_else(|| "-".into(), format_rfc3339_ms)
}

/// Renders a history as text.
pub fn render_human(h: &ParcelHistory) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "parcel {} (partition {}){}",
        h.tracking_number,
        h.partition,
        h.as_of
            .as_ref()
            .map_or(String::new(), |t| format!(" as of {t}"))
    );
    let _ = writeln!(o, "\norders ({}):", h.orders.len());
    for x in &h.orders {
        let contacts: Vec<String> = x
            .contacts
            .iter()
            .map(|c| {
                format!(
                    "{}{}",
                    c.channel.as_str(),
                    if c.consent { "" } else { " (no consent)" }
                )
            })
            .collect();
        let _ = writeln!(
            o,
            "  {} orders@{}  {}/{} order {} buyer {} promised {}..{} contacts [{}]",
            x.at.log_time,
            x.at.offset,
            x.marketplace,
            x.seller,
            x.order_id,
            x.buyer_id,
            x.promised_from,
            x.promised_to,
            contacts.join(", ")
        );
    }
    let _ = writeln!(o, "\ncarrier events ({}):", h.events.len());
    for e in &h.events {
        let l = &e.event.location;
        let place = [&l.city, &l.region, &l.country]
            .iter()
            .filter_map(|s| s.as_deref())
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            o,
            "  {} carrier-events@{}  {} {}/{} raw {:?} at {} {}",
            e.at.log_time,
            e.at.offset,
            e.event.carrier,
            e.event.status.as_str(),
            e.event.sub_status.as_str(),
            e.event.raw_code,
            format_rfc3339_ms(e.event.occurred_at_ms),
            place
        );
    }
    let _ = writeln!(o, "\ncontrol records in force ({}):", h.control.len());
    for c in &h.control {
        let _ = writeln!(o, "  {} control@{}  {}", c.at.log_time, c.at.offset, c.what);
    }
    let _ = writeln!(
        o,
        "\nstate{}:",
        h.as_of
            .as_ref()
            .map_or(String::new(), |t| format!(" as of {t}"))
    );
    match &h.state {
        None => {
            let _ = writeln!(o, "  not held by the operators (no record yet, or retired)");
        }
        Some(v) => {
            let _ = writeln!(
                o,
                "  status {} / {}  estimate {}  promised {}..{}  late {}  stale {}{}",
                v.status.map_or("-", |s| s.as_str()),
                v.sub_status.as_str(),
                ms(v.estimate_ms),
                ms(v.promised_from_ms),
                ms(v.promised_to_ms),
                v.late,
                v.stale,
                v.open_exception.map_or(String::new(), |x| format!(
                    "  open exception {} -> {:?}{}",
                    x.class.as_str(),
                    x.remediation,
                    if x.escalated { " (escalated)" } else { "" }
                ))
            );
        }
    }
    let _ = writeln!(
        o,
        "\ndecisions recorded by the engine ({}):",
        h.decisions.len()
    );
    for d in &h.decisions {
        let _ = writeln!(
            o,
            "  decisions@{}  {}",
            d.at.as_ref().map_or(0, |a| a.offset),
            d.explanation
        );
    }
    let _ = writeln!(
        o,
        "\ndecisions re-derived by replaying the operators ({}):",
        h.replayed_decisions.len()
    );
    for d in &h.replayed_decisions {
        let _ = writeln!(o, "  {}", d.explanation);
    }
    if !h.differences.is_empty() {
        let _ = writeln!(
            o,
            "\ndifferences between recorded and re-derived decisions:"
        );
        for d in &h.differences {
            let _ = writeln!(o, "  {d}");
        }
    }
    let _ = writeln!(o, "\nnotifications ({}):", h.notifications.len());
    for n in &h.notifications {
        let i = &n.intent;
        let _ = writeln!(
            o,
            "  {} {}@{}  {} {} rule {} intent {}{}",
            n.at.log_time,
            n.at.topic,
            n.at.offset,
            i.channel.as_str(),
            i.status.as_str(),
            i.rule_id,
            i.id,
            if i.digest { " (digest)" } else { "" }
        );
    }
    let _ = writeln!(o, "\nescalations ({}):", h.escalations.len());
    for e in &h.escalations {
        let _ = writeln!(
            o,
            "  {} escalations@{}  {:?} {} exception@{}",
            e.at.log_time,
            e.at.offset,
            e.escalation.kind,
            e.escalation.class.as_str(),
            e.escalation.exception_offset
        );
    }
    let _ = writeln!(o, "\nview changes ({}):", h.views.len());
    for v in &h.views {
        let _ = writeln!(
            o,
            "  {} shipment-views@{}  {:?} -> {}",
            v.at.log_time,
            v.at.offset,
            v.view.change,
            v.view.status.map_or("-", |s| s.as_str())
        );
    }
    if !h.undecodable.is_empty() {
        let _ = writeln!(
            o,
            "\nrecords that did not decode ({}):",
            h.undecodable.len()
        );
        for u in &h.undecodable {
            let _ = writeln!(
                o,
                "  {}[{}]@{} ({} bytes)",
                u.at.topic, u.at.partition, u.at.offset, u.value_bytes
            );
        }
    }
    o
}
