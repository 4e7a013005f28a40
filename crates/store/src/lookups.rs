//! What [`crate::SledLog::decision`] found, kept for the next append so that a new event's id
//! is read from sled once, not twice.
//!
//! The writer asks `decision` about every event id before it appends it; the append then checks
//! again that no id was decided before (the store's own guarantee, whatever the caller does) and
//! reads the id's group again to extend it. Both read the same keys. Here `decision` leaves what
//! it read (an id found undecided; the committed-id groups of a prefix) and the append takes it
//! instead of reading sled.
//!
//! Owns: when a look-up may be trusted. Must not: read or write sled.
//!
//! Only an append decides ids or changes id groups, and appends are serialised. A look-up
//! registers a ticket **before** it reads sled and is kept only if its ticket is still there
//! after the read; an append removes everything it decided **after** applying its batch. So a
//! look-up that read sled before an append applied either had its ticket removed by that append
//! (it is not kept) or registered after the removal (so its read came after the batch was
//! applied and saw it). Either way what is kept is what sled holds until the next append
//! removes it. Forgetting is always safe (the append reads sled instead), so memory is bounded
//! by clearing everything at [`MAX_KEPT`].

use foldhash::{HashMap, HashSet};
use std::sync::Arc;

use uuid::Uuid;

use crate::layout::ID_PREFIX_LEN;

/// Most ids and most prefixes kept (each), beyond which everything is forgotten: the writer's
/// look-ups are taken by the next append or two, so only look-ups that never lead to an
/// append (late outcome questions) accumulate.
pub(crate) const MAX_KEPT: usize = 16_384;

/// Most bytes of id groups kept, beyond which everything is forgotten (a crowded prefix's
/// groups are up to ~97 KB: the count alone would not bound the memory).
pub(crate) const MAX_GROUP_BYTES: usize = 16 << 20;

/// The committed-id groups of one prefix, as `load_id_groups` returns them.
pub(crate) type Groups = Arc<Vec<(u8, sled::IVec)>>;

/// One look-up's state: registered before its read, kept once the read is done.
#[derive(Debug, Clone)]
enum Kept<T> {
    Reading(u64),
    Read(T),
}

/// The look-ups an append may trust (see the module documentation).
#[derive(Debug, Default)]
pub(crate) struct Lookups {
    next_ticket: u64,
    /// Ids found neither committed nor rejected.
    undecided: HashMap<Uuid, Kept<()>>,
    /// Committed-id groups (layout 3, `k`) by prefix.
    groups: HashMap<[u8; ID_PREFIX_LEN], Kept<Groups>>,
    /// The bytes of the groups kept.
    group_bytes: usize,
}

/// The bytes one prefix's groups hold.
fn size(groups: &Groups) -> usize {
    groups.iter().map(|(_, value)| value.len()).sum()
}

/// A look-up in progress: what it found kept already, and its ticket.
#[derive(Debug)]
pub(crate) struct Started {
    ticket: u64,
    /// The prefix's groups, when a finished look-up kept them.
    pub(crate) groups: Option<Groups>,
}

/// What an append may take instead of reading sled: taken under the append's lock, so nothing
/// else can make it stale before the append is done.
#[derive(Debug, Default)]
pub(crate) struct Taken {
    pub(crate) undecided: HashSet<Uuid>,
    pub(crate) groups: HashMap<[u8; ID_PREFIX_LEN], Groups>,
}

impl Lookups {
    /// Registers a look-up of `id` (in `prefix`) before it reads sled.
    pub(crate) fn start(&mut self, id: &Uuid, prefix: &[u8; ID_PREFIX_LEN]) -> Started {
        if self.undecided.len() >= MAX_KEPT
            || self.groups.len() >= MAX_KEPT
            || self.group_bytes >= MAX_GROUP_BYTES
        {
            self.clear();
        }
        self.next_ticket += 1;
        let ticket = self.next_ticket;
        self.undecided.insert(*id, Kept::Reading(ticket));
        let groups = match self.groups.get(prefix) {
            Some(Kept::Read(groups)) => Some(Arc::clone(groups)),
            _ => {
                self.groups.insert(*prefix, Kept::Reading(ticket));
                None
            }
        };
        Started { ticket, groups }
    }

    /// Keeps what a look-up read, unless an append removed its ticket meanwhile: `groups` when
    /// it read them (not given by [`Self::start`]), and whether `id` was found undecided.
    pub(crate) fn finish(
        &mut self,
        started: &Started,
        id: &Uuid,
        prefix: &[u8; ID_PREFIX_LEN],
        groups: Option<Groups>,
        undecided: bool,
    ) {
        if matches!(self.undecided.get(id), Some(Kept::Reading(t)) if *t == started.ticket) {
            if undecided {
                self.undecided.insert(*id, Kept::Read(()));
            } else {
                self.undecided.remove(id);
            }
        }
        if let Some(groups) = groups {
            if matches!(self.groups.get(prefix), Some(Kept::Reading(t)) if *t == started.ticket) {
                self.group_bytes += size(&groups);
                self.groups.insert(*prefix, Kept::Read(groups));
            }
        }
    }

    /// What an append of `ids` may trust: the ids found undecided and the groups read. Call
    /// with the append's lock held.
    pub(crate) fn take<'a>(&self, ids: impl Iterator<Item = &'a Uuid>) -> Taken {
        let mut taken = Taken::default();
        for id in ids {
            if matches!(self.undecided.get(id), Some(Kept::Read(()))) {
                taken.undecided.insert(*id);
            }
            let prefix = crate::layout::id_prefix(id);
            if let Some(Kept::Read(groups)) = self.groups.get(&prefix) {
                taken
                    .groups
                    .entry(prefix)
                    .or_insert_with(|| Arc::clone(groups));
            }
        }
        taken
    }

    /// Forgets everything about `ids` and their prefixes: an append decided them. Call with the
    /// append's lock held, after its batch was applied.
    pub(crate) fn decided<'a>(&mut self, ids: impl Iterator<Item = &'a Uuid>) {
        for id in ids {
            self.undecided.remove(id);
            if let Some(Kept::Read(groups)) = self.groups.remove(&crate::layout::id_prefix(id)) {
                self.group_bytes = self.group_bytes.saturating_sub(size(&groups));
            }
        }
    }

    /// Forgets everything (an append failed: what sled holds is no longer known).
    pub(crate) fn clear(&mut self) {
        self.undecided.clear();
        self.groups.clear();
        self.group_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn groups(n: u8) -> Groups {
        Arc::new(vec![(n, sled::IVec::from(&[n][..]))])
    }

    #[test]
    fn a_finished_look_up_is_taken_until_an_append_decides_its_id() {
        let mut l = Lookups::default();
        let a = id(1);
        let p = crate::layout::id_prefix(&a);
        let s = l.start(&a, &p);
        assert!(s.groups.is_none());
        l.finish(&s, &a, &p, Some(groups(0)), true);
        let taken = l.take([a].iter());
        assert!(taken.undecided.contains(&a));
        assert_eq!(taken.groups.get(&p).map(|g| g[0].0), Some(0));
        // A second look-up in the prefix takes the groups without reading.
        let b = id(2);
        assert_eq!(crate::layout::id_prefix(&b), p);
        assert!(l.start(&b, &p).groups.is_some());
        l.decided([a].iter());
        let taken = l.take([a, b].iter());
        assert!(taken.undecided.is_empty() && taken.groups.is_empty());
    }

    #[test]
    fn a_look_up_overtaken_by_an_append_is_not_kept() {
        let mut l = Lookups::default();
        let a = id(1);
        let p = crate::layout::id_prefix(&a);
        let s = l.start(&a, &p);
        // The append applied its batch (deciding `a`) after the look-up registered.
        l.decided([a].iter());
        l.finish(&s, &a, &p, Some(groups(0)), true);
        let taken = l.take([a].iter());
        assert!(taken.undecided.is_empty() && taken.groups.is_empty());
    }

    #[test]
    fn only_the_latest_of_two_look_ups_of_one_id_is_kept_and_a_decided_id_never() {
        let mut l = Lookups::default();
        let a = id(1);
        let p = crate::layout::id_prefix(&a);
        let first = l.start(&a, &p);
        let second = l.start(&a, &p);
        l.finish(&first, &a, &p, Some(groups(1)), true);
        assert!(l.take([a].iter()).undecided.is_empty());
        l.finish(&second, &a, &p, None, false);
        assert!(l.take([a].iter()).undecided.is_empty());
    }

    #[test]
    fn memory_is_bounded_by_forgetting() {
        let mut l = Lookups::default();
        for n in 0..(MAX_KEPT as u128 * 2) {
            let a = id(n << 80);
            let p = crate::layout::id_prefix(&a);
            let s = l.start(&a, &p);
            l.finish(&s, &a, &p, Some(groups(0)), true);
        }
        assert!(l.undecided.len() <= MAX_KEPT && l.groups.len() <= MAX_KEPT);
        // Large groups are bounded by their bytes.
        let mut l = Lookups::default();
        let big: Groups = Arc::new(vec![(0, sled::IVec::from(vec![7u8; 64 << 10]))]);
        for n in 0..1_000u128 {
            let a = id(n << 80);
            let p = crate::layout::id_prefix(&a);
            let s = l.start(&a, &p);
            l.finish(&s, &a, &p, Some(Arc::clone(&big)), true);
            assert!(l.group_bytes <= MAX_GROUP_BYTES + (64 << 10));
        }
        l.decided(
            (0..1_000u128)
                .map(|n| id(n << 80))
                .collect::<Vec<_>>()
                .iter(),
        );
        assert_eq!(l.group_bytes, 0);
    }
}
