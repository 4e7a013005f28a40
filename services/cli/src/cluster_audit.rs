//! `wfl verify --cluster NATS_URL`: an auditor's check of a whole cluster from its replicated
//! partition logs (`WFL_PARTITION_<n>`), without trusting any ledger instance.
//!
//! For every partition of the recorded map, every message is read in order and checked: it
//! decodes, names its partition, its records continue the partition's sequence from 1 without a
//! gap, the chain hash recomputed over their stored bytes ends on the head the writer recorded,
//! every record's org maps to that partition, and no event id appears twice anywhere in the
//! cluster. The manifest printed is, per partition: messages, records, refusals, takeover
//! markers, the owners that wrote, and the head sequence and hash, so two audits can be
//! compared.

use std::collections::{BTreeSet, HashSet};
use std::fmt::Write as _;

use prost::Message;
use wfl_bus::cluster::{Cluster, PartitionMap};
use wfl_proto::internal as ipb;

/// What one partition's log holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionManifest {
    pub partition: u32,
    pub messages: u64,
    pub records: u64,
    pub refusals: u64,
    pub markers: u64,
    /// Map notices (org placement: the map revision the writer decided under from there on).
    pub notices: u64,
    pub owners: BTreeSet<String>,
    pub head_sequence: u64,
    pub head_hash: wfl_store::Hash,
}

/// The verdict over a cluster.
#[derive(Debug, Clone)]
pub struct ClusterVerdict {
    pub map: PartitionMap,
    pub partitions: Vec<PartitionManifest>,
    /// The first failure, naming the partition and the stream sequence.
    pub failure: Option<String>,
}

impl ClusterVerdict {
    /// The manifest table and the verdict line.
    #[must_use]
    pub fn describe(&self) -> String {
        let mut s = format!(
            "cluster: {} partitions ({} reserved), {} placed explicitly\n",
            self.map.count,
            self.map.reserved,
            self.map.table.len()
        );
        let _ = writeln!(
            s,
            "{:>9} {:>8} {:>10} {:>8} {:>7} {:>7} {:>10}  {:<64}  owners",
            "partition",
            "messages",
            "records",
            "refused",
            "markers",
            "notices",
            "head",
            "head hash"
        );
        for p in &self.partitions {
            let _ = writeln!(
                s,
                "{:>9} {:>8} {:>10} {:>8} {:>7} {:>7} {:>10}  {:<64}  {}",
                p.partition,
                p.messages,
                p.records,
                p.refusals,
                p.markers,
                p.notices,
                p.head_sequence,
                hex::encode(p.head_hash),
                p.owners.iter().cloned().collect::<Vec<_>>().join(",")
            );
        }
        let records: u64 = self.partitions.iter().map(|p| p.records).sum();
        match &self.failure {
            None => {
                let _ = write!(
                    s,
                    "verified: {} partitions, {records} records, every chain valid, every org on its partition, no event id twice",
                    self.partitions.len()
                );
            }
            Some(f) => {
                let _ = write!(s, "FAILED: {f}");
            }
        }
        s
    }
}

/// Verifies every partition log of the cluster at `nats_url` (comma-separated node URLs).
///
/// # Errors
/// When NATS cannot be reached or the cluster has no partition map; a log that does not verify
/// is a [`ClusterVerdict::failure`], not an error.
pub async fn verify(nats_url: &str, auth: wfl_bus::NatsAuth) -> anyhow::Result<ClusterVerdict> {
    let bus = wfl_bus::NatsBus::connect(
        nats_url,
        wfl_bus::NatsConfig {
            auth,
            provision: false,
            ..wfl_bus::NatsConfig::default()
        },
    )
    .await?;
    let cluster = Cluster::attach(bus.client()).await?;
    let map = cluster.partition_map(None).await?;
    let mut ids = HashSet::new();
    let mut verdict = ClusterVerdict {
        map: map.clone(),
        partitions: Vec::new(),
        failure: None,
    };
    for p in 0..map.count {
        let mut m = PartitionManifest {
            partition: p,
            head_hash: wfl_store::ZERO_HASH,
            ..PartitionManifest::default()
        };
        let Some(log) = cluster.existing_partition_log(p).await? else {
            verdict.partitions.push(m);
            continue;
        };
        let last = log.last().await?;
        for s in 1..=last {
            let bytes = log.get(s).await?;
            if let Err(why) = check(&map, &mut m, &mut ids, &bytes) {
                verdict.failure = Some(format!("partition {p}, stream sequence {s}: {why}"));
                verdict.partitions.push(m);
                return Ok(verdict);
            }
        }
        verdict.partitions.push(m);
    }
    Ok(verdict)
}

/// Checks one message against the partition's state so far and adds it to the manifest.
fn check(
    map: &PartitionMap,
    m: &mut PartitionManifest,
    ids: &mut HashSet<uuid::Uuid>,
    bytes: &[u8],
) -> Result<(), String> {
    let batch = ipb::PartitionBatch::decode(bytes).map_err(|e| format!("does not decode: {e}"))?;
    if batch.partition != m.partition {
        return Err(format!("names partition {}", batch.partition));
    }
    m.messages += 1;
    m.owners.insert(batch.owner.clone());
    // A takeover marker carries nothing; the last part of a batch split over several messages
    // may carry only the writer's metadata.
    if batch.notice.is_some() {
        m.notices += 1;
    } else if batch.records.is_empty() && batch.refusals.is_empty() && batch.meta.is_empty() {
        m.markers += 1;
    }
    for r in &batch.records {
        if r.sequence != m.head_sequence + 1 {
            return Err(format!(
                "record at ledger sequence {} after {}",
                r.sequence, m.head_sequence
            ));
        }
        if map.partition_of(&r.org_id) != m.partition {
            return Err(format!(
                "ledger sequence {}: org {} belongs to partition {}",
                r.sequence,
                r.org_id,
                map.partition_of(&r.org_id)
            ));
        }
        let id = uuid::Uuid::from_slice(&r.event_id)
            .map_err(|_| format!("ledger sequence {}: bad event id", r.sequence))?;
        if !ids.insert(id) {
            return Err(format!(
                "ledger sequence {}: event {id} appears twice in the cluster",
                r.sequence
            ));
        }
        m.head_hash = wfl_store::chain_hash(&m.head_hash, &r.bytes);
        m.head_sequence = r.sequence;
        m.records += 1;
    }
    m.refusals += batch.refusals.len() as u64;
    if batch.head_sequence != m.head_sequence || batch.head_hash != m.head_hash {
        return Err(format!(
            "the writer recorded head {} {}, the records recompute to {} {}",
            batch.head_sequence,
            hex::encode(&batch.head_hash),
            m.head_sequence,
            hex::encode(m.head_hash)
        ));
    }
    Ok(())
}
