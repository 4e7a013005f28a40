//! [`IdMap`]: the entry map, ordered by event id, laid out for ids that mostly ascend.
//!
//! The ledger hands the fold one new id per event, and ids are UUIDv7 (time-ordered): nearly every
//! insert lands after every id held. A `BTreeMap` finds that place by descending its right edge
//! and scanning each node there to its end (about a tenth of the fold's time at 1M events), and
//! splitting at the right edge leaves its nodes about half full (45 B per entry for a 24 B pair).
//!
//! Here the pairs sit in sorted chunks of at most [`CHUNK`], with each chunk's first id in a
//! separate, small, array (`firsts`: one id per chunk, a few hundred KB at millions of events).
//! - An id above every id held is pushed onto the last chunk: no search, and chunks filled in
//!   order are full.
//! - Any other id (a client's own older UUIDv7, a UUIDv4) is found by a binary search of
//!   `firsts`, then of its chunk, and inserted there. A full chunk is split in two halves first,
//!   so no chunk's vector ever grows past [`CHUNK`].
//! - Look-ups are the same two binary searches. Walks go chunk by chunk, in id order.
//!
//! Nothing is ever removed (the ledger is append-only: a retraction is an effect on an entry).
//! Costs per insert and look-up: O(log n) comparisons, plus, for an id that is not the highest,
//! at most [`CHUNK`] moved pairs, and when that splits a chunk (once per `CHUNK / 2` such ids
//! at most) `n / CHUNK` moved first ids and chunk headers (40 B each: 400 KB at 5M events).
//!
//! Memory: 24 B per entry in chunks filled in order. Where ids come in random order (UUIDv4),
//! chunks are split and refill as a B-tree's nodes do: between half and wholly full, about
//! 32 B per entry on average.

use std::ops::Bound;
use wfl_domain::EventId;

/// Pairs per chunk at most (a chunk of `Arc`s is 12 KB: a move within it stays in cache).
const CHUNK: usize = 512;

/// A map from [`EventId`] to `V`, in id order (see the module doc).
#[derive(Debug, Clone)]
pub(crate) struct IdMap<V> {
    /// Each chunk's first id (`firsts[i] == chunks[i][0].0`), ascending.
    firsts: Vec<EventId>,
    /// Sorted, disjoint, each non-empty and in order: every id of chunk `i` is below every id of
    /// chunk `i + 1`.
    chunks: Vec<Vec<(EventId, V)>>,
    len: usize,
}

impl<V> Default for IdMap<V> {
    fn default() -> Self {
        Self {
            firsts: Vec::new(),
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<V: PartialEq> PartialEq for IdMap<V> {
    /// Equal when they hold the same pairs, however chunked.
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl<V: Eq> Eq for IdMap<V> {}

impl<V> IdMap<V> {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The chunk that holds `id` or would: the last whose first id is not above it (0 when `id`
    /// is below every first id). `None` when the map is empty.
    fn chunk_of(&self, id: &EventId) -> Option<usize> {
        if self.chunks.is_empty() {
            return None;
        }
        Some(self.firsts.partition_point(|f| f <= id).saturating_sub(1))
    }

    /// Where `id` is: its chunk and its place in it (`Err`: where it would go).
    fn find(&self, id: &EventId) -> Option<(usize, Result<usize, usize>)> {
        let c = self.chunk_of(id)?;
        Some((c, self.chunks[c].binary_search_by(|(k, _)| k.cmp(id))))
    }

    pub(crate) fn get(&self, id: &EventId) -> Option<&V> {
        self.get_key_value(id).map(|(_, v)| v)
    }

    pub(crate) fn get_key_value(&self, id: &EventId) -> Option<(&EventId, &V)> {
        match self.find(id)? {
            (c, Ok(i)) => {
                let (k, v) = &self.chunks[c][i];
                Some((k, v))
            }
            (_, Err(_)) => None,
        }
    }

    pub(crate) fn get_mut(&mut self, id: &EventId) -> Option<&mut V> {
        match self.find(id)? {
            (c, Ok(i)) => Some(&mut self.chunks[c][i].1),
            (_, Err(_)) => None,
        }
    }

    pub(crate) fn contains_key(&self, id: &EventId) -> bool {
        matches!(self.find(id), Some((_, Ok(_))))
    }

    /// Inserts `id` with the value `make` gives and returns it; `None` (and `make` is not called)
    /// when `id` is already held.
    pub(crate) fn insert_new(&mut self, id: EventId, make: impl FnOnce() -> V) -> Option<&V> {
        // The usual case: above every id held.
        let above = self
            .chunks
            .last()
            .and_then(|c| c.last())
            .is_none_or(|(last, _)| *last < id);
        if above {
            // Made before the layout changes: a panic in `make` leaves the map as it was.
            let value = make();
            match self.chunks.last_mut() {
                Some(chunk) if chunk.len() < CHUNK => {
                    if chunk.len() == chunk.capacity() {
                        // Grows as a `Vec` does (a small map reserves little), never past CHUNK.
                        chunk.reserve_exact((chunk.len() * 2).clamp(4, CHUNK) - chunk.len());
                    }
                    chunk.push((id, value));
                }
                _ => {
                    // The first chunk grows from nothing; the later ones are made whole.
                    let mut chunk =
                        Vec::with_capacity(if self.chunks.is_empty() { 4 } else { CHUNK });
                    chunk.push((id, value));
                    self.firsts.push(id);
                    self.chunks.push(chunk);
                }
            }
            self.len += 1;
            return self.chunks.last()?.last().map(|(_, v)| v);
        }
        let (mut c, found) = self.find(&id)?;
        let Err(mut i) = found else {
            return None;
        };
        let value = make();
        if self.chunks[c].len() >= CHUNK {
            // Split first, so the chunk never grows past CHUNK. Both halves hold what they
            // have and grow again as `Vec`s do (the right one is made to size by `split_off`).
            let right = self.chunks[c].split_off(CHUNK / 2);
            self.chunks[c].shrink_to_fit();
            self.firsts.insert(c + 1, right[0].0);
            self.chunks.insert(c + 1, right);
            // At CHUNK / 2 exactly, `id` is below the right half's first id: the left's end.
            if i > CHUNK / 2 {
                c += 1;
                i -= CHUNK / 2;
            }
        }
        let chunk = &mut self.chunks[c];
        if chunk.len() == chunk.capacity() {
            chunk.reserve_exact((chunk.len() * 2).clamp(4, CHUNK) - chunk.len());
        }
        chunk.insert(i, (id, value));
        if i == 0 {
            self.firsts[c] = id;
        }
        self.len += 1;
        self.chunks[c].get(i).map(|(_, v)| v)
    }

    /// Every pair, in id order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&EventId, &V)> + '_ {
        self.chunks.iter().flatten().map(|(k, v)| (k, v))
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &V> + '_ {
        self.chunks.iter().flatten().map(|(_, v)| v)
    }

    /// The pairs from `from` on, in id order.
    pub(crate) fn range_from(
        &self,
        from: Bound<&EventId>,
    ) -> impl Iterator<Item = (&EventId, &V)> + '_ {
        let (c, i) = match from {
            Bound::Unbounded => (0, 0),
            Bound::Included(id) => match self.find(id) {
                None => (0, 0),
                Some((c, Ok(i) | Err(i))) => (c, i),
            },
            Bound::Excluded(id) => match self.find(id) {
                None => (0, 0),
                Some((c, Ok(i))) => (c, i + 1),
                Some((c, Err(i))) => (c, i),
            },
        };
        let first = self
            .chunks
            .get(c)
            .map_or(&[][..], |chunk| &chunk[i.min(chunk.len())..]);
        first
            .iter()
            .chain(self.chunks.iter().skip(c + 1).flatten())
            .map(|(k, v)| (k, v))
    }
}

impl<V> FromIterator<(EventId, V)> for IdMap<V> {
    /// From pairs in any order; of an id given twice, the last value is kept (as a `BTreeMap`
    /// collects).
    fn from_iter<I: IntoIterator<Item = (EventId, V)>>(pairs: I) -> Self {
        let mut all: Vec<(EventId, V)> = pairs.into_iter().collect();
        // Stable: of equal ids, the one given last stays last.
        if !all.is_sorted_by(|a, b| a.0 < b.0) {
            all.sort_by_key(|a| a.0);
            // Keeps the first of each run of equal ids, given the run's last value.
            all.dedup_by(|later, kept| {
                let same = later.0 == kept.0;
                if same {
                    std::mem::swap(&mut later.1, &mut kept.1);
                }
                same
            });
        }
        let mut map = Self::default();
        let mut left = all.len();
        let mut pairs = all.into_iter();
        while left > 0 {
            let take = left.min(CHUNK);
            map.push_chunk(pairs.by_ref().take(take).collect());
            left -= take;
        }
        map
    }
}

impl<V> IdMap<V> {
    /// Appends a sorted chunk whose ids are all above every id held.
    fn push_chunk(&mut self, chunk: Vec<(EventId, V)>) {
        if let Some((first, _)) = chunk.first() {
            self.firsts.push(*first);
            self.len += chunk.len();
            self.chunks.push(chunk);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{IdMap, CHUNK};
    use std::collections::BTreeMap;
    use std::ops::Bound;
    use wfl_domain::EventId;

    fn id(n: u128) -> EventId {
        EventId(uuid::Uuid::from_u128(n))
    }

    /// A small deterministic generator (no clock, no seed from outside).
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            self.0 >> 33
        }
    }

    /// Checks every invariant of the layout and that `m` reads as `model` does.
    fn same(m: &IdMap<u64>, model: &BTreeMap<EventId, u64>) {
        assert_eq!(m.len(), model.len());
        assert_eq!(m.firsts.len(), m.chunks.len());
        for (f, c) in m.firsts.iter().zip(&m.chunks) {
            assert!(!c.is_empty() && c.len() <= CHUNK && c.capacity() <= CHUNK.max(c.len()));
            assert_eq!(*f, c[0].0);
        }
        assert!(m
            .iter()
            .map(|(k, v)| (*k, *v))
            .eq(model.iter().map(|(k, v)| (*k, *v))));
        assert!(m.values().eq(model.values()));
        for k in model.keys().step_by(97) {
            assert_eq!(m.get(k), model.get(k));
            for bound in [Bound::Included(k), Bound::Excluded(k)] {
                assert!(m.range_from(bound).map(|(k, v)| (*k, *v)).eq(model
                    .range((bound, Bound::Unbounded))
                    .map(|(k, v)| (*k, *v))));
            }
        }
    }

    #[test]
    fn it_reads_as_a_btree_map_whatever_the_order_of_the_ids() {
        // Ascending (the fold's usual case), ascending with a few late ids (clients' own older
        // UUIDv7s), then random (UUIDv4), each with repeats refused.
        for late_one_in in [0u64, 50, 1] {
            let mut rng = Lcg(late_one_in + 7);
            let mut m = IdMap::default();
            let mut model = BTreeMap::new();
            for n in 0..5_000u64 {
                let k = if late_one_in != 0 && rng.next().is_multiple_of(late_one_in) {
                    u128::from(rng.next() % (n * 10 + 1))
                } else {
                    u128::from(n) * 10 + 5
                };
                let fresh = !model.contains_key(&id(k));
                let inserted = m.insert_new(id(k), || n).copied();
                assert_eq!(inserted, fresh.then_some(n), "insert of {k}");
                if fresh {
                    model.insert(id(k), n);
                }
                if n % 997 == 0 {
                    same(&m, &model);
                }
            }
            same(&m, &model);
            // Bounds at ids not held: below everything, between two held (across chunks too).
            for k in (0..60_000u128).step_by(613) {
                for bound in [Bound::Included(&id(k)), Bound::Excluded(&id(k))] {
                    assert!(m.range_from(bound).map(|(k, v)| (*k, *v)).eq(model
                        .range((bound, Bound::Unbounded))
                        .map(|(k, v)| (*k, *v))));
                }
            }
            assert!(!m.contains_key(&id(u128::MAX)));
            assert_eq!(m.range_from(Bound::Excluded(&id(u128::MAX))).count(), 0);
            let first = *model.keys().next().expect("a key");
            *m.get_mut(&first).expect("held") += 1;
            *model.get_mut(&first).expect("held") += 1;
            same(&m, &model);
            // Collected from the pairs in any order, a repeated id keeping its last value.
            let mut pairs: Vec<(EventId, u64)> = model.iter().map(|(k, v)| (*k, *v)).collect();
            pairs.reverse();
            pairs.push((first, 99));
            model.insert(first, 99);
            let collected: IdMap<u64> = pairs.into_iter().collect();
            same(&collected, &model);
            assert_eq!(collected, {
                let mut again = IdMap::default();
                for (k, v) in &model {
                    again.insert_new(*k, || *v);
                }
                again
            });
        }
    }

    #[test]
    fn an_empty_map_reads_empty() {
        let m: IdMap<u64> = IdMap::default();
        assert_eq!(m.get(&id(1)), None);
        assert_eq!(m.range_from(Bound::Included(&id(1))).count(), 0);
        assert_eq!(m.iter().count(), 0);
        let collected: IdMap<u64> = std::iter::empty().collect();
        assert_eq!(collected, m);
    }
}
