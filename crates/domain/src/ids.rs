//! Newtype identifiers. They keep an org id from being passed where a worker reference is expected;
//! their syntax is checked by [`crate::validate`], not by the constructors, so that invalid input
//! can be reported with every violation at once.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A client-chosen event id (UUID; v7 recommended). It is the idempotency key of the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(pub uuid::Uuid);

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
