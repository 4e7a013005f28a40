//! Single-node mode (`wfl up`): gateway and ledger in one process, one gRPC port (Ingest, Ledger,
//! health, reflection) and one HTTP port (`/healthz`, `/metrics`). Without a NATS URL the
//! in-process bus is used; the same code paths run either way.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use wfl_bus::{Bus, MemoryBus, NatsBus, NatsConfig};
use wfl_gateway::{Gateway, Metrics};
use wfl_store::Log;

/// Settings of a single-node wfl.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub data_dir: PathBuf,
    pub nats_url: Option<String>,
    /// The rule packs (loaded and validated before anything starts).
    pub packs: Vec<wfl_projector::RulePack>,
    /// Discard the stored views and fold the ledger again from sequence 1.
    pub rebuild_views: bool,
    /// Cut a signed checkpoint every this many events ...
    pub checkpoint_every_events: u64,
    /// ... or this often while events are not yet covered by one.
    pub checkpoint_interval: std::time::Duration,
    /// TLS and authentication of both ports.
    pub security: wfl_auth::Security,
}

/// Connects the bus `wfl up` runs on.
///
/// # Errors
/// When NATS is given and cannot be reached.
pub async fn connect_bus(nats_url: Option<&str>) -> anyhow::Result<Arc<dyn Bus>> {
    Ok(match nats_url {
        Some(url) => Arc::new(NatsBus::connect(url, NatsConfig::default()).await?),
        None => Arc::new(MemoryBus::new()),
    })
}

#[derive(Clone)]
struct HttpState {
    guard: wfl_auth::Guard,
    metrics: Arc<Metrics>,
    store: Arc<dyn Log>,
    subscribers: Arc<wfl_ledger::subscribe::Registry>,
    views: Arc<wfl_projector::Progress>,
    audit: tokio::sync::watch::Receiver<wfl_ledger::audit::AuditState>,
}

/// Runs a single node on the given listeners until `shutdown`.
///
/// # Errors
/// When the ledger cannot start or a server fails.
pub async fn run(
    config: NodeConfig,
    grpc: TcpListener,
    http: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let bus = connect_bus(config.nats_url.as_deref()).await?;
    let ledger = wfl_ledger::Ledger::start(
        wfl_ledger::Config {
            checkpoint_every_events: config.checkpoint_every_events,
            checkpoint_interval: config.checkpoint_interval,
            ..wfl_ledger::Config::new(&config.data_dir)
        },
        bus.clone(),
        shutdown.clone(),
    )
    .await?;
    let metrics = Arc::new(Metrics::default());
    let security = config.security.clone();
    let (ledger_addr, ledger_credentials, internal) = projector_link(&security, &grpc).await?;
    let projector = wfl_projector::Projector::start(
        wfl_projector::Config {
            data_dir: config.data_dir.clone(),
            packs: config.packs.clone(),
            ledger_addr,
            persist_every: 1000,
            rebuild: config.rebuild_views,
            ledger_credentials,
        },
        bus.clone(),
        shutdown.clone(),
    )
    .await?;
    let gateway = Gateway::new(bus, wfl_gateway::Config::default(), metrics.clone());

    let (mut reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_serving::<wfl_proto::pb::ingest_server::IngestServer<Gateway>>()
        .await;
    reporter
        .set_serving::<wfl_proto::pb::ledger_server::LedgerServer<wfl_ledger::api::LedgerApi>>()
        .await;
    reporter
        .set_serving::<wfl_proto::pb::views_server::ViewsServer<wfl_projector::ViewsApi>>()
        .await;
    // A failed background verification of the ledger makes every service NOT_SERVING.
    wfl_ledger::audit::not_serving_on_failure(
        ledger.audit(),
        reporter.clone(),
        ["", "wfl.v1.Ingest", "wfl.v1.Ledger", "wfl.v1.Views"]
            .map(str::to_owned)
            .to_vec(),
    );
    let guard = &security.guard;
    let grpc_server = security
        .server()?
        .add_service(health)
        .add_service(wfl_proto::reflection()?)
        .add_service(guard.wrap(gateway.into_service()))
        .add_service(guard.wrap(ledger.service()))
        .add_service(guard.wrap(projector.service()))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(grpc),
            shutdown.clone().cancelled_owned(),
        );

    // The projector's own link to the ledger, when the public port needs TLS or a token.
    let internal_server = async {
        match internal {
            Some((listener, internal_guard)) => {
                tonic::transport::Server::builder()
                    .add_service(internal_guard.wrap(ledger.service()))
                    .serve_with_incoming_shutdown(
                        tokio_stream::wrappers::TcpListenerStream::new(listener),
                        shutdown.clone().cancelled_owned(),
                    )
                    .await
            }
            None => {
                // Nothing to serve: finish with the node, not before it.
                shutdown.cancelled().await;
                Ok(())
            }
        }
    };
    let state = HttpState {
        guard: security.guard.clone(),
        metrics,
        store: ledger.store(),
        subscribers: ledger.subscribers(),
        views: projector.progress(),
        audit: ledger.audit(),
    };
    let app = axum::Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics_text))
        .with_state(state);
    let http_server = wfl_auth::tls::serve_http(
        http,
        app,
        security.tls.as_ref().map(|t| t.http.clone()),
        shutdown.clone(),
    );

    let (g, h, i) = tokio::join!(
        async {
            let r = grpc_server.await;
            shutdown.cancel();
            r
        },
        async {
            let r = http_server.await;
            shutdown.cancel();
            r
        },
        async {
            let r = internal_server.await;
            shutdown.cancel();
            r
        }
    );
    let joined = ledger.join().await;
    let projected = projector.join().await;
    g?;
    h?;
    i?;
    joined?;
    projected?;
    Ok(())
}

/// Where the projector of this node reads the ledger. With neither TLS nor authentication, the
/// public port itself; otherwise a plain loopback port serving only `Ledger` to a token made up at
/// start and never written anywhere (so the projector needs no certificate or tokens file).
async fn projector_link(
    security: &wfl_auth::Security,
    grpc: &TcpListener,
) -> anyhow::Result<(
    String,
    wfl_auth::Credentials,
    Option<(TcpListener, wfl_auth::Guard)>,
)> {
    if security.tls.is_none() && !security.guard.is_on() {
        return Ok((
            format!("http://{}", grpc.local_addr()?),
            wfl_auth::Credentials::default(),
            None,
        ));
    }
    let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on loopback for the projector: {e}"))?;
    let token = wfl_auth::tokens::generate()
        .map_err(|e| anyhow::anyhow!("no randomness for the internal token: {e}"))?;
    let mut tokens = wfl_auth::Tokens::default();
    tokens.insert_token(
        &token,
        wfl_auth::Principal {
            name: "projector (internal)".to_owned(),
            role: wfl_auth::Role::Auditor,
            orgs: std::collections::BTreeSet::new(),
        },
    );
    Ok((
        format!("http://{}", listener.local_addr()?),
        wfl_auth::Credentials {
            tls: None,
            token: Some(token),
        },
        Some((listener, wfl_auth::Guard::with_tokens(tokens))),
    ))
}

async fn metrics_text(
    State(s): State<HttpState>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if let Err(status) = s.guard.check_http(&headers, "/metrics") {
        let code = if status.code() == tonic::Code::Unauthenticated {
            axum::http::StatusCode::UNAUTHORIZED
        } else {
            axum::http::StatusCode::FORBIDDEN
        };
        return (code, format!("{}\n", status.message())).into_response();
    }
    metrics_body(s).await.into_response()
}

async fn metrics_body(s: HttpState) -> String {
    let mut out = s.metrics.render();
    out.push_str(&s.views.render());
    out.push_str(&s.audit.borrow().render());
    if let Ok(head) = tokio::task::spawn_blocking(move || s.store.head())
        .await
        .unwrap_or_else(|e| Err(wfl_store::Error::Io(e.to_string())))
    {
        out.push_str("# HELP wfl_ledger_head_sequence Last committed ledger sequence.\n# TYPE wfl_ledger_head_sequence gauge\n");
        out.push_str(&format!("wfl_ledger_head_sequence {}\n", head.sequence));
        out.push_str(&s.subscribers.render(head.sequence));
    }
    out
}

/// Binds both listeners of `wfl up`.
///
/// # Errors
/// When an address is taken.
pub async fn bind(
    grpc: SocketAddr,
    http: SocketAddr,
) -> anyhow::Result<(TcpListener, TcpListener)> {
    let g = TcpListener::bind(grpc)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {grpc} (gRPC): {e}"))?;
    let h = TcpListener::bind(http)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {http} (HTTP): {e}"))?;
    Ok((g, h))
}
