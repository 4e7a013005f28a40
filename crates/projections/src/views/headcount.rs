//! Headcount over time and cohort exposure, both read from the employment stints
//! ([`super::timeline`]), plus the population basis the rule packs measure thresholds against.
//!
//! Opening and closing headcounts are counted from presence intervals; hires, separations and
//! transfers are counted from stint boundaries. The two are computed independently, so
//! `reconciles` (opening + hires + transfers in − separations − transfers out == closing) is a real
//! check of the accounting, not a tautology. Reads the projection; never changes it.

use super::separations::{matching, separation_cohort_key};
use super::tally::{self, FlowCell, Presence, Tallies};
use super::timeline::{self, FlowKind, Stint};
use super::{cohort_key, ratio, spans, At, Period, Query};
use crate::PopulationQuery;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use wfl_domain::{Date, EventId, SiteId};

/// Headcount movement of one population over one period.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadcountFigures {
    /// Employed at the end of the day before the period (baseline loads included).
    pub opening: u64,
    /// Hires dated in the period (baseline loads are opening headcount, never hires).
    pub hires: u64,
    /// Separations of any bucket dated in the period.
    pub separations: u64,
    /// Redeployments into the queried site from another (zero without a site filter).
    pub transfers_in: u64,
    /// Redeployments out of the queried site to another (zero without a site filter).
    pub transfers_out: u64,
    /// Employed at the end of the period's last day.
    pub closing: u64,
    /// `opening + hires + transfers_in − separations − transfers_out == closing`.
    pub reconciles: bool,
    /// The hires, separations and redeployments counted above.
    pub event_ids: Vec<EventId>,
}

/// One period of the headcount view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadcountRow {
    /// Period key (`2026-03`...).
    pub period: String,
    /// First day counted (the period's, or the query's `from` if later).
    pub start: Date,
    /// Last day counted (the period's, or the query's `to` if earlier).
    pub end: Date,
    pub total: HeadcountFigures,
    /// By the cohort workers were hired with (`unspecified` when none was given).
    pub by_cohort: BTreeMap<String, HeadcountFigures>,
    /// By employment relationship (`employee`, `dispatched`, `contractor`, `intern`).
    pub by_relationship: BTreeMap<String, HeadcountFigures>,
    /// Every figure in this row reconciles.
    pub reconciles: bool,
}

/// Headcount over time; hires against separations, reconciled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadcountView {
    /// The ledger sequence this answer was computed at.
    pub as_of_sequence: u64,
    pub period: Period,
    /// Every period from the window's first to its last day, empty ones included.
    pub rows: Vec<HeadcountRow>,
    /// Every row reconciles.
    pub reconciles: bool,
}

/// One cohort's exposure to reductions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CohortExposureRow {
    /// Cohort key (`graduate_trainee`..., `unspecified`).
    pub cohort: String,
    /// Separations in formal layoff or gradual attrition in the window.
    pub reductions: u64,
    /// `reductions / all reductions`.
    pub reduction_share: Option<f64>,
    /// Employed at the end of the day before the window.
    pub opening_headcount: u64,
    /// Employed at the end of the window.
    pub closing_headcount: u64,
    /// `(opening + closing) / 2`.
    pub average_headcount: f64,
    /// `average_headcount / all average headcount`.
    pub headcount_share: Option<f64>,
    /// `reduction_share / headcount_share`: above 1, the cohort bears more than its share.
    pub exposure_ratio: Option<f64>,
    /// The reductions counted.
    pub event_ids: Vec<EventId>,
}

/// Each cohort's share of reductions against its share of headcount.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CohortExposureView {
    /// The ledger sequence this answer was computed at.
    pub as_of_sequence: u64,
    /// The window used (the query's, else the span of the org's events); `None` if empty.
    pub from: Option<Date>,
    pub to: Option<Date>,
    /// How the headcount share is measured.
    pub headcount_basis: String,
    pub total_reductions: u64,
    pub total_average_headcount: f64,
    /// Ordered by cohort key.
    pub rows: Vec<CohortExposureRow>,
}

/// Presence counts at the end of any day, from half-open intervals.
#[derive(Debug, Default)]
pub(super) struct Counter {
    /// Intervals with no start (baseline loads).
    always: u64,
    starts: Vec<Date>,
    ends: Vec<Date>,
}

impl Counter {
    pub(super) fn add(&mut self, start: Option<Date>, end: Option<Date>) {
        match start {
            Some(s) => self.starts.push(s),
            None => self.always += 1,
        }
        if let Some(e) = end {
            self.ends.push(e);
        }
    }

    pub(super) fn sort(&mut self) {
        self.starts.sort_unstable();
        self.ends.sort_unstable();
    }

    /// Present at the end of `day`: started on or before it and not ended on or before it.
    pub(super) fn at_end_of(&self, day: Date) -> u64 {
        let started = self.always + self.starts.partition_point(|s| *s <= day) as u64;
        let ended = self.ends.partition_point(|e| *e <= day) as u64;
        started.saturating_sub(ended)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Dim {
    Total,
    Cohort,
    Relationship,
}

#[derive(Debug, Default)]
struct Group {
    counter: Counter,
    /// One per span.
    flows: Vec<HeadcountFigures>,
}

fn group_keys(s: &Stint<'_>) -> [(Dim, String); 3] {
    [
        (Dim::Total, String::new()),
        (Dim::Cohort, cohort_key(s.profile.cohort)),
        (
            Dim::Relationship,
            s.profile.relationship.as_str().to_owned(),
        ),
    ]
}

/// Stints of the query's org and cohort (the cohort each worker was hired with).
fn filtered_stints<'a>(p: &At<'a>, q: &Query) -> Vec<Stint<'a>> {
    timeline::stints(p, q.org.as_ref())
        .into_iter()
        .filter(|s| q.cohort.is_none_or(|c| s.profile.cohort == Some(c)))
        .collect()
}

/// Presence counters per group, for the query's site.
fn counters(stints: &[Stint<'_>], site: Option<&SiteId>) -> BTreeMap<(Dim, String), Group> {
    let mut groups: BTreeMap<(Dim, String), Group> = BTreeMap::new();
    groups.entry((Dim::Total, String::new())).or_default();
    for s in stints {
        for key in group_keys(s) {
            let g = groups.entry(key).or_default();
            for (start, end, at) in s.intervals() {
                if site.is_none_or(|w| w == at) {
                    g.counter.add(start, end);
                }
            }
        }
    }
    for g in groups.values_mut() {
        g.counter.sort();
    }
    groups
}

pub(super) fn view(p: &At<'_>, q: &Query) -> HeadcountView {
    let stints = filtered_stints(p, q);
    let spans = p
        .date_range(q)
        .map_or_else(Vec::new, |(from, to)| spans(q.period, from, to));
    let site = q.site.as_ref();
    let mut groups = counters(&stints, site);
    for g in groups.values_mut() {
        g.flows = vec![HeadcountFigures::default(); spans.len()];
    }

    for s in &stints {
        let keys = group_keys(s);
        for flow in s.flows() {
            let idx = spans.partition_point(|sp| sp.start <= flow.date);
            let Some(span_idx) = idx
                .checked_sub(1)
                .filter(|i| spans.get(*i).is_some_and(|sp| flow.date <= sp.end))
            else {
                continue;
            };
            let passes = |at: &SiteId| site.is_none_or(|w| w == at);
            let (hire, sep, tin, tout) = match &flow.kind {
                FlowKind::Hire => (passes(&flow.site), false, false, false),
                FlowKind::Separation => (false, passes(&flow.site), false, false),
                // Moves inside the queried population are not transfers.
                FlowKind::Transfer { from } => {
                    let (pf, pt) = (passes(from), passes(&flow.site));
                    (false, false, pt && !pf, pf && !pt)
                }
            };
            if !(hire || sep || tin || tout) {
                continue;
            }
            for key in &keys {
                if let Some(f) = groups.get_mut(key).and_then(|g| g.flows.get_mut(span_idx)) {
                    f.hires += u64::from(hire);
                    f.separations += u64::from(sep);
                    f.transfers_in += u64::from(tin);
                    f.transfers_out += u64::from(tout);
                    f.event_ids.push(flow.event_id);
                }
            }
        }
    }

    let mut rows = Vec::with_capacity(spans.len());
    for (i, span) in spans.iter().enumerate() {
        let figures = groups.iter_mut().map(|(key, g)| {
            let mut f = g.flows.get_mut(i).map(std::mem::take).unwrap_or_default();
            f.opening = g.counter.at_end_of(span.start.add_days(-1));
            f.closing = g.counter.at_end_of(span.end);
            f.event_ids.sort_unstable();
            f.event_ids.dedup();
            (key, f)
        });
        rows.push(row(span, figures));
    }

    HeadcountView {
        as_of_sequence: p.last_sequence(),
        period: q.period,
        reconciles: rows.iter().all(|r| r.reconciles),
        rows,
    }
}

/// Presence counts at the end of any day, from tallied start and end days.
#[derive(Debug, Default)]
struct Steps {
    always: u64,
    starts: BTreeMap<Date, u64>,
    ends: BTreeMap<Date, u64>,
}

impl Steps {
    fn add(&mut self, p: &Presence) {
        self.always += p.always;
        for (d, n) in &p.starts {
            *self.starts.entry(*d).or_default() += n;
        }
        for (d, n) in &p.ends {
            *self.ends.entry(*d).or_default() += n;
        }
    }

    /// Present at the end of `day`: started on or before it and not ended on or before it.
    fn at_end_of(&self, day: Date) -> u64 {
        let started: u64 = self.starts.range(..=day).map(|(_, n)| n).sum();
        let ended: u64 = self.ends.range(..=day).map(|(_, n)| n).sum();
        (self.always + started).saturating_sub(ended)
    }
}

/// The dimension keys a tallied group counts under (as [`group_keys`] for a stint).
fn tally_keys(g: &tally::Group) -> [(Dim, String); 3] {
    [
        (Dim::Total, String::new()),
        (Dim::Cohort, cohort_key(g.cohort)),
        (Dim::Relationship, g.relationship.as_str().to_owned()),
    ]
}

/// The view from the tallies: the figures [`view`] gives for the same state, every `event_ids`
/// empty. Costs the org's tally cells (days × sites × profiles), not its history.
pub(super) fn counted(t: &Tallies, q: &Query, as_of_sequence: u64) -> HeadcountView {
    let empty = HeadcountView {
        as_of_sequence,
        period: q.period,
        rows: Vec::new(),
        reconciles: true,
    };
    let Some((from, to)) = t.date_range(q) else {
        return empty;
    };
    let spans = spans(q.period, from, to);
    let site = t.sites.filter(q.site.as_ref());
    let passes = |at: &tally::Site| site.passes(*at);
    let wanted = |g: &tally::Group| q.cohort.is_none_or(|c| g.cohort == Some(c));

    let mut steps: BTreeMap<(Dim, String), Steps> = BTreeMap::new();
    steps.entry((Dim::Total, String::new())).or_default();
    for cells in t.of_orgs(q).map(|o| &o.presence) {
        for ((group, at), presence) in cells.iter().filter(|((g, _), _)| wanted(g)) {
            for key in tally_keys(group) {
                let s = steps.entry(key).or_default();
                if passes(at) {
                    s.add(presence);
                }
            }
        }
    }
    let mut flows: BTreeMap<(Dim, String), Vec<HeadcountFigures>> = steps
        .keys()
        .map(|k| (k.clone(), vec![HeadcountFigures::default(); spans.len()]))
        .collect();
    for cells in t.of_orgs(q).map(|o| &o.flows) {
        for ((date, group, cell), n) in cells.iter().filter(|((_, g, _), _)| wanted(g)) {
            let idx = spans.partition_point(|sp| sp.start <= *date);
            let Some(span_idx) = idx
                .checked_sub(1)
                .filter(|i| spans.get(*i).is_some_and(|sp| *date <= sp.end))
            else {
                continue;
            };
            let (hire, sep, tin, tout) = match cell {
                FlowCell::Hire(at) => (passes(at), false, false, false),
                FlowCell::Separation(at) => (false, passes(at), false, false),
                FlowCell::Transfer { from, to } => {
                    let (pf, pt) = (passes(from), passes(to));
                    (false, false, pt && !pf, pf && !pt)
                }
            };
            for key in tally_keys(group) {
                if let Some(f) = flows.get_mut(&key).and_then(|v| v.get_mut(span_idx)) {
                    f.hires += n * u64::from(hire);
                    f.separations += n * u64::from(sep);
                    f.transfers_in += n * u64::from(tin);
                    f.transfers_out += n * u64::from(tout);
                }
            }
        }
    }

    let mut rows = Vec::with_capacity(spans.len());
    for (i, span) in spans.iter().enumerate() {
        let figures = steps.iter().map(|(key, s)| {
            let mut f = flows
                .get_mut(key)
                .and_then(|v| v.get_mut(i))
                .map(std::mem::take)
                .unwrap_or_default();
            f.opening = s.at_end_of(span.start.add_days(-1));
            f.closing = s.at_end_of(span.end);
            (key, f)
        });
        rows.push(row(span, figures));
    }
    HeadcountView {
        as_of_sequence,
        period: q.period,
        reconciles: rows.iter().all(|r| r.reconciles),
        rows,
    }
}

/// `opening + hires + transfers in − separations − transfers out == closing`.
fn reconciles(f: &HeadcountFigures) -> bool {
    let net = i128::from(f.opening) + i128::from(f.hires) + i128::from(f.transfers_in)
        - i128::from(f.separations)
        - i128::from(f.transfers_out);
    net == i128::from(f.closing)
}

/// One period's row from each group's figures (opening, closing and flows filled in): each
/// figure's `reconciles` set, and the row's when every figure in it reconciles.
fn row<'k>(
    span: &super::Span,
    figures: impl Iterator<Item = (&'k (Dim, String), HeadcountFigures)>,
) -> HeadcountRow {
    let mut total = HeadcountFigures::default();
    let mut by_cohort = BTreeMap::new();
    let mut by_relationship = BTreeMap::new();
    for ((dim, key), mut f) in figures {
        f.reconciles = reconciles(&f);
        match dim {
            Dim::Total => total = f,
            Dim::Cohort => {
                by_cohort.insert(key.clone(), f);
            }
            Dim::Relationship => {
                by_relationship.insert(key.clone(), f);
            }
        }
    }
    let reconciles = total.reconciles
        && by_cohort.values().all(|f: &HeadcountFigures| f.reconciles)
        && by_relationship
            .values()
            .all(|f: &HeadcountFigures| f.reconciles);
    HeadcountRow {
        period: span.key.clone(),
        start: span.start,
        end: span.end,
        total,
        by_cohort,
        by_relationship,
        reconciles,
    }
}

const EXPOSURE_BASIS: &str = "average headcount (opening: end of the day before the window; \
     closing: end of the window's last day) / 2, by the cohort workers were hired with \
     (domain-rules.md §6 HC̄)";

fn no_exposure(as_of_sequence: u64) -> CohortExposureView {
    CohortExposureView {
        as_of_sequence,
        from: None,
        to: None,
        headcount_basis: EXPOSURE_BASIS.to_owned(),
        total_reductions: 0,
        total_average_headcount: 0.0,
        rows: Vec::new(),
    }
}

pub(super) fn exposure(p: &At<'_>, q: &Query) -> CohortExposureView {
    let Some((from, to)) = p.date_range(q) else {
        return no_exposure(p.last_sequence());
    };
    // The cohort is this view's dimension: shares are always against every cohort.
    let all_cohorts = Query {
        cohort: None,
        from: Some(from),
        to: Some(to),
        ..q.clone()
    };
    let stints = filtered_stints(p, &all_cohorts);
    let profiles = timeline::separation_profiles(&stints);
    let groups = counters(&stints, q.site.as_ref());

    let mut reductions: BTreeMap<String, (u64, Vec<EventId>)> = BTreeMap::new();
    for (id, e, c) in matching(p, &all_cohorts) {
        if !c.bucket.is_reduction() {
            continue;
        }
        if let Some(sep) = e.payload().separation() {
            let key = separation_cohort_key(sep, profiles.get(&id).copied());
            let r = reductions.entry(key).or_default();
            r.0 += 1;
            r.1.push(id);
        }
    }
    let cohorts = groups
        .iter()
        .filter(|((d, _), _)| *d == Dim::Cohort)
        .map(|((_, k), g)| (k.clone(), &g.counter))
        .collect();
    exposure_rows(
        p.last_sequence(),
        q,
        (from, to),
        cohorts,
        reductions,
        |c, d| c.at_end_of(d),
    )
}

/// The view from the tallies: the figures [`exposure`] gives for the same state, every
/// `event_ids` empty.
pub(super) fn exposure_counted(t: &Tallies, q: &Query, as_of_sequence: u64) -> CohortExposureView {
    let Some((from, to)) = t.date_range(q) else {
        return no_exposure(as_of_sequence);
    };
    let site = t.sites.filter(q.site.as_ref());
    let mut steps: BTreeMap<String, Steps> = BTreeMap::new();
    for cells in t.of_orgs(q).map(|o| &o.presence) {
        for ((group, at), presence) in cells {
            let s = steps.entry(cohort_key(group.cohort)).or_default();
            if site.passes(*at) {
                s.add(presence);
            }
        }
    }
    let window = Query {
        cohort: None,
        from: Some(from),
        to: Some(to),
        ..q.clone()
    };
    let mut reductions: BTreeMap<String, (u64, Vec<EventId>)> = BTreeMap::new();
    for (cell, counts) in t.matching_separations(&window) {
        if cell.bucket.is_reduction() {
            reductions.entry(cohort_key(cell.cohort)).or_default().0 += counts.count;
        }
    }
    let cohorts = steps.iter().map(|(k, s)| (k.clone(), s)).collect();
    exposure_rows(
        as_of_sequence,
        q,
        (from, to),
        cohorts,
        reductions,
        |s, d| s.at_end_of(d),
    )
}

/// Rows of the exposure view from each cohort's headcount (`cohorts`, read with `at_end_of`)
/// and reductions (count, ids) in the window.
fn exposure_rows<C>(
    as_of_sequence: u64,
    q: &Query,
    (from, to): (Date, Date),
    cohorts: BTreeMap<String, &C>,
    mut reductions: BTreeMap<String, (u64, Vec<EventId>)>,
    at_end_of: impl Fn(&C, Date) -> u64,
) -> CohortExposureView {
    let mut keys: BTreeSet<String> = reductions.keys().cloned().collect();
    keys.extend(cohorts.keys().cloned());
    let headcount = |key: &str, day: Date| cohorts.get(key).map_or(0, |c| at_end_of(c, day));
    let total_reductions: u64 = reductions.values().map(|(n, _)| n).sum();
    let averages: BTreeMap<&String, (u64, u64, f64)> = keys
        .iter()
        .map(|k| {
            let open = headcount(k, from.add_days(-1));
            let close = headcount(k, to);
            (k, (open, close, (open + close) as f64 / 2.0))
        })
        .collect();
    let total_average: f64 = averages.values().map(|(_, _, a)| a).sum();

    let wanted = q.cohort.map(|c| c.as_str().to_owned());
    let rows = averages
        .iter()
        .filter(|(k, _)| wanted.as_ref().is_none_or(|w| w == **k))
        .map(|(k, (open, close, avg))| {
            let (count, event_ids) = reductions.remove(*k).unwrap_or_default();
            let reduction_share = ratio(count, total_reductions);
            let headcount_share = (total_average > 0.0).then(|| avg / total_average);
            let exposure_ratio = match (reduction_share, headcount_share) {
                (Some(r), Some(h)) if h > 0.0 => Some(r / h),
                _ => None,
            };
            CohortExposureRow {
                cohort: (*k).clone(),
                reductions: count,
                reduction_share,
                opening_headcount: *open,
                closing_headcount: *close,
                average_headcount: *avg,
                headcount_share,
                exposure_ratio,
                event_ids,
            }
        })
        .collect();

    CohortExposureView {
        as_of_sequence,
        from: Some(from),
        to: Some(to),
        headcount_basis: EXPOSURE_BASIS.to_owned(),
        total_reductions,
        total_average_headcount: total_average,
        rows,
    }
}

/// Workers employed at the end of `query.on` matching the query (the rule packs' basis).
///
/// Honours every field: `max_over_days` (the largest headcount at the end of any day of the
/// look-back), `jurisdiction_prefix` (a site is in the jurisdiction its latest event states), the
/// hours limb of WARN part-time (`part_time_below_weekly_hours`, from the hire's
/// `avg_weekly_hours`; workers with no hours recorded stay in) and the months limb
/// (`part_time_below_months_of_12`, from the hire date, or from a baseline load's
/// `months_employed_last_12`; a baseline load stating none is taken as employed all year).
pub(super) fn population(p: &At<'_>, query: &PopulationQuery) -> u64 {
    let stints = timeline::stints(p, Some(&query.org));
    // A site is in the asked jurisdiction when its events state a code under the prefix.
    let jurisdictions = query
        .jurisdiction_prefix
        .as_ref()
        .map(|_| p.site_jurisdictions(Some(&query.org)));
    let in_jurisdiction = |site: &SiteId| match (&query.jurisdiction_prefix, &jurisdictions) {
        (Some(prefix), Some(map)) => map
            .get(&(query.org.clone(), site.clone()))
            .is_some_and(|j| crate::rules::pack::segment_prefix(prefix, j)),
        _ => true,
    };
    let counted = stints.iter().filter(|s| {
        !query
            .exclude_relationships
            .contains(&s.profile.relationship)
            && !query
                .exclude_contract_types
                .contains(&s.profile.contract_type)
            && query
                .part_time_below_weekly_hours
                .is_none_or(|min| s.profile.avg_weekly_hours.is_none_or(|h| h >= min))
            && query
                .part_time_below_months_of_12
                .is_none_or(|min| s.employed_months_at_least(min, query.on))
    });
    let Some(n) = query.max_over_days else {
        return counted
            .filter(|s| {
                s.site_at_end_of(query.on).is_some_and(|at| {
                    query.site.as_ref().is_none_or(|w| w == at) && in_jurisdiction(at)
                })
            })
            .count() as u64;
    };
    // The most present at the end of any day of [on - n, on]: a sweep over presence intervals
    // clipped to that range (present on day d when start <= d < end).
    let first = query.on.add_days(-i32::try_from(n).unwrap_or(i32::MAX / 2));
    let past_last = query.on.add_days(1);
    let mut edges: Vec<(Date, i64)> = Vec::new();
    for s in counted {
        for (start, end, site) in s.intervals() {
            if query.site.as_ref().is_some_and(|w| w != site) || !in_jurisdiction(site) {
                continue;
            }
            let from = start.map_or(first, |d| d.max(first));
            let to = end.map_or(past_last, |d| d.min(past_last));
            if from < to {
                edges.push((from, 1));
                edges.push((to, -1));
            }
        }
    }
    // Leavers before joiners on the same day: a day counts who is present at its end.
    edges.sort();
    let (mut now, mut most) = (0i64, 0i64);
    for (_, delta) in edges {
        now += delta;
        most = most.max(now);
    }
    u64::try_from(most).unwrap_or(0)
}
