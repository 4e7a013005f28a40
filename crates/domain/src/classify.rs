//! Classification of one event into a bucket (domain-rules.md §5.1/§5.2): formal layoff, gradual
//! attrition, neutral, or signal, with the mechanism, whether the employer influenced the exit, and
//! its AI attribution.
//!
//! This module owns the mapping from an event's *fields* (legal form plus substance: initiator,
//! position closed or back-filled, pressure, who refused a renewal) to its bucket. It must never read
//! free text (`cause_code`, `reason`, `legal_ground` descriptions), keep state, or know about
//! jurisdictions: per-law counting is the rule packs' job. Links from later events (a
//! `PositionBackfilled` or `PositionClosed` naming the separation) are passed in by the caller.

use crate::{AiAttribution, BackfillStatus, Initiator, Payload, RetirementType, Separation};
use serde::{Deserialize, Serialize};

/// The bucket an event falls into (domain-rules.md §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bucket {
    /// Employer-initiated termination for reasons not related to the individual, carried out as (or
    /// legally equivalent to) a redundancy.
    FormalLayoff,
    /// Headcount reduction through exits that are not formal layoffs: closed-position exits and
    /// employer-influenced soft exits.
    GradualAttrition,
    /// Back-filled exits, dismissals for cause, and non-separation events that do not move inflow.
    Neutral,
    /// A non-separation event that affects inflow or AI adoption (hiring, AI, hours, temporary layoff).
    Signal,
}

impl Bucket {
    /// Every bucket, in declaration order.
    pub const ALL: &'static [Bucket] = &[
        Bucket::FormalLayoff,
        Bucket::GradualAttrition,
        Bucket::Neutral,
        Bucket::Signal,
    ];

    /// The stable snake_case name used in JSON and reports.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::FormalLayoff => "formal_layoff",
            Bucket::GradualAttrition => "gradual_attrition",
            Bucket::Neutral => "neutral",
            Bucket::Signal => "signal",
        }
    }

    /// Whether exits in this bucket reduce headcount in substance (formal layoff or gradual attrition).
    #[must_use]
    pub fn is_reduction(self) -> bool {
        matches!(self, Bucket::FormalLayoff | Bucket::GradualAttrition)
    }
}

/// How a separation happened, one level finer than the event type where the bucket depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mechanism {
    /// `EconomicDismissal`.
    EconomicDismissal,
    /// `RoleAutomated` that separated a worker.
    RoleAutomated,
    /// `ContractNotRenewed` (employer declined, or employee refused: see `employer_influenced`).
    ContractNotRenewed,
    /// `MutualTerminationEmployerProposed`.
    MutualTermination,
    /// `AdverseChangeRefusedExit`.
    AdverseChangeExit,
    /// An unpressured resignation whose position stays open (ordinary churn).
    Resignation,
    /// An unpressured resignation whose position is closed or not back-filled.
    NonBackfilledResignation,
    /// A resignation the employer pressured (or initiated in substance).
    PressuredResignation,
    /// `Retirement` (statutory or incentive; an incentive is employer-influenced).
    Retirement,
    /// `DismissalForCause`.
    DismissalForCause,
    /// `ContractorReleased` (host-side line: not the host's employee).
    ContractorReleased,
    /// `DispatchedWorkerReturned` (host-side line: not the host's employee).
    DispatchedReturned,
    /// `DeathOrDisability` (JOLTS "other separations"; neutral).
    DeathOrDisability,
    /// `TemporaryLayoff`: a formal layoff, temporary (domain-rules §5.2); the worker stays
    /// employed, so it is not an exit and not in the headcount flows.
    TemporaryLayoff,
}

impl Mechanism {
    /// Every mechanism, in declaration order.
    pub const ALL: &'static [Mechanism] = &[
        Mechanism::EconomicDismissal,
        Mechanism::RoleAutomated,
        Mechanism::ContractNotRenewed,
        Mechanism::MutualTermination,
        Mechanism::AdverseChangeExit,
        Mechanism::Resignation,
        Mechanism::NonBackfilledResignation,
        Mechanism::PressuredResignation,
        Mechanism::Retirement,
        Mechanism::DismissalForCause,
        Mechanism::ContractorReleased,
        Mechanism::DispatchedReturned,
        Mechanism::DeathOrDisability,
        Mechanism::TemporaryLayoff,
    ];

    /// The stable snake_case name used in JSON and reports.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Mechanism::EconomicDismissal => "economic_dismissal",
            Mechanism::RoleAutomated => "role_automated",
            Mechanism::ContractNotRenewed => "contract_not_renewed",
            Mechanism::MutualTermination => "mutual_termination",
            Mechanism::AdverseChangeExit => "adverse_change_exit",
            Mechanism::Resignation => "resignation",
            Mechanism::NonBackfilledResignation => "non_backfilled_resignation",
            Mechanism::PressuredResignation => "pressured_resignation",
            Mechanism::Retirement => "retirement",
            Mechanism::DismissalForCause => "dismissal_for_cause",
            Mechanism::ContractorReleased => "contractor_released",
            Mechanism::DispatchedReturned => "dispatched_returned",
            Mechanism::DeathOrDisability => "death_or_disability",
            Mechanism::TemporaryLayoff => "temporary_layoff",
        }
    }
}

/// What an event counts as in the views.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Classification {
    pub bucket: Bucket,
    /// The employer initiated or pushed the exit in substance (non-renewal it declined, a mutual
    /// termination it proposed, pressure, an early-retirement incentive, a contractor release, any
    /// formal layoff). A fact about the exit, kept even when a back-fill makes the bucket neutral.
    /// Always false for non-separation events.
    pub employer_influenced: bool,
    /// `None` for events that separate nobody.
    pub mechanism: Option<Mechanism>,
    /// AI attribution of the separation; `RoleAutomated` counts as cited by the employer when the
    /// event gives none. `None` for other non-separation events.
    pub ai: AiAttribution,
    /// Nobody will replace the worker: the payload says the position is closed or its back-fill is
    /// not planned, or a later `PositionClosed` names the separation (and no later back-fill does).
    pub position_closed: bool,
    /// The position was re-filled: a later `PositionBackfilled` names the separation, or the
    /// payload says the back-fill is done, and no later `PositionClosed` overrides it. Never set
    /// together with `position_closed`.
    pub backfilled: bool,
}

/// Classifies an event from its fields only (legal form and substance), never from free text.
///
/// `backfilled`: a later `PositionBackfilled` names this separation; `closed`: a later
/// `PositionClosed` does. Links are later knowledge, so they override the payload's own
/// `position_closed` / `backfill_status`; if both are set, the back-fill wins (the position was
/// filled, so the exit did not reduce headcount). Both are ignored for non-separations.
///
/// Rules, for separations: economic dismissal, role automated (with a separated worker) and a refused
/// adverse change are formal layoffs; an employer-proposed mutual termination, an employer-declined
/// non-renewal, a pressured resignation and a contractor or dispatched-worker release are gradual
/// attrition influenced by the employer; an unpressured resignation, a non-renewal the employee
/// refused and a retirement are gradual attrition when the position is closed and neutral
/// otherwise; a dismissal for cause is neutral. A back-filled exit is neutral unless it is a formal
/// layoff. A temporary layoff is a formal layoff, temporary (mechanism `temporary_layoff`,
/// employer-influenced), though the worker stays employed. Other non-separations are signals
/// (hiring, inflow, AI, hours) or neutral (renewals, links, plans, site closings and relocations,
/// compliance, redeployment, corrections).
#[must_use]
pub fn classify(payload: &Payload, backfilled: bool, closed: bool) -> Classification {
    let Some(sep) = payload.separation() else {
        return non_separation(payload);
    };
    let (backfilled, position_closed) = position_state(sep, backfilled, closed);
    // Whether the exit reduces headcount only if nobody replaces the worker.
    let if_closed = if position_closed {
        Bucket::GradualAttrition
    } else {
        Bucket::Neutral
    };
    let (bucket, employer_influenced, mechanism) = match payload {
        Payload::EconomicDismissal(_) => (Bucket::FormalLayoff, true, Mechanism::EconomicDismissal),
        Payload::RoleAutomated(_) => (Bucket::FormalLayoff, true, Mechanism::RoleAutomated),
        Payload::AdverseChangeRefusedExit(_) => {
            (Bucket::FormalLayoff, true, Mechanism::AdverseChangeExit)
        }
        Payload::MutualTerminationEmployerProposed(_) => {
            (Bucket::GradualAttrition, true, Mechanism::MutualTermination)
        }
        Payload::ContractNotRenewed(p) => {
            // An employee who refuses the renewal leaves on their own initiative (a quit in JOLTS
            // terms), so it is attrition only if the position goes with them.
            if p.employee_refused || sep.initiator == Initiator::Employee {
                (if_closed, false, Mechanism::ContractNotRenewed)
            } else {
                (
                    Bucket::GradualAttrition,
                    true,
                    Mechanism::ContractNotRenewed,
                )
            }
        }
        Payload::Resignation(p) => {
            if p.pressured || sep.initiator == Initiator::Employer {
                (
                    Bucket::GradualAttrition,
                    true,
                    Mechanism::PressuredResignation,
                )
            } else if position_closed {
                (
                    Bucket::GradualAttrition,
                    false,
                    Mechanism::NonBackfilledResignation,
                )
            } else {
                (Bucket::Neutral, false, Mechanism::Resignation)
            }
        }
        Payload::Retirement(p) => (
            if_closed,
            p.retirement_type == RetirementType::EarlyIncentive,
            Mechanism::Retirement,
        ),
        Payload::DismissalForCause(_) => (Bucket::Neutral, false, Mechanism::DismissalForCause),
        Payload::DeathOrDisability(_) => (Bucket::Neutral, false, Mechanism::DeathOrDisability),
        Payload::ContractorReleased(_) => (
            Bucket::GradualAttrition,
            true,
            Mechanism::ContractorReleased,
        ),
        Payload::DispatchedWorkerReturned(_) => (
            Bucket::GradualAttrition,
            true,
            Mechanism::DispatchedReturned,
        ),
        // `Payload::separation` is `Some` only for the kinds above; keep a safe answer anyway.
        _ => return non_separation(payload),
    };
    let bucket = if backfilled && bucket == Bucket::GradualAttrition {
        Bucket::Neutral
    } else {
        bucket
    };
    let ai = match (payload, sep.ai_attributed) {
        (Payload::RoleAutomated(_), AiAttribution::None) => AiAttribution::CitedByEmployer,
        (_, ai) => ai,
    };
    Classification {
        bucket,
        employer_influenced,
        mechanism: Some(mechanism),
        ai,
        position_closed,
        backfilled,
    }
}

/// (back-filled, closed) after applying later links over the payload's own fields.
fn position_state(sep: &Separation, backfilled: bool, closed: bool) -> (bool, bool) {
    if backfilled {
        (true, false)
    } else if closed {
        (false, true)
    } else {
        let closed = sep.position_closed || sep.backfill_status == BackfillStatus::NotPlanned;
        (
            sep.backfill_status == BackfillStatus::Filled && !closed,
            closed,
        )
    }
}

fn non_separation(payload: &Payload) -> Classification {
    if let Payload::TemporaryLayoff(_) = payload {
        // A formal layoff, temporary (domain-rules §5.2), as the WARN packs count it: classified
        // with the formal layoffs so the views and the watch agree on what it is.
        return Classification {
            bucket: Bucket::FormalLayoff,
            employer_influenced: true,
            mechanism: Some(Mechanism::TemporaryLayoff),
            ai: AiAttribution::None,
            position_closed: false,
            backfilled: false,
        };
    }
    let (bucket, ai) = match payload {
        Payload::RoleAutomated(_) => (Bucket::Signal, AiAttribution::CitedByEmployer),
        Payload::WorkerHired(_)
        | Payload::GraduateIntakeSet(_)
        | Payload::GraduateIntakeReduced(_)
        | Payload::HiringPaused(_)
        | Payload::HiringResumed(_)
        | Payload::TemporaryLayoff(_) // handled above
        | Payload::HoursReduced(_)
        | Payload::AiToolRolledOut(_)
        | Payload::AiUsageMeasured(_) => (Bucket::Signal, AiAttribution::None),
        Payload::ContractRenewed(_)
        | Payload::PositionBackfilled(_)
        | Payload::PositionClosed(_)
        | Payload::RestructuringPlanAnnounced(_)
        | Payload::SiteClosed(_)
        | Payload::SiteRelocated(_)
        | Payload::UnionBriefed(_)
        | Payload::AuthorityReported(_)
        | Payload::WarnNoticeFiled(_)
        | Payload::InternalRedeployment(_)
        | Payload::EventCorrected(_)
        | Payload::EventRetracted(_)
        // Separations reach here only through the defensive arm of `classify`.
        | Payload::ContractNotRenewed(_)
        | Payload::EconomicDismissal(_)
        | Payload::MutualTerminationEmployerProposed(_)
        | Payload::AdverseChangeRefusedExit(_)
        | Payload::Resignation(_)
        | Payload::Retirement(_)
        | Payload::DismissalForCause(_)
        | Payload::DeathOrDisability(_)
        | Payload::ContractorReleased(_)
        | Payload::DispatchedWorkerReturned(_) => (Bucket::Neutral, AiAttribution::None),
    };
    Classification {
        bucket,
        employer_influenced: false,
        mechanism: None,
        ai,
        position_closed: false,
        backfilled: false,
    }
}
