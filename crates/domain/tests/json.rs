//! The serde (JSON) form of events: internally tagged payloads, snake_case enum values,
//! `YYYY-MM-DD` dates, and defaults for omitted fields.

mod common;

use common::*;
use serde_json::{json, Value};
use wfl_domain::{
    AiAttribution, AiMetric, BackfillStatus, ChangeType, Cohort, ContractNotRenewed, ContractType,
    Date, EmploymentRelationship, Event, EventId, EvidenceConfidence, Initiator, OfferTerms,
    Payload, RetirementType, Separation,
};

fn round_trip(event: &Event) -> Event {
    let text = serde_json::to_string(event).expect("an event serialises");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text} does not parse back: {e}"))
}

fn parse(value: Value) -> Result<Event, serde_json::Error> {
    serde_json::from_value(value)
}

/// The smallest JSON envelope the serde form accepts, around `payload`.
fn envelope(payload: Value) -> Value {
    json!({
        "event_id": "0190a5c4-0000-7000-8000-000000000001",
        "org_id": "acme",
        "site_id": "main",
        "jurisdiction": "CN",
        "effective_date": "2026-03-02",
        "source": { "system": "test" },
        "payload": payload,
    })
}

fn resignation_json() -> Value {
    json!({
        "type": "Resignation",
        "separation": {
            "worker_ref": "w1",
            "employment_relationship": "employee",
            "contract_type": "open_ended",
            "initiator": "employee",
        },
    })
}

#[test]
fn an_event_serialises_to_the_documented_shape() {
    let event = Event {
        event_id: EventId(uuid::Uuid::from_u128(0x42)),
        ..ev(ORG, resign("w1"))
    };
    assert_eq!(
        serde_json::to_value(&event).unwrap(),
        json!({
            "event_id": "00000000-0000-0000-0000-000000000042",
            "org_id": "acme",
            "site_id": "main",
            "jurisdiction": "CN",
            "effective_date": "2026-03-02",
            "source": { "system": "test", "reference": "" },
            "schema_version": 1,
            "evidence_confidence": "reported",
            "payload": {
                "type": "Resignation",
                "separation": {
                    "worker_ref": "w1",
                    "employment_relationship": "employee",
                    "contract_type": "open_ended",
                    "position_closed": false,
                    "backfill_status": "unknown",
                    "initiator": "employee",
                    "reason_personal": false,
                    "ai_attributed": "none",
                },
                "regrettable": false,
                "pressured": false,
            },
        })
    );
}

#[test]
fn the_payload_is_tagged_with_its_pascal_case_type_and_enums_are_snake_case() {
    let payload = Payload::ContractNotRenewed(Box::new(ContractNotRenewed {
        renewal_offered: true,
        offer_terms: Some(OfferTerms::SameOrBetter),
        employee_refused: true,
        ..not_renewed("w1")
    }));
    let event = Event {
        evidence_confidence: EvidenceConfidence::Filed,
        ..ev(ORG, payload)
    };
    let json = serde_json::to_value(&event).unwrap();
    assert_eq!(json["payload"]["type"], "ContractNotRenewed");
    assert_eq!(json["payload"]["offer_terms"], "same_or_better");
    assert_eq!(json["payload"]["separation"]["contract_type"], "fixed_term");
    assert_eq!(json["payload"]["separation"]["initiator"], "employer");
    assert_eq!(json["evidence_confidence"], "filed");
}

#[test]
fn dates_serialise_as_yyyy_mm_dd() {
    let usage = ai_usage(10, Some(50));
    let event = Event {
        effective_date: date(2026, 1, 5),
        ..ev(ORG, Payload::AiUsageMeasured(usage))
    };
    let json = serde_json::to_value(&event).unwrap();
    assert_eq!(json["effective_date"], "2026-01-05");
    assert_eq!(json["payload"]["period_start"], "2026-03-01");
    assert_eq!(json["payload"]["period_end"], "2026-03-31");
    assert_eq!(json["payload"]["metric"], "active_users");
}

#[test]
fn absent_options_are_left_out_and_present_ones_written() {
    let bare = serde_json::to_value(ev(ORG, hire("w1"))).unwrap();
    for key in ["correlation_id", "causation_id", "expected_version"] {
        assert!(bare.get(key).is_none(), "{key} should be omitted");
    }

    let full = Event {
        correlation_id: Some("plan-2026".to_owned()),
        causation_id: Some("TERM-1".to_owned()),
        ..expecting(3, ev(ORG, hire("w1")))
    };
    let json = serde_json::to_value(full).unwrap();
    assert_eq!(json["correlation_id"], "plan-2026");
    assert_eq!(json["causation_id"], "TERM-1");
    assert_eq!(json["expected_version"], 3);
}

#[test]
fn a_sample_of_every_event_type_round_trips() {
    let original = next_id();
    for payload in samples("w1", original) {
        let event = ev(ORG, payload);
        assert_eq!(round_trip(&event), event);
    }
}

#[test]
fn a_separation_with_every_field_set_round_trips() {
    let separation = Separation {
        worker_ref: "w-42".into(),
        employment_relationship: EmploymentRelationship::Dispatched,
        contract_type: ContractType::PartTime,
        cohort: Some(Cohort::GraduateTrainee),
        position_id: Some("P-9".to_owned()),
        position_closed: true,
        backfill_status: BackfillStatus::NotPlanned,
        initiator: Initiator::External,
        reason_personal: true,
        legal_ground: Some("CN-LCL-40-3".to_owned()),
        ai_attributed: AiAttribution::Inferred,
        ai_system: Some("claims-bot".to_owned()),
        tenure_months: Some(18),
        protected_flags: vec!["CN-LCL-42-4".to_owned()],
        severance: Some(cny(1_234_500)),
        notice_given_on: Some(date(2026, 2, 1)),
        avg_weekly_hours: None,
        months_employed_last_12: None,
        contract_end: None,
    };
    let event = Event {
        correlation_id: Some("plan-2026".to_owned()),
        causation_id: Some("0190a5c4-0000-7000-8000-000000000009".to_owned()),
        evidence_confidence: EvidenceConfidence::Inferred,
        ..expecting(4, ev(ORG, dismissal_of(separation)))
    };
    let json = serde_json::to_value(&event).unwrap();
    assert_eq!(
        json["payload"]["separation"]["notice_given_on"],
        "2026-02-01"
    );
    assert_eq!(json["payload"]["separation"]["cohort"], "graduate_trainee");
    assert_eq!(
        json["payload"]["separation"]["backfill_status"],
        "not_planned"
    );
    assert_eq!(json["payload"]["separation"]["ai_attributed"], "inferred");
    assert_eq!(
        json["payload"]["separation"]["severance"],
        json!({ "amount_minor": 1_234_500, "currency": "CNY" })
    );
    assert_eq!(round_trip(&event), event);
}

#[test]
fn a_correction_nests_its_tagged_replacement() {
    let original = ev(ORG, resign("w1"));
    let event = ev(ORG, correct(&original, resign("w1")));
    let json = serde_json::to_value(&event).unwrap();
    assert_eq!(json["payload"]["type"], "EventCorrected");
    assert_eq!(
        json["payload"]["original_event_id"],
        original.event_id.to_string()
    );
    assert_eq!(json["payload"]["replacement"]["type"], "Resignation");
    assert_eq!(round_trip(&event), event);
}

#[test]
fn omitted_fields_take_their_defaults() {
    let event = parse(envelope(resignation_json())).expect("a minimal resignation parses");
    assert_eq!(event.schema_version, wfl_domain::SCHEMA_VERSION);
    assert_eq!(event.evidence_confidence, EvidenceConfidence::Reported);
    assert_eq!(event.source.reference, "");
    assert_eq!(event.expected_version, None);
    assert_eq!(event.effective_date, date(2026, 3, 2));
    let Payload::Resignation(r) = &event.payload else {
        panic!("expected a resignation, got {:?}", event.payload);
    };
    assert_eq!(r.separation.backfill_status, BackfillStatus::Unknown);
    assert_eq!(r.separation.ai_attributed, AiAttribution::None);
    assert!(r.separation.protected_flags.is_empty());
    assert!(!r.pressured);
    assert!(wfl_domain::validate(&event).is_ok());
}

#[test]
fn a_redeployment_is_accepted_unless_said_otherwise() {
    let event = parse(envelope(json!({
        "type": "InternalRedeployment",
        "worker_ref": "w1",
        "to_position": "P-2",
    })))
    .unwrap();
    let Payload::InternalRedeployment(r) = event.payload else {
        panic!("expected a redeployment");
    };
    assert!(r.accepted);
}

#[test]
fn every_kind_of_payload_parses_from_its_own_type_tag() {
    let original = next_id();
    for payload in samples("w1", original) {
        let kind = payload.event_type();
        let json = serde_json::to_value(&payload).unwrap();
        assert_eq!(json["type"], kind.as_str());
        let back: Payload = serde_json::from_value(json).unwrap();
        assert_eq!(back.event_type(), kind);
    }
}

#[test]
fn an_invalid_date_is_a_deserialisation_error() {
    for bad in [
        "2026-02-30",
        "2026-3-2",
        "02/03/2026",
        "2026-13-01",
        "3000-01-01",
        "",
    ] {
        let mut json = envelope(resignation_json());
        json["effective_date"] = json!(bad);
        let err = parse(json).expect_err("an invalid date must not parse");
        assert!(
            err.to_string().contains("YYYY-MM-DD"),
            "{bad:?}: the error should say what a date looks like: {err}"
        );
    }
}

#[test]
fn a_date_that_is_not_a_string_is_a_deserialisation_error() {
    let mut json = envelope(resignation_json());
    json["effective_date"] = json!(20_260_302);
    assert!(parse(json).is_err());
}

#[test]
fn an_invalid_date_inside_a_payload_is_a_deserialisation_error() {
    let json = envelope(json!({
        "type": "AiUsageMeasured",
        "scope": "claims",
        "period_start": "2026-02-29",
        "period_end": "2026-03-31",
        "metric": "active_users",
        "value": 10,
    }));
    let err = parse(json).expect_err("2026 is not a leap year");
    assert!(err.to_string().contains("2026-02-29"), "{err}");
}

#[test]
fn a_leap_day_parses() {
    let date: Date = serde_json::from_value(json!("2028-02-29")).unwrap();
    assert_eq!(date.ymd(), (2028, 2, 29));
    assert_eq!(serde_json::to_value(date).unwrap(), json!("2028-02-29"));
}

#[test]
fn an_unknown_or_missing_payload_type_is_a_deserialisation_error() {
    let mut unknown = resignation_json();
    unknown["type"] = json!("Sacked");
    assert!(parse(envelope(unknown)).is_err());

    let mut missing = resignation_json();
    missing.as_object_mut().unwrap().remove("type");
    assert!(parse(envelope(missing)).is_err());
}

#[test]
fn enum_values_are_snake_case_only() {
    let mut pascal = resignation_json();
    pascal["separation"]["contract_type"] = json!("OpenEnded");
    assert!(parse(envelope(pascal)).is_err());
}

#[test]
fn a_missing_required_field_is_a_deserialisation_error() {
    let mut no_worker = resignation_json();
    no_worker["separation"]
        .as_object_mut()
        .unwrap()
        .remove("worker_ref");
    assert!(parse(envelope(no_worker)).is_err());

    let mut no_org = envelope(resignation_json());
    no_org.as_object_mut().unwrap().remove("org_id");
    assert!(parse(no_org).is_err());
}

/// The names `as_str` gives must be the serde names, or JSON and reports would disagree.
#[test]
fn code_enum_names_match_their_serde_names() {
    fn check<T>(all: &[T], as_str: fn(T) -> &'static str, parse: fn(&str) -> Option<T>)
    where
        T: Copy + PartialEq + std::fmt::Debug + serde::Serialize + serde::de::DeserializeOwned,
    {
        for &value in all {
            let name = as_str(value);
            assert_eq!(serde_json::to_value(value).unwrap(), json!(name));
            assert_eq!(serde_json::from_value::<T>(json!(name)).unwrap(), value);
            assert_eq!(parse(name), Some(value));
        }
        let names: std::collections::HashSet<_> = all.iter().map(|&v| as_str(v)).collect();
        assert_eq!(names.len(), all.len(), "names are unique");
    }
    check(
        EvidenceConfidence::ALL,
        EvidenceConfidence::as_str,
        EvidenceConfidence::parse,
    );
    check(
        EmploymentRelationship::ALL,
        EmploymentRelationship::as_str,
        EmploymentRelationship::parse,
    );
    check(ContractType::ALL, ContractType::as_str, ContractType::parse);
    check(Cohort::ALL, Cohort::as_str, Cohort::parse);
    check(Initiator::ALL, Initiator::as_str, Initiator::parse);
    check(
        AiAttribution::ALL,
        AiAttribution::as_str,
        AiAttribution::parse,
    );
    check(
        BackfillStatus::ALL,
        BackfillStatus::as_str,
        BackfillStatus::parse,
    );
    check(OfferTerms::ALL, OfferTerms::as_str, OfferTerms::parse);
    check(
        RetirementType::ALL,
        RetirementType::as_str,
        RetirementType::parse,
    );
    check(ChangeType::ALL, ChangeType::as_str, ChangeType::parse);
    check(AiMetric::ALL, AiMetric::as_str, AiMetric::parse);
}

#[test]
fn violations_serialise_as_field_and_description() {
    let event = Event {
        site_id: "".into(),
        ..ev(ORG, hire("w1"))
    };
    let violations = wfl_domain::validate(&event).unwrap_err();
    assert_eq!(
        serde_json::to_value(&violations).unwrap(),
        json!([{ "field": "site_id", "description": "required" }])
    );
}
