//! What the `wfl`, `wfl-gateway` and `wfl-ledger` binaries share: logging set-up, signal handling,
//! the single-node composition behind `wfl up`, and the HTTP endpoints (`/healthz`, `/metrics`).
//!
//! The binaries themselves stay thin; every service's logic lives in its own crate.

pub mod audit;
pub mod bench;
pub mod client;
pub mod loadgen;
pub mod node;
pub mod report;
pub mod security;

use tokio_util::sync::CancellationToken;

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours only on a terminal: redirected logs stay plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
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
