//! Commit outcomes, outside the writer.
//!
//! The writer's only job is batch → decide → append → ack. After each flush it hands the
//! batch's decisions to [`Broadcast`], whose task publishes them once on
//! [`wfl_bus::OUTCOME_SUBJECT`] (one `wfl.internal.v1.Outcomes` per batch), so every gateway
//! learns every outcome without asking. The writer never waits for that publish: the hand-over is
//! a bounded queue, and a batch that does not fit is dropped with a warning (gateways ask again).
//!
//! [`answer`] serves late or repeated questions ([`wfl_bus::OUTCOME_QUESTION_SUBJECT`]: a
//! restarted gateway, a lost message, a resubmission the broker deduplicated) from the store, on
//! the blocking pool, never on the writer's loop: each id is one decision lookup (plus one record
//! read for a committed one, for its content hash), whatever the history's size; a question
//! `with_proof` adds each committed event's RFC 9162 inclusion proof against the head (O(log n)
//! stored nodes each, one root per question).

use std::sync::Arc;

use bytes::Bytes;
use prost::Message;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};
use uuid::Uuid;
use wfl_bus::{Bus, Requests};
use wfl_proto::internal as ipb;
use wfl_store::{Decision, Log, RefusalCode};

use crate::storage::StorageState;
use crate::{codec, Error};

/// gRPC status codes used in outcomes that are not stored (google.rpc.Code).
const INVALID_ARGUMENT: i32 = 3;
const RESOURCE_EXHAUSTED: i32 = 8;

/// The gRPC status code (google.rpc.Code) a stored refusal is answered with.
#[must_use]
pub(crate) const fn grpc_code(code: RefusalCode) -> i32 {
    match code {
        RefusalCode::InvalidArgument => INVALID_ARGUMENT,
        RefusalCode::FailedPrecondition => 9,
        RefusalCode::Aborted => 10,
    }
}

/// Outcomes per published message at most: a full default batch (1,000) in one message when it
/// fits in the broker's largest message (an outcome is about 130 bytes, 1 KB with a proof).
const PER_MESSAGE: usize = 1_000;
/// Room kept in every message below the broker's limit (the server counts the subject and
/// reply subject's framing against it too).
const HEADROOM: usize = 1 << 10;
/// Batches waiting to be published; more means the bus is stuck, and gateways ask instead.
const QUEUE: usize = 64;
/// Questions answered at once (each on the blocking pool).
const CONCURRENT_QUESTIONS: usize = 4;

/// The writer's side of the outcome broadcast: never blocks.
#[derive(Clone)]
pub(crate) struct Broadcast {
    tx: mpsc::Sender<ipb::Outcomes>,
}

impl Broadcast {
    /// A broadcast and the task that publishes what it is given on `bus`, until `shutdown`.
    pub(crate) fn start(
        bus: Arc<dyn Bus>,
        shutdown: CancellationToken,
    ) -> (Self, impl std::future::Future<Output = Result<(), Error>>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (Self { tx }, publish(bus, rx, shutdown))
    }

    /// Publishes a flushed batch's decisions (nothing when there are none).
    pub(crate) fn decided(&self, outcomes: Vec<ipb::Outcome>) {
        if !outcomes.is_empty() {
            self.send(ipb::Outcomes {
                outcomes,
                paused_reason: String::new(),
            });
        }
    }

    /// Tells the gateways that commits are paused, so their waits ask at once.
    pub(crate) fn paused(&self, reason: &str) {
        self.send(ipb::Outcomes {
            outcomes: Vec::new(),
            paused_reason: reason.to_owned(),
        });
    }

    fn send(&self, message: ipb::Outcomes) {
        if let Err(e) = self.tx.try_send(message) {
            warn!(error = %e, "outcome broadcast queue full or closed; waiting gateways will ask for these outcomes");
        }
    }
}

async fn publish(
    bus: Arc<dyn Bus>,
    mut rx: mpsc::Receiver<ipb::Outcomes>,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    loop {
        let message = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            m = rx.recv() => match m {
                Some(m) => m,
                None => return Ok(()),
            },
        };
        for part in split(message, bus.max_message(), PER_MESSAGE) {
            let bytes = Bytes::from(part.encode_to_vec());
            if let Err(e) = bus.publish(wfl_bus::OUTCOME_SUBJECT, bytes).await {
                // At most once by design: a gateway that misses it asks the store.
                warn!(error = %e, outcomes = part.outcomes.len(), "could not publish outcomes; waiting gateways will ask");
            }
        }
    }
}

/// `message` as messages of at most `per_message` outcomes and, when the broker has a limit
/// (`max_message`), at most that many bytes less [`HEADROOM`] each, in order. An outcome too
/// large for any message (none is: an outcome with a proof is about 1 KB) goes alone.
fn split(
    message: ipb::Outcomes,
    max_message: Option<usize>,
    per_message: usize,
) -> Vec<ipb::Outcomes> {
    let budget = max_message.map_or(usize::MAX, |max| max.saturating_sub(HEADROOM));
    let empty = || ipb::Outcomes {
        outcomes: Vec::new(),
        paused_reason: message.paused_reason.clone(),
    };
    let base = empty().encoded_len();
    let mut parts = Vec::new();
    let mut part = empty();
    let mut size = base;
    for o in message.outcomes {
        let len = o.encoded_len();
        let grows = 1 + prost::length_delimiter_len(len) + len;
        if !part.outcomes.is_empty()
            && (part.outcomes.len() == per_message || size + grows > budget)
        {
            parts.push(std::mem::replace(&mut part, empty()));
            size = base;
        }
        size += grows;
        part.outcomes.push(o);
    }
    if !part.outcomes.is_empty() || parts.is_empty() {
        parts.push(part);
    }
    parts
}

/// Answers outcome questions from the store until `shutdown`, off the async threads. An answer
/// larger than the broker's largest message (`max_message`; a thousand outcomes with proofs
/// from a big tree come close to NATS's default 1 MB) holds the outcomes that fit: the gateway
/// asks again for the ids it was not told about, as for undecided ones.
///
/// # Errors
/// When the question subscription ends (the bus closed): the ledger stops, crash-only.
pub(crate) async fn answer(
    store: Arc<dyn Log>,
    storage: watch::Receiver<StorageState>,
    mut requests: Box<dyn Requests>,
    max_message: Option<usize>,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let slots = Arc::new(Semaphore::new(CONCURRENT_QUESTIONS));
    loop {
        let request = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            r = requests.next() => match r {
                Some(r) => r,
                None => {
                    return Err(Error::Internal(
                        "outcome question subscription ended".into(),
                    ))
                }
            },
        };
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return Ok(());
        };
        let store = store.clone();
        let paused = match &*storage.borrow() {
            StorageState::Paused { reason } => Some(reason.clone()),
            StorageState::Writable => None,
        };
        tokio::spawn(async move {
            let payload = request.payload.clone();
            let answered =
                tokio::task::spawn_blocking(move || lookup(store.as_ref(), &payload, paused)).await;
            drop(slot);
            match answered {
                Ok(Some(reply)) => {
                    let reply = split(reply, max_message, usize::MAX).swap_remove(0);
                    if let Err(e) = request.reply(Bytes::from(reply.encode_to_vec())).await {
                        warn!(error = %e, "could not send an outcome answer; the gateway will ask again");
                    }
                }
                Ok(None) => {}
                Err(e) => error!(error = %e, "outcome lookup task failed"),
            }
        });
    }
}

/// The answer to one question: every id already decided, and while commits are paused
/// `RESOURCE_EXHAUSTED` for the others (nothing new will be decided soon). `None` for a
/// malformed question (logged; the asker times out).
fn lookup(store: &dyn Log, payload: &[u8], paused: Option<String>) -> Option<ipb::Outcomes> {
    let (ids, with_proof) = match ipb::OutcomeQuery::decode(payload) {
        Ok(q) => (q.event_ids, q.with_proof),
        Err(e) => {
            warn!(error = %e, "malformed outcome question ignored");
            return None;
        }
    };
    let mut prover = with_proof.then(|| Prover::new(store));
    let mut outcomes = Vec::with_capacity(ids.len());
    for raw in &ids {
        let outcome = match Uuid::parse_str(raw) {
            Err(_) => Some(rejected_raw(
                raw,
                INVALID_ARGUMENT,
                "event_id must be a UUID".into(),
                None,
            )),
            Ok(uuid) => match store.decision(&uuid) {
                Ok(Some(d)) => match stored_outcome(store, &uuid, &d) {
                    Ok(o) => Some(o),
                    Err(e) => {
                        error!(error = %e, event_id = %uuid, "stored decision unreadable while answering an outcome question");
                        None
                    }
                },
                Ok(None) => None,
                Err(e) => {
                    error!(error = %e, "store read failed while answering an outcome question");
                    None
                }
            },
        };
        match (outcome, &paused) {
            (Some(mut o), _) => {
                if let (Some(p), Some(ipb::outcome::Result::Committed(c))) =
                    (&mut prover, &o.result)
                {
                    o.proof = p.prove(c.sequence);
                }
                outcomes.push(o);
            }
            (None, Some(reason)) => outcomes.push(paused_outcome(raw, reason)),
            (None, None) => {}
        }
    }
    Some(ipb::Outcomes {
        outcomes,
        paused_reason: paused.unwrap_or_default(),
    })
}

/// Inclusion proofs against the head at the time of the question (one root for all of them).
struct Prover<'a> {
    store: &'a dyn Log,
    /// Tree size and root, read once; `None` when the head could not be read.
    tree: Option<(u64, [u8; 32])>,
}

impl<'a> Prover<'a> {
    fn new(store: &'a dyn Log) -> Self {
        let tree = store
            .head()
            .and_then(|h| Ok((h.sequence, store.merkle_root(h.sequence)?)))
            .map_err(|e| error!(error = %e, "cannot read the Merkle root for inclusion proofs"))
            .ok();
        Self { store, tree }
    }

    /// The proof of `sequence` (O(log n) stored nodes), or `None` (logged) when it cannot be
    /// read: the gateway then answers without it rather than not at all.
    fn prove(&mut self, sequence: u64) -> Option<ipb::InclusionProof> {
        let (size, root) = self.tree?;
        if sequence == 0 || sequence > size {
            return None;
        }
        let proof = || -> Result<ipb::InclusionProof, Error> {
            let record = self.store.get(sequence)?.ok_or_else(|| {
                Error::Internal(format!("record {sequence} missing below the head"))
            })?;
            Ok(ipb::InclusionProof {
                tree_size: size,
                leaf_hash: wfl_store::merkle::leaf_hash(&record.bytes).to_vec(),
                root_hash: root.to_vec(),
                proof: self
                    .store
                    .inclusion_proof(sequence, size)?
                    .iter()
                    .map(|h| h.to_vec())
                    .collect(),
            })
        };
        proof()
            .map_err(|e| error!(error = %e, sequence, "cannot build an inclusion proof"))
            .ok()
    }
}

pub(crate) fn committed(
    uuid: &Uuid,
    sequence: u64,
    hash: &[u8; 32],
    submission: Option<Uuid>,
    content: Option<[u8; 32]>,
) -> ipb::Outcome {
    ipb::Outcome {
        event_id: uuid.to_string(),
        result: Some(ipb::outcome::Result::Committed(ipb::Committed {
            sequence,
            hash: hash.to_vec(),
        })),
        committing_submission: submission
            .map(|s| s.as_bytes().to_vec())
            .unwrap_or_default(),
        content_sha256: content.map(|c| c.to_vec()).unwrap_or_default(),
        proof: None,
    }
}

pub(crate) fn rejected(
    uuid: &Uuid,
    code: RefusalCode,
    message: String,
    content: Option<[u8; 32]>,
) -> ipb::Outcome {
    rejected_raw(&uuid.to_string(), grpc_code(code), message, content)
}

fn rejected_raw(id: &str, code: i32, message: String, content: Option<[u8; 32]>) -> ipb::Outcome {
    ipb::Outcome {
        event_id: id.to_owned(),
        result: Some(ipb::outcome::Result::Rejected(ipb::Refused {
            code,
            message,
        })),
        committing_submission: Vec::new(),
        content_sha256: content.map(|c| c.to_vec()).unwrap_or_default(),
        proof: None,
    }
}

/// The answer for an undecided event while commits are paused: `RESOURCE_EXHAUSTED`, retryable
/// with the same event id (the event stays in the inbox and commits once space returns).
fn paused_outcome(id: &str, reason: &str) -> ipb::Outcome {
    rejected_raw(
        id,
        RESOURCE_EXHAUSTED,
        format!(
            "the ledger cannot write now ({reason}); the event is kept in the inbox and commits once the ledger can write again: retry with the same event_id"
        ),
        None,
    )
}

/// The outcome of a stored decision. A committed event's content hash comes from its record
/// (the record is the content: one read per already-decided id asked about, whatever the
/// history's size).
///
/// # Errors
/// When the record of a committed decision cannot be read or decoded.
pub(crate) fn stored_outcome(
    store: &dyn Log,
    uuid: &Uuid,
    d: &Decision,
) -> Result<ipb::Outcome, Error> {
    Ok(match d {
        Decision::Committed {
            sequence,
            hash,
            submission,
        } => {
            let record = store.get(*sequence)?.ok_or_else(|| {
                Error::Internal(format!(
                    "event {uuid} is decided at sequence {sequence}, which is not readable"
                ))
            })?;
            let content = wfl_proto::convert::content_sha256(&codec::decode_event(&record)?);
            committed(uuid, *sequence, hash, *submission, Some(content))
        }
        Decision::Rejected {
            code,
            message,
            content,
        } => rejected(uuid, *code, message.clone(), *content),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_refusals_are_answered_with_their_grpc_codes() {
        for (code, want) in [
            (RefusalCode::InvalidArgument, tonic::Code::InvalidArgument),
            (
                RefusalCode::FailedPrecondition,
                tonic::Code::FailedPrecondition,
            ),
            (RefusalCode::Aborted, tonic::Code::Aborted),
        ] {
            assert_eq!(grpc_code(code), want as i32);
        }
        assert_eq!(INVALID_ARGUMENT, tonic::Code::InvalidArgument as i32);
        assert_eq!(RESOURCE_EXHAUSTED, tonic::Code::ResourceExhausted as i32);
    }

    fn outcomes(n: usize) -> ipb::Outcomes {
        ipb::Outcomes {
            outcomes: (0..n)
                .map(|i| rejected_raw(&format!("id-{i}"), 9, "x".repeat(100), None))
                .collect(),
            paused_reason: String::new(),
        }
    }

    #[test]
    fn outcomes_are_split_to_fit_the_brokers_largest_message_in_order() {
        // No limit: a thousand per message.
        let parts = split(outcomes(2_500), None, PER_MESSAGE);
        assert_eq!(
            parts.iter().map(|p| p.outcomes.len()).collect::<Vec<_>>(),
            [1_000, 1_000, 500]
        );
        // 64 KiB messages: every part fits, nothing is lost or reordered.
        let parts = split(outcomes(2_500), Some(64 << 10), PER_MESSAGE);
        assert!(parts.len() > 3);
        for p in &parts {
            assert!(
                p.encoded_len() <= (64 << 10) - HEADROOM,
                "{}",
                p.encoded_len()
            );
        }
        let ids: Vec<String> = parts
            .iter()
            .flat_map(|p| p.outcomes.iter().map(|o| o.event_id.clone()))
            .collect();
        assert_eq!(
            ids,
            (0..2_500).map(|i| format!("id-{i}")).collect::<Vec<_>>()
        );
        // An empty answer is still one message (a paused ledger says so with no outcomes).
        assert_eq!(split(outcomes(0), Some(64 << 10), PER_MESSAGE).len(), 1);
        // An answer is one message: as many as fit, however many were asked.
        assert_eq!(split(outcomes(2_500), None, usize::MAX).len(), 1);
    }
}
