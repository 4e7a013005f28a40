//! The one error type of the store.
//!
//! Owns: the classification of failures by what the caller must do next.
//! Must not: carry backend types (sled errors are flattened to text) so the
//! contract stays the same for every [`crate::Log`] implementation.

/// Why a store operation failed, shaped by what the caller must do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The request does not fit the current log (sequence not head+1, event
    /// id already decided or repeated in the batch, label too long). Nothing
    /// was written; re-read the head / decision and decide again.
    #[error("conflict: {0}")]
    Conflict(String),

    /// Stored data does not verify or decode. Stop and investigate; retrying
    /// will not help. `sequence` is the affected record, or 0 when the
    /// damaged item is not tied to one record (head key, layout version).
    #[error("corrupt store at sequence {sequence}: {detail}")]
    Corrupt {
        /// The first record found damaged (0 if not record-specific).
        sequence: u64,
        /// What did not verify.
        detail: String,
    },

    /// The storage is unavailable (I/O failure, failed flush, lock poisoned).
    /// The outcome of a failed append is unknown: reopen, then consult
    /// `head` / `decision` before retrying.
    #[error("storage unavailable: {0}")]
    Io(String),
}

impl Error {
    /// Shorthand for a [`Error::Corrupt`].
    pub(crate) fn corrupt(sequence: u64, detail: impl Into<String>) -> Self {
        Error::Corrupt {
            sequence,
            detail: detail.into(),
        }
    }
}

impl From<sled::Error> for Error {
    fn from(err: sled::Error) -> Self {
        match err {
            // sled's own checksums failed: the caller must treat this like
            // any other corruption, not like a transient outage.
            sled::Error::Corruption { at, .. } => {
                Error::corrupt(0, format!("sled detected corruption at {at:?}"))
            }
            other => Error::Io(other.to_string()),
        }
    }
}
