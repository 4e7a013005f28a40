//! Byte layout of everything [`crate::SledLog`] keeps in its tree.
//!
//! Owns: key prefixes, key encodings and value encodings (see the table in
//! [`crate::sled_log`]). All integers are big-endian so that sled's
//! lexicographic key order is numeric order.
//!
//! Must not: touch sled or know the event wire format. Decoders never panic:
//! a value of the wrong shape is reported as [`Error::Corrupt`].

use uuid::Uuid;

use crate::{Decision, Error, Hash, Head};

/// `e` + seq → record value.
pub(crate) const RECORD: u8 = b'e';
/// `h` → head value.
pub(crate) const HEAD: u8 = b'h';
/// `i` + event id → decision value.
pub(crate) const DECISION: u8 = b'i';
/// `m` + key → opaque metadata value.
pub(crate) const META: u8 = b'm';
/// `o` + u16 len + org id + seq → empty.
pub(crate) const ORG: u8 = b'o';
/// `t` + u16 len + event type + seq → empty.
pub(crate) const TYPE: u8 = b't';
/// `v` → layout version byte.
pub(crate) const VERSION: u8 = b'v';

/// Current layout version, stored under [`VERSION`].
pub(crate) const LAYOUT_VERSION: u8 = 1;

const SEQ_LEN: usize = 8;
const ID_LEN: usize = 16;
const HASH_LEN: usize = 32;
/// event id + prev hash + hash, before the opaque bytes.
const RECORD_HEADER_LEN: usize = ID_LEN + 2 * HASH_LEN;
const HEAD_LEN: usize = SEQ_LEN + HASH_LEN;

const COMMITTED_TAG: u8 = b'C';
const REJECTED_TAG: u8 = b'R';
const COMMITTED_LEN: usize = 1 + SEQ_LEN + HASH_LEN;
const REJECTED_HEADER_LEN: usize = 1 + 4;

pub(crate) fn record_key(sequence: u64) -> [u8; 1 + SEQ_LEN] {
    let mut key = [0; 1 + SEQ_LEN];
    key[0] = RECORD;
    key[1..].copy_from_slice(&sequence.to_be_bytes());
    key
}

/// The sequence in a record key, if the key has the record shape.
pub(crate) fn record_key_sequence(key: &[u8]) -> Option<u64> {
    match key {
        [RECORD, rest @ ..] => read_u64(rest),
        _ => None,
    }
}

pub(crate) fn decision_key(event_id: &Uuid) -> [u8; 1 + ID_LEN] {
    let mut key = [0; 1 + ID_LEN];
    key[0] = DECISION;
    key[1..].copy_from_slice(event_id.as_bytes());
    key
}

pub(crate) fn meta_key(key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + key.len());
    out.push(META);
    out.extend_from_slice(key.as_bytes());
    out
}

/// Write `tag + u16 len + label` into `out` (cleared first): the prefix of
/// every index key of that label. The length prefix keeps `"ab"` and `"a"`
/// from sharing a key range.
///
/// # Errors
/// [`Error::Conflict`] if the label is longer than `u16::MAX` bytes.
pub(crate) fn label_prefix_into(out: &mut Vec<u8>, tag: u8, label: &str) -> Result<(), Error> {
    let len = u16::try_from(label.len()).map_err(|_| {
        Error::Conflict(format!(
            "label of {} bytes exceeds the index limit",
            label.len()
        ))
    })?;
    out.clear();
    out.push(tag);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(label.as_bytes());
    Ok(())
}

/// Append `sequence` to an index prefix, giving the index key.
pub(crate) fn push_sequence(out: &mut Vec<u8>, sequence: u64) {
    out.extend_from_slice(&sequence.to_be_bytes());
}

/// The sequence at the end of an index key with a prefix of `prefix_len` bytes.
pub(crate) fn index_key_sequence(key: &[u8], prefix_len: usize) -> Option<u64> {
    key.get(prefix_len..).and_then(read_u64)
}

/// A borrowed, decoded record value: no allocation until the caller asks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordView<'a> {
    pub(crate) event_id: Uuid,
    pub(crate) prev_hash: Hash,
    pub(crate) hash: Hash,
    pub(crate) bytes: &'a [u8],
}

pub(crate) fn encode_record(
    event_id: &Uuid,
    prev_hash: &Hash,
    hash: &Hash,
    bytes: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(RECORD_HEADER_LEN + bytes.len());
    out.extend_from_slice(event_id.as_bytes());
    out.extend_from_slice(prev_hash);
    out.extend_from_slice(hash);
    out.extend_from_slice(bytes);
    out
}

/// Decode the record value stored for `sequence`.
///
/// # Errors
/// [`Error::Corrupt`] at `sequence` if the value is too short.
pub(crate) fn decode_record(sequence: u64, value: &[u8]) -> Result<RecordView<'_>, Error> {
    if value.len() < RECORD_HEADER_LEN {
        return Err(Error::corrupt(
            sequence,
            format!(
                "record value is {} bytes, shorter than its {RECORD_HEADER_LEN}-byte header",
                value.len()
            ),
        ));
    }
    let (id, rest) = value.split_at(ID_LEN);
    let (prev, rest) = rest.split_at(HASH_LEN);
    let (hash, bytes) = rest.split_at(HASH_LEN);
    Ok(RecordView {
        event_id: Uuid::from_bytes(to_array(id)),
        prev_hash: to_array(prev),
        hash: to_array(hash),
        bytes,
    })
}

pub(crate) fn encode_head(head: &Head) -> [u8; HEAD_LEN] {
    let mut out = [0; HEAD_LEN];
    out[..SEQ_LEN].copy_from_slice(&head.sequence.to_be_bytes());
    out[SEQ_LEN..].copy_from_slice(&head.hash);
    out
}

/// # Errors
/// [`Error::Corrupt`] (sequence 0) if the value has the wrong length.
pub(crate) fn decode_head(value: &[u8]) -> Result<Head, Error> {
    if value.len() != HEAD_LEN {
        return Err(Error::corrupt(
            0,
            format!("head value is {} bytes, expected {HEAD_LEN}", value.len()),
        ));
    }
    let (seq, hash) = value.split_at(SEQ_LEN);
    Ok(Head {
        sequence: u64::from_be_bytes(to_array(seq)),
        hash: to_array(hash),
    })
}

pub(crate) fn encode_committed(sequence: u64, hash: &Hash) -> [u8; COMMITTED_LEN] {
    let mut out = [0; COMMITTED_LEN];
    out[0] = COMMITTED_TAG;
    out[1..1 + SEQ_LEN].copy_from_slice(&sequence.to_be_bytes());
    out[1 + SEQ_LEN..].copy_from_slice(hash);
    out
}

pub(crate) fn encode_rejected(code: i32, message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(REJECTED_HEADER_LEN + message.len());
    out.push(REJECTED_TAG);
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(message.as_bytes());
    out
}

/// # Errors
/// [`Error::Corrupt`] if the value has neither decision shape; the sequence
/// is the committed one when it can be read, else 0.
pub(crate) fn decode_decision(event_id: &Uuid, value: &[u8]) -> Result<Decision, Error> {
    match value {
        [COMMITTED_TAG, rest @ ..] if rest.len() == SEQ_LEN + HASH_LEN => {
            let (seq, hash) = rest.split_at(SEQ_LEN);
            Ok(Decision::Committed {
                sequence: u64::from_be_bytes(to_array(seq)),
                hash: to_array(hash),
            })
        }
        [REJECTED_TAG, c0, c1, c2, c3, message @ ..] => {
            let message = std::str::from_utf8(message).map_err(|_| {
                Error::corrupt(0, format!("rejection message of {event_id} is not UTF-8"))
            })?;
            Ok(Decision::Rejected {
                code: i32::from_be_bytes([*c0, *c1, *c2, *c3]),
                message: message.to_owned(),
            })
        }
        _ => Err(Error::corrupt(
            0,
            format!(
                "decision of {event_id} has an unknown shape ({} bytes)",
                value.len()
            ),
        )),
    }
}

fn read_u64(bytes: &[u8]) -> Option<u64> {
    let arr: [u8; SEQ_LEN] = bytes.try_into().ok()?;
    Some(u64::from_be_bytes(arr))
}

/// Copy a slice whose length the caller already checked into an array.
fn to_array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0; N];
    // Lengths are checked by every caller; copying the overlap instead of
    // `copy_from_slice` keeps a future slip from turning into a panic.
    for (dst, src) in out.iter_mut().zip(bytes) {
        *dst = *src;
    }
    out
}
