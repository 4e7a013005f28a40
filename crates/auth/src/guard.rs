//! The server side: a tower wrapper around each guarded gRPC service (Ingest, Ledger, Views)
//! that authenticates every call and checks the method against the caller's role, then hands the
//! handler a [`Caller`] to narrow org filters with. Health and reflection are not wrapped.
//!
//! Missing or unknown credentials → UNAUTHENTICATED; a role that may not call the method, or an
//! org outside the principal's set → PERMISSION_DENIED. Every denial is logged (WARN) with the
//! principal, the method and the org.
//!
//! A handler that finds no [`Caller`] (its service was not wrapped) refuses the call: the guard
//! fails closed.

use std::convert::Infallible;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use tonic::body::BoxBody;
use tonic::codegen::{http, BoxFuture, Service};
use tonic::server::NamedService;
use tonic::Status;

use crate::access::{self, METHODS};
use crate::{Denied, Principal, Tokens};

/// Who may call: a tokens file, or nobody checked (`--no-auth`).
///
/// The tokens can be replaced while serving ([`Guard::replace`], driven by
/// `wfl_auth::reload`): calls already admitted keep the principal they were admitted as, every
/// later call is checked against the new set.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    /// `None`: authentication is off and every caller is an admin.
    tokens: Option<Arc<RwLock<Arc<Tokens>>>>,
}

/// TLS and authentication of one server.
#[derive(Clone, Default)]
pub struct Security {
    pub tls: Option<crate::tls::ServerTls>,
    pub guard: Guard,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field("tls", &self.tls.is_some())
            .field("guard", &self.guard)
            .finish()
    }
}

impl Security {
    /// A gRPC server builder with TLS when configured.
    ///
    /// # Errors
    /// When the TLS configuration is refused.
    pub fn server(&self) -> Result<tonic::transport::Server, tonic::transport::Error> {
        let builder = tonic::transport::Server::builder()
            .initial_stream_window_size(crate::client::STREAM_WINDOW)
            .initial_connection_window_size(crate::client::CONNECTION_WINDOW);
        match &self.tls {
            Some(tls) => builder.tls_config(tls.grpc.clone()),
            None => Ok(builder),
        }
    }
}

/// The authenticated caller of one RPC, for the handler's org checks.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Arc<Principal>,
    /// The gRPC path (`/wfl.v1.Ledger/Read`).
    pub method: &'static str,
}

/// The caller the guard admitted.
///
/// # Errors
/// UNAUTHENTICATED when the service was not wrapped by a [`Guard`].
pub fn caller<T>(request: &tonic::Request<T>) -> Result<Caller, Status> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("no credentials were checked for this call"))
}

impl Caller {
    /// The PERMISSION_DENIED answer for `denied`, logged with principal, method and org.
    #[must_use]
    pub fn deny(&self, denied: &Denied) -> Status {
        let org = match denied {
            Denied::Org { org } => org.as_str(),
            _ => "",
        };
        tracing::warn!(
            principal = %self.principal.name, role = %self.principal.role,
            method = self.method, org, reason = %denied, "permission denied"
        );
        Status::permission_denied(format!("{}: {denied}", self.principal.name))
    }

    /// A Read/Subscribe org filter narrowed to the caller: empty = the caller's orgs.
    ///
    /// # Errors
    /// PERMISSION_DENIED naming the first foreign org.
    pub fn org_filter(&self, orgs: Vec<String>) -> Result<Vec<String>, Status> {
        self.principal.org_filter(orgs).map_err(|d| self.deny(&d))
    }

    /// A single-org filter (views) narrowed to the caller: empty = the caller's one org.
    ///
    /// # Errors
    /// PERMISSION_DENIED for a foreign org, or when the caller acts for several orgs and named
    /// none.
    pub fn single_org(&self, field: &str, org: String) -> Result<String, Status> {
        self.principal
            .single_org(field, org)
            .map_err(|d| self.deny(&d))
    }

    /// Every org in `orgs` must be the caller's (a batch of events to record, events to explain).
    ///
    /// # Errors
    /// PERMISSION_DENIED naming the first foreign org.
    pub fn check_orgs<'a>(&self, orgs: impl IntoIterator<Item = &'a str>) -> Result<(), Status> {
        match self.principal.first_foreign(orgs) {
            Some(org) => Err(self.deny(&Denied::Org {
                org: org.to_owned(),
            })),
            None => Ok(()),
        }
    }
}

impl Guard {
    /// Authentication off: every caller is an admin (`--no-auth`).
    #[must_use]
    pub fn off() -> Self {
        Self { tokens: None }
    }

    /// Callers must present a token or certificate listed in `tokens`.
    #[must_use]
    pub fn with_tokens(tokens: Tokens) -> Self {
        Self {
            tokens: Some(Arc::new(RwLock::new(Arc::new(tokens)))),
        }
    }

    /// Replaces the tokens every later call is checked against (a rotated tokens file). Returns
    /// `false`, changing nothing, when authentication is off.
    pub fn replace(&self, tokens: Tokens) -> bool {
        let Some(current) = &self.tokens else {
            return false;
        };
        match current.write() {
            Ok(mut slot) => *slot = Arc::new(tokens),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(tokens),
        }
        true
    }

    /// The shared slot of the tokens in force (`None` with authentication off).
    pub(crate) fn slot(&self) -> Option<Arc<RwLock<Arc<Tokens>>>> {
        self.tokens.clone()
    }

    /// A guard over an existing slot.
    pub(crate) fn from_slot(slot: Arc<RwLock<Arc<Tokens>>>) -> Self {
        Self { tokens: Some(slot) }
    }

    /// The tokens in force now.
    fn current(&self) -> Option<Arc<Tokens>> {
        let slot = self.tokens.as_ref()?;
        Some(match slot.read() {
            Ok(t) => t.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        })
    }

    /// Is authentication on?
    #[must_use]
    pub fn is_on(&self) -> bool {
        self.tokens.is_some()
    }

    /// Wraps a gRPC service so that every call to it is authenticated and checked.
    #[must_use]
    pub fn wrap<S>(&self, inner: S) -> Guarded<S> {
        Guarded {
            inner,
            guard: self.clone(),
        }
    }

    /// The principal behind a request's credentials: its bearer token, else its client
    /// certificate's DNS names.
    ///
    /// # Errors
    /// UNAUTHENTICATED (logged) when there are none or they are not listed.
    pub fn authenticate(
        &self,
        headers: &http::HeaderMap,
        extensions: &http::Extensions,
        method: &str,
    ) -> Result<Arc<Principal>, Status> {
        let Some(tokens) = self.current() else {
            return Ok(Arc::new(Principal::unauthenticated_admin()));
        };
        let refuse = |reason: &str| {
            tracing::warn!(
                principal = "unknown",
                method,
                org = "",
                reason,
                "unauthenticated"
            );
            Status::unauthenticated(reason.to_owned())
        };
        if let Some(value) = headers.get(http::header::AUTHORIZATION) {
            let token = value
                .to_str()
                .ok()
                .and_then(|v| {
                    v.strip_prefix("Bearer ")
                        .or_else(|| v.strip_prefix("bearer "))
                })
                .map(str::trim)
                .ok_or_else(|| refuse("authorization: expected \"Bearer <token>\""))?;
            return tokens
                .by_token(token)
                .ok_or_else(|| refuse("authorization: unknown token"));
        }
        if let Some(names) = peer_dns_names(extensions) {
            return tokens
                .by_cert_names(names.iter().map(String::as_str))
                .ok_or_else(|| {
                    refuse(&format!(
                        "client certificate ({}) is not in the tokens file",
                        names.join(", ")
                    ))
                });
        }
        Err(refuse(
            "missing credentials: send authorization: Bearer <token> or a client certificate",
        ))
    }

    /// Checks an HTTP request for `path` (`/metrics`): with authentication on, a bearer token of a
    /// role that sees every org (auditor or admin), since the figures carry org labels.
    ///
    /// # Errors
    /// UNAUTHENTICATED or PERMISSION_DENIED (logged).
    pub fn check_http(&self, headers: &http::HeaderMap, path: &'static str) -> Result<(), Status> {
        let principal = self.authenticate(headers, &http::Extensions::new(), path)?;
        if principal.role.sees_every_org() {
            return Ok(());
        }
        let caller = Caller {
            principal,
            method: path,
        };
        Err(caller.deny(&Denied::Role {
            role: caller.principal.role,
            method: path.to_owned(),
        }))
    }

    /// Admits or refuses one gRPC request, leaving a [`Caller`] in its extensions.
    fn admit(&self, request: &mut http::Request<BoxBody>) -> Result<(), Status> {
        let path = request.uri().path();
        let listed = METHODS.iter().find(|(p, _)| *p == path);
        let method = listed.map_or("(unlisted method)", |(p, _)| *p);
        let principal = self.authenticate(request.headers(), request.extensions(), method)?;
        let caller = Caller { principal, method };
        if self.is_on() {
            let allowed = listed.is_some_and(|(_, a)| access::allows(caller.principal.role, *a));
            if !allowed {
                return Err(caller.deny(&Denied::Role {
                    role: caller.principal.role,
                    method: path.to_owned(),
                }));
            }
        }
        request.extensions_mut().insert(caller);
        Ok(())
    }
}

/// The DNS names (SAN) of the client certificate of a TLS connection.
fn peer_dns_names(extensions: &http::Extensions) -> Option<Vec<String>> {
    use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
    let certs = extensions
        .get::<TlsConnectInfo<TcpConnectInfo>>()?
        .peer_certs()?;
    let first = certs.first()?;
    let cert = webpki::EndEntityCert::try_from(first).ok()?;
    Some(cert.valid_dns_names().map(str::to_owned).collect())
}

/// A gRPC service behind a [`Guard`].
#[derive(Debug, Clone)]
pub struct Guarded<S> {
    inner: S,
    guard: Guard,
}

impl<S: NamedService> NamedService for Guarded<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<http::Request<BoxBody>> for Guarded<S>
where
    S: Service<http::Request<BoxBody>, Response = http::Response<BoxBody>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<BoxBody>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<BoxBody>) -> Self::Future {
        match self.guard.admit(&mut request) {
            Ok(()) => {
                // The ready service answers this call; a fresh clone waits for the next one.
                let clone = self.inner.clone();
                let mut ready = std::mem::replace(&mut self.inner, clone);
                Box::pin(async move { ready.call(request).await })
            }
            Err(status) => Box::pin(async move { Ok(status.into_http()) }),
        }
    }
}
