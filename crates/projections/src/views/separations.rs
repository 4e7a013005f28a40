//! The separations view: live separations per period, bucket and mechanism, with bucket totals and
//! the AI-attributed share (domain-rules.md §6: `S(ai_attributed ≠ none) / S(all)`, cited and
//! inferred kept apart). Reads the projection; never changes it.
//!
//! Temporary layoffs are in it too, as formal layoffs (temporary) with the mechanism
//! `temporary_layoff` (domain-rules §5.2), so the view and the WARN packs, which count a long
//! temporary layoff as an employment loss, agree on what the same layoffs are. The worker stays
//! employed, so they are in no headcount flow.

use super::tally::{SeparationCounts, Tallies};
use super::timeline::{self, Profile};
use super::{cohort_key, ratio, At, EntryAt, Period, Query};
use crate::classify::{Bucket, Classification, Mechanism};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use wfl_domain::{AiAttribution, Cohort, EventId, OrgId, Payload, Separation, WorkerRef};

/// AI attribution among a set of separations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AiShare {
    /// Separations in the set.
    pub separations: u64,
    /// Of which AI was cited by the employer.
    pub cited_by_employer: u64,
    /// Of which AI was inferred by an analyst.
    pub inferred: u64,
    /// `(cited_by_employer + inferred) / separations`; `None` without separations.
    pub share: Option<f64>,
    /// The AI-attributed separations.
    pub event_ids: Vec<EventId>,
}

impl AiShare {
    pub(super) fn add(&mut self, id: EventId, ai: AiAttribution) {
        let counts = SeparationCounts {
            count: 1,
            ai_cited_by_employer: u64::from(ai == AiAttribution::CitedByEmployer),
            ai_inferred: u64::from(ai == AiAttribution::Inferred),
            ..SeparationCounts::default()
        };
        self.add_counts(&counts, Some(id));
    }

    /// Adds separations counted together; `id` (of a single separation) is kept as evidence
    /// when it is AI-attributed.
    pub(super) fn add_counts(&mut self, c: &SeparationCounts, id: Option<EventId>) {
        self.separations += c.count;
        self.cited_by_employer += c.ai_cited_by_employer;
        self.inferred += c.ai_inferred;
        if c.ai_cited_by_employer + c.ai_inferred > 0 {
            self.event_ids.extend(id);
        }
    }

    pub(super) fn finish(mut self) -> Self {
        self.share = ratio(self.cited_by_employer + self.inferred, self.separations);
        self.event_ids.sort_unstable();
        self
    }
}

/// Separations of one bucket and mechanism in one period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeparationRow {
    /// Period key (`2026-03`...).
    pub period: String,
    pub bucket: Bucket,
    /// Always set for separations.
    pub mechanism: Option<Mechanism>,
    pub count: u64,
    pub employer_influenced: u64,
    /// Of which the position is closed or not back-filled.
    pub position_closed: u64,
    pub ai_cited_by_employer: u64,
    pub ai_inferred: u64,
    pub event_ids: Vec<EventId>,
}

/// All separations of one bucket in the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BucketTotal {
    pub bucket: Bucket,
    pub count: u64,
    pub employer_influenced: u64,
    pub position_closed: u64,
    /// AI attribution within this bucket.
    pub ai: AiShare,
    pub event_ids: Vec<EventId>,
}

/// Separations split into formal layoff, gradual attrition and neutral.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeparationsView {
    /// The ledger sequence this answer was computed at.
    pub as_of_sequence: u64,
    pub period: Period,
    /// Ordered by period, bucket, mechanism.
    pub rows: Vec<SeparationRow>,
    /// One per separation bucket (formal layoff, gradual attrition, neutral), in that order.
    pub totals: Vec<BucketTotal>,
    /// All separations and temporary layoffs in the window (the rows' counts summed).
    pub total: u64,
    /// AI attribution over all separations in the window.
    pub ai_attributed: AiShare,
}

/// Live separations matching the query's org, site (the event's), window and cohort (the
/// separation's own, else the one the worker was hired with), with their classification.
pub(super) fn matching<'a>(p: &At<'a>, q: &Query) -> Vec<(EventId, EntryAt<'a>, Classification)> {
    // Hire profiles are only needed to resolve a cohort filter.
    let stints = if q.cohort.is_some() {
        timeline::stints(p, q.org.as_ref())
    } else {
        Vec::new()
    };
    let profiles = timeline::separation_profiles(&stints);
    p.live_of(q.org.as_ref())
        .filter(|(_, e)| q.site_matches(&e.place.site_id) && q.in_window(e.effective_date))
        .filter_map(|(id, e)| {
            let sep = e.payload().separation()?;
            if let Some(c) = q.cohort {
                if separation_cohort(sep, profiles.get(id).copied()) != Some(c) {
                    return None;
                }
            }
            Some((*id, e, e.classification()))
        })
        .collect()
}

/// Live temporary layoffs matching the query's org, site (the event's), window and cohort (the
/// one the worker was hired with), with their classification (formal layoff, temporary).
fn temporary_layoffs<'a>(p: &At<'a>, q: &Query) -> Vec<(EventId, EntryAt<'a>, Classification)> {
    p.live_of(q.org.as_ref())
        .filter(|(_, e)| q.site_matches(&e.place.site_id) && q.in_window(e.effective_date))
        .filter_map(|(id, e)| {
            let Payload::TemporaryLayoff(t) = e.payload() else {
                return None;
            };
            if let Some(c) = q.cohort {
                if hire_cohort(p, &e.place.org_id, &t.worker_ref, e.sequence) != Some(c) {
                    return None;
                }
            }
            Some((*id, e, e.classification()))
        })
        .collect()
}

/// The cohort of the worker's latest live hire recorded before `sequence`.
pub(super) fn hire_cohort(
    p: &At<'_>,
    org: &OrgId,
    worker: &WorkerRef,
    sequence: u64,
) -> Option<Cohort> {
    let ids = p.workers().get(org)?.get(&super::WorkerKey::of(worker))?;
    ids.iter()
        .rev()
        .skip_while(|(s, _)| *s >= sequence)
        .filter_map(|(_, id)| p.entry(id).filter(|e| e.live()))
        .find_map(|e| match e.payload() {
            Payload::WorkerHired(h) if &h.worker_ref == worker => Some(h.cohort),
            _ => None,
        })
        .flatten()
}

/// A separation's cohort: its own field, else the profile it was hired with.
pub(super) fn separation_cohort(sep: &Separation, profile: Option<&Profile>) -> Option<Cohort> {
    sep.cohort.or_else(|| profile.and_then(|p| p.cohort))
}

/// The cohort key of a separation, for by-cohort maps.
pub(super) fn separation_cohort_key(sep: &Separation, profile: Option<&Profile>) -> String {
    cohort_key(separation_cohort(sep, profile))
}

pub(super) fn view(p: &At<'_>, q: &Query) -> SeparationsView {
    let mut b = Builder::new(q.period);
    let layoffs = temporary_layoffs(p, q);
    for (id, e, c) in matching(p, q).into_iter().chain(layoffs) {
        b.add(
            e.effective_date,
            &c.bucket,
            c.mechanism,
            &SeparationCounts::of(&c),
            Some(id),
        );
    }
    b.finish(p.last_sequence())
}

/// The view from the tallies: the same figures as [`view`] of the same state, every `event_ids`
/// empty (the evidence is read from the entries, by [`view`], when a figure is explained).
pub(super) fn counted(t: &Tallies, q: &Query, as_of_sequence: u64) -> SeparationsView {
    let mut b = Builder::new(q.period);
    for (cell, counts) in t.matching(q) {
        b.add(cell.date, &cell.bucket, cell.mechanism, counts, None);
    }
    b.finish(as_of_sequence)
}

/// Rows, bucket totals and AI shares, added to one separation (with its id) or one tally cell
/// (counts only) at a time.
struct Builder {
    period: Period,
    /// By the period's first day (which orders periods as their keys do), bucket, mechanism: the
    /// period's key is formatted once per row, not once per separation or cell.
    rows: BTreeMap<(wfl_domain::Date, Bucket, Option<Mechanism>), SeparationRow>,
    totals: BTreeMap<Bucket, (BucketTotal, AiShare)>,
    all: AiShare,
    total: u64,
}

impl Builder {
    fn new(period: Period) -> Self {
        let totals = [
            Bucket::FormalLayoff,
            Bucket::GradualAttrition,
            Bucket::Neutral,
        ]
        .into_iter()
        .map(|b| {
            let t = BucketTotal {
                bucket: b,
                count: 0,
                employer_influenced: 0,
                position_closed: 0,
                ai: AiShare::default(),
                event_ids: Vec::new(),
            };
            (b, (t, AiShare::default()))
        })
        .collect();
        Self {
            period,
            rows: BTreeMap::new(),
            totals,
            all: AiShare::default(),
            total: 0,
        }
    }

    fn add(
        &mut self,
        date: wfl_domain::Date,
        bucket: &Bucket,
        mechanism: Option<Mechanism>,
        c: &SeparationCounts,
        id: Option<EventId>,
    ) {
        let period = self.period;
        let row = self
            .rows
            .entry((period.start_of(date), *bucket, mechanism))
            .or_insert_with(|| SeparationRow {
                period: period.key(date),
                bucket: *bucket,
                mechanism,
                count: 0,
                employer_influenced: 0,
                position_closed: 0,
                ai_cited_by_employer: 0,
                ai_inferred: 0,
                event_ids: Vec::new(),
            });
        row.count += c.count;
        row.employer_influenced += c.employer_influenced;
        row.position_closed += c.position_closed;
        row.ai_cited_by_employer += c.ai_cited_by_employer;
        row.ai_inferred += c.ai_inferred;
        row.event_ids.extend(id);

        // Separations and temporary layoffs are never signals; should one ever be, it still counts
        // in the overall total.
        if let Some((t, ai)) = self.totals.get_mut(bucket) {
            t.count += c.count;
            t.employer_influenced += c.employer_influenced;
            t.position_closed += c.position_closed;
            t.event_ids.extend(id);
            ai.add_counts(c, id);
        }
        self.all.add_counts(c, id);
        self.total += c.count;
    }

    fn finish(self, as_of_sequence: u64) -> SeparationsView {
        SeparationsView {
            as_of_sequence,
            period: self.period,
            rows: self.rows.into_values().collect(),
            totals: self
                .totals
                .into_values()
                .map(|(mut t, ai)| {
                    t.ai = ai.finish();
                    t
                })
                .collect(),
            total: self.total,
            ai_attributed: self.all.finish(),
        }
    }
}
