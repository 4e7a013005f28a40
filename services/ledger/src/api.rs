//! The gRPC `wfl.v1.Ledger` service: Read and Head over the store.
//!
//! Reads run on the blocking pool in chunks and stream through a small bounded channel, so a slow
//! client holds at most a few chunks in memory. Store errors become `tonic::Status` in [`status`]
//! only.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::error;
use wfl_domain::EventType;
use wfl_projections::classify::Bucket;
use wfl_proto::pb;
use wfl_store::{Filter, Log};

use crate::{codec, subscribe, Error};

const CHUNK: usize = 1000;

/// The `Ledger` gRPC service.
pub struct LedgerApi {
    store: Arc<dyn Log>,
    head: watch::Receiver<u64>,
    subscribers: Arc<subscribe::Registry>,
    limits: subscribe::Limits,
}

impl LedgerApi {
    pub(crate) fn new(
        store: Arc<dyn Log>,
        head: watch::Receiver<u64>,
        subscribers: Arc<subscribe::Registry>,
        limits: subscribe::Limits,
    ) -> Self {
        Self {
            store,
            head,
            subscribers,
            limits,
        }
    }
}

/// The store filter for a request's org and type lists.
fn filter(org_ids: Vec<String>, event_types: &[String]) -> Result<Filter, Status> {
    let mut types = Vec::with_capacity(event_types.len());
    for (i, t) in event_types.iter().enumerate() {
        let Some(parsed) = EventType::parse(t) else {
            return Err(invalid(
                &format!("event_types[{i}]"),
                &format!("unknown event type {t:?}"),
            ));
        };
        types.push(parsed.as_str().to_owned());
    }
    Ok(Filter {
        org_ids,
        event_types: types,
    })
}

type SubscribeStream = Pin<Box<dyn Stream<Item = Result<pb::SubscribeResponse, Status>> + Send>>;
type ReadStream = Pin<Box<dyn Stream<Item = Result<pb::CommittedEvent, Status>> + Send>>;

#[tonic::async_trait]
impl pb::ledger_server::Ledger for LedgerApi {
    type ReadStream = ReadStream;
    type SubscribeStream = SubscribeStream;

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let peer = request
            .remote_addr()
            .map_or_else(|| "unknown".to_owned(), |a| a.to_string());
        let req = request.into_inner();
        let heartbeat = match req.heartbeat_ms {
            0 => None,
            ms if ms < 100 => {
                return Err(invalid(
                    "heartbeat_ms",
                    "at least 100 ms (or 0 for the default)",
                ))
            }
            ms => Some(std::time::Duration::from_millis(u64::from(ms))),
        };
        let mut buckets = Vec::with_capacity(req.buckets.len());
        for (i, b) in req.buckets.iter().enumerate() {
            let Some(bucket) = Bucket::ALL
                .iter()
                .copied()
                .find(|k| k.as_str() == b.as_str())
            else {
                let names: Vec<&str> = Bucket::ALL.iter().map(|k| k.as_str()).collect();
                return Err(invalid(
                    &format!("buckets[{i}]"),
                    &format!("one of {}", names.join(", ")),
                ));
            };
            buckets.push(bucket);
        }
        let subscription = subscribe::Subscription {
            from: req.from_sequence.max(1),
            buckets,
            filter: filter(req.org_ids, &req.event_types)?,
            heartbeat,
            peer,
        };
        let rx = subscribe::start(
            self.store.clone(),
            self.head.clone(),
            &self.subscribers,
            self.limits,
            subscription,
        );
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn read(
        &self,
        request: Request<pb::ReadRequest>,
    ) -> Result<Response<Self::ReadStream>, Status> {
        let req = request.into_inner();
        let mut event_types = Vec::with_capacity(req.event_types.len());
        for (i, t) in req.event_types.iter().enumerate() {
            let Some(parsed) = EventType::parse(t) else {
                return Err(invalid(
                    &format!("event_types[{i}]"),
                    &format!("unknown event type {t:?}"),
                ));
            };
            event_types.push(parsed.as_str().to_owned());
        }
        let filter = Filter {
            org_ids: req.org_ids,
            event_types,
        };
        let head = self.store.head().map_err(|e| status(e.into()))?.sequence;
        let to = if req.to_sequence == 0 {
            head
        } else {
            req.to_sequence.min(head)
        };
        let mut remaining = if req.limit == 0 { u64::MAX } else { req.limit };
        let mut from = req.from_sequence.max(1);
        let store = self.store.clone();
        let (tx, rx) = mpsc::channel(2 * CHUNK);
        tokio::spawn(async move {
            while from <= to && remaining > 0 {
                let s = store.clone();
                let f = filter.clone();
                let take = usize::try_from(remaining.min(CHUNK as u64)).unwrap_or(CHUNK);
                let chunk =
                    tokio::task::spawn_blocking(move || s.read(from, Some(to), &f, take)).await;
                let records = match chunk {
                    Ok(Ok(r)) => r,
                    Ok(Err(e)) => {
                        let _ = tx.send(Err(status(e.into()))).await;
                        return;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(status(Error::join(e)))).await;
                        return;
                    }
                };
                let Some(last) = records.last().map(|r| r.sequence) else {
                    return;
                };
                for r in &records {
                    let item = codec::decode(r).map_err(status);
                    if tx.send(item).await.is_err() {
                        return; // the client went away
                    }
                }
                remaining -= records.len() as u64;
                from = last + 1;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn head(
        &self,
        _request: Request<pb::HeadRequest>,
    ) -> Result<Response<pb::HeadResponse>, Status> {
        let head = self.store.head().map_err(|e| status(e.into()))?;
        Ok(Response::new(pb::HeadResponse {
            sequence: head.sequence,
            hash: head.hash.to_vec(),
        }))
    }
}

fn invalid(field: &str, description: &str) -> Status {
    use tonic_types::{ErrorDetails, StatusExt};
    let details = ErrorDetails::with_bad_request_violation(field, description);
    Status::with_error_details(
        tonic::Code::InvalidArgument,
        format!("{field}: {description}"),
        details,
    )
}

/// The one place where ledger errors become gRPC statuses. Internal details are logged, not sent.
pub(crate) fn status(e: Error) -> Status {
    match e {
        Error::Bus(e) => Status::unavailable(e.to_string()),
        Error::Store(wfl_store::Error::Io(e)) => {
            error!(error = %e, "ledger storage unavailable");
            Status::unavailable("ledger storage unavailable; retry")
        }
        Error::Store(wfl_store::Error::Corrupt { sequence, .. })
        | Error::Undecodable { sequence, .. } => {
            error!(error = %e, "ledger data failed verification");
            Status::data_loss(format!("ledger record {sequence} failed verification"))
        }
        other => {
            error!(error = %other, "ledger request failed");
            Status::internal("internal error; see the ledger log")
        }
    }
}
