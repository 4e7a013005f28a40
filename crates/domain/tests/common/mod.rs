//! Shared fixtures for the domain's integration tests: event builders with a fixed envelope, one
//! valid sample payload per event type, and a given/when/then harness over [`LedgerState`] in the
//! style of cqrs-es's `TestFramework`.
//!
//! Each test file includes this module and uses only part of it.
#![allow(dead_code)]

use std::cell::Cell;
use std::collections::HashMap;
use wfl_domain::{
    AdverseChangeRefusedExit, AgencyRelease, AiAttribution, AiMetric, AiToolRolledOut,
    AiUsageMeasured, BackfillStatus, ChangeType, ComplianceStep, Conflict, ContractNotRenewed,
    ContractRenewed, ContractType, Date, DismissalForCause, EconomicDismissal,
    EmploymentRelationship, Event, EventCorrected, EventId, EventRetracted, EvidenceConfidence,
    GraduateIntake, HiringPaused, HiringResumed, History, HoursReduced, Initiator,
    InternalRedeployment, LedgerState, Money, MutualTerminationEmployerProposed, OrgId,
    OriginalEvent, Payload, PositionChange, Resignation, RestructuringPlanAnnounced, Retirement,
    RetirementType, RoleAutomated, Separation, SiteId, Source, TemporaryLayoff, WorkerHired,
    WorkerRef,
};

/// The org most tests record into.
pub const ORG: &str = "acme";
/// A second, unrelated org.
pub const OTHER_ORG: &str = "globex";

// ---------------------------------------------------------------------------------------------
// Envelope
// ---------------------------------------------------------------------------------------------

thread_local! {
    static NEXT_ID: Cell<u128> = const { Cell::new(1) };
}

/// A fresh, non-nil event id. Ids are a per-thread counter, so a test sees the same ids on every
/// run and never reads a clock.
pub fn next_id() -> EventId {
    NEXT_ID.with(|n| {
        let id = n.get();
        n.set(id + 1);
        EventId(uuid::Uuid::from_u128(id))
    })
}

/// A calendar date that is known to exist.
pub fn date(y: i32, m: u32, d: u32) -> Date {
    Date::from_ymd(y, m, d).expect("a valid test date")
}

/// The fixed effective date of test events.
pub fn day() -> Date {
    date(2026, 3, 2)
}

/// An event in `org` with the fixed envelope: site `main`, jurisdiction `CN`, effective
/// 2026-03-02, source system `test`, schema version 1, no expected version.
pub fn ev(org: &str, payload: Payload) -> Event {
    Event {
        event_id: next_id(),
        org_id: OrgId::from(org),
        site_id: SiteId::from("main"),
        jurisdiction: "CN".to_owned(),
        effective_date: day(),
        source: Source {
            system: "test".to_owned(),
            reference: String::new(),
        },
        correlation_id: None,
        causation_id: None,
        schema_version: 1,
        evidence_confidence: EvidenceConfidence::Reported,
        expected_version: None,
        payload,
    }
}

/// `event` with `expected_version` set.
pub fn expecting(version: u64, event: Event) -> Event {
    Event {
        expected_version: Some(version),
        ..event
    }
}

// ---------------------------------------------------------------------------------------------
// Payloads
// ---------------------------------------------------------------------------------------------

/// A new hire of an open-ended employee.
pub fn hire(worker: &str) -> Payload {
    Payload::WorkerHired(WorkerHired {
        worker_ref: WorkerRef::from(worker),
        employment_relationship: EmploymentRelationship::Employee,
        contract_type: ContractType::OpenEnded,
        cohort: None,
        position_id: None,
        baseline: false,
        avg_weekly_hours: None,
        months_employed_last_12: None,
        contract_end: None,
    })
}

/// A baseline load (opening headcount) of a worker.
pub fn baseline(worker: &str) -> Payload {
    match hire(worker) {
        Payload::WorkerHired(h) => Payload::WorkerHired(WorkerHired {
            baseline: true,
            ..h
        }),
        _ => unreachable!(),
    }
}

/// The separation block of an employer-initiated exit for business reasons.
pub fn sep(worker: &str) -> Separation {
    Separation {
        worker_ref: WorkerRef::from(worker),
        employment_relationship: EmploymentRelationship::Employee,
        contract_type: ContractType::OpenEnded,
        cohort: None,
        position_id: None,
        position_closed: false,
        backfill_status: BackfillStatus::Unknown,
        initiator: Initiator::Employer,
        reason_personal: false,
        legal_ground: None,
        ai_attributed: AiAttribution::None,
        ai_system: None,
        tenure_months: None,
        protected_flags: Vec::new(),
        severance: None,
        notice_given_on: None,
        avg_weekly_hours: None,
        months_employed_last_12: None,
        contract_end: None,
    }
}

/// A resignation carrying `separation`.
pub fn resignation_of(separation: Separation) -> Payload {
    Payload::Resignation(Box::new(Resignation {
        separation,
        regrettable: false,
        pressured: false,
    }))
}

/// A plain resignation.
pub fn resign(worker: &str) -> Payload {
    resignation_of(Separation {
        initiator: Initiator::Employee,
        ..sep(worker)
    })
}

/// A fixed-term contract that ended without a renewal offer.
pub fn not_renewed(worker: &str) -> ContractNotRenewed {
    ContractNotRenewed {
        separation: Separation {
            contract_type: ContractType::FixedTerm,
            ..sep(worker)
        },
        renewal_offered: false,
        offer_terms: None,
        employee_refused: false,
        would_trigger_open_ended: false,
        consecutive_fixed_terms: None,
    }
}

/// An economic dismissal carrying `separation`.
pub fn dismissal_of(separation: Separation) -> Payload {
    Payload::EconomicDismissal(Box::new(EconomicDismissal {
        separation,
        selection_criteria: None,
        plan_id: None,
    }))
}

/// An automated role with no worker separated.
pub fn role_automated(role: &str) -> Payload {
    Payload::RoleAutomated(Box::new(RoleAutomated {
        role_id: role.to_owned(),
        ai_system: "claims-bot".to_owned(),
        separation: None,
        retraining_offered: false,
        redeployment_offered: false,
    }))
}

/// An automated role whose holder was separated.
pub fn role_automated_with(worker: &str) -> Payload {
    match role_automated("claims-handler") {
        Payload::RoleAutomated(r) => Payload::RoleAutomated(Box::new(RoleAutomated {
            separation: Some(Separation {
                ai_attributed: AiAttribution::CitedByEmployer,
                ai_system: Some("claims-bot".to_owned()),
                ..sep(worker)
            }),
            ..*r
        })),
        _ => unreachable!(),
    }
}

fn agency_release(worker: &str, relationship: EmploymentRelationship) -> AgencyRelease {
    AgencyRelease {
        separation: Separation {
            employment_relationship: relationship,
            ..sep(worker)
        },
        agency_id: Some("agency-7".to_owned()),
        ground: None,
    }
}

/// One payload of every kind that ends `worker`'s employment, in declaration order.
pub fn every_separation(worker: &str) -> Vec<Payload> {
    vec![
        Payload::ContractNotRenewed(Box::new(not_renewed(worker))),
        dismissal_of(sep(worker)),
        role_automated_with(worker),
        Payload::MutualTerminationEmployerProposed(Box::new(MutualTerminationEmployerProposed {
            separation: Separation {
                initiator: Initiator::Mutual,
                ..sep(worker)
            },
            package: Some(cny(3_000_000)),
        })),
        Payload::AdverseChangeRefusedExit(Box::new(AdverseChangeRefusedExit {
            separation: Separation {
                initiator: Initiator::Employee,
                ..sep(worker)
            },
            change_type: ChangeType::Location,
            change_magnitude_pct: None,
        })),
        resign(worker),
        Payload::Retirement(Box::new(Retirement {
            separation: sep(worker),
            retirement_type: RetirementType::Statutory,
        })),
        Payload::DismissalForCause(Box::new(DismissalForCause {
            separation: Separation {
                reason_personal: true,
                ..sep(worker)
            },
            cause_code: "misconduct".to_owned(),
            summary: false,
        })),
        Payload::ContractorReleased(Box::new(agency_release(
            worker,
            EmploymentRelationship::Contractor,
        ))),
        Payload::DispatchedWorkerReturned(Box::new(agency_release(
            worker,
            EmploymentRelationship::Dispatched,
        ))),
    ]
}

/// A fixed-term contract renewed.
pub fn renew(worker: &str) -> Payload {
    Payload::ContractRenewed(ContractRenewed {
        worker_ref: WorkerRef::from(worker),
        new_contract_end: Some(date(2029, 3, 1)),
        consecutive_fixed_terms: Some(2),
    })
}

/// Weekly hours cut from `before` to `after`.
pub fn hours_cut(worker: &str, before: u32, after: u32) -> Payload {
    Payload::HoursReduced(HoursReduced {
        worker_ref: WorkerRef::from(worker),
        hours_before: before,
        hours_after: after,
        expected_months: 6,
    })
}

/// A 30-day temporary layoff.
pub fn layoff(worker: &str) -> Payload {
    Payload::TemporaryLayoff(TemporaryLayoff {
        worker_ref: WorkerRef::from(worker),
        expected_duration_days: 30,
        recall_expected: true,
    })
}

/// A move to another position.
pub fn redeploy(worker: &str) -> Payload {
    Payload::InternalRedeployment(Box::new(InternalRedeployment {
        worker_ref: WorkerRef::from(worker),
        from_position: Some("P-1".to_owned()),
        to_position: "P-2".to_owned(),
        from_site: None,
        to_site: None,
        distance_km: None,
        pay_change_pct: None,
        accepted: true,
    }))
}

/// One payload of every kind that needs, and keeps, an employed worker.
pub fn every_touch(worker: &str) -> Vec<Payload> {
    vec![
        renew(worker),
        hours_cut(worker, 40, 30),
        layoff(worker),
        redeploy(worker),
    ]
}

/// A correction of `original` with `replacement`.
pub fn correct(original: &Event, replacement: Payload) -> Payload {
    Payload::EventCorrected(EventCorrected {
        original_event_id: original.event_id,
        reason: "wrong data entered".to_owned(),
        replacement: Box::new(replacement),
    })
}

/// A retraction of `original`.
pub fn retract(original: &Event) -> Payload {
    retract_id(original.event_id)
}

/// A retraction of the event with this id.
pub fn retract_id(id: EventId) -> Payload {
    Payload::EventRetracted(EventRetracted {
        original_event_id: id,
        reason: "recorded in error".to_owned(),
    })
}

/// A position re-filled, optionally naming the separation it re-classifies.
pub fn backfilled(linked: Option<EventId>) -> Payload {
    Payload::PositionBackfilled(PositionChange {
        position_id: "P-1".to_owned(),
        linked_separation_id: linked,
    })
}

/// A position closed, optionally naming the separation it re-classifies.
pub fn closed(linked: Option<EventId>) -> Payload {
    Payload::PositionClosed(PositionChange {
        position_id: "P-1".to_owned(),
        linked_separation_id: linked,
    })
}

/// An amount in fen.
pub fn cny(amount_minor: i64) -> Money {
    Money {
        amount_minor,
        currency: "CNY".to_owned(),
    }
}

/// AI usage measured over March 2026.
pub fn ai_usage(value: u64, population: Option<u64>) -> AiUsageMeasured {
    AiUsageMeasured {
        scope: "claims".to_owned(),
        period_start: date(2026, 3, 1),
        period_end: date(2026, 3, 31),
        metric: AiMetric::ActiveUsers,
        value,
        population,
        used_in_performance_review: false,
    }
}

fn compliance() -> ComplianceStep {
    ComplianceStep {
        plan_id: "plan-2026".to_owned(),
        recipient: "works council".to_owned(),
        document_ref: "DOC-1".to_owned(),
        ai_checkbox: false,
    }
}

fn intake() -> GraduateIntake {
    GraduateIntake {
        cohort_year: 2026,
        planned: 20,
        baseline: 50,
        actual: None,
    }
}

/// One valid payload of every event type, in the order of [`wfl_domain::EventType::ALL`].
/// Corrections and retractions name `original`, which should be an earlier event.
pub fn samples(worker: &str, original: EventId) -> Vec<Payload> {
    let separations = every_separation(worker);
    let [not_renewed, economic, automated, mutual, adverse, resignation, retirement, cause, contractor, dispatched]: [Payload; 10] =
        separations.try_into().expect("ten separation kinds");
    vec![
        hire(worker),
        renew(worker),
        Payload::GraduateIntakeSet(intake()),
        Payload::GraduateIntakeReduced(GraduateIntake {
            actual: Some(12),
            ..intake()
        }),
        Payload::HiringPaused(HiringPaused {
            scope: "claims".to_owned(),
            reqs_frozen: 4,
            reqs_cancelled: 1,
            until: Some(date(2026, 6, 30)),
        }),
        Payload::HiringResumed(HiringResumed {
            scope: "claims".to_owned(),
            reqs_reopened: 2,
        }),
        backfilled(Some(original)),
        not_renewed,
        economic,
        automated,
        mutual,
        adverse,
        resignation,
        retirement,
        cause,
        contractor,
        dispatched,
        layoff(worker),
        hours_cut(worker, 40, 30),
        Payload::RestructuringPlanAnnounced(RestructuringPlanAnnounced {
            plan_id: "plan-2026".to_owned(),
            stated_grounds: vec!["CN-LCL-41-3".to_owned()],
            planned_count: 25,
            units: vec!["claims".to_owned()],
        }),
        Payload::UnionBriefed(compliance()),
        Payload::AuthorityReported(compliance()),
        Payload::WarnNoticeFiled(ComplianceStep {
            ai_checkbox: true,
            ..compliance()
        }),
        redeploy(worker),
        closed(Some(original)),
        Payload::AiToolRolledOut(AiToolRolledOut {
            tool: "copilot".to_owned(),
            scope: "claims".to_owned(),
            mandatory: false,
        }),
        Payload::AiUsageMeasured(ai_usage(40, Some(50))),
        Payload::EventCorrected(EventCorrected {
            original_event_id: original,
            reason: "typo in the worker's contract type".to_owned(),
            replacement: Box::new(hire(worker)),
        }),
        retract_id(original),
        Payload::DeathOrDisability(Box::new(wfl_domain::DeathOrDisability {
            separation: sep(worker),
            disability: true,
        })),
        Payload::SiteClosed(wfl_domain::SiteClosed {
            operating_unit: Some("line-2".into()),
            temporary: false,
        }),
        Payload::SiteRelocated(wfl_domain::SiteRelocated {
            to_site: Some(SiteId::from("reno-1")),
            distance_km: 420,
        }),
    ]
}

// ---------------------------------------------------------------------------------------------
// Given / when / then
// ---------------------------------------------------------------------------------------------

/// The committed events a test starts from, as the ledger would know them.
#[derive(Debug, Default)]
pub struct Log(pub HashMap<EventId, OriginalEvent>);

impl History for Log {
    fn original(&self, id: &EventId) -> Option<OriginalEvent> {
        self.0.get(id).cloned()
    }
}

/// A ledger state built from committed events.
#[derive(Debug, Default)]
pub struct Given {
    pub state: LedgerState,
    pub history: Log,
}

/// Commits `events` in order, failing the test if any of them is refused. Takes `&[Event]` or,
/// to reuse events the test holds on to, an array of references: `given([&hire, &resignation])`.
pub fn given<'a>(events: impl IntoIterator<Item = &'a Event>) -> Given {
    let mut g = Given::default();
    for e in events {
        g.commit(e);
    }
    g
}

impl Given {
    /// What `decide` says about `event` in this state.
    pub fn when(&self, event: &Event) -> Result<(), Conflict> {
        self.state.decide(event, &self.history)
    }

    /// Decides and, when accepted, applies `event`, as the ledger does.
    pub fn commit(&mut self, event: &Event) {
        if let Err(conflict) = self.when(event) {
            panic!(
                "given event {} ({}) was refused: {conflict}",
                event.event_id,
                event.event_type()
            );
        }
        self.history
            .0
            .insert(event.event_id, OriginalEvent::of(event));
        self.state.apply(event, &self.history);
    }

    /// Whether `worker` of [`ORG`] is employed.
    pub fn employed(&self, worker: &str) -> bool {
        self.state
            .is_employed(&OrgId::from(ORG), &WorkerRef::from(worker))
    }

    /// The version of `worker`'s stream in [`ORG`].
    pub fn version(&self, worker: &str) -> u64 {
        self.state
            .version(&OrgId::from(ORG), &WorkerRef::from(worker))
    }
}

/// Then: the event is accepted.
#[track_caller]
pub fn then_ok(result: Result<(), Conflict>) {
    if let Err(conflict) = result {
        panic!("expected the event to be accepted, got: {conflict}");
    }
}

/// Then: a lifecycle conflict whose message contains `needle`.
#[track_caller]
pub fn then_lifecycle(result: Result<(), Conflict>, needle: &str) {
    match result {
        Err(Conflict::Lifecycle(msg)) => assert!(
            msg.contains(needle),
            "expected a lifecycle conflict mentioning {needle:?}, got {msg:?}"
        ),
        other => panic!("expected a lifecycle conflict mentioning {needle:?}, got {other:?}"),
    }
}
