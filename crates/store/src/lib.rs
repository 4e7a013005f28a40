//! `wfl-store`: the system of record for the wfl ledger.
//!
//! Owns: an append-only, hash-chained log of opaque event bytes, the indexes
//! needed to answer "what happened to this event id" and "give me this org's /
//! this type's events in order", and a small opaque metadata area for
//! consumers (cursors and the like).
//!
//! Must not: know the wire format of events. The bytes are opaque (protobuf
//! encoded by the caller); the org id and event type arrive alongside them
//! precisely so this crate never has to decode anything. Nothing here
//! assigns sequences or decides whether an event is valid: the caller does,
//! and the store only enforces that the log stays contiguous, chained and
//! free of duplicate event ids.
//!
//! Every backend implements [`Log`] and must pass the one conformance suite
//! in `tests/conformance.rs`:
//! * [`SledLog`]: the durable backend (see [`sled_log`] for the key layout).
//! * [`MemLog`]: an in-memory double with the same semantics, for tests of
//!   the services built on top.

#![forbid(unsafe_code)]

mod batch;
mod error;
pub mod forensic;
mod layout;
mod lookups;
pub mod mem_log;
pub mod merkle;
pub mod sled_log;
pub mod space;
mod tiles;

use sha2::{Digest, Sha256};

pub use error::Error;
pub use mem_log::MemLog;
pub use sled_log::{open_sled, SledLog, DEFAULT_CACHE_BYTES, TREE_NAME};

/// A SHA-256 digest: the unit of the hash chain.
pub type Hash = [u8; 32];

/// The `prev_hash` of the first record, and the hash of the empty log.
pub const ZERO_HASH: Hash = [0; 32];

/// Longest org id or event type the store accepts, in bytes.
///
/// The sled indexes length-prefix these with a big-endian `u16`, and every
/// backend enforces the same limit so they agree on what is storable.
pub const MAX_LABEL_LEN: usize = u16::MAX as usize;

/// One link of the chain: `SHA-256(prev || bytes)`.
///
/// The hash covers exactly the stored bytes and the previous link, so
/// changing, dropping or reordering any stored record breaks every later link.
#[must_use]
pub fn chain_hash(prev: &Hash, bytes: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update(prev);
    hasher.update(bytes);
    hasher.finalize().into()
}

/// The last committed record: its sequence and chain hash.
///
/// The empty log has sequence 0 and [`ZERO_HASH`]; the first record is 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Sequence of the last record (0 when empty).
    pub sequence: u64,
    /// Chain hash of the last record ([`ZERO_HASH`] when empty).
    pub hash: Hash,
}

impl Head {
    /// The head of the empty log.
    pub const EMPTY: Head = Head {
        sequence: 0,
        hash: ZERO_HASH,
    };
}

/// A record the caller wants appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecord {
    /// Assigned by the caller; must be head+1, head+2, … contiguous in the batch.
    pub sequence: u64,
    /// Idempotency key: an event id is committed or rejected at most once, ever.
    pub event_id: uuid::Uuid,
    /// Owning organisation; indexed for filtered reads.
    pub org_id: String,
    /// Event type name, e.g. `"ContractNotRenewed"`; indexed for filtered reads.
    pub event_type: String,
    /// Opaque stored bytes; the chain hash covers exactly these.
    pub bytes: Vec<u8>,
    /// The submission (one publish by a gateway) that committed it, kept in the decision so
    /// that every other submission of the same event id can be told it was a duplicate.
    /// Not part of the record's bytes or hash.
    pub submission: Option<uuid::Uuid>,
}

/// Why an event was refused, as the store keeps it.
///
/// On disk a refusal code is a big-endian `i32` after the decision's tag (layouts 2 and 3
/// alike). The numbers are fixed by [`RefusalCode::stored`] and never reused; they are the
/// `google.rpc.Code` numbers the ledger stored as raw integers before this type existed, so every
/// earlier store reads unchanged. A stored number this build does not know is reported as
/// [`Error::Corrupt`] naming the event and the number, never guessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefusalCode {
    /// The event is malformed or does not convert (stored as 3).
    InvalidArgument,
    /// A lifecycle rule refuses the event (stored as 9).
    FailedPrecondition,
    /// The worker's stream is not at the version the event expected (stored as 10).
    Aborted,
}

impl RefusalCode {
    /// Every code, for tests and tables.
    pub const ALL: [Self; 3] = [
        Self::InvalidArgument,
        Self::FailedPrecondition,
        Self::Aborted,
    ];

    /// The number kept on disk.
    #[must_use]
    pub const fn stored(self) -> i32 {
        match self {
            Self::InvalidArgument => 3,
            Self::FailedPrecondition => 9,
            Self::Aborted => 10,
        }
    }

    /// The code a stored number stands for, if this build knows it.
    #[must_use]
    pub const fn from_stored(n: i32) -> Option<Self> {
        match n {
            3 => Some(Self::InvalidArgument),
            9 => Some(Self::FailedPrecondition),
            10 => Some(Self::Aborted),
            _ => None,
        }
    }
}

/// A durable "this event id was refused" record.
///
/// Recording refusals makes retries idempotent: a client resubmitting a
/// refused event gets the same answer instead of a second evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The refused event id; it can never be committed afterwards.
    pub event_id: uuid::Uuid,
    /// Why it was refused.
    pub code: RefusalCode,
    /// Human-readable reason.
    pub message: String,
    /// SHA-256 of the refused event's canonical bytes, so a later submission of the same id
    /// with different content can be told apart from a retry.
    pub content: Option<Hash>,
}

/// A committed record as read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Position in the log (1-based).
    pub sequence: u64,
    /// The event id it was committed under.
    pub event_id: uuid::Uuid,
    /// Hash of the previous record ([`ZERO_HASH`] for sequence 1).
    pub prev_hash: Hash,
    /// `chain_hash(prev_hash, bytes)`.
    pub hash: Hash,
    /// The opaque bytes exactly as appended.
    pub bytes: Vec<u8>,
}

/// What happened to an event id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Committed at this sequence with this chain hash.
    Committed {
        /// Sequence of the record.
        sequence: u64,
        /// Chain hash of the record.
        hash: Hash,
        /// The submission that committed it; `None` for decisions stored before submission
        /// ids existed (layout 2) or appended without one.
        submission: Option<uuid::Uuid>,
    },
    /// Refused with this reason.
    Rejected {
        /// Why it was refused.
        code: RefusalCode,
        /// Human-readable reason.
        message: String,
        /// SHA-256 of the refused content; `None` for refusals stored before layout 3.
        content: Option<Hash>,
    },
}

/// Which records a [`Log::read`] returns.
///
/// An empty vector means "no filter on that dimension"; when both are given a
/// record must match one of the orgs AND one of the types.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Accept records of any of these orgs (empty = any org).
    pub org_ids: Vec<String>,
    /// Accept records of any of these event types (empty = any type).
    pub event_types: Vec<String>,
}

impl Filter {
    /// True when the filter accepts every record.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.org_ids.is_empty() && self.event_types.is_empty()
    }
}

/// The ledger log contract. Every implementation must pass the one
/// conformance suite (`tests/conformance.rs`).
///
/// Readers only ever observe durable state: a record, decision or head is
/// visible once the `append` that wrote it has made it durable.
pub trait Log: Send + Sync {
    /// The last durable record's sequence and hash.
    ///
    /// # Errors
    /// [`Error::Io`] if the store is unavailable.
    fn head(&self) -> Result<Head, Error>;

    /// Atomically append `records` and record `rejections`, durable before
    /// returning (sled: one `apply_batch` on one tree and one flush per call).
    ///
    /// Returns `(sequence, hash)` per record, in order. An empty call is a
    /// no-op.
    ///
    /// # Errors
    /// * [`Error::Conflict`] if sequences are not contiguous from head+1, if an
    ///   event id is already committed or rejected, if an event id repeats
    ///   within the call (records and rejections together), if an org id
    ///   or event type is longer than [`MAX_LABEL_LEN`], or (sled) if a
    ///   single record exceeds 4 GiB. Nothing is written.
    /// * [`Error::Io`] if the store could not write or flush. The outcome of
    ///   that call is then unknown and the sled backend refuses further
    ///   appends until it is reopened (which recovers the true head).
    /// * [`Error::Corrupt`] if stored data needed for the checks does not decode.
    fn append(
        &self,
        records: &[NewRecord],
        rejections: &[Rejection],
    ) -> Result<Vec<(u64, Hash)>, Error> {
        self.append_with_meta(records, rejections, &[])
    }

    /// [`Log::append`], plus metadata writes and deletions (`None`) in the same atomic, durable
    /// batch: after a crash either the records, the rejections and every `meta` write survive,
    /// or none of them. The ledger keeps its writer state this way, each key written with the
    /// records it reflects.
    ///
    /// A call with only `meta` writes it as [`Log::meta_write`] does; an empty call is a no-op.
    /// Like every metadata value, `meta` writes are not capped at the durable head: a reader may
    /// see them while the append is flushing.
    ///
    /// # Errors
    /// As [`Log::append`]; whenever it writes no record it writes no `meta` either.
    fn append_with_meta(
        &self,
        records: &[NewRecord],
        rejections: &[Rejection],
        meta: &[(String, Option<Vec<u8>>)],
    ) -> Result<Vec<(u64, Hash)>, Error> {
        self.append_with_checkpoint(records, rejections, meta, None)
    }

    /// [`Log::append_with_meta`], plus a signed checkpoint of an earlier tree (what
    /// [`Log::put_checkpoint`] stores, and the verified marker it moves) in the same atomic,
    /// durable batch: one flush for both, where a checkpoint put on its own costs a flush of its
    /// own between two appends. The ledger's writer cuts each checkpoint at the head one append
    /// reached and writes it with the next.
    ///
    /// A call with neither records nor rejections writes `meta` (as [`Log::meta_write`]), then
    /// puts the checkpoint on its own (as [`Log::put_checkpoint`]).
    ///
    /// # Errors
    /// As [`Log::append_with_meta`], and [`Error::Conflict`] (nothing written) unless the
    /// checkpoint's size is between 1 and the head before the call.
    fn append_with_checkpoint(
        &self,
        records: &[NewRecord],
        rejections: &[Rejection],
        meta: &[(String, Option<Vec<u8>>)],
        checkpoint: Option<(u64, &[u8])>,
    ) -> Result<Vec<(u64, Hash)>, Error>;

    /// What happened to this event id, if anything durable.
    ///
    /// # Errors
    /// [`Error::Corrupt`] if the stored decision does not decode;
    /// [`Error::Io`] if the store is unavailable.
    fn decision(&self, event_id: &uuid::Uuid) -> Result<Option<Decision>, Error>;

    /// The record at `sequence`, or `None` if it is 0 or beyond the head.
    ///
    /// # Errors
    /// [`Error::Corrupt`] if the record is missing below the head or does not
    /// decode; [`Error::Io`] if the store is unavailable.
    fn get(&self, sequence: u64) -> Result<Option<StoredRecord>, Error>;

    /// Records with `from <= sequence` (and `sequence <= to` if given), in
    /// sequence order, matching `filter`, at most `limit` of them.
    ///
    /// Filtered reads walk the org / type indexes, so reading a small org
    /// costs in proportion to that org, not to the whole log.
    ///
    /// # Errors
    /// [`Error::Corrupt`] if a record or index entry does not decode or an
    /// index points at a missing record; [`Error::Io`] if the store is
    /// unavailable.
    fn read(
        &self,
        from: u64,
        to: Option<u64>,
        filter: &Filter,
        limit: usize,
    ) -> Result<Vec<StoredRecord>, Error>;

    /// Recompute the chain from sequence 1 to the head.
    ///
    /// Returns the verified head.
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming the first sequence whose record is missing,
    /// does not decode, or whose stored prev link or hash does not verify
    /// (or the head itself when it disagrees with the last record);
    /// [`Error::Io`] if the store is unavailable.
    fn verify_chain(&self) -> Result<Head, Error>;

    /// Read an opaque metadata value (consumer cursors and the like).
    ///
    /// # Errors
    /// [`Error::Io`] if the store is unavailable.
    fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>, Error>;

    /// Write an opaque metadata value. Not flushed by itself: it becomes
    /// durable with the next append (or the backend's background flush).
    ///
    /// # Errors
    /// [`Error::Io`] if the store is unavailable.
    fn meta_put(&self, key: &str, value: &[u8]) -> Result<(), Error>;

    /// Write and delete (`None`) several metadata values atomically and
    /// durably: all or none of them survive a crash (sled: one batch and one
    /// flush). The ledger's writer state uses it for its one-off rewrites.
    ///
    /// # Errors
    /// [`Error::Io`] if the store could not write or flush.
    fn meta_write(&self, writes: &[(String, Option<Vec<u8>>)]) -> Result<(), Error>;

    /// Metadata entries whose key starts with `prefix` and sorts after `after` (all of the
    /// prefix when `None`), in ascending byte order of the key, at most `limit` of them. Page
    /// through a large prefix by passing the last key returned as the next `after`.
    ///
    /// # Errors
    /// [`Error::Corrupt`] if a stored key under the prefix is not UTF-8; [`Error::Io`] if the
    /// store is unavailable.
    fn meta_scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, Error>;

    /// The hash of the complete Merkle subtree of `2^level` leaves starting
    /// at leaf `index << level` (leaf `i` is the record at sequence `i + 1`),
    /// which must lie within the head.
    ///
    /// # Errors
    /// [`Error::Conflict`] if the subtree is not complete within the head;
    /// [`Error::Corrupt`] if a stored node is missing or malformed;
    /// [`Error::Io`] if the store is unavailable.
    fn merkle_node(&self, level: u32, index: u64) -> Result<Hash, Error>;

    /// The RFC 9162 root of the tree of the first `size` records.
    ///
    /// # Errors
    /// [`Error::Conflict`] if `size` is beyond the head; otherwise as
    /// [`Log::merkle_node`].
    fn merkle_root(&self, size: u64) -> Result<Hash, Error> {
        check_size(self.head()?, size)?;
        merkle::root(&Nodes(self), size)
    }

    /// The audit path of the record at `sequence` in the tree of `size`
    /// records (RFC 9162 §2.1.3.1; the leaf index is `sequence - 1`).
    ///
    /// # Errors
    /// [`Error::Conflict`] unless `1 <= sequence <= size <= head`; otherwise
    /// as [`Log::merkle_node`].
    fn inclusion_proof(&self, sequence: u64, size: u64) -> Result<Vec<Hash>, Error> {
        check_size(self.head()?, size)?;
        if sequence == 0 || sequence > size {
            return Err(Error::Conflict(format!(
                "sequence {sequence} is not in the tree of size {size}"
            )));
        }
        merkle::inclusion_proof(&Nodes(self), sequence - 1, size)
    }

    /// The consistency proof between the trees of `old` and `new` records
    /// (RFC 9162 §2.1.4.1).
    ///
    /// # Errors
    /// [`Error::Conflict`] unless `1 <= old <= new <= head`; otherwise as
    /// [`Log::merkle_node`].
    fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, Error> {
        check_size(self.head()?, new)?;
        if old == 0 || old > new {
            return Err(Error::Conflict(format!(
                "old size {old} must be between 1 and the new size {new}"
            )));
        }
        merkle::consistency_proof(&Nodes(self), old, new)
    }

    /// Store an opaque (signed) checkpoint of the tree of `size` records and
    /// move the verified marker to `size`, durably, in one batch. Open then
    /// re-verifies only the records after the latest marker.
    ///
    /// # Errors
    /// [`Error::Conflict`] unless `1 <= size <= head`; [`Error::Io`] if the
    /// store could not write or flush.
    fn put_checkpoint(&self, size: u64, bytes: &[u8]) -> Result<(), Error>;

    /// Stored checkpoints with `size >= from_size`, by size, at most `limit`.
    ///
    /// # Errors
    /// [`Error::Io`] if the store is unavailable.
    fn checkpoints(&self, from_size: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, Error>;

    /// The checkpoint with the largest size, if any.
    ///
    /// # Errors
    /// [`Error::Io`] if the store is unavailable.
    fn latest_checkpoint(&self) -> Result<Option<(u64, Vec<u8>)>, Error>;

    /// Verify everything from sequence 1 to the head: every record present,
    /// chain links and hashes, and every stored Merkle node against the one
    /// recomputed from the records. Calls `progress` with the sequence
    /// verified so far from time to time.
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming the first bad sequence; [`Error::Io`] if the
    /// store is unavailable.
    fn verify_all(&self, progress: &mut dyn FnMut(u64)) -> Result<Head, Error>;
}

/// `size` must not be beyond the head.
fn check_size(head: Head, size: u64) -> Result<(), Error> {
    if size > head.sequence {
        return Err(Error::Conflict(format!(
            "tree size {size} is beyond the head {}",
            head.sequence
        )));
    }
    Ok(())
}

/// A checkpoint's `size` must be between 1 and the `head` sequence (both backends, one message).
pub(crate) fn check_checkpoint_size(size: u64, head: u64) -> Result<(), Error> {
    if size == 0 || size > head {
        return Err(Error::Conflict(format!(
            "checkpoint size {size} must be between 1 and the head {head}"
        )));
    }
    Ok(())
}

/// What [`Log::append_with_checkpoint`] writes with neither records nor rejections (both
/// backends): its metadata, then its checkpoint on its own.
pub(crate) fn write_without_records<L: Log + ?Sized>(
    log: &L,
    meta: &[(String, Option<Vec<u8>>)],
    checkpoint: Option<(u64, &[u8])>,
) -> Result<Vec<(u64, Hash)>, Error> {
    if let Some((size, _)) = checkpoint {
        check_checkpoint_size(size, log.head()?.sequence)?;
    }
    if !meta.is_empty() {
        log.meta_write(meta)?;
    }
    if let Some((size, bytes)) = checkpoint {
        log.put_checkpoint(size, bytes)?;
    }
    Ok(Vec::new())
}

/// A [`Log`] seen as a [`merkle::NodeSource`].
struct Nodes<'a, L: Log + ?Sized>(&'a L);

impl<L: Log + ?Sized> merkle::NodeSource for Nodes<'_, L> {
    fn node(&self, level: u32, index: u64) -> Result<Hash, Error> {
        self.0.merkle_node(level, index)
    }
}
