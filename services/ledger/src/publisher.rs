//! Republishes committed events on the bus (`wfl.ledger.<org>.<type>`, stream `WFL_LEDGER`).
//!
//! It follows the head sequence and reads what to publish back from the store, so it can never
//! skip an event (on the in-process bus, whose committed stream is a live fan-out, it reads and
//! sends only while a receiver listens, [`Bus::committed_listened`]): at start it asks the bus
//! for the last sequence the stream holds and resumes after the smaller of that and its own
//! cursor (the last sequence it fully published), so a stream that lacks history (a data dir
//! that ran on the embedded bus, a new or emptied stream) is filled from the first sequence it
//! lacks. It never blocks the writer; if the bus is down, it retries and catches up.
//!
//! A hole *below* the stream's last message (messages deleted by sequence, a partial purge) cannot
//! be filled in place: republished messages would land after later sequences, out of order, and
//! consumers past the hole would not go back. So at start the publisher looks for holes
//! ([`Bus::committed_holes`]: stream info and two reads per hole, whatever the history) and, when
//! it finds some, logs one ERROR naming the missing ranges and the backfill, sets
//! `wfl_publisher_stream_missing` and fails the `committed_stream` readiness probe; it goes on
//! publishing new events. The backfill is `--republish-stream` (`wfl up`, `wfl-ledger`): purge the
//! stream at start and republish every sequence from 1, in order.
//!
//! A stream that holds *another* history (its last message is beyond this ledger's head, or its
//! `Wfl-Hash` is not this ledger's hash at that sequence: a data dir replaced or restored from an
//! older backup, a second ledger on the same NATS) is not published to at all: this ledger's
//! events would be skipped as already there, or numbered among the other history's. The
//! publisher logs one ERROR saying so and how to choose (`--republish-stream`, or the data dir
//! that wrote the stream), fails the `committed_stream` readiness probe, and waits.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};
use wfl_bus::{Bus, CommittedMessage};
use wfl_store::{Filter, Log};

use crate::{codec, Error};

const CHUNK: usize = 1000;

/// Store metadata key: the last sequence fully published on the committed stream.
pub(crate) const CURSOR: &str = "publisher.cursor";

/// How the publisher starts.
#[derive(Debug, Clone, Default)]
pub(crate) struct Options {
    /// Purge the durable stream and republish every sequence from 1 (`--republish-stream`).
    pub republish: bool,
    /// Cluster mode: this partition's ledger publishes its commits into the shared `WFL_LEDGER`
    /// (header `Wfl-Partition`), resuming after its cursor alone, which every append carries
    /// through the partition log (see [`crate::partition`]): a new owner resumes where the old
    /// one was, not where its standby copy last published. The stream's own last message is
    /// another partition's, so neither it nor the hole check says anything about this one.
    pub cluster: Option<ClusterPublishing>,
}

/// What the publisher of one partition shares with its writer.
#[derive(Debug, Clone)]
pub(crate) struct ClusterPublishing {
    pub partition: u32,
    /// The last sequence published, for the writer's next append to carry.
    pub published: Arc<std::sync::atomic::AtomicU64>,
}

pub(crate) async fn run(
    store: Arc<dyn Log>,
    bus: Arc<dyn Bus>,
    head: watch::Receiver<u64>,
    mut stall: crate::liveness::PublisherWatch,
    options: Options,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let mut backoff = Backoff::default();
    let cursor = {
        let s = store.clone();
        tokio::task::spawn_blocking(move || s.meta_get(CURSOR))
            .await
            .map_err(Error::join)??
    };
    let cursor = cursor
        .and_then(|c| <[u8; 8]>::try_from(c.as_slice()).ok())
        .map(u64::from_be_bytes);
    let durable = bus.durable_inbox();
    if let Some(c) = &options.cluster {
        // The cursor the log carried is at most a batch behind what was published; the stream
        // itself says how far (a partition idle past the duplicate window before its takeover
        // would otherwise put that batch on the stream twice).
        let carried = cursor.unwrap_or(0);
        let head_now = *head.borrow();
        let from = match published_through(&store, bus.as_ref(), c.partition, carried, head_now)
            .await
        {
            Ok(p) => p,
            Err(e) => {
                warn!(error = %e, partition = c.partition, "cannot ask WFL_LEDGER how far this partition was published; resuming after the cursor (the stream drops what it already holds within its duplicate window)");
                carried
            }
        };
        c.published
            .store(from, std::sync::atomic::Ordering::Relaxed);
        info!(
            partition = c.partition,
            cursor = from,
            carried,
            head = head_now,
            "publishing this partition's commits to WFL_LEDGER after what it already holds"
        );
        return follow(
            &store,
            bus.as_ref(),
            head,
            &mut stall,
            &options,
            from,
            None,
            &shutdown,
        )
        .await;
    }
    // With --republish-stream: the sequences up to the head at start go out under fresh message
    // ids (`<event id>.r<start ms>`), since the broker remembers the old ones for its duplicate
    // window even after the purge.
    let mut republish: Option<(u64, u128)> = None;
    if durable && options.republish {
        loop {
            match bus.purge_committed().await {
                Ok(()) => break,
                Err(e @ wfl_bus::Error::Rejected(_)) => return Err(Error::Bus(e)),
                Err(e) => {
                    warn!(error = %e, "cannot purge the committed stream (--republish-stream); retrying");
                    if !backoff.wait(&shutdown).await {
                        return Ok(());
                    }
                }
            }
        }
        info!(
            head = *head.borrow(),
            "--republish-stream: purged WFL_LEDGER; republishing every committed sequence from 1"
        );
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        republish = Some((*head.borrow(), started));
    }
    let published = if durable {
        // Where the stream stands, whatever the cursor says: a data dir that ran on the embedded
        // bus, or a new or emptied stream, holds less than the cursor, and the history must be
        // republished from the first sequence the stream lacks (no gap for its consumers).
        let (in_stream, stream_hash) = loop {
            match bus.last_published().await {
                Ok(s) => break s.map_or((0, None), |l| (l.sequence, l.hash)),
                Err(e) => {
                    warn!(error = %e, "cannot read the committed stream's last sequence; retrying");
                    if !backoff.wait(&shutdown).await {
                        return Ok(());
                    }
                }
            }
        };
        // Everything up to the cursor was fully published; after it, the bus skips what the
        // stream holds (its last `Wfl-Sequence`: a stream this ledger wrote holds a prefix of the
        // history, each message stored only after its predecessor) and sends the rest in order.
        let from = cursor.map_or(in_stream, |c| c.min(in_stream));
        let head_now = *head.borrow();
        if let Some(why) = foreign_history(&store, in_stream, stream_hash, head_now).await? {
            // Publishing would number this ledger's events among another history's: say so,
            // fail readiness, and publish nothing until an operator chooses.
            error!("{why}");
            stall.liveness().set_stream_foreign(why);
            shutdown.cancelled().await;
            return Ok(());
        }
        if from < head_now {
            if cursor.is_some_and(|c| c <= in_stream) {
                // The usual restart: the stream holds at least what the cursor says.
                info!(
                    stream_last = in_stream,
                    cursor = cursor.unwrap_or(0),
                    head = head_now,
                    "publishing committed sequences {}..={head_now} after the publisher's cursor \
                     (any the stream already holds are deduplicated by event id or skipped by \
                     consumers on Wfl-Sequence)",
                    from + 1
                );
            } else {
                info!(
                    stream_last = in_stream,
                    cursor = cursor.unwrap_or(0),
                    head = head_now,
                    "the committed stream lacks sequences {}..={head_now} (its last is {in_stream}); \
                     republishing them",
                    from + 1
                );
            }
        }
        if in_stream > 0 {
            check_holes(bus.as_ref(), &stall, &mut backoff, &shutdown).await;
        }
        from
    } else {
        // The in-process bus keeps no history: only events committed from now on are fanned out.
        *head.borrow()
    };
    follow(
        &store,
        bus.as_ref(),
        head,
        &mut stall,
        &options,
        published,
        republish,
        &shutdown,
    )
    .await
}

/// Publishes every sequence after `published` as the head moves, until `shutdown`.
#[allow(clippy::too_many_arguments)]
async fn follow(
    store: &Arc<dyn Log>,
    bus: &dyn Bus,
    mut head: watch::Receiver<u64>,
    stall: &mut crate::liveness::PublisherWatch,
    options: &Options,
    mut published: u64,
    republish: Option<(u64, u128)>,
    shutdown: &CancellationToken,
) -> Result<(), Error> {
    let durable = bus.durable_inbox();
    let partition = options.cluster.as_ref().map(|c| c.partition);
    let mut backoff = Backoff::default();
    // Two chunks in flight: the next one is read and sent while the broker acknowledges the one
    // before (sent in order on one connection, so stored in order). `sent` is the last sequence
    // sent; `in_flight` the last sequence and acks of the chunk awaited (`None`: `sent` ==
    // `published`).
    let mut sent = published;
    let mut in_flight: Option<(u64, wfl_bus::Acks)> = None;
    loop {
        let mut target = *head.borrow_and_update();
        while published < target {
            // The head moves while chunks are in flight: follow it, so the pipeline only
            // empties when the publisher has caught up, not at the end of each head move.
            target = target.max(*head.borrow_and_update());
            let step = async {
                if sent < target && !bus.committed_listened() {
                    // The in-process fan-out with no receiver: nothing to read, check or send
                    // (a receiver that comes gets what is committed from then on).
                    let before = in_flight.take();
                    sent = target;
                    match before {
                        Some((_, acks)) => acks.await.map(|()| Some(target)),
                        None => Ok(Some(target)),
                    }
                } else if sent < target {
                    let (last, msgs) =
                        read_chunk(store, sent + 1, target, republish, partition).await?;
                    let acks = bus.send_committed(msgs).await?;
                    sent = last;
                    match in_flight.replace((last, acks)) {
                        Some((before, acks)) => acks.await.map(|()| Some(before)),
                        None => Ok(None),
                    }
                } else {
                    match in_flight.take() {
                        Some((last, acks)) => acks.await.map(|()| Some(last)),
                        None => Ok(None),
                    }
                }
                .map_err(Error::Bus)
            };
            match step.await {
                Ok(None) => {}
                Ok(Some(last)) => {
                    published = last;
                    backoff = Backoff::default();
                    stall.progressed();
                    stall.liveness().set_published(last);
                    if let Some(c) = &options.cluster {
                        c.published
                            .store(last, std::sync::atomic::Ordering::Relaxed);
                    }
                    // The cursor describes the durable stream only: the in-process bus holds
                    // nothing a later start on NATS could count on.
                    if durable {
                        let s = store.clone();
                        // Not flushed: a cursor that lags after a crash only republishes events
                        // the stream deduplicates (Nats-Msg-Id) or consumers skip by
                        // Wfl-Sequence.
                        tokio::task::spawn_blocking(move || {
                            s.meta_put(CURSOR, &last.to_be_bytes())
                        })
                        .await
                        .map_err(Error::join)??;
                    }
                }
                Err(Error::Bus(e)) => {
                    // Everything after what was acknowledged is sent again (the stream drops
                    // what it already holds by Nats-Msg-Id).
                    in_flight = None;
                    sent = published;
                    warn!(error = %e, "publishing committed events failed; retrying");
                    stall.failed(target - published, &e);
                    if !backoff.wait(shutdown).await {
                        return Ok(());
                    }
                }
                Err(e) => return Err(e),
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            changed = head.changed() => if changed.is_err() { return Ok(()) },
        }
    }
}

/// Cluster mode: the last sequence of `partition` on `WFL_LEDGER`, knowing every sequence up to
/// `known` is there and none after `head`. A partition publishes in order, so the published
/// sequences are a prefix: a binary search, one subject read per step ([`Bus::committed_holds`]),
/// O(log(head − known)) reads at a takeover.
async fn published_through(
    store: &Arc<dyn Log>,
    bus: &dyn Bus,
    partition: u32,
    known: u64,
    head: u64,
) -> Result<u64, Error> {
    let (mut lo, mut hi) = (known, head);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        let s = store.clone();
        let records =
            tokio::task::spawn_blocking(move || s.read(mid, Some(mid), &Filter::default(), 1))
                .await
                .map_err(Error::join)??;
        let Some(record) = records.first() else {
            return Ok(lo);
        };
        let (org_id, event_type) = codec::org_and_type(record)?;
        if bus
            .committed_holds(partition, &org_id, &event_type, mid)
            .await?
        {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    Ok(lo)
}

/// Looks for holes below the stream's last message; on finding some, one ERROR, the metric and
/// the readiness probe (see the module docs). Retries while the broker cannot be reached.
async fn check_holes(
    bus: &dyn Bus,
    stall: &crate::liveness::PublisherWatch,
    backoff: &mut Backoff,
    shutdown: &CancellationToken,
) {
    loop {
        match bus.committed_holes().await {
            Ok(holes) if holes.missing == 0 => return,
            Ok(holes) => {
                error!(
                    missing = holes.missing,
                    "{}",
                    crate::liveness::stream_gap_message(&holes)
                );
                stall.liveness().set_stream_gap(Some(holes));
                return;
            }
            Err(e @ wfl_bus::Error::Rejected(_)) => {
                // Not a hole we can name: say so and go on publishing.
                warn!(error = %e, "cannot check the committed stream for holes");
                return;
            }
            Err(e) => {
                warn!(error = %e, "cannot check the committed stream for holes; retrying");
                if !backoff.wait(shutdown).await {
                    return;
                }
            }
        }
    }
}

/// Why `WFL_LEDGER`, whose last message is ledger sequence `last` with chained hash `hash`,
/// cannot be this ledger's committed stream (head `head`), if it cannot: that message is beyond
/// the head, or its hash is not this ledger's record's there. A data dir replaced, or restored
/// from a backup older than the stream, or a second ledger on the same NATS: the stream's
/// consumers have seen those sequences with other events, and this ledger's would be skipped
/// (the stream seems to hold them) or land after them.
async fn foreign_history(
    store: &Arc<dyn Log>,
    last: u64,
    hash: Option<[u8; 32]>,
    head: u64,
) -> Result<Option<String>, Error> {
    const FIX: &str = "Nothing is published: its consumers would see two histories under one \
        numbering. To keep this ledger's data dir, restart it once with --republish-stream (it \
        purges WFL_LEDGER and republishes this history from sequence 1; consumers start over); \
        otherwise start the ledger on the data dir that wrote the stream.";
    if last == 0 {
        return Ok(None);
    }
    if last > head {
        return Ok(Some(format!(
            "WFL_LEDGER's last message is sequence {last}, beyond this ledger's head {head}: the \
             stream holds another ledger's history (a data dir replaced or restored from an \
             older backup, or another ledger on this NATS). {FIX}"
        )));
    }
    let Some(hash) = hash else {
        return Ok(None);
    };
    let s = store.clone();
    let record = tokio::task::spawn_blocking(move || s.get(last))
        .await
        .map_err(Error::join)??;
    Ok(record.filter(|r| r.hash != hash).map(|r| {
        format!(
            "WFL_LEDGER's message for sequence {last} carries hash {}, this ledger's record \
             there {}: the stream holds another ledger's history (a data dir replaced, or another \
             ledger on this NATS). {FIX}",
            hex::encode(hash),
            hex::encode(r.hash)
        )
    }))
}

/// The committed messages of sequences `from..=to`, at most [`CHUNK`], and the last sequence
/// they cover.
async fn read_chunk(
    store: &Arc<dyn Log>,
    from: u64,
    to: u64,
    republish: Option<(u64, u128)>,
    partition: Option<u32>,
) -> Result<(u64, Vec<CommittedMessage>), Error> {
    let s = store.clone();
    let records =
        tokio::task::spawn_blocking(move || s.read(from, Some(to), &Filter::default(), CHUNK))
            .await
            .map_err(Error::join)??;
    let Some(last) = records.last().map(|r| r.sequence) else {
        return Ok((to, Vec::new()));
    };
    let mut msgs = Vec::with_capacity(records.len());
    for r in &records {
        // Published as stored, the hashes appended (what decoding the record and encoding it
        // again wrote, without doing either): a record whose bytes no longer hash to its chain
        // hash is refused here, not published.
        codec::check_stored(r)?;
        let (org_id, event_type) = codec::org_and_type(r)?;
        let mut payload = Vec::with_capacity(codec::committed_len(r));
        codec::put_committed(&mut payload, r);
        msgs.push(CommittedMessage {
            org_id,
            event_type,
            sequence: r.sequence,
            hash: r.hash,
            event_id: r.event_id,
            payload: Bytes::from(payload),
            msg_id: republish
                .filter(|(until, _)| r.sequence <= *until)
                .map(|(_, nonce)| format!("{}.r{nonce}", r.event_id)),
            partition,
        });
    }
    Ok((last, msgs))
}

struct Backoff(Duration);

impl Default for Backoff {
    fn default() -> Self {
        Self(Duration::from_millis(50))
    }
}

impl Backoff {
    /// Waits before a retry; false when shutting down.
    async fn wait(&mut self, shutdown: &CancellationToken) -> bool {
        let d = self.0;
        self.0 = (self.0 * 2).min(Duration::from_secs(5));
        tokio::select! {
            () = shutdown.cancelled() => false,
            () = tokio::time::sleep(d) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wfl_store::NewRecord;

    /// Appends hires of `workers` to `store` as the writer stores them.
    fn append(store: &dyn Log, workers: &[&str]) -> u64 {
        let head = store.head().expect("head").sequence;
        let records: Vec<NewRecord> = workers
            .iter()
            .zip(head + 1..)
            .map(|(w, sequence)| {
                let event = wfl_testkit::scenario::hire("org", w);
                NewRecord {
                    sequence,
                    event_id: event.event_id.0,
                    org_id: event.org_id.0.clone(),
                    event_type: event.event_type().as_str().to_owned(),
                    bytes: codec::encode(sequence, codec::now_micros(), &event),
                    submission: None,
                }
            })
            .collect();
        store.append(&records, &[]).expect("append");
        head + workers.len() as u64
    }

    /// Waits (bounded) until the publisher says it published through `sequence`.
    async fn published_through(liveness: &crate::liveness::Liveness, sequence: u64) {
        tokio::time::timeout(Duration::from_secs(10), async {
            while liveness.published() < sequence {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .expect("the publisher caught up");
    }

    #[tokio::test]
    async fn the_in_process_fan_out_is_fed_only_while_a_receiver_listens() {
        let store: Arc<dyn Log> = Arc::new(wfl_store::MemLog::new());
        let memory = wfl_bus::MemoryBus::new();
        let bus: Arc<dyn Bus> = Arc::new(memory.clone());
        let head = append(store.as_ref(), &["w1", "w2", "w3"]);
        let (head_tx, head_rx) = watch::channel(head);
        let liveness = Arc::new(crate::liveness::Liveness::default());
        let stall =
            crate::liveness::PublisherWatch::new(Duration::from_secs(60), Arc::clone(&liveness));
        let shutdown = CancellationToken::new();
        let publisher = tokio::spawn({
            let (store, bus, shutdown) = (store.clone(), bus.clone(), shutdown.clone());
            async move {
                let mut stall = stall;
                follow(
                    &store,
                    bus.as_ref(),
                    head_rx,
                    &mut stall,
                    &Options::default(),
                    0,
                    None,
                    &shutdown,
                )
                .await
            }
        });
        // No receiver: caught up without sending anything.
        published_through(&liveness, 3).await;
        assert!(!bus.committed_listened());
        assert_eq!(bus.last_published().await.expect("last"), None);

        // A receiver gets what is committed from then on, in order, each event once.
        let mut live = memory.subscribe_committed();
        assert!(bus.committed_listened());
        let head = append(store.as_ref(), &["w4", "w5"]);
        head_tx.send(head).expect("head");
        for sequence in [4, 5] {
            let msg = tokio::time::timeout(Duration::from_secs(10), live.recv())
                .await
                .expect("a committed event in time")
                .expect("a committed event");
            assert_eq!((msg.sequence, msg.org_id.as_str()), (sequence, "org"));
        }
        published_through(&liveness, 5).await;
        assert_eq!(
            bus.last_published()
                .await
                .expect("last")
                .map(|l| l.sequence),
            Some(5)
        );
        assert!(live.try_recv().is_err(), "nothing sent twice");
        shutdown.cancel();
        publisher
            .await
            .expect("joined")
            .expect("the publisher ended");
    }
}
