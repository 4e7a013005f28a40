//! Catch-up subscriptions (`Ledger.Subscribe`).
//!
//! A subscription is one task that reads committed records from the store in sequence order and
//! sends them through a small bounded channel. History and live events come from the same place
//! (the store, following the head sequence), so there is no switch-over where an event could be
//! missed or sent twice.
//!
//! A subscriber that asks for `max_batch` > 1 gets the events in `EventBatch` messages of up to
//! that many events (at most [`MAX_BATCH`], and a batch is closed at [`BATCH_BYTES`] of stored
//! events): one message per read chunk instead of one per event. A batch holds only what was read,
//! it never waits for more events.
//!
//! **Memory bound per subscriber:** at most [`CHUNK`] records (or one batch) read from disk plus
//! [`QUEUE`] − 1 events' worth of messages queued for the transport (a batched subscriber's queue
//! holds `QUEUE / batch` messages, at least 2), plus the HTTP/2 stream window held by the transport. A slow
//! subscriber holds no more than that: it is simply served from disk at its own pace. A subscriber
//! that takes nothing for the stall timeout is ended with `RESOURCE_EXHAUSTED` naming the sequence
//! to resume from (one queue slot is always kept free for that final status).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tonic::Status;
use wfl_proto::pb;
use wfl_store::{Filter, Log, StoredRecord};

use crate::error::status;
use crate::stored::Encoded;
use crate::{codec, Error};

/// Records read from disk at a time, per subscriber.
pub const CHUNK: usize = 256;
/// Messages queued for the transport, per subscriber (one-event messages; a batched subscriber's
/// queue holds as many events' worth).
pub const QUEUE: usize = 256;
/// The largest `max_batch` honoured; more is served as this.
pub const MAX_BATCH: usize = 1000;
/// A batch is closed once its events' stored bytes reach this, whatever `max_batch` says, so a
/// message stays far under the 4 MiB default limit of gRPC clients.
pub const BATCH_BYTES: usize = 1 << 20;

/// Subscription settings.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A subscriber that takes nothing for this long is ended (`RESOURCE_EXHAUSTED`).
    pub stall_timeout: Duration,
    /// Heartbeat period when the client does not ask for one.
    pub default_heartbeat: Duration,
    /// Live subscriptions at most; one more is refused with `RESOURCE_EXHAUSTED` naming the
    /// limit (each holds a task, a queue and a read chunk: see the memory bound above).
    pub max_subscribers: usize,
    /// Entries of an `org_ids` filter (Subscribe and Read) at most; more is `INVALID_ARGUMENT`.
    pub max_org_filter: usize,
}

/// Default of [`Limits::max_subscribers`].
pub const DEFAULT_MAX_SUBSCRIBERS: usize = 1024;
/// Default of [`Limits::max_org_filter`].
pub const DEFAULT_MAX_ORG_FILTER: usize = 1000;

impl Default for Limits {
    fn default() -> Self {
        Self {
            stall_timeout: Duration::from_secs(60),
            default_heartbeat: Duration::from_secs(5),
            max_subscribers: DEFAULT_MAX_SUBSCRIBERS,
            max_org_filter: DEFAULT_MAX_ORG_FILTER,
        }
    }
}

/// Live subscriptions, for the lag metrics.
#[derive(Debug, Default)]
pub struct Registry {
    next_id: AtomicU64,
    live: Mutex<BTreeMap<u64, Arc<Stats>>>,
}

/// What the metrics show of one subscription.
#[derive(Debug)]
pub struct Stats {
    pub peer: String,
    /// Every matching event up to this sequence has been handed to the transport.
    pub position: AtomicU64,
    /// Messages waiting in this subscriber's queue (never more than [`QUEUE`] − 1).
    pub queued: AtomicU64,
}

/// Removes a subscription from the registry when its task ends.
struct Registered {
    registry: Arc<Registry>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Ok(mut live) = self.registry.live.lock() {
            live.remove(&self.id);
        }
    }
}

impl Registry {
    /// Registers a subscription unless `max` are live already.
    fn register(
        self: &Arc<Self>,
        peer: String,
        position: u64,
        max: usize,
    ) -> Result<(Registered, Arc<Stats>), Status> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let stats = Arc::new(Stats {
            peer,
            position: AtomicU64::new(position),
            queued: AtomicU64::new(0),
        });
        let mut live = self
            .live
            .lock()
            .map_err(|_| Status::internal("subscriber registry poisoned"))?;
        if live.len() >= max {
            return Err(Status::resource_exhausted(format!(
                "max_subscribers: {} live subscriptions, the limit is {max}; retry later",
                live.len()
            )));
        }
        live.insert(id, stats.clone());
        Ok((
            Registered {
                registry: self.clone(),
                id,
            },
            stats,
        ))
    }

    /// Registers `wfl_subscribers` and, per live subscription, `wfl_subscriber_lag{id,peer}`
    /// (committed events up to `head` not yet sent) and `wfl_subscriber_queued{id,peer}`, read
    /// at each scrape. A subscription's series disappear a few scrapes after it ends.
    pub fn register_metrics(
        self: &Arc<Self>,
        registry: &wfl_metrics::Registry,
        head: watch::Receiver<u64>,
    ) {
        let this = Arc::downgrade(self);
        let count = registry.gauge("wfl_subscribers", "Live Ledger.Subscribe streams.");
        registry.on_scrape(move |registry| {
            let Some(this) = this.upgrade() else { return };
            let live = this.live.lock().map(|l| l.clone()).unwrap_or_default();
            count.set(live.len() as f64);
            let head = *head.borrow();
            for (id, s) in &live {
                let labels = [("id", id.to_string()), ("peer", s.peer.clone())];
                registry
                    .gauge_with(
                        "wfl_subscriber_lag",
                        &labels,
                        "Committed events a subscriber has not been sent yet.",
                    )
                    .set(head.saturating_sub(s.position.load(Ordering::Relaxed)) as f64);
                registry
                    .gauge_with(
                        "wfl_subscriber_queued",
                        &labels,
                        "Messages waiting in a subscriber's server-side queue (bounded).",
                    )
                    .set(s.queued.load(Ordering::Relaxed) as f64);
            }
        });
    }
}

/// Why a subscription task stopped sending.
enum Stop {
    /// The client went away.
    Gone,
    /// The client took nothing for the stall timeout.
    Stalled,
}

type Item = Result<Encoded, Status>;

/// Starts a subscription task and returns the receiving end of its queue.
///
/// # Errors
/// `RESOURCE_EXHAUSTED` naming `max_subscribers` when that many are live.
pub(crate) fn start(
    store: Arc<dyn Log>,
    head: watch::Receiver<u64>,
    registry: &Arc<Registry>,
    limits: Limits,
    request: Subscription,
) -> Result<mpsc::Receiver<Item>, Status> {
    let (tx, rx) = mpsc::channel(queue_len(request.batch));
    let (registered, stats) = registry.register(
        request.peer.clone(),
        request.from.saturating_sub(1),
        limits.max_subscribers,
    )?;
    tokio::spawn(async move {
        let _registered = registered;
        run(store, head, limits, request, &tx, &stats).await;
    });
    Ok(rx)
}

/// A validated subscription request.
pub(crate) struct Subscription {
    pub from: u64,
    pub filter: Filter,
    /// Empty: every bucket.
    pub buckets: Vec<wfl_domain::classify::Bucket>,
    pub heartbeat: Option<Duration>,
    pub peer: String,
    /// Events per message: 1 = one `event` per message, more = `batch` messages (≤ [`MAX_BATCH`]).
    pub batch: usize,
}

impl Subscription {
    /// The events per message a `max_batch` asks for: 0 or 1 is one, more is capped at
    /// [`MAX_BATCH`].
    #[must_use]
    pub fn batch_of(max_batch: u32) -> usize {
        (max_batch as usize).clamp(1, MAX_BATCH)
    }
}

/// Messages queued per subscriber: [`QUEUE`] events' worth, at least 2 (one slot stays free for a
/// final status).
fn queue_len(batch: usize) -> usize {
    (QUEUE / batch.max(1)).max(2)
}

async fn run(
    store: Arc<dyn Log>,
    mut head: watch::Receiver<u64>,
    limits: Limits,
    request: Subscription,
    tx: &mpsc::Sender<Item>,
    stats: &Stats,
) {
    let heartbeat = request.heartbeat.unwrap_or(limits.default_heartbeat);
    let chunk = CHUNK.max(request.batch);
    let queue = queue_len(request.batch);
    let mut next = request.from.max(1);
    let mut last_sent = Instant::now();
    // Records to send, checked ([`codec::check_stored`]) and kept as stored.
    let mut pending: Vec<StoredRecord> = Vec::new();
    loop {
        let target = *head.borrow_and_update();
        if next <= target {
            let s = store.clone();
            let filter = request.filter.clone();
            let read =
                tokio::task::spawn_blocking(move || s.read(next, Some(target), &filter, chunk))
                    .await;
            let records = match read
                .map_err(Error::join)
                .and_then(|r| r.map_err(Error::from))
            {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.try_send(Err(status(e)));
                    return;
                }
            };
            let complete = records.len() < chunk;
            // The last sequence looked at: once `pending` is sent, everything up to it is.
            let mut scanned = next - 1;
            let mut pending_bytes = 0usize;
            let count = records.len();
            for (i, r) in records.into_iter().enumerate() {
                scanned = r.sequence;
                if !request.buckets.is_empty() {
                    match codec::decode_event(&r) {
                        Ok(event) => {
                            let bucket =
                                wfl_domain::classify::classify(&event.payload, false, false).bucket;
                            if !request.buckets.contains(&bucket) {
                                if pending.is_empty() {
                                    next = r.sequence + 1;
                                    stats.position.store(r.sequence, Ordering::Relaxed);
                                }
                                continue;
                            }
                        }
                        Err(e) => {
                            let _ = tx.try_send(Err(status(e)));
                            return;
                        }
                    }
                }
                // Sent as stored: a record whose bytes no longer hash to its chain hash ends
                // the stream (`DATA_LOSS`), as a failed decode did.
                if let Err(e) = codec::check_stored(&r) {
                    let _ = tx.try_send(Err(status(e)));
                    return;
                }
                pending_bytes += r.bytes.len();
                let sequence = r.sequence;
                pending.push(r);
                let last = i + 1 == count;
                if last || pending.len() >= request.batch || pending_bytes >= BATCH_BYTES {
                    let first = pending.first().map_or(sequence, |c| c.sequence);
                    let item = message(&mut pending, request.batch);
                    if let Err(stop) = send(tx, item, limits.stall_timeout).await {
                        return stopped(tx, stop, first);
                    }
                    pending_bytes = 0;
                    stats
                        .queued
                        .store((queue - tx.capacity()) as u64, Ordering::Relaxed);
                    next = scanned + 1;
                    stats.position.store(scanned, Ordering::Relaxed);
                    last_sent = Instant::now();
                }
            }
            if !pending.is_empty() {
                // The chunk ended on filtered-out records after some kept ones.
                let first = pending.first().map_or(scanned, |c| c.sequence);
                let item = message(&mut pending, request.batch);
                if let Err(stop) = send(tx, item, limits.stall_timeout).await {
                    return stopped(tx, stop, first);
                }
                last_sent = Instant::now();
            }
            next = next.max(scanned + 1);
            stats.position.store(next - 1, Ordering::Relaxed);
            if complete {
                // Every matching record up to `target` has been sent.
                next = target + 1;
                stats.position.store(target, Ordering::Relaxed);
            }
            if last_sent.elapsed() >= heartbeat {
                if let Err(stop) = send(tx, beat(target, next - 1), limits.stall_timeout).await {
                    return stopped(tx, stop, next);
                }
                last_sent = Instant::now();
            }
            continue;
        }
        tokio::select! {
            changed = head.changed() => if changed.is_err() {
                let _ = tx.try_send(Err(Status::unavailable(format!(
                    "the ledger is shutting down; resume with from_sequence = {next}"
                ))));
                return;
            },
            () = tokio::time::sleep_until((last_sent + heartbeat).into()) => {
                if let Err(stop) = send(tx, beat(target, next - 1), limits.stall_timeout).await {
                    return stopped(tx, stop, next);
                }
                last_sent = Instant::now();
            }
            () = tx.closed() => return,
        }
    }
}

/// The `wfl.v1.SubscribeResponse` carrying `pending` (emptied), encoded from the stored bytes
/// ([`codec::put_committed`], [`codec::put_batch`]): one `event` (field 1) when the subscriber
/// asked for one per message, else a `batch` (field 3).
fn message(pending: &mut Vec<StoredRecord>, batch: usize) -> Encoded {
    use prost::encoding::{encode_key, encode_varint, encoded_len_varint, WireType};
    let one = batch <= 1 && pending.len() == 1;
    let (tag, len) = if one {
        (1, codec::committed_len(&pending[0]))
    } else {
        (3, codec::batch_len(pending))
    };
    let mut out = Vec::with_capacity(1 + encoded_len_varint(len as u64) + len);
    encode_key(tag, WireType::LengthDelimited, &mut out);
    encode_varint(len as u64, &mut out);
    if one {
        codec::put_committed(&mut out, &pending[0]);
    } else {
        codec::put_batch_into(&mut out, pending);
    }
    pending.clear();
    Encoded(out)
}

fn beat(head_sequence: u64, position: u64) -> Encoded {
    use prost::Message;
    Encoded(
        pb::SubscribeResponse {
            kind: Some(pb::subscribe_response::Kind::Heartbeat(pb::Heartbeat {
                head_sequence,
                position,
            })),
        }
        .encode_to_vec(),
    )
}

/// Sends one message, keeping one queue slot free for a final status.
async fn send(tx: &mpsc::Sender<Item>, item: Encoded, stall: Duration) -> Result<(), Stop> {
    match tokio::time::timeout(stall, tx.reserve_many(2)).await {
        Err(_) => Err(Stop::Stalled),
        Ok(Err(_)) => Err(Stop::Gone),
        Ok(Ok(mut permits)) => {
            if let Some(permit) = permits.next() {
                permit.send(Ok(item));
            }
            Ok(())
        }
    }
}

fn stopped(tx: &mpsc::Sender<Item>, stop: Stop, resume_from: u64) {
    if let Stop::Stalled = stop {
        let _ = tx.try_send(Err(Status::resource_exhausted(format!(
            "subscriber took nothing for too long and was ended; resume with from_sequence = {resume_from}"
        ))));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn messages_from_the_stored_bytes_decode_to_what_the_generated_handler_sent() {
        let records = codec::chain(3);
        let decoded: Vec<pb::CommittedEvent> = records
            .iter()
            .map(|r| codec::decode(r).expect("decodes"))
            .collect();
        // One event per message.
        let mut one = records[..1].to_vec();
        let m = pb::SubscribeResponse::decode(message(&mut one, 1).0.as_slice()).expect("decodes");
        assert_eq!(
            m.kind,
            Some(pb::subscribe_response::Kind::Event(decoded[0].clone()))
        );
        assert!(one.is_empty(), "pending is emptied");
        // A batch, also of one event when the subscriber asked for batches.
        for (n, batch) in [(3, 1000), (1, 10), (2, 1)] {
            let mut pending = records[..n].to_vec();
            let m = pb::SubscribeResponse::decode(message(&mut pending, batch).0.as_slice())
                .expect("decodes");
            assert_eq!(
                m.kind,
                Some(pb::subscribe_response::Kind::Batch(pb::EventBatch {
                    events: decoded[..n].to_vec()
                })),
                "{n} events, batch {batch}"
            );
        }
        let m = pb::SubscribeResponse::decode(beat(7, 5).0.as_slice()).expect("decodes");
        assert_eq!(
            m.kind,
            Some(pb::subscribe_response::Kind::Heartbeat(pb::Heartbeat {
                head_sequence: 7,
                position: 5
            }))
        );
    }
}
