//! Process-wide settings shared by every binary (`wfl up`, `wfl-gateway`, `wfl-ledger`,
//! `wfl-projector`): the log format.

use std::io::IsTerminal;

/// How log lines are written on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (colours only on a terminal).
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `fields`, `target`), for log shippers.
    Json,
}

/// The logging flags of a server binary.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct LogArgs {
    /// Log format on stderr: text or json (one JSON object per line). Verbosity: RUST_LOG
    /// (default info).
    #[arg(long, env = "WFL_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// Installs the process's log subscriber (stderr; `RUST_LOG` filters, default `info`). A second
/// call does nothing.
pub fn init_tracing(format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        // Colours only on a terminal: redirected logs stay plain text.
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
}
