//! Rules files: the sample file, overrides, and every load error.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ops_support;

use dropline_operators::model::{Channel, Priority, Status, SubStatus};
use dropline_operators::ops::{ChainConfig, DecisionKind, RuleMatch, Rules, RulesErrorKind};
use ops_support::{Harness, MIN, T0, event, order};

const EXAMPLE: &str = include_str!("../../docs/rules.example.toml");

#[test]
fn the_example_file_loads_and_its_defaults_are_the_built_in_rules() {
    let rules = Rules::from_toml_str(EXAMPLE, "docs/rules.example.toml").unwrap();
    let builtin = Rules::default_rules();
    assert_eq!(rules.default_layer_rules(), builtin.default_layer_rules());
    assert_eq!(rules.default_settings(), builtin.default_settings());
    assert_eq!(rules.source(), "docs/rules.example.toml");
    assert!(rules.marketplace_layer("cardvault").is_some());
    assert!(rules.seller_layer("cardvault", "graded-slabs").is_some());
    assert!(rules.seller_layer("other", "graded-slabs").is_none());
}

#[test]
fn marketplace_and_seller_overrides() {
    let rules = Rules::from_toml_str(EXAMPLE, "rules.toml").unwrap();
    let exc = |m: &str, s: &str, sub| match rules.evaluate(
        m,
        s,
        Status::Exception,
        sub,
        Some(Status::InTransit),
    ) {
        RuleMatch::Fire(r) => (r.id.as_str().to_string(), r.channels.contains(Channel::Sms)),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        exc("cardvault", "x", SubStatus::CustomsHold),
        ("cardvault-customs".into(), true)
    );
    assert_eq!(
        exc("cardvault", "x", SubStatus::Damaged),
        ("cardvault-exception".into(), false)
    );
    assert_eq!(
        exc("dropshop", "x", SubStatus::Damaged),
        ("exception".into(), true)
    );
    // The seller layer wins for in-transit; other milestones fall through.
    let ping = rules.evaluate(
        "cardvault",
        "graded-slabs",
        Status::InTransit,
        SubStatus::ArrivalScan,
        Some(Status::InTransit),
    );
    assert!(matches!(ping, RuleMatch::Fire(r) if r.channels.is_empty()));
    let del = rules.evaluate(
        "cardvault",
        "graded-slabs",
        Status::Delivered,
        SubStatus::Signed,
        Some(Status::OutForDelivery),
    );
    assert!(matches!(del, RuleMatch::Fire(r) if r.id.as_str() == "delivered"));
    assert_eq!(
        rules.settings("cardvault", "graded-slabs").caps_per_day[Channel::Sms as usize - 1],
        2
    );
    assert_eq!(
        rules.settings("dropshop", "x").caps_per_day[Channel::Sms as usize - 1],
        3
    );
}

#[test]
fn overrides_apply_in_the_chain_and_reloads_take_effect() {
    let rules = Rules::from_toml_str(EXAMPLE, "rules.toml").unwrap();
    let mut h = Harness::new(ChainConfig::default(), rules);
    let tn = "1ZSLAB000000000001";
    let mut o = order(tn, "ORD-1", "buyer-1", "UTC");
    o.marketplace = "cardvault".into();
    o.seller = "graded-slabs".into();
    h.order(T0, &o);
    h.event(
        T0,
        &event(
            tn,
            Status::InTransit,
            SubStatus::ArrivalScan,
            T0,
            "Austin",
            "78701",
        ),
    );
    assert_eq!(h.last_kinds(), vec![DecisionKind::SuppressedByRule]);
    assert_eq!(
        h.last.decisions[0].rule_id.as_str(),
        "graded-slabs-no-pings"
    );
    // Reload with the built-in rules: the same seller's pings notify again.
    h.chain
        .set_rules(std::sync::Arc::new(Rules::default_rules()));
    h.event(
        T0 + MIN,
        &event(
            tn,
            Status::InTransit,
            SubStatus::ArrivalScan,
            T0 + MIN,
            "Dallas",
            "75201",
        ),
    );
    assert!(
        h.last
            .decisions
            .iter()
            .any(|d| d.kind == DecisionKind::Digested)
    );
}

#[test]
fn priorities_default_from_the_status() {
    let rules = Rules::from_toml_str(
        "[[rule]]\nid = \"a\"\nwhen = \"delivered\"\nchannels = [\"email\"]\n[[rule]]\nid = \"b\"\nwhen = \"picked_up\"\nchannels = [\"email\"]\n",
        "p.toml",
    )
    .unwrap();
    let p = |s| match rules.evaluate("m", "s", s, SubStatus::None, None) {
        RuleMatch::Fire(r) => r.priority,
        other => panic!("{other:?}"),
    };
    assert_eq!(p(Status::Delivered), Priority::Critical);
    assert_eq!(p(Status::PickedUp), Priority::Normal);
}

fn err(text: &str) -> (u32, RulesErrorKind, String) {
    let e = Rules::from_toml_str(text, "bad.toml").unwrap_err();
    assert_eq!(e.file, "bad.toml");
    let shown = e.to_string();
    assert!(
        shown.starts_with(&format!("bad.toml:{}: ", e.line)),
        "{shown}"
    );
    (e.line, e.kind, shown)
}

const RULE: &str = "[[rule]]\nid = \"r\"\nwhen = \"delivered\"\nchannels = [\"email\"]\n";

#[test]
fn invalid_files_name_the_file_line_and_reason() {
    let (line, kind, shown) =
        err("version = 1\n[[rule]]\nid = \"r\"\nwhen = \"shipped\"\nchannels = []\n");
    assert_eq!(line, 4);
    assert_eq!(
        kind,
        RulesErrorKind::UnknownStatus {
            name: "shipped".into()
        }
    );
    assert_eq!(shown, "bad.toml:4: unknown status \"shipped\"");

    let (line, kind, _) =
        err("[[rule]]\nid = \"r\"\nwhen = \"delivered\"\nchannels = [\"email\", \"fax\"]\n");
    assert_eq!(
        (line, kind),
        (4, RulesErrorKind::UnknownChannel { name: "fax".into() })
    );

    let (line, kind, _) = err(&format!("{RULE}priority = \"urgent\"\n"));
    assert_eq!(
        (line, kind),
        (
            5,
            RulesErrorKind::UnknownPriority {
                name: "urgent".into()
            }
        )
    );

    let (line, kind, _) = err(
        "[[rule]]\nid = \"r\"\nwhen = \"exception\"\nsub_status = [\"on_fire\"]\nchannels = []\n",
    );
    assert_eq!(
        (line, kind),
        (
            4,
            RulesErrorKind::UnknownSubStatus {
                name: "on_fire".into()
            }
        )
    );

    let (line, kind, _) =
        err("\n[settings]\nquiet_hours = { start = \"25:00\", end = \"08:00\" }\n");
    assert_eq!(
        (line, kind),
        (
            3,
            RulesErrorKind::BadClockTime {
                text: "25:00".into()
            }
        )
    );

    let (line, kind, _) = err(&format!("{RULE}{RULE}"));
    assert_eq!(
        (line, kind),
        (6, RulesErrorKind::DuplicateRuleId { id: "r".into() })
    );

    let (line, kind, _) = err("[[marketplace]]\nname = \"m\"\n[[marketplace]]\nname = \"m\"\n");
    assert_eq!(
        (line, kind),
        (4, RulesErrorKind::DuplicateMarketplace { name: "m".into() })
    );

    let (line, kind, _) = err(
        "[[seller]]\nmarketplace = \"m\"\nname = \"s\"\n[[seller]]\nmarketplace = \"m\"\nname = \"s\"\n",
    );
    assert_eq!(
        (line, kind),
        (
            6,
            RulesErrorKind::DuplicateSeller {
                marketplace: "m".into(),
                name: "s".into()
            }
        )
    );

    let (line, kind, _) = err("version = 2\n");
    assert_eq!(
        (line, kind),
        (1, RulesErrorKind::UnsupportedVersion { version: 2 })
    );

    let (line, kind, _) = err("[[rule]]\nid = \"\"\nwhen = \"delivered\"\nchannels = []\n");
    assert_eq!(
        (line, kind),
        (2, RulesErrorKind::Empty { field: "rule id" })
    );

    let (line, kind, _) = err(&format!(
        "[[rule]]\nid = \"{}\"\nwhen = \"delivered\"\nchannels = []\n",
        "x".repeat(33)
    ));
    assert_eq!(
        (line, kind),
        (
            2,
            RulesErrorKind::TooLong {
                field: "rule id",
                bytes_max: 32
            }
        )
    );

    let (line, kind, _) = err("[settings]\ncaps_per_day = { sms = 300 }\n");
    assert_eq!(
        (line, kind),
        (
            2,
            RulesErrorKind::OutOfRange {
                field: "caps_per_day.sms",
                value: 300,
                min: 0,
                max: 255
            }
        )
    );
}

#[test]
fn syntax_and_shape_errors_come_from_the_parser_with_a_line() {
    let (line, kind, _) = err("[[rule]]\nid = \"r\"\nwhen = delivered\n");
    assert_eq!(line, 3);
    assert!(matches!(kind, RulesErrorKind::Syntax { .. }));

    let (line, kind, shown) = err(&format!("{RULE}colour = \"red\"\n"));
    assert_eq!(line, 5);
    assert!(shown.contains("colour"), "{shown}");
    assert!(matches!(kind, RulesErrorKind::Syntax { .. }));

    let (line, kind, _) = err("[[rule]]\nid = \"r\"\nwhen = \"delivered\"\nchannels = \"email\"\n");
    assert_eq!(line, 4);
    assert!(matches!(kind, RulesErrorKind::Syntax { .. }));

    let (line, _, shown) = err("[[rule]]\nid = \"r\"\nchannels = []\n");
    assert!(shown.contains("when"), "{shown}");
    assert!(line >= 1);
}
