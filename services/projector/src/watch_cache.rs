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

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use wfl_domain::{Date, OrgId};
use wfl_projections::rules::ThresholdStatus;

/// What a set of rows was evaluated over: the org, the sequence of its latest event, the day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Key {
    pub org: OrgId,
    pub head: u64,
    pub day: Date,
}

struct Kept {
    head: u64,
    day: Date,
    rows: Arc<Vec<ThresholdStatus>>,
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
pub(crate) fn weight(org: &OrgId, rows: &[ThresholdStatus]) -> usize {
    const ORG: usize = 256;
    const ROW: usize = 512;
    const ID: usize = 16;
    const EXCLUDED: usize = 128;
    const STEP: usize = 256;
    ORG + org.0.len()
        + rows
            .iter()
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

    /// The rows kept for `key`, if they were evaluated over exactly that.
    pub(crate) fn get(&mut self, key: &Key) -> Option<Arc<Vec<ThresholdStatus>>> {
        self.clock += 1;
        let kept = self.by_org.get_mut(&key.org)?;
        if kept.head != key.head || kept.day != key.day {
            return None;
        }
        if let Some(org) = self.by_use.remove(&kept.used) {
            self.by_use.insert(self.clock, org);
        }
        kept.used = self.clock;
        Some(Arc::clone(&kept.rows))
    }

    /// Keeps `rows` (every pack's) for `key`, in place of what was kept for its org, unless what
    /// is kept is of a later head (an evaluation that started earlier and ended later).
    pub(crate) fn put(&mut self, key: Key, rows: Arc<Vec<ThresholdStatus>>) {
        self.clock += 1;
        if self.by_org.get(&key.org).is_some_and(|k| k.head > key.head) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use wfl_domain::EventId;
    use wfl_projections::rules::{CountDate, CountType, Unit, WindowRole};

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
        rows.put(key("a", 5), Arc::new(vec![row("a", 3)]));
        assert_eq!(rows.get(&key("a", 5)).map(|r| r.len()), Some(1));
        assert!(rows.get(&key("a", 6)).is_none(), "a later head");
        assert!(rows.get(&key("b", 5)).is_none(), "another org");
        let mut other_day = key("a", 5);
        other_day.day = Date::parse("2026-01-03").expect("date");
        assert!(rows.get(&other_day).is_none(), "another day");
        // An evaluation that started before the one kept does not replace it.
        rows.put(key("a", 4), Arc::new(vec![]));
        assert_eq!(rows.get(&key("a", 5)).map(|r| r.len()), Some(1));
        rows.put(key("a", 9), Arc::new(vec![]));
        assert!(rows.get(&key("a", 5)).is_none());
        assert_eq!(rows.get(&key("a", 9)).map(|r| r.len()), Some(0));
    }

    #[test]
    fn the_least_recently_used_org_goes_first_when_full() {
        const MAX: usize = 1 << 20;
        let mut rows = Rows::with_max(MAX);
        // Rows of a third of what is kept, less a little.
        let third = (MAX / 3 - 1024) / 16;
        for org in ["a", "b", "c"] {
            rows.put(key(org, 1), Arc::new(vec![row(org, third)]));
        }
        assert_eq!(rows.len(), 3);
        rows.get(&key("a", 1)).expect("a kept");
        rows.put(key("d", 1), Arc::new(vec![row("d", third)]));
        assert!(
            rows.get(&key("b", 1)).is_none(),
            "b was the least recently used"
        );
        assert!(rows.get(&key("a", 1)).is_some());
        assert!(rows.get(&key("c", 1)).is_some());
        assert!(rows.get(&key("d", 1)).is_some());
        assert!(rows.weight <= MAX);
        // Rows heavier than everything kept together are not kept (nor do they evict).
        rows.put(key("e", 1), Arc::new(vec![row("e", MAX / 16)]));
        assert!(rows.get(&key("e", 1)).is_none());
        assert_eq!(rows.len(), 3);
    }

    #[test]
    fn orgs_with_no_rows_still_count_against_the_bound() {
        const MAX: usize = 1 << 20;
        let mut rows = Rows::with_max(MAX);
        for i in 0..10_000 {
            rows.put(key(&format!("org-{i}"), 0), Arc::new(Vec::new()));
        }
        assert!(rows.len() < MAX / 256, "{} orgs kept", rows.len());
        assert!(rows.weight <= MAX);
        assert!(
            rows.get(&key("org-9999", 0)).is_some(),
            "the latest is kept"
        );
        assert!(rows.get(&key("org-0", 0)).is_none(), "the first went");
        assert_eq!(rows.by_use.len(), rows.len());
    }
}
