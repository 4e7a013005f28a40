//! Employment stints rebuilt from the projection's entries: who was employed where, from when to
//! when, with which profile. Headcount, cohort exposure and the population basis all read these.
//!
//! A stint opens at a live `WorkerHired` (a baseline load opens one with no start: the worker was
//! already there), moves with each accepted `InternalRedeployment` to another site, and closes at the
//! worker's next live separation. Events are taken in sequence order, which the ledger's lifecycle
//! rules make consistent; anything they would have refused (a second hire while employed, a
//! separation while not employed) is skipped rather than guessed at. This module only reads.

use super::{At, Entry};
use std::collections::BTreeMap;
use wfl_domain::{
    Cohort, ContractType, Date, EmploymentRelationship, EventId, InternalRedeployment,
    LifecycleEffect, OrgId, Payload, SiteId, WorkerHired,
};

/// The worker profile a stint was opened with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Profile {
    pub(super) relationship: EmploymentRelationship,
    pub(super) contract_type: ContractType,
    pub(super) cohort: Option<Cohort>,
}

/// A move to another site inside a stint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Move {
    pub(super) date: Date,
    pub(super) site: SiteId,
    pub(super) event_id: EventId,
}

/// One period of employment of one worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Stint {
    pub(super) org: OrgId,
    pub(super) hire_id: EventId,
    /// `None` for a baseline load: employed since before anything the ledger knows.
    pub(super) start: Option<Date>,
    /// The hire (or baseline load) event's effective date.
    pub(super) recorded_on: Date,
    pub(super) site: SiteId,
    pub(super) profile: Profile,
    /// In date order, each on or after the previous one and before the end.
    pub(super) moves: Vec<Move>,
    /// The separation: its (clamped) date and id.
    pub(super) end: Option<(Date, EventId)>,
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

impl Stint {
    fn open(org: &OrgId, hire_id: EventId, entry: &Entry, hire: &WorkerHired) -> Self {
        Self {
            org: org.clone(),
            hire_id,
            start: (!hire.baseline).then_some(entry.effective_date),
            recorded_on: entry.effective_date,
            site: entry.site_id.clone(),
            profile: Profile {
                relationship: hire.employment_relationship,
                contract_type: hire.contract_type,
                cohort: hire.cohort,
            },
            moves: Vec::new(),
            end: None,
        }
    }

    fn current_site(&self) -> &SiteId {
        self.moves.last().map_or(&self.site, |m| &m.site)
    }

    fn latest_boundary(&self) -> Option<Date> {
        self.moves.last().map(|m| m.date).or(self.start)
    }

    fn redeploy(&mut self, date: Date, event_id: EventId, r: &InternalRedeployment) {
        let Some(to) = r.to_site.as_ref().filter(|_| r.accepted) else {
            return;
        };
        if to == self.current_site() {
            return;
        }
        let date = self.latest_boundary().map_or(date, |b| b.max(date));
        self.moves.push(Move {
            date,
            site: to.clone(),
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
    pub(super) fn site_at_end_of(&self, day: Date) -> Option<&SiteId> {
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
                .map_or(&self.site, |m| &m.site),
        )
    }

    /// Half-open intervals `[start, end)` of presence, each at one site.
    pub(super) fn intervals(&self) -> Vec<(Option<Date>, Option<Date>, &SiteId)> {
        let end = self.end.map(|(d, _)| d);
        let mut out = Vec::with_capacity(self.moves.len() + 1);
        let mut start = self.start;
        let mut site = &self.site;
        for m in &self.moves {
            out.push((start, Some(m.date), site));
            start = Some(m.date);
            site = &m.site;
        }
        out.push((start, end, site));
        out
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
        let mut from = &self.site;
        for m in &self.moves {
            out.push(Flow {
                date: m.date,
                kind: FlowKind::Transfer { from: from.clone() },
                site: m.site.clone(),
                event_id: m.event_id,
            });
            from = &m.site;
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
pub(super) fn stints(p: &At<'_>, org: Option<&OrgId>) -> Vec<Stint> {
    let mut out = Vec::new();
    for (org_id, workers) in p.workers() {
        if org.is_some_and(|o| o != org_id) {
            continue;
        }
        for (worker, ids) in workers {
            let mut open: Option<Stint> = None;
            for (_, id) in ids {
                let Some(entry) = p.entry(id).filter(|e| e.live()) else {
                    continue;
                };
                let payload = entry.payload();
                let Some((w, effect)) = payload.worker_effect() else {
                    continue;
                };
                if w != worker {
                    continue;
                }
                match (effect, payload) {
                    (LifecycleEffect::Hire, Payload::WorkerHired(h)) if open.is_none() => {
                        open = Some(Stint::open(org_id, *id, &entry, h));
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
                    _ => {}
                }
            }
            out.extend(open);
        }
    }
    out
}

/// The profile each separation's worker was hired with, by separation id.
pub(super) fn separation_profiles(stints: &[Stint]) -> BTreeMap<EventId, &Profile> {
    stints
        .iter()
        .filter_map(|s| s.end.map(|(_, id)| (id, &s.profile)))
        .collect()
}
