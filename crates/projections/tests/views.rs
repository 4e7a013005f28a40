//! The views over small, hand-checked scenarios: separations split by bucket, mechanism and period;
//! filters; headcount that reconciles (transfers included); corrections, retractions and position
//! links re-projecting earlier events; explain ids; AI share; cohort exposure; hiring and AI
//! signals; the records and population basis the rule packs read.

use wfl_domain::{
    AiAttribution, AiMetric, AiToolRolledOut, AiUsageMeasured, BackfillStatus, Cohort,
    ComplianceStep, ContractNotRenewed, ContractType, Date, DismissalForCause, EconomicDismissal,
    EmploymentRelationship, Event, EventCorrected, EventId, EventRetracted, EventType,
    EvidenceConfidence, GraduateIntake, HiringPaused, HiringResumed, Initiator,
    InternalRedeployment, OrgId, Payload, PositionChange, Resignation, RoleAutomated, Separation,
    SiteId, Source, TemporaryLayoff, WorkerHired, WorkerRef,
};
use wfl_projections::classify::{Bucket, Mechanism};
use wfl_projections::views::{Period, Projection, Query};
use wfl_projections::{Population, PopulationQuery};

// ---- fixtures --------------------------------------------------------------------------------

fn date(s: &str) -> Date {
    Date::parse(s).expect("a valid test date")
}

fn id(n: u64) -> EventId {
    serde_json::from_str(&format!("\"00000000-0000-0000-0000-{n:012x}\"")).expect("a uuid")
}

/// Commits events in order, like the ledger: sequence n gets event id n.
#[derive(Default)]
struct Ledger {
    p: Projection,
    seq: u64,
}

impl Ledger {
    fn at(&mut self, org: &str, site: &str, day: &str, payload: Payload) -> EventId {
        self.seq += 1;
        let event = Event {
            event_id: id(self.seq),
            org_id: OrgId::from(org),
            site_id: SiteId::from(site),
            jurisdiction: "CN".to_owned(),
            effective_date: date(day),
            source: Source {
                system: "test".to_owned(),
                reference: String::new(),
            },
            correlation_id: Some("plan-1".to_owned()),
            causation_id: None,
            schema_version: 1,
            evidence_confidence: EvidenceConfidence::Reported,
            expected_version: None,
            payload,
        };
        self.p.apply(self.seq, &event);
        event.event_id
    }

    /// An event in org `acme`, site `sh`.
    fn rec(&mut self, day: &str, payload: Payload) -> EventId {
        self.at("acme", "sh", day, payload)
    }
}

fn hire_as(
    worker: &str,
    cohort: Option<Cohort>,
    relationship: EmploymentRelationship,
    contract_type: ContractType,
    baseline: bool,
) -> Payload {
    Payload::WorkerHired(WorkerHired {
        worker_ref: WorkerRef::from(worker),
        employment_relationship: relationship,
        contract_type,
        cohort,
        position_id: Some(format!("pos-{worker}")),
        baseline,
        avg_weekly_hours: None,
        months_employed_last_12: None,
        contract_end: None,
    })
}

fn hire(worker: &str, cohort: Cohort) -> Payload {
    hire_as(
        worker,
        Some(cohort),
        EmploymentRelationship::Employee,
        ContractType::OpenEnded,
        false,
    )
}

fn baseline(worker: &str, cohort: Cohort) -> Payload {
    hire_as(
        worker,
        Some(cohort),
        EmploymentRelationship::Employee,
        ContractType::OpenEnded,
        true,
    )
}

fn sep(worker: &str) -> Separation {
    Separation {
        worker_ref: WorkerRef::from(worker),
        employment_relationship: EmploymentRelationship::Employee,
        contract_type: ContractType::OpenEnded,
        cohort: None,
        position_id: Some(format!("pos-{worker}")),
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

fn with_ai(mut s: Separation, ai: AiAttribution) -> Separation {
    s.ai_attributed = ai;
    s
}

fn economic_sep(s: Separation) -> Payload {
    Payload::EconomicDismissal(Box::new(EconomicDismissal {
        separation: s,
        selection_criteria: None,
        plan_id: Some("plan-1".to_owned()),
    }))
}

fn economic(worker: &str) -> Payload {
    economic_sep(sep(worker))
}

fn non_renewal(worker: &str) -> Payload {
    Payload::ContractNotRenewed(Box::new(ContractNotRenewed {
        separation: sep(worker),
        renewal_offered: false,
        offer_terms: None,
        employee_refused: false,
        would_trigger_open_ended: true,
        consecutive_fixed_terms: Some(2),
    }))
}

fn resign(worker: &str, closed: bool, pressured: bool) -> Payload {
    let mut s = sep(worker);
    s.initiator = Initiator::Employee;
    s.position_closed = closed;
    Payload::Resignation(Box::new(Resignation {
        separation: s,
        regrettable: false,
        pressured,
    }))
}

fn for_cause(worker: &str) -> Payload {
    Payload::DismissalForCause(Box::new(DismissalForCause {
        separation: sep(worker),
        cause_code: "misconduct".to_owned(),
        summary: false,
    }))
}

fn role_automated(worker: Option<&str>) -> Payload {
    Payload::RoleAutomated(Box::new(RoleAutomated {
        role_id: "role-1".to_owned(),
        ai_system: "agent".to_owned(),
        separation: worker.map(sep),
        retraining_offered: false,
        redeployment_offered: false,
    }))
}

fn redeploy(worker: &str, to_site: &str) -> Payload {
    Payload::InternalRedeployment(Box::new(InternalRedeployment {
        worker_ref: WorkerRef::from(worker),
        from_position: None,
        to_position: "pos-new".to_owned(),
        from_site: None,
        to_site: Some(SiteId::from(to_site)),
        distance_km: Some(1000),
        pay_change_pct: None,
        accepted: true,
    }))
}

fn correct(original: EventId, replacement: Payload) -> Payload {
    Payload::EventCorrected(EventCorrected {
        original_event_id: original,
        reason: "wrong fields".to_owned(),
        replacement: Box::new(replacement),
    })
}

fn retract(original: EventId) -> Payload {
    Payload::EventRetracted(EventRetracted {
        original_event_id: original,
        reason: "recorded in error".to_owned(),
    })
}

fn backfilled(separation: EventId) -> Payload {
    Payload::PositionBackfilled(PositionChange {
        position_id: "pos".to_owned(),
        linked_separation_id: Some(separation),
    })
}

fn closed(separation: EventId) -> Payload {
    Payload::PositionClosed(PositionChange {
        position_id: "pos".to_owned(),
        linked_separation_id: Some(separation),
    })
}

fn step(plan: &str) -> ComplianceStep {
    ComplianceStep {
        plan_id: plan.to_owned(),
        recipient: "union".to_owned(),
        document_ref: String::new(),
        ai_checkbox: false,
    }
}

fn acme() -> Query {
    Query {
        org: Some(OrgId::from("acme")),
        ..Query::default()
    }
}

/// Eight baseline workers (two graduate trainees), seven separations over March and April.
struct Scenario {
    l: Ledger,
    /// w1 graduate economic, w3 economic (AI cited), w4 non-renewal (March); w5 resignation open,
    /// w6 resignation closed, w7 for cause, w8 role automated (April).
    seps: Vec<EventId>,
}

fn scenario() -> Scenario {
    let mut l = Ledger::default();
    for (w, c) in [
        ("w1", Cohort::GraduateTrainee),
        ("w2", Cohort::GraduateTrainee),
        ("w3", Cohort::Experienced),
        ("w4", Cohort::Experienced),
        ("w5", Cohort::Experienced),
        ("w6", Cohort::Experienced),
        ("w7", Cohort::Experienced),
        ("w8", Cohort::Experienced),
    ] {
        l.rec("2026-01-01", baseline(w, c));
    }
    let seps = vec![
        l.rec("2026-03-05", economic("w1")),
        l.rec(
            "2026-03-10",
            economic_sep(with_ai(sep("w3"), AiAttribution::CitedByEmployer)),
        ),
        l.rec("2026-03-20", non_renewal("w4")),
        l.rec("2026-04-02", resign("w5", false, false)),
        l.rec("2026-04-15", resign("w6", true, false)),
        l.rec("2026-04-20", for_cause("w7")),
        l.rec("2026-04-25", role_automated(Some("w8"))),
    ];
    Scenario { l, seps }
}

type RowSummary = (String, Bucket, Option<Mechanism>, u64, u64, usize);

fn summary(p: &Projection, q: &Query) -> Vec<RowSummary> {
    p.separations(q)
        .rows
        .into_iter()
        .map(|r| {
            (
                r.period,
                r.bucket,
                r.mechanism,
                r.count,
                r.employer_influenced,
                r.event_ids.len(),
            )
        })
        .collect()
}

fn total(p: &Projection, q: &Query, bucket: Bucket) -> u64 {
    p.separations(q)
        .totals
        .iter()
        .find(|t| t.bucket == bucket)
        .map_or(0, |t| t.count)
}

// ---- separations -----------------------------------------------------------------------------

#[test]
fn separations_are_split_per_bucket_mechanism_and_month() {
    let s = scenario();
    let m = |s: &str| s.to_owned();
    assert_eq!(
        summary(&s.l.p, &acme()),
        vec![
            (
                m("2026-03"),
                Bucket::FormalLayoff,
                Some(Mechanism::EconomicDismissal),
                2,
                2,
                2
            ),
            (
                m("2026-03"),
                Bucket::GradualAttrition,
                Some(Mechanism::ContractNotRenewed),
                1,
                1,
                1
            ),
            (
                m("2026-04"),
                Bucket::FormalLayoff,
                Some(Mechanism::RoleAutomated),
                1,
                1,
                1
            ),
            (
                m("2026-04"),
                Bucket::GradualAttrition,
                Some(Mechanism::NonBackfilledResignation),
                1,
                0,
                1
            ),
            (
                m("2026-04"),
                Bucket::Neutral,
                Some(Mechanism::Resignation),
                1,
                0,
                1
            ),
            (
                m("2026-04"),
                Bucket::Neutral,
                Some(Mechanism::DismissalForCause),
                1,
                0,
                1
            ),
        ]
    );
    let view = s.l.p.separations(&acme());
    assert_eq!(view.total, 7);
    assert_eq!(view.as_of_sequence, 15);
    let buckets: Vec<(Bucket, u64)> = view.totals.iter().map(|t| (t.bucket, t.count)).collect();
    assert_eq!(
        buckets,
        vec![
            (Bucket::FormalLayoff, 3),
            (Bucket::GradualAttrition, 2),
            (Bucket::Neutral, 2)
        ]
    );
    let attrition = &view.totals[1];
    assert_eq!(attrition.employer_influenced, 1);
    assert_eq!(attrition.position_closed, 1);
}

#[test]
fn period_keys_for_day_month_and_quarter() {
    let d = date("2026-03-02");
    assert_eq!(Period::Day.key(d), "2026-03-02");
    assert_eq!(Period::Month.key(d), "2026-03");
    assert_eq!(Period::Quarter.key(d), "2026-Q1");
    assert_eq!(Period::Quarter.key(date("2026-12-31")), "2026-Q4");
    assert_eq!(
        Period::Quarter.start_of(date("2026-05-17")),
        date("2026-04-01")
    );
    assert_eq!(
        Period::Quarter.end_of(date("2026-05-17")),
        date("2026-06-30")
    );
    assert_eq!(Period::Month.end_of(date("2024-02-10")), date("2024-02-29"));
    assert_eq!(Period::Month.end_of(date("2026-12-10")), date("2026-12-31"));
    assert_eq!(Query::default().period, Period::Month);

    let s = scenario();
    let quarters = Query {
        period: Period::Quarter,
        ..acme()
    };
    let keys: Vec<String> =
        s.l.p
            .separations(&quarters)
            .rows
            .into_iter()
            .map(|r| r.period)
            .collect();
    assert!(
        keys.iter().all(|k| k == "2026-Q1" || k == "2026-Q2"),
        "{keys:?}"
    );
    let days = Query {
        period: Period::Day,
        ..acme()
    };
    assert_eq!(
        s.l.p.separations(&days).rows[0].period,
        "2026-03-05",
        "the first separation's day"
    );
}

#[test]
fn filters_by_org_site_cohort_and_window() {
    let mut s = scenario();
    // Another org, and another site of acme.
    s.l.at("globex", "sh", "2026-01-01", baseline("g1", Cohort::Senior));
    s.l.at("globex", "sh", "2026-03-07", economic("g1"));
    s.l.at(
        "acme",
        "bj",
        "2026-01-01",
        baseline("b1", Cohort::EntryLevel),
    );
    let bj_sep = s.l.at("acme", "bj", "2026-03-08", non_renewal("b1"));

    assert_eq!(s.l.p.separations(&Query::default()).total, 9);
    assert_eq!(s.l.p.separations(&acme()).total, 8);
    let globex = Query {
        org: Some(OrgId::from("globex")),
        ..Query::default()
    };
    assert_eq!(s.l.p.separations(&globex).total, 1);

    let bj = Query {
        site: Some(SiteId::from("bj")),
        ..acme()
    };
    let view = s.l.p.separations(&bj);
    assert_eq!(view.total, 1);
    assert_eq!(view.rows[0].event_ids, vec![bj_sep]);

    // Cohort: the separation has none, so the cohort the worker was hired with counts.
    let graduates = Query {
        cohort: Some(Cohort::GraduateTrainee),
        ..acme()
    };
    let view = s.l.p.separations(&graduates);
    assert_eq!(view.total, 1);
    assert_eq!(view.rows[0].event_ids, vec![s.seps[0]]);

    let april = Query {
        from: Some(date("2026-04-01")),
        to: Some(date("2026-04-30")),
        ..acme()
    };
    let view = s.l.p.separations(&april);
    assert_eq!(view.total, 4);
    assert!(view.rows.iter().all(|r| r.period == "2026-04"));
}

// ---- headcount -------------------------------------------------------------------------------

#[test]
fn headcount_reconciles_hires_separations_and_transfers_between_sites() {
    let mut l = Ledger::default();
    l.rec("2026-01-01", baseline("w1", Cohort::Experienced));
    l.rec("2026-01-01", baseline("w2", Cohort::Experienced));
    l.rec("2026-01-01", baseline("w3", Cohort::GraduateTrainee));
    let h4 = l.rec("2026-02-10", hire("w4", Cohort::EntryLevel));
    let r2 = l.rec("2026-02-15", redeploy("w2", "bj"));
    let s1 = l.rec("2026-03-05", economic("w1"));
    let h5 = l.at("acme", "bj", "2026-03-10", hire("w5", Cohort::EntryLevel));

    let figures = |q: &Query| -> Vec<(String, [u64; 6])> {
        let v = l.p.headcount(q);
        assert!(v.reconciles, "{v:#?}");
        v.rows
            .into_iter()
            .map(|r| {
                let t = r.total;
                (
                    r.period,
                    [
                        t.opening,
                        t.hires,
                        t.separations,
                        t.transfers_in,
                        t.transfers_out,
                        t.closing,
                    ],
                )
            })
            .collect()
    };
    let s = |k: &str| k.to_owned();
    assert_eq!(
        figures(&acme()),
        vec![
            (s("2026-01"), [3, 0, 0, 0, 0, 3]),
            (s("2026-02"), [3, 1, 0, 0, 0, 4]),
            (s("2026-03"), [4, 1, 1, 0, 0, 4]),
        ],
        "baseline loads are opening headcount; moves inside the org are not transfers"
    );
    let sh = Query {
        site: Some(SiteId::from("sh")),
        ..acme()
    };
    assert_eq!(
        figures(&sh),
        vec![
            (s("2026-01"), [3, 0, 0, 0, 0, 3]),
            (s("2026-02"), [3, 1, 0, 0, 1, 3]),
            (s("2026-03"), [3, 0, 1, 0, 0, 2]),
        ]
    );
    let bj = Query {
        site: Some(SiteId::from("bj")),
        ..acme()
    };
    assert_eq!(
        figures(&bj),
        vec![
            (s("2026-01"), [0, 0, 0, 0, 0, 0]),
            (s("2026-02"), [0, 0, 0, 1, 0, 1]),
            (s("2026-03"), [1, 1, 0, 0, 0, 2]),
        ]
    );

    let v = l.p.headcount(&acme());
    assert_eq!(
        v.rows[1].total.event_ids,
        vec![h4],
        "explain: the February hire"
    );
    assert_eq!(v.rows[2].total.event_ids, vec![s1, h5]);
    let bj_feb = &l.p.headcount(&bj).rows[1].total;
    assert_eq!(bj_feb.event_ids, vec![r2]);

    // By cohort and relationship, each reconciling on its own.
    let march = &v.rows[2];
    assert_eq!(march.by_cohort["entry_level"].closing, 2);
    assert_eq!(march.by_cohort["experienced"].separations, 1);
    assert_eq!(march.by_cohort["graduate_trainee"].closing, 1);
    assert_eq!(march.by_relationship["employee"].closing, 4);
    assert!(march.reconciles);

    let graduates = Query {
        cohort: Some(Cohort::GraduateTrainee),
        ..acme()
    };
    assert!(l
        .p
        .headcount(&graduates)
        .rows
        .iter()
        .all(|r| r.total.closing == 1));

    let days = Query {
        period: Period::Day,
        ..acme()
    };
    let v = l.p.headcount(&days);
    assert_eq!(v.rows.len(), 31 + 28 + 10);
    assert!(v
        .rows
        .windows(2)
        .all(|w| w[0].total.closing == w[1].total.opening));
    assert!(v.reconciles);
}

#[test]
fn a_retraction_removes_a_separation_and_restores_headcount() {
    let mut l = Ledger::default();
    l.rec("2026-01-01", baseline("w1", Cohort::Experienced));
    l.rec("2026-01-01", baseline("w2", Cohort::Experienced));
    let s1 = l.rec("2026-03-05", economic("w1"));
    let march = |l: &Ledger| l.p.headcount(&acme()).rows[2].total.clone();
    assert_eq!(march(&l).closing, 1);
    assert_eq!(l.p.separations(&acme()).total, 1);

    l.rec("2026-03-06", retract(s1));
    assert_eq!(l.p.separations(&acme()).total, 0);
    assert_eq!(march(&l).closing, 2);
    assert_eq!(march(&l).separations, 0);
    assert!(l.p.separation_records(None).is_empty());
    let explained = l.p.explain(&[s1]);
    assert_eq!(explained[0].retracted_by.len(), 1, "explain still finds it");
}

#[test]
fn a_retracted_hire_leaves_headcount() {
    let mut l = Ledger::default();
    l.rec("2026-01-01", baseline("w1", Cohort::Experienced));
    let h2 = l.rec("2026-02-01", hire("w2", Cohort::EntryLevel));
    assert_eq!(l.p.headcount(&acme()).rows[1].total.closing, 2);
    l.rec("2026-02-02", retract(h2));
    let feb = &l.p.headcount(&acme()).rows[1].total;
    assert_eq!((feb.hires, feb.closing), (0, 1));
    assert!(feb.reconciles);
}

#[test]
fn a_correction_changes_the_bucket_and_retracting_it_restores_the_original() {
    let mut l = Ledger::default();
    l.rec("2026-01-01", baseline("w1", Cohort::Experienced));
    let r = l.rec("2026-03-05", resign("w1", false, false));
    assert_eq!(total(&l.p, &acme(), Bucket::Neutral), 1);

    let c = l.rec("2026-03-20", correct(r, resign("w1", false, true)));
    assert_eq!(total(&l.p, &acme(), Bucket::Neutral), 0);
    assert_eq!(total(&l.p, &acme(), Bucket::GradualAttrition), 1);
    let rec = &l.p.separation_records(None)[0];
    assert_eq!(rec.event_id, r, "the original keeps its id and date");
    assert_eq!(rec.effective_date, date("2026-03-05"));
    assert!(rec.classification.employer_influenced);
    assert_eq!(rec.payload, resign("w1", false, true));
    assert_eq!(l.p.explain(&[r])[0].corrected_by, vec![c]);

    // A correction of the correction, then retracting that: the first correction is back.
    let c2 = l.rec(
        "2026-03-21",
        correct(c, correct(r, resign("w1", true, false))),
    );
    let rec = &l.p.separation_records(None)[0];
    assert_eq!(
        rec.classification.mechanism,
        Some(Mechanism::NonBackfilledResignation)
    );
    l.rec("2026-03-22", retract(c2));
    assert_eq!(
        l.p.separation_records(None)[0].classification.mechanism,
        Some(Mechanism::PressuredResignation)
    );
    l.rec("2026-03-23", retract(c));
    assert_eq!(total(&l.p, &acme(), Bucket::Neutral), 1);
    assert!(l.p.explain(&[r])[0].corrected_by.is_empty());
}

#[test]
fn position_links_reclassify_the_separation_they_name() {
    let mut l = Ledger::default();
    l.rec("2026-01-01", baseline("w1", Cohort::Experienced));
    l.rec("2026-01-01", baseline("w2", Cohort::Experienced));
    let nr = l.rec("2026-03-05", non_renewal("w1"));
    let rs = l.rec("2026-03-06", resign("w2", false, false));
    assert_eq!(total(&l.p, &acme(), Bucket::GradualAttrition), 1);
    assert_eq!(total(&l.p, &acme(), Bucket::Neutral), 1);

    let bf = l.rec("2026-04-01", backfilled(nr));
    let cl = l.rec("2026-04-02", closed(rs));
    assert_eq!(
        total(&l.p, &acme(), Bucket::GradualAttrition),
        1,
        "the back-filled non-renewal is neutral, the closed resignation attrition"
    );
    let records = l.p.separation_records(None);
    assert_eq!(records[0].classification.bucket, Bucket::Neutral);
    assert!(records[0].classification.backfilled);
    assert!(records[0].classification.employer_influenced);
    assert_eq!(records[1].classification.bucket, Bucket::GradualAttrition);
    assert!(records[1].classification.position_closed);
    assert_eq!(l.p.explain(&[nr])[0].linked_by, vec![bf]);

    // The latest live link wins; retracting it brings back the one before.
    let cl2 = l.rec("2026-04-03", closed(nr));
    assert_eq!(
        l.p.separation_records(None)[0].classification.bucket,
        Bucket::GradualAttrition
    );
    l.rec("2026-04-04", retract(cl2));
    assert_eq!(
        l.p.separation_records(None)[0].classification.bucket,
        Bucket::Neutral
    );
    l.rec("2026-04-05", retract(cl));
    assert_eq!(total(&l.p, &acme(), Bucket::Neutral), 2);
}

#[test]
fn every_figure_carries_event_ids_that_explain_it() {
    let s = scenario();
    let view = s.l.p.separations(&acme());
    let mut all = Vec::new();
    for row in &view.rows {
        let explained = s.l.p.explain(&row.event_ids);
        assert_eq!(explained.len() as u64, row.count);
        for e in explained {
            assert_eq!(e.classification.bucket, row.bucket);
            assert_eq!(e.classification.mechanism, row.mechanism);
            assert!(e.payload.separation().is_some());
            assert!(e.retracted_by.is_empty());
        }
        all.extend(row.event_ids.iter().copied());
    }
    all.sort();
    let mut expected = s.seps.clone();
    expected.sort();
    assert_eq!(all, expected);
    for t in &view.totals {
        assert_eq!(t.event_ids.len() as u64, t.count);
    }
    assert!(
        s.l.p.explain(&[id(999)]).is_empty(),
        "unknown ids are skipped"
    );
}

#[test]
fn ai_attributed_share_keeps_cited_and_inferred_apart() {
    let mut l = Ledger::default();
    for w in ["w1", "w2", "w3", "w4"] {
        l.rec("2026-01-01", baseline(w, Cohort::Experienced));
    }
    let cited = l.rec("2026-03-01", role_automated(Some("w1")));
    let inferred = l.rec(
        "2026-03-02",
        economic_sep(with_ai(sep("w2"), AiAttribution::Inferred)),
    );
    l.rec("2026-03-03", economic("w3"));
    l.rec("2026-03-04", resign("w4", false, false));

    let view = l.p.separations(&acme());
    let ai = &view.ai_attributed;
    assert_eq!(
        (ai.separations, ai.cited_by_employer, ai.inferred),
        (4, 1, 1)
    );
    assert_eq!(ai.share, Some(0.5));
    assert_eq!(ai.event_ids, vec![cited, inferred]);
    let layoffs = &view.totals[0];
    assert_eq!(layoffs.bucket, Bucket::FormalLayoff);
    assert_eq!(layoffs.ai.share, Some(2.0 / 3.0));
    assert_eq!(view.totals[2].ai.share, Some(0.0));
    assert_eq!(
        view.rows[0].ai_cited_by_employer + view.rows[0].ai_inferred,
        1
    );

    let adoption = l.p.ai_adoption(&acme());
    assert_eq!(adoption.ai_attributed_separations, *ai);
}

// ---- cohort exposure -------------------------------------------------------------------------

#[test]
fn cohort_exposure_compares_share_of_reductions_with_share_of_headcount() {
    let mut l = Ledger::default();
    l.rec("2026-01-01", baseline("g1", Cohort::GraduateTrainee));
    l.rec("2026-01-01", baseline("g2", Cohort::GraduateTrainee));
    for i in 0..8 {
        l.rec(
            "2026-01-01",
            baseline(&format!("e{i}"), Cohort::Experienced),
        );
    }
    l.rec("2026-03-02", non_renewal("g1"));
    l.rec("2026-03-03", economic("g2"));
    l.rec("2026-03-04", economic("e0"));
    l.rec("2026-03-05", resign("e1", false, false)); // neutral: not a reduction

    let march = Query {
        from: Some(date("2026-03-01")),
        to: Some(date("2026-03-31")),
        ..acme()
    };
    let v = l.p.cohort_exposure(&march);
    assert_eq!(v.total_reductions, 3);
    assert!(v.headcount_basis.contains("average"));
    let row = |k: &str| v.rows.iter().find(|r| r.cohort == k).expect("a row");
    let g = row("graduate_trainee");
    assert_eq!(
        (g.reductions, g.opening_headcount, g.closing_headcount),
        (2, 2, 0)
    );
    assert_eq!(g.average_headcount, 1.0);
    let e = row("experienced");
    assert_eq!(
        (e.reductions, e.opening_headcount, e.closing_headcount),
        (1, 8, 6)
    );
    assert_eq!(v.total_average_headcount, 8.0);
    assert_eq!(g.reduction_share, Some(2.0 / 3.0));
    assert_eq!(g.headcount_share, Some(1.0 / 8.0));
    let ratio = g.exposure_ratio.expect("a ratio");
    assert!((ratio - 16.0 / 3.0).abs() < 1e-9, "{ratio}");
    assert!(e.exposure_ratio.expect("a ratio") < 1.0);
    assert_eq!(g.event_ids.len(), 2);

    let only_graduates = Query {
        cohort: Some(Cohort::GraduateTrainee),
        ..march
    };
    let v2 = l.p.cohort_exposure(&only_graduates);
    assert_eq!(v2.rows.len(), 1);
    assert_eq!(v2.rows[0], *g, "shares stay against every cohort");
}

// ---- signals ---------------------------------------------------------------------------------

#[test]
fn hiring_signals_list_pauses_and_graduate_intake_against_baseline() {
    let mut l = Ledger::default();
    let pause = |scope: &str, frozen: u32, cancelled: u32| {
        Payload::HiringPaused(HiringPaused {
            scope: scope.to_owned(),
            reqs_frozen: frozen,
            reqs_cancelled: cancelled,
            until: None,
        })
    };
    let p1 = l.rec("2026-03-01", pause("eng", 5, 2));
    l.rec("2026-03-05", pause("sales", 3, 0));
    let r1 = l.rec(
        "2026-04-01",
        Payload::HiringResumed(HiringResumed {
            scope: "eng".to_owned(),
            reqs_reopened: 4,
        }),
    );
    let i1 = l.rec(
        "2026-01-10",
        Payload::GraduateIntakeSet(GraduateIntake {
            cohort_year: 2026,
            planned: 40,
            baseline: 40,
            actual: None,
        }),
    );
    let i2 = l.rec(
        "2026-03-15",
        Payload::GraduateIntakeReduced(GraduateIntake {
            cohort_year: 2026,
            planned: 20,
            baseline: 40,
            actual: Some(18),
        }),
    );

    let v = l.p.hiring_signals(&acme());
    assert_eq!(v.pauses.len(), 2);
    let eng = &v.pauses[0];
    assert_eq!(eng.scope, "eng");
    assert_eq!(eng.resumed_on, Some(date("2026-04-01")));
    assert_eq!(eng.reqs_reopened, 4);
    assert_eq!(eng.event_ids, vec![p1, r1]);
    assert_eq!(v.pauses[1].resumed_on, None);
    assert_eq!(
        (v.open_pauses, v.reqs_frozen_open, v.reqs_cancelled),
        (1, 3, 2)
    );

    let intake = &v.graduate_intake[0];
    assert_eq!(
        (intake.planned, intake.baseline, intake.actual),
        (20, 40, Some(18))
    );
    assert_eq!(intake.planned_ratio, Some(0.5));
    assert_eq!(intake.actual_ratio, Some(0.45));
    assert_eq!(
        (intake.shortfall, intake.shortfall_basis.as_str()),
        (22, "actual")
    );
    assert!(intake.reduced);
    assert_eq!(intake.event_ids, vec![i1, i2]);

    let after = Query {
        from: Some(date("2026-04-02")),
        ..acme()
    };
    let v = l.p.hiring_signals(&after);
    assert_eq!(
        v.pauses.len(),
        1,
        "the resumed pause ended before the window"
    );
    assert_eq!(v.pauses[0].scope, "sales");

    // A unit that pauses again: still one row (the latest pause, how many, since when), every
    // pause and resumption its evidence; the totals count every pause.
    let r2 = l.rec(
        "2026-05-01",
        Payload::HiringPaused(HiringPaused {
            scope: "eng".to_owned(),
            reqs_frozen: 7,
            reqs_cancelled: 1,
            until: None,
        }),
    );
    let v = l.p.hiring_signals(&acme());
    assert_eq!(v.pauses.len(), 2, "one row per unit, not per pause");
    let eng = v.pauses.iter().find(|r| r.scope == "eng").expect("eng");
    assert_eq!(
        (eng.pauses, eng.first_paused_on, eng.paused_on),
        (2, Some(date("2026-03-01")), date("2026-05-01"))
    );
    assert_eq!((eng.reqs_frozen, eng.resumed_on), (7, None));
    assert_eq!(eng.event_ids, vec![p1, r1, r2]);
    assert_eq!(v.pauses[1].scope, "eng", "rows by their latest pause");
    assert_eq!(
        (v.open_pauses, v.reqs_frozen_open, v.reqs_cancelled),
        (2, 10, 3)
    );
}

#[test]
fn ai_adoption_reports_usage_tools_roles_and_the_external_targets_apart() {
    let mut l = Ledger::default();
    l.rec("2026-01-01", baseline("w1", Cohort::Experienced));
    let usage = |metric: AiMetric, end: &str, value: u64, population: Option<u64>| {
        Payload::AiUsageMeasured(AiUsageMeasured {
            scope: "eng".to_owned(),
            period_start: date("2026-01-01"),
            period_end: date(end),
            metric,
            value,
            population,
            used_in_performance_review: metric == AiMetric::Tokens,
        })
    };
    l.rec(
        "2026-02-01",
        usage(AiMetric::ActiveUsers, "2026-01-31", 30, Some(100)),
    );
    let latest = l.rec(
        "2026-03-01",
        usage(AiMetric::ActiveUsers, "2026-02-28", 60, Some(100)),
    );
    l.rec(
        "2026-03-01",
        usage(AiMetric::Tokens, "2026-02-28", 5_000_000, None),
    );
    let rollout = |tool: &str, mandatory: bool| {
        Payload::AiToolRolledOut(AiToolRolledOut {
            tool: tool.to_owned(),
            scope: "eng".to_owned(),
            mandatory,
        })
    };
    // The same tool at the same scope three times (recorded out of date order), and another.
    let second = l.rec("2026-02-20", rollout("assistant", false));
    let first = l.rec("2026-01-15", rollout("assistant", true));
    let third = l.rec("2026-03-05", rollout("assistant", true));
    let other = l.rec("2026-02-01", rollout("coder", false));
    l.rec("2026-03-10", role_automated(None));
    l.rec("2026-03-11", role_automated(Some("w1")));

    let v = l.p.ai_adoption(&acme());
    assert_eq!(v.usage.len(), 2);
    let active = &v.usage[0];
    assert_eq!(active.metric, AiMetric::ActiveUsers);
    assert_eq!(active.event_id, latest, "the latest measurement per scope");
    assert_eq!(active.active_user_share, Some(0.6));
    assert_eq!(active.measure, "adoption");
    let tokens = &v.usage[1];
    assert_eq!(tokens.active_user_share, None);
    assert_eq!(tokens.measure, "activity");
    assert!(tokens.used_in_performance_review);
    // One row per (org, site, scope, tool), ordered by its latest roll-out: the answer grows
    // with the tools in use, not with roll-out events.
    let rows: Vec<(&str, u64, Date, Date, bool)> = v
        .tools
        .iter()
        .map(|t| {
            (
                t.tool.as_str(),
                t.rollouts,
                t.first_effective_date,
                t.effective_date,
                t.mandatory,
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("coder", 1, date("2026-02-01"), date("2026-02-01"), false),
            ("assistant", 3, date("2026-01-15"), date("2026-03-05"), true),
        ]
    );
    assert_eq!(v.tools[1].event_id, third, "the latest roll-out's terms");
    assert_eq!(
        v.tools[1].event_ids,
        vec![first, second, third],
        "by effective date"
    );
    assert_eq!(v.tools[0].event_ids, vec![other]);
    assert_eq!(
        (v.roles_automated.count, v.roles_automated.with_separation),
        (2, 1)
    );
    assert_eq!(v.ai_attributed_separations.cited_by_employer, 1);
    assert_eq!(v.ai_attributed_separations.share, Some(1.0));

    let targets: Vec<(u32, u32)> = v
        .external_reference
        .iter()
        .map(|t| (t.year, t.above_pct))
        .collect();
    assert_eq!(targets, vec![(2027, 70), (2030, 90)]);
    for t in &v.external_reference {
        assert!(t.label.contains("国发〔2025〕11号"));
        assert!(t.label.contains("official statistical definition unknown"));
        assert!(t.label.contains("not comparable to the figures above"));
    }
}

// ---- records and population ------------------------------------------------------------------

#[test]
fn records_for_the_rule_packs_are_current_and_ordered_by_effective_date() {
    let mut l = Ledger::default();
    l.rec("2026-01-01", baseline("w1", Cohort::Experienced));
    l.rec("2026-01-01", baseline("w2", Cohort::Experienced));
    l.at(
        "globex",
        "x",
        "2026-01-01",
        baseline("g1", Cohort::Experienced),
    );
    let late = l.rec("2026-03-09", economic("w1"));
    let early = l.rec("2026-03-01", non_renewal("w2"));
    l.at("globex", "x", "2026-03-02", economic("g1"));
    let briefed = l.rec("2026-02-01", Payload::UnionBriefed(step("plan-1")));
    let reported = l.rec("2026-02-05", Payload::AuthorityReported(step("plan-1")));
    l.at(
        "globex",
        "x",
        "2026-02-05",
        Payload::WarnNoticeFiled(step("plan-9")),
    );

    let acme_org = OrgId::from("acme");
    let seps = l.p.separation_records(Some(&acme_org));
    let ids: Vec<EventId> = seps.iter().map(|r| r.event_id).collect();
    assert_eq!(ids, vec![early, late]);
    assert_eq!(seps[0].event_type, EventType::ContractNotRenewed);
    assert_eq!(seps[0].classification.bucket, Bucket::GradualAttrition);
    assert_eq!(seps[1].correlation_id.as_deref(), Some("plan-1"));
    assert_eq!(seps[1].jurisdiction, "CN");
    assert_eq!(l.p.separation_records(None).len(), 3);
    assert!(!seps[0].classification.backfilled);

    // Rule packs may also count long temporary layoffs and deep hours cuts (WARN).
    let layoff = l.rec(
        "2026-03-05",
        Payload::TemporaryLayoff(TemporaryLayoff {
            worker_ref: WorkerRef::from("w9"),
            expected_duration_days: 200,
            recall_expected: false,
        }),
    );
    let countable: Vec<EventId> =
        l.p.countable_records(Some(&acme_org))
            .iter()
            .map(|r| r.event_id)
            .collect();
    assert_eq!(countable, vec![early, layoff, late]);
    assert_eq!(l.p.separation_records(Some(&acme_org)).len(), 2);

    let steps = l.p.compliance_records(Some(&acme_org));
    let kinds: Vec<(EventId, EventType, &str)> = steps
        .iter()
        .map(|r| (r.event_id, r.kind, r.plan_id.as_str()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (briefed, EventType::UnionBriefed, "plan-1"),
            (reported, EventType::AuthorityReported, "plan-1")
        ]
    );
    assert_eq!(steps[0].site, SiteId::from("sh"));
    assert_eq!(l.p.compliance_records(None).len(), 3);
}

#[test]
fn population_counts_workers_employed_at_the_end_of_the_day_with_exclusions() {
    let mut l = Ledger::default();
    l.rec("2026-01-01", baseline("e1", Cohort::Experienced));
    l.rec(
        "2026-01-01",
        hire_as(
            "p1",
            None,
            EmploymentRelationship::Employee,
            ContractType::PartTime,
            true,
        ),
    );
    l.rec(
        "2026-01-01",
        hire_as(
            "d1",
            None,
            EmploymentRelationship::Dispatched,
            ContractType::FixedTerm,
            true,
        ),
    );
    l.at(
        "acme",
        "bj",
        "2026-02-01",
        hire_as(
            "c1",
            None,
            EmploymentRelationship::Contractor,
            ContractType::Task,
            false,
        ),
    );
    l.rec("2026-03-01", economic("e1"));

    let q = |on: &str, site: Option<&str>| PopulationQuery {
        org: OrgId::from("acme"),
        site: site.map(SiteId::from),
        on: date(on),
        exclude_relationships: Vec::new(),
        exclude_contract_types: Vec::new(),
        jurisdiction_prefix: None,
        max_over_days: None,
        part_time_below_weekly_hours: None,
        part_time_below_months_of_12: None,
    };
    assert_eq!(Population::headcount(&l.p, &q("2026-01-31", None)), 3);
    assert_eq!(l.p.population(&q("2026-02-01", None)), 4, "hired that day");
    assert_eq!(l.p.population(&q("2026-02-28", None)), 4);
    assert_eq!(
        l.p.population(&q("2026-03-01", None)),
        3,
        "separated that day"
    );
    assert_eq!(l.p.population(&q("2026-02-28", Some("bj"))), 1);

    let cn = PopulationQuery {
        exclude_relationships: vec![
            EmploymentRelationship::Dispatched,
            EmploymentRelationship::Contractor,
        ],
        ..q("2026-02-28", None)
    };
    assert_eq!(l.p.population(&cn), 2);
    let warn = PopulationQuery {
        exclude_contract_types: vec![ContractType::PartTime],
        ..q("2026-02-28", None)
    };
    assert_eq!(l.p.population(&warn), 3);
    let other = PopulationQuery {
        org: OrgId::from("globex"),
        ..q("2026-02-28", None)
    };
    assert_eq!(l.p.population(&other), 0);
}

#[test]
fn redelivered_sequences_and_duplicate_ids_are_ignored() {
    let s = scenario();
    let mut p = s.l.p.clone();
    let event = Event {
        event_id: id(99),
        org_id: OrgId::from("acme"),
        site_id: SiteId::from("sh"),
        jurisdiction: "CN".to_owned(),
        effective_date: date("2026-05-01"),
        source: Source::default(),
        correlation_id: None,
        causation_id: None,
        schema_version: 1,
        evidence_confidence: EvidenceConfidence::Reported,
        expected_version: None,
        payload: economic("w2"),
    };
    p.apply(3, &event);
    assert_eq!(p, s.l.p, "an old sequence changes nothing");
    p.apply(16, &event);
    let once = p.clone();
    p.apply(17, &event);
    assert_eq!(p.last_sequence(), 17);
    let (now, then) = (p.separations(&acme()), once.separations(&acme()));
    assert_eq!((now.rows, now.totals), (then.rows, then.totals));
    assert_eq!(
        now.as_of_sequence, 17,
        "the answer names the latest sequence"
    );
}

#[test]
fn an_empty_projection_answers_empty_views() {
    let p = Projection::new();
    assert_eq!(p.last_sequence(), 0);
    assert_eq!(p.separations(&Query::default()).total, 0);
    let h = p.headcount(&Query::default());
    assert!(h.rows.is_empty() && h.reconciles);
    assert!(p.cohort_exposure(&Query::default()).rows.is_empty());
    assert!(p.hiring_signals(&Query::default()).pauses.is_empty());
    assert_eq!(p.ai_adoption(&Query::default()).external_reference.len(), 2);
}

/// The only worker-index links a persist hands over are those corrections add: a correction that
/// gives a worker to an event that named none (an automated role whose holder turns out to have
/// been separated), twice with different workers. Restored from the stored entries with those
/// links, the state is the folded one; without them the worker index lacks them (so they must
/// be stored), and the entries' own links (the hire's) need no storing.
#[test]
fn only_the_links_corrections_add_are_handed_over_and_restore_needs_them() {
    let mut l = Ledger::default();
    l.rec("2026-01-05", hire("w-1", Cohort::Experienced));
    let role = l.rec("2026-02-01", role_automated(None));
    l.rec("2026-02-03", correct(role, role_automated(Some("w-9"))));
    l.rec("2026-02-04", correct(role, role_automated(Some("w-10"))));
    let changes = l.p.take_changes();
    let mut linked: Vec<(String, u64)> = changes
        .links
        .iter()
        .map(|link| (link.worker.0.clone(), link.sequence))
        .collect();
    linked.sort();
    assert_eq!(
        linked,
        [("w-10".to_owned(), 2), ("w-9".to_owned(), 2)],
        "the corrections' links, on the corrected event; none for the hire"
    );
    let entries: Vec<_> = changes.entries.clone();
    let restored = Projection::restore(changes.last_sequence, entries.clone(), changes.links);
    assert_eq!(restored, l.p);
    let without = Projection::restore(changes.last_sequence, entries, Vec::new());
    assert_ne!(
        without, l.p,
        "the corrections' links are not implied by any entry"
    );
}
