//! The population basis the rule packs measure thresholds against, indexed once per evaluation.
//!
//! [`Projection::population`](super::Projection::population) rebuilds every stint of the org for
//! each question, which is fine for one answer and quadratic for a threshold watch that asks once
//! per window. [`PopulationIndex`] builds the stints once and keeps, per (org, site, relationship,
//! contract type, weekly hours), the sorted presence boundaries, so each question costs a few
//! binary searches, and each worker's stints, so [`Population::worker`] costs one lookup. It gives
//! the same answers as `Projection::population` for `org`, `site`, `on`, the exclusions,
//! `jurisdiction_prefix` (a site is in the jurisdiction its latest event states),
//! `part_time_below_weekly_hours` and `part_time_below_months_of_12` (property test in
//! `tests/fold_property.rs`); `max_over_days` is left to the caller (one question per day).
//! Reads the projection; never changes it.

use super::headcount::Counter;
use super::timeline::{self, minimum_days, Stint};
use super::{At, Projection};
use crate::{Population, PopulationQuery, WorkerProfile};
use std::cell::RefCell;
use std::collections::BTreeMap;
use wfl_domain::{ContractType, Date, EmploymentRelationship, OrgId, SiteId, WorkerRef};

/// Site, relationship, contract type, and average weekly hours (when recorded).
type Key = (SiteId, EmploymentRelationship, ContractType, Option<u32>);
type Groups = BTreeMap<OrgId, BTreeMap<Key, Counter>>;

/// One presence interval `[start, end)` at a site, with the start of the stint it belongs to.
#[derive(Debug)]
struct Interval {
    org: OrgId,
    key: Key,
    /// Where the months test counts from ([`Stint::months_start`]); `None`: a baseline load
    /// employed all year.
    stint_start: Option<Date>,
    start: Option<Date>,
    end: Option<Date>,
}

/// Headcount at the end of any day, per org, site, relationship and contract type.
#[derive(Debug, Default)]
pub struct PopulationIndex {
    intervals: Vec<Interval>,
    /// Each site's jurisdiction (the latest live event at the site states it).
    jurisdictions: BTreeMap<(OrgId, SiteId), String>,
    /// Counters per minimum employment (days) a worker needs to be counted; `0` = everyone. Built
    /// on first use of each minimum (a pack asks one or two).
    by_minimum: RefCell<BTreeMap<i32, Groups>>,
    /// Each worker's stints, in time order.
    workers: BTreeMap<(OrgId, WorkerRef), Vec<Stint>>,
}

impl PopulationIndex {
    /// Indexes the stints of `org` (every org when `None`).
    #[must_use]
    pub fn new(p: &Projection, org: Option<&OrgId>) -> Self {
        Self::at(&p.now(), org)
    }

    /// Indexes the stints of `org` (every org when `None`) as they stood at `p`'s sequence.
    #[must_use]
    pub fn at(p: &At<'_>, org: Option<&OrgId>) -> Self {
        let mut intervals = Vec::new();
        let mut workers: BTreeMap<(OrgId, WorkerRef), Vec<Stint>> = BTreeMap::new();
        for s in timeline::stints(p, org) {
            for (start, end, site) in s.intervals() {
                intervals.push(Interval {
                    org: s.org.clone(),
                    key: (
                        site.clone(),
                        s.profile.relationship,
                        s.profile.contract_type,
                        s.profile.avg_weekly_hours,
                    ),
                    stint_start: s.months_start(),
                    start,
                    end,
                });
            }
            workers
                .entry((s.org.clone(), s.worker.clone()))
                .or_default()
                .push(s);
        }
        Self {
            intervals,
            jurisdictions: p.site_jurisdictions(org),
            by_minimum: RefCell::default(),
            workers,
        }
    }

    /// Counters where a worker is present only once employed at least `min_days`: an interval
    /// starts no earlier than its stint's start + `min_days` (a baseline load always qualifies).
    fn groups(&self, min_days: i32) -> Groups {
        let mut groups = Groups::new();
        for i in &self.intervals {
            let start = match (i.start, i.stint_start) {
                (s, _) if min_days == 0 => s,
                (Some(s), Some(stint)) => Some(s.max(stint.add_days(min_days))),
                // A baseline load with fewer than 12 months: present from the start of time, but
                // qualifying only `min_days` after its derived start.
                (None, Some(stint)) => Some(stint.add_days(min_days)),
                (s, None) => s,
            };
            if let (Some(s), Some(e)) = (start, i.end) {
                if s >= e {
                    continue; // gone before qualifying
                }
            }
            groups
                .entry(i.org.clone())
                .or_default()
                .entry(i.key.clone())
                .or_default()
                .add(start, i.end);
        }
        for by_key in groups.values_mut() {
            for c in by_key.values_mut() {
                c.sort();
            }
        }
        groups
    }
}

/// The days of employment that `min` months of the last 12 stand for, as in
/// `Projection::population`: `days * 12 >= min * 365`.
fn minimum_for(min_months: Option<u32>) -> i32 {
    min_months.map_or(0, minimum_days)
}

impl Population for PopulationIndex {
    fn headcount(&self, q: &PopulationQuery) -> u64 {
        let min_days = minimum_for(q.part_time_below_months_of_12);
        let mut cache = self.by_minimum.borrow_mut();
        let groups = cache
            .entry(min_days)
            .or_insert_with(|| self.groups(min_days));
        let Some(by_key) = groups.get(&q.org) else {
            return 0;
        };
        by_key
            .iter()
            .filter(|((site, rel, ct, hours), _)| {
                q.site.as_ref().is_none_or(|s| s == site)
                    && q.jurisdiction_prefix.as_ref().is_none_or(|prefix| {
                        self.jurisdictions
                            .get(&(q.org.clone(), site.clone()))
                            .is_some_and(|j| crate::rules::pack::segment_prefix(prefix, j))
                    })
                    && !q.exclude_relationships.contains(rel)
                    && !q.exclude_contract_types.contains(ct)
                    && q.part_time_below_weekly_hours
                        .is_none_or(|min| hours.is_none_or(|h| h >= min))
            })
            .map(|(_, c)| c.at_end_of(q.on))
            .sum()
    }

    fn worker(&self, org: &OrgId, worker: &WorkerRef, on: Date) -> Option<WorkerProfile> {
        self.workers
            .get(&(org.clone(), worker.clone()))?
            .iter()
            .rev()
            .find(|s| s.covers(on))
            .map(|s| s.worker_profile(on))
    }
}
