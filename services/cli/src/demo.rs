//! `wfl demo`: a seeded, reproducible restructuring story recorded through the real gRPC API of a
//! node, then told from the views.
//!
//! Three employers in three jurisdictions, a baseline of thousands of workers and 18 months of
//! events (January 2025 to June 2026):
//!
//! - `cn-netco` (an internet firm in Hangzhou, `CN-33`): fixed-term non-renewals concentrated on
//!   graduate trainees and entry-level staff, a year-end wave of them with the posts closed, a
//!   graduate-intake cut, a hiring pause, departures not back-filled, contractors released, roles
//!   automated by an AI coding tool (some with separations) and AI usage rising. No restructuring
//!   plan, no union briefing, no report to the authority: the quiet reduction reaches the size of
//!   an Art. 41 economic layoff with no formal procedure.
//! - `us-freight` (a distribution centre in California, `US-CA`): the one formal layoff, a
//!   reduction in force announced as a plan with its WARN notice filed 62 days before the
//!   dismissals.
//! - `de-maschinen` (an establishment in Munich, `DE`): non-renewals of fixed-term contracts,
//!   a cluster of employer-induced termination agreements (Aufhebungsverträge), agency workers
//!   returned, AI roll-out.
//!
//! Owns: the scenario ([`scenario`], pure: a seed gives the same events, ids included), recording
//! it with `RecordBatch` at `COMMITTED`, and the story ([`Story`]) built from the JSON that `wfl
//! report` prints (the same [`crate::report::report`] calls). Must not read the store directly:
//! everything goes through the public API.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{anyhow, bail};
use serde_json::{json, Value};
use wfl_domain::{
    AgencyRelease, AiAttribution, AiMetric, AiToolRolledOut, AiUsageMeasured, BackfillStatus,
    Cohort, ComplianceStep, ContractNotRenewed, ContractType, Date, EconomicDismissal,
    EmploymentRelationship, Event, EventId, GraduateIntake, HiringPaused, Initiator,
    MutualTerminationEmployerProposed, OrgId, Payload, Resignation, RestructuringPlanAnnounced,
    Retirement, RetirementType, RoleAutomated, Separation, SiteId, Source, WorkerHired, WorkerRef,
};
use wfl_proto::pb;

use crate::client::{connect, describe_status, Format};
use crate::report::{self, Ask, View};

/// The orgs of the story: id, jurisdiction, what it is.
pub const ORGS: [(&str, &str, &str); 3] = [
    ("cn-netco", "CN-33", "internet firm, Hangzhou"),
    ("us-freight", "US-CA", "distribution centre, Fresno CA"),
    (
        "de-maschinen",
        "DE",
        "machine-building establishment, Munich",
    ),
];

/// Months of events after the baseline.
pub const MONTHS: u32 = 18;

/// The formal layoff's plan (US).
const US_PLAN: &str = "us-freight-rif-2026";

/// A small deterministic generator (SplitMix64): the same seed gives the same scenario on every
/// machine, with no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[derive(Debug, Clone)]
struct Worker {
    r: String,
    cohort: Cohort,
    relationship: EmploymentRelationship,
    contract: ContractType,
    site: &'static str,
}

struct Org {
    id: &'static str,
    jurisdiction: &'static str,
    sites: &'static [&'static str],
    /// Employed workers the story may still separate (hired before the current month).
    employed: Vec<Worker>,
    next: u32,
}

/// Builds the events of one scenario in recording order.
struct Builder {
    rng: Rng,
    events: Vec<Event>,
}

fn date(month: u32, day: u32) -> Date {
    let (y, m) = (2025 + (month / 12) as i32, month % 12 + 1);
    // The scenario only builds valid days (1..=28); the fallback is never taken.
    Date::from_ymd(y, m, day.clamp(1, 28)).unwrap_or_else(|_| Date::from_days(0))
}

impl Builder {
    fn envelope(&mut self, org: &Org, site: &str, on: Date, payload: Payload) -> Event {
        // A v7 id whose time is the effective day and whose random bits come from the seed: the
        // same scenario always has the same ids, so recording it twice is a no-op.
        let millis = u64::try_from(on.days()).unwrap_or(0) * 86_400_000;
        let mut random = [0u8; 10];
        random[..8].copy_from_slice(&self.rng.next().to_be_bytes());
        random[8..].copy_from_slice(&self.rng.next().to_be_bytes()[..2]);
        Event {
            event_id: EventId(
                uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid(),
            ),
            org_id: OrgId::from(org.id),
            site_id: SiteId::from(site),
            jurisdiction: org.jurisdiction.to_owned(),
            effective_date: on,
            source: Source {
                system: "wfl-demo".into(),
                reference: String::new(),
            },
            correlation_id: None,
            causation_id: None,
            schema_version: wfl_domain::SCHEMA_VERSION,
            evidence_confidence: wfl_domain::EvidenceConfidence::Reported,
            expected_version: None,
            payload,
        }
    }

    fn push(&mut self, org: &Org, site: &str, on: Date, payload: Payload) -> EventId {
        let e = self.envelope(org, site, on, payload);
        let id = e.event_id;
        self.events.push(e);
        id
    }

    /// Hires `n` workers of a kind (baseline loads when `baseline`), returning them.
    #[allow(clippy::too_many_arguments)]
    fn hire(
        &mut self,
        org: &mut Org,
        n: u32,
        cohort: Cohort,
        relationship: EmploymentRelationship,
        contract: ContractType,
        month: Option<u32>,
        out: &mut Vec<Worker>,
    ) {
        for _ in 0..n {
            org.next += 1;
            let site = org.sites[self.rng.below(org.sites.len() as u64) as usize];
            let w = Worker {
                r: format!("{}-{:05}", org.id, org.next),
                cohort,
                relationship,
                contract,
                site,
            };
            let (on, baseline) = match month {
                None => (date(0, 1).add_days(-1), true),
                Some(m) => (date(m, 1 + self.rng.below(28) as u32), false),
            };
            self.push(
                org,
                site,
                on,
                Payload::WorkerHired(WorkerHired {
                    worker_ref: WorkerRef(w.r.clone()),
                    employment_relationship: relationship,
                    contract_type: contract,
                    cohort: Some(cohort),
                    position_id: None,
                    baseline,
                    avg_weekly_hours: None,
                    months_employed_last_12: None,
                    contract_end: None,
                }),
            );
            out.push(w);
        }
    }

    /// Takes a random employed worker matching `pick`.
    fn take(&mut self, org: &mut Org, pick: impl Fn(&Worker) -> bool) -> Option<Worker> {
        let candidates: Vec<usize> = (0..org.employed.len())
            .filter(|i| pick(&org.employed[*i]))
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let i = candidates[self.rng.below(candidates.len() as u64) as usize];
        Some(org.employed.swap_remove(i))
    }

    fn day(&mut self, month: u32) -> Date {
        date(month, 1 + self.rng.below(28) as u32)
    }
}

/// The substance fields of a separation.
fn separation(w: &Worker, initiator: Initiator, closed: bool, ground: Option<&str>) -> Separation {
    Separation {
        worker_ref: WorkerRef(w.r.clone()),
        employment_relationship: w.relationship,
        contract_type: w.contract,
        cohort: Some(w.cohort),
        position_id: None,
        contract_end: None,
        position_closed: closed,
        backfill_status: if closed {
            BackfillStatus::NotPlanned
        } else {
            BackfillStatus::Planned
        },
        initiator,
        reason_personal: false,
        legal_ground: ground.map(str::to_owned),
        ai_attributed: AiAttribution::None,
        ai_system: None,
        tenure_months: None,
        protected_flags: Vec::new(),
        severance: None,
        notice_given_on: None,
        avg_weekly_hours: None,
        months_employed_last_12: None,
    }
}

fn is_contract_cohort(w: &Worker) -> bool {
    w.relationship == EmploymentRelationship::Employee
        && w.contract == ContractType::FixedTerm
        && matches!(w.cohort, Cohort::GraduateTrainee | Cohort::EntryLevel)
}

fn employee(w: &Worker) -> bool {
    w.relationship == EmploymentRelationship::Employee
}

/// The whole scenario for `seed`, in recording order (baseline first, then month by month in
/// effective order). Pure: the same seed gives the same events, ids included.
#[must_use]
pub fn scenario(seed: u64) -> Vec<Event> {
    use ContractType::{FixedTerm, OpenEnded, Task};
    use EmploymentRelationship::{Contractor, Dispatched, Employee};
    let mut b = Builder {
        rng: Rng(seed),
        events: Vec::new(),
    };
    let mut cn = Org {
        id: ORGS[0].0,
        jurisdiction: ORGS[0].1,
        sites: &["hz-campus", "hz-xixi"],
        employed: Vec::new(),
        next: 0,
    };
    let mut us = Org {
        id: ORGS[1].0,
        jurisdiction: ORGS[1].1,
        sites: &["fresno-dc"],
        employed: Vec::new(),
        next: 0,
    };
    let mut de = Org {
        id: ORGS[2].0,
        jurisdiction: ORGS[2].1,
        sites: &["muc-werk"],
        employed: Vec::new(),
        next: 0,
    };
    // Baselines: opening headcount on 2024-12-31.
    for (org, mix) in [
        (
            &mut cn,
            &[
                (360, Cohort::GraduateTrainee, Employee, FixedTerm),
                (540, Cohort::EntryLevel, Employee, FixedTerm),
                (700, Cohort::Experienced, Employee, OpenEnded),
                (300, Cohort::Experienced, Employee, FixedTerm),
                (300, Cohort::Senior, Employee, OpenEnded),
                (120, Cohort::TemporaryProject, Contractor, Task),
                (80, Cohort::TemporaryProject, Dispatched, FixedTerm),
            ][..],
        ),
        (
            &mut us,
            &[
                (200, Cohort::EntryLevel, Employee, OpenEnded),
                (600, Cohort::Experienced, Employee, OpenEnded),
                (100, Cohort::Senior, Employee, OpenEnded),
                (60, Cohort::TemporaryProject, Contractor, Task),
            ][..],
        ),
        (
            &mut de,
            &[
                (60, Cohort::GraduateTrainee, Employee, FixedTerm),
                (100, Cohort::EntryLevel, Employee, FixedTerm),
                (450, Cohort::Experienced, Employee, OpenEnded),
                (90, Cohort::Senior, Employee, OpenEnded),
                (40, Cohort::TemporaryProject, Dispatched, FixedTerm),
            ][..],
        ),
    ] {
        let mut hired = Vec::new();
        for &(n, cohort, rel, contract) in mix {
            b.hire(org, n, cohort, rel, contract, None, &mut hired);
        }
        org.employed = hired;
    }
    for m in 0..MONTHS {
        let start = b.events.len();
        let mut hired = Vec::new();
        cn_month(&mut b, &mut cn, m, &mut hired);
        cn.employed.append(&mut hired);
        us_month(&mut b, &mut us, m, &mut hired);
        us.employed.append(&mut hired);
        de_month(&mut b, &mut de, m, &mut hired);
        de.employed.append(&mut hired);
        // In effective order within the month; a worker hired this month is separated only in a
        // later one, so the order never puts an exit before its hire.
        b.events[start..].sort_by_key(|e| e.effective_date);
    }
    b.events
}

/// One month of the CN internet firm.
fn cn_month(b: &mut Builder, org: &mut Org, m: u32, hired: &mut Vec<Worker>) {
    use EmploymentRelationship::Employee;
    let paused = m >= 8; // hiring paused from September 2025
    let hires = if paused { 3 } else { 22 };
    for _ in 0..hires {
        let cohort = if b.rng.chance(40) {
            Cohort::EntryLevel
        } else {
            Cohort::Experienced
        };
        let contract = if cohort == Cohort::EntryLevel {
            ContractType::FixedTerm
        } else {
            ContractType::OpenEnded
        };
        b.hire(org, 1, cohort, Employee, contract, Some(m), hired);
    }
    match m {
        2 => {
            let on = b.day(m);
            b.push(
                org,
                org.sites[0],
                on,
                Payload::GraduateIntakeSet(GraduateIntake {
                    cohort_year: 2025,
                    planned: 120,
                    baseline: 120,
                    actual: None,
                }),
            );
        }
        3 => {
            let on = b.day(m);
            b.push(
                org,
                org.sites[0],
                on,
                Payload::AiToolRolledOut(AiToolRolledOut {
                    tool: "TongyiCode".into(),
                    scope: "engineering".into(),
                    mandatory: false,
                }),
            );
        }
        6 => {
            // The 2025 graduate intake joins (the last one at full size).
            b.hire(
                org,
                120,
                Cohort::GraduateTrainee,
                Employee,
                ContractType::FixedTerm,
                Some(m),
                hired,
            );
        }
        8 => {
            b.push(
                org,
                org.sites[0],
                date(m, 1),
                Payload::HiringPaused(HiringPaused {
                    scope: "product-and-engineering".into(),
                    reqs_frozen: 180,
                    reqs_cancelled: 40,
                    until: None,
                }),
            );
            b.push(
                org,
                org.sites[0],
                date(m, 2),
                Payload::AiToolRolledOut(AiToolRolledOut {
                    tool: "TongyiCode".into(),
                    scope: "customer-service".into(),
                    mandatory: true,
                }),
            );
        }
        10 => {
            let on = b.day(m);
            b.push(
                org,
                org.sites[0],
                on,
                Payload::GraduateIntakeReduced(GraduateIntake {
                    cohort_year: 2026,
                    planned: 30,
                    baseline: 120,
                    actual: None,
                }),
            );
        }
        _ => {}
    }
    // Fixed-term non-renewals on contract workers and graduate trainees; a year-end wave in
    // December 2025 with the posts closed (the quiet reduction).
    let non_renewals = match m {
        0..=5 => 3,
        6..=10 => 8,
        11 => 34,
        _ => 9,
    };
    for k in 0..non_renewals {
        let Some(w) = b.take(org, is_contract_cohort) else {
            break;
        };
        let closed = m >= 6 && (m == 11 || k % 3 != 0);
        let on = if m == 11 {
            date(m, 1 + b.rng.below(21) as u32)
        } else {
            b.day(m)
        };
        let site = w.site;
        b.push(
            org,
            site,
            on,
            Payload::ContractNotRenewed(Box::new(ContractNotRenewed {
                separation: separation(&w, Initiator::Employer, closed, Some("CN-LCL-44-1")),
                renewal_offered: false,
                offer_terms: None,
                employee_refused: false,
                would_trigger_open_ended: w.cohort == Cohort::EntryLevel && k % 2 == 0,
                consecutive_fixed_terms: None,
            })),
        );
    }
    // Resignations: back-filled before the pause, not back-filled after it.
    for _ in 0..5 {
        let Some(w) = b.take(org, employee) else {
            break;
        };
        let on = b.day(m);
        b.push(
            org,
            w.site,
            on,
            Payload::Resignation(Box::new(Resignation {
                separation: separation(&w, Initiator::Employee, paused, None),
                regrettable: !paused,
                pressured: false,
            })),
        );
    }
    if m % 3 == 1 {
        if let Some(w) = b.take(org, |w| employee(w) && w.cohort == Cohort::Senior) {
            let on = b.day(m);
            b.push(
                org,
                w.site,
                on,
                Payload::Retirement(Box::new(Retirement {
                    separation: separation(&w, Initiator::Employee, false, Some("CN-LCL-44-2")),
                    retirement_type: RetirementType::Statutory,
                })),
            );
        }
    }
    // Roles automated by the AI tool: without separations from July 2025, with them from October.
    if m >= 6 {
        for k in 0..2 {
            let on = b.day(m);
            b.push(
                org,
                org.sites[k % 2],
                on,
                Payload::RoleAutomated(Box::new(RoleAutomated {
                    role_id: format!("cn-role-{m}-{k}"),
                    ai_system: "TongyiCode".into(),
                    separation: None,
                    retraining_offered: true,
                    redeployment_offered: true,
                })),
            );
        }
    }
    if m >= 9 {
        for k in 0..2 {
            let Some(w) = b.take(org, |w| employee(w) && w.cohort == Cohort::EntryLevel) else {
                break;
            };
            let mut s = separation(&w, Initiator::Employer, true, Some("CN-LCL-40-3"));
            s.ai_attributed = AiAttribution::CitedByEmployer;
            s.ai_system = Some("TongyiCode".into());
            let on = b.day(m);
            b.push(
                org,
                w.site,
                on,
                Payload::RoleAutomated(Box::new(RoleAutomated {
                    role_id: format!("cn-role-sep-{m}-{k}"),
                    ai_system: "TongyiCode".into(),
                    separation: Some(s),
                    retraining_offered: false,
                    redeployment_offered: false,
                })),
            );
        }
    }
    // Contractors released from October 2025, dispatched workers returned from January 2026.
    if m >= 9 {
        for _ in 0..8 {
            let Some(w) = b.take(org, |w| {
                w.relationship == EmploymentRelationship::Contractor
            }) else {
                break;
            };
            let on = b.day(m);
            b.push(
                org,
                w.site,
                on,
                Payload::ContractorReleased(Box::new(AgencyRelease {
                    separation: separation(&w, Initiator::Employer, true, None),
                    agency_id: Some("hz-staffing".into()),
                    ground: None,
                })),
            );
        }
    }
    if m >= 12 {
        for _ in 0..4 {
            let Some(w) = b.take(org, |w| {
                w.relationship == EmploymentRelationship::Dispatched
            }) else {
                break;
            };
            let on = b.day(m);
            b.push(
                org,
                w.site,
                on,
                Payload::DispatchedWorkerReturned(Box::new(AgencyRelease {
                    separation: separation(&w, Initiator::Employer, true, None),
                    agency_id: Some("hz-staffing".into()),
                    ground: Some("CN-DISPATCH-65".into()),
                })),
            );
        }
    }
    // AI usage rising: active users of the coding tool among 1,400 engineers.
    if m >= 4 {
        let value = 140 + u64::from(m - 4) * 62;
        usage(b, org, m, "engineering", value.min(1_260), 1_400);
    }
}

fn usage(b: &mut Builder, org: &Org, m: u32, scope: &str, value: u64, population: u64) {
    let start = date(m, 1);
    let end = date(m, 28);
    b.push(
        org,
        org.sites[0],
        end,
        Payload::AiUsageMeasured(AiUsageMeasured {
            scope: scope.into(),
            period_start: start,
            period_end: end,
            metric: AiMetric::ActiveUsers,
            value,
            population: Some(population),
            used_in_performance_review: false,
        }),
    );
}

/// One month of the US distribution centre: the formal layoff with its WARN notice.
fn us_month(b: &mut Builder, org: &mut Org, m: u32, hired: &mut Vec<Worker>) {
    use EmploymentRelationship::Employee;
    let hires = if m < 12 { 8 } else { 1 };
    b.hire(
        org,
        hires,
        Cohort::EntryLevel,
        Employee,
        ContractType::OpenEnded,
        Some(m),
        hired,
    );
    for _ in 0..4 {
        let Some(w) = b.take(org, employee) else {
            break;
        };
        let on = b.day(m);
        b.push(
            org,
            w.site,
            on,
            Payload::Resignation(Box::new(Resignation {
                separation: separation(&w, Initiator::Employee, m >= 12, None),
                regrettable: false,
                pressured: false,
            })),
        );
    }
    if m == 5 {
        let on = b.day(m);
        b.push(
            org,
            org.sites[0],
            on,
            Payload::AiToolRolledOut(AiToolRolledOut {
                tool: "RouteAI".into(),
                scope: "dispatch".into(),
                mandatory: true,
            }),
        );
    }
    if m >= 6 {
        let value = 12 + u64::from(m - 6) * 9;
        usage(b, org, m, "dispatch", value, 240);
    }
    if m == 13 {
        // February 2026: the plan, and its WARN notice to workers, the EDD and local officials.
        let announced = date(m, 2);
        let mut plan = b.envelope(
            org,
            org.sites[0],
            announced,
            Payload::RestructuringPlanAnnounced(RestructuringPlanAnnounced {
                plan_id: US_PLAN.into(),
                stated_grounds: vec!["US-INVOL-RIF".into()],
                planned_count: 70,
                units: vec!["fresno-dc".into()],
            }),
        );
        plan.correlation_id = Some(US_PLAN.into());
        b.events.push(plan);
        for (payload, day) in [
            (
                Payload::WarnNoticeFiled(ComplianceStep {
                    plan_id: US_PLAN.into(),
                    recipient: "employees; California EDD; Fresno LWDB; chief elected official"
                        .into(),
                    document_ref: "WARN-2026-0203".into(),
                    ai_checkbox: false,
                }),
                3,
            ),
            (
                Payload::UnionBriefed(ComplianceStep {
                    plan_id: US_PLAN.into(),
                    recipient: "Teamsters Local 431".into(),
                    document_ref: "RIF-BRIEF-1".into(),
                    ai_checkbox: false,
                }),
                3,
            ),
        ] {
            let mut e = b.envelope(org, org.sites[0], date(m, day), payload);
            e.correlation_id = Some(US_PLAN.into());
            b.events.push(e);
        }
    }
    if m == 15 {
        // April 2026, 62 days after the notice: 70 dismissals under the plan.
        let noticed = date(13, 3);
        for k in 0..70 {
            let Some(w) = b.take(org, |w| employee(w) && w.cohort != Cohort::Senior) else {
                break;
            };
            let mut s = separation(&w, Initiator::Employer, true, Some("US-INVOL-RIF"));
            s.notice_given_on = Some(noticed);
            if k % 5 == 0 {
                s.ai_attributed = AiAttribution::CitedByEmployer;
                s.ai_system = Some("RouteAI".into());
            }
            let mut e = b.envelope(
                org,
                w.site,
                date(m, 6),
                Payload::EconomicDismissal(Box::new(EconomicDismissal {
                    separation: s,
                    selection_criteria: Some("seniority within job class".into()),
                    plan_id: Some(US_PLAN.into()),
                })),
            );
            e.correlation_id = Some(US_PLAN.into());
            b.events.push(e);
        }
    }
    if m == 16 {
        for _ in 0..20 {
            let Some(w) = b.take(org, |w| {
                w.relationship == EmploymentRelationship::Contractor
            }) else {
                break;
            };
            let on = b.day(m);
            b.push(
                org,
                w.site,
                on,
                Payload::ContractorReleased(Box::new(AgencyRelease {
                    separation: separation(&w, Initiator::Employer, true, None),
                    agency_id: Some("valley-temps".into()),
                    ground: None,
                })),
            );
        }
    }
}

/// One month of the German establishment.
fn de_month(b: &mut Builder, org: &mut Org, m: u32, hired: &mut Vec<Worker>) {
    use EmploymentRelationship::Employee;
    let hires = if m < 9 { 5 } else { 1 };
    b.hire(
        org,
        hires,
        Cohort::Experienced,
        Employee,
        ContractType::OpenEnded,
        Some(m),
        hired,
    );
    for k in 0..3 {
        let Some(w) = b.take(org, is_contract_cohort) else {
            break;
        };
        let on = b.day(m);
        b.push(
            org,
            w.site,
            on,
            Payload::ContractNotRenewed(Box::new(ContractNotRenewed {
                separation: separation(&w, Initiator::Employer, m >= 6 && k != 0, None),
                renewal_offered: false,
                offer_terms: None,
                employee_refused: false,
                would_trigger_open_ended: false,
                consecutive_fixed_terms: None,
            })),
        );
    }
    for _ in 0..2 {
        let Some(w) = b.take(org, employee) else {
            break;
        };
        let on = b.day(m);
        b.push(
            org,
            w.site,
            on,
            Payload::Resignation(Box::new(Resignation {
                separation: separation(&w, Initiator::Employee, false, None),
                regrettable: true,
                pressured: false,
            })),
        );
    }
    if m == 4 {
        let on = b.day(m);
        b.push(
            org,
            org.sites[0],
            on,
            Payload::AiToolRolledOut(AiToolRolledOut {
                tool: "Copilot".into(),
                scope: "engineering-office".into(),
                mandatory: false,
            }),
        );
    }
    if m >= 5 {
        usage(
            b,
            org,
            m,
            "engineering-office",
            20 + u64::from(m - 5) * 8,
            260,
        );
    }
    if m >= 6 && m.is_multiple_of(2) {
        let on = b.day(m);
        b.push(
            org,
            org.sites[0],
            on,
            Payload::RoleAutomated(Box::new(RoleAutomated {
                role_id: format!("de-role-{m}"),
                ai_system: "Copilot".into(),
                separation: None,
                retraining_offered: true,
                redeployment_offered: true,
            })),
        );
    }
    if m == 14 {
        // March 2026: termination agreements the employer proposed, all in one month.
        for _ in 0..26 {
            let Some(w) = b.take(org, |w| employee(w) && w.cohort == Cohort::Experienced) else {
                break;
            };
            let on = date(m, 2 + b.rng.below(25) as u32);
            b.push(
                org,
                w.site,
                on,
                Payload::MutualTerminationEmployerProposed(Box::new(
                    MutualTerminationEmployerProposed {
                        separation: separation(&w, Initiator::Mutual, true, None),
                        package: None,
                    },
                )),
            );
        }
    }
    if m >= 10 {
        for _ in 0..3 {
            let Some(w) = b.take(org, |w| {
                w.relationship == EmploymentRelationship::Dispatched
            }) else {
                break;
            };
            let on = b.day(m);
            b.push(
                org,
                w.site,
                on,
                Payload::DispatchedWorkerReturned(Box::new(AgencyRelease {
                    separation: separation(&w, Initiator::Employer, true, None),
                    agency_id: Some("muc-personal".into()),
                    ground: None,
                })),
            );
        }
    }
}

/// What `wfl demo` does.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    pub seed: u64,
    /// A running node; `None` starts one in this process on free ports and a temp data dir.
    pub addr: Option<String>,
    /// Rule packs for the node started in process.
    pub packs: Vec<wfl_projector::RulePack>,
    pub batch: usize,
    /// Draw a progress bar on stderr (only drawn when stderr is a terminal).
    pub progress: bool,
}

/// The story: figures read from the views (the same for the same seed) plus the ledger's head and
/// verification verdict (which carry recording times, so they differ between runs).
#[derive(Debug, Clone)]
pub struct Story {
    /// Deterministic figures.
    pub figures: Value,
    /// This run's ledger: head sequence and hash, verification verdict.
    pub ledger: Value,
}

/// Records the scenario through `addr` (or a node started in process) and reads the story back.
///
/// # Errors
/// When the node cannot be started or reached, or refuses an event (named with its reason).
pub async fn run(config: &DemoConfig) -> anyhow::Result<Story> {
    let events = scenario(config.seed);
    match &config.addr {
        Some(addr) => drive(addr, &events, config).await,
        None => {
            let dir = std::env::temp_dir().join(format!("wfl-demo-{}", uuid::Uuid::now_v7()));
            let node = crate::bench::Node::start_with(&dir, &config.packs, None, false).await?;
            let story = drive(&node.grpc, &events, config).await;
            let stopped = node.stop().await;
            let _ = std::fs::remove_dir_all(&dir);
            let story = story?;
            stopped?;
            Ok(story)
        }
    }
}

async fn drive(addr: &str, events: &[Event], config: &DemoConfig) -> anyhow::Result<Story> {
    let head = record(addr, events, config).await?;
    let figures = figures(addr, head).await?;
    let ledger = ledger(addr).await?;
    Ok(Story { figures, ledger })
}

/// Records every event with `RecordBatch` at `COMMITTED`; returns the highest sequence answered.
async fn record(addr: &str, events: &[Event], config: &DemoConfig) -> anyhow::Result<u64> {
    let mut client = pb::ingest_client::IngestClient::new(connect(addr).await?)
        .max_encoding_message_size(64 << 20)
        .max_decoding_message_size(64 << 20);
    let bar = crate::progress::bar(
        events.len() as u64,
        crate::progress::Unit::Events,
        config.progress,
    );
    bar.set_message("recording");
    let mut head = 0u64;
    for chunk in events.chunks(config.batch.clamp(1, wfl_domain::MAX_BATCH)) {
        let resp = client
            .record_batch(pb::RecordBatchRequest {
                events: chunk.iter().map(wfl_proto::convert::event_to_pb).collect(),
                ack: pb::AckLevel::Committed as i32,
                include_proof: false,
            })
            .await
            .map_err(|s| anyhow!("recording the demo: {}", describe_status(&s)))?
            .into_inner();
        for item in &resp.results {
            match &item.outcome {
                Some(pb::item_result::Outcome::Ok(r)) => head = head.max(r.sequence),
                Some(pb::item_result::Outcome::Error(e)) => bail!(
                    "the node refused demo event {}: {} (record the demo on a fresh node, or with the seed used before)",
                    item.event_id,
                    e.message
                ),
                None => bail!("no outcome for demo event {}", item.event_id),
            }
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(head)
}

/// A view through `wfl report`'s own call, as its JSON.
///
/// # Errors
/// When the node refuses the request or answers something that is not JSON.
pub async fn view_json(addr: &str, view: View, ask: Ask) -> anyhow::Result<Value> {
    let text = report::report(addr, view, ask, Format::Json).await?;
    serde_json::from_str(&text).map_err(|e| anyhow!("the {view:?} answer is not JSON: {e}"))
}

/// The ask for one org's view at a period, read-your-writes at `min_sequence`.
#[must_use]
pub fn ask(org: &str, period: pb::Period, min_sequence: u64) -> Ask {
    Ask {
        view_request: pb::ViewRequest {
            org_id: org.to_owned(),
            period: period as i32,
            min_sequence,
            ..pb::ViewRequest::default()
        },
        ..Ask::default()
    }
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// One threshold status of `wfl report thresholds --format json`, the fields the story tells.
fn alert_json(s: &Value) -> Value {
    let steps: serde_json::Map<String, Value> = s["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| (text(&c["event_type"]).to_owned(), c["state"].clone()))
        .collect();
    json!({
        "pack": s["pack"], "window": s["window"], "role": s["role"], "count_type": s["count_type"],
        "count": s["count"], "threshold": s["threshold"], "denominator": s["denominator"],
        "level": s["level"], "window_start": s["window_start"], "window_end": s["window_end"],
        "steps": steps,
    })
}

fn int(v: &Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_f64().map(|f| f as u64))
        .unwrap_or(0)
}

/// Separations per period and bucket from a separations view: `{period: {bucket: count}}`.
#[must_use]
pub fn by_period(view: &Value) -> std::collections::BTreeMap<String, [u64; 3]> {
    let mut out = std::collections::BTreeMap::<String, [u64; 3]>::new();
    for row in view["view"]["rows"].as_array().into_iter().flatten() {
        let Some(period) = row["period"].as_str() else {
            continue;
        };
        let slot = match row["bucket"].as_str() {
            Some("formal_layoff") => 0,
            Some("gradual_attrition") => 1,
            _ => 2,
        };
        out.entry(period.to_owned()).or_default()[slot] += int(&row["count"]);
    }
    out
}

/// The figures of the story, org by org, from the views.
async fn figures(addr: &str, head: u64) -> anyhow::Result<Value> {
    let mut orgs = Vec::new();
    for (org, jurisdiction, what) in ORGS {
        let quarterly =
            view_json(addr, View::Separations, ask(org, pb::Period::Quarter, head)).await?;
        let quarters: Vec<Value> = by_period(&quarterly)
            .into_iter()
            .map(|(q, [formal, gradual, neutral])| {
                json!({"quarter": q, "formal_layoff": formal, "gradual_attrition": gradual, "neutral": neutral})
            })
            .collect();
        let totals: Value = quarterly["view"]["totals"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                (
                    t["bucket"].as_str().unwrap_or("").to_owned(),
                    json!(int(&t["count"])),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into();
        let mut thresholds = ask(org, pb::Period::Month, head);
        thresholds.alerts_only = true;
        let watch = view_json(addr, View::Thresholds, thresholds).await?;
        let statuses = watch["statuses"].as_array().cloned().unwrap_or_default();
        let alerts: Vec<Value> = statuses.iter().map(alert_json).collect();
        // The procedure steps recorded for the org (any state but missing), once each.
        let mut procedure: Vec<String> = statuses
            .iter()
            .flat_map(|s| s["steps"].as_array().cloned().unwrap_or_default())
            .filter(|c| c["state"] != "missing")
            .map(|c| {
                format!(
                    "{} {} (plan {})",
                    text(&c["event_type"]),
                    text(&c["state"]),
                    text(&c["plan"])
                )
            })
            .collect();
        procedure.sort();
        procedure.dedup();
        let cohorts = view_json(addr, View::Cohorts, ask(org, pb::Period::Month, head)).await?;
        let cohort_rows: Vec<Value> = cohorts["view"]["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                json!({
                    "cohort": r["cohort"], "reductions": r["reductions"],
                    "opening_headcount": r["opening_headcount"], "closing_headcount": r["closing_headcount"],
                    "exposure_ratio": r["exposure_ratio"].as_f64().map(|x| (x * 100.0).round() / 100.0),
                })
            })
            .collect();
        let ai = view_json(addr, View::Ai, ask(org, pb::Period::Month, head)).await?;
        let usage: Vec<Value> = ai["view"]["usage"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|u| {
                json!({
                    "scope": u["scope"], "period_start": u["period_start"], "value": u["value"],
                    "population": u["population"],
                })
            })
            .collect();
        // AI usage rising: the latest measurement per scope as of each quarter's end.
        let mut trend = Vec::new();
        for q in 0..MONTHS / 3 {
            let end = date(q * 3 + 3, 1).add_days(-1);
            let mut a = ask(org, pb::Period::Month, head);
            a.view_request.to_date = end.to_string();
            let at = view_json(addr, View::Ai, a).await?;
            for u in at["view"]["usage"].as_array().into_iter().flatten() {
                trend.push(json!({
                    "quarter_end": end.to_string(), "scope": u["scope"], "value": u["value"],
                    "population": u["population"],
                }));
            }
        }
        let hiring = view_json(addr, View::Hiring, ask(org, pb::Period::Month, head)).await?;
        let headcount =
            view_json(addr, View::Headcount, ask(org, pb::Period::Quarter, head)).await?;
        let rows = headcount["view"]["rows"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let opening = rows.first().map_or(0, |r| int(&r["total"]["opening"]));
        let closing = rows.last().map_or(0, |r| int(&r["total"]["closing"]));
        orgs.push(json!({
            "org": org, "jurisdiction": jurisdiction, "what": what,
            "headcount": {"opening": opening, "closing": closing},
            "separations": {"total": int(&quarterly["view"]["total"]), "by_bucket": totals, "by_quarter": quarters},
            "alerts": alerts,
            "procedure_steps_recorded": procedure,
            "cohorts": cohort_rows,
            "ai": {
                "usage": usage,
                "usage_by_quarter": trend,
                "tools": ai["view"]["tools"].as_array().map_or(0, Vec::len),
                "roles_automated": int(&ai["view"]["roles_automated"]["count"]),
                "roles_automated_with_separation": int(&ai["view"]["roles_automated"]["with_separation"]),
                "ai_attributed_separations": int(&ai["view"]["ai_attributed_separations"]["cited_by_employer"]) + int(&ai["view"]["ai_attributed_separations"]["inferred"]),
            },
            "hiring": {
                "pauses": hiring["view"]["pauses"].as_array().map_or(0, Vec::len),
                "reqs_frozen_open": int(&hiring["view"]["reqs_frozen_open"]),
                "graduate_intake": hiring["view"]["graduate_intake"],
            },
        }));
    }
    Ok(json!({"events": head, "orgs": orgs}))
}

/// The ledger's head and a full verification of its export (chain, Merkle roots, signed
/// checkpoints), as `wfl verify --addr` does.
async fn ledger(addr: &str) -> anyhow::Result<Value> {
    let mut client = pb::ledger_client::LedgerClient::new(connect(addr).await?);
    let head = client
        .head(pb::HeadRequest::default())
        .await
        .map_err(|s| anyhow!("ledger head: {}", describe_status(&s)))?
        .into_inner();
    let dir: PathBuf =
        std::env::temp_dir().join(format!("wfl-demo-verify-{}", uuid::Uuid::now_v7()));
    let exported = crate::audit::export(addr, &dir, false).await;
    let verdict = match exported {
        Ok(_) => {
            let target = dir.clone();
            tokio::task::spawn_blocking(move || crate::audit::verify(&target, None, false))
                .await
                .map_err(|e| anyhow!("verification task: {e}"))?
        }
        Err(e) => Err(e),
    };
    let _ = std::fs::remove_dir_all(&dir);
    let verdict = verdict?;
    Ok(json!({
        "head_sequence": head.sequence,
        "head_hash": hex::encode(&head.hash),
        "verified": verdict.failure.is_none(),
        "verified_events": verdict.events,
        "verified_checkpoints": verdict.checkpoints,
        "verdict": verdict.describe(),
    }))
}

impl Story {
    /// The story as one JSON document.
    #[must_use]
    pub fn json(&self) -> Value {
        json!({"figures": self.figures, "ledger": self.ledger})
    }

    /// The story in plain words and tables.
    #[must_use]
    pub fn text(&self) -> String {
        let mut out = String::new();
        let f = &self.figures;
        let _ = writeln!(
            out,
            "wfl demo: {} events recorded over 18 months (January 2025 to June 2026) for three employers.\n",
            f["events"]
        );
        for o in f["orgs"].as_array().into_iter().flatten() {
            org_text(o, &mut out);
        }
        let l = &self.ledger;
        let _ = writeln!(
            out,
            "Ledger head: sequence {} hash {}\nVerification: {}",
            l["head_sequence"],
            l["head_hash"].as_str().unwrap_or(""),
            l["verdict"].as_str().unwrap_or("")
        );
        out.push_str(
            "\nShadow counts are economic reductions comparable in size to a collective dismissal, not legal findings.\n",
        );
        out
    }
}

fn org_text(o: &Value, out: &mut String) {
    let s = &o["separations"];
    let b = &s["by_bucket"];
    let _ = writeln!(
        out,
        "== {} ({}, {})\nHeadcount {} -> {}. {} separations: {} formal layoff, {} gradual attrition, {} neutral.",
        o["org"].as_str().unwrap_or(""),
        o["what"].as_str().unwrap_or(""),
        o["jurisdiction"].as_str().unwrap_or(""),
        o["headcount"]["opening"],
        o["headcount"]["closing"],
        s["total"],
        int(&b["formal_layoff"]),
        int(&b["gradual_attrition"]),
        int(&b["neutral"]),
    );
    let _ = writeln!(out, "\n  quarter   formal  gradual  neutral");
    for q in s["by_quarter"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  {:<8} {:>7} {:>8} {:>8}",
            q["quarter"].as_str().unwrap_or(""),
            int(&q["formal_layoff"]),
            int(&q["gradual_attrition"]),
            int(&q["neutral"])
        );
    }
    let alerts = o["alerts"].as_array().cloned().unwrap_or_default();
    // The headline: the heaviest window that met a threshold, and whether a procedure exists.
    let heaviest = alerts
        .iter()
        .filter(|a| a["level"] == "MET")
        .max_by_key(|a| int(&a["count"]) * 1000 / int(&a["threshold"]).max(1));
    if let Some(a) = heaviest {
        let _ = writeln!(
            out,
            "\n  {} {} count of {} workers in {} ({}..{}) against a threshold of {}: MET, {}.",
            text(&a["pack"]),
            text(&a["count_type"]),
            int(&a["count"]),
            text(&a["window"]),
            text(&a["window_start"]),
            text(&a["window_end"]),
            int(&a["threshold"]),
            if o["procedure_steps_recorded"]
                .as_array()
                .is_none_or(Vec::is_empty)
            {
                "with no formal procedure recorded"
            } else {
                "with its procedure steps recorded"
            }
        );
    }
    if alerts.is_empty() {
        out.push_str("\n  No threshold reached or approached.\n");
    } else {
        let _ = writeln!(
            out,
            "\n  Alerts (current: the latest window; peak: the heaviest in the history)\n  pack         window       role     count        workers  threshold  staff  level        window                  procedure steps"
        );
        for a in &alerts {
            let steps: Vec<String> = a["steps"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| format!("{k} {}", text(v)))
                .collect();
            let _ = writeln!(
                out,
                "  {:<12} {:<12} {:<8} {:<12} {:>7} {:>10} {:>6}  {:<12} {}..{}  {}",
                text(&a["pack"]),
                text(&a["window"]),
                text(&a["role"]),
                text(&a["count_type"]),
                int(&a["count"]),
                int(&a["threshold"]),
                int(&a["denominator"]),
                text(&a["level"]),
                text(&a["window_start"]),
                text(&a["window_end"]),
                steps.join(", ")
            );
        }
    }
    let procedure: Vec<&str> = o["procedure_steps_recorded"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let _ = writeln!(
        out,
        "  Formal procedure recorded: {}",
        if procedure.is_empty() {
            "none (no plan, no briefing, no report, no notice)".to_owned()
        } else {
            procedure.join("; ")
        }
    );
    let _ = writeln!(
        out,
        "\n  cohort             reductions  opening  closing  exposure"
    );
    for c in o["cohorts"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  {:<18} {:>10} {:>8} {:>8}  {}",
            c["cohort"].as_str().unwrap_or(""),
            int(&c["reductions"]),
            int(&c["opening_headcount"]),
            int(&c["closing_headcount"]),
            c["exposure_ratio"]
                .as_f64()
                .map_or("-".to_owned(), |x| format!("{x:.2}"))
        );
    }
    let ai = &o["ai"];
    let usage: Vec<String> = ai["usage"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|u| {
            format!(
                "{} {} of {} active ({})",
                u["scope"].as_str().unwrap_or(""),
                int(&u["value"]),
                int(&u["population"]),
                u["period_start"].as_str().unwrap_or("")
            )
        })
        .collect();
    let _ = writeln!(
        out,
        "\n  AI: {} tool roll-outs; {} roles automated ({} with a separation); {} AI-attributed separations; latest usage: {}.",
        ai["tools"],
        ai["roles_automated"],
        ai["roles_automated_with_separation"],
        ai["ai_attributed_separations"],
        if usage.is_empty() { "none".to_owned() } else { usage.join("; ") }
    );
    let trend: Vec<String> = ai["usage_by_quarter"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|u| {
            format!(
                "{} {} {} %",
                text(&u["quarter_end"]),
                text(&u["scope"]),
                int(&u["value"]) * 100 / int(&u["population"]).max(1)
            )
        })
        .collect();
    if !trend.is_empty() {
        let _ = writeln!(
            out,
            "  AI usage at quarter ends (active share): {}.",
            trend.join(", ")
        );
    }
    let h = &o["hiring"];
    let _ = writeln!(
        out,
        "  Hiring: {} pauses, {} requisitions frozen and still open.\n",
        h["pauses"], h["reqs_frozen_open"]
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use wfl_testkit::decide::Decider;

    #[test]
    fn the_same_seed_gives_the_same_events_and_another_seed_other_ones() {
        let a = scenario(7);
        assert_eq!(a, scenario(7));
        assert_ne!(a, scenario(8));
        assert!(a.len() > 5_000, "{} events", a.len());
    }

    #[test]
    fn every_demo_event_is_one_the_ledger_accepts_in_order() {
        let mut ledger = Decider::default();
        for e in scenario(42) {
            ledger.accept(&e);
        }
    }
}
