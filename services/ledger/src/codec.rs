//! Encoding of ledger records: the stored bytes are a `wfl.v1.CommittedEvent` without its hash
//! fields; the hashes live beside them in the store and are filled in when a record is read.

use prost::Message;
use wfl_domain::{Event, OriginalEvent};
use wfl_proto::pb;
use wfl_store::StoredRecord;

use crate::Error;

/// The stored bytes of a committed event.
#[cfg(test)]
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

/// The stored bytes of a committed event whose canonical `wfl.v1.Event` encoding is `event`
/// (as [`wfl_proto::convert::encode_with_content`] gives it, with the content hash): byte for
/// byte the `wfl.v1.CommittedEvent` prost would write, without converting and encoding the
/// event a second time. Fields in tag order, zero scalars left out, as prost does.
pub(crate) fn encode_canonical(sequence: u64, recorded_at_micros: i64, event: &[u8]) -> Vec<u8> {
    use prost::encoding::{encode_key, encode_varint, int64, uint64, WireType};
    // Three keys, two 10-byte varints and the length's varint at most.
    let mut bytes = Vec::with_capacity(event.len() + 33);
    if sequence != 0 {
        uint64::encode(1, &sequence, &mut bytes);
    }
    if recorded_at_micros != 0 {
        int64::encode(2, &recorded_at_micros, &mut bytes);
    }
    encode_key(3, WireType::LengthDelimited, &mut bytes);
    encode_varint(event.len() as u64, &mut bytes);
    bytes.extend_from_slice(event);
    bytes
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

/// Checks a stored record for sending as it is stored (`Read`, `ReadBatches`, `Subscribe` and
/// the committed-stream publisher): its bytes
/// hash to its chain hash (a damaged record is refused, not sent), and its top-level fields
/// name its own sequence; returns when it was recorded. The event inside is not decoded: the
/// hash says the bytes are the ones [`encode`] wrote.
pub(crate) fn check_stored(record: &StoredRecord) -> Result<i64, Error> {
    use prost::encoding::{decode_key, decode_varint, skip_field, DecodeContext, WireType};
    if wfl_store::chain_hash(&record.prev_hash, &record.bytes) != record.hash {
        return Err(Error::Store(wfl_store::Error::Corrupt {
            sequence: record.sequence,
            detail: "stored hash does not match SHA-256(prev_hash || bytes)".to_owned(),
        }));
    }
    let undecodable = |detail: String| Error::Undecodable {
        sequence: record.sequence,
        detail,
    };
    let mut buf = record.bytes.as_slice();
    let (mut sequence, mut recorded_at) = (0u64, 0i64);
    while !buf.is_empty() {
        let (tag, wire) = decode_key(&mut buf).map_err(|e| undecodable(e.to_string()))?;
        match (tag, wire) {
            (1, WireType::Varint) => {
                sequence = decode_varint(&mut buf).map_err(|e| undecodable(e.to_string()))?;
            }
            (2, WireType::Varint) => {
                // int64 on the wire: the varint's bits are the two's-complement value.
                recorded_at =
                    decode_varint(&mut buf).map_err(|e| undecodable(e.to_string()))? as i64;
            }
            _ => skip_field(wire, tag, &mut buf, DecodeContext::default())
                .map_err(|e| undecodable(e.to_string()))?,
        }
    }
    if sequence != record.sequence {
        return Err(undecodable(format!("record says sequence {sequence}")));
    }
    Ok(recorded_at)
}

/// The `wfl.v1.CommittedEvent` wire bytes of a stored record checked by [`check_stored`]: the
/// stored bytes (a `CommittedEvent` without its hash fields) followed by fields 4 (`prev_hash`)
/// and 5 (`hash`), which is what encoding [`decode`]'s answer gives a decoder (fields may come
/// in any order; each hash is set once).
pub(crate) fn put_committed(out: &mut Vec<u8>, record: &StoredRecord) {
    use prost::encoding::{encode_key, encode_varint, WireType};
    out.extend_from_slice(&record.bytes);
    for (tag, hash) in [(4, &record.prev_hash), (5, &record.hash)] {
        encode_key(tag, WireType::LengthDelimited, out);
        encode_varint(hash.len() as u64, out);
        out.extend_from_slice(hash);
    }
}

/// The org id and event type a stored record is published under, read from its bytes without
/// decoding the event ([`wfl_proto::convert::org_and_type_of`]); empty when absent, as the
/// decoded event gave them. An event field given more than once (no writer makes one) is read
/// as a decoder merges it: as the concatenation of its occurrences.
pub(crate) fn org_and_type(record: &StoredRecord) -> Result<(String, String), Error> {
    use prost::encoding::{decode_key, decode_varint, skip_field, DecodeContext, WireType};
    let undecodable = |e: prost::DecodeError| Error::Undecodable {
        sequence: record.sequence,
        detail: e.to_string(),
    };
    let mut buf = record.bytes.as_slice();
    let mut events: Vec<&[u8]> = Vec::with_capacity(1);
    while !buf.is_empty() {
        let (tag, wire) = decode_key(&mut buf).map_err(undecodable)?;
        if (tag, wire) == (3, WireType::LengthDelimited) {
            let len = usize::try_from(decode_varint(&mut buf).map_err(undecodable)?)
                .ok()
                .filter(|&n| n <= buf.len())
                .ok_or_else(|| undecodable(prost::DecodeError::new("buffer underflow")))?;
            let (field, rest) = buf.split_at(len);
            events.push(field);
            buf = rest;
        } else {
            skip_field(wire, tag, &mut buf, DecodeContext::default()).map_err(undecodable)?;
        }
    }
    let merged;
    let event: &[u8] = match events.as_slice() {
        [] => &[],
        [one] => one,
        many => {
            merged = many.concat();
            &merged
        }
    };
    let (org, kind) = wfl_proto::convert::org_and_type_of(event).map_err(undecodable)?;
    Ok((
        org.to_owned(),
        kind.map(|t| t.as_str().to_owned()).unwrap_or_default(),
    ))
}

/// The length of [`put_committed`]'s bytes.
pub(crate) fn committed_len(record: &StoredRecord) -> usize {
    record.bytes.len() + 2 * (2 + record.hash.len())
}

/// The `wfl.v1.EventBatch` wire bytes of these records (field 1, one `CommittedEvent` each).
pub(crate) fn put_batch(records: &[StoredRecord]) -> Vec<u8> {
    let mut out = Vec::with_capacity(batch_len(records));
    put_batch_into(&mut out, records);
    out
}

/// The length of [`put_batch`]'s bytes.
pub(crate) fn batch_len(records: &[StoredRecord]) -> usize {
    use prost::encoding::encoded_len_varint;
    records
        .iter()
        .map(|r| {
            let n = committed_len(r);
            1 + encoded_len_varint(n as u64) + n
        })
        .sum()
}

/// [`put_batch`], appended to `out`.
pub(crate) fn put_batch_into(out: &mut Vec<u8>, records: &[StoredRecord]) {
    use prost::encoding::{encode_key, encode_varint, WireType};
    for r in records {
        encode_key(1, WireType::LengthDelimited, out);
        encode_varint(committed_len(r) as u64, out);
        put_committed(out, r);
    }
}

/// Stored records of a small chain of hires and resignations, as the writer stores them.
#[cfg(test)]
pub(crate) fn chain(n: u64) -> Vec<StoredRecord> {
    let mut prev = wfl_store::ZERO_HASH;
    (1..=n)
        .map(|sequence| {
            let worker = format!("w-{}", sequence / 2);
            let event = if sequence % 2 == 1 {
                wfl_testkit::scenario::hire("acme", &worker)
            } else {
                wfl_testkit::scenario::resign("acme", &worker)
            };
            let bytes = encode(sequence, 1_700_000_000_000_000 + sequence as i64, &event);
            let hash = wfl_store::chain_hash(&prev, &bytes);
            let record = StoredRecord {
                sequence,
                event_id: event.event_id.0,
                prev_hash: prev,
                hash,
                bytes,
            };
            prev = hash;
            record
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use wfl_testkit::scenario::{hire, resign};

    #[test]
    fn a_record_is_published_as_decoding_and_encoding_it_again_would_write_it() {
        for r in chain(3) {
            let decoded = decode(&r).expect("decodes");
            check_stored(&r).expect("intact");
            let mut stored = Vec::new();
            put_committed(&mut stored, &r);
            assert_eq!(stored, decoded.encode_to_vec());
            assert_eq!(stored.len(), committed_len(&r));
            let event = decoded.event.as_ref().expect("an event");
            assert_eq!(
                org_and_type(&r).expect("readable"),
                (
                    event.org_id.clone(),
                    wfl_proto::convert::event_type_of(event)
                        .expect("a kind")
                        .as_str()
                        .to_owned()
                )
            );
        }
        // An event given twice reads as a decoder merges the two.
        let mut twice = chain(1).pop().expect("a record");
        let mut second = Vec::new();
        prost::encoding::message::encode(
            3,
            &pb::Event {
                site_id: "s".into(),
                ..pb::Event::default()
            },
            &mut second,
        );
        twice.bytes.extend(&second);
        let merged = pb::CommittedEvent::decode(twice.bytes.as_slice()).expect("decodes");
        let event = merged.event.expect("an event");
        assert_eq!(event.site_id, "s");
        assert_eq!(
            org_and_type(&twice).expect("readable"),
            (
                event.org_id.clone(),
                wfl_proto::convert::event_type_of(&event)
                    .expect("the first occurrence's kind")
                    .as_str()
                    .to_owned()
            )
        );
        // A damaged record is refused, not published.
        let mut damaged = chain(2).pop().expect("two records");
        damaged.bytes[10] ^= 1;
        assert!(check_stored(&damaged).is_err());
        damaged.bytes.truncate(12);
        assert!(org_and_type(&damaged).is_err());
    }

    #[test]
    fn a_record_built_from_the_canonical_bytes_is_what_prost_writes() {
        for event in [hire("org-1", "w1"), resign("org-2", "w-2")] {
            let (canonical, _) = wfl_proto::convert::encode_with_content(&event);
            for sequence in [0, 1, 127, 128, u64::MAX] {
                for at in [0, 1, -1, 1_700_000_000_000_000, i64::MIN] {
                    assert_eq!(
                        encode_canonical(sequence, at, &canonical),
                        encode(sequence, at, &event),
                        "sequence {sequence}, recorded at {at}"
                    );
                }
            }
        }
    }
}
