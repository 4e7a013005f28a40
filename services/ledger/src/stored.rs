//! `Read`, `ReadBatches` and `Subscribe` answered with the stored bytes: the `wfl.v1.Ledger`
//! service as clients see it ([`LedgerService`]), which sends each committed event as it is
//! stored instead of decoding it and encoding it again (a subscription's heartbeats are encoded
//! as usual).
//!
//! A stored record is a `wfl.v1.CommittedEvent` without its hash fields ([`crate::codec`]);
//! appending fields 4 and 5 makes it the message the generated handler would have sent, byte
//! for byte a valid encoding of the same `CommittedEvent`, and an `EventBatch` is those, each
//! framed as field 1. Each record's chain hash is recomputed before it is sent (a damaged record
//! ends the stream with `DATA_LOSS`, as a failed decode did), which costs less than the decode
//! it replaces. Every other method, and the checks and authorization of these three
//! ([`crate::api::LedgerApi::read_plan`], the subscription's own), are the generated server's
//! and the API's own.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;
use prost::bytes::{Buf, BufMut};
use prost::encoding::{skip_field, DecodeContext, WireType};
use prost::DecodeError;
use tonic::body::BoxBody;
use tonic::codegen::{http, BoxFuture, Service};
use tonic::server::NamedService;
use tonic::{Request, Response, Status};
use wfl_proto::pb;
use wfl_proto::pb::ledger_server::{Ledger, LedgerServer};

/// Largest request the service decodes (as the generated server is configured).
const MAX_DECODING: usize = 64 << 20;

/// A message already encoded: written to the wire as it is. Only ever sent, never received (a
/// decode keeps nothing).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Encoded(pub(crate) Vec<u8>);

impl prost::Message for Encoded {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.0);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        skip_field(wire_type, tag, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        self.0.len()
    }

    fn clear(&mut self) {
        self.0.clear();
    }
}

/// The stream of [`ReadStored::read_stored`] and [`ReadStored::subscribe_stored`].
pub type EncodedStream = Pin<Box<dyn Stream<Item = Result<Encoded, Status>> + Send>>;

/// `Read` (`batches` false: one `CommittedEvent` per message), `ReadBatches` (`EventBatch`
/// messages) and `Subscribe` answered from the stored bytes, with the same checks, order and
/// batching as the generated handlers.
#[tonic::async_trait]
pub trait ReadStored: Send + Sync + 'static {
    async fn read_stored(
        &self,
        request: Request<pb::ReadRequest>,
        batches: bool,
    ) -> Result<Response<EncodedStream>, Status>;

    /// `Subscribe` answered from the stored bytes, with the same checks, order, batching and
    /// heartbeats as the generated handler would give.
    async fn subscribe_stored(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<EncodedStream>, Status>;
}

/// The `wfl.v1.Ledger` gRPC service over `T`: `Read`, `ReadBatches` and `Subscribe` from the
/// stored bytes ([`ReadStored`]), everything else through the generated server.
pub struct LedgerService<T> {
    generated: LedgerServer<T>,
    inner: Arc<T>,
}

impl<T> Clone for LedgerService<T> {
    fn clone(&self) -> Self {
        Self {
            generated: self.generated.clone(),
            inner: self.inner.clone(),
        }
    }
}

impl<T: Ledger> LedgerService<T> {
    /// The service over `api`.
    pub fn new(api: T) -> Self {
        let inner = Arc::new(api);
        Self {
            generated: LedgerServer::from_arc(inner.clone())
                .max_decoding_message_size(MAX_DECODING),
            inner,
        }
    }
}

impl<T> NamedService for LedgerService<T> {
    const NAME: &'static str = wfl_proto::pb::ledger_server::SERVICE_NAME;
}

/// One of the two methods served from stored bytes, as tonic's server calls it.
struct StoredMethod<T> {
    inner: Arc<T>,
    batches: bool,
}

impl<T: ReadStored> tonic::server::ServerStreamingService<pb::ReadRequest> for StoredMethod<T> {
    type Response = Encoded;
    type ResponseStream = EncodedStream;
    type Future = BoxFuture<Response<EncodedStream>, Status>;

    fn call(&mut self, request: Request<pb::ReadRequest>) -> Self::Future {
        let (inner, batches) = (self.inner.clone(), self.batches);
        Box::pin(async move { inner.read_stored(request, batches).await })
    }
}

/// `Subscribe`, served from stored bytes, as tonic's server calls it.
struct SubscribeMethod<T> {
    inner: Arc<T>,
}

impl<T: ReadStored> tonic::server::ServerStreamingService<pb::SubscribeRequest>
    for SubscribeMethod<T>
{
    type Response = Encoded;
    type ResponseStream = EncodedStream;
    type Future = BoxFuture<Response<EncodedStream>, Status>;

    fn call(&mut self, request: Request<pb::SubscribeRequest>) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(async move { inner.subscribe_stored(request).await })
    }
}

impl<T: Ledger + ReadStored> Service<http::Request<BoxBody>> for LedgerService<T> {
    type Response = http::Response<BoxBody>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<BoxBody>) -> Self::Future {
        let batches = match request.uri().path() {
            "/wfl.v1.Ledger/Read" => false,
            "/wfl.v1.Ledger/ReadBatches" => true,
            "/wfl.v1.Ledger/Subscribe" => {
                let method = SubscribeMethod {
                    inner: self.inner.clone(),
                };
                return Box::pin(async move {
                    let codec = wfl_proto::codec::Codec::<Encoded, pb::SubscribeRequest>::default();
                    let mut grpc = tonic::server::Grpc::new(codec)
                        .apply_max_message_size_config(Some(MAX_DECODING), None);
                    Ok(grpc.server_streaming(method, request).await)
                });
            }
            _ => return self.generated.call(request),
        };
        let method = StoredMethod {
            inner: self.inner.clone(),
            batches,
        };
        Box::pin(async move {
            // The generated servers' codec (a request that does not decode is INVALID_ARGUMENT).
            let codec = wfl_proto::codec::Codec::<Encoded, pb::ReadRequest>::default();
            let mut grpc = tonic::server::Grpc::new(codec)
                .apply_max_message_size_config(Some(MAX_DECODING), None);
            Ok(grpc.server_streaming(method, request).await)
        })
    }
}
