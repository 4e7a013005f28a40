//! Employment stints rebuilt from the projection's entries: who was employed where, from when to
//! when, with which profile. Headcount, cohort exposure and the population basis all read these.
//!
//! A stint opens at a live `WorkerHired` (a baseline load opens one with no start: the worker was
//! already there), moves with each accepted `InternalRedeployment` to another site, and closes at the
//! worker's next live separation. Events are taken in sequence order, which the ledger's lifecycle
//! rules make consistent; anything they would have refused (a second hire while employed, a
//! separation while not employed) is skipped rather than guessed at. This module only reads.

use super::{At, Entry, EntryAt};
use crate::WorkerProfile;
use std::collections::BTreeMap;
use wfl_domain::{
    Cohort, ContractType, Date, EmploymentRelationship, EventId, InternalRedeployment,
    LifecycleEffect, OrgId, Payload, SiteId, WorkerHired, WorkerRef,
};

/// The worker profile a stint was opened with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Profile {
    pub(super) relationship: EmploymentRelationship,
    pub(super) contract_type: ContractType,
    pub(super) cohort: Option<Cohort>,
    /// `WorkerHired.avg_weekly_hours` (WARN part-time by hours, 20 CFR 639.3(h)).
    pub(super) avg_weekly_hours: Option<u32>,
    /// `WorkerHired.months_employed_last_12`, as of `Stint::recorded_on` (baseline loads).
    pub(super) months_employed_last_12: Option<u32>,
}

/// A move to another site inside a stint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Move<'a> {
    pub(super) date: Date,
    pub(super) site: &'a SiteId,
    pub(super) event_id: EventId,
}

/// One period of employment of one worker. Its names are borrowed from the projection it was
/// read from (the threshold watch builds one per worker each run: millions at millions of
/// events, and three copied names each were most of its working set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Stint<'a> {
    pub(super) org: &'a OrgId,
    pub(super) worker: &'a WorkerRef,
    pub(super) hire_id: EventId,
    /// `None` for a baseline load: employed since before anything the ledger knows.
    pub(super) start: Option<Date>,
    /// The hire (or baseline load) event's effective date.
    pub(super) recorded_on: Date,
    pub(super) site: &'a SiteId,
    pub(super) profile: Profile,
    /// In date order, each on or after the previous one and before the end.
    pub(super) moves: Vec<Move<'a>>,
    /// The separation: its (clamped) date and id.
    pub(super) end: Option<(Date, EventId)>,
    /// The contract's agreed end as the hire states it, then each renewal naming a new end:
    /// (renewal effective date, new end), in sequence order.
    pub(super) contract_end: Option<Date>,
    pub(super) renewals: Vec<(Date, Date)>,
}

/// What happened at a stint boundary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum FlowKind {
    Hire,
    Separation,
    /// A move; the flow's `site` is the destination.
    Transfer {
        from: SiteId,
    },
}

/// A movement in or out of a site's (or the org's) headcount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Flow {
    pub(super) date: Date,
    pub(super) kind: FlowKind,
    pub(super) site: SiteId,
    pub(super) event_id: EventId,
}

impl<'a> Stint<'a> {
    fn open(org: &'a OrgId, hire_id: EventId, entry: &'a Entry, hire: &'a WorkerHired) -> Self {
        Self {
            org,
            worker: &hire.worker_ref,
            hire_id,
            start: (!hire.baseline).then_some(entry.effective_date),
            recorded_on: entry.effective_date,
            site: &entry.place.site_id,
            profile: Profile {
                relationship: hire.employment_relationship,
                contract_type: hire.contract_type,
                cohort: hire.cohort,
                avg_weekly_hours: hire.avg_weekly_hours,
                months_employed_last_12: hire.months_employed_last_12,
            },
            moves: Vec::new(),
            end: None,
            contract_end: hire.contract_end,
            renewals: Vec::new(),
        }
    }

    /// The agreed contract end on `on`: the latest renewal dated on or before it, else the hire's.
    pub(super) fn contract_end_on(&self, on: Date) -> Option<Date> {
        self.renewals
            .iter()
            .rev()
            .find(|(d, _)| *d <= on)
            .map(|(_, end)| *end)
            .or(self.contract_end)
    }

    fn current_site(&self) -> &'a SiteId {
        self.moves.last().map_or(self.site, |m| m.site)
    }

    fn latest_boundary(&self) -> Option<Date> {
        self.moves.last().map(|m| m.date).or(self.start)
    }

    fn redeploy(&mut self, date: Date, event_id: EventId, r: &'a InternalRedeployment) {
        let Some(to) = r.to_site.as_ref().filter(|_| r.accepted) else {
            return;
        };
        if to == self.current_site() {
            return;
        }
        let date = self.latest_boundary().map_or(date, |b| b.max(date));
        self.moves.push(Move {
            date,
            site: to,
            event_id,
        });
    }

    fn close(&mut self, date: Date, event_id: EventId) {
        // A separation dated before the hire is counted on the hire date; moves dated on or after the
        // separation never took effect.
        let date = self.start.map_or(date, |s| s.max(date));
        self.moves.retain(|m| m.date < date);
        self.end = Some((date, event_id));
    }

    /// Employed at the end of `day`, and where.
    pub(super) fn site_at_end_of(&self, day: Date) -> Option<&'a SiteId> {
        let started = self.start.is_none_or(|s| s <= day);
        let ended = self.end.is_some_and(|(e, _)| e <= day);
        if !started || ended {
            return None;
        }
        Some(
            self.moves
                .iter()
                .rev()
                .find(|m| m.date <= day)
                .map_or(self.site, |m| m.site),
        )
    }

    /// The day employment is taken to have started for the WARN months test (20 CFR 639.3(h)):
    /// the hire date, or for a baseline load that states fewer than 12 months employed in the
    /// last 12, that many months (365 days = 12 months, rounded up to whole days) before it was
    /// recorded. `None`: a baseline load employed all year, as far as the ledger knows.
    pub(super) fn months_start(&self) -> Option<Date> {
        self.start.or_else(|| {
            let m = self.profile.months_employed_last_12.filter(|m| *m < 12)?;
            Some(self.recorded_on.add_days(-minimum_days(m)))
        })
    }

    /// Whole months employed in the 12 months up to the end of `on` (365 days = 12 months);
    /// `None` for a baseline load that states no months.
    pub(super) fn months_employed(&self, on: Date) -> Option<u32> {
        let start = match self.months_start() {
            Some(d) => d,
            None if self.profile.months_employed_last_12.is_some() => return Some(12),
            None => return None,
        };
        let from = start.max(on.add_days(-365));
        let days = (i64::from(on.days()) - i64::from(from.days())).max(0);
        u32::try_from((days * 12 / 365).min(12)).ok()
    }

    /// Whether the worker has been employed at least `min` of the 12 months up to the end of
    /// `on`: `days * 12 >= min * 365` (a baseline load stating no months qualifies).
    pub(super) fn employed_months_at_least(&self, min: u32, on: Date) -> bool {
        if min == 0 {
            return true;
        }
        let year_start = on.add_days(-365);
        let from = self
            .months_start()
            .map_or(year_start, |d| d.max(year_start));
        let days = i64::from(on.days()) - i64::from(from.days());
        days * 12 >= i64::from(min) * 365
    }

    /// What the population knows of this stint's worker at the end of `on`.
    pub(super) fn worker_profile(&self, on: Date) -> WorkerProfile {
        WorkerProfile {
            relationship: self.profile.relationship,
            contract_type: self.profile.contract_type,
            avg_weekly_hours: self.profile.avg_weekly_hours,
            months_employed_last_12: self.months_employed(on),
            contract_end: self.contract_end_on(on),
        }
    }

    /// Employed on `on`, or separated on it (the day a separation is dated, the watch asks who
    /// the worker was).
    pub(super) fn covers(&self, on: Date) -> bool {
        self.start.is_none_or(|s| s <= on) && self.end.is_none_or(|(e, _)| e >= on)
    }

    /// Half-open intervals `[start, end)` of presence, each at one site (no list made: the
    /// population index walks them for every stint).
    pub(super) fn intervals(
        &self,
    ) -> impl Iterator<Item = (Option<Date>, Option<Date>, &'a SiteId)> + '_ {
        let end = self.end.map(|(d, _)| d);
        // Each move ends the interval before it; the last one runs to the end.
        let starts = std::iter::once((self.start, self.site))
            .chain(self.moves.iter().map(|m| (Some(m.date), m.site)));
        let ends = self
            .moves
            .iter()
            .map(|m| Some(m.date))
            .chain(std::iter::once(end));
        starts
            .zip(ends)
            .map(|((start, site), end)| (start, end, site))
    }

    /// Hire (unless a baseline load), moves, and separation.
    pub(super) fn flows(&self) -> Vec<Flow> {
        let mut out = Vec::with_capacity(self.moves.len() + 2);
        if let Some(start) = self.start {
            out.push(Flow {
                date: start,
                kind: FlowKind::Hire,
                site: self.site.clone(),
                event_id: self.hire_id,
            });
        }
        let mut from = self.site;
        for m in &self.moves {
            out.push(Flow {
                date: m.date,
                kind: FlowKind::Transfer { from: from.clone() },
                site: m.site.clone(),
                event_id: m.event_id,
            });
            from = m.site;
        }
        if let Some((date, event_id)) = self.end {
            out.push(Flow {
                date,
                kind: FlowKind::Separation,
                site: self.current_site().clone(),
                event_id,
            });
        }
        out
    }
}

/// Every stint of `org` (all orgs when `None`), ordered by org, worker, then time.
pub(super) fn stints<'a>(p: &At<'a>, org: Option<&OrgId>) -> Vec<Stint<'a>> {
    // About one stint a worker: sized once rather than doubled (and copied) a score of times.
    let workers = match org {
        Some(org) => p.workers().get(org).map_or(0, BTreeMap::len),
        None => p.workers().values().map(BTreeMap::len).sum(),
    };
    let mut out = Vec::with_capacity(workers);
    // Every worker's events found in one go (see `At::entries_of`), then walked worker by
    // worker, as the worker index lists them.
    let mut lists = Vec::with_capacity(workers);
    let mut ids = Vec::new();
    for (org_id, workers) in p.workers() {
        if org.is_some_and(|o| o != org_id) {
            continue;
        }
        for (worker, list) in workers {
            ids.extend(list.iter().map(|(_, id)| *id));
            lists.push((org_id, worker, list));
        }
    }
    let found = p.entries_of(&ids);
    drop(ids);
    let mut at = 0;
    for (org_id, worker, list) in lists {
        let entries = &found[at..at + list.len()];
        at += list.len();
        stints_from(
            org_id,
            worker.name(),
            list.iter()
                .zip(entries)
                .filter_map(|((_, id), e)| Some((id, (*e)?))),
            &mut out,
        );
    }
    out
}

/// The stints of one worker of `org`, in time order, appended to `out`.
pub(super) fn worker_stints<'a>(
    p: &At<'a>,
    org_id: &'a OrgId,
    worker: &WorkerRef,
    out: &mut Vec<Stint<'a>>,
) {
    if let Some(ids) = p
        .workers()
        .get(org_id)
        .and_then(|w| w.get(&super::WorkerKey::of(worker)))
    {
        events_stints(p, org_id, worker, ids, out);
    }
}

/// [`worker_stints`] from the worker's event list (its worker-index entry).
fn events_stints<'a>(
    p: &At<'a>,
    org_id: &'a OrgId,
    worker: &WorkerRef,
    ids: &'a [(u64, wfl_domain::EventId)],
    out: &mut Vec<Stint<'a>>,
) {
    stints_from(
        org_id,
        worker,
        ids.iter().filter_map(|(_, id)| Some((id, p.entry(id)?))),
        out,
    );
}

/// [`worker_stints`] from the worker's entries already looked up, in sequence order, as they
/// stood at one sequence (those folded later left out).
pub(super) fn stints_from<'a>(
    org_id: &'a OrgId,
    worker: &WorkerRef,
    entries: impl Iterator<Item = (&'a EventId, EntryAt<'a>)>,
    out: &mut Vec<Stint<'a>>,
) {
    let mut open: Option<Stint<'a>> = None;
    for (id, entry, effect, payload) in lifecycle(worker, entries) {
        match (effect, payload) {
            (LifecycleEffect::Hire, Payload::WorkerHired(h)) if open.is_none() => {
                open = Some(Stint::open(org_id, *id, entry.e, h));
            }
            (LifecycleEffect::Separate, _) => {
                if let Some(mut s) = open.take() {
                    s.close(entry.effective_date, *id);
                    out.push(s);
                }
            }
            (LifecycleEffect::Touch, Payload::InternalRedeployment(r)) => {
                if let Some(s) = open.as_mut() {
                    s.redeploy(entry.effective_date, *id, r);
                }
            }
            (LifecycleEffect::Touch, Payload::ContractRenewed(r)) => {
                if let (Some(s), Some(end)) = (open.as_mut(), r.new_contract_end) {
                    s.renewals.push((entry.effective_date, end));
                }
            }
            _ => {}
        }
    }
    out.extend(open);
}

/// The live events among `entries` that act on `worker`'s employment (in the payload in force
/// then), with what they do: what the stints are walked from, here and in the tallies.
pub(super) fn lifecycle<'a, 'w>(
    worker: &'w WorkerRef,
    entries: impl Iterator<Item = (&'a EventId, EntryAt<'a>)> + 'w,
) -> impl Iterator<Item = (&'a EventId, EntryAt<'a>, LifecycleEffect, &'a Payload)> + 'w
where
    'a: 'w,
{
    entries.filter_map(move |(id, entry)| {
        if !entry.live() {
            return None;
        }
        let payload = entry.payload();
        let (w, effect) = payload.worker_effect()?;
        (w == worker).then_some((id, entry, effect, payload))
    })
}

/// The days of employment that `months` of the last 12 stand for (365 days = 12 months, rounded
/// up): the least `days` with `days * 12 >= months * 365`.
pub(super) fn minimum_days(months: u32) -> i32 {
    let m = i64::from(months.min(12));
    i32::try_from((m * 365 + 11) / 12).unwrap_or(365)
}

/// The profile each separation's worker was hired with, by separation id.
pub(super) fn separation_profiles<'s>(stints: &'s [Stint<'_>]) -> BTreeMap<EventId, &'s Profile> {
    stints
        .iter()
        .filter_map(|s| s.end.map(|(_, id)| (id, &s.profile)))
        .collect()
}
