//! A committed event as a ledger hands it to a projector running in the same process.

use crate::Event;

/// One event a ledger committed: its sequence, when the ledger recorded it, its chain hash, and
/// the event as the ledger checked it. In one process (`wfl up`) the ledger hands a batch of
/// these to the projector after each durable append, so the views skip the `Subscribe`
/// stream's encoding, framing and decoding; a projector in another process reads the same
/// fields from `Subscribe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedEvent {
    pub sequence: u64,
    pub recorded_at_micros: i64,
    pub hash: [u8; 32],
    pub event: Event,
}
