//! The gRPC `wfl.v1.Ledger` service: Read, ReadBatches and Head over the store.
//!
//! Reads run on the blocking pool in chunks (read and checked there, never decoded) and stream
//! through a small bounded channel, so a slow client holds at most a few chunks in memory.
//! `Read` and `ReadBatches` share their checks ([`LedgerApi::read_plan`]) and their reading task
//! ([`spawn_read`]); they differ only in how a chunk's records are packed into messages, which
//! carry the stored bytes ([`ReadStored`], served by [`crate::stored::LedgerService`]; the
//! generated trait's handlers decode the same answer). Store errors become `tonic::Status` only
//! through `impl From<Error> for Status` ([`crate::error`]).

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use wfl_domain::classify::Bucket;
use wfl_domain::EventType;
use wfl_proto::pb;
use wfl_store::{Filter, Log, StoredRecord};

use crate::checkpoint::SignedCheckpoint;
use crate::error::status;
use crate::stored::{Encoded, EncodedStream, ReadStored};
use crate::{codec, subscribe, Error};

const CHUNK: usize = 1000;

/// The `Ledger` gRPC service.
#[derive(Clone)]
pub struct LedgerApi {
    store: Arc<dyn Log>,
    head: watch::Receiver<u64>,
    subscribers: Arc<subscribe::Registry>,
    limits: subscribe::Limits,
    public_key: ed25519_dalek::VerifyingKey,
}

impl LedgerApi {
    pub(crate) fn new(
        store: Arc<dyn Log>,
        head: watch::Receiver<u64>,
        subscribers: Arc<subscribe::Registry>,
        limits: subscribe::Limits,
        public_key: ed25519_dalek::VerifyingKey,
    ) -> Self {
        Self {
            store,
            head,
            subscribers,
            limits,
            public_key,
        }
    }

    /// Runs a store call on the blocking pool; errors through [`status`].
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Log) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Status> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(|e| status(Error::join(e)))?
            .map_err(status)
    }

    /// The head as a tree size, for `0 = the head` arguments and range checks.
    async fn head_size(&self) -> Result<u64, Status> {
        self.blocking(|s| Ok(s.head()?.sequence)).await
    }

    /// What a `ReadRequest` asks for, checked and narrowed to the caller's orgs: the one place
    /// `Read` and `ReadBatches` authorize and validate.
    fn read_plan(&self, request: Request<pb::ReadRequest>) -> Result<ReadPlan, Status> {
        let caller = wfl_auth::caller(&request)?;
        let mut req = request.into_inner();
        check_org_filter(&req.org_ids, self.limits.max_org_filter)?;
        req.org_ids = caller.org_filter(req.org_ids)?;
        let filter = filter(req.org_ids, &req.event_types)?;
        if req.as_of_recorded_at_micros < 0 {
            return Err(invalid(
                "as_of_recorded_at_micros",
                "µs since the Unix epoch, or 0 for no bound",
            ));
        }
        if req.to_sequence != 0 && req.to_sequence < req.from_sequence {
            return Err(invalid(
                "to_sequence",
                &format!(
                    "{} is before from_sequence {} (0 = up to the head)",
                    req.to_sequence, req.from_sequence
                ),
            ));
        }
        let head = self.store.head().map_err(|e| status(e.into()))?.sequence;
        Ok(ReadPlan {
            from: req.from_sequence.max(1),
            to: if req.to_sequence == 0 {
                head
            } else {
                req.to_sequence.min(head)
            },
            filter,
            limit: if req.limit == 0 { u64::MAX } else { req.limit },
            recorded_bound: req.as_of_recorded_at_micros,
        })
    }
}

/// A size argument: 0 means the head; beyond the head is OUT_OF_RANGE naming the field.
fn size_arg(field: &str, value: u64, head: u64) -> Result<u64, Status> {
    match value {
        0 => Ok(head),
        v if v > head => Err(out_of_range(
            field,
            &format!("{v} is beyond the head {head}"),
        )),
        v => Ok(v),
    }
}

fn hashes(list: Vec<wfl_store::Hash>) -> Vec<Vec<u8>> {
    list.into_iter().map(|h| h.to_vec()).collect()
}

/// Refuses an `org_ids` filter longer than `max` entries, or with an entry longer than an id
/// may be.
fn check_org_filter(org_ids: &[String], max: usize) -> Result<(), Status> {
    if org_ids.len() > max {
        return Err(invalid(
            "org_ids",
            &format!("{} entries; at most {max} (max_org_filter)", org_ids.len()),
        ));
    }
    if let Some((i, o)) = org_ids
        .iter()
        .enumerate()
        .find(|(_, o)| o.len() > wfl_domain::validate::MAX_ID)
    {
        return Err(invalid(
            &format!("org_ids[{i}]"),
            &format!(
                "{} bytes; at most {}",
                o.len(),
                wfl_domain::validate::MAX_ID
            ),
        ));
    }
    Ok(())
}

/// The store filter for a request's org and type lists.
fn filter(org_ids: Vec<String>, event_types: &[String]) -> Result<Filter, Status> {
    let mut types = Vec::with_capacity(event_types.len());
    for (i, t) in event_types.iter().enumerate() {
        let Some(parsed) = EventType::parse(t) else {
            return Err(invalid(
                &format!("event_types[{i}]"),
                &format!("unknown event type {t:?}"),
            ));
        };
        types.push(parsed.as_str().to_owned());
    }
    // A type named twice filters as once: the list's length is bounded by the kinds of event,
    // not by what a caller sends.
    types.sort_unstable();
    types.dedup();
    Ok(Filter {
        org_ids,
        event_types: types,
    })
}

/// A checked `ReadRequest`.
struct ReadPlan {
    from: u64,
    /// Inclusive; the head as of the call when the request said 0.
    to: u64,
    filter: Filter,
    /// Events still to send (`u64::MAX`: no limit).
    limit: u64,
    /// 0: no bound; otherwise events recorded after this instant are left out.
    recorded_bound: i64,
}

/// Messages queued per `ReadBatches` call: with [`CHUNK`] read ahead, at most a few thousand
/// events (a few MiB) held per reader.
const BATCH_QUEUE: usize = 4;

/// The events per message a `ReadRequest.max_batch` asks for: 0 is the most, more is capped.
fn read_batch_of(max_batch: u32) -> usize {
    match max_batch {
        0 => subscribe::MAX_BATCH,
        n => subscribe::Subscription::batch_of(n),
    }
}

/// How a read packs a chunk's records into messages (`batch`: events per message, for packers
/// that batch).
type Pack = fn(Vec<StoredRecord>, usize) -> Vec<Encoded>;

/// A record checked and kept as stored ([`codec::check_stored`]), `None` when it was recorded
/// after the request's bound: what a read sends without decoding it.
fn stored(record: StoredRecord, recorded_bound: i64) -> Result<Option<StoredRecord>, Error> {
    let recorded_at = codec::check_stored(&record)?;
    // What was known then: leave out what was recorded after the bound.
    Ok((recorded_bound == 0 || recorded_at <= recorded_bound).then_some(record))
}

/// The stored records of `Read`, one message each.
fn stored_each(records: Vec<StoredRecord>, _batch: usize) -> Vec<Encoded> {
    records
        .iter()
        .map(|r| {
            let mut out = Vec::with_capacity(codec::committed_len(r));
            codec::put_committed(&mut out, r);
            Encoded(out)
        })
        .collect()
}

/// Cuts consecutive items into runs of at most `batch` items and about
/// [`subscribe::BATCH_BYTES`] of stored bytes (`size`) each; never an empty run.
fn runs<I>(items: Vec<I>, batch: usize, size: impl Fn(&I) -> usize) -> Vec<Vec<I>> {
    let mut out = Vec::with_capacity(items.len().div_ceil(batch.max(1)));
    let mut current = Vec::new();
    let mut bytes = 0usize;
    for item in items {
        bytes += size(&item);
        current.push(item);
        if current.len() >= batch || bytes >= subscribe::BATCH_BYTES {
            out.push(std::mem::take(&mut current));
            bytes = 0;
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// `ReadBatches`' messages from stored records: the same runs ([`runs`]), each encoded once.
fn stored_batches(records: Vec<StoredRecord>, batch: usize) -> Vec<Encoded> {
    runs(records, batch, |r| r.bytes.len())
        .iter()
        .map(|run| Encoded(codec::put_batch(run)))
        .collect()
}

/// What [`read_chunk`] found: the records, the error of a bad record after them, the last
/// sequence looked at.
type Chunk = (Vec<StoredRecord>, Option<Error>, Option<u64>);

/// One chunk of a read, done on the blocking pool: the records from `from` that `filter` keeps
/// (at most `take`), each checked ([`stored`]). Returns them (those before a bad record, when
/// there is one, then its error) and the last sequence the chunk looked at (`None`: nothing
/// left up to `to`).
fn read_chunk(
    store: &dyn Log,
    (from, to): (u64, u64),
    filter: &Filter,
    take: usize,
    recorded_bound: i64,
) -> Result<Chunk, Error> {
    let records = store.read(from, Some(to), filter, take)?;
    let last = records.last().map(|r| r.sequence);
    let mut items = Vec::with_capacity(records.len());
    for r in records {
        match stored(r, recorded_bound) {
            Ok(Some(item)) => items.push(item),
            Ok(None) => {}
            Err(e) => return Ok((items, Some(e), last)),
        }
    }
    Ok((items, None, last))
}

/// Streams what `plan` selects through a queue of `queue` messages, reading and checking
/// [`CHUNK`] records at a time on the blocking pool; `pack` turns each chunk's records into
/// messages (`batch`: events per message, for packers that batch). The task ends when the range
/// or the limit is exhausted, at the first error (sent as the stream's last item), or when the
/// client goes away.
fn spawn_read(
    store: Arc<dyn Log>,
    plan: ReadPlan,
    queue: usize,
    batch: usize,
    pack: Pack,
) -> mpsc::Receiver<Result<Encoded, Status>> {
    let (tx, rx) = mpsc::channel(queue);
    tokio::spawn(async move {
        let ReadPlan {
            mut from,
            to,
            filter,
            limit: mut remaining,
            recorded_bound,
        } = plan;
        let filter = Arc::new(filter);
        while from <= to && remaining > 0 {
            let s = store.clone();
            let f = filter.clone();
            let take = usize::try_from(remaining.min(CHUNK as u64)).unwrap_or(CHUNK);
            let chunk = tokio::task::spawn_blocking(move || {
                read_chunk(s.as_ref(), (from, to), &f, take, recorded_bound)
                    .map(|(events, failed, last)| (events.len(), pack(events, batch), failed, last))
            })
            .await
            .map_err(Error::join)
            .and_then(|r| r);
            let (sent, messages, failed, last) = match chunk {
                Ok(c) => c,
                Err(e) => {
                    let _ = tx.send(Err(status(e))).await;
                    return;
                }
            };
            for m in messages {
                if tx.send(Ok(m)).await.is_err() {
                    return; // the client went away
                }
            }
            if let Some(e) = failed {
                let _ = tx.send(Err(status(e))).await;
                return;
            }
            let Some(last) = last else {
                return;
            };
            remaining -= (sent as u64).min(remaining);
            from = last + 1;
        }
    });
    rx
}

type SubscribeStream = Pin<Box<dyn Stream<Item = Result<pb::SubscribeResponse, Status>> + Send>>;
/// A stream of messages of one type, as the generated trait takes it.
type MessageStream<M> = Pin<Box<dyn Stream<Item = Result<M, Status>> + Send>>;
type ReadStream = MessageStream<pb::CommittedEvent>;
type ReadBatchesStream = MessageStream<pb::EventBatch>;
type CheckpointStream = Pin<Box<dyn Stream<Item = Result<pb::SignedCheckpoint, Status>> + Send>>;

#[tonic::async_trait]
impl pb::ledger_server::Ledger for LedgerApi {
    type ReadStream = ReadStream;
    type ReadBatchesStream = ReadBatchesStream;
    type SubscribeStream = SubscribeStream;
    type ListCheckpointsStream = CheckpointStream;

    async fn get_checkpoint(
        &self,
        request: Request<pb::GetCheckpointRequest>,
    ) -> Result<Response<pb::SignedCheckpoint>, Status> {
        let size = request.into_inner().tree_size;
        let found = self
            .blocking(move |s| {
                Ok(if size == 0 {
                    s.latest_checkpoint()?
                } else {
                    s.checkpoints(size, 1)?
                        .into_iter()
                        .find(|(n, _)| *n == size)
                })
            })
            .await?;
        let Some((_, bytes)) = found else {
            return Err(Status::not_found(if size == 0 {
                "no checkpoint has been cut yet".to_owned()
            } else {
                format!("tree_size: no checkpoint was cut at {size}")
            }));
        };
        let signed = SignedCheckpoint::decode(&bytes).map_err(status)?;
        Ok(Response::new(signed.to_pb()))
    }

    async fn list_checkpoints(
        &self,
        request: Request<pb::ListCheckpointsRequest>,
    ) -> Result<Response<Self::ListCheckpointsStream>, Status> {
        let mut from = request.into_inner().from_size;
        let store = self.store.clone();
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let s = store.clone();
                let page = tokio::task::spawn_blocking(move || s.checkpoints(from, CHUNK)).await;
                let page = match page {
                    Ok(Ok(p)) => p,
                    Ok(Err(e)) => {
                        let _ = tx.send(Err(status(e.into()))).await;
                        return;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(status(Error::join(e)))).await;
                        return;
                    }
                };
                let Some(last) = page.last().map(|(n, _)| *n) else {
                    return;
                };
                for (_, bytes) in page {
                    let item = SignedCheckpoint::decode(&bytes)
                        .map(|c| c.to_pb())
                        .map_err(status);
                    if tx.send(item).await.is_err() {
                        return;
                    }
                }
                from = last + 1;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn get_inclusion_proof(
        &self,
        request: Request<pb::InclusionProofRequest>,
    ) -> Result<Response<pb::InclusionProof>, Status> {
        let req = request.into_inner();
        if req.sequence == 0 {
            return Err(invalid("sequence", "must be at least 1"));
        }
        let head = self.head_size().await?;
        if req.tree_size == 0 && req.sequence > head {
            // Not committed yet: the same answer as a tree size beyond the head.
            return Err(out_of_range(
                "sequence",
                &format!("{} is beyond the head {head}", req.sequence),
            ));
        }
        let size = size_arg("tree_size", req.tree_size, head)?;
        if req.sequence > size {
            return Err(invalid(
                "sequence",
                &format!("{} is not in the tree of size {size}", req.sequence),
            ));
        }
        let sequence = req.sequence;
        let (record, root, proof) = self
            .blocking(move |s| {
                let record = s
                    .get(sequence)?
                    .ok_or_else(|| Error::Internal(format!("record {sequence} missing")))?;
                Ok((
                    record,
                    s.merkle_root(size)?,
                    s.inclusion_proof(sequence, size)?,
                ))
            })
            .await?;
        Ok(Response::new(pb::InclusionProof {
            sequence,
            tree_size: size,
            leaf_hash: wfl_store::merkle::leaf_hash(&record.bytes).to_vec(),
            root_hash: root.to_vec(),
            proof: hashes(proof),
        }))
    }

    async fn get_consistency_proof(
        &self,
        request: Request<pb::ConsistencyProofRequest>,
    ) -> Result<Response<pb::ConsistencyProof>, Status> {
        let req = request.into_inner();
        if req.old_size == 0 {
            return Err(invalid("old_size", "must be at least 1"));
        }
        let head = self.head_size().await?;
        let new = size_arg("new_size", req.new_size, head)?;
        if req.old_size > new {
            return Err(invalid(
                "old_size",
                &format!("{} is larger than new_size {new}", req.old_size),
            ));
        }
        let old = req.old_size;
        let (old_root, new_root, proof) = self
            .blocking(move |s| {
                Ok((
                    s.merkle_root(old)?,
                    s.merkle_root(new)?,
                    s.consistency_proof(old, new)?,
                ))
            })
            .await?;
        Ok(Response::new(pb::ConsistencyProof {
            old_size: old,
            new_size: new,
            old_root: old_root.to_vec(),
            new_root: new_root.to_vec(),
            proof: hashes(proof),
        }))
    }

    async fn get_public_key(
        &self,
        _request: Request<pb::PublicKeyRequest>,
    ) -> Result<Response<pb::PublicKey>, Status> {
        Ok(Response::new(pb::PublicKey {
            algorithm: "ed25519".to_owned(),
            public_key: self.public_key.as_bytes().to_vec(),
        }))
    }

    /// Served by [`crate::stored::LedgerService`] from the stored bytes
    /// ([`ReadStored::subscribe_stored`]); this is the same answer decoded, for a `LedgerApi`
    /// served through the generated server alone.
    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        Ok(decode_each(self.subscribe_stored(request).await?))
    }

    /// Served by [`crate::stored::LedgerService`] from the stored bytes; this is the same
    /// answer decoded, for a `LedgerApi` served through the generated server alone.
    async fn read(
        &self,
        request: Request<pb::ReadRequest>,
    ) -> Result<Response<Self::ReadStream>, Status> {
        Ok(decode_each(self.read_stored(request, false).await?))
    }

    /// As [`Self::read`], for `ReadBatches`.
    async fn read_batches(
        &self,
        request: Request<pb::ReadRequest>,
    ) -> Result<Response<Self::ReadBatchesStream>, Status> {
        Ok(decode_each(self.read_stored(request, true).await?))
    }

    async fn head(
        &self,
        _request: Request<pb::HeadRequest>,
    ) -> Result<Response<pb::HeadResponse>, Status> {
        let head = self.store.head().map_err(|e| status(e.into()))?;
        Ok(Response::new(pb::HeadResponse {
            sequence: head.sequence,
            hash: head.hash.to_vec(),
        }))
    }
}

/// A stream of [`ReadStored`] answers, each message decoded as `M`.
fn decode_each<M: prost::Message + Default + 'static>(
    response: Response<EncodedStream>,
) -> Response<MessageStream<M>> {
    use futures::StreamExt;
    response.map(|stream| {
        let decoded = stream.map(|item| {
            item.and_then(|e| {
                M::decode(e.0.as_slice())
                    .map_err(|d| Status::internal(format!("a stored answer does not decode: {d}")))
            })
        });
        Box::pin(decoded) as MessageStream<M>
    })
}

#[tonic::async_trait]
impl ReadStored for LedgerApi {
    async fn read_stored(
        &self,
        request: Request<pb::ReadRequest>,
        batches: bool,
    ) -> Result<Response<EncodedStream>, Status> {
        let (queue, batch, pack): (usize, usize, Pack) = if batches {
            let batch = read_batch_of(request.get_ref().max_batch);
            (BATCH_QUEUE, batch, stored_batches)
        } else {
            (2 * CHUNK, 1, stored_each)
        };
        let plan = self.read_plan(request)?;
        let rx = spawn_read(self.store.clone(), plan, queue, batch, pack);
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn subscribe_stored(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<EncodedStream>, Status> {
        let peer = request
            .remote_addr()
            .map_or_else(|| "unknown".to_owned(), |a| a.to_string());
        let caller = wfl_auth::caller(&request)?;
        let mut req = request.into_inner();
        // The caller's list is bounded, not the orgs its token covers (an empty list).
        check_org_filter(&req.org_ids, self.limits.max_org_filter)?;
        req.org_ids = caller.org_filter(req.org_ids)?;
        let heartbeat = match req.heartbeat_ms {
            0 => None,
            ms if ms < 100 => {
                return Err(invalid(
                    "heartbeat_ms",
                    "at least 100 ms (or 0 for the default)",
                ))
            }
            ms => Some(std::time::Duration::from_millis(u64::from(ms))),
        };
        let mut buckets = Vec::with_capacity(req.buckets.len());
        for (i, b) in req.buckets.iter().enumerate() {
            let Some(bucket) = Bucket::ALL
                .iter()
                .copied()
                .find(|k| k.as_str() == b.as_str())
            else {
                let names: Vec<&str> = Bucket::ALL.iter().map(|k| k.as_str()).collect();
                return Err(invalid(
                    &format!("buckets[{i}]"),
                    &format!("one of {}", names.join(", ")),
                ));
            };
            if !buckets.contains(&bucket) {
                buckets.push(bucket);
            }
        }
        let subscription = subscribe::Subscription {
            from: req.from_sequence.max(1),
            buckets,
            filter: filter(req.org_ids, &req.event_types)?,
            heartbeat,
            peer,
            batch: subscribe::Subscription::batch_of(req.max_batch),
        };
        let rx = subscribe::start(
            self.store.clone(),
            self.head.clone(),
            &self.subscribers,
            self.limits,
            subscription,
        )?;
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

fn out_of_range(field: &str, description: &str) -> Status {
    use tonic_types::{ErrorDetails, StatusExt};
    let details = ErrorDetails::with_bad_request_violation(field, description);
    Status::with_error_details(
        tonic::Code::OutOfRange,
        format!("{field}: {description}"),
        details,
    )
}

fn invalid(field: &str, description: &str) -> Status {
    use tonic_types::{ErrorDetails, StatusExt};
    let details = ErrorDetails::with_bad_request_violation(field, description);
    Status::with_error_details(
        tonic::Code::InvalidArgument,
        format!("{field}: {description}"),
        details,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_holds_at_most_max_batch_events_and_is_never_empty() {
        let batches = runs((1..=25).collect::<Vec<u64>>(), 7, |_| 10);
        let lens: Vec<usize> = batches.iter().map(Vec::len).collect();
        assert_eq!(lens, [7, 7, 7, 4]);
        assert!(runs(Vec::<u64>::new(), 7, |_| 10).is_empty());
        assert_eq!(batches.concat(), (1..=25).collect::<Vec<_>>());
    }

    #[test]
    fn a_batch_is_closed_at_its_byte_cap() {
        let big = subscribe::BATCH_BYTES / 3 + 1;
        let batches = runs(vec![big; 7], 1000, |size| *size);
        let lens: Vec<usize> = batches.iter().map(Vec::len).collect();
        assert_eq!(lens, [3, 3, 1]);
    }

    /// What decoding each record and encoding the messages gives (what the ledger sent before
    /// it sent stored bytes), and what the stored path sends, in batches of `batch` (1:
    /// `Read`'s one per message) and under a recorded-at bound.
    fn both_ways(records: &[StoredRecord], batch: usize, bound: i64) -> (Vec<u8>, Vec<u8>) {
        use prost::Message;
        let stored_items: Vec<StoredRecord> = records
            .iter()
            .filter_map(|r| stored(r.clone(), bound).expect("checks"))
            .collect();
        let decoded: Vec<(pb::CommittedEvent, usize)> = stored_items
            .iter()
            .map(|r| (codec::decode(r).expect("decodes"), r.bytes.len()))
            .collect();
        let (want, got): (Vec<Vec<u8>>, Vec<Encoded>) = if batch == 1 {
            (
                decoded.iter().map(|(c, _)| c.encode_to_vec()).collect(),
                stored_each(stored_items, 1),
            )
        } else {
            (
                runs(decoded, batch, |(_, size)| *size)
                    .into_iter()
                    .map(|run| {
                        pb::EventBatch {
                            events: run.into_iter().map(|(c, _)| c).collect(),
                        }
                        .encode_to_vec()
                    })
                    .collect(),
                stored_batches(stored_items, batch),
            )
        };
        assert_eq!(want.len(), got.len(), "messages");
        (
            want.concat(),
            got.iter().flat_map(|e| e.0.clone()).collect(),
        )
    }

    #[test]
    fn stored_bytes_are_sent_as_the_generated_handlers_would_send_them() {
        let records = codec::chain(250);
        for batch in [1, 7, 100, 1_000] {
            for bound in [0, 1_700_000_000_000_000 + 120] {
                let (want, got) = both_ways(&records, batch, bound);
                // Byte for byte: prost writes fields in order, and the stored bytes are the
                // message without its two hash fields, which come last.
                assert!(want == got, "batch {batch}, bound {bound}");
            }
        }
        // And a decoder reads the events with their hashes and sequences.
        let batches = stored_batches(records.clone(), 100);
        let mut read = Vec::new();
        for b in &batches {
            let batch =
                <pb::EventBatch as prost::Message>::decode(b.0.as_slice()).expect("decodes");
            read.extend(batch.events);
        }
        assert_eq!(read.len(), 250);
        for (c, r) in read.iter().zip(&records) {
            assert_eq!(c.sequence, r.sequence);
            assert_eq!(c.hash, r.hash.to_vec());
            assert_eq!(c.prev_hash, r.prev_hash.to_vec());
            assert!(c.event.is_some());
        }
    }

    #[test]
    fn a_damaged_record_is_refused_not_sent() {
        let records = codec::chain(3);
        // A flipped bit in the event body, which may still decode: the hash no longer matches.
        let mut flipped = records[1].clone();
        let at = flipped.bytes.len() - 3;
        flipped.bytes[at] ^= 0x01;
        let e = stored(flipped, 0).expect_err("a flipped bit is refused");
        assert_eq!(Status::from(e).code(), tonic::Code::DataLoss);
        // Bytes that hash right but name another sequence (a record stored under the wrong key).
        let mut misplaced = records[2].clone();
        misplaced.sequence = 9;
        let e = stored(misplaced, 0).expect_err("a misplaced record is refused");
        assert!(e.to_string().contains("record says sequence 3"), "{e}");
    }

    #[test]
    fn max_batch_zero_is_the_most_and_more_is_capped() {
        assert_eq!(read_batch_of(0), subscribe::MAX_BATCH);
        assert_eq!(read_batch_of(1), 1);
        assert_eq!(read_batch_of(7), 7);
        assert_eq!(read_batch_of(u32::MAX), subscribe::MAX_BATCH);
    }
}
