//! The threshold watch's latest rows per org, so that asking again costs the answer, not the
//! org's history.
//!
//! Owns: which org's rows are kept, under which key, and how many are kept. Must not: evaluate,
//! copy the state or take the projection's lock (its callers do; this is a map).
//!
//! An org's rows are a function of its own events and of the evaluation day alone (the alert
//! loop relies on the same fact, see `follow::Alerts`), so rows evaluated over every pack with
//! the org's latest event at sequence `head`, on day `day`, are the rows of any later state in
//! which that org's latest event is still `head`, on that day, whatever other orgs did since.
//! Both the alert loop and `ThresholdWatch` put what they evaluate here; `ThresholdWatch`
//! answers from it when the key matches (a large org's watch reads its whole history: seconds
//! at millions of events, against a copy of the rows asked for).
//!
//! While the org is being written to, the key stops matching at its next event. Rows are
//! then still the answer *as of the sequence they were evaluated at*, and [`Rows::recent`]
//! gives them for a question that asks no later sequence (`min_sequence`) while they are
//! younger than [`RECENT`] times what their evaluation cost: a caller polling an org that an
//! import is writing to gets a recent answer, labelled with its sequence, instead of paying
//! for the org's history on every call. [`Gates`] lets one `ThresholdWatch` evaluation of an
//! org's current state run at a time (the alert loop evaluates beside them), so callers
//! arriving together share it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use wfl_domain::{Date, OrgId};

use crate::thresholds::Kept as Row;

/// What a set of rows was evaluated over: the org, the sequence of its latest event, the day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Key {
    pub org: OrgId,
    pub head: u64,
    pub day: Date,
}

/// How rows were evaluated, beyond their [`Key`]: what they can answer once the org moved on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Made {
    /// The sequence of the state evaluated (at or after the org's latest event): the rows are
    /// the answer as of it.
    pub sequence: u64,
    /// The day was the org's own default day at `sequence` (the day of a `ThresholdWatch` that
    /// asks none).
    pub default_day: bool,
    /// What the copy and evaluation took.
    pub cost: Duration,
    /// When they ended.
    pub ended: Instant,
}

/// Rows answer a question that asks no later sequence for this many times what their
/// evaluation took after it ended: callers that ask no later sequence then cost an org at most
/// one evaluation in ten parts of the time (the alert loop's pace while an org is written to,
/// `follow::Paced`);
/// callers asking for the latest sequence (`min_sequence`) each wait for an evaluation, one at
/// a time ([`Gates`]). An org of 1M events evaluated in 2 s is answered from rows evaluated at
/// most 18 s before while it is being written to (their state is older by the evaluation's
/// copy and wait); one of a thousand events, evaluated in milliseconds, is in effect always
/// evaluated again.
pub(crate) const RECENT: u32 = 9;

/// The oldest rows [`Rows::recent`] gives, whatever their evaluation cost.
const OLDEST: Duration = Duration::from_secs(600);

struct Kept {
    head: u64,
    day: Date,
    made: Made,
    rows: Arc<Vec<Row>>,
    /// What the rows hold ([`weight`]).
    weight: usize,
    /// When last put or read ([`Rows::clock`]), for eviction.
    used: u64,
}

/// At most this many bytes of rows ([`weight`]) are kept in all: the least recently used org's
/// rows go first. One org's rows heavier than this are not kept.
pub(crate) const MAX_WEIGHT: usize = 64 << 20;

/// The latest rows of each org, over every loaded pack.
pub(crate) struct Rows {
    by_org: HashMap<OrgId, Kept>,
    /// The orgs kept by when last used, least recent first.
    by_use: BTreeMap<u64, OrgId>,
    weight: usize,
    /// The most `weight` kept ([`MAX_WEIGHT`]).
    max: usize,
    clock: u64,
}

impl Default for Rows {
    fn default() -> Self {
        Self::with_max(MAX_WEIGHT)
    }
}

/// About how many bytes `org`'s `rows` hold: the org's entry, a row with its names and figures,
/// and what it lists (16 bytes an event id, an exclusion with its reason, a procedure step).
pub(crate) fn weight(org: &OrgId, rows: &[Row]) -> usize {
    const ORG: usize = 256;
    const ROW: usize = 512;
    const ID: usize = 16;
    const EXCLUDED: usize = 128;
    const STEP: usize = 256;
    ORG + org.0.len()
        + rows
            .iter()
            .map(|r| &r.status)
            .map(|r| {
                ROW + ID * (r.event_ids.len() + r.notice_only.len())
                    + EXCLUDED * r.excluded.len()
                    + r.steps
                        .iter()
                        .map(|s| STEP + ID * s.effective_too_early.len())
                        .sum::<usize>()
            })
            .sum::<usize>()
}

impl Rows {
    /// Keeping at most `max` bytes of rows.
    fn with_max(max: usize) -> Self {
        Self {
            by_org: HashMap::new(),
            by_use: BTreeMap::new(),
            weight: 0,
            max,
            clock: 0,
        }
    }

    /// The rows kept for `key`, if they were evaluated over exactly that: the answer at
    /// sequence `at`, whose state has `key`'s head as the org's latest event (so a later
    /// [`Rows::recent`] answer from them is as of `at` at least).
    pub(crate) fn get(&mut self, key: &Key, at: u64) -> Option<Arc<Vec<Row>>> {
        self.clock += 1;
        let kept = self.by_org.get_mut(&key.org)?;
        if kept.head != key.head || kept.day != key.day {
            return None;
        }
        kept.made.sequence = kept.made.sequence.max(at);
        touch(&mut self.by_use, kept, self.clock);
        Some(Arc::clone(&kept.rows))
    }

    /// The rows kept for `org` that answer a question about its state at `min_sequence` or
    /// later, on `day` (`None`: the org's default day), at `now`: evaluated on that day, as of
    /// `min_sequence` or later, and younger than [`RECENT`] times what they cost (at most
    /// [`OLDEST`]). Gives the sequence they are the answer as of, and their day.
    pub(crate) fn recent(
        &mut self,
        org: &OrgId,
        day: Option<Date>,
        min_sequence: u64,
        now: Instant,
    ) -> Option<(u64, Date, Arc<Vec<Row>>)> {
        self.clock += 1;
        let kept = self.by_org.get_mut(org)?;
        let made = kept.made;
        let on_day = day.map_or(made.default_day, |d| d == kept.day);
        let young = now.saturating_duration_since(made.ended)
            <= made.cost.saturating_mul(RECENT).min(OLDEST);
        if !on_day || made.sequence < min_sequence || !young {
            return None;
        }
        touch(&mut self.by_use, kept, self.clock);
        Some((made.sequence, kept.day, Arc::clone(&kept.rows)))
    }

    /// Keeps `rows` (every pack's) for `key`, in place of what was kept for its org, unless what
    /// is kept is of a later state (an evaluation that started earlier and ended later).
    pub(crate) fn put(&mut self, key: Key, made: Made, rows: Arc<Vec<Row>>) {
        self.clock += 1;
        if self.by_org.get(&key.org).is_some_and(|k| {
            k.head > key.head || (k.head == key.head && k.made.sequence > made.sequence)
        }) {
            return;
        }
        self.remove(&key.org);
        let weight = weight(&key.org, &rows);
        if weight > self.max {
            return;
        }
        while self.weight + weight > self.max {
            let Some((_, oldest)) = self.by_use.pop_first() else {
                break;
            };
            self.remove(&oldest);
        }
        self.weight += weight;
        self.by_use.insert(self.clock, key.org.clone());
        self.by_org.insert(
            key.org,
            Kept {
                head: key.head,
                day: key.day,
                made,
                rows,
                weight,
                used: self.clock,
            },
        );
    }

    /// Forgets what is kept for `org`.
    fn remove(&mut self, org: &OrgId) {
        if let Some(old) = self.by_org.remove(org) {
            self.weight -= old.weight;
            self.by_use.remove(&old.used);
        }
    }

    /// Orgs kept.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_org.len()
    }
}

/// Marks `kept` as used at `clock` in the recency index.
fn touch(by_use: &mut BTreeMap<u64, OrgId>, kept: &mut Kept, clock: u64) {
    if let Some(org) = by_use.remove(&kept.used) {
        by_use.insert(clock, org);
    }
    kept.used = clock;
}

/// One evaluation of an org's current state at a time: a `ThresholdWatch` that must evaluate
/// holds its org's gate, and one that waited for it looks at the kept rows again first (the
/// evaluation it waited for put them there), so callers arriving together while an org is
/// being written to cost one evaluation, not one each. Bounded by the callers waiting: a gate
/// nobody holds or waits for is dropped.
#[derive(Default)]
pub(crate) struct Gates {
    by_org: std::sync::Mutex<HashMap<OrgId, Weak<tokio::sync::Mutex<()>>>>,
}

impl Gates {
    /// Fewest gates kept before those nobody holds are dropped.
    const PRUNE_AT: usize = 64;

    /// `org`'s gate.
    pub(crate) fn of(&self, org: &OrgId) -> Arc<tokio::sync::Mutex<()>> {
        let mut by_org = self
            .by_org
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(gate) = by_org.get(org).and_then(Weak::upgrade) {
            return gate;
        }
        if by_org.len() >= Self::PRUNE_AT {
            by_org.retain(|_, gate| gate.strong_count() > 0);
        }
        let gate = Arc::new(tokio::sync::Mutex::new(()));
        by_org.insert(org.clone(), Arc::downgrade(&gate));
        gate
    }

    /// Gates kept, held or not.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_org
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wfl_domain::EventId;
    use wfl_projections::rules::{CountDate, CountType, ThresholdStatus, Unit, WindowRole};

    fn row(org: &str, ids: usize) -> ThresholdStatus {
        let day = Date::parse("2026-01-02").expect("date");
        ThresholdStatus {
            pack: "CN-LCL-41".to_owned(),
            org: OrgId(org.to_owned()),
            unit: org.to_owned(),
            unit_kind: Unit::LegalEntity,
            window: "rolling-30".to_owned(),
            role: WindowRole::Current,
            window_key: "rolling-30/current/2026-01-02".to_owned(),
            window_start: day,
            window_end: day,
            count_type: CountType::Strict,
            count_date: CountDate::Effective,
            count: ids as u64,
            event_ids: (0..ids)
                .map(|i| EventId(uuid::Uuid::from_u128(i as u128)))
                .collect(),
            excluded: Vec::new(),
            gate: None,
            denominator: 0,
            threshold: 0,
            ratio: 0.0,
            level: None,
            steps: Vec::new(),
            missing_steps: Vec::new(),
            floor_only: false,
            label: String::new(),
            notice_only: Vec::new(),
            site_event: None,
        }
    }

    /// Evaluated as of `sequence` on the org's default day, in a second, just now.
    fn made(sequence: u64) -> Made {
        Made {
            sequence,
            default_day: true,
            cost: Duration::from_secs(1),
            ended: Instant::now(),
        }
    }

    fn key(org: &str, head: u64) -> Key {
        Key {
            org: OrgId(org.to_owned()),
            head,
            day: Date::parse("2026-01-02").expect("date"),
        }
    }

    #[test]
    fn rows_are_answered_for_their_org_head_and_day_only() {
        let mut rows = Rows::default();
        rows.put(
            key("a", 5),
            made(0),
            Arc::new(vec![Row::whole(row("a", 3))]),
        );
        assert_eq!(rows.get(&key("a", 5), 0).map(|r| r.len()), Some(1));
        assert!(rows.get(&key("a", 6), 0).is_none(), "a later head");
        assert!(rows.get(&key("b", 5), 0).is_none(), "another org");
        let mut other_day = key("a", 5);
        other_day.day = Date::parse("2026-01-03").expect("date");
        assert!(rows.get(&other_day, 0).is_none(), "another day");
        // An evaluation that started before the one kept does not replace it.
        rows.put(key("a", 4), made(0), Arc::new(vec![]));
        assert_eq!(rows.get(&key("a", 5), 0).map(|r| r.len()), Some(1));
        rows.put(key("a", 9), made(0), Arc::new(vec![]));
        assert!(rows.get(&key("a", 5), 0).is_none());
        assert_eq!(rows.get(&key("a", 9), 0).map(|r| r.len()), Some(0));
    }

    #[test]
    fn the_least_recently_used_org_goes_first_when_full() {
        const MAX: usize = 1 << 20;
        let mut rows = Rows::with_max(MAX);
        // Rows of a third of what is kept, less a little.
        let third = (MAX / 3 - 1024) / 16;
        for org in ["a", "b", "c"] {
            rows.put(
                key(org, 1),
                made(0),
                Arc::new(vec![Row::whole(row(org, third))]),
            );
        }
        assert_eq!(rows.len(), 3);
        rows.get(&key("a", 1), 0).expect("a kept");
        rows.put(
            key("d", 1),
            made(0),
            Arc::new(vec![Row::whole(row("d", third))]),
        );
        assert!(
            rows.get(&key("b", 1), 0).is_none(),
            "b was the least recently used"
        );
        assert!(rows.get(&key("a", 1), 0).is_some());
        assert!(rows.get(&key("c", 1), 0).is_some());
        assert!(rows.get(&key("d", 1), 0).is_some());
        assert!(rows.weight <= MAX);
        // Rows heavier than everything kept together are not kept (nor do they evict).
        rows.put(
            key("e", 1),
            made(0),
            Arc::new(vec![Row::whole(row("e", MAX / 16))]),
        );
        assert!(rows.get(&key("e", 1), 0).is_none());
        assert_eq!(rows.len(), 3);
    }

    #[test]
    fn orgs_with_no_rows_still_count_against_the_bound() {
        const MAX: usize = 1 << 20;
        let mut rows = Rows::with_max(MAX);
        for i in 0..10_000 {
            rows.put(key(&format!("org-{i}"), 0), made(0), Arc::new(Vec::new()));
        }
        assert!(rows.len() < MAX / 256, "{} orgs kept", rows.len());
        assert!(rows.weight <= MAX);
        assert!(
            rows.get(&key("org-9999", 0), 0).is_some(),
            "the latest is kept"
        );
        assert!(rows.get(&key("org-0", 0), 0).is_none(), "the first went");
        assert_eq!(rows.by_use.len(), rows.len());
    }

    #[test]
    fn rows_answer_a_later_state_while_young_and_not_asked_for_a_later_sequence() {
        let mut rows = Rows::default();
        let day = Date::parse("2026-01-02").expect("date");
        let ended = Instant::now();
        let evaluated = Made {
            sequence: 120,
            default_day: true,
            cost: Duration::from_secs(2),
            ended,
        };
        rows.put(
            key("a", 100),
            evaluated,
            Arc::new(vec![Row::whole(row("a", 3))]),
        );
        let at = |s: u64| ended + Duration::from_secs(s);
        let recent = |rows: &mut Rows, day: Option<Date>, min: u64, now: Instant| {
            rows.recent(&OrgId("a".to_owned()), day, min, now)
                .map(|(seq, d, r)| (seq, d, r.len()))
        };
        // As of the sequence they were evaluated at, on their day, asked or by default.
        assert_eq!(recent(&mut rows, None, 0, at(1)), Some((120, day, 1)));
        assert_eq!(
            recent(&mut rows, Some(day), 120, at(18)),
            Some((120, day, 1))
        );
        // Not for a later sequence, another day, or after nine times their cost.
        assert_eq!(
            recent(&mut rows, None, 121, at(1)),
            None,
            "a later sequence"
        );
        let other = Date::parse("2026-01-03").expect("date");
        assert_eq!(
            recent(&mut rows, Some(other), 0, at(1)),
            None,
            "another day"
        );
        assert_eq!(recent(&mut rows, None, 0, at(19)), None, "too old");
        assert!(rows
            .recent(&OrgId("b".to_owned()), None, 0, at(1))
            .is_none());
        // Rows of an asked day are not the org's default day's.
        let asked = Made {
            default_day: false,
            ..evaluated
        };
        rows.put(
            key("a", 100),
            Made {
                sequence: 130,
                ..asked
            },
            Arc::new(vec![]),
        );
        assert_eq!(
            recent(&mut rows, None, 0, at(1)),
            None,
            "not the default day"
        );
        assert_eq!(recent(&mut rows, Some(day), 0, at(1)), Some((130, day, 0)));
        // An evaluation of the same head at an earlier sequence does not replace a later one.
        rows.put(
            key("a", 100),
            evaluated,
            Arc::new(vec![Row::whole(row("a", 1))]),
        );
        assert_eq!(recent(&mut rows, Some(day), 0, at(1)), Some((130, day, 0)));
        // A costly evaluation's rows are not given after ten minutes.
        let costly = Made {
            cost: Duration::from_secs(3600),
            ..evaluated
        };
        rows.put(key("a", 200), costly, Arc::new(vec![]));
        assert!(recent(&mut rows, None, 0, at(600)).is_some());
        assert!(recent(&mut rows, None, 0, at(601)).is_none());
        // Read for its head at a later sequence, they are the answer as of that one.
        rows.get(&key("a", 200), 250).expect("kept");
        assert_eq!(recent(&mut rows, None, 250, at(1)).map(|r| r.0), Some(250));
    }

    #[test]
    fn an_org_has_one_gate_while_anyone_holds_it_and_unheld_gates_are_dropped() {
        let gates = Gates::default();
        let a = OrgId("a".to_owned());
        let held = gates.of(&a);
        assert!(Arc::ptr_eq(&held, &gates.of(&a)), "the same gate");
        assert!(!Arc::ptr_eq(&held, &gates.of(&OrgId("b".to_owned()))));
        for i in 0..1_000 {
            drop(gates.of(&OrgId(format!("org-{i}"))));
        }
        assert!(
            gates.len() <= Gates::PRUNE_AT + 1,
            "{} gates kept",
            gates.len()
        );
        assert!(Arc::ptr_eq(&held, &gates.of(&a)), "a held gate is kept");
    }
}
