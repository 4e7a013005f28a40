//! Threshold watch acceptance tests: the domain-rules.md §7.2 worked example, threshold boundaries
//! per law, windows (aggregation, look-ahead, maximising), the EU five-redundancy gate, exclusions,
//! and missing procedure steps. Packs are the shipped files in `rulepacks/`.

use std::cell::RefCell;
use std::path::Path;
use wfl_domain::{
    AiAttribution, ContractNotRenewed, ContractType, Date, DismissalForCause, EconomicDismissal,
    EmploymentRelationship, Event, EventId, EvidenceConfidence, Initiator,
    MutualTerminationEmployerProposed, OrgId, Payload, Resignation, Retirement, RetirementType,
    RoleAutomated, SiteId, Source, WorkerRef,
};
use wfl_projections::rules::{
    self, AlertLevel, ComplianceStep, CountType, RulePack, Separation, SiteEvent, StepState,
    ThresholdStatus, WindowRole, SHADOW_LABEL,
};
use wfl_projections::{Population, PopulationQuery};

// ---------------------------------------------------------------------------------------------
// Fixtures

fn packs(ids: &[&str]) -> Vec<RulePack> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rulepacks");
    let all = rules::load_dir(&dir).expect("shipped packs load");
    ids.iter()
        .map(|id| all.iter().find(|p| p.id == *id).expect(id).clone())
        .collect()
}

/// Day `n` after 2026-01-01.
fn day(n: i32) -> Date {
    Date::parse("2026-01-01").unwrap().add_days(n)
}

/// Headcount that is the same for every query.
struct Fixed(u64);

impl Population for Fixed {
    fn headcount(&self, _: &PopulationQuery) -> u64 {
        self.0
    }
}

/// Headcount that remembers every query it answered.
struct Recording(u64, RefCell<Vec<PopulationQuery>>);

impl Population for Recording {
    fn headcount(&self, q: &PopulationQuery) -> u64 {
        self.1.borrow_mut().push(q.clone());
        self.0
    }
}

fn block(n: usize, initiator: Initiator) -> wfl_domain::Separation {
    wfl_domain::Separation {
        worker_ref: WorkerRef(format!("w{n}")),
        employment_relationship: EmploymentRelationship::Employee,
        contract_type: ContractType::OpenEnded,
        cohort: None,
        position_id: None,
        position_closed: false,
        backfill_status: Default::default(),
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

/// The kinds of exit the tests record.
#[derive(Clone, Copy)]
enum Exit {
    /// `EconomicDismissal` with an optional legal ground.
    Dismissal(Option<&'static str>),
    /// `RoleAutomated` with a separated worker, dismissed under CN LCL Art. 40(3), AI cited.
    AiArt40,
    MutualEmployerProposed,
    /// `ContractNotRenewed` of a fixed-term contract; `true`: the employee refused the renewal.
    NonRenewal(bool),
    Resignation {
        pressured: bool,
    },
    Retirement,
    ForCause,
    /// An economic dismissal of a dispatched worker.
    DispatchedDismissal,
}

fn payload(n: usize, exit: Exit) -> Payload {
    match exit {
        Exit::Dismissal(ground) => {
            let mut s = block(n, Initiator::Employer);
            s.legal_ground = ground.map(str::to_owned);
            Payload::EconomicDismissal(Box::new(EconomicDismissal {
                separation: s,
                selection_criteria: None,
                plan_id: None,
            }))
        }
        Exit::DispatchedDismissal => {
            let mut s = block(n, Initiator::Employer);
            s.employment_relationship = EmploymentRelationship::Dispatched;
            s.legal_ground = Some("CN-LCL-41".into());
            Payload::EconomicDismissal(Box::new(EconomicDismissal {
                separation: s,
                selection_criteria: None,
                plan_id: None,
            }))
        }
        Exit::AiArt40 => {
            let mut s = block(n, Initiator::Employer);
            s.legal_ground = Some("CN-LCL-40-3".into());
            s.ai_attributed = AiAttribution::CitedByEmployer;
            s.ai_system = Some("map-collector-ai".into());
            Payload::RoleAutomated(Box::new(RoleAutomated {
                role_id: format!("role{n}"),
                ai_system: "map-collector-ai".into(),
                separation: Some(s),
                retraining_offered: false,
                redeployment_offered: false,
            }))
        }
        Exit::MutualEmployerProposed => {
            let mut s = block(n, Initiator::Employer);
            s.legal_ground = Some("CN-LCL-36".into());
            Payload::MutualTerminationEmployerProposed(Box::new(
                MutualTerminationEmployerProposed {
                    separation: s,
                    package: None,
                },
            ))
        }
        Exit::NonRenewal(employee_refused) => {
            let mut s = block(
                n,
                if employee_refused {
                    Initiator::Employee
                } else {
                    Initiator::Employer
                },
            );
            s.contract_type = ContractType::FixedTerm;
            s.legal_ground = Some("CN-LCL-44-1".into());
            Payload::ContractNotRenewed(Box::new(ContractNotRenewed {
                separation: s,
                renewal_offered: employee_refused,
                offer_terms: None,
                employee_refused,
                would_trigger_open_ended: false,
                consecutive_fixed_terms: None,
            }))
        }
        Exit::Resignation { pressured } => Payload::Resignation(Box::new(Resignation {
            separation: block(n, Initiator::Employee),
            regrettable: false,
            pressured,
        })),
        Exit::Retirement => Payload::Retirement(Box::new(Retirement {
            separation: block(n, Initiator::Employee),
            retirement_type: RetirementType::Statutory,
        })),
        Exit::ForCause => {
            let mut s = block(n, Initiator::Employer);
            s.reason_personal = true;
            Payload::DismissalForCause(Box::new(DismissalForCause {
                separation: s,
                cause_code: "misconduct".into(),
                summary: false,
            }))
        }
    }
}

fn event_id(n: usize) -> EventId {
    serde_json::from_value(serde_json::json!(format!(
        "00000000-0000-7000-8000-{n:012x}"
    )))
    .unwrap()
}

fn envelope(n: usize, org: &str, site: &str, jurisdiction: &str, on: Date, p: Payload) -> Event {
    Event {
        event_id: event_id(n),
        org_id: OrgId(org.into()),
        site_id: SiteId(site.into()),
        jurisdiction: jurisdiction.into(),
        effective_date: on,
        source: Source {
            system: "test".into(),
            reference: String::new(),
        },
        correlation_id: None,
        causation_id: None,
        schema_version: 1,
        evidence_confidence: EvidenceConfidence::Reported,
        expected_version: None,
        payload: p,
    }
}

/// A small ledger: separations with their position-closed flag, and compliance steps.
#[derive(Default)]
struct Ledger {
    separations: Vec<(Event, bool)>,
    steps: Vec<Event>,
    site_events: Vec<Event>,
}

impl Ledger {
    fn next_id(&self) -> usize {
        self.separations.len() + self.steps.len() + self.site_events.len() + 1
    }

    /// Records a site closing (or relocation) as given; returns its id.
    fn site_event(&mut self, mut e: Event) -> EventId {
        e.event_id = event_id(self.next_id());
        let id = e.event_id;
        self.site_events.push(e);
        id
    }

    /// Records `count` exits of one kind, in `org`/`site`, on `on`.
    #[allow(clippy::too_many_arguments)]
    fn exits(
        &mut self,
        count: usize,
        exit: Exit,
        org: &str,
        site: &str,
        jurisdiction: &str,
        on: Date,
        closed: bool,
        plan: Option<&str>,
    ) -> &mut Self {
        for _ in 0..count {
            let n = self.next_id();
            let mut e = envelope(n, org, site, jurisdiction, on, payload(n, exit));
            e.correlation_id = plan.map(str::to_owned);
            self.separations.push((e, closed));
        }
        self
    }

    /// Shorthand: `count` exits at org `acme`, one site, in `jurisdiction`.
    fn at(
        &mut self,
        count: usize,
        exit: Exit,
        site: &str,
        jurisdiction: &str,
        on: Date,
    ) -> &mut Self {
        self.exits(count, exit, "acme", site, jurisdiction, on, false, None)
    }

    fn step(&mut self, kind: &str, org: &str, site: &str, on: Date) -> &mut Self {
        self.step_for(kind, org, site, on, "PLAN-1")
    }

    /// A compliance step of `plan`.
    fn step_for(&mut self, kind: &str, org: &str, site: &str, on: Date, plan: &str) -> &mut Self {
        let n = self.next_id();
        let s = wfl_domain::ComplianceStep {
            plan_id: plan.into(),
            recipient: String::new(),
            document_ref: String::new(),
            ai_checkbox: false,
        };
        let p = match kind {
            "UnionBriefed" => Payload::UnionBriefed(s),
            "AuthorityReported" => Payload::AuthorityReported(s),
            "WarnNoticeFiled" => Payload::WarnNoticeFiled(s),
            other => panic!("not a step: {other}"),
        };
        self.steps.push(envelope(n, org, site, "XX", on, p));
        self
    }

    /// Records one event as given (its id is replaced by the next one); returns that id.
    fn push(&mut self, mut e: Event) -> EventId {
        e.event_id = event_id(self.next_id());
        let id = e.event_id;
        self.separations.push((e, false));
        id
    }

    fn evaluate(
        &self,
        packs: &[RulePack],
        pop: &dyn Population,
        as_of: Date,
    ) -> Vec<ThresholdStatus> {
        let seps: Vec<Separation<'_>> = self
            .separations
            .iter()
            .map(|(e, closed)| Separation::from_event(e, *closed, false).expect("a separation"))
            .collect();
        let steps: Vec<ComplianceStep<'_>> = self
            .steps
            .iter()
            .map(|e| ComplianceStep::from_event(e).expect("a step"))
            .collect();
        let site_events: Vec<SiteEvent<'_>> = self
            .site_events
            .iter()
            .map(|e| SiteEvent::from_event(e).expect("a site event"))
            .collect();
        rules::evaluate(packs, &seps, &steps, &site_events, pop, as_of)
    }
}

/// The current window's row.
fn find<'a>(
    all: &'a [ThresholdStatus],
    pack: &str,
    unit: &str,
    window: &str,
    ct: CountType,
) -> &'a ThresholdStatus {
    find_role(all, pack, unit, window, ct, WindowRole::Current)
}

/// The peak window's row.
fn peak<'a>(
    all: &'a [ThresholdStatus],
    pack: &str,
    unit: &str,
    window: &str,
    ct: CountType,
) -> &'a ThresholdStatus {
    find_role(all, pack, unit, window, ct, WindowRole::Peak)
}

fn find_role<'a>(
    all: &'a [ThresholdStatus],
    pack: &str,
    unit: &str,
    window: &str,
    ct: CountType,
    role: WindowRole,
) -> &'a ThresholdStatus {
    all.iter()
        .find(|s| {
            s.pack == pack
                && s.unit == unit
                && s.window == window
                && s.count_type == ct
                && s.role == role
        })
        .unwrap_or_else(|| panic!("no status {pack}/{unit}/{window}/{ct:?}/{role:?} in {all:#?}"))
}

// ---------------------------------------------------------------------------------------------
// China, LCL Art. 41

/// domain-rules.md §7.2: a 1,200-person CN entity over 60 days.
fn worked_example() -> Ledger {
    let mut l = Ledger::default();
    for k in 0..8 {
        l.exits(
            1,
            Exit::AiArt40,
            "acme",
            "hz-1",
            "CN-33",
            day(k * 7),
            false,
            Some("PLAN-1"),
        );
    }
    for k in 0..15 {
        l.exits(
            1,
            Exit::MutualEmployerProposed,
            "acme",
            "hz-2",
            "CN-33",
            day(k * 4),
            false,
            Some("PLAN-1"),
        );
    }
    for k in 0..30 {
        l.exits(
            1,
            Exit::NonRenewal(false),
            "acme",
            "sh-1",
            "CN-31",
            day(k * 2),
            true,
            None,
        );
    }
    for k in 0..25 {
        l.exits(
            1,
            Exit::Resignation { pressured: false },
            "acme",
            "hz-1",
            "CN-33",
            day(k * 2 + 1),
            true,
            None,
        );
    }
    l
}

#[test]
fn worked_example_strict_0_assimilated_23_shadow_78() {
    let l = worked_example();
    let all = l.evaluate(&packs(&["CN-LCL-41"]), &Fixed(1200), day(60));

    let strict = find(&all, "CN-LCL-41", "acme", "rolling-90", CountType::Strict);
    assert_eq!(strict.count, 0);
    assert_eq!(strict.level, None);
    assert_eq!(strict.threshold, 20);
    assert!(strict.label.contains("PRC Labour Contract Law Art. 41"));
    assert!(strict.label.contains("counted as the statute counts"));
    assert!(strict.label.contains("heuristic window"));

    let assim = find(
        &all,
        "CN-LCL-41",
        "acme",
        "rolling-90",
        CountType::Assimilated,
    );
    assert_eq!(assim.count, 23);
    assert_eq!(assim.event_ids.len(), 23);
    assert_eq!(assim.denominator, 1200);
    assert_eq!(assim.threshold, 20);
    assert_eq!(assim.level, Some(AlertLevel::Met));
    assert!((assim.ratio - 23.0 / 20.0).abs() < 1e-12);
    assert!(assim
        .label
        .contains("assimilated: counted as a dismissal in substance"));
    assert_eq!(assim.window_start, day(0));
    assert_eq!(assim.window_end, day(89));

    let shadow = find(&all, "CN-LCL-41", "acme", "rolling-90", CountType::Shadow);
    assert_eq!(shadow.count, 78);
    assert_eq!(shadow.label, SHADOW_LABEL);
    assert!(shadow.label.contains("not a legal finding"));
    assert!(shadow.missing_steps.is_empty());

    // The plan groups only the events that carry its correlation id: 8 + 15.
    let plan = find(&all, "CN-LCL-41", "acme", "plan", CountType::Assimilated);
    assert_eq!(plan.count, 23);
    assert_eq!(plan.level, Some(AlertLevel::Met));
}

#[test]
fn cn_twenty_or_more_at_1200_staff() {
    for (n, level) in [
        (20, Some(AlertLevel::Met)),
        (19, Some(AlertLevel::Approaching)),
        (16, Some(AlertLevel::Approaching)),
        (15, None),
    ] {
        let mut l = Ledger::default();
        l.at(n, Exit::Dismissal(Some("CN-LCL-41-2")), "hz", "CN", day(0));
        let all = l.evaluate(&packs(&["CN-LCL-41"]), &Fixed(1200), day(0));
        let s = find(&all, "CN-LCL-41", "acme", "rolling-30", CountType::Strict);
        assert_eq!(s.count, n as u64);
        assert_eq!(s.threshold, 20, "the 20 limb binds at 1,200 staff");
        assert_eq!(s.level, level, "{n} at 1,200");
    }
}

#[test]
fn cn_ten_percent_limb_below_200_staff() {
    // 19 at 150 staff = 12.7% >= 10%: met. 15 is exactly 10%: met ("以上" includes the number).
    for (n, level) in [
        (19, Some(AlertLevel::Met)),
        (15, Some(AlertLevel::Met)),
        (14, Some(AlertLevel::Approaching)),
        (11, None),
    ] {
        let mut l = Ledger::default();
        l.at(n, Exit::Dismissal(Some("CN-LCL-41")), "hz", "CN-33", day(3));
        let all = l.evaluate(&packs(&["CN-LCL-41"]), &Fixed(150), day(10));
        let s = find(&all, "CN-LCL-41", "acme", "rolling-30", CountType::Strict);
        assert_eq!(s.threshold, 15);
        assert_eq!(s.level, level, "{n} at 150");
    }
}

#[test]
fn cn_leaves_out_dispatched_workers_and_asks_for_the_basis_without_them() {
    let mut l = Ledger::default();
    l.at(19, Exit::Dismissal(Some("CN-LCL-41")), "hz", "CN", day(0));
    l.at(5, Exit::DispatchedDismissal, "hz", "CN", day(0));
    let pop = Recording(1200, RefCell::new(Vec::new()));
    let all = l.evaluate(&packs(&["CN-LCL-41"]), &pop, day(0));
    let s = find(&all, "CN-LCL-41", "acme", "rolling-30", CountType::Strict);
    assert_eq!(s.count, 19);
    // Dispatch Interim Provisions Art. 12: the returns are on the host-side line, with a reason.
    let host_side: Vec<_> = s
        .excluded
        .iter()
        .filter(|x| x.reason.contains("host-side line"))
        .collect();
    assert_eq!(host_side.len(), 5);
    assert_eq!(s.unit_kind, wfl_projections::rules::Unit::LegalEntity);
    let queries = pop.1.borrow();
    assert!(!queries.is_empty());
    for q in queries.iter() {
        assert_eq!(q.site, None, "CN measures the legal entity");
        assert!(q
            .exclude_relationships
            .contains(&EmploymentRelationship::Dispatched));
        assert!(q
            .exclude_relationships
            .contains(&EmploymentRelationship::Contractor));
        assert_eq!(
            q.on,
            day(-1),
            "headcount the day before the first separation"
        );
    }
}

#[test]
fn cn_groups_a_plan_spread_beyond_every_heuristic_window() {
    let mut l = Ledger::default();
    for k in 0..20 {
        l.exits(
            1,
            Exit::Dismissal(Some("CN-LCL-41")),
            "acme",
            "hz",
            "CN",
            day(k * 40),
            false,
            Some("PLAN-7"),
        );
    }
    let all = l.evaluate(&packs(&["CN-LCL-41"]), &Fixed(5000), day(800));
    let year = find(&all, "CN-LCL-41", "acme", "rolling-365", CountType::Strict);
    assert_eq!(year.count, 10);
    assert_eq!(year.level, None);
    let plan = find(&all, "CN-LCL-41", "acme", "plan", CountType::Strict);
    assert_eq!(plan.count, 20);
    assert_eq!(plan.level, Some(AlertLevel::Met));
    assert_eq!((plan.window_start, plan.window_end), (day(0), day(760)));
}

#[test]
fn cn_pack_ignores_other_jurisdictions() {
    let mut l = Ledger::default();
    l.at(
        30,
        Exit::Dismissal(Some("CN-LCL-41")),
        "sf",
        "US-CA",
        day(0),
    );
    l.at(30, Exit::Dismissal(Some("CN-LCL-41")), "x", "CNX", day(0));
    let all = l.evaluate(&packs(&["CN-LCL-41"]), &Fixed(1200), day(0));
    assert!(all.is_empty(), "{all:#?}");
}

// ---------------------------------------------------------------------------------------------
// US WARN

#[test]
fn warn_aggregates_two_sub_threshold_groups_within_90_days() {
    let mut l = Ledger::default();
    l.at(30, Exit::Dismissal(None), "plant-a", "US-OH", day(0));
    l.at(25, Exit::Dismissal(None), "plant-a", "US-OH", day(45));
    l.at(40, Exit::Dismissal(None), "plant-b", "US-OH", day(10));
    let all = l.evaluate(&packs(&["US-WARN-FED"]), &Fixed(100), day(60));

    // The current 30-day window holds the latest group (day 45); the peak, the first.
    let current = find(
        &all,
        "US-WARN-FED",
        "plant-a",
        "rolling-30",
        CountType::Strict,
    );
    assert_eq!((current.count, current.window_start), (25, day(45)));
    let thirty = peak(
        &all,
        "US-WARN-FED",
        "plant-a",
        "rolling-30",
        CountType::Strict,
    );
    assert_eq!(thirty.count, 30);
    assert_eq!(thirty.threshold, 50);
    assert_eq!(thirty.level, None);

    let ninety = find(
        &all,
        "US-WARN-FED",
        "plant-a",
        "aggregate-90",
        CountType::Strict,
    );
    assert_eq!(ninety.count, 55);
    assert_eq!(ninety.denominator, 100);
    assert_eq!(ninety.threshold, 50, "55 >= 50 and 55% >= 33%");
    assert_eq!(ninety.level, Some(AlertLevel::Met));
    assert!(ninety.label.contains("US WARN Act"));

    // The other site is its own unit.
    let b = find(
        &all,
        "US-WARN-FED",
        "plant-b",
        "aggregate-90",
        CountType::Strict,
    );
    assert_eq!(b.count, 40);
    assert_eq!(b.level, Some(AlertLevel::Approaching));
}

#[test]
fn warn_33_percent_limb_applies_only_below_500() {
    for (losses, staff, threshold, met) in [
        (499, 1600, 500, false), // 31%: limb (i) fails, limb (ii) needs 500
        (499, 1400, 462, true),  // 35.6% >= 33% and >= 50
        (500, 1600, 500, true),  // limb (ii) regardless of share
        (500, 100_000, 500, true),
        (50, 100, 50, true),
        (49, 100, 50, false),
        (50, 160, 53, false), // 31%
    ] {
        let mut l = Ledger::default();
        l.at(losses, Exit::Dismissal(None), "s", "US-TX", day(0));
        let all = l.evaluate(&packs(&["US-WARN-FED"]), &Fixed(staff), day(0));
        let s = find(&all, "US-WARN-FED", "s", "rolling-30", CountType::Strict);
        assert_eq!(s.threshold, threshold, "{losses} at {staff}");
        assert_eq!(s.level == Some(AlertLevel::Met), met, "{losses} at {staff}");
    }
}

#[test]
fn warn_leaves_out_voluntary_departures_retirements_and_for_cause() {
    let mut l = Ledger::default();
    // Recorded first, on the same day as the dismissals: the window still starts that day.
    l.at(
        20,
        Exit::Resignation { pressured: false },
        "s",
        "US-NV",
        day(0),
    );
    l.at(40, Exit::Dismissal(None), "s", "US-NV", day(0));
    l.at(10, Exit::Retirement, "s", "US-NV", day(2));
    l.at(10, Exit::ForCause, "s", "US-NV", day(3));
    let all = l.evaluate(&packs(&["US-WARN-FED"]), &Fixed(100), day(10));
    for ct in [CountType::Strict, CountType::Assimilated] {
        let s = find(&all, "US-WARN-FED", "s", "rolling-30", ct);
        assert_eq!(s.count, 40, "{ct:?}");
        assert_eq!(s.window_start, day(0));
        assert_eq!(s.level, Some(AlertLevel::Approaching));
    }
}

#[test]
fn warn_counts_planned_losses_within_the_look_ahead() {
    let mut l = Ledger::default();
    l.at(30, Exit::Dismissal(None), "s", "US-OH", day(-5));
    l.at(25, Exit::Dismissal(None), "s", "US-OH", day(80));
    let pk = packs(&["US-WARN-FED"]);

    // As of day 0 the second group is planned 80 days ahead: inside the 90-day look-ahead.
    let all = l.evaluate(&pk, &Fixed(100), day(0));
    let s = find(&all, "US-WARN-FED", "s", "aggregate-90", CountType::Strict);
    assert_eq!(s.count, 55);
    assert_eq!(s.level, Some(AlertLevel::Met));

    // As of day -15 it is 95 days ahead: not yet counted.
    let all = l.evaluate(&pk, &Fixed(100), day(-15));
    let s = find(&all, "US-WARN-FED", "s", "aggregate-90", CountType::Strict);
    assert_eq!(s.count, 30);
}

#[test]
fn ny_and_ca_thresholds_differ_from_federal() {
    // 30 losses at a 80-person site: NY (>= 25 and >= 33%) met; federal (50) and CA (50) not.
    let mut l = Ledger::default();
    l.at(30, Exit::Dismissal(None), "ny-1", "US-NY", day(0));
    l.at(30, Exit::Dismissal(None), "ca-1", "US-CA", day(0));
    let all = l.evaluate(
        &packs(&["US-WARN-FED", "US-NY-WARN", "US-CA-WARN"]),
        &Fixed(80),
        day(0),
    );
    let ny = find(&all, "US-NY-WARN", "ny-1", "rolling-30", CountType::Strict);
    assert_eq!((ny.threshold, ny.level), (27, Some(AlertLevel::Met)));
    let fed = find(&all, "US-WARN-FED", "ny-1", "rolling-30", CountType::Strict);
    assert_eq!(
        fed.level, None,
        "employer of 80 is below the federal coverage test"
    );
    assert!(fed.label.contains("coverage"));
    let ca = find(&all, "US-CA-WARN", "ca-1", "rolling-30", CountType::Strict);
    assert_eq!((ca.threshold, ca.level), (50, None));
    assert!(!all
        .iter()
        .any(|s| s.pack == "US-CA-WARN" && s.unit == "ny-1"));
}

// ---------------------------------------------------------------------------------------------
// EU Directive 98/59/EC

#[test]
fn eu_assimilated_terminations_need_five_redundancies() {
    let pk = packs(&["EU-9859-30D"]);
    let mut l = Ledger::default();
    l.at(4, Exit::Dismissal(None), "lyon", "FR", day(0));
    l.at(10, Exit::MutualEmployerProposed, "lyon", "FR", day(5));
    let all = l.evaluate(&pk, &Fixed(50), day(10));
    let assim = find(
        &all,
        "EU-9859-30D",
        "lyon",
        "rolling-30",
        CountType::Assimilated,
    );
    assert_eq!(
        assim.count, 4,
        "4 redundancies: assimilated terminations not added"
    );
    assert_eq!(assim.threshold, 10);
    let shadow = find(&all, "EU-9859-30D", "lyon", "rolling-30", CountType::Shadow);
    assert_eq!(shadow.count, 14, "the shadow count is not gated");

    l.at(1, Exit::Dismissal(None), "lyon", "FR", day(6));
    let all = l.evaluate(&pk, &Fixed(50), day(10));
    let assim = find(
        &all,
        "EU-9859-30D",
        "lyon",
        "rolling-30",
        CountType::Assimilated,
    );
    assert_eq!(assim.count, 15);
    assert_eq!(assim.level, Some(AlertLevel::Met));
    let strict = find(&all, "EU-9859-30D", "lyon", "rolling-30", CountType::Strict);
    assert_eq!(strict.count, 5);
    assert_eq!(strict.level, None);
}

#[test]
fn eu_fixed_term_expiry_is_not_counted() {
    let mut l = Ledger::default();
    l.at(5, Exit::Dismissal(None), "gent", "BE", day(0));
    l.at(12, Exit::NonRenewal(false), "gent", "BE", day(1));
    let all = l.evaluate(&packs(&["EU-9859-30D"]), &Fixed(50), day(5));
    assert_eq!(
        find(&all, "EU-9859-30D", "gent", "rolling-30", CountType::Strict).count,
        5
    );
    let assim = find(
        &all,
        "EU-9859-30D",
        "gent",
        "rolling-30",
        CountType::Assimilated,
    );
    assert_eq!(assim.count, 5);
    assert_eq!(assim.level, None);
}

#[test]
fn eu_uses_the_window_with_the_most_dismissals() {
    // 400 normally employed: 30 needed. Only the window starting on day 0 reaches 30.
    let mut l = Ledger::default();
    l.at(10, Exit::Dismissal(None), "milano", "IT", day(0));
    l.at(20, Exit::Dismissal(None), "milano", "IT", day(25));
    l.at(10, Exit::Dismissal(None), "milano", "IT", day(56));
    let all = l.evaluate(
        &packs(&["EU-9859-30D", "EU-9859-90D"]),
        &Fixed(400),
        day(100),
    );
    let s = peak(
        &all,
        "EU-9859-30D",
        "milano",
        "rolling-30",
        CountType::Strict,
    );
    assert_eq!(s.count, 30);
    assert_eq!(s.threshold, 30);
    assert_eq!(s.level, Some(AlertLevel::Met));
    assert_eq!((s.window_start, s.window_end), (day(0), day(29)));
    let first_thirty: Vec<EventId> = (1..=30).map(event_id).collect();
    assert_eq!(s.event_ids, first_thirty);

    let s90 = peak(
        &all,
        "EU-9859-90D",
        "milano",
        "rolling-90",
        CountType::Strict,
    );
    assert_eq!((s90.count, s90.threshold), (40, 20));
}

#[test]
fn eu_thirty_day_bands() {
    for (staff, threshold) in [
        (21, 10),
        (99, 10),
        (100, 10),
        (250, 25),
        (299, 30),
        (300, 30),
    ] {
        let mut l = Ledger::default();
        l.at(1, Exit::Dismissal(None), "x", "NL", day(0));
        let all = l.evaluate(&packs(&["EU-9859-30D"]), &Fixed(staff), day(0));
        let s = find(&all, "EU-9859-30D", "x", "rolling-30", CountType::Strict);
        assert_eq!(s.threshold, threshold, "{staff} normally employed");
    }
    let mut l = Ledger::default();
    l.at(15, Exit::Dismissal(None), "x", "NL", day(0));
    let all = l.evaluate(&packs(&["EU-9859-30D"]), &Fixed(20), day(0));
    let s = find(&all, "EU-9859-30D", "x", "rolling-30", CountType::Strict);
    assert_eq!(
        (s.threshold, s.level),
        (0, None),
        "20 or fewer: outside the variant"
    );
    assert!(s.label.contains("no threshold applies"));
}

// ---------------------------------------------------------------------------------------------
// Germany, §17 KSchG

#[test]
fn de_each_size_band_at_and_below_its_threshold() {
    for (staff, threshold) in [
        (40, 6),
        (200, 20),
        (600, 30),
        (59, 6),
        (60, 6),
        (300, 26),
        (499, 26),
        (500, 30),
    ] {
        for (n, met) in [(threshold, true), (threshold - 1, false)] {
            let mut l = Ledger::default();
            l.at(n as usize, Exit::Dismissal(None), "werk-1", "DE-BY", day(0));
            let all = l.evaluate(&packs(&["DE-KSchG-17"]), &Fixed(staff), day(0));
            let s = find(
                &all,
                "DE-KSchG-17",
                "werk-1",
                "rolling-30",
                CountType::Strict,
            );
            assert_eq!(s.threshold, threshold, "{n} of {staff}");
            assert_eq!(s.level == Some(AlertLevel::Met), met, "{n} of {staff}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Procedure steps

fn cn_met_from_day_60() -> Ledger {
    let mut l = Ledger::default();
    l.exits(
        25,
        Exit::Dismissal(Some("CN-LCL-41")),
        "acme",
        "hz",
        "CN",
        day(60),
        false,
        Some("PLAN-1"),
    );
    l
}

fn cn_strict(l: &Ledger) -> ThresholdStatus {
    let all = l.evaluate(&packs(&["CN-LCL-41"]), &Fixed(1200), day(70));
    find(&all, "CN-LCL-41", "acme", "rolling-30", CountType::Strict).clone()
}

#[test]
fn missing_steps_are_reported_when_absent() {
    let s = cn_strict(&cn_met_from_day_60());
    assert_eq!(s.level, Some(AlertLevel::Met));
    assert_eq!(s.missing_steps.len(), 2, "{:?}", s.missing_steps);
    assert!(s.missing_steps.iter().any(|m| m.contains("UnionBriefed")));
    assert!(s
        .missing_steps
        .iter()
        .any(|m| m.contains("AuthorityReported")));
}

#[test]
fn steps_with_enough_lead_time_are_not_missing() {
    let mut l = cn_met_from_day_60();
    l.step("UnionBriefed", "acme", "hq", day(30)); // exactly 30 days ahead; any site of the entity
    l.step("AuthorityReported", "acme", "hq", day(59));
    let s = cn_strict(&l);
    assert!(s.missing_steps.is_empty(), "{:?}", s.missing_steps);
}

#[test]
fn steps_too_late_or_of_another_org_are_missing() {
    let mut l = cn_met_from_day_60();
    l.step("UnionBriefed", "acme", "hz", day(31)); // 29 days ahead: too late
    l.step("AuthorityReported", "other-co", "hz", day(40));
    let s = cn_strict(&l);
    assert!(s.missing_steps.iter().any(|m| m.contains("UnionBriefed")));
    assert!(s
        .missing_steps
        .iter()
        .any(|m| m.contains("AuthorityReported")));

    // A step dated after as_of has not happened yet.
    let mut l = cn_met_from_day_60();
    l.step("UnionBriefed", "acme", "hz", day(20));
    l.step("AuthorityReported", "acme", "hz", day(50));
    let all = l.evaluate(&packs(&["CN-LCL-41"]), &Fixed(1200), day(45));
    let s = find(&all, "CN-LCL-41", "acme", "rolling-30", CountType::Strict);
    assert_eq!(s.level, Some(AlertLevel::Met), "planned separations count");
    assert_eq!(s.missing_steps.len(), 1);
    assert!(s.missing_steps[0].contains("AuthorityReported"));
}

#[test]
fn warn_notice_must_be_filed_for_the_same_site_60_days_ahead() {
    let run = |site: &str, on: Date| {
        let mut l = Ledger::default();
        l.exits(
            60,
            Exit::Dismissal(None),
            "acme",
            "s1",
            "US-OH",
            day(100),
            false,
            Some("PLAN-1"),
        );
        l.step("WarnNoticeFiled", "acme", site, on);
        let all = l.evaluate(&packs(&["US-WARN-FED"]), &Fixed(150), day(100));
        find(&all, "US-WARN-FED", "s1", "rolling-30", CountType::Strict)
            .missing_steps
            .clone()
    };
    assert!(run("s1", day(40)).is_empty());
    assert_eq!(run("s1", day(41)).len(), 1, "59 days is too late");
    assert_eq!(
        run("s2", day(10)).len(),
        1,
        "a notice for another site does not count"
    );
}

// ---------------------------------------------------------------------------------------------
// Reading the output

#[test]
fn shadow_counts_are_never_a_legal_finding() {
    let l = worked_example();
    let all = l.evaluate(
        &packs(&["CN-LCL-41", "EU-9859-30D", "US-WARN-FED"]),
        &Fixed(1200),
        day(60),
    );
    let shadows: Vec<&ThresholdStatus> = all
        .iter()
        .filter(|s| s.count_type == CountType::Shadow)
        .collect();
    assert!(!shadows.is_empty());
    for s in shadows {
        assert_eq!(s.label, SHADOW_LABEL);
        assert!(s.missing_steps.is_empty());
    }
    for s in all.iter().filter(|s| s.count_type != CountType::Shadow) {
        assert!(!s.label.contains("not a legal finding"));
    }
}

#[test]
fn evaluation_is_deterministic_and_independent_of_input_order() {
    let l = worked_example();
    let pk = packs(&["CN-LCL-41", "EU-9859-30D", "US-WARN-FED"]);
    let a = l.evaluate(&pk, &Fixed(1200), day(60));
    let reversed = Ledger {
        separations: l.separations.iter().rev().cloned().collect(),
        ..Ledger::default()
    };
    let b = reversed.evaluate(&pk, &Fixed(1200), day(60));
    assert_eq!(a, b);
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&l.evaluate(&pk, &Fixed(1200), day(60))).unwrap()
    );
}

#[test]
fn warn_counts_long_temporary_layoffs_and_deep_hours_cuts() {
    let mut l = Ledger::default();
    l.at(20, Exit::Dismissal(None), "s", "US-CA", day(0));
    let mut extra = |p: Payload| {
        let n = l.next_id();
        l.separations
            .push((envelope(n, "acme", "s", "US-CA", day(1), p), false));
    };
    for k in 0..20 {
        extra(Payload::TemporaryLayoff(wfl_domain::TemporaryLayoff {
            worker_ref: WorkerRef(format!("t{k}")),
            expected_duration_days: 200,
            recall_expected: true,
        }));
    }
    for k in 0..5 {
        extra(Payload::TemporaryLayoff(wfl_domain::TemporaryLayoff {
            worker_ref: WorkerRef(format!("u{k}")),
            expected_duration_days: 30,
            recall_expected: true,
        }));
    }
    for (k, after, months) in [(0, 15, 6), (1, 15, 6), (2, 19, 6), (3, 20, 6), (4, 10, 3)] {
        for j in 0..5 {
            extra(Payload::HoursReduced(wfl_domain::HoursReduced {
                worker_ref: WorkerRef(format!("h{k}-{j}")),
                hours_before: 40,
                hours_after: after,
                expected_months: months,
            }));
        }
    }
    let all = l.evaluate(&packs(&["US-WARN-FED", "US-CA-WARN"]), &Fixed(100), day(5));
    // 20 dismissals + 20 layoffs over 6 months + 15 cuts of more than 50% for 6 months.
    let fed = find(&all, "US-WARN-FED", "s", "rolling-30", CountType::Strict);
    assert_eq!(fed.count, 55);
    assert_eq!(fed.level, Some(AlertLevel::Met));
    // Cal-WARN counts temporary layoffs of any duration, and not hours cuts.
    let ca = find(&all, "US-CA-WARN", "s", "rolling-30", CountType::Strict);
    assert_eq!(ca.count, 45);
}

mod model {
    use super::*;
    use proptest::prelude::*;

    const KINDS: [Exit; 3] = [
        Exit::Dismissal(None),
        Exit::MutualEmployerProposed,
        Exit::Resignation { pressured: false },
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The reported rolling-window counts are the largest of any 30-day window, found by brute
        /// force over every possible start day, with the EU five-redundancy gate applied per window.
        #[test]
        fn rolling_counts_are_the_maximum_over_all_windows(
            exits in proptest::collection::vec((0i32..200, 0usize..3), 1..80)
        ) {
            let mut l = Ledger::default();
            for (d, k) in &exits {
                l.at(1, KINDS[*k], "x", "PL", day(*d));
            }
            let all = l.evaluate(&packs(&["EU-9859-30D"]), &Fixed(400), day(300));
            let in_window = |start: i32, kind: usize| {
                exits
                    .iter()
                    .filter(|(d, k)| *k == kind && (start..start + 30).contains(d))
                    .count()
            };
            let brute_strict = (-30..230).map(|s| in_window(s, 0)).max().unwrap_or(0);
            let brute_assim = (-30..230)
                .map(|s| {
                    let strict = in_window(s, 0);
                    strict + if strict >= 5 { in_window(s, 1) } else { 0 }
                })
                .max()
                .unwrap_or(0);

            let strict = peak(&all, "EU-9859-30D", "x", "rolling-30", CountType::Strict);
            prop_assert_eq!(strict.count as usize, brute_strict);
            prop_assert_eq!(strict.level == Some(AlertLevel::Met), brute_strict >= 30);
            let assim = peak(&all, "EU-9859-30D", "x", "rolling-30", CountType::Assimilated);
            prop_assert_eq!(assim.count as usize, brute_assim);
            for s in [strict, assim] {
                prop_assert_eq!(s.event_ids.len() as u64, s.count);
                prop_assert!(s.window_end == s.window_start.add_days(29));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Waves, people, plans (issue 9)

/// Given a site that met the WARN mass-layoff threshold in a first wave, when a second build-up
/// starts months later, then the current window is the second wave (with its own count, level
/// and key) and the first stays visible as the peak. 29 USC 2101(a)(3); 20 CFR 639.5(a).
#[test]
fn warn_second_wave_is_the_current_window_and_alerts_under_a_new_key_29_usc_2101_a_3() {
    let mut l = Ledger::default();
    l.at(60, Exit::Dismissal(None), "s1", "US-OH", day(0));
    let first = l.evaluate(&packs(&["US-WARN-FED"]), &Fixed(150), day(10));
    let first_current = find(&first, "US-WARN-FED", "s1", "rolling-30", CountType::Strict);
    assert_eq!(first_current.level, Some(AlertLevel::Met));

    // Second wave 300 days later: 45 losses, at least 80% of 50.
    l.at(45, Exit::Dismissal(None), "s1", "US-OH", day(300));
    let all = l.evaluate(&packs(&["US-WARN-FED"]), &Fixed(150), day(310));
    let current = find(&all, "US-WARN-FED", "s1", "rolling-30", CountType::Strict);
    assert_eq!((current.count, current.window_start), (45, day(300)));
    assert_eq!(current.level, Some(AlertLevel::Approaching));
    let peak_row = peak(&all, "US-WARN-FED", "s1", "rolling-30", CountType::Strict);
    assert_eq!((peak_row.count, peak_row.window_start), (60, day(0)));
    assert_eq!(peak_row.level, Some(AlertLevel::Met));
    // The alert key names the wave: the second wave is a new key, so it alerts again.
    assert_ne!(current.window_key, first_current.window_key);
    assert!(current.window_key.contains(&day(300).to_string()));
    assert_eq!(current.unit_kind, wfl_projections::rules::Unit::Site);
}

/// Given a wave still under way, when more losses arrive inside it, then its key does not change
/// (no repeat alert for the same wave), and a gap as long as the window starts a new wave.
#[test]
fn a_wave_keeps_its_key_until_a_gap_as_long_as_the_window_20_cfr_639_5() {
    let key = |l: &Ledger, as_of: Date| {
        let all = l.evaluate(&packs(&["US-WARN-FED"]), &Fixed(1000), as_of);
        find(&all, "US-WARN-FED", "s1", "rolling-30", CountType::Strict)
            .window_key
            .clone()
    };
    let mut l = Ledger::default();
    l.at(10, Exit::Dismissal(None), "s1", "US-OH", day(0));
    let k0 = key(&l, day(0));
    l.at(10, Exit::Dismissal(None), "s1", "US-OH", day(25));
    l.at(10, Exit::Dismissal(None), "s1", "US-OH", day(50));
    assert_eq!(key(&l, day(50)), k0, "gaps under 30 days: one wave");
    l.at(10, Exit::Dismissal(None), "s1", "US-OH", day(80));
    assert_ne!(key(&l, day(80)), k0, "a 30-day gap: a new wave");
}

/// Given one worker put on a layoff of more than six months and later dismissed, when WARN
/// counts employment losses, then the worker is one loss and the evidence lists both events.
/// 29 USC 2101(a)(6): an employment loss is of an employee, not an event.
#[test]
fn warn_counts_one_employment_loss_per_worker_29_usc_2101_a_6() {
    let mut l = Ledger::default();
    let layoff = l.push(envelope(
        0,
        "acme",
        "s1",
        "US-OH",
        day(0),
        Payload::TemporaryLayoff(wfl_domain::TemporaryLayoff {
            worker_ref: WorkerRef("w-same".into()),
            expected_duration_days: 200,
            recall_expected: false,
        }),
    ));
    let mut p = payload(0, Exit::Dismissal(None));
    if let Payload::EconomicDismissal(d) = &mut p {
        d.separation.worker_ref = WorkerRef("w-same".into());
    }
    let dismissal = l.push(envelope(0, "acme", "s1", "US-OH", day(10), p));
    l.at(3, Exit::Dismissal(None), "s1", "US-OH", day(12));
    let all = l.evaluate(&packs(&["US-WARN-FED"]), &Fixed(150), day(20));
    let s = find(&all, "US-WARN-FED", "s1", "rolling-30", CountType::Strict);
    assert_eq!(s.count, 4, "one worker, two events: one loss");
    assert!(s.event_ids.contains(&layoff) && s.event_ids.contains(&dismissal));
    assert_eq!(s.event_ids.len(), 5);
}

/// Given a step of an old plan a year earlier, when a new 20-person CN reduction of another plan
/// is met, then the old step does not count for it: the step is missing. LCL Art. 41 (brief the
/// union 30 days ahead, report the plan).
#[test]
fn cn_step_of_another_plan_does_not_count_lcl_art_41() {
    let mut l = Ledger::default();
    l.step_for("UnionBriefed", "acme", "hz", day(0), "PLAN-OLD");
    l.step_for("AuthorityReported", "acme", "hz", day(1), "PLAN-OLD");
    l.exits(
        20,
        Exit::Dismissal(Some("CN-LCL-41")),
        "acme",
        "hz",
        "CN",
        day(400),
        false,
        Some("PLAN-NEW"),
    );
    let all = l.evaluate(&packs(&["CN-LCL-41"]), &Fixed(1200), day(400));
    let s = find(&all, "CN-LCL-41", "acme", "plan", CountType::Strict);
    assert_eq!(s.level, Some(AlertLevel::Met));
    assert_eq!(s.missing_steps.len(), 2, "{:?}", s.missing_steps);
    assert!(s
        .steps
        .iter()
        .all(|c| c.state == StepState::Missing && c.plan.as_deref() == Some("PLAN-NEW")));
}

/// Given a plan whose first dismissals come before its later ones, when the union is briefed 30
/// days before the later ones but not before the first, then the step is late, by the days
/// missing, measured from the plan's first separation. LCL Art. 41 (30 days in advance).
#[test]
fn cn_lead_time_runs_from_the_plans_first_separation_and_late_steps_say_by_how_much() {
    let mut l = Ledger::default();
    let plan = |l: &mut Ledger, n: usize, on: Date| {
        l.exits(
            n,
            Exit::Dismissal(Some("CN-LCL-41")),
            "acme",
            "hz",
            "CN",
            on,
            false,
            Some("PLAN-1"),
        );
    };
    plan(&mut l, 2, day(100));
    plan(&mut l, 20, day(200));
    l.step("UnionBriefed", "acme", "hz", day(150)); // 50 days after the 30-day deadline (day 70)
    l.step("AuthorityReported", "acme", "hz", day(90)); // before the first separation: on time
    let all = l.evaluate(&packs(&["CN-LCL-41"]), &Fixed(1200), day(200));
    let s = find(&all, "CN-LCL-41", "acme", "rolling-30", CountType::Strict);
    assert_eq!(s.level, Some(AlertLevel::Met));
    let union = s
        .steps
        .iter()
        .find(|c| c.event_type == wfl_domain::EventType::UnionBriefed)
        .unwrap();
    assert_eq!(union.state, StepState::Late);
    assert_eq!((union.first_separation, union.due_by), (day(100), day(70)));
    assert_eq!(union.days_late, 80);
    assert_eq!(s.missing_steps.len(), 1);
    assert!(
        s.missing_steps[0].contains("late by 80 days"),
        "{:?}",
        s.missing_steps
    );
    let report = s
        .steps
        .iter()
        .find(|c| c.event_type == wfl_domain::EventType::AuthorityReported)
        .unwrap();
    assert_eq!(report.state, StepState::OnTime);
}

/// Given a reduction below the approaching level, then no step is reported missing; on-time and
/// late steps are still listed. (Issue 9: "missing" only once approaching or met.)
#[test]
fn steps_are_missing_only_once_approaching_or_met() {
    let mut l = Ledger::default();
    l.exits(
        5,
        Exit::Dismissal(Some("CN-LCL-41")),
        "acme",
        "hz",
        "CN",
        day(100),
        false,
        Some("PLAN-1"),
    );
    l.step("AuthorityReported", "acme", "hz", day(90));
    let all = l.evaluate(&packs(&["CN-LCL-41"]), &Fixed(1200), day(100));
    let s = find(&all, "CN-LCL-41", "acme", "rolling-30", CountType::Strict);
    assert_eq!(s.level, None);
    assert!(s.missing_steps.is_empty());
    assert_eq!(s.steps.len(), 1);
    assert_eq!(s.steps[0].state, StepState::OnTime);
}

fn de_exit(l: &mut Ledger, exit: Exit, notice: Date, effective: Date) -> EventId {
    let mut p = payload(l.next_id(), exit);
    if let Some(sep) = separation_mut(&mut p) {
        sep.notice_given_on = Some(notice);
    }
    l.push(envelope(0, "acme", "werk-1", "DE-BY", effective, p))
}

fn separation_mut(p: &mut Payload) -> Option<&mut wfl_domain::Separation> {
    match p {
        Payload::EconomicDismissal(x) => Some(&mut x.separation),
        Payload::MutualTerminationEmployerProposed(x) => Some(&mut x.separation),
        Payload::Resignation(x) => Some(&mut x.separation),
        Payload::DismissalForCause(x) => Some(&mut x.separation),
        Payload::ContractNotRenewed(x) => Some(&mut x.separation),
        Payload::Retirement(x) => Some(&mut x.separation),
        _ => None,
    }
}

/// Given employer-induced termination agreements and resignations, ordinary conduct dismissals
/// and summary dismissals at a 100-person German establishment, then §17(1) s.2 counts the
/// induced terminations without any five-redundancy gate, ordinary dismissals count whatever
/// their reason, and summary dismissals are excluded (§17(4) s.2), with the reason listed.
#[test]
fn de_kschg_17_1_s2_counts_induced_terminations_and_17_4_leaves_out_summary_dismissals() {
    let mut l = Ledger::default();
    for _ in 0..4 {
        de_exit(&mut l, Exit::MutualEmployerProposed, day(0), day(60));
        de_exit(
            &mut l,
            Exit::Resignation { pressured: true },
            day(0),
            day(60),
        );
    }
    de_exit(&mut l, Exit::ForCause, day(1), day(45)); // ordinary dismissal for conduct
    let summary = {
        let mut p = payload(l.next_id(), Exit::ForCause);
        if let Payload::DismissalForCause(d) = &mut p {
            d.summary = true;
        }
        l.push(envelope(0, "acme", "werk-1", "DE-BY", day(2), p))
    };
    de_exit(
        &mut l,
        Exit::Resignation { pressured: false },
        day(0),
        day(30),
    );
    let all = l.evaluate(&packs(&["DE-KSchG-17"]), &Fixed(100), day(60));
    let s = find(
        &all,
        "DE-KSchG-17",
        "werk-1",
        "rolling-30",
        CountType::Strict,
    );
    assert_eq!(
        s.count, 9,
        "8 induced + 1 ordinary conduct dismissal; no gate"
    );
    assert_eq!(s.threshold, 10);
    assert_eq!(s.level, Some(AlertLevel::Approaching));
    assert!(s
        .excluded
        .iter()
        .any(|x| x.event_id == summary && x.reason.contains("§17(4)")));
    assert_eq!(s.count_date, wfl_projections::rules::CountDate::Notice);
    assert!(s.gate.is_none());
}

/// Given notices given on day 0 and day 40 with effective dates within 30 days of each other,
/// then Germany counts by the notice date (Junk C-188/03; BAG): the two groups are not in one
/// 30-day window, and the authority must be notified before the first notice.
#[test]
fn de_counts_and_deadlines_go_by_the_notice_date_c_188_03_junk() {
    let mut l = Ledger::default();
    for (notice, effective) in [(day(0), day(60)), (day(40), day(70))] {
        for _ in 0..6 {
            de_exit(&mut l, Exit::Dismissal(None), notice, effective);
            l.separations.last_mut().unwrap().0.correlation_id = Some("PLAN-1".into());
        }
    }
    l.step("AuthorityReported", "acme", "werk-1", day(10)); // after the first notices
    l.step("UnionBriefed", "acme", "werk-1", day(0));
    let all = l.evaluate(&packs(&["DE-KSchG-17"]), &Fixed(50), day(70));
    let s = find(
        &all,
        "DE-KSchG-17",
        "werk-1",
        "rolling-30",
        CountType::Strict,
    );
    assert_eq!(
        (s.count, s.window_start),
        (6, day(40)),
        "by notice date, not effective"
    );
    assert_eq!(s.level, Some(AlertLevel::Met), "more than 5 at 21-59 staff");
    let notify = s
        .steps
        .iter()
        .find(|c| c.event_type == wfl_domain::EventType::AuthorityReported)
        .unwrap();
    assert_eq!(notify.due_by, day(0));
    assert_eq!((notify.state, notify.days_late), (StepState::Late, 10));
}

/// Given a German establishment, then the EU packs give only the 30-day floor, labelled
/// floor_only (national law: DE-KSchG-17), and no 90-day row (Germany chose the 30-day variant);
/// a state whose choice was not researched gets both, labelled so. Directive 98/59/EC Art. 1(1)(a).
#[test]
fn eu_member_state_gets_only_its_variant_and_de_is_labelled_floor_only_98_59_art_1() {
    let mut l = Ledger::default();
    l.at(12, Exit::Dismissal(None), "werk-1", "DE", day(0));
    l.at(12, Exit::Dismissal(None), "lyon", "FR", day(0));
    let all = l.evaluate(
        &packs(&["DE-KSchG-17", "EU-9859-30D", "EU-9859-90D"]),
        &Fixed(50),
        day(0),
    );
    let floor = find(
        &all,
        "EU-9859-30D",
        "werk-1",
        "rolling-30",
        CountType::Strict,
    );
    assert!(floor.floor_only);
    assert!(floor.label.contains("floor_only") && floor.label.contains("DE-KSchG-17"));
    assert!(!all
        .iter()
        .any(|s| s.pack == "EU-9859-90D" && s.unit == "werk-1"));
    let national = find(
        &all,
        "DE-KSchG-17",
        "werk-1",
        "rolling-30",
        CountType::Strict,
    );
    assert!(!national.floor_only);
    let fr = find(&all, "EU-9859-90D", "lyon", "rolling-90", CountType::Strict);
    assert!(fr.label.contains("not researched"));
    assert!(!fr.floor_only);
}

/// The EU gate's state is exposed on the assimilated row: with four redundancies stricto sensu
/// the assimilated terminations are not added, and each says why (C-422/14 Pujante Rivera).
#[test]
fn eu_gate_state_and_excluded_reasons_are_reported_c_422_14() {
    let mut l = Ledger::default();
    l.at(4, Exit::Dismissal(None), "lyon", "FR", day(0));
    l.at(8, Exit::MutualEmployerProposed, "lyon", "FR", day(1));
    l.at(1, Exit::Retirement, "lyon", "FR", day(2));
    let all = l.evaluate(&packs(&["EU-9859-30D"]), &Fixed(50), day(2));
    let s = find(
        &all,
        "EU-9859-30D",
        "lyon",
        "rolling-30",
        CountType::Assimilated,
    );
    let gate = s.gate.expect("the EU pack has a gate");
    assert_eq!(
        (gate.strict_workers, gate.min_strict, gate.open),
        (4, 5, false)
    );
    assert_eq!(s.count, 4);
    assert_eq!(
        s.excluded
            .iter()
            .filter(|x| x.reason.contains("stricto sensu"))
            .count(),
        8
    );
    assert!(s
        .excluded
        .iter()
        .any(|x| x.reason.starts_with("excluded: ")));
}

// ---------------------------------------------------------------------------------------------
// WARN population (issue 9)

/// A population answering each query with a function of it, and knowing some workers.
struct Answering<F: Fn(&PopulationQuery) -> u64> {
    headcount: F,
    workers: Vec<(String, wfl_projections::WorkerProfile)>,
}

impl<F: Fn(&PopulationQuery) -> u64> Population for Answering<F> {
    fn headcount(&self, q: &PopulationQuery) -> u64 {
        (self.headcount)(q)
    }

    fn worker(
        &self,
        _: &OrgId,
        worker: &WorkerRef,
        _: Date,
    ) -> Option<wfl_projections::WorkerProfile> {
        self.workers
            .iter()
            .find(|(w, _)| *w == worker.0)
            .map(|(_, p)| p.clone())
    }
}

fn with_hours(l: &mut Ledger, hours: Option<u32>, months: Option<u32>, on: Date) -> EventId {
    let mut p = payload(l.next_id(), Exit::Dismissal(None));
    if let Some(sep) = separation_mut(&mut p) {
        sep.avg_weekly_hours = hours;
        sep.months_employed_last_12 = months;
    }
    l.push(envelope(0, "acme", "s1", "US-OH", on, p))
}

/// Given 50 losses of which one averages 19 hours a week and one was employed 5 of the last 12
/// months, then WARN counts 48 (below 50): part-time is fewer than 20 hours a week on average
/// or fewer than 6 of the last 12 months (20 CFR 639.3(h)); both are listed as excluded, owed
/// notice; and the headcount basis is asked without part-time workers by the same tests.
#[test]
fn warn_part_time_by_hours_or_months_is_not_counted_20_cfr_639_3_h() {
    let mut l = Ledger::default();
    let by_hours = with_hours(&mut l, Some(19), Some(12), day(0));
    let by_months = with_hours(&mut l, Some(40), Some(5), day(0));
    with_hours(&mut l, Some(20), Some(6), day(0)); // exactly at the limits: full-time
    l.at(47, Exit::Dismissal(None), "s1", "US-OH", day(0));
    let asked = RefCell::new(Vec::new());
    let pop = Answering {
        headcount: |q: &PopulationQuery| {
            asked.borrow_mut().push(q.clone());
            140
        },
        workers: Vec::new(),
    };
    let all = l.evaluate(&packs(&["US-WARN-FED"]), &pop, day(0));
    let s = find(&all, "US-WARN-FED", "s1", "rolling-30", CountType::Strict);
    assert_eq!(s.count, 48);
    assert_eq!(s.level, Some(AlertLevel::Approaching));
    for id in [by_hours, by_months] {
        let x = s
            .excluded
            .iter()
            .find(|x| x.event_id == id)
            .expect("listed");
        assert!(
            x.reason.contains("part-time") && x.reason.contains("notice"),
            "{}",
            x.reason
        );
    }
    assert!(asked.borrow().iter().all(|q| {
        q.part_time_below_weekly_hours == Some(20) && q.part_time_below_months_of_12 == Some(6)
    }));
}

/// Given a temporary layoff of more than six months of a worker the population knows as
/// part-time, then it is not a WARN employment loss: the exclusions apply to layoffs and hours
/// cuts too, not only to separations (29 USC 2101(a)(3), (a)(6)(B)).
#[test]
fn warn_exclusions_apply_to_long_layoffs_of_part_time_workers_29_usc_2101() {
    let mut l = Ledger::default();
    let layoff = l.push(envelope(
        0,
        "acme",
        "s1",
        "US-OH",
        day(0),
        Payload::TemporaryLayoff(wfl_domain::TemporaryLayoff {
            worker_ref: WorkerRef("pt-1".into()),
            expected_duration_days: 200,
            recall_expected: false,
        }),
    ));
    l.at(3, Exit::Dismissal(None), "s1", "US-OH", day(0));
    let pop = Answering {
        headcount: |_: &PopulationQuery| 150,
        workers: vec![(
            "pt-1".into(),
            wfl_projections::WorkerProfile {
                relationship: EmploymentRelationship::Employee,
                contract_type: ContractType::OpenEnded,
                avg_weekly_hours: Some(12),
                months_employed_last_12: Some(12),
                contract_end: None,
            },
        )],
    };
    let all = l.evaluate(&packs(&["US-WARN-FED"]), &pop, day(0));
    let s = find(&all, "US-WARN-FED", "s1", "rolling-30", CountType::Strict);
    assert_eq!(s.count, 3);
    assert!(s.excluded.iter().any(|x| x.event_id == layoff));
}

/// Given an employer with 40 employees in New York State and 500 elsewhere, then NY WARN does
/// not cover it: coverage counts employees in the state (§860-a(3)); the watch asks the
/// population for the US-NY headcount.
#[test]
fn ny_warn_coverage_counts_employees_in_new_york_state_860_a_3() {
    let mut l = Ledger::default();
    l.at(30, Exit::Dismissal(None), "nyc-1", "US-NY", day(0));
    let pop = Answering {
        headcount: |q: &PopulationQuery| match (&q.site, q.jurisdiction_prefix.as_deref()) {
            (None, Some("US-NY")) => 40,
            (None, _) => 540,
            (Some(_), _) => 40,
        },
        workers: Vec::new(),
    };
    let all = l.evaluate(&packs(&["US-NY-WARN"]), &pop, day(0));
    let s = find(&all, "US-NY-WARN", "nyc-1", "rolling-30", CountType::Strict);
    assert_eq!(s.level, None, "below 50 in the state: not covered");
    assert!(s.label.contains("coverage"), "{}", s.label);
}

/// Given an establishment that employed 80 a year ago and 60 now, then Cal-WARN still covers it:
/// "employs or has employed in the preceding 12 months 75 or more" (§1400.5(a)); the watch asks
/// for the largest headcount over the 365 days up to the snapshot.
#[test]
fn ca_warn_coverage_looks_back_twelve_months_1400_5_a() {
    let mut l = Ledger::default();
    l.at(50, Exit::Dismissal(None), "fresno", "US-CA", day(0));
    let pop = Answering {
        headcount: |q: &PopulationQuery| match q.max_over_days {
            Some(365) => 80,
            _ => 60,
        },
        workers: Vec::new(),
    };
    let all = l.evaluate(&packs(&["US-CA-WARN"]), &pop, day(0));
    let s = find(
        &all,
        "US-CA-WARN",
        "fresno",
        "rolling-30",
        CountType::Strict,
    );
    assert_eq!(s.level, Some(AlertLevel::Met));
    let snapshot = Answering {
        headcount: |_: &PopulationQuery| 60,
        workers: Vec::new(),
    };
    let all = l.evaluate(&packs(&["US-CA-WARN"]), &snapshot, day(0));
    let s = find(
        &all,
        "US-CA-WARN",
        "fresno",
        "rolling-30",
        CountType::Strict,
    );
    assert_eq!(s.level, None, "never 75 in the year: not covered");
}

/// The projection's population honours the look-back (Cal-WARN §1400.5(a)) and the months limb of
/// the WARN part-time test (20 CFR 639.3(h)): a shrinking site keeps its 12-month peak, and a
/// worker hired three months ago is left out of a basis that asks for six of twelve months.
#[test]
fn projection_population_honours_look_back_and_months_employed() {
    let mut p = wfl_projections::views::Projection::new();
    let mut seq = 0u64;
    let mut rec = |p: &mut wfl_projections::views::Projection, on: Date, payload: Payload| {
        seq += 1;
        let e = envelope(seq as usize, "acme", "fresno", "US-CA", on, payload);
        p.apply(seq, &e);
    };
    let hired = |w: String, baseline: bool| {
        Payload::WorkerHired(wfl_domain::WorkerHired {
            worker_ref: WorkerRef(w),
            employment_relationship: EmploymentRelationship::Employee,
            contract_type: ContractType::OpenEnded,
            cohort: None,
            position_id: None,
            baseline,
            avg_weekly_hours: None,
            months_employed_last_12: None,
            contract_end: None,
        })
    };
    for k in 0..80 {
        rec(&mut p, day(0), hired(format!("w{k}"), true));
    }
    for k in 0..20 {
        rec(&mut p, day(100), payload(k, Exit::Dismissal(None)));
    }
    for k in 0..5 {
        rec(&mut p, day(110), hired(format!("new{k}"), false));
    }
    let q = PopulationQuery {
        org: OrgId("acme".into()),
        site: Some(SiteId("fresno".into())),
        on: day(200),
        exclude_relationships: Vec::new(),
        exclude_contract_types: Vec::new(),
        jurisdiction_prefix: None,
        max_over_days: None,
        part_time_below_weekly_hours: None,
        part_time_below_months_of_12: None,
    };
    assert_eq!(p.population(&q), 65);
    let look_back = PopulationQuery {
        max_over_days: Some(365),
        ..q.clone()
    };
    assert_eq!(p.population(&look_back), 80, "80 before the dismissals");
    let months = PopulationQuery {
        part_time_below_months_of_12: Some(6),
        ..q.clone()
    };
    assert_eq!(
        p.population(&months),
        60,
        "hired 90 days ago: part-time by months"
    );
}

// ---------------------------------------------------------------------------------------------
// Issue 9, remaining items: temporary layoffs in the views, part-time by hours, plant closings
// and relocations, contract end dates, Cal-WARN's 6 of 12 months, the §18 KSchG block.

fn baseline_hire(worker: &str, hours: u32) -> Payload {
    Payload::WorkerHired(wfl_domain::WorkerHired {
        worker_ref: WorkerRef(worker.into()),
        employment_relationship: EmploymentRelationship::Employee,
        contract_type: ContractType::OpenEnded,
        cohort: None,
        position_id: None,
        baseline: true,
        avg_weekly_hours: Some(hours),
        months_employed_last_12: None,
        contract_end: None,
    })
}

fn temporary_layoff(worker: &str, days: u32) -> Payload {
    Payload::TemporaryLayoff(wfl_domain::TemporaryLayoff {
        worker_ref: WorkerRef(worker.into()),
        expected_duration_days: days,
        recall_expected: false,
    })
}

/// Given a 110-person Ohio site (10 averaging 15 hours a week) with 40 economic dismissals, 12
/// temporary layoffs expected to last 200 days, one such layoff of a 15-hour worker and one
/// 30-day layoff, when the Separations view and the WARN watch read the same projection, then:
/// the view lists all 14 layoffs as formal layoffs (mechanism temporary_layoff, domain-rules
/// §5.2); the watch counts the dismissals and the 12 long layoffs of full-time workers (layoff
/// of more than 6 months, 29 USC 2101(a)(6)(B)) against a basis of 100 (part-time by hours left
/// out, 20 CFR 639.3(h), read from the hire through `Population::worker`), lists the part-time
/// layoff as owed notice, and every layoff the view shows and the watch does not count is one
/// of those two.
#[test]
fn separations_view_and_warn_watch_agree_on_temporary_layoffs_29_usc_2101_a_6_b() {
    use wfl_projections::classify::{Bucket, Mechanism};
    use wfl_projections::views::{Projection, Query};
    let mut p = Projection::new();
    let mut seq = 0u64;
    let mut rec = |p: &mut Projection, on: Date, payload: Payload| -> EventId {
        seq += 1;
        let e = envelope(seq as usize, "acme", "ohio-1", "US-OH", on, payload);
        p.apply(seq, &e);
        e.event_id
    };
    for k in 0..100 {
        rec(&mut p, day(0), baseline_hire(&format!("w{k}"), 40));
    }
    for k in 0..10 {
        rec(&mut p, day(0), baseline_hire(&format!("pt{k}"), 15));
    }
    let mut dismissals = Vec::new();
    for k in 0..40 {
        dismissals.push(rec(&mut p, day(100), payload(k, Exit::Dismissal(None))));
    }
    let mut long = Vec::new();
    for k in 40..52 {
        long.push(rec(
            &mut p,
            day(105),
            temporary_layoff(&format!("w{k}"), 200),
        ));
    }
    let part_time = rec(&mut p, day(105), temporary_layoff("pt0", 200));
    let short = rec(&mut p, day(105), temporary_layoff("w60", 30));

    let acme = OrgId("acme".into());
    let records = p.countable_records(Some(&acme));
    let seps: Vec<Separation<'_>> = records.iter().map(Separation::from).collect();
    let all = rules::evaluate(&packs(&["US-WARN-FED"]), &seps, &[], &[], &p, day(105));
    let s = find(
        &all,
        "US-WARN-FED",
        "ohio-1",
        "rolling-30",
        CountType::Strict,
    );
    assert_eq!(
        s.count, 52,
        "40 dismissals + 12 long layoffs of full-time workers"
    );
    assert_eq!(
        s.denominator, 100,
        "the 10 workers under 20 hours are not in the basis"
    );
    assert_eq!((s.threshold, s.level), (50, Some(AlertLevel::Met)));
    assert_eq!(s.notice_only, vec![part_time]);
    assert!(s.label.contains("owed notice"), "{}", s.label);
    assert!(s
        .excluded
        .iter()
        .any(|x| x.event_id == part_time && x.reason.contains("15 hours")));

    let view = p.separations(&Query {
        org: Some(acme.clone()),
        ..Query::default()
    });
    let formal = view
        .totals
        .iter()
        .find(|t| t.bucket == Bucket::FormalLayoff)
        .unwrap();
    assert_eq!(formal.count, 54, "40 dismissals + 14 temporary layoffs");
    let temporary: u64 = view
        .rows
        .iter()
        .filter(|r| r.mechanism == Some(Mechanism::TemporaryLayoff))
        .map(|r| r.count)
        .sum();
    assert_eq!(temporary, 14);
    assert_eq!(view.total, 54);
    for id in &s.event_ids {
        assert!(
            formal.event_ids.contains(id),
            "counted {id} is a formal layoff"
        );
    }
    let mut not_counted: Vec<EventId> = formal
        .event_ids
        .iter()
        .filter(|id| !s.event_ids.contains(id))
        .copied()
        .collect();
    not_counted.sort_unstable();
    let mut expected = vec![part_time, short];
    expected.sort_unstable();
    assert_eq!(not_counted, expected);
    assert!(dismissals
        .iter()
        .chain(&long)
        .all(|id| s.event_ids.contains(id)));
}

/// The projection's own population and its index leave out workers averaging fewer than 20
/// hours a week when asked (20 CFR 639.3(h)); workers with no hours recorded stay in.
#[test]
fn both_population_implementations_leave_out_part_time_by_hours_20_cfr_639_3_h() {
    use wfl_projections::views::{PopulationIndex, Projection};
    let mut p = Projection::new();
    let hires = [
        ("a", Some(40)),
        ("b", Some(19)),
        ("c", Some(20)),
        ("d", None),
    ];
    for (n, (w, hours)) in hires.into_iter().enumerate() {
        let mut h = baseline_hire(w, 0);
        if let Payload::WorkerHired(x) = &mut h {
            x.avg_weekly_hours = hours;
        }
        p.apply(
            n as u64 + 1,
            &envelope(n + 1, "acme", "s1", "US-OH", day(0), h),
        );
    }
    let q = PopulationQuery {
        org: OrgId("acme".into()),
        site: None,
        on: day(1),
        exclude_relationships: Vec::new(),
        exclude_contract_types: Vec::new(),
        jurisdiction_prefix: None,
        max_over_days: None,
        part_time_below_weekly_hours: Some(20),
        part_time_below_months_of_12: None,
    };
    let index = PopulationIndex::new(&p, None);
    assert_eq!(p.population(&q), 3, "b (19 hours) is part-time");
    assert_eq!(index.headcount(&q), 3);
    let all = PopulationQuery {
        part_time_below_weekly_hours: None,
        ..q
    };
    assert_eq!((p.population(&all), index.headcount(&all)), (4, 4));
    let profile = index
        .worker(&OrgId("acme".into()), &WorkerRef("b".into()), day(1))
        .unwrap();
    assert_eq!(profile.avg_weekly_hours, Some(19));
}

fn site_closed(l: &mut Ledger, site: &str, jurisdiction: &str, on: Date) -> EventId {
    l.site_event(envelope(
        0,
        "acme",
        site,
        jurisdiction,
        on,
        Payload::SiteClosed(wfl_domain::SiteClosed {
            operating_unit: None,
            temporary: false,
        }),
    ))
}

fn site_relocated(l: &mut Ledger, site: &str, jurisdiction: &str, on: Date, km: u32) -> EventId {
    l.site_event(envelope(
        0,
        "acme",
        site,
        jurisdiction,
        on,
        Payload::SiteRelocated(wfl_domain::SiteRelocated {
            to_site: None,
            distance_km: km,
        }),
    ))
}

/// Given 60 employment losses at a 400-person site, then without a shutdown it is no mass layoff
/// (33% of 400 is 132); when the site closes 10 days later it is a plant closing, 50 or more at a
/// shut site with no percentage test (29 USC 2101(a)(2)), naming the SiteClosed; a closing more
/// than 90 days after the window is not tied to it.
#[test]
fn warn_plant_closing_is_50_losses_at_a_shut_site_29_usc_2101_a_2() {
    let mut l = Ledger::default();
    l.at(60, Exit::Dismissal(None), "plant-9", "US-OH", day(0));
    let fed = packs(&["US-WARN-FED"]);
    let open = l.evaluate(&fed, &Fixed(400), day(0));
    let s = find(
        &open,
        "US-WARN-FED",
        "plant-9",
        "rolling-30",
        CountType::Strict,
    );
    assert_eq!((s.threshold, s.level, s.site_event), (132, None, None));

    let mut late = Ledger::default();
    late.at(60, Exit::Dismissal(None), "plant-9", "US-OH", day(0));
    site_closed(&mut late, "plant-9", "US-OH", day(200));
    let all = late.evaluate(&fed, &Fixed(400), day(0));
    let s = find(
        &all,
        "US-WARN-FED",
        "plant-9",
        "rolling-30",
        CountType::Strict,
    );
    assert_eq!(
        s.site_event, None,
        "a closing 171 days after the window is not tied to it"
    );

    let closing = site_closed(&mut l, "plant-9", "US-OH", day(10));
    site_closed(&mut l, "other-site", "US-OH", day(10));
    let all = l.evaluate(&fed, &Fixed(400), day(0));
    let s = find(
        &all,
        "US-WARN-FED",
        "plant-9",
        "rolling-30",
        CountType::Strict,
    );
    assert_eq!((s.threshold, s.level), (50, Some(AlertLevel::Met)));
    assert_eq!(s.site_event, Some(closing));
    assert!(s.label.contains("closed or moved"), "{}", s.label);
}

/// Given 30 losses at a 200-person New York site, then it is no mass layoff (33% of 200 is 66),
/// but a plant closing (25 or more, §860-a) when the site shuts, and a relocation when the
/// operations move 50 miles or more (81 km) away; a 70 km move is not one.
#[test]
fn ny_warn_plant_closing_and_relocation_need_25_860_a() {
    let ny = packs(&["US-NY-WARN"]);
    let level = |site_event: &dyn Fn(&mut Ledger)| {
        let mut l = Ledger::default();
        l.at(30, Exit::Dismissal(None), "nyc-1", "US-NY", day(0));
        site_event(&mut l);
        let all = l.evaluate(&ny, &Fixed(200), day(0));
        let s = find(&all, "US-NY-WARN", "nyc-1", "rolling-30", CountType::Strict);
        (s.threshold, s.level)
    };
    assert_eq!(level(&|_| {}), (66, None));
    assert_eq!(
        level(&|l| {
            site_closed(l, "nyc-1", "US-NY", day(20));
        }),
        (25, Some(AlertLevel::Met))
    );
    assert_eq!(
        level(&|l| {
            site_relocated(l, "nyc-1", "US-NY", day(20), 90);
        }),
        (25, Some(AlertLevel::Met))
    );
    assert_eq!(
        level(&|l| {
            site_relocated(l, "nyc-1", "US-NY", day(20), 70);
        }),
        (66, None)
    );
}

/// Given 52 layoffs at a California establishment, 3 of workers employed 4 of the last 12
/// months, and 80 persons employed of whom 10 arrived within 6 months, then Cal-WARN counts 49
/// employees (an employee has worked 6 of the last 12 months, §1400.5(h) ◑) but the coverage test
/// counts every person (75 persons, full- and part-time, §1400.5(a)): the employer is covered and
/// the count is approaching 50. A termination of operations (a SiteClosed) then triggers notice
/// whatever the number (§1400.5(f), §1401(a) ❓).
#[test]
fn ca_warn_counts_employees_of_6_of_12_months_and_covers_every_person_1400_5() {
    let mut l = Ledger::default();
    for _ in 0..3 {
        with_months(&mut l, "fresno", Some(4));
    }
    for _ in 0..49 {
        with_months(&mut l, "fresno", Some(12));
    }
    let asked = RefCell::new(Vec::new());
    let pop = Answering {
        headcount: |q: &PopulationQuery| {
            asked.borrow_mut().push(q.clone());
            if q.part_time_below_months_of_12.is_some() {
                70
            } else {
                80
            }
        },
        workers: Vec::new(),
    };
    let ca = packs(&["US-CA-WARN"]);
    let all = l.evaluate(&ca, &pop, day(0));
    let s = find(
        &all,
        "US-CA-WARN",
        "fresno",
        "rolling-30",
        CountType::Strict,
    );
    assert_eq!(s.count, 49);
    assert_eq!(s.level, Some(AlertLevel::Approaching), "{}", s.label);
    assert!(s
        .excluded
        .iter()
        .all(|x| x.reason.contains("employed 4 of the last 12")));
    assert_eq!(s.excluded.len(), 3);
    assert!(
        s.notice_only.is_empty(),
        "Cal-WARN notice to short-tenure workers is not encoded"
    );
    assert!(asked
        .borrow()
        .iter()
        .any(|q| q.max_over_days == Some(365) && q.part_time_below_months_of_12.is_none()));

    let mut small = Ledger::default();
    small.at(10, Exit::Dismissal(None), "fresno", "US-CA", day(0));
    let closed = site_closed(&mut small, "fresno", "US-CA", day(5));
    let all = small.evaluate(&ca, &Fixed(80), day(0));
    let s = find(
        &all,
        "US-CA-WARN",
        "fresno",
        "rolling-30",
        CountType::Strict,
    );
    assert_eq!((s.threshold, s.level), (1, Some(AlertLevel::Met)));
    assert_eq!(s.site_event, Some(closed));
}

fn with_months(l: &mut Ledger, site: &str, months: Option<u32>) -> EventId {
    let mut p = payload(l.next_id(), Exit::Dismissal(None));
    if let Some(sep) = separation_mut(&mut p) {
        sep.months_employed_last_12 = months;
    }
    l.push(envelope(0, "acme", site, "US-CA", day(0), p))
}

/// Given five redundancies at a French establishment, three non-renewals recorded with an agreed
/// end 60 days after they take effect and two ending on their agreed date, then the EU count
/// adds the three early ends as assimilated terminations and leaves out the two expiries:
/// Directive 98/59/EC Art. 1(2)(a) excludes fixed-term contracts "except where [the
/// redundancies] take place before the expiry" (C-392/13 Rabal Cañas).
#[test]
fn eu_non_renewal_before_the_agreed_end_counts_98_59_art_1_2_a() {
    let mut l = Ledger::default();
    l.at(5, Exit::Dismissal(None), "lyon", "FR", day(0));
    let ended = |l: &mut Ledger, end: Date| {
        let mut p = payload(l.next_id(), Exit::NonRenewal(false));
        if let Some(sep) = separation_mut(&mut p) {
            sep.contract_end = Some(end);
        }
        l.push(envelope(0, "acme", "lyon", "FR", day(0), p))
    };
    let early: Vec<EventId> = (0..3).map(|_| ended(&mut l, day(60))).collect();
    let expired: Vec<EventId> = (0..2).map(|_| ended(&mut l, day(0))).collect();
    let all = l.evaluate(&packs(&["EU-9859-30D"]), &Fixed(50), day(0));
    let s = find(
        &all,
        "EU-9859-30D",
        "lyon",
        "rolling-30",
        CountType::Assimilated,
    );
    assert_eq!(s.count, 8, "5 redundancies + 3 ended before the agreed end");
    assert!(early.iter().all(|id| s.event_ids.contains(id)));
    for id in &expired {
        let x = s
            .excluded
            .iter()
            .find(|x| x.event_id == *id)
            .expect("listed");
        assert!(x.reason.contains("agreed date"), "{}", x.reason);
    }
}

/// Given 12 notices given on day 20 of a plan notified to the Agentur für Arbeit on day 10, six
/// taking effect on day 35 and six on day 80, then the notification is on time (before the
/// notices) and the DE row shows the end of the §18(1) KSchG block, one month after the
/// notification (2026-02-11), listing the six dismissals that take effect before it.
#[test]
fn de_kschg_18_dismissals_take_effect_a_month_after_notification() {
    let mut l = Ledger::default();
    let mut early = Vec::new();
    for effective in [day(35), day(80)] {
        for _ in 0..6 {
            let id = de_exit(&mut l, Exit::Dismissal(None), day(20), effective);
            l.separations.last_mut().unwrap().0.correlation_id = Some("PLAN-1".into());
            if effective == day(35) {
                early.push(id);
            }
        }
    }
    l.step("AuthorityReported", "acme", "werk-1", day(10));
    let all = l.evaluate(&packs(&["DE-KSchG-17"]), &Fixed(50), day(80));
    let s = find(
        &all,
        "DE-KSchG-17",
        "werk-1",
        "rolling-30",
        CountType::Strict,
    );
    assert_eq!((s.count, s.level), (12, Some(AlertLevel::Met)));
    let notify = s
        .steps
        .iter()
        .find(|c| c.event_type == wfl_domain::EventType::AuthorityReported)
        .unwrap();
    assert_eq!(notify.state, StepState::OnTime);
    assert_eq!(notify.earliest_effective, Some(day(41)));
    assert_eq!(Date::parse("2026-02-11").unwrap(), day(41));
    let mut too_early = notify.effective_too_early.clone();
    too_early.sort_unstable();
    early.sort_unstable();
    assert_eq!(too_early, early);
    assert!(s
        .missing_steps
        .iter()
        .any(|m| m.contains("6 separation(s) of plan PLAN-1 take effect before 2026-02-11")));
}

/// Given a fixed-term contract hired to end on day 30 and renewed on day 20 to end on day 200,
/// when the employer ends it on day 40 with a non-renewal that states no end date, then the EU
/// count takes the agreed end from the worker's hire and renewal (through
/// `Population::worker`): the contract ends before its expiry and counts (Directive 98/59/EC
/// Art. 1(2)(a)); without the renewal it ends after the agreed date and is left out.
#[test]
fn eu_agreed_end_comes_from_the_hire_and_its_renewals_98_59_art_1_2_a() {
    use wfl_projections::views::Projection;
    let count = |renewed: bool| {
        let mut p = Projection::new();
        let mut seq = 0u64;
        let mut rec = |p: &mut Projection, on: Date, payload: Payload| {
            seq += 1;
            let e = envelope(seq as usize, "acme", "lyon", "FR", on, payload);
            p.apply(seq, &e);
            e.event_id
        };
        for k in 0..5 {
            rec(&mut p, day(0), baseline_hire(&format!("w{k}"), 40));
        }
        let mut fixed = baseline_hire("f0", 40);
        if let Payload::WorkerHired(h) = &mut fixed {
            h.contract_type = ContractType::FixedTerm;
            h.contract_end = Some(day(30));
        }
        rec(&mut p, day(0), fixed);
        if renewed {
            rec(
                &mut p,
                day(20),
                Payload::ContractRenewed(wfl_domain::ContractRenewed {
                    worker_ref: WorkerRef("f0".into()),
                    new_contract_end: Some(day(200)),
                    consecutive_fixed_terms: Some(2),
                }),
            );
        }
        for k in 0..5 {
            rec(&mut p, day(40), payload(k, Exit::Dismissal(None)));
        }
        let mut ended = payload(99, Exit::NonRenewal(false));
        if let Some(sep) = separation_mut(&mut ended) {
            sep.worker_ref = WorkerRef("f0".into());
        }
        let ended = rec(&mut p, day(40), ended);
        let acme = OrgId("acme".into());
        let records = p.countable_records(Some(&acme));
        let seps: Vec<Separation<'_>> = records.iter().map(Separation::from).collect();
        let all = rules::evaluate(&packs(&["EU-9859-30D"]), &seps, &[], &[], &p, day(40));
        let s = find(
            &all,
            "EU-9859-30D",
            "lyon",
            "rolling-30",
            CountType::Assimilated,
        );
        (s.count, s.event_ids.contains(&ended))
    };
    assert_eq!(
        count(true),
        (6, true),
        "ended before the renewed end (day 200)"
    );
    assert_eq!(
        count(false),
        (5, false),
        "ended after the agreed end (day 30)"
    );
}
