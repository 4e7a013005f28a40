//! One WARN line per refused event, rate-limited: at most [`PER_SECOND`] lines a second per
//! process; the lines a busy second drops are counted and reported by the next line written.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::warn;

/// Refusal lines written per second at most.
pub const PER_SECOND: u32 = 20;

struct Window {
    start: Option<Instant>,
    written: u32,
    suppressed: u64,
}

static WINDOW: Mutex<Window> = Mutex::new(Window {
    start: None,
    written: 0,
    suppressed: 0,
});

/// Whether a refusal may be logged now, and how many were dropped since the last one logged.
fn admit(now: Instant) -> Option<u64> {
    let mut w = WINDOW
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if w.start
        .is_none_or(|s| now.duration_since(s) >= Duration::from_secs(1))
    {
        w.start = Some(now);
        w.written = 0;
    }
    if w.written < PER_SECOND {
        w.written += 1;
        Some(std::mem::take(&mut w.suppressed))
    } else {
        w.suppressed += 1;
        None
    }
}

/// Logs a refused event (the caller's mistake or a state conflict; not a transient failure).
pub fn refused(event_id: &str, code: i32, message: &str) {
    let code = tonic::Code::from_i32(code);
    if !matches!(
        code,
        tonic::Code::InvalidArgument
            | tonic::Code::FailedPrecondition
            | tonic::Code::Aborted
            | tonic::Code::AlreadyExists
    ) {
        return;
    }
    if let Some(suppressed) = admit(Instant::now()) {
        warn!(
            event_id,
            code = ?code,
            reason = message,
            suppressed_before = suppressed,
            "event refused"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_per_second_lines_then_the_dropped_are_counted() {
        let t0 = Instant::now() + Duration::from_secs(3600);
        let admitted = (0..100).filter(|_| admit(t0).is_some()).count();
        assert_eq!(admitted, PER_SECOND as usize);
        // A second later: admitted again, reporting what was dropped.
        assert_eq!(
            admit(t0 + Duration::from_secs(1)),
            Some(100 - u64::from(PER_SECOND))
        );
    }
}
