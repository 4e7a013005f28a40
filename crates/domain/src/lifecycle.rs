//! The worker lifecycle and the other state checks the ledger makes before committing an event.
//!
//! [`LedgerState`] is a fold over committed events: [`LedgerState::decide`] says whether an event may
//! be committed after everything already applied, and [`LedgerState::apply`] folds a committed event
//! in. The rules here depend on nothing but the events, so the state is the same whether it is
//! folded from the whole history or restored from a copy and then folded forward.
//! [`LedgerState::apply_tracked`] also notes what it changed in a [`Changed`], so that the ledger
//! persists only the workers and retractions each batch touched.
//!
//! Rules:
//! - a worker is employed after `WorkerHired` (or a baseline load) and until a separation;
//! - hiring an employed worker, and separating or changing a worker who is not employed, are
//!   refused ([`Conflict::Lifecycle`], `FAILED_PRECONDITION`);
//! - a baseline `WorkerHired` may only load a worker the ledger has never seen;
//! - `expected_version` must equal the number of committed events naming that worker
//!   ([`Conflict::Version`], `ABORTED`);
//! - a correction or retraction must name a committed, unretracted event of the same org; a
//!   correction keeps the event type and worker; a retraction of a hire or separation is allowed
//!   only for the worker's latest hire or separation, and undoes it;
//! - `PositionBackfilled` / `PositionClosed` may only link a committed separation of the same org.

use crate::event::{Event, EventType, LifecycleEffect, Payload};
use crate::ids::{EventId, OrgId, WorkerRef};
// The ledger state's maps stay on std's SipHash: they live as long as the ledger and are keyed
// by names and ids clients choose (foldhash's seed is not meant to withstand an attacker who can
// study a long-running process).
use std::collections::{HashMap, HashSet};

/// Why an event cannot be committed in the current state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    /// The event contradicts the state (worker not employed, unknown original event...).
    #[error("{0}")]
    Lifecycle(String),
    /// The client's `expected_version` does not match the worker stream's version.
    #[error(
        "expected version {expected} for worker {worker}, but the stream is at version {actual}"
    )]
    Version {
        worker: String,
        expected: u64,
        actual: u64,
    },
}

/// What the ledger knows about an already-committed event, for corrections, retractions and links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginalEvent {
    pub org_id: OrgId,
    pub event_type: EventType,
    pub worker_ref: Option<WorkerRef>,
}

impl OriginalEvent {
    /// The summary of a committed event.
    #[must_use]
    pub fn of(event: &Event) -> Self {
        Self {
            org_id: event.org_id.clone(),
            event_type: event.event_type(),
            worker_ref: event.payload.worker_effect().map(|(w, _)| w.clone()),
        }
    }
}

/// Look-up of committed events by id (the ledger answers from its store and its current batch).
pub trait History {
    /// The committed event with this id, if any.
    fn original(&self, id: &EventId) -> Option<OriginalEvent>;
}

/// One worker as the ledger's state holds it (public so the ledger can persist the state).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerState {
    /// Employed now.
    pub employed: bool,
    /// Committed events naming this worker.
    pub version: u64,
    /// The latest hire or separation, the only one a retraction may undo.
    pub last_lifecycle: Option<EventId>,
}

type Worker = WorkerState;

/// What [`LedgerState::apply_tracked`] changed: the workers whose [`WorkerState`] it wrote and the
/// event ids it retracted, since the caller last drained it.
///
/// It lives outside [`LedgerState`] so that two equal states stay equal whatever was tracked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changed {
    workers: HashSet<(OrgId, WorkerRef)>,
    retracted: Vec<EventId>,
}

impl Changed {
    /// Nothing changed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.workers.is_empty() && self.retracted.is_empty()
    }

    /// The workers whose state changed (each once, in no particular order).
    pub fn workers(&self) -> impl Iterator<Item = (&OrgId, &WorkerRef)> {
        self.workers.iter().map(|(o, w)| (o, w))
    }

    /// The event ids retracted, in the order they were applied.
    pub fn retracted(&self) -> impl Iterator<Item = &EventId> {
        self.retracted.iter()
    }
}

/// The state the ledger checks events against.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerState {
    workers: HashMap<(OrgId, WorkerRef), Worker>,
    retracted: HashSet<EventId>,
}

impl LedgerState {
    /// An empty ledger.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Workers currently employed in `org`.
    #[must_use]
    pub fn headcount(&self, org: &OrgId) -> usize {
        self.workers
            .iter()
            .filter(|((o, _), w)| o == org && w.employed)
            .count()
    }

    /// Whether the worker is employed now.
    #[must_use]
    pub fn is_employed(&self, org: &OrgId, worker: &WorkerRef) -> bool {
        self.workers
            .get(&(org.clone(), worker.clone()))
            .is_some_and(|w| w.employed)
    }

    /// The worker stream's version: how many committed events name this worker.
    #[must_use]
    pub fn version(&self, org: &OrgId, worker: &WorkerRef) -> u64 {
        self.workers
            .get(&(org.clone(), worker.clone()))
            .map_or(0, |w| w.version)
    }

    /// One worker's state, if the ledger has seen the worker.
    #[must_use]
    pub fn worker(&self, org: &OrgId, worker: &WorkerRef) -> Option<&WorkerState> {
        self.workers.get(&(org.clone(), worker.clone()))
    }

    /// Whether this event id has been retracted.
    #[must_use]
    pub fn is_retracted(&self, id: &EventId) -> bool {
        self.retracted.contains(id)
    }

    /// Every worker the ledger has seen, with its state (in no particular order).
    pub fn workers(&self) -> impl Iterator<Item = (&OrgId, &WorkerRef, &WorkerState)> {
        self.workers.iter().map(|((o, w), s)| (o, w, s))
    }

    /// Every retracted event id (in no particular order).
    pub fn retracted(&self) -> impl Iterator<Item = &EventId> {
        self.retracted.iter()
    }

    /// How many workers and retractions the state holds: the number of keys a copy of it takes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.workers.len() + self.retracted.len()
    }

    /// Whether the state holds nothing (an empty ledger).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Puts back one worker from a persisted copy (see [`Self::workers`]).
    pub fn restore_worker(&mut self, org: OrgId, worker: WorkerRef, state: WorkerState) {
        self.workers.insert((org, worker), state);
    }

    /// Puts back one retraction from a persisted copy (see [`Self::retracted`]).
    pub fn restore_retracted(&mut self, id: EventId) {
        self.retracted.insert(id);
    }

    /// Decides whether `event` may be committed now.
    ///
    /// # Errors
    /// [`Conflict::Version`] on an `expected_version` mismatch, [`Conflict::Lifecycle`] otherwise.
    pub fn decide(&self, event: &Event, history: &dyn History) -> Result<(), Conflict> {
        let org = &event.org_id;
        if let Some((worker_ref, effect)) = event.payload.worker_effect() {
            let w = self.workers.get(&(org.clone(), worker_ref.clone()));
            let version = w.map_or(0, |w| w.version);
            if let Some(expected) = event.expected_version {
                if expected != version {
                    return Err(Conflict::Version {
                        worker: worker_ref.to_string(),
                        expected,
                        actual: version,
                    });
                }
            }
            let employed = w.is_some_and(|w| w.employed);
            let baseline = matches!(&event.payload, Payload::WorkerHired(h) if h.baseline);
            match effect {
                LifecycleEffect::Hire if baseline && w.is_some() => {
                    return Err(lifecycle(format!(
                        "worker {worker_ref} already has history in org {org}; a baseline can only load a worker the ledger has not seen"
                    )));
                }
                LifecycleEffect::Hire if employed => {
                    return Err(lifecycle(format!(
                        "worker {worker_ref} is already employed in org {org}"
                    )));
                }
                LifecycleEffect::Separate | LifecycleEffect::Touch if !employed => {
                    let why = if w.is_some() {
                        "has already separated"
                    } else {
                        "was never hired or loaded in the baseline"
                    };
                    return Err(lifecycle(format!(
                        "{} needs an employed worker, but worker {worker_ref} {why} in org {org}",
                        event.event_type()
                    )));
                }
                _ => {}
            }
        }
        match &event.payload {
            Payload::EventCorrected(c) => {
                let original = self.live_original(history, org, &c.original_event_id)?;
                let replacement_type = c.replacement.event_type();
                if replacement_type != original.event_type {
                    return Err(lifecycle(format!(
                        "a correction keeps the event type: {} is a {}, the replacement is a {replacement_type}",
                        c.original_event_id, original.event_type
                    )));
                }
                let replacement_worker = c.replacement.worker_effect().map(|(w, _)| w.clone());
                if replacement_worker != original.worker_ref {
                    return Err(lifecycle(format!(
                        "a correction cannot change the worker of {}; retract it and record a new event instead",
                        c.original_event_id
                    )));
                }
            }
            Payload::EventRetracted(r) => {
                let original = self.live_original(history, org, &r.original_event_id)?;
                if original.event_type == EventType::EventRetracted {
                    return Err(lifecycle(format!(
                        "{} is a retraction; a retraction cannot be retracted",
                        r.original_event_id
                    )));
                }
                if let Some(worker_ref) = &original.worker_ref {
                    let w = self.workers.get(&(org.clone(), worker_ref.clone()));
                    let changes_employment = is_hire_or_separation(original.event_type);
                    if changes_employment
                        && w.and_then(|w| w.last_lifecycle) != Some(r.original_event_id)
                    {
                        return Err(lifecycle(format!(
                            "{} is not worker {worker_ref}'s latest hire or separation; retract the later one first",
                            r.original_event_id
                        )));
                    }
                }
            }
            Payload::PositionBackfilled(p) | Payload::PositionClosed(p) => {
                if let Some(id) = &p.linked_separation_id {
                    let original = self.live_original(history, org, id)?;
                    // A RoleAutomated that names no worker separated no one.
                    if !is_separation(original.event_type) || original.worker_ref.is_none() {
                        return Err(lifecycle(format!(
                            "linked_separation_id {id} is a {}, not a separation",
                            original.event_type
                        )));
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Folds a committed event into the state. Call only with events [`Self::decide`] accepted, in
    /// commit order.
    pub fn apply(&mut self, event: &Event, history: &dyn History) {
        self.fold(event, history, None);
    }

    /// [`Self::apply`], noting in `changed` every worker whose state it wrote (a retraction
    /// changes the retracted event's worker, not a worker of its own) and the id it retracted.
    pub fn apply_tracked(&mut self, event: &Event, history: &dyn History, changed: &mut Changed) {
        self.fold(event, history, Some(changed));
    }

    fn fold(&mut self, event: &Event, history: &dyn History, mut changed: Option<&mut Changed>) {
        let org = &event.org_id;
        if let Some((worker_ref, effect)) = event.payload.worker_effect() {
            let key = (org.clone(), worker_ref.clone());
            if let Some(changed) = changed.as_deref_mut() {
                changed.workers.insert(key.clone());
            }
            let w = self.workers.entry(key).or_default();
            w.version += 1;
            match effect {
                LifecycleEffect::Hire => {
                    w.employed = true;
                    w.last_lifecycle = Some(event.event_id);
                }
                LifecycleEffect::Separate => {
                    w.employed = false;
                    w.last_lifecycle = Some(event.event_id);
                }
                LifecycleEffect::Touch => {}
            }
        }
        if let Payload::EventRetracted(r) = &event.payload {
            if self.retracted.insert(r.original_event_id) {
                if let Some(changed) = changed.as_deref_mut() {
                    changed.retracted.push(r.original_event_id);
                }
            }
            if let Some(original) = history.original(&r.original_event_id) {
                if let (Some(worker_ref), true) = (
                    original.worker_ref,
                    is_hire_or_separation(original.event_type),
                ) {
                    let key = (org.clone(), worker_ref);
                    if let Some(w) = self.workers.get_mut(&key) {
                        // Undo the latest hire or separation; the one before it is not tracked,
                        // so a second retraction for this worker must wait for a new lifecycle event.
                        w.employed = original.event_type != EventType::WorkerHired;
                        w.last_lifecycle = None;
                        if let Some(changed) = changed {
                            changed.workers.insert(key);
                        }
                    }
                }
            }
        }
    }

    fn live_original(
        &self,
        history: &dyn History,
        org: &OrgId,
        id: &EventId,
    ) -> Result<OriginalEvent, Conflict> {
        let original = history
            .original(id)
            .ok_or_else(|| lifecycle(format!("event {id} is not in the ledger")))?;
        if &original.org_id != org {
            return Err(lifecycle(format!("event {id} belongs to another org")));
        }
        if self.retracted.contains(id) {
            return Err(lifecycle(format!("event {id} has been retracted")));
        }
        Ok(original)
    }
}

fn lifecycle(msg: String) -> Conflict {
    Conflict::Lifecycle(msg)
}

/// Whether events of this type end a worker's employment (`RoleAutomated` only when it names one).
#[must_use]
pub fn is_separation(t: EventType) -> bool {
    matches!(
        t,
        EventType::ContractNotRenewed
            | EventType::EconomicDismissal
            | EventType::RoleAutomated
            | EventType::MutualTerminationEmployerProposed
            | EventType::AdverseChangeRefusedExit
            | EventType::Resignation
            | EventType::Retirement
            | EventType::DismissalForCause
            | EventType::ContractorReleased
            | EventType::DispatchedWorkerReturned
            | EventType::DeathOrDisability
    )
}

fn is_hire_or_separation(t: EventType) -> bool {
    t == EventType::WorkerHired || is_separation(t)
}
