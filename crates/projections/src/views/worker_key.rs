//! [`WorkerKey`]: a worker's key in the projection's worker index.

use serde::{Deserialize, Serialize};
use wfl_domain::WorkerRef;

/// A worker's key in the worker index: the name, with its first sixteen bytes (zero-padded) as
/// two big-endian numbers in front. Ordered exactly as the names are (bytewise: two names whose
/// first sixteen bytes differ compare as those bytes do, and two of at most sixteen bytes whose
/// padded heads are equal differ only by trailing NULs, so the shorter is the lesser). A descent
/// compares numbers inside its nodes and, for names of up to sixteen bytes, never reads a name
/// held elsewhere on the heap (cache misses that were about a sixth of the fold at 1M events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct WorkerKey {
    head: [u64; 2],
    name: WorkerRef,
}

impl WorkerKey {
    /// Bytes of the name held in the head.
    const HEAD: usize = 16;

    pub(crate) fn new(name: WorkerRef) -> Self {
        Self {
            head: Self::head_of(&name),
            name,
        }
    }

    fn head_of(name: &WorkerRef) -> [u64; 2] {
        let mut head = [0u8; Self::HEAD];
        let n = name.0.len().min(Self::HEAD);
        head[..n].copy_from_slice(&name.0.as_bytes()[..n]);
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&head[i * 8..i * 8 + 8]);
            u64::from_be_bytes(w)
        };
        [word(0), word(1)]
    }

    /// Makes this the key of `name`, reusing its own copy's buffer (a key refilled to look
    /// several workers up allocates once).
    pub(crate) fn set(&mut self, name: &WorkerRef) {
        self.name.0.clear();
        self.name.0.push_str(&name.0);
        self.head = Self::head_of(name);
    }

    /// The key of `name`, to look it up (a copy of the name).
    pub(crate) fn of(name: &WorkerRef) -> Self {
        Self::new(name.clone())
    }

    pub(crate) fn name(&self) -> &WorkerRef {
        &self.name
    }
}

impl Ord for WorkerKey {
    #[inline]
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.head.cmp(&other.head).then_with(|| {
            let (a, b) = (&self.name.0, &other.name.0);
            if a.len() <= Self::HEAD && b.len() <= Self::HEAD {
                a.len().cmp(&b.len())
            } else {
                a.as_bytes().cmp(b.as_bytes())
            }
        })
    }
}

impl PartialOrd for WorkerKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Serialised as the name alone.
impl Serialize for WorkerKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.name.serialize(s)
    }
}

impl<'de> Deserialize<'de> for WorkerKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        WorkerRef::deserialize(d).map(Self::new)
    }
}

#[cfg(test)]
mod tests {
    /// Worker keys order as their names do, whatever their length, shared heads or NULs.
    #[test]
    fn worker_keys_order_as_their_names() {
        use super::{WorkerKey, WorkerRef};
        let names = [
            "",
            "\0",
            "a",
            "a\0",
            "a\0\0",
            "ab",
            "fold-1",
            "fold-10",
            "fold-100000",
            "fold-99",
            "0123456789abcdef",
            "0123456789abcdef\0",
            "0123456789abcdeg",
            "0123456789abcdefX",
            "0123456789abcdefXY",
            "0123456789abcdef0",
            "0123456789abcde",
            "zz",
            "\u{e9}t\u{e9}",
            "0123456789abcdef\0\0",
            "E0000001",
            "E00000010",
            "0123456789abcde\u{e9}",
            "0123456789abcde\0",
            "0123456789abcde\u{e9}x",
        ];
        assert_eq!(
            std::mem::size_of::<WorkerKey>(),
            40,
            "ARCHITECTURE's formula says 40 B"
        );
        let mut probe = WorkerKey::new(WorkerRef("a much longer name than sixteen bytes".into()));
        for a in names {
            for b in names {
                let (ka, kb) = (
                    WorkerKey::new(WorkerRef(a.into())),
                    WorkerKey::new(WorkerRef(b.into())),
                );
                assert_eq!(ka.cmp(&kb), a.cmp(b), "{a:?} against {b:?}");
                assert_eq!(ka == kb, a == b);
                probe.set(&WorkerRef(a.into()));
                assert_eq!(probe, ka);
            }
        }
    }
}
