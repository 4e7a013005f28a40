//! The gateway's figures in the node's [`wfl_metrics::Registry`]: ingest outcomes, refusals by
//! reason, the latency of `Record`/`RecordBatch` calls, and the outcome waits in progress.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wfl_metrics::Registry;
use wfl_proto::pb;

/// A counter of the registry (`inc` adds one).
#[derive(Debug, Clone)]
pub struct Counter(wfl_metrics::Counter);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.increment(1);
    }
}

/// What the gateway has answered since it started.
pub struct Metrics {
    registry: Registry,
    pub committed: Counter,
    pub accepted: Counter,
    pub duplicates: Counter,
    pub invalid: Counter,
    pub conflicts: Counter,
    pub unavailable: Counter,
    /// Seconds from a `Record` call to its outcome.
    record_seconds: wfl_metrics::Histogram,
    /// Seconds from a `RecordBatch` call to its outcomes.
    batch_seconds: wfl_metrics::Histogram,
    /// `COMMITTED` calls waiting for the ledger's outcome right now.
    pub waits: Arc<OutcomeWaits>,
    /// False while the ledger has left outcome requests unanswered for longer than the commit
    /// timeout.
    pub ledger_answering: Arc<LedgerAnswering>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    /// Figures in a registry of their own (tests).
    fn default() -> Self {
        Self::new(&Registry::new())
    }
}

/// Which call a latency belongs to.
#[derive(Debug, Clone, Copy)]
pub enum Call {
    Record,
    RecordBatch,
}

impl Metrics {
    /// The gateway's figures, registered in `registry`.
    #[must_use]
    pub fn new(registry: &Registry) -> Self {
        let outcome = |o: &str| {
            Counter(registry.counter_with(
                "wfl_ingest_events_total",
                &[("outcome", o.to_owned())],
                "Events answered by the gateway, by outcome.",
            ))
        };
        let latency = |call: &str| {
            registry.histogram_with(
                "wfl_gateway_call_seconds",
                &[("call", call.to_owned())],
                "Seconds from a Record or RecordBatch call to its outcome (at COMMITTED: the ledger's commit).",
            )
        };
        let this = Self {
            registry: registry.clone(),
            committed: outcome("committed"),
            accepted: outcome("accepted"),
            duplicates: outcome("duplicate"),
            invalid: outcome("invalid"),
            conflicts: outcome("conflict"),
            unavailable: outcome("unavailable"),
            record_seconds: latency("record"),
            batch_seconds: latency("record_batch"),
            waits: Arc::default(),
            ledger_answering: Arc::default(),
        };
        let waits_g = registry.gauge(
            "wfl_gateway_outcome_waits",
            "COMMITTED calls waiting for the ledger's outcome.",
        );
        let oldest_g = registry.gauge(
            "wfl_gateway_outcome_wait_oldest_seconds",
            "Age of the oldest outcome wait (0 when none).",
        );
        let answering_g = registry.gauge(
            "wfl_gateway_ledger_answering",
            "0 while the ledger has not answered outcome requests for longer than the commit timeout.",
        );
        let (waits, answering) = (
            Arc::downgrade(&this.waits),
            Arc::downgrade(&this.ledger_answering),
        );
        registry.on_scrape(move |_| {
            if let Some(waits) = waits.upgrade() {
                let (n, oldest) = waits.snapshot();
                waits_g.set(n as f64);
                oldest_g.set(oldest);
            }
            if let Some(a) = answering.upgrade() {
                answering_g.set(f64::from(u8::from(a.get())));
            }
        });
        this
    }

    /// The latency of one call.
    pub fn call_took(&self, call: Call, took: Duration) {
        match call {
            Call::Record => &self.record_seconds,
            Call::RecordBatch => &self.batch_seconds,
        }
        .record(took.as_secs_f64());
    }

    pub(crate) fn count(&self, r: &Result<pb::RecordResponse, pb::ItemError>) {
        match r {
            Ok(r) if r.duplicate => self.duplicates.inc(),
            Ok(r) if r.ack == pb::AckLevel::Committed as i32 => self.committed.inc(),
            Ok(_) => {}
            Err(e) => {
                if e.code == tonic::Code::Unavailable as i32 {
                    self.unavailable.inc();
                } else if e.code != tonic::Code::InvalidArgument as i32 {
                    self.conflicts.inc();
                }
                if e.code != tonic::Code::Unavailable as i32 {
                    self.refused(e.code);
                }
            }
        }
    }

    /// `wfl_ingest_refusals_total{reason}`: an event refused, by gRPC code (invalid_argument:
    /// the gateway's or the ledger's validation; failed_precondition: the worker's lifecycle;
    /// aborted: expected version; already_exists: same id, other content; resource_exhausted:
    /// the ledger's disk).
    fn refused(&self, code: i32) {
        self.registry
            .counter_with(
                "wfl_ingest_refusals_total",
                &[("reason", reason(code).to_owned())],
                "Events refused, by reason (the gRPC code of the item's error).",
            )
            .increment(1);
    }
}

fn reason(code: i32) -> &'static str {
    match tonic::Code::from_i32(code) {
        tonic::Code::InvalidArgument => "invalid_argument",
        tonic::Code::FailedPrecondition => "failed_precondition",
        tonic::Code::Aborted => "aborted",
        tonic::Code::AlreadyExists => "already_exists",
        tonic::Code::ResourceExhausted => "resource_exhausted",
        tonic::Code::PermissionDenied => "permission_denied",
        _ => "other",
    }
}

/// The outcome waits in progress: how many, and since when (for the oldest one's age).
#[derive(Debug, Default)]
pub struct OutcomeWaits {
    next: AtomicU64,
    open: Mutex<HashMap<u64, Instant>>,
}

/// Removes its wait from [`OutcomeWaits`] when dropped (the call answered, failed or was
/// cancelled by the client).
pub struct WaitGuard<'a> {
    waits: &'a OutcomeWaits,
    key: u64,
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut open) = self.waits.open.lock() {
            open.remove(&self.key);
        }
    }
}

impl OutcomeWaits {
    /// Registers a wait until the guard is dropped.
    pub fn start(&self) -> WaitGuard<'_> {
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut open) = self.open.lock() {
            open.insert(key, Instant::now());
        }
        WaitGuard { waits: self, key }
    }

    /// Waits in progress and the age of the oldest one in seconds (0 when none).
    #[must_use]
    pub fn snapshot(&self) -> (usize, f64) {
        let Ok(open) = self.open.lock() else {
            return (0, 0.0);
        };
        let oldest = open
            .values()
            .map(|t| t.elapsed().as_secs_f64())
            .fold(0.0, f64::max);
        (open.len(), oldest)
    }
}

/// Whether the ledger answers outcome requests.
#[derive(Debug)]
pub struct LedgerAnswering(AtomicBool);

impl Default for LedgerAnswering {
    fn default() -> Self {
        Self(AtomicBool::new(true))
    }
}

impl LedgerAnswering {
    /// The current verdict.
    #[must_use]
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    pub(crate) fn set(&self, answering: bool) -> bool {
        self.0.swap(answering, Ordering::Relaxed) != answering
    }
}
