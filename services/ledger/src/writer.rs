//! The single writer: it owns [`LedgerState`] and the store's write side.
//!
//! One loop takes a batch from the inbox pump, decides every event against the state, appends the
//! accepted ones (and the refusals) to the store in one atomic, flushed batch, and only then lets
//! the pump acknowledge the inbox messages and hands the batch's decisions to the outcome
//! broadcast ([`crate::outcomes`]), which publishes them once without the writer waiting. A store
//! failure stops the writer without acknowledging anything: the inbox redelivers after a restart,
//! and the event ids already committed are recognised as duplicates. The keys of the state that a
//! batch changed ([`crate::snapshot`]) go in the same atomic append as its records, so the stored
//! state is always that of the stored head and a restart folds nothing.
//!
//! Every outcome carries what the gateway needs to answer exactly, derived from the store alone:
//! the submission that committed the event (stored in its decision) and the SHA-256 of the
//! content it was decided on (from the record; stored with a refusal). The writer never marks an
//! outcome `duplicate` itself: the gateway compares its own submission id and content hash.

use foldhash::{HashMap, HashMapExt};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message;
use sha2::Digest;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};
use uuid::Uuid;
use wfl_bus::Inbox;
use wfl_domain::lifecycle::Changed;
use wfl_domain::{Conflict, EventId, History, LedgerState, OriginalEvent};
use wfl_proto::internal as ipb;
use wfl_proto::pb;
use wfl_store::{Decision, Filter, Hash, Log, NewRecord, RefusalCode, Rejection};

use crate::outcomes::{committed, rejected, stored_outcome, Broadcast};

use crate::checkpoint::{Checkpoint, Signer};
use crate::storage::{Fault, Guard, StorageState};
use crate::{codec, snapshot, Config, Error};

/// An inbox event: its bytes, the submission that sent it, and (in one process) the gateway's
/// checked event they encode (`wfl_proto::convert::Checked`), which spares decoding them.
type Payload = (Bytes, Option<Uuid>, Option<wfl_bus::Decoded>);

/// An inbox event as the writer takes it: the gateway's checked event (in one process), or the
/// wire form decoded from its bytes here. A temporary of one loop turn, never stored: boxing the
/// wire form would cost an allocation per event for nothing.
#[allow(clippy::large_enum_variant)]
enum Given {
    Checked(Arc<wfl_proto::convert::Checked>),
    Wire(pb::Event),
}

/// The checked event the gateway handed over with an inbox message in this process, if it is
/// one (another type is decoded from the bytes like any message).
fn checked_of(decoded: Option<wfl_bus::Decoded>) -> Option<Arc<wfl_proto::convert::Checked>> {
    decoded?.0.downcast().ok()
}

/// The event of a checked message, owned: taken as it is when nothing else holds it (the
/// gateway hands it over and lets go), else copied.
fn owned_event(checked: Arc<wfl_proto::convert::Checked>) -> wfl_domain::Event {
    Arc::try_unwrap(checked).map_or_else(|shared| shared.event.clone(), |c| c.event)
}

/// First and longest pause between checks of a data directory that could not take a commit.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// One batch handed from the inbox pump to the writer; `done` fires after the flush.
struct InboxBatch {
    payloads: Vec<Payload>,
    /// Cluster mode: the pump routes by a new revision of the partition map from here on; the
    /// writer says so in the partition log (a batch without payloads).
    notice: Option<crate::partition::Notice>,
    done: oneshot::Sender<()>,
}

pub(crate) struct Writer {
    store: Arc<dyn Log>,
    state: LedgerState,
    next_sequence: u64,
    head_tx: watch::Sender<u64>,
    config: Config,
    outcomes: Broadcast,
    signer: Arc<Signer>,
    /// Checked before every commit; commits pause (nothing decided, nothing acknowledged) while
    /// the data directory is full or read-only.
    guard: Guard,
    storage: watch::Sender<StorageState>,
    /// Size of the latest checkpoint and when the writer last cut one (or started).
    checkpointed: u64,
    checkpointed_at: Instant,
    /// What the batch being decided changed in `state`; written with its records (see
    /// [`snapshot`]) and drained by each commit.
    changed: Changed,
    /// The `recorded_at_micros` given to the latest batch (at start: the head record's). A
    /// batch is recorded at the wall clock, or at this if the clock went back (a step, or a
    /// takeover by a machine whose clock is behind): recorded-at never decreases along the
    /// ledger, so the events recorded by an instant are a prefix of it.
    recorded_at: i64,
}

impl Writer {
    /// Rebuilds the state from the store (a pure fold over the committed history).
    pub(crate) async fn recover(
        store: Arc<dyn Log>,
        config: Config,
        signer: Arc<Signer>,
        storage: watch::Sender<StorageState>,
        outcomes: Broadcast,
    ) -> Result<(Self, watch::Receiver<u64>), Error> {
        let s = store.clone();
        let started = Instant::now();
        let (head, checkpointed, restored) =
            tokio::task::spawn_blocking(move || -> Result<_, Error> {
                let head = s.head()?;
                let restored = restore(s.as_ref(), head.sequence)?;
                let checkpointed = s.latest_checkpoint()?.map_or(0, |(size, _)| size);
                let recorded_at = match s.get(head.sequence)? {
                    Some(record) if head.sequence > 0 => codec::check_stored(&record)?,
                    _ => 0,
                };
                Ok((head, checkpointed, (restored, recorded_at)))
            })
            .await
            .map_err(Error::join)??;
        let (
            Restored {
                state,
                source,
                through,
                folded,
                changed,
            },
            recorded_at,
        ) = restored;
        info!(
            head = head.sequence,
            source = %source,
            through,
            folded,
            entries = state.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "ledger state rebuilt"
        );
        let (head_tx, head_rx) = watch::channel(head.sequence);
        let guard = Guard::new(config.data_dir.join("ledger"), config.min_free_bytes);
        Ok((
            Self {
                store,
                state,
                next_sequence: head.sequence + 1,
                head_tx,
                config,
                outcomes,
                signer,
                guard,
                storage,
                checkpointed,
                checkpointed_at: Instant::now(),
                // What the start's fold changed goes out again with the first batch: in cluster
                // mode the fold's own write is local, and the standby copies learn those keys
                // only from the partition log (see [`Restored::changed`]).
                changed,
                recorded_at,
            },
            head_rx,
        ))
    }

    /// Runs until `shutdown` or a store failure.
    pub(crate) async fn run(
        mut self,
        inbox: Box<dyn Inbox>,
        watch: crate::liveness::InboxWatch,
        shutdown: CancellationToken,
    ) -> Result<(), Error> {
        let (batch_tx, mut batch_rx) = mpsc::channel(1);
        let routing = match self.config.partition.as_ref() {
            Some(role @ crate::partition::PartitionRole { map: Some(map), .. }) => Some(Routing {
                partition: role.partition(),
                map: map.clone(),
                announced: None,
                // The last map revision this partition's log announced: a new writer (a
                // takeover) must not route by an older map than its predecessor did.
                floor: crate::partition::meta_u64(
                    self.store.as_ref(),
                    crate::partition::MAP_REVISION,
                )?,
                waiting: false,
            }),
            _ => None,
        };
        let mut pump = tokio::spawn(pump(
            inbox,
            watch,
            batch_tx,
            self.config.max_batch,
            routing,
            shutdown.clone(),
        ));
        let mut pump_done = false;
        let mut sweep = tokio::time::interval(Duration::from_secs(1));
        // A batch that arrived while the data directory could not take it: held, undecided and
        // unacknowledged (so the pump takes no more), and tried again with backoff.
        let mut held: Option<InboxBatch> = None;
        let mut backoff = RETRY_MIN;
        let retry = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(retry);
        // The batch whose append is running while the next one is decided.
        let mut inflight: Option<InFlight> = None;
        let result = loop {
            tokio::select! {
                () = shutdown.cancelled() => break Ok(()),
                appended = appended(&mut inflight), if inflight.is_some() => {
                    // Nothing new to decide meanwhile: finish it now, its callers are waiting.
                    let Some(f) = inflight.take() else { continue };
                    if let Err(e) = self.finish(f, appended) { break Err(e) }
                    if let Err(e) = self.checkpoint_if_due().await { break Err(e) }
                    continue;
                },
                batch = batch_rx.recv(), if held.is_none() => match batch {
                    Some(batch) => held = Some(batch),
                    // The pump stopped; its verdict is read below.
                    None => break Ok(()),
                },
                () = &mut retry, if held.is_some() || self.paused() => {}
                stopped = &mut pump, if !pump_done => {
                    pump_done = true;
                    match stopped {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => break Err(e),
                        Err(e) => break Err(Error::join(e)),
                    }
                    continue;
                },
                _ = sweep.tick() => {
                    // Said again every second while paused: a gateway that started waiting
                    // since, or missed the first, asks at once.
                    if let StorageState::Paused { reason } = &*self.storage.borrow() {
                        self.outcomes.paused(reason);
                    }
                    // Checked every second even without traffic, so health follows the disk
                    // and a due checkpoint is never written to a full one (nor beside an
                    // append: one on its own goes only when none is in flight).
                    if !self.paused() && inflight.is_none() {
                        if self.writable() {
                            if let Err(e) = self.checkpoint_if_due().await { break Err(e) }
                        } else {
                            retry.as_mut().reset(tokio::time::Instant::now() + backoff);
                        }
                    }
                    continue;
                }
            }
            // A batch arrived or a retry is due.
            if !self.writable() {
                retry.as_mut().reset(tokio::time::Instant::now() + backoff);
                backoff = (backoff * 2).min(RETRY_MAX);
                continue;
            }
            backoff = RETRY_MIN;
            if let Some(batch) = held.take() {
                // Decided while the batch before is being flushed; appended after it.
                let mut prepared = match self.prepare(batch, inflight.as_ref()) {
                    Ok(p) => p,
                    Err(e) => break Err(e),
                };
                if inflight.is_some() {
                    let r = appended(&mut inflight).await;
                    let Some(f) = inflight.take() else { continue };
                    match self.finish(f, r) {
                        Ok(fresh) => prepared.answer_repeats(&fresh),
                        Err(e) => break Err(e),
                    }
                }
                // A checkpoint due at the head goes with this append, in its flush: written on
                // its own it would cost a flush of its own while nothing is appended. (Cluster
                // mode, and a batch with nothing to append, put it on its own.)
                let checkpoint = if self.config.partition.is_none() && prepared.appends() {
                    Ok(self.due_checkpoint())
                } else {
                    self.checkpoint_if_due().await.map(|()| None)
                };
                match checkpoint {
                    Ok(checkpoint) => inflight = Some(self.launch(prepared, checkpoint)),
                    Err(e) => break Err(e),
                }
            }
        };
        // A clean stop lets the append in flight finish and answers its callers.
        let result = match result {
            Ok(()) if inflight.is_some() => {
                let r = appended(&mut inflight).await;
                match inflight.take() {
                    Some(f) => self.finish(f, r).map(drop),
                    None => Ok(()),
                }
            }
            other => other,
        };
        if let Err(e) = &result {
            error!(path = %self.guard.path().display(), error = %e, "ledger writer stopped");
        }
        shutdown.cancel();
        // A batch still queued holds the pump's `done` sender: drop it so the pump stops waiting
        // (nothing is acknowledged; the inbox redelivers).
        drop(batch_rx);
        // Likewise a batch held while commits were paused.
        drop(held);
        if !pump_done {
            if let Ok(Err(e)) = pump.await {
                if result.is_ok() {
                    return Err(e);
                }
            }
        }
        result
    }

    fn paused(&self) -> bool {
        self.storage.borrow().is_paused()
    }

    /// Checks the data directory and pauses or resumes commits accordingly; true when writable.
    fn writable(&mut self) -> bool {
        match self.guard.check() {
            Ok(()) => {
                self.resume();
                true
            }
            Err(fault) => {
                self.pause(&fault);
                false
            }
        }
    }

    /// Commits stop until the data directory can take them: log once, turn health NOT_SERVING
    /// (through the published state), and tell the gateways, whose waits then ask the outcomes
    /// component (it answers `RESOURCE_EXHAUSTED` for undecided events while paused).
    fn pause(&mut self, fault: &Fault) {
        if self.paused() {
            debug!(%fault, "data directory still cannot take a commit");
            return;
        }
        error!(
            path = %self.guard.path().display(),
            "ledger storage fault: {fault}; commits paused (nothing acknowledged is lost, the \
             inbox keeps the events), reads continue, retrying until the data directory can be \
             written"
        );
        let reason = fault.to_string();
        self.storage.send_replace(StorageState::Paused {
            reason: reason.clone(),
        });
        self.outcomes.paused(&reason);
    }

    fn resume(&mut self) {
        if self.paused() {
            info!(path = %self.guard.path().display(), "data directory writable again; commits resume");
            self.storage.send_replace(StorageState::Writable);
        }
    }

    /// Decides a batch against the state (which then includes it) and prepares its append.
    /// `inflight` is the batch before it, decided but perhaps not yet durable: its events are
    /// history for this one, and an event id repeated from it is answered with its outcome.
    ///
    /// # Errors
    /// A store read failed (nothing is decided on a lookup that could not be trusted).
    fn prepare(
        &mut self,
        batch: InboxBatch,
        inflight: Option<&InFlight>,
    ) -> Result<Prepared, Error> {
        let started = Instant::now();
        let mut records = Vec::with_capacity(batch.payloads.len());
        // Content hash of each record, in `records` order.
        let mut contents = Vec::with_capacity(batch.payloads.len());
        let mut rejections = Vec::new();
        let mut outcomes: Vec<ipb::Outcome> = Vec::with_capacity(batch.payloads.len());
        let mut originals: HashMap<EventId, OriginalEvent> = HashMap::new();
        // None: committed in this batch, its hash is known only after the append.
        let mut decided: HashMap<EventId, Option<ipb::Outcome>> =
            HashMap::with_capacity(batch.payloads.len());
        // Committed in this batch or the one in flight: answered once that append is done.
        let mut repeats: Vec<EventId> = Vec::new();
        let recorded_at = codec::now_micros().max(self.recorded_at);
        self.recorded_at = recorded_at;
        let mut duplicates = 0usize;
        // The committed events, for a projector in this process (see [`Config::local_feed`]).
        let feeding = self.config.local_feed.is_some();
        let mut handed = Vec::new();
        let (no_originals, no_decisions) = (HashMap::new(), HashMap::new());
        let max_event = self
            .config
            .partition
            .as_ref()
            .map(|role| crate::partition::max_event_bytes(role.log.max_message()));
        let (prior_originals, prior_decided) = inflight
            .map_or((&no_originals, &no_decisions), |f| {
                (&f.originals, &f.decided)
            });

        let events = batch.payloads.len();
        for (payload, submission, decoded) in batch.payloads {
            let (uuid, given) = match checked_of(decoded) {
                Some(c) => (c.event.event_id.0, Given::Checked(c)),
                None => {
                    let wire = match pb::Event::decode(payload.as_ref()) {
                        Ok(w) => w,
                        Err(e) => {
                            // Nothing identifies it, so nobody can be told: say so loudly and
                            // move on.
                            error!(error = %e, bytes = payload.len(), "inbox message is not a wfl.v1.Event; dropped");
                            continue;
                        }
                    };
                    let Ok(uuid) = Uuid::parse_str(&wire.event_id) else {
                        error!(event_id = %wire.event_id, "inbox message has no valid event_id; dropped");
                        continue;
                    };
                    (uuid, Given::Wire(wire))
                }
            };
            let id = EventId(uuid);
            let prior = match decided.get(&id).or_else(|| prior_decided.get(&id)) {
                Some(Some(o)) => Some(o.clone()),
                Some(None) => {
                    repeats.push(id);
                    duplicates += 1;
                    continue;
                }
                None => match self.store.decision(&uuid)? {
                    Some(d) => Some(stored_outcome(self.store.as_ref(), &uuid, &d)?),
                    None => None,
                },
            };
            if let Some(prior) = prior {
                // Decided before (a redelivery or a resubmission): the stored decision stands;
                // the gateway tells a different submission or different content apart.
                duplicates += 1;
                outcomes.push(prior);
                continue;
            }
            if let Some(limit) = max_event.filter(|limit| payload.len() > *limit) {
                // Cluster mode: its record would not fit in one partition-log message.
                let content: [u8; 32] = sha2::Sha256::digest(&payload).into();
                let code = RefusalCode::InvalidArgument;
                let message = format!(
                    "event: {} bytes; a ledger in cluster mode commits events of at most {limit} bytes (one partition-log message)",
                    payload.len()
                );
                let o = rejected(&uuid, code, message.clone(), Some(content));
                rejections.push(Rejection {
                    event_id: uuid,
                    code,
                    message,
                    content: Some(content),
                });
                decided.insert(id, Some(o.clone()));
                outcomes.push(o);
                continue;
            }
            let converted;
            let encoded;
            // The event, its canonical encoding and that encoding's content hash: as the gateway
            // checked them in this process, or from the bytes.
            let (event, canonical, content): (&wfl_domain::Event, &[u8], [u8; 32]) = match given {
                Given::Checked(c) => {
                    let content = c.content;
                    converted = owned_event(c);
                    (&converted, payload.as_ref(), content)
                }
                Given::Wire(wire) => match wfl_proto::convert::event_from_pb(wire) {
                    Ok(e) => {
                        converted = e;
                        let (bytes, content) = wfl_proto::convert::encode_with_content(&converted);
                        encoded = bytes;
                        (&converted, encoded.as_slice(), content)
                    }
                    Err(v) => {
                        // Only a publisher that bypassed the gateway sends an event that
                        // does not convert; its refusal keeps the hash of the raw payload.
                        let content: [u8; 32] = sha2::Sha256::digest(&payload).into();
                        let code = RefusalCode::InvalidArgument;
                        let o = rejected(&uuid, code, v.to_string(), Some(content));
                        rejections.push(Rejection {
                            event_id: uuid,
                            code,
                            message: v.to_string(),
                            content: Some(content),
                        });
                        decided.insert(id, Some(o.clone()));
                        outcomes.push(o);
                        continue;
                    }
                },
            };
            let history = StoreHistory {
                store: self.store.as_ref(),
                batch: &originals,
                inflight: prior_originals,
                failed: std::cell::Cell::new(false),
            };
            let decision = self.state.decide(event, &history);
            if history.failed.get() {
                return Err(Error::Internal(
                    "store read failed while checking an event; stopping without acknowledging"
                        .into(),
                ));
            }
            match decision {
                Ok(()) => {
                    let sequence = self.next_sequence;
                    self.next_sequence += 1;
                    self.state.apply_tracked(event, &history, &mut self.changed);
                    records.push(NewRecord {
                        sequence,
                        event_id: uuid,
                        org_id: event.org_id.0.clone(),
                        event_type: event.event_type().as_str().to_owned(),
                        bytes: codec::encode_canonical(sequence, recorded_at, canonical),
                        submission,
                    });
                    contents.push(content);
                    originals.insert(id, OriginalEvent::of(event));
                    decided.insert(id, None);
                    if feeding {
                        // Taken, not copied: this is the writer's own event from here on.
                        handed.push(converted);
                    }
                }
                Err(conflict) => {
                    let code = match conflict {
                        Conflict::Version { .. } => RefusalCode::Aborted,
                        Conflict::Lifecycle(_) => RefusalCode::FailedPrecondition,
                    };
                    let o = rejected(&uuid, code, conflict.to_string(), Some(content));
                    rejections.push(Rejection {
                        event_id: uuid,
                        code,
                        message: conflict.to_string(),
                        content: Some(content),
                    });
                    decided.insert(id, Some(o.clone()));
                    outcomes.push(o);
                }
            }
        }
        // The state's changed keys go in the records' batch: the stored state is always
        // exactly as of the stored head.
        // Taken only with records: what the start's fold changed waits for the first of them.
        let meta = match records.last() {
            Some(last) => {
                let changed = std::mem::take(&mut self.changed);
                snapshot::changes(&self.state, &changed, last.sequence)
            }
            None => Vec::new(),
        };
        Ok(Prepared {
            done: batch.done,
            notice: batch.notice,
            events,
            duplicates,
            records,
            contents,
            rejections,
            meta,
            outcomes,
            originals,
            decided,
            repeats,
            handed,
            recorded_at,
            started,
            decided_in: started.elapsed(),
        })
    }

    /// Starts the prepared batch's append (one atomic, flushed store batch) on a blocking
    /// thread; the writer decides the next batch meanwhile. Call only when no other append is
    /// in flight: appends are made one at a time, in order. A checkpoint of the tree of
    /// `checkpoint` records (given only with records or refusals, outside cluster mode) is cut on
    /// the same thread, before the append, and written in its store batch: the writer does not
    /// stop for it.
    fn launch(&self, prepared: Prepared, checkpoint: Option<u64>) -> InFlight {
        debug_assert!(
            checkpoint.is_none() || (self.config.partition.is_none() && prepared.appends()),
            "a checkpoint goes only with records or refusals, outside cluster mode"
        );
        let Prepared {
            done,
            notice,
            events,
            duplicates,
            records,
            contents,
            rejections,
            meta,
            outcomes,
            originals,
            decided,
            repeats,
            handed,
            recorded_at,
            started,
            decided_in,
        } = prepared;
        let committed_ids: Vec<(Uuid, Option<Uuid>)> =
            records.iter().map(|r| (r.event_id, r.submission)).collect();
        let append = if records.is_empty() && rejections.is_empty() && notice.is_none() {
            None
        } else {
            let store = self.store.clone();
            let timer = crate::metrics::CommitTimer::start(
                &self.config.metrics,
                records.len() + rejections.len(),
            );
            Some(match self.config.partition.clone() {
                // Cluster mode: the partition log first (fenced), then the store.
                Some(role) => tokio::spawn(async move {
                    let links =
                        crate::partition::append(store, role, records, rejections, meta, notice)
                            .await;
                    timer.done();
                    links
                }),
                None => {
                    let signer = self.signer.clone();
                    tokio::task::spawn_blocking(move || {
                        let links = append_with_cut(
                            store.as_ref(),
                            &signer,
                            &records,
                            &rejections,
                            &meta,
                            checkpoint,
                        );
                        timer.done();
                        links
                    })
                }
            })
        };
        InFlight {
            append,
            done,
            events,
            duplicates,
            committed_ids,
            contents,
            outcomes,
            originals,
            decided,
            repeats,
            handed,
            recorded_at,
            started,
            decided_in,
        }
    }

    /// Completes a launched batch once its append returned (see [`appended`]): lets the pump
    /// acknowledge its inbox messages and hands its decisions to the outcome broadcast. Returns the outcomes of the
    /// events it committed, for repeats of them in the batch decided meanwhile.
    ///
    /// # Errors
    /// The append failed: nothing of it (or after it) is acknowledged.
    fn finish(
        &mut self,
        inflight: InFlight,
        appended: Result<Vec<(u64, Hash)>, Error>,
    ) -> Result<HashMap<EventId, ipb::Outcome>, Error> {
        let InFlight {
            append,
            done,
            events,
            duplicates,
            committed_ids,
            contents,
            mut outcomes,
            repeats,
            handed,
            recorded_at,
            started,
            decided_in,
            ..
        } = inflight;
        let mut fresh = HashMap::with_capacity(committed_ids.len());
        let hashes = appended?;
        if append.is_some() {
            let mut last = None;
            self.hand_over(&hashes, handed, recorded_at);
            for (((uuid, submission), content), (sequence, hash)) in
                committed_ids.iter().zip(&contents).zip(hashes)
            {
                let o = committed(uuid, sequence, &hash, *submission, Some(*content));
                fresh.insert(EventId(*uuid), o.clone());
                outcomes.push(o);
                last = Some(sequence);
            }
            for id in &repeats {
                if let Some(o) = fresh.get(id) {
                    outcomes.push(o.clone());
                }
            }
            if let Some(last) = last {
                self.head_tx.send_replace(last);
            }
        }
        debug!(
            events,
            duplicates,
            decide_us = decided_in.as_micros() as u64,
            total_us = started.elapsed().as_micros() as u64,
            "batch committed"
        );
        // Durable now: the pump may acknowledge the inbox messages.
        let _ = done.send(());
        self.outcomes.decided(outcomes);
        Ok(fresh)
    }

    /// Hands a durable batch's committed events to the projector in this process, if there is
    /// one; never waits. A full channel drops the batch (the projector reads it through
    /// `Subscribe`); a closed one (the projector stopped) ends the hand-over.
    fn hand_over(
        &mut self,
        links: &[(u64, Hash)],
        events: Vec<wfl_domain::Event>,
        recorded_at: i64,
    ) {
        let Some(feed) = &self.config.local_feed else {
            return;
        };
        if events.is_empty() {
            return;
        }
        let batch = links
            .iter()
            .zip(events)
            .map(|(&(sequence, hash), event)| wfl_domain::CommittedEvent {
                sequence,
                recorded_at_micros: recorded_at,
                hash,
                event,
            })
            .collect();
        match feed.try_send(batch) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                debug!("the projector in this process is behind; it reads this batch through Subscribe");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                info!("the projector in this process stopped taking committed batches");
                self.config.local_feed = None;
            }
        }
    }

    /// Cuts and puts a signed checkpoint at the head when one is due ([`Self::due_checkpoint`]),
    /// on its own: for when no append follows at once. The store moves its verified marker with
    /// it, which bounds the next open's re-verification.
    async fn checkpoint_if_due(&mut self) -> Result<(), Error> {
        let Some(size) = self.due_checkpoint() else {
            return Ok(());
        };
        let (store, signer) = (self.store.clone(), self.signer.clone());
        tokio::task::spawn_blocking(move || {
            let signed = cut(store.as_ref(), &signer, size)?;
            store.put_checkpoint(size, &signed).map_err(Error::from)
        })
        .await
        .map_err(Error::join)??;
        Ok(())
    }

    /// The durable head's size, when a checkpoint of it is due (enough events or time since the
    /// last one): the caller cuts it ([`cut`]) and writes it, with the next append
    /// ([`Log::append_with_checkpoint`], on the append's own thread) or on its own. Call only
    /// when no append is in flight.
    fn due_checkpoint(&mut self) -> Option<u64> {
        let size = *self.head_tx.borrow();
        if size <= self.checkpointed {
            self.checkpointed_at = Instant::now();
            return None;
        }
        let due = size - self.checkpointed >= self.config.checkpoint_every_events
            || self.checkpointed_at.elapsed() >= self.config.checkpoint_interval;
        if !due {
            return None;
        }
        // Counted as cut now: if the write that carries it fails, the writer stops, and a
        // restart reads the latest stored checkpoint again.
        self.checkpointed = size;
        self.checkpointed_at = Instant::now();
        Some(size)
    }
}

/// Signs a checkpoint of the tree of `size` records (at most the durable head, and no append
/// running beside: the root is read from the stored tiles). Blocking: store reads.
fn cut(store: &dyn Log, signer: &Signer, size: u64) -> Result<Vec<u8>, Error> {
    let root = store.merkle_root(size)?;
    let record = store
        .get(size)?
        .ok_or_else(|| Error::Internal(format!("record {size} vanished below the head")))?;
    let signed = signer.sign(Checkpoint {
        tree_size: size,
        root,
        head_hash: record.hash,
        time_micros: codec::now_micros(),
    });
    debug!(tree_size = size, "checkpoint signed");
    Ok(signed.encode())
}

/// A batch's append with the checkpoint of the tree of `checkpoint` records, if one is due,
/// cut first on the same thread and written in the append's store batch. Blocking.
fn append_with_cut(
    store: &dyn Log,
    signer: &Signer,
    records: &[NewRecord],
    rejections: &[Rejection],
    meta: &[(String, Option<Vec<u8>>)],
    checkpoint: Option<u64>,
) -> Result<Links, Error> {
    let signed = checkpoint
        .map(|size| cut(store, signer, size).map(|bytes| (size, bytes)))
        .transpose()?;
    let signed = signed
        .as_ref()
        .map(|(size, bytes)| (*size, bytes.as_slice()));
    Ok(store.append_with_checkpoint(records, rejections, meta, signed)?)
}

/// What [`Append`] gives back: the sequence and hash of every record, in order.
type Links = Vec<(u64, Hash)>;

/// A store append running on a blocking thread.
type Append = tokio::task::JoinHandle<Result<Links, Error>>;

/// A batch decided and ready to append ([`Writer::prepare`]).
struct Prepared {
    done: oneshot::Sender<()>,
    notice: Option<crate::partition::Notice>,
    events: usize,
    duplicates: usize,
    records: Vec<NewRecord>,
    contents: Vec<[u8; 32]>,
    rejections: Vec<Rejection>,
    meta: Vec<(String, Option<Vec<u8>>)>,
    /// Outcomes known before the append: refusals and earlier decisions.
    outcomes: Vec<ipb::Outcome>,
    originals: HashMap<EventId, OriginalEvent>,
    decided: HashMap<EventId, Option<ipb::Outcome>>,
    /// Event ids committed in this batch or the one before, seen again.
    repeats: Vec<EventId>,
    /// `records`' events, for a projector in this process (empty without one).
    handed: Vec<wfl_domain::Event>,
    recorded_at: i64,
    started: Instant,
    decided_in: Duration,
}

impl Prepared {
    /// True when the batch writes anything to the store (records or refusals).
    fn appends(&self) -> bool {
        !self.records.is_empty() || !self.rejections.is_empty()
    }

    /// Answers this batch's repeats of events the batch before committed.
    fn answer_repeats(&mut self, earlier: &HashMap<EventId, ipb::Outcome>) {
        let outcomes = &mut self.outcomes;
        self.repeats.retain(|id| match earlier.get(id) {
            Some(o) => {
                outcomes.push(o.clone());
                false
            }
            None => true,
        });
    }
}

/// A batch whose append was launched ([`Writer::launch`]) and not yet finished.
struct InFlight {
    /// `None` when the batch had nothing to store (only repeats of earlier decisions).
    append: Option<Append>,
    done: oneshot::Sender<()>,
    events: usize,
    duplicates: usize,
    committed_ids: Vec<(Uuid, Option<Uuid>)>,
    contents: Vec<[u8; 32]>,
    outcomes: Vec<ipb::Outcome>,
    /// History and decisions for the batch decided while this one is appended.
    originals: HashMap<EventId, OriginalEvent>,
    decided: HashMap<EventId, Option<ipb::Outcome>>,
    repeats: Vec<EventId>,
    handed: Vec<wfl_domain::Event>,
    recorded_at: i64,
    started: Instant,
    decided_in: Duration,
}

/// Waits for the append in flight to return (cancel-safe: the task is polled by reference, so
/// a `select!` that drops this loses nothing). Pending forever when nothing is in flight.
async fn appended(inflight: &mut Option<InFlight>) -> Result<Links, Error> {
    match inflight.as_mut().map(|f| f.append.as_mut()) {
        None => std::future::pending().await,
        Some(None) => Ok(Vec::new()),
        Some(Some(append)) => Ok(append.await.map_err(Error::join)??),
    }
}

/// Where the state at start came from.
struct Restored {
    state: LedgerState,
    /// `keyed` (read back), `snapshot` (the chunked snapshot of earlier builds, migrated) or
    /// `history` (folded from sequence 1).
    source: &'static str,
    /// The sequence the stored state reflected; the fold started after it.
    through: u64,
    folded: u64,
    /// The keys the fold after `through` changed (already written here). In cluster mode the
    /// records it folded came from the first parts of a batch whose writer died before the
    /// last part (the one with the writer-state metadata, [`crate::partition::encode_batches`]):
    /// the next append must carry these keys through the partition log too, or a standby copy
    /// would end with `through` at the head and those workers' keys stale.
    changed: Changed,
}

/// Reads the stored state back (see [`snapshot`]) and folds the records after it; without a
/// usable keyed state, migrates the chunked snapshot of earlier builds or folds from sequence 1,
/// then writes the state keyed.
///
/// # Errors
/// The store cannot be read or written, or a record does not decode.
fn restore(s: &dyn Log, head: u64) -> Result<Restored, Error> {
    let keyed = match snapshot::load(s, head) {
        Ok(keyed) => keyed,
        Err(why) => {
            warn!(%why, "the stored ledger state is not used; rebuilding the state from sequence 1");
            None
        }
    };
    if let Some((mut state, through)) = keyed {
        let mut changed = Changed::default();
        let folded = fold(s, &mut state, through + 1, Some(&mut changed))?;
        if folded > 0 {
            // Records another program appended: their changes with `through` = head, atomically.
            s.meta_write(&snapshot::changes(&state, &changed, head))?;
        }
        // A migration interrupted after its marker was written leaves old chunks behind.
        snapshot::drop_legacy(s)?;
        return Ok(Restored {
            state,
            source: "keyed",
            through,
            folded,
            changed,
        });
    }
    let (mut state, through, source) = match snapshot::legacy::load(s, head) {
        Ok(Some((state, through))) => (state, through, "snapshot"),
        Ok(None) => (LedgerState::new(), 0, "history"),
        Err(why) => {
            warn!(%why, "the ledger state snapshot is not used; rebuilding the state from sequence 1");
            (LedgerState::new(), 0, "history")
        }
    };
    let folded = fold(s, &mut state, through + 1, None)?;
    snapshot::write_all(s, &state, head)?;
    Ok(Restored {
        state,
        source,
        through,
        folded,
        // A rebuild rewrites this store's state whole; the standby copies keep theirs, built
        // from the partition log's metadata.
        changed: Changed::default(),
    })
}

/// Folds the records from sequence `from` to the head into `state`; returns how many.
///
/// # Errors
/// The store cannot be read, or a record does not decode.
fn fold(
    s: &dyn Log,
    state: &mut LedgerState,
    mut from: u64,
    mut changed: Option<&mut Changed>,
) -> Result<u64, Error> {
    let mut folded = 0u64;
    loop {
        let records = s.read(from, None, &Filter::default(), 10_000)?;
        let Some(last) = records.last() else {
            return Ok(folded);
        };
        from = last.sequence + 1;
        let empty = HashMap::new();
        let history = StoreHistory {
            store: s,
            batch: &empty,
            inflight: &empty,
            failed: std::cell::Cell::new(false),
        };
        folded += records.len() as u64;
        for r in &records {
            let event = codec::decode_event(r)?;
            match changed.as_deref_mut() {
                Some(changed) => state.apply_tracked(&event, &history, changed),
                None => state.apply(&event, &history),
            }
            if history.failed.get() {
                return Err(Error::Internal(format!(
                    "store read failed while rebuilding state at sequence {}",
                    r.sequence
                )));
            }
        }
    }
}

/// Batches fetched ahead of the writer and waiting for their acknowledgement, at most: bounds
/// the deliveries held unacknowledged (well under the consumer's `max_ack_pending`).
const ACKS_QUEUED: usize = 4;

/// Cluster mode: how the pump routes deliveries by the partition map (org placement, see
/// [`crate::partition::Notice`]).
struct Routing {
    partition: u32,
    map: wfl_bus::cluster::LiveMap,
    /// The map (and its revision) the writer last said it decides under: deliveries are
    /// routed by it, never by a newer one not yet announced.
    announced: Option<(u64, Arc<wfl_bus::cluster::PartitionMap>)>,
    /// The revision the partition's log last announced (a predecessor's): nothing is routed
    /// until the followed map has reached it.
    floor: u64,
    /// Said once: the followed map is still below `floor`.
    waiting: bool,
}

/// How long a delivery of an org being placed waits before it is delivered again.
const DEFER_DELAY: Duration = Duration::from_secs(1);

impl Routing {
    /// A notice for the writer when the map changed since the last one (always at the first
    /// call: a new writer says which revision it follows).
    fn notice(&mut self) -> Option<crate::partition::Notice> {
        let (revision, map) = self.map.current();
        // Only forward, and never below what the log already announced.
        if revision < self.floor || self.announced.as_ref().is_some_and(|(r, _)| *r >= revision) {
            return None;
        }
        self.announced = Some((revision, map.clone()));
        let leaving = map
            .moving
            .keys()
            .filter(|org| map.partition_of(org) == self.partition)
            .cloned()
            .collect();
        Some(crate::partition::Notice { revision, leaving })
    }

    /// Keeps the deliveries this partition decides under the announced map; hands back the
    /// ones of an org being placed (or routed by a newer map than the writer's) for later, and
    /// forwards those of orgs placed on another partition to its inbox range.
    async fn route(
        &self,
        deliveries: Vec<wfl_bus::Delivery>,
        acker: &dyn wfl_bus::Acker,
    ) -> Vec<wfl_bus::Delivery> {
        let Some((revision, map)) = self.announced.clone() else {
            return deliveries;
        };
        let (mut keep, mut later, mut moves) = (Vec::new(), Vec::new(), Vec::new());
        for d in deliveries {
            let route = match d.org_id.as_deref() {
                None => None,
                Some(org) if map.is_moving(org) || d.map_revision > revision => Some(None),
                Some(org) => match map.partition_of(org) {
                    home if home == self.partition => None,
                    home => Some(Some(wfl_bus::cluster::partition_inbox_subject(home, org))),
                },
            };
            match route {
                None => keep.push(d),
                Some(None) => later.push(d),
                Some(Some(subject)) => moves.push((d, subject)),
            }
        }
        if !later.is_empty() {
            debug!(
                deliveries = later.len(),
                "org being placed (or a newer partition map): delivered again later"
            );
            if let Err(e) = acker.defer(later, DEFER_DELAY).await {
                warn!(error = %e, "cannot hand deliveries back; they come again after the ack wait");
            }
        }
        if !moves.is_empty() {
            info!(
                deliveries = moves.len(),
                revision, "forwarding deliveries of orgs placed on another partition"
            );
            if let Err(e) = acker.redirect(moves, revision).await {
                warn!(error = %e, "cannot forward deliveries; they come again after the ack wait");
            }
        }
        keep
    }
}

/// Takes batches from the inbox and hands them to the writer without waiting for their flush
/// (the next batch is fetched, and decided, while the one before is flushed); the acker task
/// acknowledges each batch, in order, once the writer says it is durable. While idle it lets
/// `watch` look for a stalled consumer and recover it. In cluster mode it routes by the
/// partition map first ([`Routing`]).
///
/// # Errors
/// [`Error::Stalled`] when the inbox stays stalled after every recovery step.
async fn pump(
    mut inbox: Box<dyn Inbox>,
    mut watch: crate::liveness::InboxWatch,
    tx: mpsc::Sender<InboxBatch>,
    max: usize,
    mut routing: Option<Routing>,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let (ack_tx, ack_rx) = mpsc::channel(ACKS_QUEUED);
    let acker = inbox.acker();
    // Not aborted when the pump stops: it acknowledges what the writer still flushes, then
    // ends with the channel.
    tokio::spawn(acknowledge(acker.clone(), ack_rx));
    let mut backoff = Duration::from_millis(50);
    loop {
        // Before anything fetched from here on is routed by a new map, the writer says so.
        if !announce(&mut routing, &tx).await {
            return Ok(());
        }
        if let Some(r) = routing.as_mut().filter(|r| r.announced.is_none()) {
            // The followed map is older than what the log announced: wait for it.
            if !r.waiting {
                warn!(
                    partition = r.partition,
                    floor = r.floor,
                    map_revision = r.map.current().0,
                    "the partition map read is older than this partition's log announced; waiting for it before routing"
                );
                r.waiting = true;
            }
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
            continue;
        }
        let next = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            r = inbox.next_batch(max, Duration::from_millis(500)) => r,
        };
        let deliveries = match next {
            Ok(d) => {
                backoff = Duration::from_millis(50);
                d
            }
            Err(e) => {
                warn!(error = %e, "inbox unavailable; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(()),
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
                // A pull stream that keeps failing while the broker answers is a stall too.
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(()),
                    r = watch.idle(inbox.as_mut()) => r?,
                }
                continue;
            }
        };
        if deliveries.is_empty() {
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                r = watch.idle(inbox.as_mut()) => r?,
            }
            continue;
        }
        watch.arrived();
        watch.sample(inbox.as_mut()).await;
        // A map read since the fetch began is announced first, so deliveries routed by it
        // are not held for nothing.
        if !announce(&mut routing, &tx).await {
            return Ok(());
        }
        let mut deliveries = match &routing {
            Some(r) => r.route(deliveries, acker.as_ref()).await,
            None => deliveries,
        };
        if deliveries.is_empty() {
            continue;
        }
        let (done, flushed) = oneshot::channel();
        // The checked events go to the writer (which takes them as they are); the deliveries
        // keep what acknowledging them needs.
        let payloads = deliveries
            .iter_mut()
            .map(|d| (d.payload.clone(), d.submission, d.decoded.take()))
            .collect();
        let batch = InboxBatch {
            payloads,
            notice: None,
            done,
        };
        if tx.send(batch).await.is_err() {
            return Ok(());
        }
        if ack_tx.send((deliveries, flushed)).await.is_err() {
            // The acker stopped: the writer failed before a flush.
            return Ok(());
        }
    }
}

/// Sends the writer a notice when the followed map has a newer revision than it announced;
/// false when the writer is gone.
async fn announce(routing: &mut Option<Routing>, tx: &mpsc::Sender<InboxBatch>) -> bool {
    let Some(notice) = routing.as_mut().and_then(Routing::notice) else {
        return true;
    };
    let (done, _) = oneshot::channel();
    let batch = InboxBatch {
        payloads: Vec::new(),
        notice: Some(notice),
        done,
    };
    tx.send(batch).await.is_ok()
}

/// Acknowledges each batch once the writer flushed it, in the order fetched. Stops at the first
/// batch the writer did not flush (it failed): nothing after it is acknowledged either.
async fn acknowledge(
    acker: Arc<dyn wfl_bus::Acker>,
    mut batches: mpsc::Receiver<(Vec<wfl_bus::Delivery>, oneshot::Receiver<()>)>,
) {
    while let Some((deliveries, flushed)) = batches.recv().await {
        if flushed.await.is_err() {
            return;
        }
        let acking = Instant::now();
        let acked = acker.ack(deliveries).await;
        debug!(
            ack_us = acking.elapsed().as_micros() as u64,
            "batch acknowledged"
        );
        if let Err(e) = acked {
            // Not fatal: the broker redelivers and the ledger recognises the event ids.
            warn!(error = %e, "inbox ack failed; the messages will be redelivered and deduplicated");
        }
    }
}

/// Committed events by id: the current batch first, then the store.
struct StoreHistory<'a> {
    store: &'a dyn Log,
    batch: &'a HashMap<EventId, OriginalEvent>,
    /// The batch before, decided and perhaps not yet durable.
    inflight: &'a HashMap<EventId, OriginalEvent>,
    /// Set when a store read failed: the answer "not in the ledger" cannot be trusted, so the
    /// writer must stop rather than store a refusal based on it.
    failed: std::cell::Cell<bool>,
}

impl History for StoreHistory<'_> {
    fn original(&self, id: &EventId) -> Option<OriginalEvent> {
        if let Some(o) = self.batch.get(id).or_else(|| self.inflight.get(id)) {
            return Some(o.clone());
        }
        let lookup = || -> Result<Option<OriginalEvent>, Error> {
            let Some(Decision::Committed { sequence, .. }) = self.store.decision(&id.0)? else {
                return Ok(None);
            };
            let Some(record) = self.store.get(sequence)? else {
                return Ok(None);
            };
            codec::original(&record).map(Some)
        };
        lookup().unwrap_or_else(|e| {
            error!(error = %e, event_id = %id, "history lookup failed");
            self.failed.set(true);
            None
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wfl_testkit::scenario::{hire, resign};

    fn payload(e: &wfl_domain::Event) -> Payload {
        let bytes = wfl_proto::convert::event_to_pb(e).encode_to_vec();
        (Bytes::from(bytes), Some(Uuid::new_v4()), None)
    }

    fn batch(payloads: Vec<Payload>) -> (InboxBatch, oneshot::Receiver<()>) {
        let (done, flushed) = oneshot::channel();
        (
            InboxBatch {
                payloads,
                notice: None,
                done,
            },
            flushed,
        )
    }

    fn sequence_of(outcomes: &[ipb::Outcome], id: &EventId) -> Vec<u64> {
        outcomes
            .iter()
            .filter(|o| o.event_id == id.0.to_string())
            .filter_map(|o| match &o.result {
                Some(ipb::outcome::Result::Committed(c)) => Some(c.sequence),
                _ => None,
            })
            .collect()
    }

    /// The pipeline's own case: batch n+1 is decided while batch n is still being appended. An
    /// event of n seen again in n+1 is not appended twice and is answered with n's outcome once
    /// n is durable; an event of n+1 that depends on one of n (a resignation after the hire) is
    /// decided against it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_decided_beside_the_append_before_it_sees_that_batch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Log> =
            Arc::new(wfl_store::SledLog::open(&dir.path().join("ledger")).expect("open"));
        let signer = Arc::new(
            crate::checkpoint::Signer::load_or_create(&dir.path().join("key")).expect("key"),
        );
        let shutdown = CancellationToken::new();
        let bus: Arc<dyn wfl_bus::Bus> = Arc::new(wfl_bus::MemoryBus::new());
        let (broadcast, publishing) = Broadcast::start(bus, shutdown.clone());
        tokio::spawn(publishing);
        let (storage, _) = watch::channel(StorageState::Writable);
        let (mut writer, head) = Writer::recover(
            store.clone(),
            Config::new(dir.path()),
            signer,
            storage,
            broadcast,
        )
        .await
        .expect("recover");

        let (a, b, c) = (hire("o", "w1"), hire("o", "w2"), hire("o", "w3"));
        let leaves = resign("o", "w1");
        let (first, first_flushed) = batch(vec![payload(&a), payload(&b)]);
        let prepared = writer.prepare(first, None).expect("prepare n");
        let mut inflight = Some(writer.launch(prepared, None));

        let (second, second_flushed) = batch(vec![payload(&a), payload(&leaves), payload(&c)]);
        let mut second = writer
            .prepare(second, inflight.as_ref())
            .expect("prepare n+1 beside n's append");
        assert_eq!(second.records.len(), 2, "a is not appended twice");
        assert!(
            second.rejections.is_empty(),
            "the resignation sees the hire in flight"
        );

        let r = appended(&mut inflight).await;
        let fresh = writer
            .finish(inflight.take().expect("in flight"), r)
            .expect("finish n");
        first_flushed.await.expect("n flushed");
        second.answer_repeats(&fresh);
        assert_eq!(sequence_of(&second.outcomes, &a.event_id), vec![1]);

        let mut inflight = Some(writer.launch(second, None));
        let r = appended(&mut inflight).await;
        writer
            .finish(inflight.take().expect("in flight"), r)
            .expect("finish n+1");
        second_flushed.await.expect("n+1 flushed");
        assert_eq!(*head.borrow(), 4);
        let stored = store.read(1, None, &Filter::default(), 10).expect("read");
        let ids: Vec<Uuid> = stored.iter().map(|r| r.event_id).collect();
        assert_eq!(
            ids,
            vec![a.event_id.0, b.event_id.0, leaves.event_id.0, c.event_id.0]
        );
        shutdown.cancel();
    }

    async fn writer_on(
        store: Arc<dyn Log>,
        dir: &std::path::Path,
        shutdown: &CancellationToken,
    ) -> Writer {
        let signer =
            Arc::new(crate::checkpoint::Signer::load_or_create(&dir.join("key")).expect("key"));
        let bus: Arc<dyn wfl_bus::Bus> = Arc::new(wfl_bus::MemoryBus::new());
        let (broadcast, publishing) = Broadcast::start(bus, shutdown.clone());
        tokio::spawn(publishing);
        let (storage, _) = watch::channel(StorageState::Writable);
        Writer::recover(store, Config::new(dir), signer, storage, broadcast)
            .await
            .expect("recover")
            .0
    }

    /// In one process the gateway hands over the event it checked (`Checked`) with its
    /// canonical bytes, and the writer takes it instead of decoding them: what it decides and
    /// stores is exactly what it decides and stores from the bytes alone (record content,
    /// content hash, refusals against the history).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_checked_event_handed_over_is_committed_as_its_bytes_are() {
        let events = [hire("o", "w1"), resign("o", "w1"), resign("o", "w2")];
        let mut seen = Vec::new();
        for hand_over in [false, true] {
            let dir = tempfile::tempdir().expect("tempdir");
            let store: Arc<dyn Log> =
                Arc::new(wfl_store::SledLog::open(&dir.path().join("ledger")).expect("open"));
            let shutdown = CancellationToken::new();
            let mut writer = writer_on(store, dir.path(), &shutdown).await;
            let payloads = events
                .iter()
                .map(|e| {
                    let (bytes, content) = wfl_proto::convert::encode_with_content(e);
                    let checked = hand_over.then(|| {
                        wfl_bus::Decoded(Arc::new(wfl_proto::convert::Checked {
                            event: e.clone(),
                            content,
                        }))
                    });
                    (Bytes::from(bytes), Some(Uuid::from_u128(7)), checked)
                })
                .collect();
            let (b, _flushed) = batch(payloads);
            let prepared = writer.prepare(b, None).expect("prepare");
            let records: Vec<_> = prepared
                .records
                .iter()
                .map(|r| {
                    let stored = wfl_store::StoredRecord {
                        sequence: r.sequence,
                        event_id: r.event_id,
                        prev_hash: [0; 32],
                        hash: [0; 32],
                        bytes: r.bytes.clone(),
                    };
                    let c = codec::decode(&stored).expect("decode");
                    (
                        c.sequence,
                        c.event,
                        r.event_id,
                        r.org_id.clone(),
                        r.event_type.clone(),
                    )
                })
                .collect();
            let refused: Vec<_> = prepared
                .rejections
                .iter()
                .map(|r| (r.event_id, r.code, r.message.clone(), r.content))
                .collect();
            assert_eq!(records.len(), 2, "the hire and its resignation");
            assert_eq!(refused.len(), 1, "a resignation of nobody");
            seen.push((records, prepared.contents.clone(), refused));
            shutdown.cancel();
        }
        assert_eq!(seen[0], seen[1]);
    }

    /// The event the gateway handed over is taken as it is when the writer holds the only
    /// reference (the pump passes it on rather than keeping a copy), and copied otherwise.
    #[test]
    fn a_handed_over_event_is_taken_or_copied() {
        let event = hire("o", "w1");
        let checked = |e: &wfl_domain::Event| {
            Arc::new(wfl_proto::convert::Checked {
                event: e.clone(),
                content: [7; 32],
            })
        };
        let alone = checked(&event);
        let name = alone.event.org_id.0.as_ptr();
        let taken = owned_event(alone);
        assert_eq!(taken, event);
        assert_eq!(taken.org_id.0.as_ptr(), name, "moved, not copied");
        let shared = checked(&event);
        let kept = Arc::clone(&shared);
        assert_eq!(owned_event(shared), event);
        assert_eq!(kept.event, event, "the other holder keeps its event");
        let other = wfl_bus::Decoded(Arc::new(3u8));
        assert!(
            checked_of(Some(other)).is_none(),
            "another type is decoded from the bytes"
        );
        assert!(checked_of(None).is_none());
    }

    /// A checkpoint due at the head an append reached is cut (signed) on the next append's
    /// thread, before it, and written in its store batch: it covers exactly the tree before that
    /// append, and the ledger's key verifies it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_due_checkpoint_is_written_with_the_next_append() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Log> =
            Arc::new(wfl_store::SledLog::open(&dir.path().join("ledger")).expect("open"));
        let shutdown = CancellationToken::new();
        let mut writer = writer_on(store.clone(), dir.path(), &shutdown).await;
        writer.config.checkpoint_every_events = 2;
        assert_eq!(writer.due_checkpoint(), None, "nothing to cover");
        let mut run = |events: Vec<wfl_domain::Event>| {
            let (b, flushed) = batch(events.iter().map(payload).collect());
            (writer.prepare(b, None).expect("prepare"), flushed)
        };
        let (first, flushed) = run(vec![hire("o", "w1"), hire("o", "w2")]);
        let mut inflight = Some(writer.launch(first, None));
        let r = appended(&mut inflight).await;
        writer
            .finish(inflight.take().expect("in flight"), r)
            .expect("finish");
        flushed.await.expect("flushed");

        let checkpoint = writer.due_checkpoint();
        assert_eq!(checkpoint, Some(2));
        assert_eq!(
            store.latest_checkpoint().expect("read"),
            None,
            "not cut yet"
        );
        let (b, flushed) = batch(vec![payload(&hire("o", "w3"))]);
        let second = writer.prepare(b, None).expect("prepare");
        assert!(second.appends());
        let mut inflight = Some(writer.launch(second, checkpoint));
        let r = appended(&mut inflight).await;
        writer
            .finish(inflight.take().expect("in flight"), r)
            .expect("finish");
        flushed.await.expect("flushed");

        let (size, bytes) = store.latest_checkpoint().expect("read").expect("written");
        assert_eq!(size, 2);
        let signed = crate::checkpoint::SignedCheckpoint::decode(&bytes).expect("decode");
        assert_eq!(signed.checkpoint.tree_size, 2);
        assert_eq!(signed.checkpoint.root, store.merkle_root(2).expect("root"));
        let key = crate::checkpoint::Signer::load(&dir.path().join("key")).expect("key");
        assert!(signed.verify(&key.public()));
        assert_eq!(store.head().expect("head").sequence, 3);
        // One event since: not due yet.
        assert_eq!(writer.due_checkpoint(), None);
        shutdown.cancel();
    }

    /// Cluster mode: a writer that died between the parts of a split batch leaves records on the
    /// partition log without the writer-state metadata (it rides in the last part). The next
    /// owner folds them at start; its first append must carry what that fold changed, or a
    /// standby copy would end with `through` at the head and those workers' keys stale.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn what_the_start_folded_goes_out_with_the_first_append() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Log> =
            Arc::new(wfl_store::SledLog::open(&dir.path().join("ledger")).expect("open"));
        let shutdown = CancellationToken::new();
        let mut writer = writer_on(store.clone(), dir.path(), &shutdown).await;
        let (first, flushed) = batch(vec![payload(&hire("o", "w1"))]);
        let prepared = writer.prepare(first, None).expect("prepare");
        let mut inflight = Some(writer.launch(prepared, None));
        let r = appended(&mut inflight).await;
        writer
            .finish(inflight.take().expect("in flight"), r)
            .expect("finish");
        flushed.await.expect("flushed");
        drop(writer);

        // The first part of a batch: a record, no metadata.
        let orphan = hire("o", "w2");
        store
            .append_with_meta(
                &[NewRecord {
                    sequence: 2,
                    event_id: orphan.event_id.0,
                    org_id: "o".into(),
                    event_type: orphan.event_type().as_str().to_owned(),
                    bytes: codec::encode(2, codec::now_micros(), &orphan),
                    submission: None,
                }],
                &[],
                &[],
            )
            .expect("append a part");

        let mut writer = writer_on(store.clone(), dir.path(), &shutdown).await;
        let (next, _) = batch(vec![payload(&hire("o", "w3"))]);
        let prepared = writer.prepare(next, None).expect("prepare");
        let keys: Vec<&str> = prepared.meta.iter().map(|(k, _)| k.as_str()).collect();
        for worker in ["ow2", "ow3"] {
            assert!(
                keys.iter().any(|k| k.ends_with(worker)),
                "the first append carries worker {worker}'s key: {keys:?}"
            );
        }
        assert!(
            !keys.iter().any(|k| k.ends_with("ow1")),
            "and only what changed since the last metadata: {keys:?}"
        );
        shutdown.cancel();
    }

    /// Recorded-at never goes back along the ledger: a writer whose clock is behind the head
    /// record's (a clock step, a takeover by a machine behind) records at the head's instant.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn recorded_at_never_goes_back_along_the_ledger() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Log> =
            Arc::new(wfl_store::SledLog::open(&dir.path().join("ledger")).expect("open"));
        let shutdown = CancellationToken::new();
        // The head was recorded an hour ahead of this machine's clock.
        let ahead = codec::now_micros() + 3_600_000_000;
        let first = hire("o", "w1");
        store
            .append_with_meta(
                &[NewRecord {
                    sequence: 1,
                    event_id: first.event_id.0,
                    org_id: "o".into(),
                    event_type: first.event_type().as_str().to_owned(),
                    bytes: codec::encode(1, ahead, &first),
                    submission: None,
                }],
                &[],
                &[],
            )
            .expect("append");
        let mut writer = writer_on(store.clone(), dir.path(), &shutdown).await;
        for worker in ["w2", "w3"] {
            let (next, _) = batch(vec![payload(&hire("o", worker))]);
            let prepared = writer.prepare(next, None).expect("prepare");
            let mut inflight = Some(writer.launch(prepared, None));
            let r = appended(&mut inflight).await;
            writer
                .finish(inflight.take().expect("in flight"), r)
                .expect("finish");
        }
        let recorded: Vec<i64> = (1..=3)
            .map(|sequence| {
                let record = store.get(sequence).expect("read").expect("record");
                codec::check_stored(&record).expect("checks")
            })
            .collect();
        assert_eq!(recorded, [ahead, ahead, ahead]);
        shutdown.cancel();
    }
}
