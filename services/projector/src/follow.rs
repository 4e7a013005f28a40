//! Follows the ledger: subscribe from checkpoint + 1, fold, persist state + checkpoint together;
//! reconnects and resumes after any break. Beside it, [`alerts`] evaluates the threshold watch and
//! publishes the alerts whose level changed, on its own task so the fold never waits for it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use wfl_bus::Bus;
use wfl_domain::{Date, OrgId};
use wfl_projections::rules::{AlertLevel, CountType, ThresholdStatus, WindowRole};
use wfl_projections::views::{CopyCursor, Projection};
use wfl_proto::pb;

use crate::store::ViewStore;
use crate::{thresholds, Config, Error, Shared, ALERTS_PREFIX};

/// The threshold watch runs at most this often...
const ALERT_INTERVAL: Duration = Duration::from_millis(250);
/// ...and each org's evaluations take at most one part in this many of the time while it is
/// written to without pause, the larger orgs written to at once about that much in all: an
/// evaluation costs the org's history, so the wait before the org's next one stretches with that
/// and with how many larger orgs share the watch (see [`Paced`]; an org whose writes pause is
/// evaluated sooner).
const ALERT_DUTY: u32 = 10;
/// A persist or a wait for the views' lock this long is logged (each adds to the views' lag).
const SLOW: Duration = Duration::from_millis(500);
/// Events per `Subscribe` message the projector asks for (the ledger caps it at 1,000 and ~1 MiB).
const SUBSCRIBE_BATCH: u32 = 1000;

pub(crate) async fn run(
    shared: Arc<Shared>,
    store: ViewStore,
    config: Config,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let store = Arc::new(store);
    // Kept across resubscriptions and switches to the hand-over: what was folded and not yet
    // persisted stays counted.
    let mut follow = Follow::new(&shared, &store, &config);
    follow_ledger(&shared, &config, &shutdown, &mut follow).await?;
    // However the follower saw the shutdown (or the ledger's hand-over end first), what it
    // folded is persisted: a clean stop leaves nothing for the next start to fold again.
    follow.stop().await
}

/// Follows the ledger (`Subscribe`, or the batches it hands over in this process) until
/// `shutdown`; the caller persists what remains.
async fn follow_ledger(
    shared: &Arc<Shared>,
    config: &Config,
    shutdown: &CancellationToken,
    follow: &mut Follow<'_>,
) -> Result<(), Error> {
    let mut backoff = Duration::from_millis(100);
    // In one process with the ledger: the batches it hands over ([`Local`]).
    let mut local = config
        .local
        .as_ref()
        .and_then(crate::LocalFeed::take)
        .map(Local::new);
    loop {
        if shutdown.is_cancelled() {
            return Ok(());
        }
        let from = shared.projection.read().await.last_sequence() + 1;
        let stream = async {
            let channel = config
                .ledger_credentials
                .connect(&config.ledger_addr)
                .await
                .map_err(|e| e.to_string())?;
            let mut client =
                pb::ledger_client::LedgerClient::new(channel).max_decoding_message_size(64 << 20);
            // A ledger behind the views' checkpoint was replaced or truncated: the views would
            // describe events it does not hold. Refuse rather than serve them.
            let head = client
                .head(pb::HeadRequest {})
                .await
                .map_err(|s| s.to_string())?
                .into_inner()
                .sequence;
            if head + 1 < from {
                return Ok(Err(Error::LedgerBehind {
                    head,
                    checkpoint: from - 1,
                }));
            }
            shared
                .progress
                .ledger_head
                .fetch_max(head, Ordering::Relaxed);
            client
                .subscribe(pb::SubscribeRequest {
                    from_sequence: from,
                    heartbeat_ms: 500,
                    max_batch: SUBSCRIBE_BATCH,
                    ..Default::default()
                })
                .await
                .map(|r| Ok(r.into_inner()))
                .map_err(|s| s.to_string())
        };
        let stream = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            s = stream => match s {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return Err(e),
                Err(e) => {
                    warn!(error = %e, ledger = %config.ledger_addr, "cannot subscribe to the ledger; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => return Ok(()),
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            },
        };
        info!(from, "projector following the ledger");
        shared.progress.following.store(true, Ordering::Relaxed);
        // Decoding and converting run on the reader's task, the fold and persists on this one:
        // two cores' worth of work in catch-up.
        let mut incoming = read(stream);
        let mut caught_up = false;
        loop {
            let message = tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                m = incoming.recv() => m.unwrap_or(Incoming::Ended),
            };
            let events = match message {
                Incoming::Events(events) => events,
                Incoming::Bad(e) => {
                    follow.writer.finish().await?;
                    return Err(e);
                }
                Incoming::Heartbeat(head) => {
                    shared
                        .progress
                        .ledger_head
                        .fetch_max(head, Ordering::Relaxed);
                    follow.idle().await?;
                    caught_up = take_over(shared, &mut local);
                    if caught_up {
                        break;
                    }
                    continue;
                }
                Incoming::Ended => {
                    follow.stop().await?;
                    shared.progress.following.store(false, Ordering::Relaxed);
                    warn!("ledger stream ended; resubscribing");
                    tokio::select! {
                        () = shutdown.cancelled() => return Ok(()),
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    break;
                }
            };
            let Some(folded) = fold(shared, events).await? else {
                follow.writer.finish().await?;
                break; // a gap: resubscribe from the last folded sequence + 1
            };
            if folded == 0 {
                continue;
            }
            backoff = Duration::from_millis(100);
            follow.folded(folded).await?;
            caught_up = take_over(shared, &mut local);
            if caught_up {
                break;
            }
        }
        if caught_up {
            // Dropping the stream's receiver ends its reader, and with it the subscription.
            drop(incoming);
            if let Some(l) = local.as_mut() {
                if l.follow(shared, follow, shutdown).await? == LocalEnd::Shutdown {
                    return Ok(());
                }
            }
        }
    }
}

/// Whether the batches the ledger in this process handed over continue the fold, so that the
/// projector can follow them instead of `Subscribe` (gathers them meanwhile; forgets a feed
/// whose ledger stopped). Called on the fold's task, so the checkpoint is the fold's.
fn take_over(shared: &Shared, local: &mut Option<Local>) -> bool {
    let Some(l) = local.as_mut() else {
        return false;
    };
    let next = shared.progress.checkpoint.load(Ordering::Relaxed) + 1;
    let head = shared.progress.ledger_head.load(Ordering::Relaxed);
    match l.gather(next, head) {
        Some(continues) => continues,
        None => {
            *local = None;
            false
        }
    }
}

/// What the fold has not persisted yet, and the persist in flight.
struct Follow<'a> {
    shared: &'a Arc<Shared>,
    store: &'a Arc<ViewStore>,
    persist_every: u64,
    dirty: u64,
    space: Space,
    writer: Writer,
}

impl<'a> Follow<'a> {
    fn new(shared: &'a Arc<Shared>, store: &'a Arc<ViewStore>, config: &Config) -> Self {
        Self {
            shared,
            store,
            persist_every: config.persist_every,
            dirty: 0,
            space: Space::new(config),
            writer: Writer::default(),
        }
    }

    /// After `folded` more events: persists once enough are waiting.
    async fn folded(&mut self, folded: u64) -> Result<(), Error> {
        self.dirty += folded;
        if self.dirty >= self.persist_every {
            // Persists run behind the fold, one at a time: while one is being written and
            // flushed the fold goes on, and the next persist takes everything folded meanwhile
            // (so a slow disk makes persists bigger, not the fold slower). Far behind (16
            // persists' worth), the fold waits for the disk.
            if self.writer.busy() && self.dirty < 16 * self.persist_every {
                return Ok(());
            }
            self.writer.finish().await?;
            if self
                .writer
                .start(self.shared, self.store, &mut self.space)
                .await
            {
                self.dirty = 0;
            }
        }
        Ok(())
    }

    /// Nothing new for now: persists whatever waits.
    async fn idle(&mut self) -> Result<(), Error> {
        self.writer.finish().await?;
        if self.dirty > 0 {
            if persist(self.shared, self.store, &mut self.space).await? {
                self.dirty = 0;
            }
        } else {
            // Nothing to persist: a paused store still learns that space is back.
            self.space.recheck(&self.shared.progress);
        }
        Ok(())
    }

    /// Before leaving: waits for the persist in flight and persists what remains.
    async fn stop(&mut self) -> Result<(), Error> {
        self.writer.finish().await?;
        if self.dirty > 0 {
            // Look at the store's directory again now, whenever it was last looked at.
            self.space.recheck_now();
            if persist(self.shared, self.store, &mut self.space).await? {
                self.dirty = 0;
            } else {
                warn!(
                    unpersisted = self.dirty,
                    "stopping with folded events not persisted (the view store cannot be written); the next start folds them again from the ledger"
                );
            }
        }
        Ok(())
    }
}

/// How long the hand-over may be quiet before what was folded is persisted (as a heartbeat
/// does on `Subscribe`).
const LOCAL_IDLE: Duration = Duration::from_millis(500);
/// Events at most taken from the hand-over while `Subscribe` catches up to them.
const LOCAL_AHEAD: usize = 20_000;

/// The committed batches a ledger in this process hands over ([`crate::LocalFeed`]). The
/// projector catches up through `Subscribe`, gathering the batches handed over meanwhile; once
/// they continue its fold it follows them instead, and goes back to `Subscribe` at the first
/// gap (a batch the ledger dropped because the projector was behind).
struct Local {
    rx: crate::HandedOver,
    ahead: std::collections::VecDeque<Vec<wfl_domain::CommittedEvent>>,
    held: usize,
}

#[derive(Debug, PartialEq, Eq)]
enum LocalEnd {
    /// A gap or a stopped ledger: back to `Subscribe` from the last folded sequence + 1.
    Gap,
    Shutdown,
}

impl Local {
    fn new(rx: crate::HandedOver) -> Self {
        Self {
            rx,
            ahead: std::collections::VecDeque::new(),
            held: 0,
        }
    }

    /// Takes what was handed over, drops what is folded already (everything before `next`), and
    /// says whether the projector may follow the hand-over from `next` on: the batches kept
    /// start there, or none is kept and the fold has passed the ledger's last known `head`
    /// (everything handed over is folded, so the next batch should start at `next`; one that
    /// does not is a gap, and sends the projector back to `Subscribe`). `None`: the ledger
    /// stopped handing over.
    fn gather(&mut self, next: u64, head: u64) -> Option<bool> {
        // Beyond [`LOCAL_AHEAD`] events kept, the rest waits in the channel (and the ledger drops
        // what finds it full).
        while self.held <= LOCAL_AHEAD {
            match self.rx.try_recv() {
                Ok(batch) if batch.is_empty() => {}
                Ok(batch) => {
                    self.held += batch.len();
                    self.ahead.push_back(batch);
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => return None,
            }
        }
        while let Some(batch) = self.ahead.front() {
            if batch.last().is_some_and(|c| c.sequence < next) {
                self.held -= batch.len();
                self.ahead.pop_front();
            } else {
                break;
            }
        }
        Some(match self.ahead.front().and_then(|b| b.first()) {
            Some(first) => first.sequence <= next,
            None => next > head,
        })
    }

    /// Folds what was gathered, then each batch as it is handed over, until a gap, a stopped
    /// ledger or shutdown.
    async fn follow(
        &mut self,
        shared: &Arc<Shared>,
        follow: &mut Follow<'_>,
        shutdown: &CancellationToken,
    ) -> Result<LocalEnd, Error> {
        info!(
            from = shared.progress.checkpoint.load(Ordering::Relaxed) + 1,
            "projector following the ledger in this process"
        );
        loop {
            let batch = match self.ahead.pop_front() {
                Some(b) => {
                    self.held -= b.len();
                    b
                }
                None => tokio::select! {
                    () = shutdown.cancelled() => return Ok(LocalEnd::Shutdown),
                    b = self.rx.recv() => match b {
                        Some(b) => b,
                        None => {
                            info!("the ledger in this process stopped handing over; following through Subscribe");
                            follow.writer.finish().await?;
                            return Ok(LocalEnd::Gap);
                        }
                    },
                    () = tokio::time::sleep(LOCAL_IDLE) => {
                        follow.idle().await?;
                        // Quiet, yet the ledger holds more than was folded: it dropped a batch
                        // (the channel was full) and nothing after it came to show the gap.
                        // Read the rest through `Subscribe` rather than wait for the next batch.
                        let folded = shared.progress.checkpoint.load(Ordering::Relaxed);
                        if shared.progress.ledger_head.load(Ordering::Relaxed) > folded {
                            info!(folded, "the ledger holds events it did not hand over; reading them through Subscribe");
                            return Ok(LocalEnd::Gap);
                        }
                        continue;
                    }
                },
            };
            let n = batch.len() as u64;
            let decoded = batch
                .into_iter()
                .map(|c| (c.sequence, c.recorded_at_micros, c.hash.to_vec(), c.event))
                .collect();
            let Some(folded) = fold(shared, decoded).await? else {
                // The ledger dropped a batch while the projector was behind.
                follow.writer.finish().await?;
                return Ok(LocalEnd::Gap);
            };
            shared
                .progress
                .handed_over
                .fetch_add(folded.min(n), Ordering::Relaxed);
            follow.folded(folded).await?;
        }
    }
}

/// One committed event as the fold takes it: sequence, recorded-at time, chain hash, event.
type Decoded = (u64, i64, Vec<u8>, wfl_domain::Event);

/// What the reader hands the fold.
enum Incoming {
    /// One message's events, decoded and converted.
    Events(Vec<Decoded>),
    /// The ledger's head, while nothing new is committed.
    Heartbeat(u64),
    /// The stream ended or broke (or went silent): resubscribe.
    Ended,
    /// The ledger sent something that is not a committed event: stop.
    Bad(Error),
}

/// Messages decoded ahead of the fold (each up to [`SUBSCRIBE_BATCH`] events).
const READ_AHEAD: usize = 4;

/// Reads the subscription on its own task: decodes each message (prost), converts its events to
/// domain events, and hands them to the fold through a small bounded queue, so the fold and the
/// decoding run side by side. Ends with the stream, or when the fold stops listening.
fn read(mut stream: tonic::Streaming<pb::SubscribeResponse>) -> mpsc::Receiver<Incoming> {
    let (tx, rx) = mpsc::channel(READ_AHEAD);
    tokio::spawn(async move {
        loop {
            // Heartbeats come every 500 ms: ten seconds of silence is a dead connection.
            let message = tokio::time::timeout(Duration::from_secs(10), stream.message()).await;
            let item = match message {
                Ok(Ok(Some(pb::SubscribeResponse { kind: Some(kind) }))) => match kind {
                    pb::subscribe_response::Kind::Event(c) => decode(vec![c]),
                    pb::subscribe_response::Kind::Batch(b) => decode(b.events),
                    pb::subscribe_response::Kind::Heartbeat(h) => {
                        Incoming::Heartbeat(h.head_sequence)
                    }
                },
                Ok(Ok(Some(pb::SubscribeResponse { kind: None }))) => {
                    Incoming::Bad(Error::Internal(
                        "the ledger sent a subscription message with no content".into(),
                    ))
                }
                Ok(Ok(None)) => Incoming::Ended,
                Ok(Err(status)) => {
                    warn!(error = %status, "ledger stream broke");
                    Incoming::Ended
                }
                Err(_) => {
                    warn!("no heartbeat from the ledger for 10 s");
                    Incoming::Ended
                }
            };
            let last = matches!(item, Incoming::Ended | Incoming::Bad(_));
            if tx.send(item).await.is_err() || last {
                return;
            }
        }
    });
    rx
}

/// Converts one message's events; an event without a body or that does not convert stops the
/// projector (the ledger only commits events that do).
fn decode(events: Vec<pb::CommittedEvent>) -> Incoming {
    let mut decoded = Vec::with_capacity(events.len());
    for c in events {
        let sequence = c.sequence;
        let event = c
            .event
            .ok_or_else(|| Error::Internal(format!("ledger event {sequence} has no body")))
            .and_then(|e| {
                wfl_proto::convert::event_from_pb(e).map_err(|v| {
                    Error::Internal(format!("ledger event {sequence} does not convert: {v}"))
                })
            });
        match event {
            Ok(event) => decoded.push((sequence, c.recorded_at_micros, c.hash, event)),
            Err(e) => return Incoming::Bad(e),
        }
    }
    Incoming::Events(decoded)
}

/// Folds one message's events under one lock. `None`: a gap in the sequence (the caller
/// resubscribes); otherwise how many events were folded (already folded ones are skipped).
async fn fold(shared: &Arc<Shared>, decoded: Vec<Decoded>) -> Result<Option<u64>, Error> {
    let mut last_recorded_at = None;
    let mut last_hash = None;
    let waited = Instant::now();
    let mut p = shared.projection.write().await;
    let waited = waited.elapsed();
    if waited >= SLOW {
        // Readers (a view answer, the watch's copy) held the state this long: the lag grows by it.
        info!(
            waited_ms = waited.as_millis() as u64,
            "the fold waited for readers of the views"
        );
    }
    let mut folded = 0u64;
    let mut gap = false;
    // Changed under the projection's lock, so it describes the same events.
    let mut recorded = *shared
        .recorded
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for (sequence, recorded_at, hash, event) in decoded {
        if sequence <= p.last_sequence() {
            continue; // already folded (a resumed stream overlaps nothing, but be safe)
        }
        if sequence != p.last_sequence() + 1 {
            warn!(
                sequence,
                expected = p.last_sequence() + 1,
                "gap in the committed stream; resubscribing"
            );
            gap = true;
            break;
        }
        p.apply_owned(sequence, event);
        recorded.note(recorded_at);
        last_recorded_at = Some(recorded_at);
        last_hash = Some((sequence, hash));
        folded += 1;
    }
    let last = p.last_sequence();
    *shared
        .recorded
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = recorded;
    drop(p);
    if folded > 0 {
        let progress = &shared.progress;
        progress.checkpoint.store(last, Ordering::Relaxed);
        progress.ledger_head.fetch_max(last, Ordering::Relaxed);
        if let Some(at) = last_recorded_at {
            progress
                .last_recorded_at_micros
                .store(at, Ordering::Relaxed);
            progress.view_lag.record_age_micros(at);
        }
        progress.folded.fetch_add(folded, Ordering::Relaxed);
        if let Some(h) = last_hash {
            *shared
                .last_hash
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = h;
        }
        shared.checkpoint.send_replace(last);
    }
    Ok((!gap).then_some(folded))
}

/// Writes what changed since the last persist, and the checkpoint, in one atomic, flushed batch.
/// The view store's directory, checked before each persist (sled refuses every write after a
/// failed one, so the projector must not let one fail): while it is full or read-only, persisting
/// pauses — the changes stay pending in memory, the views keep answering, readiness says why —
/// and resumes by itself. Checked at most once a second while paused.
struct Space {
    guard: wfl_store::space::Guard,
    next_check: Instant,
}

impl Space {
    fn new(config: &Config) -> Self {
        Self {
            guard: wfl_store::space::Guard::new(
                config.data_dir.join("projector"),
                config.min_free_bytes,
            ),
            next_check: Instant::now(),
        }
    }

    /// While paused, checks again (at most once a second) so readiness recovers even when
    /// nothing is waiting to be persisted.
    fn recheck(&mut self, progress: &crate::Progress) {
        let paused = progress
            .storage_fault
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some();
        if paused {
            self.writable(progress);
        }
    }

    /// The next [`Self::writable`] looks at the directory, however recently it last did.
    fn recheck_now(&mut self) {
        self.next_check = Instant::now();
    }

    /// Whether a persist may write now; logs each pause once and each resumption.
    fn writable(&mut self, progress: &crate::Progress) -> bool {
        let mut fault = progress
            .storage_fault
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if fault.is_some() && Instant::now() < self.next_check {
            return false;
        }
        match self.guard.check() {
            Ok(()) => {
                if fault.take().is_some() {
                    info!(path = %self.guard.path().display(), "view store writable again; persisting resumes");
                }
                true
            }
            Err(f) => {
                if fault.is_none() {
                    tracing::error!(
                        "view store storage fault: {f}; persisting paused (the views keep \
                         folding in memory and answering), retrying until it can be written"
                    );
                }
                *fault = Some(f.to_string());
                self.next_check = Instant::now() + Duration::from_secs(1);
                false
            }
        }
    }
}

/// Persists what changed since the last persist with its checkpoint, and waits for it; false
/// (nothing taken) while the store's directory cannot be written.
async fn persist(
    shared: &Arc<Shared>,
    store: &Arc<ViewStore>,
    space: &mut Space,
) -> Result<bool, Error> {
    let mut writer = Writer::default();
    let started = writer.start(shared, store, space).await;
    writer.finish().await?;
    Ok(started)
}

/// At most one persist in flight, running on a blocking thread while the fold goes on. Each takes
/// every change folded before it started, so persists land in sequence order and each batch
/// stays atomic with its checkpoint.
#[derive(Default)]
struct Writer {
    in_flight: Option<tokio::task::JoinHandle<Result<(), Error>>>,
}

impl Writer {
    /// Whether a persist is still being written.
    fn busy(&self) -> bool {
        self.in_flight.as_ref().is_some_and(|h| !h.is_finished())
    }

    /// Waits for the persist in flight, if any; its failure is the projector's.
    async fn finish(&mut self) -> Result<(), Error> {
        match self.in_flight.take() {
            Some(h) => h.await.map_err(|e| Error::Internal(e.to_string()))?,
            None => Ok(()),
        }
    }

    /// Takes what changed and starts writing it with its checkpoint (call [`Self::finish`]
    /// first); false (nothing taken) while the store's directory cannot be written.
    async fn start(
        &mut self,
        shared: &Arc<Shared>,
        store: &Arc<ViewStore>,
        space: &mut Space,
    ) -> bool {
        if !space.writable(&shared.progress) {
            return false;
        }
        let mut p = shared.projection.write().await;
        let changes = p.take_changes();
        let recorded = *shared
            .recorded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        drop(p);
        let store = store.clone();
        let progress = shared.progress.clone();
        self.in_flight = Some(tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            store.save(&changes, recorded)?;
            let took = started.elapsed();
            if took >= SLOW {
                info!(
                    elapsed_ms = took.as_millis() as u64,
                    entries = changes.entries.len(),
                    through = changes.last_sequence,
                    "slow view persist"
                );
            }
            progress
                .persisted
                .store(changes.last_sequence, Ordering::Relaxed);
            progress.persists.fetch_add(1, Ordering::Relaxed);
            if progress.persists.load(Ordering::Relaxed) % 64 == 1 {
                // sled walks its files for this: sample it, do not pay it per persist.
                progress
                    .store_bytes
                    .store(store.size_on_disk(), Ordering::Relaxed);
            }
            Ok(())
        }));
        true
    }
}

/// Longest wait for one alert publish before the rest of an evaluation's alerts are deferred.
const ALERT_PUBLISH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The last level published per (pack, org, unit, window key, count type), to publish changes
/// only. The window key names the wave, so a new build-up alerts again.
#[derive(Default)]
struct Alerts {
    published: BTreeMap<(String, String, String, String, CountType), Option<AlertLevel>>,
    /// Per org, the sequence of its latest event when its rows were last evaluated and every
    /// change among them published. An org's rows are a function of its own events and the
    /// evaluation day alone, so an org whose latest event is still that one is not evaluated
    /// again while the day stays the same: a run costs the history of the orgs that changed,
    /// not of every tenant.
    seen: BTreeMap<OrgId, u64>,
    /// The day `seen` was evaluated at (the latest effective date in the ledger): when it moves,
    /// every org's current windows move with it, and every org is evaluated again.
    day: Option<Date>,
    /// Per org, what its last evaluation cost, when it ended and the latest event it read: when
    /// it may be evaluated again.
    paced: HashMap<OrgId, Paced>,
    /// When the last run ended (its publishing done).
    ended: Option<Instant>,
    /// The last run left larger orgs that were ready for the next one ([`choose`]).
    large_next: bool,
    /// Per org, the sequence of its latest event whose alerts were published, and the day
    /// they were evaluated on (not cleared when the day moves, unlike `seen`): how far its
    /// alerts reflect its events.
    reflected: HashMap<OrgId, (u64, Date)>,
    /// The sequence the views were at when last looked at, and the one they were at before
    /// the day last moved (the day moved after it): an org not evaluated on the current day
    /// reflects the views up to it at most.
    looked: u64,
    day_since: u64,
    /// Per org due, its latest event as last looked at and since when it was: how long the org
    /// has been quiet ([`Paced::ready_for`]).
    heads: HashMap<OrgId, (u64, Instant)>,
}

/// The events a run over the orgs `due` (each one's events) reads, and whether it copies the
/// whole state: when the orgs due hold more than half the events, or more than
/// [`MAX_ORG_COPIES`] orgs are due holding more than an eighth of them.
fn size(p: &Projection, due: impl Iterator<Item = u64>) -> (u64, bool) {
    let (mut orgs, mut events) = (0usize, 0u64);
    for org_events in due {
        orgs += 1;
        events += org_events;
    }
    let held = p.entry_count() as u64;
    if events.saturating_mul(2) > held || (orgs > MAX_ORG_COPIES && events.saturating_mul(8) > held)
    {
        (held, true)
    } else {
        (events, false)
    }
}

/// An org's pace: what its last evaluation (its copy and the rules, not the publishing: a
/// stalled bus is bounded by its own timeout) cost and when it ended. The org is evaluated
/// again, when it changed, after nine times that cost (at least [`ALERT_INTERVAL`], at most
/// [`Paced::LONGEST`]), so while it is written to without pause each org's evaluations take at
/// most one part in [`ALERT_DUTY`] of the time. A larger org (over [`SMALL_ORG`] events) waits
/// that many times longer as larger orgs are being written to (`sharing`: those that changed
/// since their last evaluation, at least 1), so that however many are written to at once their
/// evaluations take about one part in [`ALERT_DUTY`] of the time in all (each at its own pace
/// alone, four at once took four parts in thirteen of a core from ingest), each in proportion
/// to its own cost: a tenant of moderate size beside a very large one is not held to the large
/// one's pace. Paced by org, not by run: a small tenant that changed is evaluated within a
/// fraction of a second of its turn, not nine times a large tenant's evaluation later (it
/// waits at most for the run in progress on the watch's thread and, when larger orgs were
/// left for it, one run of theirs).
///
/// Once the org is quiet, it does not wait out its pace: an org whose latest event is not the
/// one evaluated, and has not moved for as long as that evaluation took since the loop first
/// saw it, is evaluated then. The writes that moved it are over, so that one evaluation ends
/// its alerts' wait: they come about twice its cost after the last event (more when a run was
/// in progress then). Writes that pause for about that long each time cost the org up to half
/// the watch's time, not a tenth.
#[derive(Debug, Clone, Copy)]
struct Paced {
    took: Duration,
    ended: Instant,
    /// The org's latest event when it was evaluated.
    head: u64,
}

impl Paced {
    /// The longest wait before an org's next evaluation.
    const LONGEST: Duration = Duration::from_secs(600);

    /// When the org may be evaluated again, whatever its events, with `sharing` orgs sharing
    /// the watch's time (at least 1).
    fn ready_at(&self, sharing: u32) -> Instant {
        self.ended
            + ALERT_INTERVAL
                .max(
                    self.took
                        .saturating_mul(ALERT_DUTY - 1)
                        .saturating_mul(sharing.max(1)),
                )
                .min(Self::LONGEST)
    }

    /// When the org, whose latest event is now `head`, seen first at `since`, may be evaluated
    /// again: at its pace with `sharing` orgs sharing the watch's time, or once quiet for as
    /// long as this evaluation took when `head` is new.
    fn ready_for(&self, head: u64, since: Instant, sharing: u32) -> Instant {
        let paced = self.ready_at(sharing);
        if head == self.head {
            return paced;
        }
        let quiet = since + ALERT_INTERVAL.max(self.took);
        paced.min(quiet.max(self.ended + ALERT_INTERVAL))
    }
}

/// What the alert loop does next.
#[derive(Debug, PartialEq, Eq)]
enum Choice {
    /// No org changed since its last published evaluation.
    Nothing,
    /// Orgs changed, none may be evaluated before this long.
    Wait(Duration),
    /// Evaluate these orgs now; `deferred`: larger orgs ready too were left for the next run.
    Run {
        orgs: BTreeSet<OrgId>,
        deferred: bool,
    },
}

/// Orgs of at most this many events are small: they are evaluated in a run of their own,
/// before the larger orgs whose turn came at the same time (which run next).
const SMALL_ORG: u64 = crate::WATCH_COPY_PART as u64;

/// Of the orgs `due` (each with whether it is small, [`SMALL_ORG`], and when its pace lets it
/// be evaluated, [`Paced::ready_for`]), which to evaluate at `now`: those whose time came,
/// none within [`ALERT_INTERVAL`] of the last run (`ended`); the small ones in a run of their
/// own, unless `large_next` (the last run left larger orgs that were ready: they go now, so no
/// stream of small tenants' events holds them back for ever).
fn choose(
    due: impl IntoIterator<Item = (OrgId, bool, Instant)>,
    (ended, large_next): (Option<Instant>, bool),
    now: Instant,
) -> Choice {
    let (mut small, mut large) = (BTreeSet::new(), BTreeSet::new());
    // The earliest an org that must wait may be evaluated.
    let mut soonest: Option<Instant> = None;
    for (org, is_small, ready) in due {
        if ready > now {
            soonest = Some(soonest.map_or(ready, |s| s.min(ready)));
        } else if is_small {
            small.insert(org);
        } else {
            large.insert(org);
        }
    }
    let earliest = ended.map_or(now, |e| (e + ALERT_INTERVAL).max(now));
    if small.is_empty() && large.is_empty() {
        return match soonest {
            Some(at) => Choice::Wait(at.max(earliest) - now),
            None => Choice::Nothing,
        };
    }
    if earliest > now {
        return Choice::Wait(earliest - now);
    }
    if !large.is_empty() && (small.is_empty() || large_next) {
        Choice::Run {
            orgs: large,
            deferred: false,
        }
    } else {
        Choice::Run {
            deferred: !large.is_empty(),
            orgs: small,
        }
    }
}

/// When the orgs due hold more than half the events, or more orgs than this are due and they
/// hold more than an eighth of the events (thousands of tenants due at once, after a restart or
/// when the day moved), one copy of the whole state is evaluated once and its rows split by org:
/// a copy per org would hold the lock once per org and cost more than the whole. Many small
/// orgs beside a large quiet one are still copied one by one (each a short hold of the lock).
const MAX_ORG_COPIES: usize = 256;

/// What one run copies: every org at once, or each org due apart.
enum Plan {
    Whole(CopyCursor, Vec<Due>),
    Orgs(Vec<(Due, CopyCursor)>),
}

/// An org a run evaluates.
struct Due {
    org: OrgId,
    /// The sequence of its latest event.
    head: u64,
    /// Its events (its share of a copy of the whole state's cost).
    events: u64,
    /// Its own default evaluation day is the run's: its rows answer a `ThresholdWatch` of it.
    answers: bool,
}

impl Due {
    /// Keeps `rows` (every pack's, evaluated on `day` over the state at sequence `at`, in
    /// `took`) for `ThresholdWatch` when they answer it, and gives the current ones, which the
    /// alerts are about.
    fn rows(
        self,
        shared: &Shared,
        (day, at): (Date, u64),
        took: Duration,
        mut rows: Vec<ThresholdStatus>,
    ) -> OrgRows {
        let ended = Instant::now();
        if self.answers {
            let made = crate::watch_cache::Made {
                sequence: at,
                default_day: true,
                cost: took,
                ended,
            };
            shared
                .watch_rows
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .put(
                    crate::watch_cache::Key {
                        org: self.org.clone(),
                        head: self.head,
                        day,
                    },
                    made,
                    Arc::new(rows.iter().map(thresholds::Kept::cut).collect()),
                );
        }
        rows.retain(|s| s.role == WindowRole::Current);
        OrgRows {
            org: self.org,
            head: self.head,
            paced: Paced {
                took,
                ended,
                head: self.head,
            },
            rows,
        }
    }
}

/// What [`Alerts::publish`] got out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Published {
    /// Every change.
    All,
    /// Not every change: the bus refused one (the others were tried).
    Failed,
    /// A publish timed out (the bus unreachable?): the changes after it were not tried.
    TimedOut,
}

/// One org's current rows, as evaluated by a run, with the sequence of the org's latest event
/// and what the evaluation cost.
struct OrgRows {
    org: OrgId,
    head: u64,
    paced: Paced,
    rows: Vec<ThresholdStatus>,
}

impl Alerts {
    /// At `day` (the latest effective date in the ledger), the views at sequence `at`: when
    /// the day moved, every org is due.
    fn on(&mut self, day: Date, at: u64) {
        if self.day != Some(day) {
            self.seen.clear();
            self.day = Some(day);
            self.day_since = self.looked;
        }
        self.looked = at;
    }

    /// The sequence the views are at, what to do next ([`choose`]), and the sequence up to
    /// which every org's alerts reflect its events: the views' sequence, or, below it, the
    /// event before the first one of an org after those its published alerts reflect.
    async fn choose(&mut self, shared: &Shared) -> (u64, Choice, u64) {
        let p = shared.projection.read().await;
        let at = p.last_sequence();
        let day = thresholds::default_as_of(&p.now(), None);
        self.on(day, at);
        let now = Instant::now();
        let heads: Vec<(OrgId, u64)> = self
            .due_heads(&p)
            .map(|(org, head)| (org.clone(), head))
            .collect();
        let mut reflected = at;
        let mut due = Vec::with_capacity(heads.len());
        for (org, head) in heads {
            match self.reflected.get(&org) {
                Some(&(_, on)) if on != day => reflected = reflected.min(self.day_since),
                published => {
                    let published = published.map_or(0, |&(head, _)| head);
                    if let Some(next) = p
                        .org_next_after(&org, published)
                        .filter(|_| published < head)
                    {
                        reflected = reflected.min(next - 1);
                    }
                }
            }
            let since = match self.heads.get_mut(&org) {
                Some((seen, since)) if *seen == head => *since,
                Some(moved) => {
                    *moved = (head, now);
                    now
                }
                None => {
                    self.heads.insert(org.clone(), (head, now));
                    now
                }
            };
            let small = p.org_events_within(&org, SMALL_ORG).unwrap_or(true);
            due.push((org, head, since, small));
        }
        drop(p);
        // The larger orgs that changed since they were evaluated share the watch's time.
        let sharing = due
            .iter()
            .filter(|(org, _, _, small)| !small && self.paced.contains_key(org))
            .count();
        let sharing = u32::try_from(sharing).unwrap_or(u32::MAX);
        let due = due.into_iter().map(|(org, head, since, small)| {
            let ready = self.paced.get(&org).map_or(now, |paced| {
                paced.ready_for(head, since, if small { 1 } else { sharing })
            });
            (org, small, ready)
        });
        let choice = choose(due, (self.ended, self.large_next), now);
        (at, choice, reflected)
    }

    /// The orgs whose latest event is not the one of their last published evaluation, each
    /// with that latest event's sequence (none when the state keeps no org index).
    fn due_heads<'p>(&'p self, p: &'p Projection) -> impl Iterator<Item = (&'p OrgId, u64)> + 'p {
        p.org_heads()
            .into_iter()
            .flatten()
            .filter(move |(org, head)| self.seen.get(*org) != Some(head))
    }

    /// Evaluates the watch for every org that changed since its last published evaluation (of
    /// those in `only`, when given) and publishes what changed; returns the sequence it
    /// evaluated at (0 when the evaluation failed) and whether every change was published (a
    /// failed publish is retried at the org's next evaluation).
    async fn publish_changes(
        &mut self,
        shared: &Arc<Shared>,
        bus: &dyn Bus,
        only: Option<&BTreeSet<OrgId>>,
    ) -> (u64, bool) {
        // Only a copy of each org's state (entries shared, not copied) is taken under the lock,
        // a part at a time, the lock released between parts: the watch reads every countable
        // separation of the org and indexes its population (seconds at 1M events), and the fold
        // must not wait for that, nor for a copy of millions of entries in one go. The copies
        // are all started under one read of the lock, so every org is read at the same sequence
        // and day. The copies and the evaluation run on the watch's own low-priority thread,
        // not on the runtime's workers (two on two cores), which serve every request meanwhile.
        let started = Instant::now();
        let (at, day, plan, events, orgs) = {
            let p = shared.projection.read().await;
            let now = p.now();
            let day = thresholds::default_as_of(&now, None);
            self.on(day, p.last_sequence());
            // Each org due, with its latest event and whether its own default day (what a
            // `ThresholdWatch` of it is evaluated at) is the run's, so its rows answer one.
            let (chosen, others): (Vec<Due>, Vec<Due>) = self
                .due_heads(&p)
                .map(|(org, head)| Due {
                    org: org.clone(),
                    head,
                    events: p.org_events(org).unwrap_or(0),
                    answers: thresholds::default_as_of(&now, Some(org)) == day,
                })
                .partition(|d| only.is_none_or(|only| only.contains(&d.org)));
            let (events, whole) = size(&p, chosen.iter().map(|d| d.events));
            // A copy of the whole state evaluates every org: each due one's rows are used.
            let due = if whole {
                // The larger orgs left for the next run are evaluated in this one.
                self.large_next = false;
                chosen.into_iter().chain(others).collect()
            } else {
                chosen
            };
            let orgs: Vec<(OrgId, u64)> = due.iter().map(|d| (d.org.clone(), d.head)).collect();
            let plan = if whole {
                Plan::Whole(p.start_copy(), due)
            } else {
                Plan::Orgs(
                    due.into_iter()
                        .map(|d| {
                            let cursor = p.start_copy_of(Some(&d.org));
                            (d, cursor)
                        })
                        .collect(),
                )
            };
            (p.last_sequence(), day, plan, events, orgs)
        };
        let state = shared.clone();
        let evaluated = in_background("wfl-watch", move || {
            let read = || state.projection.blocking_read();
            match plan {
                Plan::Whole(cursor, due) => {
                    let began = Instant::now();
                    let (copy, longest) = crate::fill_in_parts(read, cursor);
                    let now = copy.now();
                    let mut by_org: BTreeMap<OrgId, Vec<ThresholdStatus>> = BTreeMap::new();
                    for row in thresholds::Inputs::gather(&now, None).rows(&state.packs, day) {
                        by_org.entry(row.org.clone()).or_default().push(row);
                    }
                    // Each org is charged its share of the whole, by its events.
                    let took = began.elapsed();
                    let out = due
                        .into_iter()
                        .map(|d| {
                            let rows = by_org.remove(&d.org).unwrap_or_default();
                            let share = took.mul_f64(d.events as f64 / events.max(1) as f64);
                            d.rows(&state, (day, at), share, rows)
                        })
                        .collect();
                    (longest, out)
                }
                Plan::Orgs(cursors) => {
                    let mut longest = Duration::ZERO;
                    let mut out = Vec::with_capacity(cursors.len());
                    for (d, cursor) in cursors {
                        let began = Instant::now();
                        let (copy, hold) = crate::fill_in_parts(read, cursor);
                        longest = longest.max(hold);
                        let now = copy.now();
                        let rows =
                            thresholds::Inputs::gather(&now, Some(&d.org)).rows(&state.packs, day);
                        out.push(d.rows(&state, (day, at), began.elapsed(), rows));
                    }
                    (longest, out)
                }
            }
        })
        .await;
        let orgs = match evaluated {
            Ok((longest, orgs)) => {
                tracing::debug!(
                    at,
                    orgs = orgs.len(),
                    longest_hold_ms = longest.as_millis() as u64,
                    evaluation_ms = started.elapsed().as_millis() as u64,
                    "threshold watch evaluated"
                );
                orgs
            }
            Err(e) => {
                warn!(error = %e, "threshold watch evaluation failed; retried at the next run");
                // Nothing evaluated: the orgs are tried again at the pace of what this cost.
                let ended = Instant::now();
                for (org, head) in orgs {
                    let paced = Paced {
                        took: ended - started,
                        ended,
                        head,
                    };
                    self.paced.insert(org, paced);
                }
                self.ended = Some(ended);
                return (0, false);
            }
        };
        let progress = &shared.progress;
        progress
            .watch_orgs_evaluated
            .fetch_add(orgs.len() as u64, Ordering::Relaxed);
        progress.watch_runs.fetch_add(1, Ordering::Relaxed);
        let mut sent = true;
        let mut timed_out = false;
        for OrgRows {
            org,
            head,
            paced,
            rows,
        } in orgs
        {
            self.paced.insert(org.clone(), paced);
            // After a timeout (the bus unreachable) the rest wait for the next run; a refused
            // alert holds back its own org only.
            let published = !timed_out && {
                let outcome = self.publish(rows, bus).await;
                timed_out = outcome == Published::TimedOut;
                outcome == Published::All
            };
            if published {
                self.reflected.insert(org.clone(), (head, day));
                self.seen.insert(org, head);
            } else {
                // Not all of its changes went out: evaluated again next run, where what did go
                // out is not sent twice.
                sent = false;
            }
        }
        progress
            .watch_last_run_ms
            .store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        self.ended = Some(Instant::now());
        (at, sent)
    }

    /// Publishes the rows whose level changed since last published.
    async fn publish(&mut self, statuses: Vec<ThresholdStatus>, bus: &dyn Bus) -> Published {
        let mut sent = Published::All;
        for s in statuses {
            let key = (
                s.pack.clone(),
                s.org.0.clone(),
                s.unit.clone(),
                s.window_key.clone(),
                s.count_type,
            );
            let previous = self.published.get(&key).copied().flatten();
            if previous == s.level {
                continue;
            }
            if s.level.is_none() {
                self.published.insert(key, None);
                continue;
            }
            let subject = format!("{ALERTS_PREFIX}.{}.{}", s.org, s.pack);
            let level = s.level;
            match thresholds::alert_body(s) {
                // Bounded: a core publish waits for room in the client's buffer, which a lost
                // connection can keep full; the fold must not wait behind it.
                Ok(body) => match tokio::time::timeout(
                    ALERT_PUBLISH_TIMEOUT,
                    bus.publish(&subject, Bytes::from(body)),
                )
                .await
                {
                    // Remembered only once sent, so a failed publish is retried next time.
                    Ok(Ok(())) => {
                        self.published.insert(key, level);
                    }
                    Ok(Err(e)) => {
                        sent = Published::Failed;
                        warn!(error = %e, %subject, "alert not published yet; will retry")
                    }
                    Err(_) => {
                        sent = Published::TimedOut;
                        warn!(
                            %subject,
                            timeout_ms = ALERT_PUBLISH_TIMEOUT.as_millis() as u64,
                            "alert publish timed out (NATS unreachable?); the remaining alerts wait for the next evaluation"
                        );
                        break;
                    }
                },
                Err(e) => warn!(error = %e, "alert not serialisable"),
            }
        }
        sent
    }
}

/// The threshold watch beside the fold: whenever the views hold events of an org it has not
/// evaluated, it evaluates the rule packs over a copy of that org (see [`Alerts`]) and publishes
/// the alerts whose level changed, each org at its own pace ([`Paced`]: its evaluations take at
/// most one part in [`ALERT_DUTY`] of the time while it is written to without pause, the larger
/// orgs written to at once about that much in all), small and larger orgs in runs of their
/// own, in turn ([`choose`]), at most every [`ALERT_INTERVAL`]. Its own task, so the fold never waits for it: an evaluation costs the
/// org's history, the fold's cost must not grow with any history.
pub(crate) async fn alerts(shared: Arc<Shared>, bus: Arc<dyn Bus>, shutdown: CancellationToken) {
    let mut alerts = Alerts::default();
    let mut checkpoint = shared.checkpoint.subscribe();
    // The sequence the orgs due were last looked at; nothing is looked at again before the
    // views pass it, unless orgs were left due.
    let mut looked = 0u64;
    let mut left = false;
    loop {
        if !left {
            tokio::select! {
                () = shutdown.cancelled() => return,
                changed = checkpoint.wait_for(|c| *c > looked) => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
        }
        let (at, choice, reflected) = alerts.choose(&shared).await;
        // After the runs' counts, so counts read after it are at least those of the runs
        // that evaluated up to it.
        shared
            .progress
            .watch_evaluated
            .fetch_max(reflected, Ordering::Release);
        looked = at;
        left = true;
        match choice {
            Choice::Nothing => left = false,
            // Looked at again at least every interval: an org that changed meanwhile may be
            // due before the one waited for.
            Choice::Wait(wait) => tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(wait.min(ALERT_INTERVAL)) => {}
            },
            Choice::Run { orgs, deferred } => {
                alerts.large_next = deferred;
                alerts
                    .publish_changes(&shared, bus.as_ref(), Some(&orgs))
                    .await;
            }
        }
    }
}

/// How much lower than the rest of the process the watch's thread runs (a `nice` increment).
const BACKGROUND_NICE: i32 = 10;

/// Runs `f` on a thread of its own whose CPU priority is [`BACKGROUND_NICE`] below the rest of
/// the process (Linux: each thread has its own nice value), and waits for its answer. For work
/// whose cost grows with the state and that nobody waits on (the threshold watch runs for seconds
/// at millions of events): on two cores it would otherwise take a whole core from the ingest
/// path while it runs, and the single-`Record` latency tail with it. It still uses every idle
/// cycle; it only yields to the ledger, the gateway and the fold when they want the core.
async fn in_background<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Error> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            lower_priority(BACKGROUND_NICE);
            let _ = tx.send(f());
        })
        .map_err(|e| Error::Internal(format!("starting the {name} thread: {e}")))?;
    rx.await
        .map_err(|_| Error::Internal("the background evaluation panicked".into()))
}

/// Lowers the calling thread's CPU priority by `by` (best effort: a failure is logged, the work
/// still runs).
fn lower_priority(by: i32) {
    #[cfg(target_os = "linux")]
    {
        let tid = Some(rustix::thread::gettid());
        let now = rustix::process::getpriority_process(tid).unwrap_or(0);
        if let Err(e) = rustix::process::setpriority_process(tid, (now + by).min(19)) {
            tracing::debug!(error = %e, "could not lower the background thread's priority");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = by;
}

/// Keeps [`crate::Progress::ledger_head`] current while the follower is busy catching up (the
/// subscription only carries the head in heartbeats, which stop while events flow), so the lag
/// metrics say how far behind the views are. Best effort: an unreachable ledger is retried.
pub(crate) async fn watch_head(shared: Arc<Shared>, shutdown: CancellationToken) {
    let Ok(channel) = shared.ledger_credentials.connect_lazy(&shared.ledger_addr) else {
        return;
    };
    let mut client = pb::ledger_client::LedgerClient::new(channel);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        if let Ok(head) = client.head(pb::HeadRequest {}).await {
            shared
                .progress
                .ledger_head
                .fetch_max(head.into_inner().sequence, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wfl_domain::CommittedEvent;

    #[test]
    fn each_org_waits_nine_times_its_own_evaluation_and_a_small_one_goes_first() {
        let org = |name: &str| OrgId(name.to_owned());
        let run = |names: &[&str], deferred: bool| Choice::Run {
            orgs: names.iter().map(|n| org(n)).collect(),
            deferred,
        };
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // Each org due with when its pace lets it be evaluated.
        let due = |orgs: &[(&str, Instant)]| {
            orgs.iter()
                .map(|(n, ready)| (org(n), n.starts_with("small"), *ready))
                .collect::<Vec<_>>()
        };
        assert_eq!(choose(due(&[]), (None, false), t0), Choice::Nothing);
        // Due at once: the small org in a run of its own first, then the large one (which a
        // stream of small orgs' events cannot hold back).
        let both = due(&[("big", t0), ("small", t0)]);
        assert_eq!(
            choose(both.clone(), (None, false), t0),
            run(&["small"], true)
        );
        assert_eq!(choose(both.clone(), (None, true), t0), run(&["big"], false));
        assert_eq!(
            choose(due(&[("big", t0)]), (None, false), t0),
            run(&["big"], false)
        );
        // The large org's evaluation took 19 s and ended at 19 s; the small one's 5 ms.
        let big = Paced {
            took: Duration::from_secs(19),
            ended: at(19_000),
            head: 100,
        };
        let small = Paced {
            took: Duration::from_millis(5),
            ended: at(19_010),
            head: 200,
        };
        assert_eq!(small.ready_at(1), at(19_260), "at least the interval");
        assert_eq!(big.ready_at(1), at(190_000), "nine times its 19 s");
        // Both changed again, and keep changing (their latest event seen just now): the small
        // org is evaluated once the interval since the last run passed, not after nine times
        // the large org's 19 s; that one waits for its own.
        let now = at(19_100);
        let both = |now: Instant| {
            due(&[
                ("big", big.ready_for(101, now, 1)),
                ("small", small.ready_for(201, now, 1)),
            ])
        };
        let last = (Some(at(19_010)), false);
        assert_eq!(
            choose(both(now), last, now),
            Choice::Wait(Duration::from_millis(160))
        );
        assert_eq!(
            choose(both(at(19_260)), last, at(19_260)),
            run(&["small"], false)
        );
        let last = (Some(at(19_300)), false);
        // Seen at 19.3 s with a new latest event: evaluated 19 s later if nothing more comes
        // (quiet for as long as its evaluation took), else at its pace.
        let big_alone = |since: Instant| due(&[("big", big.ready_for(101, since, 1))]);
        assert_eq!(
            choose(big_alone(at(19_300)), last, at(19_300)),
            Choice::Wait(Duration::from_secs(19))
        );
        assert_eq!(
            big.ready_for(101, at(180_000), 1),
            at(190_000),
            "still written to"
        );
        assert_eq!(
            big.ready_for(101, at(30_000), 1),
            at(49_000),
            "quiet since 30 s"
        );
        assert_eq!(
            choose(big_alone(at(30_000)), last, at(49_000)),
            run(&["big"], false)
        );
        // Not when its latest event is the one evaluated (an alert not yet published).
        assert_eq!(big.ready_for(100, at(19_000), 1), at(190_000));
        // No org waits longer than ten minutes, however long its evaluation took.
        let slow = Paced {
            took: Duration::from_secs(3_600),
            ended: t0,
            head: 1,
        };
        assert_eq!(slow.ready_at(1), t0 + Paced::LONGEST);
        assert_eq!(slow.ready_for(2, t0, 1), t0 + Paced::LONGEST);
    }

    #[test]
    fn larger_orgs_written_at_once_share_the_watch_each_by_its_own_cost() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let paced = |took: u64, head: u64| Paced {
            took: Duration::from_millis(took),
            ended: at(2_000),
            head,
        };
        // Still written to: a new latest event seen only now, at 700 s (its quiet time, the
        // other way to go, is later than every pace below).
        let (big, moderate) = (paced(1_000, 100), paced(50, 200));
        let now = at(700_000);
        assert_eq!(
            big.ready_for(101, now, 1),
            at(11_000),
            "alone: nine times 1 s"
        );
        // Four written at once: each waits four times as long, so the four take one part in
        // ten of the time in all, not four in thirteen.
        assert_eq!(big.ready_for(101, now, 4), at(38_000));
        // A moderate org beside it waits by its own cost, not the large one's.
        assert_eq!(moderate.ready_for(201, now, 2), at(2_900));
        assert_eq!(moderate.ready_for(201, now, 1), at(2_450));
        // Quiet for as long as its evaluation took since seen at 5 s: evaluated at 6 s, as alone.
        assert_eq!(big.ready_for(101, at(5_000), 4), at(6_000));
        // At most ten minutes, however many share.
        assert_eq!(big.ready_for(101, now, 1_000), at(2_000) + Paced::LONGEST);
    }

    /// Orgs of `n` hires each (`org-0`, `org-1`, ...), as one view state.
    fn orgs_of(orgs: usize, n: usize) -> Arc<Shared> {
        let shared = Shared::new(&config(std::path::Path::new("/nonexistent"), Vec::new()));
        {
            let mut p = shared.projection.try_write().expect("nobody else holds it");
            let mut sequence = 0;
            for o in 0..orgs {
                for w in 0..n {
                    sequence += 1;
                    let e = wfl_testkit::scenario::hire(&format!("org-{o}"), &format!("w{w}"));
                    p.apply(sequence, &e);
                }
            }
        }
        Arc::new(shared)
    }

    /// The alert loop counts the larger orgs that changed since their last evaluation, and each
    /// waits that many times its own pace; a small org keeps its own.
    #[tokio::test]
    async fn the_alert_loop_paces_the_larger_orgs_written_at_once_together() {
        let shared = orgs_of(2, SMALL_ORG as usize + 1);
        // Each org named evaluated just now at its latest event, in 1 s, and due again (its
        // alerts not all published: no quiet time to wait for, only its pace).
        let wait = |orgs: &[&str]| {
            let shared = Arc::clone(&shared);
            let orgs: Vec<OrgId> = orgs.iter().map(|o| OrgId((*o).into())).collect();
            async move {
                let mut alerts = Alerts::default();
                let ended = Instant::now();
                let p = shared.projection.read().await;
                alerts.day = Some(thresholds::default_as_of(&p.now(), None));
                for (org, head) in p.org_heads().into_iter().flatten() {
                    if orgs.contains(org) {
                        let took = Duration::from_secs(1);
                        alerts
                            .paced
                            .insert(org.clone(), Paced { took, ended, head });
                    } else {
                        // Evaluated and published at its latest event, on this day: not due.
                        alerts.seen.insert(org.clone(), head);
                    }
                }
                drop(p);
                match alerts.choose(&shared).await.1 {
                    Choice::Wait(wait) => wait,
                    other => panic!("expected a wait, got {other:?}"),
                }
            }
        };
        let alone = wait(&["org-0"]).await;
        let together = wait(&["org-0", "org-1"]).await;
        assert!(
            alone > Duration::from_secs(8) && alone <= Duration::from_secs(9),
            "{alone:?}"
        );
        assert!(
            together > Duration::from_secs(17) && together <= Duration::from_secs(18),
            "{together:?}"
        );
        // Small orgs keep their own pace, however many are due.
        let shared = orgs_of(2, 10);
        let mut alerts = Alerts::default();
        let ended = Instant::now();
        let heads: Vec<(OrgId, u64)> = {
            let p = shared.projection.read().await;
            alerts.day = Some(thresholds::default_as_of(&p.now(), None));
            p.org_heads()
                .into_iter()
                .flatten()
                .map(|(o, h)| (o.clone(), h))
                .collect()
        };
        for (org, head) in heads {
            let took = Duration::from_secs(1);
            alerts.paced.insert(org, Paced { took, ended, head });
        }
        match alerts.choose(&shared).await.1 {
            Choice::Wait(wait) => assert!(
                wait > Duration::from_secs(8) && wait <= Duration::from_secs(9),
                "{wait:?}"
            ),
            other => panic!("expected a wait, got {other:?}"),
        }
    }

    /// A projector's configuration for these tests: no ledger to reach, the packs given.
    fn config(data_dir: &std::path::Path, packs: Vec<wfl_projections::rules::RulePack>) -> Config {
        Config {
            data_dir: data_dir.to_path_buf(),
            packs,
            ledger_addr: "http://127.0.0.1:1".into(),
            persist_every: 1000,
            rebuild: false,
            snapshot_every: wfl_projections::views::DEFAULT_SNAPSHOT_EVERY,
            min_free_bytes: 0,
            ledger_credentials: wfl_auth::Credentials::default(),
            local: None,
        }
    }

    fn batch(sequences: std::ops::RangeInclusive<u64>) -> Vec<CommittedEvent> {
        sequences
            .map(|sequence| CommittedEvent {
                sequence,
                recorded_at_micros: 1,
                hash: [0; 32],
                event: wfl_testkit::scenario::hire("org", &format!("w{sequence}")),
            })
            .collect()
    }

    #[test]
    fn the_hand_over_is_followed_only_from_where_the_fold_is() {
        let (tx, rx) = mpsc::channel(8);
        let mut local = Local::new(rx);
        // Nothing handed over: only once the fold has passed the ledger's known head.
        assert_eq!(local.gather(5, 4), Some(true));
        assert_eq!(
            local.gather(5, 9),
            Some(false),
            "behind the head: Subscribe"
        );
        // Batches after a gap wait for Subscribe to get there.
        tx.try_send(batch(8..=9)).expect("room in the channel");
        tx.try_send(batch(10..=12)).expect("room in the channel");
        assert_eq!(local.gather(5, 12), Some(false));
        assert_eq!(local.held, 5);
        // Subscribe got to 8: the first batch continues the fold.
        assert_eq!(local.gather(8, 12), Some(true));
        // Subscribe folded 8..=10: the first batch is dropped, the second overlaps the fold.
        assert_eq!(local.gather(11, 12), Some(true));
        assert_eq!(local.held, 3);
        assert_eq!(local.ahead.front().map(|b| b[0].sequence), Some(10));
        // Everything folded: nothing kept.
        assert_eq!(local.gather(13, 12), Some(true));
        assert_eq!(local.held, 0);
        drop(tx);
        assert_eq!(
            local.gather(13, 12),
            None,
            "the ledger stopped handing over"
        );
    }

    /// The writer dropped the last batch of a burst (the channel was full) and went quiet: the
    /// projector does not wait for a next batch to show the gap. Once the hand-over has been
    /// quiet for [`LOCAL_IDLE`] with the ledger's head beyond the fold, it persists what it
    /// folded and goes back to `Subscribe`.
    #[tokio::test]
    async fn a_quiet_hand_over_behind_the_ledger_goes_back_to_subscribe() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config(dir.path(), Vec::new());
        let store = Arc::new(ViewStore::open(&dir.path().join("projector")).expect("store"));
        let shared = Arc::new(Shared::new(&config));
        let mut follow = Follow::new(&shared, &store, &config);
        let (tx, rx) = mpsc::channel(8);
        let mut local = Local::new(rx);
        tx.try_send(batch(1..=3)).expect("room in the channel");
        // The ledger also committed 4 and 5, in a batch it dropped; then nothing more.
        shared.progress.ledger_head.store(5, Ordering::Relaxed);
        let end = tokio::time::timeout(
            Duration::from_secs(30),
            local.follow(&shared, &mut follow, &CancellationToken::new()),
        )
        .await
        .expect("the hand-over does not wait for a batch that may never come")
        .expect("follows");
        assert_eq!(end, LocalEnd::Gap);
        assert_eq!(shared.progress.checkpoint.load(Ordering::Relaxed), 3);
        assert_eq!(shared.progress.persisted.load(Ordering::Relaxed), 3);
        drop(tx);
    }

    /// The in-process bus, except that it refuses every alert of the orgs named, and keeps
    /// the subjects of the alerts it took.
    struct Refusing {
        inner: wfl_bus::MemoryBus,
        refused: Vec<String>,
        /// Orgs whose alerts are never answered (an unreachable bus).
        hung: std::sync::Mutex<Vec<String>>,
        taken: std::sync::Mutex<Vec<String>>,
    }

    fn alert_of(subject: &str, orgs: &[String]) -> bool {
        orgs.iter()
            .any(|org| subject.starts_with(&format!("{ALERTS_PREFIX}.{org}.")))
    }

    #[async_trait::async_trait]
    impl Bus for Refusing {
        fn durable_inbox(&self) -> bool {
            self.inner.durable_inbox()
        }
        async fn publish_inbox(
            &self,
            msgs: Vec<wfl_bus::InboxMessage>,
        ) -> Vec<Result<wfl_bus::PublishAck, wfl_bus::Error>> {
            self.inner.publish_inbox(msgs).await
        }
        async fn inbox(&self) -> Result<Box<dyn wfl_bus::Inbox>, wfl_bus::Error> {
            self.inner.inbox().await
        }
        async fn publish_committed(
            &self,
            msgs: Vec<wfl_bus::CommittedMessage>,
        ) -> Result<(), wfl_bus::Error> {
            self.inner.publish_committed(msgs).await
        }
        async fn last_published(&self) -> Result<Option<wfl_bus::LastPublished>, wfl_bus::Error> {
            self.inner.last_published().await
        }
        async fn request(
            &self,
            subject: &str,
            payload: Bytes,
            timeout: Duration,
        ) -> Result<Bytes, wfl_bus::Error> {
            self.inner.request(subject, payload, timeout).await
        }
        async fn serve(&self, subject: &str) -> Result<Box<dyn wfl_bus::Requests>, wfl_bus::Error> {
            self.inner.serve(subject).await
        }
        async fn publish(&self, subject: &str, payload: Bytes) -> Result<(), wfl_bus::Error> {
            if alert_of(subject, &self.refused) {
                return Err(wfl_bus::Error::Rejected("message too large".into()));
            }
            let hung = alert_of(subject, &self.hung.lock().expect("not poisoned"));
            if hung {
                std::future::pending::<()>().await;
            }
            self.taken
                .lock()
                .expect("not poisoned")
                .push(subject.to_owned());
            self.inner.publish(subject, payload).await
        }
        async fn subscribe(
            &self,
            subject: &str,
        ) -> Result<Box<dyn wfl_bus::Subscription>, wfl_bus::Error> {
            self.inner.subscribe(subject).await
        }
    }

    /// 30 staff hired, then 25 economic dismissals under the CN pack's threshold: met.
    fn reduction(org: &str) -> Vec<wfl_domain::Event> {
        let mut out = Vec::new();
        for k in 0..55u64 {
            let worker = format!("w{}", k % 30);
            let mut e = if k < 30 {
                wfl_testkit::scenario::baseline(org, &worker)
            } else {
                let mut e = wfl_testkit::scenario::hire(org, &worker);
                let mut s = wfl_testkit::scenario::separation(&worker);
                s.initiator = wfl_domain::Initiator::Employer;
                s.legal_ground = Some("CN-LCL-41".into());
                e.payload = wfl_domain::Payload::EconomicDismissal(Box::new(
                    wfl_domain::EconomicDismissal {
                        separation: s,
                        selection_criteria: None,
                        plan_id: None,
                    },
                ));
                e
            };
            e.event_id = wfl_domain::EventId::new_v7();
            e.jurisdiction = "CN".into();
            e.effective_date = wfl_domain::Date::from_days(20_500 + if k < 30 { 0 } else { 100 });
            out.push(e);
        }
        out
    }

    /// A state of two orgs each over the CN pack's threshold (`a-org`, then `b-org`).
    fn two_orgs_over_the_threshold() -> Arc<Shared> {
        let packs = vec![wfl_projections::rules::parse(
            "CN-LCL-41.toml",
            include_str!("../../../rulepacks/CN-LCL-41.toml"),
        )
        .expect("the shipped CN pack parses")];
        let shared = Shared::new(&config(std::path::Path::new("/nonexistent"), packs));
        {
            let mut p = shared.projection.try_write().expect("nobody else holds it");
            for (sequence, e) in reduction("a-org")
                .iter()
                .chain(&reduction("b-org"))
                .enumerate()
            {
                p.apply(sequence as u64 + 1, e);
            }
        }
        Arc::new(shared)
    }

    /// An alert the bus refuses holds back its own org only: the other org's alert goes out in
    /// the same run, and the next run evaluates the refused org again (and only it).
    #[tokio::test]
    async fn a_refused_alert_holds_back_its_own_org_only() {
        let shared = two_orgs_over_the_threshold();
        let bus = Refusing {
            inner: wfl_bus::MemoryBus::new(),
            refused: vec!["a-org".into()],
            hung: std::sync::Mutex::default(),
            taken: std::sync::Mutex::default(),
        };
        let mut alerts = Alerts::default();
        let (at, sent) = alerts.publish_changes(&shared, &bus, None).await;
        assert_eq!((at, sent), (110, false));
        let taken = bus.taken.lock().expect("not poisoned").clone();
        assert!(
            taken
                .iter()
                .any(|s| s == &format!("{ALERTS_PREFIX}.b-org.CN-LCL-41")),
            "{taken:?}"
        );
        assert!(!taken.iter().any(|s| s.contains("a-org")), "{taken:?}");
        assert_eq!(
            shared.progress.watch_orgs_evaluated.load(Ordering::Relaxed),
            2
        );
        // Next run: the refused org is evaluated again, the published one is not.
        let (_, sent) = alerts.publish_changes(&shared, &bus, None).await;
        assert!(!sent);
        assert_eq!(
            shared.progress.watch_orgs_evaluated.load(Ordering::Relaxed),
            3
        );
        assert_eq!(
            bus.taken.lock().expect("not poisoned").len(),
            taken.len(),
            "nothing sent twice"
        );
    }

    /// A publish that times out (the bus unreachable) leaves the rest of the run's alerts for
    /// the next run: the org after it is not tried, and neither is marked published; once the
    /// bus answers, both go out.
    #[tokio::test(start_paused = true)]
    async fn a_timed_out_alert_leaves_the_rest_for_the_next_run() {
        let shared = two_orgs_over_the_threshold();
        let bus = Refusing {
            inner: wfl_bus::MemoryBus::new(),
            refused: Vec::new(),
            hung: std::sync::Mutex::new(vec!["a-org".into()]),
            taken: std::sync::Mutex::default(),
        };
        let mut alerts = Alerts::default();
        let (_, sent) = alerts.publish_changes(&shared, &bus, None).await;
        assert!(!sent);
        assert!(bus.taken.lock().expect("not poisoned").is_empty());
        assert!(alerts.seen.is_empty());
        bus.hung.lock().expect("not poisoned").clear();
        let (_, sent) = alerts.publish_changes(&shared, &bus, None).await;
        assert!(sent);
        let taken = bus.taken.lock().expect("not poisoned").clone();
        for org in ["a-org", "b-org"] {
            assert!(
                taken.contains(&format!("{ALERTS_PREFIX}.{org}.CN-LCL-41")),
                "{taken:?}"
            );
        }
        assert_eq!(alerts.seen.len(), 2);
    }

    #[test]
    fn the_hand_over_keeps_a_bounded_number_of_events_ahead() {
        let (tx, rx) = mpsc::channel(64);
        let mut local = Local::new(rx);
        let size = 1000u64;
        let batches = (LOCAL_AHEAD as u64) / size + 5;
        for i in 0..batches {
            let first = 100 + i * size;
            tx.try_send(batch(first..=first + size - 1))
                .expect("room in the channel");
        }
        assert_eq!(local.gather(1, 50), Some(false));
        assert!(local.held <= LOCAL_AHEAD + size as usize, "{}", local.held);
        assert!(local.held > LOCAL_AHEAD, "{}", local.held);
        assert!(!local.rx.is_empty(), "the rest waits in the channel");
    }
}
