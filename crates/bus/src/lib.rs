//! `wfl-bus`: the transport between the gateway and the ledger.
//!
//! Owns: the [`Bus`] trait (inbox publish/consume, committed-event publish, core
//! request/reply, fire-and-forget publish and subscribe), its two implementations ([`NatsBus`] on NATS
//! JetStream, [`MemoryBus`] in-process), the subject naming, and the one error type
//! [`Error`], and the timing relations of commit outcomes ([`Timing`]).
//!
//! Must not: know the protobuf schema or any domain rule (payloads are opaque bytes), retry on
//! its own behind the caller's back, or drop a message silently (every publish reports a
//! result; the in-process inbox applies backpressure instead of dropping).

pub mod cluster;
mod error;
mod frame;
mod memory;
mod nats;
mod subject;
mod timing;

use std::time::Duration;

use bytes::Bytes;

pub use error::Error;

/// How long a published event id is remembered for deduplication (JetStream's duplicate window
/// on the NATS bus, the same window on the in-process bus).
pub const DEFAULT_DUPLICATE_WINDOW: std::time::Duration = Timing::DEFAULT.duplicate_window();
pub use memory::{MemoryBus, DEFAULT_INBOX_CAPACITY};
pub use nats::{
    NatsAuth, NatsBus, NatsConfig, DEFAULT_INBOX_PREFIX, HEADER_BATCH, HEADER_EVENT_TYPE,
    HEADER_HASH, HEADER_MAP_REVISION, HEADER_PARTITION, HEADER_SEQUENCE, HEADER_SUBMISSION,
    PUBLISH_TIMEOUT,
};
pub use subject::{
    inbox_subject, ledger_subject, INBOX_SUBJECT_PREFIX, LEDGER_SUBJECT_PREFIX,
    OUTCOME_QUESTION_SUBJECT, OUTCOME_SUBJECT,
};
pub use timing::Timing;

/// A message for the ledger's inbox, published by the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxMessage {
    /// Unique id of the event; the broker de-duplicates on it (`Nats-Msg-Id`).
    pub event_id: uuid::Uuid,
    /// Organisation the event belongs to; one subject token (no `.`, `*`, `>`, whitespace).
    pub org_id: String,
    /// Unique id of this submission (one publish of the event), minted by the gateway and carried
    /// as `Wfl-Submission`: the ledger stores the id of the submission that committed an event,
    /// so every later submission of the same event id can be told it was a duplicate.
    pub submission: uuid::Uuid,
    /// Opaque encoded event.
    pub payload: Bytes,
    /// What the publisher already decoded from `payload`, for an in-process bus to hand over
    /// with it ([`Decoded`]); `None` when it has nothing to give.
    pub decoded: Option<Decoded>,
}

/// What a publisher already decoded from an inbox message's payload, handed to the receiver by
/// the in-process bus ([`MemoryBus`]) so that the same bytes are not decoded twice in one
/// process. A broker carries only the bytes: NATS deliveries never have one. It must be exactly
/// what the payload encodes; the receiver names the type it expects (`downcast_ref`) and decodes
/// the payload itself when it finds none, or another type.
#[derive(Clone)]
pub struct Decoded(pub std::sync::Arc<dyn std::any::Any + Send + Sync>);

impl std::fmt::Debug for Decoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Decoded(..)")
    }
}

/// The same value (one allocation), not equal contents: a decoded value need not be comparable.
impl PartialEq for Decoded {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::addr_eq(
            std::sync::Arc::as_ptr(&self.0),
            std::sync::Arc::as_ptr(&other.0),
        )
    }
}

impl Eq for Decoded {}

/// The broker's acknowledgement of one inbox publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishAck {
    /// True when the broker had already stored a message with the same event id (within its
    /// duplicate window) and did not store this one again.
    pub duplicate: bool,
}

/// One message taken from the inbox; acknowledge it with [`Inbox::ack`] once it is flushed.
/// A clone acknowledges the same message (acknowledging it twice is harmless).
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Opaque encoded event, as published.
    pub payload: Bytes,
    /// What the publisher decoded from `payload`, when an in-process bus handed it over
    /// ([`Decoded`]).
    pub decoded: Option<Decoded>,
    /// The publisher's submission id (`Wfl-Submission`), when it sent a valid one.
    pub submission: Option<uuid::Uuid>,
    /// True when the broker delivered this message before (it was not acknowledged in time).
    pub redelivered: bool,
    /// Cluster mode: the org the inbox subject names (`wfl.inbox.<partition>.<org>`).
    pub org_id: Option<String>,
    /// Cluster mode: the partition-map revision its publisher routed it by
    /// (`Wfl-Map-Revision`; 0 when absent).
    pub map_revision: u64,
    /// The publisher's `Nats-Msg-Id`, when it set one.
    pub msg_id: Option<String>,
    handle: AckHandle,
}

/// How to acknowledge a [`Delivery`]; private to the implementations.
#[derive(Debug, Clone)]
enum AckHandle {
    /// In-process deliveries need no acknowledgement.
    None,
    /// The JetStream ack subject (`$JS.ACK...`) of the delivery.
    Nats(async_nats::Subject),
    /// One event (its place in the message) of a message that framed several: the message is
    /// acknowledged once every event in it is.
    NatsPart(std::sync::Arc<nats::FrameAck>, u32),
}

/// The acks of messages [`Bus::send_committed`] sent: resolves once all are acknowledged, or with
/// the first failure.
pub type Acks = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), Error>> + Send>>;

/// What the committed stream's last message says of itself ([`Bus::last_published`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastPublished {
    /// Its ledger sequence (`Wfl-Sequence`).
    pub sequence: u64,
    /// Its chained hash (`Wfl-Hash`); `None` when the header is absent or not 64 hex digits.
    pub hash: Option<[u8; 32]>,
}

/// A committed ledger event, published for downstream consumers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedMessage {
    /// Organisation; one subject token.
    pub org_id: String,
    /// Event type; one or more subject tokens (no wildcards, whitespace or empty tokens).
    pub event_type: String,
    /// The ledger's commit sequence (`Wfl-Sequence`).
    pub sequence: u64,
    /// The ledger's chained hash (`Wfl-Hash`, lowercase hex on the wire).
    pub hash: [u8; 32],
    /// The event id (`Nats-Msg-Id`).
    pub event_id: uuid::Uuid,
    /// Opaque encoded committed event.
    pub payload: Bytes,
    /// `Nats-Msg-Id` instead of the event id: a republish after a purge, whose event ids the
    /// broker still remembers for its duplicate window (a purge does not forget them).
    pub msg_id: Option<String>,
    /// Cluster mode: the partition whose ledger committed it (`Wfl-Partition`; `sequence` and
    /// `hash` are that partition's).
    pub partition: Option<u32>,
}

/// An incoming request taken from [`Requests::next`]; answer it with [`Request::reply`].
#[derive(Debug)]
pub struct Request {
    /// Opaque request body.
    pub payload: Bytes,
    reply: ReplyHandle,
}

/// Where the answer to a [`Request`] goes; private to the implementations.
#[derive(Debug)]
enum ReplyHandle {
    Memory(tokio::sync::oneshot::Sender<Bytes>),
    Nats {
        client: async_nats::Client,
        subject: async_nats::Subject,
    },
}

impl Request {
    /// Sends the reply to the requester. A requester that already gave up (timed out) is not
    /// an error: the reply is then dropped, as NATS would.
    ///
    /// # Errors
    /// [`Error::Unavailable`] if the connection to the broker is gone, [`Error::Rejected`] if
    /// the payload exceeds the broker's maximum payload.
    pub async fn reply(self, payload: Bytes) -> Result<(), Error> {
        match self.reply {
            ReplyHandle::Memory(tx) => {
                // The requester dropped its receiver (timed out): nothing to deliver to.
                let _ = tx.send(payload);
                Ok(())
            }
            ReplyHandle::Nats { client, subject } => {
                nats::core_publish(&client, subject, payload).await
            }
        }
    }
}

/// The transport between gateway and ledger. Usable as `Box<dyn Bus>` / `Arc<dyn Bus>`.
#[async_trait::async_trait]
pub trait Bus: Send + Sync + 'static {
    /// True when a [`PublishAck`] means the message is durable in the broker (JetStream file
    /// storage); false for the in-process bus (callers then wait for the ledger's commit
    /// instead).
    fn durable_inbox(&self) -> bool;

    /// True when an inbox message's [`InboxMessage::decoded`] reaches the receiver (the
    /// in-process bus); a publisher need not build one otherwise.
    fn hands_over_decoded(&self) -> bool {
        false
    }

    /// Whether committed events published now can reach anyone. Always on a broker
    /// (`WFL_LEDGER` keeps them for consumers that come later); on the in-process bus, whose
    /// committed stream is a live fan-out only, while a receiver listens: a publisher need
    /// not read back, check and send events no one can receive.
    fn committed_listened(&self) -> bool {
        true
    }

    /// Whether the bus is usable now, for readiness probes: `Err` says why not (e.g. the NATS
    /// connection is down and reconnecting). The in-process bus is always ready.
    fn health(&self) -> Result<(), String> {
        Ok(())
    }

    /// The largest message the broker takes (NATS: the server's `max_payload`, headers
    /// included); `None` when there is no such limit (in-process). A sender of many items
    /// (outcomes, answers) splits or trims its messages to fit.
    fn max_message(&self) -> Option<usize> {
        None
    }

    /// Publishes to the inbox, pipelined (sends all, then awaits all acks), order preserved;
    /// returns one result per message, in input order.
    ///
    /// NATS: subject `wfl.inbox.<org_id>`, header `Nats-Msg-Id` = event id (JetStream
    /// de-duplication), header `Wfl-Submission` = submission id, stream `WFL_INBOX`. A run of
    /// consecutive messages for one org goes as one broker message framing them all (header
    /// `Wfl-Batch`, see the `frame` module; `Nats-Msg-Id` a digest of their event ids), up to
    /// [`NatsBus::FRAME_EVENTS`] events and the server's `max_payload`; each of them gets the
    /// frame's result. The broker then de-duplicates the run published again, not one of its
    /// events published alone: the ledger's event-id check decides that one (its outcome names
    /// the submission that committed it). Cluster mode publishes one message per event.
    ///
    /// # Errors
    /// Per message: [`Error::Unavailable`] (connection lost, ack timed out: retry with the same
    /// event id), [`Error::Rejected`] (invalid org id, payload too large, broker refused),
    /// [`Error::Closed`] (the bus is shutting down).
    async fn publish_inbox(&self, msgs: Vec<InboxMessage>) -> Vec<Result<PublishAck, Error>>;

    /// The single durable inbox consumer (NATS: durable pull consumer `wfl-ledger` on
    /// `WFL_INBOX`, explicit ack).
    ///
    /// # Errors
    /// [`Error::Unavailable`] if the broker cannot be reached, [`Error::Rejected`] if it
    /// refuses the consumer.
    async fn inbox(&self) -> Result<Box<dyn Inbox>, Error>;

    /// Publishes committed events, pipelined, awaiting all acks.
    ///
    /// NATS: subject `wfl.ledger.<org>.<event_type>`, stream `WFL_LEDGER`, headers
    /// `Nats-Msg-Id` = event id, `Wfl-Sequence` (decimal), `Wfl-Hash` (lowercase hex),
    /// `Wfl-Event-Type`.
    ///
    /// # Errors
    /// The first failure among the messages: [`Error::Unavailable`] (retry: re-publishing is
    /// de-duplicated by event id), [`Error::Rejected`], [`Error::Closed`].
    async fn publish_committed(&self, msgs: Vec<CommittedMessage>) -> Result<(), Error>;

    /// [`Bus::publish_committed`] in two steps: sends the messages now, in order, and returns
    /// what waits for their acks, so that a publisher can send the next ones meanwhile (messages
    /// sent later on this bus are stored after these). The default sends and waits at once.
    ///
    /// # Errors
    /// As [`Bus::publish_committed`]: a message that could not be sent fails the call; one the
    /// broker did not acknowledge fails the returned future.
    async fn send_committed(&self, msgs: Vec<CommittedMessage>) -> Result<Acks, Error> {
        self.publish_committed(msgs).await?;
        Ok(Box::pin(std::future::ready(Ok(()))))
    }

    /// The last message in `WFL_LEDGER` (`None` if empty): its `Wfl-Sequence`, so a restarted
    /// ledger can republish what it committed but had not yet published, and its `Wfl-Hash`, so
    /// it can tell that the stream carries its own history. In-process: what was last published.
    ///
    /// # Errors
    /// [`Error::Unavailable`] if the broker cannot be reached, [`Error::Rejected`] if the last
    /// message has no valid `Wfl-Sequence` header.
    async fn last_published(&self) -> Result<Option<LastPublished>, Error>;

    /// Cluster mode: whether `WFL_LEDGER` holds partition `partition`'s commit `sequence`, whose
    /// subject is `wfl.ledger.<org_id>.<event_type>`. One read of that subject's last message:
    /// an org's commits are published by its partition alone and in order, so the subject's last
    /// message is at or after `sequence` exactly when that commit was published. In-process:
    /// false (it keeps no history).
    ///
    /// # Errors
    /// [`Error::Unavailable`] if the broker cannot be reached, [`Error::Rejected`] if the
    /// subject's last message has no valid `Wfl-Sequence` header.
    async fn committed_holds(
        &self,
        partition: u32,
        org_id: &str,
        event_type: &str,
        sequence: u64,
    ) -> Result<bool, Error> {
        let _ = (partition, org_id, event_type, sequence);
        Ok(false)
    }

    /// The ledger sequences `WFL_LEDGER` lacks below its last message: before its first message
    /// (when the stream keeps everything, `ledger_max_age` zero) and where messages were deleted
    /// in the middle. Costs one stream-info request (with the deleted stream sequences) and two
    /// message reads per hole, whatever the history. In-process: none (it keeps no history).
    ///
    /// # Errors
    /// [`Error::Unavailable`] if the broker cannot be reached, [`Error::Rejected`] if a message
    /// next to a hole has no valid `Wfl-Sequence` header.
    async fn committed_holes(&self) -> Result<StreamHoles, Error> {
        Ok(StreamHoles::default())
    }

    /// Purges `WFL_LEDGER` (its consumers stay), so the ledger can republish every sequence from
    /// 1 in order. In-process: nothing to do.
    ///
    /// # Errors
    /// [`Error::Unavailable`] if the broker cannot be reached, [`Error::Rejected`] if it refuses.
    async fn purge_committed(&self) -> Result<(), Error> {
        Ok(())
    }

    /// Core request/reply with a timeout (NATS core request; in-process: channel + oneshot).
    ///
    /// # Errors
    /// [`Error::Unavailable`] on timeout, when nobody serves `subject`, or when the connection
    /// is gone; [`Error::Rejected`] for an invalid subject or an oversized payload.
    async fn request(
        &self,
        subject: &str,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, Error>;

    /// Serves requests on a subject (NATS: core subscription, one server expected;
    /// in-process: registers the handler, replacing any previous one).
    ///
    /// # Errors
    /// [`Error::Unavailable`] if the subscription cannot be made, [`Error::Rejected`] for an
    /// invalid subject.
    async fn serve(&self, subject: &str) -> Result<Box<dyn Requests>, Error>;

    /// Fire-and-forget core publish (for alerts `wfl.alerts.<org>.<rule_id>`).
    ///
    /// # Errors
    /// [`Error::Unavailable`] if the connection is gone, [`Error::Rejected`] for an invalid
    /// subject or an oversized payload.
    async fn publish(&self, subject: &str, payload: Bytes) -> Result<(), Error>;

    /// Receives every core publish on `subject` made from now on (NATS: a core subscription,
    /// flushed so the server has it before this returns; in-process: the publish broadcast,
    /// filtered). Core messages are at-most-once: a subscriber that must not miss anything
    /// keeps another way to ask (see [`Subscription::next`]).
    ///
    /// # Errors
    /// [`Error::Unavailable`] if the subscription cannot be made, [`Error::Rejected`] for an
    /// invalid subject.
    async fn subscribe(&self, subject: &str) -> Result<Box<dyn Subscription>, Error>;
}

/// Messages arriving on one subscribed subject.
#[async_trait::async_trait]
pub trait Subscription: Send {
    /// The next message's payload; `Some(Err(Error::Unavailable))` when messages were lost
    /// (the in-process receiver fell behind), `None` once the subscription has ended.
    async fn next(&mut self) -> Option<Result<Bytes, Error>>;
}

/// Acknowledges an [`Inbox`]'s deliveries; see [`Inbox::acker`].
#[async_trait::async_trait]
pub trait Acker: Send + Sync {
    /// Acknowledges deliveries (call only after the ledger flushed them). In-process: no-op.
    /// NATS: pipelined acks, the last one synchronous, so on `Ok` the broker has processed
    /// them all.
    ///
    /// # Errors
    /// [`Error::Unavailable`] if the acks could not be confirmed; unconfirmed deliveries are
    /// redelivered after the ack wait, so the ledger must tolerate duplicates.
    async fn ack(&self, deliveries: Vec<Delivery>) -> Result<(), Error>;

    /// Cluster mode: hands deliveries back to the broker to be delivered again after `delay`
    /// (their org is being placed on another partition: nothing may commit them meanwhile).
    ///
    /// # Errors
    /// [`Error::Unavailable`] if the broker could not be told (they are delivered again after
    /// the ack wait anyway); [`Error::Rejected`] on a bus that cannot (in-process).
    async fn defer(
        &self,
        deliveries: Vec<Delivery>,
        delay: std::time::Duration,
    ) -> Result<(), Error> {
        let _ = (deliveries, delay);
        Err(Error::Rejected(
            "this bus cannot hand deliveries back".to_owned(),
        ))
    }

    /// Cluster mode: publishes each delivery again on another inbox subject (its org's
    /// partition, by map revision `map_revision`), with the same payload and submission and
    /// `Nats-Msg-Id` `<its msg id>@<subject>` (so forwarding it twice stores it once), then
    /// acknowledges it. The ledger's event-id check makes a forward repeated after the
    /// duplicate window harmless.
    ///
    /// # Errors
    /// [`Error::Unavailable`] if a publish or ack could not be confirmed (nothing acknowledged
    /// is lost: an unacknowledged delivery comes again); [`Error::Rejected`] on a bus that
    /// cannot (in-process).
    async fn redirect(
        &self,
        moves: Vec<(Delivery, String)>,
        map_revision: u64,
    ) -> Result<(), Error> {
        let _ = (moves, map_revision);
        Err(Error::Rejected(
            "this bus cannot redirect deliveries".to_owned(),
        ))
    }
}

/// The ledger's view of the inbox consumer.
#[async_trait::async_trait]
pub trait Inbox: Send {
    /// Waits for at least one delivery, then takes whatever else is immediately available, up
    /// to `max` (a `max` of 0 is treated as 1). Returns `Ok(vec![])` only when `idle` elapses
    /// with nothing delivered (so the caller can check for shutdown).
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the broker connection is down or the pull failed (call
    /// again later: the consumer resumes), [`Error::Closed`] when the bus is shut down.
    async fn next_batch(&mut self, max: usize, idle: Duration) -> Result<Vec<Delivery>, Error>;

    /// Acknowledges deliveries (call only after the ledger flushed them), as
    /// [`Acker::ack`] of [`Inbox::acker`] does.
    ///
    /// # Errors
    /// As [`Acker::ack`].
    async fn ack(&mut self, deliveries: Vec<Delivery>) -> Result<(), Error> {
        self.acker().ack(deliveries).await
    }

    /// A handle that acknowledges this inbox's deliveries from another task, so acknowledging
    /// one batch overlaps with fetching and committing the next.
    fn acker(&self) -> std::sync::Arc<dyn Acker>;

    /// The broker's view of the consumer, for stall detection; `None` when the implementation
    /// keeps no such state (in-process: a bounded channel cannot stall behind the reader's back).
    ///
    /// # Errors
    /// [`Error::Unavailable`] if the broker does not answer (not a stall: the connection is
    /// down), [`Error::Rejected`] if the consumer does not exist.
    async fn state(&mut self) -> Result<Option<InboxState>, Error> {
        Ok(None)
    }

    /// Recovery step 1: drops the pull subscription and opens a new one on the same consumer
    /// (created again only if it no longer exists). In-process: no-op.
    ///
    /// # Errors
    /// [`Error::Unavailable`] / [`Error::Rejected`] as for [`Bus::inbox`].
    async fn reopen(&mut self) -> Result<(), Error> {
        Ok(())
    }

    /// Recovery step 2: deletes the durable consumer and creates it again, then opens a new
    /// pull subscription. On a work-queue stream the acknowledged messages are gone, so the new
    /// consumer starts at the old one's ack floor: every unacknowledged message is delivered
    /// again (the ledger decides every event id once, so redelivery is harmless). In-process:
    /// no-op.
    ///
    /// # Errors
    /// [`Error::Unavailable`] / [`Error::Rejected`] as for [`Bus::inbox`].
    async fn recreate(&mut self) -> Result<(), Error> {
        Ok(())
    }
}

/// Ledger sequences missing from the committed stream (see [`Bus::committed_holes`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamHoles {
    /// Missing ranges of ledger sequences (inclusive), ascending; the first
    /// [`StreamHoles::LISTED`] holes only.
    pub ranges: Vec<(u64, u64)>,
    /// Sequences missing in all.
    pub missing: u64,
}

impl StreamHoles {
    /// Holes located (two message reads each); the others are only counted.
    pub const LISTED: usize = 10;
}

/// What the broker reports about the inbox consumer (NATS: consumer info).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InboxState {
    /// Messages in the stream not yet delivered to the consumer (broker messages: on NATS one
    /// may be a frame of many events of one org).
    pub num_pending: u64,
    /// Messages delivered but not acknowledged (broker messages, as `num_pending`).
    pub num_ack_pending: u64,
    /// Messages delivered again after their ack wait expired.
    pub num_redelivered: u64,
    /// Pull requests waiting on the server.
    pub num_waiting: u64,
    /// Stream sequence of the last delivered message.
    pub delivered_stream_sequence: u64,
    /// Stream sequence below which every message is acknowledged.
    pub ack_floor_stream_sequence: u64,
    /// The consumer's configured ack wait (redelivery deadline of an unacknowledged message).
    pub ack_wait: Duration,
}

impl std::fmt::Display for InboxState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "num_pending={} num_ack_pending={} num_redelivered={} num_waiting={} delivered_stream_seq={} ack_floor_stream_seq={} ack_wait={:?}",
            self.num_pending,
            self.num_ack_pending,
            self.num_redelivered,
            self.num_waiting,
            self.delivered_stream_sequence,
            self.ack_floor_stream_sequence,
            self.ack_wait
        )
    }
}

/// A stream of incoming requests on one subject.
#[async_trait::async_trait]
pub trait Requests: Send {
    /// The next request, or `None` once the subscription has ended (bus closed, or the
    /// in-process handler was replaced).
    async fn next(&mut self) -> Option<Request>;
}
