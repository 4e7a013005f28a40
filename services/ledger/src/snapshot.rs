//! Snapshots of the writer's state ([`LedgerState`]), so that a restart folds only the events
//! committed after the latest snapshot instead of the whole history.
//!
//! **When.** The writer takes a snapshot once the events committed since the previous one reach
//! `max(state_snapshot_events, size of the state / 4)` (workers + retractions). Writing a
//! snapshot costs O(state), so spread over that many events it costs O(1) per event (at most 4
//! entries); a restart reads the snapshot (O(state)) and folds at most that many events: its cost
//! follows the state, not the history. The state is cloned between two batches (a consistent cut at a head sequence) and
//! written by a blocking task; commits go on meanwhile, and one snapshot at most is in flight.
//!
//! **Where.** Metadata keys of the ledger's own store (opaque to it):
//!
//! ```text
//! ledger-state                     marker: generation:u64 through:u64 chunks:u32 sha256:32
//! ledger-state/<gen:016x>/<n:08x>  chunk n of generation gen: entries…
//!   entry = 1 org_len:u16 org… worker_len:u16 worker… flags:u8 version:u64 [last_lifecycle:16]
//!                                  (flags bit 0 employed, bit 1 last_lifecycle present)
//!         | 2 retracted_event_id:16
//! ```
//!
//! The chunks of a new generation are written first; the marker and the deletion of the previous
//! generation's chunks then go in one atomic, flushed batch, so a crash at any point leaves either
//! the old snapshot or the new one. The snapshot is derived data: one whose marker or chunks do
//! not decode, whose digest disagrees, or that lies beyond the head is ignored with a WARN and the
//! state is rebuilt from sequence 1 (the pre-snapshot behaviour), never trusted.

use sha2::{Digest, Sha256};
use wfl_domain::{EventId, LedgerState, OrgId, WorkerRef, WorkerState};
use wfl_store::Log;

use crate::error::Error;

const MARKER: &str = "ledger-state";
/// A snapshot is due after a quarter of the state's size in events (at least): writing costs
/// at most 4 entries per event amortised, and a restart folds at most a quarter of the state's
/// size in events after reading the snapshot.
const STATE_SHARE: u64 = 4;
const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks per write batch while a generation is written.
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

/// Whether a snapshot is due after `since` events committed since the last one, with at least
/// `min_events` between two snapshots.
pub(crate) fn due(since: u64, min_events: u64, state: &LedgerState) -> bool {
    since >= min_events.max(state.len() as u64 / STATE_SHARE).max(1)
}

/// Loads the latest snapshot: the state and the sequence it reflects. `Ok(None)` when there is
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

/// Writes `state`, which reflects the log up to sequence `through`, as the new latest snapshot.
///
/// # Errors
/// The store cannot be read or written; the previous snapshot then stays the latest.
pub(crate) fn write(store: &dyn Log, state: &LedgerState, through: u64) -> Result<(), Error> {
    let previous = store.meta_get(MARKER)?.as_deref().and_then(Marker::decode);
    let generation = previous.map_or(1, |m| m.generation + 1);
    let mut digest = Sha256::new();
    let mut chunks = 0u32;
    let mut pending: Vec<(String, Option<Vec<u8>>)> = Vec::new();
    let mut flush_chunk =
        |chunk: &mut Vec<u8>, pending: &mut Vec<(String, Option<Vec<u8>>)>| -> Result<(), Error> {
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
    fn a_written_snapshot_loads_back_equal_and_replaces_the_previous_one() {
        let store = MemLog::new();
        assert_eq!(load(&store, 0).unwrap(), None);
        // Enough workers for several chunks.
        let first = state(5_000, 10);
        write(&store, &first, 7).unwrap();
        assert_eq!(load(&store, 7).unwrap(), Some((first, 7)));
        let second = state(100, 3);
        write(&store, &second, 9).unwrap();
        assert_eq!(load(&store, 9).unwrap(), Some((second, 9)));
        // The first generation's chunks are gone.
        assert_eq!(store.meta_get(&chunk_key(1, 0)).unwrap(), None);
    }

    #[test]
    fn a_damaged_or_missing_chunk_or_a_snapshot_beyond_the_head_is_not_used() {
        let store = MemLog::new();
        write(&store, &state(3_000, 2), 5).unwrap();
        assert!(load(&store, 4).unwrap_err().contains("the log ends at 4"));
        let key = chunk_key(1, 0);
        let mut chunk = store.meta_get(&key).unwrap().unwrap();
        chunk[20] ^= 1;
        store.meta_put(&key, &chunk).unwrap();
        let why = load(&store, 5).unwrap_err();
        assert!(why.contains("digest") || why.contains("decode"), "{why}");
        store.meta_write(&[(key, None)]).unwrap();
        assert!(load(&store, 5).unwrap_err().contains("missing"));
    }

    #[test]
    fn due_waits_for_the_larger_of_the_minimum_and_the_state() {
        let small = state(10, 0);
        assert!(!due(99, 100, &small));
        assert!(due(100, 100, &small));
        // A state bigger than four times the minimum: a quarter of the state's size.
        let big = state(1000, 0);
        assert!(!due(249, 100, &big));
        assert!(due(250, 100, &big));
    }
}
