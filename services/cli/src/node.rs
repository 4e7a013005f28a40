//! Process composition: `wfl up` (gateway, ledger and projector in one process, one gRPC port and
//! one HTTP port) and the split binaries `wfl-gateway`, `wfl-ledger`, `wfl-projector` (each its
//! own gRPC and HTTP port). Every process serves `/healthz` (readiness) and `/metrics`, and mirrors
//! its readiness into gRPC health. Without a NATS URL `wfl up` uses the in-process bus; the same
//! code paths run either way.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use wfl_bus::{Bus, MemoryBus, NatsBus, NatsConfig};
use wfl_gateway::{Gateway, Metrics};

use crate::http::{self, Readiness};

/// Settings of a single-node wfl.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub data_dir: PathBuf,
    pub nats_url: Option<String>,
    /// How to authenticate to NATS (ignored without `nats_url`).
    pub nats_auth: wfl_bus::NatsAuth,
    /// The rule packs (loaded and validated before anything starts).
    pub packs: Vec<wfl_projector::RulePack>,
    /// Discard the stored views and fold the ledger again from sequence 1.
    pub rebuild_views: bool,
    /// Snapshot the view tallies every this many sequences (as-of answers).
    pub view_snapshot_events: u64,
    /// Cut a signed checkpoint every this many events ...
    pub checkpoint_every_events: u64,
    /// ... or this often while events are not yet covered by one.
    pub checkpoint_interval: std::time::Duration,
    /// Ledger commits pause while the data directory has less free space than this.
    pub min_free_bytes: u64,
    /// sled's page cache for the ledger's store, in bytes.
    pub ledger_cache_bytes: u64,
    /// When the inbox (and the committed-stream publisher) count as stalled.
    pub inbox_stall: std::time::Duration,
    /// The Ingest request-size limit.
    pub gateway: wfl_gateway::Config,
    /// Subscribers and org-filter size at most.
    pub max_subscribers: usize,
    pub max_org_filter: usize,
    /// TLS and authentication of both ports.
    pub security: wfl_auth::Security,
    /// Purge `WFL_LEDGER` at start and republish every sequence from 1
    /// ([`wfl_ledger::Config::republish_stream`]).
    pub republish_stream: bool,
}

/// Connects the bus `wfl up` runs on.
///
/// # Errors
/// When NATS is given and cannot be reached.
pub async fn connect_bus(
    nats_url: Option<&str>,
    auth: wfl_bus::NatsAuth,
) -> anyhow::Result<Arc<dyn Bus>> {
    Ok(match nats_url {
        Some(url) => Arc::new(
            NatsBus::connect(
                url,
                NatsConfig {
                    auth,
                    ..NatsConfig::default()
                },
            )
            .await?,
        ),
        None => Arc::new(MemoryBus::new()),
    })
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
    let bus = connect_bus(config.nats_url.as_deref(), config.nats_auth.clone()).await?;
    // One registry for the node's parts, rendered on its `/metrics`.
    let registry = wfl_metrics::Registry::new();
    // The ledger hands each durable batch to the projector beside it: the views skip reading
    // it back through `Subscribe` (which they use to catch up).
    let (handed, feed) = wfl_projector::local_feed();
    let ledger = wfl_ledger::Ledger::start(
        wfl_ledger::Config {
            checkpoint_every_events: config.checkpoint_every_events,
            checkpoint_interval: config.checkpoint_interval,
            min_free_bytes: config.min_free_bytes,
            cache_bytes: config.ledger_cache_bytes,
            stall: wfl_ledger::liveness::StallConfig {
                inbox_stall: config.inbox_stall,
                publisher_stall: config.inbox_stall,
            },
            max_subscribers: config.max_subscribers,
            max_org_filter: config.max_org_filter,
            republish_stream: config.republish_stream,
            metrics: registry.clone(),
            local_feed: Some(handed),
            ..wfl_ledger::Config::new(&config.data_dir)
        },
        bus.clone(),
        shutdown.clone(),
    )
    .await?;
    let metrics = Arc::new(Metrics::new(&registry));
    let security = config.security.clone();
    let (ledger_addr, ledger_credentials, internal) = projector_link(&security, &grpc).await?;
    // The dashboard reads the views where the projector reads the ledger, with its credentials.
    let pages = dashboard(
        &ledger_addr,
        &ledger_credentials,
        internal.is_some(),
        &security,
    );
    let projector = wfl_projector::Projector::start(
        wfl_projector::Config {
            data_dir: config.data_dir.clone(),
            packs: config.packs.clone(),
            ledger_addr,
            persist_every: 1000,
            rebuild: config.rebuild_views,
            snapshot_every: config.view_snapshot_events,
            // Half the ledger's reserve: the ledger pauses first, the views still persist
            // what it has committed.
            min_free_bytes: config.min_free_bytes / 2,
            ledger_credentials,
            local: Some(feed),
        },
        bus.clone(),
        shutdown.clone(),
    )
    .await?;
    let gateway = Gateway::new(bus.clone(), config.gateway.clone(), metrics.clone());

    let readiness = gateway_readiness(
        &gateway,
        projector_readiness(
            &projector,
            ledger_readiness(&ledger, Readiness::default().with("bus", bus_probe(&bus))),
        ),
    );
    // The projector's own link to the ledger, when the public port needs TLS or a token.
    let internal_server = async {
        match internal {
            Some((listener, internal_guard)) => {
                tonic::transport::Server::builder()
                    .initial_stream_window_size(wfl_auth::client::STREAM_WINDOW)
                    .initial_connection_window_size(wfl_auth::client::CONNECTION_WINDOW)
                    .add_service(internal_guard.wrap(ledger.service()))
                    .add_service(internal_guard.wrap(projector.service()))
                    .serve_with_incoming_shutdown(
                        incoming(listener),
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
    views_metrics(&projector, &registry);
    let guard = security.guard.clone();
    let served = serve(
        Process {
            security: &security,
            readiness,
            health: vec![INGEST, LEDGER, VIEWS],
            metrics: registry,
            pages: Some(pages),
            grpc,
            http,
            shutdown: &shutdown,
        },
        |router| {
            router
                .add_service(guard.wrap(gateway.into_service()))
                .add_service(guard.wrap(ledger.service()))
                .add_service(guard.wrap(projector.service()))
        },
    );
    let (served, i) = tokio::join!(served, async {
        let r = internal_server.await;
        shutdown.cancel();
        r
    });
    let joined = ledger.join().await;
    let projected = projector.join().await;
    served?;
    i?;
    joined?;
    projected?;
    Ok(())
}

/// The gRPC services and the readiness probes (by name prefix) each one's health follows.
const INGEST: (&str, &[&str]) = ("wfl.v1.Ingest", &["bus", "ledger"]);
const LEDGER: (&str, &[&str]) = ("wfl.v1.Ledger", &["ledger"]);
const VIEWS: (&str, &[&str]) = ("wfl.v1.Views", &["views"]);
/// A cluster gateway's `Views`: forwarded to the partitions' projectors, whose own health says
/// whether they answer.
const ROUTED_VIEWS: (&str, &[&str]) = ("wfl.v1.Views", &[]);

/// `wfl-ledger`: the ledger alone (gRPC `Ledger`, health, reflection; HTTP `/healthz`,
/// `/metrics`) on NATS, until `shutdown`.
///
/// # Errors
/// When the ledger cannot start or a server fails.
pub async fn run_ledger(
    config: wfl_ledger::Config,
    security: wfl_auth::Security,
    bus: Arc<dyn Bus>,
    grpc: TcpListener,
    http: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let registry = config.metrics.clone();
    let ledger = wfl_ledger::Ledger::start(config, bus.clone(), shutdown.clone()).await?;
    let readiness = ledger_readiness(&ledger, Readiness::default().with("bus", bus_probe(&bus)));
    let guard = security.guard.clone();
    let served = serve(
        Process {
            security: &security,
            readiness,
            health: vec![LEDGER],
            metrics: registry,
            pages: None,
            grpc,
            http,
            shutdown: &shutdown,
        },
        |router| router.add_service(guard.wrap(ledger.service())),
    )
    .await;
    let joined = ledger.join().await;
    served?;
    joined?;
    Ok(())
}

/// `wfl-ledger --cluster`: one ledger instance of a cluster (see [`wfl_ledger::instance`]),
/// running the partitions whose leases it holds; serves gRPC health and reflection and HTTP
/// `/healthz` (ready while it owns at least one partition or none is free) and `/metrics`, until
/// `shutdown`.
///
/// # Errors
/// When the cluster cannot be joined or a server fails.
pub async fn run_ledger_instance(
    config: wfl_ledger::instance::InstanceConfig,
    security: wfl_auth::Security,
    grpc: TcpListener,
    http: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let Some(joined) = wfl_ledger::instance::join(&config, &shutdown).await? else {
        return Ok(());
    };
    let readers = Arc::new(wfl_ledger::router::Readers::default());
    let router = wfl_ledger::router::PartitionRouter::new(readers.clone(), joined.map.clone());
    let owned = Arc::new(wfl_ledger::instance::Owned::default());
    let registry = config.ledger.metrics.clone();
    let o = owned.clone();
    // Ready while it takes part in the cluster: writing partitions or standing by for them
    // (`wfl_ledger_partitions_owned` on /metrics says which).
    let readiness = Readiness::default().with("cluster", move || {
        if o.participating() {
            Ok(())
        } else {
            Err("this instance is not taking part in the cluster".to_owned())
        }
    });
    let o = owned.clone();
    registry.on_scrape(move |r| {
        r.gauge(
            "wfl_ledger_partitions_owned",
            "Partitions this ledger instance writes now (cluster mode).",
        )
        .set(o.partitions().len() as f64);
    });
    let instance = wfl_ledger::instance::run(config, joined, owned, readers, shutdown.clone());
    let guard = security.guard.clone();
    let served = serve(
        Process {
            security: &security,
            readiness,
            health: vec![LEDGER],
            metrics: registry,
            pages: None,
            grpc,
            http,
            shutdown: &shutdown,
        },
        |routes| routes.add_service(guard.wrap(wfl_ledger::stored::LedgerService::new(router))),
    );
    let (served, ran) = tokio::join!(served, async {
        let r = instance.await;
        shutdown.cancel();
        r
    });
    served?;
    ran?;
    Ok(())
}

/// A gateway's view of the cluster: the partition map, followed (orgs placed since), waiting
/// (until `shutdown`) for a ledger instance to create it.
///
/// # Errors
/// When the recorded map does not parse, or `shutdown` comes first.
pub async fn partition_map(
    bus: &NatsBus,
    shutdown: &CancellationToken,
) -> anyhow::Result<wfl_bus::cluster::LiveMap> {
    let started = std::time::Instant::now();
    let mut said = None::<std::time::Instant>;
    loop {
        let attempt = async {
            wfl_bus::cluster::Cluster::attach(bus.client())
                .await?
                .live_map()
                .await
        };
        match attempt.await {
            Ok(live) => {
                let (revision, map) = live.current();
                tracing::info!(
                    partitions = map.count,
                    reserved = map.reserved,
                    table = map.table.len(),
                    revision,
                    "cluster mode: routing orgs to partitions"
                );
                return Ok(live);
            }
            Err(e) => {
                if said.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(5)) {
                    tracing::warn!(error = %e, waited_s = started.elapsed().as_secs(), "waiting for the cluster's partition map");
                    said = Some(std::time::Instant::now());
                }
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => anyhow::bail!("stopped while waiting for the cluster's partition map"),
            () = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
        }
    }
}

/// `wfl-gateway`: `Ingest` (plus health, reflection; HTTP `/healthz`, `/metrics`) on NATS, and
/// in cluster mode with projectors configured `Views` over every partition's projector
/// (`views`, [`wfl_gateway::views`]), until `shutdown`.
///
/// # Errors
/// When a server fails.
pub async fn run_gateway(
    config: wfl_gateway::Config,
    security: wfl_auth::Security,
    bus: Arc<dyn Bus>,
    views: Option<wfl_gateway::views::ViewsRouter>,
    grpc: TcpListener,
    http: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let registry = wfl_metrics::Registry::new();
    let gateway = Gateway::new(bus.clone(), config, Arc::new(Metrics::new(&registry)));
    let readiness = gateway_readiness(&gateway, Readiness::default().with("bus", bus_probe(&bus)));
    let guard = security.guard.clone();
    serve(
        Process {
            security: &security,
            readiness,
            health: if views.is_some() {
                vec![INGEST, ROUTED_VIEWS]
            } else {
                vec![INGEST]
            },
            metrics: registry,
            pages: None,
            grpc,
            http,
            shutdown: &shutdown,
        },
        |router| {
            let router = router.add_service(guard.wrap(gateway.into_service()));
            match views {
                Some(v) => router.add_service(guard.wrap(v.into_service())),
                None => router,
            }
        },
    )
    .await
}

/// `wfl-projector`: `Views` alone (plus health, reflection; HTTP `/healthz`, `/metrics`),
/// following a ledger over gRPC, until `shutdown`.
///
/// # Errors
/// When the projector cannot start or a server fails.
pub async fn run_projector(
    config: wfl_projector::Config,
    security: wfl_auth::Security,
    bus: Arc<dyn Bus>,
    grpc: TcpListener,
    http: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let projector = wfl_projector::Projector::start(config, bus.clone(), shutdown.clone()).await?;
    let registry = wfl_metrics::Registry::new();
    views_metrics(&projector, &registry);
    let readiness = projector_readiness(
        &projector,
        Readiness::default().with("bus", bus_probe(&bus)),
    );
    // The dashboard reads the views over loopback: this port when it is plain and open, else a
    // loopback port of its own serving only Views to a token made up at start.
    let (views_addr, views_credentials, internal) = projector_link(&security, &grpc).await?;
    let pages = dashboard(
        &views_addr,
        &views_credentials,
        internal.is_some(),
        &security,
    );
    let internal_server = async {
        match internal {
            Some((listener, internal_guard)) => {
                tonic::transport::Server::builder()
                    .initial_stream_window_size(wfl_auth::client::STREAM_WINDOW)
                    .initial_connection_window_size(wfl_auth::client::CONNECTION_WINDOW)
                    .add_service(internal_guard.wrap(projector.service()))
                    .serve_with_incoming_shutdown(
                        incoming(listener),
                        shutdown.clone().cancelled_owned(),
                    )
                    .await
            }
            None => {
                shutdown.cancelled().await;
                Ok(())
            }
        }
    };
    let guard = security.guard.clone();
    let served = serve(
        Process {
            security: &security,
            readiness,
            health: vec![VIEWS],
            metrics: registry,
            pages: Some(pages),
            grpc,
            http,
            shutdown: &shutdown,
        },
        |router| router.add_service(guard.wrap(projector.service())),
    );
    let (served, i) = tokio::join!(served, async {
        let r = internal_server.await;
        shutdown.cancel();
        r
    });
    let projected = projector.join().await;
    served?;
    i?;
    projected?;
    Ok(())
}

/// What every process serves besides its own gRPC services.
struct Process<'a> {
    security: &'a wfl_auth::Security,
    readiness: Readiness,
    /// gRPC health: each service and the readiness probes it follows.
    health: Vec<(&'static str, &'static [&'static str])>,
    metrics: wfl_metrics::Registry,
    /// The dashboard, on processes that serve views.
    pages: Option<axum::Router>,
    grpc: TcpListener,
    http: TcpListener,
    shutdown: &'a CancellationToken,
}

/// Serves a process until `shutdown`: gRPC (health mirroring readiness, reflection, and the
/// services `add` puts on the router, with TLS when configured) and HTTP (`/healthz`,
/// `/metrics`). Either server ending stops the process.
///
/// # Errors
/// When reflection cannot be built or a server fails.
async fn serve(
    p: Process<'_>,
    add: impl FnOnce(tonic::service::Routes) -> tonic::service::Routes,
) -> anyhow::Result<()> {
    let served: Vec<&'static str> = p.health.iter().map(|(name, _)| *name).collect();
    let (mut reporter, health) = tonic_health::server::health_reporter();
    // Registered before the port serves (UNKNOWN until the mirror's first look): a health
    // check or watch made at once must not be told the service does not exist.
    for name in served.iter().copied().chain([""]) {
        reporter
            .set_service_status(name, tonic_health::ServingStatus::Unknown)
            .await;
    }
    p.readiness.mirror(reporter, p.health, p.shutdown.clone());
    let (reflection_v1, reflection_v1alpha) = wfl_proto::reflection()?;
    let routes = add(tonic::service::Routes::new(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha));
    // A call for a service this port does not serve says where it lives, instead of tonic's
    // bare UNIMPLEMENTED.
    let routes = routes
        .prepare()
        .into_axum_router()
        .fallback(move |uri: axum::http::Uri| {
            let message = wrong_port(uri.path(), &served);
            async move { unimplemented_status(&message) }
        });
    let router = p
        .security
        .server()?
        .add_routes(tonic::service::Routes::from(routes));
    let grpc =
        router.serve_with_incoming_shutdown(incoming(p.grpc), p.shutdown.clone().cancelled_owned());
    let http = http::serve(
        p.http,
        p.readiness,
        p.metrics,
        p.pages,
        p.security,
        p.shutdown.clone(),
    );
    let shutdown = p.shutdown;
    let (g, h) = tokio::join!(
        async {
            let r = grpc.await;
            shutdown.cancel();
            r
        },
        async {
            let r = http.await;
            shutdown.cancel();
            r
        }
    );
    g?;
    h?;
    Ok(())
}

/// What a call to a service this process does not serve is told (`path` is the gRPC path,
/// `/wfl.v1.Views/Separations`).
#[must_use]
pub fn wrong_port(path: &str, served: &[&str]) -> String {
    let service = path.trim_start_matches('/').split('/').next().unwrap_or("");
    format!(
        "this port does not serve {service}; it serves {}. `wfl up` serves wfl.v1.Ingest, \
         wfl.v1.Ledger and wfl.v1.Views on one port (default 127.0.0.1:50051); apart, \
         wfl-gateway serves Ingest (default 127.0.0.1:50051), wfl-ledger Ledger (127.0.0.1:50052) \
         and wfl-projector Views (127.0.0.1:50053)",
        served.join(", ")
    )
}

/// A gRPC UNIMPLEMENTED answer carrying `message` (percent-encoded as gRPC requires).
fn unimplemented_status(message: &str) -> impl axum::response::IntoResponse {
    let mut encoded = String::with_capacity(message.len());
    for b in message.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    let headers = [
        ("grpc-status", "12".to_owned()),
        ("grpc-message", encoded),
        ("content-type", "application/grpc".to_owned()),
    ];
    (axum::http::StatusCode::OK, headers)
}

fn bus_probe(bus: &Arc<dyn Bus>) -> impl Fn() -> Result<(), String> + Send + Sync + 'static {
    let bus = bus.clone();
    move || bus.health()
}

/// The ledger's probes: its background verification has not found damage, and its commits are
/// not paused for a full or read-only data directory.
fn ledger_readiness(ledger: &wfl_ledger::Ledger, readiness: Readiness) -> Readiness {
    let audit = ledger.audit();
    let storage = ledger.storage();
    readiness
        .with("ledger_verification", move || match &*audit.borrow() {
            wfl_ledger::audit::AuditState::Failed { sequence, detail } => Err(format!(
                "first bad sequence {sequence}: {detail}; run `wfl verify DATA_DIR`"
            )),
            _ => Ok(()),
        })
        .with("ledger_storage", move || match &*storage.borrow() {
            wfl_ledger::storage::StorageState::Paused { reason } => {
                Err(format!("commits paused: {reason}"))
            }
            wfl_ledger::storage::StorageState::Writable => Ok(()),
        })
        .with("ledger_liveness", {
            let liveness = ledger.liveness();
            move || liveness.status()
        })
        // Not prefixed `ledger`: a hole in WFL_LEDGER does not stop Ingest or Ledger reads.
        .with("committed_stream", {
            let liveness = ledger.liveness();
            move || liveness.stream()
        })
}

/// The gateway's probe: the ledger answers its outcome requests.
fn gateway_readiness(gateway: &Gateway, readiness: Readiness) -> Readiness {
    let answering = gateway.healthy();
    readiness.with("ledger_answering", move || {
        if *answering.borrow() {
            Ok(())
        } else {
            Err("the ledger has left outcome requests unanswered for longer than the commit timeout".into())
        }
    })
}

/// The projector's probes: it follows its ledger (subscribed, heartbeats arriving) and can
/// persist its views.
fn projector_readiness(projector: &wfl_projector::Projector, readiness: Readiness) -> Readiness {
    let following = projector.progress();
    let storage = projector.progress();
    readiness
        .with("views", move || following.following())
        .with("views_storage", move || storage.storage())
}

/// The projector's figures in `registry`: checkpoint, persisted sequence, lag in events (gauge)
/// and seconds (`wfl_view_lag_seconds`: a histogram of the age of each folded batch's last event;
/// `wfl_views_lag_seconds`: the current lag), store size, folds (and how many were handed over
/// in process) and persists.
fn views_metrics(projector: &wfl_projector::Projector, registry: &wfl_metrics::Registry) {
    use std::sync::atomic::Ordering::Relaxed;
    let progress = projector.progress();
    progress.view_lag.bind(registry.histogram(
        "wfl_view_lag_seconds",
        "Per folded batch, seconds from its last event's commit to the views holding it.",
    ));
    let gauge = |name, help| registry.gauge(name, help);
    let checkpoint = gauge(
        "wfl_views_checkpoint_sequence",
        "Last ledger sequence folded into the views.",
    );
    let persisted = gauge(
        "wfl_views_persisted_sequence",
        "Last ledger sequence persisted with the views (a restart resumes after it).",
    );
    let head = gauge(
        "wfl_views_ledger_head_sequence",
        "Highest ledger head the projector has seen.",
    );
    let lag_events = gauge(
        "wfl_views_lag_events",
        "Committed events not yet in the views.",
    );
    let lag_seconds = gauge(
        "wfl_views_lag_seconds",
        "Age of the last folded event while the views are behind; 0 when caught up.",
    );
    let store_bytes = gauge(
        "wfl_views_store_bytes",
        "Bytes of the view store on disk (sampled at each persist).",
    );
    let folded = registry.counter("wfl_views_folded_total", "Events folded since start.");
    let handed_over = registry.counter(
        "wfl_views_handed_over_total",
        "Events folded as the ledger in this process handed them over (the rest of \
         wfl_views_folded_total came through Subscribe), since start.",
    );
    let persists = registry.counter(
        "wfl_views_persists_total",
        "Keyed persists (one atomic batch each) since start.",
    );
    let watch_runs = registry.counter(
        "wfl_watch_runs_total",
        "Threshold-watch runs since start (each evaluates the orgs whose events or evaluation \
         day changed since the run before).",
    );
    let watch_orgs = registry.counter(
        "wfl_watch_orgs_evaluated_total",
        "Orgs the threshold-watch runs evaluated since start, in all.",
    );
    let watch_last = gauge(
        "wfl_watch_last_run_seconds",
        "How long the last threshold-watch run took (copies, evaluation and publishing).",
    );
    let watch_evaluated = gauge(
        "wfl_watch_evaluated_sequence",
        "The sequence up to which every org's published threshold alerts reflect its events \
         (the views' sequence once every org that changed is evaluated; while an org waits for \
         its next evaluation, the event before its first one not yet evaluated).",
    );
    let watch_kept = registry.counter(
        "wfl_watch_answers_kept_total",
        "ThresholdWatch answers and first Explain pages of a threshold figure given from the \
         rows kept for the org (its events and the evaluation day unchanged since they were \
         evaluated), since start.",
    );
    let watch_recent = registry.counter(
        "wfl_watch_answers_recent_total",
        "ThresholdWatch answers and first Explain pages of a threshold figure given from rows \
         evaluated recently, before the org's latest events, as of the sequence they were \
         evaluated at (the org being written to; an answer asking a later min_sequence is \
         evaluated), since start.",
    );
    let watch_answers_evaluated = registry.counter(
        "wfl_watch_answers_evaluated_total",
        "ThresholdWatch answers evaluated over a copy of the state, since start.",
    );
    registry.on_scrape(move |_| {
        let (c, h) = (
            progress.checkpoint.load(Relaxed),
            progress.ledger_head.load(Relaxed),
        );
        checkpoint.set(c as f64);
        persisted.set(progress.persisted.load(Relaxed) as f64);
        head.set(h as f64);
        lag_events.set(h.saturating_sub(c) as f64);
        lag_seconds.set(progress.lag_seconds());
        store_bytes.set(progress.store_bytes.load(Relaxed) as f64);
        folded.absolute(progress.folded.load(Relaxed));
        handed_over.absolute(progress.handed_over.load(Relaxed));
        persists.absolute(progress.persists.load(Relaxed));
        // The sequence first: a run stores it after its counts, so counts read after it are
        // at least that run's.
        watch_evaluated.set(
            progress
                .watch_evaluated
                .load(std::sync::atomic::Ordering::Acquire) as f64,
        );
        watch_runs.absolute(progress.watch_runs.load(Relaxed));
        watch_orgs.absolute(progress.watch_orgs_evaluated.load(Relaxed));
        watch_last.set(progress.watch_last_run_ms.load(Relaxed) as f64 / 1e3);
        watch_kept.absolute(progress.watch_answers_kept.load(Relaxed));
        watch_recent.absolute(progress.watch_answers_recent.load(Relaxed));
        watch_answers_evaluated.absolute(progress.watch_answers_evaluated.load(Relaxed));
    });
}

/// The dashboard of a process serving views, reading them at `addr` (loopback). With an internal
/// link, its made-up token becomes this process's client credentials (a server process has no
/// other client calls; `wfl up` leaves the client flags unset for this).
fn dashboard(
    addr: &str,
    credentials: &wfl_auth::Credentials,
    internal: bool,
    security: &wfl_auth::Security,
) -> axum::Router {
    if internal {
        crate::security::set_client_credentials(credentials.clone());
    }
    crate::dashboard::router(addr.to_owned(), security.guard.clone())
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
            partition: None,
        },
        Some((listener, wfl_auth::Guard::with_tokens(tokens))),
    ))
}

/// Binds a service binary's gRPC and HTTP listeners and announces them: one INFO line and one
/// machine-readable `NAME listening grpc=... http=...` line on stdout (for scripts and tests that
/// bind port 0).
///
/// # Errors
/// When an address is taken.
pub async fn listen(
    name: &str,
    grpc: SocketAddr,
    http: SocketAddr,
) -> anyhow::Result<(TcpListener, TcpListener)> {
    let (g, h) = bind(grpc, http).await?;
    tracing::info!(grpc = %g.local_addr()?, http = %h.local_addr()?, "{name} serving");
    println!(
        "{name} listening grpc={} http={}",
        g.local_addr()?,
        h.local_addr()?
    );
    Ok((g, h))
}

/// Binds both listeners of `wfl up`.
///
/// # Errors
/// When an address is taken.
pub async fn bind(
    grpc: SocketAddr,
    http: SocketAddr,
) -> anyhow::Result<(TcpListener, TcpListener)> {
    let g = http::bind(grpc, "gRPC").await?;
    let h = http::bind(http, "HTTP").await?;
    Ok((g, h))
}

/// The connections a gRPC server accepts on `listener`, with Nagle's algorithm off: tonic sets
/// `TCP_NODELAY` only on listeners it binds itself, and without it an answer of more than one
/// segment waits for the client's delayed ACK (about 40 ms a view answer on loopback).
fn incoming(
    listener: tokio::net::TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use tokio_stream::StreamExt as _;
    tokio_stream::wrappers::TcpListenerStream::new(listener).map(|accepted| {
        let stream = accepted?;
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set on an accepted connection");
        }
        Ok(stream)
    })
}
