//! `wfl`: run a single node (`up`), record and import events, replay the ledger.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use wfl_cli::client::{self, Format};
use wfl_proto::pb;

#[derive(Parser)]
#[command(
    name = "wfl",
    version,
    about = "An event-sourced ledger of workforce restructuring"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    client: wfl_cli::security::ClientArgs,
}

/// `wfl token ...`.
#[derive(Subcommand)]
enum Token {
    /// Make a new bearer token: prints it once, appends its SHA-256 (never the token) with the
    /// principal's name, role and orgs to the tokens file (created 0600 if missing).
    Add {
        /// writer, analyst, auditor or admin.
        #[arg(long)]
        role: String,
        /// An org the principal acts for (repeat for several; writers and analysts need one).
        #[arg(long = "org")]
        orgs: Vec<String>,
        /// The principal's name, shown in logs.
        #[arg(long)]
        name: String,
        #[arg(long, env = "WFL_TOKENS_FILE")]
        tokens_file: PathBuf,
    },
}

/// `wfl cluster ...`.
#[derive(Subcommand)]
enum ClusterCommand {
    /// Print the cluster's partition map: partitions, the reserved ones, orgs placed and
    /// being placed.
    Map {
        /// The cluster's NATS servers (comma-separated node URLs).
        #[arg(long, env = "WFL_NATS_URL")]
        nats_url: String,
        #[command(flatten)]
        nats_auth: wfl_cli::NatsAuthArgs,
    },
    /// Place an org that has no events yet on a partition (a reserved one gives a big tenant
    /// a partition of its own): closes the org, waits for the partition it leaves to confirm it
    /// holds none of its events, then moves it. Refused, with nothing changed, when it has
    /// events. Run again to carry on after an interruption.
    Place {
        /// The org.
        org: String,
        /// The partition to put it on.
        #[arg(required_unless_present = "abort")]
        partition: Option<u32>,
        /// Give up an interrupted placement: the org stays where it was.
        #[arg(long, conflicts_with = "partition")]
        abort: bool,
        /// How long to wait for the partition the org leaves to confirm.
        #[arg(long, default_value_t = 30)]
        patience_secs: u64,
        /// The cluster's NATS servers (comma-separated node URLs).
        #[arg(long, env = "WFL_NATS_URL")]
        nats_url: String,
        #[command(flatten)]
        nats_auth: wfl_cli::NatsAuthArgs,
    },
}

/// `wfl bench ...`.
#[derive(Subcommand)]
enum Bench {
    /// The views at volume: load N restructuring events into a scratch single node, then report
    /// view lag under load, drain time, disk (views vs ledger), RSS, as-of latency and the
    /// catch-up rate of a rebuild from sequence 1. With RUST_LOG set, the node's log lines go to
    /// stderr (`RUST_LOG=info` shows slow persists and the fold's waits for readers).
    Views {
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        /// RecordBatch calls in flight.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Scratch data dir (must be empty or absent; removed afterwards unless --keep).
        #[arg(long, default_value = "./wfl-bench-views")]
        data_dir: PathBuf,
        #[arg(long)]
        keep: bool,
        #[arg(long, env = "WFL_RULEPACKS", default_value = "./rulepacks")]
        rulepacks: PathBuf,
        /// How many as_of_sequence answers to time.
        #[arg(long, default_value_t = 5)]
        as_of_queries: usize,
        /// Fail when disk per event or catch-up rate is more than 2x worse than this JSON baseline
        /// (`{"views_bytes_per_event": .., "catchup_events_per_s": ..}`).
        #[arg(long)]
        check: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Ingest and replay beside their ceilings, in one run on the same payloads: raw JetStream
    /// publish and raw sled insert / scan, wfl COMMITTED and ACCEPTED in process and over NATS
    /// (a private nats-server), single-Record latency at an offered rate, Read and JSON replay,
    /// and a PostgreSQL baseline when --postgres-url is given.
    Ingest {
        #[arg(long, default_value_t = 200_000)]
        events: u64,
        /// Orgs the events are spread over (one concurrent client each).
        #[arg(long, default_value_t = 4)]
        orgs: usize,
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        /// Offered rate of single Record calls (requests/s) ...
        #[arg(long, default_value_t = 1000)]
        latency_rate: u64,
        /// ... and for how long.
        #[arg(long, default_value_t = 20)]
        latency_secs: u64,
        /// PostgreSQL baseline (through psql), e.g. postgresql://postgres@127.0.0.1:5432/test.
        #[arg(long, env = "WFL_BENCH_POSTGRES_URL")]
        postgres_url: Option<String>,
        /// Events for each PostgreSQL baseline.
        #[arg(long, default_value_t = 20_000)]
        postgres_events: u64,
        /// The nats-server binary for the NATS rows (default: $NATS_SERVER_BIN, PATH,
        /// /usr/sbin/nats-server).
        #[arg(long)]
        nats_server: Option<PathBuf>,
        /// Scratch data dir (must be empty or absent; removed afterwards unless --keep).
        #[arg(long, default_value = "./wfl-bench-ingest")]
        data_dir: PathBuf,
        #[arg(long)]
        keep: bool,
        #[arg(long, env = "WFL_RULEPACKS", default_value = "./rulepacks")]
        rulepacks: PathBuf,
        /// Every row, small (at most 10,000 events, 2 s of latency, 1,000 PostgreSQL rows): the CI mode.
        #[arg(long)]
        quick: bool,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// The projector's steps one at a time, in memory: decode, fold, encode changes, and one
    /// threshold watch over the final state (no network, no ledger).
    Fold {
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        #[arg(long, env = "WFL_RULEPACKS", default_value = "./rulepacks")]
        rulepacks: PathBuf,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
}

/// `wfl load --mix`.
#[derive(Clone, Copy, ValueEnum)]
enum LoadMix {
    /// Hires only, at one site on one day.
    Hires,
    /// Hires, non-renewals, dismissals, position links and AI events (every view has work).
    Restructuring,
    /// The restructuring mix with what a real HR export carries (source record, plan, positions,
    /// legal grounds, severance): `wfl bench ingest`'s payloads.
    Realistic,
}

impl From<LoadMix> for wfl_cli::loadgen::Mix {
    fn from(m: LoadMix) -> Self {
        match m {
            LoadMix::Hires => Self::Hires,
            LoadMix::Restructuring => Self::Restructuring,
            LoadMix::Realistic => Self::Realistic,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Ack {
    /// Durable in the ledger (sequence and hash returned).
    Committed,
    /// Durable in the JetStream inbox.
    Accepted,
}

impl From<Ack> for pb::AckLevel {
    fn from(a: Ack) -> Self {
        match a {
            Ack::Committed => pb::AckLevel::Committed,
            Ack::Accepted => pb::AckLevel::Accepted,
        }
    }
}

// Parsed once per process and matched at once: boxing the big variant (`report`'s flags) would
// buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Cluster mode: the partition map, and placing a new tenant on a partition of its own.
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
    /// Run gateway and ledger in one process (single-node).
    Up {
        #[arg(long, env = "WFL_DATA_DIR", default_value = "./wfl-data")]
        data_dir: PathBuf,
        #[arg(long, env = "WFL_GRPC_ADDR", default_value = "127.0.0.1:50051")]
        grpc_addr: SocketAddr,
        #[arg(long, env = "WFL_HTTP_ADDR", default_value = "127.0.0.1:8080")]
        http_addr: SocketAddr,
        /// Use NATS JetStream at this URL instead of the in-process bus.
        #[arg(long, env = "WFL_NATS_URL")]
        nats_url: Option<String>,
        #[command(flatten)]
        nats_auth: wfl_cli::NatsAuthArgs,
        /// Directory of the rule-pack files (validated at start).
        #[arg(long, env = "WFL_RULEPACKS", default_value = "./rulepacks")]
        rulepacks: PathBuf,
        /// Discard the stored views and fold the whole ledger again.
        #[arg(long, env = "WFL_REBUILD_VIEWS", value_parser = clap::builder::FalseyValueParser::new())]
        rebuild_views: bool,
        /// Snapshot the view tallies every this many sequences (at least 1,000): an as-of
        /// answer then folds at most this many events; memory holds one snapshot per this many
        /// events.
        #[arg(long, env = "WFL_VIEW_SNAPSHOT_EVENTS", default_value_t = wfl_projections::views::DEFAULT_SNAPSHOT_EVERY, value_parser = clap::value_parser!(u64).range(1000..))]
        view_snapshot_events: u64,
        /// Cut a signed checkpoint every this many committed events...
        #[arg(long, env = "WFL_CHECKPOINT_EVERY_EVENTS", default_value_t = 1000)]
        checkpoint_every_events: u64,
        /// ...or every this many seconds while events are not covered by one.
        #[arg(long, env = "WFL_CHECKPOINT_INTERVAL_SECS", default_value_t = 10)]
        checkpoint_interval_secs: u64,
        /// Pause ledger commits (health NOT_SERVING, ingest RESOURCE_EXHAUSTED) while the data
        /// directory has less than this many MiB free; they resume by themselves.
        #[arg(long, env = "WFL_MIN_FREE_MB", default_value_t = wfl_ledger::DEFAULT_MIN_FREE_BYTES >> 20)]
        min_free_mb: u64,
        /// MiB of the ledger's store kept in memory (sled's page cache); more pages are read
        /// again from the file system's cache when needed. At least 8.
        #[arg(long, env = "WFL_LEDGER_CACHE_MB", default_value_t = wfl_store::DEFAULT_CACHE_BYTES >> 20, value_parser = clap::value_parser!(u64).range(8..))]
        ledger_cache_mb: u64,
        /// Seconds the NATS inbox may have undelivered work with nothing arriving before the
        /// ledger calls it stalled and recovers (also the time given to each recovery step).
        #[arg(long, env = "WFL_INBOX_STALL_SECS", default_value_t = 10)]
        inbox_stall_secs: u64,
        /// At start, purge the NATS stream WFL_LEDGER and republish every committed sequence from 1,
        /// in order: the backfill for a stream that lacks sequences in the middle (`/healthz` then
        /// names them)
        #[arg(long, env = "WFL_REPUBLISH_STREAM", value_parser = clap::builder::FalseyValueParser::new())]
        republish_stream: bool,
        #[command(flatten)]
        gateway_limits: wfl_cli::GatewayLimitArgs,
        #[command(flatten)]
        ledger_limits: wfl_cli::LedgerLimitArgs,
        #[command(flatten)]
        security: wfl_cli::security::ServeArgs,
        #[command(flatten)]
        log: wfl_cli::config::LogArgs,
    },
    /// Manage the bearer tokens of a tokens file.
    Token {
        #[command(subcommand)]
        what: Token,
    },
    /// Record one event (JSON) from a file or stdin.
    Record {
        /// JSON file; stdin when absent.
        file: Option<PathBuf>,
        #[arg(long, env = "WFL_ADDR", default_value = "127.0.0.1:50051")]
        addr: String,
        #[arg(long, value_enum, default_value = "committed")]
        ack: Ack,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Import events from a JSON-lines file: prints the refused lines and a summary (progress on
    /// stderr when it is a terminal); exit 2 if any line is refused.
    Import {
        file: PathBuf,
        /// Print every line's result, not only the refusals.
        #[arg(long)]
        verbose: bool,
        #[arg(long, env = "WFL_ADDR", default_value = "127.0.0.1:50051")]
        addr: String,
        /// Events per RecordBatch call (1 to 10,000).
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u16).range(1..=10_000))]
        batch: u16,
        #[arg(long, value_enum, default_value = "committed")]
        ack: Ack,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Print a view: separations, headcount, cohorts, hiring, ai, thresholds or explain.
    Report {
        #[arg(value_enum)]
        view: wfl_cli::report::View,
        #[arg(long, default_value = "")]
        org: String,
        #[arg(long, default_value = "")]
        site: String,
        /// First effective day (YYYY-MM-DD).
        #[arg(long, default_value = "")]
        from: String,
        /// Last effective day (YYYY-MM-DD).
        #[arg(long, default_value = "")]
        to: String,
        /// day, month or quarter (default: month).
        #[arg(long)]
        period: Option<String>,
        #[arg(long, default_value = "")]
        cohort: String,
        /// Answer as of this ledger sequence (what was known then).
        #[arg(long, default_value_t = 0)]
        as_of_sequence: u64,
        /// Read your writes: wait until the views hold this sequence (the one `wfl record`
        /// printed), then answer from the current state.
        #[arg(long, default_value_t = 0)]
        min_sequence: u64,
        /// Answer with only the events recorded at or before this instant (what was known then,
        /// whatever their effective dates): µs since the epoch or `2026-12-02T03:04:05Z`.
        #[arg(long)]
        as_of_recorded_at: Option<String>,
        /// Thresholds: the day windows are evaluated at, YYYY-MM-DD (default: the latest effective
        /// date in the ledger).
        #[arg(long, default_value = "")]
        as_of_date: String,
        /// Thresholds: only these rule packs.
        #[arg(long = "pack")]
        packs: Vec<String>,
        /// Thresholds: only approaching or met.
        #[arg(long)]
        alerts_only: bool,
        /// Thresholds: only this window (its `window_key`, as a status prints it); repeatable.
        #[arg(long = "window-key")]
        window_keys: Vec<String>,
        /// Thresholds: list the events behind each status of the --window-key windows (at most
        /// 10,000 in the answer), not only count them.
        #[arg(long)]
        with_event_ids: bool,
        /// Thresholds: only this count type (strict, assimilated, shadow); repeatable.
        #[arg(long = "count-type")]
        count_types: Vec<String>,
        /// Explain: these events.
        #[arg(long = "event-id")]
        event_ids: Vec<String>,
        /// Explain: the events behind a figure of this view (separations, headcount,
        /// cohort_exposure, hiring_signals, ai_adoption, thresholds), asked with the same filters;
        /// give the figure's `evidence` path with --path. For thresholds: one list of one status
        /// of `wfl report thresholds` with the same flags, "/statuses/<i>/event_ids" (or
        /// excluded, notice_only_event_ids, steps/<k>/effective_too_early_event_ids).
        #[arg(long)]
        figure: Option<String>,
        /// Explain: the figure's `evidence` path from the view answer ("/rows/3/total").
        #[arg(long, default_value = "/")]
        path: String,
        /// Explain: the `next_page_token` of the previous page.
        #[arg(long, default_value = "")]
        page_token: String,
        /// Explain: events per page (default 1,000).
        #[arg(long, default_value_t = 0)]
        page_size: u32,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        #[arg(long, env = "WFL_ADDR", default_value = "127.0.0.1:50051")]
        addr: String,
    },
    /// Load generator: record N synthetic events in batches and report events/s.
    Load {
        #[arg(long, default_value_t = 100_000)]
        events: u64,
        /// `hires` (one site, one day), `restructuring` (hires, non-renewals, dismissals,
        /// position links and AI events over 8 sites and three years: every view has work) or
        /// `realistic` (the restructuring events with what an HR export carries beside them).
        #[arg(long, value_enum, default_value = "hires")]
        mix: LoadMix,
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        /// RecordBatch calls in flight.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Org the synthetic workers belong to.
        #[arg(long, default_value = "load")]
        org: String,
        #[arg(long, value_enum, default_value = "committed")]
        ack: Ack,
        #[arg(long, env = "WFL_ADDR", default_value = "127.0.0.1:50051")]
        addr: String,
    },
    /// Benchmarks measured through a real node (not tests): `wfl bench views`.
    Bench {
        #[command(subcommand)]
        what: Bench,
    },
    /// Follow committed events live (after the history from --from), as JSON lines.
    Tail {
        #[arg(long, default_value_t = 1)]
        from: u64,
        #[arg(long)]
        org: Vec<String>,
        #[arg(long = "type")]
        event_type: Vec<String>,
        /// Only these buckets: formal_layoff, gradual_attrition, neutral, signal.
        #[arg(long)]
        bucket: Vec<String>,
        /// Stop after this many events, at least 1 (default: follow forever).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        count: Option<u64>,
        #[arg(long, env = "WFL_ADDR", default_value = "127.0.0.1:50051")]
        addr: String,
    },
    /// Print the ledger's ed25519 public key (hex), which signs its checkpoints.
    Key {
        #[arg(long, env = "WFL_DATA_DIR", default_value = "./wfl-data")]
        data_dir: PathBuf,
        /// The key file, when not the data dir's `ledger-signing.key`.
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Export the ledger (events as protobuf and JSON lines, signed checkpoints, public key,
    /// manifest) into a directory; run again to resume or to add newer events.
    Export {
        #[arg(long)]
        to: PathBuf,
        #[arg(long, env = "WFL_ADDR", default_value = "127.0.0.1:50051")]
        addr: String,
    },
    /// Verify an export or a stopped node's data dir: hash chain, Merkle roots, checkpoint
    /// signatures and consistency. Prints a verdict; exits 1 naming the first bad sequence.
    Verify {
        /// An export directory or a data dir.
        #[arg(required_unless_present_any = ["addr", "cluster"])]
        target: Option<PathBuf>,
        /// Verify a cluster instead (cluster mode): every partition log on this NATS cluster
        /// (comma-separated node URLs), its chain, its orgs and the event ids across partitions;
        /// prints the manifest.
        #[arg(long, value_name = "NATS_URL", conflicts_with_all = ["target", "addr", "views", "key"])]
        cluster: Option<String>,
        /// With --cluster: how to authenticate to NATS (a locked-down server refuses anonymous
        /// clients; the auditor's user reads the partition logs).
        #[command(flatten)]
        nats_auth: wfl_cli::NatsAuthArgs,
        /// Verify a running ledger instead: export it to a temporary directory and verify that.
        #[arg(long, conflicts_with = "target")]
        addr: Option<String>,
        /// Pin the ledger's public key (hex) instead of trusting the one in the export.
        #[arg(long)]
        key: Option<String>,
        /// Then re-derive the views from the verified export and compare them with what the
        /// projector at this address serves at the export's size: every answer must name that
        /// sequence and the export's chain hash there, and equal the re-derived view.
        #[arg(long, value_name = "ADDR")]
        views: Option<String>,
        /// With --views: only these orgs (default: every org in the export).
        #[arg(long, requires = "views")]
        org: Vec<String>,
    },
    /// A seeded, reproducible restructuring story (three employers, 18 months), recorded through
    /// the gRPC API of a node (one started in process on free ports when --addr is not given),
    /// then told from the views: formal vs gradual, alerts, cohorts, AI adoption, ledger head and
    /// verification.
    Demo {
        /// The scenario's seed: the same seed gives the same events and figures.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// A running node (`wfl up`); without it the demo starts its own.
        #[arg(long, env = "WFL_ADDR")]
        addr: Option<String>,
        /// Rule packs of the node the demo starts.
        #[arg(long, env = "WFL_RULEPACKS", default_value = "./rulepacks")]
        rulepacks: PathBuf,
        /// Events per RecordBatch call.
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Print committed events as JSON lines, in sequence order.
    Replay {
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// Last sequence (default: the head at the time of the call).
        #[arg(long)]
        to: Option<u64>,
        #[arg(long)]
        org: Vec<String>,
        #[arg(long = "type")]
        event_type: Vec<String>,
        /// Only events recorded at or before this instant (what was known then): µs since the
        /// epoch or `2026-12-02T03:04:05Z`.
        #[arg(long)]
        as_of_recorded_at: Option<String>,
        #[arg(long, env = "WFL_ADDR", default_value = "127.0.0.1:50051")]
        addr: String,
    },
}

fn main() -> ExitCode {
    // `wfl up --config FILE`: the file's settings become WFL_* variables before clap reads them.
    if std::env::args_os().nth(1).is_some_and(|a| a == "up") {
        let command = <Cli as clap::CommandFactory>::command();
        if let Some(up) = command.find_subcommand("up") {
            if let Err(e) = wfl_cli::config::load_config_file(up) {
                eprintln!("wfl: {e:#}");
                return ExitCode::FAILURE;
            }
        }
    }
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("wfl: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("wfl: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // `wfl up` is a server: its dashboard's loopback client takes the node's internal
    // credentials (node.rs), not the client flags.
    if !matches!(cli.command, Command::Up { .. }) {
        wfl_cli::security::set_client_credentials(cli.client.credentials()?);
    }
    match cli.command {
        Command::Token {
            what:
                Token::Add {
                    role,
                    orgs,
                    name,
                    tokens_file,
                },
        } => {
            let token = wfl_cli::security::add_token(&tokens_file, &name, &role, &orgs)?;
            println!("{token}");
            eprintln!(
                "added {name} ({role}) to {}; the token above is shown only this once",
                tokens_file.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Up {
            data_dir,
            grpc_addr,
            http_addr,
            nats_url,
            nats_auth,
            rulepacks,
            rebuild_views,
            view_snapshot_events,
            checkpoint_every_events,
            checkpoint_interval_secs,
            min_free_mb,
            ledger_cache_mb,
            inbox_stall_secs,
            republish_stream,
            gateway_limits,
            ledger_limits,
            security,
            log,
        } => {
            wfl_cli::config::init_tracing(log.log_format);
            let security = security.security(&[grpc_addr, http_addr], true)?;
            let packs = wfl_projector::load_packs(&rulepacks)?;
            let (grpc, http) = wfl_cli::node::bind(grpc_addr, http_addr).await?;
            tracing::info!(
                grpc = %grpc.local_addr()?, http = %http.local_addr()?, data_dir = %data_dir.display(),
                bus = nats_url.as_deref().unwrap_or("in-process"),
                tls = security.tls.is_some(), auth = security.guard.is_on(), "wfl up"
            );
            // One machine-readable line on stdout, for scripts and tests that bind port 0.
            println!(
                "wfl listening grpc={} http={}",
                grpc.local_addr()?,
                http.local_addr()?
            );
            let shutdown = wfl_cli::shutdown_on_signal();
            wfl_cli::node::run(
                wfl_cli::node::NodeConfig {
                    data_dir,
                    nats_url,
                    nats_auth: nats_auth.bus_config(true)?.auth,
                    packs,
                    rebuild_views,
                    view_snapshot_events,
                    checkpoint_every_events: checkpoint_every_events.max(1),
                    checkpoint_interval: std::time::Duration::from_secs(checkpoint_interval_secs),
                    min_free_bytes: min_free_mb.saturating_mul(1 << 20),
                    ledger_cache_bytes: ledger_cache_mb.saturating_mul(1 << 20),
                    inbox_stall: std::time::Duration::from_secs(inbox_stall_secs.max(1)),
                    gateway: gateway_limits.gateway_config()?,
                    max_subscribers: ledger_limits.max_subscribers,
                    max_org_filter: ledger_limits.max_org_filter,
                    security,
                    republish_stream,
                },
                grpc,
                http,
                shutdown,
            )
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Record {
            file,
            addr,
            ack,
            format,
        } => {
            client::record(&addr, file.as_deref(), ack.into(), format).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Import {
            file,
            verbose,
            addr,
            batch,
            ack,
            format,
        } => {
            let lines = if verbose {
                client::Lines::All
            } else {
                client::Lines::Refused
            };
            let s =
                client::import(&addr, &file, usize::from(batch), ack.into(), format, lines).await?;
            eprintln!(
                "imported {} lines: {} committed, {} accepted, {} duplicates, {} rejected",
                s.lines, s.committed, s.accepted, s.duplicates, s.rejected
            );
            Ok(if s.rejected > 0 {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Report {
            view,
            org,
            site,
            from,
            to,
            period,
            cohort,
            as_of_sequence,
            min_sequence,
            as_of_recorded_at,
            as_of_date,
            packs,
            alerts_only,
            window_keys,
            with_event_ids,
            count_types,
            event_ids,
            figure,
            path,
            page_token,
            page_size,
            format,
            addr,
        } => {
            let given: Vec<&str> = [
                ("org", !org.is_empty()),
                ("site", !site.is_empty()),
                ("from", !from.is_empty()),
                ("to", !to.is_empty()),
                ("period", period.is_some()),
                ("cohort", !cohort.is_empty()),
                ("as-of-sequence", as_of_sequence != 0),
                ("min-sequence", min_sequence != 0),
                ("as-of-recorded-at", as_of_recorded_at.is_some()),
                ("as-of-date", !as_of_date.is_empty()),
                ("pack", !packs.is_empty()),
                ("alerts-only", alerts_only),
                ("window-key", !window_keys.is_empty()),
                ("with-event-ids", with_event_ids),
                ("count-type", !count_types.is_empty()),
                ("event-id", !event_ids.is_empty()),
                ("figure", figure.is_some()),
                ("path", path != "/"),
                ("page-token", !page_token.is_empty()),
                ("page-size", page_size != 0),
            ]
            .into_iter()
            .filter_map(|(flag, set)| set.then_some(flag))
            .collect();
            if let Err(reason) = wfl_cli::report::check_flags(view, figure.as_deref(), &given) {
                anyhow::bail!(reason);
            }
            let period = match period.as_deref().unwrap_or("month") {
                "day" => pb::Period::Day,
                "month" => pb::Period::Month,
                "quarter" => pb::Period::Quarter,
                other => anyhow::bail!("--period: expected day, month or quarter, got {other:?}"),
            };
            let as_of_recorded_at_micros = match as_of_recorded_at.as_deref() {
                Some(s) => wfl_cli::report::parse_instant(s)?,
                None => 0,
            };
            let ask = wfl_cli::report::Ask {
                view_request: pb::ViewRequest {
                    org_id: org,
                    site_id: site,
                    from_date: from,
                    to_date: to,
                    period: period as i32,
                    cohort,
                    as_of_sequence,
                    as_of_recorded_at_micros,
                    min_sequence,
                },
                as_of_date,
                packs,
                alerts_only,
                window_keys,
                with_event_ids,
                count_types,
                event_ids,
                figure: figure.map(|view| (view, path)),
                as_of_recorded_at_micros,
                page_token,
                page_size,
            };
            print!(
                "{}",
                wfl_cli::report::report(&addr, view, ask, format).await?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Load {
            events,
            mix,
            batch,
            concurrency,
            org,
            ack,
            addr,
        } => {
            let r = client::load(
                &addr,
                &org,
                events,
                batch,
                concurrency,
                ack.into(),
                mix.into(),
            )
            .await?;
            println!(
                "{} events in {:.2} s: {:.0} events/s (batch {batch}, {concurrency} in flight; batch latency p50 {:.1} ms, p99 {:.1} ms)",
                r.events,
                r.seconds,
                r.events as f64 / r.seconds,
                r.batch_p50_ms,
                r.batch_p99_ms
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            what:
                Bench::Views {
                    events,
                    batch,
                    concurrency,
                    data_dir,
                    keep,
                    rulepacks,
                    as_of_queries,
                    check,
                    format,
                },
        } => {
            if std::env::var_os("RUST_LOG").is_some() {
                // The node's own log lines (slow persists, waits for the views' lock), on request.
                wfl_cli::init_tracing();
            }
            let baseline = match &check {
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
                    Some(
                        serde_json::from_str::<wfl_cli::bench::Baseline>(&text)
                            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
                    )
                }
                None => None,
            };
            let config = wfl_cli::bench::ViewsConfig {
                events,
                batch,
                concurrency,
                data_dir,
                keep,
                packs: wfl_projector::load_packs(&rulepacks)?,
                as_of_queries,
            };
            let report = wfl_cli::bench::views(&config).await?;
            match format {
                Format::Json => println!("{}", serde_json::to_string(&report)?),
                Format::Text => print!("{}", report.table()),
            }
            if let Some(b) = baseline {
                report.check(&b)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            what:
                Bench::Ingest {
                    events,
                    orgs,
                    batch,
                    latency_rate,
                    latency_secs,
                    postgres_url,
                    postgres_events,
                    nats_server,
                    data_dir,
                    keep,
                    rulepacks,
                    quick,
                    format,
                },
        } => {
            if std::env::var_os("RUST_LOG").is_some() {
                // The node's own log lines (the writer's batches, slow persists), on request.
                wfl_cli::init_tracing();
            }
            let mut config = wfl_cli::bench_ingest::IngestConfig {
                events,
                orgs,
                batch,
                latency_rate,
                latency_secs,
                postgres_events,
                postgres_url,
                nats_server,
                data_dir,
                keep,
                packs: wfl_projector::load_packs(&rulepacks)?,
                rulepacks,
            };
            if quick {
                config = config.quick();
            }
            let report = wfl_cli::bench_ingest::ingest(&config).await?;
            match format {
                Format::Json => println!("{}", serde_json::to_string(&report)?),
                Format::Text => print!("{}", report.table()),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            what:
                Bench::Fold {
                    events,
                    rulepacks,
                    format,
                },
        } => {
            let packs = wfl_projector::load_packs(&rulepacks)?;
            let report =
                tokio::task::spawn_blocking(move || wfl_cli::bench::fold(events, &packs)).await??;
            match format {
                Format::Json => println!("{}", serde_json::to_string(&report)?),
                Format::Text => print!("{}", report.table()),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Tail {
            from,
            org,
            event_type,
            bucket,
            count,
            addr,
        } => {
            let request = pb::SubscribeRequest {
                from_sequence: from,
                org_ids: org,
                event_types: event_type,
                heartbeat_ms: 0,
                buckets: bucket,
                max_batch: 0,
            };
            client::tail(&addr, request, count).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Key { data_dir, key } => {
            println!(
                "{}",
                wfl_cli::audit::public_key_hex(&data_dir, key.as_deref())?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Export { to, addr } => {
            let s = wfl_cli::audit::export(&addr, &to, true).await?;
            eprintln!(
                "exported {} events ({} already there) and {} checkpoints to {}",
                s.events,
                s.resumed_from,
                s.checkpoints,
                to.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Cluster { command } => cluster(command).await,
        Command::Verify {
            target,
            addr,
            key,
            views,
            org,
            cluster,
            nats_auth,
        } => {
            if let Some(url) = cluster {
                let auth = nats_auth.bus_config(false)?.auth;
                let verdict = wfl_cli::cluster_audit::verify(&url, auth).await?;
                println!("{}", verdict.describe());
                return Ok(if verdict.failure.is_some() {
                    ExitCode::from(1)
                } else {
                    ExitCode::SUCCESS
                });
            }
            let (target, scratch) = match (target, addr) {
                (Some(t), _) => (t, None),
                (None, Some(addr)) => {
                    let dir =
                        std::env::temp_dir().join(format!("wfl-verify-{}", uuid::Uuid::now_v7()));
                    wfl_cli::audit::export(&addr, &dir, true).await?;
                    (dir.clone(), Some(dir))
                }
                (None, None) => anyhow::bail!("give a directory or --addr"),
            };
            let checked = target.clone();
            let verdict = tokio::task::spawn_blocking(move || {
                wfl_cli::audit::verify(&checked, key.as_deref(), true)
            })
            .await?;
            // The views are compared only over an export that verified.
            let views = match (&verdict, views) {
                (Ok(v), Some(addr)) if v.failure.is_none() => {
                    Some(wfl_cli::audit::verify_views(&target, v.root, &addr, &org).await)
                }
                _ => None,
            };
            if let Some(dir) = scratch {
                let _ = std::fs::remove_dir_all(dir);
            }
            let verdict = verdict?;
            println!("{}", verdict.describe());
            let views = views.transpose()?;
            if let Some(v) = &views {
                println!("{}", v.describe());
            }
            Ok(
                if verdict.failure.is_some() || views.is_some_and(|v| v.failure.is_some()) {
                    ExitCode::from(1)
                } else {
                    ExitCode::SUCCESS
                },
            )
        }
        Command::Demo {
            seed,
            addr,
            rulepacks,
            batch,
            format,
        } => {
            let packs = match addr {
                Some(_) => Vec::new(),
                None => wfl_projector::load_packs(&rulepacks)?,
            };
            let story = wfl_cli::demo::run(&wfl_cli::demo::DemoConfig {
                seed,
                addr,
                packs,
                batch,
                progress: format == Format::Text,
            })
            .await?;
            let text = match format {
                Format::Json => format!("{}\n", story.json()),
                Format::Text => story.text(),
            };
            // A reader that stops early (`| head`) is not a failure.
            use std::io::Write as _;
            let mut out = std::io::stdout().lock();
            match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e.into()),
                _ => {}
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay {
            from,
            to,
            org,
            event_type,
            as_of_recorded_at,
            addr,
        } => {
            let as_of_recorded_at_micros = match as_of_recorded_at.as_deref() {
                Some(s) => wfl_cli::report::parse_instant(s)?,
                None => 0,
            };
            let n = client::replay(
                &addr,
                pb::ReadRequest {
                    from_sequence: from,
                    to_sequence: to.unwrap_or(0),
                    org_ids: org,
                    event_types: event_type,
                    limit: 0,
                    as_of_recorded_at_micros,
                    // The largest batches the ledger sends.
                    max_batch: 0,
                },
            )
            .await?;
            eprintln!("replayed {n} events");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `wfl cluster map` / `wfl cluster place`.
async fn cluster(command: ClusterCommand) -> anyhow::Result<ExitCode> {
    use wfl_cli::placement;
    match command {
        ClusterCommand::Map {
            nats_url,
            nats_auth,
        } => {
            let cluster = placement::attach(&nats_url, nats_auth.bus_config(false)?).await?;
            let (revision, map) = cluster.map_entry().await?;
            println!("{}", placement::describe(revision, &map));
        }
        ClusterCommand::Place {
            org,
            partition,
            abort,
            patience_secs,
            nats_url,
            nats_auth,
        } => {
            let cluster = placement::attach(&nats_url, nats_auth.bus_config(false)?).await?;
            if abort {
                match placement::reopen(&cluster, &org).await? {
                    Some(p) => {
                        println!("placement of org {org} given up; it stays on partition {p}")
                    }
                    None => println!("org {org} was not being placed; nothing changed"),
                }
                return Ok(ExitCode::SUCCESS);
            }
            let to = anyhow::Context::context(partition, "give the partition to place the org on")?;
            let placed = placement::place(
                &cluster,
                &org,
                to,
                std::time::Duration::from_secs(patience_secs),
            )
            .await?;
            if placed.from == placed.to {
                println!(
                    "org {org} is on partition {to} (recorded in the table; map revision {})",
                    placed.revision
                );
            } else {
                println!(
                    "org {org} placed on partition {to} (was {}; map revision {}): its events go to partition {to} from now on",
                    placed.from, placed.revision
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
