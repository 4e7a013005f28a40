//! Liveness of the ledger's NATS paths: a stuck inbox or a stuck committed-stream publisher is
//! noticed, logged once, shown as a gauge and as health NOT_SERVING, and recovered in steps.
//!
//! Owns: [`Liveness`] (the gauges and counters behind `/metrics` and health), [`InboxWatch`] (the
//! inbox pump's stall detector and its recovery ladder), [`PublisherWatch`], and
//! [`Liveness::status`] (the readiness probe that `/healthz` and gRPC health follow).
//!
//! Must not: decide events or touch the store; recover by skipping messages (every recovery step
//! only re-reads the inbox, whose redeliveries the writer recognises by event id).
//!
//! The inbox is stalled when the consumer has work and nothing arrives: messages not yet
//! delivered (`num_pending > 0`) and no delivery for [`StallConfig::inbox_stall`]; or only
//! delivered-but-unacknowledged messages (`num_ack_pending > 0`, held by a dead predecessor or
//! whose acks were lost) and no redelivery within 2 × the consumer's `ack_wait`. The ladder:
//! step 1 re-opens the pull subscription; step 2, one stall period later, deletes and re-creates
//! the durable consumer (it starts from the ack floor); step 3, one more period later, stops the
//! ledger with [`Error::Stalled`] so the process exits non-zero and its supervisor restarts it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{error, info, warn};
use wfl_bus::{Inbox, InboxState, StreamHoles};

use crate::Error;

/// Stall thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StallConfig {
    /// The inbox has undelivered work and nothing arrived for this long: stalled. Also the time
    /// each recovery step is given before the next one.
    pub inbox_stall: Duration,
    /// The committed-stream publisher made no progress for this long while behind: stalled.
    pub publisher_stall: Duration,
}

impl Default for StallConfig {
    fn default() -> Self {
        Self {
            inbox_stall: Duration::from_secs(10),
            publisher_stall: Duration::from_secs(10),
        }
    }
}

/// The recovery steps, in the order they are tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Re-open the pull subscription on the same consumer.
    Reopen,
    /// Delete and re-create the durable consumer (from its ack floor).
    Recreate,
    /// Stop the ledger (non-zero exit) so the supervisor restarts it.
    Exit,
}

impl Step {
    const ALL: [Step; 3] = [Step::Reopen, Step::Recreate, Step::Exit];

    fn label(self) -> &'static str {
        match self {
            Step::Reopen => "reopen",
            Step::Recreate => "recreate",
            Step::Exit => "exit",
        }
    }

    fn index(self) -> usize {
        match self {
            Step::Reopen => 0,
            Step::Recreate => 1,
            Step::Exit => 2,
        }
    }
}

/// Gauges and counters of the ledger's liveness, shared by the pump, the publisher, `/metrics`
/// and health.
#[derive(Debug)]
pub struct Liveness {
    inbox_stalled: AtomicBool,
    inbox_stalls: AtomicU64,
    recoveries: [AtomicU64; 3],
    publisher_stalled: AtomicBool,
    publisher_stalls: AtomicU64,
    /// The inbox consumer's undelivered and unacknowledged messages, as last seen (the pump
    /// samples the consumer at most once a second).
    inbox_pending: AtomicU64,
    inbox_ack_pending: AtomicU64,
    /// The last sequence fully published on the committed stream.
    published: AtomicU64,
    /// Sequences the committed stream lacks below what it holds (found at start), if any.
    stream_gap: std::sync::Mutex<Option<StreamHoles>>,
    /// Why the committed stream is not this ledger's history (found at start), if it is not.
    stream_foreign: std::sync::Mutex<Option<String>>,
    /// True while neither the inbox nor the publisher is stalled.
    healthy: watch::Sender<bool>,
}

/// What the readiness probe and the start-up ERROR say about holes in the committed stream.
#[must_use]
pub fn stream_gap_message(holes: &StreamHoles) -> String {
    let mut ranges: Vec<String> = holes
        .ranges
        .iter()
        .map(|(a, b)| format!("{a}..={b}"))
        .collect();
    let listed: u64 = holes.ranges.iter().map(|(a, b)| b - a + 1).sum();
    if holes.missing > listed {
        ranges.push(format!("{} more in later holes", holes.missing - listed));
    }
    format!(
        "WFL_LEDGER lacks {} committed sequence(s) below its last message ({}): its consumers \
         never see them. Backfill: restart the ledger once with --republish-stream (it purges \
         WFL_LEDGER and republishes every sequence from 1, in order; consumers skip what they \
         hold by Wfl-Sequence)",
        holes.missing,
        ranges.join(", ")
    )
}

impl Default for Liveness {
    fn default() -> Self {
        Self {
            inbox_stalled: AtomicBool::new(false),
            inbox_stalls: AtomicU64::new(0),
            recoveries: Default::default(),
            publisher_stalled: AtomicBool::new(false),
            publisher_stalls: AtomicU64::new(0),
            inbox_pending: AtomicU64::new(0),
            inbox_ack_pending: AtomicU64::new(0),
            published: AtomicU64::new(0),
            stream_gap: std::sync::Mutex::new(None),
            stream_foreign: std::sync::Mutex::new(None),
            healthy: watch::channel(true).0,
        }
    }
}

impl Liveness {
    /// True while neither the inbox nor the publisher is stalled; changes are signalled.
    #[must_use]
    pub fn healthy(&self) -> watch::Receiver<bool> {
        self.healthy.subscribe()
    }

    /// Readiness: `Ok` unless the inbox or the publisher is stalled.
    ///
    /// # Errors
    /// Which of them is stalled (recovery is under way; see the log and `/metrics`).
    pub fn status(&self) -> Result<(), String> {
        match (
            self.inbox_stalled.load(Ordering::Relaxed),
            self.publisher_stalled.load(Ordering::Relaxed),
        ) {
            (false, false) => Ok(()),
            (true, false) => Err("the inbox consumer is stalled; recovering".into()),
            (false, true) => Err("publishing the committed stream is stalled".into()),
            (true, true) => {
                Err("the inbox consumer and the committed-stream publisher are stalled".into())
            }
        }
    }

    /// Stalls detected on the inbox since start.
    #[must_use]
    pub fn inbox_stalls(&self) -> u64 {
        self.inbox_stalls.load(Ordering::Relaxed)
    }

    /// Recovery steps taken since start.
    #[must_use]
    pub fn recoveries(&self, step: Step) -> u64 {
        self.recoveries[step.index()].load(Ordering::Relaxed)
    }

    fn set_inbox_stalled(&self, stalled: bool) {
        self.inbox_stalled.store(stalled, Ordering::Relaxed);
        self.update_health();
    }

    fn set_publisher_stalled(&self, stalled: bool) {
        self.publisher_stalled.store(stalled, Ordering::Relaxed);
        self.update_health();
    }

    fn update_health(&self) {
        let ok = !self.inbox_stalled.load(Ordering::Relaxed)
            && !self.publisher_stalled.load(Ordering::Relaxed);
        self.healthy
            .send_if_modified(|h| std::mem::replace(h, ok) != ok);
    }

    /// Readiness of the committed stream: `Ok` unless it holds another ledger's history or lacks
    /// sequences below what it holds.
    ///
    /// # Errors
    /// What is wrong and how to put it right.
    pub fn stream(&self) -> Result<(), String> {
        if let Some(why) = &*self
            .stream_foreign
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
        {
            return Err(why.clone());
        }
        match &*self
            .stream_gap
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
        {
            Some(holes) => Err(stream_gap_message(holes)),
            None => Ok(()),
        }
    }

    pub(crate) fn set_stream_gap(&self, gap: Option<StreamHoles>) {
        *self
            .stream_gap
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = gap;
    }

    /// The committed stream carries another history than this ledger's: `why`, as readiness says.
    pub(crate) fn set_stream_foreign(&self, why: String) {
        *self
            .stream_foreign
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(why);
    }

    /// The publisher fully published up to `sequence`.
    pub(crate) fn set_published(&self, sequence: u64) {
        self.published.store(sequence, Ordering::Relaxed);
    }

    /// The last sequence the publisher fully published.
    #[cfg(test)]
    pub(crate) fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    /// Registers the liveness figures in `registry`, read at each scrape: `wfl_inbox_stalled`,
    /// `wfl_inbox_stalls_total`, `wfl_inbox_recoveries_total{step}`, `wfl_inbox_pending`,
    /// `wfl_inbox_ack_pending`, `wfl_publisher_stalled`, `wfl_publisher_stalls_total`,
    /// `wfl_publisher_cursor_sequence`, `wfl_publisher_stream_missing`.
    pub fn register(self: &std::sync::Arc<Self>, registry: &wfl_metrics::Registry) {
        let this = self.clone();
        let inbox_stalled = registry.gauge(
            "wfl_inbox_stalled",
            "1 while the ledger's inbox consumer has work but nothing arrives.",
        );
        let inbox_stalls = registry.counter(
            "wfl_inbox_stalls_total",
            "Inbox stalls detected since start.",
        );
        let recoveries = Step::ALL.map(|step| {
            registry.counter_with(
                "wfl_inbox_recoveries_total",
                &[("step", step.label().to_owned())],
                "Inbox recovery steps taken since start.",
            )
        });
        let pending = registry.gauge(
            "wfl_inbox_pending",
            "Inbox lag: broker messages in WFL_INBOX not yet delivered to the ledger's consumer; one message is a frame of up to 1,000 events of one org (sampled at most once a second).",
        );
        let ack_pending = registry.gauge(
            "wfl_inbox_ack_pending",
            "Inbox broker messages delivered to the ledger and not yet acknowledged; one message is a frame of up to 1,000 events of one org (sampled at most once a second).",
        );
        let publisher_stalled = registry.gauge(
            "wfl_publisher_stalled",
            "1 while the committed-stream publisher is behind and makes no progress.",
        );
        let publisher_stalls = registry.counter(
            "wfl_publisher_stalls_total",
            "Publisher stalls detected since start.",
        );
        let cursor = registry.gauge(
            "wfl_publisher_cursor_sequence",
            "Last ledger sequence published on WFL_LEDGER.",
        );
        let missing = registry.gauge(
            "wfl_publisher_stream_missing",
            "Committed sequences WFL_LEDGER lacks below its last message (found at start; see /healthz).",
        );
        registry.on_scrape(move |_| {
            let flag = |b: &AtomicBool| f64::from(u8::from(b.load(Ordering::Relaxed)));
            inbox_stalled.set(flag(&this.inbox_stalled));
            inbox_stalls.absolute(this.inbox_stalls());
            for (step, c) in Step::ALL.iter().zip(&recoveries) {
                c.absolute(this.recoveries(*step));
            }
            pending.set(this.inbox_pending.load(Ordering::Relaxed) as f64);
            ack_pending.set(this.inbox_ack_pending.load(Ordering::Relaxed) as f64);
            publisher_stalled.set(flag(&this.publisher_stalled));
            publisher_stalls.absolute(this.publisher_stalls.load(Ordering::Relaxed));
            cursor.set(this.published.load(Ordering::Relaxed) as f64);
            let gap = this
                .stream_gap
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .as_ref()
                .map_or(0, |g| g.missing);
            missing.set(gap as f64);
        });
    }
}

impl Liveness {
    fn saw(&self, state: &InboxState) {
        self.inbox_pending
            .store(state.num_pending, Ordering::Relaxed);
        self.inbox_ack_pending
            .store(state.num_ack_pending, Ordering::Relaxed);
    }
}

/// How often an idle pump asks the broker for the consumer's state (one consumer-info request;
/// the cost does not depend on history).
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// A stall in progress: when it was detected and which step was taken last.
#[derive(Debug)]
struct Stall {
    detected: Instant,
    last_step: Step,
    stepped_at: Instant,
}

/// The inbox pump's stall detector. Call [`InboxWatch::arrived`] for every non-empty batch and
/// [`InboxWatch::idle`] whenever a wait for deliveries came back empty.
pub(crate) struct InboxWatch {
    after: Duration,
    liveness: std::sync::Arc<Liveness>,
    last_arrival: Instant,
    /// When the consumer was first seen with work since the last arrival.
    work_since: Option<Instant>,
    last_check: Option<Instant>,
    /// When [`InboxWatch::sample`] last asked the consumer.
    last_sample: Option<Instant>,
    stall: Option<Stall>,
}

impl InboxWatch {
    pub(crate) fn new(after: Duration, liveness: std::sync::Arc<Liveness>) -> Self {
        Self {
            after,
            liveness,
            last_arrival: Instant::now(),
            work_since: None,
            last_check: None,
            last_sample: None,
            stall: None,
        }
    }

    /// While busy: samples the consumer's pending counts for `/metrics` (inbox lag), at most
    /// once per [`CHECK_EVERY`]; one consumer-info request, whatever the history.
    pub(crate) async fn sample(&mut self, inbox: &mut dyn Inbox) {
        let now = Instant::now();
        if self
            .last_sample
            .is_some_and(|t| now.duration_since(t) < CHECK_EVERY)
        {
            return;
        }
        self.last_sample = Some(now);
        if let Ok(Some(state)) = inbox.state().await {
            self.liveness.saw(&state);
        }
    }

    /// Something was delivered: the inbox is live.
    pub(crate) fn arrived(&mut self) {
        self.last_arrival = Instant::now();
        self.work_since = None;
        self.recovered("deliveries resumed");
    }

    fn recovered(&mut self, why: &str) {
        if let Some(stall) = self.stall.take() {
            info!(
                after_ms = stall.detected.elapsed().as_millis() as u64,
                last_step = stall.last_step.label(),
                "inbox recovered: {why}; health SERVING"
            );
            self.liveness.set_inbox_stalled(false);
        }
    }

    /// Nothing was delivered for a while: look at the consumer and, when stalled, take the next
    /// recovery step that is due.
    ///
    /// # Errors
    /// [`Error::Stalled`] when every step failed to bring deliveries back (the last resort).
    pub(crate) async fn idle(&mut self, inbox: &mut dyn Inbox) -> Result<(), Error> {
        let now = Instant::now();
        if self
            .last_check
            .is_some_and(|t| now.duration_since(t) < CHECK_EVERY.min(self.after))
        {
            return Ok(());
        }
        self.last_check = Some(now);
        let state = match inbox.state().await {
            Ok(Some(state)) => {
                self.liveness.saw(&state);
                state
            }
            Ok(None) => return Ok(()),
            Err(e) => {
                // The broker is unreachable: not a stall of the consumer (the connection is
                // reported as such); a consumer that is gone is re-created by the next reopen.
                if matches!(e, wfl_bus::Error::Rejected(_)) && self.stall.is_some() {
                    warn!(error = %e, "inbox consumer state unavailable during a stall");
                }
                return Ok(());
            }
        };
        if state.num_pending == 0 && state.num_ack_pending == 0 {
            self.work_since = None;
            self.recovered("no work left");
            return Ok(());
        }
        let since = *self.work_since.get_or_insert(now);
        let quiet = now.duration_since(self.last_arrival.max(since));
        match &self.stall {
            None => {
                let limit = stall_limit(&state, self.after);
                if quiet < limit {
                    return Ok(());
                }
                error!(
                    consumer = %state,
                    quiet_ms = quiet.as_millis() as u64,
                    limit_ms = limit.as_millis() as u64,
                    "inbox STALLED: the consumer has work but nothing arrives; health NOT_SERVING; recovering"
                );
                self.liveness.inbox_stalls.fetch_add(1, Ordering::Relaxed);
                self.liveness.set_inbox_stalled(true);
                self.stall = Some(Stall {
                    detected: now,
                    last_step: Step::Reopen,
                    stepped_at: now,
                });
                self.take_step(Step::Reopen, inbox, &state).await
            }
            Some(stall) if now.duration_since(stall.stepped_at) >= self.after => {
                let next = match stall.last_step {
                    Step::Reopen => Step::Recreate,
                    Step::Recreate | Step::Exit => Step::Exit,
                };
                if let Some(stall) = self.stall.as_mut() {
                    stall.last_step = next;
                    stall.stepped_at = now;
                }
                self.take_step(next, inbox, &state).await
            }
            Some(_) => Ok(()),
        }
    }

    async fn take_step(
        &mut self,
        step: Step,
        inbox: &mut dyn Inbox,
        state: &InboxState,
    ) -> Result<(), Error> {
        self.liveness.recoveries[step.index()].fetch_add(1, Ordering::Relaxed);
        let result = match step {
            Step::Reopen => {
                warn!(
                    step = step.label(),
                    "inbox recovery: re-opening the pull subscription"
                );
                inbox.reopen().await
            }
            Step::Recreate => {
                warn!(
                    step = step.label(),
                    consumer = %state,
                    "inbox recovery: deleting and re-creating the durable consumer (from its ack floor)"
                );
                inbox.recreate().await
            }
            Step::Exit => {
                error!(
                    step = step.label(),
                    consumer = %state,
                    "inbox recovery failed: stopping the ledger (non-zero exit) so its supervisor restarts it"
                );
                return Err(Error::Stalled(format!(
                    "the inbox stayed stalled after re-opening and re-creating its consumer ({state})"
                )));
            }
        };
        if let Err(e) = result {
            warn!(step = step.label(), error = %e, "inbox recovery step failed; the next one follows");
        }
        Ok(())
    }
}

/// How long a consumer with work may stay quiet: [`StallConfig::inbox_stall`] when messages wait
/// undelivered, 2 × `ack_wait` (at least `after`) when only unacknowledged ones remain (they are
/// redelivered once their ack wait expires).
fn stall_limit(state: &InboxState, after: Duration) -> Duration {
    if state.num_pending > 0 {
        after
    } else {
        let ack_wait = if state.ack_wait.is_zero() {
            Duration::from_secs(30)
        } else {
            state.ack_wait
        };
        (ack_wait * 2).max(after)
    }
}

/// The publisher's stall detector: behind and no progress for [`StallConfig::publisher_stall`].
pub(crate) struct PublisherWatch {
    after: Duration,
    liveness: std::sync::Arc<Liveness>,
    failing_since: Option<Instant>,
    stalled: bool,
}

impl PublisherWatch {
    pub(crate) fn new(after: Duration, liveness: std::sync::Arc<Liveness>) -> Self {
        Self {
            after,
            liveness,
            failing_since: None,
            stalled: false,
        }
    }

    /// The ledger's liveness (for the publisher's cursor and the stream's holes).
    pub(crate) fn liveness(&self) -> &Liveness {
        &self.liveness
    }

    /// A chunk was published.
    pub(crate) fn progressed(&mut self) {
        self.failing_since = None;
        if std::mem::take(&mut self.stalled) {
            info!("committed-stream publisher recovered; health SERVING");
            self.liveness.set_publisher_stalled(false);
        }
    }

    /// A publish failed while `behind` events wait to be published.
    pub(crate) fn failed(&mut self, behind: u64, error: &dyn std::fmt::Display) {
        let since = *self.failing_since.get_or_insert_with(Instant::now);
        if !self.stalled && since.elapsed() >= self.after {
            self.stalled = true;
            error!(
                behind,
                failing_ms = since.elapsed().as_millis() as u64,
                error = %error,
                "committed-stream publisher STALLED; health NOT_SERVING; it keeps retrying (the NATS client reconnects by itself)"
            );
            self.liveness
                .publisher_stalls
                .fetch_add(1, Ordering::Relaxed);
            self.liveness.set_publisher_stalled(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(pending: u64, ack_pending: u64) -> InboxState {
        InboxState {
            num_pending: pending,
            num_ack_pending: ack_pending,
            ack_wait: Duration::from_secs(10),
            ..InboxState::default()
        }
    }

    #[test]
    fn undelivered_work_stalls_after_the_configured_time() {
        assert_eq!(
            stall_limit(&state(5, 3), Duration::from_secs(10)),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn unacknowledged_work_gets_two_ack_waits_to_be_redelivered() {
        assert_eq!(
            stall_limit(&state(0, 3), Duration::from_secs(10)),
            Duration::from_secs(20)
        );
        assert_eq!(
            stall_limit(&state(0, 3), Duration::from_secs(60)),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn metrics_name_every_step() {
        let l = std::sync::Arc::new(Liveness::default());
        let registry = wfl_metrics::Registry::new();
        l.register(&registry);
        l.recoveries[Step::Recreate.index()].fetch_add(2, Ordering::Relaxed);
        let text = registry.render();
        assert!(text.contains("wfl_inbox_stalled 0"));
        assert!(text.contains("wfl_inbox_recoveries_total{step=\"reopen\"} 0"));
        assert!(text.contains("wfl_inbox_recoveries_total{step=\"recreate\"} 2"));
        assert!(text.contains("wfl_inbox_recoveries_total{step=\"exit\"} 0"));
    }

    #[test]
    fn health_follows_both_stalls() {
        let l = Liveness::default();
        let h = l.healthy();
        l.set_inbox_stalled(true);
        assert!(!*h.borrow());
        l.set_publisher_stalled(true);
        l.set_inbox_stalled(false);
        assert!(!*h.borrow());
        l.set_publisher_stalled(false);
        assert!(*h.borrow());
    }
}
