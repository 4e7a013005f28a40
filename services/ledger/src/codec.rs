//! Encoding of ledger records: the stored bytes are a `wfl.v1.CommittedEvent` without its hash
//! fields; the hashes live beside them in the store and are filled in when a record is read.

use prost::Message;
use wfl_domain::{Event, OriginalEvent};
use wfl_proto::pb;
use wfl_store::StoredRecord;

use crate::Error;

/// The stored bytes of a committed event.
pub(crate) fn encode(sequence: u64, recorded_at_micros: i64, event: &Event) -> Vec<u8> {
    pb::CommittedEvent {
        sequence,
        recorded_at_micros,
        event: Some(wfl_proto::convert::event_to_pb(event)),
        prev_hash: Vec::new(),
        hash: Vec::new(),
    }
    .encode_to_vec()
}

/// A stored record as the API returns it, hashes included.
pub(crate) fn decode(record: &StoredRecord) -> Result<pb::CommittedEvent, Error> {
    let mut c =
        pb::CommittedEvent::decode(record.bytes.as_slice()).map_err(|e| Error::Undecodable {
            sequence: record.sequence,
            detail: e.to_string(),
        })?;
    if c.sequence != record.sequence {
        return Err(Error::Undecodable {
            sequence: record.sequence,
            detail: format!("record says sequence {}", c.sequence),
        });
    }
    c.prev_hash = record.prev_hash.to_vec();
    c.hash = record.hash.to_vec();
    Ok(c)
}

/// The domain event inside a stored record.
pub(crate) fn decode_event(record: &StoredRecord) -> Result<Event, Error> {
    let c = decode(record)?;
    let e = c.event.ok_or_else(|| Error::Undecodable {
        sequence: record.sequence,
        detail: "no event".into(),
    })?;
    wfl_proto::convert::event_from_pb(e).map_err(|v| Error::Undecodable {
        sequence: record.sequence,
        detail: v.to_string(),
    })
}

/// The summary of a stored record used by corrections, retractions and links.
pub(crate) fn original(record: &StoredRecord) -> Result<OriginalEvent, Error> {
    decode_event(record).map(|e| OriginalEvent::of(&e))
}

/// Microseconds since the Unix epoch, now.
pub(crate) fn now_micros() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_micros()).unwrap_or(i64::MAX)
}
