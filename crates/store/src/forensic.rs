//! Where a record's bytes live in a [`crate::SledLog`] tree, for forensic
//! tools and tamper tests.
//!
//! Owns: reading and re-encoding the chunk that holds a sequence through the
//! store's own layout, so a test that flips a byte, drops or reorders
//! records keeps working when the layout changes.
//!
//! Must not: be used by the ledger: writing a re-encoded chunk bypasses
//! every check `append` makes (that is the point of a tamper test).

use uuid::Uuid;

use crate::layout::{self, ChunkView, EntrySource};
use crate::{Error, Hash};

/// One record as stored inside its chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The event id it was committed under.
    pub event_id: Uuid,
    /// Stored link to the previous record.
    pub prev_hash: Hash,
    /// Stored chain hash.
    pub hash: Hash,
    /// The stored event bytes.
    pub bytes: Vec<u8>,
}

/// The chunk of consecutive records that holds a given sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The sled key of the chunk (in tree [`crate::TREE_NAME`]).
    pub key: Vec<u8>,
    /// Sequence of `entries[0]`.
    pub first: u64,
    /// The records, in sequence order.
    pub entries: Vec<Entry>,
}

impl Chunk {
    /// The chunk holding `sequence` in `tree` (the [`crate::TREE_NAME`] tree).
    ///
    /// # Errors
    /// [`Error::Corrupt`] if no chunk holds it or the chunk does not decode.
    pub fn holding(tree: &sled::Tree, sequence: u64) -> Result<Chunk, Error> {
        let (key, value) = tree
            .range(layout::record_key(1)..=layout::record_key(sequence))
            .next_back()
            .ok_or_else(|| Error::corrupt(sequence, "record missing"))??;
        let first = layout::record_key_sequence(&key)
            .ok_or_else(|| Error::corrupt(sequence, "malformed chunk key"))?;
        let view = ChunkView::decode(first, &value)?;
        let mut entries = Vec::new();
        for s in view.first()..=view.last() {
            let r = view.record(s)?;
            entries.push(Entry {
                event_id: r.event_id,
                prev_hash: r.prev_hash,
                hash: r.hash,
                bytes: r.bytes.to_vec(),
            });
        }
        Ok(Chunk {
            key: key.to_vec(),
            first,
            entries,
        })
    }

    /// The stored value of this chunk, encoded by the store's layout.
    ///
    /// # Errors
    /// [`Error::Conflict`] if an entry is too large to encode.
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        let sources: Vec<EntrySource<'_>> = self
            .entries
            .iter()
            .map(|e| EntrySource {
                event_id: &e.event_id,
                prev_hash: e.prev_hash,
                hash: &e.hash,
                bytes: &e.bytes,
            })
            .collect();
        layout::encode_chunk(&sources)
    }
}
