//! Which role may call which gRPC method (pure). An unknown method is denied to everyone.

use crate::Role;

/// What a gRPC method does, as far as access is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Ingest.Record, Ingest.RecordBatch.
    Record,
    /// Ledger.Read, Ledger.ReadBatches, Ledger.Subscribe.
    ReadEvents,
    /// Views.*.
    Views,
    /// Checkpoints and Merkle proofs.
    Proofs,
    /// Ledger.Head, Ledger.GetPublicKey: no event content; any authenticated principal.
    Meta,
}

/// Every guarded method, by gRPC path.
pub const METHODS: &[(&str, Access)] = &[
    ("/wfl.v1.Ingest/Record", Access::Record),
    ("/wfl.v1.Ingest/RecordBatch", Access::Record),
    ("/wfl.v1.Ledger/Read", Access::ReadEvents),
    ("/wfl.v1.Ledger/ReadBatches", Access::ReadEvents),
    ("/wfl.v1.Ledger/Subscribe", Access::ReadEvents),
    ("/wfl.v1.Ledger/Head", Access::Meta),
    ("/wfl.v1.Ledger/GetPublicKey", Access::Meta),
    ("/wfl.v1.Ledger/GetCheckpoint", Access::Proofs),
    ("/wfl.v1.Ledger/ListCheckpoints", Access::Proofs),
    ("/wfl.v1.Ledger/GetInclusionProof", Access::Proofs),
    ("/wfl.v1.Ledger/GetConsistencyProof", Access::Proofs),
    ("/wfl.v1.Views/Separations", Access::Views),
    ("/wfl.v1.Views/Headcount", Access::Views),
    ("/wfl.v1.Views/CohortExposure", Access::Views),
    ("/wfl.v1.Views/HiringSignals", Access::Views),
    ("/wfl.v1.Views/AiAdoption", Access::Views),
    ("/wfl.v1.Views/ThresholdWatch", Access::Views),
    ("/wfl.v1.Views/Explain", Access::Views),
];

/// The access class of a gRPC path (`/wfl.v1.Ledger/Read`); `None` for a method not listed.
#[must_use]
pub fn method_access(path: &str) -> Option<Access> {
    METHODS.iter().find(|(p, _)| *p == path).map(|(_, a)| *a)
}

/// May `role` do `access`?
#[must_use]
pub fn allows(role: Role, access: Access) -> bool {
    match access {
        Access::Record => matches!(role, Role::Writer | Role::Admin),
        Access::ReadEvents | Access::Views => {
            matches!(role, Role::Analyst | Role::Auditor | Role::Admin)
        }
        Access::Proofs => matches!(role, Role::Auditor | Role::Admin),
        Access::Meta => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writers_record_and_read_nothing() {
        assert!(allows(Role::Writer, Access::Record));
        for a in [Access::ReadEvents, Access::Views, Access::Proofs] {
            assert!(!allows(Role::Writer, a));
        }
    }

    #[test]
    fn auditors_write_nothing_and_read_proofs() {
        assert!(!allows(Role::Auditor, Access::Record));
        assert!(allows(Role::Auditor, Access::Proofs));
        assert!(!allows(Role::Analyst, Access::Proofs));
    }

    #[test]
    fn unknown_methods_are_not_listed() {
        assert_eq!(method_access("/wfl.v1.Ledger/Compact"), None);
        assert_eq!(
            method_access("/wfl.v1.Ledger/Read"),
            Some(Access::ReadEvents)
        );
    }

    #[test]
    fn batched_reads_need_what_reads_need() {
        assert_eq!(
            method_access("/wfl.v1.Ledger/ReadBatches"),
            method_access("/wfl.v1.Ledger/Read")
        );
    }
}
