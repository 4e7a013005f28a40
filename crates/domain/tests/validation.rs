//! Stateless validation: every violation is reported, each with the exact protobuf field path.

mod common;

use common::*;
use wfl_domain::validate::{MAX_ID, MAX_TEXT};
use wfl_domain::{
    validate, AdverseChangeRefusedExit, AiMetric, AiUsageMeasured, ChangeType, ContractNotRenewed,
    ContractRenewed, EconomicDismissal, Event, EventCorrected, EventId, EventType, HiringPaused,
    InternalRedeployment, Money, MutualTerminationEmployerProposed, OfferTerms, OrgId, Payload,
    PositionChange, RestructuringPlanAnnounced, Separation, SiteId, WorkerRef,
};

/// The field paths `validate` reports for `event`, in order; empty when the event is valid.
fn fields(event: &Event) -> Vec<String> {
    match validate(event) {
        Ok(()) => Vec::new(),
        Err(v) => v.0.into_iter().map(|f| f.field).collect(),
    }
}

/// Then: exactly one violation, of `field`, whose description contains `needle`.
#[track_caller]
fn then_only(event: &Event, field: &str, needle: &str) {
    let violations = validate(event).expect_err("expected a violation").0;
    assert_eq!(
        violations.len(),
        1,
        "expected only {field}, got {violations:?}"
    );
    assert_eq!(violations[0].field, field);
    assert!(
        violations[0].description.contains(needle),
        "the description of {field} should mention {needle:?}: {:?}",
        violations[0].description
    );
}

#[track_caller]
fn then_valid(event: &Event) {
    if let Err(v) = validate(event) {
        panic!("expected {} to be valid, got: {v}", event.event_type());
    }
}

fn economic_dismissal(separation: Separation) -> Event {
    ev(ORG, dismissal_of(separation))
}

fn with_severance(currency: &str, amount_minor: i64) -> Separation {
    Separation {
        severance: Some(Money {
            amount_minor,
            currency: currency.to_owned(),
        }),
        ..sep("w1")
    }
}

fn with_legal_ground(ground: &str) -> Separation {
    Separation {
        legal_ground: Some(ground.to_owned()),
        ..sep("w1")
    }
}

// ---------------------------------------------------------------------------------------------
// The fixtures are valid
// ---------------------------------------------------------------------------------------------

#[test]
fn a_sample_of_every_event_type_is_valid() {
    let original = next_id();
    for payload in samples("w1", original) {
        then_valid(&ev(ORG, payload));
    }
}

#[test]
fn every_separation_and_touch_fixture_is_valid() {
    for payload in every_separation("w-00042")
        .into_iter()
        .chain(every_touch("w-00042"))
    {
        then_valid(&ev(ORG, payload));
    }
}

#[test]
fn pseudonymous_worker_refs_may_use_dots_colons_underscores_and_dashes() {
    for worker in ["w1", "HR:000042", "emp_42.cn-sh", &"x".repeat(MAX_ID)] {
        then_valid(&ev(ORG, hire(worker)));
    }
}

// ---------------------------------------------------------------------------------------------
// Envelope
// ---------------------------------------------------------------------------------------------

#[test]
fn a_nil_event_id_is_refused() {
    let event = Event {
        event_id: EventId(uuid::Uuid::nil()),
        ..ev(ORG, hire("w1"))
    };
    then_only(&event, "event_id", "non-nil UUID");
}

#[test]
fn an_org_id_with_a_dot_is_refused() {
    // Org ids are NATS subject tokens: a dot would split the subject.
    let event = Event {
        org_id: OrgId::from("acme.cn"),
        ..ev(ORG, hire("w1"))
    };
    then_only(&event, "org_id", "A-Z a-z 0-9 _ -");
}

#[test]
fn org_ids_with_subject_wildcards_or_spaces_are_refused() {
    for org in ["acme*", "acme>", "ac me", "", &"o".repeat(MAX_ID + 1)] {
        let event = Event {
            org_id: OrgId::from(org),
            ..ev(ORG, hire("w1"))
        };
        assert_eq!(fields(&event), ["org_id"], "org_id {org:?}");
    }
}

#[test]
fn an_org_id_of_letters_digits_underscores_and_dashes_is_accepted() {
    for org in ["acme", "ACME_cn-2", &"o".repeat(MAX_ID)] {
        then_valid(&Event {
            org_id: OrgId::from(org),
            ..ev(ORG, hire("w1"))
        });
    }
}

#[test]
fn an_empty_site_id_is_required() {
    let event = Event {
        site_id: SiteId::from(""),
        ..ev(ORG, hire("w1"))
    };
    then_only(&event, "site_id", "required");
}

#[test]
fn a_site_id_may_contain_a_dot() {
    then_valid(&Event {
        site_id: SiteId::from("sh.pudong-1"),
        ..ev(ORG, hire("w1"))
    });
}

#[test]
fn a_site_id_with_a_space_is_refused() {
    let event = Event {
        site_id: SiteId::from("main site"),
        ..ev(ORG, hire("w1"))
    };
    then_only(&event, "site_id", "A-Z a-z 0-9 _ - .");
}

#[test]
fn jurisdictions_must_be_iso_3166_codes() {
    for bad in [
        "china", "cn", "C", "CHN", "CN-", "CN33", "US-CALIF", "us-CA", "CN-sh", "",
    ] {
        let event = Event {
            jurisdiction: bad.to_owned(),
            ..ev(ORG, hire("w1"))
        };
        assert_eq!(fields(&event), ["jurisdiction"], "jurisdiction {bad:?}");
    }
}

#[test]
fn jurisdictions_may_name_a_subdivision() {
    for good in ["CN", "CN-33", "US-CA", "DE", "GB-ENG", "CN-3"] {
        then_valid(&Event {
            jurisdiction: good.to_owned(),
            ..ev(ORG, hire("w1"))
        });
    }
}

#[test]
fn the_source_system_is_required() {
    let event = Event {
        source: wfl_domain::Source {
            system: "  ".to_owned(),
            reference: "TERM-2026-0042".to_owned(),
        },
        ..ev(ORG, hire("w1"))
    };
    then_only(&event, "source.system", "required");
}

#[test]
fn only_the_current_schema_version_is_accepted() {
    let event = Event {
        schema_version: 2,
        ..ev(ORG, hire("w1"))
    };
    then_only(&event, "schema_version", "unsupported schema version 2");
    assert_eq!(wfl_domain::SCHEMA_VERSION, 1);
}

#[test]
fn an_expected_version_on_a_payload_without_a_worker_is_refused() {
    let plan = Payload::RestructuringPlanAnnounced(RestructuringPlanAnnounced {
        plan_id: "plan-2026".to_owned(),
        stated_grounds: Vec::new(),
        planned_count: 10,
        units: Vec::new(),
    });
    then_only(
        &expecting(0, ev(ORG, plan)),
        "expected_version",
        "RestructuringPlanAnnounced does not",
    );
    let h = ev(ORG, hire("w1"));
    for payload in [
        role_automated("claims-handler"),
        retract(&h),
        correct(&h, hire("w1")),
        backfilled(None),
    ] {
        assert_eq!(
            fields(&expecting(1, ev(ORG, payload))),
            ["expected_version"]
        );
    }
}

#[test]
fn an_expected_version_on_a_payload_naming_a_worker_is_accepted() {
    let payloads = [hire("w1"), role_automated_with("w1")]
        .into_iter()
        .chain(every_separation("w1"))
        .chain(every_touch("w1"));
    for payload in payloads {
        then_valid(&expecting(7, ev(ORG, payload)));
    }
}

#[test]
fn correlation_and_causation_ids_must_not_be_blank() {
    let event = Event {
        correlation_id: Some(String::new()),
        causation_id: Some(" ".to_owned()),
        ..ev(ORG, hire("w1"))
    };
    assert_eq!(fields(&event), ["correlation_id", "causation_id"]);
}

// ---------------------------------------------------------------------------------------------
// Worker references
// ---------------------------------------------------------------------------------------------

#[test]
fn a_name_as_worker_ref_is_refused_at_its_field_path() {
    then_only(
        &ev(ORG, resign("John Smith")),
        "payload.resignation.separation.worker_ref",
        "no names, no spaces",
    );
}

#[test]
fn the_worker_ref_path_names_the_separation_kind() {
    for payload in every_separation("John Smith") {
        let expected = format!(
            "payload.{}.separation.worker_ref",
            payload.event_type().field_name()
        );
        assert_eq!(fields(&ev(ORG, payload)), [expected]);
    }
}

#[test]
fn the_worker_ref_path_of_hires_and_changes_is_direct() {
    for payload in [hire("John Smith")]
        .into_iter()
        .chain(every_touch("John Smith"))
    {
        let expected = format!("payload.{}.worker_ref", payload.event_type().field_name());
        assert_eq!(fields(&ev(ORG, payload)), [expected]);
    }
}

#[test]
fn an_empty_worker_ref_is_required() {
    then_only(
        &ev(ORG, hire("")),
        "payload.worker_hired.worker_ref",
        "required",
    );
}

#[test]
fn a_worker_ref_longer_than_an_id_is_refused() {
    then_only(
        &ev(ORG, layoff(&"x".repeat(MAX_ID + 1))),
        "payload.temporary_layoff.worker_ref",
        "at most 64 characters",
    );
}

#[test]
fn a_worker_ref_with_non_ascii_letters_is_refused() {
    assert_eq!(
        fields(&ev(ORG, hire("张伟"))),
        ["payload.worker_hired.worker_ref"]
    );
}

// ---------------------------------------------------------------------------------------------
// Corrections and retractions
// ---------------------------------------------------------------------------------------------

#[test]
fn a_correction_reports_the_replacement_fields_under_its_own_path() {
    let original = ev(ORG, resign("w1"));
    then_only(
        &ev(ORG, correct(&original, resign("John Smith"))),
        "payload.event_corrected.replacement.resignation.separation.worker_ref",
        "no names",
    );
}

#[test]
fn a_correction_checks_the_replacement_cross_field_rules() {
    let original = ev(ORG, hours_cut("w1", 40, 30));
    assert_eq!(
        fields(&ev(ORG, correct(&original, hours_cut("w1", 30, 40)))),
        ["payload.event_corrected.replacement.hours_reduced.hours_after"]
    );
}

#[test]
fn a_correction_cannot_replace_with_a_correction_or_a_retraction() {
    let original = ev(ORG, hire("w1"));
    for replacement in [retract(&original), correct(&original, hire("w1"))] {
        then_only(
            &ev(ORG, correct(&original, replacement)),
            "payload.event_corrected.replacement",
            "cannot replace with another correction or retraction",
        );
    }
}

#[test]
fn an_event_cannot_correct_or_retract_itself() {
    let mut correction = ev(ORG, hire("w1"));
    correction.payload = correct(&correction, hire("w1"));
    then_only(
        &correction,
        "payload.event_corrected.original_event_id",
        "cannot correct itself",
    );

    let mut retraction = ev(ORG, hire("w1"));
    retraction.payload = retract(&retraction);
    then_only(
        &retraction,
        "payload.event_retracted.original_event_id",
        "cannot retract itself",
    );
}

#[test]
fn corrections_and_retractions_need_a_non_nil_original_and_a_reason() {
    let nil = EventId(uuid::Uuid::nil());
    let correction = Payload::EventCorrected(EventCorrected {
        original_event_id: nil,
        reason: String::new(),
        replacement: Box::new(hire("w1")),
    });
    assert_eq!(
        fields(&ev(ORG, correction)),
        [
            "payload.event_corrected.original_event_id",
            "payload.event_corrected.reason"
        ]
    );
    let retraction = Payload::EventRetracted(wfl_domain::EventRetracted {
        original_event_id: nil,
        reason: "\t".to_owned(),
    });
    assert_eq!(
        fields(&ev(ORG, retraction)),
        [
            "payload.event_retracted.original_event_id",
            "payload.event_retracted.reason"
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Cross-field rules
// ---------------------------------------------------------------------------------------------

#[test]
fn hours_reduced_must_reduce_the_hours() {
    for (before, after) in [(40, 40), (30, 40), (0, 0)] {
        then_only(
            &ev(ORG, hours_cut("w1", before, after)),
            "payload.hours_reduced.hours_after",
            "less than hours_before",
        );
    }
    then_valid(&ev(ORG, hours_cut("w1", 40, 0)));
}

#[test]
fn a_week_has_at_most_168_hours() {
    then_only(
        &ev(ORG, hours_cut("w1", 169, 40)),
        "payload.hours_reduced.hours_before",
        "168",
    );
    then_valid(&ev(ORG, hours_cut("w1", 168, 40)));
}

#[test]
fn an_ai_usage_period_cannot_end_before_it_starts() {
    let usage = AiUsageMeasured {
        period_start: date(2026, 3, 31),
        period_end: date(2026, 3, 1),
        ..ai_usage(10, Some(50))
    };
    then_only(
        &ev(ORG, Payload::AiUsageMeasured(usage)),
        "payload.ai_usage_measured.period_end",
        "before period_start",
    );

    let one_day = AiUsageMeasured {
        period_start: date(2026, 3, 1),
        period_end: date(2026, 3, 1),
        ..ai_usage(10, Some(50))
    };
    then_valid(&ev(ORG, Payload::AiUsageMeasured(one_day)));
}

#[test]
fn active_users_cannot_exceed_the_population() {
    then_only(
        &ev(ORG, Payload::AiUsageMeasured(ai_usage(51, Some(50)))),
        "payload.ai_usage_measured.value",
        "cannot exceed the population",
    );
    then_valid(&ev(ORG, Payload::AiUsageMeasured(ai_usage(50, Some(50)))));
    then_valid(&ev(ORG, Payload::AiUsageMeasured(ai_usage(51, None))));
}

#[test]
fn tokens_may_exceed_the_population() {
    let tokens = AiUsageMeasured {
        metric: AiMetric::Tokens,
        ..ai_usage(1_000_000, Some(50))
    };
    then_valid(&ev(ORG, Payload::AiUsageMeasured(tokens)));
}

#[test]
fn a_given_population_must_be_positive() {
    then_only(
        &ev(ORG, Payload::AiUsageMeasured(ai_usage(0, Some(0)))),
        "payload.ai_usage_measured.population",
        "at least 1",
    );
}

#[test]
fn an_employee_can_only_refuse_a_renewal_that_was_offered() {
    let refused = ContractNotRenewed {
        employee_refused: true,
        ..not_renewed("w1")
    };
    then_only(
        &ev(ORG, Payload::ContractNotRenewed(Box::new(refused.clone()))),
        "payload.contract_not_renewed.employee_refused",
        "set renewal_offered",
    );

    let offered_and_refused = ContractNotRenewed {
        renewal_offered: true,
        offer_terms: Some(OfferTerms::Worse),
        ..refused
    };
    then_valid(&ev(
        ORG,
        Payload::ContractNotRenewed(Box::new(offered_and_refused)),
    ));
}

#[test]
fn offer_terms_need_an_offer() {
    let terms_without_offer = ContractNotRenewed {
        offer_terms: Some(OfferTerms::SameOrBetter),
        ..not_renewed("w1")
    };
    then_only(
        &ev(
            ORG,
            Payload::ContractNotRenewed(Box::new(terms_without_offer)),
        ),
        "payload.contract_not_renewed.offer_terms",
        "renewal_offered = true",
    );
}

/// Issue 9: a client that offered no renewal says so with `no_offer` and renewal_offered = false.
#[test]
fn no_offer_is_accepted_without_an_offer() {
    let none = ContractNotRenewed {
        offer_terms: Some(OfferTerms::NoOffer),
        ..not_renewed("w1")
    };
    then_valid(&ev(ORG, Payload::ContractNotRenewed(Box::new(none))));
}

/// WARN part-time inputs (20 CFR 639.3(h)) must be possible: hours a week, months of twelve.
#[test]
fn weekly_hours_and_months_of_the_last_twelve_are_bounded() {
    let event = ev(
        ORG,
        dismissal_of(Separation {
            avg_weekly_hours: Some(169),
            months_employed_last_12: Some(13),
            ..with_severance("USD", 5)
        }),
    );
    assert_eq!(
        fields(&event),
        [
            "payload.economic_dismissal.separation.avg_weekly_hours",
            "payload.economic_dismissal.separation.months_employed_last_12",
        ]
    );
    let fine = ev(
        ORG,
        dismissal_of(Separation {
            avg_weekly_hours: Some(168),
            months_employed_last_12: Some(12),
            ..with_severance("USD", 5)
        }),
    );
    then_valid(&fine);
    let Payload::WorkerHired(h) = hire("w1") else {
        panic!("hire gives WorkerHired")
    };
    let hired = Payload::WorkerHired(wfl_domain::WorkerHired {
        avg_weekly_hours: Some(200),
        months_employed_last_12: Some(3),
        ..h
    });
    then_only(
        &ev(ORG, hired),
        "payload.worker_hired.avg_weekly_hours",
        "at most 168",
    );
}

#[test]
fn a_renewed_contract_must_end_after_the_effective_date() {
    for end in [day(), day().add_days(-1)] {
        let renewal = ContractRenewed {
            worker_ref: WorkerRef::from("w1"),
            new_contract_end: Some(end),
            consecutive_fixed_terms: None,
        };
        then_only(
            &ev(ORG, Payload::ContractRenewed(renewal)),
            "payload.contract_renewed.new_contract_end",
            "after effective_date",
        );
    }
}

#[test]
fn a_hiring_pause_cannot_end_before_it_starts() {
    let pause = HiringPaused {
        scope: "claims".to_owned(),
        reqs_frozen: 1,
        reqs_cancelled: 0,
        until: Some(day().add_days(-1)),
    };
    then_only(
        &ev(ORG, Payload::HiringPaused(pause)),
        "payload.hiring_paused.until",
        "before effective_date",
    );
}

#[test]
fn an_adverse_change_is_at_most_100_percent() {
    let exit = AdverseChangeRefusedExit {
        separation: sep("w1"),
        change_type: ChangeType::Pay,
        change_magnitude_pct: Some(101),
    };
    then_only(
        &ev(ORG, Payload::AdverseChangeRefusedExit(Box::new(exit))),
        "payload.adverse_change_refused_exit.change_magnitude_pct",
        "between 0 and 100",
    );
}

#[test]
fn a_redeployment_checks_its_sites_and_pay_change() {
    let move_ = InternalRedeployment {
        worker_ref: WorkerRef::from("w1"),
        from_position: None,
        to_position: String::new(),
        from_site: Some(SiteId::from("old site")),
        to_site: Some(SiteId::from("")),
        distance_km: Some(1200),
        pay_change_pct: Some(-101),
        accepted: false,
    };
    assert_eq!(
        fields(&ev(ORG, Payload::InternalRedeployment(Box::new(move_)))),
        [
            "payload.internal_redeployment.to_position",
            "payload.internal_redeployment.from_site",
            "payload.internal_redeployment.to_site",
            "payload.internal_redeployment.pay_change_pct",
        ]
    );
}

#[test]
fn an_ai_system_needs_an_ai_attribution() {
    let separation = Separation {
        ai_system: Some("claims-bot".to_owned()),
        ..sep("w1")
    };
    then_only(
        &economic_dismissal(separation),
        "payload.economic_dismissal.separation.ai_attributed",
        "ai_attributed is none",
    );
}

#[test]
fn a_position_link_must_name_another_event() {
    let nil = ev(ORG, backfilled(Some(EventId(uuid::Uuid::nil()))));
    then_only(
        &nil,
        "payload.position_backfilled.linked_separation_id",
        "non-nil UUID",
    );

    let mut itself = ev(ORG, closed(None));
    itself.payload = Payload::PositionClosed(PositionChange {
        position_id: "P-1".to_owned(),
        linked_separation_id: Some(itself.event_id),
    });
    then_only(
        &itself,
        "payload.position_closed.linked_separation_id",
        "another event",
    );
}

// ---------------------------------------------------------------------------------------------
// Money and codes
// ---------------------------------------------------------------------------------------------

#[test]
fn a_currency_must_be_an_upper_case_iso_4217_code() {
    for bad in ["usd", "US", "USDT", "U$D", ""] {
        then_only(
            &economic_dismissal(with_severance(bad, 100)),
            "payload.economic_dismissal.separation.severance.currency",
            "ISO 4217",
        );
    }
    for good in ["USD", "CNY", "EUR"] {
        then_valid(&economic_dismissal(with_severance(good, 100)));
    }
}

#[test]
fn a_negative_amount_is_refused() {
    then_only(
        &economic_dismissal(with_severance("CNY", -1)),
        "payload.economic_dismissal.separation.severance.amount_minor",
        "negative",
    );
    then_valid(&economic_dismissal(with_severance("CNY", 0)));
}

#[test]
fn a_mutual_termination_package_is_money_too() {
    let mutual = MutualTerminationEmployerProposed {
        separation: sep("w1"),
        package: Some(Money {
            amount_minor: 5_000_000,
            currency: "usd".to_owned(),
        }),
    };
    assert_eq!(
        fields(&ev(
            ORG,
            Payload::MutualTerminationEmployerProposed(Box::new(mutual))
        )),
        ["payload.mutual_termination_employer_proposed.package.currency"]
    );
}

#[test]
fn a_lower_case_legal_ground_is_refused() {
    then_only(
        &economic_dismissal(with_legal_ground("cn-lcl-41")),
        "payload.economic_dismissal.separation.legal_ground",
        "CN-LCL-40-3",
    );
}

#[test]
fn legal_grounds_are_country_prefixed_codes() {
    for good in [
        "CN-LCL-40-3",
        "CN-LCL-41",
        "US-INVOL-RIF",
        "CN-LCL-44-1",
        "DE-1",
    ] {
        then_valid(&economic_dismissal(with_legal_ground(good)));
    }
    let too_long = format!("CN-{}", "9".repeat(30));
    for bad in [
        "CN",
        "CN-",
        "CN-LCL-",
        "CNLCL41",
        "1N-LCL",
        "CN LCL 41",
        too_long.as_str(),
    ] {
        assert_eq!(
            fields(&economic_dismissal(with_legal_ground(bad))),
            ["payload.economic_dismissal.separation.legal_ground"],
            "legal_ground {bad:?}"
        );
    }
}

#[test]
fn each_bad_protected_flag_is_reported_by_index() {
    let separation = Separation {
        protected_flags: vec!["CN-LCL-42-4".to_owned(), "pregnant".to_owned()],
        ..sep("w1")
    };
    assert_eq!(
        fields(&economic_dismissal(separation)),
        ["payload.economic_dismissal.separation.protected_flags[1]"]
    );
}

#[test]
fn each_blank_list_entry_is_reported_by_index() {
    let plan = RestructuringPlanAnnounced {
        plan_id: "plan-2026".to_owned(),
        stated_grounds: vec!["CN-LCL-41-3".to_owned(), String::new()],
        planned_count: 3,
        units: vec![" ".to_owned()],
    };
    assert_eq!(
        fields(&ev(ORG, Payload::RestructuringPlanAnnounced(plan))),
        [
            "payload.restructuring_plan_announced.stated_grounds[1]",
            "payload.restructuring_plan_announced.units[0]",
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Text limits
// ---------------------------------------------------------------------------------------------

fn with_reference(reference: String) -> Event {
    Event {
        source: wfl_domain::Source {
            system: "test".to_owned(),
            reference,
        },
        ..ev(ORG, hire("w1"))
    }
}

#[test]
fn free_text_is_at_most_256_characters() {
    assert_eq!(MAX_TEXT, 256);
    then_valid(&with_reference("r".repeat(MAX_TEXT)));
    then_only(
        &with_reference("r".repeat(MAX_TEXT + 1)),
        "source.reference",
        "at most 256 characters",
    );
}

#[test]
fn text_limits_count_characters_not_bytes() {
    then_valid(&with_reference("终".repeat(MAX_TEXT)));
    then_only(
        &with_reference("终".repeat(MAX_TEXT + 1)),
        "source.reference",
        "at most 256 characters",
    );
}

#[test]
fn a_long_reason_is_reported_at_its_payload_path() {
    let h = ev(ORG, hire("w1"));
    let retraction = Payload::EventRetracted(wfl_domain::EventRetracted {
        original_event_id: h.event_id,
        reason: "x".repeat(MAX_TEXT + 1),
    });
    then_only(
        &ev(ORG, retraction),
        "payload.event_retracted.reason",
        "at most 256",
    );
}

/// An economic dismissal whose plan id (an identifier, at most 64 characters) is `plan_id`.
fn dismissal_planned(plan_id: String) -> Event {
    ev(
        ORG,
        Payload::EconomicDismissal(Box::new(EconomicDismissal {
            separation: sep("w1"),
            selection_criteria: Some("seniority".to_owned()),
            plan_id: Some(plan_id),
        })),
    )
}

#[test]
fn identifiers_are_at_most_64_characters() {
    then_only(
        &dismissal_planned("p".repeat(MAX_ID + 1)),
        "payload.economic_dismissal.plan_id",
        "at most 64",
    );
}

#[test]
fn limits_count_characters_not_bytes() {
    // 64 two-byte characters: 128 bytes, within the 64-character limit.
    assert!(fields(&dismissal_planned("é".repeat(MAX_ID))).is_empty());
    then_only(
        &dismissal_planned("é".repeat(MAX_ID + 1)),
        "payload.economic_dismissal.plan_id",
        "at most 64",
    );
}

#[test]
fn control_characters_are_refused() {
    // C0, DEL and C1 (U+0080..U+009F) controls alike.
    for reference in [
        "TERM\n42",
        "TERM\u{7}42",
        "TERM\u{0}",
        "\u{1b}[31m",
        "TERM\u{7f}",
        "TERM\u{85}42",
    ] {
        then_only(
            &with_reference(reference.to_owned()),
            "source.reference",
            "control characters",
        );
    }
    let event = Event {
        correlation_id: Some("plan\t2026".to_owned()),
        ..ev(ORG, hire("w1"))
    };
    then_only(&event, "correlation_id", "control characters");
}

// ---------------------------------------------------------------------------------------------
// Several violations at once
// ---------------------------------------------------------------------------------------------

#[test]
fn every_violation_in_an_event_is_reported_in_one_go() {
    let event = Event {
        org_id: OrgId::from("acme.cn"),
        site_id: SiteId::from(""),
        jurisdiction: "china".to_owned(),
        schema_version: 2,
        ..ev(ORG, resign("John Smith"))
    };
    assert_eq!(
        fields(&event),
        [
            "org_id",
            "site_id",
            "jurisdiction",
            "schema_version",
            "payload.resignation.separation.worker_ref",
        ]
    );
}

#[test]
fn several_violations_inside_one_payload_are_all_reported() {
    let separation = Separation {
        legal_ground: Some("cn-lcl-41".to_owned()),
        tenure_months: Some(1201),
        ..with_severance("usd", -5)
    };
    let event = ev(
        ORG,
        dismissal_of(Separation {
            worker_ref: WorkerRef::from("John Smith"),
            ..separation
        }),
    );
    assert_eq!(
        fields(&event),
        [
            "payload.economic_dismissal.separation.worker_ref",
            "payload.economic_dismissal.separation.legal_ground",
            "payload.economic_dismissal.separation.tenure_months",
            "payload.economic_dismissal.separation.severance.amount_minor",
            "payload.economic_dismissal.separation.severance.currency",
        ]
    );
}

#[test]
fn violations_display_as_field_colon_description_joined_by_semicolons() {
    let event = Event {
        site_id: SiteId::from(""),
        schema_version: 2,
        ..ev(ORG, hire("w1"))
    };
    let violations = validate(&event).unwrap_err();
    assert_eq!(
        violations.to_string(),
        "site_id: required; schema_version: unsupported schema version 2; this ledger accepts 1"
    );
}

#[test]
fn payload_violations_sit_under_the_oneof_field_of_their_type() {
    // Give every sample a name for a worker ref: whatever each payload reports must sit under the
    // protobuf oneof field of its type.
    let original = next_id();
    for payload in samples("John Smith", original) {
        let kind: EventType = payload.event_type();
        let prefix = format!("payload.{}", kind.field_name());
        for field in fields(&ev(ORG, payload)) {
            assert!(
                field.starts_with(&prefix),
                "{kind}: {field} should start with {prefix}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Contract end dates, site closings and relocations (issue 9)
// ---------------------------------------------------------------------------------------------

/// Given a separation of an open-ended contract that states an agreed end date, then it is
/// refused naming `contract_end`: only fixed-term, task or part-time contracts end on a date
/// (Directive 98/59/EC Art. 1(2)(a) turns on it).
#[test]
fn an_open_ended_contract_has_no_contract_end() {
    let mut s = sep("w1");
    s.contract_end = Some(day());
    then_only(
        &economic_dismissal(s.clone()),
        "payload.economic_dismissal.separation.contract_end",
        "open-ended",
    );
    s.contract_type = wfl_domain::ContractType::FixedTerm;
    then_valid(&economic_dismissal(s));
}

/// Given a new hire (not a baseline load) whose fixed-term contract ends before the hire takes
/// effect, then it is refused naming `contract_end`.
#[test]
fn a_hire_contract_cannot_end_before_it_starts() {
    let Payload::WorkerHired(mut h) = hire("w1") else {
        unreachable!()
    };
    h.contract_type = wfl_domain::ContractType::FixedTerm;
    h.contract_end = Some(day().add_days(-1));
    then_only(
        &ev(ORG, Payload::WorkerHired(h.clone())),
        "payload.worker_hired.contract_end",
        "before",
    );
    h.contract_end = Some(day().add_days(365));
    then_valid(&ev(ORG, Payload::WorkerHired(h)));
}

/// Given a relocation of no distance, or to the site it leaves, then it is refused naming the
/// field: a relocation moves the operations away (NY §860-a, Cal. Lab. Code §1400.5).
#[test]
fn a_relocation_moves_the_operations_somewhere_else() {
    let moved = |to: Option<&str>, km: u32| {
        ev(
            ORG,
            Payload::SiteRelocated(wfl_domain::SiteRelocated {
                to_site: to.map(SiteId::from),
                distance_km: km,
            }),
        )
    };
    then_only(
        &moved(None, 0),
        "payload.site_relocated.distance_km",
        "at least 1",
    );
    then_only(
        &moved(Some("main"), 80),
        "payload.site_relocated.to_site",
        "differ",
    );
    then_only(
        &moved(Some("a b"), 80),
        "payload.site_relocated.to_site",
        "",
    );
    then_valid(&moved(Some("reno-1"), 161));
    then_valid(&moved(None, 1));
}

/// Given a closing of one operating unit, then the unit's name is an identifier (at most
/// `MAX_ID` characters); a whole-site closing names none.
#[test]
fn a_site_closing_names_at_most_an_operating_unit() {
    let closed = |unit: Option<String>| {
        ev(
            ORG,
            Payload::SiteClosed(wfl_domain::SiteClosed {
                operating_unit: unit,
                temporary: true,
            }),
        )
    };
    then_valid(&closed(None));
    then_valid(&closed(Some("line-2".into())));
    then_only(
        &closed(Some("x".repeat(MAX_ID + 1))),
        "payload.site_closed.operating_unit",
        "",
    );
}
