//! The client side: a channel that sends `authorization: Bearer <token>` on every call and speaks
//! TLS when configured. Used by the `wfl` commands and by the projector, which reads the ledger.

/// HTTP/2 flow-control windows this client advertises. h2's default (64 KiB) lets a server send
/// one 64 KiB slice of a streamed answer per round trip: a catch-up `Subscribe` of ~1 MiB batches
/// spent most of its time waiting for window updates.
pub const STREAM_WINDOW: u32 = 8 << 20;
/// The connection's window: a few streams' worth.
pub const CONNECTION_WINDOW: u32 = 32 << 20;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

/// A connection to a wfl gRPC server carrying the caller's credentials.
pub type Conn = InterceptedService<Channel, Bearer>;

/// Adds the bearer token (when there is one) to every request, and the partition a call is
/// for (cluster mode: metadata `wfl-partition`).
#[derive(Debug, Clone, Default)]
pub struct Bearer(Option<MetadataValue<Ascii>>, Option<MetadataValue<Ascii>>);

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            request.metadata_mut().insert("authorization", v.clone());
        }
        if let Some(v) = &self.1 {
            request.metadata_mut().insert("wfl-partition", v.clone());
        }
        Ok(request)
    }
}

/// A client's credentials: TLS (CA, optional client certificate) and a bearer token.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    pub tls: Option<ClientTlsConfig>,
    pub token: Option<String>,
    /// Cluster mode: the partition every call is for (metadata `wfl-partition`), when the
    /// server is a ledger instance of a cluster.
    pub partition: Option<u32>,
}

/// An address or credentials that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("bad address {addr}: {reason}")]
    Address { addr: String, reason: String },
    #[error("the token is not printable ASCII")]
    Token,
    #[error("cannot reach wfl at {uri}: {source}")]
    Connect {
        uri: String,
        source: tonic::transport::Error,
    },
}

impl Credentials {
    /// The endpoint for `addr` (`host:port` or a URI): `https://` when TLS is configured.
    ///
    /// # Errors
    /// A malformed address or TLS configuration.
    pub fn endpoint(&self, addr: &str) -> Result<Endpoint, Error> {
        let rest = addr
            .strip_prefix("http://")
            .or_else(|| addr.strip_prefix("https://"))
            .unwrap_or(addr);
        let uri = match self.tls {
            Some(_) => format!("https://{rest}"),
            None => format!("http://{rest}"),
        };
        let bad = |reason: String| Error::Address {
            addr: addr.to_owned(),
            reason,
        };
        let endpoint = Endpoint::from_shared(uri)
            .map_err(|e| bad(e.to_string()))?
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW);
        match &self.tls {
            Some(tls) => endpoint
                .tls_config(tls.clone())
                .map_err(|e| bad(e.to_string())),
            None => Ok(endpoint),
        }
    }

    /// The interceptor that adds this token.
    ///
    /// # Errors
    /// A token that cannot be a header value.
    pub fn bearer(&self) -> Result<Bearer, Error> {
        let partition = self.partition.map(MetadataValue::from);
        match &self.token {
            None => Ok(Bearer(None, partition)),
            Some(t) => format!("Bearer {t}")
                .parse()
                .map(|v| Bearer(Some(v), partition))
                .map_err(|_| Error::Token),
        }
    }

    /// Connects now.
    ///
    /// # Errors
    /// A bad address or token, or nothing answering there.
    pub async fn connect(&self, addr: &str) -> Result<Conn, Error> {
        let endpoint = self.endpoint(addr)?;
        let uri = endpoint.uri().to_string();
        let bearer = self.bearer()?;
        let channel = endpoint
            .connect()
            .await
            .map_err(|source| Error::Connect { uri, source })?;
        Ok(InterceptedService::new(channel, bearer))
    }

    /// Connects on first use.
    ///
    /// # Errors
    /// A bad address or token.
    pub fn connect_lazy(&self, addr: &str) -> Result<Conn, Error> {
        let channel = self.endpoint(addr)?.connect_lazy();
        Ok(InterceptedService::new(channel, self.bearer()?))
    }

    /// This token on an endpoint built elsewhere.
    ///
    /// # Errors
    /// A token that cannot be a header value.
    pub fn wrap(&self, channel: Channel) -> Result<Conn, Error> {
        Ok(InterceptedService::new(channel, self.bearer()?))
    }
}
