//! Ingest counters, exposed by the HTTP `/metrics` endpoint in Prometheus text format.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use wfl_proto::pb;

/// A monotonically increasing counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// The current value.
    #[must_use]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// What the gateway has answered since it started.
#[derive(Debug, Default)]
pub struct Metrics {
    pub committed: Counter,
    pub accepted: Counter,
    pub duplicates: Counter,
    pub invalid: Counter,
    pub conflicts: Counter,
    pub unavailable: Counter,
    /// `COMMITTED` calls waiting for the ledger's outcome right now.
    pub waits: OutcomeWaits,
    /// False while the ledger has left outcome requests unanswered for longer than the commit
    /// timeout.
    pub ledger_answering: LedgerAnswering,
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

impl Metrics {
    pub(crate) fn count(&self, r: &Result<pb::RecordResponse, pb::ItemError>) {
        match r {
            Ok(r) if r.duplicate => self.duplicates.inc(),
            Ok(r) if r.ack == pb::AckLevel::Committed as i32 => self.committed.inc(),
            Ok(_) => {}
            Err(e) if e.code == tonic::Code::Unavailable as i32 => self.unavailable.inc(),
            Err(e) if e.code == tonic::Code::InvalidArgument as i32 => {}
            Err(_) => self.conflicts.inc(),
        }
    }

    /// Prometheus text exposition of the counters.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP wfl_ingest_events_total Events answered by the gateway, by outcome."
        );
        let _ = writeln!(out, "# TYPE wfl_ingest_events_total counter");
        for (outcome, c) in [
            ("committed", &self.committed),
            ("accepted", &self.accepted),
            ("duplicate", &self.duplicates),
            ("invalid", &self.invalid),
            ("conflict", &self.conflicts),
            ("unavailable", &self.unavailable),
        ] {
            let _ = writeln!(
                out,
                "wfl_ingest_events_total{{outcome=\"{outcome}\"}} {}",
                c.get()
            );
        }
        let (waits, oldest) = self.waits.snapshot();
        let _ = writeln!(
            out,
            "# HELP wfl_gateway_outcome_waits COMMITTED calls waiting for the ledger's outcome.\n\
             # TYPE wfl_gateway_outcome_waits gauge\nwfl_gateway_outcome_waits {waits}\n\
             # HELP wfl_gateway_outcome_wait_oldest_seconds Age of the oldest outcome wait (0 when none).\n\
             # TYPE wfl_gateway_outcome_wait_oldest_seconds gauge\nwfl_gateway_outcome_wait_oldest_seconds {oldest:.3}\n\
             # HELP wfl_gateway_ledger_answering 0 while the ledger has not answered outcome requests for longer than the commit timeout.\n\
             # TYPE wfl_gateway_ledger_answering gauge\nwfl_gateway_ledger_answering {}",
            u8::from(self.ledger_answering.get())
        );
        out
    }
}
