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
