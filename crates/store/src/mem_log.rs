//! The in-memory [`Log`] double.
//!
//! Owns: the same observable semantics as [`crate::SledLog`] (validation is
//! shared through the batch planner, reads go through per-label postings)
//! so services can be tested without a disk.
//!
//! Must not: be used as a system of record: nothing survives the process,
//! and "durable before returning" holds only in the trivial sense.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard};

use uuid::Uuid;

use crate::batch;
use crate::merkle;
use crate::{
    chain_hash, Decision, Error, Filter, Hash, Head, Log, NewRecord, Rejection, StoredRecord,
    ZERO_HASH,
};
use crate::{check_checkpoint_size, write_without_records};

/// In-memory [`Log`]; one mutex guards everything, which is fine for a double.
#[derive(Default)]
pub struct MemLog {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// `records[i]` has sequence `i + 1`.
    records: Vec<StoredRecord>,
    decisions: HashMap<Uuid, Decision>,
    /// Sorted sequences per org id / event type.
    orgs: HashMap<String, Vec<u64>>,
    types: HashMap<String, Vec<u64>>,
    /// Ordered like sled's keys (UTF-8 byte order is `String` order), for `meta_scan`.
    meta: std::collections::BTreeMap<String, Vec<u8>>,
    /// `nodes[l][i]`: the complete Merkle subtree of `2^l` leaves at `i << l`.
    nodes: Vec<Vec<Hash>>,
    checkpoints: std::collections::BTreeMap<u64, Vec<u8>>,
}

impl Inner {
    fn head(&self) -> Head {
        self.records.last().map_or(Head::EMPTY, |r| Head {
            sequence: r.sequence,
            hash: r.hash,
        })
    }

    /// Add a leaf and every subtree it completes.
    fn push_leaf(&mut self, leaf: Hash) {
        let mut level = 0;
        let mut hash = leaf;
        loop {
            if self.nodes.len() <= level {
                self.nodes.push(Vec::new());
            }
            self.nodes[level].push(hash);
            let count = self.nodes[level].len();
            if count % 2 == 1 {
                return;
            }
            hash = merkle::node_hash(&self.nodes[level][count - 2], &self.nodes[level][count - 1]);
            level += 1;
        }
    }

    fn record(&self, sequence: u64) -> Option<&StoredRecord> {
        let index = usize::try_from(sequence.checked_sub(1)?).ok()?;
        self.records.get(index)
    }
}

impl fmt::Debug for MemLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let head = self.lock().map(|inner| inner.head().sequence).ok();
        f.debug_struct("MemLog")
            .field("head", &head)
            .finish_non_exhaustive()
    }
}

impl MemLog {
    /// An empty log.
    #[must_use]
    pub fn new() -> MemLog {
        MemLog::default()
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>, Error> {
        self.inner
            .lock()
            .map_err(|_| Error::Io("in-memory log lock poisoned".to_owned()))
    }
}

fn write_meta(inner: &mut Inner, writes: &[(String, Option<Vec<u8>>)]) {
    for (key, value) in writes {
        match value {
            Some(value) => inner.meta.insert(key.clone(), value.clone()),
            None => inner.meta.remove(key),
        };
    }
}

/// Sorted, de-duplicated sequences in `from..=to` of any of `labels`.
fn postings(index: &HashMap<String, Vec<u64>>, labels: &[String], from: u64, to: u64) -> Vec<u64> {
    let mut out = Vec::new();
    for label in labels {
        if let Some(list) = index.get(label) {
            let start = list.partition_point(|&s| s < from);
            let end = list.partition_point(|&s| s <= to);
            out.extend_from_slice(list.get(start..end).unwrap_or_default());
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Intersection of two sorted lists.
fn intersect(a: &[u64], b: &[u64]) -> Vec<u64> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while let (Some(&x), Some(&y)) = (a.get(i), b.get(j)) {
        match x.cmp(&y) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(x);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

impl Log for MemLog {
    fn head(&self) -> Result<Head, Error> {
        Ok(self.lock()?.head())
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
        let mut inner = self.lock()?;
        let old = inner.head();
        if let Some((size, _)) = checkpoint {
            check_checkpoint_size(size, old.sequence)?;
        }
        let plan = batch::plan(&old, records, rejections, |id| {
            Ok(inner.decisions.contains_key(id))
        })?;
        for (index, (record, (sequence, hash))) in records.iter().zip(&plan.links).enumerate() {
            let prev_hash = plan.prev_of(&old, index);
            inner.records.push(StoredRecord {
                sequence: *sequence,
                event_id: record.event_id,
                prev_hash,
                hash: *hash,
                bytes: record.bytes.clone(),
            });
            inner.push_leaf(merkle::leaf_hash(&record.bytes));
            inner.decisions.insert(
                record.event_id,
                Decision::Committed {
                    sequence: *sequence,
                    hash: *hash,
                    submission: record.submission.filter(|u| !u.is_nil()),
                },
            );
            inner
                .orgs
                .entry(record.org_id.clone())
                .or_default()
                .push(*sequence);
            inner
                .types
                .entry(record.event_type.clone())
                .or_default()
                .push(*sequence);
        }
        for rejection in rejections {
            inner.decisions.insert(
                rejection.event_id,
                Decision::Rejected {
                    code: rejection.code,
                    message: rejection.message.clone(),
                    content: rejection.content.filter(|c| c != &[0; 32]),
                },
            );
        }
        write_meta(&mut inner, meta);
        if let Some((size, bytes)) = checkpoint {
            inner.checkpoints.insert(size, bytes.to_vec());
        }
        Ok(plan.links)
    }

    fn decision(&self, event_id: &Uuid) -> Result<Option<Decision>, Error> {
        Ok(self.lock()?.decisions.get(event_id).cloned())
    }

    fn get(&self, sequence: u64) -> Result<Option<StoredRecord>, Error> {
        Ok(self.lock()?.record(sequence).cloned())
    }

    fn read(
        &self,
        from: u64,
        to: Option<u64>,
        filter: &Filter,
        limit: usize,
    ) -> Result<Vec<StoredRecord>, Error> {
        let inner = self.lock()?;
        let head = inner.head().sequence;
        let from = from.max(1);
        let to = to.map_or(head, |to| to.min(head));
        if from > to || limit == 0 {
            return Ok(Vec::new());
        }
        let sequences: Vec<u64> = match (filter.org_ids.is_empty(), filter.event_types.is_empty()) {
            (true, true) => (from..=to).take(limit).collect(),
            (false, true) => postings(&inner.orgs, &filter.org_ids, from, to),
            (true, false) => postings(&inner.types, &filter.event_types, from, to),
            (false, false) => intersect(
                &postings(&inner.orgs, &filter.org_ids, from, to),
                &postings(&inner.types, &filter.event_types, from, to),
            ),
        };
        Ok(sequences
            .into_iter()
            .take(limit)
            .filter_map(|s| inner.record(s).cloned())
            .collect())
    }

    fn verify_chain(&self) -> Result<Head, Error> {
        let inner = self.lock()?;
        let mut prev = ZERO_HASH;
        for (sequence, record) in (1u64..).zip(&inner.records) {
            if record.sequence != sequence || record.prev_hash != prev {
                return Err(Error::corrupt(sequence, "prev link does not verify"));
            }
            prev = chain_hash(&prev, &record.bytes);
            if record.hash != prev {
                return Err(Error::corrupt(sequence, "stored hash does not verify"));
            }
        }
        Ok(inner.head())
    }

    fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.lock()?.meta.get(key).cloned())
    }

    fn meta_put(&self, key: &str, value: &[u8]) -> Result<(), Error> {
        self.lock()?.meta.insert(key.to_owned(), value.to_vec());
        Ok(())
    }

    fn meta_write(&self, writes: &[(String, Option<Vec<u8>>)]) -> Result<(), Error> {
        write_meta(&mut *self.lock()?, writes);
        Ok(())
    }

    fn meta_scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, Error> {
        use std::ops::Bound;
        let inner = self.lock()?;
        let start = match after {
            Some(after) if after >= prefix => Bound::Excluded(after.to_owned()),
            _ => Bound::Included(prefix.to_owned()),
        };
        Ok(inner
            .meta
            .range((start, Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn merkle_node(&self, level: u32, index: u64) -> Result<Hash, Error> {
        let inner = self.lock()?;
        let found = usize::try_from(level)
            .ok()
            .and_then(|l| inner.nodes.get(l))
            .and_then(|nodes| nodes.get(usize::try_from(index).ok()?));
        found.copied().ok_or_else(|| {
            Error::Conflict(format!(
                "Merkle node ({level}, {index}) is not complete at head {}",
                inner.head().sequence
            ))
        })
    }

    fn put_checkpoint(&self, size: u64, bytes: &[u8]) -> Result<(), Error> {
        let mut inner = self.lock()?;
        check_checkpoint_size(size, inner.head().sequence)?;
        inner.checkpoints.insert(size, bytes.to_vec());
        Ok(())
    }

    fn checkpoints(&self, from_size: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, Error> {
        Ok(self
            .lock()?
            .checkpoints
            .range(from_size..)
            .take(limit)
            .map(|(s, b)| (*s, b.clone()))
            .collect())
    }

    fn latest_checkpoint(&self) -> Result<Option<(u64, Vec<u8>)>, Error> {
        Ok(self
            .lock()?
            .checkpoints
            .iter()
            .next_back()
            .map(|(s, b)| (*s, b.clone())))
    }

    fn verify_all(&self, progress: &mut dyn FnMut(u64)) -> Result<Head, Error> {
        let head = self.verify_chain()?;
        let inner = self.lock()?;
        let mut rebuilt = Inner::default();
        for record in &inner.records {
            rebuilt.push_leaf(merkle::leaf_hash(&record.bytes));
            let stored = inner
                .nodes
                .first()
                .and_then(|l| l.get(rebuilt.nodes[0].len() - 1));
            if stored != rebuilt.nodes[0].last() {
                return Err(Error::corrupt(
                    record.sequence,
                    "Merkle leaf does not verify",
                ));
            }
        }
        if rebuilt.nodes != inner.nodes {
            return Err(Error::corrupt(1, "Merkle nodes do not verify"));
        }
        progress(head.sequence);
        Ok(head)
    }
}
