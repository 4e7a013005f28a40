//! The writer's state ([`LedgerState`]) kept keyed and incrementally in the ledger's own store, so
//! that a restart reads it back instead of folding the history.
//!
//! Owns: the keys below, what each batch writes to them, loading them at start, and the one-off
//! rewrite of the whole state (a rebuild, or the migration from the chunked snapshot earlier
//! builds wrote). Must not: decide anything (that is [`LedgerState`]), or trust a value it cannot
//! verify: the state is derived data, the records are the truth.
//!
//! **Where.** Metadata keys of the ledger's store (opaque to it), every value sealed with
//! `check` = the first 4 bytes of SHA-256(key ‖ payload), so a flipped bit in a key or a value is
//! caught even where sled's own CRC would not see it (sled checks its log segments, not a value
//! once it is read back into memory):
//!
//! ```text
//! ledger-keyed/through                          through:u64 check:4
//! ledger-keyed/w/<org_len:08x>/<org><worker>    flags:u8 version:u64 [last_lifecycle:16] check:4
//!                                                 (flags bit 0 employed, bit 1 last_lifecycle present)
//! ledger-keyed/r/<retracted event id, 32 hex>   check:4
//! ```
//!
//! **When.** Every append of the writer carries, in the same atomic, flushed sled batch as its
//! records ([`wfl_store::Log::append_with_meta`]), the key of each worker its events changed
//! (including the worker whose hire or separation a retraction undid), each newly retracted id,
//! and `through` = the batch's last sequence: one small key per changed worker and never a write
//! proportional to the state. After a crash the keys and `through` are exactly as of the last
//! durable batch.
//!
//! **Restart** ([`load`], then the writer's fold): read `through`, scan the keys (O(state), no
//! history), then fold the records after `through` (normally none; a store appended to by another
//! program than the writer has some) and write what they changed with `through` = head in one
//! atomic batch. A value that does not verify or decode, or a `through` beyond the head, is
//! reported; the writer then rebuilds the state from sequence 1 with a WARN and rewrites it
//! ([`write_all`]).
//!
//! **Rewrite and migration** ([`write_all`]): delete `through` first (so a crash part-way leaves
//! no marker and the next start rebuilds again), delete every key under `ledger-keyed/`, write the
//! state in batches of [`PAGE`] keys, then `through` last; finally delete the chunked snapshot of
//! earlier builds (`ledger-state` and `ledger-state/<generation>/<chunk>`, see [`legacy`]). A store
//! with that snapshot and no `through` is migrated at its first start: the old snapshot is read and
//! the events after it folded, then the result is written keyed.

use sha2::{Digest, Sha256};
use wfl_domain::lifecycle::Changed;
use wfl_domain::{EventId, LedgerState, OrgId, WorkerRef, WorkerState};
use wfl_store::Log;

use crate::error::Error;

/// Every key of the keyed state starts with this.
const PREFIX: &str = "ledger-keyed/";
const THROUGH: &str = "ledger-keyed/through";
const WORKERS: &str = "ledger-keyed/w/";
const RETRACTIONS: &str = "ledger-keyed/r/";
/// Keys per scan page and per write batch of a rewrite.
pub(crate) const PAGE: usize = 10_000;
const CHECK_LEN: usize = 4;

fn check(key: &str, payload: &[u8]) -> [u8; CHECK_LEN] {
    let mut h = Sha256::new();
    h.update(key.as_bytes());
    h.update(payload);
    let digest = h.finalize();
    let mut out = [0; CHECK_LEN];
    out.copy_from_slice(&digest[..CHECK_LEN]);
    out
}

fn seal(key: &str, mut payload: Vec<u8>) -> Vec<u8> {
    let c = check(key, &payload);
    payload.extend_from_slice(&c);
    payload
}

/// The payload of a sealed value, if its check verifies.
fn unseal<'a>(key: &str, value: &'a [u8]) -> Option<&'a [u8]> {
    let split = value.len().checked_sub(CHECK_LEN)?;
    let (payload, c) = value.split_at(split);
    (c == check(key, payload)).then_some(payload)
}

fn worker_key(org: &OrgId, worker: &WorkerRef) -> String {
    format!("{WORKERS}{:08x}/{}{}", org.as_str().len(), org, worker)
}

fn parse_worker_key(key: &str) -> Option<(OrgId, WorkerRef)> {
    let rest = key.strip_prefix(WORKERS)?;
    let len = usize::from_str_radix(rest.get(..8)?, 16).ok()?;
    let rest = rest.get(8..)?.strip_prefix('/')?;
    let org = rest.get(..len)?;
    let worker = rest.get(len..)?;
    Some((OrgId(org.to_owned()), WorkerRef(worker.to_owned())))
}

fn retracted_key(id: &EventId) -> String {
    format!("{RETRACTIONS}{}", id.0.simple())
}

fn encode_worker(w: &WorkerState) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + 8 + 16 + CHECK_LEN);
    out.push(u8::from(w.employed) | (u8::from(w.last_lifecycle.is_some()) << 1));
    out.extend_from_slice(&w.version.to_be_bytes());
    if let Some(last) = w.last_lifecycle {
        out.extend_from_slice(last.0.as_bytes());
    }
    out
}

fn decode_worker(b: &[u8]) -> Option<WorkerState> {
    let (&flags, rest) = b.split_first()?;
    let last_lifecycle = match (flags, rest.len()) {
        (0 | 1, 8) => None,
        (2 | 3, 24) => Some(EventId(uuid::Uuid::from_slice(&rest[8..]).ok()?)),
        _ => return None,
    };
    Some(WorkerState {
        employed: flags & 1 == 1,
        version: u64::from_be_bytes(rest[..8].try_into().ok()?),
        last_lifecycle,
    })
}

fn through_value(through: u64) -> Vec<u8> {
    seal(THROUGH, through.to_be_bytes().to_vec())
}

fn worker_entry(
    state: &LedgerState,
    org: &OrgId,
    worker: &WorkerRef,
) -> Option<(String, Option<Vec<u8>>)> {
    let w = state.worker(org, worker)?;
    let key = worker_key(org, worker);
    let value = seal(&key, encode_worker(w));
    Some((key, Some(value)))
}

fn retracted_entry(id: &EventId) -> (String, Option<Vec<u8>>) {
    let key = retracted_key(id);
    let value = seal(&key, Vec::new());
    (key, Some(value))
}

/// The metadata writes that bring the stored state from what it was before the events noted in
/// `changed` to `state`, which reflects the log through sequence `through` (`through` last).
pub(crate) fn changes(
    state: &LedgerState,
    changed: &Changed,
    through: u64,
) -> Vec<(String, Option<Vec<u8>>)> {
    let mut out: Vec<_> = changed
        .workers()
        .filter_map(|(org, worker)| worker_entry(state, org, worker))
        .collect();
    out.extend(changed.retracted().map(retracted_entry));
    out.push((THROUGH.to_owned(), Some(through_value(through))));
    out
}

/// Every entry under `prefix`, page by page.
fn scan(
    store: &dyn Log,
    prefix: &str,
    mut each: impl FnMut(&str, &[u8]) -> Result<(), String>,
) -> Result<(), String> {
    let mut after: Option<String> = None;
    loop {
        let page = store
            .meta_scan(prefix, after.as_deref(), PAGE)
            .map_err(|e| e.to_string())?;
        for (key, value) in &page {
            each(key, value)?;
        }
        match page.into_iter().next_back() {
            Some((key, _)) => after = Some(key),
            None => return Ok(()),
        }
    }
}

/// Loads the keyed state: the state and the sequence it reflects. `Ok(None)` when the store has
/// none; `Err(why)` when it has one that cannot be used (the caller rebuilds from sequence 1).
pub(crate) fn load(store: &dyn Log, head: u64) -> Result<Option<(LedgerState, u64)>, String> {
    let Some(raw) = store.meta_get(THROUGH).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let through = unseal(THROUGH, &raw)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or("its through marker does not verify")?;
    if through > head {
        return Err(format!(
            "it reflects sequence {through} but the log ends at {head}"
        ));
    }
    let mut state = LedgerState::new();
    scan(store, WORKERS, |key, value| {
        let (org, worker) =
            parse_worker_key(key).ok_or_else(|| format!("key {key:?} does not decode"))?;
        let w = unseal(key, value)
            .and_then(decode_worker)
            .ok_or_else(|| format!("the value of {key:?} does not verify"))?;
        state.restore_worker(org, worker, w);
        Ok(())
    })?;
    scan(store, RETRACTIONS, |key, value| {
        let id = key
            .strip_prefix(RETRACTIONS)
            .and_then(|hex| uuid::Uuid::try_parse(hex).ok())
            .filter(|id| key == retracted_key(&EventId(*id)))
            .ok_or_else(|| format!("key {key:?} does not decode"))?;
        if unseal(key, value) != Some(&[][..]) {
            return Err(format!("the value of {key:?} does not verify"));
        }
        state.restore_retracted(EventId(id));
        Ok(())
    })?;
    Ok(Some((state, through)))
}

/// Writes the whole of `state`, which reflects the log through sequence `through`, replacing
/// whatever keyed state and chunked snapshot the store held (see the module doc for the order
/// that keeps a crash part-way harmless).
///
/// # Errors
/// The store cannot be read or written; the next start then rebuilds again.
pub(crate) fn write_all(store: &dyn Log, state: &LedgerState, through: u64) -> Result<(), Error> {
    store.meta_write(&[(THROUGH.to_owned(), None)])?;
    delete_prefix(store, PREFIX)?;
    let mut batch: Vec<(String, Option<Vec<u8>>)> = Vec::with_capacity(PAGE);
    let entries = state
        .workers()
        .filter_map(|(org, worker, _)| worker_entry(state, org, worker))
        .chain(state.retracted().map(retracted_entry));
    for entry in entries {
        batch.push(entry);
        if batch.len() >= PAGE {
            store.meta_write(&batch)?;
            batch.clear();
        }
    }
    batch.push((THROUGH.to_owned(), Some(through_value(through))));
    store.meta_write(&batch)?;
    drop_legacy(store)
}

/// Deletes the chunked snapshot of earlier builds, if any is left.
///
/// # Errors
/// The store cannot be read or written.
pub(crate) fn drop_legacy(store: &dyn Log) -> Result<(), Error> {
    if store.meta_get(legacy::MARKER)?.is_some() {
        store.meta_write(&[(legacy::MARKER.to_owned(), None)])?;
    }
    delete_prefix(store, legacy::CHUNKS)
}

fn delete_prefix(store: &dyn Log, prefix: &str) -> Result<(), Error> {
    loop {
        let page = store.meta_scan(prefix, None, PAGE)?;
        if page.is_empty() {
            return Ok(());
        }
        let deletes: Vec<_> = page.into_iter().map(|(k, _)| (k, None)).collect();
        store.meta_write(&deletes)?;
    }
}

/// The chunked snapshot earlier builds wrote every `max(--state-snapshot-events, state / 4)`
/// events; read once to migrate a store, then deleted.
///
/// ```text
/// ledger-state                     marker: generation:u64 through:u64 chunks:u32 sha256:32
/// ledger-state/<gen:016x>/<n:08x>  chunk n of generation gen: entries…
///   entry = 1 org_len:u16 org… worker_len:u16 worker… flags:u8 version:u64 [last_lifecycle:16]
///         | 2 retracted_event_id:16
/// ```
pub(crate) mod legacy {
    use super::{Digest, Sha256};
    use wfl_domain::{EventId, LedgerState, OrgId, WorkerRef, WorkerState};
    use wfl_store::Log;

    pub(crate) const MARKER: &str = "ledger-state";
    pub(crate) const CHUNKS: &str = "ledger-state/";
    #[cfg(test)]
    const CHUNK_BYTES: usize = 64 * 1024;
    /// Chunks per write batch while a generation is written.
    #[cfg(test)]
    const CHUNKS_PER_BATCH: usize = 64;
    const WORKER: u8 = 1;
    const RETRACTED: u8 = 2;

    /// What the marker says.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct Marker {
        generation: u64,
        through: u64,
        chunks: u32,
        digest: [u8; 32],
    }

    impl Marker {
        #[cfg(test)]
        fn encode(&self) -> Vec<u8> {
            let mut out = Vec::with_capacity(52);
            out.extend_from_slice(&self.generation.to_be_bytes());
            out.extend_from_slice(&self.through.to_be_bytes());
            out.extend_from_slice(&self.chunks.to_be_bytes());
            out.extend_from_slice(&self.digest);
            out
        }

        fn decode(b: &[u8]) -> Option<Self> {
            if b.len() != 52 {
                return None;
            }
            Some(Self {
                generation: u64::from_be_bytes(b[0..8].try_into().ok()?),
                through: u64::from_be_bytes(b[8..16].try_into().ok()?),
                chunks: u32::from_be_bytes(b[16..20].try_into().ok()?),
                digest: b[20..52].try_into().ok()?,
            })
        }
    }

    fn chunk_key(generation: u64, n: u32) -> String {
        format!("{MARKER}/{generation:016x}/{n:08x}")
    }

    /// Loads the chunked snapshot: the state and the sequence it reflects. `Ok(None)` when there is
    /// none; `Err(why)` when there is one that cannot be used (the caller rebuilds from sequence 1).
    pub(crate) fn load(store: &dyn Log, head: u64) -> Result<Option<(LedgerState, u64)>, String> {
        let Some(raw) = store.meta_get(MARKER).map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        let marker = Marker::decode(&raw).ok_or("its marker does not decode")?;
        if marker.through > head {
            return Err(format!(
                "it reflects sequence {} but the log ends at {head}",
                marker.through
            ));
        }
        let mut state = LedgerState::new();
        let mut digest = Sha256::new();
        for n in 0..marker.chunks {
            let chunk = store
                .meta_get(&chunk_key(marker.generation, n))
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("chunk {n} is missing"))?;
            digest.update(&chunk);
            decode_chunk(&chunk, &mut state).ok_or_else(|| format!("chunk {n} does not decode"))?;
        }
        if digest.finalize().as_slice() != marker.digest {
            return Err("its digest does not match its chunks".to_owned());
        }
        Ok(Some((state, marker.through)))
    }

    /// Writes `state` as earlier builds did (tests make old stores with it).
    ///
    /// # Errors
    /// The store cannot be read or written; the previous snapshot then stays the latest.
    #[cfg(test)]
    pub(crate) fn write(
        store: &dyn Log,
        state: &LedgerState,
        through: u64,
    ) -> Result<(), wfl_store::Error> {
        let previous = store.meta_get(MARKER)?.as_deref().and_then(Marker::decode);
        let generation = previous.map_or(1, |m| m.generation + 1);
        let mut digest = Sha256::new();
        let mut chunks = 0u32;
        let mut pending: Vec<(String, Option<Vec<u8>>)> = Vec::new();
        let mut flush_chunk = |chunk: &mut Vec<u8>,
                               pending: &mut Vec<(String, Option<Vec<u8>>)>|
         -> Result<(), wfl_store::Error> {
            if chunk.is_empty() {
                return Ok(());
            }
            digest.update(&chunk[..]);
            pending.push((chunk_key(generation, chunks), Some(std::mem::take(chunk))));
            chunks += 1;
            if pending.len() >= CHUNKS_PER_BATCH {
                store.meta_write(pending)?;
                pending.clear();
            }
            Ok(())
        };
        let mut chunk = Vec::with_capacity(CHUNK_BYTES + 512);
        for (org, worker, w) in state.workers() {
            encode_worker(&mut chunk, org, worker, w);
            if chunk.len() >= CHUNK_BYTES {
                flush_chunk(&mut chunk, &mut pending)?;
            }
        }
        for id in state.retracted() {
            chunk.push(RETRACTED);
            chunk.extend_from_slice(id.0.as_bytes());
            if chunk.len() >= CHUNK_BYTES {
                flush_chunk(&mut chunk, &mut pending)?;
            }
        }
        flush_chunk(&mut chunk, &mut pending)?;
        let marker = Marker {
            generation,
            through,
            chunks,
            digest: digest.finalize().into(),
        };
        pending.push((MARKER.to_owned(), Some(marker.encode())));
        if let Some(old) = previous {
            pending.extend((0..old.chunks).map(|n| (chunk_key(old.generation, n), None)));
        }
        store.meta_write(&pending)?;
        Ok(())
    }

    #[cfg(test)]
    fn encode_worker(out: &mut Vec<u8>, org: &OrgId, worker: &WorkerRef, w: &WorkerState) {
        out.push(WORKER);
        for s in [org.as_str(), worker.as_str()] {
            // Ids are validated to far below 64 KiB; a longer one would not decode and the
            // snapshot would be ignored (rebuilt), never misread.
            let len = u16::try_from(s.len()).unwrap_or(u16::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        let flags = u8::from(w.employed) | (u8::from(w.last_lifecycle.is_some()) << 1);
        out.push(flags);
        out.extend_from_slice(&w.version.to_be_bytes());
        if let Some(last) = w.last_lifecycle {
            out.extend_from_slice(last.0.as_bytes());
        }
    }

    fn decode_chunk(mut b: &[u8], state: &mut LedgerState) -> Option<()> {
        fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
            if b.len() < n {
                return None;
            }
            let (head, rest) = b.split_at(n);
            *b = rest;
            Some(head)
        }
        fn text(b: &mut &[u8]) -> Option<String> {
            let len = u16::from_be_bytes(take(b, 2)?.try_into().ok()?);
            String::from_utf8(take(b, usize::from(len))?.to_vec()).ok()
        }
        fn id(b: &mut &[u8]) -> Option<EventId> {
            Some(EventId(uuid::Uuid::from_slice(take(b, 16)?).ok()?))
        }
        while !b.is_empty() {
            match take(&mut b, 1)?[0] {
                WORKER => {
                    let org = OrgId(text(&mut b)?);
                    let worker = WorkerRef(text(&mut b)?);
                    let flags = take(&mut b, 1)?[0];
                    if flags > 3 {
                        return None;
                    }
                    let version = u64::from_be_bytes(take(&mut b, 8)?.try_into().ok()?);
                    let last_lifecycle = if flags & 2 == 0 {
                        None
                    } else {
                        Some(id(&mut b)?)
                    };
                    state.restore_worker(
                        org,
                        worker,
                        WorkerState {
                            employed: flags & 1 == 1,
                            version,
                            last_lifecycle,
                        },
                    );
                }
                RETRACTED => state.restore_retracted(id(&mut b)?),
                _ => return None,
            }
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wfl_store::MemLog;

    fn state(workers: usize, retracted: usize) -> LedgerState {
        let mut s = LedgerState::new();
        for i in 0..workers {
            s.restore_worker(
                OrgId(format!("org-{}", i % 3)),
                WorkerRef(format!("w-{i}")),
                WorkerState {
                    employed: i % 2 == 0,
                    version: i as u64,
                    last_lifecycle: (i % 5 != 0).then(EventId::new_v7),
                },
            );
        }
        for _ in 0..retracted {
            s.restore_retracted(EventId::new_v7());
        }
        s
    }

    #[test]
    fn a_written_state_loads_back_equal_and_replaces_what_was_there() {
        let store = MemLog::new();
        assert_eq!(load(&store, 0).unwrap(), None);
        // More keys than one page.
        let first = state(PAGE + 7, 10);
        write_all(&store, &first, 7).unwrap();
        assert_eq!(load(&store, 7).unwrap(), Some((first, 7)));
        let second = state(100, 3);
        write_all(&store, &second, 9).unwrap();
        assert_eq!(load(&store, 9).unwrap(), Some((second, 9)));
    }

    #[test]
    fn worker_keys_round_trip_and_never_collide() {
        for (org, worker) in [("ab", "c"), ("a", "bc"), ("ü/x", "w/1"), ("", "")] {
            let (org, worker) = (OrgId(org.to_owned()), WorkerRef(worker.to_owned()));
            assert_eq!(
                parse_worker_key(&worker_key(&org, &worker)),
                Some((org, worker))
            );
        }
        assert_ne!(
            worker_key(&OrgId("ab".into()), &WorkerRef("c".into())),
            worker_key(&OrgId("a".into()), &WorkerRef("bc".into()))
        );
    }

    #[test]
    fn a_flipped_bit_a_stray_key_or_a_state_beyond_the_head_is_not_used() {
        let store = MemLog::new();
        let s = state(50, 5);
        write_all(&store, &s, 5).unwrap();
        assert!(load(&store, 4).unwrap_err().contains("the log ends at 4"));
        // A flipped bit in any byte of a worker's value.
        let (key, value) = store.meta_scan(WORKERS, None, 1).unwrap().remove(0);
        for byte in 0..value.len() {
            let mut damaged = value.clone();
            damaged[byte] ^= 0x10;
            store.meta_put(&key, &damaged).unwrap();
            let why = load(&store, 5).unwrap_err();
            assert!(why.contains("does not verify"), "{why}");
        }
        store.meta_put(&key, &value).unwrap();
        assert_eq!(load(&store, 5).unwrap(), Some((s.clone(), 5)));
        // A value moved under another worker's key does not verify either.
        let other = worker_key(&OrgId("org-0".into()), &WorkerRef("nobody".into()));
        store.meta_put(&other, &value).unwrap();
        assert!(load(&store, 5).unwrap_err().contains("does not verify"));
        store.meta_write(&[(other, None)]).unwrap();
        // A retraction key that is not an id, a through marker that does not verify.
        let stray = format!("{RETRACTIONS}not-an-id");
        store.meta_put(&stray, &seal(&stray, Vec::new())).unwrap();
        assert!(load(&store, 5).unwrap_err().contains("does not decode"));
        store.meta_write(&[(stray, None)]).unwrap();
        let mut marker = store.meta_get(THROUGH).unwrap().unwrap();
        marker[7] ^= 1;
        store.meta_put(THROUGH, &marker).unwrap();
        assert!(load(&store, 5).unwrap_err().contains("through"));
    }

    #[test]
    fn the_chunked_snapshot_of_earlier_builds_is_read_and_deleted_by_the_rewrite() {
        let store = MemLog::new();
        let s = state(3_000, 4);
        legacy::write(&store, &s, 5).unwrap();
        assert_eq!(legacy::load(&store, 5).unwrap(), Some((s.clone(), 5)));
        assert_eq!(load(&store, 5).unwrap(), None);
        write_all(&store, &s, 5).unwrap();
        assert_eq!(load(&store, 5).unwrap(), Some((s, 5)));
        assert_eq!(legacy::load(&store, 5).unwrap(), None);
        assert!(store.meta_scan(legacy::CHUNKS, None, 1).unwrap().is_empty());
    }

    #[test]
    fn a_damaged_or_missing_chunk_or_a_chunked_snapshot_beyond_the_head_is_not_used() {
        let store = MemLog::new();
        legacy::write(&store, &state(3_000, 2), 5).unwrap();
        assert!(legacy::load(&store, 4)
            .unwrap_err()
            .contains("the log ends at 4"));
        let key = format!("{}{:016x}/{:08x}", legacy::CHUNKS, 1, 0);
        let mut chunk = store.meta_get(&key).unwrap().unwrap();
        chunk[20] ^= 1;
        store.meta_put(&key, &chunk).unwrap();
        let why = legacy::load(&store, 5).unwrap_err();
        assert!(why.contains("digest") || why.contains("decode"), "{why}");
        store.meta_write(&[(key, None)]).unwrap();
        assert!(legacy::load(&store, 5).unwrap_err().contains("missing"));
    }
}
