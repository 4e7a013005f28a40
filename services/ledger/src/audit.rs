//! The full verification that runs in the background after start.
//!
//! Owns: running [`wfl_store::Log::verify_all`] once on the blocking pool, publishing its progress
//! and verdict ([`AuditState`]), the `/metrics` lines for it, and turning health NOT_SERVING when
//! it fails. The open itself only re-verifies the tail after the last checkpoint (see
//! `wfl_store::sled_log`); this covers the rest.
//!
//! Must not: write to the store.

use std::sync::Arc;

use tokio::sync::watch;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;
use wfl_store::Log;

/// Progress publications are at most this far apart (in sequences).
const PUBLISH_EVERY: u64 = 10_000;

/// Where the background verification stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditState {
    /// Verified up to `verified` of `head` records.
    Running { verified: u64, head: u64 },
    /// Every record up to `head` and every Merkle node verified.
    Passed { head: u64 },
    /// The first bad sequence and what did not verify.
    Failed { sequence: u64, detail: String },
}

impl AuditState {
    /// Prometheus text lines: `wfl_ledger_verified_sequence`, `wfl_ledger_verify_target_sequence`
    /// and `wfl_ledger_verify_failed` (1 = damage found; see the log for the first bad sequence).
    #[must_use]
    pub fn render(&self) -> String {
        let (verified, target, failed) = match self {
            AuditState::Running { verified, head } => (*verified, *head, 0),
            AuditState::Passed { head } => (*head, *head, 0),
            AuditState::Failed { sequence, .. } => (sequence.saturating_sub(1), *sequence, 1),
        };
        format!(
            "# HELP wfl_ledger_verified_sequence Records fully re-verified (chain and Merkle) since start.\n\
             # TYPE wfl_ledger_verified_sequence gauge\nwfl_ledger_verified_sequence {verified}\n\
             # HELP wfl_ledger_verify_target_sequence Head the background verification runs to.\n\
             # TYPE wfl_ledger_verify_target_sequence gauge\nwfl_ledger_verify_target_sequence {target}\n\
             # HELP wfl_ledger_verify_failed 1 when the background verification found damage.\n\
             # TYPE wfl_ledger_verify_failed gauge\nwfl_ledger_verify_failed {failed}\n"
        )
    }
}

/// Starts the full verification of `store` on the blocking pool.
pub(crate) fn spawn(store: Arc<dyn Log>) -> watch::Receiver<AuditState> {
    let head = store.head().map(|h| h.sequence).unwrap_or(0);
    let (tx, rx) = watch::channel(AuditState::Running { verified: 0, head });
    tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        let mut last = 0u64;
        let result = store.verify_all(&mut |verified| {
            if verified >= last + PUBLISH_EVERY {
                last = verified;
                tx.send_replace(AuditState::Running { verified, head });
            }
        });
        let state = match result {
            Ok(h) => {
                tracing::info!(
                    head = h.sequence,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "background verification passed"
                );
                AuditState::Passed { head: h.sequence }
            }
            Err(wfl_store::Error::Corrupt { sequence, detail }) => {
                tracing::error!(
                    "background verification FAILED: first bad sequence {sequence}: {detail}; \
                     health is NOT_SERVING. Stop the node and run `wfl verify DATA_DIR`"
                );
                AuditState::Failed { sequence, detail }
            }
            Err(e) => {
                tracing::error!(error = %e, "background verification could not read the store");
                AuditState::Failed {
                    sequence: 0,
                    detail: e.to_string(),
                }
            }
        };
        tx.send_replace(state);
    });
    rx
}

/// Sets `services` NOT_SERVING once the verification fails.
pub fn not_serving_on_failure(
    mut audit: watch::Receiver<AuditState>,
    reporter: HealthReporter,
    services: Vec<String>,
) {
    let mut reporter = reporter;
    tokio::spawn(async move {
        loop {
            if matches!(*audit.borrow_and_update(), AuditState::Failed { .. }) {
                for name in &services {
                    reporter
                        .set_service_status(name, ServingStatus::NotServing)
                        .await;
                }
                return;
            }
            if audit.changed().await.is_err() {
                return;
            }
        }
    });
}

/// True until the verification fails (a health signal for [`crate::liveness::drive_health`]).
#[must_use]
pub fn passing(mut audit: watch::Receiver<AuditState>) -> watch::Receiver<bool> {
    let ok = |a: &AuditState| !matches!(a, AuditState::Failed { .. });
    let (tx, rx) = watch::channel(ok(&audit.borrow_and_update()));
    tokio::spawn(async move {
        while audit.changed().await.is_ok() {
            let now = ok(&audit.borrow_and_update());
            tx.send_if_modified(|v| std::mem::replace(v, now) != now);
            if tx.is_closed() {
                return;
            }
        }
        // Keep the last verdict alive for as long as someone watches it.
        tx.closed().await;
    });
    rx
}
