//! `wfl-ledger`: the ledger service alone, against NATS JetStream.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;

/// The wfl ledger: consumes WFL_INBOX, commits to sled, serves gRPC Ledger.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Where the sled database lives.
    #[arg(long, env = "WFL_DATA_DIR", default_value = "./wfl-data")]
    data_dir: PathBuf,
    /// gRPC listen address (Ledger, health, reflection).
    #[arg(long, env = "WFL_LEDGER_ADDR", default_value = "127.0.0.1:50052")]
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
    tracing::info!(addr = %listener.local_addr()?, "wfl-ledger serving");
    println!(
        "{} listening grpc={}",
        env!("CARGO_BIN_NAME"),
        listener.local_addr()?
    );
    let shutdown = wfl_cli::shutdown_on_signal();
    wfl_ledger::run(
        wfl_ledger::Config {
            security,
            ..wfl_ledger::Config::new(args.data_dir)
        },
        bus,
        listener,
        shutdown,
    )
    .await?;
    Ok(())
}
