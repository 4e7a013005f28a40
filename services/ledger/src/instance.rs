//! Cluster mode: one ledger instance among several, owning the partitions whose leases it holds.
//!
//! Every `lease_ttl / 3` the instance heartbeats (`i.<instance>` in `WFL_LEASES`), counts the live
//! instances, and aims at `ceil(partitions / live)` partitions:
//! - it renews the lease of every partition it runs; a renewal the bucket refuses (the lease
//!   expired and another instance took it) stops that partition's ledger at once, and so does a
//!   lease it could not renew for a whole TTL (it cannot know it still holds it). Either way the
//!   partition log's fence already refuses its writes once the new owner wrote its marker;
//! - it takes free partitions (lease absent or expired) while below its share: each one's
//!   ledger catches its store up from the partition log before writing
//!   ([`crate::partition::take_over`]);
//! - above its share (an instance joined), it gives one partition up per round: stops its
//!   ledger, then deletes the lease, so another instance takes it at once;
//! - a partition whose ledger stopped by itself (fenced, NATS lost, a store failure) has its lease
//!   released and is taken again (by this or another instance) in a later round.
//!
//! Stopping a partition's ledger and releasing its lease happen in a task of their own
//! ([`finish`]), never in the round: a ledger cut off from NATS can take many seconds to stop,
//! and a round that waited would not heartbeat, so the other instances would count this one out
//! (and keep its share) for as long. The partition is not taken again, nor followed, until that
//! task has ended. When the live instances cannot be counted, the last count stands.
//!
//! Each partition's ledger is a whole [`Ledger`]: its own sled store under
//! `<data dir>/p<n>/`, its own durable inbox consumer `wfl-ledger-p<n>` on `wfl.inbox.<n>.>`, its
//! own outcome-question subject `wfl.ctl.await.<n>`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};
use wfl_bus::cluster::{Cluster, ClusterConfig, Lease, LiveMap, PartitionMap};
use wfl_bus::{NatsBus, NatsConfig};

use crate::partition::PartitionRole;
use crate::router::Readers;
use crate::{Config, Error, Ledger};

/// Settings of a ledger instance in cluster mode.
#[derive(Debug, Clone)]
pub struct InstanceConfig {
    /// This instance's name, unique in the cluster (one subject token).
    pub instance: String,
    /// The NATS servers (comma-separated URLs of the cluster's nodes).
    pub nats_url: String,
    /// Authentication and stream settings (replicas); names are set per partition.
    pub nats: NatsConfig,
    /// Replicas and lease TTL.
    pub cluster: ClusterConfig,
    /// The partition map to create the cluster with; `None` joins an existing cluster.
    pub create: Option<PartitionMap>,
    /// The settings of each partition's ledger; its `data_dir` is the instance's root (each
    /// partition under `p<n>/`).
    pub ledger: Config,
    /// Keep a standby copy of every partition this instance does not write (applied from the
    /// partition's log as it grows), so a takeover applies only the tail.
    pub standby: bool,
}

/// What the instance runs now, for health and metrics: partition → its lease revision.
#[derive(Debug, Default)]
pub struct Owned(Mutex<BTreeMap<u32, u64>>, std::sync::atomic::AtomicBool);

impl Owned {
    /// Whether the instance takes part in the cluster now (it joined, and its round runs).
    #[must_use]
    pub fn participating(&self) -> bool {
        self.1.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The partitions this instance writes now.
    #[must_use]
    pub fn partitions(&self) -> Vec<u32> {
        self.0
            .lock()
            .map(|m| m.keys().copied().collect())
            .unwrap_or_default()
    }

    fn set(&self, partition: u32, revision: Option<u64>) {
        if let Ok(mut m) = self.0.lock() {
            match revision {
                Some(r) => m.insert(partition, r),
                None => m.remove(&partition),
            };
        }
    }
}

/// One attempt at connecting, opening the cluster's buckets and reading the partition map.
const JOIN_ATTEMPT: Duration = Duration::from_secs(30);

struct Running {
    lease: Lease,
    renewed: Instant,
    stop: CancellationToken,
    task: JoinHandle<Result<(), Error>>,
}

/// A ledger instance's connection to the cluster, and the cluster's partition map.
pub struct Joined {
    bus: NatsBus,
    cluster: Cluster,
    /// The cluster's partition map, followed (orgs placed since creation).
    pub map: LiveMap,
}

/// Connects to the cluster and reads (or, with [`InstanceConfig::create`], records) its
/// partition map, retrying until `shutdown` (`None` then).
///
/// # Errors
/// When the cluster refuses the map (it was created with another).
pub async fn join(
    config: &InstanceConfig,
    shutdown: &CancellationToken,
) -> Result<Option<Joined>, Error> {
    let (bus, cluster, map) = loop {
        // Each step is retried: a cluster that has just formed can time JetStream requests out
        // while it places its first streams. A refusal (a differing partition map) is final.
        let attempt = async {
            let bus = NatsBus::connect(&config.nats_url, config.nats.clone()).await?;
            let cluster = Cluster::open(bus.client(), config.cluster.clone()).await?;
            let recorded = cluster.partition_map(config.create.as_ref()).await?;
            let map = cluster.live_map_from(recorded).await?;
            Ok::<_, wfl_bus::Error>((bus, cluster, map))
        };
        match tokio::time::timeout(JOIN_ATTEMPT, attempt).await {
            Ok(Ok(joined)) => break joined,
            Ok(Err(e @ wfl_bus::Error::Rejected(_))) => return Err(e.into()),
            Ok(Err(e)) => warn!(error = %e, "cannot join the cluster yet; retrying"),
            Err(_) => warn!("joining the cluster took longer than {JOIN_ATTEMPT:?}; retrying"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return Ok(None),
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    };
    let (revision, current) = map.current();
    info!(
        instance = %config.instance,
        partitions = current.count,
        reserved = current.reserved,
        table = current.table.len(),
        revision,
        "ledger instance joining the cluster"
    );
    Ok(Some(Joined { bus, cluster, map }))
}

/// Runs the instance until `shutdown`, keeping `owned` (what it writes) and `readers` (what it
/// can serve reads of: [`crate::router`]) up to date.
///
/// # Errors
/// None so far: partition failures are logged and the partition is taken again later.
pub async fn run(
    config: InstanceConfig,
    joined: Joined,
    owned: Arc<Owned>,
    readers: Arc<Readers>,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let Joined {
        bus: _connection,
        cluster,
        map,
    } = joined;
    let count = map.map().count;
    owned.1.store(true, std::sync::atomic::Ordering::Relaxed);
    let tick = config.cluster.lease_ttl / 3;
    let mut running: BTreeMap<u32, Running> = BTreeMap::new();
    let mut standby: BTreeMap<u32, Standby> = BTreeMap::new();
    // Partitions being stopped by [`finish`] (see the module doc); not taken again, nor
    // followed, while their store may still be open.
    let mut stopping: BTreeMap<u32, JoinHandle<()>> = BTreeMap::new();
    // None until the live instances were first counted.
    let mut live: Option<usize> = None;
    let mut first = true;
    loop {
        stopping.retain(|_, t| !t.is_finished());
        if let Err(e) = cluster.heartbeat(&config.instance).await {
            warn!(error = %e, "cluster heartbeat failed");
        }
        // Renew, and notice partitions whose ledger stopped.
        let stopped: Vec<u32> = running
            .iter()
            .filter(|(_, r)| r.task.is_finished())
            .map(|(p, _)| *p)
            .collect();
        // Concurrently: one slow answer (a NATS leader election) must not age the others.
        let renewals = futures::future::join_all(
            running
                .iter_mut()
                .filter(|(_, r)| !r.task.is_finished())
                .map(|(p, r)| async {
                    let result = cluster.renew(&mut r.lease).await;
                    (*p, r, result)
                }),
        )
        .await;
        for (p, r, result) in renewals {
            match result {
                Ok(()) => {
                    r.renewed = Instant::now();
                    owned.set(p, Some(r.lease.revision));
                }
                Err(wfl_bus::Error::Rejected(why)) => {
                    warn!(partition = p, %why, "lease lost; stopping this partition's ledger");
                    r.stop.cancel();
                }
                Err(e) if r.renewed.elapsed() >= config.cluster.lease_ttl => {
                    warn!(partition = p, error = %e, "lease not renewed for a whole TTL; stopping this partition's ledger");
                    r.stop.cancel();
                }
                Err(e) => warn!(partition = p, error = %e, "lease renewal failed; retrying"),
            }
        }
        for p in stopped {
            if let Some(r) = running.remove(&p) {
                stopping.insert(p, finish(&cluster, &owned, p, r));
            }
        }
        // Share: ceil(partitions / live instances). The first round only announces this
        // instance, so instances started together see each other before taking partitions.
        // When the count cannot be read, the last one stands (none yet: nothing is taken or
        // given up): an instance that cannot list the others must not conclude it is alone.
        match cluster.live_instances().await {
            Ok(l) => live = Some(l.len().max(1)),
            Err(e) => {
                warn!(error = %e, ?live, "cannot count the live instances; keeping the last count")
            }
        }
        if let (false, Some(live)) = (first, live) {
            let share = (count as usize).div_ceil(live);
            let start = PartitionMap::hash_partition(&config.instance, count);
            for i in 0..count {
                if running.len() >= share || shutdown.is_cancelled() {
                    break;
                }
                let p = (start + i) % count;
                if running.contains_key(&p) || stopping.contains_key(&p) {
                    continue;
                }
                match cluster.acquire(p, &config.instance).await {
                    Ok(Some(lease)) => {
                        // The standby copy closes its store before the ledger opens it.
                        if let Some(s) = standby.remove(&p) {
                            s.stop().await;
                        }
                        let r = launch(&config, &cluster, &map, lease, &readers, &shutdown).await;
                        owned.set(p, Some(r.lease.revision));
                        running.insert(p, r);
                    }
                    Ok(None) => {}
                    Err(e) => warn!(partition = p, error = %e, "cannot acquire a lease"),
                }
            }
            if running.len() > share {
                if let Some((&p, _)) = running.iter().next_back() {
                    if let Some(r) = running.remove(&p) {
                        info!(
                            partition = p,
                            share, live, "giving a partition up to rebalance"
                        );
                        r.stop.cancel();
                        stopping.insert(p, finish(&cluster, &owned, p, r));
                    }
                }
            }
        }
        // Every partition this instance does not write, it follows: a standby copy of the
        // partition's log in its own store, so taking it over later applies only the tail.
        if config.standby {
            for p in 0..count {
                let dead = standby.get(&p).is_some_and(|s| s.task.is_finished());
                let writing = running.contains_key(&p) || stopping.contains_key(&p);
                if !writing && (dead || !standby.contains_key(&p)) {
                    standby.insert(p, Standby::start(&config, &cluster, p, &readers, &shutdown));
                }
            }
        }
        first = false;
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(tick) => {}
        }
    }
    owned.1.store(false, std::sync::atomic::Ordering::Relaxed);
    for (_, s) in std::mem::take(&mut standby) {
        s.stop().await;
    }
    for (p, r) in std::mem::take(&mut running) {
        r.stop.cancel();
        stopping.insert(p, finish(&cluster, &owned, p, r));
    }
    for (_, t) in stopping {
        let _ = t.await;
    }
    Ok(())
}

/// A standby copy of a partition this instance does not write.
struct Standby {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// How often a standby copy looks for new messages in the partition log.
const STANDBY_POLL: Duration = Duration::from_millis(250);

impl Standby {
    fn start(
        config: &InstanceConfig,
        cluster: &Cluster,
        p: u32,
        readers: &Arc<Readers>,
        shutdown: &CancellationToken,
    ) -> Self {
        let stop = shutdown.child_token();
        let dir = partition_dir(&config.ledger.data_dir, p);
        let (cluster, token, readers) = (cluster.clone(), stop.clone(), readers.clone());
        let limits = crate::subscribe::Limits {
            stall_timeout: config.ledger.stall_timeout,
            max_subscribers: config.ledger.max_subscribers,
            max_org_filter: config.ledger.max_org_filter,
            ..crate::subscribe::Limits::default()
        };
        let task = tokio::spawn(async move {
            let result = standby(cluster, dir, p, &readers, limits, token).await;
            readers.set(p, None);
            if let Err(e) = result {
                warn!(partition = p, error = %e, "standby copy stopped; starting again in the next round");
            }
        });
        Self { stop, task }
    }

    /// Stops following and waits until the store is closed.
    async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

async fn standby(
    cluster: Cluster,
    root: PathBuf,
    p: u32,
    readers: &Readers,
    limits: crate::subscribe::Limits,
    stop: CancellationToken,
) -> Result<(), Error> {
    let log = cluster.partition_log(p).await?;
    let dir = root.join("ledger");
    let key = crate::checkpoint::default_key_path(&root);
    let (d, shown) = (dir.clone(), dir.clone());
    let (store, signer) = tokio::task::spawn_blocking(move || {
        let store = wfl_store::SledLog::open(&d).map_err(|e| Error::Open {
            path: shown,
            source: e,
        })?;
        let signer = crate::checkpoint::Signer::load_or_create(&key)?;
        Ok::<_, Error>((store, signer))
    })
    .await
    .map_err(Error::join)??;
    let store: Arc<dyn wfl_store::Log> = Arc::new(store);
    let head = store.head()?.sequence;
    let (head_tx, head_rx) = tokio::sync::watch::channel(head);
    readers.set(
        p,
        Some(crate::api::LedgerApi::new(
            store.clone(),
            head_rx,
            Arc::default(),
            limits,
            signer.public(),
        )),
    );
    loop {
        let (at, n) = crate::partition::catch_up_until(&store, &log, Some(&stop)).await?;
        if n > 0 {
            let s = store.clone();
            let head = tokio::task::spawn_blocking(move || s.head())
                .await
                .map_err(Error::join)??;
            head_tx.send_replace(head.sequence);
            tracing::debug!(partition = p, at, applied = n, "standby copy caught up");
        }
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            () = tokio::time::sleep(STANDBY_POLL) => {}
        }
    }
}

/// Starts one partition's ledger under `lease`.
async fn launch(
    config: &InstanceConfig,
    cluster: &Cluster,
    map: &LiveMap,
    lease: Lease,
    readers: &Arc<Readers>,
    shutdown: &CancellationToken,
) -> Running {
    let p = lease.partition;
    info!(
        partition = p,
        revision = lease.revision,
        "lease taken; starting the partition's ledger"
    );
    let stop = shutdown.child_token();
    let nats = NatsConfig {
        consumer: format!("wfl-ledger-p{p}"),
        inbox_filter: Some(wfl_bus::cluster::partition_inbox_filter(p)),
        ..config.nats.clone()
    };
    let url = config.nats_url.clone();
    // The instance's /metrics shows every partition's ledger, labelled `partition`.
    let metrics = config
        .ledger
        .metrics
        .scoped(&[("partition", p.to_string())]);
    let mut ledger_config = Config {
        data_dir: partition_dir(&config.ledger.data_dir, p),
        metrics: metrics.clone(),
        ..config.ledger.clone()
    };
    let (cluster, map, owner, revision, token, readers) = (
        cluster.clone(),
        map.clone(),
        config.instance.clone(),
        lease.revision,
        stop.clone(),
        readers.clone(),
    );
    let task = tokio::spawn(async move {
        let log = cluster.partition_log(p).await?;
        ledger_config.partition = Some(PartitionRole::new(log, owner, revision).with_map(map));
        let bus = Arc::new(NatsBus::connect(&url, nats).await?);
        let ledger = match Ledger::start(ledger_config, bus, token.clone()).await {
            Ok(ledger) => ledger,
            Err(e) => {
                metrics.close();
                return Err(e);
            }
        };
        readers.set(p, Some(ledger.api()));
        let result = ledger.join().await;
        readers.set(p, None);
        metrics.close();
        token.cancel();
        result
    });
    Running {
        lease,
        renewed: Instant::now(),
        stop,
        task,
    }
}

/// How long a partition's ledger has to stop before its lease is released anyway and its task
/// aborted.
const STOP_BOUND: Duration = Duration::from_secs(30);

/// Stops writing `p` at once (`owned`), then, in a task of its own, waits for the partition's
/// ledger to stop and releases its lease. A ledger that has not stopped within [`STOP_BOUND`]
/// has its lease released (so another instance can take over; the partition log's fence keeps
/// its writes out) and its task aborted and awaited: the returned task ends only once the
/// ledger's task has.
fn finish(cluster: &Cluster, owned: &Owned, p: u32, r: Running) -> JoinHandle<()> {
    owned.set(p, None);
    let cluster = cluster.clone();
    let Running {
        lease, mut task, ..
    } = r;
    tokio::spawn(async move {
        let stopped = tokio::time::timeout(STOP_BOUND, &mut task).await;
        match &stopped {
            Ok(Ok(Ok(()))) => info!(partition = p, "partition's ledger stopped"),
            Ok(Ok(Err(e))) => error!(partition = p, error = %e, "partition's ledger stopped"),
            Ok(Err(e)) => error!(partition = p, error = %e, "partition's ledger task failed"),
            Err(_) => error!(
                partition = p,
                "partition's ledger did not stop within {STOP_BOUND:?}; releasing its lease and aborting it"
            ),
        }
        if let Err(e) = cluster.release(&lease).await {
            warn!(partition = p, error = %e, "cannot release the lease; it expires by itself");
        }
        if stopped.is_err() {
            task.abort();
            let _ = task.await;
        }
    })
}

/// Where partition `p`'s store lives under an instance's data directory.
#[must_use]
pub fn partition_dir(root: &std::path::Path, p: u32) -> PathBuf {
    root.join(format!("p{p}"))
}
