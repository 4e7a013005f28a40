//! The projector: follows the committed ledger and keeps the views.
//!
//! It subscribes to the ledger over gRPC (`Ledger.Subscribe`, from its checkpoint + 1), folds each
//! committed event into a [`Projection`], and persists the state **and its checkpoint in one atomic
//! sled batch** (every [`Config::persist_every`] events, and whenever the stream goes idle), so a
//! restart resumes exactly where the persisted state stops: no event counted twice, none missed.
//! Beside the fold, its own task evaluates the rule packs over a copy of the state whenever new
//! events were folded (at most every 250 ms, and at most a tenth of the time) and publishes the
//! alerts whose level changed on `wfl.alerts.<org>.<rule_id>`; the fold never waits for it. It serves gRPC `Views`; `as_of_sequence` answers read the
//! state as it stood at that sequence (`Projection::at`), without folding anything again.
//!
//! It never writes to the ledger.

mod api;
mod follow;
mod store;
mod thresholds;
mod typed;
mod watch_cache;

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::RwLock;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use wfl_bus::Bus;
use wfl_projections::views::Projection;

pub use api::ViewsApi;
pub use store::encode_changes;
pub use typed::{explained, view_message, TypedView};
pub use wfl_projections::rules::RulePack;

/// Subject prefix of threshold alerts: `wfl.alerts.<org>.<rule_id>`.
pub const ALERTS_PREFIX: &str = "wfl.alerts";

/// What went wrong in the projector.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The projector's own sled database failed or holds something unreadable.
    #[error("projector store: {0}")]
    Store(String),
    /// A rule pack is malformed (names the file and field).
    #[error(transparent)]
    RulePacks(#[from] wfl_projections::Error),
    /// The ledger holds fewer events than the views have folded: it was replaced or truncated.
    #[error(
        "the ledger's head ({head}) is behind the views' checkpoint ({checkpoint}): the ledger was \
         replaced or truncated; refusing to serve views of events it does not hold (check the \
         ledger with `wfl verify`, or restart the projector with --rebuild-views to re-derive them)"
    )]
    LedgerBehind { head: u64, checkpoint: u64 },
    /// A bug or an unexpected runtime failure.
    #[error("internal: {0}")]
    Internal(String),
}

/// Every threshold-watch row (current and peak) of every pack and unit of `org` (every org
/// when `None`) over `projection` at `as_of`, exactly as the projector computes them (for
/// benchmarks and offline tools).
#[must_use]
pub fn watch_rows(
    projection: &Projection,
    packs: &[RulePack],
    org: Option<&wfl_domain::OrgId>,
    as_of: wfl_domain::Date,
) -> Vec<wfl_projections::rules::ThresholdStatus> {
    thresholds::watch_rows(&projection.now(), packs, org, as_of)
}

/// Entries (then workers) the alert loop copies per hold of the projection's lock.
pub(crate) const WATCH_COPY_PART: usize = 20_000;

/// A copy of the projection `read` gives access to (of `org`'s entries and workers only, when
/// given: [`Projection::start_copy_of`]), gathered [`WATCH_COPY_PART`] entries (then workers)
/// per access, each access released before the next (the fold goes on between them), and made
/// after the last; with the longest one access lasted (what the fold may wait).
pub(crate) fn copy_in_parts<G: std::ops::Deref<Target = Projection>>(
    read: impl Fn() -> G,
    org: Option<&wfl_domain::OrgId>,
) -> (Projection, std::time::Duration) {
    let cursor = read().start_copy_of(org);
    fill_in_parts(read, cursor)
}

/// [`copy_in_parts`] of a copy already started (by [`Projection::start_copy_of`], on the
/// projection `read` gives access to).
pub(crate) fn fill_in_parts<G: std::ops::Deref<Target = Projection>>(
    read: impl Fn() -> G,
    mut cursor: wfl_projections::views::CopyCursor,
) -> (Projection, std::time::Duration) {
    let mut longest = std::time::Duration::ZERO;
    loop {
        let part = std::time::Instant::now();
        let done = read().copy_part(&mut cursor, WATCH_COPY_PART);
        longest = longest.max(part.elapsed());
        if done {
            return (cursor.finish(), longest);
        }
    }
}

/// Where [`watch_rows_timed`]'s time went.
#[derive(Debug, Clone, Copy, Default)]
pub struct WatchTiming {
    /// The copy of the state, in parts ([`WATCH_COPY_PART`] entries, then workers, a part).
    pub copy: std::time::Duration,
    /// The longest one part held the projection's lock (the only part done under it).
    pub longest_hold: std::time::Duration,
    /// Borrowing the separations, steps and site events from the copy (one pass).
    pub inputs: std::time::Duration,
    /// Indexing every worker's stints (the population basis).
    pub population: std::time::Duration,
    /// The rule packs' evaluation.
    pub evaluation: std::time::Duration,
}

/// [`watch_rows`] of `org` (every org when `None`) as the alert loop and `ThresholdWatch` run
/// it (a copy of the state, of that org alone when given, made in parts, then the evaluation
/// over the copy), with where its time went.
#[must_use]
pub fn watch_rows_timed(
    projection: &Projection,
    packs: &[RulePack],
    org: Option<&wfl_domain::OrgId>,
    as_of: wfl_domain::Date,
) -> (Vec<wfl_projections::rules::ThresholdStatus>, WatchTiming) {
    use std::time::Instant;
    let mut timing = WatchTiming::default();
    let started = Instant::now();
    let snapshot;
    (snapshot, timing.longest_hold) = copy_in_parts(|| projection, org);
    timing.copy = started.elapsed();
    let now = snapshot.now();
    let t = Instant::now();
    let inputs = now.watch_inputs(org);
    timing.inputs = t.elapsed();
    let t = Instant::now();
    let population = wfl_projections::views::PopulationIndex::at(&now, org);
    timing.population = t.elapsed();
    let t = Instant::now();
    let rows = thresholds::Inputs::from_parts(inputs, population).rows(packs, as_of);
    timing.evaluation = t.elapsed();
    (rows, timing)
}

/// Loads and validates the rule packs in `dir` (`*.toml`).
///
/// # Errors
/// The first malformed pack, naming its file and field, or an unreadable directory.
pub fn load_packs(dir: &std::path::Path) -> Result<Vec<RulePack>, Error> {
    Ok(wfl_projections::rules::load_dir(dir)?)
}

/// Projector settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Directory of the projector's sled database.
    pub data_dir: PathBuf,
    /// The rule packs, loaded and validated with [`load_packs`].
    pub packs: Vec<RulePack>,
    /// The ledger's gRPC address (`http://127.0.0.1:50051`).
    pub ledger_addr: String,
    /// Persist state + checkpoint at least every this many events.
    pub persist_every: u64,
    /// Discard the stored state and fold the ledger again from sequence 1.
    pub rebuild: bool,
    /// Snapshot the view tallies every this many sequences: an as-of answer folds at most this
    /// many events' workers, memory holds one snapshot per this many events
    /// ([`wfl_projections::views::DEFAULT_SNAPSHOT_EVERY`] by default).
    pub snapshot_every: u64,
    /// Persisting pauses (the views keep folding in memory and answering) while the view store's
    /// directory has less free space than this.
    pub min_free_bytes: u64,
    /// TLS and token the projector reads the ledger with (an auditor or admin when the ledger
    /// checks credentials).
    pub ledger_credentials: wfl_auth::Credentials,
    /// The ledger in this process hands over its committed batches here ([`local_feed`]); the
    /// projector folds them instead of reading them back through `Subscribe` whenever it has
    /// caught up. `None`: `Subscribe` alone.
    pub local: Option<LocalFeed>,
}

/// Batches a ledger in the same process hands over after each durable append
/// (`wfl_ledger::Config::local_feed`), taken by the first projector started with it.
#[derive(Debug, Clone)]
pub struct LocalFeed(Arc<std::sync::Mutex<Option<HandedOver>>>);

/// The receiving end of a [`LocalFeed`].
pub(crate) type HandedOver = tokio::sync::mpsc::Receiver<Vec<wfl_domain::CommittedEvent>>;

/// Committed batches at most waiting in a [`LocalFeed`] (the ledger drops one that finds it
/// full; the projector then reads those events through `Subscribe`).
pub const LOCAL_FEED_BATCHES: usize = 64;

/// A channel for a ledger to hand its committed batches to a projector in the same process:
/// the sender goes in `wfl_ledger::Config::local_feed`, the feed in [`Config::local`].
#[must_use]
pub fn local_feed() -> (
    tokio::sync::mpsc::Sender<Vec<wfl_domain::CommittedEvent>>,
    LocalFeed,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(LOCAL_FEED_BATCHES);
    (tx, LocalFeed(Arc::new(std::sync::Mutex::new(Some(rx)))))
}

impl LocalFeed {
    fn take(&self) -> Option<HandedOver> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

/// How far the views have got, for `/metrics` (written by the follower, read by anyone).
#[derive(Debug, Default)]
pub struct Progress {
    /// The last sequence folded.
    pub checkpoint: AtomicU64,
    /// The last sequence persisted durably with the views (what a restart resumes from).
    pub persisted: AtomicU64,
    /// The highest ledger head the follower has seen (events and heartbeats).
    pub ledger_head: AtomicU64,
    /// `recorded_at` of the last event folded, µs since the epoch.
    pub last_recorded_at_micros: AtomicI64,
    /// Bytes of the view store on disk, sampled at each persist.
    pub store_bytes: AtomicU64,
    /// Events folded since start.
    pub folded: AtomicU64,
    /// Persists since start.
    pub persists: AtomicU64,
    /// Events folded as the ledger in this process handed them over ([`Config::local`]),
    /// since start; the rest of `folded` came through `Subscribe`.
    pub handed_over: AtomicU64,
    /// True while subscribed to the ledger with heartbeats arriving.
    pub following: std::sync::atomic::AtomicBool,
    /// `wfl_view_lag_seconds`: per folded batch, the age of its last event (bound by the node).
    pub view_lag: wfl_metrics::HistogramSlot,
    /// Why persisting is paused (the view store's directory is full or read-only), if it is.
    pub storage_fault: std::sync::Mutex<Option<String>>,
    /// Threshold-watch runs since start (each evaluates the orgs whose events or evaluation day
    /// changed since the run before).
    pub watch_runs: AtomicU64,
    /// Orgs those runs evaluated, in all.
    pub watch_orgs_evaluated: AtomicU64,
    /// How long the last run took (copies, evaluation and publishing), in milliseconds.
    pub watch_last_run_ms: AtomicU64,
    /// The sequence up to which every org's alerts reflect its events: the views' sequence
    /// when no org changed since its last published evaluation, else the event before the
    /// first one of an org after those its published alerts reflect (stored by the alert
    /// loop after the runs' counts above).
    pub watch_evaluated: AtomicU64,
    /// `ThresholdWatch` answers, and first `Explain` pages of a threshold figure, given from the
    /// rows kept for the org (nothing evaluated).
    pub watch_answers_kept: AtomicU64,
    /// `ThresholdWatch` answers, and first `Explain` pages of a threshold figure, given from
    /// rows kept for the org before its latest events, as of the sequence they were evaluated
    /// at (the org being written to; see `watch_cache::Rows::recent`).
    pub watch_answers_recent: AtomicU64,
    /// `ThresholdWatch` answers evaluated over a copy of the state.
    pub watch_answers_evaluated: AtomicU64,
}

impl Progress {
    /// Readiness: `Ok` while the view store can be written, else why not.
    ///
    /// # Errors
    /// While persisting is paused for a full or read-only data directory.
    pub fn storage(&self) -> Result<(), String> {
        match &*self
            .storage_fault
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
        {
            Some(fault) => Err(format!("persisting paused: {fault}")),
            None => Ok(()),
        }
    }

    /// Readiness: `Ok` while the projector follows its ledger, else why not.
    ///
    /// # Errors
    /// When the subscription to the ledger is down (it is being re-established).
    pub fn following(&self) -> Result<(), String> {
        if self.following.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err("not following the ledger (subscribing or resubscribing)".into())
        }
    }

    /// Seconds the views are behind the ledger: 0 when they hold every event the follower has
    /// seen committed, else the age of the last event folded.
    #[must_use]
    pub fn lag_seconds(&self) -> f64 {
        let checkpoint = self.checkpoint.load(Ordering::Relaxed);
        if checkpoint >= self.ledger_head.load(Ordering::Relaxed) {
            return 0.0;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        let last = self.last_recorded_at_micros.load(Ordering::Relaxed);
        (now.saturating_sub(last)).max(0) as f64 / 1e6
    }
}

/// Whether recorded-at never decreased along the events folded so far, and the latest one. While
/// it holds, the events recorded by an instant are a prefix of the ledger (the ledger's writer
/// keeps recorded-at from going back; a store written before it did may not be ordered), so an
/// `as_of_recorded_at_micros` answer is the as-of answer at the end of that prefix, found by a
/// binary search over the ledger, instead of a fold of it. Stored with each persist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordedOrder {
    /// The latest recorded-at folded, µs since the epoch (0: none).
    pub last: i64,
    /// False once one event was recorded before its predecessor, or when the stored views
    /// predate this record (their history was not checked).
    pub ordered: bool,
}

impl Default for RecordedOrder {
    fn default() -> Self {
        Self {
            last: 0,
            ordered: true,
        }
    }
}

impl RecordedOrder {
    /// Takes the recorded-at of the next event folded.
    pub(crate) fn note(&mut self, recorded_at: i64) {
        if recorded_at < self.last {
            self.ordered = false;
        }
        self.last = self.last.max(recorded_at);
    }
}

/// Shared between the follower and the API.
pub(crate) struct Shared {
    pub progress: Arc<Progress>,
    pub projection: RwLock<Projection>,
    /// The recorded-at order of what `projection` holds: changed only with the projection's
    /// write lock held, so it always describes the same events.
    pub recorded: std::sync::Mutex<RecordedOrder>,
    /// The sequence the projection reflects, for readers waiting to read their own writes.
    pub checkpoint: tokio::sync::watch::Sender<u64>,
    /// The last folded event's (sequence, chain hash), so current answers name their hash
    /// without asking the ledger.
    pub last_hash: std::sync::Mutex<(u64, Vec<u8>)>,
    /// The Merkle root of the ledger at the sequence last asked for (answers at the same
    /// sequence ask the ledger once).
    pub last_root: std::sync::Mutex<(u64, Vec<u8>)>,
    pub packs: Vec<RulePack>,
    pub ledger_addr: String,
    pub ledger_credentials: wfl_auth::Credentials,
    /// True once the stored views are read back (until then `projection` is empty and no answer
    /// is given from it).
    pub loaded: tokio::sync::watch::Sender<bool>,
    /// The threshold watch's latest rows per org, put by the alert loop and by `ThresholdWatch`,
    /// from which `ThresholdWatch` answers while the org's events and the day are the same.
    pub watch_rows: std::sync::Mutex<watch_cache::Rows>,
    /// One `ThresholdWatch` evaluation of an org's current state at a time.
    pub watch_gates: watch_cache::Gates,
}

impl Shared {
    /// Nothing folded and nothing read back yet (`loaded` false), for `config`'s packs and ledger.
    pub(crate) fn new(config: &Config) -> Self {
        Self {
            progress: Arc::new(Progress::default()),
            checkpoint: tokio::sync::watch::channel(0).0,
            recorded: std::sync::Mutex::default(),
            last_hash: std::sync::Mutex::new((0, Vec::new())),
            last_root: std::sync::Mutex::new((0, Vec::new())),
            projection: RwLock::new(Projection::new()),
            packs: config.packs.clone(),
            ledger_addr: config.ledger_addr.clone(),
            ledger_credentials: config.ledger_credentials.clone(),
            loaded: tokio::sync::watch::channel(false).0,
            watch_rows: std::sync::Mutex::default(),
            watch_gates: watch_cache::Gates::default(),
        }
    }
}

/// Reads the stored views back on the blocking pool (or clears them for `--rebuild-views`),
/// installs them in `shared` and says so; gives the store back for the follower.
async fn load(
    shared: &Shared,
    store: store::ViewStore,
    config: &Config,
) -> Result<store::ViewStore, Error> {
    let started = std::time::Instant::now();
    let rebuild = config.rebuild;
    let every = config.snapshot_every;
    let (store, projection, recorded) = tokio::task::spawn_blocking(move || {
        let (store, projection) = if rebuild {
            tracing::info!(
                "--rebuild-views: discarding the stored views; folding the ledger again"
            );
            (
                store.reset()?,
                (Projection::new(), RecordedOrder::default()),
            )
        } else {
            let loaded = store.load()?;
            (store, loaded)
        };
        let (mut projection, recorded) = projection;
        projection.keep_snapshots_every(every);
        let read = started.elapsed();
        // The tally snapshots a fold would have taken, so that no as-of answer after a
        // restart moves over more than half the spacing.
        projection.fill_snapshots();
        tracing::info!(
            read_ms = read.as_millis() as u64,
            snapshots = projection.tally_snapshots(),
            snapshots_ms = (started.elapsed() - read).as_millis() as u64,
            "stored views read back"
        );
        Ok::<_, Error>((store, projection, recorded))
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))??;
    let at = projection.last_sequence();
    let entries = projection.entry_count();
    let mut installed = shared.projection.write().await;
    *installed = projection;
    *shared
        .recorded
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = recorded;
    drop(installed);
    shared.progress.checkpoint.store(at, Ordering::Relaxed);
    shared.progress.persisted.store(at, Ordering::Relaxed);
    shared.checkpoint.send_replace(at);
    shared.loaded.send_replace(true);
    tracing::info!(
        packs = shared.packs.len(),
        checkpoint = at,
        entries,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "projector starting"
    );
    Ok(store)
}

/// A running projector.
pub struct Projector {
    shared: Arc<Shared>,
    task: JoinHandle<Result<(), Error>>,
}

impl Projector {
    /// Opens the view store and returns at once; the stored state is read back in the
    /// background (seconds per million events: every entry and the tallies), then the projector
    /// follows the ledger. Until it is read back, the views are not ready (readiness `views`
    /// fails) and answers wait for it (up to the read-your-writes wait, then UNAVAILABLE), so a
    /// node's ledger and gateway serve while a large view store loads.
    ///
    /// # Errors
    /// The view store cannot be opened. A store that cannot be read back (damaged, an old
    /// layout) stops the projector, and with it the node, with the reason.
    pub async fn start(
        config: Config,
        bus: Arc<dyn Bus>,
        shutdown: CancellationToken,
    ) -> Result<Self, Error> {
        let store = store::ViewStore::open(&config.data_dir.join("projector"))?;
        let shared = Arc::new(Shared::new(&config));
        tokio::spawn(follow::watch_head(shared.clone(), shutdown.clone()));
        let token = shutdown.clone();
        let loading = shared.clone();
        let task = tokio::spawn(async move {
            let result = async {
                let store = load(&loading, store, &config).await?;
                tokio::spawn(follow::alerts(loading.clone(), bus, shutdown.clone()));
                follow::run(loading, store, config, shutdown).await
            }
            .await;
            if let Err(e) = &result {
                // Crash-only: frozen views served as current would be worse than no views.
                tracing::error!(error = %e, "projector failed; shutting down");
                token.cancel();
            }
            result
        });
        Ok(Self { shared, task })
    }

    /// The gRPC `Views` service.
    #[must_use]
    pub fn service(&self) -> wfl_proto::pb::views_server::ViewsServer<ViewsApi> {
        wfl_proto::pb::views_server::ViewsServer::new(ViewsApi::new(self.shared.clone()))
    }

    /// How far the views have got (for `/metrics`).
    #[must_use]
    pub fn progress(&self) -> Arc<Progress> {
        self.shared.progress.clone()
    }

    /// The sequence the views reflect now.
    pub async fn checkpoint(&self) -> u64 {
        self.shared.projection.read().await.last_sequence()
    }

    /// Waits for the follower to stop.
    ///
    /// # Errors
    /// The follower's failure.
    pub async fn join(self) -> Result<(), Error> {
        self.task
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
    }
}
