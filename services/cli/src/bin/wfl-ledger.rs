//! `wfl-ledger`: the ledger service alone, against NATS JetStream.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;

/// The wfl ledger: consumes WFL_INBOX, commits to sled, serves gRPC Ledger.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    log: wfl_cli::config::LogArgs,
    /// Where the sled database lives.
    #[arg(long, env = "WFL_DATA_DIR", default_value = "./wfl-data")]
    data_dir: PathBuf,
    /// gRPC listen address (Ledger, health, reflection).
    #[arg(long, env = "WFL_LEDGER_ADDR", default_value = "127.0.0.1:50052")]
    grpc_addr: SocketAddr,
    /// HTTP listen address (`/healthz` readiness, `/metrics`).
    #[arg(long, env = "WFL_LEDGER_HTTP_ADDR", default_value = "127.0.0.1:8082")]
    http_addr: SocketAddr,
    /// NATS server with JetStream.
    #[arg(long, env = "WFL_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// Pause commits (health NOT_SERVING, ingest RESOURCE_EXHAUSTED) while the data directory
    /// has less than this many MiB free; they resume by themselves.
    #[arg(long, env = "WFL_MIN_FREE_MB", default_value_t = wfl_ledger::DEFAULT_MIN_FREE_BYTES >> 20)]
    min_free_mb: u64,
    /// Seconds the inbox consumer may have undelivered work with nothing arriving before the
    /// ledger calls it stalled and starts recovering (also the time given to each step).
    #[arg(long, env = "WFL_INBOX_STALL_SECS", default_value_t = 10)]
    inbox_stall_secs: u64,
    #[command(flatten)]
    nats_auth: wfl_cli::NatsAuthArgs,
    #[command(flatten)]
    limits: wfl_cli::LedgerLimitArgs,
    /// At start, purge the NATS stream WFL_LEDGER and republish every committed sequence from 1,
    /// in order: the backfill for a stream that lacks sequences in the middle (`/healthz` then
    /// names them)
    #[arg(long, env = "WFL_REPUBLISH_STREAM", value_parser = clap::builder::FalseyValueParser::new())]
    republish_stream: bool,
    #[command(flatten)]
    security: wfl_cli::security::ServeArgs,
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
    let bus = Arc::new(
        wfl_bus::NatsBus::connect(&args.nats_url, args.nats_auth.bus_config(true)?).await?,
    );
    let (listener, http) =
        wfl_cli::node::listen(env!("CARGO_BIN_NAME"), args.grpc_addr, args.http_addr).await?;
    let shutdown = wfl_cli::shutdown_on_signal();
    let stall = std::time::Duration::from_secs(args.inbox_stall_secs.max(1));
    wfl_cli::node::run_ledger(
        wfl_ledger::Config {
            min_free_bytes: args.min_free_mb.saturating_mul(1 << 20),
            stall: wfl_ledger::liveness::StallConfig {
                inbox_stall: stall,
                publisher_stall: stall,
            },
            max_subscribers: args.limits.max_subscribers,
            max_org_filter: args.limits.max_org_filter,
            republish_stream: args.republish_stream,
            ..wfl_ledger::Config::new(args.data_dir)
        },
        security,
        bus,
        listener,
        http,
        shutdown,
    )
    .await
}
