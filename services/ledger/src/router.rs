//! Cluster mode: the gRPC `Ledger` API of a ledger instance over every partition it holds a copy
//! of (the ones it writes and its standby copies), each call routed to one partition.
//!
//! A call names its partition with request metadata `wfl-partition: <n>`, or, for `Read`,
//! `ReadBatches` and `Subscribe`, by `org_ids` that all belong to one partition. Every answer
//! carries `wfl-partition: <n>` in its response metadata: the sequences, hashes, checkpoints
//! and proofs in it are that partition's (each partition is its own chain). A call that names
//! no partition, orgs of several, or a partition out of range is `INVALID_ARGUMENT` saying so;
//! a partition this instance holds no copy of (yet) is `UNAVAILABLE`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};

use tonic::{Request, Response, Status};
use wfl_bus::cluster::LiveMap;
use wfl_proto::pb;

use crate::api::LedgerApi;
use crate::stored::{EncodedStream, ReadStored};

pub use wfl_bus::cluster::PARTITION_HEADER;

/// The partitions this instance can read now, each with its `Ledger` API.
#[derive(Default)]
pub struct Readers(RwLock<BTreeMap<u32, LedgerApi>>);

impl Readers {
    pub(crate) fn set(&self, partition: u32, api: Option<LedgerApi>) {
        if let Ok(mut m) = self.0.write() {
            match api {
                Some(api) => m.insert(partition, api),
                None => m.remove(&partition),
            };
        }
    }

    fn get(&self, partition: u32) -> Option<LedgerApi> {
        self.0.read().ok().and_then(|m| m.get(&partition).cloned())
    }

    /// The partitions readable now.
    #[must_use]
    pub fn partitions(&self) -> Vec<u32> {
        self.0
            .read()
            .map(|m| m.keys().copied().collect())
            .unwrap_or_default()
    }
}

/// The `Ledger` service of a ledger instance (see the module docs).
#[derive(Clone)]
pub struct PartitionRouter {
    readers: Arc<Readers>,
    map: LiveMap,
}

impl PartitionRouter {
    /// Routes over `readers` with the cluster's `map` (followed: an org placed since is read
    /// from its new partition).
    #[must_use]
    pub fn new(readers: Arc<Readers>, map: LiveMap) -> Self {
        Self { readers, map }
    }

    fn pick<T>(&self, request: &Request<T>, orgs: &[String]) -> Result<(u32, LedgerApi), Status> {
        let map = self.map.map();
        let partition = match request.metadata().get(PARTITION_HEADER) {
            Some(v) => map
                .named_partition(v.to_str().ok())
                .map_err(Status::invalid_argument)?,
            None => {
                let of: BTreeSet<u32> = orgs.iter().map(|o| map.partition_of(o)).collect();
                match (of.len(), of.first()) {
                    (1, Some(p)) => *p,
                    (0, _) => {
                        return Err(Status::invalid_argument(format!(
                            "cluster mode: each partition is its own ledger; name one with metadata {PARTITION_HEADER} (0..{}) or give org_ids of one partition",
                            map.count
                        )))
                    }
                    _ => {
                        return Err(Status::invalid_argument(format!(
                            "org_ids: these orgs live on partitions {of:?}, each its own ledger; ask each partition (metadata {PARTITION_HEADER})"
                        )))
                    }
                }
            }
        };
        let api = self.readers.get(partition).ok_or_else(|| {
            Status::unavailable(format!(
                "partition {partition} has no copy on this ledger instance yet; retry, or ask another instance"
            ))
        })?;
        Ok((partition, api))
    }
}

fn named<T>(partition: u32, mut response: Response<T>) -> Response<T> {
    if let Ok(v) = partition.to_string().parse() {
        response.metadata_mut().insert(PARTITION_HEADER, v);
    }
    response
}

#[tonic::async_trait]
impl ReadStored for PartitionRouter {
    async fn read_stored(
        &self,
        request: Request<pb::ReadRequest>,
        batches: bool,
    ) -> Result<Response<EncodedStream>, Status> {
        let (p, api) = self.pick(&request, &request.get_ref().org_ids)?;
        Ok(named(p, api.read_stored(request, batches).await?))
    }

    async fn subscribe_stored(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<EncodedStream>, Status> {
        let (p, api) = self.pick(&request, &request.get_ref().org_ids)?;
        Ok(named(p, api.subscribe_stored(request).await?))
    }
}

#[tonic::async_trait]
impl pb::ledger_server::Ledger for PartitionRouter {
    type ReadStream = <LedgerApi as pb::ledger_server::Ledger>::ReadStream;
    type ReadBatchesStream = <LedgerApi as pb::ledger_server::Ledger>::ReadBatchesStream;
    type SubscribeStream = <LedgerApi as pb::ledger_server::Ledger>::SubscribeStream;
    type ListCheckpointsStream = <LedgerApi as pb::ledger_server::Ledger>::ListCheckpointsStream;

    async fn read(
        &self,
        request: Request<pb::ReadRequest>,
    ) -> Result<Response<Self::ReadStream>, Status> {
        let (p, api) = self.pick(&request, &request.get_ref().org_ids)?;
        Ok(named(p, api.read(request).await?))
    }

    async fn read_batches(
        &self,
        request: Request<pb::ReadRequest>,
    ) -> Result<Response<Self::ReadBatchesStream>, Status> {
        let (p, api) = self.pick(&request, &request.get_ref().org_ids)?;
        Ok(named(p, api.read_batches(request).await?))
    }

    async fn head(
        &self,
        request: Request<pb::HeadRequest>,
    ) -> Result<Response<pb::HeadResponse>, Status> {
        let (p, api) = self.pick(&request, &[])?;
        Ok(named(p, api.head(request).await?))
    }

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let (p, api) = self.pick(&request, &request.get_ref().org_ids)?;
        Ok(named(p, api.subscribe(request).await?))
    }

    async fn get_checkpoint(
        &self,
        request: Request<pb::GetCheckpointRequest>,
    ) -> Result<Response<pb::SignedCheckpoint>, Status> {
        let (p, api) = self.pick(&request, &[])?;
        Ok(named(p, api.get_checkpoint(request).await?))
    }

    async fn list_checkpoints(
        &self,
        request: Request<pb::ListCheckpointsRequest>,
    ) -> Result<Response<Self::ListCheckpointsStream>, Status> {
        let (p, api) = self.pick(&request, &[])?;
        Ok(named(p, api.list_checkpoints(request).await?))
    }

    async fn get_inclusion_proof(
        &self,
        request: Request<pb::InclusionProofRequest>,
    ) -> Result<Response<pb::InclusionProof>, Status> {
        let (p, api) = self.pick(&request, &[])?;
        Ok(named(p, api.get_inclusion_proof(request).await?))
    }

    async fn get_consistency_proof(
        &self,
        request: Request<pb::ConsistencyProofRequest>,
    ) -> Result<Response<pb::ConsistencyProof>, Status> {
        let (p, api) = self.pick(&request, &[])?;
        Ok(named(p, api.get_consistency_proof(request).await?))
    }

    async fn get_public_key(
        &self,
        request: Request<pb::PublicKeyRequest>,
    ) -> Result<Response<pb::PublicKey>, Status> {
        let (p, api) = self.pick(&request, &[])?;
        Ok(named(p, api.get_public_key(request).await?))
    }
}
