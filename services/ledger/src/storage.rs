//! Storage faults: whether the ledger's data directory can take another group commit.
//!
//! Owns: the check the writer makes before each commit (one `statvfs`: the file system is not
//! read-only and keeps more than [`crate::Config::min_free_bytes`] free), the [`StorageState`]
//! the writer publishes, its `/metrics` lines, and gRPC health following it together with the
//! background verification ([`health_follows`]).
//!
//! Why a reserve instead of waiting for `ENOSPC`: once sled fails a write it refuses every later
//! one until it is reopened (the outcome of the failed batch is unknown), so the only way to
//! pause and resume in place is never to let it fail. The writer pauses *before* deciding a
//! batch, holds it unacknowledged, and retries with backoff; the reserve also leaves the
//! projector's store room for the events already committed. A write that fails anyway (another
//! process filled the disk faster than the reserve) stops the ledger, crash-only.
//!
//! Must not: write to the store.

use std::path::{Path, PathBuf};

use tokio::sync::watch;

use crate::audit::AuditState;

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

    /// Prometheus text: `wfl_ledger_storage_paused` (1 while commits wait for disk space or a
    /// writable file system).
    #[must_use]
    pub fn render(&self) -> String {
        format!(
            "# HELP wfl_ledger_storage_paused 1 while commits are paused: the data directory is full or read-only.\n\
             # TYPE wfl_ledger_storage_paused gauge\nwfl_ledger_storage_paused {}\n",
            u8::from(self.is_paused())
        )
    }
}

/// Why the data directory cannot take a commit now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fault {
    path: PathBuf,
    errno: rustix::io::Errno,
    detail: String,
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self.errno {
            rustix::io::Errno::NOSPC => "ENOSPC",
            rustix::io::Errno::ROFS => "EROFS",
            _ => "errno",
        };
        write!(
            f,
            "{}: {} ({name}: {})",
            self.path.display(),
            self.detail,
            std::io::Error::from(self.errno)
        )
    }
}

/// The writer's view of its data directory.
pub(crate) struct Guard {
    path: PathBuf,
    min_free_bytes: u64,
}

impl Guard {
    pub(crate) fn new(path: PathBuf, min_free_bytes: u64) -> Self {
        Self {
            path,
            min_free_bytes,
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// One `statvfs` of the data directory: read-only, or less free space than the reserve, is
    /// a fault.
    pub(crate) fn check(&self) -> Result<(), Fault> {
        let fault = |errno, detail: String| Fault {
            path: self.path.clone(),
            errno,
            detail,
        };
        let st = rustix::fs::statvfs(&self.path)
            .map_err(|e| fault(e, "cannot inspect the file system".into()))?;
        if st.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY) {
            return Err(fault(
                rustix::io::Errno::ROFS,
                "the file system is mounted read-only".into(),
            ));
        }
        let free = st.f_bavail.saturating_mul(st.f_frsize);
        if free < self.min_free_bytes {
            return Err(fault(
                rustix::io::Errno::NOSPC,
                format!(
                    "{} bytes free, below the {}-byte reserve (--min-free-mb)",
                    free, self.min_free_bytes
                ),
            ));
        }
        Ok(())
    }
}

