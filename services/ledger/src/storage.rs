//! Storage faults: whether the ledger's data directory can take another group commit.
//!
//! Owns: the check the writer makes before each commit (one `statvfs`: the file system is not
//! read-only and keeps more than [`crate::Config::min_free_bytes`] free), the [`StorageState`]
//! the writer publishes and its `/metrics` lines (readiness follows it: `wfl_cli::http`). The check
//! itself is [`wfl_store::space::Guard`], shared with the projector.
//!
//! Why a reserve instead of waiting for `ENOSPC`: once sled fails a write it refuses every later
//! one until it is reopened (the outcome of the failed batch is unknown), so the only way to
//! pause and resume in place is never to let it fail. The writer pauses *before* deciding a
//! batch, holds it unacknowledged, and retries with backoff; the reserve also leaves the
//! projector's store room for the events already committed. Neither store runs sled's
//! background flusher (every append and persist flushes itself), so nothing writes while paused:
//! a flusher that met `ENOSPC` there left sled refusing the first write after the resume (seen
//! under load in `tests/storage_faults.rs`). A write that fails anyway (another process filled
//! the disk faster than the reserve) stops the ledger, crash-only.
//!
//! Must not: write to the store.

/// Whether the writer can commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageState {
    /// Commits proceed.
    Writable,
    /// Commits are paused until the data directory can be written again; reads still work.
    Paused {
        /// The data directory, the errno and the figures, as logged.
        reason: String,
    },
}

impl StorageState {
    /// True while commits are paused.
    #[must_use]
    pub fn is_paused(&self) -> bool {
        matches!(self, StorageState::Paused { .. })
    }
}

pub(crate) use wfl_store::space::{Fault, Guard};
