//! What the `wfl`, `wfl-gateway` and `wfl-ledger` binaries share: logging set-up, signal handling,
//! the single-node composition behind `wfl up`, and the HTTP endpoints (`/healthz`, `/metrics`).
//!
//! The binaries themselves stay thin; every service's logic lives in its own crate.

/// Every binary allocates through mimalloc: the ingest path allocates per event (decoded
/// strings, encodings, outcome messages) on several threads, and glibc's allocator spent about a
/// fifth of the in-process ingest's instructions (callgrind, BENCHMARKS.md "What bounds ingest").
///
/// Built with `no_thp`: mimalloc otherwise marks its regions `MADV_HUGEPAGE`, and each time it
/// reuses a part it had returned to the OS the kernel zeroes a whole 2 MiB page. Under ingest
/// that was a tenth of the ledger's CPU and a quarter of its RSS (perf, BENCHMARKS.md
/// "Transparent huge pages"). On a kernel whose THP mode is `always` rather than `madvise`,
/// `MIMALLOC_ALLOW_THP=0` in the environment does the same.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod audit;
pub mod bench;
pub mod bench_ingest;
pub mod client;
pub mod cluster_audit;
pub mod config;
pub mod dashboard;
pub mod demo;
pub mod http;
pub mod jsonl;
pub mod loadgen;
pub mod node;
pub mod placement;
pub mod progress;
pub mod report;
pub mod security;

use tokio_util::sync::CancellationToken;

/// The request-size limit of a process that serves `Ingest` (`wfl up`, `wfl-gateway`).
#[derive(Debug, Clone, clap::Args)]
pub struct GatewayLimitArgs {
    /// Largest Ingest request accepted, in MiB; a larger one is refused with `OUT_OF_RANGE`
    /// naming its size and this limit.
    #[arg(long, env = "WFL_MAX_MESSAGE_MB", default_value_t = wfl_gateway::DEFAULT_MAX_MESSAGE_BYTES >> 20)]
    pub max_message_mb: usize,
    /// Events per RecordBatch at most (1 to 100000); more is INVALID_ARGUMENT naming this limit.
    #[arg(long, env = "WFL_MAX_BATCH_EVENTS", default_value_t = wfl_domain::MAX_BATCH)]
    pub max_batch_events: usize,
    /// Longest free-text field (reasons, references, scopes) accepted, in characters: at most the
    /// schema's 256, lower to tighten; a longer one is INVALID_ARGUMENT naming the field and
    /// this limit.
    #[arg(long, env = "WFL_MAX_TEXT_CHARS", default_value_t = wfl_domain::validate::MAX_TEXT)]
    pub max_text_chars: usize,
}

impl GatewayLimitArgs {
    /// The gateway's configuration with these limits.
    ///
    /// # Errors
    /// A limit out of its range, named with the range.
    pub fn gateway_config(&self) -> anyhow::Result<wfl_gateway::Config> {
        let text_max = wfl_domain::validate::MAX_TEXT;
        anyhow::ensure!(
            self.max_message_mb >= 1,
            "--max-message-mb must be at least 1"
        );
        anyhow::ensure!(
            (1..=wfl_gateway::MAX_BATCH_EVENTS_CEILING).contains(&self.max_batch_events),
            "--max-batch-events must be 1 to {}, not {}",
            wfl_gateway::MAX_BATCH_EVENTS_CEILING,
            self.max_batch_events
        );
        anyhow::ensure!(
            (1..=text_max).contains(&self.max_text_chars),
            "--max-text-chars must be 1 to {text_max} (the event schema's limit, which the ledger and auditors apply), not {}",
            self.max_text_chars
        );
        Ok(wfl_gateway::Config {
            max_message_bytes: self.max_message_mb.saturating_mul(1 << 20),
            max_batch_events: self.max_batch_events,
            limits: wfl_domain::Limits::with_text(self.max_text_chars),
            ..wfl_gateway::Config::default()
        })
    }
}

/// The read limits of a process that serves `Ledger` (`wfl up`, `wfl-ledger`).
#[derive(Debug, Clone, clap::Args)]
pub struct LedgerLimitArgs {
    /// Live Ledger.Subscribe streams at most; one more is answered RESOURCE_EXHAUSTED naming
    /// this limit.
    #[arg(long, env = "WFL_MAX_SUBSCRIBERS", default_value_t = wfl_ledger::subscribe::DEFAULT_MAX_SUBSCRIBERS)]
    pub max_subscribers: usize,
    /// Org ids in one Read or Subscribe filter at most; more is INVALID_ARGUMENT naming this
    /// limit.
    #[arg(long, env = "WFL_MAX_ORG_FILTER", default_value_t = wfl_ledger::subscribe::DEFAULT_MAX_ORG_FILTER)]
    pub max_org_filter: usize,
}

/// The NATS credentials flags of `wfl up`, `wfl-gateway`, `wfl-ledger` and `wfl-projector`
/// (each service has its own user on a locked-down server: `deploy/nats/wfl.conf`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct NatsAuthArgs {
    /// NATS user (with --nats-password).
    #[arg(long, env = "WFL_NATS_USER")]
    pub nats_user: Option<String>,
    /// NATS password of --nats-user.
    #[arg(long, env = "WFL_NATS_PASSWORD", hide_env_values = true)]
    pub nats_password: Option<String>,
    /// NATS `.creds` file (user JWT and nkey seed) instead of a user and password.
    #[arg(long, env = "WFL_NATS_CREDS")]
    pub nats_creds: Option<std::path::PathBuf>,
}

impl NatsAuthArgs {
    /// The bus configuration for these credentials. `owner` is true for the process that owns
    /// the streams (the ledger, `wfl up`); others provision them only when anonymous, since a
    /// locked-down server does not let their users create or change streams.
    ///
    /// # Errors
    /// When the flags are incomplete or contradictory (a user without a password...).
    pub fn bus_config(&self, owner: bool) -> anyhow::Result<wfl_bus::NatsConfig> {
        let auth = wfl_bus::NatsAuth::from_flags(
            self.nats_user.clone(),
            self.nats_password.clone(),
            self.nats_creds.clone(),
        )?;
        Ok(wfl_bus::NatsConfig {
            provision: owner || auth == wfl_bus::NatsAuth::Anonymous,
            auth,
            ..wfl_bus::NatsConfig::default()
        })
    }
}

/// Installs the text log subscriber (see [`config::init_tracing`] for the format flag).
pub fn init_tracing() {
    config::init_tracing(config::LogFormat::Text);
}

/// A root token cancelled on SIGINT or SIGTERM: servers stop accepting, consumers finish their
/// batch, sled is flushed. Shutting down is not a failure.
#[must_use]
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let on_term = async {
            match term.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = on_term => {}
        }
        tracing::info!("shutting down");
        t.cancel();
    });
    token
}

/// The exit of a service binary: success, or one line naming what is wrong (like `wfl`'s own
/// errors) and a non-zero code.
#[must_use]
pub fn exit_with(name: &str, result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
