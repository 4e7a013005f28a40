//! `wfl-projector`: the projector alone. Follows a ledger over gRPC, serves gRPC Views, and
//! publishes threshold alerts on NATS.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;

/// The wfl projector: views and threshold watch over the committed ledger.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    log: wfl_cli::config::LogArgs,
    /// Where the projector's sled database lives.
    #[arg(long, env = "WFL_DATA_DIR", default_value = "./wfl-data")]
    data_dir: PathBuf,
    /// gRPC listen address (Views, health, reflection).
    #[arg(long, env = "WFL_PROJECTOR_ADDR", default_value = "127.0.0.1:50053")]
    grpc_addr: SocketAddr,
    /// HTTP listen address (`/healthz` readiness, `/metrics`).
    #[arg(
        long,
        env = "WFL_PROJECTOR_HTTP_ADDR",
        default_value = "127.0.0.1:8083"
    )]
    http_addr: SocketAddr,
    /// The ledger's gRPC address.
    #[arg(long, env = "WFL_LEDGER_URL", default_value = "http://127.0.0.1:50052")]
    ledger: String,
    /// NATS server (alerts are published on wfl.alerts.<org>.<rule_id>).
    #[arg(long, env = "WFL_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    #[command(flatten)]
    nats_auth: wfl_cli::NatsAuthArgs,
    /// Directory of the rule-pack files.
    #[arg(long, env = "WFL_RULEPACKS", default_value = "./rulepacks")]
    rulepacks: PathBuf,
    /// Discard the stored views and fold the whole ledger again.
    #[arg(long, env = "WFL_REBUILD_VIEWS", value_parser = clap::builder::FalseyValueParser::new())]
    rebuild_views: bool,
    /// Snapshot the view tallies every this many sequences (at least 1,000): an as-of answer
    /// then folds at most this many events; memory holds one snapshot per this many events.
    #[arg(long, env = "WFL_VIEW_SNAPSHOT_EVENTS", default_value_t = wfl_projections::views::DEFAULT_SNAPSHOT_EVERY, value_parser = clap::value_parser!(u64).range(1000..))]
    view_snapshot_events: u64,
    /// Pause persisting the views (they keep answering from memory; health NOT_SERVING) while
    /// the data directory has less than this many MiB free; it resumes by itself.
    #[arg(long, env = "WFL_MIN_FREE_MB", default_value_t = 64)]
    min_free_mb: u64,
    #[command(flatten)]
    security: wfl_cli::security::ServeArgs,
    /// CA (PEM) to verify the ledger's certificate with; turns TLS on for --ledger.
    #[arg(long, env = "WFL_LEDGER_CA")]
    ledger_ca: Option<PathBuf>,
    /// mTLS client certificate (PEM) for the ledger; needs --ledger-key.
    #[arg(long, env = "WFL_LEDGER_CERT")]
    ledger_cert: Option<PathBuf>,
    #[arg(long, env = "WFL_LEDGER_KEY")]
    ledger_key: Option<PathBuf>,
    /// Bearer token for the ledger (an auditor or admin).
    #[arg(long, env = "WFL_LEDGER_TOKEN", hide_env_values = true)]
    ledger_token: Option<String>,
    /// Cluster mode: follow this partition of a cluster (--ledger is any ledger instance; its
    /// calls carry metadata `wfl-partition`). Run one projector per partition, each with its own
    /// data dir; an org's views are on its partition's projector.
    #[arg(long, env = "WFL_PARTITION")]
    partition: Option<u32>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    wfl_cli::exit_with(env!("CARGO_BIN_NAME"), run().await)
}

async fn run() -> anyhow::Result<()> {
    wfl_cli::config::load_config_file(&<Args as clap::CommandFactory>::command())?;
    let args = Args::parse();
    wfl_cli::config::init_tracing(args.log.log_format);
    let security = args
        .security
        .security(&[args.grpc_addr, args.http_addr], false)?;
    let ledger_credentials = wfl_cli::security::ClientArgs {
        ca: args.ledger_ca.clone(),
        cert: args.ledger_cert.clone(),
        cert_key: args.ledger_key.clone(),
        tls_domain: None,
        token: args.ledger_token.clone(),
        partition: args.partition,
    }
    .credentials()?;
    let packs = wfl_projector::load_packs(&args.rulepacks)?;
    let bus = Arc::new(
        wfl_bus::NatsBus::connect(&args.nats_url, args.nats_auth.bus_config(false)?).await?,
    );
    let (listener, http) =
        wfl_cli::node::listen(env!("CARGO_BIN_NAME"), args.grpc_addr, args.http_addr).await?;
    let shutdown = wfl_cli::shutdown_on_signal();
    wfl_cli::node::run_projector(
        wfl_projector::Config {
            data_dir: args.data_dir,
            packs,
            ledger_addr: args.ledger,
            persist_every: 1000,
            rebuild: args.rebuild_views,
            snapshot_every: args.view_snapshot_events,
            min_free_bytes: args.min_free_mb.saturating_mul(1 << 20),
            ledger_credentials,
            local: None,
        },
        security,
        bus,
        listener,
        http,
        shutdown,
    )
    .await
}
