//! `wfl-gateway`: the Ingest service alone, against NATS JetStream.

use std::net::SocketAddr;
use std::sync::Arc;

use clap::Parser;

/// The wfl gateway: validates events and publishes them to WFL_INBOX.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// gRPC listen address (Ingest, health, reflection).
    #[arg(long, env = "WFL_GATEWAY_ADDR", default_value = "127.0.0.1:50051")]
    grpc_addr: SocketAddr,
    /// NATS server with JetStream.
    #[arg(long, env = "WFL_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    #[command(flatten)]
    security: wfl_cli::security::ServeArgs,
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
    let bus =
        Arc::new(wfl_bus::NatsBus::connect(&args.nats_url, wfl_bus::NatsConfig::default()).await?);
    let listener = tokio::net::TcpListener::bind(args.grpc_addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "wfl-gateway serving");
    println!(
        "{} listening grpc={}",
        env!("CARGO_BIN_NAME"),
        listener.local_addr()?
    );
    let shutdown = wfl_cli::shutdown_on_signal();
    let config = wfl_gateway::Config {
        security,
        ..wfl_gateway::Config::default()
    };
    wfl_gateway::run(config, bus, listener, shutdown).await?;
    Ok(())
}
