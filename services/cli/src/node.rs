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
    /// When the inbox (and the committed-stream publisher) count as stalled.
    pub inbox_stall: std::time::Duration,
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
    metrics: Arc<Metrics>,
    store: Arc<dyn Log>,
    subscribers: Arc<wfl_ledger::subscribe::Registry>,
    views: Arc<wfl_projector::Progress>,
    audit: tokio::sync::watch::Receiver<wfl_ledger::audit::AuditState>,
    liveness: Arc<wfl_ledger::liveness::Liveness>,
    /// Every health signal; `/healthz` answers 503 while one is false.
    healthy: Vec<tokio::sync::watch::Receiver<bool>>,
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
            stall: wfl_ledger::liveness::StallConfig {
                inbox_stall: config.inbox_stall,
                publisher_stall: config.inbox_stall,
            },
            ..wfl_ledger::Config::new(&config.data_dir)
        },
        bus.clone(),
        shutdown.clone(),
    )
    .await?;
    let metrics = Arc::new(Metrics::default());
    let grpc_addr = grpc.local_addr()?;
    let projector = wfl_projector::Projector::start(
        wfl_projector::Config {
            data_dir: config.data_dir.clone(),
            packs: config.packs.clone(),
            ledger_addr: format!("http://{grpc_addr}"),
            persist_every: 1000,
            rebuild: config.rebuild_views,
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
    // A failed background verification, a stalled inbox or publisher, or a ledger that leaves
    // the gateway's outcome requests unanswered makes every service NOT_SERVING.
    let healthy = vec![
        wfl_ledger::audit::passing(ledger.audit()),
        ledger.liveness().healthy(),
        gateway.healthy(),
    ];
    wfl_ledger::liveness::drive_health(
        reporter.clone(),
        ["", "wfl.v1.Ingest", "wfl.v1.Ledger", "wfl.v1.Views"]
            .map(str::to_owned)
            .to_vec(),
        healthy.clone(),
    );
    let grpc_server = tonic::transport::Server::builder()
        .add_service(health)
        .add_service(wfl_proto::reflection()?)
        .add_service(gateway.into_service())
        .add_service(ledger.service())
        .add_service(projector.service())
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(grpc),
            shutdown.clone().cancelled_owned(),
        );

    let state = HttpState {
        metrics,
        store: ledger.store(),
        subscribers: ledger.subscribers(),
        views: projector.progress(),
        audit: ledger.audit(),
        liveness: ledger.liveness(),
        healthy,
    };
    let app = axum::Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .with_state(state);
    let http_server =
        axum::serve(http, app).with_graceful_shutdown(shutdown.clone().cancelled_owned());

    let (g, h) = tokio::join!(
        async {
            let r = grpc_server.await;
            shutdown.cancel();
            r
        },
        async {
            let r = http_server.await;
            shutdown.cancel();
            r
        }
    );
    let joined = ledger.join().await;
    let projected = projector.join().await;
    g?;
    h?;
    joined?;
    projected?;
    Ok(())
}

/// `ok` while every health signal holds, 503 with the reason otherwise.
async fn healthz(State(s): State<HttpState>) -> (axum::http::StatusCode, &'static str) {
    if s.healthy.iter().all(|h| *h.borrow()) {
        (axum::http::StatusCode::OK, "ok\n")
    } else {
        (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "not serving: see wfl_inbox_stalled, wfl_publisher_stalled, wfl_gateway_ledger_answering and wfl_ledger_verify_failed on /metrics\n",
        )
    }
}

async fn metrics_text(State(s): State<HttpState>) -> String {
    let mut out = s.metrics.render();
    out.push_str(&s.liveness.render());
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
