//! The event envelope and every payload kind of the taxonomy (domain-rules.md §5).
//!
//! Events are immutable facts named in the past tense. Each separation carries its **legal form**
//! (`legal_ground`) and its **substance** (`initiator`, `reason_personal`, `position_closed`,
//! `ai_attributed`, cohort fields) as separate fields, because every jurisdiction counts a different
//! subset of them; the bucket is derived from those fields later, never from free text.

use crate::date::Date;
use crate::ids::{EventId, OrgId, SiteId, WorkerRef};
use serde::{Deserialize, Serialize};

/// One workforce event as submitted by a client (the ledger adds sequence, time and hashes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Client-chosen idempotency key.
    pub event_id: EventId,
    /// The legal entity (employer).
    pub org_id: OrgId,
    /// The establishment; rule packs count per site where the law does.
    pub site_id: SiteId,
    /// ISO 3166-1 alpha-2, optionally with a subdivision: `CN`, `CN-33`, `US-CA`, `DE`.
    pub jurisdiction: String,
    /// The day the event took (or takes) legal effect.
    pub effective_date: Date,
    /// Where the fact comes from.
    pub source: Source,
    /// The restructuring plan or decision this event belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// The event (or external reference) that caused this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<String>,
    /// Envelope schema version; see [`crate::SCHEMA_VERSION`].
    #[serde(default = "default_schema_version")]
    pub schema_version: u32,
    /// How the fact is known.
    #[serde(default)]
    pub evidence_confidence: EvidenceConfidence,
    /// Optimistic concurrency: the number of events already committed for this worker. Only for
    /// payloads that name a worker; a mismatch is refused with `ABORTED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<u64>,
    /// What happened.
    pub payload: Payload,
}

fn default_schema_version() -> u32 {
    crate::SCHEMA_VERSION
}

/// The system and reference an event was taken from (e.g. `workday`, `TERM-2026-0042`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub system: String,
    #[serde(default)]
    pub reference: String,
}

macro_rules! code_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $code:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stable snake_case name used in JSON and reports.
            #[must_use]
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $code),+ }
            }

            /// The value for a snake_case name.
            #[must_use]
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($code => Some($name::$variant),)+ _ => None }
            }
        }
    };
}

code_enum!(
    /// How the fact is known (domain-rules.md §5.2 `evidence_confidence`).
    EvidenceConfidence { Reported = "reported", Filed = "filed", Inferred = "inferred" }
);

#[allow(clippy::derivable_impls)] // the enum is macro-generated
impl Default for EvidenceConfidence {
    fn default() -> Self {
        Self::Reported
    }
}

code_enum!(
    /// Whose employee the worker is. Dispatched workers and contractors are not the host's staff.
    EmploymentRelationship { Employee = "employee", Dispatched = "dispatched", Contractor = "contractor", Intern = "intern" }
);
code_enum!(
    /// The contract the worker holds.
    ContractType { OpenEnded = "open_ended", FixedTerm = "fixed_term", Task = "task", PartTime = "part_time" }
);
code_enum!(
    /// The cohorts whose exposure to reductions the views compare.
    Cohort {
        GraduateTrainee = "graduate_trainee",
        EntryLevel = "entry_level",
        Experienced = "experienced",
        Senior = "senior",
        TemporaryProject = "temporary_project"
    }
);
code_enum!(
    /// Who ended the relationship, in substance.
    Initiator { Employee = "employee", Employer = "employer", Mutual = "mutual", External = "external" }
);
code_enum!(
    /// Whether AI was given as the reason: cited by the employer, inferred by an analyst, or not at all.
    AiAttribution { None = "none", CitedByEmployer = "cited_by_employer", Inferred = "inferred" }
);

#[allow(clippy::derivable_impls)] // the enum is macro-generated
impl Default for AiAttribution {
    fn default() -> Self {
        Self::None
    }
}

code_enum!(
    /// What happens to the position a separated worker leaves.
    BackfillStatus { Unknown = "unknown", Planned = "planned", Filled = "filled", NotPlanned = "not_planned" }
);

#[allow(clippy::derivable_impls)] // the enum is macro-generated
impl Default for BackfillStatus {
    fn default() -> Self {
        Self::Unknown
    }
}

code_enum!(
    /// The renewal terms an employer offered at the end of a fixed-term contract (CN LCL Art. 46(5)).
    OfferTerms { SameOrBetter = "same_or_better", Worse = "worse", NoOffer = "no_offer" }
);
code_enum!(
    /// Statutory retirement or an early-retirement incentive.
    RetirementType { Statutory = "statutory", EarlyIncentive = "early_incentive" }
);
code_enum!(
    /// The adverse change a worker refused before leaving.
    ChangeType { Pay = "pay", Location = "location", Hours = "hours", Role = "role" }
);
code_enum!(
    /// What an AI-usage measurement counts. Tokens are an activity metric, not adoption.
    AiMetric { ActiveUsers = "active_users", Tokens = "tokens" }
);

/// The worker profile given when a worker is hired or loaded into the baseline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerHired {
    pub worker_ref: WorkerRef,
    pub employment_relationship: EmploymentRelationship,
    pub contract_type: ContractType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cohort: Option<Cohort>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position_id: Option<String>,
    /// True when this event loads opening headcount rather than recording a new hire.
    #[serde(default)]
    pub baseline: bool,
    /// Average weekly hours worked (whole hours, rounded down), for the WARN part-time test
    /// (20 CFR 639.3(h): fewer than 20 hours a week on average).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avg_weekly_hours: Option<u32>,
    /// Months employed in the 12 months before the effective date (for a baseline load; a new hire
    /// has 0), for the WARN part-time test (20 CFR 639.3(h): fewer than 6 of the last 12 months).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub months_employed_last_12: Option<u32>,
    /// The agreed end of a fixed-term or task contract; none for an open-ended one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_end: Option<Date>,
}

/// A fixed-term contract renewed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractRenewed {
    pub worker_ref: WorkerRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_contract_end: Option<Date>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_fixed_terms: Option<u32>,
}

/// Graduate intake planned for a cohort year, against a baseline (prior cohort or plan).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraduateIntake {
    pub cohort_year: u32,
    pub planned: u32,
    pub baseline: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual: Option<u32>,
}

/// Requisitions frozen or cancelled in an org unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HiringPaused {
    pub scope: String,
    #[serde(default)]
    pub reqs_frozen: u32,
    #[serde(default)]
    pub reqs_cancelled: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Date>,
}

/// Hiring reopened in an org unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HiringResumed {
    pub scope: String,
    #[serde(default)]
    pub reqs_reopened: u32,
}

/// A position was re-filled (or closed); names the separation it re-classifies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PositionChange {
    pub position_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linked_separation_id: Option<EventId>,
}

/// A monetary amount in minor units (cents, fen) and an ISO 4217 currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    pub amount_minor: i64,
    pub currency: String,
}

/// The fields every separation carries: who left, under which legal form, and in substance why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Separation {
    pub worker_ref: WorkerRef,
    pub employment_relationship: EmploymentRelationship,
    pub contract_type: ContractType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cohort: Option<Cohort>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position_id: Option<String>,
    /// The post is closed: nobody will replace the worker.
    #[serde(default)]
    pub position_closed: bool,
    #[serde(default)]
    pub backfill_status: BackfillStatus,
    pub initiator: Initiator,
    /// Conduct, capability or health (true) versus business reasons (false).
    #[serde(default)]
    pub reason_personal: bool,
    /// The legal form, as a jurisdiction code: `CN-LCL-41`, `CN-LCL-40-3`, `CN-LCL-44-1`, `US-INVOL-RIF`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legal_ground: Option<String>,
    #[serde(default)]
    pub ai_attributed: AiAttribution,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ai_system: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenure_months: Option<u32>,
    /// CN LCL Art. 42 categories (`CN-LCL-42-4`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub protected_flags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severance: Option<Money>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice_given_on: Option<Date>,
    /// Average weekly hours worked (whole hours, rounded down) over the shorter of the worker's
    /// tenure or the last 90 days: the WARN part-time test (20 CFR 639.3(h)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avg_weekly_hours: Option<u32>,
    /// Months employed in the 12 months before notice was due: the WARN part-time test (fewer
    /// than 6 of the last 12 months, 20 CFR 639.3(h)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub months_employed_last_12: Option<u32>,
    /// The agreed end of a fixed-term or task contract (none for an open-ended one). A contract
    /// ended before it is not an expiry: Directive 98/59/EC Art. 1(2)(a) leaves out fixed-term
    /// contracts ending on their agreed date, "except where [the redundancies] take place before
    /// the expiry".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_end: Option<Date>,
}

/// A fixed-term contract ended at expiry without renewal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractNotRenewed {
    pub separation: Separation,
    #[serde(default)]
    pub renewal_offered: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer_terms: Option<OfferTerms>,
    #[serde(default)]
    pub employee_refused: bool,
    /// Renewal would have made the contract open-ended (CN LCL Art. 14(3)).
    #[serde(default)]
    pub would_trigger_open_ended: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_fixed_terms: Option<u32>,
}

/// A formal economic dismissal / redundancy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EconomicDismissal {
    pub separation: Separation,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection_criteria: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_id: Option<String>,
}

/// A role or task set taken over by an AI system, with or without a separated worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleAutomated {
    pub role_id: String,
    pub ai_system: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub separation: Option<Separation>,
    #[serde(default)]
    pub retraining_offered: bool,
    #[serde(default)]
    pub redeployment_offered: bool,
}

/// A mutual termination the employer proposed (CN LCL Art. 36 with Art. 46(2) severance).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MutualTerminationEmployerProposed {
    pub separation: Separation,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<Money>,
}

/// The worker refused an adverse change (pay cut, relocation...) and left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdverseChangeRefusedExit {
    pub separation: Separation,
    pub change_type: ChangeType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_magnitude_pct: Option<u32>,
}

/// The worker resigned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resignation {
    pub separation: Separation,
    #[serde(default)]
    pub regrettable: bool,
    /// Pressured to resign (a soft exit the employer influenced).
    #[serde(default)]
    pub pressured: bool,
}

/// The worker retired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retirement {
    pub separation: Separation,
    pub retirement_type: RetirementType,
}

/// Dismissal for conduct or capability.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DismissalForCause {
    pub separation: Separation,
    pub cause_code: String,
    /// Summary (immediate) dismissal without notice (DE: fristlose Kündigung, KSchG §17(4) s.2:
    /// not counted as a notifiable dismissal). False: an ordinary dismissal with notice.
    #[serde(default)]
    pub summary: bool,
}

/// The worker died or left through disability (JOLTS "other separations"; counted by no rule pack).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeathOrDisability {
    pub separation: Separation,
    /// True: disability; false: death.
    #[serde(default)]
    pub disability: bool,
}

/// A contractor released, or a dispatched worker returned to the agency (host-side view).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgencyRelease {
    pub separation: Separation,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agency_id: Option<String>,
    /// The ground relied on, e.g. `CN-DISPATCH-12`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ground: Option<String>,
}

/// A temporary layoff; the worker stays employed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemporaryLayoff {
    pub worker_ref: WorkerRef,
    pub expected_duration_days: u32,
    #[serde(default)]
    pub recall_expected: bool,
}

/// Weekly hours cut; the worker stays employed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoursReduced {
    pub worker_ref: WorkerRef,
    pub hours_before: u32,
    pub hours_after: u32,
    #[serde(default)]
    pub expected_months: u32,
}

/// A site of employment (or a facility or operating unit within it) shut down, permanently or
/// temporarily, on the event's effective date; the event's `site_id` is the site. Employment
/// losses at the site around it are a WARN plant closing rather than a mass layoff
/// (29 USC 2101(a)(2)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteClosed {
    /// The facility or operating unit within the site that shuts; `None`: the whole site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operating_unit: Option<String>,
    /// A temporary shutdown (still a plant closing under WARN); false: permanent.
    #[serde(default)]
    pub temporary: bool,
}

/// All or substantially all of a site's operations moved away on the event's effective date
/// (NY Labor Law §860-a: 50 miles or more; Cal. Lab. Code §1400.5: 100 miles or more).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteRelocated {
    /// Where the operations go, when it is a site of the same employer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_site: Option<SiteId>,
    /// How far the operations move, in whole kilometres (at least 1).
    pub distance_km: u32,
}

/// A restructuring plan; other events link to it with `correlation_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestructuringPlanAnnounced {
    pub plan_id: String,
    /// Ground codes, e.g. `CN-LCL-41-3`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stated_grounds: Vec<String>,
    #[serde(default)]
    pub planned_count: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub units: Vec<String>,
}

/// A compliance step: union briefed, authority reported, WARN notice filed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComplianceStep {
    pub plan_id: String,
    #[serde(default)]
    pub recipient: String,
    #[serde(default)]
    pub document_ref: String,
    /// NY WARN's "technological innovation or automation" checkbox.
    #[serde(default)]
    pub ai_checkbox: bool,
}

/// A worker moved inside the entity; the worker stays employed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InternalRedeployment {
    pub worker_ref: WorkerRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_position: Option<String>,
    pub to_position: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_site: Option<SiteId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_site: Option<SiteId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distance_km: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pay_change_pct: Option<i32>,
    #[serde(default = "yes")]
    pub accepted: bool,
}

fn yes() -> bool {
    true
}

/// An AI tool made available in an org unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AiToolRolledOut {
    pub tool: String,
    pub scope: String,
    #[serde(default)]
    pub mandatory: bool,
}

/// AI usage in an org unit over a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AiUsageMeasured {
    pub scope: String,
    pub period_start: Date,
    pub period_end: Date,
    pub metric: AiMetric,
    pub value: u64,
    /// Headcount the value is measured against (for `active_users`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub population: Option<u64>,
    #[serde(default)]
    pub used_in_performance_review: bool,
}

/// A correction: the named event is to be read with this replacement payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventCorrected {
    pub original_event_id: EventId,
    pub reason: String,
    pub replacement: Box<Payload>,
}

/// A retraction: the named event is to be treated as never having happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRetracted {
    pub original_event_id: EventId,
    pub reason: String,
}

macro_rules! payloads {
    ($($variant:ident($ty:ty) = $field:literal, $code:literal;)+) => {
        /// What happened. The JSON form is internally tagged: `{"type": "ContractNotRenewed", ...}`.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(tag = "type")]
        pub enum Payload {
            $($variant($ty)),+
        }

        /// The kind of a payload, without its data. Names are the API's (design.md "Events").
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum EventType {
            $($variant),+
        }

        impl EventType {
            /// Every event type, in declaration order.
            pub const ALL: &'static [EventType] = &[$(EventType::$variant),+];

            /// The PascalCase name, as used in NATS subjects and filters.
            #[must_use]
            pub fn as_str(self) -> &'static str {
                match self { $(EventType::$variant => stringify!($variant)),+ }
            }

            /// The snake_case field name of this kind in the protobuf `Payload` oneof.
            #[must_use]
            pub fn field_name(self) -> &'static str {
                match self { $(EventType::$variant => $field),+ }
            }

            /// A stable small number for compact indexes (never reused).
            #[must_use]
            pub fn code(self) -> u16 {
                match self { $(EventType::$variant => $code),+ }
            }

            /// The type for a PascalCase or snake_case name.
            #[must_use]
            pub fn parse(s: &str) -> Option<Self> {
                match s { $(stringify!($variant) | $field => Some(EventType::$variant),)+ _ => None }
            }
        }

        impl Payload {
            /// The kind of this payload.
            #[must_use]
            pub fn event_type(&self) -> EventType {
                match self { $(Payload::$variant(_) => EventType::$variant),+ }
            }
        }
    };
}

// The kinds carrying a separation block (and the redeployment) are boxed: their data is two to
// three times a hire's, and unboxed they would make every payload (and every event held, moved
// or folded) their size. Boxed, a `Payload` is the size of a hire's.
payloads! {
    WorkerHired(WorkerHired) = "worker_hired", 1;
    ContractRenewed(ContractRenewed) = "contract_renewed", 2;
    GraduateIntakeSet(GraduateIntake) = "graduate_intake_set", 3;
    GraduateIntakeReduced(GraduateIntake) = "graduate_intake_reduced", 4;
    HiringPaused(HiringPaused) = "hiring_paused", 5;
    HiringResumed(HiringResumed) = "hiring_resumed", 6;
    PositionBackfilled(PositionChange) = "position_backfilled", 7;
    ContractNotRenewed(Box<ContractNotRenewed>) = "contract_not_renewed", 8;
    EconomicDismissal(Box<EconomicDismissal>) = "economic_dismissal", 9;
    RoleAutomated(Box<RoleAutomated>) = "role_automated", 10;
    MutualTerminationEmployerProposed(Box<MutualTerminationEmployerProposed>) = "mutual_termination_employer_proposed", 11;
    AdverseChangeRefusedExit(Box<AdverseChangeRefusedExit>) = "adverse_change_refused_exit", 12;
    Resignation(Box<Resignation>) = "resignation", 13;
    Retirement(Box<Retirement>) = "retirement", 14;
    DismissalForCause(Box<DismissalForCause>) = "dismissal_for_cause", 15;
    ContractorReleased(Box<AgencyRelease>) = "contractor_released", 16;
    DispatchedWorkerReturned(Box<AgencyRelease>) = "dispatched_worker_returned", 17;
    TemporaryLayoff(TemporaryLayoff) = "temporary_layoff", 18;
    HoursReduced(HoursReduced) = "hours_reduced", 19;
    RestructuringPlanAnnounced(RestructuringPlanAnnounced) = "restructuring_plan_announced", 20;
    UnionBriefed(ComplianceStep) = "union_briefed", 21;
    AuthorityReported(ComplianceStep) = "authority_reported", 22;
    WarnNoticeFiled(ComplianceStep) = "warn_notice_filed", 23;
    InternalRedeployment(Box<InternalRedeployment>) = "internal_redeployment", 24;
    PositionClosed(PositionChange) = "position_closed", 25;
    AiToolRolledOut(AiToolRolledOut) = "ai_tool_rolled_out", 26;
    AiUsageMeasured(AiUsageMeasured) = "ai_usage_measured", 27;
    EventCorrected(EventCorrected) = "event_corrected", 28;
    EventRetracted(EventRetracted) = "event_retracted", 29;
    DeathOrDisability(Box<DeathOrDisability>) = "death_or_disability", 30;
    SiteClosed(SiteClosed) = "site_closed", 31;
    SiteRelocated(SiteRelocated) = "site_relocated", 32;
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an event does to a worker's employment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleEffect {
    /// The worker becomes employed (hire or baseline load).
    Hire,
    /// The worker stops being employed.
    Separate,
    /// The worker must be employed and stays employed (renewal, redeployment, hours cut...).
    Touch,
}

impl Payload {
    /// The separation block, for payloads that end a worker's employment.
    #[must_use]
    pub fn separation(&self) -> Option<&Separation> {
        match self {
            Payload::ContractNotRenewed(p) => Some(&p.separation),
            Payload::EconomicDismissal(p) => Some(&p.separation),
            Payload::RoleAutomated(p) => p.separation.as_ref(),
            Payload::MutualTerminationEmployerProposed(p) => Some(&p.separation),
            Payload::AdverseChangeRefusedExit(p) => Some(&p.separation),
            Payload::Resignation(p) => Some(&p.separation),
            Payload::Retirement(p) => Some(&p.separation),
            Payload::DismissalForCause(p) => Some(&p.separation),
            Payload::DeathOrDisability(p) => Some(&p.separation),
            Payload::ContractorReleased(p) | Payload::DispatchedWorkerReturned(p) => {
                Some(&p.separation)
            }
            _ => None,
        }
    }

    /// The worker this payload is about, and what it does to their employment.
    #[must_use]
    pub fn worker_effect(&self) -> Option<(&WorkerRef, LifecycleEffect)> {
        if let Some(s) = self.separation() {
            return Some((&s.worker_ref, LifecycleEffect::Separate));
        }
        match self {
            Payload::WorkerHired(p) => Some((&p.worker_ref, LifecycleEffect::Hire)),
            Payload::ContractRenewed(p) => Some((&p.worker_ref, LifecycleEffect::Touch)),
            Payload::TemporaryLayoff(p) => Some((&p.worker_ref, LifecycleEffect::Touch)),
            Payload::HoursReduced(p) => Some((&p.worker_ref, LifecycleEffect::Touch)),
            Payload::InternalRedeployment(p) => Some((&p.worker_ref, LifecycleEffect::Touch)),
            _ => None,
        }
    }
}

impl Event {
    /// The kind of this event.
    #[must_use]
    pub fn event_type(&self) -> EventType {
        self.payload.event_type()
    }
}
