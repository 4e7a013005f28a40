//! The ledger's decisions replayed in memory, for tests of event generators (`wfl demo`,
//! `wfl load`, `wfl bench`): every event must validate and be accepted, in order.

use std::collections::BTreeMap;

use wfl_domain::{Event, EventId, History, LedgerState, OriginalEvent};

/// Events recorded so far, by id: what [`LedgerState::decide`] looks corrections up in.
#[derive(Debug, Default)]
pub struct Originals(pub BTreeMap<EventId, OriginalEvent>);

impl History for Originals {
    fn original(&self, id: &EventId) -> Option<OriginalEvent> {
        self.0.get(id).cloned()
    }
}

/// A ledger's state without a ledger: [`Decider::accept`] each event in order.
#[derive(Debug, Default)]
pub struct Decider {
    state: LedgerState,
    originals: Originals,
}

impl Decider {
    /// Validates `e`, decides it against the state so far and applies it.
    ///
    /// # Panics
    /// When `e` is invalid or the ledger would refuse it, naming the event and the reason.
    pub fn accept(&mut self, e: &Event) {
        if let Err(v) = wfl_domain::validate(e) {
            panic!("invalid {e:?}: {v}");
        }
        if let Err(c) = self.state.decide(e, &self.originals) {
            panic!("refused {e:?}: {c:?}");
        }
        self.state.apply(e, &self.originals);
        self.originals.0.insert(e.event_id, OriginalEvent::of(e));
    }
}
