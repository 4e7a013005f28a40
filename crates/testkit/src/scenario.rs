//! Scenario builders: valid domain events with sensible defaults, so a test states only what it
//! is about (`scenario::hire("acme", "w-1")`, `scenario::resign("acme", "w-1").closed()`).

use wfl_domain::{
    ContractType, Date, EmploymentRelationship, Event, EventId, EvidenceConfidence, Initiator,
    OrgId, Payload, Resignation, Separation, SiteId, Source, WorkerHired, WorkerRef,
    SCHEMA_VERSION,
};

/// The effective date scenario events use unless told otherwise.
#[must_use]
pub fn default_date() -> Date {
    Date::from_ymd(2026, 3, 2).expect("2026-03-02 is a date")
}

/// An event with a fresh v7 id in `org` (site `main`, jurisdiction `CN`).
#[must_use]
pub fn event(org: &str, payload: Payload) -> Event {
    Event {
        event_id: EventId::new_v7(),
        org_id: OrgId::from(org),
        site_id: SiteId::from("main"),
        jurisdiction: "CN".to_owned(),
        effective_date: default_date(),
        source: Source {
            system: "testkit".to_owned(),
            reference: String::new(),
        },
        correlation_id: None,
        causation_id: None,
        schema_version: SCHEMA_VERSION,
        evidence_confidence: EvidenceConfidence::Reported,
        expected_version: None,
        payload,
    }
}

/// A hire of `worker` (open-ended employee).
#[must_use]
pub fn hire(org: &str, worker: &str) -> Event {
    event(
        org,
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
        }),
    )
}

/// A baseline load of `worker` (opening headcount).
#[must_use]
pub fn baseline(org: &str, worker: &str) -> Event {
    let mut e = hire(org, worker);
    if let Payload::WorkerHired(h) = &mut e.payload {
        h.baseline = true;
    }
    e
}

/// The separation block of an employee-initiated exit for business reasons.
#[must_use]
pub fn separation(worker: &str) -> Separation {
    Separation {
        worker_ref: WorkerRef::from(worker),
        employment_relationship: EmploymentRelationship::Employee,
        contract_type: ContractType::OpenEnded,
        cohort: None,
        position_id: None,
        position_closed: false,
        backfill_status: wfl_domain::BackfillStatus::Unknown,
        initiator: Initiator::Employee,
        reason_personal: false,
        legal_ground: None,
        ai_attributed: wfl_domain::AiAttribution::None,
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

/// A resignation of `worker`.
#[must_use]
pub fn resign(org: &str, worker: &str) -> Event {
    event(
        org,
        Payload::Resignation(Box::new(Resignation {
            separation: separation(worker),
            regrettable: false,
            pressured: false,
        })),
    )
}
