//! How the gateway learns commit outcomes.
//!
//! The ledger's writer publishes each flushed batch's decisions once on
//! [`wfl_bus::OUTCOME_SUBJECT`]. One listener task per gateway receives them and hands each
//! outcome to the calls waiting for that event id ([`Registry`]): a call registers its ids
//! *before* it publishes, so it cannot miss its own outcome, and nothing polls on the normal path.
//!
//! A wait asks the ledger's outcomes component ([`wfl_bus::OUTCOME_QUESTION_SUBJECT`], answered
//! from the store) only when it may have missed something: at once for ids the broker reported
//! as duplicates (their first submission may have been decided before this gateway existed),
//! at once when the listener lost messages or the ledger says its commits are paused, and every
//! [`wfl_bus::Timing::ask_again`] while ids stay unanswered (a lost core message, a ledger
//! restart).

use foldhash::{HashMap, HashMapExt};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use prost::Message;
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};
use uuid::Uuid;
use wfl_bus::Bus;
use wfl_proto::internal as ipb;

type Waiters = HashMap<Uuid, Vec<(u64, mpsc::UnboundedSender<ipb::Outcome>)>>;

/// The calls waiting for outcomes, by event id.
pub(crate) struct Registry {
    waiting: Mutex<Waiters>,
    next: AtomicU64,
    /// Bumped when every wait should ask the ledger now (messages lost, commits paused).
    ask_now: watch::Sender<u64>,
    /// The ledger said its commits are paused, and no batch was decided since.
    paused: AtomicBool,
    /// True while the listener is subscribed.
    subscribed: watch::Sender<bool>,
}

/// One call's registration; removed from the registry when dropped.
pub(crate) struct Waiting {
    registry: Arc<Registry>,
    key: u64,
    ids: Vec<Uuid>,
    pub(crate) rx: mpsc::UnboundedReceiver<ipb::Outcome>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let Ok(mut waiting) = self.registry.waiting.lock() else {
            return;
        };
        for id in &self.ids {
            if let Some(slots) = waiting.get_mut(id) {
                slots.retain(|(key, _)| *key != self.key);
                if slots.is_empty() {
                    waiting.remove(id);
                }
            }
        }
    }
}

impl Registry {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            waiting: Mutex::new(HashMap::new()),
            next: AtomicU64::new(0),
            ask_now: watch::channel(0).0,
            paused: AtomicBool::new(false),
            subscribed: watch::channel(false).0,
        })
    }

    /// Registers a call waiting for `ids` (before it publishes them).
    pub(crate) fn register(self: &Arc<Self>, ids: Vec<Uuid>) -> Waiting {
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut waiting) = self.waiting.lock() {
            for id in &ids {
                waiting.entry(*id).or_default().push((key, tx.clone()));
            }
        }
        Waiting {
            registry: self.clone(),
            key,
            ids,
            rx,
        }
    }

    /// Hands an outcome to every call waiting for its event id.
    fn deliver(&self, outcome: &ipb::Outcome) {
        let Ok(id) = Uuid::parse_str(&outcome.event_id) else {
            return;
        };
        let Ok(waiting) = self.waiting.lock() else {
            return;
        };
        if let Some(slots) = waiting.get(&id) {
            for (_, tx) in slots {
                let _ = tx.send(outcome.clone());
            }
        }
    }

    fn ask_everyone(&self) {
        self.ask_now.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub(crate) fn asks(&self) -> watch::Receiver<u64> {
        self.ask_now.subscribe()
    }

    pub(crate) fn paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }

    /// Waits (at most `limit`) until the listener is subscribed, so a call about to publish
    /// hears its outcomes; false when it is not (the call then relies on asking).
    pub(crate) async fn subscribed(&self, limit: Duration) -> bool {
        let mut rx = self.subscribed.subscribe();
        let subscribed = tokio::time::timeout(limit, rx.wait_for(|s| *s))
            .await
            .is_ok_and(|r| r.is_ok());
        subscribed
    }
}

/// Receives the ledger's outcome messages until the gateway is gone (`alive` closed), and
/// subscribes again whenever the subscription ends. `heard` is called for every message (the
/// ledger is answering).
pub(crate) async fn listen(
    registry: Weak<Registry>,
    bus: Arc<dyn Bus>,
    mut alive: watch::Receiver<()>,
    heard: impl Fn() + Send + 'static,
) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let subscription = tokio::select! {
            _ = alive.changed() => return,
            s = bus.subscribe(wfl_bus::OUTCOME_SUBJECT) => s,
        };
        let mut subscription = match subscription {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "cannot subscribe to outcomes; waits ask the ledger until it works");
                tokio::select! {
                    _ = alive.changed() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        backoff = Duration::from_millis(50);
        match registry.upgrade() {
            Some(r) => {
                r.subscribed.send_replace(true);
                // Whatever was published before this subscription is asked for.
                r.ask_everyone();
            }
            None => return,
        }
        loop {
            let next = tokio::select! {
                _ = alive.changed() => return,
                n = subscription.next() => n,
            };
            let Some(registry) = registry.upgrade() else {
                return;
            };
            match next {
                Some(Ok(bytes)) => match ipb::Outcomes::decode(bytes.as_ref()) {
                    Ok(message) => {
                        heard();
                        if message.paused_reason.is_empty() {
                            registry.paused.store(false, Ordering::Relaxed);
                        } else {
                            debug!(reason = %message.paused_reason, "the ledger's commits are paused");
                            registry.paused.store(true, Ordering::Relaxed);
                            registry.ask_everyone();
                        }
                        for o in &message.outcomes {
                            registry.deliver(o);
                        }
                    }
                    Err(e) => warn!(error = %e, "malformed outcome message ignored"),
                },
                Some(Err(e)) => {
                    warn!(error = %e, "outcome messages were lost; waiting calls ask the ledger");
                    registry.ask_everyone();
                }
                None => {
                    registry.subscribed.send_replace(false);
                    warn!("outcome subscription ended; subscribing again");
                    break;
                }
            }
        }
    }
}
