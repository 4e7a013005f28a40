//! Cluster mode on NATS JetStream: partitions, who owns them, and each partition's replicated
//! commit log. Nothing here is consensus code of wfl's own: every decision is a JetStream
//! compare-and-set (a KV revision check or an expected-last-sequence check), made by the
//! replicated stream that holds it.
//!
//! Owns:
//! - [`PartitionMap`]: an org maps to exactly one of `count` partitions, by a stable hash of its
//!   id ([`PartitionMap::hash_partition`], FNV-1a 64) unless the explicit table names it. The map
//!   is written once, when the cluster is created, under key `partitions` of KV bucket
//!   `WFL_CLUSTER` ([`Cluster::partition_map`]), and every process reads it from there.
//! - Leases ([`Cluster::acquire`], [`Cluster::renew`], [`Cluster::release`]): key `p<n>` of KV
//!   bucket `WFL_LEASES`, whose entries expire `lease_ttl` after their last write (the bucket's
//!   max age). Acquiring is a create (succeeds only when the key is absent, deleted or expired);
//!   renewing is an update expecting the revision the holder last wrote, so a holder that lost
//!   its lease (it expired and another instance created it) learns so at its next renewal.
//!   Live instances heartbeat `i.<instance>` in the same bucket.
//! - [`PartitionLog`]: stream `WFL_PARTITION_<n>` (subject `wfl.partition.<n>`), one message per
//!   append of the partition's writer, published *before* the append with header
//!   `Nats-Expected-Last-Sequence` = the last stream sequence the writer knows of. The stream
//!   refuses any other writer's publish once a newer owner wrote (its takeover marker is its
//!   first write), which is the fence: a writer that lost its lease, however late it learns
//!   so, can never add to the partition.
//!
//! Must not: know the protobuf schema (batches are opaque bytes) or decide anything itself.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use async_nats::{Client, HeaderMap};
use bytes::Bytes;

use crate::Error;

/// KV bucket holding the cluster's fixed settings (the partition map).
pub const CLUSTER_BUCKET: &str = "WFL_CLUSTER";
/// KV bucket of partition leases and instance heartbeats (entries expire after the lease TTL).
pub const LEASE_BUCKET: &str = "WFL_LEASES";
/// Prefix of a partition's commit-log subject: `wfl.partition.<n>`.
pub const PARTITION_SUBJECT_PREFIX: &str = "wfl.partition";
/// Prefix of a partition's commit-log stream: `WFL_PARTITION_<n>`.
pub const PARTITION_STREAM_PREFIX: &str = "WFL_PARTITION_";
/// Key of the partition map in [`CLUSTER_BUCKET`].
const MAP_KEY: &str = "partitions";
/// Most partitions a cluster may be created with.
pub const MAX_PARTITIONS: u32 = 1024;

/// How orgs map to partitions. The partition count and the reserved ones are fixed when the
/// cluster is created; orgs are placed on a partition later through a fenced placement
/// ([`PartitionMap::moving`], `wfl cluster place`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMap {
    /// Number of partitions, `0..count`.
    pub count: u32,
    /// The last `reserved` partitions take no hashed org: only orgs placed on them by the
    /// table (a big tenant's partition of its own). The hash spreads orgs over
    /// `0..count - reserved`.
    pub reserved: u32,
    /// Orgs placed explicitly (a big tenant on a partition of its own), overriding the hash.
    pub table: BTreeMap<String, u32>,
    /// Orgs being placed: org → the partition it is going to. While an org is here no
    /// partition commits its events (its inbox messages wait and are delivered again); the
    /// placement ends by moving it into `table` or taking it out again.
    pub moving: BTreeMap<String, u32>,
}

/// Words of the stored form that an org placed in the table cannot be called.
const MAP_WORDS: [&str; 1] = ["count"];

impl PartitionMap {
    /// A map of `count` hashed partitions with the explicit `table`.
    ///
    /// # Errors
    /// [`Error::Rejected`] when `count` is 0 or above [`MAX_PARTITIONS`], or the table names a
    /// partition `>= count` or an org id that is not one subject token.
    pub fn new(count: u32, table: BTreeMap<String, u32>) -> Result<Self, Error> {
        Self {
            count,
            reserved: 0,
            table,
            moving: BTreeMap::new(),
        }
        .checked()
    }

    /// The same map with its last `reserved` partitions kept out of the hash.
    ///
    /// # Errors
    /// [`Error::Rejected`] when no partition would be left for hashed orgs.
    pub fn with_reserved(self, reserved: u32) -> Result<Self, Error> {
        Self { reserved, ..self }.checked()
    }

    /// The map if it is well-formed (see [`PartitionMap::new`]).
    ///
    /// # Errors
    /// As [`PartitionMap::new`], and for a `moving` entry likewise.
    pub fn checked(self) -> Result<Self, Error> {
        let count = self.count;
        if count == 0 || count > MAX_PARTITIONS {
            return Err(Error::Rejected(format!(
                "partitions: {count} is not in 1..={MAX_PARTITIONS}"
            )));
        }
        if self.reserved >= count {
            return Err(Error::Rejected(format!(
                "reserved partitions: {} of {count} leaves none for hashed orgs (at most {})",
                self.reserved,
                count - 1
            )));
        }
        for (what, entries) in [("table", &self.table), ("moving", &self.moving)] {
            for (org, p) in entries {
                crate::subject::check_org(org)?;
                if MAP_WORDS.contains(&org.as_str()) || org.contains('=') {
                    return Err(Error::Rejected(format!(
                        "partition {what}: an org called {org:?} cannot be placed (a word of the stored map, or an '=')"
                    )));
                }
                if *p >= count {
                    return Err(Error::Rejected(format!(
                        "partition {what}: org {org} is placed on partition {p}, but there are only {count} (0..{count})"
                    )));
                }
            }
        }
        Ok(self)
    }

    /// The number of partitions the hash spreads orgs over (`0..hashed`).
    #[must_use]
    pub fn hashed(&self) -> u32 {
        self.count - self.reserved
    }

    /// The partition a request's [`PARTITION_HEADER`] metadata value names (`None`: not
    /// UTF-8), or the caller's mistake in one line naming the key.
    ///
    /// # Errors
    /// Not a number, or not a partition of this map.
    pub fn named_partition(&self, value: Option<&str>) -> Result<u32, String> {
        let p = value
            .and_then(|s| s.trim().parse::<u32>().ok())
            .ok_or_else(|| format!("metadata {PARTITION_HEADER}: not a partition number"))?;
        if p >= self.count {
            return Err(format!(
                "metadata {PARTITION_HEADER}: partition {p} does not exist (0..{})",
                self.count
            ));
        }
        Ok(p)
    }

    /// The partition `org_id` belongs to (an org being placed still belongs to the partition
    /// it is leaving until its placement ends).
    #[must_use]
    pub fn partition_of(&self, org_id: &str) -> u32 {
        self.table
            .get(org_id)
            .copied()
            .unwrap_or_else(|| Self::hash_partition(org_id, self.hashed()))
    }

    /// Whether `org_id` is being placed (its events wait until the placement ends).
    #[must_use]
    pub fn is_moving(&self, org_id: &str) -> bool {
        self.moving.contains_key(org_id)
    }

    /// The hashed placement: FNV-1a 64 of the org id's UTF-8 bytes, modulo `count`. Stable
    /// across builds and platforms (it is part of the cluster's data: never change it).
    #[must_use]
    pub fn hash_partition(org_id: &str, count: u32) -> u32 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in org_id.as_bytes() {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        (h % u64::from(count.max(1))) as u32
    }

    /// The stored form: `count=<n>`, `map.reserved=<n>` when some are, one `<org>=<partition>`
    /// line per table entry and one `moving <org>=<partition>` line per org being placed. (The
    /// lines added after the first builds cannot be read as an org by those builds: an org id
    /// has no `.` and no space, so an old binary refuses such a map instead of misrouting.)
    #[must_use]
    pub fn encode(&self) -> String {
        let mut s = format!("count={}\n", self.count);
        if self.reserved > 0 {
            s.push_str(&format!("map.reserved={}\n", self.reserved));
        }
        for (org, p) in &self.table {
            s.push_str(&format!("{org}={p}\n"));
        }
        for (org, p) in &self.moving {
            s.push_str(&format!("moving {org}={p}\n"));
        }
        s
    }

    /// Reads [`PartitionMap::encode`]'s form.
    ///
    /// # Errors
    /// [`Error::Rejected`] naming the line that does not parse.
    pub fn decode(text: &str) -> Result<Self, Error> {
        let mut count = None;
        let mut reserved = 0;
        let mut table = BTreeMap::new();
        let mut moving = BTreeMap::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let bad = || Error::Rejected(format!("partition map: cannot read line {line:?}"));
            let (k, v) = line.rsplit_once('=').ok_or_else(bad)?;
            let v: u32 = v.trim().parse().map_err(|_| bad())?;
            match k.trim() {
                "count" => count = Some(v),
                "map.reserved" => reserved = v,
                k => {
                    match k.strip_prefix("moving ") {
                        Some(org) => moving.insert(org.trim().to_owned(), v),
                        None => table.insert(k.to_owned(), v),
                    };
                }
            }
        }
        let count =
            count.ok_or_else(|| Error::Rejected("partition map: no count line".to_owned()))?;
        Self {
            count,
            reserved,
            table,
            moving,
        }
        .checked()
    }
}

/// The cluster's partition map as it is now, followed from KV (see [`Cluster::live_map`]).
#[derive(Debug, Clone)]
pub struct LiveMap(tokio::sync::watch::Receiver<(u64, Arc<PartitionMap>)>);

impl LiveMap {
    /// A map that never changes (revision 0): tests, and a map read once.
    #[must_use]
    pub fn fixed(map: PartitionMap) -> Self {
        Self(tokio::sync::watch::channel((0, Arc::new(map))).1)
    }

    /// The map now, and its KV revision.
    #[must_use]
    pub fn current(&self) -> (u64, Arc<PartitionMap>) {
        self.0.borrow().clone()
    }

    /// The map now.
    #[must_use]
    pub fn map(&self) -> Arc<PartitionMap> {
        self.0.borrow().1.clone()
    }
}

/// Two live maps are equal when they hold the same revision of the same map now.
impl PartialEq for LiveMap {
    fn eq(&self, other: &Self) -> bool {
        self.current() == other.current()
    }
}

impl Eq for LiveMap {}

/// How often a [`LiveMap`] reads the map's KV entry.
pub const MAP_POLL: Duration = Duration::from_millis(250);

/// How long [`Cluster::partition_map`] reads again for a map it knows exists (its create was
/// refused as already there) but a replica's answer does not show yet.
const MAP_VISIBLE_WAIT: Duration = Duration::from_secs(15);
/// The pause between those reads.
const MAP_VISIBLE_POLL: Duration = Duration::from_millis(100);

/// The answer when no partition map is recorded.
fn no_map() -> Error {
    Error::Rejected(format!(
        "the cluster has no partition map yet (KV {CLUSTER_BUCKET} key {MAP_KEY}); start a ledger instance with --partitions N first"
    ))
}

/// Settings of the cluster objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// Replicas of every stream and bucket the cluster creates (3 on a 3-node cluster).
    pub replicas: usize,
    /// A lease not renewed for this long expires and the partition can be taken over.
    pub lease_ttl: Duration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            replicas: 1,
            lease_ttl: Duration::from_secs(10),
        }
    }
}

/// A held lease on a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The partition.
    pub partition: u32,
    /// The holding instance.
    pub owner: String,
    /// The KV revision of the holder's last write: the next renewal must find it unchanged.
    pub revision: u64,
}

/// The cluster's KV buckets, on one JetStream connection.
#[derive(Clone)]
pub struct Cluster {
    client: Client,
    js: jetstream::Context,
    config: ClusterConfig,
    settings: kv::Store,
    leases: kv::Store,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Opens (creating when missing) the cluster's buckets on `client`'s JetStream.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when JetStream does not answer; [`Error::Rejected`] when it
    /// refuses a bucket.
    pub async fn open(client: &Client, config: ClusterConfig) -> Result<Self, Error> {
        let mut js = jetstream::new(client.clone());
        js.set_timeout(crate::PUBLISH_TIMEOUT);
        let settings = bucket(
            &js,
            kv::Config {
                bucket: CLUSTER_BUCKET.to_owned(),
                history: 1,
                num_replicas: config.replicas,
                storage: stream::StorageType::File,
                ..kv::Config::default()
            },
        )
        .await?;
        let leases = bucket(
            &js,
            kv::Config {
                bucket: LEASE_BUCKET.to_owned(),
                history: 1,
                max_age: config.lease_ttl,
                num_replicas: config.replicas,
                storage: stream::StorageType::File,
                ..kv::Config::default()
            },
        )
        .await?;
        Ok(Self {
            client: client.clone(),
            js,
            config,
            settings,
            leases,
        })
    }

    /// Attaches to a cluster a ledger instance created (a gateway's way in: it creates
    /// nothing).
    ///
    /// # Errors
    /// [`Error::Unavailable`] when JetStream does not answer or the cluster's buckets do not
    /// exist yet (no ledger instance has started).
    pub async fn attach(client: &Client) -> Result<Self, Error> {
        let mut js = jetstream::new(client.clone());
        js.set_timeout(crate::PUBLISH_TIMEOUT);
        let get = |name: &'static str| {
            let js = js.clone();
            async move {
                js.get_key_value(name).await.map_err(|e| {
                    Error::Unavailable(format!(
                        "KV bucket {name}: {e} (is a ledger instance with --cluster running?)"
                    ))
                })
            }
        };
        let settings = get(CLUSTER_BUCKET).await?;
        let leases = get(LEASE_BUCKET).await?;
        Ok(Self {
            client: client.clone(),
            js,
            config: ClusterConfig::default(),
            settings,
            leases,
        })
    }

    /// The settings the cluster was opened with.
    #[must_use]
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// The cluster's partition map. With `wanted`, creates it when the cluster has none yet,
    /// and refuses one that differs from the recorded map (partition count and reserved
    /// partitions are fixed at creation; orgs placed since may be added to the table).
    ///
    /// # Errors
    /// [`Error::Rejected`] when no map is recorded and none is given (or, with `wanted`, none
    /// shows within 15 s of its create being refused as already there), when `wanted` differs
    /// from the recorded one, or when the recorded one does not parse; [`Error::Unavailable`]
    /// when JetStream does not answer.
    pub async fn partition_map(
        &self,
        wanted: Option<&PartitionMap>,
    ) -> Result<PartitionMap, Error> {
        if let Some(map) = wanted {
            match self
                .settings
                .create(MAP_KEY, Bytes::from(map.encode()))
                .await
            {
                Ok(_) => return Ok(map.clone()),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::unavailable("record the partition map", e)),
            }
        }
        // With `wanted`, reaching here means the create was refused as already there, yet a
        // read served by a replica that has not applied that create finds none: read again for
        // a while rather than tell the caller the cluster has no map (an instance started
        // beside the one creating the map exited on that).
        let deadline = tokio::time::Instant::now() + MAP_VISIBLE_WAIT;
        let recorded = loop {
            match self.read_map().await? {
                Some((_, map)) => break map,
                None if wanted.is_some() && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(MAP_VISIBLE_POLL).await;
                }
                None => return Err(no_map()),
            }
        };
        if let Some(map) = wanted {
            let placed = map
                .table
                .iter()
                .all(|(org, p)| recorded.table.get(org) == Some(p));
            if map.count != recorded.count || map.reserved != recorded.reserved || !placed {
                return Err(Error::Rejected(format!(
                    "the cluster was created with {} partitions ({} reserved) and table {:?}; asked for {} ({} reserved) and {:?} (partitions are fixed at creation; place an org with `wfl cluster place`)",
                    recorded.count, recorded.reserved, recorded.table, map.count, map.reserved, map.table
                )));
            }
        }
        Ok(recorded)
    }

    /// The recorded partition map and its KV revision.
    ///
    /// # Errors
    /// As [`Cluster::partition_map`].
    pub async fn map_entry(&self) -> Result<(u64, PartitionMap), Error> {
        self.read_map().await?.ok_or_else(no_map)
    }

    /// The recorded partition map and its KV revision, `None` when none is recorded.
    async fn read_map(&self) -> Result<Option<(u64, PartitionMap)>, Error> {
        let Some(entry) = self
            .settings
            .entry(MAP_KEY)
            .await
            .map_err(|e| Error::unavailable("read the partition map", e))?
            .filter(|e| e.operation == kv::Operation::Put)
        else {
            return Ok(None);
        };
        let text = std::str::from_utf8(&entry.value)
            .map_err(|e| Error::rejected("the recorded partition map", e))?;
        Ok(Some((entry.revision, PartitionMap::decode(text)?)))
    }

    /// Replaces the partition map if it is still at `revision`: the new revision, or `None`
    /// when another writer changed it since (read it again and redo the change).
    ///
    /// # Errors
    /// [`Error::Unavailable`] when JetStream does not answer; [`Error::Rejected`] when the map
    /// is not well-formed (it would not read back as written).
    pub async fn update_map(
        &self,
        map: &PartitionMap,
        revision: u64,
    ) -> Result<Option<u64>, Error> {
        let map = map.clone().checked()?;
        if PartitionMap::decode(&map.encode())? != map {
            return Err(Error::Rejected(format!(
                "the partition map {map:?} would not read back as written"
            )));
        }
        match self
            .settings
            .update(MAP_KEY, Bytes::from(map.encode()), revision)
            .await
        {
            Ok(r) => Ok(Some(r)),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(None),
            Err(e) => Err(Error::unavailable("update the partition map", e)),
        }
    }

    /// The partition map, followed: read now, then every [`MAP_POLL`] by a task that ends
    /// when every clone of the returned [`LiveMap`] is dropped. A map that cannot be read
    /// meanwhile (NATS down) stays as last read.
    ///
    /// # Errors
    /// As [`Cluster::map_entry`], for the first read.
    pub async fn live_map(&self) -> Result<LiveMap, Error> {
        let first = self.map_entry().await?;
        Ok(self.follow_map(first))
    }

    /// [`Cluster::live_map`] for a caller that has just recorded or read `recorded`
    /// ([`Cluster::partition_map`]): a first read that finds no map (a replica's direct
    /// answer that has not applied the create yet) starts from `recorded` at revision 0, and
    /// the poll forwards the map's own entry once a read shows it. An instance started beside
    /// the one creating the map exited on that answer.
    ///
    /// # Errors
    /// As [`Cluster::map_entry`], for the first read, when it fails for another reason.
    pub async fn live_map_from(&self, recorded: PartitionMap) -> Result<LiveMap, Error> {
        let first = match self.read_map().await? {
            Some(entry) => entry,
            None => (0, recorded),
        };
        Ok(self.follow_map(first))
    }

    fn follow_map(&self, (revision, map): (u64, PartitionMap)) -> LiveMap {
        let (tx, rx) = tokio::sync::watch::channel((revision, Arc::new(map)));
        let cluster = self.clone();
        tokio::spawn(async move {
            let mut failing = false;
            loop {
                tokio::select! {
                    () = tx.closed() => return,
                    () = tokio::time::sleep(MAP_POLL) => {}
                }
                match cluster.map_entry().await {
                    // Only forward: a lagging replica's answer (direct get) is older, not news.
                    Ok((revision, map)) if revision > tx.borrow().0 => {
                        tracing::info!(revision, "partition map changed");
                        tx.send_replace((revision, Arc::new(map)));
                        failing = false;
                    }
                    Ok(_) => failing = false,
                    // Said once per failing streak, not every poll.
                    Err(e) if !failing => {
                        tracing::warn!(error = %e, "cannot read the partition map; keeping the last one");
                        failing = true;
                    }
                    Err(_) => {}
                }
            }
        });
        LiveMap(rx)
    }

    /// Tries to take `partition`'s lease for `owner`: `None` when another instance holds it.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when JetStream does not answer.
    pub async fn acquire(&self, partition: u32, owner: &str) -> Result<Option<Lease>, Error> {
        match self
            .leases
            .create(lease_key(partition), Bytes::from(owner.to_owned()))
            .await
        {
            Ok(revision) => Ok(Some(Lease {
                partition,
                owner: owner.to_owned(),
                revision,
            })),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(Error::unavailable("acquire a partition lease", e)),
        }
    }

    /// Renews a held lease (expecting the revision its holder last wrote).
    ///
    /// When the revision does not match, the entry is read: still this holder's (an earlier
    /// renewal was applied but its answer lost, e.g. during a NATS leader election), the holder
    /// carries on at its revision; gone (it expired while the bucket elected a leader, and
    /// nobody took it), the holder creates it again. Either way no other instance held the
    /// partition meanwhile, and if one had written to the partition's log the writer's next
    /// append is refused by the log's fence anyway.
    ///
    /// # Errors
    /// [`Error::Rejected`] when the lease was lost (another instance holds it): the holder
    /// must stop writing; [`Error::Unavailable`] when JetStream does not answer (the holder
    /// retries until its lease would have expired, then stops).
    pub async fn renew(&self, lease: &mut Lease) -> Result<(), Error> {
        let key = lease_key(lease.partition);
        let value = Bytes::from(lease.owner.clone());
        match self
            .leases
            .update(&key, value.clone(), lease.revision)
            .await
        {
            Ok(revision) => {
                lease.revision = revision;
                return Ok(());
            }
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {}
            Err(e) => return Err(Error::unavailable("renew a partition lease", e)),
        }
        let entry = self
            .leases
            .entry(&key)
            .await
            .map_err(|e| Error::unavailable("read a partition lease", e))?;
        match entry {
            Some(e) if e.operation == kv::Operation::Put && e.value == value => {
                lease.revision = e.revision;
                Ok(())
            }
            Some(e) if e.operation == kv::Operation::Put => Err(Error::Rejected(format!(
                "lease of partition {} lost: held by {}",
                lease.partition,
                String::from_utf8_lossy(&e.value)
            ))),
            _ => match self.leases.create(&key, value).await {
                Ok(revision) => {
                    lease.revision = revision;
                    Ok(())
                }
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                    Err(Error::Rejected(format!(
                        "lease of partition {} lost: it expired and another instance took it",
                        lease.partition
                    )))
                }
                Err(e) => Err(Error::unavailable("renew a partition lease", e)),
            },
        }
    }

    /// Gives a held lease up (only if still held at its revision), so another instance can
    /// take the partition at once.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when JetStream does not answer; a lease already lost is not an
    /// error.
    pub async fn release(&self, lease: &Lease) -> Result<(), Error> {
        match self
            .leases
            .delete_expect_revision(lease_key(lease.partition), Some(lease.revision))
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == kv::DeleteErrorKind::WrongLastRevision => Ok(()),
            Err(e) => Err(Error::unavailable("release a partition lease", e)),
        }
    }

    /// Who holds `partition`'s lease now, if anyone.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when JetStream does not answer.
    pub async fn holder(&self, partition: u32) -> Result<Option<String>, Error> {
        let entry = self
            .leases
            .entry(lease_key(partition))
            .await
            .map_err(|e| Error::unavailable("read a partition lease", e))?;
        Ok(entry
            .filter(|e| e.operation == kv::Operation::Put)
            .map(|e| String::from_utf8_lossy(&e.value).into_owned()))
    }

    /// Says `instance` is alive (its key expires one lease TTL after the last heartbeat).
    ///
    /// # Errors
    /// [`Error::Unavailable`] when JetStream does not answer.
    pub async fn heartbeat(&self, instance: &str) -> Result<(), Error> {
        crate::subject::check_org(instance)?;
        self.leases
            .put(format!("i.{instance}"), Bytes::new())
            .await
            .map(|_| ())
            .map_err(|e| Error::unavailable("instance heartbeat", e))
    }

    /// The instances that heartbeat within the last lease TTL, each once, sorted.
    ///
    /// Read as the server's count of the bucket's instance subjects (`STREAM.INFO` with a
    /// subjects filter: the server's own snapshot, paged; a name seen on two pages counts
    /// once), not by listing the bucket's keys: that listing is a push consumer which, while
    /// heartbeats go on, ends before it has seen every key (two live instances counted as one)
    /// or delivers a key twice (as five), and an instance that miscounts gives partitions up to
    /// "rebalance" or takes more than its share. Instance keys are only ever put, never deleted
    /// (a delete would leave a marker the count includes until the bucket's max age removes
    /// it, as a crashed instance is counted until its last heartbeat ages out).
    ///
    /// # Errors
    /// [`Error::Unavailable`] when JetStream does not answer.
    pub async fn live_instances(&self) -> Result<Vec<String>, Error> {
        use futures::TryStreamExt;
        let prefix = format!("{}i.", self.leases.prefix);
        let subjects: Vec<(String, usize)> = self
            .leases
            .stream
            .info_with_subjects(format!("{prefix}>"))
            .await
            .map_err(|e| Error::unavailable("list instances", e))?
            .try_collect()
            .await
            .map_err(|e| Error::unavailable("list instances", e))?;
        let mut live: Vec<String> = subjects
            .into_iter()
            .filter(|(_, messages)| *messages > 0)
            .filter_map(|(subject, _)| subject.strip_prefix(&prefix).map(str::to_owned))
            .collect();
        live.sort();
        live.dedup();
        Ok(live)
    }

    /// `partition`'s commit log, creating its stream when missing.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when JetStream does not answer; [`Error::Rejected`] when it
    /// refuses the stream.
    pub async fn partition_log(&self, partition: u32) -> Result<PartitionLog, Error> {
        let name = format!("{PARTITION_STREAM_PREFIX}{partition}");
        let subject = format!("{PARTITION_SUBJECT_PREFIX}.{partition}");
        let config = stream::Config {
            name: name.clone(),
            subjects: vec![subject.clone()],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            num_replicas: self.config.replicas,
            // Writers never resend: a refused publish is a lost fence, not a retry.
            duplicate_window: Duration::from_secs(1),
            ..stream::Config::default()
        };
        let stream = match self.js.get_stream(&name).await {
            Ok(s) => s,
            Err(_) => self
                .js
                .get_or_create_stream(config)
                .await
                .map_err(|e| Error::unavailable(&format!("create stream {name}"), e))?,
        };
        Ok(PartitionLog {
            client: self.client.clone(),
            js: self.js.clone(),
            stream,
            subject,
            partition,
        })
    }
}

impl Cluster {
    /// `partition`'s commit log if its stream exists (an auditor's way in: it creates nothing).
    ///
    /// # Errors
    /// [`Error::Unavailable`] when JetStream does not answer.
    pub async fn existing_partition_log(
        &self,
        partition: u32,
    ) -> Result<Option<PartitionLog>, Error> {
        let name = format!("{PARTITION_STREAM_PREFIX}{partition}");
        match self.js.get_stream(&name).await {
            Ok(stream) => Ok(Some(PartitionLog {
                client: self.client.clone(),
                js: self.js.clone(),
                stream,
                subject: format!("{PARTITION_SUBJECT_PREFIX}.{partition}"),
                partition,
            })),
            Err(e)
                if matches!(e.kind(), jetstream::context::GetStreamErrorKind::JetStream(api)
                if api.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND) =>
            {
                Ok(None)
            }
            Err(e) => Err(Error::unavailable(&format!("get stream {name}"), e)),
        }
    }
}

async fn bucket(js: &jetstream::Context, config: kv::Config) -> Result<kv::Store, Error> {
    let name = config.bucket.clone();
    if let Ok(store) = js.get_key_value(&name).await {
        return Ok(store);
    }
    js.create_key_value(config)
        .await
        .map_err(|e| Error::unavailable(&format!("create KV bucket {name}"), e))
}

/// The inbox subject of an org in cluster mode: `wfl.inbox.<partition>.<org_id>`.
#[must_use]
pub fn partition_inbox_subject(partition: u32, org_id: &str) -> String {
    format!("{}.{partition}.{org_id}", crate::INBOX_SUBJECT_PREFIX)
}

/// The inbox range a partition's ledger consumes: `wfl.inbox.<partition>.>`.
#[must_use]
pub fn partition_inbox_filter(partition: u32) -> String {
    format!("{}.{partition}.>", crate::INBOX_SUBJECT_PREFIX)
}

/// The subject on which a partition's ledger answers outcome questions:
/// `wfl.ctl.await.<partition>`.
#[must_use]
pub fn partition_question_subject(partition: u32) -> String {
    format!("{}.{partition}", crate::OUTCOME_QUESTION_SUBJECT)
}

/// The gRPC metadata key naming a call's partition (requests) and an answer's (responses) in
/// cluster mode.
pub const PARTITION_HEADER: &str = "wfl-partition";

fn lease_key(partition: u32) -> String {
    format!("p{partition}")
}

/// What a fenced append found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Written at this stream sequence.
    Written(u64),
    /// Refused: the stream's last sequence is not the one expected (another writer appended
    /// since). Nothing was written.
    Fenced,
}

/// One partition's replicated commit log (see the module docs).
#[derive(Clone)]
pub struct PartitionLog {
    client: Client,
    js: jetstream::Context,
    stream: stream::Stream,
    subject: String,
    partition: u32,
}

impl std::fmt::Debug for PartitionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionLog")
            .field("partition", &self.partition)
            .finish_non_exhaustive()
    }
}

impl PartitionLog {
    /// The partition.
    #[must_use]
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// The largest message (headers and payload) the server takes: every append must fit in it
    /// (the server's `max_payload`, 1 MiB by default; that default when the server has not
    /// said).
    #[must_use]
    pub fn max_message(&self) -> usize {
        match self.client.server_info().max_payload {
            0 => 1 << 20,
            n => n,
        }
    }

    /// The stream sequence of the log's last message (0 when empty).
    ///
    /// # Errors
    /// [`Error::Unavailable`] when JetStream does not answer.
    pub async fn last(&self) -> Result<u64, Error> {
        let mut stream = self.stream.clone();
        let info = stream
            .info()
            .await
            .map_err(|e| Error::unavailable("partition log info", e))?;
        Ok(info.state.last_sequence)
    }

    /// The message at stream sequence `sequence`.
    ///
    /// # Errors
    /// [`Error::Rejected`] when the log does not hold it (deleted: the log must keep
    /// everything); [`Error::Unavailable`] when JetStream does not answer.
    pub async fn get(&self, sequence: u64) -> Result<Bytes, Error> {
        match self.stream.get_raw_message(sequence).await {
            Ok(m) => Ok(m.payload),
            Err(e) if e.kind() == stream::RawMessageErrorKind::NoMessageFound => {
                Err(Error::Rejected(format!(
                    "partition {} log lacks stream sequence {sequence}",
                    self.partition
                )))
            }
            Err(e) => Err(Error::unavailable("read the partition log", e)),
        }
    }

    /// Appends `payload` if the log's last sequence is `expected_last`.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the outcome is unknown (connection lost, ack timed out: the
    /// caller must read the log to learn whether it was written); [`Error::Rejected`] when
    /// the broker refuses it for another reason (too large).
    pub async fn append(&self, payload: Bytes, expected_last: u64) -> Result<Appended, Error> {
        let mut headers = HeaderMap::new();
        headers.insert(
            async_nats::header::NATS_EXPECTED_LAST_SEQUENCE,
            expected_last.to_string(),
        );
        let publish = jetstream::context::Publish::build()
            .payload(payload)
            .headers(headers);
        let ack = self
            .js
            .send_publish(self.subject.clone(), publish)
            .await
            .map_err(|e| Error::unavailable("append to the partition log", e))?;
        match ack.await {
            Ok(a) => Ok(Appended::Written(a.sequence)),
            Err(e) if e.kind() == jetstream::context::PublishErrorKind::WrongLastSequence => {
                Ok(Appended::Fenced)
            }
            Err(e) => match e.kind() {
                jetstream::context::PublishErrorKind::Other => {
                    Err(Error::rejected("append to the partition log", e))
                }
                _ => Err(Error::unavailable("append to the partition log", e)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_placement_is_stable_and_the_table_overrides_it() {
        // Fixed values: the placement is part of a cluster's data.
        assert_eq!(PartitionMap::hash_partition("acme", 8), {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in b"acme" {
                h ^= u64::from(*b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
            (h % 8) as u32
        });
        assert_eq!(PartitionMap::hash_partition("", 1), 0);
        let map = PartitionMap::new(4, BTreeMap::from([("big".to_owned(), 3)])).unwrap();
        assert_eq!(map.partition_of("big"), 3);
        let spread: std::collections::BTreeSet<u32> = (0..100)
            .map(|i| map.partition_of(&format!("org-{i}")))
            .collect();
        assert_eq!(spread.len(), 4, "100 orgs reach every partition");
        assert_eq!(PartitionMap::decode(&map.encode()).unwrap(), map);
    }

    #[test]
    fn bad_maps_are_refused_with_the_reason() {
        assert!(PartitionMap::new(0, BTreeMap::new()).is_err());
        let e = PartitionMap::new(2, BTreeMap::from([("big".to_owned(), 2)])).unwrap_err();
        assert!(e.to_string().contains("only 2"), "{e}");
        assert!(PartitionMap::decode("count=x").is_err());
        assert!(PartitionMap::decode("big=1").is_err());
        let e = PartitionMap::new(2, BTreeMap::new())
            .and_then(|m| m.with_reserved(2))
            .unwrap_err();
        assert!(e.to_string().contains("leaves none"), "{e}");
        for org in ["count", "a=b"] {
            let e = PartitionMap::new(2, BTreeMap::from([(org.to_owned(), 1)])).unwrap_err();
            assert!(e.to_string().contains("cannot be placed"), "{e}");
        }
    }

    #[test]
    fn reserved_partitions_take_no_hashed_org_and_the_stored_form_keeps_everything() {
        let mut map = PartitionMap::new(8, BTreeMap::from([("big".to_owned(), 7)]))
            .unwrap()
            .with_reserved(2)
            .unwrap();
        assert_eq!(map.hashed(), 6);
        assert!((0..500).all(|i| map.partition_of(&format!("org-{i}")) < 6));
        assert_eq!(map.partition_of("big"), 7);
        map.moving.insert("next".to_owned(), 6);
        // Still where the hash puts it until the placement ends.
        assert!(map.is_moving("next"));
        assert_eq!(
            map.partition_of("next"),
            PartitionMap::hash_partition("next", 6)
        );
        assert_eq!(PartitionMap::decode(&map.encode()).unwrap(), map);
        // A map without reservations keeps the form of earlier builds.
        let plain = PartitionMap::new(4, BTreeMap::new()).unwrap();
        assert_eq!(plain.encode(), "count=4\n");
    }
}
