//! The one error type of `wfl-bus`, shaped by what the caller must do.
//!
//! Owns: [`Error`] and the mapping rules every implementation follows (connection trouble and
//! timeouts are [`Error::Unavailable`], refusals are [`Error::Rejected`]).
//!
//! Must not: carry transport-specific error types in its public shape (callers match on the
//! three variants only).

/// What went wrong on the bus, by what the caller must do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Retryable: the broker is unreachable, the connection dropped, or an ack/reply timed
    /// out. Retry later (with the same event ids).
    #[error("bus unavailable: {0}")]
    Unavailable(String),
    /// Not retryable as is: the broker (or the bus' own validation) refused the request.
    #[error("rejected by the bus: {0}")]
    Rejected(String),
    /// The bus is shutting down.
    #[error("bus closed")]
    Closed,
}

impl Error {
    /// Convenience constructor for [`Error::Unavailable`] with context.
    pub(crate) fn unavailable(what: &str, err: impl std::fmt::Display) -> Error {
        Error::Unavailable(format!("{what}: {err}"))
    }

    /// Convenience constructor for [`Error::Rejected`] with context.
    pub(crate) fn rejected(what: &str, err: impl std::fmt::Display) -> Error {
        Error::Rejected(format!("{what}: {err}"))
    }
}
