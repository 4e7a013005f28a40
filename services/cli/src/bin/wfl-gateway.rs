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
    let bus = if args.cluster {
        let map = wfl_cli::node::partition_map(&bus, &shutdown).await?;
        config = config.for_partitions(map.count);
        bus.with_partitions(map)
    } else {
        bus
    };
    let bus = Arc::new(bus);
    let (listener, http) =
        wfl_cli::node::listen(env!("CARGO_BIN_NAME"), args.grpc_addr, args.http_addr).await?;
    wfl_cli::node::run_gateway(config, security, bus, listener, http, shutdown).await
}
