//! `wfl-gateway`: the Ingest service alone, against NATS JetStream.

use std::net::SocketAddr;
use std::sync::Arc;

use clap::Parser;

/// The wfl gateway: validates events and publishes them to WFL_INBOX.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    log: wfl_cli::config::LogArgs,
    /// gRPC listen address (Ingest, health, reflection).
    #[arg(long, env = "WFL_GATEWAY_ADDR", default_value = "127.0.0.1:50051")]
    grpc_addr: SocketAddr,
    /// HTTP listen address (`/healthz` readiness, `/metrics`).
    #[arg(long, env = "WFL_GATEWAY_HTTP_ADDR", default_value = "127.0.0.1:8081")]
    http_addr: SocketAddr,
    /// NATS server with JetStream.
    #[arg(long, env = "WFL_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    #[command(flatten)]
    nats_auth: wfl_cli::NatsAuthArgs,
    #[command(flatten)]
    limits: wfl_cli::GatewayLimitArgs,
    #[command(flatten)]
    security: wfl_cli::security::ServeArgs,
    /// Cluster mode: read the partition map from KV `WFL_CLUSTER` (waiting until a ledger
    /// instance created it) and publish each org's events to its partition's inbox range
    /// (`wfl.inbox.<partition>.<org>`)
    #[arg(long, env = "WFL_CLUSTER", value_parser = clap::builder::FalseyValueParser::new())]
    cluster: bool,
    /// Cluster mode: serve `Views` too, forwarding each call to the projector of its org's
    /// partition (`wfl-projector --partition N` at ADDR); once per partition, e.g.
    /// `--projector 0=10.0.0.5:50053 --projector 1=10.0.0.6:50053`
    #[arg(
        long = "projector",
        value_name = "N=ADDR",
        env = "WFL_PROJECTORS",
        value_delimiter = ',',
        requires = "cluster"
    )]
    projectors: Vec<String>,
    /// CA (PEM) to verify the projectors' certificates with; turns TLS on for --projector.
    #[arg(long, env = "WFL_PROJECTOR_CA")]
    projector_ca: Option<std::path::PathBuf>,
    /// mTLS client certificate (PEM) for the projectors; needs --projector-key.
    #[arg(long, env = "WFL_PROJECTOR_CERT")]
    projector_cert: Option<std::path::PathBuf>,
    #[arg(long, env = "WFL_PROJECTOR_KEY")]
    projector_key: Option<std::path::PathBuf>,
}

/// `N=ADDR` of `--projector`.
fn projector(spec: &str) -> anyhow::Result<(u32, String)> {
    let (n, addr) = spec
        .split_once('=')
        .ok_or_else(|| anyhow::anyhow!("--projector {spec}: expected N=ADDR"))?;
    let n = n
        .trim()
        .parse::<u32>()
        .map_err(|_| anyhow::anyhow!("--projector {spec}: {n:?} is not a partition number"))?;
    if addr.trim().is_empty() {
        anyhow::bail!("--projector {spec}: no address");
    }
    Ok((n, addr.trim().to_owned()))
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
    let mut nats = args.nats_auth.bus_config(false)?;
    // In cluster mode the ledger instances own the streams (and their replicas).
    nats.provision &= !args.cluster;
    let bus = wfl_bus::NatsBus::connect(&args.nats_url, nats).await?;
    let shutdown = wfl_cli::shutdown_on_signal();
    let mut config = args.limits.gateway_config()?;
    let mut projectors = std::collections::BTreeMap::new();
    for spec in &args.projectors {
        let (n, addr) = projector(spec)?;
        if projectors.insert(n, addr).is_some() {
            anyhow::bail!("--projector {n}=...: given twice");
        }
    }
    let projector_credentials = wfl_cli::security::ClientArgs {
        ca: args.projector_ca.clone(),
        cert: args.projector_cert.clone(),
        cert_key: args.projector_key.clone(),
        tls_domain: None,
        token: None,
        partition: None,
    }
    .credentials()?;
    let mut views = None;
    let bus = if args.cluster {
        let map = wfl_cli::node::partition_map(&bus, &shutdown).await?;
        config = config.for_partitions(map.map().count);
        if !projectors.is_empty() {
            views = Some(
                wfl_gateway::views::ViewsRouter::new(
                    map.clone(),
                    &projectors,
                    &projector_credentials,
                )?
                .guarded(security.guard.is_on()),
            );
        }
        bus.with_partitions(map)
    } else {
        bus
    };
    let bus = Arc::new(bus);
    let (listener, http) =
        wfl_cli::node::listen(env!("CARGO_BIN_NAME"), args.grpc_addr, args.http_addr).await?;
    wfl_cli::node::run_gateway(config, security, bus, views, listener, http, shutdown).await
}
