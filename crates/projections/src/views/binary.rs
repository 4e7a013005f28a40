//! The compact binary form of an [`Entry`] and a [`WorkerLink`], for the projector's store.
//!
//! JSON (the entry's serde form) cost the persist more than the fold itself and was most of
//! the time to read a store back. This form is length-prefixed fields with LEB128 integers;
//! payloads are written by a [`PayloadCodec`] the caller gives (the projector's writes the
//! `wfl.v1.Payload` protobuf, the form the ledger commits), because this crate must not know
//! protobuf.
//!
//! An entry:
//!
//! ```text
//! sequence:varint org:str site:str jurisdiction:str effective_date:zigzag-varint
//! correlation:opt-str original:payload later-flag:u8
//! [if later: corrections:n×held(id payload) links:n×held(id kind:u8)
//!            retractions:n×held(id) effect:u8 (0 none | 1 id payload | 2 id kind | 3 id)]
//! held(v) = by:varint from:varint until:(0 | 1 varint) (0: it still holds) v
//! str = len:varint bytes (UTF-8)   payload = len:varint codec bytes   id = 16 bytes
//! ```
//!
//! A link: `org:str worker:str sequence:varint event_id:id`.
//!
//! An entry without later effects (or whose effects were made and emptied) writes flag 0, as
//! its JSON form did. Reading refuses what no write produces (an effective date outside the
//! domain's 1900–2200, an integer beyond 64 bits, a flag or kind out of range), so damage is
//! an error here, not a panic later.
//!
//! Owns: this byte layout. Must not: know how payloads are encoded or where the bytes are kept.

use super::{Acts, Effect, Entry, Held, Later, Link, Place, WorkerLink};
use std::sync::Arc;
use wfl_domain::{Date, EventId, OrgId, Payload, SiteId, WorkerRef};

/// How payloads are written inside an entry, and read back.
pub trait PayloadCodec {
    /// Appends the encoding of `payload` to `out`.
    fn put(&self, payload: &Payload, out: &mut Vec<u8>);
    /// The payload `bytes` encode, or why not.
    ///
    /// # Errors
    /// The bytes are not a payload this codec wrote.
    fn take(&self, bytes: &[u8]) -> Result<Payload, String>;
}

/// Appends `entry`'s binary form to `out`.
pub fn put_entry(entry: &Entry, codec: &dyn PayloadCodec, out: &mut Vec<u8>) {
    varint(out, entry.sequence);
    text(out, &entry.place.org_id.0);
    text(out, &entry.place.site_id.0);
    text(out, &entry.place.jurisdiction);
    varint(out, zigzag(entry.effective_date.days()));
    match &entry.correlation_id {
        None => out.push(0),
        Some(c) => {
            out.push(1);
            text(out, c);
        }
    }
    payload(out, codec, &entry.original);
    let later = entry.later();
    if *later == super::NO_LATER {
        out.push(0);
        return;
    }
    out.push(1);
    acts(out, &later.corrections, |out, (id, p)| {
        out.extend_from_slice(id.0.as_bytes());
        payload(out, codec, p);
    });
    acts(out, &later.links, |out, (id, kind)| {
        out.extend_from_slice(id.0.as_bytes());
        out.push(link_byte(*kind));
    });
    acts(out, &later.retracted_by, |out, id| {
        out.extend_from_slice(id.0.as_bytes());
    });
    match &later.effect {
        None => out.push(0),
        Some(Effect::Correct {
            target,
            replacement,
        }) => {
            out.push(1);
            out.extend_from_slice(target.0.as_bytes());
            payload(out, codec, replacement);
        }
        Some(Effect::Link { target, kind }) => {
            out.push(2);
            out.extend_from_slice(target.0.as_bytes());
            out.push(link_byte(*kind));
        }
        Some(Effect::Retract { target }) => {
            out.push(3);
            out.extend_from_slice(target.0.as_bytes());
        }
    }
}

/// Reads one entry from the front of `input`, leaving the rest.
///
/// # Errors
/// The bytes end early, or hold a value that is not one [`put_entry`] writes.
pub fn take_entry(input: &mut &[u8], codec: &dyn PayloadCodec) -> Result<Entry, String> {
    let sequence = take_varint(input)?;
    let place = take_place(input)?;
    let days = unzigzag(take_varint(input)?).ok_or("an effective date out of range")?;
    // The domain's dates (`Date::from_ymd`); date arithmetic beyond them would overflow.
    let in_range = match (Date::from_ymd(1900, 1, 1), Date::from_ymd(2200, 12, 31)) {
        (Ok(first), Ok(last)) => (first.days()..=last.days()).contains(&days),
        _ => false,
    };
    if !in_range {
        return Err(format!("an effective date out of range ({days} days)"));
    }
    let effective_date = Date::from_days(days);
    let correlation_id = match take_byte(input)? {
        0 => None,
        1 => Some(take_text(input)?.into_boxed_str()),
        b => return Err(format!("correlation flag {b}")),
    };
    let original = take_payload(input, codec)?;
    let later = match take_byte(input)? {
        0 => None,
        1 => {
            let corrections = take_acts(input, |input| {
                Ok((take_event_id(input)?, take_payload(input, codec)?))
            })?;
            let links = take_acts(input, |input| {
                Ok((take_event_id(input)?, take_link(input)?))
            })?;
            let retracted_by = take_acts(input, take_event_id)?;
            let effect = match take_byte(input)? {
                0 => None,
                1 => Some(Effect::Correct {
                    target: take_event_id(input)?,
                    replacement: Box::new(take_payload(input, codec)?),
                }),
                2 => Some(Effect::Link {
                    target: take_event_id(input)?,
                    kind: take_link(input)?,
                }),
                3 => Some(Effect::Retract {
                    target: take_event_id(input)?,
                }),
                b => return Err(format!("effect kind {b}")),
            };
            Some(Box::new(Later {
                corrections,
                links,
                retracted_by,
                effect,
            }))
        }
        b => return Err(format!("later flag {b}")),
    };
    Ok(Entry {
        sequence,
        place,
        effective_date,
        correlation_id,
        original,
        later,
    })
}

/// Appends `link`'s binary form to `out`.
pub fn put_link(link: &WorkerLink, out: &mut Vec<u8>) {
    text(out, &link.org.0);
    text(out, &link.worker.0);
    varint(out, link.sequence);
    out.extend_from_slice(link.event_id.0.as_bytes());
}

/// Reads one link from the front of `input`, leaving the rest.
///
/// # Errors
/// The bytes end early or are not one [`put_link`] writes.
pub fn take_link_record(input: &mut &[u8]) -> Result<WorkerLink, String> {
    Ok(WorkerLink {
        org: OrgId(take_text(input)?),
        worker: WorkerRef(take_text(input)?),
        sequence: take_varint(input)?,
        event_id: take_event_id(input)?,
    })
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i32) -> u64 {
    u64::from(((v << 1) ^ (v >> 31)) as u32)
}

fn unzigzag(v: u64) -> Option<i32> {
    let v = u32::try_from(v).ok()?;
    Some(((v >> 1) as i32) ^ -((v & 1) as i32))
}

fn text(out: &mut Vec<u8>, s: &str) {
    varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// The payload, written in place with its length moved in front of it (no buffer of its own).
fn payload(out: &mut Vec<u8>, codec: &dyn PayloadCodec, p: &Payload) {
    let start = out.len();
    codec.put(p, out);
    let end = out.len();
    varint(out, (end - start) as u64);
    let prefix = out.len() - end;
    out[start..].rotate_right(prefix);
}

fn link_byte(kind: Link) -> u8 {
    match kind {
        Link::Backfilled => 0,
        Link::Closed => 1,
    }
}

fn acts<T>(out: &mut Vec<u8>, acts: &Acts<T>, mut value: impl FnMut(&mut Vec<u8>, &T)) {
    varint(out, acts.0.len() as u64);
    for h in &acts.0 {
        varint(out, h.by);
        varint(out, h.from);
        match h.until {
            None => out.push(0),
            Some(u) => {
                out.push(1);
                varint(out, u);
            }
        }
        value(out, &h.value);
    }
}

fn take_byte(input: &mut &[u8]) -> Result<u8, String> {
    let (&b, rest) = input.split_first().ok_or("ends early")?;
    *input = rest;
    Ok(b)
}

fn take_varint(input: &mut &[u8]) -> Result<u64, String> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = take_byte(input)?;
        if shift == 63 && b > 1 {
            return Err("an integer beyond 64 bits".into());
        }
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("an integer longer than 10 bytes".into())
}

fn take_slice<'a>(input: &mut &'a [u8]) -> Result<&'a [u8], String> {
    let len = usize::try_from(take_varint(input)?).map_err(|_| "a length out of range")?;
    if len > input.len() {
        return Err(format!("a field of {len} bytes with {} left", input.len()));
    }
    let (field, rest) = input.split_at(len);
    *input = rest;
    Ok(field)
}

fn take_text(input: &mut &[u8]) -> Result<String, String> {
    take_str(input).map(str::to_owned)
}

fn take_str<'a>(input: &mut &'a [u8]) -> Result<&'a str, String> {
    std::str::from_utf8(take_slice(input)?).map_err(|_| "text that is not UTF-8".into())
}

/// How many places a decoding thread remembers ([`take_place`]).
const RECENT_PLACES: usize = 64;

thread_local! {
    /// The first [`RECENT_PLACES`] places this thread decoded: the entries of a store are at a
    /// few sites, so most entries it decodes share one of these instead of copying three names
    /// each (`Projection::restore` then makes every entry share the projection's own, beyond
    /// these too).
    static RECENT: std::cell::RefCell<Vec<Arc<Place>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Reads an entry's org, site and jurisdiction: a place this thread decoded recently when the
/// names are the same (compared before anything is copied), else a new one.
fn take_place(input: &mut &[u8]) -> Result<Arc<Place>, String> {
    let org = take_str(input)?;
    let site = take_str(input)?;
    let jurisdiction = take_str(input)?;
    Ok(RECENT.with(|recent| {
        let mut recent = recent.borrow_mut();
        if let Some(p) = recent
            .iter()
            .find(|p| p.org_id.0 == org && p.site_id.0 == site && p.jurisdiction == jurisdiction)
        {
            return Arc::clone(p);
        }
        let place = Arc::new(Place {
            org_id: OrgId(org.to_owned()),
            site_id: SiteId(site.to_owned()),
            jurisdiction: jurisdiction.to_owned(),
        });
        if recent.len() < RECENT_PLACES {
            recent.push(Arc::clone(&place));
        }
        place
    }))
}

fn take_payload(input: &mut &[u8], codec: &dyn PayloadCodec) -> Result<Payload, String> {
    codec.take(take_slice(input)?)
}

/// Reads a 16-byte event id from the front of `input`, leaving the rest.
///
/// # Errors
/// Fewer than 16 bytes are left.
pub fn take_event_id(input: &mut &[u8]) -> Result<EventId, String> {
    if input.len() < 16 {
        return Err("an event id cut short".into());
    }
    let (id, rest) = input.split_at(16);
    *input = rest;
    uuid::Uuid::from_slice(id)
        .map(EventId)
        .map_err(|e| e.to_string())
}

fn take_link(input: &mut &[u8]) -> Result<Link, String> {
    match take_byte(input)? {
        0 => Ok(Link::Backfilled),
        1 => Ok(Link::Closed),
        b => Err(format!("link kind {b}")),
    }
}

fn take_acts<T>(
    input: &mut &[u8],
    mut value: impl FnMut(&mut &[u8]) -> Result<T, String>,
) -> Result<Acts<T>, String> {
    let n = take_varint(input)?;
    // Each held effect takes at least 3 bytes: a count beyond that is damage, not a reason to
    // reserve memory.
    if n > input.len() as u64 / 3 {
        return Err(format!("{n} effects in {} bytes", input.len()));
    }
    let mut held = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let by = take_varint(input)?;
        let from = take_varint(input)?;
        let until = match take_byte(input)? {
            0 => None,
            1 => Some(take_varint(input)?),
            b => return Err(format!("until flag {b}")),
        };
        held.push(Held {
            by,
            from,
            until,
            value: value(input)?,
        });
    }
    Ok(Acts(held))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in codec: the payload's JSON (the real one, protobuf, lives in the projector).
    struct Json;

    impl PayloadCodec for Json {
        fn put(&self, payload: &Payload, out: &mut Vec<u8>) {
            serde_json::to_writer(out, payload).expect("a payload serialises");
        }
        fn take(&self, bytes: &[u8]) -> Result<Payload, String> {
            serde_json::from_slice(bytes).map_err(|e| e.to_string())
        }
    }

    #[test]
    fn integers_round_trip_at_their_edges() {
        for v in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut out = Vec::new();
            varint(&mut out, v);
            assert_eq!(take_varint(&mut out.as_slice()), Ok(v));
        }
        for d in [0, 1, -1, 738_000, -738_000, i32::MAX, i32::MIN] {
            assert_eq!(unzigzag(zigzag(d)), Some(d));
        }
        assert!(take_varint(&mut [0xffu8; 11].as_slice()).is_err());
        let mut beyond = vec![0xffu8; 9];
        beyond.push(0x02);
        assert!(take_varint(&mut beyond.as_slice()).is_err(), "65 bits");
        beyond[9] = 0x01;
        assert_eq!(take_varint(&mut beyond.as_slice()), Ok(u64::MAX));
    }

    #[test]
    fn a_cut_or_damaged_entry_is_an_error_never_a_panic() {
        let mut p = super::super::Projection::new();
        let e = super::super::fixtures::hire(7, "sh");
        p.apply(1, &e);
        let entry = p.entries.values().next().expect("an entry").clone();
        let mut out = Vec::new();
        put_entry(&entry, &Json, &mut out);
        assert_eq!(take_entry(&mut out.as_slice(), &Json).as_ref(), Ok(&*entry));
        for cut in 0..out.len() {
            assert!(take_entry(&mut &out[..cut], &Json).is_err(), "cut at {cut}");
        }
        for i in 0..out.len() {
            let mut bad = out.clone();
            bad[i] ^= 0xff;
            // Whatever decodes is usable: its date is within the domain's range.
            if let Ok(e) = take_entry(&mut bad.as_slice(), &Json) {
                assert!((1900..=2200).contains(&e.effective_date.ymd().0));
            }
        }
        // A date far outside the range, as damage would leave it, is refused.
        let mut far = Vec::new();
        varint(&mut far, entry.sequence);
        for t in ["acme", "sh", "CN"] {
            text(&mut far, t);
        }
        varint(&mut far, zigzag(i32::MAX));
        assert!(take_entry(&mut &far[..], &Json)
            .unwrap_err()
            .contains("effective date"));
    }

    /// Entries of one place decoded by one thread share one place; another place gets its own.
    #[test]
    fn entries_of_one_place_decode_to_one_shared_place() {
        let mut p = super::super::Projection::new();
        let mut e = super::super::fixtures::hire(7, "sh");
        p.apply(1, &e);
        e.event_id = EventId(uuid::Uuid::from_u128(8));
        p.apply(2, &e);
        e.event_id = EventId(uuid::Uuid::from_u128(9));
        e.site_id = SiteId::from("bj-decode-test");
        p.apply(3, &e);
        let mut out = Vec::new();
        for entry in p.entries.values() {
            put_entry(entry, &Json, &mut out);
        }
        let mut input = out.as_slice();
        let decoded: Vec<Entry> = (0..3)
            .map(|_| take_entry(&mut input, &Json).expect("an entry"))
            .collect();
        assert!(Arc::ptr_eq(&decoded[0].place, &decoded[1].place));
        assert!(!Arc::ptr_eq(&decoded[0].place, &decoded[2].place));
        assert_eq!(decoded[2].place.site_id, SiteId::from("bj-decode-test"));
        for (d, e) in decoded.iter().zip(p.entries.values()) {
            assert_eq!(d, &**e);
        }
    }
}
