//! Several inbox events in one broker message: the frame the NATS bus publishes when a caller
//! hands it a run of events for one subject, and reads back into one delivery per event.
//!
//! Layout (all integers big-endian), repeated once per event, nothing before or after:
//!
//! | bytes | field |
//! |---|---|
//! | 16 | event id (UUID) |
//! | 16 | submission id (UUID) |
//! | 4 | payload length `n` |
//! | `n` | payload (the encoded event, as published alone) |
//!
//! The message says it is a frame with the header [`HEADER_BATCH`](crate::HEADER_BATCH) (the
//! number of events); its `Nats-Msg-Id` is [`frame_id`] of the event ids, so publishing the
//! same run again is de-duplicated by the broker as a single event is.
//!
//! Must not: copy payloads when reading (each event's payload is a slice of the message), or
//! panic on a malformed frame (it is refused as a whole: [`unframe`] returns `None`).

use bytes::{BufMut, Bytes};
use sha2::{Digest, Sha256};

/// Bytes a frame spends on each event besides its payload.
pub const PER_EVENT: usize = 16 + 16 + 4;

/// One event read out of a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framed {
    pub event_id: uuid::Uuid,
    pub submission: uuid::Uuid,
    pub payload: Bytes,
}

/// The frame of `events` (event id, submission, payload), in order.
#[must_use]
pub fn frame<'a>(events: impl IntoIterator<Item = (uuid::Uuid, uuid::Uuid, &'a [u8])>) -> Bytes {
    let mut out = Vec::new();
    for (event_id, submission, payload) in events {
        out.reserve(PER_EVENT + payload.len());
        out.put_slice(event_id.as_bytes());
        out.put_slice(submission.as_bytes());
        // A payload over 4 GiB cannot reach here: the broker's max_payload is checked first.
        out.put_u32(u32::try_from(payload.len()).unwrap_or(u32::MAX));
        out.put_slice(payload);
    }
    Bytes::from(out)
}

/// The events of a frame, or `None` when it is malformed (truncated, a length past the end, or
/// a count other than `expected`).
#[must_use]
pub fn unframe(frame: &Bytes, expected: usize) -> Option<Vec<Framed>> {
    let mut out = Vec::with_capacity(expected.min(frame.len() / PER_EVENT));
    let mut at = 0;
    while at < frame.len() {
        let head = frame.get(at..at + PER_EVENT)?;
        let event_id = uuid::Uuid::from_slice(&head[..16]).ok()?;
        let submission = uuid::Uuid::from_slice(&head[16..32]).ok()?;
        let len = u32::from_be_bytes(head[32..36].try_into().ok()?) as usize;
        let start = at + PER_EVENT;
        let end = start.checked_add(len).filter(|end| *end <= frame.len())?;
        out.push(Framed {
            event_id,
            submission,
            payload: frame.slice(start..end),
        });
        at = end;
    }
    (out.len() == expected).then_some(out)
}

/// The `Nats-Msg-Id` of a frame: `wfl-frame-` and the SHA-256 of its event ids in order, so the
/// same run of events published again is the same message to the broker's de-duplication.
#[must_use]
pub fn frame_id<'a>(event_ids: impl IntoIterator<Item = &'a uuid::Uuid>) -> String {
    let mut h = Sha256::new();
    for id in event_ids {
        h.update(id.as_bytes());
    }
    format!("wfl-frame-{}", hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u128) -> (uuid::Uuid, uuid::Uuid) {
        (uuid::Uuid::from_u128(n), uuid::Uuid::from_u128(n + 1_000))
    }

    #[test]
    fn a_frame_reads_back_as_written_without_copying() {
        let payloads: Vec<Vec<u8>> = vec![b"one".to_vec(), Vec::new(), vec![7; 300]];
        let framed = frame(payloads.iter().enumerate().map(|(i, p)| {
            let (e, s) = ids(i as u128);
            (e, s, p.as_slice())
        }));
        assert_eq!(
            framed.len(),
            3 * PER_EVENT + 303,
            "nothing but the events is written"
        );
        let events = unframe(&framed, 3).expect("well formed");
        for (i, (event, payload)) in events.iter().zip(&payloads).enumerate() {
            let (e, s) = ids(i as u128);
            assert_eq!((event.event_id, event.submission), (e, s));
            assert_eq!(event.payload.as_ref(), payload.as_slice());
        }
        // A slice of the message, not a copy.
        let start = framed.as_ptr() as usize;
        let third = events[2].payload.as_ptr() as usize;
        assert!(third > start && third < start + framed.len());
    }

    #[test]
    fn a_malformed_frame_is_refused_whole() {
        let (e, s) = ids(1);
        let good = frame([(e, s, b"payload".as_slice()), (e, s, b"x".as_slice())]);
        assert!(unframe(&good, 2).is_some());
        assert!(unframe(&good, 3).is_none(), "count other than the header's");
        assert!(unframe(&good, 1).is_none(), "count other than the header's");
        for cut in [1, PER_EVENT - 1, PER_EVENT + 3, good.len() - 1] {
            assert!(unframe(&good.slice(..cut), 2).is_none(), "cut at {cut}");
        }
        let mut long = good.to_vec();
        long[35] = 200; // first payload's length past the end
        assert!(unframe(&Bytes::from(long), 2).is_none());
        assert_eq!(unframe(&Bytes::new(), 0), Some(Vec::new()));
    }

    #[test]
    fn the_frame_id_names_the_events_in_order() {
        let (a, b) = (uuid::Uuid::from_u128(1), uuid::Uuid::from_u128(2));
        assert_eq!(frame_id([&a, &b]), frame_id([&a, &b]));
        assert_ne!(frame_id([&a, &b]), frame_id([&b, &a]));
        assert_ne!(frame_id([&a]), frame_id([&a, &b]));
        assert!(frame_id([&a]).starts_with("wfl-frame-"));
    }
}
