//! Wire <-> domain conversion: round trips for every payload kind, the violations the wire side
//! reports (structural and domain), and robustness against arbitrary bytes.

use proptest::prelude::*;
use prost::Message;
use uuid::Uuid;
use wfl_domain::*;
use wfl_proto::convert::{
    event_from_pb, event_to_pb, event_type_of, org_and_type_of, payload_to_pb,
};
use wfl_proto::pb;

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

fn date(s: &str) -> Date {
    Date::parse(s).unwrap()
}

fn id(n: u128) -> EventId {
    EventId(Uuid::from_u128(
        0x0190_a1b2_c3d4_7000_8000_0000_0000_0000 + n,
    ))
}

fn separation(full: bool) -> Separation {
    if full {
        Separation {
            worker_ref: "w-000123".into(),
            employment_relationship: EmploymentRelationship::Employee,
            contract_type: ContractType::FixedTerm,
            cohort: Some(Cohort::EntryLevel),
            position_id: Some("pos-77".into()),
            position_closed: true,
            backfill_status: BackfillStatus::NotPlanned,
            initiator: Initiator::Employer,
            reason_personal: false,
            legal_ground: Some("CN-LCL-40-3".into()),
            ai_attributed: AiAttribution::CitedByEmployer,
            ai_system: Some("ClaimsBot v2".into()),
            tenure_months: Some(27),
            protected_flags: vec!["CN-LCL-42-4".into(), "CN-LCL-42-3".into()],
            severance: Some(Money {
                amount_minor: 3_600_000,
                currency: "CNY".into(),
            }),
            notice_given_on: Some(date("2026-01-15")),
            avg_weekly_hours: Some(18),
            months_employed_last_12: Some(5),
            contract_end: Some(date("2026-12-31")),
        }
    } else {
        Separation {
            worker_ref: "w-9".into(),
            employment_relationship: EmploymentRelationship::Contractor,
            contract_type: ContractType::Task,
            cohort: None,
            position_id: None,
            position_closed: false,
            backfill_status: BackfillStatus::Unknown,
            initiator: Initiator::Employee,
            reason_personal: true,
            legal_ground: None,
            ai_attributed: AiAttribution::None,
            ai_system: None,
            tenure_months: None,
            protected_flags: vec![],
            severance: None,
            notice_given_on: None,
            avg_weekly_hours: None,
            months_employed_last_12: None,
            contract_end: None,
        }
    }
}

fn compliance(full: bool) -> ComplianceStep {
    ComplianceStep {
        plan_id: "plan-2026-q1".into(),
        recipient: if full {
            "Hangzhou HRSS bureau".into()
        } else {
            String::new()
        },
        document_ref: if full {
            "DOC-2026-0042".into()
        } else {
            String::new()
        },
        ai_checkbox: full,
    }
}

fn graduate(full: bool) -> GraduateIntake {
    GraduateIntake {
        cohort_year: 2026,
        planned: 40,
        baseline: 60,
        actual: full.then_some(35),
    }
}

fn position(full: bool) -> PositionChange {
    PositionChange {
        position_id: "pos-77".into(),
        linked_separation_id: full.then(|| id(900)),
    }
}

fn agency(full: bool) -> AgencyRelease {
    AgencyRelease {
        separation: separation(full),
        agency_id: full.then(|| "agency-9".into()),
        ground: full.then(|| "CN-DISPATCH-12".into()),
    }
}

/// A valid payload of the given type; `full` sets every optional field, otherwise none is set.
fn payload(ty: EventType, full: bool) -> Payload {
    match ty {
        EventType::WorkerHired => Payload::WorkerHired(WorkerHired {
            worker_ref: "w-000123".into(),
            employment_relationship: EmploymentRelationship::Intern,
            contract_type: ContractType::PartTime,
            cohort: full.then_some(Cohort::GraduateTrainee),
            position_id: full.then(|| "pos-1".into()),
            baseline: full,
            avg_weekly_hours: full.then_some(19),
            months_employed_last_12: full.then_some(4),
            contract_end: full.then(|| date("2026-06-30")),
        }),
        EventType::ContractRenewed => Payload::ContractRenewed(ContractRenewed {
            worker_ref: "w-000123".into(),
            new_contract_end: full.then(|| date("2028-02-29")),
            consecutive_fixed_terms: full.then_some(2),
        }),
        EventType::GraduateIntakeSet => Payload::GraduateIntakeSet(graduate(full)),
        EventType::GraduateIntakeReduced => Payload::GraduateIntakeReduced(graduate(!full)),
        EventType::HiringPaused => Payload::HiringPaused(HiringPaused {
            scope: "claims".into(),
            reqs_frozen: if full { 12 } else { 0 },
            reqs_cancelled: if full { 3 } else { 0 },
            until: full.then(|| date("2026-06-30")),
        }),
        EventType::HiringResumed => Payload::HiringResumed(HiringResumed {
            scope: "claims".into(),
            reqs_reopened: u32::from(full) * 7,
        }),
        EventType::PositionBackfilled => Payload::PositionBackfilled(position(full)),
        EventType::ContractNotRenewed => {
            Payload::ContractNotRenewed(Box::new(ContractNotRenewed {
                separation: separation(full),
                renewal_offered: full,
                offer_terms: full.then_some(OfferTerms::NoOffer),
                employee_refused: full,
                would_trigger_open_ended: full,
                consecutive_fixed_terms: full.then_some(2),
            }))
        }
        EventType::EconomicDismissal => Payload::EconomicDismissal(Box::new(EconomicDismissal {
            separation: separation(full),
            selection_criteria: full.then(|| "seniority, then performance".into()),
            plan_id: full.then(|| "plan-2026-q1".into()),
        })),
        EventType::RoleAutomated => Payload::RoleAutomated(Box::new(RoleAutomated {
            role_id: "claims-triage".into(),
            ai_system: "ClaimsBot v2".into(),
            separation: full.then(|| separation(true)),
            retraining_offered: full,
            redeployment_offered: !full,
        })),
        EventType::MutualTerminationEmployerProposed => Payload::MutualTerminationEmployerProposed(
            Box::new(MutualTerminationEmployerProposed {
                separation: separation(full),
                package: full.then(|| Money {
                    amount_minor: 0,
                    currency: "USD".into(),
                }),
            }),
        ),
        EventType::AdverseChangeRefusedExit => {
            Payload::AdverseChangeRefusedExit(Box::new(AdverseChangeRefusedExit {
                separation: separation(full),
                change_type: if full {
                    ChangeType::Location
                } else {
                    ChangeType::Pay
                },
                change_magnitude_pct: full.then_some(100),
            }))
        }
        EventType::Resignation => Payload::Resignation(Box::new(Resignation {
            separation: separation(full),
            regrettable: full,
            pressured: full,
        })),
        EventType::Retirement => Payload::Retirement(Box::new(Retirement {
            separation: separation(full),
            retirement_type: if full {
                RetirementType::EarlyIncentive
            } else {
                RetirementType::Statutory
            },
        })),
        EventType::DismissalForCause => Payload::DismissalForCause(Box::new(DismissalForCause {
            separation: separation(full),
            cause_code: "misconduct".into(),
            summary: full,
        })),
        EventType::DeathOrDisability => Payload::DeathOrDisability(Box::new(DeathOrDisability {
            separation: separation(full),
            disability: full,
        })),
        EventType::ContractorReleased => Payload::ContractorReleased(Box::new(agency(full))),
        EventType::DispatchedWorkerReturned => {
            Payload::DispatchedWorkerReturned(Box::new(agency(!full)))
        }
        EventType::TemporaryLayoff => Payload::TemporaryLayoff(TemporaryLayoff {
            worker_ref: "w-000123".into(),
            expected_duration_days: 30,
            recall_expected: full,
        }),
        EventType::HoursReduced => Payload::HoursReduced(HoursReduced {
            worker_ref: "w-000123".into(),
            hours_before: 40,
            hours_after: 32,
            expected_months: if full { 6 } else { 0 },
        }),
        EventType::SiteClosed => Payload::SiteClosed(SiteClosed {
            operating_unit: full.then(|| "line-2".into()),
            temporary: full,
        }),
        EventType::SiteRelocated => Payload::SiteRelocated(SiteRelocated {
            to_site: full.then(|| "reno-1".into()),
            distance_km: if full { 420 } else { 1 },
        }),
        EventType::RestructuringPlanAnnounced => {
            Payload::RestructuringPlanAnnounced(RestructuringPlanAnnounced {
                plan_id: "plan-2026-q1".into(),
                stated_grounds: if full {
                    vec!["CN-LCL-41-3".into()]
                } else {
                    vec![]
                },
                planned_count: if full { 120 } else { 0 },
                units: if full {
                    vec!["claims".into(), "ops".into()]
                } else {
                    vec![]
                },
            })
        }
        EventType::UnionBriefed => Payload::UnionBriefed(compliance(full)),
        EventType::AuthorityReported => Payload::AuthorityReported(compliance(!full)),
        EventType::WarnNoticeFiled => Payload::WarnNoticeFiled(compliance(full)),
        EventType::InternalRedeployment => {
            Payload::InternalRedeployment(Box::new(InternalRedeployment {
                worker_ref: "w-000123".into(),
                from_position: full.then(|| "pos-77".into()),
                to_position: "pos-88".into(),
                from_site: full.then(|| "hz.01".into()),
                to_site: full.then(|| "sh-02".into()),
                distance_km: full.then_some(170),
                pay_change_pct: full.then_some(-10),
                accepted: !full,
            }))
        }
        EventType::PositionClosed => Payload::PositionClosed(position(!full)),
        EventType::AiToolRolledOut => Payload::AiToolRolledOut(AiToolRolledOut {
            tool: "Copilot".into(),
            scope: "claims".into(),
            mandatory: full,
        }),
        EventType::AiUsageMeasured => Payload::AiUsageMeasured(AiUsageMeasured {
            scope: "claims".into(),
            period_start: date("2026-01-01"),
            period_end: date("2026-01-31"),
            metric: if full {
                AiMetric::ActiveUsers
            } else {
                AiMetric::Tokens
            },
            value: if full { 120 } else { 9_000_000_000 },
            population: full.then_some(400),
            used_in_performance_review: full,
        }),
        EventType::EventCorrected => Payload::EventCorrected(EventCorrected {
            original_event_id: id(901),
            reason: "wrong legal ground".into(),
            replacement: Box::new(if full {
                payload(EventType::EconomicDismissal, true)
            } else {
                payload(EventType::HiringResumed, false)
            }),
        }),
        EventType::EventRetracted => Payload::EventRetracted(EventRetracted {
            original_event_id: id(902),
            reason: "entered twice".into(),
        }),
    }
}

/// A valid event around `payload`; `full` sets every optional envelope field.
fn event(n: u128, payload: Payload, full: bool) -> Event {
    let names_worker = payload.worker_effect().is_some();
    Event {
        event_id: id(n),
        org_id: "acme-cn".into(),
        site_id: if full { "hz.01".into() } else { "hz".into() },
        jurisdiction: if full { "CN-33".into() } else { "CN".into() },
        effective_date: date("2026-03-01"),
        source: Source {
            system: "workday".into(),
            reference: if full {
                "TERM-2026-0042".into()
            } else {
                String::new()
            },
        },
        correlation_id: full.then(|| "plan-2026-q1".into()),
        causation_id: full.then(|| "decision-17".into()),
        schema_version: SCHEMA_VERSION,
        evidence_confidence: if full {
            EvidenceConfidence::Filed
        } else {
            EvidenceConfidence::Reported
        },
        expected_version: (full && names_worker).then_some(3),
        payload,
    }
}

/// Two valid events per event type: one with every optional field set, one with none.
fn fixtures() -> Vec<Event> {
    let mut out = Vec::new();
    for (i, ty) in EventType::ALL.iter().enumerate() {
        let n = u128::try_from(i).unwrap() * 2;
        out.push(event(n + 1, payload(*ty, true), true));
        out.push(event(n + 2, payload(*ty, false), false));
    }
    out
}

/// A valid resignation on the wire, to break one field at a time.
fn wire_resignation() -> pb::Event {
    event_to_pb(&event(1, payload(EventType::Resignation, true), true))
}

fn violations(e: pb::Event) -> Vec<FieldViolation> {
    match event_from_pb(e) {
        Ok(ok) => panic!("expected violations, got {ok:?}"),
        Err(v) => v.0,
    }
}

fn has(found: &[FieldViolation], field: &str, description: &str) -> bool {
    found
        .iter()
        .any(|v| v.field == field && v.description.contains(description))
}

#[track_caller]
fn assert_has(found: &[FieldViolation], field: &str, description: &str) {
    assert!(
        has(found, field, description),
        "no {field:?} ~ {description:?} in {found:#?}"
    );
}

fn resignation_separation(e: &mut pb::Event) -> &mut pb::Separation {
    match e.payload.as_mut().and_then(|p| p.kind.as_mut()) {
        Some(pb::payload::Kind::Resignation(r)) => r.separation.as_mut().unwrap(),
        other => panic!("not a resignation: {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------------------------

#[test]
fn fixtures_cover_every_event_type_and_are_valid() {
    let all = fixtures();
    for ty in EventType::ALL {
        assert!(
            all.iter().any(|e| e.event_type() == *ty),
            "no fixture for {ty}"
        );
    }
    assert_eq!(all.len(), EventType::ALL.len() * 2);
    for e in &all {
        validate(e).unwrap_or_else(|v| panic!("fixture {} is invalid: {v}", e.event_type()));
    }
}

#[test]
fn every_fixture_round_trips_through_the_wire_message() {
    for e in fixtures() {
        let wire = event_to_pb(&e);
        assert_eq!(event_type_of(&wire), Some(e.event_type()));
        assert_eq!(event_from_pb(wire), Ok(e.clone()), "{}", e.event_type());
    }
}

#[test]
fn every_fixture_round_trips_through_protobuf_bytes() {
    for e in fixtures() {
        let bytes = event_to_pb(&e).encode_to_vec();
        let decoded = pb::Event::decode(bytes.as_slice()).unwrap();
        assert_eq!(decoded, event_to_pb(&e));
        assert_eq!(event_from_pb(decoded), Ok(e.clone()), "{}", e.event_type());
    }
}

#[test]
fn every_enum_value_round_trips() {
    let base = event(1, payload(EventType::Resignation, true), true);
    let with = |f: &dyn Fn(&mut Separation)| {
        let mut e = base.clone();
        let Payload::Resignation(r) = &mut e.payload else {
            unreachable!()
        };
        f(&mut r.separation);
        e
    };
    let mut cases = Vec::new();
    for &x in EmploymentRelationship::ALL {
        cases.push(with(&|s| s.employment_relationship = x));
    }
    for &x in ContractType::ALL {
        cases.push(with(&|s| {
            s.contract_type = x;
            // Only a contract with an agreed end states one.
            if x == ContractType::OpenEnded {
                s.contract_end = None;
            }
        }));
    }
    for &x in Cohort::ALL {
        cases.push(with(&|s| s.cohort = Some(x)));
    }
    for &x in Initiator::ALL {
        cases.push(with(&|s| s.initiator = x));
    }
    for &x in AiAttribution::ALL {
        // ai_system needs an attribution other than none.
        cases.push(with(&|s| {
            s.ai_attributed = x;
            if x == AiAttribution::None {
                s.ai_system = None;
            }
        }));
    }
    for &x in BackfillStatus::ALL {
        cases.push(with(&|s| s.backfill_status = x));
    }
    for &x in EvidenceConfidence::ALL {
        let mut e = base.clone();
        e.evidence_confidence = x;
        cases.push(e);
    }
    for &x in OfferTerms::ALL {
        let Payload::ContractNotRenewed(mut c) = payload(EventType::ContractNotRenewed, true)
        else {
            unreachable!()
        };
        c.offer_terms = Some(x);
        cases.push(event(2, Payload::ContractNotRenewed(c), true));
    }
    for &x in RetirementType::ALL {
        cases.push(event(
            3,
            Payload::Retirement(Box::new(Retirement {
                separation: separation(true),
                retirement_type: x,
            })),
            true,
        ));
    }
    for &x in ChangeType::ALL {
        let a = AdverseChangeRefusedExit {
            separation: separation(false),
            change_type: x,
            change_magnitude_pct: None,
        };
        cases.push(event(
            4,
            Payload::AdverseChangeRefusedExit(Box::new(a)),
            false,
        ));
    }
    for &x in AiMetric::ALL {
        let Payload::AiUsageMeasured(mut a) = payload(EventType::AiUsageMeasured, true) else {
            unreachable!()
        };
        a.metric = x;
        cases.push(event(5, Payload::AiUsageMeasured(a), true));
    }
    for e in cases {
        validate(&e).unwrap();
        let bytes = event_to_pb(&e).encode_to_vec();
        assert_eq!(
            event_from_pb(pb::Event::decode(bytes.as_slice()).unwrap()),
            Ok(e)
        );
    }
}

#[test]
fn domain_to_wire_writes_explicit_enum_values() {
    let e = event(1, payload(EventType::Resignation, false), false);
    let wire = event_to_pb(&e);
    assert_eq!(
        wire.evidence_confidence,
        i32::from(pb::EvidenceConfidence::Reported)
    );
    assert_eq!(wire.schema_version, SCHEMA_VERSION);
    assert_eq!(wire.correlation_id, "");
    let Some(pb::payload::Kind::Resignation(r)) = wire.payload.and_then(|p| p.kind) else {
        unreachable!()
    };
    let s = r.separation.unwrap();
    assert_eq!(s.ai_attributed, i32::from(pb::AiAttribution::None));
    assert_eq!(s.backfill_status, i32::from(pb::BackfillStatus::Unknown));
    assert_eq!(s.cohort, i32::from(pb::Cohort::Unspecified));

    let Payload::ContractNotRenewed(mut c) = payload(EventType::ContractNotRenewed, true) else {
        unreachable!()
    };
    c.offer_terms = Some(OfferTerms::NoOffer);
    let Some(pb::payload::Kind::ContractNotRenewed(w)) =
        payload_to_pb(&Payload::ContractNotRenewed(c.clone())).kind
    else {
        unreachable!()
    };
    assert_eq!(w.offer_terms, i32::from(pb::OfferTerms::NoOffer));
    c.offer_terms = None;
    let Some(pb::payload::Kind::ContractNotRenewed(w)) =
        payload_to_pb(&Payload::ContractNotRenewed(c)).kind
    else {
        unreachable!()
    };
    assert_eq!(w.offer_terms, i32::from(pb::OfferTerms::Unspecified));
}

#[test]
fn wire_defaults_become_domain_defaults() {
    let mut wire = wire_resignation();
    wire.schema_version = 0;
    wire.evidence_confidence = 0;
    wire.correlation_id.clear();
    wire.causation_id.clear();
    let s = resignation_separation(&mut wire);
    s.ai_attributed = 0;
    s.ai_system.clear();
    s.backfill_status = 0;
    s.cohort = 0;
    s.position_id.clear();
    s.legal_ground.clear();
    s.notice_given_on.clear();
    s.severance = None;
    let e = event_from_pb(wire).unwrap();
    assert_eq!(e.schema_version, SCHEMA_VERSION);
    assert_eq!(e.evidence_confidence, EvidenceConfidence::Reported);
    assert_eq!((e.correlation_id, e.causation_id), (None, None));
    let s = e.payload.separation().unwrap();
    assert_eq!(s.ai_attributed, AiAttribution::None);
    assert_eq!(s.ai_system, None);
    assert_eq!(s.backfill_status, BackfillStatus::Unknown);
    assert_eq!(s.cohort, None);
    assert_eq!(
        (
            &s.position_id,
            &s.legal_ground,
            s.notice_given_on,
            &s.severance
        ),
        (&None, &None, None, &None)
    );
}

#[test]
fn redeployment_accepted_defaults_to_true_and_empty_strings_are_absent() {
    let mut e = event(1, payload(EventType::InternalRedeployment, true), true);
    e.expected_version = None;
    let mut wire = event_to_pb(&e);
    let Some(pb::payload::Kind::InternalRedeployment(r)) =
        wire.payload.as_mut().and_then(|p| p.kind.as_mut())
    else {
        unreachable!()
    };
    r.accepted = None;
    r.from_site.clear();
    r.from_position.clear();
    let Payload::InternalRedeployment(r) = event_from_pb(wire).unwrap().payload else {
        unreachable!()
    };
    assert!(r.accepted);
    assert_eq!((r.from_site, r.from_position), (None, None));
    assert_eq!(r.to_site, Some(SiteId::from("sh-02")));
}

#[test]
fn role_automated_without_separation_is_fine_and_money_absent_is_none() {
    let e = event(1, payload(EventType::RoleAutomated, false), false);
    assert_eq!(event_from_pb(event_to_pb(&e)), Ok(e));
    let e = event(
        2,
        payload(EventType::MutualTerminationEmployerProposed, false),
        false,
    );
    assert_eq!(event_from_pb(event_to_pb(&e)), Ok(e));
}

#[test]
fn uuids_may_be_hyphenated_or_simple() {
    let mut wire = wire_resignation();
    let u = Uuid::from_u128(0x0190_a1b2_c3d4_7000_8000_0000_0000_0001);
    wire.event_id = u.simple().to_string();
    assert_eq!(event_from_pb(wire.clone()).unwrap().event_id, EventId(u));
    wire.event_id = u.hyphenated().to_string().to_uppercase();
    assert_eq!(event_from_pb(wire.clone()).unwrap().event_id, EventId(u));
    for bad in [
        u.braced().to_string(),
        u.urn().to_string(),
        "not-a-uuid".into(),
        "0190a1b2".into(),
    ] {
        wire.event_id = bad;
        assert_has(&violations(wire.clone()), "event_id", "must be a UUID");
    }
}

#[test]
fn event_type_of_names_the_kind_without_validating() {
    assert_eq!(event_type_of(&pb::Event::default()), None);
    let no_kind = pb::Event {
        payload: Some(pb::Payload { kind: None }),
        ..pb::Event::default()
    };
    assert_eq!(event_type_of(&no_kind), None);
    let mut broken = wire_resignation();
    broken.event_id = "nope".into();
    resignation_separation(&mut broken).initiator = 99;
    assert_eq!(event_type_of(&broken), Some(EventType::Resignation));
}

#[test]
fn org_and_type_are_read_from_the_bytes_as_a_decode_reads_them() {
    for e in fixtures() {
        let wire = event_to_pb(&e);
        let bytes = wire.encode_to_vec();
        assert_eq!(
            org_and_type_of(&bytes).expect("well formed"),
            (e.org_id.0.as_str(), Some(e.payload.event_type())),
        );
    }
    assert_eq!(org_and_type_of(&[]).expect("empty"), ("", None));
    // A field given twice: the last org, and the last payload with a kind, as a decoder keeps.
    let (hire, resign) = (fixtures()[0].clone(), wire_resignation());
    let mut twice = event_to_pb(&hire).encode_to_vec();
    twice.extend(resign.encode_to_vec());
    twice.extend(
        pb::Event {
            payload: Some(pb::Payload { kind: None }),
            ..pb::Event::default()
        }
        .encode_to_vec(),
    );
    let decoded = pb::Event::decode(twice.as_slice()).expect("decodes");
    assert_eq!(
        org_and_type_of(&twice).expect("well formed"),
        (decoded.org_id.as_str(), event_type_of(&decoded)),
    );
    assert_eq!(event_type_of(&decoded), Some(EventType::Resignation));
    // Cut short: refused, as a decode refuses it.
    let cut = &event_to_pb(&hire).encode_to_vec()[..20];
    assert!(pb::Event::decode(cut).is_err());
    assert!(org_and_type_of(cut).is_err());
}

// ---------------------------------------------------------------------------------------------
// Violations
// ---------------------------------------------------------------------------------------------

#[test]
fn an_empty_event_names_every_required_envelope_field() {
    let found = violations(pb::Event::default());
    for field in [
        "event_id",
        "org_id",
        "site_id",
        "jurisdiction",
        "effective_date",
        "source",
        "payload",
    ] {
        assert!(
            found.iter().any(|v| v.field == field),
            "no violation of {field} in {found:#?}"
        );
    }
    assert_has(&found, "payload", "exactly one event kind");
    assert_has(&found, "event_id", "required");
    assert_has(&found, "effective_date", "required");
    // Ordered by envelope field, no placeholder leaks (event_id is reported once).
    assert_eq!(found.iter().filter(|v| v.field == "event_id").count(), 1);
    assert_eq!(found.first().map(|v| v.field.as_str()), Some("event_id"));
    assert_eq!(found.last().map(|v| v.field.as_str()), Some("payload"));
}

#[test]
fn a_source_without_system_is_reported_on_source_system() {
    let mut wire = wire_resignation();
    wire.source = Some(pb::Source::default());
    assert_has(&violations(wire), "source.system", "required");
}

#[test]
fn bad_ids_and_dates_are_reported_with_their_paths() {
    let mut wire = wire_resignation();
    wire.event_id = "0190a1b2-zzzz-7000-8000-000000000001".into();
    wire.effective_date = "2026-02-30".into();
    resignation_separation(&mut wire).notice_given_on = "15/01/2026".into();
    let found = violations(wire);
    assert_has(&found, "event_id", "must be a UUID");
    assert_has(&found, "effective_date", "YYYY-MM-DD");
    assert_has(
        &found,
        "payload.resignation.separation.notice_given_on",
        "YYYY-MM-DD",
    );
    assert_eq!(found.len(), 3, "{found:#?}");
}

/// A contract end date is a date like any other on the wire, and the domain refuses one on an
/// open-ended contract, both named by their proto paths.
#[test]
fn contract_end_is_a_date_and_only_for_contracts_that_end() {
    let mut wire = wire_resignation();
    resignation_separation(&mut wire).contract_end = "2026-02-30".into();
    let found = violations(wire);
    assert_has(
        &found,
        "payload.resignation.separation.contract_end",
        "YYYY-MM-DD",
    );
    let mut wire = wire_resignation();
    let s = resignation_separation(&mut wire);
    s.contract_type = pb::ContractType::OpenEnded as i32;
    s.contract_end = "2026-12-31".into();
    assert_has(
        &violations(wire),
        "payload.resignation.separation.contract_end",
        "open-ended",
    );
}

#[test]
fn unknown_enum_values_are_reported_at_their_nested_paths() {
    let mut wire = wire_resignation();
    wire.evidence_confidence = 7;
    let s = resignation_separation(&mut wire);
    s.employment_relationship = 99;
    s.contract_type = -1;
    s.cohort = 99;
    s.backfill_status = 99;
    s.ai_attributed = 99;
    let found = violations(wire);
    assert_has(&found, "evidence_confidence", "unknown enum value 7");
    for (field, n) in [
        ("employment_relationship", 99),
        ("contract_type", -1),
        ("cohort", 99),
        ("backfill_status", 99),
        ("ai_attributed", 99),
    ] {
        assert_has(
            &found,
            &format!("payload.resignation.separation.{field}"),
            &format!("unknown enum value {n}"),
        );
    }
    assert_eq!(found.len(), 6, "{found:#?}");

    let e = event(1, payload(EventType::ContractNotRenewed, true), true);
    let mut wire = event_to_pb(&e);
    let Some(pb::payload::Kind::ContractNotRenewed(c)) =
        wire.payload.as_mut().and_then(|p| p.kind.as_mut())
    else {
        unreachable!()
    };
    c.separation.as_mut().unwrap().employment_relationship = 99;
    c.offer_terms = 99;
    let found = violations(wire);
    assert_has(
        &found,
        "payload.contract_not_renewed.separation.employment_relationship",
        "unknown enum value 99",
    );
    assert_has(
        &found,
        "payload.contract_not_renewed.offer_terms",
        "unknown enum value 99",
    );
}

#[test]
fn unspecified_required_enums_name_their_full_path_and_the_allowed_values() {
    let mut wire = wire_resignation();
    resignation_separation(&mut wire).initiator = 0;
    let found = violations(wire);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_has(
        &found,
        "payload.resignation.separation.initiator",
        "required: one of INITIATOR_EMPLOYEE",
    );
    assert!(found[0].description.contains("INITIATOR_EXTERNAL"));
    assert!(!found[0].description.contains("UNSPECIFIED"));

    for (ty, field) in [
        (EventType::Retirement, "payload.retirement.retirement_type"),
        (
            EventType::AdverseChangeRefusedExit,
            "payload.adverse_change_refused_exit.change_type",
        ),
        (
            EventType::AiUsageMeasured,
            "payload.ai_usage_measured.metric",
        ),
        (EventType::WorkerHired, "payload.worker_hired.contract_type"),
    ] {
        let mut wire = event_to_pb(&event(1, payload(ty, true), true));
        match wire.payload.as_mut().and_then(|p| p.kind.as_mut()).unwrap() {
            pb::payload::Kind::Retirement(r) => r.retirement_type = 0,
            pb::payload::Kind::AdverseChangeRefusedExit(a) => a.change_type = 0,
            pb::payload::Kind::AiUsageMeasured(a) => a.metric = 0,
            pb::payload::Kind::WorkerHired(h) => h.contract_type = 0,
            other => unreachable!("{other:?}"),
        }
        assert_has(&violations(wire), field, "required: one of");
    }
}

#[test]
fn missing_messages_are_required() {
    let mut wire = event_to_pb(&event(
        1,
        payload(EventType::ContractNotRenewed, true),
        true,
    ));
    wire.source = None;
    let Some(pb::payload::Kind::ContractNotRenewed(c)) =
        wire.payload.as_mut().and_then(|p| p.kind.as_mut())
    else {
        unreachable!()
    };
    c.separation = None;
    let found = violations(wire);
    assert_has(&found, "source", "required");
    assert_has(
        &found,
        "payload.contract_not_renewed.separation",
        "required",
    );
    assert!(
        !found.iter().any(|v| v.field.starts_with("source.")),
        "{found:#?}"
    );

    let mut wire = wire_resignation();
    wire.payload = Some(pb::Payload { kind: None });
    assert_has(&violations(wire), "payload", "exactly one event kind");
}

#[test]
fn correction_replacements_are_checked_at_their_nested_paths() {
    let e = event(1, payload(EventType::EventCorrected, true), true);
    let corrected = |f: &dyn Fn(&mut pb::EventCorrected)| {
        let mut wire = event_to_pb(&e);
        let Some(pb::payload::Kind::EventCorrected(c)) =
            wire.payload.as_mut().and_then(|p| p.kind.as_mut())
        else {
            unreachable!()
        };
        f(c);
        violations(wire)
    };

    let found = corrected(&|c| c.replacement = None);
    assert_has(&found, "payload.event_corrected.replacement", "required");

    let found = corrected(&|c| c.replacement = Some(Box::new(pb::Payload { kind: None })));
    assert_has(
        &found,
        "payload.event_corrected.replacement",
        "exactly one event kind",
    );

    let found = corrected(&|c| {
        c.original_event_id = "x".into();
        let Some(pb::payload::Kind::EconomicDismissal(d)) =
            c.replacement.as_mut().and_then(|p| p.kind.as_mut())
        else {
            unreachable!()
        };
        let s = d.separation.as_mut().unwrap();
        s.contract_type = 99;
        s.initiator = 0;
    });
    assert_has(
        &found,
        "payload.event_corrected.original_event_id",
        "must be a UUID",
    );
    assert_has(
        &found,
        "payload.event_corrected.replacement.economic_dismissal.separation.contract_type",
        "unknown enum value 99",
    );
    assert_has(
        &found,
        "payload.event_corrected.replacement.economic_dismissal.separation.initiator",
        "required: one of",
    );

    // A correction of a correction is refused without converting (or recursing into) it.
    let found = corrected(&|c| {
        let inner = c.clone();
        c.replacement = Some(Box::new(pb::Payload {
            kind: Some(pb::payload::Kind::EventCorrected(Box::new(inner))),
        }));
    });
    assert_has(
        &found,
        "payload.event_corrected.replacement",
        "cannot replace with another correction",
    );

    // A retraction as replacement converts, and the domain refuses it.
    let found = corrected(&|c| {
        c.replacement = Some(Box::new(payload_to_pb(&payload(
            EventType::EventRetracted,
            true,
        ))));
    });
    assert_has(
        &found,
        "payload.event_corrected.replacement",
        "cannot replace with another correction or retraction",
    );
}

#[test]
fn every_nesting_helper_spells_the_full_path_under_a_replacement() {
    let original = event(1, payload(EventType::Resignation, true), true);
    let correcting = |replacement: Payload| {
        event_to_pb(&event(
            2,
            Payload::EventCorrected(EventCorrected {
                original_event_id: original.event_id,
                reason: "wrong kind".into(),
                replacement: Box::new(replacement),
            }),
            true,
        ))
    };
    let replaced = |wire: &mut pb::Event| -> pb::payload::Kind {
        match wire.payload.as_mut().and_then(|p| p.kind.as_mut()) {
            Some(pb::payload::Kind::EventCorrected(c)) => {
                c.replacement.as_mut().unwrap().kind.take().unwrap()
            }
            other => panic!("not a correction: {other:?}"),
        }
    };
    let put = |wire: &mut pb::Event, kind: pb::payload::Kind| {
        if let Some(pb::payload::Kind::EventCorrected(c)) =
            wire.payload.as_mut().and_then(|p| p.kind.as_mut())
        {
            c.replacement.as_mut().unwrap().kind = Some(kind);
        }
    };

    // agency_release_from -> required_separation -> separation_from -> optional_date
    let mut wire = correcting(payload(EventType::ContractorReleased, true));
    let pb::payload::Kind::ContractorReleased(mut a) = replaced(&mut wire) else {
        unreachable!()
    };
    a.separation.as_mut().unwrap().notice_given_on = "2026-02-30".into();
    put(&mut wire, pb::payload::Kind::ContractorReleased(a.clone()));
    let found = violations(wire.clone());
    assert_eq!(
        found.iter().map(|v| v.field.as_str()).collect::<Vec<_>>(),
        ["payload.event_corrected.replacement.contractor_released.separation.notice_given_on"]
    );
    a.separation = None;
    put(&mut wire, pb::payload::Kind::ContractorReleased(a));
    assert_has(
        &violations(wire),
        "payload.event_corrected.replacement.contractor_released.separation",
        "required",
    );

    // position_from -> optional_id
    let mut wire = correcting(payload(EventType::PositionClosed, true));
    let pb::payload::Kind::PositionClosed(mut c) = replaced(&mut wire) else {
        unreachable!()
    };
    c.linked_separation_id = "not-a-uuid".into();
    put(&mut wire, pb::payload::Kind::PositionClosed(c));
    assert_has(
        &violations(wire),
        "payload.event_corrected.replacement.position_closed.linked_separation_id",
        "must be a UUID",
    );
}

#[test]
fn domain_validation_violations_come_through() {
    let mut wire = wire_resignation();
    wire.org_id = "acme.cn".into();
    resignation_separation(&mut wire).worker_ref = "John Smith".into();
    let found = violations(wire);
    assert_has(&found, "org_id", "A-Z a-z 0-9");
    assert_has(
        &found,
        "payload.resignation.separation.worker_ref",
        "no names, no spaces",
    );

    let mut wire = wire_resignation();
    wire.schema_version = 2;
    assert_has(
        &violations(wire),
        "schema_version",
        "unsupported schema version 2",
    );

    let mut wire = wire_resignation();
    wire.event_id = Uuid::nil().to_string();
    assert_has(&violations(wire), "event_id", "non-nil");

    let e = event(1, payload(EventType::EventRetracted, true), true);
    let mut wire = event_to_pb(&e);
    let Some(pb::payload::Kind::EventRetracted(r)) =
        wire.payload.as_mut().and_then(|p| p.kind.as_mut())
    else {
        unreachable!()
    };
    r.original_event_id = e.event_id.to_string();
    assert_has(
        &violations(wire),
        "payload.event_retracted.original_event_id",
        "cannot retract itself",
    );
}

#[test]
fn structural_and_envelope_domain_violations_are_reported_together() {
    let mut wire = wire_resignation();
    wire.effective_date = "2026-13-01".into();
    wire.org_id = "acme.cn".into();
    wire.jurisdiction = "china".into();
    wire.event_id = Uuid::nil().to_string();
    resignation_separation(&mut wire).initiator = 0;
    let found = violations(wire);
    let fields: Vec<&str> = found.iter().map(|v| v.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "event_id",
            "org_id",
            "jurisdiction",
            "effective_date",
            "payload.resignation.separation.initiator"
        ],
        "{found:#?}"
    );
}

#[test]
fn every_problem_is_collected_not_just_the_first() {
    let mut wire = event_to_pb(&event(1, payload(EventType::AiUsageMeasured, true), true));
    wire.event_id = "bad".into();
    let Some(pb::payload::Kind::AiUsageMeasured(a)) =
        wire.payload.as_mut().and_then(|p| p.kind.as_mut())
    else {
        unreachable!()
    };
    a.period_start = String::new();
    a.period_end = "2026-02-30".into();
    a.metric = 42;
    let found = violations(wire);
    assert_has(&found, "event_id", "must be a UUID");
    assert_has(&found, "payload.ai_usage_measured.period_start", "required");
    assert_has(&found, "payload.ai_usage_measured.period_end", "YYYY-MM-DD");
    assert_has(
        &found,
        "payload.ai_usage_measured.metric",
        "unknown enum value 42",
    );
    assert_eq!(found.len(), 4, "{found:#?}");
}

#[test]
fn violations_serialize_for_error_details() {
    // The gateway turns violations into error details; they stay plain field/description pairs.
    let found = violations(pb::Event::default());
    let json = serde_json::to_value(Violations(found)).unwrap();
    assert!(json
        .as_array()
        .unwrap()
        .iter()
        .all(|v| v["field"].is_string() && v["description"].is_string()));
}

// ---------------------------------------------------------------------------------------------
// Robustness
// ---------------------------------------------------------------------------------------------

fn fixture_bytes() -> &'static [Vec<u8>] {
    static BYTES: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    BYTES.get_or_init(|| {
        fixtures()
            .iter()
            .map(|e| event_to_pb(e).encode_to_vec())
            .collect()
    })
}

/// The separation inside a wire payload, looking into a correction's replacement too.
fn wire_separation(p: &mut pb::Payload) -> Option<&mut Option<pb::Separation>> {
    use pb::payload::Kind as K;
    match p.kind.as_mut()? {
        K::ContractNotRenewed(x) => Some(&mut x.separation),
        K::EconomicDismissal(x) => Some(&mut x.separation),
        K::RoleAutomated(x) => Some(&mut x.separation),
        K::MutualTerminationEmployerProposed(x) => Some(&mut x.separation),
        K::AdverseChangeRefusedExit(x) => Some(&mut x.separation),
        K::Resignation(x) => Some(&mut x.separation),
        K::Retirement(x) => Some(&mut x.separation),
        K::DismissalForCause(x) => Some(&mut x.separation),
        K::ContractorReleased(x) | K::DispatchedWorkerReturned(x) => Some(&mut x.separation),
        K::EventCorrected(c) => wire_separation(c.replacement.as_deref_mut()?),
        _ => None,
    }
}

/// One edit of a valid wire event: which field, and the text or number put there.
fn apply(e: &mut pb::Event, field: u8, text: String, n: i32) {
    match field {
        0 => e.event_id = text,
        1 => e.effective_date = text,
        2 => e.org_id = text,
        3 => e.evidence_confidence = n,
        4 => e.schema_version = n.unsigned_abs(),
        5 => e.source = None,
        6 => e.payload = Some(pb::Payload { kind: None }),
        7 => e.expected_version = Some(u64::from(n.unsigned_abs())),
        8 => e.correlation_id = text,
        _ => {
            let Some(slot) = e.payload.as_mut().and_then(wire_separation) else {
                return;
            };
            let Some(s) = slot.as_mut() else { return };
            match field {
                9 => s.employment_relationship = n,
                10 => s.contract_type = n,
                11 => s.initiator = n,
                12 => s.cohort = n,
                13 => s.backfill_status = n,
                14 => s.ai_attributed = n,
                15 => s.notice_given_on = text,
                16 => s.worker_ref = text,
                17 => s.legal_ground = text,
                _ => *slot = None,
            }
        }
    }
}

fn edit_text() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            String::new(),
            "0190a1b2-c3d4-7000-8000-000000000099".to_owned(),
            "0190a1b2c3d470008000000000000099".to_owned(),
            "00000000-0000-0000-0000-000000000000".to_owned(),
            "2026-02-30".to_owned(),
            "2026-03-01".to_owned(),
            "1899-12-31".to_owned(),
            "John Smith".to_owned(),
            "acme.cn".to_owned(),
            "CN-LCL-41".to_owned(),
            " ".to_owned(),
        ]),
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn edited_wire_events_never_panic_and_what_converts_is_valid(
        which in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((0u8..19, edit_text(), prop_oneof![-2i32..8, any::<i32>()]), 1..5),
    ) {
        let all = fixtures();
        let mut wire = event_to_pb(&all[which.index(all.len())]);
        for (field, text, n) in edits {
            apply(&mut wire, field, text, n);
        }
        let ty = event_type_of(&wire);
        match event_from_pb(wire) {
            Ok(ok) => {
                prop_assert_eq!(Some(ok.event_type()), ty);
                prop_assert!(validate(&ok).is_ok());
                prop_assert_eq!(event_from_pb(event_to_pb(&ok)), Ok(ok.clone()));
            }
            Err(v) => prop_assert!(!v.is_empty()),
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(e) = pb::Event::decode(bytes.as_slice()) {
            let _ = event_type_of(&e);
            let _ = event_from_pb(e);
        }
    }

    #[test]
    fn mutated_valid_events_never_panic(
        which in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..4),
    ) {
        let all = fixture_bytes();
        let mut bytes = all[which.index(all.len())].clone();
        for (at, b, op) in edits {
            let i = at.index(bytes.len().max(1));
            match op {
                0 if i < bytes.len() => bytes[i] = b,
                1 => bytes.insert(i.min(bytes.len()), b),
                _ if i < bytes.len() => { bytes.remove(i); }
                _ => {}
            }
        }
        if let Ok(e) = pb::Event::decode(bytes.as_slice()) {
            let ty = event_type_of(&e);
            if let Ok(ok) = event_from_pb(e) {
                // Whatever converts is valid and survives another round trip.
                prop_assert_eq!(Some(ok.event_type()), ty);
                prop_assert!(validate(&ok).is_ok());
                prop_assert_eq!(event_from_pb(event_to_pb(&ok)), Ok(ok.clone()));
            }
        }
    }
}
