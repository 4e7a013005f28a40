//! The projector's own sled database: the folded state stored **keyed**, by what changed, with its
//! checkpoint in the same atomic, flushed batch.
//!
//! Owns the key layout below and the encoding of each value. Must not decide anything about the
//! views: it stores what [`Projection::take_changes`] hands it and gives it back to
//! [`Projection::restore`].
//!
//! | key                                        | value                                          |
//! |--------------------------------------------|------------------------------------------------|
//! | `m` `format`                               | layout version, u32 big-endian (6)             |
//! | `m` `checkpoint`                           | last folded sequence, u64 BE                   |
//! | `m` `recorded`                             | the [`RecordedOrder`] at the checkpoint: latest recorded-at, i64 BE, then 1 if recorded-at never decreased (9); absent in stores written before it (read as not ordered) |
//! | `c` checkpoint (u64 BE) part (u32 BE)      | one part of a persist: the entries first folded in it and the worker-index links its corrections added (an entry's own link is read from the entry; layouts 4 and 5 wrote it as a link too, read as a repeat): [`BINARY`], then items `e` id (16) entry / `l` link in the binary form of `wfl_projections::views::binary` (payloads as `wfl.v1.Payload` protobuf); layout 4 wrote a JSON array of `{"e":[id, entry]}` / `{"l":link}`, still read; ≤ ~[`PART_BYTES`] |
//! | `e` sequence (u64 BE) event id (16)        | an entry changed after the persist that first wrote it (a correction, link or retraction acted on it): [`BINARY`] then the entry (layout 4: JSON, still read); replaces the copy in its `c` part |
//!
//! A persist writes its new entries and links packed into a few `c` values (one sled key per
//! ~[`PART_BYTES`], not one per event: sled's per-key insert was the largest cost of a persist) at
//! the end of the tree, one `e` key per earlier entry it changed, and the checkpoint: its cost is
//! proportional to the batch, never to the history. `c` values are never rewritten; an `e` value
//! is replaced in place, and sled's segment cleaner reclaims the value it replaces. The first copy
//! of a changed entry stays in its `c` part (bounded by the events that act on an earlier persist's
//! entry: one copy each). Parts stay far below sled's blob threshold (a leaf of up to 17 of them is
//! written inline, no blob file per value).
//! Layouts 1 (the whole state as one JSON document under `state`), 2 (entries without the sequences
//! each correction, link and retraction held between) and 3 (one key per entry and per link) are
//! refused with the fix named: restart once with `--rebuild-views`. Layout 4 is layout 5 with
//! JSON values, and layout 5 is layout 6 with every entry's own worker-index link also written
//! as a link item: both are read as they are, and a store's first persist by this build marks
//! it 6 (its older values stay as they are; every value says which form it is by its first
//! byte, and a link read twice counts once). The binary form costs the persist a fraction of
//! JSON's and is about two thirds of its size.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use wfl_domain::EventId;
use wfl_domain::Payload;
use wfl_projections::views::{binary, Changes, Entry, Projection, WorkerLink};
use wfl_proto::Message;

use crate::{Error, RecordedOrder};

const FORMAT: &[u8] = b"mformat";
const CHECKPOINT: &[u8] = b"mcheckpoint";
const RECORDED: &[u8] = b"mrecorded";
const PART: u8 = b'c';
const ENTRY: u8 = b'e';
/// The layout version this code writes (and reads, with [`BINARY_LAYOUT`] and [`JSON_LAYOUT`]).
const LAYOUT: u32 = 6;
/// The layout that wrote every entry's own worker-index link beside the entry: read as it is
/// (the repeat counts once).
const BINARY_LAYOUT: u32 = 5;
/// The layout before values were binary: its values are JSON, read as they are.
const JSON_LAYOUT: u32 = 4;
/// The first byte of a binary value (a JSON value starts with `[` or `{`).
const BINARY: u8 = 0xb5;
/// A `c` part is closed once it reaches this many bytes (~15 entries).
const PART_BYTES: usize = 6 << 10;
/// Layout 1's whole-state document key.
const LEGACY_STATE: &[u8] = b"state";
/// sled's page cache: the state itself lives in the projection; sled needs only a little.
const CACHE_BYTES: u64 = 64 << 20;

pub(crate) struct ViewStore {
    db: sled::Db,
    path: PathBuf,
}

impl ViewStore {
    /// Opens (or creates) the store at `path`.
    ///
    /// # Errors
    /// The database cannot be opened (named with its path and the fix).
    pub(crate) fn open(path: &Path) -> Result<Self, Error> {
        // No background flusher, as for the ledger's store (`SledLog::open`): every persist
        // flushes itself, and a flusher meeting ENOSPC while persists are paused would leave sled
        // refusing every later write.
        let config = sled::Config::new()
            .path(path)
            .cache_capacity(CACHE_BYTES)
            .flush_every_ms(None);
        let db = wfl_store::open_sled(&config).map_err(|e| {
            Error::Store(format!(
                "cannot open the view store at {}: {e}; if it is damaged, restart with \
                     --rebuild-views (the views are re-derived from the ledger)",
                path.display()
            ))
        })?;
        Ok(Self {
            db,
            path: path.to_owned(),
        })
    }

    fn damaged(&self, what: &str) -> Error {
        Error::Store(format!(
            "view store at {} is damaged: {what}; restart with --rebuild-views (the views are \
             re-derived from the ledger)",
            self.path.display()
        ))
    }

    /// Discards everything stored (for `--rebuild-views`): the database is closed, the files
    /// in its directory removed (the directory itself stays: it may be a mount point or a
    /// link) and a fresh database opened there (sled's own `clear` deletes key by key, seconds
    /// for millions of entries). A crash in between can leave some files: the next start says
    /// the store is damaged and names `--rebuild-views`, which removes the rest.
    pub(crate) fn reset(self) -> Result<Self, Error> {
        let path = self.path.clone();
        drop(self);
        let removed = std::fs::read_dir(&path).and_then(|entries| {
            for entry in entries {
                let entry = entry?;
                if entry.file_type()?.is_dir() {
                    std::fs::remove_dir_all(entry.path())?;
                } else {
                    std::fs::remove_file(entry.path())?;
                }
            }
            Ok(())
        });
        match removed {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Error::Store(format!(
                    "cannot empty the view store at {} to rebuild it: {e}",
                    path.display()
                )))
            }
        }
        Self::open(&path)
    }

    /// The stored state, or an empty one. Reads every stored entry and link once.
    ///
    /// # Errors
    /// An unreadable or undecodable key or value, a legacy layout, or a missing checkpoint.
    pub(crate) fn load(&self) -> Result<(Projection, RecordedOrder), Error> {
        let get = |k: &[u8]| self.db.get(k).map_err(|e| self.damaged(&e.to_string()));
        if get(LEGACY_STATE)?.is_some() {
            return Err(Error::Store(format!(
                "view store at {} uses the old whole-document layout; restart once with \
                 --rebuild-views to move it to the keyed layout",
                self.path.display()
            )));
        }
        let format = get(FORMAT)?;
        let checkpoint = get(CHECKPOINT)?;
        let (format, checkpoint) = match (format, checkpoint) {
            (None, None) => return Ok((Projection::new(), RecordedOrder::default())),
            (Some(f), Some(c)) => (f, c),
            _ => return Err(self.damaged("the layout version or the checkpoint is missing")),
        };
        let format = <[u8; 4]>::try_from(format.as_ref())
            .map(u32::from_be_bytes)
            .map_err(|_| self.damaged("the layout version is not 4 bytes"))?;
        if ![JSON_LAYOUT, BINARY_LAYOUT, LAYOUT].contains(&format) {
            return Err(self.damaged(&format!(
                "layout {format}, this build reads layouts {JSON_LAYOUT} to {LAYOUT}"
            )));
        }
        let checkpoint = <[u8; 8]>::try_from(checkpoint.as_ref())
            .map(u64::from_be_bytes)
            .map_err(|_| self.damaged("the checkpoint is not 8 bytes"))?;

        // Collected as a list, then sorted once (the map is built in bulk from it): inserting
        // each entry into a map as it is read moved every entry several times.
        // Read in key order here, decoded (most of the cost) on every core.
        let started = std::time::Instant::now();
        let mut entries: Vec<(EventId, Arc<Entry>)> = Vec::new();
        let mut links = Vec::new();
        let parts = self.db.scan_prefix([PART]).map(|kv| {
            let (k, v) = kv.map_err(|e| self.damaged(&e.to_string()))?;
            let persisted = <[u8; 8]>::try_from(k.get(1..9).unwrap_or_default())
                .ok()
                .filter(|_| k.len() == 13)
                .map(u64::from_be_bytes)
                .ok_or_else(|| self.damaged("a part key is malformed"))?;
            if persisted > checkpoint {
                return Err(self.damaged(&format!(
                    "a part persisted at sequence {persisted} is beyond the checkpoint {checkpoint}"
                )));
            }
            Ok((persisted, v))
        });
        let decode_part = |(persisted, v): (u64, sled::IVec)| {
            let fail = |e: String| {
                self.damaged(&format!(
                    "the part persisted at {persisted} does not decode: {e}"
                ))
            };
            match v.split_first() {
                Some((&BINARY, items)) => take_items(items).map_err(fail),
                _ => serde_json::from_slice::<Vec<Item<Arc<Entry>, WorkerLink>>>(&v)
                    .map_err(|e| fail(e.to_string())),
            }
        };
        decode_in_order(parts, decode_part, |items| {
            for item in items {
                match item {
                    Item::Entry(id, entry) => entries.push((id, entry)),
                    Item::Link(link) => links.push(link),
                }
            }
        })?;
        // An `e` value replaces the copy of its entry in a `c` part.
        let mut changed = std::collections::BTreeMap::new();
        let values = self.db.scan_prefix([ENTRY]).map(|kv| {
            let (k, v) = kv.map_err(|e| self.damaged(&e.to_string()))?;
            let id = (k.len() == 25)
                .then(|| event_id(&k[9..]))
                .flatten()
                .ok_or_else(|| self.damaged("an entry key is malformed"))?;
            Ok((id, v))
        });
        let decode_entry = |(id, v): (EventId, sled::IVec)| {
            let entry = match v.split_first() {
                Some((&BINARY, mut bytes)) => {
                    binary::take_entry(&mut bytes, &Protobuf).and_then(|e| {
                        bytes
                            .is_empty()
                            .then_some(e)
                            .ok_or_else(|| format!("{} bytes after it", bytes.len()))
                    })
                }
                _ => serde_json::from_slice::<Entry>(&v).map_err(|e| e.to_string()),
            };
            entry
                .map(|entry| (id, Arc::new(entry)))
                .map_err(|e| self.damaged(&format!("entry {id} does not decode: {e}")))
        };
        decode_in_order(values, decode_entry, |(id, entry)| {
            changed.insert(id, entry);
        })?;
        // Stable, and of two copies of an id the later read wins (as a map insert would).
        entries.sort_by_key(|(id, _)| *id);
        entries.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                std::mem::swap(later, kept);
            }
            same
        });
        for (id, entry) in &mut entries {
            if let Some(newer) = changed.remove(id) {
                *entry = newer;
            }
        }
        // A changed entry whose first copy is missing still counts (it cannot be in a part
        // beyond the checkpoint: those were refused above).
        entries.extend(changed);
        // Views stored before the order was kept: their history was not checked.
        let recorded = match get(RECORDED)? {
            None => RecordedOrder {
                last: 0,
                ordered: false,
            },
            Some(v) if v.len() == 9 => RecordedOrder {
                last: i64::from_be_bytes(v[..8].try_into().unwrap_or_default()),
                ordered: v[8] == 1,
            },
            Some(_) => return Err(self.damaged("the recorded-at order is not 9 bytes")),
        };
        let decoded = started.elapsed();
        let (count, linked) = (entries.len(), links.len());
        let projection = Projection::restore(checkpoint, entries, links);
        tracing::info!(
            entries = count,
            links = linked,
            decode_ms = decoded.as_millis() as u64,
            index_ms = (started.elapsed() - decoded).as_millis() as u64,
            "view store decoded and indexed"
        );
        Ok((projection, recorded))
    }

    /// Writes what changed and the checkpoint atomically and durably.
    ///
    /// # Errors
    /// The batch cannot be written or flushed.
    pub(crate) fn save(&self, changes: &Changes, recorded: RecordedOrder) -> Result<(), Error> {
        let mut batch = sled::Batch::default();
        encode_changes(changes, &mut |key, value| batch.insert(key, value));
        batch.insert(FORMAT, &LAYOUT.to_be_bytes());
        batch.insert(CHECKPOINT, &changes.last_sequence.to_be_bytes());
        let mut order = recorded.last.to_be_bytes().to_vec();
        order.push(u8::from(recorded.ordered));
        batch.insert(RECORDED, order);
        self.db
            .apply_batch(batch)
            .map_err(|e| Error::Store(format!("view store at {}: {e}", self.path.display())))?;
        self.db
            .flush()
            .map_err(|e| Error::Store(format!("view store at {}: {e}", self.path.display())))?;
        Ok(())
    }

    /// Bytes sled reports for the store on disk.
    pub(crate) fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

/// Encodes what changed as [`ViewStore::save`] writes it: each `c` part and `e` value, given to
/// `put` as (key, value). The checkpoint and layout keys are not among them.
pub fn encode_changes(changes: &Changes, put: &mut dyn FnMut(&[u8], Vec<u8>)) {
    let mut part = Part::new(changes.last_sequence);
    for (id, entry) in &changes.entries {
        if entry.sequence() > changes.since {
            part.push(put, |buf| put_entry_item(buf, id, entry));
        } else {
            let mut value = vec![BINARY];
            binary::put_entry(entry, &Protobuf, &mut value);
            put(entry_key(entry.sequence(), id).as_slice(), value);
        }
    }
    for l in &changes.links {
        part.push(put, |buf| put_link_item(buf, l));
    }
    part.close(put);
}

/// The tag of an entry in a binary `c` part (then its event id and the entry).
const ITEM_ENTRY: u8 = b'e';
/// The tag of a worker-index link in a binary `c` part.
const ITEM_LINK: u8 = b'l';

/// Payloads inside the binary entries: the `wfl.v1.Payload` protobuf, the form the ledger
/// commits them in.
struct Protobuf;

impl binary::PayloadCodec for Protobuf {
    fn put(&self, payload: &Payload, out: &mut Vec<u8>) {
        // A `Vec` grows as needed: encoding into it cannot run out of room.
        let _ = wfl_proto::convert::payload_to_pb(payload).encode(out);
    }

    fn take(&self, bytes: &[u8]) -> Result<Payload, String> {
        let wire = wfl_proto::pb::Payload::decode(bytes).map_err(|e| e.to_string())?;
        wfl_proto::convert::payload_from_pb(wire).map_err(|v| v.to_string())
    }
}

/// Appends an entry as an item of a binary `c` part.
fn put_entry_item(buf: &mut Vec<u8>, id: &EventId, entry: &Entry) {
    buf.push(ITEM_ENTRY);
    buf.extend_from_slice(id.0.as_bytes());
    binary::put_entry(entry, &Protobuf, buf);
}

/// Appends a worker-index link as an item of a binary `c` part.
fn put_link_item(buf: &mut Vec<u8>, link: &WorkerLink) {
    buf.push(ITEM_LINK);
    binary::put_link(link, buf);
}

/// The items of a binary `c` part (after its first byte).
fn take_items(mut input: &[u8]) -> Result<Vec<Item<Arc<Entry>, WorkerLink>>, String> {
    let mut items = Vec::new();
    while let Some((&tag, rest)) = input.split_first() {
        input = rest;
        items.push(match tag {
            ITEM_ENTRY => {
                let id = binary::take_event_id(&mut input)?;
                Item::Entry(id, Arc::new(binary::take_entry(&mut input, &Protobuf)?))
            }
            ITEM_LINK => Item::Link(binary::take_link_record(&mut input)?),
            other => return Err(format!("an item tagged {other}")),
        });
    }
    Ok(items)
}

/// One item of a `c` part: an entry (with its event id) or a worker-index link.
#[derive(Serialize, Deserialize)]
enum Item<E, L> {
    #[serde(rename = "e")]
    Entry(EventId, E),
    #[serde(rename = "l")]
    Link(L),
}

/// The `c` parts of one persist, filled item by item and closed at [`PART_BYTES`].
struct Part {
    persisted: u64,
    index: u32,
    buf: Vec<u8>,
}

impl Part {
    fn new(persisted: u64) -> Self {
        Self {
            persisted,
            index: 0,
            buf: Vec::with_capacity(PART_BYTES + (1 << 10)),
        }
    }

    /// Adds one item, written by `item` after the part's first byte.
    fn push(&mut self, put: &mut dyn FnMut(&[u8], Vec<u8>), item: impl FnOnce(&mut Vec<u8>)) {
        if self.buf.is_empty() {
            self.buf.push(BINARY);
        }
        item(&mut self.buf);
        if self.buf.len() >= PART_BYTES {
            self.close(put);
        }
    }

    fn close(&mut self, put: &mut dyn FnMut(&[u8], Vec<u8>)) {
        if self.buf.is_empty() {
            return;
        }
        let mut k = [0u8; 13];
        k[0] = PART;
        k[1..9].copy_from_slice(&self.persisted.to_be_bytes());
        k[9..].copy_from_slice(&self.index.to_be_bytes());
        put(k.as_slice(), std::mem::take(&mut self.buf));
        self.index += 1;
    }
}

/// Decodes `values` (read in order by the calling thread) on one helper thread per core, a
/// chunk at a time, and gives each decoded value to `sink` in the order it was read. Stops at
/// the first error, read or decode (what the sink got by then is of no use: the load fails).
fn decode_in_order<V: Send, T: Send>(
    values: impl Iterator<Item = Result<V, Error>>,
    decode: impl Fn(V) -> Result<T, Error> + Sync,
    mut sink: impl FnMut(T),
) -> Result<(), Error> {
    use std::collections::BTreeMap;
    use std::sync::mpsc;
    /// Values per job: enough that handing over costs nothing next to decoding them.
    const CHUNK: usize = 64;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().clamp(1, 4));
    // Bounded: the reader keeps at most a few chunks ahead of the decoders.
    let (jobs, queue) = mpsc::sync_channel::<(usize, Vec<V>)>(threads * 2);
    let queue = std::sync::Mutex::new(queue);
    let (results, done) = mpsc::channel::<(usize, Result<Vec<T>, Error>)>();
    std::thread::scope(|s| {
        for _ in 0..threads {
            let (queue, results, decode) = (&queue, results.clone(), &decode);
            s.spawn(move || loop {
                let job = queue
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .recv();
                let Ok((n, chunk)) = job else { return };
                let decoded = chunk.into_iter().map(decode).collect();
                if results.send((n, decoded)).is_err() {
                    return;
                }
            });
        }
        drop(results);
        // Results come back in any order: each is handed on once all before it were.
        let mut waiting: BTreeMap<usize, Result<Vec<T>, Error>> = BTreeMap::new();
        let mut next = 0;
        let mut hand_on = |waiting: &mut BTreeMap<usize, Result<Vec<T>, Error>>| {
            while let Some(r) = waiting.remove(&next) {
                r?.into_iter().for_each(&mut sink);
                next += 1;
            }
            Ok::<_, Error>(())
        };
        let (mut sent, mut chunk) = (0, Vec::with_capacity(CHUNK));
        for v in values {
            chunk.push(v?);
            if chunk.len() == CHUNK {
                if jobs.send((sent, std::mem::take(&mut chunk))).is_err() {
                    break;
                }
                sent += 1;
                waiting.extend(done.try_iter());
                hand_on(&mut waiting)?;
            }
        }
        if !chunk.is_empty() && jobs.send((sent, chunk)).is_ok() {
            sent += 1;
        }
        drop(jobs);
        for (n, r) in done {
            waiting.insert(n, r);
            hand_on(&mut waiting)?;
        }
        hand_on(&mut waiting)?;
        if next == sent {
            Ok(())
        } else {
            Err(Error::Internal(format!(
                "view store: {} of {sent} chunks decoded",
                next
            )))
        }
    })
}

/// An entry changed after its first persist, keyed by the sequence it was folded at.
fn entry_key(sequence: u64, id: &EventId) -> [u8; 25] {
    let mut k = [0u8; 25];
    k[0] = ENTRY;
    k[1..9].copy_from_slice(&sequence.to_be_bytes());
    k[9..].copy_from_slice(id.0.as_bytes());
    k
}

fn event_id(bytes: &[u8]) -> Option<EventId> {
    uuid::Uuid::from_slice(bytes).ok().map(EventId)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wfl_domain::{Event, OrgId, SiteId, WorkerRef};

    /// Worker `w-n` hired at site `sh` of `acme`, event id `n`.
    fn hire(n: u128) -> Event {
        let mut e = wfl_testkit::scenario::hire("acme", &format!("w-{n}"));
        e.event_id = EventId(uuid::Uuid::from_u128(n));
        e.site_id = SiteId::from("sh");
        e
    }

    #[test]
    fn what_is_saved_is_loaded_and_a_damaged_value_names_the_path_and_the_fix() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("projector");
        let store = ViewStore::open(&path).expect("opens");
        let mut p = Projection::new();
        let mut order = RecordedOrder::default();
        for n in 1..=3 {
            p.apply(n as u64, &hire(n));
            order.note(1_000 * n as i64);
            store.save(&p.take_changes(), order).expect("saves");
        }
        assert_eq!(store.load().expect("loads"), (p.clone(), order));
        // An event recorded before its predecessor: the order says so from then on.
        order.note(500);
        assert_eq!((order.last, order.ordered), (3_000, false));
        order.note(4_000);
        assert_eq!((order.last, order.ordered), (4_000, false));
        // One persist of many events spans several parts; a later one retracts an event an
        // earlier persist wrote (an `e` key replaces its first copy).
        for n in 4..=200 {
            p.apply(n as u64, &hire(n));
        }
        let changes = p.take_changes();
        store.save(&changes, order).expect("saves");
        assert!(
            store.db.scan_prefix([PART]).count() > 2,
            "197 entries fill more than one part"
        );
        let mut retraction = hire(201);
        retraction.payload = Payload::EventRetracted(wfl_domain::EventRetracted {
            original_event_id: EventId(uuid::Uuid::from_u128(5)),
            reason: "entered twice".into(),
        });
        p.apply(201, &retraction);
        store.save(&p.take_changes(), order).expect("saves");
        assert_eq!(
            store.db.scan_prefix([ENTRY]).count(),
            1,
            "{:?}",
            p.last_sequence()
        );
        let (loaded, loaded_order) = store.load().expect("loads");
        assert_eq!((&loaded, loaded_order), (&p, order));
        // Views stored before the order was kept: their history was not checked.
        store.db.remove(RECORDED).expect("a raw remove");
        let (_, unknown) = store.load().expect("loads");
        assert!(!unknown.ordered);
        assert_eq!(
            loaded.headcount(&Default::default()),
            p.headcount(&Default::default())
        );

        store
            .db
            .insert(
                entry_key(2, &EventId(uuid::Uuid::from_u128(2))),
                &b"{not json"[..],
            )
            .expect("a raw write");
        let Err(Error::Store(message)) = store.load() else {
            panic!("a damaged entry is refused")
        };
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("--rebuild-views"), "{message}");

        let store = store.reset().expect("resets");
        store
            .db
            .insert(FORMAT, &3u32.to_be_bytes()[..])
            .expect("a layout 3 store");
        store
            .db
            .insert(CHECKPOINT, &7u64.to_be_bytes()[..])
            .expect("its checkpoint");
        let Err(Error::Store(message)) = store.load() else {
            panic!("layout 3 is refused")
        };
        assert!(message.contains("layout 3"), "{message}");
        assert!(message.contains("--rebuild-views"), "{message}");

        let store = store.reset().expect("resets");
        store
            .db
            .insert(LEGACY_STATE, &b"{}"[..])
            .expect("a legacy document");
        let Err(Error::Store(message)) = store.load() else {
            panic!("the old layout is refused")
        };
        assert!(message.contains("--rebuild-views"), "{message}");
    }

    /// A store written by the build before binary values (layout 4: JSON parts and values, each
    /// entry's own worker-index link written beside it) is read as it is; the next persist marks
    /// it layout 6 and writes binary values beside the JSON ones, and the whole reads back as the
    /// folded state. The binary form is smaller.
    #[test]
    fn a_layout_4_store_of_json_is_read_and_written_on_in_binary() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let store = ViewStore::open(&dir.path().join("projector")).expect("opens");
        let mut p = Projection::new();
        for n in 1..=50 {
            p.apply(n as u64, &hire(n));
        }
        let changes = p.take_changes();
        assert!(
            changes.links.is_empty(),
            "a hire's own link is read from its entry"
        );
        // Layout 4 wrote each entry's own worker-index link beside it: read as a repeat.
        let own_links: Vec<WorkerLink> = (1..=50u128)
            .map(|n| WorkerLink {
                org: OrgId::from("acme"),
                worker: WorkerRef(format!("w-{n}")),
                sequence: n as u64,
                event_id: EventId(uuid::Uuid::from_u128(n)),
            })
            .collect();
        // What layout 4 wrote: one JSON part, the layout and the checkpoint.
        let items: Vec<Item<&Entry, &WorkerLink>> = changes
            .entries
            .iter()
            .map(|(id, e)| Item::Entry(*id, &**e))
            .chain(own_links.iter().map(Item::Link))
            .collect();
        let json = serde_json::to_vec(&items).expect("JSON");
        let mut key = vec![PART];
        key.extend_from_slice(&50u64.to_be_bytes());
        key.extend_from_slice(&0u32.to_be_bytes());
        store.db.insert(key, json.clone()).expect("a raw write");
        store
            .db
            .insert(FORMAT, &JSON_LAYOUT.to_be_bytes()[..])
            .expect("a raw write");
        store
            .db
            .insert(CHECKPOINT, &50u64.to_be_bytes()[..])
            .expect("a raw write");
        assert_eq!(store.load().expect("loads").0, p);

        let mut retraction = hire(51);
        retraction.payload = Payload::EventRetracted(wfl_domain::EventRetracted {
            original_event_id: EventId(uuid::Uuid::from_u128(5)),
            reason: "entered twice".into(),
        });
        p.apply(51, &retraction);
        p.apply(52, &hire(52));
        store
            .save(&p.take_changes(), RecordedOrder::default())
            .expect("saves");
        let raw = |k: &[u8]| store.db.get(k).expect("a raw read").expect("present");
        assert_eq!(raw(FORMAT).as_ref(), LAYOUT.to_be_bytes());
        let values: Vec<sled::IVec> = store
            .db
            .scan_prefix([PART])
            .chain(store.db.scan_prefix([ENTRY]))
            .map(|kv| kv.expect("a raw read").1)
            .collect();
        let first_bytes: Vec<u8> = values.iter().map(|v| v[0]).collect();
        assert_eq!(
            first_bytes,
            [b'[', BINARY, BINARY],
            "the JSON part, a new part, an `e` value"
        );
        assert_eq!(store.load().expect("loads").0, p);

        // The same 50 entries and links in the binary form.
        let mut binary_part = vec![BINARY];
        for (id, e) in &changes.entries {
            put_entry_item(&mut binary_part, id, e);
        }
        for l in &own_links {
            put_link_item(&mut binary_part, l);
        }
        let binary_bytes = binary_part.len();
        assert_eq!(
            take_items(&binary_part[1..]).expect("decodes").len(),
            items.len()
        );
        assert!(
            binary_bytes * 3 < json.len() * 2,
            "binary {binary_bytes} bytes, JSON {}",
            json.len()
        );
    }

    #[test]
    fn values_decoded_on_every_core_come_out_in_the_order_read_and_an_error_stops_it() {
        let mut got = Vec::new();
        decode_in_order(
            (0..10_000u32).map(Ok),
            |v| Ok(u64::from(v) * 3),
            |t| got.push(t),
        )
        .expect("decoded");
        let expected: Vec<u64> = (0..10_000u64).map(|v| v * 3).collect();
        assert_eq!(got, expected, "every value, once, in the order read");

        let bad = |v: u32| {
            if v == 7_000 {
                Err(Error::Store("value 7000 does not decode".to_owned()))
            } else {
                Ok(v)
            }
        };
        let err = decode_in_order((0..10_000u32).map(Ok), bad, |_| {}).expect_err("refused");
        assert!(err.to_string().contains("value 7000"), "{err}");

        let unreadable = (0..10_000u32).map(|v| {
            if v == 3_000 {
                Err(Error::Store("value 3000 is unreadable".to_owned()))
            } else {
                Ok(v)
            }
        });
        let err = decode_in_order(unreadable, Ok, |_| {}).expect_err("refused");
        assert!(err.to_string().contains("value 3000"), "{err}");
    }
}
