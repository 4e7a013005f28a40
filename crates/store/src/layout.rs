//! Byte layout of everything [`crate::SledLog`] keeps in its tree.
//!
//! Owns: key prefixes, key encodings and value encodings (see the table in
//! [`crate::sled_log`]). All integers are big-endian so that sled's
//! lexicographic key order is numeric order.
//!
//! Must not: touch sled or know the event wire format. Decoders never panic
//! and never trust a stored length: a value of the wrong shape is reported as
//! [`Error::Corrupt`].

use uuid::Uuid;

use crate::{Decision, Error, Hash, Head, RefusalCode};

/// `c` + tree size → opaque signed checkpoint.
pub(crate) const CHECKPOINT: u8 = b'c';
/// `e` + first seq → chunk of consecutive records.
pub(crate) const RECORD: u8 = b'e';
/// `h` → head value.
pub(crate) const HEAD: u8 = b'h';
/// `i` + event id → decision value.
pub(crate) const DECISION: u8 = b'i';
/// `j` + 6-byte event id prefix + group number → committed-id group (layout 2, read only).
pub(crate) const ID_GROUP: u8 = b'j';
/// `k` + 6-byte event id prefix + group number → committed-id group with submission ids.
pub(crate) const SUBMITTED_GROUP: u8 = b'k';
/// `m` + key → opaque metadata value.
pub(crate) const META: u8 = b'm';
/// `n` + tile level:u8 + tile index:u64 → Merkle tile (up to 256 hashes).
pub(crate) const TILE: u8 = b'n';
/// `o` + u16 len + org id + first seq → posting group.
pub(crate) const ORG: u8 = b'o';
/// `t` + u16 len + event type + first seq → posting group.
pub(crate) const TYPE: u8 = b't';
/// `w` → verified marker: seq:u64 hash:32, the chain verified up to there.
pub(crate) const VERIFIED: u8 = b'w';
/// `v` → layout version byte.
pub(crate) const VERSION: u8 = b'v';

/// Current layout version, stored under [`VERSION`].
pub(crate) const LAYOUT_VERSION: u8 = 3;

/// A chunk is closed once adding the next record would pass this many bytes
/// (a chunk always takes at least one record). sled leaves hold up to 17
/// items and sled writes any item over 128 KiB to a separate blob file that
/// it never fsyncs, so chunks stay small enough that a leaf of them does not
/// become a blob.
pub(crate) const CHUNK_TARGET_BYTES: usize = 6 * 1024;
/// Most sequences in one posting group (4 bytes each), for the same reason.
pub(crate) const POSTING_GROUP_MAX: usize = 1024;

/// Committed event ids are grouped by their first 6 bytes: the millisecond
/// timestamp of a UUIDv7, so ids minted close together share a group.
pub(crate) const ID_PREFIX_LEN: usize = 6;
/// Most entries in one `j` id group (50 bytes each, same sizing as chunks).
pub(crate) const ID_GROUP_MAX: usize = 128;
/// Most entries in one `k` id group (66 bytes each, same sizing as chunks).
pub(crate) const SUBMITTED_GROUP_MAX: usize = 92;
/// Most groups per id prefix. Ids beyond that get one `i` key each, so a
/// lookup reads at most this many groups however ids are chosen.
pub(crate) const ID_GROUPS_PER_PREFIX: u8 = 16;
const ID_REST_LEN: usize = 16 - ID_PREFIX_LEN;
const ID_ENTRY_LEN: usize = ID_REST_LEN + 8 + 32;
const SUBMITTED_ENTRY_LEN: usize = ID_ENTRY_LEN + ID_LEN;

const SEQ_LEN: usize = 8;
const ID_LEN: usize = 16;
const HASH_LEN: usize = 32;
/// event id + prev hash + hash, before the opaque bytes of a chunk entry.
pub(crate) const ENTRY_HEADER_LEN: usize = ID_LEN + 2 * HASH_LEN;
const HEAD_LEN: usize = SEQ_LEN + HASH_LEN;
const U32_LEN: usize = 4;

/// Layout 2 decisions, still read: committed without submission id, refused without content hash.
const COMMITTED_TAG: u8 = b'C';
const REJECTED_TAG: u8 = b'R';
/// Layout 3 decisions: committed with the committing submission id, refused with the content hash.
const SUBMITTED_TAG: u8 = b'D';
const REFUSED_TAG: u8 = b'S';
const SUBMITTED_LEN: usize = 1 + SEQ_LEN + HASH_LEN + ID_LEN;
const REFUSED_HEADER_LEN: usize = 1 + 4 + HASH_LEN;

/// Merkle tiles: a tile at tile level `t` holds the hashes of the complete
/// subtrees at tree level `8t`, 256 of them per tile, so one tile key per
/// level changes per append and any node is at most 255 hashes away.
pub(crate) const TILE_HEIGHT: u32 = 8;
/// Hashes in a full tile.
pub(crate) const TILE_WIDTH: usize = 1 << TILE_HEIGHT;

pub(crate) fn tile_key(level: u8, index: u64) -> [u8; 2 + SEQ_LEN] {
    let mut key = [0; 2 + SEQ_LEN];
    key[0] = TILE;
    key[1] = level;
    key[2..].copy_from_slice(&index.to_be_bytes());
    key
}

pub(crate) fn checkpoint_key(size: u64) -> [u8; 1 + SEQ_LEN] {
    let mut key = [0; 1 + SEQ_LEN];
    key[0] = CHECKPOINT;
    key[1..].copy_from_slice(&size.to_be_bytes());
    key
}

/// The tree size in a checkpoint key, if the key has that shape.
pub(crate) fn checkpoint_key_size(key: &[u8]) -> Option<u64> {
    match key {
        [CHECKPOINT, rest @ ..] => read_u64(rest),
        _ => None,
    }
}

/// The hashes of a tile value, checked to be whole and at most a full tile.
///
/// # Errors
/// [`Error::Corrupt`] at `first_sequence` (the first leaf the tile covers).
pub(crate) fn decode_tile(first_sequence: u64, value: &[u8]) -> Result<Vec<Hash>, Error> {
    if value.is_empty()
        || !value.chunks_exact(HASH_LEN).remainder().is_empty()
        || value.len() > TILE_WIDTH * HASH_LEN
    {
        return Err(Error::corrupt(
            first_sequence,
            format!("Merkle tile of {} bytes is malformed", value.len()),
        ));
    }
    Ok(value.chunks_exact(HASH_LEN).map(to_array).collect())
}

pub(crate) fn encode_tile(hashes: &[Hash]) -> Vec<u8> {
    hashes.concat()
}

pub(crate) fn record_key(sequence: u64) -> [u8; 1 + SEQ_LEN] {
    let mut key = [0; 1 + SEQ_LEN];
    key[0] = RECORD;
    key[1..].copy_from_slice(&sequence.to_be_bytes());
    key
}

/// The sequence in a chunk key, if the key has the chunk shape.
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

pub(crate) fn id_prefix(event_id: &Uuid) -> [u8; ID_PREFIX_LEN] {
    to_array(event_id.as_bytes())
}

pub(crate) fn id_rest(event_id: &Uuid) -> [u8; ID_REST_LEN] {
    to_array(event_id.as_bytes().get(ID_PREFIX_LEN..).unwrap_or_default())
}

/// The two shapes of committed-id groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdFormat {
    /// `j` (layout 2): id rest, sequence, hash. Read, never extended.
    Plain,
    /// `k` (layout 3): id rest, sequence, hash, committing submission id (zero when unknown).
    Submitted,
}

impl IdFormat {
    pub(crate) fn tag(self) -> u8 {
        match self {
            IdFormat::Plain => ID_GROUP,
            IdFormat::Submitted => SUBMITTED_GROUP,
        }
    }

    fn entry_len(self) -> usize {
        match self {
            IdFormat::Plain => ID_ENTRY_LEN,
            IdFormat::Submitted => SUBMITTED_ENTRY_LEN,
        }
    }

    /// Most entries in one group of this format.
    pub(crate) fn max(self) -> usize {
        match self {
            IdFormat::Plain => ID_GROUP_MAX,
            IdFormat::Submitted => SUBMITTED_GROUP_MAX,
        }
    }
}

pub(crate) fn id_group_key(
    format: IdFormat,
    prefix: &[u8; ID_PREFIX_LEN],
    group: u8,
) -> [u8; 2 + ID_PREFIX_LEN] {
    let mut key = [0; 2 + ID_PREFIX_LEN];
    key[0] = format.tag();
    key[1..=ID_PREFIX_LEN].copy_from_slice(prefix);
    key[1 + ID_PREFIX_LEN] = group;
    key
}

/// The group number in an id group key, if the key has that shape.
pub(crate) fn id_group_number(format: IdFormat, key: &[u8]) -> Option<u8> {
    match key {
        [tag, rest @ ..] if *tag == format.tag() && rest.len() == ID_PREFIX_LEN + 1 => {
            rest.last().copied()
        }
        _ => None,
    }
}

/// One committed id in a group: the id's last 10 bytes, its sequence and hash, and the id of
/// the submission that committed it (all zero in `j` groups and when unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IdEntry {
    pub(crate) rest: [u8; ID_REST_LEN],
    pub(crate) sequence: u64,
    pub(crate) hash: Hash,
    pub(crate) submission: [u8; ID_LEN],
}

impl IdEntry {
    /// The committing submission, `None` when unknown (stored as zero).
    pub(crate) fn submission(&self) -> Option<Uuid> {
        Some(Uuid::from_bytes(self.submission)).filter(|u| !u.is_nil())
    }
}

/// Encode a group; `entries` must be sorted by `rest` without repeats.
pub(crate) fn encode_id_group(format: IdFormat, entries: &[IdEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(format.entry_len() * entries.len());
    for entry in entries {
        out.extend_from_slice(&entry.rest);
        out.extend_from_slice(&entry.sequence.to_be_bytes());
        out.extend_from_slice(&entry.hash);
        if format == IdFormat::Submitted {
            out.extend_from_slice(&entry.submission);
        }
    }
    out
}

/// A validated id group: non-empty, whole entries, strictly sorted.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IdGroupView<'a> {
    value: &'a [u8],
    format: IdFormat,
}

impl<'a> IdGroupView<'a> {
    /// Sortedness is checked here (at most [`ID_GROUP_MAX`] comparisons)
    /// because a silently unsorted group could hide a committed id from the
    /// duplicate check.
    ///
    /// # Errors
    /// [`Error::Corrupt`] (sequence 0) if the value has the wrong shape.
    pub(crate) fn decode(value: &'a [u8], format: IdFormat) -> Result<Self, Error> {
        let view = IdGroupView { value, format };
        let sorted = value
            .chunks_exact(format.entry_len())
            .remainder()
            .is_empty()
            && !value.is_empty()
            && (1..view.len()).all(|i| view.rest(i - 1) < view.rest(i));
        if !sorted {
            return Err(Error::corrupt(
                0,
                format!("id group of {} bytes is malformed", value.len()),
            ));
        }
        Ok(view)
    }

    /// A view over a value that already passed [`IdGroupView::decode`].
    /// Accessors stay bounds-checked, so a wrong promise cannot panic.
    pub(crate) fn validated(value: &'a [u8], format: IdFormat) -> Self {
        IdGroupView { value, format }
    }

    pub(crate) fn len(&self) -> usize {
        self.value.len() / self.format.entry_len()
    }

    fn rest(&self, index: usize) -> &'a [u8] {
        let at = index * self.format.entry_len();
        self.value.get(at..at + ID_REST_LEN).unwrap_or_default()
    }

    pub(crate) fn entry(&self, index: usize) -> Option<IdEntry> {
        let len = self.format.entry_len();
        let at = index.checked_mul(len)?;
        let raw = self.value.get(at..at.checked_add(len)?)?;
        let (rest, tail) = raw.split_at(ID_REST_LEN);
        let (seq, tail) = tail.split_at(SEQ_LEN);
        let (hash, submission) = tail.split_at(HASH_LEN);
        Some(IdEntry {
            rest: to_array(rest),
            sequence: u64::from_be_bytes(to_array(seq)),
            hash: to_array(hash),
            submission: to_array(submission),
        })
    }

    pub(crate) fn find(&self, rest: &[u8; ID_REST_LEN]) -> Option<IdEntry> {
        let (mut low, mut high) = (0, self.len());
        while low < high {
            let mid = low + (high - low) / 2;
            match self.rest(mid).cmp(rest.as_slice()) {
                std::cmp::Ordering::Less => low = mid + 1,
                std::cmp::Ordering::Greater => high = mid,
                std::cmp::Ordering::Equal => return self.entry(mid),
            }
        }
        None
    }
}

pub(crate) fn meta_key(key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + key.len());
    out.push(META);
    out.extend_from_slice(key.as_bytes());
    out
}

/// `tag + u16 len + label`: the prefix of every posting key of that label.
/// The length prefix keeps `"ab"` and `"a"` from sharing a key range.
///
/// # Errors
/// [`Error::Conflict`] if the label is longer than `u16::MAX` bytes.
pub(crate) fn label_prefix(tag: u8, label: &str) -> Result<Vec<u8>, Error> {
    let len = u16::try_from(label.len()).map_err(|_| {
        Error::Conflict(format!(
            "label of {} bytes exceeds the index limit",
            label.len()
        ))
    })?;
    let mut out = Vec::with_capacity(3 + label.len() + SEQ_LEN);
    out.push(tag);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(label.as_bytes());
    Ok(out)
}

/// `prefix + sequence`: a posting key (or a range bound over them).
pub(crate) fn posting_key(prefix: &[u8], sequence: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(prefix.len() + SEQ_LEN);
    out.extend_from_slice(prefix);
    out.extend_from_slice(&sequence.to_be_bytes());
    out
}

/// The first sequence at the end of a posting key with `prefix_len` prefix bytes.
pub(crate) fn posting_key_sequence(key: &[u8], prefix_len: usize) -> Option<u64> {
    key.get(prefix_len..).and_then(read_u64)
}

/// One record inside a chunk, borrowed: no allocation until the caller asks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordView<'a> {
    pub(crate) sequence: u64,
    pub(crate) event_id: Uuid,
    pub(crate) prev_hash: Hash,
    pub(crate) hash: Hash,
    pub(crate) bytes: &'a [u8],
}

/// What a chunk entry is built from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EntrySource<'a> {
    pub(crate) event_id: &'a Uuid,
    pub(crate) prev_hash: Hash,
    pub(crate) hash: &'a Hash,
    pub(crate) bytes: &'a [u8],
}

/// Encode consecutive records as one chunk:
/// `count:u32, count × end:u32, entries`, where entry `k` spans
/// `end[k-1]..end[k]` of the entry area and is
/// `event_id:16 prev_hash:32 hash:32 bytes…`.
///
/// # Errors
/// [`Error::Conflict`] if the entries do not fit 32-bit offsets (a chunk of
/// more than 4 GiB, i.e. a single gigantic record).
pub(crate) fn encode_chunk(entries: &[EntrySource<'_>]) -> Result<Vec<u8>, Error> {
    let too_big = || Error::Conflict("record too large for the store (4 GiB limit)".to_owned());
    let count = u32::try_from(entries.len()).map_err(|_| too_big())?;
    let body: usize = entries
        .iter()
        .map(|e| ENTRY_HEADER_LEN + e.bytes.len())
        .sum();
    let header = U32_LEN * (1 + entries.len());
    let mut out = Vec::with_capacity(header + body);
    out.extend_from_slice(&count.to_be_bytes());
    let mut end: usize = 0;
    for entry in entries {
        end += ENTRY_HEADER_LEN + entry.bytes.len();
        let end32 = u32::try_from(end).map_err(|_| too_big())?;
        out.extend_from_slice(&end32.to_be_bytes());
    }
    for entry in entries {
        out.extend_from_slice(entry.event_id.as_bytes());
        out.extend_from_slice(&entry.prev_hash);
        out.extend_from_slice(entry.hash);
        out.extend_from_slice(entry.bytes);
    }
    Ok(out)
}

/// A decoded chunk header over a borrowed value; records decode on demand.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChunkView<'a> {
    first: u64,
    count: u64,
    ends: &'a [u8],
    entries: &'a [u8],
}

impl<'a> ChunkView<'a> {
    /// Decode the header of the chunk stored under first sequence `first`.
    ///
    /// # Errors
    /// [`Error::Corrupt`] at `first` if the header does not fit the value.
    pub(crate) fn decode(first: u64, value: &'a [u8]) -> Result<Self, Error> {
        let bad = |detail: String| Error::corrupt(first, detail);
        let (count, rest) = value
            .split_first_chunk::<U32_LEN>()
            .ok_or_else(|| bad(format!("chunk value is only {} bytes", value.len())))?;
        let count = u32::from_be_bytes(*count);
        if count == 0 || first == 0 {
            return Err(bad("empty chunk or chunk at sequence 0".to_owned()));
        }
        let ends_len = usize::try_from(count)
            .ok()
            .and_then(|c| c.checked_mul(U32_LEN))
            .filter(|&len| len <= rest.len())
            .ok_or_else(|| {
                bad(format!(
                    "chunk claims {count} records but is {} bytes",
                    value.len()
                ))
            })?;
        let (ends, entries) = rest.split_at(ends_len);
        let count = u64::from(count);
        first
            .checked_add(count - 1)
            .ok_or_else(|| bad("chunk runs past the sequence space".to_owned()))?;
        Ok(ChunkView {
            first,
            count,
            ends,
            entries,
        })
    }

    pub(crate) fn first(&self) -> u64 {
        self.first
    }

    /// Sequence of the last record (cannot overflow: checked in `decode`).
    pub(crate) fn last(&self) -> u64 {
        self.first + (self.count - 1)
    }

    pub(crate) fn contains(&self, sequence: u64) -> bool {
        (self.first..=self.last()).contains(&sequence)
    }

    /// The record at `sequence`, which must be in this chunk.
    ///
    /// # Errors
    /// [`Error::Corrupt`] at `sequence` if it is outside the chunk or its
    /// entry does not fit.
    pub(crate) fn record(&self, sequence: u64) -> Result<RecordView<'a>, Error> {
        let bad = |detail: &str| Error::corrupt(sequence, detail);
        if !self.contains(sequence) {
            return Err(bad("record missing"));
        }
        let index = usize::try_from(sequence - self.first).map_err(|_| bad("record missing"))?;
        let start = match index.checked_sub(1) {
            None => 0,
            Some(prev) => self
                .end(prev)
                .ok_or_else(|| bad("chunk offsets do not fit"))?,
        };
        let end = self
            .end(index)
            .ok_or_else(|| bad("chunk offsets do not fit"))?;
        let entry = self
            .entries
            .get(start..end)
            .filter(|e| e.len() >= ENTRY_HEADER_LEN)
            .ok_or_else(|| bad("chunk entry out of bounds or too short"))?;
        let (id, rest) = entry.split_at(ID_LEN);
        let (prev, rest) = rest.split_at(HASH_LEN);
        let (hash, bytes) = rest.split_at(HASH_LEN);
        Ok(RecordView {
            sequence,
            event_id: Uuid::from_bytes(to_array(id)),
            prev_hash: to_array(prev),
            hash: to_array(hash),
            bytes,
        })
    }

    fn end(&self, index: usize) -> Option<usize> {
        let at = index.checked_mul(U32_LEN)?;
        let raw = self.ends.get(at..at.checked_add(U32_LEN)?)?;
        usize::try_from(u32::from_be_bytes(to_array(raw))).ok()
    }
}

/// Encode a posting group: each sequence as a u32 offset from `first`.
/// The caller keeps groups to offsets that fit (see `sled_log`).
pub(crate) fn encode_postings(first: u64, sequences: &[u64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(U32_LEN * sequences.len());
    for &sequence in sequences {
        let offset = u32::try_from(sequence.saturating_sub(first)).unwrap_or(u32::MAX);
        out.extend_from_slice(&offset.to_be_bytes());
    }
    out
}

/// A decoded posting group: sorted sequences as offsets from `first`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PostingsView<'a> {
    first: u64,
    offsets: &'a [u8],
}

impl<'a> PostingsView<'a> {
    /// # Errors
    /// [`Error::Corrupt`] (sequence 0: index entries are not records) if the
    /// value is empty or not a whole number of offsets.
    pub(crate) fn decode(first: u64, value: &'a [u8]) -> Result<Self, Error> {
        if value.is_empty() || !value.chunks_exact(U32_LEN).remainder().is_empty() {
            return Err(Error::corrupt(
                0,
                format!(
                    "posting group at {first} has a malformed value of {} bytes",
                    value.len()
                ),
            ));
        }
        Ok(PostingsView {
            first,
            offsets: value,
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.offsets.len() / U32_LEN
    }

    /// The `index`-th sequence, saturating so damage cannot wrap around.
    pub(crate) fn get(&self, index: usize) -> Option<u64> {
        let at = index.checked_mul(U32_LEN)?;
        let raw = self.offsets.get(at..at.checked_add(U32_LEN)?)?;
        Some(
            self.first
                .saturating_add(u64::from(u32::from_be_bytes(to_array(raw)))),
        )
    }

    /// Index of the first sequence >= `target` (binary search).
    pub(crate) fn lower_bound(&self, target: u64) -> usize {
        let (mut low, mut high) = (0, self.len());
        while low < high {
            let mid = low + (high - low) / 2;
            if self.get(mid).is_some_and(|s| s < target) {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        low
    }
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

pub(crate) fn encode_committed(sequence: u64, hash: &Hash, submission: &[u8; ID_LEN]) -> Vec<u8> {
    let mut out = Vec::with_capacity(SUBMITTED_LEN);
    out.push(SUBMITTED_TAG);
    out.extend_from_slice(&sequence.to_be_bytes());
    out.extend_from_slice(hash);
    out.extend_from_slice(submission);
    out
}

/// A refusal; `content` is all zero when unknown.
pub(crate) fn encode_rejected(code: RefusalCode, content: &Hash, message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(REFUSED_HEADER_LEN + message.len());
    out.push(REFUSED_TAG);
    out.extend_from_slice(&code.stored().to_be_bytes());
    out.extend_from_slice(content);
    out.extend_from_slice(message.as_bytes());
    out
}

/// # Errors
/// [`Error::Corrupt`] (sequence 0) if the value has neither decision shape.
pub(crate) fn decode_decision(event_id: &Uuid, value: &[u8]) -> Result<Decision, Error> {
    match value {
        [COMMITTED_TAG, rest @ ..] if rest.len() == SEQ_LEN + HASH_LEN => {
            let (seq, hash) = rest.split_at(SEQ_LEN);
            Ok(Decision::Committed {
                sequence: u64::from_be_bytes(to_array(seq)),
                hash: to_array(hash),
                submission: None,
            })
        }
        [SUBMITTED_TAG, rest @ ..] if rest.len() == SEQ_LEN + HASH_LEN + ID_LEN => {
            let (seq, rest) = rest.split_at(SEQ_LEN);
            let (hash, submission) = rest.split_at(HASH_LEN);
            Ok(Decision::Committed {
                sequence: u64::from_be_bytes(to_array(seq)),
                hash: to_array(hash),
                submission: Some(Uuid::from_bytes(to_array(submission))).filter(|u| !u.is_nil()),
            })
        }
        [REJECTED_TAG, c0, c1, c2, c3, message @ ..] => Ok(Decision::Rejected {
            code: refusal_code(event_id, [*c0, *c1, *c2, *c3])?,
            message: utf8_message(event_id, message)?,
            content: None,
        }),
        [REFUSED_TAG, c0, c1, c2, c3, rest @ ..] if rest.len() >= HASH_LEN => {
            let (content, message) = rest.split_at(HASH_LEN);
            let content: Hash = to_array(content);
            Ok(Decision::Rejected {
                code: refusal_code(event_id, [*c0, *c1, *c2, *c3])?,
                message: utf8_message(event_id, message)?,
                content: Some(content).filter(|c| c != &[0; HASH_LEN]),
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

/// The typed code of a stored refusal; an unknown number is corruption (or a newer writer), named.
fn refusal_code(event_id: &Uuid, bytes: [u8; 4]) -> Result<RefusalCode, Error> {
    let n = i32::from_be_bytes(bytes);
    RefusalCode::from_stored(n).ok_or_else(|| {
        Error::corrupt(
            0,
            format!(
                "refusal of {event_id} has code {n}, which this build does not know (known: 3 invalid argument, 9 failed precondition, 10 aborted); was the store written by a newer wfl?"
            ),
        )
    })
}

fn utf8_message(event_id: &Uuid, message: &[u8]) -> Result<String, Error> {
    std::str::from_utf8(message)
        .map(str::to_owned)
        .map_err(|_| Error::corrupt(0, format!("rejection message of {event_id} is not UTF-8")))
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

        /// Whatever bytes sled hands back, decoding answers instead of panicking.
        #[test]
        fn decoders_never_panic(value in prop::collection::vec(any::<u8>(), 0..400), first in any::<u64>(), seq in any::<u64>()) {
            if let Ok(chunk) = ChunkView::decode(first, &value) {
                let _ = chunk.record(seq);
                let _ = chunk.record(chunk.first());
                let _ = chunk.record(chunk.last());
            }
            if let Ok(postings) = PostingsView::decode(first, &value) {
                let _ = postings.lower_bound(seq);
                let _ = postings.get(postings.len());
            }
            for format in [IdFormat::Plain, IdFormat::Submitted] {
                if let Ok(group) = IdGroupView::decode(&value, format) {
                    let _ = group.find(&[7; ID_REST_LEN]);
                }
                let _ = id_group_number(format, &value);
            }
            let _ = decode_decision(&Uuid::nil(), &value);
            let _ = decode_head(&value);
            let _ = record_key_sequence(&value);
            let _ = posting_key_sequence(&value, 3);
        }

        #[test]
        fn chunks_round_trip(bodies in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 1..20), first in 1..u64::MAX / 2) {
            let ids: Vec<Uuid> = (0..bodies.len() as u128).map(Uuid::from_u128).collect();
            let hashes: Vec<Hash> = (0..bodies.len()).map(|i| [i as u8; 32]).collect();
            let entries: Vec<EntrySource<'_>> = bodies
                .iter()
                .enumerate()
                .map(|(i, bytes)| EntrySource { event_id: &ids[i], prev_hash: [!(i as u8); 32], hash: &hashes[i], bytes })
                .collect();
            let value = encode_chunk(&entries).unwrap();
            let chunk = ChunkView::decode(first, &value).unwrap();
            prop_assert_eq!(chunk.last(), first + bodies.len() as u64 - 1);
            for (i, bytes) in bodies.iter().enumerate() {
                let record = chunk.record(first + i as u64).unwrap();
                prop_assert_eq!(record.bytes, bytes.as_slice());
                prop_assert_eq!(record.event_id, ids[i]);
                prop_assert_eq!(record.hash, hashes[i]);
                prop_assert_eq!(record.prev_hash, [!(i as u8); 32]);
            }
            prop_assert!(chunk.record(first + bodies.len() as u64).is_err());
            prop_assert!(chunk.record(first - 1).is_err());
        }

        #[test]
        fn postings_round_trip(mut offsets in prop::collection::btree_set(0..100_000u64, 1..200), first in 1..1_000_000u64, target in 0..1_200_000u64) {
            let sequences: Vec<u64> = std::mem::take(&mut offsets).into_iter().map(|o| first + o).collect();
            let value = encode_postings(first, &sequences);
            let postings = PostingsView::decode(first, &value).unwrap();
            prop_assert_eq!(postings.len(), sequences.len());
            for (i, s) in sequences.iter().enumerate() {
                prop_assert_eq!(postings.get(i), Some(*s));
            }
            prop_assert_eq!(postings.lower_bound(target), sequences.partition_point(|&s| s < target));
        }
    }

    #[test]
    fn id_groups_find_exactly_their_entries() {
        for format in [IdFormat::Plain, IdFormat::Submitted] {
            let entries: Vec<IdEntry> = (0..format.max() as u8)
                .map(|i| IdEntry {
                    rest: [i.wrapping_mul(2); ID_REST_LEN],
                    sequence: u64::from(i) + 1,
                    hash: [i; 32],
                    submission: if format == IdFormat::Plain {
                        [0; ID_LEN]
                    } else {
                        [i ^ 0x5a; ID_LEN]
                    },
                })
                .collect();
            let value = encode_id_group(format, &entries);
            assert!(
                value.len() <= 6_400,
                "{format:?} groups stay about chunk-sized"
            );
            let group = IdGroupView::decode(&value, format).unwrap();
            for entry in &entries {
                assert_eq!(group.find(&entry.rest), Some(*entry));
                let mut absent = entry.rest;
                absent[ID_REST_LEN - 1] ^= 1;
                assert_eq!(group.find(&absent), None);
            }
        }
    }

    #[test]
    fn decisions_round_trip_and_old_shapes_still_decode() {
        let id = Uuid::from_u128(9);
        let sub = Uuid::from_u128(77);
        let committed = encode_committed(5, &[3; 32], sub.as_bytes());
        assert_eq!(
            decode_decision(&id, &committed).unwrap(),
            Decision::Committed {
                sequence: 5,
                hash: [3; 32],
                submission: Some(sub)
            }
        );
        let refused = encode_rejected(RefusalCode::FailedPrecondition, &[4; 32], "no");
        assert_eq!(
            decode_decision(&id, &refused).unwrap(),
            Decision::Rejected {
                code: RefusalCode::FailedPrecondition,
                message: "no".into(),
                content: Some([4; 32])
            }
        );
        let mut old = vec![COMMITTED_TAG];
        old.extend_from_slice(&5u64.to_be_bytes());
        old.extend_from_slice(&[3; 32]);
        assert_eq!(
            decode_decision(&id, &old).unwrap(),
            Decision::Committed {
                sequence: 5,
                hash: [3; 32],
                submission: None
            }
        );
        let mut old = vec![REJECTED_TAG];
        old.extend_from_slice(&9i32.to_be_bytes());
        old.extend_from_slice(b"no");
        assert_eq!(
            decode_decision(&id, &old).unwrap(),
            Decision::Rejected {
                code: RefusalCode::FailedPrecondition,
                message: "no".into(),
                content: None
            }
        );
    }

    #[test]
    fn refusal_codes_keep_the_numbers_stored_before_the_type() {
        // The raw google.rpc.Code numbers the ledger stored as i32 before refusal codes were
        // typed: INVALID_ARGUMENT 3, FAILED_PRECONDITION 9, ABORTED 10. These must never change.
        let id = Uuid::from_u128(9);
        for (code, n) in RefusalCode::ALL.into_iter().zip([3, 9, 10]) {
            assert_eq!(code.stored(), n);
            assert_eq!(RefusalCode::from_stored(n), Some(code));
            let value = encode_rejected(code, &[1; 32], "m");
            assert_eq!(&value[1..5], &n.to_be_bytes());
            let mut old = vec![REJECTED_TAG];
            old.extend_from_slice(&n.to_be_bytes());
            assert!(
                matches!(decode_decision(&id, &old), Ok(Decision::Rejected { code: c, .. }) if c == code)
            );
        }
        for tag in [REJECTED_TAG, REFUSED_TAG] {
            let mut unknown = vec![tag];
            unknown.extend_from_slice(&14i32.to_be_bytes());
            unknown.extend_from_slice(&[0; 32]);
            let err = decode_decision(&id, &unknown).unwrap_err().to_string();
            assert!(
                err.contains("code 14") && err.contains(&id.to_string()),
                "{err}"
            );
        }
    }
}
