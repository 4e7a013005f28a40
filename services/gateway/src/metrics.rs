//! Ingest counters, exposed by the HTTP `/metrics` endpoint in Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

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
        out
    }
}
