//! The timing relations of commit outcomes, in one place.
//!
//! Three durations decide how a `COMMITTED` call learns its outcome: the gateway's commit
//! timeout, how often a gateway asks the ledger's outcomes component again for outcomes it has
//! not heard (a lost message, a restarted gateway), and the broker's duplicate window. A
//! [`Timing`] can only be built with them in the right order, and the default is checked at
//! compile time.

use std::time::Duration;

/// The timing relations of commit outcomes; see the module doc. Build with [`Timing::new`]
/// (checked) or use [`Timing::DEFAULT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    commit_timeout: Duration,
    ask_again: Duration,
    duplicate_window: Duration,
}

impl Timing {
    /// Commit timeout 30 s, ask again every 2 s, duplicate window 120 s.
    pub const DEFAULT: Timing = Timing {
        commit_timeout: Duration::from_secs(30),
        ask_again: Duration::from_secs(2),
        duplicate_window: Duration::from_secs(120),
    };

    /// Checked timing:
    /// - `0 < ask_again < commit_timeout`: a gateway asks the outcomes component at least once
    ///   before it gives up, so one lost outcome message never turns into `UNAVAILABLE`;
    /// - `commit_timeout < duplicate_window`: a caller that retries at once after an
    ///   `UNAVAILABLE` is still inside the broker's window, so its retry is not stored in the
    ///   inbox again (its outcome comes from the store through the question path).
    ///
    /// # Errors
    /// A sentence naming the relation that does not hold.
    pub const fn new(
        commit_timeout: Duration,
        ask_again: Duration,
        duplicate_window: Duration,
    ) -> Result<Timing, &'static str> {
        let t = Timing {
            commit_timeout,
            ask_again,
            duplicate_window,
        };
        match t.check() {
            Ok(()) => Ok(t),
            Err(e) => Err(e),
        }
    }

    const fn check(&self) -> Result<(), &'static str> {
        if self.ask_again.is_zero() {
            return Err("ask_again must be greater than zero");
        }
        if self.ask_again.as_nanos() >= self.commit_timeout.as_nanos() {
            return Err("ask_again must be shorter than commit_timeout");
        }
        if self.commit_timeout.as_nanos() >= self.duplicate_window.as_nanos() {
            return Err("commit_timeout must be shorter than the bus duplicate window");
        }
        Ok(())
    }

    /// How long a `COMMITTED` call waits for its outcomes before answering `UNAVAILABLE`.
    #[must_use]
    pub const fn commit_timeout(&self) -> Duration {
        self.commit_timeout
    }

    /// How often a waiting gateway asks again for outcomes it has not heard.
    #[must_use]
    pub const fn ask_again(&self) -> Duration {
        self.ask_again
    }

    /// The bus's duplicate window (JetStream `duplicate_window`, the in-process bus's window).
    #[must_use]
    pub const fn duplicate_window(&self) -> Duration {
        self.duplicate_window
    }
}

impl Default for Timing {
    fn default() -> Self {
        Timing::DEFAULT
    }
}

const _: () = assert!(Timing::DEFAULT.check().is_ok());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relations_are_enforced() {
        let s = Duration::from_secs;
        assert!(Timing::new(s(30), s(2), s(120)).is_ok());
        assert!(Timing::new(s(1), Duration::from_millis(250), s(120)).is_ok());
        assert_eq!(
            Timing::new(s(30), s(30), s(120)),
            Err("ask_again must be shorter than commit_timeout")
        );
        assert_eq!(
            Timing::new(s(30), Duration::ZERO, s(120)),
            Err("ask_again must be greater than zero")
        );
        assert_eq!(
            Timing::new(s(130), s(2), s(120)),
            Err("commit_timeout must be shorter than the bus duplicate window")
        );
    }
}
