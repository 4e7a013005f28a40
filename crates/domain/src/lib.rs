//! wfl's domain: the workforce events, their validation, and the worker-lifecycle rules the ledger
//! enforces before it commits anything.
//!
//! This crate is pure. It owns the meaning of an event; it must not do I/O, read a clock, spawn a
//! task, or know the wire format (that is `wfl-proto`'s job). Everything here is deterministic so that
//! an auditor re-running the same rules over the same ledger gets the same answers.

pub mod classify;
pub mod committed;
pub mod date;
pub mod event;
pub mod ids;
pub mod lifecycle;
pub mod validate;

pub use committed::CommittedEvent;
pub use date::Date;
pub use event::*;
pub use ids::{EventId, OrgId, Sequence, SiteId, WorkerRef};
pub use lifecycle::{Conflict, History, LedgerState, OriginalEvent, WorkerState};
pub use validate::{validate, validate_with, FieldViolation, Limits, Violations};

/// The most events one `RecordBatch` call may carry.
pub const MAX_BATCH: usize = 10_000;

/// The envelope schema version this build writes and accepts.
pub const SCHEMA_VERSION: u32 = 1;
