//! Cluster mode: this ledger writes one partition, and every append it makes goes first to the
//! partition's replicated commit log ([`wfl_bus::cluster::PartitionLog`], stream
//! `WFL_PARTITION_<n>`, replicas 3), fenced by the log's last sequence, then to the local store.
//!
//! - **Write path.** For each batch the writer encodes exactly what it is about to append (the
//!   records with their stored bytes, the refusals, the writer-state metadata, and the chain hash
//!   the log ends on after it) as one `wfl.internal.v1.PartitionBatch`, appends it to the
//!   partition log expecting the last stream sequence it knows of, and only then makes the sled
//!   append (with the stream sequence it got, under [`APPLIED`], in the same atomic batch).
//!   Inbox acks and commit outcomes follow the sled flush as before, so nothing is answered
//!   `COMMITTED` before it is on a quorum of the cluster *and* on the owner's disk. A refused
//!   publish (another writer appended since) stops this ledger: it was fenced off. A publish whose
//!   outcome is unknown stops it too; the next owner (or this instance, after taking the lease
//!   again) reads the log and applies whatever was written.
//! - **Takeover** ([`take_over`]). Before writing, a new owner applies every log message after
//!   the last one its store holds, through the same store append, checking after each that its
//!   chain ends on the message's `head_hash` (a replica never trusts its copy over the log: a
//!   mismatch refuses to start). It then appends a takeover marker (no records) expecting the
//!   log's last sequence: from then on a previous owner's late publish is refused. If another
//!   writer appended in between, it reads again.
//! - The local store's position in the log is [`APPLIED`] (written atomically with each append;
//!   a marker's is written alone: re-reading a marker is harmless).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use prost::Message;
use tracing::info;
use wfl_bus::cluster::{Appended, PartitionLog};
use wfl_proto::internal as ipb;
use wfl_store::{Hash, Log, NewRecord, RefusalCode, Rejection};

use crate::Error;

/// Store metadata key: the partition log's stream sequence the local store holds up to.
pub const APPLIED: &str = "partition.applied";
/// Store metadata key: the partition-map revision of the last notice in the log (written with
/// it, so standby copies hold it too): a new owner routes by no older map.
pub const MAP_REVISION: &str = "partition.map_revision";

/// What a ledger in cluster mode needs to write its partition.
#[derive(Debug, Clone)]
pub struct PartitionRole {
    /// The partition's replicated commit log.
    pub log: PartitionLog,
    /// This instance's name (recorded in every batch it writes).
    pub owner: String,
    /// The revision of the lease it holds (recorded in every batch it writes).
    pub lease_revision: u64,
    /// The last stream sequence this writer knows the log to end on: its next publish expects it.
    pub(crate) fence: Arc<AtomicU64>,
    /// The last ledger sequence this partition's publisher put on `WFL_LEDGER`: every append
    /// carries it (store metadata `publisher.cursor`), so whoever takes the partition over
    /// resumes publishing there.
    pub(crate) published: Arc<AtomicU64>,
    /// The cluster's partition map, followed: the writer routes its inbox by it (an org
    /// placed elsewhere is forwarded, one being placed waits) and says in the log which
    /// revision it decides under ([`Notice`]). `None`: no routing (tests).
    pub map: Option<wfl_bus::cluster::LiveMap>,
}

/// A writer's word that it decides under partition-map `revision` from here on, with the orgs
/// the map says are leaving this partition (`wfl cluster place`): written to the partition log
/// as a message without records ([`ipb::MapNotice`]) carrying, for each, the ledger sequence of
/// its first event here (0: none). After it the partition commits nothing of them, so a placer
/// that reads it knows whether the org can move with no history left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The map revision.
    pub revision: u64,
    /// Orgs being placed away from this partition.
    pub leaving: Vec<String>,
}

impl PartitionRole {
    /// A role for the holder of a lease on `log`'s partition.
    #[must_use]
    pub fn new(log: PartitionLog, owner: String, lease_revision: u64) -> Self {
        Self {
            log,
            owner,
            lease_revision,
            fence: Arc::default(),
            published: Arc::default(),
            map: None,
        }
    }

    /// The same role, routing its inbox by `map`.
    #[must_use]
    pub fn with_map(self, map: wfl_bus::cluster::LiveMap) -> Self {
        Self {
            map: Some(map),
            ..self
        }
    }

    /// The partition.
    #[must_use]
    pub fn partition(&self) -> u32 {
        self.log.partition()
    }

    /// An empty log message signed by this writer (partition, owner, lease revision).
    fn stamp(&self) -> ipb::PartitionBatch {
        ipb::PartitionBatch {
            partition: self.partition(),
            owner: self.owner.clone(),
            lease_revision: self.lease_revision,
            ..ipb::PartitionBatch::default()
        }
    }
}

/// The local store's position in the partition log.
fn applied(store: &dyn Log) -> Result<u64, Error> {
    meta_u64(store, APPLIED)
}

/// A big-endian u64 of the store's metadata ([`APPLIED`], [`MAP_REVISION`]); 0 when absent.
pub(crate) fn meta_u64(store: &dyn Log, key: &str) -> Result<u64, Error> {
    Ok(store
        .meta_get(key)?
        .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
        .map_or(0, u64::from_be_bytes))
}

fn applied_meta(sequence: u64) -> (String, Option<Vec<u8>>) {
    (APPLIED.to_owned(), Some(sequence.to_be_bytes().to_vec()))
}

/// Brings the local store up to the partition log and fences the log off for this owner.
/// Returns the stream sequence of the takeover marker (the writer's first fence).
///
/// # Errors
/// [`Error::Refused`] when the log and the local store disagree (a message does not continue
/// the local chain); [`Error::Bus`] when the log cannot be read or written.
pub async fn take_over(store: Arc<dyn Log>, role: &PartitionRole) -> Result<u64, Error> {
    let started = std::time::Instant::now();
    let mut applied_messages = 0u64;
    loop {
        let (at, n) = catch_up(&store, &role.log).await?;
        applied_messages += n;
        let s = store.clone();
        let head = tokio::task::spawn_blocking(move || s.head())
            .await
            .map_err(Error::join)??;
        let marker = ipb::PartitionBatch {
            head_hash: head.hash.to_vec(),
            head_sequence: head.sequence,
            ..role.stamp()
        };
        match role
            .log
            .append(Bytes::from(marker.encode_to_vec()), at)
            .await?
        {
            Appended::Written(fence) => {
                let s = store.clone();
                tokio::task::spawn_blocking(move || s.meta_write(&[applied_meta(fence)]))
                    .await
                    .map_err(Error::join)??;
                role.fence.store(fence, Ordering::SeqCst);
                info!(
                    partition = role.partition(),
                    owner = %role.owner,
                    lease_revision = role.lease_revision,
                    applied = applied_messages,
                    head = head.sequence,
                    fence,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "partition taken over: local store caught up with the partition log"
                );
                return Ok(fence);
            }
            // Another writer appended after we read the log's end: read on.
            Appended::Fenced => {}
        }
    }
}

/// Applies every partition-log message after the local store's position; returns the position
/// reached and how many messages were applied. A standby instance calls it continually
/// ([`crate::instance`]), so that taking the partition over later applies only the tail.
///
/// # Errors
/// As [`take_over`].
pub async fn catch_up(store: &Arc<dyn Log>, log: &PartitionLog) -> Result<(u64, u64), Error> {
    catch_up_until(store, log, None).await
}

/// [`catch_up`], stopping early (between two messages) once `stop` is cancelled: a standby copy
/// must not hold its store while the instance takes the partition over.
///
/// # Errors
/// As [`take_over`].
pub(crate) async fn catch_up_until(
    store: &Arc<dyn Log>,
    log: &PartitionLog,
    stop: Option<&tokio_util::sync::CancellationToken>,
) -> Result<(u64, u64), Error> {
    let s = store.clone();
    let mut at = tokio::task::spawn_blocking(move || applied(s.as_ref()))
        .await
        .map_err(Error::join)??;
    let last = log.last().await?;
    let mut n = 0;
    while at < last && !stop.is_some_and(tokio_util::sync::CancellationToken::is_cancelled) {
        let sequence = at + 1;
        let bytes = log.get(sequence).await?;
        let s = store.clone();
        let partition = log.partition();
        tokio::task::spawn_blocking(move || apply(s.as_ref(), partition, sequence, &bytes))
            .await
            .map_err(Error::join)??;
        at = sequence;
        n += 1;
    }
    Ok((at, n))
}

/// Applies one partition-log message to the local store (see the module docs).
fn apply(store: &dyn Log, partition: u32, sequence: u64, bytes: &[u8]) -> Result<(), Error> {
    let refuse = |detail: String| Error::Refused {
        sequence,
        detail: format!("partition {partition} log message {sequence}: {detail}"),
    };
    let batch = ipb::PartitionBatch::decode(bytes).map_err(|e| refuse(format!("{e}")))?;
    let head = store.head()?;
    let records = batch
        .records
        .iter()
        .map(|r| {
            Ok(NewRecord {
                sequence: r.sequence,
                event_id: uuid(&r.event_id).ok_or_else(|| refuse("bad event id".into()))?,
                org_id: r.org_id.clone(),
                event_type: r.event_type.clone(),
                bytes: r.bytes.clone(),
                submission: if r.submission.is_empty() {
                    None
                } else {
                    Some(uuid(&r.submission).ok_or_else(|| refuse("bad submission".into()))?)
                },
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    if let Some(first) = records.first() {
        if first.sequence != head.sequence + 1 {
            return Err(refuse(format!(
                "starts at ledger sequence {}, but the local store's head is {}",
                first.sequence, head.sequence
            )));
        }
    }
    let rejections = batch
        .refusals
        .iter()
        .map(|r| {
            Ok(Rejection {
                event_id: uuid(&r.event_id).ok_or_else(|| refuse("bad event id".into()))?,
                code: RefusalCode::from_stored(r.code)
                    .ok_or_else(|| refuse(format!("unknown refusal code {}", r.code)))?,
                message: r.message.clone(),
                content: if r.content.is_empty() {
                    None
                } else {
                    Some(hash(&r.content).ok_or_else(|| refuse("bad content hash".into()))?)
                },
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let mut meta: Vec<(String, Option<Vec<u8>>)> = batch
        .meta
        .iter()
        .map(|m| (m.key.clone(), m.value.clone()))
        .collect();
    meta.push(applied_meta(sequence));
    if records.is_empty() && rejections.is_empty() {
        // A takeover marker: it must have been written on the head this store holds.
        if batch.head_sequence != head.sequence || batch.head_hash != head.hash {
            return Err(refuse(format!(
                "a marker written on head {} but the local store's head is {}",
                batch.head_sequence, head.sequence
            )));
        }
        store.meta_write(&meta)?;
        return Ok(());
    }
    store.append_with_meta(&records, &rejections, &meta)?;
    let after = store.head()?;
    if after.sequence != batch.head_sequence || after.hash.as_slice() != batch.head_hash.as_slice()
    {
        return Err(refuse(format!(
            "the local chain ends at {} with another hash than the log's (head {})",
            after.sequence, batch.head_sequence
        )));
    }
    Ok(())
}

fn uuid(bytes: &[u8]) -> Option<uuid::Uuid> {
    uuid::Uuid::from_slice(bytes).ok()
}

fn hash(bytes: &[u8]) -> Option<Hash> {
    Hash::try_from(bytes).ok()
}

/// Room kept in every partition-log message for the publish headers (the expected sequence,
/// the server's own) and for slack in the size estimate.
const HEADROOM: usize = 4 << 10;

/// Bytes of a message a writer batch is allowed per event, so that its writer-state metadata
/// (one key per changed worker or retraction, ~200 bytes each, a few per event at most) always
/// fits whole in one message: the ledger caps its batches at `max_message / this` events.
pub(crate) const METADATA_PER_EVENT: usize = 512;

/// The largest event (its wire bytes) a ledger in cluster mode commits: the record holding it,
/// with its ids, org and type, must fit in one partition-log message of `max_message` bytes. A
/// larger event is refused (`INVALID_ARGUMENT`) instead of being written nowhere.
#[must_use]
pub fn max_event_bytes(max_message: usize) -> usize {
    max_message.saturating_sub(4 * HEADROOM)
}

/// Encodes what the writer is about to append as partition-log messages of at most `budget`
/// bytes each, in order, each a copy of `stamp` (the writer's signature, see
/// [`PartitionRole::stamp`]) with its part and the chain head the log ends on after it.
///
/// One message when it fits (the usual case). Otherwise the records are split into runs that
/// fit, then the refusals, and the writer-state metadata goes whole into the last message (alone
/// when it does not fit beside the rest): the metadata is as of the batch's last record, so it
/// must never be applied before every record of the batch. A replica that applies only the
/// first parts of a batch (its writer died in between) holds a valid chain whose state
/// metadata is older than its head, which the writer's restart folds forward
/// ([`crate::snapshot`]).
///
/// # Errors
/// [`Error::Internal`] when one record, or the metadata alone, does not fit in `budget` (the
/// writer refuses such events before; see [`max_event_bytes`]).
pub(crate) fn encode_batches(
    stamp: &ipb::PartitionBatch,
    head: wfl_store::Head,
    records: &[NewRecord],
    rejections: &[Rejection],
    meta: &[(String, Option<Vec<u8>>)],
    budget: usize,
) -> Result<Vec<(Bytes, wfl_store::Head)>, Error> {
    let empty = |head: wfl_store::Head| ipb::PartitionBatch {
        head_hash: head.hash.to_vec(),
        head_sequence: head.sequence,
        ..stamp.clone()
    };
    // Bytes a repeated field's element adds: its tag, its length, itself.
    let field = |len: usize| 1 + prost::length_delimiter_len(len) + len;
    let too_big = |what: String| {
        Error::Internal(format!(
            "{what} does not fit in one partition-log message of {budget} bytes"
        ))
    };
    let mut out = Vec::new();
    let mut batch = empty(head);
    let mut size = batch.encoded_len();
    let mut last = head;
    let close = |batch: &mut ipb::PartitionBatch, last: wfl_store::Head, out: &mut Vec<_>| {
        batch.head_hash = last.hash.to_vec();
        batch.head_sequence = last.sequence;
        let done = std::mem::replace(batch, empty(last));
        out.push((Bytes::from(done.encode_to_vec()), last));
    };
    for r in records {
        let record = ipb::PartitionRecord {
            sequence: r.sequence,
            event_id: r.event_id.as_bytes().to_vec(),
            org_id: r.org_id.clone(),
            event_type: r.event_type.clone(),
            bytes: r.bytes.clone(),
            submission: r
                .submission
                .map(|s| s.as_bytes().to_vec())
                .unwrap_or_default(),
        };
        let grows = field(record.encoded_len());
        if size + grows > budget {
            if batch.records.is_empty() {
                return Err(too_big(format!(
                    "the record at ledger sequence {}",
                    r.sequence
                )));
            }
            close(&mut batch, last, &mut out);
            size = batch.encoded_len();
            if size + grows > budget {
                return Err(too_big(format!(
                    "the record at ledger sequence {}",
                    r.sequence
                )));
            }
        }
        size += grows;
        batch.records.push(record);
        last = wfl_store::Head {
            sequence: r.sequence,
            hash: wfl_store::chain_hash(&last.hash, &r.bytes),
        };
    }
    for r in rejections {
        let refusal = ipb::PartitionRefusal {
            event_id: r.event_id.as_bytes().to_vec(),
            code: r.code.stored(),
            message: r.message.clone(),
            content: r.content.map(|c| c.to_vec()).unwrap_or_default(),
        };
        let grows = field(refusal.encoded_len());
        if size + grows > budget && !(batch.records.is_empty() && batch.refusals.is_empty()) {
            close(&mut batch, last, &mut out);
            size = batch.encoded_len();
        }
        if size + grows > budget {
            return Err(too_big("a refusal".into()));
        }
        size += grows;
        batch.refusals.push(refusal);
    }
    let meta: Vec<ipb::PartitionMeta> = meta
        .iter()
        .map(|(key, value)| ipb::PartitionMeta {
            key: key.clone(),
            value: value.clone(),
        })
        .collect();
    let grows: usize = meta.iter().map(|m| field(m.encoded_len())).sum();
    if size + grows > budget && !(batch.records.is_empty() && batch.refusals.is_empty()) {
        close(&mut batch, last, &mut out);
        size = batch.encoded_len();
    }
    if size + grows > budget {
        return Err(too_big(format!(
            "the writer's metadata ({} keys)",
            meta.len()
        )));
    }
    batch.meta = meta;
    close(&mut batch, last, &mut out);
    Ok(out)
}

/// How long a writer keeps trying to append a batch whose outcome it does not know (NATS
/// leader elections take seconds) before it stops.
const APPEND_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

/// The writer's append in cluster mode: the partition log first (fenced; one message, or
/// several in order when the batch does not fit in one, see [`encode_batches`]), then the store
/// with the log position of the last.
///
/// A publish whose outcome is unknown (the ack timed out, no stream leader) is tried again
/// with the same expected sequence for up to [`APPEND_PATIENCE`]. If the log then refuses it,
/// the message after the fence is read: when it is this message (same owner, lease revision and
/// resulting chain head) the earlier attempt was written; anything else is a newer owner's.
pub(crate) async fn append(
    store: Arc<dyn Log>,
    role: PartitionRole,
    records: Vec<NewRecord>,
    rejections: Vec<Rejection>,
    mut meta: Vec<(String, Option<Vec<u8>>)>,
    notice: Option<Notice>,
) -> Result<Vec<(u64, Hash)>, Error> {
    let (s, mut stamp) = (store.clone(), role.stamp());
    let budget = role.log.max_message().saturating_sub(HEADROOM);
    let published = role.published.load(Ordering::Relaxed);
    if published > 0 {
        meta.push((
            crate::publisher::CURSOR.to_owned(),
            Some(published.to_be_bytes().to_vec()),
        ));
    }
    let (messages, records, rejections, meta_back) = tokio::task::spawn_blocking(move || {
        if let Some(notice) = notice {
            // Every append before this one is in the store: it sees all this partition holds.
            meta.push((
                MAP_REVISION.to_owned(),
                Some(notice.revision.to_be_bytes().to_vec()),
            ));
            stamp.notice = Some(map_notice(s.as_ref(), notice)?);
        }
        let head = s.head()?;
        let messages = encode_batches(&stamp, head, &records, &rejections, &meta, budget)?;
        Ok::<_, Error>((messages, records, rejections, std::mem::take(&mut meta)))
    })
    .await
    .map_err(Error::join)??;
    meta = meta_back;
    let mut sequence = role.fence.load(Ordering::SeqCst);
    for (payload, after) in messages {
        sequence = append_one(&role, payload, sequence, after).await?;
        role.fence.store(sequence, Ordering::SeqCst);
    }
    meta.push(applied_meta(sequence));
    tokio::task::spawn_blocking(move || {
        if records.is_empty() && rejections.is_empty() {
            // A notice: only the log position moves.
            return store
                .meta_write(&meta)
                .map(|()| Vec::new())
                .map_err(Error::from);
        }
        store
            .append_with_meta(&records, &rejections, &meta)
            .map_err(Error::from)
    })
    .await
    .map_err(Error::join)?
}

/// The log form of `notice`: each leaving org's first event on this partition, looked up in
/// the store's org index.
fn map_notice(store: &dyn Log, notice: Notice) -> Result<ipb::MapNotice, Error> {
    let leaving = notice
        .leaving
        .into_iter()
        .map(|org_id| {
            let filter = wfl_store::Filter {
                org_ids: vec![org_id.clone()],
                event_types: Vec::new(),
            };
            let first = store.read(1, None, &filter, 1)?;
            Ok(ipb::OrgPresence {
                org_id,
                first_sequence: first.first().map_or(0, |r| r.sequence),
            })
        })
        .collect::<Result<_, Error>>()?;
    Ok(ipb::MapNotice {
        revision: notice.revision,
        leaving,
    })
}

/// Appends one message after stream sequence `fence`; returns its stream sequence.
async fn append_one(
    role: &PartitionRole,
    payload: Bytes,
    fence: u64,
    after: wfl_store::Head,
) -> Result<u64, Error> {
    let deadline = tokio::time::Instant::now() + APPEND_PATIENCE;
    let mut backoff = std::time::Duration::from_millis(100);
    let mut unknown = false;
    loop {
        match role.log.append(payload.clone(), fence).await {
            Ok(Appended::Written(sequence)) => return Ok(sequence),
            Ok(Appended::Fenced) => {
                if unknown && is_ours(role, fence + 1, after).await? {
                    return Ok(fence + 1);
                }
                return Err(Error::Fenced {
                    partition: role.partition(),
                    detail: format!(
                        "the partition log no longer ends at stream sequence {fence}: another instance took partition {} over",
                        role.partition()
                    ),
                });
            }
            Err(wfl_bus::Error::Unavailable(why)) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(partition = role.partition(), %why, "append to the partition log not confirmed; trying again");
                unknown = true;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(std::time::Duration::from_secs(2));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Whether the log's message at `sequence` is the batch this writer tried to append.
async fn is_ours(
    role: &PartitionRole,
    sequence: u64,
    after: wfl_store::Head,
) -> Result<bool, Error> {
    let bytes = match role.log.get(sequence).await {
        Ok(b) => b,
        Err(wfl_bus::Error::Rejected(_)) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    let Ok(batch) = ipb::PartitionBatch::decode(bytes.as_ref()) else {
        return Ok(false);
    };
    Ok(batch.owner == role.owner
        && batch.lease_revision == role.lease_revision
        && batch.head_sequence == after.sequence
        && batch.head_hash == after.hash)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wfl_store::MemLog;

    fn stamp() -> ipb::PartitionBatch {
        ipb::PartitionBatch {
            partition: 3,
            owner: "a".into(),
            lease_revision: 7,
            ..ipb::PartitionBatch::default()
        }
    }

    fn records(n: u64, size: usize) -> Vec<NewRecord> {
        (1..=n)
            .map(|sequence| NewRecord {
                sequence,
                event_id: uuid::Uuid::from_u128(u128::from(sequence)),
                org_id: "acme".into(),
                event_type: "worker_hired".into(),
                bytes: vec![u8::try_from(sequence % 251).unwrap_or(0); size],
                submission: None,
            })
            .collect()
    }

    fn refusals(n: u128) -> Vec<Rejection> {
        (1..=n)
            .map(|i| Rejection {
                event_id: uuid::Uuid::from_u128(1_000_000 + i),
                code: RefusalCode::FailedPrecondition,
                message: "not employed".into(),
                content: Some([9; 32]),
            })
            .collect()
    }

    fn genesis() -> wfl_store::Head {
        MemLog::new().head().expect("head")
    }

    /// Applies `messages` to a fresh store, as a replica does, checking each against its chain.
    fn replay(messages: &[(Bytes, wfl_store::Head)]) -> MemLog {
        let replica = MemLog::new();
        for (i, (bytes, _)) in messages.iter().enumerate() {
            apply(&replica, 3, i as u64 + 1, bytes).expect("applies");
        }
        replica
    }

    #[test]
    fn a_batch_that_fits_is_one_message() {
        let meta = vec![("k".to_owned(), Some(vec![1]))];
        let out = encode_batches(
            &stamp(),
            genesis(),
            &records(10, 100),
            &refusals(2),
            &meta,
            1 << 20,
        )
        .expect("fits");
        assert_eq!(out.len(), 1);
        let batch = ipb::PartitionBatch::decode(out[0].0.as_ref()).expect("decodes");
        assert_eq!(
            (batch.records.len(), batch.refusals.len(), batch.meta.len()),
            (10, 2, 1)
        );
        assert_eq!(batch.head_sequence, 10);
        assert_eq!(
            (batch.owner.as_str(), batch.lease_revision, batch.partition),
            ("a", 7, 3)
        );
    }

    #[test]
    fn a_batch_too_big_for_one_message_is_split_in_order_with_the_metadata_last() {
        let budget = 16 << 10;
        let records = records(300, 300);
        let meta = vec![("x".to_owned(), Some(vec![2; 50])), ("y".to_owned(), None)];
        let out = encode_batches(&stamp(), genesis(), &records, &refusals(40), &meta, budget)
            .expect("splits");
        assert!(out.len() > 5, "{} messages", out.len());
        let mut sequences = Vec::new();
        let mut refused = 0;
        for (i, (bytes, head)) in out.iter().enumerate() {
            assert!(bytes.len() <= budget, "message {i}: {} bytes", bytes.len());
            let batch = ipb::PartitionBatch::decode(bytes.as_ref()).expect("decodes");
            assert_eq!(batch.head_sequence, head.sequence);
            assert_eq!(batch.head_hash, head.hash.to_vec());
            assert_eq!(
                batch.meta.is_empty(),
                i + 1 < out.len(),
                "metadata only in the last"
            );
            sequences.extend(batch.records.iter().map(|r| r.sequence));
            refused += batch.refusals.len();
        }
        assert_eq!(sequences, (1..=300).collect::<Vec<_>>());
        assert_eq!(refused, 40);
        // A replica applying the parts one by one ends where the writer's own append ends.
        let writer = MemLog::new();
        writer
            .append_with_meta(&records, &refusals(40), &meta)
            .expect("append");
        let replica = replay(&out);
        assert_eq!(replica.head().expect("head"), writer.head().expect("head"));
        assert_eq!(replica.meta_get("x").expect("meta"), Some(vec![2; 50]));
        assert_eq!(
            replica.meta_get(APPLIED).expect("meta"),
            Some((out.len() as u64).to_be_bytes().to_vec())
        );
    }

    #[test]
    fn metadata_that_does_not_fit_beside_the_last_records_goes_alone() {
        let budget = 8 << 10;
        // The records fill most of one message; the metadata needs most of another.
        let meta = vec![("state".to_owned(), Some(vec![5; 6 << 10]))];
        let out = encode_batches(&stamp(), genesis(), &records(20, 300), &[], &meta, budget)
            .expect("splits");
        assert_eq!(out.len(), 2);
        let last = ipb::PartitionBatch::decode(out[1].0.as_ref()).expect("decodes");
        assert!(last.records.is_empty() && last.refusals.is_empty());
        assert_eq!((last.meta.len(), last.head_sequence), (1, 20));
        let replica = replay(&out);
        assert_eq!(replica.head().expect("head").sequence, 20);
        assert_eq!(
            replica.meta_get("state").expect("meta"),
            Some(vec![5; 6 << 10])
        );
    }

    #[test]
    fn a_record_larger_than_a_message_is_an_error() {
        let err = encode_batches(&stamp(), genesis(), &records(1, 20_000), &[], &[], 16 << 10)
            .expect_err("too big");
        assert!(err.to_string().contains("ledger sequence 1"), "{err}");
        assert!(max_event_bytes(1 << 20) < (1 << 20) - HEADROOM);
    }
}
