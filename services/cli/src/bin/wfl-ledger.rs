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
    /// MiB of the store kept in memory (sled's page cache); more pages are read again from the
    /// file system's cache when needed. At least 8.
    #[arg(long, env = "WFL_LEDGER_CACHE_MB", default_value_t = wfl_store::DEFAULT_CACHE_BYTES >> 20, value_parser = clap::value_parser!(u64).range(8..))]
    cache_mb: u64,
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
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// Cluster mode: one ledger instance among several on a JetStream cluster, writing the
/// partitions whose leases it holds (ARCHITECTURE.md "Cluster mode").
#[derive(clap::Args)]
struct ClusterArgs {
    /// Run as a ledger instance of a cluster: partitions by org, leases in KV `WFL_LEASES`,
    /// each partition's commit log replicated in `WFL_PARTITION_<n>`
    #[arg(long, env = "WFL_CLUSTER", value_parser = clap::builder::FalseyValueParser::new())]
    cluster: bool,
    /// This instance's name, unique in the cluster (default: `<hostname>-<pid>`)
    #[arg(long, env = "WFL_INSTANCE")]
    instance: Option<String>,
    /// Create the cluster with this many partitions (fixed afterwards; an instance joining an
    /// existing cluster leaves it out or gives the same number)
    #[arg(long, env = "WFL_PARTITIONS")]
    partitions: Option<u32>,
    /// Place an org on a partition of its own choosing when the cluster is created (`ORG=N`,
    /// repeatable): a big tenant on a partition of its own
    #[arg(long = "place", value_name = "ORG=N")]
    place: Vec<String>,
    /// Keep the last N partitions out of the hash when the cluster is created: no org lands
    /// there unless placed (`--place`, or later `wfl cluster place ORG P` for a new tenant)
    #[arg(long, env = "WFL_RESERVE", value_name = "N", default_value_t = 0)]
    reserve: u32,
    /// Replicas of every stream and KV bucket (3 on a 3-node JetStream cluster)
    #[arg(long, env = "WFL_REPLICAS", default_value_t = 1)]
    replicas: usize,
    /// Seconds a partition lease lives without renewal (a dead owner's partitions are taken
    /// over after at most this long)
    #[arg(long, env = "WFL_LEASE_TTL_SECS", default_value_t = 10)]
    lease_ttl_secs: u64,
    /// Do not keep standby copies of the partitions this instance does not write (a takeover
    /// then applies the partition's whole log)
    #[arg(long, env = "WFL_NO_STANDBY", value_parser = clap::builder::FalseyValueParser::new())]
    no_standby: bool,
}

impl ClusterArgs {
    fn create(&self) -> anyhow::Result<Option<wfl_bus::cluster::PartitionMap>> {
        let Some(count) = self.partitions else {
            anyhow::ensure!(
                self.place.is_empty() && self.reserve == 0,
                "--place and --reserve need --partitions (they are recorded when the cluster is created; place a new tenant later with `wfl cluster place`)"
            );
            return Ok(None);
        };
        let mut table = std::collections::BTreeMap::new();
        for entry in &self.place {
            let (org, p) = entry
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--place {entry:?}: expected ORG=N"))?;
            let p: u32 = p.parse().map_err(|_| {
                anyhow::anyhow!("--place {entry:?}: {p:?} is not a partition number")
            })?;
            table.insert(org.to_owned(), p);
        }
        Ok(Some(
            wfl_bus::cluster::PartitionMap::new(count, table)?.with_reserved(self.reserve)?,
        ))
    }
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
    let stall = std::time::Duration::from_secs(args.inbox_stall_secs.max(1));
    let ledger = wfl_ledger::Config {
        min_free_bytes: args.min_free_mb.saturating_mul(1 << 20),
        cache_bytes: args.cache_mb.saturating_mul(1 << 20),
        stall: wfl_ledger::liveness::StallConfig {
            inbox_stall: stall,
            publisher_stall: stall,
        },
        max_subscribers: args.limits.max_subscribers,
        max_org_filter: args.limits.max_org_filter,
        republish_stream: args.republish_stream,
        ..wfl_ledger::Config::new(&args.data_dir)
    };
    if args.cluster.cluster {
        anyhow::ensure!(
            !args.republish_stream,
            "--republish-stream does not apply to --cluster (the partition logs are the committed streams)"
        );
        let create = args.cluster.create()?;
        let instance = args.cluster.instance.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/etc/hostname")
                .map(|h| h.trim().replace('.', "-"))
                .unwrap_or_else(|_| "ledger".to_owned());
            format!("{host}-{}", std::process::id())
        });
        let lease_ttl = std::time::Duration::from_secs(args.cluster.lease_ttl_secs.max(3));
        let config = wfl_ledger::instance::InstanceConfig {
            instance,
            nats_url: args.nats_url.clone(),
            nats: wfl_bus::NatsConfig {
                replicas: args.cluster.replicas,
                // A link cut and healed is noticed within the lease's own time scale.
                ping_interval: lease_ttl / 3,
                ..args.nats_auth.bus_config(true)?
            },
            cluster: wfl_bus::cluster::ClusterConfig {
                replicas: args.cluster.replicas,
                lease_ttl,
            },
            create,
            ledger,
            standby: !args.cluster.no_standby,
        };
        let (listener, http) =
            wfl_cli::node::listen(env!("CARGO_BIN_NAME"), args.grpc_addr, args.http_addr).await?;
        let shutdown = wfl_cli::shutdown_on_signal();
        return wfl_cli::node::run_ledger_instance(config, security, listener, http, shutdown)
            .await;
    }
    let bus = Arc::new(
        wfl_bus::NatsBus::connect(&args.nats_url, args.nats_auth.bus_config(true)?).await?,
    );
    let (listener, http) =
        wfl_cli::node::listen(env!("CARGO_BIN_NAME"), args.grpc_addr, args.http_addr).await?;
    let shutdown = wfl_cli::shutdown_on_signal();
    wfl_cli::node::run_ledger(ledger, security, bus, listener, http, shutdown).await
}
