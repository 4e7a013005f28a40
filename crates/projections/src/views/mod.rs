//! The [`Projection`]: a pure fold of committed events, and the views computed from it
//! (separations, headcount, cohort exposure, hiring signals, AI adoption, explain), plus the
//! separation and compliance records the rule packs evaluate.
//!
//! The state keeps one entry per committed event, keyed by [`EventId`], with the event's original
//! payload and what later events did to it: corrections (the latest live one is the current
//! payload), `PositionBackfilled` / `PositionClosed` links (the latest live one re-classifies a
//! separation), and retractions (a retracted event is in no view). Every view can be computed from
//! those entries when it is asked for, so the stored state holds no derived totals that could
//! drift: folding the same prefix always gives the same state, whether incrementally, in one go,
//! or resumed from a serialised copy (design.md invariant 6). Beside the entries, a projection
//! keeps [`tally`] aggregates (never stored: rebuilt from the entries by
//! [`Projection::restore`]) from which the `*_counts` answers of the current state are read; a
//! property test checks after every folded event that they give the entries' figures.
//!
//! **As of a sequence.** Every entry keeps the sequence it was folded at, and every effect on it
//! (correction, link, retraction) the sequences it held between (`Acts`: an effect is ended, never
//! forgotten). [`Projection::at`] reads the state as it stood at any earlier sequence from those
//! alone: an as-of answer costs what a current answer costs, and equals the answer of a fresh
//! fold of that prefix (property test `the_state_read_at_n_answers_as_a_fresh_fold_of_the_first_n`).
//!
//! This module must not do I/O, read a clock, or let a hash map's order reach an answer: the
//! state is ordered (`BTreeMap`s, and the entries' [`idmap::IdMap`] by event id) so that the
//! serialised state and every answer are deterministic, except the tallies' cells, which readers
//! only sum into ordered maps ([`tally`]'s module doc), look-up tables that are never walked,
//! and the places' latest sequences of `At::site_jurisdictions`, folded by maximum.
//! Every answer names the ledger sequence it was computed at (`as_of_sequence`).
//!
//! Interpretation choices, stated once:
//! - a correction replaces the original's payload only; the envelope (org, site, date) stays the
//!   original's. A correction that changes the event type is ignored (the ledger refuses it).
//! - corrections, links and retractions only act on an *earlier* event of the *same* org, and stop
//!   acting when they are themselves retracted (or corrected to name something else).
//! - headcount follows each worker's employment stints: a hire opens one (a baseline load opens one
//!   that has always been there: opening headcount, never a hire), a separation closes it, an
//!   accepted `InternalRedeployment` to another site moves it. Movements are attributed to the
//!   worker's site at the time. A separation dated before its hire counts on the hire date.

pub mod binary;
mod headcount;
mod idmap;
mod population;
mod separations;
mod signals;
mod tally;
mod timeline;
mod worker_key;

pub use headcount::{
    CohortExposureRow, CohortExposureView, HeadcountFigures, HeadcountRow, HeadcountView,
};
pub use population::PopulationIndex;
pub use separations::{AiShare, BucketTotal, SeparationRow, SeparationsView};
pub use signals::{
    AiAdoptionView, AiToolRow, AiUsageRow, ExternalTarget, GraduateIntakeRow, HiringPauseRow,
    HiringSignalsView, RolesAutomated,
};
pub use tally::DEFAULT_SNAPSHOT_EVERY;

use crate::classify::{classify, Classification};
use idmap::IdMap;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use wfl_domain::{Cohort, Date, Event, EventId, EventType, OrgId, Payload, SiteId, WorkerRef};
use worker_key::WorkerKey;

/// Reading "now" inside the fold: every effect that still holds.
const CURRENT: u64 = u64::MAX;

/// The calendar unit views are bucketed by, over `effective_date`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// Key `2026-03-02`.
    Day,
    /// Key `2026-03`.
    #[default]
    Month,
    /// Key `2026-Q1`.
    Quarter,
}

impl Period {
    /// The key of the period containing `date`: `2026-03-02`, `2026-03` or `2026-Q1`.
    #[must_use]
    pub fn key(self, date: Date) -> String {
        let (y, m, _) = date.ymd();
        match self {
            Period::Day => date.to_string(),
            Period::Month => format!("{y:04}-{m:02}"),
            Period::Quarter => format!("{y:04}-Q{}", (m - 1) / 3 + 1),
        }
    }

    /// The first day of the period containing `date`.
    #[must_use]
    pub fn start_of(self, date: Date) -> Date {
        match self {
            Period::Day => date,
            Period::Month => month_start(date),
            Period::Quarter => {
                let (_, m, _) = date.ymd();
                let mut start = month_start(date);
                for _ in 0..(m - 1) % 3 {
                    start = month_start(start.add_days(-1));
                }
                start
            }
        }
    }

    /// The last day of the period containing `date`.
    #[must_use]
    pub fn end_of(self, date: Date) -> Date {
        self.next_start(date).add_days(-1)
    }

    /// The first day of the period after the one containing `date`.
    fn next_start(self, date: Date) -> Date {
        match self {
            Period::Day => date.add_days(1),
            Period::Month => next_month_start(date),
            Period::Quarter => {
                let start = self.start_of(date);
                next_month_start(next_month_start(next_month_start(start)))
            }
        }
    }
}

fn month_start(date: Date) -> Date {
    let (_, _, d) = date.ymd();
    date.add_days(1 - d as i32)
}

fn next_month_start(date: Date) -> Date {
    // Every month has 28 to 31 days, so day 1 + 31 days always lands in the next month.
    month_start(month_start(date).add_days(31))
}

/// One period of a view: its key and the days of it inside the query window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) key: String,
    pub(crate) start: Date,
    pub(crate) end: Date,
}

/// The periods covering `from..=to`, each cut to that window.
pub(crate) fn spans(period: Period, from: Date, to: Date) -> Vec<Span> {
    let mut out = Vec::new();
    let mut p = period.start_of(from);
    while p <= to {
        out.push(Span {
            key: period.key(p),
            start: p.max(from),
            end: period.end_of(p).min(to),
        });
        p = period.next_start(p);
    }
    out
}

/// What a view is asked about. The default asks for everything, by month.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Query {
    /// Only this legal entity.
    #[serde(default)]
    pub org: Option<OrgId>,
    /// Only this site (the event's site; for headcount, the worker's site at the time).
    #[serde(default)]
    pub site: Option<SiteId>,
    /// First effective day, inclusive. `None`: the earliest event.
    #[serde(default)]
    pub from: Option<Date>,
    /// Last effective day, inclusive. `None`: the latest event.
    #[serde(default)]
    pub to: Option<Date>,
    #[serde(default)]
    pub period: Period,
    /// Only workers of this cohort (a separation's own cohort, else the one it was hired with).
    #[serde(default)]
    pub cohort: Option<Cohort>,
}

impl Query {
    fn org_matches(&self, org: &OrgId) -> bool {
        self.org.as_ref().is_none_or(|o| o == org)
    }

    fn site_matches(&self, site: &SiteId) -> bool {
        self.site.as_ref().is_none_or(|s| s == site)
    }

    fn in_window(&self, date: Date) -> bool {
        self.from.is_none_or(|f| f <= date) && self.to.is_none_or(|t| date <= t)
    }
}

/// A committed separation as the rule packs see it: current (corrected) payload, classification
/// after links, effective date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeparationRecord {
    pub event_id: EventId,
    pub sequence: u64,
    pub org: OrgId,
    pub site: SiteId,
    pub jurisdiction: String,
    pub effective_date: Date,
    pub event_type: EventType,
    /// The current payload: the latest live correction's replacement, else the original.
    pub payload: Payload,
    pub classification: Classification,
    pub correlation_id: Option<String>,
}

/// The watch's view of a separation record (borrowed).
impl<'a> From<&'a SeparationRecord> for crate::rules::Separation<'a> {
    fn from(r: &'a SeparationRecord) -> Self {
        Self {
            event_id: r.event_id,
            org: &r.org,
            site: &r.site,
            jurisdiction: &r.jurisdiction,
            effective_date: r.effective_date,
            payload: &r.payload,
            position_closed: r.classification.position_closed,
            backfilled: r.classification.backfilled,
            correlation_id: r.correlation_id.as_deref(),
        }
    }
}

/// The threshold watch's inputs as [`At::watch_inputs`] borrows them from the state, each in
/// (effective date, sequence) order.
#[derive(Debug, Default)]
pub struct WatchInputs<'a> {
    pub separations: Vec<crate::rules::Separation<'a>>,
    pub steps: Vec<crate::rules::ComplianceStep<'a>>,
    pub site_events: Vec<crate::rules::SiteEvent<'a>>,
}

/// A committed compliance step (`UnionBriefed`, `AuthorityReported`, `WarnNoticeFiled`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComplianceRecord {
    pub event_id: EventId,
    pub sequence: u64,
    pub org: OrgId,
    /// `UnionBriefed`, `AuthorityReported` or `WarnNoticeFiled`.
    pub kind: EventType,
    pub plan_id: String,
    pub effective_date: Date,
    pub jurisdiction: String,
    pub site: SiteId,
}

/// One event as the projection currently reads it, for "explain".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExplainedEvent {
    pub event_id: EventId,
    pub sequence: u64,
    pub org: OrgId,
    pub site: SiteId,
    pub jurisdiction: String,
    pub effective_date: Date,
    pub event_type: EventType,
    pub correlation_id: Option<String>,
    /// The current payload (after corrections).
    pub payload: Payload,
    /// The payload as first committed.
    pub original_payload: Payload,
    pub classification: Classification,
    /// Live corrections of this event, oldest first; the last one is in effect.
    pub corrected_by: Vec<EventId>,
    /// Live `PositionBackfilled` / `PositionClosed` events naming it, oldest first; the last wins.
    pub linked_by: Vec<EventId>,
    /// Live retractions of it; non-empty means the event is in no view.
    pub retracted_by: Vec<EventId>,
}

/// Every event that named a worker, by org and worker, as (sequence, event id), sorted and
/// without repeats (a `Vec`, not a `BTreeSet`: most workers have one or two events, and a set's
/// first node costs ten times their size).
type WorkerIndex = BTreeMap<OrgId, Workers>;
/// One org's workers in the worker index.
type Workers = BTreeMap<WorkerKey, WorkerEvents>;

/// The events that named one worker, by (sequence, id), ascending.
type WorkerEvents = Vec<(u64, EventId)>;

/// Adds `item` to a worker's sorted events; false when it is already there.
fn insert_sorted(events: &mut Vec<(u64, EventId)>, item: (u64, EventId)) -> bool {
    match events.binary_search(&item) {
        Ok(_) => false,
        Err(i) => {
            // Exact up to 4 (a `Vec` would jump from 1 to 4): most workers have 2 or 3 events.
            if events.len() == events.capacity() && events.len() < 4 {
                events.reserve_exact(1);
            }
            events.insert(i, item);
            true
        }
    }
}

/// The fold state. It is persisted keyed, by what changed: [`Projection::take_changes`] gives the
/// entries touched and the worker-index links corrections added since the last call, and
/// [`Projection::restore`] rebuilds the state from every stored entry and link (each entry's own
/// link is derived from it). Equality compares the folded state only, never the pending changes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Projection {
    last_sequence: u64,
    /// Shared with the persist in flight (a [`Changes`] holds the same `Arc`s, no deep copy); an
    /// entry changed while it is being written is copied first (`Arc::make_mut`).
    #[serde(with = "shared_entries")]
    entries: IdMap<Arc<Entry>>,
    /// Every event that ever named the worker (in its original payload or a correction), by
    /// (sequence, id). A superset: readers re-check the current payload and liveness.
    workers: WorkerIndex,
    /// Entries added or changed since the last [`Projection::take_changes`] (may repeat an id:
    /// sorted and deduplicated when taken).
    #[serde(skip)]
    dirty: Vec<EventId>,
    /// Worker-index links added since the last [`Projection::take_changes`] that no entry's own
    /// original payload implies (a correction's replacement naming a worker).
    #[serde(skip)]
    new_links: Vec<WorkerLink>,
    /// `last_sequence` at the last [`Projection::take_changes`] (or [`Projection::restore`]).
    #[serde(skip)]
    taken: u64,
    /// Aggregates kept at fold time, their snapshots and indexes ([`tally::Kept`]). `None` in
    /// a state that does not keep them (a deserialised copy, a [`Projection::snapshot`]): its
    /// answers come from the entries alone.
    #[serde(skip)]
    tallies: Option<Box<tally::Kept>>,
    /// The places the entries share (not part of the state: [`Projection::restore`] rebuilds it
    /// from the entries; empty in a copy that is only read, such as a deserialised one or one made
    /// by [`CopyCursor::finish`], whose later entries, if it folds any, share their own places).
    #[serde(skip)]
    places: Places,
}

impl PartialEq for Projection {
    fn eq(&self, other: &Self) -> bool {
        self.last_sequence == other.last_sequence
            && self.entries == other.entries
            && self.workers == other.workers
    }
}

impl Eq for Projection {}

/// Where a [`Projection::copy_part`] copy has got to.
#[derive(Debug, Default, Clone)]
pub struct CopyCursor {
    last_sequence: u64,
    /// A copy of this org's entries and workers only ([`Projection::start_copy_of`]); `None`
    /// copies every org.
    org: Option<OrgId>,
    /// Every org: the last entry copied, by id.
    entry: Option<EventId>,
    /// One org: the last sequence copied.
    copied_to: u64,
    entries_done: bool,
    worker: Option<(OrgId, WorkerKey)>,
    /// What the parts copied so far (in key order, or for one org in sequence order): made into
    /// the copy's maps once, at the end, by a bulk build (not a search from the root per entry
    /// and per worker).
    entries: Vec<(EventId, Arc<Entry>)>,
    workers: Vec<(OrgId, Vec<(WorkerKey, WorkerEvents)>)>,
}

impl CopyCursor {
    /// The copy [`Projection::copy_part`] gathered, once it said everything is in: its maps
    /// built from the sorted parts in one pass each, without the source's lock.
    #[must_use]
    pub fn finish(self) -> Projection {
        Projection {
            last_sequence: self.last_sequence,
            taken: self.last_sequence,
            entries: self.entries.into_iter().collect(),
            workers: self
                .workers
                .into_iter()
                .map(|(org, workers)| (org, workers.into_iter().collect()))
                .collect(),
            ..Projection::default()
        }
    }
}

/// One worker-index link: the event (`sequence`, `event_id`) names `worker` of `org`. Links are
/// only ever added, so each is stored once (two corrections of one event can link it to two
/// workers: a link is all four fields, not its event alone). Only the links
/// a correction adds are handed over as these: the link of each entry's own original payload is
/// read from the entry itself ([`Projection::restore`]), so the fold copies no names for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerLink {
    pub org: OrgId,
    pub worker: WorkerRef,
    pub sequence: u64,
    pub event_id: EventId,
}

/// What one or more folded events changed, for a keyed, incremental persist: write every entry
/// (replacing the stored one), add every link, and record `last_sequence` as the checkpoint, all
/// in one atomic batch. Its size is proportional to the events folded since the previous call, never
/// to the history.
#[derive(Debug, Default)]
pub struct Changes {
    /// The checkpoint of the previous changes: entries folded after it are new in these (an entry
    /// at or below it was handed over before and is changed).
    pub since: u64,
    /// The sequence the state reflects once these changes are applied.
    pub last_sequence: u64,
    /// Entries added or changed, by event id (the whole entry: replace the stored one).
    pub entries: Vec<(EventId, Arc<Entry>)>,
    /// Worker-index links added that the entries do not imply (see [`WorkerLink`]).
    pub links: Vec<WorkerLink>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Link {
    Backfilled,
    Closed,
}

/// What one event does to an earlier one, recorded so that it can be undone exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Effect {
    Correct {
        target: EventId,
        replacement: Box<Payload>,
    },
    Link {
        target: EventId,
        kind: Link,
    },
    Retract {
        target: EventId,
    },
}

impl Effect {
    fn target(&self) -> EventId {
        match self {
            Effect::Correct { target, .. }
            | Effect::Link { target, .. }
            | Effect::Retract { target } => *target,
        }
    }
}

/// One folded event and what later events did to it: the unit of keyed persistence. Opaque outside
/// this module; its stored form is [`binary`]'s (serde's, [`EntryForm`], is the JSON one the
/// view store wrote before layout 5 and still reads).
///
/// Laid out for memory, since the state holds one per event: what few events have (effects of
/// later events, an effect of its own) is boxed apart in [`Later`], and the correlation id is a
/// boxed `str`, the org, site and jurisdiction are one [`Place`] shared by the entries of that
/// place, and the payload kinds carrying a separation block are boxed in the domain's
/// [`Payload`], so that an `Arc<Entry>` is 160 bytes (one allocator size class; it was 384 with
/// three names of its own and every payload as large as the largest kind).
#[derive(Debug, Clone, Eq, Deserialize)]
#[serde(from = "EntryForm")]
pub struct Entry {
    sequence: u64,
    place: Arc<Place>,
    effective_date: Date,
    correlation_id: Option<Box<str>>,
    original: Payload,
    /// `None` until a later event acts on this one or this one acts on another.
    later: Option<Box<Later>>,
}

/// Where an event happened: its org, its site and the jurisdiction it states for the site. The
/// entries of one place share it ([`Places`]), so an entry holds one pointer, not three names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Place {
    org_id: OrgId,
    site_id: SiteId,
    jurisdiction: String,
}

/// The places a projection's entries share: one [`Place`] per (org, site, jurisdiction) seen,
/// bounded by the sites, never by the events. Hashed: the fold shares one per event, and
/// nothing walks them.
#[derive(Debug, Clone, Default)]
struct Places(foldhash::HashSet<Arc<Place>>);

impl Places {
    /// The shared copy of `place` (`place` itself, the first time it is seen).
    fn share(&mut self, place: Place) -> Arc<Place> {
        if let Some(shared) = self.0.get(&place) {
            return Arc::clone(shared);
        }
        let shared = Arc::new(place);
        self.0.insert(Arc::clone(&shared));
        shared
    }

    /// Makes `entry` point at the shared copy of its place (an entry read back from the store
    /// comes with a place of its own).
    fn adopt(&mut self, entry: &mut Arc<Entry>) {
        let shared = match self.0.get(&*entry.place) {
            Some(shared) if Arc::ptr_eq(shared, &entry.place) => return,
            Some(shared) => Arc::clone(shared),
            None => {
                self.0.insert(Arc::clone(&entry.place));
                return;
            }
        };
        Arc::make_mut(entry).place = shared;
    }
}

/// What later events did to an entry, and what it does to an earlier one: few entries have any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Later {
    /// Corrections of this event: (correcting event, replacement), each with the sequences it
    /// held between.
    corrections: Acts<(EventId, Payload)>,
    /// Position links naming this event, each with the sequences it held between.
    links: Acts<(EventId, Link)>,
    /// Retractions naming this event, each with the sequences it held between.
    retracted_by: Acts<EventId>,
    /// What this event currently does to an earlier one.
    effect: Option<Effect>,
}

/// The [`Later`] of an entry that has none.
static NO_LATER: Later = Later {
    corrections: Acts(Vec::new()),
    links: Acts(Vec::new()),
    retracted_by: Acts(Vec::new()),
    effect: None,
};

/// Equal when they read the same: an entry whose [`Later`] was made and emptied again equals
/// one that never had one.
impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.sequence == other.sequence
            && self.place == other.place
            && self.effective_date == other.effective_date
            && self.correlation_id == other.correlation_id
            && self.original == other.original
            && self.later() == other.later()
    }
}

/// An entry's serde form (the view store's JSON before layout 5): every field flat, the empty
/// ones left out.
/// Read into an [`Entry`]; written from one without copying it ([`EntryRef`]).
#[derive(Deserialize)]
struct EntryForm {
    sequence: u64,
    org_id: OrgId,
    site_id: SiteId,
    jurisdiction: String,
    effective_date: Date,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    correlation_id: Option<String>,
    original: Payload,
    #[serde(default, skip_serializing_if = "Acts::is_empty")]
    corrections: Acts<(EventId, Payload)>,
    #[serde(default, skip_serializing_if = "Acts::is_empty")]
    links: Acts<(EventId, Link)>,
    #[serde(default, skip_serializing_if = "Acts::is_empty")]
    retracted_by: Acts<EventId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    effect: Option<Effect>,
}

impl From<EntryForm> for Entry {
    fn from(f: EntryForm) -> Self {
        let later = Later {
            corrections: f.corrections,
            links: f.links,
            retracted_by: f.retracted_by,
            effect: f.effect,
        };
        Self {
            sequence: f.sequence,
            place: Arc::new(Place {
                org_id: f.org_id,
                site_id: f.site_id,
                jurisdiction: f.jurisdiction,
            }),
            effective_date: f.effective_date,
            correlation_id: f.correlation_id.map(String::into_boxed_str),
            original: f.original,
            later: (later != NO_LATER).then(|| Box::new(later)),
        }
    }
}

/// [`EntryForm`] borrowed from an [`Entry`], to write it.
#[derive(Serialize)]
struct EntryRef<'a> {
    sequence: u64,
    org_id: &'a OrgId,
    site_id: &'a SiteId,
    jurisdiction: &'a str,
    effective_date: Date,
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_id: Option<&'a str>,
    original: &'a Payload,
    #[serde(skip_serializing_if = "Acts::is_empty")]
    corrections: &'a Acts<(EventId, Payload)>,
    #[serde(skip_serializing_if = "Acts::is_empty")]
    links: &'a Acts<(EventId, Link)>,
    #[serde(skip_serializing_if = "Acts::is_empty")]
    retracted_by: &'a Acts<EventId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    effect: Option<&'a Effect>,
}

impl Serialize for Entry {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let later = self.later();
        EntryRef {
            sequence: self.sequence,
            org_id: &self.place.org_id,
            site_id: &self.place.site_id,
            jurisdiction: &self.place.jurisdiction,
            effective_date: self.effective_date,
            correlation_id: self.correlation_id.as_deref(),
            original: &self.original,
            corrections: &later.corrections,
            links: &later.links,
            retracted_by: &later.retracted_by,
            effect: later.effect.as_ref(),
        }
        .serialize(s)
    }
}

impl Entry {
    /// What later events did to it and what it does (empty for most entries).
    fn later(&self) -> &Later {
        self.later.as_deref().unwrap_or(&NO_LATER)
    }

    /// [`Self::later`], to change: made on first use.
    fn later_mut(&mut self) -> &mut Later {
        self.later.get_or_insert_with(Box::default)
    }

    /// The ledger sequence the entry's event was folded at (its stable storage position).
    #[must_use]
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    fn new(sequence: u64, event: Event, places: &mut Places) -> Self {
        Self {
            sequence,
            place: places.share(Place {
                org_id: event.org_id,
                site_id: event.site_id,
                jurisdiction: event.jurisdiction,
            }),
            effective_date: event.effective_date,
            correlation_id: event.correlation_id.map(String::into_boxed_str),
            original: event.payload,
            later: None,
        }
    }

    /// Unretracted at `at`.
    fn live_at(&self, at: u64) -> bool {
        self.later().retracted_by.at(at).next().is_none()
    }

    /// At `at`: the latest correction's replacement, else the original payload.
    fn payload_at(&self, at: u64) -> &Payload {
        self.later()
            .corrections
            .latest(at)
            .map_or(&self.original, |(_, p)| p)
    }

    fn link_at(&self, at: u64) -> Option<Link> {
        self.later().links.latest(at).map(|(_, k)| *k)
    }

    fn classification_at(&self, at: u64) -> Classification {
        let link = self.link_at(at);
        classify(
            self.payload_at(at),
            link == Some(Link::Backfilled),
            link == Some(Link::Closed),
        )
    }
}

/// Each effect later events had on an entry (a correction, a position link, a retraction): the
/// sequence of the event having it (`by`), the value, and the ledger sequences it held between,
/// `from` inclusive to `until` exclusive (`None`: it still holds). Effects are never forgotten,
/// only ended, so the entry can be read as it stood at any sequence (cheap as-of answers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
struct Acts<T>(Vec<Held<T>>);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Held<T> {
    by: u64,
    from: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    until: Option<u64>,
    value: T,
}

impl<T> Default for Acts<T> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<T> Acts<T> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The effect of event `by` holds from sequence `now` on.
    fn start(&mut self, by: u64, now: u64, value: T) {
        self.0.push(Held {
            by,
            from: now,
            until: None,
            value,
        });
    }

    /// The effect of event `by` stops holding at sequence `now` (one that started at `now` never
    /// held at any sequence and is dropped).
    fn end(&mut self, by: u64, now: u64) {
        if let Some(i) = self.0.iter().rposition(|h| h.by == by && h.until.is_none()) {
            if self.0[i].from >= now {
                self.0.remove(i);
            } else {
                self.0[i].until = Some(now);
            }
        }
    }

    /// The effects holding at `at`, by `by` ascending.
    fn at(&self, at: u64) -> impl Iterator<Item = (u64, &T)> {
        let mut held: Vec<(u64, &T)> = self
            .0
            .iter()
            .filter(move |h| h.from <= at && h.until.is_none_or(|u| at < u))
            .map(|h| (h.by, &h.value))
            .collect();
        held.sort_by_key(|(by, _)| *by);
        held.into_iter()
    }

    /// The effect holding at `at` of the latest event (highest `by`).
    fn latest(&self, at: u64) -> Option<&T> {
        self.0
            .iter()
            .filter(|h| h.from <= at && h.until.is_none_or(|u| at < u))
            .max_by_key(|h| h.by)
            .map(|h| &h.value)
    }
}

impl Projection {
    /// An empty projection (nothing folded, `last_sequence() == 0`).
    #[must_use]
    pub fn new() -> Self {
        Self {
            tallies: Some(Box::default()),
            ..Self::default()
        }
    }

    /// Folds one committed event. Call in sequence order; sequences start at 1 and strictly
    /// increase. A sequence not above [`Self::last_sequence`] is ignored (already folded: a
    /// redelivery), and so is an event id already folded.
    pub fn apply(&mut self, sequence: u64, event: &Event) {
        if sequence <= self.last_sequence || self.entries.contains_key(&event.event_id) {
            self.last_sequence = self.last_sequence.max(sequence);
            return;
        }
        // Only what an entry keeps is copied.
        let owned = Event {
            event_id: event.event_id,
            org_id: event.org_id.clone(),
            site_id: event.site_id.clone(),
            jurisdiction: event.jurisdiction.clone(),
            effective_date: event.effective_date,
            source: wfl_domain::Source::default(),
            correlation_id: event.correlation_id.clone(),
            causation_id: None,
            schema_version: event.schema_version,
            evidence_confidence: event.evidence_confidence,
            expected_version: None,
            payload: event.payload.clone(),
        };
        self.apply_owned(sequence, owned);
    }

    /// [`Self::apply`] of an event the caller gives away: its fields move into the state, nothing
    /// is copied (what the projector's follower does with each decoded event).
    pub fn apply_owned(&mut self, sequence: u64, event: Event) {
        if sequence <= self.last_sequence {
            return;
        }
        let before = std::mem::replace(&mut self.last_sequence, sequence);
        let mark = self.dirty.len();
        let id = event.event_id;
        // One lookup in the (large) entry map for both the duplicate check and the insert (none
        // for an id above every id held: the usual case, ids being UUIDv7).
        let places = &mut self.places;
        let Some(entry) = self
            .entries
            .insert_new(id, || Arc::new(Entry::new(sequence, event, places)))
        else {
            return;
        };
        let mut kept = self.tallies.take();
        if let Some(kept) = kept.as_deref_mut() {
            kept.orgs.push(&entry.place.org_id, before, sequence);
        }
        index_worker(
            &mut self.workers,
            None,
            &entry.place.org_id,
            &entry.original,
            sequence,
            id,
            kept.as_deref_mut().map(|k| &mut k.worker_events),
        );
        self.dirty.push(id);
        // Only these kinds act on another event; for the rest there is nothing to settle (a new
        // entry has no corrections yet, so its payload is its original).
        let acts = matches!(
            entry.original,
            Payload::EventCorrected(_)
                | Payload::PositionBackfilled(_)
                | Payload::PositionClosed(_)
                | Payload::EventRetracted(_)
        );
        let signal = tally::is_signal(&entry.original);
        // Held for the tallies' one-event path (the map's own handle stays borrowed otherwise).
        // Not for an event that acts on others: settling may change its entry, and a second
        // handle would make that change copy the entry.
        let held = (!acts).then(|| Arc::clone(entry));
        if acts {
            self.settle(sequence, id);
        }
        if let Some(mut kept) = kept {
            if let Some(entry) = held {
                // Nothing but the new entry was touched: its worker (if it names one) is the
                // only one to move, with the events just indexed.
                // (`index_worker` copied the worker's events whenever the payload names one.)
                let worker = entry
                    .original
                    .worker_effect()
                    .map(|(w, _)| (w, kept.worker_events.as_slice()));
                kept.now.fold_new(
                    self,
                    before,
                    sequence,
                    (&id, &entry),
                    worker,
                    &mut kept.pair,
                );
            } else {
                let touched = &self.dirty[mark..];
                let workers = self.workers_named(touched);
                kept.now.move_to(
                    self,
                    before,
                    sequence,
                    workers.iter().map(|(o, w)| (*o, *w)),
                    touched,
                );
            }
            kept.by_sequence.push((sequence, id));
            if signal {
                kept.signals.insert(id);
            }
            kept.folded(before, sequence);
            self.tallies = Some(kept);
        }
    }

    /// Every entry added or changed between sequences `a` and `b` (either order): the events
    /// folded after the lower and up to the higher (`by_sequence`), and every event they act
    /// on, and those act on, in any payload they ever had (a superset of what the fold marked
    /// changed over those events, which is what [`tally::Tallies::move_to`] needs). Sorted.
    fn touched_between(&self, by_sequence: &tally::BySequence, a: u64, b: u64) -> Vec<EventId> {
        let (lo, hi) = (a.min(b), a.max(b));
        let mut work: Vec<EventId> = by_sequence.between(lo, hi).collect();
        let mut out = BTreeSet::new();
        while let Some(id) = work.pop() {
            if !out.insert(id) {
                continue;
            }
            let Some(e) = self.entries.get(&id) else {
                continue;
            };
            let payloads = std::iter::once(&e.original)
                .chain(e.later().corrections.0.iter().map(|h| &h.value.1));
            work.extend(
                payloads
                    .filter_map(effect_target)
                    .filter(|t| !out.contains(t)),
            );
        }
        out.into_iter().collect()
    }

    /// Every (org, worker) the entries `ids` name, in any payload they ever had (the original
    /// and each correction, ended or not), sorted and without repeats.
    fn workers_named(&self, ids: &[EventId]) -> Vec<(&OrgId, &WorkerRef)> {
        let mut out = Vec::new();
        for e in ids.iter().filter_map(|id| self.entries.get(id)) {
            let payloads = std::iter::once(&e.original)
                .chain(e.later().corrections.0.iter().map(|h| &h.value.1));
            for payload in payloads {
                if let Some((worker, _)) = payload.worker_effect() {
                    out.push((&e.place.org_id, worker));
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Takes what changed since the previous call (or since [`Self::restore`] / [`Self::new`]).
    pub fn take_changes(&mut self) -> Changes {
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable();
        dirty.dedup();
        let since = std::mem::replace(&mut self.taken, self.last_sequence);
        Changes {
            since,
            last_sequence: self.last_sequence,
            entries: dirty
                .into_iter()
                .filter_map(|id| self.entries.get(&id).map(|e| (id, Arc::clone(e))))
                .collect(),
            links: std::mem::take(&mut self.new_links),
        }
    }

    /// Rebuilds a state from its stored parts: every entry and every worker-index link persisted
    /// through [`Changes`], and the checkpoint they were persisted with. Nothing is pending after it.
    /// The worker index is each entry's own link plus `links` (a link given twice, as stores
    /// written before layout 6 hold the entries' own links too, counts once).
    pub fn restore(
        last_sequence: u64,
        entries: impl IntoIterator<Item = (EventId, impl Into<Arc<Entry>>)>,
        links: impl IntoIterator<Item = WorkerLink>,
    ) -> Self {
        let mut places = Places::default();
        let entries: IdMap<Arc<Entry>> = entries
            .into_iter()
            .map(|(id, e)| {
                let mut e = e.into();
                places.adopt(&mut e);
                (id, e)
            })
            .collect();
        let mut workers = WorkerIndex::new();
        // The link each entry's own original payload implies (never stored apart).
        for (id, e) in entries.iter() {
            index_worker(
                &mut workers,
                None,
                &e.place.org_id,
                &e.original,
                e.sequence,
                *id,
                None,
            );
        }
        for l in links {
            insert_sorted(
                workers
                    .entry(l.org)
                    .or_default()
                    .entry(WorkerKey::new(l.worker))
                    .or_default(),
                (l.sequence, l.event_id),
            );
        }
        let mut p = Self {
            last_sequence,
            entries,
            workers,
            dirty: Vec::new(),
            new_links: Vec::new(),
            taken: last_sequence,
            tallies: None,
            places,
        };
        p.tallies = Some(Box::new(tally::Kept::of(&p, tally::DEFAULT_SNAPSHOT_EVERY)));
        p
    }

    /// Snapshots the tallies every `every` sequences from now on (default
    /// [`DEFAULT_SNAPSHOT_EVERY`]): an as-of answer then costs at most the fold of that
    /// many events' workers, and memory holds one snapshot (the size of the current tallies)
    /// per `every` events of history. Snapshots taken at another spacing are dropped.
    pub fn keep_snapshots_every(&mut self, every: u64) {
        if let Some(kept) = self.tallies.as_deref_mut() {
            kept.respace(every);
        }
    }

    /// Takes every tally snapshot a restored state lacks (one per multiple of the spacing below
    /// the last sequence), so that no as-of answer has to move over more than half the spacing
    /// (costs about what the tallies cost the fold of the whole history, on two threads: call
    /// it off the async threads). Nothing to do without tallies.
    pub fn fill_snapshots(&mut self) {
        if let Some(mut kept) = self.tallies.take() {
            kept.fill(self);
            self.tallies = Some(kept);
        }
    }

    /// How many cells the current tallies hold (0 when it keeps none): the size of one
    /// snapshot, a few dozen bytes per cell.
    #[must_use]
    pub fn tally_cells(&self) -> usize {
        self.tallies.as_deref().map_or(0, |k| k.now.cells())
    }

    /// How many tally snapshots the projection holds (0 when it keeps no tallies).
    #[must_use]
    pub fn tally_snapshots(&self) -> usize {
        self.tallies
            .as_deref()
            .map_or(0, tally::Kept::snapshot_count)
    }

    /// Runs `f` on the state as it stood at `sequence` ([`Self::at`]) with the tallies of that
    /// sequence, so that its `*_counts` answers come from them: the current tallies, or a
    /// snapshot moved over the events between it and `sequence` (at most the snapshot spacing
    /// once the snapshot below is held). Without tallies, the answers come from the entries.
    pub fn read_at<T>(&self, sequence: u64, f: impl FnOnce(&At<'_>) -> T) -> T {
        let at = self.at(sequence);
        match self.tallies.as_deref() {
            Some(kept) if at.tallies.is_none() => {
                let tallies = kept.at(self, at.at);
                f(&At {
                    tallies: Some(&tallies),
                    ..at
                })
            }
            _ => f(&at),
        }
    }

    /// How many events the state holds (one entry per folded event id).
    #[must_use]
    pub fn entry_count(&self) -> usize {
        self.entries.len()
    }

    /// The sequence of the last event folded (0: none).
    #[must_use]
    pub fn last_sequence(&self) -> u64 {
        self.last_sequence
    }

    /// The state as it stood once sequence `sequence` was folded (every view, record and explain
    /// answer of [`At`] is the answer a fresh fold of the first `sequence` events gives). A
    /// sequence beyond [`Self::last_sequence`] is the current state.
    #[must_use]
    pub fn at(&self, sequence: u64) -> At<'_> {
        let at = sequence.min(self.last_sequence);
        At {
            p: self,
            at,
            tallies: self
                .tallies
                .as_deref()
                .filter(|_| at == self.last_sequence)
                .map(|k| &k.now),
        }
    }

    /// A read-only copy of the folded state (no pending changes, no tallies: its answers come
    /// from the entries), to read without holding whatever guards this one: entries are shared (`Arc`), so the copy costs the maps' nodes and
    /// the worker index, not the entries (`wfl bench fold` times it at 1M events).
    #[must_use]
    pub fn snapshot(&self) -> Self {
        Self {
            last_sequence: self.last_sequence,
            entries: self.entries.clone(),
            workers: self.workers.clone(),
            dirty: Vec::new(),
            new_links: Vec::new(),
            taken: self.last_sequence,
            tallies: None,
            places: self.places.clone(),
        }
    }

    /// Starts a read-only copy of the state as it stands now, to be filled a part at a time by
    /// [`Self::copy_part`] with the caller's lock released between parts (the fold goes on
    /// meanwhile), then made by [`CopyCursor::finish`] (no lock needed). The copy reads as of
    /// the sequence it was started at: entries and links folded later may be in it, and are left
    /// out by every reader (an entry keeps the sequences each of its effects held between), so
    /// it answers as [`Self::snapshot`] taken now would.
    #[must_use]
    pub fn start_copy(&self) -> CopyCursor {
        self.start_copy_of(None)
    }

    /// [`Self::start_copy`] of one org's state: its entries (found through the org's runs of
    /// sequences, without reading any other org's) and its workers, so that a copy for one
    /// org's answers costs that org's history, not everyone's. Every reader of one org answers
    /// from it as from a whole copy: an event only ever acts on an event of its own org, and a
    /// worker is indexed under its org. It copies every org instead, which answers the same,
    /// when the org holds more than half of the events (one look-up in the entry map per event
    /// then costs more than walking the whole map in order: 2.0–2.4 s against 1.7–1.8 s for
    /// `ThresholdWatch` of an org of 1M events beside one of 10,000), and in a state that keeps
    /// no tallies (a copy itself), which has no org index.
    #[must_use]
    pub fn start_copy_of(&self, org: Option<&OrgId>) -> CopyCursor {
        CopyCursor {
            last_sequence: self.last_sequence,
            org: org.filter(|o| self.read_alone(o).is_some()).cloned(),
            ..CopyCursor::default()
        }
    }

    /// Whether `org` is read through its runs of sequences (by [`Self::start_copy_of`] and by
    /// every reading of one org): the org index when the state keeps one and the org holds at
    /// most half the events; `None` when the whole map is walked instead.
    #[must_use]
    fn read_alone(&self, org: &OrgId) -> Option<&tally::Kept> {
        let held = self.entries.len() as u64;
        self.org_events(org)
            .filter(|n| n.saturating_mul(2) <= held)
            .and(self.tallies.as_deref())
    }

    /// Whether a copy of `org` alone ([`Self::start_copy_of`]) holds at most `max` events: it
    /// is read through its runs and has no more than that.
    #[must_use]
    pub fn copies_alone_within(&self, org: &OrgId, max: u64) -> bool {
        self.read_alone(org).is_some() && self.org_events(org).is_some_and(|n| n <= max)
    }

    /// `org`'s events folded after sequence `after` and up to `to`, ascending by sequence,
    /// found through its runs ([`tally::OrgRuns`]) and the sequence index: no other org's
    /// event is read.
    fn org_entries<'s>(
        &'s self,
        kept: &'s tally::Kept,
        org: &OrgId,
        after: u64,
        to: u64,
    ) -> impl Iterator<Item = (u64, &'s EventId, &'s Arc<Entry>)> + 's {
        kept.orgs
            .of_org(org)
            .iter()
            .skip_while(move |(_, last)| *last <= after)
            .take_while(move |(first, _)| *first <= to)
            .flat_map(move |&(first, last)| {
                kept.by_sequence
                    .pairs_between(after.max(first.saturating_sub(1)), last.min(to))
            })
            .filter_map(|(sequence, id)| {
                let (id, e) = self.entries.get_key_value(&id)?;
                Some((sequence, id, e))
            })
    }

    /// Each org with events and the sequence of its latest event, in org order (what changes
    /// when anything of the org's state does: an event acts only on its own org's); `None` when
    /// the state keeps no org index (a copy).
    #[must_use]
    pub fn org_heads(&self) -> Option<impl Iterator<Item = (&OrgId, u64)>> {
        Some(self.tallies.as_deref()?.orgs.heads())
    }

    /// The sequence of `org`'s latest event at or before `at` (0: none), as far as the org index
    /// says (a sequence within one of its runs where nothing was folded counts as its): two
    /// readings with the same answer hold the same events of `org`. `None` when it keeps no
    /// org index.
    #[must_use]
    pub fn org_head_at(&self, org: &OrgId, at: u64) -> Option<u64> {
        let runs = self.tallies.as_deref()?.orgs.of_org(org);
        let before = runs.partition_point(|(first, _)| *first <= at);
        Some(before.checked_sub(1).map_or(0, |i| runs[i].1.min(at)))
    }

    /// The sequence of `org`'s first event after `after`, as far as the org index says (see
    /// [`Projection::org_head_at`]); `None` when it has none after it or the state keeps no
    /// org index.
    #[must_use]
    pub fn org_next_after(&self, org: &OrgId, after: u64) -> Option<u64> {
        let runs = self.tallies.as_deref()?.orgs.of_org(org);
        let i = runs.partition_point(|(_, last)| *last <= after);
        runs.get(i).map(|(first, _)| (*first).max(after + 1))
    }

    /// Whether `org` holds at most `max` events ([`Projection::org_events`]), reading at most
    /// `max` of its runs; `None` when the state keeps no org index.
    #[must_use]
    pub fn org_events_within(&self, org: &OrgId, max: u64) -> Option<bool> {
        let mut events = 0u64;
        for (first, last) in self.tallies.as_deref()?.orgs.of_org(org) {
            events += last - first + 1;
            if events > max {
                return Some(false);
            }
        }
        Some(true)
    }

    /// How many events of `org` the state holds at most (its runs' lengths: a gap in the
    /// sequence, where nothing was folded, is counted); `None` when it keeps no org index.
    #[must_use]
    pub fn org_events(&self, org: &OrgId) -> Option<u64> {
        let kept = self.tallies.as_deref()?;
        Some(
            kept.orgs
                .of_org(org)
                .iter()
                .map(|(first, last)| last - first + 1)
                .sum(),
        )
    }

    /// Copies the next `max` entries (shared, not deep-copied) and workers' event lists into
    /// `cursor` (begun by [`Self::start_copy`] or [`Self::start_copy_of`] on this projection);
    /// true once everything is in.
    pub fn copy_part(&self, cursor: &mut CopyCursor, max: usize) -> bool {
        use std::ops::Bound::{Excluded, Unbounded};
        let mut budget = max.max(1);
        let kept = self.tallies.as_deref();
        if let (false, Some(org), Some(kept)) = (cursor.entries_done, &cursor.org, kept) {
            let (after, to) = (cursor.copied_to, cursor.last_sequence);
            for (sequence, id, e) in self.org_entries(kept, org, after, to).take(budget) {
                cursor.entries.push((*id, Arc::clone(e)));
                cursor.copied_to = sequence;
                budget -= 1;
            }
            if budget == 0 {
                // Full: the next part goes on after `copied_to`.
                return false;
            }
            cursor.entries_done = true;
        }
        if !cursor.entries_done {
            let from = cursor.entry.map_or(Unbounded, Excluded);
            let before = cursor.entries.len();
            cursor.entries.extend(
                self.entries
                    .range_from(from.as_ref())
                    .take(budget)
                    .map(|(id, e)| (*id, Arc::clone(e))),
            );
            budget -= cursor.entries.len() - before;
            cursor.entry = cursor.entries.last().map(|(id, _)| *id);
            if budget > 0 {
                cursor.entries_done = true;
            } else {
                return false;
            }
        }
        let resume = cursor.worker.take();
        let only = cursor.org.clone();
        let orgs = match (&resume, &only) {
            (Some((org, _)), _) | (None, Some(org)) => self.workers.range::<OrgId, _>(org..),
            (None, None) => self.workers.range::<OrgId, _>(..),
        };
        for (org, workers) in orgs.take_while(|(org, _)| only.as_ref().is_none_or(|o| o == *org)) {
            let range = match &resume {
                Some((o, w)) if o == org => workers.range::<WorkerKey, _>((Excluded(w), Unbounded)),
                _ => workers.range::<WorkerKey, _>(..),
            };
            if cursor.workers.last().is_none_or(|(o, _)| o != org) {
                cursor.workers.push((org.clone(), Vec::new()));
            }
            let into = &mut cursor.workers.last_mut().expect("pushed above").1;
            for (worker, events) in range {
                into.push((worker.clone(), events.clone()));
                budget -= 1;
                if budget == 0 {
                    cursor.worker = Some((org.clone(), worker.clone()));
                    return false;
                }
            }
        }
        true
    }

    /// The current state, for reading.
    #[must_use]
    pub fn now(&self) -> At<'_> {
        self.at(self.last_sequence)
    }

    /// The latest effective date among the live events of `org` (all orgs when `None`).
    #[must_use]
    pub fn latest_effective_date(&self, org: Option<&OrgId>) -> Option<Date> {
        self.now().latest_effective_date(org)
    }

    /// [`At::separations`] now.
    #[must_use]
    pub fn separations(&self, q: &Query) -> SeparationsView {
        self.now().separations(q)
    }

    /// [`At::headcount`] now.
    #[must_use]
    pub fn headcount(&self, q: &Query) -> HeadcountView {
        self.now().headcount(q)
    }

    /// [`At::cohort_exposure`] now.
    #[must_use]
    pub fn cohort_exposure(&self, q: &Query) -> CohortExposureView {
        self.now().cohort_exposure(q)
    }

    /// [`At::hiring_signals`] now.
    #[must_use]
    pub fn hiring_signals(&self, q: &Query) -> HiringSignalsView {
        self.now().hiring_signals(q)
    }

    /// [`At::ai_adoption`] now.
    #[must_use]
    pub fn ai_adoption(&self, q: &Query) -> AiAdoptionView {
        self.now().ai_adoption(q)
    }

    /// [`At::population`] now.
    #[must_use]
    pub fn population(&self, query: &crate::PopulationQuery) -> u64 {
        self.now().population(query)
    }

    /// [`At::separation_records`] now.
    #[must_use]
    pub fn separation_records(&self, org: Option<&OrgId>) -> Vec<SeparationRecord> {
        self.now().separation_records(org)
    }

    /// [`At::countable_records`] now.
    #[must_use]
    pub fn countable_records(&self, org: Option<&OrgId>) -> Vec<SeparationRecord> {
        self.now().countable_records(org)
    }

    /// [`At::compliance_records`] now.
    #[must_use]
    pub fn compliance_records(&self, org: Option<&OrgId>) -> Vec<ComplianceRecord> {
        self.now().compliance_records(org)
    }

    /// [`At::explain`] now.
    #[must_use]
    pub fn explain(&self, event_ids: &[EventId]) -> Vec<ExplainedEvent> {
        self.now().explain(event_ids)
    }

    // ---- folding ------------------------------------------------------------------------------

    /// Brings every effect up to date after `id` was added. An effect only ever targets an earlier
    /// event, so working from the highest sequence down visits each event at most once.
    fn settle(&mut self, sequence: u64, id: EventId) {
        let mut work = BTreeSet::from([(sequence, id)]);
        while let Some((_, id)) = work.pop_last() {
            self.refresh(id, &mut work);
        }
    }

    /// Re-derives what `id` does to an earlier event; if that changed, undoes the old effect and
    /// applies the new one, queueing the touched targets.
    fn refresh(&mut self, id: EventId, work: &mut BTreeSet<(u64, EventId)>) {
        let Some(entry) = self.entries.get(&id) else {
            return;
        };
        let desired = self.desired_effect(entry);
        if desired == entry.later().effect {
            return;
        }
        let sequence = entry.sequence;
        let org = entry.place.org_id.clone();
        let old = entry.later().effect.clone();
        // Every change happens at the sequence being folded.
        let now = self.last_sequence;
        if let Some(entry) = self.entries.get_mut(&id) {
            Arc::make_mut(entry).later_mut().effect.clone_from(&desired);
            self.dirty.push(id);
        }
        if let Some(old) = old {
            if let Some(target) = self.entries.get_mut(&old.target()).map(Arc::make_mut) {
                let later = target.later_mut();
                match old {
                    Effect::Correct { .. } => later.corrections.end(sequence, now),
                    Effect::Link { .. } => later.links.end(sequence, now),
                    Effect::Retract { .. } => later.retracted_by.end(sequence, now),
                }
                work.insert((target.sequence, old.target()));
                self.dirty.push(old.target());
            }
        }
        if let Some(new) = desired {
            let target_id = new.target();
            if let Effect::Correct {
                target,
                replacement,
            } = &new
            {
                let target_sequence = self.entries.get(target).map(|t| t.sequence);
                if let Some(s) = target_sequence {
                    index_worker(
                        &mut self.workers,
                        Some(&mut self.new_links),
                        &org,
                        replacement,
                        s,
                        *target,
                        None,
                    );
                }
            }
            if let Some(target) = self.entries.get_mut(&target_id).map(Arc::make_mut) {
                let later = target.later_mut();
                match new {
                    Effect::Correct { replacement, .. } => {
                        later.corrections.start(sequence, now, (id, *replacement));
                    }
                    Effect::Link { kind, .. } => later.links.start(sequence, now, (id, kind)),
                    Effect::Retract { .. } => later.retracted_by.start(sequence, now, id),
                }
                work.insert((target.sequence, target_id));
                self.dirty.push(target_id);
            }
        }
    }

    /// What `entry` should currently do, given its current payload and liveness.
    fn desired_effect(&self, entry: &Entry) -> Option<Effect> {
        if !entry.live_at(CURRENT) {
            return None;
        }
        let target = |id: &EventId| {
            self.entries
                .get(id)
                .filter(|t| t.sequence < entry.sequence && t.place.org_id == entry.place.org_id)
        };
        match entry.payload_at(CURRENT) {
            Payload::EventCorrected(c) => {
                let t = target(&c.original_event_id)?;
                (t.original.event_type() == c.replacement.event_type()).then(|| Effect::Correct {
                    target: c.original_event_id,
                    replacement: c.replacement.clone(),
                })
            }
            Payload::PositionBackfilled(p) => {
                let id = p.linked_separation_id?;
                target(&id)?;
                Some(Effect::Link {
                    target: id,
                    kind: Link::Backfilled,
                })
            }
            Payload::PositionClosed(p) => {
                let id = p.linked_separation_id?;
                target(&id)?;
                Some(Effect::Link {
                    target: id,
                    kind: Link::Closed,
                })
            }
            Payload::EventRetracted(r) => {
                target(&r.original_event_id)?;
                Some(Effect::Retract {
                    target: r.original_event_id,
                })
            }
            _ => None,
        }
    }
}

/// The earlier event a payload acts on (corrects, links or retracts), if any.
fn effect_target(payload: &Payload) -> Option<EventId> {
    match payload {
        Payload::EventCorrected(c) => Some(c.original_event_id),
        Payload::PositionBackfilled(p) => p.linked_separation_id,
        Payload::PositionClosed(p) => p.linked_separation_id,
        Payload::EventRetracted(r) => Some(r.original_event_id),
        _ => None,
    }
}

/// Records that event `id` (folded at `sequence`) names the worker `payload` acts on, if any.
/// A link the entry itself does not imply (a correction's replacement naming a worker) is queued
/// in `new_links` for the next persist; pass `None` for the entry's own original payload, which
/// [`Projection::restore`] indexes from the stored entry.
fn index_worker(
    workers: &mut WorkerIndex,
    new_links: Option<&mut Vec<WorkerLink>>,
    org: &OrgId,
    payload: &Payload,
    sequence: u64,
    id: EventId,
    copy: Option<&mut WorkerEvents>,
) {
    let Some((worker, _)) = payload.worker_effect() else {
        return;
    };
    let by_worker = if let Some(m) = workers.get_mut(org) {
        m
    } else {
        workers.entry(org.clone()).or_default()
    };
    // One descent whether the worker is new or not (most events name a new worker: a look-up
    // before the insert would descend twice); the name's copy is dropped when it is not new.
    let events = by_worker.entry(WorkerKey::of(worker)).or_default();
    if insert_sorted(events, (sequence, id)) {
        if let Some(new_links) = new_links {
            new_links.push(WorkerLink {
                org: org.clone(),
                worker: worker.clone(),
                sequence,
                event_id: id,
            });
        }
    }
    if let Some(copy) = copy {
        copy.clone_from(events);
    }
}

/// The entry map's serialised form: the plain map of entries (`Arc` is how they are shared with a
/// persist in flight, not part of the state).
mod shared_entries {
    use super::{Arc, BTreeMap, Entry, EventId, IdMap};
    use serde::ser::SerializeMap;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        map: &IdMap<Arc<Entry>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        // The length given up front, as a `BTreeMap` gives it (formats that need it have it).
        let mut out = s.serialize_map(Some(map.len()))?;
        for (k, v) in map.iter() {
            out.serialize_entry(k, &**v)?;
        }
        out.end()
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<IdMap<Arc<Entry>>, D::Error> {
        let map = BTreeMap::<EventId, Entry>::deserialize(d)?;
        Ok(map.into_iter().map(|(k, v)| (k, Arc::new(v))).collect())
    }
}

/// The projection read as it stood at one ledger sequence: what [`Projection::at`] gives. Every
/// entry carries the sequence it was folded at and every effect the sequences it held between,
/// so reading the past costs what reading the present costs (no re-fold).
#[derive(Debug, Clone, Copy)]
pub struct At<'a> {
    p: &'a Projection,
    at: u64,
    /// The tallies of sequence `at`, when the projection keeps them (the current ones, or an
    /// as-of copy given by [`Projection::read_at`]).
    tallies: Option<&'a tally::Tallies>,
}

/// An entry read at a sequence: its payload, link and liveness as they stood then.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EntryAt<'a> {
    e: &'a Entry,
    at: u64,
}

impl std::ops::Deref for EntryAt<'_> {
    type Target = Entry;
    fn deref(&self) -> &Entry {
        self.e
    }
}

impl<'a> EntryAt<'a> {
    fn live(&self) -> bool {
        self.e.live_at(self.at)
    }

    fn payload(&self) -> &'a Payload {
        self.e.payload_at(self.at)
    }

    fn classification(&self) -> Classification {
        self.e.classification_at(self.at)
    }

    fn separation_record(&self, event_id: EventId) -> SeparationRecord {
        let payload = self.payload();
        SeparationRecord {
            event_id,
            sequence: self.sequence,
            org: self.place.org_id.clone(),
            site: self.place.site_id.clone(),
            jurisdiction: self.place.jurisdiction.clone(),
            effective_date: self.effective_date,
            event_type: payload.event_type(),
            payload: payload.clone(),
            classification: self.classification(),
            correlation_id: self.correlation_id.as_deref().map(str::to_owned),
        }
    }
}

impl<'a> At<'a> {
    /// The sequence this reads the state at (never beyond the last folded).
    #[must_use]
    pub fn last_sequence(&self) -> u64 {
        self.at
    }

    /// Worker index of the whole state (a superset for any earlier sequence: readers re-check).
    fn workers(&self) -> &'a WorkerIndex {
        &self.p.workers
    }

    /// The latest effective date among the live events of `org` (all orgs when `None`): the
    /// default day the threshold watch is evaluated at. From the tallies' count of live events
    /// per day when this reading has them (cost: one look-up per org), else every entry.
    #[must_use]
    pub fn latest_effective_date(&self, org: Option<&OrgId>) -> Option<Date> {
        if let Some(t) = self.tallies {
            return t.latest_date(org);
        }
        self.live_of(org).map(|(_, e)| e.effective_date).max()
    }

    /// The figures of [`Self::separations`] without their evidence (every `event_ids` empty):
    /// what a served answer needs. Read from the tallies kept at fold time when this is the
    /// current state of a projection that keeps them (cost: the matching cells, not the
    /// history), else from the entries.
    #[must_use]
    pub fn separation_counts(&self, q: &Query) -> SeparationsView {
        match self.tallies {
            Some(t) => separations::counted(t, q, self.at),
            None => separations::view(self, q),
        }
    }

    /// The live events the signal views list, of `org` (every org when `None`): from the
    /// tallies' index when it can (or the org's own events, when it has fewer than the index),
    /// else every live entry (the views filter by kind and org either way). In id order, like
    /// [`Self::live`].
    fn signal_entries(
        &self,
        org: Option<&OrgId>,
    ) -> Box<dyn Iterator<Item = (&'a EventId, EntryAt<'a>)> + 'a> {
        match self.p.tallies.as_deref() {
            Some(kept)
                if org
                    .and_then(|o| self.p.org_events(o))
                    .is_some_and(|n| n < kept.signals.len() as u64) =>
            {
                Box::new(
                    self.live_of(org)
                        .filter(|(_, e)| tally::is_signal(&e.original)),
                )
            }
            Some(kept) => {
                let at = self.at;
                let p = self.p;
                Box::new(kept.signals.iter().filter_map(move |id| {
                    let (id, e) = p.entries.get_key_value(id)?;
                    let e = EntryAt { e, at };
                    (e.sequence <= at && e.live()).then_some((id, e))
                }))
            }
            None => Box::new(self.live()),
        }
    }

    /// The figures of [`Self::cohort_exposure`] without their evidence (every `event_ids`
    /// empty), from the tallies when it can (see [`Self::separation_counts`]).
    #[must_use]
    pub fn cohort_exposure_counts(&self, q: &Query) -> CohortExposureView {
        match self.tallies {
            Some(t) => headcount::exposure_counted(t, q, self.at),
            None => headcount::exposure(self, q),
        }
    }

    /// The figures of [`Self::headcount`] without their evidence (every `event_ids` empty), from
    /// the tallies when it can (see [`Self::separation_counts`]).
    #[must_use]
    pub fn headcount_counts(&self, q: &Query) -> HeadcountView {
        match self.tallies {
            Some(t) => headcount::counted(t, q, self.at),
            None => headcount::view(self, q),
        }
    }

    /// Separations per period, bucket and mechanism, with bucket totals and the AI-attributed share.
    #[must_use]
    pub fn separations(&self, q: &Query) -> SeparationsView {
        separations::view(self, q)
    }

    /// Headcount per period (opening, hires, separations, transfers, closing), reconciled, by cohort
    /// and by employment relationship.
    #[must_use]
    pub fn headcount(&self, q: &Query) -> HeadcountView {
        headcount::view(self, q)
    }

    /// Each cohort's share of reductions against its share of (average) headcount over the window.
    #[must_use]
    pub fn cohort_exposure(&self, q: &Query) -> CohortExposureView {
        headcount::exposure(self, q)
    }

    /// Hiring pauses and graduate intake against baseline.
    #[must_use]
    pub fn hiring_signals(&self, q: &Query) -> HiringSignalsView {
        signals::hiring(self, q)
    }

    /// AI usage, tools, automated roles, AI-attributed separations, and the external "AI+" targets.
    #[must_use]
    pub fn ai_adoption(&self, q: &Query) -> AiAdoptionView {
        signals::ai(self, q, false)
    }

    /// [`Self::ai_adoption`] with the AI-attributed separations counted only (their `event_ids`
    /// empty), from the tallies when it can (see [`Self::separation_counts`]).
    #[must_use]
    pub fn ai_adoption_counts(&self, q: &Query) -> AiAdoptionView {
        signals::ai(self, q, true)
    }

    /// Workers employed at the end of `query.on` matching the query: the [`crate::Population`]
    /// answer, under a name that the view method [`Self::headcount`] does not shadow.
    #[must_use]
    pub fn population(&self, query: &crate::PopulationQuery) -> u64 {
        headcount::population(self, query)
    }

    /// Committed, unretracted separations (current payload, classification after links), ordered
    /// by (effective date, sequence), for rule-pack evaluation.
    #[must_use]
    pub fn separation_records(&self, org: Option<&OrgId>) -> Vec<SeparationRecord> {
        let mut out: Vec<SeparationRecord> = self
            .live_of(org)
            .filter(|(_, e)| e.payload().separation().is_some())
            .map(|(id, e)| e.separation_record(*id))
            .collect();
        out.sort_by_key(|r| (r.effective_date, r.sequence));
        out
    }

    /// [`Self::separation_records`] plus unretracted `TemporaryLayoff` and `HoursReduced` events
    /// (classified as signals): everything a rule pack may count (US WARN counts long layoffs and
    /// deep hours cuts as employment losses). Same order.
    #[must_use]
    pub fn countable_records(&self, org: Option<&OrgId>) -> Vec<SeparationRecord> {
        let mut out: Vec<SeparationRecord> = self
            .live_of(org)
            .filter(|(_, e)| crate::rules::watch::countable_payload(e.payload()))
            .map(|(id, e)| e.separation_record(*id))
            .collect();
        out.sort_by_key(|r| (r.effective_date, r.sequence));
        out
    }

    /// Committed, unretracted compliance steps, ordered by (effective date, sequence).
    #[must_use]
    pub fn compliance_records(&self, org: Option<&OrgId>) -> Vec<ComplianceRecord> {
        let mut out: Vec<ComplianceRecord> = self
            .live_of(org)
            .filter_map(|(id, e)| {
                let payload = e.payload();
                let step = match payload {
                    Payload::UnionBriefed(s)
                    | Payload::AuthorityReported(s)
                    | Payload::WarnNoticeFiled(s) => s,
                    _ => return None,
                };
                Some(ComplianceRecord {
                    event_id: *id,
                    sequence: e.sequence,
                    org: e.place.org_id.clone(),
                    kind: payload.event_type(),
                    plan_id: step.plan_id.clone(),
                    effective_date: e.effective_date,
                    jurisdiction: e.place.jurisdiction.clone(),
                    site: e.place.site_id.clone(),
                })
            })
            .collect();
        out.sort_by_key(|r| (r.effective_date, r.sequence));
        out
    }

    /// What the threshold watch evaluates, borrowed from the state in one pass over the live
    /// entries: the countable separations ([`Self::countable_records`]), the compliance steps
    /// ([`Self::compliance_records`]) and the site closings and relocations
    /// ([`Self::site_event_records`]), each in the same order, nothing copied (those three copy
    /// every payload and walk the entries once each: most of the watch's gathering at 1M).
    #[must_use]
    pub fn watch_inputs(&self, org: Option<&OrgId>) -> WatchInputs<'a> {
        use crate::rules::{ComplianceStep, Separation, SiteEvent};
        let mut separations = Vec::new();
        let mut steps = Vec::new();
        let mut site_events = Vec::new();
        for (id, e) in self.live_of(org) {
            let entry: &'a Entry = e.e;
            let key = (entry.effective_date, entry.sequence);
            let payload = e.payload();
            match payload {
                Payload::UnionBriefed(step)
                | Payload::AuthorityReported(step)
                | Payload::WarnNoticeFiled(step) => steps.push((
                    key,
                    ComplianceStep {
                        event_id: *id,
                        org: &entry.place.org_id,
                        site: &entry.place.site_id,
                        kind: payload.event_type(),
                        plan_id: &step.plan_id,
                        effective_date: entry.effective_date,
                    },
                )),
                Payload::SiteClosed(_) | Payload::SiteRelocated(_) => {
                    if let Some(s) = SiteEvent::from_parts(
                        *id,
                        &entry.place.org_id,
                        &entry.place.site_id,
                        entry.effective_date,
                        payload,
                    ) {
                        site_events.push((key, s));
                    }
                }
                p if crate::rules::watch::countable_payload(p) => {
                    let c = e.classification();
                    separations.push((
                        key,
                        Separation {
                            event_id: *id,
                            org: &entry.place.org_id,
                            site: &entry.place.site_id,
                            jurisdiction: &entry.place.jurisdiction,
                            effective_date: entry.effective_date,
                            payload: p,
                            position_closed: c.position_closed,
                            backfilled: c.backfilled,
                            correlation_id: entry.correlation_id.as_deref(),
                        },
                    ));
                }
                _ => {}
            }
        }
        fn ordered<T>(mut v: Vec<((Date, u64), T)>) -> Vec<T> {
            v.sort_by_key(|(k, _)| *k);
            v.into_iter().map(|(_, t)| t).collect()
        }
        WatchInputs {
            separations: ordered(separations),
            steps: ordered(steps),
            site_events: ordered(site_events),
        }
    }

    /// Committed, unretracted site closings and relocations (`SiteClosed`, `SiteRelocated`),
    /// ordered by (effective date, sequence), for the plant-closing and relocation thresholds.
    #[must_use]
    pub fn site_event_records(&self, org: Option<&OrgId>) -> Vec<SeparationRecord> {
        let mut out: Vec<SeparationRecord> = self
            .live_of(org)
            .filter(|(_, e)| {
                matches!(
                    e.payload(),
                    Payload::SiteClosed(_) | Payload::SiteRelocated(_)
                )
            })
            .map(|(id, e)| e.separation_record(*id))
            .collect();
        out.sort_by_key(|r| (r.effective_date, r.sequence));
        out
    }

    /// The events behind a figure (its `event_ids`), as currently read. Unknown ids are skipped;
    /// retracted events are returned with `retracted_by` filled in.
    #[must_use]
    pub fn explain(&self, event_ids: &[EventId]) -> Vec<ExplainedEvent> {
        event_ids
            .iter()
            .filter_map(|id| {
                let e = self.entry(id)?;
                let payload = e.payload();
                Some(ExplainedEvent {
                    event_id: *id,
                    sequence: e.sequence,
                    org: e.place.org_id.clone(),
                    site: e.place.site_id.clone(),
                    jurisdiction: e.place.jurisdiction.clone(),
                    effective_date: e.effective_date,
                    event_type: payload.event_type(),
                    correlation_id: e.correlation_id.as_deref().map(str::to_owned),
                    payload: payload.clone(),
                    original_payload: e.original.clone(),
                    classification: e.classification(),
                    corrected_by: e
                        .later()
                        .corrections
                        .at(self.at)
                        .map(|(_, (id, _))| *id)
                        .collect(),
                    linked_by: e
                        .later()
                        .links
                        .at(self.at)
                        .map(|(_, (id, _))| *id)
                        .collect(),
                    retracted_by: e
                        .later()
                        .retracted_by
                        .at(self.at)
                        .map(|(_, id)| *id)
                        .collect(),
                })
            })
            .collect()
    }

    // ---- reading ------------------------------------------------------------------------------

    /// Events folded by `at` and unretracted at `at`, by id.
    fn live(&self) -> impl Iterator<Item = (&'a EventId, EntryAt<'a>)> {
        let at = self.at;
        self.p
            .entries
            .iter()
            .filter(move |(_, e)| e.sequence <= at && e.live_at(at))
            .map(move |(id, e)| (id, EntryAt { e, at }))
    }

    /// [`Self::live`] of `org` (every org when `None`), in the same (id) order. For an org
    /// holding at most half the events of a state that keeps the org index, its events are
    /// found through its runs of sequences ([`tally::OrgRuns`]) and sorted, so reading one
    /// tenant costs that tenant's history, not every tenant's; otherwise the whole map is
    /// walked (one look-up per event costs more than a walk in order).
    pub(super) fn live_of(
        &self,
        org: Option<&OrgId>,
    ) -> Box<dyn Iterator<Item = (&'a EventId, EntryAt<'a>)> + 'a> {
        let at = self.at;
        let Some(org) = org else {
            return Box::new(self.live());
        };
        let p: &'a Projection = self.p;
        if let Some(kept) = p.read_alone(org) {
            let mut own: Vec<(&'a EventId, &'a Arc<Entry>)> = p
                .org_entries(kept, org, 0, at)
                .map(|(_, id, e)| (id, e))
                .collect();
            own.sort_unstable_by_key(|(id, _)| **id);
            return Box::new(
                own.into_iter()
                    .filter(move |(_, e)| e.live_at(at))
                    .map(move |(id, e)| (id, EntryAt { e, at })),
            );
        }
        let org = org.clone();
        Box::new(self.live().filter(move |(_, e)| e.place.org_id == org))
    }

    /// The entry of `id` as it stood at `at` (retracted or not), if it was folded by then.
    fn entry(&self, id: &EventId) -> Option<EntryAt<'a>> {
        let at = self.at;
        self.p
            .entries
            .get(id)
            .filter(|e| e.sequence <= at)
            .map(|e| EntryAt { e, at })
    }

    /// [`Self::entry`] of each of `ids`, in their order. When they are many against the entries
    /// held (one in eight or more: every worker of an org, say), by one walk of the entries in
    /// id order over the ids sorted, rather than a search of the map per id (a million
    /// searches cost about four times the walk and the sort).
    pub(super) fn entries_of(&self, ids: &[EventId]) -> Vec<Option<EntryAt<'a>>> {
        let at = self.at;
        if ids.len().saturating_mul(8) < self.p.entries.len() || u32::try_from(ids.len()).is_err() {
            return ids.iter().map(|id| self.entry(id)).collect();
        }
        let mut order: Vec<u32> = (0..ids.len() as u32).collect();
        order.sort_unstable_by_key(|&i| ids[i as usize]);
        let mut out = vec![None; ids.len()];
        let Some(&first) = order.first() else {
            return out;
        };
        let mut walk = self
            .p
            .entries
            .range_from(std::ops::Bound::Included(&ids[first as usize]))
            .peekable();
        for i in order {
            let id = &ids[i as usize];
            while walk.next_if(|(k, _)| *k < id).is_some() {}
            if let Some((k, e)) = walk.peek() {
                if *k == id && e.sequence <= at {
                    out[i as usize] = Some(EntryAt { e, at });
                }
            }
        }
        out
    }

    /// Each site's jurisdiction, as the latest live event at that site states it (events carry
    /// their establishment's ISO 3166 code), for the sites of `org` (all orgs when `None`).
    fn site_jurisdictions(&self, org: Option<&OrgId>) -> BTreeMap<(OrgId, SiteId), String> {
        // The latest live event of each place (org, site and jurisdiction), found by the
        // place's address: the entries share one `Place` each (`Places`), so a walk of every
        // entry probes a pointer rather than descending a map of names. A place met twice (two
        // copies of one) is two slots: the latest wins below all the same.
        let mut by_place: foldhash::HashMap<*const Place, (u64, &'a Place)> =
            foldhash::HashMap::default();
        for (_, e) in self.live_of(org) {
            let entry: &'a Entry = e.e;
            let slot = by_place
                .entry(Arc::as_ptr(&entry.place))
                .or_insert((0, &entry.place));
            slot.0 = slot.0.max(entry.sequence);
        }
        // Keyed by borrowed names: nothing is copied per entry, only per site at the end.
        let mut latest: BTreeMap<(&OrgId, &SiteId), (u64, &str)> = BTreeMap::new();
        for (sequence, place) in by_place.into_values() {
            let slot = latest
                .entry((&place.org_id, &place.site_id))
                .or_insert((0, ""));
            // Sequences are unique per entry; a damaged store's tie still gives one answer.
            if (sequence, place.jurisdiction.as_str()) >= *slot {
                *slot = (sequence, place.jurisdiction.as_str());
            }
        }
        latest
            .into_iter()
            .map(|((o, s), (_, j))| ((o.clone(), s.clone()), j.to_owned()))
            .collect()
    }

    /// The query window: its bounds, else the earliest and latest effective dates of the org's
    /// live events. `None` when there is nothing to show.
    fn date_range(&self, q: &Query) -> Option<(Date, Date)> {
        let mut min: Option<Date> = None;
        let mut max: Option<Date> = None;
        for (_, e) in self.live_of(q.org.as_ref()) {
            min = Some(min.map_or(e.effective_date, |m| m.min(e.effective_date)));
            max = Some(max.map_or(e.effective_date, |m| m.max(e.effective_date)));
        }
        let from = q.from.or(min)?;
        let to = q.to.or(max)?;
        (from <= to).then_some((from, to))
    }
}

impl crate::Population for Projection {
    fn headcount(&self, query: &crate::PopulationQuery) -> u64 {
        headcount::population(&self.now(), query)
    }

    fn worker(&self, org: &OrgId, worker: &WorkerRef, on: Date) -> Option<crate::WorkerProfile> {
        crate::Population::worker(&self.now(), org, worker, on)
    }
}

impl crate::Population for At<'_> {
    fn headcount(&self, query: &crate::PopulationQuery) -> u64 {
        headcount::population(self, query)
    }

    /// The worker's stint employed on `on` (or separated on it): hire profile, hours, and months
    /// employed in the 12 months up to `on`.
    fn worker(&self, org: &OrgId, worker: &WorkerRef, on: Date) -> Option<crate::WorkerProfile> {
        let mut stints = Vec::new();
        timeline::worker_stints(self, org, worker, &mut stints);
        stints
            .iter()
            .rev()
            .find(|s| s.covers(on))
            .map(|s| s.worker_profile(on))
    }
}

/// `n / d`, or `None` when `d` is zero.
fn ratio(n: u64, d: u64) -> Option<f64> {
    (d > 0).then(|| n as f64 / d as f64)
}

/// The stable key of an optional cohort in by-cohort maps.
fn cohort_key(cohort: Option<Cohort>) -> String {
    cohort.map_or("unspecified", Cohort::as_str).to_owned()
}

#[cfg(test)]
mod layout {
    /// One `Arc<Entry>` per folded event: 16 bytes of counts plus the entry must stay within
    /// the allocator's 160-byte size class (it was 384 with three names of its own and unboxed
    /// separation payloads).
    #[test]
    fn an_entry_fits_its_size_class() {
        let size = std::mem::size_of::<super::Entry>();
        assert!(16 + size <= 160, "Entry is {size} bytes");
    }

    /// Each site's jurisdiction is the one its latest live event states. The entries are
    /// walked in id order, which here is not the sequence order: a place's latest event comes
    /// second among its entries (acme/ny's US-NJ), a place comes back after another
    /// (beta/ny's US, with US-NY between), and the latest event of acme/sf is retracted. Read
    /// from the folded state, from a deserialised copy (every entry with a place of its own) and
    /// one restored, and checked against a walk of the events in sequence order.
    #[test]
    fn a_site_is_in_the_jurisdiction_its_latest_live_event_states() {
        use super::{Arc, OrgId, Projection, SiteId};
        use std::collections::BTreeMap;
        use wfl_domain::{EventId, EventRetracted, Payload};
        let id = |n: u128| EventId(uuid::Uuid::from_u128(n));
        // In sequence order: (id, org, site, jurisdiction).
        let rows = [
            (20, "acme", "ny", "US-NJ"),
            (50, "acme", "sf", "US-CA"),
            (30, "acme", "ny", "US-NY"),
            (42, "beta", "ny", "US"),
            (31, "acme", "ny", "US-NY"),
            (21, "acme", "ny", "US-NJ"),
            (41, "beta", "ny", "US-NY"),
            (40, "beta", "ny", "US"),
            (51, "acme", "sf", "US-WA"),
            (60, "acme", "hq", "US"),
        ];
        let mut events = Vec::new();
        for (n, (i, org, site, jurisdiction)) in rows.into_iter().enumerate() {
            let mut e = super::fixtures::hire(n as u128 + 1, site);
            e.event_id = id(i);
            e.org_id = OrgId::from(org);
            e.jurisdiction = jurisdiction.into();
            if i == 60 {
                e.payload = Payload::EventRetracted(EventRetracted {
                    original_event_id: id(51),
                    reason: "entered twice".into(),
                });
            }
            events.push(e);
        }
        let mut expected: BTreeMap<(OrgId, SiteId), String> = BTreeMap::new();
        for e in events.iter().filter(|e| e.event_id != id(51)) {
            expected.insert(
                (e.org_id.clone(), e.site_id.clone()),
                e.jurisdiction.clone(),
            );
        }
        let at = |org: &str, site: &str| expected[&(OrgId::from(org), SiteId::from(site))].clone();
        assert_eq!(
            [at("acme", "ny"), at("acme", "sf"), at("beta", "ny")],
            ["US-NJ", "US-CA", "US"].map(String::from)
        );
        let mut p = Projection::new();
        for (i, e) in events.iter().enumerate() {
            p.apply(i as u64 + 1, e);
        }
        let acme: BTreeMap<_, _> = expected
            .iter()
            .filter(|((o, _), _)| o.0 == "acme")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let json = serde_json::to_vec(&p).expect("serialises");
        let copy: Projection = serde_json::from_slice(&json).expect("deserialises");
        let restored = Projection::restore(
            p.last_sequence(),
            p.entries.iter().map(|(id, e)| (*id, Arc::clone(e))),
            Vec::new(),
        );
        for state in [&p, &copy, &restored] {
            assert_eq!(state.now().site_jurisdictions(None), expected);
            assert_eq!(
                state.now().site_jurisdictions(Some(&OrgId::from("acme"))),
                acme
            );
        }
    }

    /// The entries of one place share one [`super::Place`], as folded and as restored from
    /// stored entries (each read back with a place of its own).
    #[test]
    fn the_entries_of_one_place_share_it_folded_and_restored() {
        use super::{Arc, Entry, EventId, Projection};
        let hire =
            |n: u128| super::fixtures::hire(n, if n.is_multiple_of(2) { "sh" } else { "bj" });
        let shared = |p: &Projection| {
            assert_eq!(p.places.0.len(), 2, "two sites, one place each");
            for e in p.entries.values() {
                let place = p.places.0.get(&*e.place).expect("the place is known");
                assert!(Arc::ptr_eq(place, &e.place), "{:?} is a copy", e.place);
            }
        };
        let mut p = Projection::new();
        for n in 1..=12 {
            p.apply(n as u64, &hire(n));
        }
        shared(&p);
        // As the store gives them back: every entry with a place of its own.
        let stored: Vec<(EventId, Entry)> = p
            .take_changes()
            .entries
            .iter()
            .map(|(id, e)| {
                let json = serde_json::to_vec(&**e).expect("serialises");
                (*id, serde_json::from_slice(&json).expect("deserialises"))
            })
            .collect();
        assert!(!Arc::ptr_eq(&stored[0].1.place, &stored[2].1.place));
        let restored = Projection::restore(12, stored, Vec::new());
        assert_eq!(restored, p);
        shared(&restored);
    }
}

/// Events for the unit tests of this module and its children.
#[cfg(test)]
mod fixtures {
    use wfl_domain::{
        ContractType, Date, EmploymentRelationship, Event, EventId, EvidenceConfidence, OrgId,
        Payload, SiteId, Source, WorkerHired, WorkerRef,
    };

    /// Worker `w-n` hired at `site` of `acme` (jurisdiction CN) on 2026-01-05 (event id `n`).
    pub(super) fn hire(n: u128, site: &str) -> Event {
        Event {
            event_id: EventId(uuid::Uuid::from_u128(n)),
            org_id: OrgId::from("acme"),
            site_id: SiteId::from(site),
            jurisdiction: "CN".into(),
            effective_date: Date::from_ymd(2026, 1, 5).expect("a date"),
            source: Source::default(),
            correlation_id: Some("plan-1".into()),
            causation_id: None,
            schema_version: 1,
            evidence_confidence: EvidenceConfidence::Reported,
            expected_version: None,
            payload: Payload::WorkerHired(WorkerHired {
                worker_ref: WorkerRef(format!("w-{n}")),
                employment_relationship: EmploymentRelationship::Employee,
                contract_type: ContractType::OpenEnded,
                cohort: None,
                position_id: None,
                baseline: false,
                avg_weekly_hours: Some(40),
                months_employed_last_12: None,
                contract_end: None,
            }),
        }
    }
}
