//! The ledger service: the system of record.
//!
//! It consumes the JetStream inbox with one durable consumer, checks each event against the
//! current state ([`wfl_domain::LedgerState`]), commits accepted events to the sled store in group
//! commits (one flush per batch), acknowledges the inbox only after the flush, publishes each
//! batch's decisions once on `wfl.outcomes` and answers late outcome questions from the store
//! ([`outcomes`]), republishes committed events on `wfl.ledger.<org>.<type>`, and serves the
//! gRPC `Ledger` API (Read, Head).
//!
//! There is exactly one writer: [`writer`] owns the state and the store's write side. Everything
//! else reads.

pub mod api;
pub mod audit;
pub mod checkpoint;
mod codec;
pub mod error;
pub mod instance;
pub mod liveness;
mod metrics;
mod outcomes;
pub mod partition;
mod publisher;
pub mod router;
mod snapshot;
pub mod storage;
pub mod stored;
pub mod subscribe;
mod writer;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use wfl_bus::Bus;
use wfl_store::{Log, SledLog};

pub use error::Error;

/// Default of [`Config::min_free_bytes`]: 128 MiB.
pub const DEFAULT_MIN_FREE_BYTES: u64 = 128 << 20;

/// Ledger settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Directory of the sled database (created if missing).
    pub data_dir: PathBuf,
    /// Most events committed in one group commit (one flush).
    pub max_batch: usize,
    /// A subscriber that takes nothing for this long is ended with `RESOURCE_EXHAUSTED`.
    pub stall_timeout: Duration,
    /// Cut a signed checkpoint once this many events were committed since the last one.
    pub checkpoint_every_events: u64,
    /// ... or once this much time passed with events not yet covered by a checkpoint.
    pub checkpoint_interval: Duration,
    /// Live `Ledger.Subscribe` streams at most (one more is `RESOURCE_EXHAUSTED`).
    pub max_subscribers: usize,
    /// Entries of an `org_ids` filter at most (more is `INVALID_ARGUMENT`).
    pub max_org_filter: usize,
    /// The ed25519 signing key; `None` = `<data_dir>/ledger-signing.key`, created on first start.
    pub signing_key: Option<PathBuf>,
    /// Commits pause while the data directory's file system has less free space than this (or
    /// is read-only), and resume by themselves once it has more: sled is never let to fail a
    /// write for want of space (see [`storage`]).
    pub min_free_bytes: u64,
    /// When the inbox and the committed-stream publisher count as stalled.
    pub stall: liveness::StallConfig,
    /// At start, purge `WFL_LEDGER` and republish every committed sequence from 1, in order:
    /// the backfill for a stream that lacks sequences in the middle (see [`liveness::stream_gap_message`]).
    pub republish_stream: bool,
    /// The node's metrics registry (`/metrics`); a fresh one by default.
    pub metrics: wfl_metrics::Registry,
    /// Cluster mode: the partition this ledger writes, through its replicated log
    /// ([`partition`]). Its publisher puts its commits on the shared `WFL_LEDGER` with header
    /// `Wfl-Partition`, resuming after the cursor the partition log carries.
    pub partition: Option<partition::PartitionRole>,
    /// sled's page cache for the ledger's store, in bytes (the store's share of the process's
    /// memory; [`wfl_store::DEFAULT_CACHE_BYTES`] by default).
    pub cache_bytes: u64,
    /// A projector in the same process: after each durable append the writer hands it the
    /// batch's committed events, as it checked them ([`LocalFeed`]). `None` (the default): the
    /// views read the ledger through `Subscribe` alone.
    pub local_feed: Option<LocalFeed>,
}

/// Where a writer hands its committed batches to a projector in the same process. The channel
/// is bounded and never waited on: a batch that finds it full is dropped (the projector, behind,
/// reads those events through `Subscribe`, and takes the hand-over again once it has caught up).
pub type LocalFeed = tokio::sync::mpsc::Sender<Vec<wfl_domain::CommittedEvent>>;

impl Config {
    /// Defaults for a data directory.
    #[must_use]
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            max_batch: 1000,
            stall_timeout: Duration::from_secs(60),
            checkpoint_every_events: 1000,
            checkpoint_interval: Duration::from_secs(10),
            signing_key: None,
            min_free_bytes: DEFAULT_MIN_FREE_BYTES,
            stall: liveness::StallConfig::default(),
            max_subscribers: subscribe::DEFAULT_MAX_SUBSCRIBERS,
            max_org_filter: subscribe::DEFAULT_MAX_ORG_FILTER,
            republish_stream: false,
            metrics: wfl_metrics::Registry::new(),
            partition: None,
            cache_bytes: wfl_store::DEFAULT_CACHE_BYTES,
            local_feed: None,
        }
    }
}

/// A running ledger: its background tasks and what the gRPC API needs.
pub struct Ledger {
    store: Arc<dyn Log>,
    signer: Arc<checkpoint::Signer>,
    audit: watch::Receiver<audit::AuditState>,
    head: watch::Receiver<u64>,
    storage: watch::Receiver<storage::StorageState>,
    subscribers: Arc<subscribe::Registry>,
    limits: subscribe::Limits,
    liveness: Arc<liveness::Liveness>,
    tasks: JoinSet<Result<(), Error>>,
}

impl Ledger {
    /// Opens the store, rebuilds the state from it, and starts the writer, the inbox consumer and
    /// the committed-stream publisher. They stop when `shutdown` is cancelled.
    ///
    /// # Errors
    /// When the store cannot be opened or its history does not verify or decode, or the bus
    /// refuses the consumer.
    pub async fn start(
        mut config: Config,
        bus: Arc<dyn Bus>,
        shutdown: CancellationToken,
    ) -> Result<Self, Error> {
        if let Some(role) = &config.partition {
            // A batch's writer-state metadata goes whole into one partition-log message
            // (`partition::encode_batches`): at most ~600 bytes per event (the workers and
            // retractions it changes, ids of at most 64 characters), so a server with a small
            // `max_payload` gets smaller batches. NATS's default 1 MiB leaves the 1,000.
            config.max_batch = config
                .max_batch
                .min(role.log.max_message() / partition::METADATA_PER_EVENT)
                .max(1);
        }
        let dir = config.data_dir.join("ledger");
        let key_path = config
            .signing_key
            .clone()
            .unwrap_or_else(|| checkpoint::default_key_path(&config.data_dir));
        let signer = Arc::new(
            tokio::task::spawn_blocking(move || checkpoint::Signer::load_or_create(&key_path))
                .await
                .map_err(Error::join)??,
        );
        let shown = dir.clone();
        let cache_bytes = config.cache_bytes;
        let store: Arc<dyn Log> = Arc::new(
            tokio::task::spawn_blocking(move || SledLog::open_with_cache(&dir, cache_bytes))
                .await
                .map_err(Error::join)?
                .map_err(|e| refuse_to_start(&shown, e))?,
        );
        let (s, public) = (store.clone(), signer.public());
        tokio::task::spawn_blocking(move || check_latest_checkpoint(s.as_ref(), &public))
            .await
            .map_err(Error::join)??;
        if let Some(role) = &config.partition {
            partition::take_over(store.clone(), role).await?;
        }
        let (storage_tx, storage) = watch::channel(storage::StorageState::Writable);
        let (broadcast, broadcasting) = outcomes::Broadcast::start(bus.clone(), shutdown.clone());
        let (writer, head) = writer::Writer::recover(
            store.clone(),
            config.clone(),
            signer.clone(),
            storage_tx,
            broadcast,
        )
        .await?;
        let audit = audit::spawn(store.clone());
        let mut tasks = JoinSet::new();
        let mut inbox = bus.inbox().await?;
        // Work a previous ledger took and never acknowledged (it was killed) stays ack-pending
        // on the durable consumer until `ack_wait`, with the pull requests of its dead
        // connection; re-creating the consumer (work-queue retention: it starts at the ack floor)
        // delivers it to this ledger now. Redelivery is harmless: every event id is decided once.
        if let Err(e) = inbox.recreate().await {
            tracing::warn!(error = %e, "could not re-create the inbox consumer at start; unacknowledged work is redelivered after ack_wait");
        }
        let questions = match &config.partition {
            Some(role) => {
                bus.serve(&wfl_bus::cluster::partition_question_subject(
                    role.partition(),
                ))
                .await?
            }
            None => bus.serve(wfl_bus::OUTCOME_QUESTION_SUBJECT).await?,
        };
        let live = Arc::new(liveness::Liveness::default());
        let watch = liveness::InboxWatch::new(config.stall.inbox_stall, live.clone());
        tasks.spawn(writer.run(inbox, watch, shutdown.clone()));
        tasks.spawn(broadcasting);
        let (token, answering) = (
            shutdown.clone(),
            outcomes::answer(
                store.clone(),
                storage.clone(),
                questions,
                bus.max_message(),
                shutdown.clone(),
            ),
        );
        tasks.spawn(async move {
            let result = answering.await;
            if let Err(e) = &result {
                tracing::error!(error = %e, "outcome answering stopped; shutting down");
                token.cancel();
            }
            result
        });
        let token = shutdown.clone();
        let publisher = publisher::run(
            store.clone(),
            bus,
            head.clone(),
            liveness::PublisherWatch::new(config.stall.publisher_stall, live.clone()),
            publisher::Options {
                republish: config.republish_stream && config.partition.is_none(),
                cluster: config
                    .partition
                    .as_ref()
                    .map(|role| publisher::ClusterPublishing {
                        partition: role.partition(),
                        published: role.published.clone(),
                    }),
            },
            shutdown,
        );
        tasks.spawn(async move {
            let result = publisher.await;
            if let Err(e) = &result {
                // Stop the whole ledger rather than commit while the committed stream stays silent.
                tracing::error!(error = %e, "committed-stream publisher failed; shutting down");
                token.cancel();
            }
            result
        });
        let subscribers = Arc::default();
        metrics::register(
            &config.metrics,
            head.clone(),
            audit.clone(),
            storage.clone(),
            &live,
            &subscribers,
        );
        let limits = subscribe::Limits {
            stall_timeout: config.stall_timeout,
            max_subscribers: config.max_subscribers,
            max_org_filter: config.max_org_filter,
            ..subscribe::Limits::default()
        };
        Ok(Self {
            store,
            signer,
            audit,
            head,
            storage,
            subscribers,
            limits,
            liveness: live,
            tasks,
        })
    }

    /// The gRPC `Ledger` service over this ledger's store.
    #[must_use]
    pub fn service(&self) -> stored::LedgerService<api::LedgerApi> {
        stored::LedgerService::new(self.api())
    }

    /// The `Ledger` API implementation over this ledger's store (the cluster's router holds one
    /// per partition).
    #[must_use]
    pub fn api(&self) -> api::LedgerApi {
        api::LedgerApi::new(
            self.store.clone(),
            self.head.clone(),
            self.subscribers.clone(),
            self.limits,
            self.signer.public(),
        )
    }

    /// The background full verification's progress and verdict (metrics, health).
    #[must_use]
    pub fn audit(&self) -> watch::Receiver<audit::AuditState> {
        self.audit.clone()
    }

    /// Whether commits are paused for a full or read-only data directory (metrics, health).
    #[must_use]
    pub fn storage(&self) -> watch::Receiver<storage::StorageState> {
        self.storage.clone()
    }

    /// The inbox's and the publisher's stall state (metrics, health).
    #[must_use]
    pub fn liveness(&self) -> Arc<liveness::Liveness> {
        self.liveness.clone()
    }

    /// Live subscriptions, for the metrics endpoint.
    #[must_use]
    pub fn subscribers(&self) -> Arc<subscribe::Registry> {
        self.subscribers.clone()
    }

    /// The store, read-only use (Read, Subscribe, audits).
    #[must_use]
    pub fn store(&self) -> Arc<dyn Log> {
        self.store.clone()
    }

    /// Waits for every background task to stop; the first failure is returned.
    ///
    /// # Errors
    /// The first task error (the others are still awaited).
    pub async fn join(mut self) -> Result<(), Error> {
        let mut first = Ok(());
        while let Some(r) = self.tasks.join_next().await {
            let r = r.map_err(Error::join).and_then(|r| r);
            if let (Err(e), true) = (r, first.is_ok()) {
                first = Err(e);
            }
        }
        first
    }
}

/// The latest signed checkpoint must carry this ledger's signature and match the stored tree: its
/// root and the chain hash of its last record. O(log n), so every start checks it.
fn check_latest_checkpoint(
    store: &dyn Log,
    key: &ed25519_dalek::VerifyingKey,
) -> Result<(), Error> {
    let Some((size, bytes)) = store.latest_checkpoint()? else {
        return Ok(());
    };
    let refuse = |detail: String| {
        tracing::error!("{detail}; refusing to start. Inspect with: wfl verify DATA_DIR");
        Error::Refused {
            sequence: size,
            detail: format!("{detail}; run `wfl verify DATA_DIR` for details"),
        }
    };
    let signed = checkpoint::SignedCheckpoint::decode(&bytes).map_err(|e| {
        refuse(format!(
            "the checkpoint at tree size {size} is malformed: {e}"
        ))
    })?;
    if signed.checkpoint.tree_size != size || !signed.verify(key) {
        return Err(refuse(format!(
            "the checkpoint at tree size {size} is not signed by this ledger's key"
        )));
    }
    let root = store.merkle_root(size)?;
    let record = store.get(size)?.map(|r| r.hash);
    if root != signed.checkpoint.root || record != Some(signed.checkpoint.head_hash) {
        return Err(refuse(format!(
            "the stored records do not have the root and head hash signed at tree size {size}"
        )));
    }
    // Every upper Merkle node the head needs is present and readable.
    store.merkle_root(store.head()?.sequence)?;
    Ok(())
}

/// A store that does not verify: name the first bad sequence and the command that shows it.
fn refuse_to_start(dir: &std::path::Path, e: wfl_store::Error) -> Error {
    if let wfl_store::Error::Corrupt { sequence, .. } = &e {
        let data_dir = dir.parent().unwrap_or(dir);
        tracing::error!(
            "ledger store failed verification: first bad sequence {sequence} ({e}); \
             refusing to start. Inspect with: wfl verify {}",
            data_dir.display()
        );
        return Error::Refused {
            sequence: *sequence,
            detail: format!("{e}; run `wfl verify {}` for details", data_dir.display()),
        };
    }
    tracing::error!(path = %dir.display(), error = %e, "cannot open the ledger store");
    Error::Open {
        path: dir.to_owned(),
        source: e,
    }
}

/// Binds a TCP listener (helper for the binaries).
///
/// # Errors
/// When the address cannot be bound.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}
