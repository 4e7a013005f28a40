//! `EventType`: its names, field names and codes, and how payloads map onto it.

mod common;

use common::*;
use std::collections::HashSet;
use wfl_domain::lifecycle::is_separation;
use wfl_domain::{EventType, LifecycleEffect};

/// `ContractNotRenewed` -> `contract_not_renewed`.
fn snake_case(pascal: &str) -> String {
    let mut out = String::new();
    for (i, c) in pascal.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn there_are_32_event_types() {
    assert_eq!(EventType::ALL.len(), 32);
}

#[test]
fn parse_accepts_the_pascal_case_name_of_every_type() {
    for &t in EventType::ALL {
        assert_eq!(EventType::parse(t.as_str()), Some(t), "{t}");
    }
}

#[test]
fn parse_accepts_the_snake_case_field_name_of_every_type() {
    for &t in EventType::ALL {
        assert_eq!(EventType::parse(t.field_name()), Some(t), "{t}");
    }
}

#[test]
fn the_field_name_is_the_snake_case_of_the_name() {
    for &t in EventType::ALL {
        assert_eq!(t.field_name(), snake_case(t.as_str()));
    }
}

#[test]
fn parse_refuses_other_spellings() {
    for bad in [
        "",
        "resignation ",
        "RESIGNATION",
        "Resignations",
        "contract-not-renewed",
        "contractNotRenewed",
        "Contract_Not_Renewed",
    ] {
        assert_eq!(EventType::parse(bad), None, "{bad:?}");
    }
}

#[test]
fn codes_are_unique_and_never_zero() {
    let codes: HashSet<u16> = EventType::ALL.iter().map(|t| t.code()).collect();
    assert_eq!(codes.len(), EventType::ALL.len());
    assert!(!codes.contains(&0));
}

#[test]
fn codes_follow_declaration_order_from_one() {
    // The codes are stored in compact indexes: pin them so a reordering cannot renumber them.
    for (i, &t) in EventType::ALL.iter().enumerate() {
        assert_eq!(usize::from(t.code()), i + 1, "{t}");
    }
    assert_eq!(EventType::WorkerHired.code(), 1);
    assert_eq!(EventType::ContractNotRenewed.code(), 8);
    assert_eq!(EventType::EventRetracted.code(), 29);
}

#[test]
fn names_and_field_names_are_unique() {
    let names: HashSet<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
    let fields: HashSet<&str> = EventType::ALL.iter().map(|t| t.field_name()).collect();
    assert_eq!(names.len(), EventType::ALL.len());
    assert_eq!(fields.len(), EventType::ALL.len());
}

#[test]
fn display_and_serde_use_the_pascal_case_name() {
    for &t in EventType::ALL {
        assert_eq!(t.to_string(), t.as_str());
        assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
        assert_eq!(
            serde_json::from_value::<EventType>(t.as_str().into()).unwrap(),
            t
        );
    }
}

#[test]
fn the_samples_cover_every_type_in_declaration_order() {
    let types: Vec<EventType> = samples("w1", next_id())
        .iter()
        .map(|p| p.event_type())
        .collect();
    assert_eq!(types, EventType::ALL);
}

#[test]
fn an_event_has_the_type_of_its_payload() {
    for payload in samples("w1", next_id()) {
        let kind = payload.event_type();
        assert_eq!(ev(ORG, payload).event_type(), kind);
    }
}

#[test]
fn exactly_the_separation_types_carry_a_separation() {
    for payload in samples("w1", next_id()) {
        let t = payload.event_type();
        assert_eq!(payload.separation().is_some(), is_separation(t), "{t}");
    }
    assert!(role_automated("claims-handler").separation().is_none());
    assert!(is_separation(EventType::RoleAutomated));
}

#[test]
fn worker_effects_name_the_worker() {
    let effect = |p: wfl_domain::Payload| p.worker_effect().map(|(w, e)| (w.to_string(), e));
    let w1 = || "w1".to_owned();

    assert_eq!(effect(hire("w1")), Some((w1(), LifecycleEffect::Hire)));
    assert_eq!(effect(baseline("w1")), Some((w1(), LifecycleEffect::Hire)));
    for separation in every_separation("w1") {
        assert_eq!(effect(separation), Some((w1(), LifecycleEffect::Separate)));
    }
    for touch in every_touch("w1") {
        assert_eq!(effect(touch), Some((w1(), LifecycleEffect::Touch)));
    }
    assert_eq!(effect(role_automated("claims-handler")), None);
    // A correction's replacement does not make the correction itself name a worker.
    let original = ev(ORG, hire("w1"));
    assert_eq!(effect(correct(&original, hire("w1"))), None);
    assert_eq!(effect(retract(&original)), None);
}
