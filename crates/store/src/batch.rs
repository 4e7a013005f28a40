//! Validation and chaining of one append request, shared by every backend.
//!
//! Owns: the append rules (contiguous sequences from head+1, event ids unique
//! within the request and never decided before, label length limit) and the
//! computation of the new chain links, so [`crate::SledLog`] and
//! [`crate::MemLog`] cannot drift apart on semantics.
//!
//! Must not: touch storage. The backend answers "is this id already
//! decided?" through a callback and writes the plan itself.

use foldhash::{HashSet, HashSetExt};

use uuid::Uuid;

use crate::{chain_hash, Error, Hash, Head, NewRecord, Rejection, MAX_LABEL_LEN};

/// A validated append: one `(sequence, hash)` per record and the head after it.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) links: Vec<(u64, Hash)>,
    pub(crate) head: Head,
}

impl Plan {
    /// The `prev_hash` of the `index`-th record of the request.
    pub(crate) fn prev_of(&self, old_head: &Head, index: usize) -> Hash {
        match index.checked_sub(1).and_then(|i| self.links.get(i)) {
            Some((_, hash)) => *hash,
            None => old_head.hash,
        }
    }
}

/// Check a request against `head` and compute its chain links.
///
/// `already_decided` must report whether an event id is committed or
/// rejected in the store; it is only consulted once the cheap, storage-free
/// checks passed.
pub(crate) fn plan(
    head: &Head,
    records: &[NewRecord],
    rejections: &[Rejection],
    mut already_decided: impl FnMut(&Uuid) -> Result<bool, Error>,
) -> Result<Plan, Error> {
    let mut expected = head.sequence;
    for record in records {
        expected = expected
            .checked_add(1)
            .ok_or_else(|| Error::Conflict("sequence space exhausted".to_owned()))?;
        if record.sequence != expected {
            return Err(Error::Conflict(format!(
                "record {} has sequence {}, expected {expected} (head is {})",
                record.event_id, record.sequence, head.sequence
            )));
        }
        check_label("org id", &record.org_id)?;
        check_label("event type", &record.event_type)?;
    }

    let mut seen = HashSet::with_capacity(records.len() + rejections.len());
    let ids = records
        .iter()
        .map(|r| &r.event_id)
        .chain(rejections.iter().map(|r| &r.event_id));
    for id in ids.clone() {
        if !seen.insert(*id) {
            return Err(Error::Conflict(format!(
                "event id {id} appears more than once in one append"
            )));
        }
    }
    for id in ids {
        if already_decided(id)? {
            return Err(Error::Conflict(format!(
                "event id {id} was already committed or rejected"
            )));
        }
    }

    let mut links = Vec::with_capacity(records.len());
    let mut prev = head.hash;
    for record in records {
        prev = chain_hash(&prev, &record.bytes);
        links.push((record.sequence, prev));
    }
    let head = Head {
        sequence: expected,
        hash: prev,
    };
    Ok(Plan { links, head })
}

fn check_label(what: &str, label: &str) -> Result<(), Error> {
    if label.len() > MAX_LABEL_LEN {
        return Err(Error::Conflict(format!(
            "{what} is {} bytes long; the limit is {MAX_LABEL_LEN}",
            label.len()
        )));
    }
    Ok(())
}
