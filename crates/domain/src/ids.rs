//! Newtype identifiers. They keep an org id from being passed where a worker reference is expected;
//! their syntax is checked by [`crate::validate`], not by the constructors, so that invalid input
//! can be reported with every violation at once.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A client-chosen event id (UUID; v7 recommended). It is the idempotency key of the ledger.
///
/// Ordered as its bytes are (as `Uuid` is), compared as one big-endian `u128`: maps keyed by
/// event id (the projector's entries, millions of them) compare ids at every step of a search,
/// and a byte-slice comparison is a `memcmp` call each time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(pub uuid::Uuid);

impl Ord for EventId {
    #[inline]
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.as_u128().cmp(&other.0.as_u128())
    }
}

impl PartialOrd for EventId {
    #[inline]
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl EventId {
    /// A fresh time-ordered (v7) id, for tools that generate events.
    #[must_use]
    pub fn new_v7() -> Self {
        Self(uuid::Uuid::now_v7())
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// The id as a string slice.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }
    };
}

string_id!(
    /// The legal entity (employer). Used as a NATS subject token, hence its narrow alphabet.
    OrgId
);
string_id!(
    /// The establishment or site inside the legal entity.
    SiteId
);
string_id!(
    /// A pseudonymous worker reference. Never a name or a national id.
    WorkerRef
);

/// A position in the ledger. The first committed event has sequence 1; 0 means "nothing yet".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sequence(pub u64);

#[cfg(test)]
mod tests {
    use super::EventId;
    use uuid::Uuid;

    #[test]
    fn event_ids_order_as_their_bytes_do() {
        let mut ids: Vec<Uuid> = (0..2_000).map(|_| Uuid::new_v4()).collect();
        ids.extend((0..200).map(|_| Uuid::now_v7()));
        ids.extend([
            Uuid::nil(),
            Uuid::max(),
            Uuid::from_u128(1),
            Uuid::from_u128(1 << 64),
        ]);
        for pair in ids.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            assert_eq!(
                EventId(a).cmp(&EventId(b)),
                a.as_bytes().cmp(b.as_bytes()),
                "{a} {b}"
            );
            assert_eq!(EventId(a).cmp(&EventId(b)), a.cmp(&b));
        }
        let mut by_id: Vec<EventId> = ids.iter().copied().map(EventId).collect();
        by_id.sort();
        ids.sort();
        assert_eq!(by_id, ids.into_iter().map(EventId).collect::<Vec<_>>());
    }
}
