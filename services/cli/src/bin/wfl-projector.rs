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
    /// Where the projector's sled database lives.
    #[arg(long, env = "WFL_DATA_DIR", default_value = "./wfl-data")]
    data_dir: PathBuf,
    /// gRPC listen address (Views, health, reflection).
    #[arg(long, env = "WFL_PROJECTOR_ADDR", default_value = "127.0.0.1:50053")]
    grpc_addr: SocketAddr,
    /// The ledger's gRPC address.
    #[arg(long, env = "WFL_LEDGER_URL", default_value = "http://127.0.0.1:50052")]
    ledger: String,
    /// NATS server (alerts are published on wfl.alerts.<org>.<rule_id>).
    #[arg(long, env = "WFL_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// Directory of the rule-pack files.
    #[arg(long, env = "WFL_RULEPACKS", default_value = "./rulepacks")]
    rulepacks: PathBuf,
    /// Discard the stored views and fold the whole ledger again.
    #[arg(long)]
    rebuild_views: bool,
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
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line naming what is wrong, like `wfl`'s own errors.
            eprintln!("{}: {e:#}", env!("CARGO_BIN_NAME"));
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    wfl_cli::init_tracing();
    let args = Args::parse();
    let security = args.security.security(&[args.grpc_addr], false)?;
    let ledger_credentials = wfl_cli::security::ClientArgs {
        ca: args.ledger_ca.clone(),
        cert: args.ledger_cert.clone(),
        cert_key: args.ledger_key.clone(),
        tls_domain: None,
        token: args.ledger_token.clone(),
    }
    .credentials()?;
    let packs = wfl_projector::load_packs(&args.rulepacks)?;
    let bus =
        Arc::new(wfl_bus::NatsBus::connect(&args.nats_url, wfl_bus::NatsConfig::default()).await?);
    let listener = tokio::net::TcpListener::bind(args.grpc_addr).await?;
    let shutdown = wfl_cli::shutdown_on_signal();
    let projector = wfl_projector::Projector::start(
        wfl_projector::Config {
            data_dir: args.data_dir,
            packs,
            ledger_addr: args.ledger,
            persist_every: 1000,
            rebuild: args.rebuild_views,
            ledger_credentials,
        },
        bus,
        shutdown.clone(),
    )
    .await?;
    println!(
        "{} listening grpc={}",
        env!("CARGO_BIN_NAME"),
        listener.local_addr()?
    );
    let (mut reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_serving::<wfl_proto::pb::views_server::ViewsServer<wfl_projector::ViewsApi>>()
        .await;
    security
        .server()?
        .add_service(health)
        .add_service(wfl_proto::reflection()?)
        .add_service(security.guard.wrap(projector.service()))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            shutdown.clone().cancelled_owned(),
        )
        .await?;
    shutdown.cancel();
    projector.join().await?;
    Ok(())
}
