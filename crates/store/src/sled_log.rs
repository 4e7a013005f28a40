//! The durable [`Log`] backend on sled 0.34.
//!
//! Owns: the on-disk layout, atomic + durable appends (one `apply_batch` on
//! one tree and one `flush` per call), index-driven reads, chain
//! verification and recovery of the head on reopen.
//!
//! Must not: decode event bytes, assign sequences, or expose records before
//! they are durable.
//!
//! # Key layout
//!
//! Everything lives in one tree, [`TREE_NAME`], so that one `apply_batch`
//! covers records, indexes, decisions and the head atomically. Integers are
//! big-endian so key order is numeric order.
//!
//! ```text
//! key                              value
//! e first:u64                      chunk: count:u32, count × end:u32, entries…
//!                                    entry = event_id:16 prev_hash:32 hash:32 bytes…
//! h                                head: seq:u64 hash:32
//! i event_id:16                    'D' seq:u64 hash:32 submission:16
//!                                    | 'S' code:i32 content:32 message…
//!                                    (code: a RefusalCode's stored number, 3 / 9 / 10)
//!                                    (layout 2 wrote 'C' seq hash | 'R' code message; still read)
//! j id[0..6] group:u8              layout 2 committed-id group: n × (id[6..16] seq:u64
//!                                    hash:32), sorted by id, n <= 128; read, never extended
//! k id[0..6] group:u8              committed-id group: n × (id[6..16] seq:u64 hash:32
//!                                    submission:16), sorted by id, n <= 92, groups 0..16
//!                                    per prefix
//! c size:u64                       opaque signed checkpoint of the tree of `size` records
//! m key…                           opaque metadata (`append_with_meta` puts its writes in
//!                                    the append's batch, so they are atomic with the records)
//! n level:u8 index:u64             Merkle tile: up to 256 × hash:32, the complete
//!                                    subtrees at tree level 8·level, indices
//!                                    256·index … 256·index+255
//! o len:u16 org_id… first:u64      posting group: n × (seq - first):u32, ascending
//! t len:u16 event_type… first:u64  posting group, as for `o`
//! v                                layout version (3; a version 1 store, without
//!                                    Merkle tiles, is upgraded at open; a version 2
//!                                    store only gains `k` groups and the new `i` shapes)
//! w                                verified marker: seq:u64 hash:32
//! ```
//!
//! # Merkle tree and verification on open
//!
//! The RFC 9162 tree over the stored bytes is kept in tiles (see
//! [`crate::tiles`]): an append adds its leaf hashes to the level-0 tile and
//! carries full tiles' roots upward, in the same batch as the records, so
//! any root or proof is read, never rebuilt. The head (`h`) is written in
//! every append's batch, apart from the records; the verified marker (`w`)
//! moves with each stored checkpoint. [`SledLog::open`] checks that the last
//! record agrees with the head, that no checkpoint or marker lies beyond it,
//! and recomputes the chain and the Merkle leaves from the marker to the
//! head, so its cost is bounded by the unverified tail; [`Log::verify_all`]
//! checks everything.
//!
//! Why chunks and posting groups instead of one key per record and index
//! entry: sled 0.34 costs roughly 15–25 µs per inserted key whatever its
//! size, so keys per event bound throughput. An append stores its records
//! as chunks of consecutive records (~6 KiB each, never spanning appends)
//! and one posting group per org and per type it touches. Committed event
//! ids go into groups keyed by the id's first 6 bytes, which for the
//! recommended UUIDv7 is the millisecond it was minted, so a batch touches
//! a handful of groups. A prefix holds at most 16 groups of 128; further ids
//! of that prefix (e.g. random or adversarial ids) fall back to one `i` key
//! each, as do all rejections. A lookup is therefore one `i` get plus a scan
//! of at most 16 small groups, however ids are chosen.
//!
//! The length prefix on labels keeps one org's (or type's) key range from
//! containing another's, so a filtered read touches exactly that label.
//!
//! # Visibility
//!
//! sled makes a batch visible to readers as soon as it is applied, before the
//! flush. Readers here only see what is durable: reads are capped at the
//! head published after the flush, committed decisions above it are hidden,
//! and rejections of an in-flight append are hidden until it is flushed.
//! Nobody can therefore act on a record that a crash could still take away.

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use std::collections::hash_map::Entry;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::batch;
use crate::layout::{
    self, ChunkView, EntrySource, IdEntry, IdFormat, IdGroupView, PostingsView, RecordView,
    ID_PREFIX_LEN,
};
use crate::lookups::{Groups, Lookups};
use crate::merkle;
use crate::tiles::{self, TileFrontier};
use crate::{
    chain_hash, Decision, Error, Filter, Hash, Head, Log, NewRecord, Rejection, StoredRecord,
    ZERO_HASH,
};
use crate::{check_checkpoint_size, write_without_records};

/// Name of the sled tree holding the whole ledger.
pub const TREE_NAME: &str = "wfl.ledger";

/// sled's page cache for a store opened with [`SledLog::open`]. sled's own default is 1 GiB;
/// 128 MiB took 1 GB off the node's peak RSS at 5M events with no loss in ingest or catch-up
/// (BENCHMARKS.md "The ledger's page cache").
pub const DEFAULT_CACHE_BYTES: u64 = 128 << 20;

/// How long [`SledLog::open`] waits for sled's directory lock.
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// How many posting groups a cursor steps over before it re-seeks with a
/// fresh range: dense intersections stay sequential, sparse ones jump.
const RESEEK_AFTER_GROUPS: usize = 8;

/// The sled-backed, durable [`Log`].
pub struct SledLog {
    db: sled::Db,
    tree: sled::Tree,
    /// Serialises appends and holds the head they build on, so an append
    /// never re-reads it from sled.
    writer: Mutex<Writer>,
    /// What readers may see; updated only after a flush.
    visible: Mutex<Visible>,
    /// What [`Log::decision`] read, for the next append to take instead of reading sled again
    /// ([`crate::lookups`]). Taken after `writer` when both are held.
    lookups: Mutex<Lookups>,
    /// The store holds id groups of layout 2 (`j`, read and never written since): only then
    /// does a lookup of an absent id scan them too. Fixed at open.
    plain_ids: bool,
}

struct Writer {
    head: Head,
    /// The right edge of the Merkle tree at `head`.
    tiles: TileFrontier,
    /// Set when an apply or flush failed: sled's in-memory state may then be
    /// ahead of what is durable, so appending more would build on sand.
    failed: Option<String>,
}

struct Visible {
    head: Head,
    /// Event ids rejected by an append that has not been flushed yet.
    pending_rejections: HashSet<Uuid>,
}

impl fmt::Debug for SledLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let head = self.visible().map(|v| v.head.sequence).ok();
        f.debug_struct("SledLog")
            .field("head", &head)
            .finish_non_exhaustive()
    }
}

impl SledLog {
    /// The writes of a checkpoint of `size` records (checked by the caller to be at most the
    /// durable head): its signed bytes, and the verified marker moved to it (forward only).
    fn checkpoint_ops(&self, ops: &mut sled::Batch, size: u64, bytes: &[u8]) -> Result<(), Error> {
        let record = ChunkReader::new(&self.tree).get(size)?;
        let marker = Head {
            sequence: size,
            hash: record.hash,
        };
        let current = match self.tree.get([layout::VERIFIED])? {
            Some(value) => layout::decode_head(&value)?.sequence,
            None => 0,
        };
        ops.insert(&layout::checkpoint_key(size)[..], bytes);
        if size > current {
            // The marker only moves forward.
            ops.insert(&[layout::VERIFIED][..], &layout::encode_head(&marker)[..]);
        }
        Ok(())
    }

    /// Open (or create) the store in directory `path` and resume its head.
    ///
    /// If the directory is locked, `open` waits up to two seconds for the lock
    /// before failing: sled releases it from background I/O threads shortly
    /// *after* the previous handle is dropped, so an immediate in-process
    /// reopen would otherwise fail spuriously.
    ///
    /// # Errors
    /// [`Error::Io`] if sled cannot open the directory (including when
    /// another process holds it); [`Error::Corrupt`] if the stored head or
    /// layout version does not agree with the stored records.
    pub fn open(path: &Path) -> Result<SledLog, Error> {
        Self::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// [`SledLog::open`] with sled's page cache bounded to `cache_bytes` (the part of the
    /// process's memory the store may hold; pages beyond it are read again from the file
    /// system's cache when needed).
    ///
    /// # Errors
    /// As for [`SledLog::open`].
    pub fn open_with_cache(path: &Path, cache_bytes: u64) -> Result<SledLog, Error> {
        // No background flusher: every append flushes itself (the durability contract), and a
        // flusher thread writing (segment cleaning) while the writer is paused on a full disk
        // would meet ENOSPC there, after which sled refuses every write: the ledger could never
        // resume in place (seen under load in tests/storage_faults.rs).
        let db = open_sled(
            &sled::Config::new()
                .path(path)
                .cache_capacity(cache_bytes)
                .flush_every_ms(None),
        )?;
        SledLog::open_db(db)
    }

    /// Use an already opened sled database (its [`TREE_NAME`] tree).
    ///
    /// # Errors
    /// As for [`SledLog::open`].
    pub fn open_db(db: sled::Db) -> Result<SledLog, Error> {
        let tree = db.open_tree(TREE_NAME)?;
        let upgrade = check_version(&tree)?;
        let head = recover_head(&tree)?;
        if upgrade {
            upgrade_from_v1(&db, &tree, head)?;
        }
        if let Some(entry) = tree.scan_prefix([layout::CHECKPOINT]).next_back() {
            let (key, _) = entry?;
            let size = layout::checkpoint_key_size(&key)
                .ok_or_else(|| Error::corrupt(0, "malformed checkpoint key"))?;
            if size > head.sequence {
                return Err(Error::corrupt(
                    head.sequence.saturating_add(1),
                    format!(
                        "a checkpoint covers {size} records but the log ends at {}: acknowledged records are missing",
                        head.sequence
                    ),
                ));
            }
        }
        let tiles =
            TileFrontier::load(head.sequence, |level, index| read_tile(&tree, level, index))?;
        let marker = match tree.get([layout::VERIFIED])? {
            Some(value) => layout::decode_head(&value)?,
            None => Head::EMPTY,
        };
        verify_tail(&tree, marker, head)?;
        let plain_ids = tree
            .scan_prefix([IdFormat::Plain.tag()])
            .next()
            .transpose()?
            .is_some();
        Ok(SledLog {
            db,
            tree,
            plain_ids,
            writer: Mutex::new(Writer {
                head,
                tiles,
                failed: None,
            }),
            visible: Mutex::new(Visible {
                head,
                pending_rejections: HashSet::new(),
            }),
            lookups: Mutex::new(Lookups::default()),
        })
    }

    fn visible(&self) -> Result<MutexGuard<'_, Visible>, Error> {
        self.visible
            .lock()
            .map_err(|_| Error::Io("visibility lock poisoned".to_owned()))
    }

    /// The kept look-ups. Only a cache: after a panic while it was held, whatever it holds is
    /// forgotten and it is used again (an error here could stop an append between applying
    /// its batch and marking the writer failed).
    fn lookups(&self) -> MutexGuard<'_, Lookups> {
        self.lookups.lock().unwrap_or_else(|poisoned| {
            let mut kept = poisoned.into_inner();
            kept.clear();
            self.lookups.clear_poison();
            kept
        })
    }

    fn visible_head(&self) -> Result<Head, Error> {
        Ok(self.visible()?.head)
    }

    fn read_all(&self, from: u64, to: u64, limit: usize) -> Result<Vec<StoredRecord>, Error> {
        let span = usize::try_from(to.saturating_sub(from).saturating_add(1)).unwrap_or(usize::MAX);
        // Capped so a huge `limit` on a huge range does not pre-allocate gigabytes.
        let mut out = Vec::with_capacity(limit.min(span).min(4096));
        // Start at the chunk holding `from`, which may begin before it.
        let start = match self
            .tree
            .range(layout::record_key(1)..=layout::record_key(from))
            .next_back()
        {
            Some(entry) => chunk_first(&entry?.0)?,
            None => from,
        };
        let mut expected = from;
        for entry in self
            .tree
            .range(layout::record_key(start)..=layout::record_key(to))
        {
            let (key, value) = entry?;
            let chunk = ChunkView::decode(chunk_first(&key)?, &value)?;
            if chunk.last() < expected {
                continue;
            }
            if chunk.first() > expected {
                return Err(Error::corrupt(expected, "record missing"));
            }
            for sequence in expected..=chunk.last().min(to) {
                out.push(to_stored(chunk.record(sequence)?));
                if out.len() == limit {
                    return Ok(out);
                }
            }
            match chunk.last().checked_add(1) {
                Some(next) => expected = next,
                None => return Ok(out),
            }
        }
        if expected <= to {
            // Everything up to the durable head must exist.
            return Err(Error::corrupt(expected, "record missing"));
        }
        Ok(out)
    }

    fn read_indexed(
        &self,
        from: u64,
        to: u64,
        filter: &Filter,
        limit: usize,
    ) -> Result<Vec<StoredRecord>, Error> {
        let mut dimensions = Vec::with_capacity(2);
        for (tag, labels) in [
            (layout::ORG, &filter.org_ids),
            (layout::TYPE, &filter.event_types),
        ] {
            if labels.is_empty() {
                continue;
            }
            let mut unique: Vec<&str> = labels.iter().map(String::as_str).collect();
            unique.sort_unstable();
            unique.dedup();
            let mut cursors = Vec::with_capacity(unique.len());
            for label in unique {
                // Longer than any storable label: it cannot match anything.
                if let Ok(prefix) = layout::label_prefix(tag, label) {
                    cursors.push(PostingCursor::open(&self.tree, prefix, from, to)?);
                }
            }
            dimensions.push(cursors);
        }

        let mut records = ChunkReader::new(&self.tree);
        let mut out = Vec::new();
        let mut target = from;
        'outer: while out.len() < limit {
            // Leapfrog: raise the candidate until every dimension has an
            // entry at exactly that sequence.
            let mut candidate = target;
            loop {
                let mut agreed = true;
                for cursors in &mut dimensions {
                    let mut lowest: Option<u64> = None;
                    for cursor in cursors.iter_mut() {
                        cursor.seek(candidate)?;
                        if let Some(seq) = cursor.next {
                            lowest = Some(lowest.map_or(seq, |l| l.min(seq)));
                        }
                    }
                    match lowest {
                        None => break 'outer,
                        Some(seq) if seq > candidate => {
                            candidate = seq;
                            agreed = false;
                        }
                        Some(_) => {}
                    }
                }
                if agreed {
                    break;
                }
            }
            out.push(records.get(candidate)?);
            match candidate.checked_add(1) {
                Some(next) => target = next,
                None => break,
            }
        }
        Ok(out)
    }

    fn fail(writer: &mut Writer, err: sled::Error) -> Error {
        let err = Error::from(err);
        writer.failed = Some(err.to_string());
        err
    }
}

/// sled reports a held directory lock only as an `Other` I/O error with
/// this message.
/// Open a sled database, waiting up to two seconds for its directory lock.
///
/// sled releases the lock from background I/O threads shortly *after* the
/// previous handle is dropped, so an immediate in-process reopen (a restart
/// step, a test) would otherwise fail spuriously. A lock held longer (another
/// process) still fails, after the wait.
///
/// # Errors
/// sled's own error, including the lock error after the wait.
pub fn open_sled(config: &sled::Config) -> sled::Result<sled::Db> {
    let deadline = Instant::now() + LOCK_WAIT;
    let mut pause = Duration::from_millis(1);
    loop {
        match config.open() {
            Err(sled::Error::Io(err)) if is_lock_contention(&err) && Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

fn is_lock_contention(err: &std::io::Error) -> bool {
    err.to_string().contains("could not acquire lock")
}

fn chunk_first(key: &[u8]) -> Result<u64, Error> {
    layout::record_key_sequence(key).ok_or_else(|| Error::corrupt(0, "malformed chunk key"))
}

fn to_stored(view: RecordView<'_>) -> StoredRecord {
    StoredRecord {
        sequence: view.sequence,
        event_id: view.event_id,
        prev_hash: view.prev_hash,
        hash: view.hash,
        bytes: view.bytes.to_vec(),
    }
}

/// Point reads of records, keeping the last chunk so that reading several
/// records of one chunk costs one sled lookup.
struct ChunkReader<'t> {
    tree: &'t sled::Tree,
    current: Option<(u64, sled::IVec)>,
}

impl<'t> ChunkReader<'t> {
    fn new(tree: &'t sled::Tree) -> Self {
        ChunkReader {
            tree,
            current: None,
        }
    }

    /// The record at `sequence`, which the caller knows is at or below the head.
    fn get(&mut self, sequence: u64) -> Result<StoredRecord, Error> {
        if let Some((first, value)) = &self.current {
            let chunk = ChunkView::decode(*first, value)?;
            if chunk.contains(sequence) {
                return Ok(to_stored(chunk.record(sequence)?));
            }
        }
        let Some(entry) = self
            .tree
            .range(layout::record_key(1)..=layout::record_key(sequence))
            .next_back()
        else {
            return Err(Error::corrupt(sequence, "record missing"));
        };
        let (key, value) = entry?;
        let first = chunk_first(&key)?;
        let record = to_stored(ChunkView::decode(first, &value)?.record(sequence)?);
        self.current = Some((first, value));
        Ok(record)
    }
}

/// Walks one label's posting groups in sequence order.
struct PostingCursor<'t> {
    tree: &'t sled::Tree,
    prefix: Vec<u8>,
    upper: u64,
    /// Groups after the current one.
    groups: sled::Iter,
    /// The current group's first sequence and value.
    group: Option<(u64, sled::IVec)>,
    position: usize,
    /// The current sequence; `None` once exhausted.
    next: Option<u64>,
}

impl<'t> PostingCursor<'t> {
    fn open(tree: &'t sled::Tree, prefix: Vec<u8>, from: u64, upper: u64) -> Result<Self, Error> {
        // Placeholder until `reposition` opens the real range (sled::Iter
        // has no empty constructor).
        let groups = tree.range(layout::posting_key(&prefix, 0)..=layout::posting_key(&prefix, 0));
        let mut cursor = PostingCursor {
            tree,
            prefix,
            upper,
            groups,
            group: None,
            position: 0,
            next: None,
        };
        cursor.reposition(from)?;
        Ok(cursor)
    }

    /// Restart at the group that may hold `target` (the last one starting at
    /// or before it), then move to the first sequence >= `target`.
    fn reposition(&mut self, target: u64) -> Result<(), Error> {
        let start = match self
            .tree
            .range(layout::posting_key(&self.prefix, 0)..=layout::posting_key(&self.prefix, target))
            .next_back()
        {
            Some(entry) => self.group_first(&entry?.0)?,
            None => target,
        };
        self.groups = self.tree.range(
            layout::posting_key(&self.prefix, start)
                ..=layout::posting_key(&self.prefix, self.upper),
        );
        self.next_group()?;
        self.seek_within(target)
    }

    fn group_first(&self, key: &[u8]) -> Result<u64, Error> {
        layout::posting_key_sequence(key, self.prefix.len())
            .ok_or_else(|| Error::corrupt(0, "malformed posting key"))
    }

    /// Move to the start of the next group.
    fn next_group(&mut self) -> Result<(), Error> {
        self.load_next_group()?;
        self.settle()
    }

    fn load_next_group(&mut self) -> Result<(), Error> {
        self.group = match self.groups.next() {
            None => None,
            Some(entry) => {
                let (key, value) = entry?;
                let first = self.group_first(&key)?;
                PostingsView::decode(first, &value)?;
                Some((first, value))
            }
        };
        self.position = 0;
        Ok(())
    }

    /// Set `next` from the current group and position, moving past the end
    /// of a group into the following one.
    fn settle(&mut self) -> Result<(), Error> {
        loop {
            let Some((first, value)) = &self.group else {
                self.next = None;
                return Ok(());
            };
            if let Some(seq) = PostingsView::decode(*first, value)?.get(self.position) {
                self.next = (seq <= self.upper).then_some(seq);
                return Ok(());
            }
            self.load_next_group()?;
        }
    }

    /// Within the current group, move to the first sequence >= `target`
    /// (leaving the group if none is).
    fn seek_within(&mut self, target: u64) -> Result<(), Error> {
        if let Some((first, value)) = &self.group {
            let postings = PostingsView::decode(*first, value)?;
            self.position = self.position.max(postings.lower_bound(target));
        }
        self.settle()
    }

    /// Advance to the first sequence >= `target`.
    fn seek(&mut self, target: u64) -> Result<(), Error> {
        let mut skipped = 0;
        loop {
            match self.next {
                None => return Ok(()),
                Some(seq) if seq >= target => return Ok(()),
                Some(_) => {}
            }
            let group_last = match &self.group {
                Some((first, value)) => {
                    let postings = PostingsView::decode(*first, value)?;
                    postings.get(postings.len().saturating_sub(1))
                }
                None => None,
            };
            if group_last.is_some_and(|last| last >= target) {
                return self.seek_within(target);
            }
            if skipped == RESEEK_AFTER_GROUPS {
                return self.reposition(target);
            }
            self.next_group()?;
            skipped += 1;
        }
    }
}

/// Check the layout version; `true` when the store is version 1 (no Merkle
/// tiles yet) and must be upgraded.
fn check_version(tree: &sled::Tree) -> Result<bool, Error> {
    match tree.get([layout::VERSION])? {
        // Not flushed here: the first append's flush persists it, and a
        // store that never got an append may as well be rewritten.
        None => {
            tree.insert([layout::VERSION], &[layout::LAYOUT_VERSION][..])?;
            Ok(false)
        }
        Some(v) if v.as_ref() == [layout::LAYOUT_VERSION] => Ok(false),
        Some(v) if v.as_ref() == [1] => Ok(true),
        // Version 3 only adds key shapes (`k` groups, `D` and `S` decisions) and keeps reading
        // version 2's; the bump keeps an older binary, which would not see `k` groups, out.
        Some(v) if v.as_ref() == [2] => {
            tree.insert([layout::VERSION], &[layout::LAYOUT_VERSION][..])?;
            tree.flush()?;
            Ok(false)
        }
        Some(v) => Err(Error::corrupt(
            0,
            format!("unsupported layout version {:?}", v.as_ref()),
        )),
    }
}

/// Version 1 stores have no Merkle tiles: verify the whole chain once while
/// building them, write them, then mark the layout as the current version
/// (durably, in that order, so an interrupted upgrade simply runs again).
fn upgrade_from_v1(db: &sled::Db, tree: &sled::Tree, head: Head) -> Result<(), Error> {
    let mut frontier = TileFrontier::default();
    let mut touched = Vec::new();
    let mut full = Vec::new();
    let mut ops = sled::Batch::default();
    let mut pending = 0usize;
    let mut failure: Option<Error> = None;
    let last = scan_chain(
        tree,
        Head::EMPTY,
        head.sequence,
        |_, bytes| {
            frontier.push(merkle::leaf_hash(bytes), &mut full, &mut touched);
            for write in full.drain(..) {
                let (key, value) = tiles::encode(&write);
                ops.insert(&key[..], value);
                pending += 1;
            }
            if pending >= 256 {
                if let Err(e) = tree.apply_batch(std::mem::take(&mut ops)) {
                    failure = Some(e.into());
                }
                pending = 0;
            }
            Ok(())
        },
        &mut |_| {},
    )?;
    if let Some(e) = failure {
        return Err(e);
    }
    if last != head.hash {
        return Err(Error::corrupt(
            head.sequence,
            "head hash does not match the recomputed chain",
        ));
    }
    let all = vec![true; touched.len()];
    for write in frontier.partial_writes(&all) {
        let (key, value) = tiles::encode(&write);
        ops.insert(&key[..], value);
    }
    tree.apply_batch(ops)?;
    db.flush()?;
    tree.insert([layout::VERSION], &[layout::LAYOUT_VERSION][..])?;
    db.flush()?;
    Ok(())
}

/// Read the stored head and check it against the last stored record, so a
/// torn or tampered store is caught at open rather than at the next append.
fn recover_head(tree: &sled::Tree) -> Result<Head, Error> {
    let stored = match tree.get([layout::HEAD])? {
        Some(value) => layout::decode_head(&value)?,
        None => Head::EMPTY,
    };
    let last = match tree.scan_prefix([layout::RECORD]).next_back() {
        None => None,
        Some(entry) => {
            let (key, value) = entry?;
            let chunk = ChunkView::decode(chunk_first(&key)?, &value)?;
            let record = chunk.record(chunk.last())?;
            Some((record.sequence, record.hash))
        }
    };
    match last {
        None if stored == Head::EMPTY => Ok(stored),
        Some((sequence, hash)) if sequence == stored.sequence && hash == stored.hash => Ok(stored),
        None => Err(Error::corrupt(
            1,
            "head names a record but the log is empty",
        )),
        Some((sequence, _)) => Err(Error::corrupt(
            if sequence < stored.sequence {
                // The first acknowledged record that is gone.
                sequence + 1
            } else {
                sequence.min(stored.sequence.saturating_add(1))
            },
            format!(
                "head (sequence {}) disagrees with the last stored record (sequence {sequence})",
                stored.sequence
            ),
        )),
    }
}

/// The stored hashes of one Merkle tile, if present.
fn read_tile(tree: &sled::Tree, level: u8, index: u64) -> Result<Option<Vec<Hash>>, Error> {
    match tree.get(layout::tile_key(level, index))? {
        None => Ok(None),
        Some(value) => layout::decode_tile(tiles::first_sequence(level, index), &value).map(Some),
    }
}

/// Walk the records `start.sequence + 1 ..= end` in order, checking that each
/// is present, links to the previous one and hashes to its stored hash;
/// `on_record` sees every verified record's sequence and bytes, `progress`
/// the last verified sequence after each chunk. Returns the hash at `end`.
fn scan_chain(
    tree: &sled::Tree,
    start: Head,
    end: u64,
    mut on_record: impl FnMut(u64, &[u8]) -> Result<(), Error>,
    progress: &mut dyn FnMut(u64),
) -> Result<Hash, Error> {
    let mut expected = start.sequence.saturating_add(1);
    let mut prev = start.hash;
    if expected > end {
        return Ok(prev);
    }
    // The chunk holding `expected` may begin before it.
    let first = match tree
        .range(layout::record_key(1)..=layout::record_key(expected))
        .next_back()
    {
        Some(entry) => chunk_first(&entry?.0)?,
        None => expected,
    };
    for entry in tree.range(layout::record_key(first)..=layout::record_key(end)) {
        let (key, value) = entry?;
        let chunk = ChunkView::decode(chunk_first(&key)?, &value)?;
        if chunk.last() < expected {
            continue;
        }
        if chunk.first() > expected {
            return Err(Error::corrupt(expected, "record missing"));
        }
        if chunk.last() > end {
            return Err(Error::corrupt(
                end.saturating_add(1),
                "a chunk runs past the head",
            ));
        }
        for sequence in expected..=chunk.last() {
            let record = chunk.record(sequence)?;
            if record.prev_hash != prev {
                return Err(Error::corrupt(
                    sequence,
                    "stored prev_hash does not match the previous record's hash",
                ));
            }
            let hash = chain_hash(&prev, record.bytes);
            if record.hash != hash {
                return Err(Error::corrupt(
                    sequence,
                    "stored hash does not match SHA-256(prev_hash || bytes)",
                ));
            }
            on_record(sequence, record.bytes)?;
            prev = hash;
        }
        expected = chunk.last().saturating_add(1);
        progress(chunk.last());
    }
    if expected <= end {
        return Err(Error::corrupt(expected, "record missing"));
    }
    Ok(prev)
}

/// Open-time check of the unverified tail: the marker's record still has the
/// marker's hash, and from there to the head the chain recomputes and every
/// Merkle leaf matches its record.
fn verify_tail(tree: &sled::Tree, marker: Head, head: Head) -> Result<(), Error> {
    if marker.sequence > head.sequence {
        return Err(Error::corrupt(
            head.sequence.saturating_add(1),
            format!(
                "records were verified up to {} but the log ends at {}: acknowledged records are missing",
                marker.sequence, head.sequence
            ),
        ));
    }
    if marker.sequence > 0 {
        let record = ChunkReader::new(tree).get(marker.sequence)?;
        if record.hash != marker.hash {
            return Err(Error::corrupt(
                marker.sequence,
                "record differs from the one verified at the last checkpoint",
            ));
        }
    }
    let mut leaves = LeafChecker::new(tree);
    let last = scan_chain(
        tree,
        marker,
        head.sequence,
        |sequence, bytes| leaves.check(sequence, bytes),
        &mut |_| {},
    )?;
    if last != head.hash {
        return Err(Error::corrupt(
            head.sequence,
            "head hash does not match the recomputed chain",
        ));
    }
    Ok(())
}

/// Compares records' leaf hashes with the stored level-0 Merkle tiles.
struct LeafChecker<'t> {
    tree: &'t sled::Tree,
    tile: Option<(u64, Vec<Hash>)>,
}

impl<'t> LeafChecker<'t> {
    fn new(tree: &'t sled::Tree) -> Self {
        LeafChecker { tree, tile: None }
    }

    fn check(&mut self, sequence: u64, bytes: &[u8]) -> Result<(), Error> {
        let leaf = sequence - 1;
        let index = leaf / layout::TILE_WIDTH as u64;
        if self.tile.as_ref().is_none_or(|(i, _)| *i != index) {
            let hashes = read_tile(self.tree, 0, index)?
                .ok_or_else(|| Error::corrupt(sequence, "Merkle tile missing"))?;
            self.tile = Some((index, hashes));
        }
        let offset = usize::try_from(leaf % layout::TILE_WIDTH as u64).unwrap_or(usize::MAX);
        let stored = self.tile.as_ref().and_then(|(_, h)| h.get(offset));
        if stored != Some(&merkle::leaf_hash(bytes)) {
            return Err(Error::corrupt(
                sequence,
                "Merkle leaf does not match SHA-256(0x00 || bytes)",
            ));
        }
        Ok(())
    }
}

/// Compare a recomputed tile with the stored one (which may have grown
/// since, if appends run concurrently); name the first leaf that differs.
fn compare_tile(tree: &sled::Tree, write: &tiles::TileWrite) -> Result<(), Error> {
    let (level, index, computed) = write;
    let stored = read_tile(tree, *level, *index)?.unwrap_or_default();
    let first_entry = index.saturating_mul(layout::TILE_WIDTH as u64);
    for (j, hash) in computed.iter().enumerate() {
        if stored.get(j) != Some(hash) {
            let entry = first_entry.saturating_add(j as u64);
            let leaf = entry
                .checked_shl(layout::TILE_HEIGHT * u32::from(*level))
                .unwrap_or(u64::MAX);
            return Err(Error::corrupt(
                leaf.saturating_add(1),
                format!("stored Merkle node ({level}, {entry}) does not match the records"),
            ));
        }
    }
    Ok(())
}

/// The committed-id groups of one id prefix in one format, in group order, validated.
fn load_id_groups(
    tree: &sled::Tree,
    format: IdFormat,
    prefix: &[u8; ID_PREFIX_LEN],
) -> Result<Vec<(u8, sled::IVec)>, Error> {
    let range =
        layout::id_group_key(format, prefix, 0)..=layout::id_group_key(format, prefix, u8::MAX);
    let mut groups = Vec::new();
    for entry in tree.range(range) {
        let (key, value) = entry?;
        let number = layout::id_group_number(format, &key)
            .ok_or_else(|| Error::corrupt(0, "malformed id group key"))?;
        IdGroupView::decode(&value, format)?;
        groups.push((number, value));
    }
    Ok(groups)
}

/// Look `event_id` up in groups of `format` returned by [`load_id_groups`].
fn find_committed(
    groups: &[(u8, sled::IVec)],
    format: IdFormat,
    event_id: &Uuid,
) -> Option<IdEntry> {
    let rest = layout::id_rest(event_id);
    groups
        .iter()
        .find_map(|(_, value)| IdGroupView::validated(value, format).find(&rest))
}

/// Look `event_id` up in the layout 2 (`j`) groups of its prefix, which are never extended.
fn find_committed_v2(
    tree: &sled::Tree,
    plain_ids: bool,
    event_id: &Uuid,
) -> Result<Option<IdEntry>, Error> {
    if !plain_ids {
        return Ok(None);
    }
    let groups = load_id_groups(tree, IdFormat::Plain, &layout::id_prefix(event_id))?;
    Ok(find_committed(&groups, IdFormat::Plain, event_id))
}

/// Add newly committed ids of one prefix (sorted by `rest`) to its groups
/// (as returned by [`load_id_groups`]): first into the
/// room left in the last existing group, then into new groups, and once the
/// prefix has its maximum number of groups, into one `i` key per id.
/// Existing entries never move, so a concurrent reader finds every durable
/// id whichever version of a group it sees.
fn write_id_groups(
    ops: &mut sled::Batch,
    prefix: &[u8; ID_PREFIX_LEN],
    existing: &[(u8, sled::IVec)],
    pending: &[(IdEntry, Uuid)],
) {
    let mut pending = pending;
    let mut next_group: u8 = 0;
    if let Some((number, value)) = existing.last() {
        let last = IdGroupView::validated(value, IdFormat::Submitted);
        let room = IdFormat::Submitted.max().saturating_sub(last.len());
        if room > 0 && !pending.is_empty() {
            let (taken, left) = pending.split_at(room.min(pending.len()));
            let mut merged: Vec<IdEntry> = (0..last.len()).filter_map(|i| last.entry(i)).collect();
            merged.extend(taken.iter().map(|(entry, _)| *entry));
            merged.sort_unstable_by_key(|entry| entry.rest);
            ops.insert(
                &layout::id_group_key(IdFormat::Submitted, prefix, *number)[..],
                layout::encode_id_group(IdFormat::Submitted, &merged),
            );
            pending = left;
        }
        next_group = number.saturating_add(1);
    }
    while !pending.is_empty() && next_group < layout::ID_GROUPS_PER_PREFIX {
        let (taken, left) = pending.split_at(IdFormat::Submitted.max().min(pending.len()));
        let entries: Vec<IdEntry> = taken.iter().map(|(entry, _)| *entry).collect();
        ops.insert(
            &layout::id_group_key(IdFormat::Submitted, prefix, next_group)[..],
            layout::encode_id_group(IdFormat::Submitted, &entries),
        );
        pending = left;
        next_group += 1;
    }
    for (entry, event_id) in pending {
        ops.insert(
            &layout::decision_key(event_id)[..],
            layout::encode_committed(entry.sequence, &entry.hash, &entry.submission),
        );
    }
}

/// Split a label's ascending sequences into posting groups that respect
/// the group size limit and whose offsets fit in a u32.
fn posting_groups(sequences: &[u64]) -> Vec<&[u64]> {
    let mut groups = Vec::new();
    let mut start = 0;
    while let Some(&first) = sequences.get(start) {
        let mut end = start + 1;
        while end - start < layout::POSTING_GROUP_MAX
            && sequences
                .get(end)
                .is_some_and(|&s| s.saturating_sub(first) <= u64::from(u32::MAX))
        {
            end += 1;
        }
        groups.push(&sequences[start..end]);
        start = end;
    }
    groups
}

/// Adds metadata writes and deletions to a batch.
fn push_meta(ops: &mut sled::Batch, writes: &[(String, Option<Vec<u8>>)]) {
    for (key, value) in writes {
        match value {
            Some(value) => ops.insert(layout::meta_key(key), &value[..]),
            None => ops.remove(layout::meta_key(key)),
        }
    }
}

impl Log for SledLog {
    fn head(&self) -> Result<Head, Error> {
        self.visible_head()
    }

    fn append_with_checkpoint(
        &self,
        records: &[NewRecord],
        rejections: &[Rejection],
        meta: &[(String, Option<Vec<u8>>)],
        checkpoint: Option<(u64, &[u8])>,
    ) -> Result<Vec<(u64, Hash)>, Error> {
        if records.is_empty() && rejections.is_empty() {
            return write_without_records(self, meta, checkpoint);
        }
        let mut writer = self
            .writer
            .lock()
            .map_err(|_| Error::Io("append lock poisoned".to_owned()))?;
        if let Some(reason) = &writer.failed {
            return Err(Error::Io(format!(
                "an earlier append failed ({reason}); reopen the store"
            )));
        }
        let old = writer.head;
        let mut ops = sled::Batch::default();
        if let Some((size, bytes)) = checkpoint {
            check_checkpoint_size(size, old.sequence)?;
            self.checkpoint_ops(&mut ops, size, bytes)?;
        }
        let ids = || {
            records
                .iter()
                .map(|r| &r.event_id)
                .chain(rejections.iter().map(|r| &r.event_id))
        };
        // What `decision` read for these ids since the last append holds until this one is
        // applied: an id it found undecided is not read again, nor a prefix's groups.
        let taken = self.lookups().take(ids());
        // Id groups are loaded once per prefix: for the duplicate check now
        // and for extending the last group below.
        let mut id_groups: HashMap<[u8; ID_PREFIX_LEN], Groups> = taken.groups;
        let plan = batch::plan(&old, records, rejections, |id| {
            if taken.undecided.contains(id) {
                return Ok(false);
            }
            if self.tree.contains_key(layout::decision_key(id))? {
                return Ok(true);
            }
            let groups = match id_groups.entry(layout::id_prefix(id)) {
                Entry::Occupied(entry) => entry.into_mut(),
                Entry::Vacant(entry) => {
                    let loaded = load_id_groups(&self.tree, IdFormat::Submitted, entry.key())?;
                    entry.insert(Arc::new(loaded))
                }
            };
            Ok(find_committed(groups, IdFormat::Submitted, id).is_some()
                || find_committed_v2(&self.tree, self.plain_ids, id)?.is_some())
        })?;

        let mut chunk: Vec<EntrySource<'_>> = Vec::new();
        let mut first_in_chunk = 0;
        let mut chunk_bytes = 0;
        let mut orgs: HashMap<&str, Vec<u64>> = HashMap::new();
        let mut types: HashMap<&str, Vec<u64>> = HashMap::new();
        let mut new_ids: HashMap<[u8; ID_PREFIX_LEN], Vec<(IdEntry, Uuid)>> = HashMap::new();
        let mut tiles = writer.tiles.clone();
        let mut tile_writes = Vec::new();
        let mut touched = Vec::new();
        for (index, (record, (sequence, hash))) in records.iter().zip(&plan.links).enumerate() {
            tiles.push(
                merkle::leaf_hash(&record.bytes),
                &mut tile_writes,
                &mut touched,
            );
            let size = layout::ENTRY_HEADER_LEN + record.bytes.len();
            if !chunk.is_empty() && chunk_bytes + size > layout::CHUNK_TARGET_BYTES {
                ops.insert(
                    &layout::record_key(first_in_chunk)[..],
                    layout::encode_chunk(&chunk)?,
                );
                chunk.clear();
                chunk_bytes = 0;
            }
            if chunk.is_empty() {
                first_in_chunk = *sequence;
            }
            chunk.push(EntrySource {
                event_id: &record.event_id,
                prev_hash: plan.prev_of(&old, index),
                hash,
                bytes: &record.bytes,
            });
            chunk_bytes += size;
            new_ids
                .entry(layout::id_prefix(&record.event_id))
                .or_default()
                .push((
                    IdEntry {
                        rest: layout::id_rest(&record.event_id),
                        sequence: *sequence,
                        hash: *hash,
                        submission: record.submission.unwrap_or_default().into_bytes(),
                    },
                    record.event_id,
                ));
            orgs.entry(&record.org_id).or_default().push(*sequence);
            types.entry(&record.event_type).or_default().push(*sequence);
        }
        if !chunk.is_empty() {
            ops.insert(
                &layout::record_key(first_in_chunk)[..],
                layout::encode_chunk(&chunk)?,
            );
        }
        for (tag, labels) in [(layout::ORG, orgs), (layout::TYPE, types)] {
            for (label, sequences) in labels {
                let prefix = layout::label_prefix(tag, label)?;
                for group in posting_groups(&sequences) {
                    if let Some(&first) = group.first() {
                        ops.insert(
                            layout::posting_key(&prefix, first),
                            layout::encode_postings(first, group),
                        );
                    }
                }
            }
        }
        for (prefix, mut pending) in new_ids {
            pending.sort_unstable_by_key(|(entry, _)| entry.rest);
            let existing = match id_groups.remove(&prefix) {
                Some(groups) => groups,
                None => Arc::new(load_id_groups(&self.tree, IdFormat::Submitted, &prefix)?),
            };
            write_id_groups(&mut ops, &prefix, &existing, &pending);
        }
        for rejection in rejections {
            ops.insert(
                &layout::decision_key(&rejection.event_id)[..],
                layout::encode_rejected(
                    rejection.code,
                    &rejection.content.unwrap_or_default(),
                    &rejection.message,
                ),
            );
        }
        if !records.is_empty() {
            tile_writes.extend(tiles.partial_writes(&touched));
            for write in &tile_writes {
                let (key, value) = tiles::encode(write);
                ops.insert(&key[..], value);
            }
            ops.insert(&[layout::HEAD][..], &layout::encode_head(&plan.head)[..]);
        }
        push_meta(&mut ops, meta);

        if !rejections.is_empty() {
            // Registered before the batch is applied: a reader that sees the
            // rejection in sled is then guaranteed to also see it pending
            // until the flush below completes.
            let mut visible = self.visible()?;
            visible
                .pending_rejections
                .extend(rejections.iter().map(|r| r.event_id));
        }
        let applied = self.tree.apply_batch(ops);
        // After the batch is applied (sled's readers see it) and before the next append: what a
        // look-up kept about these ids or their prefixes may be stale now.
        match &applied {
            Ok(()) => self.lookups().decided(ids()),
            Err(_) => self.lookups().clear(),
        }
        if let Err(err) = applied {
            return Err(SledLog::fail(&mut writer, err));
        }
        if let Err(err) = self.db.flush() {
            return Err(SledLog::fail(&mut writer, err));
        }

        writer.head = plan.head;
        writer.tiles = tiles;
        let mut visible = self.visible()?;
        visible.head = plan.head;
        for rejection in rejections {
            visible.pending_rejections.remove(&rejection.event_id);
        }
        Ok(plan.links)
    }

    fn decision(&self, event_id: &Uuid) -> Result<Option<Decision>, Error> {
        // Read sled first, then the visibility state: see `append` for why
        // that order makes the pending check sound.
        let prefix = layout::id_prefix(event_id);
        // Registered before sled is read (see `crate::lookups`).
        let started = self.lookups().start(event_id, &prefix);
        let decision = match self.tree.get(layout::decision_key(event_id))? {
            Some(value) => {
                self.lookups()
                    .finish(&started, event_id, &prefix, None, false);
                layout::decode_decision(event_id, &value)?
            }
            None => {
                let (groups, read) = match &started.groups {
                    Some(groups) => (Arc::clone(groups), false),
                    None => (
                        Arc::new(load_id_groups(&self.tree, IdFormat::Submitted, &prefix)?),
                        true,
                    ),
                };
                let found = match find_committed(&groups, IdFormat::Submitted, event_id) {
                    Some(entry) => Some(entry),
                    None => find_committed_v2(&self.tree, self.plain_ids, event_id)?,
                };
                self.lookups().finish(
                    &started,
                    event_id,
                    &prefix,
                    read.then_some(groups),
                    found.is_none(),
                );
                match found {
                    Some(entry) => Decision::Committed {
                        sequence: entry.sequence,
                        hash: entry.hash,
                        submission: entry.submission(),
                    },
                    None => return Ok(None),
                }
            }
        };
        let visible = self.visible()?;
        let durable = match &decision {
            Decision::Committed { sequence, .. } => *sequence <= visible.head.sequence,
            Decision::Rejected { .. } => !visible.pending_rejections.contains(event_id),
        };
        Ok(durable.then_some(decision))
    }

    fn get(&self, sequence: u64) -> Result<Option<StoredRecord>, Error> {
        let head = self.visible_head()?;
        if sequence == 0 || sequence > head.sequence {
            return Ok(None);
        }
        ChunkReader::new(&self.tree).get(sequence).map(Some)
    }

    fn read(
        &self,
        from: u64,
        to: Option<u64>,
        filter: &Filter,
        limit: usize,
    ) -> Result<Vec<StoredRecord>, Error> {
        let head = self.visible_head()?;
        let from = from.max(1);
        let to = to.map_or(head.sequence, |to| to.min(head.sequence));
        if from > to || limit == 0 {
            return Ok(Vec::new());
        }
        if filter.is_empty() {
            self.read_all(from, to, limit)
        } else {
            self.read_indexed(from, to, filter, limit)
        }
    }

    fn verify_chain(&self) -> Result<Head, Error> {
        let head = self.visible_head()?;
        let mut expected: u64 = 1;
        let mut prev = ZERO_HASH;
        if head.sequence > 0 {
            let range = layout::record_key(1)..=layout::record_key(head.sequence);
            for entry in self.tree.range(range) {
                let (key, value) = entry?;
                let chunk = ChunkView::decode(chunk_first(&key)?, &value)?;
                if chunk.first() != expected {
                    return Err(Error::corrupt(expected, "record missing"));
                }
                if chunk.last() > head.sequence {
                    return Err(Error::corrupt(
                        head.sequence.saturating_add(1),
                        "a chunk runs past the head",
                    ));
                }
                for sequence in chunk.first()..=chunk.last() {
                    let record = chunk.record(sequence)?;
                    if record.prev_hash != prev {
                        return Err(Error::corrupt(
                            sequence,
                            "stored prev_hash does not match the previous record's hash",
                        ));
                    }
                    let hash = chain_hash(&prev, record.bytes);
                    if record.hash != hash {
                        return Err(Error::corrupt(
                            sequence,
                            "stored hash does not match SHA-256(prev_hash || bytes)",
                        ));
                    }
                    prev = hash;
                }
                expected = chunk.last().saturating_add(1);
            }
        }
        if expected != head.sequence.saturating_add(1) {
            return Err(Error::corrupt(expected, "record missing"));
        }
        if prev != head.hash {
            return Err(Error::corrupt(
                head.sequence,
                "head hash does not match the recomputed chain",
            ));
        }
        Ok(head)
    }

    fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.tree.get(layout::meta_key(key))?.map(|v| v.to_vec()))
    }

    fn meta_put(&self, key: &str, value: &[u8]) -> Result<(), Error> {
        self.tree.insert(layout::meta_key(key), value)?;
        Ok(())
    }

    fn meta_write(&self, writes: &[(String, Option<Vec<u8>>)]) -> Result<(), Error> {
        let mut ops = sled::Batch::default();
        push_meta(&mut ops, writes);
        self.tree.apply_batch(ops)?;
        self.db.flush()?;
        Ok(())
    }

    fn meta_scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, Error> {
        let start = match after {
            // Keys sort after `after` exactly when they sort at or after `after` + NUL.
            Some(after) if after >= prefix => {
                let mut key = layout::meta_key(after);
                key.push(0);
                key
            }
            _ => layout::meta_key(prefix),
        };
        let mut out = Vec::new();
        for entry in self.tree.range(start..).take(limit) {
            let (key, value) = entry?;
            let Some(rest) = key.strip_prefix(&[layout::META][..]) else {
                break;
            };
            if !rest.starts_with(prefix.as_bytes()) {
                break;
            }
            let key = String::from_utf8(rest.to_vec())
                .map_err(|_| Error::corrupt(0, "a metadata key is not UTF-8"))?;
            out.push((key, value.to_vec()));
        }
        Ok(out)
    }

    fn merkle_node(&self, level: u32, index: u64) -> Result<Hash, Error> {
        let head = self.visible_head()?;
        let complete = index
            .checked_add(1)
            .and_then(|i| i.checked_shl(level))
            .is_some_and(|end| level < 64 && end <= head.sequence);
        if !complete {
            return Err(Error::Conflict(format!(
                "Merkle node ({level}, {index}) is not complete at head {}",
                head.sequence
            )));
        }
        let tile_level = u8::try_from(level / layout::TILE_HEIGHT).unwrap_or(u8::MAX);
        let within = level % layout::TILE_HEIGHT;
        let first_entry = index << within;
        let width = layout::TILE_WIDTH as u64;
        let tile_index = first_entry / width;
        let first_sequence = tiles::first_sequence(tile_level, tile_index);
        let value = self
            .tree
            .get(layout::tile_key(tile_level, tile_index))?
            .ok_or_else(|| Error::corrupt(first_sequence, "Merkle tile missing"))?;
        // Only the hashes this node covers are decoded (no copy of the tile).
        let start = usize::try_from(first_entry % width).unwrap_or(usize::MAX);
        let part: Vec<Hash> = start
            .checked_mul(32)
            .zip((1usize << within).checked_mul(32))
            .and_then(|(from, len)| value.get(from..from.checked_add(len)?))
            .ok_or_else(|| Error::corrupt(first_sequence, "Merkle tile too short"))?
            .chunks_exact(32)
            .map(|c| {
                let mut h = [0; 32];
                h.copy_from_slice(c);
                h
            })
            .collect();
        Ok(merkle::fold_power_of_two(&part))
    }

    fn put_checkpoint(&self, size: u64, bytes: &[u8]) -> Result<(), Error> {
        let mut writer = self
            .writer
            .lock()
            .map_err(|_| Error::Io("append lock poisoned".to_owned()))?;
        if let Some(reason) = &writer.failed {
            return Err(Error::Io(format!(
                "an earlier write failed ({reason}); reopen the store"
            )));
        }
        check_checkpoint_size(size, writer.head.sequence)?;
        let mut ops = sled::Batch::default();
        self.checkpoint_ops(&mut ops, size, bytes)?;
        if let Err(err) = self.tree.apply_batch(ops) {
            return Err(SledLog::fail(&mut writer, err));
        }
        if let Err(err) = self.db.flush() {
            return Err(SledLog::fail(&mut writer, err));
        }
        Ok(())
    }

    fn checkpoints(&self, from_size: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, Error> {
        let range = layout::checkpoint_key(from_size)..=layout::checkpoint_key(u64::MAX);
        let mut out = Vec::new();
        for entry in self.tree.range(range).take(limit) {
            let (key, value) = entry?;
            let size = layout::checkpoint_key_size(&key)
                .ok_or_else(|| Error::corrupt(0, "malformed checkpoint key"))?;
            out.push((size, value.to_vec()));
        }
        Ok(out)
    }

    fn latest_checkpoint(&self) -> Result<Option<(u64, Vec<u8>)>, Error> {
        match self.tree.scan_prefix([layout::CHECKPOINT]).next_back() {
            None => Ok(None),
            Some(entry) => {
                let (key, value) = entry?;
                let size = layout::checkpoint_key_size(&key)
                    .ok_or_else(|| Error::corrupt(0, "malformed checkpoint key"))?;
                Ok(Some((size, value.to_vec())))
            }
        }
    }

    fn verify_all(&self, progress: &mut dyn FnMut(u64)) -> Result<Head, Error> {
        let head = self.visible_head()?;
        let mut frontier = TileFrontier::default();
        let mut touched = Vec::new();
        let mut full = Vec::new();
        let last = scan_chain(
            &self.tree,
            Head::EMPTY,
            head.sequence,
            |_, bytes| {
                frontier.push(merkle::leaf_hash(bytes), &mut full, &mut touched);
                for write in full.drain(..) {
                    compare_tile(&self.tree, &write)?;
                }
                Ok(())
            },
            progress,
        )?;
        if last != head.hash {
            return Err(Error::corrupt(
                head.sequence,
                "head hash does not match the recomputed chain",
            ));
        }
        let all = vec![true; touched.len()];
        for write in frontier.partial_writes(&all) {
            compare_tile(&self.tree, &write)?;
        }
        progress(head.sequence);
        Ok(head)
    }
}
