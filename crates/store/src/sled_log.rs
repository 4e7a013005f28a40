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
//! key                                  value
//! e seq:u64                            event_id:16 prev_hash:32 hash:32 bytes…
//! h                                    seq:u64 hash:32   (written in the same batch)
//! i event_id:16                        'C' seq:u64 hash:32 | 'R' code:i32 message…
//! m key…                               opaque metadata
//! o len:u16 org_id… seq:u64            empty
//! t len:u16 event_type… seq:u64        empty
//! v                                    layout version (1)
//! ```
//!
//! Reserved for later, do not reuse: `c`… signed checkpoints, `n`… Merkle
//! tree nodes. The length prefix on labels keeps one org's (or type's) key
//! range from containing another's, so a filtered read is a range scan over
//! exactly that label.
//!
//! # Visibility
//!
//! sled makes a batch visible to readers as soon as it is applied, before the
//! flush. Readers here only see what is durable: reads are capped at the
//! head published after the flush, committed decisions above it are hidden,
//! and rejections of an in-flight append are hidden until it is flushed.
//! Nobody can therefore act on a record that a crash could still take away.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use uuid::Uuid;

use crate::batch;
use crate::layout::{self, RecordView};
use crate::{
    Decision, Error, Filter, Hash, Head, Log, NewRecord, Rejection, StoredRecord, ZERO_HASH,
};

/// Name of the sled tree holding the whole ledger.
pub const TREE_NAME: &str = "wfl.ledger";

/// How many index entries a cursor steps over linearly before it re-seeks
/// with a fresh range: dense intersections stay sequential, sparse ones jump.
const RESEEK_AFTER: usize = 32;

/// The sled-backed, durable [`Log`].
pub struct SledLog {
    db: sled::Db,
    tree: sled::Tree,
    /// Serialises appends and holds the head they build on, so an append
    /// never re-reads it from sled.
    writer: Mutex<Writer>,
    /// What readers may see; updated only after a flush.
    visible: Mutex<Visible>,
}

struct Writer {
    head: Head,
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
    /// Open (or create) the store in directory `path` and resume its head.
    ///
    /// # Errors
    /// [`Error::Io`] if sled cannot open the directory (including when
    /// another process holds it); [`Error::Corrupt`] if the stored head or
    /// layout version does not agree with the stored records.
    pub fn open(path: &Path) -> Result<SledLog, Error> {
        let db = sled::Config::new().path(path).open()?;
        SledLog::open_db(db)
    }

    /// Use an already opened sled database (its [`TREE_NAME`] tree).
    ///
    /// # Errors
    /// As for [`SledLog::open`].
    pub fn open_db(db: sled::Db) -> Result<SledLog, Error> {
        let tree = db.open_tree(TREE_NAME)?;
        check_version(&tree)?;
        let head = recover_head(&tree)?;
        Ok(SledLog {
            db,
            tree,
            writer: Mutex::new(Writer { head, failed: None }),
            visible: Mutex::new(Visible {
                head,
                pending_rejections: HashSet::new(),
            }),
        })
    }

    fn visible(&self) -> Result<MutexGuard<'_, Visible>, Error> {
        self.visible
            .lock()
            .map_err(|_| Error::Io("visibility lock poisoned".to_owned()))
    }

    fn visible_head(&self) -> Result<Head, Error> {
        Ok(self.visible()?.head)
    }

    fn load(&self, sequence: u64) -> Result<StoredRecord, Error> {
        match self.tree.get(layout::record_key(sequence))? {
            Some(value) => Ok(to_stored(
                sequence,
                layout::decode_record(sequence, &value)?,
            )),
            None => Err(Error::corrupt(
                sequence,
                "record missing below the head or behind an index entry",
            )),
        }
    }

    fn read_all(&self, from: u64, to: u64, limit: usize) -> Result<Vec<StoredRecord>, Error> {
        let range = layout::record_key(from)..=layout::record_key(to);
        let span = usize::try_from(to.saturating_sub(from).saturating_add(1)).unwrap_or(usize::MAX);
        // Capped so a huge `limit` on a huge range does not pre-allocate gigabytes.
        let mut out = Vec::with_capacity(limit.min(span).min(4096));
        for entry in self.tree.range(range).take(limit) {
            let (key, value) = entry?;
            let sequence = layout::record_key_sequence(&key)
                .ok_or_else(|| Error::corrupt(0, "malformed record key"))?;
            out.push(to_stored(
                sequence,
                layout::decode_record(sequence, &value)?,
            ));
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
                let mut prefix = Vec::with_capacity(3 + label.len() + 8);
                if layout::label_prefix_into(&mut prefix, tag, label).is_err() {
                    // Longer than any stored label: it cannot match anything.
                    continue;
                }
                cursors.push(IndexCursor::open(&self.tree, prefix, from, to)?);
            }
            dimensions.push(cursors);
        }

        let mut out = Vec::new();
        let mut target = from;
        'outer: while out.len() < limit {
            // Leapfrog: raise the candidate until every dimension has an
            // entry at exactly that sequence.
            let mut candidate = target;
            loop {
                let mut agreed = true;
                for cursors in &mut dimensions {
                    let mut lowest = None;
                    for cursor in cursors.iter_mut() {
                        cursor.seek(candidate)?;
                        if let Some(seq) = cursor.next {
                            lowest = Some(lowest.map_or(seq, |l: u64| l.min(seq)));
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
            out.push(self.load(candidate)?);
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

/// Walks one label's index entries in sequence order.
struct IndexCursor<'t> {
    tree: &'t sled::Tree,
    prefix: Vec<u8>,
    upper: u64,
    iter: sled::Iter,
    /// The current entry's sequence; `None` once exhausted.
    next: Option<u64>,
}

impl<'t> IndexCursor<'t> {
    fn open(tree: &'t sled::Tree, prefix: Vec<u8>, from: u64, upper: u64) -> Result<Self, Error> {
        let iter = index_range(tree, &prefix, from, upper);
        let mut cursor = IndexCursor {
            tree,
            prefix,
            upper,
            iter,
            next: None,
        };
        cursor.step()?;
        Ok(cursor)
    }

    fn step(&mut self) -> Result<(), Error> {
        self.next = match self.iter.next() {
            None => None,
            Some(entry) => {
                let (key, _) = entry?;
                let seq = layout::index_key_sequence(&key, self.prefix.len())
                    .ok_or_else(|| Error::corrupt(0, "malformed index key"))?;
                Some(seq)
            }
        };
        Ok(())
    }

    /// Advance to the first entry with sequence >= `target`.
    fn seek(&mut self, target: u64) -> Result<(), Error> {
        let mut steps = 0;
        while let Some(seq) = self.next {
            if seq >= target {
                break;
            }
            if steps == RESEEK_AFTER {
                self.iter = index_range(self.tree, &self.prefix, target, self.upper);
                self.step()?;
                break;
            }
            self.step()?;
            steps += 1;
        }
        Ok(())
    }
}

fn index_range(tree: &sled::Tree, prefix: &[u8], from: u64, upper: u64) -> sled::Iter {
    let mut low = prefix.to_vec();
    layout::push_sequence(&mut low, from);
    let mut high = prefix.to_vec();
    layout::push_sequence(&mut high, upper);
    tree.range(low..=high)
}

fn to_stored(sequence: u64, view: RecordView<'_>) -> StoredRecord {
    StoredRecord {
        sequence,
        event_id: view.event_id,
        prev_hash: view.prev_hash,
        hash: view.hash,
        bytes: view.bytes.to_vec(),
    }
}

fn check_version(tree: &sled::Tree) -> Result<(), Error> {
    match tree.get([layout::VERSION])? {
        // Not flushed here: the first append's flush persists it, and a
        // store that never got an append may as well be rewritten.
        None => {
            tree.insert([layout::VERSION], &[layout::LAYOUT_VERSION][..])?;
            Ok(())
        }
        Some(v) if v.as_ref() == [layout::LAYOUT_VERSION] => Ok(()),
        Some(v) => Err(Error::corrupt(
            0,
            format!("unsupported layout version {:?}", v.as_ref()),
        )),
    }
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
            let sequence = layout::record_key_sequence(&key)
                .ok_or_else(|| Error::corrupt(0, "malformed record key"))?;
            Some((sequence, layout::decode_record(sequence, &value)?.hash))
        }
    };
    match last {
        None if stored.sequence == 0 && stored.hash == ZERO_HASH => Ok(stored),
        Some((sequence, hash)) if sequence == stored.sequence && hash == stored.hash => Ok(stored),
        None => Err(Error::corrupt(
            stored.sequence,
            "head names a record but the log is empty",
        )),
        Some((sequence, _)) => Err(Error::corrupt(
            sequence.min(stored.sequence.saturating_add(1)),
            format!(
                "head (sequence {}) disagrees with the last stored record (sequence {sequence})",
                stored.sequence
            ),
        )),
    }
}

impl Log for SledLog {
    fn head(&self) -> Result<Head, Error> {
        self.visible_head()
    }

    fn append(
        &self,
        records: &[NewRecord],
        rejections: &[Rejection],
    ) -> Result<Vec<(u64, Hash)>, Error> {
        if records.is_empty() && rejections.is_empty() {
            return Ok(Vec::new());
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
        let plan = batch::plan(&old, records, rejections, |id| {
            Ok(self.tree.contains_key(layout::decision_key(id))?)
        })?;

        let mut ops = sled::Batch::default();
        let mut key = Vec::with_capacity(64);
        for (index, (record, (sequence, hash))) in records.iter().zip(&plan.links).enumerate() {
            let prev = plan.prev_of(&old, index);
            ops.insert(
                &layout::record_key(*sequence)[..],
                layout::encode_record(&record.event_id, &prev, hash, &record.bytes),
            );
            ops.insert(
                &layout::decision_key(&record.event_id)[..],
                &layout::encode_committed(*sequence, hash)[..],
            );
            for (tag, label) in [
                (layout::ORG, &record.org_id),
                (layout::TYPE, &record.event_type),
            ] {
                layout::label_prefix_into(&mut key, tag, label)?;
                layout::push_sequence(&mut key, *sequence);
                ops.insert(&key[..], &[][..]);
            }
        }
        for rejection in rejections {
            ops.insert(
                &layout::decision_key(&rejection.event_id)[..],
                layout::encode_rejected(rejection.code, &rejection.message),
            );
        }
        if !records.is_empty() {
            ops.insert(&[layout::HEAD][..], &layout::encode_head(&plan.head)[..]);
        }

        if !rejections.is_empty() {
            // Registered before the batch is applied: a reader that sees the
            // rejection in sled is then guaranteed to also see it pending
            // until the flush below completes.
            let mut visible = self.visible()?;
            visible
                .pending_rejections
                .extend(rejections.iter().map(|r| r.event_id));
        }
        if let Err(err) = self.tree.apply_batch(ops) {
            return Err(SledLog::fail(&mut writer, err));
        }
        if let Err(err) = self.db.flush() {
            return Err(SledLog::fail(&mut writer, err));
        }

        writer.head = plan.head;
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
        let Some(value) = self.tree.get(layout::decision_key(event_id))? else {
            return Ok(None);
        };
        let decision = layout::decode_decision(event_id, &value)?;
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
        self.load(sequence).map(Some)
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
        let range = layout::record_key(1)..=layout::record_key(head.sequence.max(1));
        if head.sequence > 0 {
            for entry in self.tree.range(range) {
                let (key, value) = entry?;
                let sequence = layout::record_key_sequence(&key)
                    .ok_or_else(|| Error::corrupt(expected, "malformed record key"))?;
                if sequence != expected {
                    return Err(Error::corrupt(expected, "record missing"));
                }
                let view = layout::decode_record(sequence, &value)?;
                if view.prev_hash != prev {
                    return Err(Error::corrupt(
                        sequence,
                        "stored prev_hash does not match the previous record's hash",
                    ));
                }
                let hash = crate::chain_hash(&prev, view.bytes);
                if view.hash != hash {
                    return Err(Error::corrupt(
                        sequence,
                        "stored hash does not match SHA-256(prev_hash || bytes)",
                    ));
                }
                prev = hash;
                expected = sequence.saturating_add(1);
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
}
