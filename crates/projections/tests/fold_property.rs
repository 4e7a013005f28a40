//! Projections are pure folds of the ledger prefix (design.md invariant 6), checked on random valid
//! histories: hires (baseline and new), separations of every kind, position links, corrections
//! (also of corrections), retractions, redeployments and signals. Each candidate event goes through
//! the domain's own `LedgerState::decide`, so only sequences the ledger would commit are folded.
//!
//! Properties:
//! (a) folding twice gives equal states; folding a prefix, serialising the state to JSON,
//!     deserialising it and folding the rest gives the same state too;
//! (b) the state after the first n events equals a fresh fold of only those n, and the final
//!     state read at n (`Projection::at`, cheap as-of) answers exactly as that fresh fold;
//! (c) headcount reconciles in every period (day, month, quarter; any org, site, cohort) and each
//!     period opens where the previous one closed;
//! (d) against the ledger's own model: final headcount and live separations agree;
//! (e) the tallies kept at fold time answer the separations view exactly as the entries do,
//!     after every folded event, after a keyed restore, and for every query;
//! (f) the tallies as of any sequence (a snapshot moved over the events between) answer as a
//!     fresh fold of that prefix does, whatever the snapshot spacing, with or without the
//!     snapshots a fold takes (a restored state has none).

use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use wfl_domain::{
    AdverseChangeRefusedExit, AgencyRelease, AiAttribution, AiMetric, AiToolRolledOut,
    AiUsageMeasured, BackfillStatus, ChangeType, Cohort, ComplianceStep, ContractNotRenewed,
    ContractRenewed, ContractType, Date, DismissalForCause, EconomicDismissal,
    EmploymentRelationship, Event, EventCorrected, EventId, EventRetracted, EvidenceConfidence,
    GraduateIntake, HiringPaused, HiringResumed, History, HoursReduced, Initiator,
    InternalRedeployment, LedgerState, MutualTerminationEmployerProposed, OrgId, OriginalEvent,
    Payload, PositionChange, Resignation, Retirement, RetirementType, RoleAutomated, Separation,
    SiteId, Source, TemporaryLayoff, WorkerHired, WorkerRef,
};
use wfl_projections::views::{
    AiAdoptionView, AiShare, CohortExposureView, Entry, HeadcountView, Period, PopulationIndex,
    Projection, Query, SeparationsView, WorkerLink,
};
use wfl_projections::Population;
use wfl_projections::PopulationQuery;

const ORGS: [&str; 2] = ["acme", "globex"];
const SITES: [&str; 3] = ["sh", "bj", "gz"];
const COHORTS: [Cohort; 3] = [
    Cohort::GraduateTrainee,
    Cohort::EntryLevel,
    Cohort::Experienced,
];

fn id(n: u64) -> EventId {
    serde_json::from_str(&format!("\"00000000-0000-0000-0000-{n:012x}\"")).expect("a uuid")
}

fn day(offset: u16) -> Date {
    Date::parse("2026-01-01")
        .expect("a valid date")
        .add_days(i32::from(offset % 400))
}

struct Originals(BTreeMap<EventId, OriginalEvent>);

impl History for Originals {
    fn original(&self, id: &EventId) -> Option<OriginalEvent> {
        self.0.get(id).cloned()
    }
}

/// Builds a valid history from random choices, asking the domain's lifecycle rules about each event.
struct Generator {
    state: LedgerState,
    originals: Originals,
    events: Vec<Event>,
    workers: Vec<(OrgId, WorkerRef)>,
    retracted: BTreeSet<EventId>,
}

type Choice = (u8, u8, u8, u16);

impl Generator {
    fn run(choices: &[Choice]) -> Self {
        let mut g = Self {
            state: LedgerState::new(),
            originals: Originals(BTreeMap::new()),
            events: Vec::new(),
            workers: Vec::new(),
            retracted: BTreeSet::new(),
        };
        for c in choices {
            if let Some((org, site, payload)) = g.candidate(*c) {
                g.commit(org, site, day(c.3), payload);
            }
        }
        g
    }

    fn commit(&mut self, org: OrgId, site: SiteId, date: Date, payload: Payload) {
        // Each site in its own province, so jurisdiction filters have something to split.
        let jurisdiction = match site.as_str() {
            "sh" => "CN-31",
            "bj" => "CN-11",
            _ => "CN-44",
        }
        .to_owned();
        let n = self.events.len() as u64 + 1;
        let event = Event {
            event_id: id(n),
            org_id: org,
            site_id: site,
            jurisdiction,
            effective_date: date,
            source: Source::default(),
            correlation_id: n.is_multiple_of(3).then(|| "plan-1".to_owned()),
            causation_id: None,
            schema_version: 1,
            evidence_confidence: EvidenceConfidence::Reported,
            expected_version: None,
            payload,
        };
        if self.state.decide(&event, &self.originals).is_err() {
            return;
        }
        self.state.apply(&event, &self.originals);
        self.originals
            .0
            .insert(event.event_id, OriginalEvent::of(&event));
        if let Payload::EventRetracted(r) = &event.payload {
            self.retracted.insert(r.original_event_id);
        }
        if let Some((w, _)) = event.payload.worker_effect() {
            let key = (event.org_id.clone(), w.clone());
            if !self.workers.contains(&key) {
                self.workers.push(key);
            }
        }
        self.events.push(event);
    }

    fn employed(&self) -> Vec<(OrgId, WorkerRef)> {
        self.workers
            .iter()
            .filter(|(o, w)| self.state.is_employed(o, w))
            .cloned()
            .collect()
    }

    fn pick<T: Clone>(items: &[T], n: u8) -> Option<T> {
        (!items.is_empty()).then(|| items[usize::from(n) % items.len()].clone())
    }

    fn candidate(&self, (op, a, b, d): Choice) -> Option<(OrgId, SiteId, Payload)> {
        let org = OrgId::from(ORGS[usize::from(a.is_multiple_of(5))]);
        let site = SiteId::from(SITES[usize::from(b) % SITES.len()]);
        match op % 20 {
            0..=5 => {
                // A new worker, or (sometimes) a rehire of one who left.
                let left: Vec<_> = self
                    .workers
                    .iter()
                    .filter(|(o, w)| !self.state.is_employed(o, w))
                    .cloned()
                    .collect();
                let (org, worker) = match Self::pick(&left, a) {
                    Some(w) if op % 20 == 5 => w,
                    _ => (
                        org,
                        WorkerRef::from(format!("w{}", self.events.len()).as_str()),
                    ),
                };
                let hire = WorkerHired {
                    worker_ref: worker,
                    employment_relationship: EmploymentRelationship::ALL
                        [usize::from(b) % EmploymentRelationship::ALL.len()],
                    contract_type: ContractType::ALL[usize::from(a) % ContractType::ALL.len()],
                    cohort: (!d.is_multiple_of(4)).then(|| COHORTS[usize::from(d) % COHORTS.len()]),
                    position_id: None,
                    baseline: op % 20 <= 2,
                    // WARN part-time limbs (20 CFR 639.3(h)): hours around the 20-hour line, and
                    // baseline loads employed fewer than 12 months.
                    avg_weekly_hours: [None, Some(12), Some(19), Some(20), Some(40)]
                        [usize::from(d / 4) % 5],
                    months_employed_last_12: (op % 20 <= 2)
                        .then_some(
                            [None, Some(2), Some(5), Some(11), Some(12)][usize::from(d / 8) % 5],
                        )
                        .flatten(),
                    contract_end: None,
                };
                Some((org, site, Payload::WorkerHired(hire)))
            }
            6..=10 => {
                let (org, worker) = Self::pick(&self.employed(), a)?;
                Some((org, site, separation(worker, b, d)))
            }
            11..=12 => {
                let seps: Vec<&Event> = self
                    .events
                    .iter()
                    .filter(|e| e.payload.separation().is_some())
                    .collect();
                let target = Self::pick(&seps, a)?;
                let change = PositionChange {
                    position_id: "pos".to_owned(),
                    linked_separation_id: Some(target.event_id),
                };
                let payload = if b.is_multiple_of(2) {
                    Payload::PositionBackfilled(change)
                } else {
                    Payload::PositionClosed(change)
                };
                Some((target.org_id.clone(), site, payload))
            }
            13..=14 => {
                let target = Self::pick(&self.events, a)?;
                let replacement = self.tweak(&target.payload, b, d);
                Some((
                    target.org_id.clone(),
                    site,
                    Payload::EventCorrected(EventCorrected {
                        original_event_id: target.event_id,
                        reason: "fix".to_owned(),
                        replacement: Box::new(replacement),
                    }),
                ))
            }
            15..=16 => {
                // Retractions of recent events are more often allowed (latest lifecycle event).
                let recent = &self.events[self.events.len().saturating_sub(6)..];
                let target = Self::pick(recent, a)?;
                Some((
                    target.org_id.clone(),
                    site,
                    Payload::EventRetracted(EventRetracted {
                        original_event_id: target.event_id,
                        reason: "error".to_owned(),
                    }),
                ))
            }
            17 => {
                let (org, worker) = Self::pick(&self.employed(), a)?;
                let payload = match b % 5 {
                    0 | 1 => Payload::InternalRedeployment(Box::new(InternalRedeployment {
                        worker_ref: worker,
                        from_position: None,
                        to_position: "p2".to_owned(),
                        from_site: None,
                        to_site: Some(SiteId::from(SITES[usize::from(d) % SITES.len()])),
                        distance_km: None,
                        pay_change_pct: None,
                        accepted: !d.is_multiple_of(5),
                    })),
                    2 => Payload::TemporaryLayoff(TemporaryLayoff {
                        worker_ref: worker,
                        expected_duration_days: u32::from(d),
                        recall_expected: true,
                    }),
                    3 => Payload::HoursReduced(HoursReduced {
                        worker_ref: worker,
                        hours_before: 40,
                        hours_after: u32::from(d % 40),
                        expected_months: 6,
                    }),
                    _ => Payload::ContractRenewed(ContractRenewed {
                        worker_ref: worker,
                        new_contract_end: None,
                        consecutive_fixed_terms: Some(2),
                    }),
                };
                Some((org, site, payload))
            }
            _ => Some((org, site, signal(b, d))),
        }
    }

    /// A replacement of the same type and worker (what the ledger accepts as a correction).
    fn tweak(&self, payload: &Payload, b: u8, d: u16) -> Payload {
        let mut p = payload.clone();
        match &mut p {
            Payload::WorkerHired(h) => {
                h.cohort = Some(COHORTS[usize::from(b) % COHORTS.len()]);
                h.employment_relationship =
                    EmploymentRelationship::ALL[usize::from(d) % EmploymentRelationship::ALL.len()];
                h.contract_type = ContractType::ALL[usize::from(b) % ContractType::ALL.len()];
            }
            Payload::InternalRedeployment(r) => {
                r.to_site = Some(SiteId::from(SITES[usize::from(b) % SITES.len()]));
                r.accepted = d.is_multiple_of(2);
            }
            Payload::PositionBackfilled(c) | Payload::PositionClosed(c) => {
                // Move the link to another (possibly invalid) event: the projection must follow.
                let other = Self::pick(&self.events, b).map(|e| e.event_id);
                c.linked_separation_id = other;
            }
            Payload::EventCorrected(c) => {
                let inner = self.tweak(&c.replacement, b.wrapping_add(1), d);
                *c.replacement = inner;
            }
            Payload::EventRetracted(r) => r.reason = format!("reason {b}"),
            Payload::RoleAutomated(r) => {
                if let Some(s) = r.separation.as_mut() {
                    tweak_separation(s, b, d);
                } else {
                    r.ai_system = format!("system {b}");
                }
            }
            Payload::Resignation(r) => {
                r.pressured = b.is_multiple_of(2);
                tweak_separation(&mut r.separation, b, d);
            }
            Payload::ContractNotRenewed(c) => {
                c.employee_refused = b.is_multiple_of(2);
                tweak_separation(&mut c.separation, b, d);
            }
            other => {
                if let Some(s) = separation_mut(other) {
                    tweak_separation(s, b, d);
                } else {
                    p = signal(b, d).clone();
                    if p.event_type() != payload.event_type() {
                        p = payload.clone();
                    }
                }
            }
        }
        p
    }
}

fn separation_mut(p: &mut Payload) -> Option<&mut Separation> {
    match p {
        Payload::EconomicDismissal(x) => Some(&mut x.separation),
        Payload::MutualTerminationEmployerProposed(x) => Some(&mut x.separation),
        Payload::AdverseChangeRefusedExit(x) => Some(&mut x.separation),
        Payload::Retirement(x) => Some(&mut x.separation),
        Payload::DismissalForCause(x) => Some(&mut x.separation),
        Payload::ContractorReleased(x) | Payload::DispatchedWorkerReturned(x) => {
            Some(&mut x.separation)
        }
        _ => None,
    }
}

fn tweak_separation(s: &mut Separation, b: u8, d: u16) {
    s.position_closed = !s.position_closed;
    s.ai_attributed = AiAttribution::ALL[usize::from(b) % AiAttribution::ALL.len()];
    s.cohort = (!d.is_multiple_of(3)).then(|| COHORTS[usize::from(d) % COHORTS.len()]);
}

fn base_separation(worker: WorkerRef, b: u8, d: u16) -> Separation {
    Separation {
        worker_ref: worker,
        employment_relationship: EmploymentRelationship::Employee,
        contract_type: ContractType::FixedTerm,
        cohort: d
            .is_multiple_of(3)
            .then(|| COHORTS[usize::from(b) % COHORTS.len()]),
        position_id: None,
        position_closed: d.is_multiple_of(2),
        backfill_status: BackfillStatus::ALL[usize::from(b / 3) % BackfillStatus::ALL.len()],
        initiator: Initiator::ALL[usize::from(d / 7) % Initiator::ALL.len()],
        reason_personal: false,
        legal_ground: None,
        ai_attributed: AiAttribution::ALL[usize::from(d / 2) % AiAttribution::ALL.len()],
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

fn separation(worker: WorkerRef, b: u8, d: u16) -> Payload {
    let s = base_separation(worker, b, d);
    let flag = d.is_multiple_of(5);
    match b % 10 {
        0 => Payload::EconomicDismissal(Box::new(EconomicDismissal {
            separation: s,
            selection_criteria: None,
            plan_id: None,
        })),
        1 => Payload::RoleAutomated(Box::new(RoleAutomated {
            role_id: "r".to_owned(),
            ai_system: "agent".to_owned(),
            separation: Some(s),
            retraining_offered: flag,
            redeployment_offered: false,
        })),
        2 => Payload::ContractNotRenewed(Box::new(ContractNotRenewed {
            separation: s,
            renewal_offered: flag,
            offer_terms: None,
            employee_refused: flag,
            would_trigger_open_ended: false,
            consecutive_fixed_terms: None,
        })),
        3 => Payload::MutualTerminationEmployerProposed(Box::new(
            MutualTerminationEmployerProposed {
                separation: s,
                package: None,
            },
        )),
        4 => Payload::AdverseChangeRefusedExit(Box::new(AdverseChangeRefusedExit {
            separation: s,
            change_type: ChangeType::Pay,
            change_magnitude_pct: Some(30),
        })),
        5 => Payload::Resignation(Box::new(Resignation {
            separation: s,
            regrettable: false,
            pressured: flag,
        })),
        6 => Payload::Retirement(Box::new(Retirement {
            separation: s,
            retirement_type: if flag {
                RetirementType::EarlyIncentive
            } else {
                RetirementType::Statutory
            },
        })),
        7 => Payload::DismissalForCause(Box::new(DismissalForCause {
            separation: s,
            cause_code: "c".to_owned(),
            summary: false,
        })),
        8 => Payload::ContractorReleased(Box::new(AgencyRelease {
            separation: s,
            agency_id: None,
            ground: None,
        })),
        _ => Payload::DispatchedWorkerReturned(Box::new(AgencyRelease {
            separation: s,
            agency_id: None,
            ground: None,
        })),
    }
}

fn signal(b: u8, d: u16) -> Payload {
    let step = ComplianceStep {
        plan_id: "plan-1".to_owned(),
        recipient: "union".to_owned(),
        document_ref: String::new(),
        ai_checkbox: false,
    };
    match b % 8 {
        0 => Payload::HiringPaused(HiringPaused {
            scope: "eng".to_owned(),
            reqs_frozen: u32::from(d % 9),
            reqs_cancelled: u32::from(d % 4),
            until: None,
        }),
        1 => Payload::HiringResumed(HiringResumed {
            scope: "eng".to_owned(),
            reqs_reopened: u32::from(d % 5),
        }),
        2 => Payload::GraduateIntakeReduced(GraduateIntake {
            cohort_year: 2026,
            planned: u32::from(d % 40),
            baseline: 40,
            actual: d.is_multiple_of(2).then_some(u32::from(d % 30)),
        }),
        3 => Payload::AiUsageMeasured(AiUsageMeasured {
            scope: "eng".to_owned(),
            period_start: day(d),
            period_end: day(d.wrapping_add(30)),
            metric: if d.is_multiple_of(2) {
                AiMetric::ActiveUsers
            } else {
                AiMetric::Tokens
            },
            value: u64::from(d),
            population: Some(400),
            used_in_performance_review: d.is_multiple_of(3),
        }),
        4 => Payload::AiToolRolledOut(AiToolRolledOut {
            tool: "assistant".to_owned(),
            scope: "eng".to_owned(),
            mandatory: d.is_multiple_of(2),
        }),
        5 => Payload::UnionBriefed(step),
        6 => Payload::AuthorityReported(step),
        _ => Payload::RoleAutomated(Box::new(RoleAutomated {
            role_id: "r".to_owned(),
            ai_system: "agent".to_owned(),
            separation: None,
            retraining_offered: false,
            redeployment_offered: false,
        })),
    }
}

fn fold(events: &[Event]) -> Projection {
    let mut p = Projection::new();
    for (i, e) in events.iter().enumerate() {
        p.apply(i as u64 + 1, e);
    }
    p
}

/// A separations view with its evidence lists emptied, after checking that each figure has one
/// id per separation it counts (per AI-attributed one for an AI share): what a served answer's
/// `evidence_count` says without the ids.
fn counts_only(mut v: SeparationsView) -> SeparationsView {
    fn ai(a: &mut AiShare) {
        assert_eq!(
            a.event_ids.len() as u64,
            a.cited_by_employer + a.inferred,
            "{a:?}"
        );
        a.event_ids.clear();
    }
    for r in &mut v.rows {
        assert_eq!(r.event_ids.len() as u64, r.count, "evidence of {r:?}");
        r.event_ids.clear();
    }
    for t in &mut v.totals {
        assert_eq!(t.event_ids.len() as u64, t.count, "evidence of {t:?}");
        t.event_ids.clear();
        ai(&mut t.ai);
    }
    ai(&mut v.ai_attributed);
    v
}

/// A headcount view with its evidence lists emptied, after checking that each figure's evidence
/// is one event per hire, separation and move it counts (what a served answer's
/// `evidence_count` says without the ids).
fn headcount_only(mut v: HeadcountView) -> HeadcountView {
    for r in &mut v.rows {
        let figures = std::iter::once(&mut r.total)
            .chain(r.by_cohort.values_mut())
            .chain(r.by_relationship.values_mut());
        for f in figures {
            let counted = f.hires + f.separations + f.transfers_in + f.transfers_out;
            assert_eq!(f.event_ids.len() as u64, counted, "evidence of {f:?}");
            f.event_ids.clear();
        }
    }
    v
}

/// A cohort exposure view with its evidence lists emptied, after checking that each row has one
/// id per reduction it counts.
fn exposure_only(mut v: CohortExposureView) -> CohortExposureView {
    for r in &mut v.rows {
        assert_eq!(r.event_ids.len() as u64, r.reductions, "evidence of {r:?}");
        r.event_ids.clear();
    }
    v
}

/// An AI adoption view with the AI-attributed separations' evidence emptied, after checking it has
/// one id per AI-attributed separation.
fn ai_only(mut v: AiAdoptionView) -> AiAdoptionView {
    let a = &mut v.ai_attributed_separations;
    assert_eq!(
        a.event_ids.len() as u64,
        a.cited_by_employer + a.inferred,
        "{a:?}"
    );
    a.event_ids.clear();
    v
}

fn queries() -> Vec<Query> {
    let mut out = Vec::new();
    for period in [Period::Day, Period::Month, Period::Quarter] {
        for org in [None, Some("acme"), Some("globex")] {
            for site in [None, Some("sh"), Some("bj")] {
                for cohort in [None, Some(Cohort::GraduateTrainee)] {
                    out.push(Query {
                        org: org.map(OrgId::from),
                        site: site.map(SiteId::from),
                        from: None,
                        to: None,
                        period,
                        cohort,
                    });
                }
            }
        }
    }
    // A window that cuts periods in the middle.
    out.push(Query {
        org: Some(OrgId::from("acme")),
        from: Some(day(45)),
        to: Some(day(200)),
        period: Period::Quarter,
        ..Query::default()
    });
    out
}

/// The population questions the as-of properties ask: each org, every 53rd day, with the
/// months-employed test on.
fn as_of_population_queries() -> Vec<PopulationQuery> {
    ORGS.iter()
        .flat_map(|org| {
            (0..440).step_by(53).map(move |offset| PopulationQuery {
                org: OrgId::from(*org),
                site: None,
                on: day(0).add_days(offset),
                exclude_relationships: vec![],
                exclude_contract_types: vec![],
                jurisdiction_prefix: None,
                max_over_days: None,
                part_time_below_weekly_hours: None,
                part_time_below_months_of_12: Some(6),
            })
        })
        .collect()
}

fn choices() -> impl Strategy<Value = Vec<Choice>> {
    prop::collection::vec(any::<Choice>(), 1..90)
}

/// A fixed pseudo-random history, to check that the generator reaches every kind of event (so the
/// properties above are not vacuous).
#[test]
fn the_generator_reaches_corrections_retractions_links_and_rehires() {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let choices: Vec<Choice> = (0..600)
        .map(|_| {
            let r = next();
            (r as u8, (r >> 8) as u8, (r >> 16) as u8, (r >> 24) as u16)
        })
        .collect();
    let g = Generator::run(&choices);
    let kinds: BTreeSet<&str> = g.events.iter().map(|e| e.event_type().as_str()).collect();
    for kind in [
        "WorkerHired",
        "EconomicDismissal",
        "Resignation",
        "ContractNotRenewed",
        "PositionBackfilled",
        "PositionClosed",
        "EventCorrected",
        "EventRetracted",
        "InternalRedeployment",
        "AiUsageMeasured",
    ] {
        assert!(kinds.contains(kind), "{kind} missing from {kinds:?}");
    }
    let corrected_corrections = g
        .events
        .iter()
        .filter(|e| matches!(&e.payload, Payload::EventCorrected(c) if c.replacement.event_type() == wfl_domain::EventType::EventCorrected))
        .count();
    assert!(corrected_corrections > 0, "no correction of a correction");
    let retracted_lifecycle = g
        .events
        .iter()
        .filter(|e| g.retracted.contains(&e.event_id) && e.payload.worker_effect().is_some())
        .count();
    assert!(retracted_lifecycle > 0, "no retracted hire or separation");
    let p = fold(&g.events);
    let v = p.headcount(&Query::default());
    assert!(v.reconciles);
    assert!(p.separations(&Query::default()).total > 10);
    println!(
        "{} events, {} kinds, {} separations",
        g.events.len(),
        kinds.len(),
        p.separations(&Query::default()).total
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn rebuild_equals_incremental_and_survives_a_serialised_checkpoint(
        choices in choices(),
        split in any::<prop::sample::Index>(),
    ) {
        let g = Generator::run(&choices);
        let full = fold(&g.events);
        prop_assert_eq!(&fold(&g.events), &full);

        let k = split.index(g.events.len() + 1);
        let first = fold(&g.events[..k]);
        let json = serde_json::to_string(&first).expect("the state serialises");
        let mut resumed: Projection = serde_json::from_str(&json).expect("and deserialises");
        prop_assert_eq!(&resumed, &first);
        for (i, e) in g.events.iter().enumerate().skip(k) {
            resumed.apply(i as u64 + 1, e);
        }
        prop_assert_eq!(&resumed, &full);
        prop_assert_eq!(resumed.last_sequence(), g.events.len() as u64);
        let q = Query::default();
        prop_assert_eq!(resumed.separations(&q), full.separations(&q));
        prop_assert_eq!(resumed.headcount(&q), full.headcount(&q));
    }

    /// The projector persists only what each batch changed (keyed), and a projector killed at any
    /// point restarts from the last persisted batch: whatever the batch boundaries, restoring the
    /// stored entries and links and folding the rest gives exactly the one-go state.
    #[test]
    fn keyed_persistence_in_any_batches_restores_the_one_go_state(
        choices in choices(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        crash in any::<prop::sample::Index>(),
    ) {
        let g = Generator::run(&choices);
        let full = fold(&g.events);
        let n = g.events.len();
        let mut cuts: BTreeSet<usize> = cuts.iter().map(|c| c.index(n + 1)).collect();
        cuts.insert(n);
        // The "store": what a keyed persist leaves on disk.
        let mut entries: BTreeMap<EventId, Entry> = BTreeMap::new();
        // A link is all its fields: two corrections of one event can link it to two workers.
        let mut links: BTreeMap<(u64, EventId, String, String), WorkerLink> = BTreeMap::new();
        let mut checkpoint = 0u64;
        let mut p = Projection::new();
        let crash_at = crash.index(n + 1);
        let mut crashed = false;
        for (i, e) in g.events.iter().enumerate() {
            if i == crash_at && !crashed {
                // Kill: everything not persisted is lost; restart from the store.
                crashed = true;
                p = Projection::restore(
                    checkpoint,
                    entries.clone(),
                    links.values().cloned(),
                );
                for (j, e) in g.events.iter().enumerate().take(i).skip(checkpoint as usize) {
                    p.apply(j as u64 + 1, e);
                }
            }
            p.apply(i as u64 + 1, e);
            if cuts.contains(&(i + 1)) {
                let changes = p.take_changes();
                prop_assert!(changes.entries.len() <= n);
                checkpoint = changes.last_sequence;
                entries.extend(changes.entries.into_iter().map(|(id, e)| (id, (*e).clone())));
                links.extend(changes.links.into_iter().map(|l| {
                    ((l.sequence, l.event_id, l.org.0.clone(), l.worker.0.clone()), l)
                }));
            }
        }
        prop_assert_eq!(&p, &full);
        let restored = Projection::restore(checkpoint, entries, links.into_values());
        prop_assert_eq!(&restored, &full);
        let q = Query::default();
        prop_assert_eq!(restored.separations(&q), full.separations(&q));
        prop_assert_eq!(restored.headcount(&q), full.headcount(&q));
    }

    /// Every entry and link of any history (corrections, links and retractions held and ended,
    /// the effects they had) reads back from its binary form exactly as it was written, one
    /// after the other in one buffer.
    #[test]
    fn entries_and_links_round_trip_through_the_binary_form(choices in choices()) {
        use wfl_projections::views::binary;
        struct Json;
        impl binary::PayloadCodec for Json {
            fn put(&self, payload: &Payload, out: &mut Vec<u8>) {
                serde_json::to_writer(out, payload).expect("a payload serialises");
            }
            fn take(&self, bytes: &[u8]) -> Result<Payload, String> {
                serde_json::from_slice(bytes).map_err(|e| e.to_string())
            }
        }
        let g = Generator::run(&choices);
        let mut p = fold(&g.events);
        let changes = p.take_changes();
        let mut out = Vec::new();
        for (_, e) in &changes.entries {
            binary::put_entry(e, &Json, &mut out);
        }
        for l in &changes.links {
            binary::put_link(l, &mut out);
        }
        let mut input = out.as_slice();
        for (_, e) in &changes.entries {
            prop_assert_eq!(&binary::take_entry(&mut input, &Json).expect("an entry"), &**e);
        }
        for l in &changes.links {
            prop_assert_eq!(&binary::take_link_record(&mut input).expect("a link"), l);
        }
        prop_assert!(input.is_empty());
    }

    /// The threshold watch asks the population once per window: the index built once per
    /// evaluation answers exactly as the projection's own (slow) population query, for every org,
    /// site, day and exclusion.
    #[test]
    fn the_population_index_answers_as_the_projection_does(choices in choices()) {
        let g = Generator::run(&choices);
        let p = fold(&g.events);
        let index = PopulationIndex::new(&p, None);
        for org in ORGS {
            for site in [None, Some("sh"), Some("bj"), Some("gz")] {
                for offset in (0..440).step_by(37) {
                    for (months, prefix, hours) in [
                        (None, None, None),
                        (Some(1), None, None),
                        (Some(6), Some("CN"), Some(20)),
                        (Some(12), None, None),
                        (None, Some("CN-31"), None),
                        (None, Some("CN-3"), Some(20)),
                        (None, Some("US-NY"), None),
                        (None, None, Some(20)),
                        (Some(6), None, Some(13)),
                    ] {
                    for (rels, cts) in [
                        (vec![], vec![]),
                        (vec![EmploymentRelationship::Dispatched, EmploymentRelationship::Contractor], vec![]),
                        (vec![], vec![ContractType::FixedTerm]),
                    ] {
                        let q = PopulationQuery {
                            org: OrgId::from(org),
                            site: site.map(SiteId::from),
                            on: day(0).add_days(offset),
                            exclude_relationships: rels,
                            exclude_contract_types: cts,
                            jurisdiction_prefix: prefix.map(str::to_owned),
                            max_over_days: None,
                            part_time_below_weekly_hours: hours,
                            part_time_below_months_of_12: months,
                        };
                        prop_assert_eq!(index.headcount(&q), p.population(&q), "{:?}", q);
                    }
                    }
                }
            }
        }
        // And each worker's profile (hours, months employed), which the watch reads for the
        // separations, layoffs and hours cuts that do not state them.
        for (org, w) in &g.workers {
            for offset in (0..440).step_by(29) {
                let on = day(0).add_days(offset);
                prop_assert_eq!(index.worker(org, w, on), p.worker(org, w, on), "{} {} {}", org, w.0, on);
            }
        }
    }

    /// The tallies are moved by each folded event from the state before it to the state after
    /// it: after every event (every fourth query for separations, one for headcount), and at the
    /// end and after a keyed restore (every query), they give the figures the entries give,
    /// evidence aside.
    #[test]
    fn the_tallies_answer_as_the_entries_do(choices in choices()) {
        let g = Generator::run(&choices);
        let mut p = Projection::new();
        let all = queries();
        for (i, e) in g.events.iter().enumerate() {
            p.apply(i as u64 + 1, e);
            for q in all.iter().skip(i % 4).step_by(4) {
                prop_assert_eq!(p.now().separation_counts(q), counts_only(p.separations(q)), "after {}: {:?}", i + 1, q);
            }
            // Headcount from the entries is the slow side: one query per event, each in turn.
            let q = &all[(i * 7) % all.len()];
            prop_assert_eq!(p.now().headcount_counts(q), headcount_only(p.headcount(q)), "after {}: {:?}", i + 1, q);
            prop_assert_eq!(p.now().cohort_exposure_counts(q), exposure_only(p.cohort_exposure(q)), "after {}: {:?}", i + 1, q);
            // The watch's default day, from the tallies' days and from the entries.
            let copy = p.snapshot();
            prop_assert_eq!(p.latest_effective_date(None), copy.latest_effective_date(None));
            prop_assert_eq!(p.latest_effective_date(q.org.as_ref()), copy.latest_effective_date(q.org.as_ref()));
        }
        let c = p.take_changes();
        let restored = Projection::restore(c.last_sequence, c.entries, c.links);
        for q in &all {
            let expected = counts_only(p.separations(q));
            prop_assert_eq!(&p.now().separation_counts(q), &expected, "{:?}", q);
            prop_assert_eq!(&restored.now().separation_counts(q), &expected, "restored: {:?}", q);
            let expected = headcount_only(p.headcount(q));
            prop_assert_eq!(&p.now().headcount_counts(q), &expected, "{:?}", q);
            prop_assert_eq!(&restored.now().headcount_counts(q), &expected, "restored: {:?}", q);
            // The signal views read the tallies' index of signal events: the same answer, ids too.
            let from_entries = p.snapshot().hiring_signals(q);
            prop_assert_eq!(&p.hiring_signals(q), &from_entries, "{:?}", q);
            prop_assert_eq!(&restored.hiring_signals(q), &from_entries, "restored: {:?}", q);
            let expected = ai_only(p.snapshot().ai_adoption(q));
            prop_assert_eq!(&p.ai_adoption(q), &p.snapshot().ai_adoption(q), "{:?}", q);
            prop_assert_eq!(&p.now().ai_adoption_counts(q), &expected, "{:?}", q);
            prop_assert_eq!(&restored.now().ai_adoption_counts(q), &expected, "restored: {:?}", q);
            let expected = exposure_only(p.cohort_exposure(q));
            prop_assert_eq!(&p.now().cohort_exposure_counts(q), &expected, "{:?}", q);
            prop_assert_eq!(&restored.now().cohort_exposure_counts(q), &expected, "restored: {:?}", q);
        }
    }

    /// The threshold watch's copy is taken a part at a time while the fold goes on: started
    /// after the first n events and filled in parts of any size between later folds, it answers
    /// every view, record list, explain and population question as a fresh fold of the first n.
    #[test]
    fn a_copy_taken_in_parts_while_folding_answers_as_of_its_start(
        choices in choices(),
        cut in any::<prop::sample::Index>(),
        part in 1usize..40,
    ) {
        let g = Generator::run(&choices);
        let n = cut.index(g.events.len() + 1);
        let mut p = Projection::new();
        for (i, e) in g.events.iter().enumerate().take(n) {
            p.apply(i as u64 + 1, e);
        }
        let mut cursor = p.start_copy();
        let mut next = n;
        while !p.copy_part(&mut cursor, part) {
            // The fold goes on between parts (as it does while the watch's lock is released).
            if let Some(e) = g.events.get(next) {
                next += 1;
                p.apply(next as u64, e);
            }
        }
        let copy = cursor.finish();
        for (i, e) in g.events.iter().enumerate().skip(next) {
            p.apply(i as u64 + 1, e);
        }
        let fresh = fold(&g.events[..n]);
        let ids: Vec<EventId> = g.events.iter().map(|e| e.event_id).collect();
        prop_assert_eq!(copy.last_sequence(), n as u64);
        for q in queries().into_iter().step_by(5) {
            prop_assert_eq!(copy.separations(&q), fresh.separations(&q), "{:?}", q);
            prop_assert_eq!(copy.headcount(&q), fresh.headcount(&q), "{:?}", q);
            prop_assert_eq!(copy.hiring_signals(&q), fresh.hiring_signals(&q), "{:?}", q);
        }
        prop_assert_eq!(copy.countable_records(None), fresh.countable_records(None));
        prop_assert_eq!(copy.compliance_records(None), fresh.compliance_records(None));
        prop_assert_eq!(copy.explain(&ids), fresh.explain(&ids));
        let index = PopulationIndex::new(&copy, None);
        let fresh_index = PopulationIndex::new(&fresh, None);
        for q in as_of_population_queries() {
            prop_assert_eq!(index.headcount(&q), fresh_index.headcount(&q), "{:?}", q);
        }
        for (org, w) in &g.workers {
            prop_assert_eq!(index.worker(org, w, day(0).add_days(200)), fresh_index.worker(org, w, day(0).add_days(200)));
        }
    }

    /// A copy of one org's state (`start_copy_of`: its entries found through its runs of
    /// sequences, its workers, nobody else's), taken in parts while the fold goes on, answers
    /// every question about that org as a fresh fold of the first n events does, and holds no
    /// other org's events; so does one taken from a state restored from its keyed changes,
    /// whose runs are rebuilt from the entries.
    #[test]
    fn one_orgs_copy_taken_in_parts_answers_for_that_org_as_of_its_start(
        choices in choices(),
        cut in any::<prop::sample::Index>(),
        part in 1usize..40,
        restored in any::<bool>(),
    ) {
        let g = Generator::run(&choices);
        let n = cut.index(g.events.len() + 1);
        let mut p = Projection::new();
        for (i, e) in g.events.iter().enumerate().take(n) {
            p.apply(i as u64 + 1, e);
        }
        if restored {
            let c = p.take_changes();
            p = Projection::restore(c.last_sequence, c.entries, c.links);
        }
        let fresh = fold(&g.events[..n]);
        for org in ORGS.map(OrgId::from) {
            let own: Vec<EventId> = g.events[..n]
                .iter()
                .filter(|e| e.org_id == org)
                .map(|e| e.event_id)
                .collect();
            prop_assert_eq!(p.org_events(&org), Some(own.len() as u64), "{}", org);
            for max in [0, 1, own.len() as u64 / 2, own.len() as u64] {
                prop_assert_eq!(p.org_events_within(&org, max), Some(own.len() as u64 <= max));
            }
            // The org's first event after any sequence is the next of its own.
            let sequences: Vec<u64> = g.events[..n]
                .iter()
                .enumerate()
                .filter(|(_, e)| e.org_id == org)
                .map(|(i, _)| i as u64 + 1)
                .collect();
            for after in 0..=n as u64 {
                let next = sequences.iter().copied().find(|s| *s > after);
                prop_assert_eq!(p.org_next_after(&org, after), next, "{} after {}", org, after);
            }
            // Read in place, an org of at most half the events is found through its runs (not
            // a walk of every entry): the same answers as a state without the org index.
            let whole = p.snapshot();
            for query in queries().into_iter().step_by(3) {
                let query = Query { org: Some(org.clone()), ..query };
                prop_assert_eq!(p.separations(&query), whole.separations(&query), "{:?}", query);
                prop_assert_eq!(p.headcount(&query), whole.headcount(&query), "{:?}", query);
                prop_assert_eq!(p.cohort_exposure(&query), whole.cohort_exposure(&query), "{:?}", query);
                prop_assert_eq!(p.hiring_signals(&query), whole.hiring_signals(&query), "{:?}", query);
                prop_assert_eq!(p.ai_adoption(&query), whole.ai_adoption(&query), "{:?}", query);
            }
            for k in [n as u64, n as u64 / 2] {
                let (a, b) = (p.at(k), whole.at(k));
                prop_assert_eq!(a.countable_records(Some(&org)), b.countable_records(Some(&org)), "at {}", k);
                prop_assert_eq!(a.compliance_records(Some(&org)), b.compliance_records(Some(&org)), "at {}", k);
                prop_assert_eq!(a.site_event_records(Some(&org)), b.site_event_records(Some(&org)), "at {}", k);
                prop_assert_eq!(format!("{:?}", a.watch_inputs(Some(&org))), format!("{:?}", b.watch_inputs(Some(&org))), "at {}", k);
                let query = Query { org: Some(org.clone()), ..Query::default() };
                prop_assert_eq!(a.separations(&query), b.separations(&query), "at {}", k);
                let (ia, ib) = (PopulationIndex::at(&a, Some(&org)), PopulationIndex::at(&b, Some(&org)));
                for prefix in [None, Some("CN-31")] {
                    for q in as_of_population_queries().into_iter().filter(|q| q.org == org) {
                        let q = PopulationQuery { jurisdiction_prefix: prefix.map(str::to_owned), ..q };
                        prop_assert_eq!(ia.headcount(&q), ib.headcount(&q), "at {}: {:?}", k, q);
                    }
                }
            }
            let mut q = p.clone();
            let mut cursor = q.start_copy_of(Some(&org));
            let mut next = n;
            while !q.copy_part(&mut cursor, part) {
                if let Some(e) = g.events.get(next) {
                    next += 1;
                    q.apply(next as u64, e);
                }
            }
            let copy = cursor.finish();
            prop_assert_eq!(copy.last_sequence(), n as u64);
            prop_assert_eq!(copy.explain(&own), fresh.explain(&own));
            if own.len() * 2 <= n {
                // Nobody else's events: the whole copy's records are the org's.
                prop_assert_eq!(copy.countable_records(None), fresh.countable_records(Some(&org)));
                prop_assert_eq!(copy.entry_count(), own.len());
            } else {
                // Most of the state: every org is copied (walked in order, no look-ups).
                prop_assert_eq!(copy.countable_records(None), fresh.countable_records(None));
            }
            prop_assert_eq!(copy.compliance_records(Some(&org)), fresh.compliance_records(Some(&org)));
            prop_assert_eq!(copy.now().site_event_records(Some(&org)), fresh.now().site_event_records(Some(&org)));
            prop_assert_eq!(copy.latest_effective_date(Some(&org)), fresh.latest_effective_date(Some(&org)));
            for query in queries().into_iter().step_by(3) {
                let query = Query { org: Some(org.clone()), ..query };
                prop_assert_eq!(copy.separations(&query), fresh.separations(&query), "{:?}", query);
                prop_assert_eq!(copy.headcount(&query), fresh.headcount(&query), "{:?}", query);
                prop_assert_eq!(copy.cohort_exposure(&query), fresh.cohort_exposure(&query), "{:?}", query);
                prop_assert_eq!(copy.hiring_signals(&query), fresh.hiring_signals(&query), "{:?}", query);
                prop_assert_eq!(copy.ai_adoption(&query), fresh.ai_adoption(&query), "{:?}", query);
            }
            let index = PopulationIndex::new(&copy, Some(&org));
            let fresh_index = PopulationIndex::new(&fresh, Some(&org));
            for prefix in [None, Some("CN-31"), Some("CN-4")] {
                for q in as_of_population_queries().into_iter().filter(|q| q.org == org) {
                    let q = PopulationQuery { jurisdiction_prefix: prefix.map(str::to_owned), ..q };
                    prop_assert_eq!(index.headcount(&q), fresh_index.headcount(&q), "{:?}", q);
                }
            }
            for (o, w) in g.workers.iter().filter(|(o, _)| *o == org) {
                prop_assert_eq!(index.worker(o, w, day(0).add_days(200)), fresh_index.worker(o, w, day(0).add_days(200)));
            }
        }
    }

    /// Cheap as-of from the tallies: snapshots every `every` sequences (taken by the fold; after
    /// a restore, built on the way by the first answers or all at once by `fill_snapshots`),
    /// moved to any sequence, give the
    /// counts a fresh fold of that prefix gives from its entries, for every view and query.
    #[test]
    fn the_tallies_as_of_n_answer_as_a_fresh_fold_of_the_first_n(
        choices in choices(),
        every in 1u64..12,
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 1..4),
    ) {
        let g = Generator::run(&choices);
        let mut folded = Projection::new();
        folded.keep_snapshots_every(every);
        for (i, e) in g.events.iter().enumerate() {
            folded.apply(i as u64 + 1, e);
        }
        prop_assert_eq!(folded.tally_snapshots() as u64, g.events.len() as u64 / every);
        let c = folded.take_changes();
        let mut restored = Projection::restore(c.last_sequence, c.entries, c.links);
        restored.keep_snapshots_every(every);
        prop_assert_eq!(restored.tally_snapshots(), 0);
        // What the projector does after reading its store back: every snapshot below the last
        // sequence, built on two walks.
        let mut filled = restored.clone();
        filled.fill_snapshots();
        let below = (g.events.len() as u64).saturating_sub(1) / every;
        prop_assert_eq!(filled.tally_snapshots() as u64, below);
        let all = queries();
        for cut in cuts {
            let n = cut.index(g.events.len() + 1);
            let fresh = fold(&g.events[..n]);
            for p in [&folded, &restored, &filled] {
                for q in all.iter().step_by(3) {
                    let (seps, heads, exposure, ai, hiring) = p.read_at(n as u64, |at| {
                        (
                            at.separation_counts(q),
                            at.headcount_counts(q),
                            at.cohort_exposure_counts(q),
                            at.ai_adoption_counts(q),
                            at.hiring_signals(q),
                        )
                    });
                    prop_assert_eq!(seps, counts_only(fresh.separations(q)), "at {}: {:?}", n, q);
                    prop_assert_eq!(heads, headcount_only(fresh.headcount(q)), "at {}: {:?}", n, q);
                    prop_assert_eq!(exposure, exposure_only(fresh.cohort_exposure(q)), "at {}: {:?}", n, q);
                    prop_assert_eq!(ai, ai_only(fresh.ai_adoption(q)), "at {}: {:?}", n, q);
                    prop_assert_eq!(hiring, fresh.hiring_signals(q), "at {}: {:?}", n, q);
                }
            }
        }
    }

    #[test]
    fn the_state_as_of_n_equals_a_fresh_fold_of_the_first_n(
        choices in choices(),
        cut in any::<prop::sample::Index>(),
    ) {
        let g = Generator::run(&choices);
        let n = cut.index(g.events.len() + 1);
        let mut incremental = Projection::new();
        let mut as_of_n = Projection::new();
        for (i, e) in g.events.iter().enumerate() {
            if i == n {
                as_of_n = incremental.clone();
            }
            incremental.apply(i as u64 + 1, e);
        }
        if n == g.events.len() {
            as_of_n = incremental.clone();
        }
        let fresh = fold(&g.events[..n]);
        prop_assert_eq!(&as_of_n, &fresh);
        prop_assert_eq!(fresh.last_sequence(), n as u64);
        let q = Query::default();
        prop_assert_eq!(as_of_n.separations(&q), fresh.separations(&q));
        prop_assert_eq!(as_of_n.separation_records(None), fresh.separation_records(None));
    }

    /// Cheap as-of: the final state read at any sequence n (`Projection::at`) answers every view,
    /// record list, explain and population question exactly as a fresh fold of the first n
    /// events does, and a stored-and-restored state does too.
    #[test]
    fn the_state_read_at_n_answers_as_a_fresh_fold_of_the_first_n(
        choices in choices(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 1..3),
    ) {
        let g = Generator::run(&choices);
        let full = fold(&g.events);
        let mut changes = Projection::new();
        for (i, e) in g.events.iter().enumerate() {
            changes.apply(i as u64 + 1, e);
        }
        let c = changes.take_changes();
        let restored = Projection::restore(c.last_sequence, c.entries, c.links);
        let ids: Vec<EventId> = g.events.iter().map(|e| e.event_id).collect();
        for cut in cuts {
            let n = cut.index(g.events.len() + 1);
            let fresh = fold(&g.events[..n]);
            for p in [&full, &restored] {
                let at = p.at(n as u64);
                prop_assert_eq!(at.last_sequence(), n as u64);
                // Every fifth query (all periods, orgs, sites and cohorts still appear): the
                // views' own filters are checked against every query by the tests above.
                for q in queries().into_iter().step_by(5) {
                    prop_assert_eq!(at.separations(&q), fresh.separations(&q), "{:?}", q);
                    prop_assert_eq!(at.headcount(&q), fresh.headcount(&q), "{:?}", q);
                    prop_assert_eq!(at.cohort_exposure(&q), fresh.cohort_exposure(&q), "{:?}", q);
                    prop_assert_eq!(at.hiring_signals(&q), fresh.hiring_signals(&q), "{:?}", q);
                    prop_assert_eq!(at.ai_adoption(&q), fresh.ai_adoption(&q), "{:?}", q);
                }
                prop_assert_eq!(at.countable_records(None), fresh.countable_records(None));
                prop_assert_eq!(at.compliance_records(None), fresh.compliance_records(None));
                // The watch's borrowed inputs (one pass) read what the three copies read.
                let w = at.watch_inputs(None);
                let copied = at.countable_records(None);
                let borrowed: Vec<wfl_projections::rules::Separation<'_>> =
                    copied.iter().map(Into::into).collect();
                prop_assert_eq!(format!("{:?}", w.separations), format!("{:?}", borrowed));
                let steps: Vec<_> = at.compliance_records(None).into_iter()
                    .map(|c| (c.event_id, c.kind, c.plan_id, c.effective_date, c.site, c.org))
                    .collect();
                let watched: Vec<_> = w.steps.iter()
                    .map(|c| (c.event_id, c.kind, c.plan_id.to_owned(), c.effective_date, c.site.clone(), c.org.clone()))
                    .collect();
                prop_assert_eq!(watched, steps);
                let sites: Vec<EventId> =
                    at.site_event_records(None).iter().map(|r| r.event_id).collect();
                prop_assert_eq!(w.site_events.iter().map(|s| s.event_id).collect::<Vec<_>>(), sites);
                prop_assert_eq!(at.explain(&ids), fresh.explain(&ids));
                prop_assert_eq!(at.latest_effective_date(None), fresh.latest_effective_date(None));
                let index = PopulationIndex::at(&at, None);
                let fresh_index = PopulationIndex::new(&fresh, None);
                for q in as_of_population_queries() {
                    prop_assert_eq!(index.headcount(&q), fresh_index.headcount(&q), "{:?}", q);
                    prop_assert_eq!(at.population(&q), fresh.population(&q), "{:?}", q);
                }
            }
        }
    }

    #[test]
    fn headcount_reconciles_in_every_period_and_agrees_with_the_ledger_model(
        choices in choices(),
    ) {
        let g = Generator::run(&choices);
        let p = fold(&g.events);
        for q in queries() {
            let v = p.headcount(&q);
            prop_assert!(v.reconciles, "{:?}\n{:#?}", q, v);
            for w in v.rows.windows(2) {
                prop_assert_eq!(w[0].total.closing, w[1].total.opening, "{:?}", q);
                prop_assert_eq!(w[0].end.add_days(1), w[1].start);
            }
        }
        for org in ORGS {
            let org = OrgId::from(org);
            // Long after every effective date, the projection agrees with the ledger's lifecycle.
            let later = PopulationQuery {
                org: org.clone(),
                site: None,
                on: day(399).add_days(400),
                exclude_relationships: Vec::new(),
                exclude_contract_types: Vec::new(),
                jurisdiction_prefix: None,
                max_over_days: None,
                part_time_below_weekly_hours: None,
                part_time_below_months_of_12: None,
            };
            prop_assert_eq!(p.population(&later), g.state.headcount(&org) as u64);
            let q = Query { org: Some(org.clone()), ..Query::default() };
            if let Some(last) = p.headcount(&q).rows.last() {
                prop_assert_eq!(last.total.closing, g.state.headcount(&org) as u64);
            }
            let live = |e: &&Event| e.org_id == org && !g.retracted.contains(&e.event_id);
            let live_separations = g
                .events
                .iter()
                .filter(live)
                .filter(|e| e.payload.separation().is_some())
                .count() as u64;
            // The view also lists temporary layoffs, as formal layoffs (domain-rules §5.2).
            let live_layoffs = g
                .events
                .iter()
                .filter(live)
                .filter(|e| matches!(e.payload, Payload::TemporaryLayoff(_)))
                .count() as u64;
            prop_assert_eq!(p.separations(&q).total, live_separations + live_layoffs);
            prop_assert_eq!(p.separation_records(Some(&org)).len() as u64, live_separations);
        }
    }
}
