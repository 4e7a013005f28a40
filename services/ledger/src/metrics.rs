//! The ledger's `/metrics` figures, in the node's [`wfl_metrics::Registry`] (`Config::metrics`).
//!
//! Owns: the scrape-time gauges read from the ledger's shared state (head, background
//! verification, storage pause; liveness and subscribers register their own) and the writer's
//! commit histograms ([`CommitTimer`]: events per flush, append + flush seconds).

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;
use wfl_metrics::Registry;

use crate::audit::AuditState;
use crate::storage::StorageState;

/// Registers the ledger's scrape-time figures.
pub(crate) fn register(
    registry: &Registry,
    head: watch::Receiver<u64>,
    audit: watch::Receiver<AuditState>,
    storage: watch::Receiver<StorageState>,
    liveness: &Arc<crate::liveness::Liveness>,
    subscribers: &Arc<crate::subscribe::Registry>,
) {
    liveness.register(registry);
    subscribers.register_metrics(registry, head.clone());
    let head_g = registry.gauge(
        "wfl_ledger_head_sequence",
        "Last committed ledger sequence.",
    );
    let verified = registry.gauge(
        "wfl_ledger_verified_sequence",
        "Records fully re-verified (chain and Merkle) since start.",
    );
    let target = registry.gauge(
        "wfl_ledger_verify_target_sequence",
        "Head the background verification runs to.",
    );
    let failed = registry.gauge(
        "wfl_ledger_verify_failed",
        "1 when the background verification found damage.",
    );
    let paused = registry.gauge(
        "wfl_ledger_storage_paused",
        "1 while commits are paused: the data directory is full or read-only.",
    );
    registry.on_scrape(move |_| {
        head_g.set(*head.borrow() as f64);
        let (v, t, f) = match &*audit.borrow() {
            AuditState::Running { verified, head } => (*verified, *head, 0),
            AuditState::Passed { head } => (*head, *head, 0),
            AuditState::Failed { sequence, .. } => (sequence.saturating_sub(1), *sequence, 1),
        };
        verified.set(v as f64);
        target.set(t as f64);
        failed.set(f64::from(f));
        paused.set(f64::from(u8::from(storage.borrow().is_paused())));
    });
}

/// Times one group commit: created before the append with the batch's size, [`done`] after the
/// flush.
///
/// [`done`]: CommitTimer::done
pub(crate) struct CommitTimer {
    registry: Registry,
    events: usize,
    started: Instant,
}

impl CommitTimer {
    pub(crate) fn start(registry: &Registry, events: usize) -> Self {
        Self {
            registry: registry.clone(),
            events,
            started: Instant::now(),
        }
    }

    pub(crate) fn done(self) {
        self.registry
            .histogram(
                "wfl_ledger_commit_seconds",
                "Seconds to append and flush one group commit (one sled batch).",
            )
            .record(self.started.elapsed().as_secs_f64());
        self.registry
            .histogram(
                "wfl_ledger_commit_batch_events",
                "Events (committed and refused) written per flush.",
            )
            .record(self.events as f64);
    }
}
