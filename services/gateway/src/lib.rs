//! The gateway: the gRPC `wfl.v1.Ingest` service.
//!
//! It validates each event ([`wfl_proto::convert::event_from_pb`] + domain rules), publishes the
//! valid ones to the inbox pipelined (`Nats-Msg-Id = event_id`, so JetStream drops resubmissions
//! inside its window), and for the `COMMITTED` ack level asks the ledger for each outcome over the
//! bus (`wfl.ctl.await`). It holds no state of its own: any number of gateways may run, and a
//! client that retries with the same event id always learns the original outcome.

pub mod metrics;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::join_all;
use prost::Message;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};
use tracing::warn;
use wfl_bus::{Bus, InboxMessage};
use wfl_proto::pb;

pub use metrics::Metrics;

/// Subject of the gateway → ledger outcome protocol; must match the ledger's.
pub const AWAIT_SUBJECT: &str = "wfl.ctl.await";

const INVALID_ARGUMENT: i32 = tonic::Code::InvalidArgument as i32;
const UNAVAILABLE: i32 = tonic::Code::Unavailable as i32;

/// Longest wait for one outcome reply before asking the ledger again.
const ASK_AGAIN: Duration = Duration::from_secs(5);

/// Gateway settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// How long a `COMMITTED` call waits for the ledger before answering `UNAVAILABLE`.
    pub commit_timeout: Duration,
    /// Event ids per outcome request (keeps each bus message well under NATS's payload limit).
    pub await_chunk: usize,
    /// TLS and authentication of the gRPC port [`run`] serves (default: plain, no auth).
    pub security: wfl_auth::Security,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            commit_timeout: Duration::from_secs(30),
            await_chunk: 1000,
            security: wfl_auth::Security::default(),
        }
    }
}

/// The `Ingest` gRPC service.
pub struct Gateway {
    bus: Arc<dyn Bus>,
    config: Config,
    metrics: Arc<Metrics>,
}

type ItemOutcome = Result<pb::RecordResponse, pb::ItemError>;

impl Gateway {
    /// A gateway publishing to `bus`.
    #[must_use]
    pub fn new(bus: Arc<dyn Bus>, config: Config, metrics: Arc<Metrics>) -> Self {
        Self {
            bus,
            config,
            metrics,
        }
    }

    /// This gateway as a tonic service, accepting batch requests up to 64 MiB.
    #[must_use]
    pub fn into_service(self) -> pb::ingest_server::IngestServer<Self> {
        pb::ingest_server::IngestServer::new(self).max_decoding_message_size(64 << 20)
    }

    /// Records events and returns one outcome per event, in order.
    pub async fn record_many(&self, events: Vec<pb::Event>, ack: pb::AckLevel) -> Vec<ItemOutcome> {
        let mut results: Vec<Option<ItemOutcome>> = Vec::with_capacity(events.len());
        let mut msgs = Vec::new();
        let mut published_at = Vec::new(); // index in `results` of each message
        for wire in events {
            match wfl_proto::convert::event_from_pb(wire) {
                Ok(event) => {
                    published_at.push(results.len());
                    results.push(None);
                    msgs.push(InboxMessage {
                        event_id: event.event_id.0,
                        org_id: event.org_id.0.clone(),
                        payload: Bytes::from(
                            wfl_proto::convert::event_to_pb(&event).encode_to_vec(),
                        ),
                    });
                }
                Err(v) => {
                    self.metrics.invalid.inc();
                    results.push(Some(Err(pb::ItemError {
                        code: INVALID_ARGUMENT,
                        message: format!("invalid event: {v}"),
                        field_violations: v
                            .0
                            .into_iter()
                            .map(|f| pb::FieldViolation {
                                field: f.field,
                                description: f.description,
                            })
                            .collect(),
                    })));
                }
            }
        }
        let ids: Vec<String> = msgs.iter().map(|m| m.event_id.to_string()).collect();
        let acks = self.bus.publish_inbox(msgs).await;
        let wait_for_commit = ack != pb::AckLevel::Accepted || !self.bus.durable_inbox();
        let mut awaiting: Vec<(usize, String, bool)> = Vec::new();
        for ((idx, id), published) in published_at.into_iter().zip(ids).zip(acks) {
            match published {
                Err(e) => {
                    results[idx] = Some(Err(item_error(
                        UNAVAILABLE,
                        format!("inbox unavailable, retry with the same event_id: {e}"),
                    )));
                }
                Ok(a) if !wait_for_commit => {
                    self.metrics.accepted.inc();
                    results[idx] = Some(Ok(pb::RecordResponse {
                        event_id: id,
                        sequence: 0,
                        hash: Vec::new(),
                        duplicate: a.duplicate,
                        ack: pb::AckLevel::Accepted as i32,
                    }));
                }
                Ok(a) => awaiting.push((idx, id, a.duplicate)),
            }
        }
        if !awaiting.is_empty() {
            let ids: Vec<String> = awaiting.iter().map(|(_, id, _)| id.clone()).collect();
            let outcomes = self.await_outcomes(ids).await;
            for (idx, id, duplicate) in awaiting {
                // `get`, not `remove`: the same event id may appear twice in one batch.
                let outcome = match outcomes.get(&id).cloned() {
                    Some(pb::outcome::Result::Committed(mut r)) => {
                        r.duplicate |= duplicate;
                        Ok(r)
                    }
                    Some(pb::outcome::Result::Rejected(e)) => Err(e),
                    None => Err(item_error(
                        UNAVAILABLE,
                        format!(
                            "accepted into the inbox but not committed within {:?}; retry with the same event_id to learn the outcome",
                            self.config.commit_timeout
                        ),
                    )),
                };
                results[idx] = Some(outcome);
            }
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(item_error(
                        tonic::Code::Internal as i32,
                        "no outcome".into(),
                    ))
                })
            })
            .inspect(|r| self.metrics.count(r))
            .collect()
    }

    /// Asks the ledger for the outcome of each id until all are known or the commit timeout passes.
    async fn await_outcomes(&self, ids: Vec<String>) -> HashMap<String, pb::outcome::Result> {
        let deadline = Instant::now() + self.config.commit_timeout;
        let chunks: Vec<Vec<String>> = ids
            .chunks(self.config.await_chunk.max(1))
            .map(<[String]>::to_vec)
            .collect();
        let per_chunk = chunks
            .into_iter()
            .map(|chunk| self.await_chunk(chunk, deadline));
        join_all(per_chunk).await.into_iter().flatten().collect()
    }

    async fn await_chunk(
        &self,
        mut ids: Vec<String>,
        deadline: Instant,
    ) -> HashMap<String, pb::outcome::Result> {
        let mut found = HashMap::with_capacity(ids.len());
        let mut backoff = Duration::from_millis(20);
        while !ids.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let request = Bytes::from(
                pb::AwaitRequest {
                    event_ids: ids.clone(),
                }
                .encode_to_vec(),
            );
            // Ask again every few seconds: if the ledger restarted after taking a request, its
            // answer will never come, but a new request is answered from its store at once.
            match self
                .bus
                .request(AWAIT_SUBJECT, request, left.min(ASK_AGAIN))
                .await
            {
                Ok(bytes) => match pb::AwaitReply::decode(bytes.as_ref()) {
                    Ok(reply) => {
                        for o in reply.outcomes {
                            if let Some(r) = o.result {
                                found.insert(o.event_id, r);
                            }
                        }
                        ids.retain(|id| !found.contains_key(id));
                    }
                    Err(e) => {
                        warn!(error = %e, "malformed outcome reply");
                        tokio::time::sleep(backoff.min(left)).await;
                    }
                },
                Err(e) => {
                    // The ledger may be restarting: the events are safe in the inbox, ask again.
                    warn!(error = %e, "outcome request failed; asking again");
                    tokio::time::sleep(backoff.min(left)).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
        found
    }
}

fn item_error(code: i32, message: String) -> pb::ItemError {
    pb::ItemError {
        code,
        message,
        field_violations: Vec::new(),
    }
}

/// The one place where an item outcome becomes a gRPC status (for the unary `Record`).
fn status(e: pb::ItemError) -> Status {
    let code = tonic::Code::from_i32(e.code);
    if e.field_violations.is_empty() {
        return Status::new(code, e.message);
    }
    let mut details = ErrorDetails::new();
    for v in e.field_violations {
        details.add_bad_request_violation(v.field, v.description);
    }
    Status::with_error_details(code, e.message, details)
}

fn ack_level(raw: i32) -> Result<pb::AckLevel, Box<Status>> {
    match pb::AckLevel::try_from(raw) {
        Ok(pb::AckLevel::Unspecified | pb::AckLevel::Committed) => Ok(pb::AckLevel::Committed),
        Ok(pb::AckLevel::Accepted) => Ok(pb::AckLevel::Accepted),
        Err(_) => Err(Box::new(Status::with_error_details(
            tonic::Code::InvalidArgument,
            format!("ack: unknown ack level {raw}"),
            ErrorDetails::with_bad_request_violation(
                "ack",
                "must be ACK_LEVEL_COMMITTED or ACK_LEVEL_ACCEPTED",
            ),
        ))),
    }
}

#[tonic::async_trait]
impl pb::ingest_server::Ingest for Gateway {
    async fn record(
        &self,
        request: Request<pb::RecordRequest>,
    ) -> Result<Response<pb::RecordResponse>, Status> {
        let caller = wfl_auth::caller(&request)?;
        let req = request.into_inner();
        caller.check_orgs(req.event.iter().map(|e| e.org_id.as_str()))?;
        let ack = ack_level(req.ack).map_err(|s| *s)?;
        let Some(event) = req.event else {
            return Err(Status::with_error_details(
                tonic::Code::InvalidArgument,
                "event: required",
                ErrorDetails::with_bad_request_violation("event", "required"),
            ));
        };
        let mut out = self.record_many(vec![event], ack).await;
        match out.pop() {
            Some(Ok(r)) => Ok(Response::new(r)),
            Some(Err(e)) => Err(status(e)),
            None => Err(Status::internal("no outcome")),
        }
    }

    async fn record_batch(
        &self,
        request: Request<pb::RecordBatchRequest>,
    ) -> Result<Response<pb::RecordBatchResponse>, Status> {
        let caller = wfl_auth::caller(&request)?;
        let req = request.into_inner();
        caller.check_orgs(req.events.iter().map(|e| e.org_id.as_str()))?;
        let ack = ack_level(req.ack).map_err(|s| *s)?;
        if req.events.len() > wfl_domain::MAX_BATCH {
            return Err(Status::with_error_details(
                tonic::Code::InvalidArgument,
                format!(
                    "events: {} events in one batch; at most {}",
                    req.events.len(),
                    wfl_domain::MAX_BATCH
                ),
                ErrorDetails::with_bad_request_violation(
                    "events",
                    format!("at most {} events per batch", wfl_domain::MAX_BATCH),
                ),
            ));
        }
        let ids: Vec<String> = req.events.iter().map(|e| e.event_id.clone()).collect();
        let outcomes = self.record_many(req.events, ack).await;
        let mut resp = pb::RecordBatchResponse::default();
        for (index, (event_id, outcome)) in ids.into_iter().zip(outcomes).enumerate() {
            let outcome = match outcome {
                Ok(r) => {
                    if r.duplicate {
                        resp.duplicates += 1;
                    }
                    if r.ack == pb::AckLevel::Accepted as i32 {
                        resp.accepted += 1;
                    } else {
                        resp.committed += 1;
                    }
                    pb::item_result::Outcome::Ok(r)
                }
                Err(e) => {
                    resp.rejected += 1;
                    pb::item_result::Outcome::Error(e)
                }
            };
            resp.results.push(pb::ItemResult {
                index: u32::try_from(index).unwrap_or(u32::MAX),
                event_id,
                outcome: Some(outcome),
            });
        }
        Ok(Response::new(resp))
    }
}

/// Runs the gateway alone: `Ingest`, health and reflection on `listener`, until `shutdown`.
///
/// # Errors
/// When the server fails.
pub async fn run(
    config: Config,
    bus: Arc<dyn Bus>,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    let (mut reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_serving::<pb::ingest_server::IngestServer<Gateway>>()
        .await;
    let security = config.security.clone();
    let gateway = Gateway::new(bus, config, Arc::new(Metrics::default()));
    let mut builder = security.server()?;
    let router = builder
        .add_service(health)
        .add_service(security.guard.wrap(gateway.into_service()));
    let router = match wfl_proto::reflection() {
        Ok(r) => router.add_service(r),
        Err(e) => {
            warn!(error = %e, "gRPC reflection unavailable");
            router
        }
    };
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    router
        .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
        .await
}
