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
use foldhash::{HashMap, HashMapExt};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::hash::BuildHasher;
use wfl_domain::{ContractType, Date, EmploymentRelationship, OrgId, SiteId, WorkerRef};

/// Site (its number in [`PopulationIndex::sites`]), relationship, contract type, and average
/// weekly hours (when recorded).
type Key = (u32, EmploymentRelationship, ContractType, Option<u32>);
type Groups = BTreeMap<OrgId, BTreeMap<Key, Counter>>;

/// One presence interval `[start, end)` at a site, with the start of the stint it belongs to.
#[derive(Debug)]
struct Interval {
    /// The stint's place in [`PopulationIndex::stints`] (its org and worker).
    stint: u32,
    key: Key,
    /// Where the months test counts from ([`Stint::months_start`]); `None`: a baseline load
    /// employed all year.
    stint_start: Option<Date>,
    start: Option<Date>,
    end: Option<Date>,
}

/// Headcount at the end of any day, per org, site, relationship and contract type.
///
/// Built without a map per worker or a copy of any name per interval (at 1M events the index
/// is built from ~600k stints each watch run): the stints are kept in (org, worker) order and
/// searched, sites are numbered once.
#[derive(Debug, Default)]
pub struct PopulationIndex<'a> {
    intervals: Vec<Interval>,
    /// The sites the intervals name, by number.
    sites: Vec<SiteId>,
    /// Each site's jurisdiction (the latest live event at the site states it).
    jurisdictions: BTreeMap<(OrgId, SiteId), String>,
    /// Counters per minimum employment (days) a worker needs to be counted; `0` = everyone. Built
    /// on first use of each minimum (a pack asks one or two).
    by_minimum: RefCell<BTreeMap<i32, Groups>>,
    /// Every stint, in (org, worker) order, each worker's in time order.
    stints: Vec<Stint<'a>>,
    /// Each worker's first stint (its place in `stints`), by [`worker_key`]: one probe per
    /// [`Population::worker`] question instead of a binary search comparing names held all over
    /// the heap (the watch asks once per separation and pack: seconds at millions of events).
    first: HashMap<u64, u32>,
}

/// A worker's key in [`PopulationIndex::first`] (a hash: a probe's hit is checked by name, and
/// a collision falls back to the search).
fn worker_key(org: &OrgId, worker: &WorkerRef) -> u64 {
    // A fixed seed: the key is compared within one index only, never stored.
    foldhash::fast::FixedState::with_seed(0).hash_one((org, worker))
}

impl<'a> PopulationIndex<'a> {
    /// Indexes the stints of `org` (every org when `None`).
    #[must_use]
    pub fn new(p: &'a Projection, org: Option<&OrgId>) -> Self {
        Self::at(&p.now(), org)
    }

    /// Indexes the stints of `org` (every org when `None`) as they stood at `p`'s sequence.
    #[must_use]
    pub fn at(p: &At<'a>, org: Option<&OrgId>) -> Self {
        let mut stints = timeline::stints(p, org);
        // Already in this order (the workers are walked in key order); a stable sort of sorted
        // input is one pass.
        stints.sort_by(|a, b| (a.org, a.worker).cmp(&(b.org, b.worker)));
        let mut intervals = Vec::with_capacity(stints.len());
        let mut numbers: BTreeMap<&SiteId, u32> = BTreeMap::new();
        let mut sites: Vec<SiteId> = Vec::new();
        let mut first = HashMap::with_capacity(stints.len());
        for (n, s) in stints.iter().enumerate() {
            let stint = u32::try_from(n).unwrap_or(u32::MAX);
            if n == 0 || (stints[n - 1].org, stints[n - 1].worker) != (s.org, s.worker) {
                first.entry(worker_key(s.org, s.worker)).or_insert(stint);
            }
            for (start, end, site) in s.intervals() {
                let number = *numbers.entry(site).or_insert_with(|| {
                    sites.push(site.clone());
                    u32::try_from(sites.len() - 1).unwrap_or(u32::MAX)
                });
                intervals.push(Interval {
                    stint,
                    key: (
                        number,
                        s.profile.relationship,
                        s.profile.contract_type,
                        s.profile.avg_weekly_hours,
                    ),
                    stint_start: s.months_start(),
                    start,
                    end,
                });
            }
        }
        drop(numbers);
        Self {
            intervals,
            sites,
            jurisdictions: p.site_jurisdictions(org),
            by_minimum: RefCell::default(),
            first,
            stints,
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
            let org = &self.stints[i.stint as usize].org;
            if !groups.contains_key(org) {
                groups.insert((*org).clone(), BTreeMap::new());
            }
            groups
                .get_mut(org)
                .expect("inserted above")
                .entry(i.key)
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

impl Population for PopulationIndex<'_> {
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
                let site = &self.sites[*site as usize];
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
        let named = |n: u32| {
            self.stints
                .get(n as usize)
                .is_some_and(|s| s.org == org && s.worker == worker)
        };
        let first = match self.first.get(&worker_key(org, worker)) {
            // Every worker with a stint has a key.
            None => return None,
            Some(&n) if named(n) => n as usize,
            // Another worker with the same key: the search decides.
            Some(_) => self
                .stints
                .partition_point(|s| (s.org, s.worker) < (org, worker)),
        };
        self.stints[first..]
            .iter()
            .take_while(|s| s.org == org && s.worker == worker)
            .filter(|s| s.covers(on))
            .last()
            .map(|s| s.worker_profile(on))
    }
}
