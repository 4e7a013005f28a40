//! TLS from PEM files: the server side of gRPC (tonic) and HTTP (rustls under axum), the client
//! side of gRPC, and serving an axum router over TLS.
//!
//! Owns: reading certificate and key files once at start, with errors that name the file.
//! Must not: choose what is served.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::rustls;
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

/// A certificate or key file that cannot be used, named.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Pem { path: PathBuf, reason: String },
    #[error("TLS configuration: {0}")]
    Config(String),
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })
}

fn certs(
    path: &Path,
    pem: &[u8],
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, Error> {
    let certs = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Pem {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(Error::Pem {
            path: path.to_owned(),
            reason: "no PEM certificate in it".into(),
        });
    }
    Ok(certs)
}

fn key(path: &Path, pem: &[u8]) -> Result<rustls::pki_types::PrivateKeyDer<'static>, Error> {
    match rustls_pemfile::private_key(&mut &pem[..]) {
        Ok(Some(k)) => Ok(k),
        Ok(None) => Err(Error::Pem {
            path: path.to_owned(),
            reason: "no PEM private key (PKCS#8, PKCS#1 or SEC1) in it".into(),
        }),
        Err(e) => Err(Error::Pem {
            path: path.to_owned(),
            reason: e.to_string(),
        }),
    }
}

/// The TLS of one server: the same certificate on its gRPC and HTTP ports.
#[derive(Clone)]
pub struct ServerTls {
    pub grpc: ServerTlsConfig,
    pub http: Arc<rustls::ServerConfig>,
}

/// Where a server's certificate, key and (for mTLS) client CA are.
#[derive(Debug, Clone, Default)]
pub struct ServerFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Verify client certificates against this CA (mTLS). A client without a certificate may
    /// still connect and authenticate with a bearer token unless `require_client_cert`.
    pub client_ca: Option<PathBuf>,
    pub require_client_cert: bool,
}

impl ServerTls {
    /// Reads and checks the files.
    ///
    /// # Errors
    /// A file that cannot be read or holds no certificate or key, naming it.
    pub fn load(files: &ServerFiles) -> Result<Self, Error> {
        let cert_pem = read(&files.cert)?;
        let key_pem = read(&files.key)?;
        let chain = certs(&files.cert, &cert_pem)?;
        let private = key(&files.key, &key_pem)?;
        let mut grpc = ServerTlsConfig::new().identity(Identity::from_pem(&cert_pem, &key_pem));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config(e.to_string()))?;
        let builder = match &files.client_ca {
            Some(path) => {
                let pem = read(path)?;
                let mut roots = rustls::RootCertStore::empty();
                for c in certs(path, &pem)? {
                    roots.add(c).map_err(|e| Error::Pem {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
                }
                grpc = grpc
                    .client_ca_root(Certificate::from_pem(&pem))
                    .client_auth_optional(!files.require_client_cert);
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                );
                let verifier = if files.require_client_cert {
                    verifier
                } else {
                    verifier.allow_unauthenticated()
                };
                builder.with_client_cert_verifier(
                    verifier.build().map_err(|e| Error::Config(e.to_string()))?,
                )
            }
            None => builder.with_no_client_auth(),
        };
        let mut http = builder
            .with_single_cert(chain, private)
            .map_err(|e| Error::Pem {
                path: files.key.clone(),
                reason: format!("does not match {}: {e}", files.cert.display()),
            })?;
        http.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            grpc,
            http: Arc::new(http),
        })
    }
}

/// The client side of TLS: the CA to trust and, for mTLS, a client certificate and key.
///
/// # Errors
/// A file that cannot be read or holds no certificate or key, naming it.
pub fn client(
    ca: Option<&Path>,
    identity: Option<(&Path, &Path)>,
    domain: Option<&str>,
) -> Result<ClientTlsConfig, Error> {
    let mut tls = ClientTlsConfig::new();
    if let Some(path) = ca {
        let pem = read(path)?;
        certs(path, &pem)?;
        tls = tls.ca_certificate(Certificate::from_pem(pem));
    }
    if let Some((cert, key_path)) = identity {
        let cert_pem = read(cert)?;
        let key_pem = read(key_path)?;
        certs(cert, &cert_pem)?;
        key(key_path, &key_pem)?;
        tls = tls.identity(Identity::from_pem(cert_pem, key_pem));
    }
    if let Some(d) = domain {
        tls = tls.domain_name(d);
    }
    Ok(tls)
}

/// Serves `app` on `listener` until `shutdown`: plain HTTP without `tls`, HTTPS (HTTP/1.1 or h2)
/// with it. A failed handshake ends that connection only.
///
/// # Errors
/// When accepting fails.
pub async fn serve_http(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    let Some(config) = tls else {
        return axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            accepted = listener.accept() => accepted?,
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let stream = match acceptor.accept(stream).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "HTTPS handshake failed");
                    return;
                }
            };
            let service = hyper_util::service::TowerToHyperService::new(app);
            let builder =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            let connection =
                builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::select! {
                () = shutdown.cancelled() => {}
                served = connection => {
                    if let Err(e) = served {
                        tracing::debug!(%peer, error = %e, "HTTPS connection ended");
                    }
                }
            }
        });
    }
}
