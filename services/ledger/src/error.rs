//! The ledger's error type, shaped by what the caller must do, and the one place where it becomes
//! a gRPC status (`impl From<Error> for Status`; `api` and `subscribe` both use it, neither
//! imports the other for it).

use tonic::Status;
use tracing::error;
use wfl_bus::Error as BusError;
use wfl_store::Error as StoreError;

/// What went wrong in the ledger service.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store refused or failed; see the inner error (corruption is fatal, I/O may be retried).
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The bus is unreachable or refused; retryable.
    #[error("bus: {0}")]
    Bus(#[from] BusError),
    /// A committed record cannot be decoded: the store holds data this build does not understand.
    #[error("ledger record {sequence} cannot be decoded: {detail}")]
    Undecodable { sequence: u64, detail: String },
    /// The store cannot be opened (e.g. its directory is read-only or full): named with its path.
    #[error("cannot open the ledger store at {path}: {source}")]
    Open {
        path: std::path::PathBuf,
        source: StoreError,
    },
    /// The store failed verification at open: the ledger refuses to start.
    #[error("ledger refuses to start: first bad sequence {sequence}: {detail}")]
    Refused { sequence: u64, detail: String },
    /// The signing key file is missing, unreadable, malformed or too widely readable.
    #[error("signing key: {0}")]
    Key(String),
    /// A stored or received checkpoint does not have the signed-checkpoint format.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// The inbox stayed stalled after every recovery step: the process should exit non-zero and
    /// be restarted by its supervisor.
    #[error("inbox stalled: {0}")]
    Stalled(String),
    /// Cluster mode: another instance appended to this ledger's partition log since this one
    /// last did (it took the partition over); this writer must stop.
    #[error("fenced off partition {partition}: {detail}")]
    Fenced { partition: u32, detail: String },
    /// A bug or an unexpected runtime failure.
    #[error("internal: {0}")]
    Internal(String),
}

impl Error {
    pub(crate) fn join(e: tokio::task::JoinError) -> Self {
        Self::Internal(format!("task failed: {e}"))
    }
}

/// The one place where ledger errors become gRPC statuses. Internal details are logged, not sent.
impl From<Error> for Status {
    fn from(e: Error) -> Status {
        match e {
            Error::Bus(e) => Status::unavailable(e.to_string()),
            Error::Store(wfl_store::Error::Io(e)) => {
                error!(error = %e, "ledger storage unavailable");
                Status::unavailable("ledger storage unavailable; retry")
            }
            Error::Store(wfl_store::Error::Corrupt { sequence, .. })
            | Error::Refused { sequence, .. }
            | Error::Undecodable { sequence, .. } => {
                error!(error = %e, "ledger data failed verification");
                Status::data_loss(format!("ledger record {sequence} failed verification"))
            }
            Error::Store(wfl_store::Error::Conflict(detail)) => Status::failed_precondition(detail),
            Error::Checkpoint(_) => {
                error!(error = %e, "stored checkpoint failed verification");
                Status::data_loss("a stored checkpoint failed verification")
            }
            other => {
                error!(error = %other, "ledger request failed");
                Status::internal("internal error; see the ledger log")
            }
        }
    }
}

/// [`Status::from`] as a function, for `map_err`.
pub(crate) fn status(e: Error) -> Status {
    Status::from(e)
}
