//! Committed events as JSON lines (`wfl replay`, `wfl tail`, `wfl export`), written straight from
//! the domain types into a byte buffer.
//!
//! The line format is what these commands printed when they built a `serde_json::Value` per
//! event: the ledger fields and the event in its domain JSON form, **every object's keys in
//! sorted order** (a `Value` object is a `BTreeMap`; this workspace does not enable serde_json's
//! `preserve_order`). [`push_line`] writes the same bytes without building the `Value`: a
//! serializer that writes each object's fields as they come, then puts them in key order in
//! place. Owns the line format; must not be used for JSON whose key order matters otherwise.

use std::borrow::Cow;
use std::io::Write as _;

use anyhow::anyhow;
use serde::ser::{self, Serialize};
use wfl_proto::pb;

/// Appends one committed event as a JSON line (newline included) to `out`. Takes the event by
/// value: its payload is moved into the domain type, not copied. For many lines, [`Lines`]
/// reuses its scratch space.
///
/// # Errors
/// When the record carries no event or one that does not convert (a server defect); `out` then
/// holds part of the line.
pub fn push_line(out: &mut Vec<u8>, c: pb::CommittedEvent) -> anyhow::Result<()> {
    Lines::default().push(out, c)
}

/// Writes JSON lines, keeping the serializer's scratch space from one line to the next.
#[derive(Debug, Default)]
pub struct Lines {
    scratch: Scratch,
}

impl Lines {
    /// [`push_line`] with this writer's scratch space.
    ///
    /// # Errors
    /// As [`push_line`].
    pub fn push(&mut self, out: &mut Vec<u8>, c: pb::CommittedEvent) -> anyhow::Result<()> {
        let event = c
            .event
            .ok_or_else(|| anyhow!("sequence {} has no event", c.sequence))?;
        let event = wfl_proto::convert::event_from_pb(event)
            .map_err(|v| anyhow!("sequence {}: {v}", c.sequence))?;
        // The ledger's fields, in key order: event, hash, prev_hash, recorded_at_micros, sequence.
        out.extend_from_slice(b"{\"event\":");
        sorted(out, &mut self.scratch, &event)?;
        out.extend_from_slice(b",\"hash\":\"");
        push_hex(out, &c.hash);
        out.extend_from_slice(b"\",\"prev_hash\":\"");
        push_hex(out, &c.prev_hash);
        write!(
            out,
            "\",\"recorded_at_micros\":{},\"sequence\":{}}}",
            c.recorded_at_micros, c.sequence
        )?;
        out.push(b'\n');
        Ok(())
    }
}

fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(2 * bytes.len());
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)]);
        out.push(DIGITS[usize::from(b & 0xf)]);
    }
}

/// Appends `value` as JSON, every object's keys in sorted order (a later duplicate key wins),
/// byte for byte as `serde_json::to_value(value)` then printed: scalars are formatted by
/// serde_json itself, an `f32` is widened to `f64` first as `Value` does.
///
/// # Errors
/// When `value`'s `Serialize` fails, or a map key is not a string, a number or a bool (which
/// `Value` refuses too).
pub fn push_sorted<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> anyhow::Result<()> {
    sorted(out, &mut Scratch::default(), value)
}

fn sorted<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    scratch: &mut Scratch,
    value: &T,
) -> anyhow::Result<()> {
    let mut w = Writer {
        out,
        keys: std::mem::take(&mut scratch.keys),
        text: std::mem::take(&mut scratch.text),
    };
    let result = value.serialize(&mut w);
    w.keys.clear();
    scratch.keys = w.keys;
    scratch.text = w.text;
    Ok(result?)
}

/// What a [`Writer`] allocates, kept between values.
#[derive(Debug, Default)]
struct Scratch {
    keys: Vec<Field>,
    text: String,
}

/// One written field of an object being built: its key and where its value's bytes are.
#[derive(Debug)]
struct Field {
    key: Cow<'static, str>,
    start: usize,
    end: usize,
}

struct Writer<'a> {
    out: &'a mut Vec<u8>,
    /// The fields of every object being built, innermost last (one stack, so a nested object
    /// allocates nothing of its own).
    keys: Vec<Field>,
    /// Where `collect_str` formats (dates), reused.
    text: String,
}

impl<'a> Writer<'a> {
    /// A scalar, formatted by serde_json.
    fn scalar<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), serde_json::Error> {
        serde_json::to_writer(&mut *self.out, v)
    }

    fn key(&mut self, key: &str) -> Result<(), serde_json::Error> {
        self.scalar(key)?;
        self.out.push(b':');
        Ok(())
    }

    fn object<'w>(&'w mut self, wrapped: bool) -> Object<'w, 'a> {
        let base = self.keys.len();
        let start = self.out.len();
        Object {
            w: self,
            base,
            start,
            wrapped,
        }
    }
}

/// An object whose field values are written as they come (after `start`, unseparated) and put
/// in key order at the end.
struct Object<'w, 'a> {
    w: &'w mut Writer<'a>,
    /// Its first field in `w.keys`.
    base: usize,
    /// Where its unordered values begin in `w.out`.
    start: usize,
    /// Inside `{"variant":…}`: one more `}` to close.
    wrapped: bool,
}

impl Object<'_, '_> {
    fn field<T: Serialize + ?Sized>(
        &mut self,
        key: Cow<'static, str>,
        value: &T,
    ) -> Result<(), serde_json::Error> {
        let start = self.w.out.len();
        value.serialize(&mut *self.w)?;
        let end = self.w.out.len();
        self.w.keys.push(Field { key, start, end });
        Ok(())
    }

    fn finish(self) {
        let Object {
            w,
            base,
            start,
            wrapped,
        } = self;
        // Stable: equal keys keep their order, and the last one is printed (as a map insert).
        w.keys[base..].sort_by(|a, b| a.key.cmp(&b.key));
        let ordered = w.out.len();
        w.out.push(b'{');
        let n = w.keys.len();
        let mut first = true;
        for i in base..n {
            if i + 1 < n && w.keys[i + 1].key == w.keys[i].key {
                continue;
            }
            if !first {
                w.out.push(b',');
            }
            first = false;
            let (s, e) = (w.keys[i].start, w.keys[i].end);
            // Keys are strings: serde_json cannot fail on one.
            let key = std::mem::take(&mut w.keys[i].key);
            let _ = w.key(&key);
            w.out.extend_from_within(s..e);
        }
        w.out.push(b'}');
        if wrapped {
            w.out.push(b'}');
        }
        w.keys.truncate(base);
        w.out.drain(start..ordered);
    }
}

type Error = serde_json::Error;

impl<'b, 'a> ser::Serializer for &'b mut Writer<'a> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Seq<'b, 'a>;
    type SerializeTuple = Seq<'b, 'a>;
    type SerializeTupleStruct = Seq<'b, 'a>;
    type SerializeTupleVariant = Seq<'b, 'a>;
    type SerializeMap = Map<'b, 'a>;
    type SerializeStruct = Object<'b, 'a>;
    type SerializeStructVariant = Object<'b, 'a>;

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.scalar(&v)
    }
    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        self.scalar(&v)
    }
    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        self.scalar(&v)
    }
    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        self.scalar(&v)
    }
    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        self.scalar(&v)
    }
    fn serialize_i128(self, v: i128) -> Result<(), Error> {
        self.scalar(&v)
    }
    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        self.scalar(&v)
    }
    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        self.scalar(&v)
    }
    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        self.scalar(&v)
    }
    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        self.scalar(&v)
    }
    fn serialize_u128(self, v: u128) -> Result<(), Error> {
        self.scalar(&v)
    }
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        // `Value` holds every float as an f64.
        self.scalar(&f64::from(v))
    }
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        self.scalar(&v)
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.scalar(&v)
    }
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.scalar(v)
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        self.scalar(v)
    }
    fn collect_str<T: std::fmt::Display + ?Sized>(self, value: &T) -> Result<(), Error> {
        use std::fmt::Write as _;
        let mut text = std::mem::take(&mut self.text);
        text.clear();
        let written = write!(text, "{value}");
        let result = match written {
            Ok(()) => self.scalar(text.as_str()),
            Err(_) => Err(ser::Error::custom("a Display implementation failed")),
        };
        self.text = text;
        result
    }
    fn serialize_none(self) -> Result<(), Error> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        self.serialize_none()
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        self.serialize_none()
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.scalar(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.out.push(b'{');
        self.key(variant)?;
        value.serialize(&mut *self)?;
        self.out.push(b'}');
        Ok(())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Seq<'b, 'a>, Error> {
        self.out.push(b'[');
        Ok(Seq {
            w: self,
            first: true,
            wrapped: false,
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<Seq<'b, 'a>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<Seq<'b, 'a>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Seq<'b, 'a>, Error> {
        self.out.push(b'{');
        self.key(variant)?;
        self.out.push(b'[');
        Ok(Seq {
            w: self,
            first: true,
            wrapped: true,
        })
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Map<'b, 'a>, Error> {
        Ok(Map {
            object: self.object(false),
            key: None,
        })
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Object<'b, 'a>, Error> {
        Ok(self.object(false))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Object<'b, 'a>, Error> {
        self.out.push(b'{');
        self.key(variant)?;
        Ok(self.object(true))
    }
}

/// An array (or `{"variant":[…]}`).
struct Seq<'b, 'a> {
    w: &'b mut Writer<'a>,
    first: bool,
    wrapped: bool,
}

impl Seq<'_, '_> {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        if !self.first {
            self.w.out.push(b',');
        }
        self.first = false;
        value.serialize(&mut *self.w)
    }

    fn close(self) -> Result<(), Error> {
        self.w.out.push(b']');
        if self.wrapped {
            self.w.out.push(b'}');
        }
        Ok(())
    }
}

impl ser::SerializeSeq for Seq<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        self.close()
    }
}

impl ser::SerializeTuple for Seq<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        self.close()
    }
}

impl ser::SerializeTupleStruct for Seq<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        self.close()
    }
}

impl ser::SerializeTupleVariant for Seq<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        self.close()
    }
}

impl ser::SerializeStruct for Object<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.field(Cow::Borrowed(key), value)
    }
    fn end(self) -> Result<(), Error> {
        self.finish();
        Ok(())
    }
}

impl ser::SerializeStructVariant for Object<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.field(Cow::Borrowed(key), value)
    }
    fn end(self) -> Result<(), Error> {
        self.finish();
        Ok(())
    }
}

/// A map: its keys as `Value` would keep them (strings; numbers and bools as their text).
struct Map<'b, 'a> {
    object: Object<'b, 'a>,
    key: Option<String>,
}

impl ser::SerializeMap for Map<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        // Rare (no domain type has a map): the key goes through `Value`, which names the
        // refusal of a key it cannot hold.
        self.key = Some(match serde_json::to_value(key)? {
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            _ => return Err(ser::Error::custom("key must be a string")),
        });
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        let key = self
            .key
            .take()
            .ok_or_else(|| ser::Error::custom("map value without a key"))?;
        self.object.field(Cow::Owned(key), value)
    }
    fn end(self) -> Result<(), Error> {
        self.object.finish();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The line as `wfl replay` printed it before this module: a `serde_json::Value` per event.
    fn via_value(c: &pb::CommittedEvent) -> String {
        let event = wfl_proto::convert::event_from_pb(c.event.clone().expect("an event"))
            .expect("a valid event");
        let value = json!({
            "sequence": c.sequence,
            "recorded_at_micros": c.recorded_at_micros,
            "prev_hash": hex::encode(&c.prev_hash),
            "hash": hex::encode(&c.hash),
            "event": event,
        });
        format!("{value}\n")
    }

    fn committed(sequence: u64, event: &wfl_domain::Event) -> pb::CommittedEvent {
        let byte = |k: u64| u8::try_from((sequence * 31 + k) % 251).expect("< 251");
        pb::CommittedEvent {
            sequence,
            recorded_at_micros: 1_780_000_000_000_000 + i64::try_from(sequence).expect("small"),
            event: Some(wfl_proto::convert::event_to_pb(event)),
            prev_hash: (0..32).map(byte).collect(),
            hash: (32..64).map(byte).collect(),
        }
    }

    /// Every example of docs/events.md (every payload kind, most optional fields set), the
    /// restructuring, realistic and hires mixes of `wfl load`, and text that needs escaping
    /// (control characters are refused at ingest, so no stored event holds one).
    fn events() -> Vec<wfl_domain::Event> {
        let doc =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/events.md"))
                .expect("docs/events.md");
        let mut out = Vec::new();
        let mut block: Option<String> = None;
        for line in doc.lines() {
            match (&mut block, line.trim()) {
                (None, "```json") => block = Some(String::new()),
                (Some(text), "```") => {
                    let pb = crate::client::parse_event(text).expect("a docs/events.md example");
                    out.push(wfl_proto::convert::event_from_pb(pb).expect("valid"));
                    block = None;
                }
                (Some(text), _) => {
                    text.push_str(line);
                    text.push('\n');
                }
                (None, _) => {}
            }
        }
        let kinds: std::collections::BTreeSet<_> =
            out.iter().map(|e| e.payload.event_type()).collect();
        assert_eq!(kinds.len(), wfl_domain::EventType::ALL.len(), "every kind");
        for mix in [
            crate::loadgen::Mix::Restructuring,
            crate::loadgen::Mix::Realistic,
            crate::loadgen::Mix::Hires,
        ] {
            let generator = crate::loadgen::Generator::new(mix, "acme", "run-1").expect("mix");
            out.extend(generator.events(0, 40));
        }
        let mut odd = out[0].clone();
        odd.source.reference = "quote \" backslash \\ slash / é 漢 😀".into();
        odd.correlation_id = Some("</script>\u{2028}\u{a0}".into());
        out.push(odd);
        out
    }

    #[test]
    fn a_line_is_byte_for_byte_what_the_value_form_printed() {
        let mut buf = Vec::new();
        for (i, event) in events().iter().enumerate() {
            let c = committed(i as u64 + 1, event);
            let want = via_value(&c);
            buf.clear();
            push_line(&mut buf, c).expect("converts");
            assert_eq!(String::from_utf8(buf.clone()).expect("utf-8"), want);
        }
    }

    #[test]
    fn objects_come_out_sorted_as_a_value_prints_them() {
        #[derive(serde::Serialize)]
        enum Shape {
            Unit,
            New(u8),
            Tuple(u8, &'static str),
            Struct { z: u8, a: Option<u8> },
        }
        #[derive(serde::Serialize)]
        struct Outer {
            zeta: Vec<Shape>,
            alpha: std::collections::HashMap<String, f32>,
            mid: (bool, char, Option<()>),
            bytes: &'static [u8],
            big: u128,
            neg: i64,
        }
        let value = Outer {
            zeta: vec![
                Shape::Unit,
                Shape::New(1),
                Shape::Tuple(2, "t"),
                Shape::Struct { z: 3, a: None },
            ],
            alpha: [("b".into(), 1.1), ("a".into(), f32::NAN), ("ä".into(), 0.5)]
                .into_iter()
                .collect(),
            mid: (true, '"', None),
            bytes: b"\x00\xff",
            big: 7,
            neg: -9,
        };
        let mut got = Vec::new();
        push_sorted(&mut got, &value).expect("serializes");
        let want =
            serde_json::to_string(&serde_json::to_value(&value).expect("a value")).expect("prints");
        assert_eq!(String::from_utf8(got).expect("utf-8"), want);
    }
}
