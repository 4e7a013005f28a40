//! Keyed aggregates kept at fold time, so that a view's answer costs what its figures cost, not
//! what the history behind them costs.
//!
//! **Unit of change: the worker.** Every figure a worker's events contribute to is a function of
//! that worker's own events (their current payloads, links and liveness, and the stints they
//! form). So when a folded event touches a worker (names it, or corrects, links or retracts an
//! event that named it), the tallies subtract the worker's contribution as it stood at the
//! sequence before the event and add its contribution after it. "Before" is read from the state
//! itself ([`super::At`]: every effect keeps the sequences it held between), so nothing per
//! worker is kept beside the tallies: memory is the number of cells, bounded by orgs × sites ×
//! days × the cells' other dimensions, never by the number of events.
//!
//! Kept: **separations** (and temporary layoffs, as the separations view counts them) per org,
//! site, effective day, cohort, bucket and mechanism, with the employer-influenced,
//! position-closed and AI-attributed counts; **headcount presence** per org, profile (cohort,
//! relationship) and site, counted by first and last day; **headcount movements** per org, day,
//! profile and kind (hire, separation, transfer from → to); the effective **days of each org's
//! live events** (the window views default to); and an index of the live **signal events** the
//! hiring-signal and AI-adoption views list. Each org's four tallies are kept together
//! ([`OrgTallies`]): the fold finds the org once per update, not once per tally (a hire, most
//! events of an import, updates once). Sites are interned ([`Site`]). The `*_counts`
//! answers of [`super::At`] read them for the current state; an as-of answer, and the evidence
//! (event ids) behind a figure, still come from the entries. The property test
//! `the_tallies_answer_as_the_entries_do` checks both agree after every folded event.
//!
//! Determinism: the cells of an org are kept in hash maps ([`Cells`]: the fold moves a few of
//! them per event, and a hash probe costs one cache miss where a B-tree descent costs several);
//! every reader only adds them up (into `BTreeMap`s, or into totals), so no answer depends on
//! their order. The interned sites are found by hash too, and never walked. The rest is
//! `BTreeMap`s, like the rest of the views. A snapshot's cells are sized to what it holds
//! ([`Tallies::compact`]): a hash map copied keeps its source's table, and one emptied keeps its
//! own.

use super::timeline;
use super::{Entry, EntryAt, Projection, Query};
use crate::classify::{Bucket, Classification, Mechanism};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use wfl_domain::{
    AiAttribution, Cohort, Date, EmploymentRelationship, EventId, LifecycleEffect, OrgId, Payload,
    SiteId, WorkerHired, WorkerRef,
};

/// The cells of one org, by key: read only by summing them (see the module doc).
pub(super) type Cells<K, V> = foldhash::HashMap<K, V>;

/// A site, interned: cells are keyed by this number (copied and compared without touching the
/// site's name). Numbers are given in the order sites are first seen and never reused.
#[derive(Debug, Clone, Copy, PartialEq, Hash, Eq, PartialOrd, Ord)]
pub(super) struct Site(u32);

/// The sites the tallies have seen, both ways.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Sites {
    /// By name, hashed: the fold interns a few sites per event, and nothing walks them.
    ids: foldhash::HashMap<SiteId, Site>,
}

impl Sites {
    fn intern(&mut self, site: &SiteId) -> Site {
        if let Some(s) = self.ids.get(site) {
            return *s;
        }
        let s = Site(u32::try_from(self.ids.len()).unwrap_or(u32::MAX));
        self.ids.insert(site.clone(), s);
        s
    }

    /// What a query's site filter lets through: every site (no filter), or only the one named
    /// (none, when the tallies never saw that site).
    pub(super) fn filter(&self, site: Option<&SiteId>) -> SiteFilter {
        match site {
            None => SiteFilter(None),
            Some(name) => SiteFilter(Some(self.ids.get(name).copied())),
        }
    }
}

/// A query's site filter over interned sites (see [`Sites::filter`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct SiteFilter(Option<Option<Site>>);

impl SiteFilter {
    pub(super) fn passes(self, at: Site) -> bool {
        match self.0 {
            None => true,
            Some(wanted) => wanted == Some(at),
        }
    }
}

/// One cell of the separations tally, inside an org.
#[derive(Debug, Clone, Copy, PartialEq, Hash, Eq, PartialOrd, Ord)]
pub(super) struct SeparationCell {
    pub(super) site: Site,
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
    /// Each org's tallies, in one place: the fold finds an org once per update, not once per
    /// tally. An org whose tallies are all empty is removed, so the tallies of equal states are
    /// equal.
    pub(super) orgs: BTreeMap<OrgId, OrgTallies>,
    /// The sites named in the cells.
    pub(super) sites: Sites,
}

/// One org's tallies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct OrgTallies {
    /// Live separations and temporary layoffs, by cell. A cell with nothing in it is removed.
    pub(super) separations: Cells<SeparationCell, SeparationCounts>,
    /// Employment presence by (group, site): the stints' presence intervals counted by their
    /// first and last days.
    pub(super) presence: Cells<(Group, Site), Presence>,
    /// Headcount movements by (day, group, kind).
    pub(super) flows: Cells<(Date, Group, FlowCell), u64>,
    /// The effective days of the org's live events, counted (the span views default to).
    pub(super) dates: BTreeMap<Date, u64>,
}

impl OrgTallies {
    fn is_empty(&self) -> bool {
        self.separations.is_empty()
            && self.presence.is_empty()
            && self.flows.is_empty()
            && self.dates.is_empty()
    }

    /// Adds (`up`) or takes away one worker's contribution.
    fn apply(&mut self, c: &Contribution, up: bool) {
        for (cell, counts) in &c.separations {
            let slot = self.separations.entry(*cell).or_default();
            if up {
                slot.add(counts);
            } else {
                slot.sub(counts);
            }
            if slot.count == 0 {
                self.separations.remove(cell);
            }
        }
        for h in &c.heads {
            match h {
                Head::Interval(group, site, start, end) => {
                    let key = (*group, *site);
                    let slot = self.presence.entry(key).or_default();
                    match start {
                        Some(d) => bump(&mut slot.starts, d, up),
                        None if up => slot.always += 1,
                        None => {
                            debug_assert!(slot.always > 0, "a tally went below zero");
                            slot.always = slot.always.saturating_sub(1);
                        }
                    }
                    if let Some(d) = end {
                        bump(&mut slot.ends, d, up);
                    }
                    if slot.is_empty() {
                        self.presence.remove(&key);
                    }
                }
                Head::Flow(date, group, cell) => bump(&mut self.flows, &(*date, *group, *cell), up),
            }
        }
    }
}

/// How many sequences apart [`Kept`] snapshots the tallies when nothing else is said
/// ([`Projection::keep_snapshots_every`]).
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 100_000;

/// Every folded event's (sequence, id), ascending, in chunks of [`BySequence::CHUNK`]: growing
/// never copies what it holds (a `Vec` that doubles copies everything and holds both copies
/// meanwhile, hundreds of MB at millions of events), and nothing is reserved beyond one chunk.
#[derive(Debug, Clone, Default)]
pub(super) struct BySequence {
    chunks: Vec<Vec<(u64, EventId)>>,
}

impl BySequence {
    const CHUNK: usize = 1 << 16;

    /// From the pairs in any order, each sequence once (at restore, from the entries in id
    /// order): each pair goes straight into the chunk of its sequence's range, then each chunk
    /// is sorted, so nothing is held twice (a sorted list of every pair, then copied into
    /// chunks, held both: 240 MB at 5M events). Gaps in the sequences (redeliveries and
    /// duplicate ids fold nothing) leave a chunk short; empty ranges are dropped.
    /// A sequence above `last` (a damaged entry: the state's own checkpoint bounds them) goes
    /// into the last range rather than making one of its own.
    fn from_pairs(last: u64, pairs: impl IntoIterator<Item = (u64, EventId)>) -> Self {
        let chunk = Self::CHUNK as u64;
        let mut chunks: Vec<Vec<(u64, EventId)>> = Vec::new();
        for (sequence, id) in pairs {
            let range = sequence.min(last).saturating_sub(1) / chunk;
            let at = usize::try_from(range).unwrap_or(usize::MAX);
            if at >= chunks.len() {
                chunks.resize_with(at + 1, Vec::new);
            }
            chunks[at].push((sequence, id));
        }
        chunks.retain(|c| !c.is_empty());
        for c in &mut chunks {
            c.sort_unstable();
            c.shrink_to_fit();
        }
        Self { chunks }
    }

    /// Adds the pair of the event just folded (its sequence above every one held).
    pub(super) fn push(&mut self, item: (u64, EventId)) {
        match self.chunks.last_mut() {
            Some(last) if last.len() < Self::CHUNK => last.push(item),
            _ => {
                // The first chunk grows as a `Vec` does (a small projection reserves little);
                // the later ones are made whole.
                let mut chunk = if self.chunks.is_empty() {
                    Vec::new()
                } else {
                    Vec::with_capacity(Self::CHUNK)
                };
                chunk.push(item);
                self.chunks.push(chunk);
            }
        }
    }

    /// The ids of the events folded after sequence `lo` and up to `hi`, ascending.
    pub(super) fn between(&self, lo: u64, hi: u64) -> impl Iterator<Item = EventId> + '_ {
        self.pairs_between(lo, hi).map(|(_, id)| id)
    }

    /// [`Self::between`] with each id's sequence.
    pub(super) fn pairs_between(
        &self,
        lo: u64,
        hi: u64,
    ) -> impl Iterator<Item = (u64, EventId)> + '_ {
        // The first chunk holding a sequence above `lo`, then the first such pair in it.
        let first = self
            .chunks
            .partition_point(|c| c.last().is_some_and(|(s, _)| *s <= lo));
        let skip = self
            .chunks
            .get(first)
            .map_or(0, |c| c.partition_point(|(s, _)| *s <= lo));
        self.chunks[first..]
            .iter()
            .flatten()
            .skip(skip)
            .take_while(move |(s, _)| *s <= hi)
            .copied()
    }
}

/// Where each org's events are in the sequence: per org, the runs of sequences (first, last,
/// both inclusive) within which every folded event is that org's. A run grows while the org's
/// events follow one another (a batch of one org's events is one run), so the index is the
/// size of the interleaving of orgs, not of the history: one run for a ledger of one org, one
/// per batch where orgs take turns (16 bytes each), one per event at worst. With
/// [`BySequence`] it finds an org's events without reading anyone else's
/// ([`super::Projection::start_copy_of`]).
#[derive(Debug, Clone, Default)]
pub(super) struct OrgRuns(BTreeMap<OrgId, Vec<(u64, u64)>>);

impl OrgRuns {
    /// From every entry's (org, sequence), in any order (at restore).
    fn of<'a>(entries: impl Iterator<Item = (&'a OrgId, u64)>) -> Self {
        let mut by_org: BTreeMap<&OrgId, Vec<u64>> = BTreeMap::new();
        for (org, sequence) in entries {
            by_org.entry(org).or_default().push(sequence);
        }
        let mut runs = BTreeMap::new();
        for (org, mut sequences) in by_org {
            sequences.sort_unstable();
            let mut out: Vec<(u64, u64)> = Vec::new();
            for s in sequences {
                match out.last_mut() {
                    Some(run) if run.1 + 1 == s => run.1 = s,
                    _ => out.push((s, s)),
                }
            }
            out.shrink_to_fit();
            runs.insert(org.clone(), out);
        }
        Self(runs)
    }

    /// Adds the event just folded: `sequence` of `org`, folded right after `before` (the state's
    /// sequence before it; no other org's event lies between the two).
    pub(super) fn push(&mut self, org: &OrgId, before: u64, sequence: u64) {
        let runs = match self.0.get_mut(org) {
            Some(runs) => runs,
            None => self.0.entry(org.clone()).or_default(),
        };
        match runs.last_mut() {
            Some(run) if run.1 == before => run.1 = sequence,
            _ => runs.push((sequence, sequence)),
        }
    }

    /// Each org and the sequence of its latest event, in org order.
    pub(super) fn heads(&self) -> impl Iterator<Item = (&OrgId, u64)> {
        self.0
            .iter()
            .filter_map(|(org, runs)| runs.last().map(|run| (org, run.1)))
    }

    /// The runs of `org`, ascending (empty for an org with no event).
    pub(super) fn of_org(&self, org: &OrgId) -> &[(u64, u64)] {
        self.0.get(org).map_or(&[], Vec::as_slice)
    }
}

/// What a projection keeps beside its entries so that answers cost what their figures cost
/// (never stored: [`Projection::restore`] rebuilds it): the tallies of the current state,
/// snapshots of them every `every` sequences for as-of answers, the ids of every signal event,
/// every folded event's id by sequence, and where each org's events are in it.
#[derive(Debug)]
pub(super) struct Kept {
    /// The tallies of the current state, moved by every folded event.
    pub(super) now: Tallies,
    /// Every folded event of a kind the signal views list, live or not (readers check liveness
    /// at the sequence they read): what the hiring-signal and AI-adoption views read instead of
    /// every entry.
    pub(super) signals: BTreeSet<EventId>,
    /// Every folded event's (sequence, id), ascending: the events between two sequences.
    pub(super) by_sequence: BySequence,
    /// Where each org's events are in `by_sequence`.
    pub(super) orgs: OrgRuns,
    /// The snapshot spacing, in sequences.
    pub(super) every: u64,
    /// The fold's buffers, reused from event to event: the events of the worker the event
    /// being folded names, and the two readings of its contribution.
    pub(super) worker_events: Vec<(u64, EventId)>,
    pub(super) pair: Pair,
    /// The tallies at multiples of `every`, by the sequence they reflect: the fold takes one
    /// each time it passes a multiple, [`Self::fill`] takes those a restored state lacks, an
    /// as-of answer takes any still missing on its way. Shared with readers, who hold only the
    /// projection's read guard (as-of answers that move a snapshot take turns on this lock).
    snapshots: Mutex<BTreeMap<u64, Arc<Tallies>>>,
}

impl Default for Kept {
    fn default() -> Self {
        Self {
            now: Tallies::default(),
            signals: BTreeSet::new(),
            by_sequence: BySequence::default(),
            orgs: OrgRuns::default(),
            every: DEFAULT_SNAPSHOT_EVERY,
            worker_events: Vec::new(),
            pair: Pair::default(),
            snapshots: Mutex::default(),
        }
    }
}

impl Clone for Kept {
    fn clone(&self) -> Self {
        Self {
            now: self.now.clone(),
            signals: self.signals.clone(),
            by_sequence: self.by_sequence.clone(),
            orgs: self.orgs.clone(),
            every: self.every,
            worker_events: Vec::new(),
            pair: Pair::default(),
            snapshots: Mutex::new(self.snapshots().clone()),
        }
    }
}

impl Kept {
    /// Everything kept for the whole current state of `p` (at start, after a restore): no
    /// snapshot yet.
    pub(super) fn of(p: &Projection, every: u64) -> Self {
        let by_sequence = BySequence::from_pairs(
            p.last_sequence,
            p.entries.iter().map(|(id, e)| (e.sequence, *id)),
        );
        Self {
            now: Tallies::of(p),
            signals: p
                .entries
                .iter()
                .filter(|(_, e)| is_signal(&e.original))
                .map(|(id, _)| *id)
                .collect(),
            by_sequence,
            orgs: OrgRuns::of(p.entries.values().map(|e| (&e.place.org_id, e.sequence))),
            every: every.max(1),
            worker_events: Vec::new(),
            pair: Pair::default(),
            snapshots: Mutex::default(),
        }
    }

    fn snapshots(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Tallies>>> {
        self.snapshots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// After the fold moved [`Self::now`] from `before` to `now`: a snapshot when that passed a
    /// multiple of `every`.
    pub(super) fn folded(&mut self, before: u64, now: u64) {
        if before / self.every != now / self.every {
            let snapshot = Arc::new(self.now.clone().compact());
            self.snapshots
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(now, snapshot);
        }
    }

    /// Snapshots every `every` sequences from now on; those taken at another spacing go.
    pub(super) fn respace(&mut self, every: u64) {
        let every = every.max(1);
        if every != self.every {
            self.every = every;
            self.snapshots
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner)
                .clear();
        }
    }

    /// Takes the snapshot at every multiple of `every` below `p`'s last sequence (after a
    /// restore none is held): the lower half walking up from the empty tallies of sequence 0,
    /// the upper half walking down from the current ones, on two threads. Each walk moves over
    /// its half of the history once, so this costs about what the tallies cost the fold of the
    /// whole history, halved by the second core; after it every as-of answer moves over at
    /// most `every / 2` events.
    pub(super) fn fill(&mut self, p: &Projection) {
        let every = self.every;
        let last = p.last_sequence;
        let held = self
            .snapshots
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        let multiples: Vec<u64> = (1..=last / every)
            .map(|k| k * every)
            .filter(|m| *m < last && !held.contains_key(m))
            .collect();
        let (low, high) = multiples.split_at(multiples.len() / 2);
        let (by_sequence, now) = (&self.by_sequence, &self.now);
        let walk = |start: (u64, &Tallies), stops: &mut dyn Iterator<Item = &u64>| {
            let (mut from, mut base) = (start.0, start.1.clone());
            let mut out = Vec::new();
            for &m in stops {
                base = moved(p, by_sequence, &base, from, m);
                from = m;
                out.push((m, Arc::new(base.clone().compact())));
            }
            out
        };
        let (up, down) = std::thread::scope(|s| {
            let empty = Tallies::default();
            let up = s.spawn(move || walk((0, &empty), &mut low.iter()));
            let down = walk((last, now), &mut high.iter().rev());
            (up.join(), down)
        });
        let up = up.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        held.extend(up.into_iter().chain(down));
    }

    /// How many snapshots are held (for the memory the operator pays per `every`).
    pub(super) fn snapshot_count(&self) -> usize {
        self.snapshots().len()
    }

    /// The tallies as they stood at sequence `at` (below `p`'s last): the nearest snapshot (or
    /// the current tallies, or the empty ones of sequence 0) moved over the events between.
    /// When that is further than `every`, the snapshot at the multiple of `every` below `at` is
    /// built first and kept, so later answers near it cost at most `every` events.
    pub(super) fn at(&self, p: &Projection, at: u64) -> Arc<Tallies> {
        // The snapshots' lock is held to look up and to insert only, never while moving: other
        // as-of answers are not kept waiting behind one that moves a snapshot.
        let nearest = {
            let snapshots = self.snapshots();
            if let Some(t) = snapshots.get(&at) {
                return Arc::clone(t);
            }
            let below = snapshots.range(..at).next_back();
            let above = snapshots.range(at..).next();
            below
                .into_iter()
                .chain(above)
                .map(|(s, t)| (*s, Some(Arc::clone(t))))
                .min_by_key(|(s, _)| s.abs_diff(at))
        };
        // Or the current tallies, or the empty ones of sequence 0, whichever is nearest.
        let (from, base) = [nearest, Some((p.last_sequence, None)), Some((0, None))]
            .into_iter()
            .flatten()
            .min_by_key(|(s, _)| s.abs_diff(at))
            .expect("never empty");
        let grid = at / self.every * self.every;
        if from.abs_diff(at) > self.every && grid != at && grid > 0 {
            let at_grid = self.at(p, grid);
            return Arc::new(moved(p, &self.by_sequence, &at_grid, grid, at));
        }
        let empty = Tallies::default();
        let base: &Tallies = match &base {
            Some(t) => t,
            None if from == 0 => &empty,
            None => &self.now,
        };
        let t = Arc::new(moved(p, &self.by_sequence, base, from, at).compact());
        if at.is_multiple_of(self.every) && at > 0 {
            self.snapshots().entry(at).or_insert_with(|| Arc::clone(&t));
        }
        t
    }
}

/// `base`, the tallies at sequence `from`, moved to sequence `to`.
fn moved(p: &Projection, by_sequence: &BySequence, base: &Tallies, from: u64, to: u64) -> Tallies {
    let mut t = base.clone();
    let touched = p.touched_between(by_sequence, from, to);
    let workers = p.workers_named(&touched);
    t.move_to(p, from, to, workers.iter().map(|(o, w)| (*o, *w)), &touched);
    t
}

/// The kinds [`Kept::signals`] holds (a correction never changes an event's kind).
pub(super) fn is_signal(p: &Payload) -> bool {
    matches!(
        p,
        Payload::HiringPaused(_)
            | Payload::HiringResumed(_)
            | Payload::GraduateIntakeSet(_)
            | Payload::GraduateIntakeReduced(_)
            | Payload::AiUsageMeasured(_)
            | Payload::AiToolRolledOut(_)
            | Payload::RoleAutomated(_)
    )
}

/// Who a headcount figure is about: the profile a stint was opened with.
#[derive(Debug, Clone, Copy, PartialEq, Hash, Eq, PartialOrd, Ord)]
pub(super) struct Group {
    pub(super) cohort: Option<Cohort>,
    pub(super) relationship: EmploymentRelationship,
}

/// Presence intervals `[start, end)` of one group at one site: those with no start (baseline
/// loads), and the others by start day; ends by end day.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Presence {
    pub(super) always: u64,
    pub(super) starts: Cells<Date, u64>,
    pub(super) ends: Cells<Date, u64>,
}

impl Presence {
    fn is_empty(&self) -> bool {
        self.always == 0 && self.starts.is_empty() && self.ends.is_empty()
    }
}

/// A movement in or out of headcount, and where.
#[derive(Debug, Clone, Copy, PartialEq, Hash, Eq, PartialOrd, Ord)]
pub(super) enum FlowCell {
    Hire(Site),
    Separation(Site),
    Transfer { from: Site, to: Site },
}

/// One unit of a worker's headcount contribution.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Head {
    /// A presence interval: its site, start (`None`: always) and end.
    Interval(Group, Site, Option<Date>, Option<Date>),
    Flow(Date, Group, FlowCell),
}

/// The two readings of a worker's contribution [`Tallies::move_worker`] compares (kept between
/// calls so their buffers are reused).
#[derive(Debug, Default)]
pub(super) struct Pair(Contribution, Contribution);

/// One worker's contribution: a cell and its counts per live separation or temporary layoff,
/// and the presence intervals and movements of its stints.
#[derive(Debug, Default, PartialEq, Eq)]
struct Contribution {
    separations: Vec<(SeparationCell, SeparationCounts)>,
    heads: Vec<Head>,
}

impl Contribution {
    fn clear(&mut self) {
        self.separations.clear();
        self.heads.clear();
    }

    /// Drops from both every unit the other also holds, one for one. Taking a contribution
    /// away and adding another is a sum of independent counts, so this leaves the result of
    /// the pair unchanged.
    fn cancel_common(&mut self, other: &mut Self) {
        fn cancel<T: PartialEq>(a: &mut Vec<T>, b: &mut Vec<T>) {
            let mut i = 0;
            while i < a.len() {
                if let Some(j) = b.iter().position(|x| *x == a[i]) {
                    a.swap_remove(i);
                    b.swap_remove(j);
                } else {
                    i += 1;
                }
            }
        }
        cancel(&mut self.separations, &mut other.separations);
        cancel(&mut self.heads, &mut other.heads);
    }
}

/// A map of counts [`bump`] moves: the ordered days of [`OrgTallies::dates`] and the [`Cells`].
trait Counts<K> {
    fn count_mut(&mut self, key: &K) -> Option<&mut u64>;
    fn put(&mut self, key: K, n: u64);
    fn drop_key(&mut self, key: &K);
}

/// [`Counts`] for a map type whose methods of those names do just that.
macro_rules! counts_of {
    ($map:ty where K: $($bound:tt)+) => {
        impl<K: $($bound)+> Counts<K> for $map {
            fn count_mut(&mut self, key: &K) -> Option<&mut u64> {
                self.get_mut(key)
            }
            fn put(&mut self, key: K, n: u64) {
                self.insert(key, n);
            }
            fn drop_key(&mut self, key: &K) {
                self.remove(key);
            }
        }
    };
}
counts_of!(BTreeMap<K, u64> where K: Ord);
counts_of!(Cells<K, u64> where K: std::hash::Hash + Eq);

/// Adds (`up`) or takes away one count under `key`, removing a key that falls to zero.
fn bump<K: Clone>(map: &mut impl Counts<K>, key: &K, up: bool) {
    if up {
        if let Some(n) = map.count_mut(key) {
            *n += 1;
        } else {
            map.put(key.clone(), 1);
        }
    } else if let Some(n) = map.count_mut(key) {
        *n -= 1;
        if *n == 0 {
            map.drop_key(key);
        }
    } else {
        debug_assert!(false, "a tally went below zero");
    }
}

/// The inner map of `org`, created when absent (without cloning the key when present).
fn of_org<'m, V: Default>(map: &'m mut BTreeMap<OrgId, V>, org: &OrgId) -> &'m mut V {
    if !map.contains_key(org) {
        map.insert(org.clone(), V::default());
    }
    map.get_mut(org).expect("inserted above")
}

impl Tallies {
    /// The tallies of the whole current state (at start, after a restore): every worker and
    /// every live event once.
    pub(super) fn of(p: &Projection) -> Self {
        let mut t = Self::default();
        let mut c = Contribution::default();
        let mut entries = Vec::new();
        for (org, workers) in &p.workers {
            for (worker, ids) in workers {
                c.clear();
                lookup(p, ids, None, &mut entries);
                contribution(
                    p.last_sequence,
                    worker.name(),
                    &entries,
                    &mut t.sites,
                    &mut c,
                );
                t.apply(org, &c, true);
            }
        }
        for e in p.entries.values().filter(|e| e.live_at(p.last_sequence)) {
            t.bump_date(&e.place.org_id, &e.effective_date, true);
        }
        t
    }

    /// Moves the tallies from the state at sequence `from` to the state at sequence `to` (either
    /// way), given the entries added or changed between them (`touched`, may repeat) and the
    /// workers those name (`workers`): every other worker's contribution and entry's liveness
    /// is the same at both. The fold moves them one event forward; an as-of answer moves a
    /// snapshot to the sequence asked about ([`Kept::at`]).
    pub(super) fn move_to<'w>(
        &mut self,
        p: &Projection,
        from: u64,
        to: u64,
        workers: impl IntoIterator<Item = (&'w OrgId, &'w WorkerRef)>,
        touched: &[EventId],
    ) {
        let mut pair = Pair::default();
        let mut entries = Vec::new();
        // One key refilled for each worker looked up: no copy of a name per worker.
        let mut key = super::WorkerKey::new(WorkerRef(String::new()));
        for (org, worker) in workers {
            key.set(worker);
            let Some(ids) = p.workers.get(org).and_then(|w| w.get(&key)) else {
                continue;
            };
            lookup(p, ids, None, &mut entries);
            self.move_worker(from, to, org, worker, ids, &entries, &mut pair);
        }
        let mut seen: Vec<&EventId> = touched.iter().collect();
        seen.sort_unstable();
        seen.dedup();
        for e in seen.into_iter().filter_map(|id| p.entries.get(id)) {
            let was = e.sequence <= from && e.live_at(from);
            let is = e.sequence <= to && e.live_at(to);
            if was != is {
                self.bump_date(&e.place.org_id, &e.effective_date, is);
            }
        }
    }

    /// [`Self::move_to`] for the fold of one new event at sequence `to` (from `from`) that
    /// acts on no other event (no correction, link or retraction: nothing else was touched),
    /// given what the fold already holds: the entry, and the worker it names with that
    /// worker's events (`ids`, the new one last). Same result as `move_to` with the entry's id
    /// as `touched`, without looking the entry, the worker or its events up again (each a
    /// descent of a map of the whole history: most of the fold's cost at millions of events).
    pub(super) fn fold_new(
        &mut self,
        p: &Projection,
        from: u64,
        to: u64,
        (id, entry): (&EventId, &Entry),
        worker: Option<(&WorkerRef, &[(u64, EventId)])>,
        pair: &mut Pair,
    ) {
        match (worker, &entry.original) {
            // A worker's first event, a hire (most events of an import): it contributed nothing
            // at `from`, and at `to` it contributes the stint the hire opens, as `contribution`
            // reads it (no separation, no move), without walking its events.
            // (`worker` is the one this hire names: the fold takes it from the same payload.)
            (Some((_, [(_, only)])), Payload::WorkerHired(h)) if only == id => {
                let Pair(_, new) = pair;
                new.clear();
                emit(&Open::hired(h, entry), None, &mut self.sites, new);
                // The org found once for the hire's stint and the event's day.
                let tallies = of_org(&mut self.orgs, &entry.place.org_id);
                tallies.apply(new, true);
                if entry.live_at(to) {
                    bump(&mut tallies.dates, &entry.effective_date, true);
                }
                if tallies.is_empty() {
                    self.orgs.remove(&entry.place.org_id);
                }
                return;
            }
            (Some((worker, ids)), _) => {
                let mut entries = Vec::with_capacity(ids.len());
                lookup(p, ids, Some((id, entry)), &mut entries);
                self.move_worker(from, to, &entry.place.org_id, worker, ids, &entries, pair);
            }
            (None, _) => {}
        }
        // A new entry was not there at `from`; it is live at `to` (nothing retracted it yet).
        if entry.live_at(to) {
            self.bump_date(&entry.place.org_id, &entry.effective_date, true);
        }
    }

    /// Moves one worker's contribution from its reading at `from` to its reading at `to`.
    #[allow(clippy::too_many_arguments)]
    fn move_worker(
        &mut self,
        from: u64,
        to: u64,
        org: &OrgId,
        worker: &WorkerRef,
        ids: &[(u64, EventId)],
        entries: &[(&EventId, &Entry)],
        Pair(old, new): &mut Pair,
    ) {
        old.clear();
        new.clear();
        // A worker not named yet at a sequence contributes nothing there.
        if ids.first().is_some_and(|(s, _)| *s <= from) {
            contribution(from, worker, entries, &mut self.sites, old);
        }
        if ids.first().is_some_and(|(s, _)| *s <= to) {
            contribution(to, worker, entries, &mut self.sites, new);
        }
        if old != new {
            // What both readings hold (a hire's movement and presence start when a separation
            // closes the stint, say) would be taken away and put back: left alone instead.
            old.cancel_common(new);
            if old.separations.is_empty()
                && old.heads.is_empty()
                && new.separations.is_empty()
                && new.heads.is_empty()
            {
                return;
            }
            let tallies = of_org(&mut self.orgs, org);
            tallies.apply(old, false);
            tallies.apply(new, true);
            if tallies.is_empty() {
                self.orgs.remove(org);
            }
        }
    }

    /// Adds (`up`) or takes away one worker's contribution to `org`.
    fn apply(&mut self, org: &OrgId, c: &Contribution, up: bool) {
        if c.separations.is_empty() && c.heads.is_empty() {
            return;
        }
        let tallies = of_org(&mut self.orgs, org);
        tallies.apply(c, up);
        if tallies.is_empty() {
            self.orgs.remove(org);
        }
    }

    /// Adds (`up`) or takes away one live event of `org` on `date`.
    fn bump_date(&mut self, org: &OrgId, date: &Date, up: bool) {
        let tallies = of_org(&mut self.orgs, org);
        bump(&mut tallies.dates, date, up);
        if tallies.is_empty() {
            self.orgs.remove(org);
        }
    }

    /// The same tallies with every hash map's table sized to what it holds (a snapshot taken
    /// from larger tallies, or moved down from them, would keep their tables).
    fn compact(mut self) -> Self {
        for org in self.orgs.values_mut() {
            org.separations.shrink_to_fit();
            org.presence.shrink_to_fit();
            for p in org.presence.values_mut() {
                p.starts.shrink_to_fit();
                p.ends.shrink_to_fit();
            }
            org.flows.shrink_to_fit();
        }
        self
    }

    /// How many cells the tallies hold (separation cells, presence start and end days, flow
    /// cells, event days): what one snapshot costs, about a few dozen bytes each.
    pub(super) fn cells(&self) -> usize {
        self.orgs
            .values()
            .map(|o| {
                let presence: usize = o
                    .presence
                    .values()
                    .map(|p| 1 + p.starts.len() + p.ends.len())
                    .sum();
                o.separations.len() + presence + o.flows.len() + o.dates.len()
            })
            .sum()
    }

    /// The tallies of the orgs `q` asks about (every org without one).
    pub(super) fn of_orgs<'a>(
        &'a self,
        q: &Query,
    ) -> Box<dyn Iterator<Item = &'a OrgTallies> + 'a> {
        match &q.org {
            Some(org) => Box::new(self.orgs.get(org).into_iter()),
            None => Box::new(self.orgs.values()),
        }
    }

    /// The latest effective day of a live event of `org` (every org when `None`).
    pub(super) fn latest_date(&self, org: Option<&OrgId>) -> Option<Date> {
        let last = |d: &BTreeMap<Date, u64>| d.last_key_value().map(|(d, _)| *d);
        match org {
            Some(org) => self.orgs.get(org).and_then(|o| last(&o.dates)),
            None => self.orgs.values().filter_map(|o| last(&o.dates)).max(),
        }
    }

    /// The window a view of `q` covers: its `from` and `to`, else the first and last effective
    /// days of the live events of its org (every org without one); `None` when empty. What
    /// `At::date_range` gives from the entries.
    pub(super) fn date_range(&self, q: &Query) -> Option<(Date, Date)> {
        let span = self
            .of_orgs(q)
            .map(|o| &o.dates)
            .filter_map(|d| Some((*d.first_key_value()?.0, *d.last_key_value()?.0)))
            .reduce(|(a, b), (c, d)| (a.min(c), b.max(d)));
        let from = q.from.or(span.map(|s| s.0))?;
        let to = q.to.or(span.map(|s| s.1))?;
        (from <= to).then_some((from, to))
    }

    /// The cells of the orgs `q` asks about that match its site, window and cohort.
    pub(super) fn matching<'a>(
        &'a self,
        q: &'a Query,
    ) -> impl Iterator<Item = (&'a SeparationCell, &'a SeparationCounts)> + 'a {
        let site = self.sites.filter(q.site.as_ref());
        self.of_orgs(q)
            .flat_map(|o| o.separations.iter())
            .filter(move |(cell, _)| {
                site.passes(cell.site)
                    && q.in_window(cell.date)
                    && q.cohort.is_none_or(|c| cell.cohort == Some(c))
            })
    }

    /// [`Self::matching`] without the temporary layoffs: the separations proper (what the
    /// entries' `separations::matching` gives).
    pub(super) fn matching_separations<'a>(
        &'a self,
        q: &'a Query,
    ) -> impl Iterator<Item = (&'a SeparationCell, &'a SeparationCounts)> + 'a {
        self.matching(q)
            .filter(|(cell, _)| cell.mechanism != Some(Mechanism::TemporaryLayoff))
    }
}

/// The entries of a worker's events (in the index's sequence order), looked up once for both
/// readings of [`Tallies::move_worker`].
/// `known`: an entry the caller holds (the last of `ids`), not looked up again.
fn lookup<'p>(
    p: &'p Projection,
    ids: &[(u64, EventId)],
    known: Option<(&'p EventId, &'p Entry)>,
    out: &mut Vec<(&'p EventId, &'p Entry)>,
) {
    out.clear();
    let (ids, last) = match (known, ids.split_last()) {
        (Some(k), Some(((_, last), rest))) if last == k.0 => (rest, Some(k)),
        _ => (ids, None),
    };
    out.extend(
        ids.iter()
            .filter_map(|(_, id)| p.entries.get_key_value(id))
            .map(|(id, e)| (id, &**e)),
    );
    out.extend(last);
}

/// A stint being walked.
struct Open<'e> {
    start: Option<Date>,
    site: &'e SiteId,
    group: Group,
    /// (date, destination), in date order.
    moves: Vec<(Date, &'e SiteId)>,
}
impl<'e> Open<'e> {
    /// The stint a live hire opens (its entry read with no correction applied: `h` is the
    /// payload in force).
    fn hired(h: &WorkerHired, e: &'e Entry) -> Self {
        Self {
            start: (!h.baseline).then_some(e.effective_date),
            site: &e.place.site_id,
            group: Group {
                cohort: h.cohort,
                relationship: h.employment_relationship,
            },
            moves: Vec::new(),
        }
    }

    fn current_site(&self) -> &SiteId {
        self.moves.last().map_or(self.site, |m| m.1)
    }
}

/// The heads of stint `s`, closed on `end` (`None`: still open): its presence intervals and
/// movements.
fn emit(s: &Open<'_>, end: Option<Date>, sites: &mut Sites, out: &mut Contribution) {
    // Each site interned once (a stint without moves has one).
    let first = sites.intern(s.site);
    let (mut start, mut site) = (s.start, first);
    for (date, to) in &s.moves {
        out.heads
            .push(Head::Interval(s.group, site, start, Some(*date)));
        start = Some(*date);
        site = sites.intern(to);
    }
    out.heads.push(Head::Interval(s.group, site, start, end));
    if let Some(start) = s.start {
        out.heads
            .push(Head::Flow(start, s.group, FlowCell::Hire(first)));
    }
    let mut from = first;
    for (date, to) in &s.moves {
        let to = sites.intern(to);
        out.heads
            .push(Head::Flow(*date, s.group, FlowCell::Transfer { from, to }));
        from = to;
    }
    if let Some(end) = end {
        // `site` is the stint's current one, where its last move took it.
        out.heads
            .push(Head::Flow(end, s.group, FlowCell::Separation(site)));
    }
}

/// What `worker` adds to the tallies, read at sequence `at` from its `entries`: one separation
/// cell per live separation or temporary layoff whose current payload names the worker (an
/// event corrected to name another worker counts under that one only), with the cohort the
/// separations view gives it; and the presence intervals and movements of the worker's stints.
///
/// The stints are walked here as [`timeline::stints_from`] builds them (same rules: a live hire
/// opens one when none is open, a separation closes it on the later of its date and the start,
/// dropping moves on or after that day, an accepted redeployment to another site moves it on the
/// later of its date and the last boundary), but without materialising them: sites are borrowed
/// from the entries and interned, nothing is cloned. The property test
/// `the_tallies_answer_as_the_entries_do` checks the two agree.
fn contribution(
    at: u64,
    worker: &WorkerRef,
    entries: &[(&EventId, &Entry)],
    sites: &mut Sites,
    out: &mut Contribution,
) {
    let read = || {
        entries
            .iter()
            .filter(move |(_, e)| e.sequence <= at)
            .map(move |(id, e)| (*id, EntryAt { e, at }))
            .filter(|(_, e)| e.live())
    };
    // The cohort each closing separation's stint was opened with.
    let mut closed: Vec<(EventId, Option<Cohort>)> = Vec::new();
    let mut open: Option<Open<'_>> = None;
    for (id, e, effect, payload) in timeline::lifecycle(worker, read()) {
        match (effect, payload) {
            (LifecycleEffect::Hire, Payload::WorkerHired(h)) if open.is_none() => {
                open = Some(Open::hired(h, e.e));
            }
            (LifecycleEffect::Separate, _) => {
                if let Some(mut s) = open.take() {
                    let date = s
                        .start
                        .map_or(e.effective_date, |st| st.max(e.effective_date));
                    s.moves.retain(|m| m.0 < date);
                    emit(&s, Some(date), sites, out);
                    closed.push((*id, s.group.cohort));
                }
            }
            (LifecycleEffect::Touch, Payload::InternalRedeployment(r)) => {
                if let Some(s) = open.as_mut() {
                    if let Some(to) = r.to_site.as_ref().filter(|_| r.accepted) {
                        if to != s.current_site() {
                            let boundary = s.moves.last().map(|m| m.0).or(s.start);
                            let date =
                                boundary.map_or(e.effective_date, |b| b.max(e.effective_date));
                            s.moves.push((date, to));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    if let Some(s) = &open {
        emit(s, None, sites, out);
    }

    for (id, e) in read() {
        let payload = e.payload();
        let cohort = match payload {
            Payload::TemporaryLayoff(t) if &t.worker_ref == worker => {
                // The cohort of the worker's latest live hire before the layoff.
                read()
                    .take_while(|(_, h)| h.sequence < e.sequence)
                    .filter_map(|(_, h)| match h.payload() {
                        Payload::WorkerHired(h) if &h.worker_ref == worker => Some(h.cohort),
                        _ => None,
                    })
                    .last()
                    .flatten()
            }
            other => match other.separation() {
                Some(s) if &s.worker_ref == worker => s.cohort.or_else(|| {
                    closed
                        .iter()
                        .find(|(closing, _)| closing == id)
                        .and_then(|(_, c)| *c)
                }),
                _ => continue,
            },
        };
        let c = e.classification();
        out.separations.push((
            SeparationCell {
                site: sites.intern(&e.place.site_id),
                date: e.effective_date,
                cohort,
                bucket: c.bucket,
                mechanism: c.mechanism,
            },
            SeparationCounts::of(&c),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::BySequence;
    use wfl_domain::EventId;

    /// The events between two sequences, whether they fall in one chunk, across chunks, or
    /// at their borders, pushed one by one or built from the pairs in any order: as a filter of the
    /// whole list gives them.
    #[test]
    fn the_events_between_two_sequences_come_out_across_chunks() {
        // Every third sequence missing (a redelivery or a duplicate id folds nothing).
        let all: Vec<(u64, EventId)> = (1..=200_000u64)
            .filter(|s| s % 3 != 0)
            .map(|s| (s, EventId(uuid::Uuid::from_u128(u128::from(s)))))
            .collect();
        let mut pushed = BySequence::default();
        for item in &all {
            pushed.push(*item);
        }
        // Built from the pairs out of order, as a restore reads them (in id order).
        let mut shuffled = all.clone();
        shuffled.reverse();
        shuffled.rotate_left(77_777);
        let built = BySequence::from_pairs(200_000, shuffled.clone());
        // Sequences beyond the bound given (a damaged entry) share the last range: no range of
        // their own, the same answers.
        let bounded = BySequence::from_pairs(1_000, shuffled);
        assert_eq!(bounded.chunks.len(), 1);
        let edge = BySequence::CHUNK as u64;
        let cases = [
            (0, 0),
            (0, 10),
            (5, 6),
            (edge - 2, edge + 2),
            (edge, 2 * edge + 7),
            (99_999, 150_000),
            (199_990, 250_000),
            (250_000, 300_000),
            (0, u64::MAX),
        ];
        for (lo, hi) in cases {
            let want: Vec<EventId> = all
                .iter()
                .filter(|(s, _)| lo < *s && *s <= hi)
                .map(|(_, id)| *id)
                .collect();
            assert_eq!(
                pushed.between(lo, hi).collect::<Vec<_>>(),
                want,
                "{lo}..={hi}"
            );
            assert_eq!(
                built.between(lo, hi).collect::<Vec<_>>(),
                want,
                "{lo}..={hi}"
            );
            assert_eq!(
                bounded.between(lo, hi).collect::<Vec<_>>(),
                want,
                "{lo}..={hi}"
            );
        }
    }
}
