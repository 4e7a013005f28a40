//! The bucket rules of domain-rules.md §5.1/§5.2, one test per rule: what each separation kind
//! counts as, how position links re-classify it, and that non-separations are signals or neutral.

use wfl_domain::{
    AdverseChangeRefusedExit, AgencyRelease, AiAttribution, AiMetric, AiToolRolledOut,
    AiUsageMeasured, BackfillStatus, ChangeType, ComplianceStep, ContractNotRenewed,
    ContractRenewed, ContractType, Date, DismissalForCause, EconomicDismissal,
    EmploymentRelationship, EventRetracted, GraduateIntake, HiringPaused, HoursReduced, Initiator,
    InternalRedeployment, MutualTerminationEmployerProposed, Payload, PositionChange, Resignation,
    RestructuringPlanAnnounced, Retirement, RetirementType, RoleAutomated, Separation,
    TemporaryLayoff, WorkerHired, WorkerRef,
};
use wfl_projections::classify::{classify, Bucket, Classification, Mechanism};

fn sep(initiator: Initiator) -> Separation {
    Separation {
        worker_ref: WorkerRef::from("w-1"),
        employment_relationship: EmploymentRelationship::Employee,
        contract_type: ContractType::OpenEnded,
        cohort: None,
        position_id: Some("pos-1".to_owned()),
        position_closed: false,
        backfill_status: BackfillStatus::Unknown,
        initiator,
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

fn closed(mut s: Separation) -> Separation {
    s.position_closed = true;
    s
}

fn economic() -> Payload {
    Payload::EconomicDismissal(Box::new(EconomicDismissal {
        separation: sep(Initiator::Employer),
        selection_criteria: None,
        plan_id: None,
    }))
}

fn non_renewal(s: Separation, employee_refused: bool) -> Payload {
    Payload::ContractNotRenewed(Box::new(ContractNotRenewed {
        separation: s,
        renewal_offered: employee_refused,
        offer_terms: None,
        employee_refused,
        would_trigger_open_ended: false,
        consecutive_fixed_terms: None,
    }))
}

fn resignation(s: Separation, pressured: bool) -> Payload {
    Payload::Resignation(Box::new(Resignation {
        separation: s,
        regrettable: false,
        pressured,
    }))
}

fn retirement(s: Separation, retirement_type: RetirementType) -> Payload {
    Payload::Retirement(Box::new(Retirement {
        separation: s,
        retirement_type,
    }))
}

fn role_automated(separation: Option<Separation>) -> Payload {
    Payload::RoleAutomated(Box::new(RoleAutomated {
        role_id: "role-7".to_owned(),
        ai_system: "assistant".to_owned(),
        separation,
        retraining_offered: false,
        redeployment_offered: false,
    }))
}

fn release(s: Separation) -> Box<AgencyRelease> {
    Box::new(AgencyRelease {
        separation: s,
        agency_id: Some("agency".to_owned()),
        ground: Some("CN-DISPATCH-12".to_owned()),
    })
}

fn date() -> Date {
    Date::parse("2026-03-02").expect("a valid date")
}

/// Classification with no later position link.
fn plain(p: &Payload) -> Classification {
    classify(p, false, false)
}

#[test]
fn economic_dismissal_is_a_formal_layoff_even_when_backfilled() {
    let c = plain(&economic());
    assert_eq!(c.bucket, Bucket::FormalLayoff);
    assert!(c.employer_influenced);
    assert_eq!(c.mechanism, Some(Mechanism::EconomicDismissal));
    assert_eq!(c.ai, AiAttribution::None);
    assert_eq!(
        classify(&economic(), true, false).bucket,
        Bucket::FormalLayoff
    );
}

#[test]
fn role_automated_with_a_separation_is_a_formal_layoff_cited_by_employer_by_default() {
    let c = plain(&role_automated(Some(sep(Initiator::Employer))));
    assert_eq!(c.bucket, Bucket::FormalLayoff);
    assert_eq!(c.mechanism, Some(Mechanism::RoleAutomated));
    assert_eq!(c.ai, AiAttribution::CitedByEmployer);
    assert!(c.employer_influenced);

    let mut inferred = sep(Initiator::Employer);
    inferred.ai_attributed = AiAttribution::Inferred;
    assert_eq!(
        plain(&role_automated(Some(inferred))).ai,
        AiAttribution::Inferred,
        "an explicit attribution is kept"
    );
}

#[test]
fn role_automated_without_a_separation_is_a_signal() {
    let c = plain(&role_automated(None));
    assert_eq!(c.bucket, Bucket::Signal);
    assert_eq!(c.mechanism, None);
    assert_eq!(c.ai, AiAttribution::CitedByEmployer);
}

#[test]
fn adverse_change_refused_exit_is_a_formal_layoff() {
    let p = Payload::AdverseChangeRefusedExit(Box::new(AdverseChangeRefusedExit {
        separation: sep(Initiator::Employee),
        change_type: ChangeType::Location,
        change_magnitude_pct: Some(40),
    }));
    let c = plain(&p);
    assert_eq!(c.bucket, Bucket::FormalLayoff);
    assert_eq!(c.mechanism, Some(Mechanism::AdverseChangeExit));
    assert!(c.employer_influenced);
}

/// domain-rules §5.2: `TemporaryLayoff` is a formal layoff (temporary); an hours cut is a signal.
#[test]
fn temporary_layoff_is_a_formal_layoff_and_an_hours_cut_a_signal() {
    let layoff = Payload::TemporaryLayoff(TemporaryLayoff {
        worker_ref: WorkerRef::from("w-1"),
        expected_duration_days: 60,
        recall_expected: true,
    });
    let c = plain(&layoff);
    assert_eq!(c.bucket, Bucket::FormalLayoff);
    assert_eq!(c.mechanism, Some(Mechanism::TemporaryLayoff));
    assert!(c.employer_influenced);
    let hours = Payload::HoursReduced(HoursReduced {
        worker_ref: WorkerRef::from("w-1"),
        hours_before: 40,
        hours_after: 16,
        expected_months: 6,
    });
    let c = plain(&hours);
    assert_eq!(c.bucket, Bucket::Signal);
    assert_eq!(c.mechanism, None);
}

#[test]
fn employer_proposed_mutual_termination_is_employer_influenced_attrition() {
    let p =
        Payload::MutualTerminationEmployerProposed(Box::new(MutualTerminationEmployerProposed {
            separation: sep(Initiator::Mutual),
            package: None,
        }));
    let c = plain(&p);
    assert_eq!(c.bucket, Bucket::GradualAttrition);
    assert!(c.employer_influenced);
    assert_eq!(c.mechanism, Some(Mechanism::MutualTermination));
}

#[test]
fn employer_declined_non_renewal_is_employer_influenced_attrition_even_if_position_open() {
    let c = plain(&non_renewal(sep(Initiator::Employer), false));
    assert_eq!(c.bucket, Bucket::GradualAttrition);
    assert!(c.employer_influenced);
    assert_eq!(c.mechanism, Some(Mechanism::ContractNotRenewed));
    assert!(!c.position_closed);
}

#[test]
fn employee_refused_non_renewal_is_not_employer_influenced() {
    let open = plain(&non_renewal(sep(Initiator::Employee), true));
    assert!(!open.employer_influenced);
    assert_eq!(
        open.bucket,
        Bucket::Neutral,
        "a refused renewal is a quit: attrition only if the post closes"
    );
    let closed_post = plain(&non_renewal(closed(sep(Initiator::Employee)), true));
    assert!(!closed_post.employer_influenced);
    assert_eq!(closed_post.bucket, Bucket::GradualAttrition);
    assert_eq!(closed_post.mechanism, Some(Mechanism::ContractNotRenewed));
}

#[test]
fn resignation_with_the_position_open_is_neutral() {
    let c = plain(&resignation(sep(Initiator::Employee), false));
    assert_eq!(c.bucket, Bucket::Neutral);
    assert!(!c.employer_influenced);
    assert_eq!(c.mechanism, Some(Mechanism::Resignation));
}

#[test]
fn resignation_with_the_position_closed_is_attrition() {
    // Closed in the payload.
    let c = plain(&resignation(closed(sep(Initiator::Employee)), false));
    assert_eq!(c.bucket, Bucket::GradualAttrition);
    assert!(!c.employer_influenced);
    assert!(c.position_closed);
    assert_eq!(c.mechanism, Some(Mechanism::NonBackfilledResignation));

    // Closed by a later PositionClosed link.
    let linked = classify(&resignation(sep(Initiator::Employee), false), false, true);
    assert_eq!(linked, c);

    // Back-fill not planned counts as not back-filled.
    let mut s = sep(Initiator::Employee);
    s.backfill_status = BackfillStatus::NotPlanned;
    assert_eq!(plain(&resignation(s, false)), c);
}

#[test]
fn pressured_resignation_is_employer_influenced_attrition_even_if_position_open() {
    let c = plain(&resignation(sep(Initiator::Employee), true));
    assert_eq!(c.bucket, Bucket::GradualAttrition);
    assert!(c.employer_influenced);
    assert_eq!(c.mechanism, Some(Mechanism::PressuredResignation));

    // The substance says the employer initiated it: same answer without the flag.
    let employer_initiated = plain(&resignation(sep(Initiator::Employer), false));
    assert_eq!(employer_initiated, c);
}

#[test]
fn retirement_is_attrition_only_when_the_position_closes() {
    let open = plain(&retirement(
        sep(Initiator::Employee),
        RetirementType::Statutory,
    ));
    assert_eq!(open.bucket, Bucket::Neutral);
    assert!(!open.employer_influenced);
    assert_eq!(open.mechanism, Some(Mechanism::Retirement));

    let closed_post = plain(&retirement(
        closed(sep(Initiator::Employee)),
        RetirementType::Statutory,
    ));
    assert_eq!(closed_post.bucket, Bucket::GradualAttrition);

    let incentive = plain(&retirement(
        closed(sep(Initiator::Employee)),
        RetirementType::EarlyIncentive,
    ));
    assert_eq!(incentive.bucket, Bucket::GradualAttrition);
    assert!(
        incentive.employer_influenced,
        "an incentive is an employer push"
    );
}

#[test]
fn dismissal_for_cause_is_neutral_whatever_the_position_or_cause_text() {
    for cause in ["misconduct", "economic reasons", "AI replaced the role"] {
        let p = Payload::DismissalForCause(Box::new(DismissalForCause {
            separation: closed(sep(Initiator::Employer)),
            cause_code: cause.to_owned(),
            summary: false,
        }));
        let c = plain(&p);
        assert_eq!(
            c.bucket,
            Bucket::Neutral,
            "free text must not matter: {cause}"
        );
        assert_eq!(c.mechanism, Some(Mechanism::DismissalForCause));
        assert!(!c.employer_influenced);
    }
}

#[test]
fn contractor_release_and_dispatched_return_are_host_side_attrition() {
    let mut s = sep(Initiator::Employer);
    s.employment_relationship = EmploymentRelationship::Contractor;
    let c = plain(&Payload::ContractorReleased(release(s.clone())));
    assert_eq!(c.bucket, Bucket::GradualAttrition);
    assert!(c.employer_influenced);
    assert_eq!(c.mechanism, Some(Mechanism::ContractorReleased));

    s.employment_relationship = EmploymentRelationship::Dispatched;
    let c = plain(&Payload::DispatchedWorkerReturned(release(s)));
    assert_eq!(c.bucket, Bucket::GradualAttrition);
    assert_eq!(c.mechanism, Some(Mechanism::DispatchedReturned));
}

#[test]
fn backfill_makes_attrition_neutral_but_keeps_the_employer_influence() {
    let cases = [
        non_renewal(sep(Initiator::Employer), false),
        resignation(closed(sep(Initiator::Employee)), false),
        resignation(sep(Initiator::Employee), true),
        retirement(closed(sep(Initiator::Employee)), RetirementType::Statutory),
        Payload::ContractorReleased(release(sep(Initiator::Employer))),
    ];
    for p in cases {
        let before = plain(&p);
        assert_eq!(before.bucket, Bucket::GradualAttrition, "{p:?}");
        let after = classify(&p, true, false);
        assert_eq!(after.bucket, Bucket::Neutral, "{p:?}");
        assert!(!after.position_closed, "a back-filled post is not closed");
        assert!(after.backfilled && !before.backfilled);
        assert_eq!(after.employer_influenced, before.employer_influenced);
        assert_eq!(after.mechanism.is_some(), before.mechanism.is_some());
    }
}

#[test]
fn backfill_status_filled_in_the_payload_counts_as_backfilled() {
    let mut s = sep(Initiator::Employer);
    s.backfill_status = BackfillStatus::Filled;
    let c = plain(&non_renewal(s.clone(), false));
    assert_eq!(c.bucket, Bucket::Neutral);
    assert!(c.backfilled);
    // A later closure overrides what the payload said.
    let c = classify(&non_renewal(s, false), false, true);
    assert_eq!(c.bucket, Bucket::GradualAttrition);
    assert!(c.position_closed && !c.backfilled);
}

#[test]
fn later_links_override_the_payload_and_backfill_wins_over_closure() {
    // The payload said closed; a later back-fill says otherwise.
    let p = resignation(closed(sep(Initiator::Employee)), false);
    assert_eq!(classify(&p, true, false).bucket, Bucket::Neutral);
    // Both links at once: the back-fill wins.
    let both = classify(&resignation(sep(Initiator::Employee), false), true, true);
    assert_eq!(both.bucket, Bucket::Neutral);
    assert!(!both.position_closed && both.backfilled);
    // A closure link sets position_closed on any separation.
    assert!(classify(&economic(), false, true).position_closed);
}

#[test]
fn links_are_ignored_for_non_separations() {
    let hire = Payload::WorkerHired(WorkerHired {
        worker_ref: WorkerRef::from("w-1"),
        employment_relationship: EmploymentRelationship::Employee,
        contract_type: ContractType::OpenEnded,
        cohort: None,
        position_id: None,
        baseline: false,
        avg_weekly_hours: None,
        months_employed_last_12: None,
        contract_end: None,
    });
    assert_eq!(classify(&hire, true, true), plain(&hire));
    assert!(!plain(&hire).position_closed && !plain(&hire).backfilled);
}

#[test]
fn hiring_ai_and_hours_events_are_signals() {
    let signals = [
        Payload::WorkerHired(WorkerHired {
            worker_ref: WorkerRef::from("w-1"),
            employment_relationship: EmploymentRelationship::Employee,
            contract_type: ContractType::OpenEnded,
            cohort: None,
            position_id: None,
            baseline: true,
            avg_weekly_hours: None,
            months_employed_last_12: None,
            contract_end: None,
        }),
        Payload::GraduateIntakeReduced(GraduateIntake {
            cohort_year: 2026,
            planned: 10,
            baseline: 20,
            actual: None,
        }),
        Payload::HiringPaused(HiringPaused {
            scope: "eng".to_owned(),
            reqs_frozen: 3,
            reqs_cancelled: 1,
            until: None,
        }),
        Payload::AiToolRolledOut(AiToolRolledOut {
            tool: "copilot".to_owned(),
            scope: "eng".to_owned(),
            mandatory: true,
        }),
        Payload::AiUsageMeasured(AiUsageMeasured {
            scope: "eng".to_owned(),
            period_start: date(),
            period_end: date(),
            metric: AiMetric::Tokens,
            value: 1_000_000,
            population: None,
            used_in_performance_review: true,
        }),
    ];
    for p in signals {
        let c = plain(&p);
        assert_eq!(c.bucket, Bucket::Signal, "{p:?}");
        assert_eq!(c.mechanism, None);
        assert!(!c.employer_influenced);
    }
}

#[test]
fn compliance_plans_redeployments_links_and_corrections_are_neutral() {
    let step = ComplianceStep {
        plan_id: "plan-1".to_owned(),
        recipient: "union".to_owned(),
        document_ref: String::new(),
        ai_checkbox: false,
    };
    let neutral = [
        Payload::ContractRenewed(ContractRenewed {
            worker_ref: WorkerRef::from("w-1"),
            new_contract_end: None,
            consecutive_fixed_terms: Some(2),
        }),
        Payload::RestructuringPlanAnnounced(RestructuringPlanAnnounced {
            plan_id: "plan-1".to_owned(),
            stated_grounds: vec!["CN-LCL-41-3".to_owned()],
            planned_count: 30,
            units: Vec::new(),
        }),
        Payload::UnionBriefed(step.clone()),
        Payload::AuthorityReported(step.clone()),
        Payload::WarnNoticeFiled(step),
        Payload::InternalRedeployment(Box::new(InternalRedeployment {
            worker_ref: WorkerRef::from("w-1"),
            from_position: None,
            to_position: "pos-2".to_owned(),
            from_site: None,
            to_site: None,
            distance_km: None,
            pay_change_pct: None,
            accepted: true,
        })),
        Payload::PositionClosed(PositionChange {
            position_id: "pos-1".to_owned(),
            linked_separation_id: None,
        }),
        Payload::EventRetracted(EventRetracted {
            original_event_id: serde_json::from_str("\"00000000-0000-0000-0000-000000000001\"")
                .expect("a uuid"),
            reason: "duplicate".to_owned(),
        }),
    ];
    for p in neutral {
        let c = plain(&p);
        assert_eq!(c.bucket, Bucket::Neutral, "{p:?}");
        assert_eq!(c.mechanism, None);
    }
}

#[test]
fn ai_attribution_comes_from_the_separation_fields() {
    let mut s = sep(Initiator::Employer);
    s.ai_attributed = AiAttribution::Inferred;
    assert_eq!(plain(&non_renewal(s, false)).ai, AiAttribution::Inferred);
    assert_eq!(plain(&economic()).ai, AiAttribution::None);
}

#[test]
fn names_are_stable_snake_case() {
    assert_eq!(
        serde_json::to_string(&Bucket::GradualAttrition).expect("serialises"),
        "\"gradual_attrition\""
    );
    for b in Bucket::ALL {
        assert_eq!(
            serde_json::to_string(b).expect("serialises"),
            format!("\"{}\"", b.as_str())
        );
    }
    for m in Mechanism::ALL {
        assert_eq!(
            serde_json::to_string(m).expect("serialises"),
            format!("\"{}\"", m.as_str())
        );
    }
    assert!(Bucket::FormalLayoff.is_reduction() && Bucket::GradualAttrition.is_reduction());
    assert!(!Bucket::Neutral.is_reduction() && !Bucket::Signal.is_reduction());
}
