//! Threshold watch: strict, assimilated and shadow counts per rule pack, unit and window, against
//! the threshold at the pack's headcount basis, with the procedure steps of each plan.
//!
//! Owns: the current and peak window of each pack/unit/window spec/count type, their wave keys
//! (what alerts are keyed by), counting workers rather than events, tying procedure steps to their
//! plan, and the reasons events are left out. Must not: read a clock, do I/O, or depend on how the
//! views are stored (it sees only [`Separation`], [`ComplianceStep`] and a [`Population`]).
//!
//! [`evaluate`] is a pure function of its inputs (no clock: `as_of` is passed in). It works on
//! separations with their position links already resolved and on a [`Population`] oracle, so it
//! does not depend on how the views are stored. Every number it applies comes from the packs.
//!
//! Reading the output: a strict count is the statute's own count; an assimilated count adds exits
//! that are dismissals in substance (an analytic reading unless the pack says the law assimilates
//! them); a shadow count is an economic reduction of comparable size and is **never** a legal
//! finding. None of it is legal advice.

use super::pack::{
    segment_prefix, Confidence, CountDate, Coverage, CoverageScope, LawStatus, MatchRule, RulePack,
    SiteEventKind, SiteEventRule, Unit, VariantChoice, Window, WindowKind,
};
use crate::{Population, PopulationQuery, WorkerProfile};
use foldhash::{HashMap, HashMapExt};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use wfl_domain::{
    AiAttribution, Date, EmploymentRelationship, Event, EventId, EventType, OrgId, Payload, SiteId,
};

/// A status is `Approaching` once the count reaches this percentage of the threshold (a product
/// setting, not a legal number).
pub const APPROACHING_PERCENT: u64 = 80;

/// The label every shadow status carries.
pub const SHADOW_LABEL: &str =
    "economic reduction comparable in size to a collective dismissal (not a legal finding)";

/// The most days any shift may move a date; keeps arithmetic on [`Date`] far from overflow.
const MAX_SHIFT_DAYS: i64 = 1_000_000;

/// A separation (or a WARN-relevant long temporary layoff or deep hours cut) as the watch sees it.
#[derive(Debug, Clone, Copy)]
pub struct Separation<'a> {
    pub event_id: EventId,
    pub org: &'a OrgId,
    pub site: &'a SiteId,
    pub jurisdiction: &'a str,
    /// Future-dated (after `as_of`) means planned.
    pub effective_date: Date,
    pub payload: &'a Payload,
    /// The position is closed, after `PositionClosed` links.
    pub position_closed: bool,
    /// The position was back-filled, after `PositionBackfilled` links.
    pub backfilled: bool,
    pub correlation_id: Option<&'a str>,
}

impl<'a> Separation<'a> {
    /// The watch's view of `event`, or `None` if it separates nobody (and is not a temporary
    /// layoff or an hours cut). The caller resolves position links.
    #[must_use]
    pub fn from_event(event: &'a Event, position_closed: bool, backfilled: bool) -> Option<Self> {
        countable_payload(&event.payload).then_some(Self {
            event_id: event.event_id,
            org: &event.org_id,
            site: &event.site_id,
            jurisdiction: &event.jurisdiction,
            effective_date: event.effective_date,
            payload: &event.payload,
            position_closed,
            backfilled,
            correlation_id: event.correlation_id.as_deref(),
        })
    }
}

/// A procedure step taken: union briefed, authority reported, WARN notice filed.
#[derive(Debug, Clone, Copy)]
pub struct ComplianceStep<'a> {
    pub event_id: EventId,
    pub org: &'a OrgId,
    pub site: &'a SiteId,
    pub kind: EventType,
    pub plan_id: &'a str,
    pub effective_date: Date,
}

impl<'a> ComplianceStep<'a> {
    /// The step `event` records, or `None` if it is not a compliance event.
    #[must_use]
    pub fn from_event(event: &'a Event) -> Option<Self> {
        let step = match &event.payload {
            Payload::UnionBriefed(s)
            | Payload::AuthorityReported(s)
            | Payload::WarnNoticeFiled(s) => s,
            _ => return None,
        };
        Some(Self {
            event_id: event.event_id,
            org: &event.org_id,
            site: &event.site_id,
            kind: event.event_type(),
            plan_id: &step.plan_id,
            effective_date: event.effective_date,
        })
    }
}

/// A site closed or relocated (`SiteClosed`, `SiteRelocated`): what makes a plant-closing or
/// relocation alternative of a threshold apply to the unit.
#[derive(Debug, Clone, Copy)]
pub struct SiteEvent<'a> {
    pub event_id: EventId,
    pub org: &'a OrgId,
    pub site: &'a SiteId,
    pub kind: SiteEventKind,
    pub effective_date: Date,
    /// Relocations: how far the operations moved.
    pub distance_km: Option<u32>,
}

impl<'a> SiteEvent<'a> {
    /// The site event `event` records, or `None` if it is not a closing or a relocation.
    #[must_use]
    pub fn from_event(event: &'a Event) -> Option<Self> {
        Self::from_parts(
            event.event_id,
            &event.org_id,
            &event.site_id,
            event.effective_date,
            &event.payload,
        )
    }

    /// The site event of a stored record's parts, or `None` if `payload` is neither kind.
    #[must_use]
    pub fn from_parts(
        event_id: EventId,
        org: &'a OrgId,
        site: &'a SiteId,
        effective_date: Date,
        payload: &Payload,
    ) -> Option<Self> {
        let (kind, distance_km) = match payload {
            Payload::SiteClosed(_) => (SiteEventKind::Closed, None),
            Payload::SiteRelocated(r) => (SiteEventKind::Relocated, Some(r.distance_km)),
            _ => return None,
        };
        Some(Self {
            event_id,
            org,
            site,
            kind,
            effective_date,
            distance_km,
        })
    }

    fn satisfies(&self, rule: &SiteEventRule, start: Date, end: Date) -> bool {
        self.kind == rule.kind
            && rule
                .min_distance_km
                .is_none_or(|min| self.distance_km.is_some_and(|d| d >= min))
            && start <= self.effective_date
            && self.effective_date <= shift(end, rule.days_after_window)
    }
}

/// Which count a status reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CountType {
    /// As the statute counts.
    Strict,
    /// Strict plus dismissals in substance.
    Assimilated,
    /// Assimilated plus further economic reductions; not a legal count.
    Shadow,
}

impl CountType {
    /// Every count type, in reporting order.
    pub const ALL: &'static [CountType] =
        &[CountType::Strict, CountType::Assimilated, CountType::Shadow];

    /// The stable snake_case name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            CountType::Strict => "strict",
            CountType::Assimilated => "assimilated",
            CountType::Shadow => "shadow",
        }
    }
}

impl CountType {
    /// Whether `e` counts for this type in a window whose assimilated gate is `gate_open`.
    fn counts(self, e: &Entry<'_>, gate_open: bool) -> bool {
        match self {
            CountType::Strict => e.strict,
            CountType::Assimilated => e.strict || (gate_open && e.assimilated),
            CountType::Shadow => e.shadow,
        }
    }
}

/// How close a count is to its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertLevel {
    /// At least [`APPROACHING_PERCENT`] of the threshold.
    Approaching,
    /// At or above the threshold. For a shadow count this says only that the size is comparable.
    Met,
}

/// Which window of a pack/unit/window spec/count type a status reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowRole {
    /// Among the windows holding the latest counted exit on or before `as_of` (or, when every
    /// counted exit is planned, the first planned one), the one counting the most workers: the
    /// build-up happening now, even when an earlier one was larger. Alerts are raised on these.
    Current,
    /// The window with the most weight over all the history given (met first, then ratio, then
    /// count, then the earliest start).
    Peak,
}

impl WindowRole {
    /// The stable snake_case name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            WindowRole::Current => "current",
            WindowRole::Peak => "peak",
        }
    }
}

/// Whether a required procedure step was taken in time for one plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    /// A step of this plan came at least the lead time before the plan's first separation.
    OnTime,
    /// A step of this plan came, but after `due_by`.
    Late,
    /// No step of this plan (reported only once the count is approaching or met).
    Missing,
}

/// One required procedure step checked for one plan of a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepCheck {
    /// The pack's step name.
    pub step: String,
    pub event_type: EventType,
    /// The plan (`correlation_id`, or `EconomicDismissal.plan_id`); `None`: separations recorded
    /// without a plan, which no step can be tied to.
    pub plan: Option<String>,
    /// The first separation (or notice, by the pack's count date) of the plan in this unit.
    pub first_separation: Date,
    /// The latest day the step could be taken: `first_separation` minus the lead time.
    pub due_by: Date,
    pub state: StepState,
    /// The step event relied on (the earliest of the plan), for `OnTime` and `Late`.
    pub event_id: Option<EventId>,
    /// For `Late`: days after `due_by`.
    pub days_late: u32,
    /// Where the step blocks the dismissals for a while (DE §18(1) KSchG, Directive Art. 4(1)):
    /// the first day they may take effect, counted from the step relied on.
    pub earliest_effective: Option<Date>,
    /// Counted separations of the plan whose effective date comes before `earliest_effective`.
    pub effective_too_early: Vec<EventId>,
}

/// The EU five-redundancy gate (Art. 1(1) second subparagraph; C-422/14) in one window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateState {
    /// Workers counted strictly (redundancies stricto sensu) in the window.
    pub strict_workers: u64,
    pub min_strict: u64,
    /// Assimilated terminations are added.
    pub open: bool,
}

/// An event inside a window that the count leaves out, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Excluded {
    pub event_id: EventId,
    pub reason: String,
}

/// One row of the threshold watch: a pack, a unit, a window spec, a count type and a window role
/// (current or peak).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdStatus {
    pub pack: String,
    pub org: OrgId,
    /// The site id for site and establishment packs, the org id for legal-entity packs.
    pub unit: String,
    /// What `unit` is: `site`, `establishment` or `legal_entity`.
    pub unit_kind: Unit,
    /// The pack's window name (`rolling-30`, `plan`...).
    pub window: String,
    pub role: WindowRole,
    /// Identifies the wave this window belongs to, for alerting:
    /// `<window>/<role>/<wave start date>` for rolling windows (a wave is a run of counted exits
    /// with no gap as long as the window, so a later build-up is a new key) and
    /// `<window>/<role>/<plan>` for plan windows. Unique per pack, org, unit and count type.
    pub window_key: String,
    pub window_start: Date,
    pub window_end: Date,
    pub count_type: CountType,
    /// The date separations are placed by: `effective` or `notice`.
    pub count_date: CountDate,
    /// Workers counted: one employment loss per worker per window.
    pub count: u64,
    /// The counted events, by count date then id (a worker with several events lists them all).
    pub event_ids: Vec<EventId>,
    /// Events in the window this count leaves out, with the reason.
    pub excluded: Vec<Excluded>,
    /// The assimilated gate, where the pack has one (assimilated rows only).
    pub gate: Option<GateState>,
    /// The headcount basis the threshold was measured at.
    pub denominator: u64,
    /// The count needed at that headcount; 0 when no threshold alternative applies.
    pub threshold: u64,
    /// `count / threshold`; 0 when no threshold applies.
    pub ratio: f64,
    /// `None` below the approaching level, when no threshold applies, or when the employer is below
    /// the pack's coverage test.
    pub level: Option<AlertLevel>,
    /// Strict and assimilated rows: every required step per plan of the window. On-time and late
    /// steps are always listed; missing ones only once the level is approaching or met.
    pub steps: Vec<StepCheck>,
    /// The late and missing entries of `steps`, as sentences (empty below the approaching level).
    pub missing_steps: Vec<String>,
    /// A Directive row for a Member State whose national law has its own pack: the floor only.
    pub floor_only: bool,
    pub label: String,
    /// Events in the window left out of the count as part-time that are still owed notice,
    /// where the pack says so (US WARN: counted for no threshold, but notified). Strict and
    /// assimilated rows only.
    pub notice_only: Vec<EventId>,
    /// The `SiteClosed` / `SiteRelocated` that made a plant-closing or relocation alternative
    /// apply to the threshold, when it did.
    pub site_event: Option<EventId>,
}

/// Evaluates every pack against the separations in its jurisdictions, grouped by the pack's unit.
///
/// For each pack, unit (org, or org and site), window spec and count type it reports two
/// [`ThresholdStatus`] rows, the [`WindowRole::Current`] window then the [`WindowRole::Peak`]:
/// - rolling windows: every `days`-long window starting on a counted date (any window that
///   contains a separation is considered, before or after it: CJEU C-300/19, 20 CFR 639.5);
/// - correlation windows: each group of separations sharing a plan.
///
/// Counts are of workers: one employment loss per worker per window, however many of their
/// events count (a temporary layoff then a dismissal is one loss). Separations are placed at the
/// pack's count date (effective or notice). Those dated after `as_of` are planned; a window counts
/// them only up to its `look_ahead_days` after `as_of`. Compliance steps dated after `as_of` have
/// not happened; a step counts only for its own plan and only when it came at least the lead time
/// before the plan's first separation. The headcount basis is read from `population` with the
/// pack's exclusions, at the end of the day `days_before_first_separation` before the window's
/// first counted separation (averaged when the pack says so). Units with no separation in a pack's
/// jurisdictions give no rows.
///
/// Cost: linear in the separations given per pack and window spec, plus one population query per
/// distinct snapshot day. The peak is the peak over what the caller passes; a caller that passes
/// only recent records gets the peak of that period.
#[must_use]
pub fn evaluate(
    packs: &[RulePack],
    separations: &[Separation<'_>],
    steps: &[ComplianceStep<'_>],
    site_events: &[SiteEvent<'_>],
    population: &dyn Population,
    as_of: Date,
) -> Vec<ThresholdStatus> {
    let mut out = Vec::new();
    // What every pack reads of a separation the same way, found once rather than once per pack:
    // the worker's profile (a look-up by name in the population) and a number for the worker
    // (a payload that names nobody is a worker of its own).
    let mut names: HashMap<&str, u32> = HashMap::new();
    let mut next = 0u32;
    let mut number = || {
        next += 1;
        next - 1
    };
    let facts: Vec<(u32, Option<WorkerProfile>)> = separations
        .iter()
        .map(|s| match s.payload.worker_effect() {
            Some((w, _)) => (
                *names.entry(w.0.as_str()).or_insert_with(&mut number),
                population.worker(s.org, w, s.effective_date),
            ),
            None => (number(), None),
        })
        .collect();
    drop(names);
    // A unit's dense worker numbers by worker number (`usize::MAX`: not seen in the unit yet),
    // put back after each unit.
    let mut dense = vec![usize::MAX; next as usize];
    for pack in packs {
        // Keyed by the separations' own names: nothing copied per separation.
        let mut units: BTreeMap<(&OrgId, Option<&SiteId>), UnitEntries<'_>> = BTreeMap::new();
        // The pack's choice and national pack for a jurisdiction, found once per jurisdiction
        // rather than once per separation (a Directive pack lists 27 Member States).
        let mut choices = Choices::new(pack);
        for (i, s) in separations.iter().enumerate() {
            let (Some(choice), national) = choices.of(s.jurisdiction) else {
                continue;
            };
            if !countable_payload(s.payload) {
                continue;
            }
            let site = pack.unit.is_site().then_some(s.site);
            let unit = units.entry((s.org, site)).or_default();
            let (worker, profile) = &facts[i];
            unit.entries
                .push(Entry::classify(pack, s, profile.as_ref(), *worker));
            unit.not_researched |= choice == VariantChoice::NotResearched;
            if let Some(national) = national {
                if unit.national_pack.as_deref() != Some(national) {
                    unit.national_pack = Some(national.to_owned());
                }
            }
        }
        for ((org, site), mut unit) in units {
            unit.entries.sort_by_key(|a| (a.date, a.id));
            // Dense worker numbers within the unit, for the sliding counters.
            let mut workers = 0;
            for e in &mut unit.entries {
                let slot = &mut dense[e.worker as usize];
                if *slot == usize::MAX {
                    *slot = workers;
                    workers += 1;
                }
                e.worker_ix = *slot;
            }
            for e in &unit.entries {
                dense[e.worker as usize] = usize::MAX;
            }
            // A plan's first separation, per legal count type: where its procedure deadlines run
            // from (entries are sorted by date, so the first seen is the earliest).
            let mut first_of_plan: BTreeMap<(CountType, &str), Date> = BTreeMap::new();
            for e in &unit.entries {
                if let Some(p) = e.plan {
                    for ct in [CountType::Strict, CountType::Assimilated] {
                        if e.candidate(ct) {
                            first_of_plan.entry((ct, p)).or_insert(e.date);
                        }
                    }
                }
            }
            let unit_site_events: Vec<&SiteEvent<'_>> = site_events
                .iter()
                .filter(|e| e.org == org && site.is_none_or(|s| s == e.site))
                .collect();
            let mut eval = UnitEval {
                pack,
                org,
                site,
                population,
                steps,
                site_events: unit_site_events,
                as_of,
                first_of_plan,
                not_researched: unit.not_researched,
                national_pack: unit.national_pack.as_deref(),
                workers,
                cache: BTreeMap::new(),
                bases: BTreeMap::new(),
            };
            for window in &pack.windows {
                eval.window(window, &unit.entries, &mut out);
            }
        }
    }
    out
}

/// [`RulePack::variant_choice`] and [`RulePack::national_pack`] of one pack, by jurisdiction,
/// each asked once per distinct jurisdiction (the last one asked is usually asked again: it is
/// checked before the map).
struct Choices<'p, 's> {
    pack: &'p RulePack,
    last: Option<(&'s str, PackChoice<'p>)>,
    seen: HashMap<&'s str, PackChoice<'p>>,
}

type PackChoice<'p> = (Option<VariantChoice>, Option<&'p str>);

impl<'p, 's> Choices<'p, 's> {
    fn new(pack: &'p RulePack) -> Self {
        Self {
            pack,
            last: None,
            seen: HashMap::new(),
        }
    }

    fn of(&mut self, jurisdiction: &'s str) -> PackChoice<'p> {
        if let Some((j, c)) = self.last {
            if j == jurisdiction {
                return c;
            }
        }
        let pack = self.pack;
        let c = *self.seen.entry(jurisdiction).or_insert_with(|| {
            (
                pack.variant_choice(jurisdiction),
                pack.national_pack(jurisdiction),
            )
        });
        self.last = Some((jurisdiction, c));
        c
    }
}

#[derive(Default)]
struct UnitEntries<'s> {
    entries: Vec<Entry<'s>>,
    /// Some event came from a Member State whose choice of variant was not researched.
    not_researched: bool,
    /// The national pack of the unit's Member State, where this is a Directive floor pack.
    national_pack: Option<String>,
}

/// Whether a rule pack may count `p`: a separation, or (US WARN's employment losses) a
/// temporary layoff or an hours cut.
pub(crate) fn countable_payload(p: &Payload) -> bool {
    p.separation().is_some() || matches!(p, Payload::TemporaryLayoff(_) | Payload::HoursReduced(_))
}

/// Why an event is outside the population basis, and whether it is for being part-time.
struct Outside {
    reason: String,
    /// Left out by the contract type or the hours or months limbs (not by the relationship).
    part_time: bool,
}

/// Why a separation (or layoff, or hours cut) is outside the pack's population basis, if it is.
/// The event's own separation block is read first; what it does not say (and everything, for
/// temporary layoffs and hours cuts) comes from the population's worker profile, when it has one.
fn outside_population(
    pack: &RulePack,
    s: &Separation<'_>,
    profile: Option<&WorkerProfile>,
) -> Option<Outside> {
    let basis = &pack.population;
    let sep = s.payload.separation();
    let relationship = sep
        .map(|x| x.employment_relationship)
        .or(profile.map(|p| p.relationship));
    let contract = sep
        .map(|x| x.contract_type)
        .or(profile.map(|p| p.contract_type));
    let hours = sep
        .and_then(|x| x.avg_weekly_hours)
        .or(profile.and_then(|p| p.avg_weekly_hours));
    let months = sep
        .and_then(|x| x.months_employed_last_12)
        .or(profile.and_then(|p| p.months_employed_last_12));
    let note = |reason: String, part_time: bool| {
        let reason = if basis.exclusion_note.is_empty() {
            reason
        } else {
            format!("{reason}; {}", basis.exclusion_note)
        };
        Outside { reason, part_time }
    };
    if let Some(r) = relationship.filter(|r| basis.exclude_relationships.contains(r)) {
        let host_side = match r {
            EmploymentRelationship::Dispatched | EmploymentRelationship::Contractor => {
                " (host-side line: not the host's employee)"
            }
            EmploymentRelationship::Employee | EmploymentRelationship::Intern => "",
        };
        return Some(note(
            format!(
                "outside the population basis: {} worker{host_side}",
                r.as_str()
            ),
            false,
        ));
    }
    if let Some(c) = contract.filter(|c| basis.exclude_contract_types.contains(c)) {
        return Some(note(
            format!("outside the population basis: {} contract", c.as_str()),
            true,
        ));
    }
    if let (Some(h), Some(min)) = (hours, basis.part_time_below_weekly_hours) {
        if h < min {
            return Some(note(
                format!(
                    "outside the population basis: part-time, {h} hours a week on average \
                     (fewer than {min})"
                ),
                true,
            ));
        }
    }
    if let (Some(m), Some(min)) = (months, basis.part_time_below_months_of_12) {
        if m < min {
            return Some(note(
                format!(
                    "outside the population basis: part-time, employed {m} of the last 12 \
                     months (fewer than {min})"
                ),
                true,
            ));
        }
    }
    None
}

/// The plan a separation belongs to: its `correlation_id`, else an economic dismissal's `plan_id`.
fn plan_of<'s>(s: &Separation<'s>) -> Option<&'s str> {
    s.correlation_id.or(match s.payload {
        Payload::EconomicDismissal(d) => d.plan_id.as_deref(),
        _ => None,
    })
}

/// One separation, classified for one pack.
#[derive(Debug)]
struct Entry<'s> {
    id: EventId,
    /// The count date (effective, or notice where the pack counts by notice).
    date: Date,
    /// The worker's number among the separations evaluated (one per pseudonymous ref; a payload
    /// that names nobody is a worker of its own).
    worker: u32,
    /// `worker` numbered densely within the unit.
    worker_ix: usize,
    plan: Option<&'s str>,
    strict: bool,
    /// Matches an assimilated rule (and is not excluded); strict entries may also set it.
    assimilated: bool,
    /// In the shadow count: strict, assimilated (ungated) or a shadow rule.
    shadow: bool,
    /// Why the strict and assimilated counts leave it out, when an exclusion applies.
    excluded: Option<String>,
    /// The effective date (the count date may be the notice date).
    effective: Date,
    /// Left out as part-time but owed notice where it would count strictly / as assimilated.
    notice_strict: bool,
    notice_assimilated: bool,
}

impl<'s> Entry<'s> {
    /// `s` for `pack`, given its worker's number and profile (see [`evaluate`]).
    fn classify(
        pack: &RulePack,
        s: &Separation<'s>,
        profile: Option<&WorkerProfile>,
        worker: u32,
    ) -> Self {
        let date = match pack.count_date() {
            CountDate::Effective => s.effective_date,
            CountDate::Notice => s
                .payload
                .separation()
                .and_then(|x| x.notice_given_on)
                .unwrap_or(s.effective_date),
        };
        let base = Self {
            id: s.event_id,
            date,
            worker,
            worker_ix: 0,
            plan: plan_of(s),
            strict: false,
            assimilated: false,
            shadow: false,
            excluded: None,
            effective: s.effective_date,
            notice_strict: false,
            notice_assimilated: false,
        };
        // What the event does not say about the worker comes from the population's profile.
        let contract_end = s
            .payload
            .separation()
            .and_then(|x| x.contract_end)
            .or(profile.and_then(|p| p.contract_end));
        let any = |rules: &[MatchRule]| rules.iter().any(|r| matches(r, s, contract_end));
        let excluded = pack
            .counts
            .exclude
            .iter()
            .find(|r| matches(r, s, contract_end))
            .map(|r| format!("excluded: {}", r.name));
        let strict = excluded.is_none() && any(&pack.counts.strict);
        let assimilated = excluded.is_none() && any(&pack.counts.assimilated);
        if let Some(out) = outside_population(pack, s, profile) {
            let owed = out.part_time && pack.population.part_time_owed_notice.is_some();
            return Self {
                excluded: Some(out.reason),
                notice_strict: owed && strict,
                notice_assimilated: owed && (strict || assimilated),
                ..base
            };
        }
        let shadow = strict || assimilated || any(&pack.counts.shadow);
        Self {
            strict,
            assimilated,
            shadow,
            excluded,
            ..base
        }
    }

    /// Could count for `ct` in some window (the assimilated gate is applied per window).
    fn candidate(&self, ct: CountType) -> bool {
        match ct {
            CountType::Strict => self.strict,
            CountType::Assimilated => self.strict || self.assimilated,
            CountType::Shadow => self.shadow,
        }
    }
}

/// Whether `s` meets every condition of `rule`; `contract_end` is the agreed end the event states,
/// else the one the population knows for the worker.
fn matches(rule: &MatchRule, s: &Separation<'_>, contract_end: Option<Date>) -> bool {
    let p = s.payload;
    let sep = p.separation();
    (rule.event_types.is_empty() || rule.event_types.contains(&p.event_type()))
        && (rule.legal_ground_prefixes.is_empty()
            || sep
                .and_then(|x| x.legal_ground.as_deref())
                .is_some_and(|g| {
                    rule.legal_ground_prefixes
                        .iter()
                        .any(|pre| segment_prefix(pre, g))
                }))
        && (rule.initiators.is_empty()
            || sep.is_some_and(|x| rule.initiators.contains(&x.initiator)))
        && rule
            .reason_personal
            .is_none_or(|v| sep.is_some_and(|x| x.reason_personal == v))
        && rule.position_closed.is_none_or(|v| s.position_closed == v)
        && rule.backfilled.is_none_or(|v| s.backfilled == v)
        && rule
            .employee_refused
            .is_none_or(|v| matches!(p, Payload::ContractNotRenewed(c) if c.employee_refused) == v)
        && rule
            .pressured
            .is_none_or(|v| matches!(p, Payload::Resignation(r) if r.pressured) == v)
        && rule
            .summary
            .is_none_or(|v| matches!(p, Payload::DismissalForCause(d) if d.summary) == v)
        && rule
            .before_contract_end
            .is_none_or(|v| contract_end.is_some_and(|end| s.effective_date < end) == v)
        && (rule.ai_attributed.is_empty()
            || sep.is_some_and(|x| rule.ai_attributed.contains(&ai_of(p, x.ai_attributed))))
        && (rule.contract_types.is_empty()
            || sep.is_some_and(|x| rule.contract_types.contains(&x.contract_type)))
        && rule.layoff_days_over.is_none_or(
            |n| matches!(p, Payload::TemporaryLayoff(t) if u64::from(t.expected_duration_days) > n),
        )
        && rule.hours_cut_pct_over.is_none_or(|n| {
            matches!(p, Payload::HoursReduced(h) if h.hours_before > 0
                && u128::from(h.hours_before.saturating_sub(h.hours_after)) * 100
                    > u128::from(n) * u128::from(h.hours_before))
        })
        && rule.hours_cut_months_at_least.is_none_or(
            |m| matches!(p, Payload::HoursReduced(h) if u64::from(h.expected_months) >= m),
        )
}

/// A role handed to AI counts as cited by the employer when the separation names no attribution.
fn ai_of(p: &Payload, given: AiAttribution) -> AiAttribution {
    match (p, given) {
        (Payload::RoleAutomated(_), AiAttribution::None) => AiAttribution::CitedByEmployer,
        _ => given,
    }
}

fn shift(d: Date, days: i64) -> Date {
    let n = days.clamp(-MAX_SHIFT_DAYS, MAX_SHIFT_DAYS);
    d.add_days(i32::try_from(n).unwrap_or(0))
}

/// One candidate window: its bounds, its members (sorted by date), and for plan windows the plan.
/// Rolling windows hold their members as a range of the eligible entries (no copy).
struct Candidate<'e> {
    start: Date,
    end: Date,
    /// Plan windows: the members. Rolling windows: empty (see `range`).
    members: Vec<&'e Entry<'e>>,
    /// Rolling windows: `eligible[range.0..range.1]`.
    range: (usize, usize),
    plan: Option<&'e str>,
}

impl<'e> Candidate<'e> {
    fn members<'c>(&'c self, eligible: &'c [&'e Entry<'e>]) -> &'c [&'e Entry<'e>] {
        if self.plan.is_some() {
            &self.members
        } else {
            &eligible[self.range.0..self.range.1]
        }
    }
}

/// A candidate window's weight for one count type: enough to rank it. The full judgement
/// (evidence, exclusions, steps) is built only for the windows reported.
#[derive(Debug, Clone, Copy)]
struct Score {
    index: usize,
    workers: u64,
    /// Counted events (a worker's earlier events stay in the evidence).
    events: usize,
    need: u64,
    covered: bool,
}

impl Score {
    fn met(&self) -> bool {
        self.covered && self.need > 0 && self.workers >= self.need
    }

    /// `workers / need`, cross-multiplied against another window (0 when no threshold applies).
    fn ratio_against(&self, other: &Self) -> u128 {
        if self.need == 0 {
            0
        } else {
            u128::from(self.workers) * u128::from(other.need.max(1))
        }
    }

    /// Peak order: met first, then ratio, then count; ties keep the earlier candidate.
    fn beats_as_peak(&self, other: &Self) -> bool {
        self.met()
            .cmp(&other.met())
            .then_with(|| self.ratio_against(other).cmp(&other.ratio_against(self)))
            .then_with(|| self.workers.cmp(&other.workers))
            == Ordering::Greater
    }

    /// Current order: most workers, then met, then ratio, then most events; ties keep the
    /// earlier candidate.
    fn beats_as_current(&self, other: &Self) -> bool {
        self.workers
            .cmp(&other.workers)
            .then_with(|| self.met().cmp(&other.met()))
            .then_with(|| self.ratio_against(other).cmp(&other.ratio_against(self)))
            .then_with(|| self.events.cmp(&other.events))
            == Ordering::Greater
    }
}

/// Distinct workers in a sliding window, by dense worker index.
struct Sliding {
    per_worker: Vec<u32>,
    workers: u64,
    events: usize,
}

impl Sliding {
    fn new(n: usize) -> Self {
        Self {
            per_worker: vec![0; n],
            workers: 0,
            events: 0,
        }
    }

    fn add(&mut self, w: usize) {
        if self.per_worker[w] == 0 {
            self.workers += 1;
        }
        self.per_worker[w] += 1;
        self.events += 1;
    }

    fn remove(&mut self, w: usize) {
        self.per_worker[w] -= 1;
        if self.per_worker[w] == 0 {
            self.workers -= 1;
        }
        self.events -= 1;
    }
}

/// A rolling window spec's counters slid over its candidates once, for every count type: at
/// each candidate, the distinct workers and the events of the strict, the assimilated (strict
/// or assimilated) and the shadow entries in it. Distinct workers are kept with per-worker
/// counters as the window slides (candidates are sorted by start, so both ends only move
/// forward). The count types read the same counters, so one sweep serves the three.
struct Sweep {
    /// (distinct workers, events) of each kind at each candidate, in candidate order.
    held: Vec<Held>,
    /// `next_x[i]`: the first index >= i whose entry is of kind x (the entries' count when none).
    next_strict: Vec<usize>,
    next_assimilated: Vec<usize>,
    next_shadow: Vec<usize>,
}

/// [`Sweep`]'s counters at one candidate: (distinct workers, events) per kind.
#[derive(Clone, Copy)]
struct Held {
    strict: (u64, usize),
    assimilated: (u64, usize),
    shadow: (u64, usize),
}

impl Sweep {
    fn new(workers: usize, eligible: &[&Entry<'_>], candidates: &[Candidate<'_>]) -> Self {
        let next = |keep: &dyn Fn(&Entry<'_>) -> bool| {
            let mut out = vec![eligible.len(); eligible.len() + 1];
            for i in (0..eligible.len()).rev() {
                out[i] = if keep(eligible[i]) { i } else { out[i + 1] };
            }
            out
        };
        let (mut strict, mut assimilated, mut shadow) = (
            Sliding::new(workers),
            Sliding::new(workers),
            Sliding::new(workers),
        );
        let (mut lo, mut hi) = (0, 0);
        let mut held = Vec::with_capacity(candidates.len());
        for c in candidates {
            let (clo, chi) = c.range;
            while hi < chi {
                let e = eligible[hi];
                if e.strict {
                    strict.add(e.worker_ix);
                }
                if e.strict || e.assimilated {
                    assimilated.add(e.worker_ix);
                }
                if e.shadow {
                    shadow.add(e.worker_ix);
                }
                hi += 1;
            }
            while lo < clo {
                let e = eligible[lo];
                if e.strict {
                    strict.remove(e.worker_ix);
                }
                if e.strict || e.assimilated {
                    assimilated.remove(e.worker_ix);
                }
                if e.shadow {
                    shadow.remove(e.worker_ix);
                }
                lo += 1;
            }
            held.push(Held {
                strict: (strict.workers, strict.events),
                assimilated: (assimilated.workers, assimilated.events),
                shadow: (shadow.workers, shadow.events),
            });
        }
        Self {
            held,
            next_strict: next(&|e| e.strict),
            next_assimilated: next(&|e| e.strict || e.assimilated),
            next_shadow: next(&|e| e.shadow),
        }
    }
}

/// One candidate window, judged for one count type.
#[derive(Debug, Clone)]
struct Judged<'e> {
    start: Date,
    end: Date,
    plan: Option<&'e str>,
    /// Counted entries, by date then id.
    counted: Vec<&'e Entry<'e>>,
    /// Distinct workers among `counted`.
    workers: u64,
    excluded: Vec<Excluded>,
    gate: Option<GateState>,
    denominator: u64,
    need: u64,
    /// The site event behind a closing or relocation alternative's `need`.
    site_event: Option<EventId>,
    covered: bool,
    /// Part-time events in the window owed notice (see `ThresholdStatus::notice_only`).
    notice_only: Vec<EventId>,
}

/// Which headcount question: the threshold basis or the employer-size test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum HeadcountKind {
    Basis,
    Coverage,
    /// The coverage test without the basis's contract-type, hours and months exclusions.
    CoverageEveryPerson,
}

struct UnitEval<'p, 'u> {
    pack: &'p RulePack,
    org: &'u OrgId,
    site: Option<&'u SiteId>,
    population: &'u dyn Population,
    steps: &'u [ComplianceStep<'u>],
    /// The unit's site closings and relocations.
    site_events: Vec<&'u SiteEvent<'u>>,
    as_of: Date,
    /// The first count date of each plan in this unit per legal count type, over every
    /// separation given.
    first_of_plan: BTreeMap<(CountType, &'u str), Date>,
    not_researched: bool,
    national_pack: Option<&'u str>,
    /// Distinct workers among the unit's entries (`Entry::worker_ix` is below it).
    workers: usize,
    /// (denominator, covered) by reference date.
    bases: BTreeMap<Date, (u64, bool)>,
    /// Headcount by (query kind, whole entity?, day), for this pack's exclusions.
    cache: BTreeMap<(HeadcountKind, bool, Date), u64>,
}

impl UnitEval<'_, '_> {
    fn window(&mut self, window: &Window, entries: &[Entry<'_>], out: &mut Vec<ThresholdStatus>) {
        let horizon = shift(self.as_of, window.look_ahead_days);
        let eligible: Vec<&Entry<'_>> = entries.iter().filter(|e| e.date <= horizon).collect();
        if eligible.is_empty() {
            return;
        }
        let candidates = candidates(window, &eligible);
        if candidates.is_empty() {
            return;
        }
        // The rolling windows' counters, slid once for every count type.
        let sweep = (window.kind == WindowKind::Rolling)
            .then(|| Sweep::new(self.workers, &eligible, &candidates));
        for &ct in CountType::ALL {
            let counted_dates: Vec<Date> = eligible
                .iter()
                .filter(|e| e.candidate(ct))
                .map(|e| e.date)
                .collect();
            // The exit the current window must hold: the latest counted one on or before `as_of`,
            // else the first planned one; with no counted exit, the latest exit of any kind.
            let reference = counted_dates
                .iter()
                .copied()
                .filter(|d| *d <= self.as_of)
                .max()
                .or_else(|| counted_dates.first().copied())
                .or_else(|| {
                    eligible
                        .iter()
                        .map(|e| e.date)
                        .filter(|d| *d <= self.as_of)
                        .max()
                })
                .unwrap_or(eligible[0].date);
            // A sweep exactly for rolling windows.
            let scores: Vec<Score> = match &sweep {
                Some(sweep) => self.score_rolling(ct, &eligible, &candidates, sweep),
                None => candidates
                    .iter()
                    .enumerate()
                    .map(|(i, c)| self.score_members(ct, i, c.start, c.end, &c.members))
                    .collect(),
            };
            let mut peak: Option<Score> = None;
            let mut current: Option<Score> = None;
            for score in scores {
                let c = &candidates[score.index];
                let holds_reference = match window.kind {
                    // The reference is a counted date (or, with none, an entry date): every
                    // window spanning it holds it.
                    WindowKind::Rolling => c.start <= reference && reference <= c.end,
                    WindowKind::Correlation => c.members.iter().any(|e| {
                        e.date == reference && (counted_dates.is_empty() || e.candidate(ct))
                    }),
                };
                if holds_reference && current.is_none_or(|b| score.beats_as_current(&b)) {
                    current = Some(score);
                }
                if peak.is_none_or(|b| score.beats_as_peak(&b)) {
                    peak = Some(score);
                }
            }
            let current = current.map(|sc| {
                let c = &candidates[sc.index];
                self.judge(ct, c, c.members(&eligible))
            });
            let peak = peak.map(|sc| {
                let c = &candidates[sc.index];
                self.judge(ct, c, c.members(&eligible))
            });
            for (role, judged) in [(WindowRole::Current, current), (WindowRole::Peak, peak)] {
                if let Some(j) = judged {
                    let wave = match window.kind {
                        WindowKind::Rolling => {
                            wave_start(&counted_dates, window.days.unwrap_or(1), j.start)
                                .to_string()
                        }
                        WindowKind::Correlation => j.plan.unwrap_or_default().to_owned(),
                    };
                    let key = format!("{}/{}/{wave}", window.name, role.as_str());
                    out.push(self.status(window, ct, role, key, j));
                }
            }
        }
    }

    /// Scores every rolling candidate of `ct` from the window's [`Sweep`] (its counters at each
    /// candidate). Candidates that do not start on a date this count could include are skipped
    /// when there is such a date, so a reported start is a counted date.
    fn score_rolling(
        &mut self,
        ct: CountType,
        eligible: &[&Entry<'_>],
        candidates: &[Candidate<'_>],
        sweep: &Sweep,
    ) -> Vec<Score> {
        let any_candidate = eligible.iter().any(|e| e.candidate(ct));
        let min_strict = self
            .pack
            .counts
            .assimilated_gate
            .as_ref()
            .map(|g| g.min_strict);
        let mut out = Vec::with_capacity(candidates.len());
        for (i, (c, held)) in candidates.iter().zip(&sweep.held).enumerate() {
            let (clo, chi) = c.range;
            if any_candidate
                && !eligible[clo..chi]
                    .iter()
                    .take_while(|e| e.date == c.start)
                    .any(|e| e.candidate(ct))
            {
                continue;
            }
            let (counter, first) = match ct {
                CountType::Strict => (held.strict, sweep.next_strict[clo]),
                CountType::Assimilated if min_strict.is_none_or(|m| held.strict.0 >= m) => {
                    (held.assimilated, sweep.next_assimilated[clo])
                }
                CountType::Assimilated => (held.strict, sweep.next_strict[clo]),
                CountType::Shadow => (held.shadow, sweep.next_shadow[clo]),
            };
            let (workers, events) = counter;
            let reference = if first < chi {
                eligible[first].date
            } else {
                c.start
            };
            let (denominator, covered) = self.basis(reference);
            out.push(Score {
                index: i,
                workers,
                events,
                need: self.need(denominator, c.start, c.end).0,
                covered,
            });
        }
        out
    }

    /// Scores one plan window (plans are few; their members are counted directly).
    fn score_members(
        &mut self,
        ct: CountType,
        index: usize,
        start: Date,
        end: Date,
        members: &[&Entry<'_>],
    ) -> Score {
        let (counted, _) = self.counted(ct, members);
        let reference = counted.first().map_or(start, |e| e.date);
        let (denominator, covered) = self.basis(reference);
        Score {
            index,
            workers: distinct_workers(counted.iter().copied()),
            events: counted.len(),
            need: self.need(denominator, start, end).0,
            covered,
        }
    }

    /// The count needed in the window `start..=end` at `denominator` (see [`needed`]), and the
    /// site event that made a closing or relocation alternative apply, if the need is its.
    fn need(&self, denominator: u64, start: Date, end: Date) -> (u64, Option<EventId>) {
        needed(self.pack, denominator, |rule| {
            self.site_events
                .iter()
                .filter(|e| e.satisfies(rule, start, end))
                .min_by_key(|e| (e.effective_date, e.event_id))
                .map(|e| e.event_id)
        })
    }

    /// The members `ct` counts, and the gate state (for packs with a gate).
    fn counted<'e>(
        &self,
        ct: CountType,
        members: &[&'e Entry<'e>],
    ) -> (Vec<&'e Entry<'e>>, Option<GateState>) {
        let strict_workers = distinct_workers(members.iter().copied().filter(|e| e.strict));
        let gate = self
            .pack
            .counts
            .assimilated_gate
            .as_ref()
            .map(|g| GateState {
                strict_workers,
                min_strict: g.min_strict,
                open: strict_workers >= g.min_strict,
            });
        let open = gate.is_none_or(|g| g.open);
        let counted = members
            .iter()
            .copied()
            .filter(|e| ct.counts(e, open))
            .collect();
        (counted, gate)
    }

    /// The headcount basis at the pack's snapshot before `reference`, and whether the employer
    /// passes the pack's coverage test there.
    fn basis(&mut self, reference: Date) -> (u64, bool) {
        if let Some(b) = self.bases.get(&reference) {
            return *b;
        }
        let b = self.basis_uncached(reference);
        self.bases.insert(reference, b);
        b
    }

    fn basis_uncached(&mut self, reference: Date) -> (u64, bool) {
        let basis = &self.pack.population;
        let snapshot = shift(reference, -basis.days_before_first_separation);
        let samples = u64::try_from(basis.average_samples.max(1)).unwrap_or(1);
        let step_days = basis.sample_step_days;
        let mut sum: u128 = 0;
        for k in 0..samples {
            let step = i64::try_from(k).unwrap_or(0).saturating_mul(step_days);
            sum += u128::from(self.headcount(false, shift(snapshot, -step)));
        }
        let mean = (sum + u128::from(samples / 2)) / u128::from(samples);
        let denominator = u64::try_from(mean).unwrap_or(u64::MAX);
        let covered = match self.pack.coverage.clone() {
            None => true,
            Some(cov) => self.coverage_headcount(&cov, snapshot, denominator) >= cov.min_headcount,
        };
        (denominator, covered)
    }

    /// The full judgement of one window for `ct`: evidence, exclusions with reasons, gate.
    fn judge<'e>(
        &mut self,
        ct: CountType,
        c: &Candidate<'e>,
        members: &[&'e Entry<'e>],
    ) -> Judged<'e> {
        let (counted, gate) = self.counted(ct, members);
        let gate_open = gate.is_none_or(|g| g.open);
        let mut excluded = Vec::new();
        for e in members {
            if ct.counts(e, gate_open) {
                continue;
            }
            if ct == CountType::Assimilated && e.assimilated && !gate_open {
                excluded.push(Excluded {
                    event_id: e.id,
                    reason: format!(
                        "assimilated termination not added: {} redundancies stricto sensu in the \
                         window, fewer than {}",
                        gate.map_or(0, |g| g.strict_workers),
                        gate.map_or(0, |g| g.min_strict)
                    ),
                });
            } else if let Some(reason) = &e.excluded {
                if ct != CountType::Shadow || reason.starts_with("outside") {
                    excluded.push(Excluded {
                        event_id: e.id,
                        reason: reason.clone(),
                    });
                }
            }
        }
        let notice_only = members
            .iter()
            .filter(|e| match ct {
                CountType::Strict => e.notice_strict,
                CountType::Assimilated => e.notice_assimilated,
                CountType::Shadow => false,
            })
            .map(|e| e.id)
            .collect();
        let workers = distinct_workers(counted.iter().copied());
        let reference = counted.first().map_or(c.start, |e| e.date);
        let (denominator, covered) = self.basis(reference);
        let (need, site_event) = self.need(denominator, c.start, c.end);
        Judged {
            start: c.start,
            end: c.end,
            plan: c.plan,
            counted,
            workers,
            excluded,
            gate: if ct == CountType::Assimilated {
                gate
            } else {
                None
            },
            denominator,
            need,
            site_event,
            covered,
            notice_only,
        }
    }

    /// The pack's headcount basis at the end of `on`: the unit's, or the whole entity's.
    fn headcount(&mut self, whole_entity: bool, on: Date) -> u64 {
        let site = if whole_entity {
            None
        } else {
            self.site.cloned()
        };
        self.ask(HeadcountKind::Basis, site, on, None, None)
    }

    /// The headcount the pack's employer-size test reads: the unit's or the entity's, within a
    /// jurisdiction (NY) or the most over a look-back (Cal-WARN) where the pack says so.
    fn coverage_headcount(&mut self, cov: &Coverage, snapshot: Date, denominator: u64) -> u64 {
        let whole = matches!(cov.scope, CoverageScope::LegalEntity) || self.site.is_none();
        if cov.look_back_days.is_none()
            && cov.within_jurisdiction.is_none()
            && !cov.every_person
            && !whole
        {
            return denominator;
        }
        let site = if whole { None } else { self.site.cloned() };
        let kind = if cov.every_person {
            HeadcountKind::CoverageEveryPerson
        } else {
            HeadcountKind::Coverage
        };
        self.ask(
            kind,
            site,
            snapshot,
            cov.within_jurisdiction.clone(),
            cov.look_back_days,
        )
    }

    fn ask(
        &mut self,
        kind: HeadcountKind,
        site: Option<SiteId>,
        on: Date,
        jurisdiction_prefix: Option<String>,
        max_over_days: Option<u32>,
    ) -> u64 {
        let key = (kind, site.is_none(), on);
        if let Some(n) = self.cache.get(&key) {
            return *n;
        }
        let basis = &self.pack.population;
        let every_person = kind == HeadcountKind::CoverageEveryPerson;
        let n = self.population.headcount(&PopulationQuery {
            org: self.org.clone(),
            site,
            on,
            exclude_relationships: basis.exclude_relationships.clone(),
            exclude_contract_types: if every_person {
                Vec::new()
            } else {
                basis.exclude_contract_types.clone()
            },
            jurisdiction_prefix,
            max_over_days,
            part_time_below_weekly_hours: basis
                .part_time_below_weekly_hours
                .filter(|_| !every_person),
            part_time_below_months_of_12: basis
                .part_time_below_months_of_12
                .filter(|_| !every_person),
        });
        self.cache.insert(key, n);
        n
    }

    fn status(
        &self,
        window: &Window,
        ct: CountType,
        role: WindowRole,
        window_key: String,
        j: Judged<'_>,
    ) -> ThresholdStatus {
        let count = j.workers;
        let level = if !j.covered || j.need == 0 {
            None
        } else if count >= j.need {
            Some(AlertLevel::Met)
        } else if u128::from(count) * 100 >= u128::from(j.need) * u128::from(APPROACHING_PERCENT) {
            Some(AlertLevel::Approaching)
        } else {
            None
        };
        #[allow(clippy::cast_precision_loss)] // counts are far below 2^52
        let ratio = if j.need == 0 {
            0.0
        } else {
            count as f64 / j.need as f64
        };
        let steps = match ct {
            CountType::Strict | CountType::Assimilated => self.step_checks(ct, &j.counted, level),
            CountType::Shadow => Vec::new(),
        };
        let missing_steps = if level.is_some() {
            let late_or_missing = steps
                .iter()
                .filter(|s| s.state != StepState::OnTime)
                .map(describe_step);
            let too_early = steps
                .iter()
                .filter(|s| !s.effective_too_early.is_empty())
                .map(describe_too_early);
            late_or_missing.chain(too_early).collect()
        } else {
            Vec::new()
        };
        let floor_only = self.national_pack.is_some();
        let label = match ct {
            CountType::Shadow => SHADOW_LABEL.to_owned(),
            CountType::Strict | CountType::Assimilated => {
                let mut l = if ct == CountType::Strict {
                    format!("{}: counted as the statute counts", self.pack.statute)
                } else {
                    format!(
                        "{}: assimilated: counted as a dismissal in substance",
                        self.pack.statute
                    )
                };
                if self.pack.status_of_law == LawStatus::DraftNotInForce {
                    l.push_str("; draft, not in force");
                }
                if let Some(national) = self.national_pack {
                    l.push_str(&format!(
                        "; floor_only: the Directive floor, not national law (see {national})"
                    ));
                }
                if self.not_researched {
                    l.push_str("; the Member State's choice of variant was not researched");
                }
                if window.heuristic {
                    l.push_str("; heuristic window, not statutory");
                } else if window.confidence != Confidence::Verified {
                    l.push_str("; window not verified");
                }
                if !j.covered {
                    l.push_str("; employer below the pack's coverage test");
                }
                if j.need == 0 {
                    l.push_str("; no threshold applies at this headcount");
                }
                if let Some(id) = j.site_event {
                    l.push_str(&format!(
                        "; the site closed or moved ({id}): the closing or relocation threshold \
                         applies"
                    ));
                }
                if !j.notice_only.is_empty() {
                    l.push_str(&format!(
                        "; {} part-time not counted but owed notice",
                        j.notice_only.len()
                    ));
                }
                l
            }
        };
        ThresholdStatus {
            pack: self.pack.id.clone(),
            org: self.org.clone(),
            unit: self
                .site
                .map_or_else(|| self.org.to_string(), ToString::to_string),
            unit_kind: self.pack.unit,
            window: window.name.clone(),
            role,
            window_key,
            window_start: j.start,
            window_end: j.end,
            count_type: ct,
            count_date: self.pack.count_date(),
            count,
            event_ids: j.counted.iter().map(|e| e.id).collect(),
            excluded: j.excluded,
            gate: j.gate,
            denominator: j.denominator,
            threshold: j.need,
            ratio,
            level,
            steps,
            missing_steps,
            floor_only,
            label,
            notice_only: j.notice_only,
            site_event: j.site_event,
        }
    }

    /// Each required step for each plan among `counted`. A step counts only for its own plan
    /// (`plan_id`), for this org (and site, for site units), dated on or before `as_of` and at
    /// least the lead time before the plan's first separation in this unit. Separations with no
    /// plan cannot be matched to any step.
    fn step_checks(
        &self,
        ct: CountType,
        counted: &[&Entry<'_>],
        level: Option<AlertLevel>,
    ) -> Vec<StepCheck> {
        let mut plans: BTreeMap<Option<&str>, Date> = BTreeMap::new();
        for e in counted {
            let first = match e.plan {
                Some(p) => self.first_of_plan.get(&(ct, p)).copied().unwrap_or(e.date),
                None => e.date,
            };
            plans
                .entry(e.plan)
                .and_modify(|d| *d = (*d).min(first))
                .or_insert(first);
        }
        let mut out = Vec::new();
        for (plan, first) in plans {
            for req in &self.pack.procedure {
                let due_by = shift(first, -req.min_lead_days);
                let taken = plan.and_then(|p| {
                    self.steps
                        .iter()
                        .filter(|s| {
                            s.kind == req.event_type
                                && s.org == self.org
                                && s.plan_id == p
                                && self.site.is_none_or(|site| s.site == site)
                                && s.effective_date <= self.as_of
                        })
                        .min_by_key(|s| (s.effective_date, s.event_id))
                });
                let earliest_effective = taken
                    .zip(req.blocks_effect.as_ref())
                    .map(|(s, b)| b.earliest_effective(s.effective_date));
                let effective_too_early = earliest_effective.map_or_else(Vec::new, |earliest| {
                    counted
                        .iter()
                        .filter(|e| e.plan == plan && e.effective < earliest)
                        .map(|e| e.id)
                        .collect()
                });
                let (state, event_id, days_late) = match taken {
                    Some(s) if s.effective_date <= due_by => {
                        (StepState::OnTime, Some(s.event_id), 0)
                    }
                    Some(s) => {
                        let late = i64::from(s.effective_date.days()) - i64::from(due_by.days());
                        (
                            StepState::Late,
                            Some(s.event_id),
                            u32::try_from(late).unwrap_or(u32::MAX),
                        )
                    }
                    None if level.is_some() => (StepState::Missing, None, 0),
                    None => continue,
                };
                out.push(StepCheck {
                    step: req.name.clone(),
                    event_type: req.event_type,
                    plan: plan.map(str::to_owned),
                    first_separation: first,
                    due_by,
                    state,
                    event_id,
                    days_late,
                    earliest_effective,
                    effective_too_early,
                });
            }
        }
        out
    }
}

fn describe_step(s: &StepCheck) -> String {
    let plan = s.plan.as_deref().map_or_else(
        || "separations with no plan".to_owned(),
        |p| format!("plan {p}"),
    );
    match s.state {
        StepState::Late => format!(
            "{}: {} for {plan} late by {} days (due by {}, first separation {})",
            s.step, s.event_type, s.days_late, s.due_by, s.first_separation
        ),
        StepState::Missing | StepState::OnTime => format!(
            "{}: {} for {plan} missing (due by {}, first separation {})",
            s.step, s.event_type, s.due_by, s.first_separation
        ),
    }
}

fn describe_too_early(s: &StepCheck) -> String {
    let plan = s.plan.as_deref().map_or_else(
        || "separations with no plan".to_owned(),
        |p| format!("plan {p}"),
    );
    format!(
        "{}: {} separation(s) of {plan} take effect before {}, the end of the waiting period \
         after the {}",
        s.step,
        s.effective_too_early.len(),
        s.earliest_effective
            .map_or_else(String::new, |d| d.to_string()),
        s.event_type
    )
}

fn distinct_workers<'e>(entries: impl Iterator<Item = &'e Entry<'e>>) -> u64 {
    let mut workers: Vec<u32> = entries.map(|e| e.worker).collect();
    workers.sort_unstable();
    workers.dedup();
    workers.len() as u64
}

/// The candidate windows of one window spec over `eligible` (sorted by date).
fn candidates<'e>(window: &Window, eligible: &[&'e Entry<'e>]) -> Vec<Candidate<'e>> {
    match window.kind {
        WindowKind::Rolling => {
            let days = window.days.unwrap_or(1).max(1);
            let mut starts: Vec<Date> = eligible.iter().map(|e| e.date).collect();
            starts.dedup();
            starts
                .into_iter()
                .map(|start| {
                    let end = shift(start, days - 1);
                    let lo = eligible.partition_point(|e| e.date < start);
                    let hi = eligible.partition_point(|e| e.date <= end);
                    Candidate {
                        start,
                        end,
                        members: Vec::new(),
                        range: (lo, hi),
                        plan: None,
                    }
                })
                .collect()
        }
        WindowKind::Correlation => {
            let mut groups: BTreeMap<&str, Vec<&Entry<'_>>> = BTreeMap::new();
            for e in eligible {
                if let Some(c) = e.plan {
                    groups.entry(c).or_default().push(e);
                }
            }
            let mut c: Vec<Candidate<'e>> = groups
                .into_iter()
                .filter_map(|(plan, members)| {
                    Some(Candidate {
                        start: members.first()?.date,
                        end: members.last()?.date,
                        members,
                        range: (0, 0),
                        plan: Some(plan),
                    })
                })
                .collect();
            c.sort_by_key(|c| (c.start, c.end));
            c
        }
    }
}

/// The start of the wave holding `at`: the first of a run of `dates` (sorted) in which no two
/// consecutive dates are `days` or more apart, so no window of that length spans two waves.
fn wave_start(dates: &[Date], days: i64, at: Date) -> Date {
    let mut start = at;
    let mut previous: Option<Date> = None;
    for &d in dates {
        if d > at {
            break;
        }
        if previous.is_none_or(|p| i64::from(d.days()) - i64::from(p.days()) >= days) {
            start = d;
        }
        previous = Some(d);
    }
    start
}

/// The smallest count that meets some alternative applicable at `headcount`; 0 if none applies.
/// An alternative with a site-event condition applies only when `site_event` finds one; the event
/// is returned with the need when that alternative gives the smallest (ties: the first listed).
fn needed(
    pack: &RulePack,
    headcount: u64,
    site_event: impl Fn(&SiteEventRule) -> Option<EventId>,
) -> (u64, Option<EventId>) {
    pack.thresholds
        .iter()
        .filter(|t| {
            t.headcount_min.is_none_or(|lo| headcount >= lo)
                && t.headcount_max.is_none_or(|hi| headcount <= hi)
        })
        .filter_map(|t| match &t.site_event {
            None => Some((t, None)),
            Some(rule) => site_event(rule).map(|id| (t, Some(id))),
        })
        .filter_map(|(t, event)| {
            let mut need: u64 = 1;
            if let Some(c) = t.count {
                need = need.max(if t.inclusive { c } else { c.saturating_add(1) });
            }
            if let Some(share) = t.share {
                if headcount == 0 {
                    return None;
                }
                // Shares are compared exactly, in parts per million.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let ppm = (share * 1e6).round() as u128;
                let product = ppm * u128::from(headcount);
                let by_share = if t.inclusive {
                    product.div_ceil(1_000_000)
                } else {
                    product / 1_000_000 + 1
                };
                need = need.max(u64::try_from(by_share).unwrap_or(u64::MAX));
            }
            Some((need, event))
        })
        .min_by_key(|(need, _)| *need)
        .unwrap_or((0, None))
}
