//! Keyed aggregates kept at fold time, so that a view's answer costs what its figures cost, not
//! what the history behind them costs.
//!
//! **Unit of change: the worker.** Every figure a worker's events contribute to is a function of
//! that worker's own events (their current payloads, links and liveness, and the stints they
//! form). So when a folded event touches a worker (names it, or corrects, links or retracts an
//! event that named it), the tallies subtract the worker's contribution as it stood at the
//! sequence before the event and add its contribution after it. "Before" is read from the state
//! itself ([`At`]: every effect keeps the sequences it held between), so nothing per worker is kept
//! beside the tallies: memory is the number of cells, bounded by orgs × sites × days × the
//! cells' other dimensions, never by the number of events.
//!
//! Kept so far: **separations** (and temporary layoffs, as the separations view counts them) per
//! org, site, effective day, cohort, bucket and mechanism, with the employer-influenced,
//! position-closed and AI-attributed counts. [`At::separation_counts`] answers the separations
//! view from them for the current state; an as-of answer, and the evidence (event ids) behind a
//! figure, still come from the entries (`At::separations`). The property test
//! `the_tallies_answer_as_the_entries_do` checks both agree after every folded event.
//!
//! Determinism: `BTreeMap`s only, like the rest of the views.

use super::separations::{hire_cohort, separation_cohort};
use super::{timeline, At, Projection, Query};
use crate::classify::{Bucket, Classification, Mechanism};
use std::collections::BTreeMap;
use wfl_domain::{AiAttribution, Cohort, Date, OrgId, Payload, SiteId, WorkerRef};

/// One cell of the separations tally, inside an org.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct SeparationCell {
    pub(super) site: SiteId,
    pub(super) date: Date,
    /// The separation's own cohort, else the one the worker was hired with (`None`: unknown).
    pub(super) cohort: Option<Cohort>,
    pub(super) bucket: Bucket,
    pub(super) mechanism: Option<Mechanism>,
}

/// What a cell counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct SeparationCounts {
    pub(super) count: u64,
    pub(super) employer_influenced: u64,
    pub(super) position_closed: u64,
    pub(super) ai_cited_by_employer: u64,
    pub(super) ai_inferred: u64,
}

impl SeparationCounts {
    pub(super) fn of(c: &Classification) -> Self {
        Self {
            count: 1,
            employer_influenced: u64::from(c.employer_influenced),
            position_closed: u64::from(c.position_closed),
            ai_cited_by_employer: u64::from(c.ai == AiAttribution::CitedByEmployer),
            ai_inferred: u64::from(c.ai == AiAttribution::Inferred),
        }
    }

    pub(super) fn add(&mut self, o: &Self) {
        self.count += o.count;
        self.employer_influenced += o.employer_influenced;
        self.position_closed += o.position_closed;
        self.ai_cited_by_employer += o.ai_cited_by_employer;
        self.ai_inferred += o.ai_inferred;
    }

    /// Takes `o` away; every count of `o` was added before (the tallies only subtract what a
    /// worker contributed), so nothing goes below zero.
    fn sub(&mut self, o: &Self) {
        debug_assert!(self.count >= o.count, "a tally went below zero");
        self.count = self.count.saturating_sub(o.count);
        self.employer_influenced = self
            .employer_influenced
            .saturating_sub(o.employer_influenced);
        self.position_closed = self.position_closed.saturating_sub(o.position_closed);
        self.ai_cited_by_employer = self
            .ai_cited_by_employer
            .saturating_sub(o.ai_cited_by_employer);
        self.ai_inferred = self.ai_inferred.saturating_sub(o.ai_inferred);
    }
}

/// The aggregates a [`Projection`] keeps beside its entries (see the module doc).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Tallies {
    /// Live separations and temporary layoffs, by org, then cell. A cell with nothing in it is
    /// removed, so the tallies of equal states are equal.
    pub(super) separations: BTreeMap<OrgId, BTreeMap<SeparationCell, SeparationCounts>>,
}

/// One worker's contribution: a cell and its counts, per live separation or temporary layoff.
type Contribution = Vec<(SeparationCell, SeparationCounts)>;

impl Tallies {
    /// The tallies of the whole current state (at start, after a restore): every worker once.
    pub(super) fn of(p: &Projection) -> Self {
        let now = p.now();
        let mut t = Self::default();
        let mut c = Contribution::new();
        for (org, workers) in &p.workers {
            for worker in workers.keys() {
                c.clear();
                contribution(&now, org, worker, &mut c);
                t.apply(org, &c, SeparationCounts::add);
            }
        }
        t
    }

    /// Moves the tallies from the state at sequence `before` to the current one, for the
    /// workers an event touched (every other worker's contribution is unchanged).
    pub(super) fn update<'w>(
        &mut self,
        p: &Projection,
        before: u64,
        workers: impl IntoIterator<Item = (&'w OrgId, &'w WorkerRef)>,
    ) {
        let (then, now) = (p.at(before), p.now());
        let (mut old, mut new) = (Contribution::new(), Contribution::new());
        for (org, worker) in workers {
            old.clear();
            new.clear();
            contribution(&then, org, worker, &mut old);
            contribution(&now, org, worker, &mut new);
            if old != new {
                self.apply(org, &old, SeparationCounts::sub);
                self.apply(org, &new, SeparationCounts::add);
            }
        }
    }

    fn apply(
        &mut self,
        org: &OrgId,
        c: &Contribution,
        op: fn(&mut SeparationCounts, &SeparationCounts),
    ) {
        if c.is_empty() {
            return;
        }
        let cells = if let Some(cells) = self.separations.get_mut(org) {
            cells
        } else {
            self.separations.entry(org.clone()).or_default()
        };
        for (cell, counts) in c {
            let slot = if let Some(slot) = cells.get_mut(cell) {
                slot
            } else {
                cells.entry(cell.clone()).or_default()
            };
            op(slot, counts);
            if slot.count == 0 {
                cells.remove(cell);
            }
        }
        if cells.is_empty() {
            self.separations.remove(org);
        }
    }

    /// The cells of the orgs `q` asks about that match its site, window and cohort.
    pub(super) fn matching<'a>(
        &'a self,
        q: &'a Query,
    ) -> impl Iterator<Item = (&'a SeparationCell, &'a SeparationCounts)> + 'a {
        let orgs: Box<dyn Iterator<Item = _>> = match &q.org {
            Some(org) => Box::new(self.separations.get(org).into_iter()),
            None => Box::new(self.separations.values()),
        };
        orgs.flat_map(BTreeMap::iter).filter(move |(cell, _)| {
            q.site_matches(&cell.site)
                && q.in_window(cell.date)
                && q.cohort.is_none_or(|c| cell.cohort == Some(c))
        })
    }
}

/// What `worker` of `org` adds to the separations tally, read at `p`: one cell per live
/// separation or temporary layoff whose current payload names the worker (an event corrected to
/// name another worker counts under that one only), with the cohort the separations view gives it.
fn contribution(p: &At<'_>, org: &OrgId, worker: &WorkerRef, out: &mut Contribution) {
    let Some(ids) = p.workers().get(org).and_then(|w| w.get(worker)) else {
        return;
    };
    let counted = |payload: &Payload| match payload {
        Payload::TemporaryLayoff(t) => &t.worker_ref == worker,
        other => other.separation().is_some_and(|s| &s.worker_ref == worker),
    };
    // Most workers (a hire, a renewal) count nowhere: no stints are built for them.
    if !ids.iter().any(|(_, id)| {
        p.entry(id)
            .is_some_and(|e| e.live() && counted(e.payload()))
    }) {
        return;
    }
    let mut stints = Vec::new();
    timeline::worker_stints(p, org, worker, &mut stints);
    let profiles = timeline::separation_profiles(&stints);
    for (_, id) in ids {
        let Some(e) = p.entry(id).filter(|e| e.live()) else {
            continue;
        };
        let payload = e.payload();
        if !counted(payload) {
            continue;
        }
        let cohort = match payload {
            Payload::TemporaryLayoff(_) => hire_cohort(p, org, worker, e.sequence),
            other => other
                .separation()
                .and_then(|s| separation_cohort(s, profiles.get(id).copied())),
        };
        let c = e.classification();
        out.push((
            SeparationCell {
                site: e.site_id.clone(),
                date: e.effective_date,
                cohort,
                bucket: c.bucket,
                mechanism: c.mechanism,
            },
            SeparationCounts::of(&c),
        ));
    }
}
