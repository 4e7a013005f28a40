//! The gateway: the gRPC `wfl.v1.Ingest` service.
//!
//! It validates each event ([`wfl_proto::convert::event_from_pb`] + domain rules), publishes the
//! valid ones to the inbox pipelined (`Nats-Msg-Id = event_id`, so JetStream drops resubmissions
//! inside its window), and for the `COMMITTED` ack level waits for each outcome, which the
//! ledger publishes once per batch on `wfl.outcomes` ([`outcomes`]); it asks the ledger's
//! outcomes component (`wfl.ctl.await`, answered from the store) only for what it may have
//! missed. It holds no state of its own beyond the calls in flight: any number of gateways may
//! run, and a client that retries with the same event id always learns the original outcome.
//!
//! Each publish carries a fresh submission id (`Wfl-Submission`). An outcome names the
//! submission that committed the event and the SHA-256 of the content decided on, both read
//! from the ledger's store, so the gateway answers `duplicate = true` to every submission but
//! the committing one (across ledger restarts, whatever the broker's duplicate window), and
//! `ALREADY_EXISTS` to a submission that reuses an event id for different content.

pub mod metrics;
mod outcomes;
pub mod refusals;
pub mod views;

use foldhash::{HashMap, HashMapExt, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::join_all;
use prost::Message;
use tonic::{Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};
use tracing::warn;
use wfl_bus::{Bus, InboxMessage, OUTCOME_QUESTION_SUBJECT};
use wfl_proto::internal as ipb;
use wfl_proto::pb;

pub use metrics::Metrics;
pub use wfl_bus::Timing;

const INVALID_ARGUMENT: i32 = tonic::Code::InvalidArgument as i32;
const ALREADY_EXISTS: i32 = tonic::Code::AlreadyExists as i32;
const UNAVAILABLE: i32 = tonic::Code::Unavailable as i32;

/// How often a gateway that saw the ledger fall silent asks it an empty outcome request.
const PROBE_EVERY: Duration = Duration::from_secs(2);

/// Gateway settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The commit timeout (how long a `COMMITTED` call waits for the ledger before answering
    /// `UNAVAILABLE`), how often a wait asks again for outcomes it has not heard, and the bus's
    /// duplicate window, in their checked relation.
    pub timing: Timing,
    /// Event ids per outcome question (keeps each bus message well under NATS's payload limit).
    pub await_chunk: usize,
    /// Largest request accepted, in bytes; a larger one is refused by tonic with `OUT_OF_RANGE`
    /// naming the size and this limit.
    pub max_message_bytes: usize,
    /// Events per `RecordBatch` at most; more is `INVALID_ARGUMENT` naming this limit.
    pub max_batch_events: usize,
    /// The free-text limit applied on top of the schema's (at most `MAX_TEXT`); a longer text
    /// field is `INVALID_ARGUMENT` naming the field and the limit.
    pub limits: wfl_domain::Limits,
    /// Where outcome questions go: [`OUTCOME_QUESTION_SUBJECT`], or in cluster mode one subject
    /// per partition (`wfl.ctl.await.<n>`, [`Config::for_partitions`]): each question is asked
    /// of every partition's ledger, and each answers for the ids it decided.
    pub question_subjects: Vec<String>,
}

impl Config {
    /// Cluster mode: ask each of `count` partitions' ledgers.
    #[must_use]
    pub fn for_partitions(mut self, count: u32) -> Self {
        self.question_subjects = (0..count)
            .map(wfl_bus::cluster::partition_question_subject)
            .collect();
        self
    }
}

/// Largest [`Config::max_batch_events`] a deployment may configure.
pub const MAX_BATCH_EVENTS_CEILING: usize = 100_000;

/// Default of [`Config::max_message_bytes`]: a full batch of large events fits.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 << 20;

impl Default for Config {
    fn default() -> Self {
        Self {
            timing: Timing::DEFAULT,
            await_chunk: 1000,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_batch_events: wfl_domain::MAX_BATCH,
            limits: wfl_domain::Limits::SCHEMA,
            question_subjects: vec![OUTCOME_QUESTION_SUBJECT.to_owned()],
        }
    }
}

/// The `Ingest` gRPC service.
pub struct Gateway {
    bus: Arc<dyn Bus>,
    config: Config,
    metrics: Arc<Metrics>,
    answers: Arc<Answers>,
    registry: Arc<outcomes::Registry>,
    submissions: Submissions,
    /// Dropped with the gateway, which ends its outcome listener.
    _alive: tokio::sync::watch::Sender<()>,
}

/// The gateway's submission ids, one per publish: a random (v4) base drawn once, with a
/// counter folded into its low bits. Unique within the gateway (distinct counters), told apart
/// from every other gateway's and restart's by the base's random bits, as a fresh v4 each time
/// would be, without a `getrandom` system call per event (one per event was, after the futexes,
/// the ingest path's most frequent system call under `strace -c`). The counter stays far below
/// 2^62, so the version and variant bits stay those of a v4.
struct Submissions {
    base: u128,
    next: std::sync::atomic::AtomicU64,
}

impl Submissions {
    fn new() -> Self {
        Self {
            base: uuid::Uuid::new_v4().as_u128(),
            next: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn next(&self) -> uuid::Uuid {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        uuid::Uuid::from_u128(self.base ^ u128::from(n))
    }
}

/// When the ledger last answered an outcome request, and the health signal derived from it.
struct Answers {
    last: std::sync::Mutex<Instant>,
    healthy: tokio::sync::watch::Sender<bool>,
}

impl Answers {
    fn answered(&self, metrics: &Metrics) {
        if let Ok(mut last) = self.last.lock() {
            *last = Instant::now();
        }
        if metrics.ledger_answering.set(true) {
            tracing::info!("the ledger answers outcome requests again; health SERVING");
        }
        self.healthy
            .send_if_modified(|h| !std::mem::replace(h, true));
    }

    /// A wait ended without every outcome: the ledger counts as silent when it has not answered
    /// anything for the whole commit timeout.
    fn unanswered(&self, metrics: &Metrics, timeout: Duration) {
        let silent = self.last.lock().map_or(true, |l| l.elapsed() >= timeout);
        if silent && metrics.ledger_answering.set(false) {
            tracing::error!(
                timeout_ms = timeout.as_millis() as u64,
                "the ledger has not answered outcome requests for longer than the commit timeout; health NOT_SERVING"
            );
            self.healthy
                .send_if_modified(|h| std::mem::replace(h, false));
        }
    }
}

type ItemOutcome = Result<pb::RecordResponse, pb::ItemError>;

impl Gateway {
    /// A gateway publishing to `bus`.
    #[must_use]
    pub fn new(bus: Arc<dyn Bus>, config: Config, metrics: Arc<Metrics>) -> Self {
        let answers = Arc::new(Answers {
            last: std::sync::Mutex::new(Instant::now()),
            healthy: tokio::sync::watch::channel(true).0,
        });
        let registry = outcomes::Registry::new();
        let (alive, alive_rx) = tokio::sync::watch::channel(());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(probe(
                Arc::downgrade(&answers),
                bus.clone(),
                metrics.clone(),
                config.timing.ask_again(),
                config.question_subjects.clone(),
            ));
            let (heard, m) = (Arc::downgrade(&answers), metrics.clone());
            rt.spawn(outcomes::listen(
                Arc::downgrade(&registry),
                bus.clone(),
                alive_rx,
                move || {
                    if let Some(a) = heard.upgrade() {
                        a.answered(&m);
                    }
                },
            ));
        }
        Self {
            bus,
            config,
            metrics,
            answers,
            registry,
            submissions: Submissions::new(),
            _alive: alive,
        }
    }

    /// False while the ledger has not answered outcome requests for longer than the commit
    /// timeout (health NOT_SERVING); true again once it answers.
    #[must_use]
    pub fn healthy(&self) -> tokio::sync::watch::Receiver<bool> {
        self.answers.healthy.subscribe()
    }

    /// This gateway as a tonic service, accepting requests up to `max_message_bytes`.
    #[must_use]
    pub fn into_service(self) -> pb::ingest_server::IngestServer<Self> {
        let max = self.config.max_message_bytes;
        pb::ingest_server::IngestServer::new(self).max_decoding_message_size(max)
    }

    /// Records events and returns one outcome per event, in order; with `include_proof` (at
    /// `COMMITTED`) each committed one carries its inclusion proof.
    pub async fn record_many(
        &self,
        events: Vec<pb::Event>,
        ack: pb::AckLevel,
        include_proof: bool,
    ) -> Vec<ItemOutcome> {
        let mut results: Vec<Option<ItemOutcome>> = Vec::with_capacity(events.len());
        let all_ids: Vec<String> = events.iter().map(|e| e.event_id.clone()).collect();
        let mut msgs = Vec::new();
        let mut published_at = Vec::new(); // index in `results` of each message
        let mut contents = Vec::new(); // content hash of each message
        let limits = self.config.limits;
        let tighter = limits != wfl_domain::Limits::SCHEMA;
        let hand_over = self.bus.hands_over_decoded();
        for wire in events {
            let checked = wfl_proto::convert::event_from_pb(wire).and_then(|event| {
                if tighter {
                    wfl_domain::validate_with(&event, &limits)?;
                }
                Ok(event)
            });
            match checked {
                Ok(event) => {
                    published_at.push(results.len());
                    results.push(None);
                    // The payload is the canonical encoding the content hash is taken of.
                    let (payload, content) = wfl_proto::convert::encode_with_content(&event);
                    contents.push(content);
                    let (event_id, org_id) = (event.event_id.0, event.org_id.0.clone());
                    msgs.push(InboxMessage {
                        event_id,
                        submission: self.submissions.next(),
                        org_id,
                        payload: Bytes::from(payload),
                        // In one process the ledger takes the checked event as it is.
                        decoded: hand_over.then(|| {
                            wfl_bus::Decoded(Arc::new(wfl_proto::convert::Checked {
                                event,
                                content,
                            }))
                        }),
                    });
                }
                Err(v) => {
                    self.metrics.invalid.inc();
                    results.push(Some(Err(pb::ItemError {
                        code: INVALID_ARGUMENT,
                        message: format!("invalid event: {v}"),
                        field_violations: v
                            .0
                            .into_iter()
                            .map(|f| pb::FieldViolation {
                                field: f.field,
                                description: f.description,
                            })
                            .collect(),
                    })));
                }
            }
        }
        let ids: Vec<String> = msgs.iter().map(|m| m.event_id.to_string()).collect();
        let mine: Vec<Mine> = msgs
            .iter()
            .zip(contents)
            .map(|(m, content)| Mine {
                submission: m.submission,
                content,
            })
            .collect();
        let wait_for_commit = ack != pb::AckLevel::Accepted || !self.bus.durable_inbox();
        // Registered before publishing, so no outcome can come before the call listens for it.
        let waiting = if wait_for_commit && !msgs.is_empty() {
            self.registry
                .subscribed(self.config.timing.ask_again())
                .await;
            Some(
                self.registry
                    .register(msgs.iter().map(|m| m.event_id).collect()),
            )
        } else {
            None
        };
        let acks = self.bus.publish_inbox(msgs).await;
        let mut awaiting: Vec<(usize, String, bool, Mine)> = Vec::new();
        for (((idx, id), published), mine) in published_at.into_iter().zip(ids).zip(acks).zip(mine)
        {
            match published {
                Err(e) => {
                    results[idx] = Some(Err(item_error(
                        UNAVAILABLE,
                        format!("inbox unavailable, retry with the same event_id: {e}"),
                    )));
                }
                Ok(a) if !wait_for_commit => {
                    self.metrics.accepted.inc();
                    results[idx] = Some(Ok(pb::RecordResponse {
                        event_id: id,
                        sequence: 0,
                        hash: Vec::new(),
                        duplicate: a.duplicate,
                        ack: pb::AckLevel::Accepted as i32,
                        inclusion_proof: None,
                    }));
                }
                Ok(a) => awaiting.push((idx, id, a.duplicate, mine)),
            }
        }
        if let (Some(waiting), false) = (waiting, awaiting.is_empty()) {
            let ids: Vec<String> = awaiting.iter().map(|(_, id, _, _)| id.clone()).collect();
            // The broker dropped a resubmission: its first submission may have been decided
            // before this gateway listened, so ask at once.
            let ask_first = awaiting.iter().any(|(_, _, duplicate, _)| *duplicate);
            let wait = self.metrics.waits.start();
            let outcomes = self.await_outcomes(waiting, ids, ask_first).await;
            drop(wait);
            if awaiting
                .iter()
                .any(|(_, id, _, _)| !outcomes.contains_key(id))
            {
                self.answers
                    .unanswered(&self.metrics, self.config.timing.commit_timeout());
            }
            for (idx, id, duplicate, mine) in awaiting {
                // `get`, not `remove`: the same event id may appear twice in one batch.
                let outcome = match outcomes.get(&id) {
                    Some(o) => interpret(o, &mine, duplicate),
                    None => Err(item_error(
                        UNAVAILABLE,
                        format!(
                            "accepted into the inbox but not committed within {:?}; retry with the same event_id to learn the outcome",
                            self.config.timing.commit_timeout()
                        ),
                    )),
                };
                results[idx] = Some(outcome);
            }
        }
        if include_proof && ack == pb::AckLevel::Committed {
            self.attach_proofs(&mut results).await;
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(item_error(
                        tonic::Code::Internal as i32,
                        "no outcome".into(),
                    ))
                })
            })
            .zip(all_ids)
            .map(|(r, id)| {
                self.metrics.count(&r);
                if let Err(e) = &r {
                    refusals::refused(&id, e.code, &e.message);
                }
                r
            })
            .collect()
    }

    /// Waits for the outcome of each id (heard on the outcome subject, or asked for when it may
    /// have been missed) until all are known or the commit timeout passes.
    async fn await_outcomes(
        &self,
        mut waiting: outcomes::Waiting,
        ids: Vec<String>,
        ask_first: bool,
    ) -> HashMap<String, ipb::Outcome> {
        let timing = self.config.timing;
        let deadline = tokio::time::Instant::now() + timing.commit_timeout();
        let wanted: HashSet<String> = ids.into_iter().collect();
        let mut found: HashMap<String, ipb::Outcome> = HashMap::with_capacity(wanted.len());
        let mut asks = self.registry.asks();
        asks.borrow_and_update();
        let mut ask_at = if ask_first || self.registry.paused() {
            tokio::time::Instant::now()
        } else {
            tokio::time::Instant::now() + timing.ask_again()
        };
        while found.len() < wanted.len() {
            tokio::select! {
                heard = waiting.rx.recv() => {
                    let Some(o) = heard else { break };
                    if o.result.is_some() && wanted.contains(&o.event_id) {
                        found.insert(o.event_id.clone(), o);
                    }
                }
                () = tokio::time::sleep_until(ask_at) => {
                    let missing: Vec<String> = wanted
                        .iter()
                        .filter(|id| !found.contains_key(*id))
                        .cloned()
                        .collect();
                    for o in self.ask(missing, deadline, false).await {
                        if o.result.is_some() && wanted.contains(&o.event_id) {
                            found.insert(o.event_id.clone(), o);
                        }
                    }
                    ask_at = tokio::time::Instant::now() + timing.ask_again();
                }
                Ok(()) = asks.changed() => {
                    ask_at = tokio::time::Instant::now();
                }
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        found
    }

    /// Fills in the inclusion proof of every committed result, asking the ledger (proofs come
    /// from its store) until the commit timeout; one it could not get is logged and left empty
    /// (`Ledger.GetInclusionProof` gives it), never turned into a failure of a committed event.
    async fn attach_proofs(&self, results: &mut [Option<ItemOutcome>]) {
        let deadline = tokio::time::Instant::now() + self.config.timing.commit_timeout();
        let mut backoff = Duration::from_millis(20);
        loop {
            let missing: Vec<String> = results
                .iter()
                .filter_map(|r| match r {
                    Some(Ok(r)) if r.sequence > 0 && r.inclusion_proof.is_none() => {
                        Some(r.event_id.clone())
                    }
                    _ => None,
                })
                .collect::<HashSet<String>>()
                .into_iter()
                .collect();
            if missing.is_empty() {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                warn!(
                    events = missing.len(),
                    "inclusion proofs not received within the commit timeout; answered without them"
                );
                return;
            }
            let proofs: HashMap<String, (u64, ipb::InclusionProof)> = self
                .ask(missing, deadline, true)
                .await
                .into_iter()
                .filter_map(|o| match (o.result, o.proof) {
                    (Some(ipb::outcome::Result::Committed(c)), Some(p)) => {
                        Some((o.event_id, (c.sequence, p)))
                    }
                    _ => None,
                })
                .collect();
            for r in results.iter_mut().flatten().flatten() {
                if let Some((sequence, p)) = proofs.get(&r.event_id) {
                    if *sequence == r.sequence && r.inclusion_proof.is_none() {
                        r.inclusion_proof = Some(pb::InclusionProof {
                            sequence: *sequence,
                            tree_size: p.tree_size,
                            leaf_hash: p.leaf_hash.clone(),
                            root_hash: p.root_hash.clone(),
                            proof: p.proof.clone(),
                        });
                    }
                }
            }
            if proofs.is_empty() {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                tokio::time::sleep(backoff.min(left)).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }

    /// Asks the ledger's outcomes component for the outcomes of `ids` decided so far (in chunks
    /// of `await_chunk`, at once), with inclusion proofs when `with_proof`; a failed question is
    /// logged and asked again later.
    async fn ask(
        &self,
        ids: Vec<String>,
        deadline: tokio::time::Instant,
        with_proof: bool,
    ) -> Vec<ipb::Outcome> {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if ids.is_empty() || left.is_zero() {
            return Vec::new();
        }
        let limit = left.min(self.config.timing.ask_again());
        let questions = ids
            .chunks(self.config.await_chunk.max(1))
            .flat_map(|chunk| {
                let query = Bytes::from(
                    ipb::OutcomeQuery {
                        event_ids: chunk.to_vec(),
                        with_proof,
                    }
                    .encode_to_vec(),
                );
                self.config
                    .question_subjects
                    .iter()
                    .map(move |subject| (subject, query.clone()))
            })
            .map(|(subject, query)| self.bus.request(subject, query, limit));
        let mut outcomes = Vec::new();
        for answer in join_all(questions).await {
            match answer {
                Ok(bytes) => match ipb::Outcomes::decode(bytes.as_ref()) {
                    Ok(reply) => {
                        self.answers.answered(&self.metrics);
                        outcomes.extend(reply.outcomes);
                    }
                    Err(e) => warn!(error = %e, "malformed outcome answer"),
                },
                // The ledger may be restarting: the events are safe in the inbox, ask again.
                Err(e) => warn!(error = %e, "outcome question failed; asking again"),
            }
        }
        outcomes
    }
}

/// What this gateway published for one item: compared with the ledger's outcome.
struct Mine {
    submission: uuid::Uuid,
    content: [u8; 32],
}

/// The answer to one submission, given the ledger's outcome for its event id.
///
/// Different content under a decided id is `ALREADY_EXISTS` naming the id (and the sequence it
/// holds); the same content is the stored decision, `duplicate` unless this submission is the
/// one that committed it (an outcome without a committing submission was decided before
/// submission ids existed, so by an earlier submission). An outcome without a content hash (a
/// refusal stored before content hashes existed) cannot be compared and is answered as stored.
fn interpret(o: &ipb::Outcome, mine: &Mine, ack_duplicate: bool) -> ItemOutcome {
    let other_content = !o.content_sha256.is_empty() && o.content_sha256 != mine.content;
    match &o.result {
        Some(ipb::outcome::Result::Committed(r)) if other_content => Err(item_error(
            ALREADY_EXISTS,
            format!(
                "event_id {} already holds sequence {} with different content; record a different event under a new event_id",
                o.event_id, r.sequence
            ),
        )),
        Some(ipb::outcome::Result::Committed(r)) => Ok(pb::RecordResponse {
            event_id: o.event_id.clone(),
            sequence: r.sequence,
            hash: r.hash.clone(),
            duplicate: ack_duplicate || o.committing_submission != mine.submission.as_bytes(),
            ack: pb::AckLevel::Committed as i32,
            inclusion_proof: None,
        }),
        Some(ipb::outcome::Result::Rejected(e)) if other_content => Err(item_error(
            ALREADY_EXISTS,
            format!(
                "event_id {} was already used by a different event, which was refused ({}); record this event under a new event_id",
                o.event_id, e.message
            ),
        )),
        Some(ipb::outcome::Result::Rejected(e)) => Err(item_error(e.code, e.message.clone())),
        None => Err(item_error(
            UNAVAILABLE,
            "the ledger sent an empty outcome; retry with the same event_id".into(),
        )),
    }
}

/// While the ledger counts as silent, asks it an empty outcome question every [`PROBE_EVERY`] so
/// health recovers as soon as it answers, even without traffic. Ends with the gateway.
async fn probe(
    answers: std::sync::Weak<Answers>,
    bus: Arc<dyn Bus>,
    metrics: Arc<Metrics>,
    limit: Duration,
    subjects: Vec<String>,
) {
    let empty = Bytes::from(ipb::OutcomeQuery::default().encode_to_vec());
    loop {
        tokio::time::sleep(PROBE_EVERY).await;
        let Some(answers) = answers.upgrade() else {
            return;
        };
        if metrics.ledger_answering.get() {
            continue;
        }
        // Answering means every partition's ledger answers (one subject outside cluster mode).
        let asked = subjects
            .iter()
            .map(|subject| bus.request(subject, empty.clone(), limit));
        if join_all(asked).await.iter().all(Result::is_ok) {
            answers.answered(&metrics);
        }
    }
}

fn item_error(code: i32, message: String) -> pb::ItemError {
    pb::ItemError {
        code,
        message,
        field_violations: Vec::new(),
    }
}

/// The one place where an item outcome becomes a gRPC status (for the unary `Record`).
fn status(e: pb::ItemError) -> Status {
    let code = tonic::Code::from_i32(e.code);
    if e.field_violations.is_empty() {
        return Status::new(code, e.message);
    }
    let mut details = ErrorDetails::new();
    for v in e.field_violations {
        details.add_bad_request_violation(v.field, v.description);
    }
    Status::with_error_details(code, e.message, details)
}

fn ack_level(raw: i32, include_proof: bool) -> Result<pb::AckLevel, Box<Status>> {
    let level = ack_level_of(raw)?;
    if include_proof && level == pb::AckLevel::Accepted {
        return Err(Box::new(Status::with_error_details(
            tonic::Code::InvalidArgument,
            "include_proof: needs ack ACK_LEVEL_COMMITTED (an accepted event has no sequence yet)",
            ErrorDetails::with_bad_request_violation(
                "include_proof",
                "only with ACK_LEVEL_COMMITTED",
            ),
        )));
    }
    Ok(level)
}

fn ack_level_of(raw: i32) -> Result<pb::AckLevel, Box<Status>> {
    match pb::AckLevel::try_from(raw) {
        Ok(pb::AckLevel::Unspecified | pb::AckLevel::Committed) => Ok(pb::AckLevel::Committed),
        Ok(pb::AckLevel::Accepted) => Ok(pb::AckLevel::Accepted),
        Err(_) => Err(Box::new(Status::with_error_details(
            tonic::Code::InvalidArgument,
            format!("ack: unknown ack level {raw}"),
            ErrorDetails::with_bad_request_violation(
                "ack",
                "must be ACK_LEVEL_COMMITTED or ACK_LEVEL_ACCEPTED",
            ),
        ))),
    }
}

#[tonic::async_trait]
impl pb::ingest_server::Ingest for Gateway {
    async fn record(
        &self,
        request: Request<pb::RecordRequest>,
    ) -> Result<Response<pb::RecordResponse>, Status> {
        let caller = wfl_auth::caller(&request)?;
        let req = request.into_inner();
        caller.check_orgs(req.event.iter().map(|e| e.org_id.as_str()))?;
        let ack = ack_level(req.ack, req.include_proof).map_err(|s| *s)?;
        let Some(event) = req.event else {
            return Err(Status::with_error_details(
                tonic::Code::InvalidArgument,
                "event: required",
                ErrorDetails::with_bad_request_violation("event", "required"),
            ));
        };
        let started = Instant::now();
        let mut out = self.record_many(vec![event], ack, req.include_proof).await;
        self.metrics
            .call_took(metrics::Call::Record, started.elapsed());
        match out.pop() {
            Some(Ok(r)) => Ok(Response::new(r)),
            Some(Err(e)) => Err(status(e)),
            None => Err(Status::internal("no outcome")),
        }
    }

    async fn record_batch(
        &self,
        request: Request<pb::RecordBatchRequest>,
    ) -> Result<Response<pb::RecordBatchResponse>, Status> {
        let caller = wfl_auth::caller(&request)?;
        let req = request.into_inner();
        caller.check_orgs(req.events.iter().map(|e| e.org_id.as_str()))?;
        let ack = ack_level(req.ack, req.include_proof).map_err(|s| *s)?;
        let max = self.config.max_batch_events;
        if req.events.len() > max {
            return Err(Status::with_error_details(
                tonic::Code::InvalidArgument,
                format!(
                    "events: {} events in one batch; at most {max} (max_batch_events)",
                    req.events.len(),
                ),
                ErrorDetails::with_bad_request_violation(
                    "events",
                    format!("at most {max} events per batch (max_batch_events)"),
                ),
            ));
        }
        let ids: Vec<String> = req.events.iter().map(|e| e.event_id.clone()).collect();
        let started = Instant::now();
        let outcomes = self.record_many(req.events, ack, req.include_proof).await;
        self.metrics
            .call_took(metrics::Call::RecordBatch, started.elapsed());
        let mut resp = pb::RecordBatchResponse::default();
        for (index, (event_id, outcome)) in ids.into_iter().zip(outcomes).enumerate() {
            let outcome = match outcome {
                Ok(r) => {
                    if r.duplicate {
                        resp.duplicates += 1;
                    }
                    if r.ack == pb::AckLevel::Accepted as i32 {
                        resp.accepted += 1;
                    } else {
                        resp.committed += 1;
                    }
                    pb::item_result::Outcome::Ok(r)
                }
                Err(e) => {
                    resp.rejected += 1;
                    pb::item_result::Outcome::Error(e)
                }
            };
            resp.results.push(pb::ItemResult {
                index: u32::try_from(index).unwrap_or(u32::MAX),
                event_id,
                outcome: Some(outcome),
            });
        }
        Ok(Response::new(resp))
    }
}

#[cfg(test)]
mod tests {
    use super::Submissions;

    #[test]
    fn submission_ids_are_distinct_v4_ids_and_differ_between_gateways() {
        let (a, b) = (Submissions::new(), Submissions::new());
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            for id in [a.next(), b.next()] {
                assert_eq!(id.get_version_num(), 4, "{id}");
                assert_eq!(id.get_variant(), uuid::Variant::RFC4122, "{id}");
                assert!(seen.insert(id), "{id} given twice");
            }
        }
    }
}
