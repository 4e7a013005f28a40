//! Signal views: hiring (pauses, graduate intake against baseline) and AI adoption (usage, tools,
//! automated roles, AI-attributed separations, and the China "AI+" targets as an external reference
//! only). Token counts are reported as activity, never as adoption (domain-rules.md §9). Reads the
//! projection; never changes it.

use super::separations::{matching, AiShare};
use super::{ratio, At, Query};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use wfl_domain::{AiMetric, Date, EventId, OrgId, Payload, SiteId};

/// The hiring pauses of one org unit (scope) at one site in the window: the latest of them and,
/// if any, the resumption that ended it, with how many there were. One row per unit, not per
/// pause, so the answer's size is the org's structure, never its history; the pauses and
/// resumptions behind a row are its evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HiringPauseRow {
    pub org: OrgId,
    pub site: SiteId,
    /// The org unit paused.
    pub scope: String,
    /// The latest pause's date.
    pub paused_on: Date,
    /// How many pauses of this unit at this site overlap the window.
    #[serde(default)]
    pub pauses: u64,
    /// The first of them's date.
    #[serde(default)]
    pub first_paused_on: Option<Date>,
    /// The announced end, if any.
    pub until: Option<Date>,
    pub reqs_frozen: u32,
    pub reqs_cancelled: u32,
    /// The first `HiringResumed` for the same org and scope dated on or after the pause.
    pub resumed_on: Option<Date>,
    pub reqs_reopened: u32,
    /// Every pause and resumption of the row, in effective order.
    pub event_ids: Vec<EventId>,
}

/// Graduate intake for one cohort year against its baseline (domain-rules.md §6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraduateIntakeRow {
    pub org: OrgId,
    pub cohort_year: u32,
    /// From the latest intake event (by effective date, then sequence).
    pub planned: u32,
    pub baseline: u32,
    pub actual: Option<u32>,
    /// `planned / baseline`.
    pub planned_ratio: Option<f64>,
    /// `actual / baseline`.
    pub actual_ratio: Option<f64>,
    /// `baseline − actual` when the actual intake is known, else `baseline − planned`; negative
    /// when the intake exceeds the baseline.
    pub shortfall: i64,
    /// `actual` or `planned`: what the shortfall was measured from.
    pub shortfall_basis: String,
    /// A `GraduateIntakeReduced` was recorded for this year.
    pub reduced: bool,
    /// Every intake event for this year, oldest first.
    pub event_ids: Vec<EventId>,
}

/// Inflow signals: paused requisitions and graduate intake.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HiringSignalsView {
    /// The ledger sequence this answer was computed at.
    pub as_of_sequence: u64,
    /// Pauses overlapping the window, by pause date.
    pub pauses: Vec<HiringPauseRow>,
    /// Pauses not yet resumed.
    pub open_pauses: u64,
    /// Requisitions frozen by pauses not yet resumed.
    pub reqs_frozen_open: u64,
    /// Requisitions cancelled by the pauses listed.
    pub reqs_cancelled: u64,
    /// By org and cohort year.
    pub graduate_intake: Vec<GraduateIntakeRow>,
}

/// The latest AI-usage measurement for one scope and metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AiUsageRow {
    pub org: OrgId,
    pub scope: String,
    pub metric: AiMetric,
    pub period_start: Date,
    pub period_end: Date,
    pub value: u64,
    pub population: Option<u64>,
    /// `value / population`, for `active_users` only.
    pub active_user_share: Option<f64>,
    /// `adoption` (active users) or `activity` (tokens: not adoption, not productivity).
    pub measure: String,
    pub used_in_performance_review: bool,
    pub event_id: EventId,
}

/// An AI tool at one org unit of one site: its roll-outs in the window (one row however often it
/// was rolled out), the latest one's terms first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AiToolRow {
    pub org: OrgId,
    pub site: SiteId,
    pub scope: String,
    pub tool: String,
    /// As the latest roll-out says.
    pub mandatory: bool,
    /// The latest roll-out's.
    pub effective_date: Date,
    /// The latest roll-out.
    pub event_id: EventId,
    /// The first roll-out's in the window.
    pub first_effective_date: Date,
    /// Roll-outs of this tool at this scope and site in the window.
    pub rollouts: u64,
    /// Every roll-out, oldest first (the evidence).
    pub event_ids: Vec<EventId>,
}

/// Roles or task sets taken over by AI systems.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolesAutomated {
    pub count: u64,
    /// Of which a worker was separated.
    pub with_separation: u64,
    pub event_ids: Vec<EventId>,
}

/// A target from outside the ledger, shown for reference only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalTarget {
    pub series: String,
    pub year: u32,
    /// The target is "above this percentage".
    pub above_pct: u32,
    pub label: String,
}

/// AI adoption inside the org, with the external targets kept apart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AiAdoptionView {
    /// The ledger sequence this answer was computed at.
    pub as_of_sequence: u64,
    /// Latest measurement per org, scope and metric.
    pub usage: Vec<AiUsageRow>,
    pub tools: Vec<AiToolRow>,
    pub roles_automated: RolesAutomated,
    /// AI attribution over the separations matching the query.
    pub ai_attributed_separations: AiShare,
    /// Not comparable to anything above; see each label.
    pub external_reference: Vec<ExternalTarget>,
}

/// The China "AI+" targets (国发〔2025〕11号): reference only, definition unknown.
fn ai_plus_targets() -> Vec<ExternalTarget> {
    let label = "State Council 国发〔2025〕11号 application penetration target; official \
                 statistical definition unknown; not comparable to the figures above";
    [(2027, 70), (2030, 90)]
        .into_iter()
        .map(|(year, above_pct)| ExternalTarget {
            series: "CN AI+ application penetration (新一代智能终端、智能体等应用普及率)"
                .to_owned(),
            year,
            above_pct,
            label: label.to_owned(),
        })
        .collect()
}

pub(super) fn hiring(p: &At<'_>, q: &Query) -> HiringSignalsView {
    // Pauses and resumptions of the org, in effective order; a resumption ends the latest open
    // pause of the same scope.
    let mut events: Vec<_> = p
        .signal_entries(q.org.as_ref())
        .filter(|(_, e)| q.org_matches(&e.place.org_id))
        .filter(|(_, e)| {
            matches!(
                e.payload(),
                Payload::HiringPaused(_) | Payload::HiringResumed(_)
            )
        })
        .collect();
    events.sort_by_key(|(_, e)| (e.effective_date, e.sequence));
    let mut pauses: Vec<HiringPauseRow> = Vec::new();
    let mut open: BTreeMap<(OrgId, String), Vec<usize>> = BTreeMap::new();
    for (id, e) in events {
        match e.payload() {
            Payload::HiringPaused(h) => {
                open.entry((e.place.org_id.clone(), h.scope.clone()))
                    .or_default()
                    .push(pauses.len());
                pauses.push(HiringPauseRow {
                    org: e.place.org_id.clone(),
                    site: e.place.site_id.clone(),
                    scope: h.scope.clone(),
                    paused_on: e.effective_date,
                    pauses: 1,
                    first_paused_on: Some(e.effective_date),
                    until: h.until,
                    reqs_frozen: h.reqs_frozen,
                    reqs_cancelled: h.reqs_cancelled,
                    resumed_on: None,
                    reqs_reopened: 0,
                    event_ids: vec![*id],
                });
            }
            Payload::HiringResumed(r) => {
                let idx = open
                    .get_mut(&(e.place.org_id.clone(), r.scope.clone()))
                    .and_then(Vec::pop);
                if let Some(row) = idx.and_then(|i| pauses.get_mut(i)) {
                    row.resumed_on = Some(e.effective_date);
                    row.reqs_reopened = r.reqs_reopened;
                    row.event_ids.push(*id);
                }
            }
            _ => {}
        }
    }
    let pauses: Vec<HiringPauseRow> = pauses
        .into_iter()
        .filter(|r| q.site_matches(&r.site))
        .filter(|r| q.to.is_none_or(|t| r.paused_on <= t))
        .filter(|r| q.from.is_none_or(|f| r.resumed_on.is_none_or(|d| d >= f)))
        .collect();
    let still_open = || pauses.iter().filter(|r| r.resumed_on.is_none());

    type Order = (Date, u64);
    type Intake = (GraduateIntakeRow, Order, Vec<(Order, EventId)>);
    let mut intake: BTreeMap<(OrgId, u32), Intake> = BTreeMap::new();
    for (id, e) in p.signal_entries(q.org.as_ref()).filter(|(_, e)| {
        q.org_matches(&e.place.org_id)
            && q.site_matches(&e.place.site_id)
            && q.in_window(e.effective_date)
    }) {
        let (g, reduced) = match e.payload() {
            Payload::GraduateIntakeSet(g) => (g, false),
            Payload::GraduateIntakeReduced(g) => (g, true),
            _ => continue,
        };
        let order = (e.effective_date, e.sequence);
        let (row, latest, ids) = intake
            .entry((e.place.org_id.clone(), g.cohort_year))
            .or_insert_with(|| {
                (
                    GraduateIntakeRow {
                        org: e.place.org_id.clone(),
                        cohort_year: g.cohort_year,
                        planned: g.planned,
                        baseline: g.baseline,
                        actual: g.actual,
                        planned_ratio: None,
                        actual_ratio: None,
                        shortfall: 0,
                        shortfall_basis: String::new(),
                        reduced: false,
                        event_ids: Vec::new(),
                    },
                    order,
                    Vec::new(),
                )
            });
        if order >= *latest {
            *latest = order;
            row.planned = g.planned;
            row.baseline = g.baseline;
            row.actual = g.actual;
        }
        row.reduced |= reduced;
        ids.push((order, *id));
    }
    let graduate_intake = intake
        .into_values()
        .map(|(mut row, _, mut ids)| {
            ids.sort_unstable();
            row.event_ids = ids.into_iter().map(|(_, id)| id).collect();
            row.planned_ratio = ratio(u64::from(row.planned), u64::from(row.baseline));
            row.actual_ratio = row
                .actual
                .and_then(|a| ratio(u64::from(a), u64::from(row.baseline)));
            let (measured, basis) = row
                .actual
                .map_or((row.planned, "planned"), |a| (a, "actual"));
            row.shortfall = i64::from(row.baseline) - i64::from(measured);
            row.shortfall_basis = basis.to_owned();
            row
        })
        .collect();

    HiringSignalsView {
        as_of_sequence: p.last_sequence(),
        open_pauses: still_open().count() as u64,
        reqs_frozen_open: still_open().map(|r| u64::from(r.reqs_frozen)).sum(),
        reqs_cancelled: pauses.iter().map(|r| u64::from(r.reqs_cancelled)).sum(),
        pauses: by_unit(pauses),
        graduate_intake,
    }
}

/// The pauses (in effective order) folded into one row per org, site and scope: the latest
/// pause's fields, how many there were, the first one's date, every event behind them. Rows by
/// their latest pause's date, then unit.
fn by_unit(pauses: Vec<HiringPauseRow>) -> Vec<HiringPauseRow> {
    use std::collections::btree_map::Entry;
    let mut units: BTreeMap<(OrgId, SiteId, String), HiringPauseRow> = BTreeMap::new();
    for row in pauses {
        match units.entry((row.org.clone(), row.site.clone(), row.scope.clone())) {
            Entry::Vacant(slot) => {
                slot.insert(row);
            }
            Entry::Occupied(slot) => {
                let unit = slot.into_mut();
                let mut ids = std::mem::take(&mut unit.event_ids);
                ids.extend(row.event_ids.iter().copied());
                let (first, pauses) = (unit.first_paused_on, unit.pauses);
                *unit = HiringPauseRow {
                    pauses: pauses + 1,
                    first_paused_on: first,
                    event_ids: ids,
                    ..row
                };
            }
        }
    }
    let mut rows: Vec<HiringPauseRow> = units.into_values().collect();
    rows.sort_by(|a, b| {
        (a.paused_on, &a.org, &a.site, &a.scope).cmp(&(b.paused_on, &b.org, &b.site, &b.scope))
    });
    rows
}

/// With `counts_only`, the AI-attributed separations come from the tallies when `p` has them
/// (their `event_ids` empty).
pub(super) fn ai(p: &At<'_>, q: &Query, counts_only: bool) -> AiAdoptionView {
    let in_scope =
        |e: &super::Entry| q.org_matches(&e.place.org_id) && q.site_matches(&e.place.site_id);

    type Latest = (AiUsageRow, (Date, Date, u64));
    let mut usage: BTreeMap<(OrgId, String, AiMetric), Latest> = BTreeMap::new();
    // One row per (org, site, scope, tool); the order key is its latest roll-out's.
    type Rollouts = ((Date, u64), (Date, u64), AiToolRow);
    let mut tools: BTreeMap<(OrgId, SiteId, String, String), Rollouts> = BTreeMap::new();
    let mut roles = RolesAutomated::default();
    for (id, e) in p
        .signal_entries(q.org.as_ref())
        .filter(|(_, e)| in_scope(e))
    {
        match e.payload() {
            // Measurements belong to the window their period ends in.
            Payload::AiUsageMeasured(m) if q.in_window(m.period_end) => {
                let order = (m.period_end, e.effective_date, e.sequence);
                let active_user_share = match (m.metric, m.population) {
                    (AiMetric::ActiveUsers, Some(pop)) => ratio(m.value, pop),
                    _ => None,
                };
                let measure = match m.metric {
                    AiMetric::ActiveUsers => "adoption",
                    AiMetric::Tokens => "activity",
                };
                let row = AiUsageRow {
                    org: e.place.org_id.clone(),
                    scope: m.scope.clone(),
                    metric: m.metric,
                    period_start: m.period_start,
                    period_end: m.period_end,
                    value: m.value,
                    population: m.population,
                    active_user_share,
                    measure: measure.to_owned(),
                    used_in_performance_review: m.used_in_performance_review,
                    event_id: *id,
                };
                let key = (e.place.org_id.clone(), m.scope.clone(), m.metric);
                if usage.get(&key).is_none_or(|(_, latest)| order > *latest) {
                    usage.insert(key, (row, order));
                }
            }
            Payload::AiToolRolledOut(t) if q.in_window(e.effective_date) => {
                let order = (e.effective_date, e.sequence);
                let key = (
                    e.place.org_id.clone(),
                    e.place.site_id.clone(),
                    t.scope.clone(),
                    t.tool.clone(),
                );
                let (first, latest, row) = tools.entry(key).or_insert_with(|| {
                    (
                        order,
                        order,
                        AiToolRow {
                            org: e.place.org_id.clone(),
                            site: e.place.site_id.clone(),
                            scope: t.scope.clone(),
                            tool: t.tool.clone(),
                            mandatory: t.mandatory,
                            effective_date: e.effective_date,
                            event_id: *id,
                            first_effective_date: e.effective_date,
                            rollouts: 0,
                            event_ids: Vec::new(),
                        },
                    )
                });
                row.rollouts += 1;
                row.event_ids.push(*id);
                if order < *first {
                    *first = order;
                    row.first_effective_date = e.effective_date;
                }
                if order >= *latest {
                    *latest = order;
                    row.mandatory = t.mandatory;
                    row.effective_date = e.effective_date;
                    row.event_id = *id;
                }
            }
            Payload::RoleAutomated(r) if q.in_window(e.effective_date) => {
                roles.count += 1;
                roles.with_separation += u64::from(r.separation.is_some());
                roles.event_ids.push(*id);
            }
            _ => {}
        }
    }
    let mut tools: Vec<Rollouts> = tools.into_values().collect();
    for (_, _, row) in &mut tools {
        // Signal entries come in id order: the evidence in the order the roll-outs took effect.
        let mut ids: Vec<(Date, u64, EventId)> = Vec::with_capacity(row.event_ids.len());
        for id in &row.event_ids {
            if let Some(e) = p.entry(id) {
                ids.push((e.effective_date, e.sequence, *id));
            }
        }
        ids.sort_unstable();
        row.event_ids = ids.into_iter().map(|(_, _, id)| id).collect();
    }
    tools.sort_by_key(|(_, latest, _)| *latest);

    let share = match p.tallies {
        // Counts only (`event_ids` empty): the separations tally less temporary layoffs.
        Some(t) if counts_only => {
            let mut share = AiShare::default();
            for (_, counts) in t.matching_separations(q) {
                share.add_counts(counts, None);
            }
            share
        }
        _ => {
            let mut share = AiShare::default();
            for (id, _, c) in matching(p, q) {
                share.add(id, c.ai);
            }
            share
        }
    };

    AiAdoptionView {
        as_of_sequence: p.last_sequence(),
        usage: usage.into_values().map(|(row, _)| row).collect(),
        tools: tools.into_iter().map(|(_, _, row)| row).collect(),
        roles_automated: roles,
        ai_attributed_separations: share.finish(),
        external_reference: ai_plus_targets(),
    }
}
