//! The NATS JetStream bus.
//!
//! Owns: the connection, the two streams (`WFL_INBOX`: work queue of incoming events;
//! `WFL_LEDGER`: committed events, kept per `ledger_max_age`), the durable pull consumer of the
//! inbox, and the mapping of async-nats errors onto [`Error`].
//!
//! Must not: hang on a dead connection (every wait is bounded: publish acks by
//! [`PUBLISH_TIMEOUT`], `next_batch` by its idle time, requests by their timeout), retry
//! publishes itself (the caller retries with the same event ids; the broker de-duplicates), or
//! use JetStream features newer than nats-server 2.9.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, context, stream};
use async_nats::{Client, HeaderMap};
use bytes::Bytes;
use futures::{FutureExt, StreamExt};

use crate::subject::{check_event_type, check_org, check_subject, inbox_subject, ledger_subject};
use crate::{
    AckHandle, Acker, Bus, CommittedMessage, Delivery, Error, Inbox, InboxMessage, InboxState,
    PublishAck, ReplyHandle, Request, Requests, Subscription, INBOX_SUBJECT_PREFIX,
    LEDGER_SUBJECT_PREFIX,
};

/// Bound on sending one JetStream publish and on awaiting its ack (also JetStream API calls).
pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on establishing the connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default client-side PING interval (detects half-open connections):
/// [`NatsConfig::ping_interval`].
pub const PING_INTERVAL: Duration = Duration::from_secs(10);
/// Pings more often than this would only add traffic.
const MIN_PING_INTERVAL: Duration = Duration::from_millis(500);
/// Longest pause between two attempts to dial the servers again.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(2);

/// The pause before the `attempts`-th dial since the connection was lost (each server of the
/// list tried counts one): the client's own schedule (none for the first, then 2 ms doubling),
/// capped at [`MAX_RECONNECT_DELAY`] instead of its 4 s, so a long outage adds at most 2 s (plus
/// the dial itself, up to the connect timeout) once the link is back.
fn reconnect_delay(attempts: usize) -> Duration {
    if attempts <= 1 {
        return Duration::ZERO;
    }
    let exponent = u32::try_from(attempts - 1).unwrap_or(u32::MAX).min(20);
    Duration::from_millis(2u64.pow(exponent)).min(MAX_RECONNECT_DELAY)
}
/// Messages requested per pull from the inbox consumer (the client buffers up to this many).
const PULL_BATCH: usize = 1_000;
/// Bytes requested per pull at least (the client buffers up to this much): a message frames up
/// to 1,000 events, so the message count alone would let a backlog buffer 1,000 frames (~400
/// MB of 400-byte events) in the ledger's memory.
const PULL_BYTES: usize = 8 << 20;
/// Lifetime of one pull request on the server; the client renews it.
const PULL_EXPIRES: Duration = Duration::from_secs(30);

/// Header carrying the ledger's commit sequence (decimal).
pub const HEADER_SEQUENCE: &str = "Wfl-Sequence";
/// Header carrying the ledger's chained hash (lowercase hex).
pub const HEADER_HASH: &str = "Wfl-Hash";
/// How long `next_batch` waits for more messages after the first before handing a batch over.
const BATCH_LINGER: Duration = Duration::from_millis(3);

/// Header carrying the gateway's submission id of an inbox message (a UUID).
pub const HEADER_SUBMISSION: &str = "Wfl-Submission";
/// Header of an inbox message framing several events (see the `frame` module): how many.
pub const HEADER_BATCH: &str = "Wfl-Batch";
/// Room left in a frame for its headers (`Nats-Msg-Id` of 74 characters, `Wfl-Batch`).
const FRAME_HEADROOM: usize = 256;
/// The frame size when the server did not say its `max_payload` (the NATS default).
const DEFAULT_MAX_PAYLOAD: usize = 1024 * 1024;
/// Reply-subject prefix of an anonymous connection; a user's is `_INBOX.<user>`.
pub const DEFAULT_INBOX_PREFIX: &str = "_INBOX";

/// Header carrying the event type.
pub const HEADER_EVENT_TYPE: &str = "Wfl-Event-Type";
/// Header of a committed message in cluster mode: the partition whose ledger committed it (its
/// `Wfl-Sequence` and `Wfl-Hash` are that partition's chain).
pub const HEADER_PARTITION: &str = "Wfl-Partition";
/// Header of an inbox message in cluster mode: the partition-map revision it was routed by.
pub const HEADER_MAP_REVISION: &str = "Wfl-Map-Revision";

/// Names and limits of the NATS objects the bus creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsConfig {
    /// Inbox stream (subjects `wfl.inbox.>`, file storage, work-queue retention).
    pub inbox_stream: String,
    /// Committed-events stream (subjects `wfl.ledger.>`, file storage, limits retention).
    pub ledger_stream: String,
    /// Durable pull consumer of the inbox stream.
    pub consumer: String,
    /// JetStream de-duplication window of both streams (on `Nats-Msg-Id`).
    pub duplicate_window: Duration,
    /// Maximum age of committed events; zero keeps them forever.
    pub ledger_max_age: Duration,
    /// Maximum unacknowledged inbox deliveries.
    pub max_ack_pending: i64,
    /// How long a delivery may stay unacknowledged before it is redelivered. A ledger restarted
    /// after a crash waits this long for the deliveries its predecessor held; a batch is flushed
    /// in milliseconds, so 10 s leaves a wide margin without stalling recovery for long.
    pub ack_wait: Duration,
    /// Who the connection authenticates as (`Anonymous` on an open server).
    pub auth: NatsAuth,
    /// Prefix of this connection's reply subjects (`_INBOX.<user>` when `None` and a user is
    /// given, else `_INBOX`). On a locked-down server
    /// each service subscribes only to its own `_INBOX.<user>.>`, so no user can read another's
    /// replies; see `deploy/nats/wfl.conf`.
    pub inbox_prefix: Option<String>,
    /// Create or update the streams at connect. The ledger owns them; a gateway or projector
    /// whose NATS user may not call those JetStream APIs connects with `false` (the gateway's
    /// publishes then fail as unavailable until the ledger has created the inbox stream). The
    /// inbox consumer is created by whoever consumes the inbox ([`Bus::inbox`]: the ledger), never
    /// by provisioning: a gateway starting while the ledger re-creates it would race the ledger.
    pub provision: bool,
    /// Replicas of the streams the bus creates (3 on a 3-node JetStream cluster).
    pub replicas: usize,
    /// Cluster mode: the inbox subject carries the org's partition
    /// (`wfl.inbox.<partition>.<org>`), so each partition's ledger consumes its own range.
    /// The map is followed ([`crate::cluster::LiveMap`]): an org placed since routes to its
    /// new partition, and every message names the map revision it was routed by
    /// (`Wfl-Map-Revision`).
    pub partitions: Option<crate::cluster::LiveMap>,
    /// Cluster mode: the inbox consumer takes only this subject range
    /// (`wfl.inbox.<partition>.>`).
    pub inbox_filter: Option<String>,
    /// Client-side PING interval. A connection whose pings go unanswered three intervals in a
    /// row is dropped and dialled again, so this bounds how long a half-open connection (a cut
    /// link: no FIN, no RST) goes unnoticed. A cluster instance sets a third of its lease TTL,
    /// so such a connection is replaced within about one TTL.
    pub ping_interval: Duration,
}

/// How a NATS connection authenticates.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum NatsAuth {
    /// No credentials (an open server, or one with a `no_auth_user`).
    #[default]
    Anonymous,
    /// A user and password from the server's `authorization { users = [...] }`.
    UserPassword { user: String, password: String },
    /// A `.creds` file (user JWT and nkey seed, operator mode).
    CredsFile(std::path::PathBuf),
}

impl std::fmt::Debug for NatsAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NatsAuth::Anonymous => f.write_str("Anonymous"),
            // The password never reaches a log line.
            NatsAuth::UserPassword { user, .. } => f
                .debug_struct("UserPassword")
                .field("user", user)
                .field("password", &"<redacted>")
                .finish(),
            NatsAuth::CredsFile(path) => f.debug_tuple("CredsFile").field(path).finish(),
        }
    }
}

impl NatsAuth {
    /// `UserPassword` when a user is given, else `CredsFile` when a creds file is, else
    /// `Anonymous` (the shape of the services' `--nats-user/--nats-password/--nats-creds` flags).
    ///
    /// # Errors
    /// [`Error::Rejected`] when a user comes without a password (or the reverse), or with a
    /// creds file as well.
    pub fn from_flags(
        user: Option<String>,
        password: Option<String>,
        creds: Option<std::path::PathBuf>,
    ) -> Result<NatsAuth, Error> {
        match (user, password, creds) {
            (None, None, None) => Ok(NatsAuth::Anonymous),
            (Some(user), Some(password), None) => Ok(NatsAuth::UserPassword { user, password }),
            (None, None, Some(path)) => Ok(NatsAuth::CredsFile(path)),
            (Some(_), None, _) => Err(Error::Rejected(
                "--nats-user needs --nats-password (or WFL_NATS_PASSWORD)".to_owned(),
            )),
            (None, Some(_), _) => Err(Error::Rejected(
                "--nats-password needs --nats-user (or WFL_NATS_USER)".to_owned(),
            )),
            (Some(_), Some(_), Some(_)) => Err(Error::Rejected(
                "give either --nats-user/--nats-password or --nats-creds, not both".to_owned(),
            )),
        }
    }

    /// The user name, when there is one (used as the default reply-subject prefix).
    #[must_use]
    pub fn user(&self) -> Option<&str> {
        match self {
            NatsAuth::UserPassword { user, .. } => Some(user),
            NatsAuth::Anonymous | NatsAuth::CredsFile(_) => None,
        }
    }
}

impl Default for NatsConfig {
    fn default() -> Self {
        NatsConfig {
            inbox_stream: "WFL_INBOX".to_owned(),
            ledger_stream: "WFL_LEDGER".to_owned(),
            consumer: "wfl-ledger".to_owned(),
            duplicate_window: crate::DEFAULT_DUPLICATE_WINDOW,
            ledger_max_age: Duration::ZERO,
            max_ack_pending: 20_000,
            ack_wait: Duration::from_secs(10),
            auth: NatsAuth::Anonymous,
            inbox_prefix: None,
            provision: true,
            replicas: 1,
            partitions: None,
            inbox_filter: None,
            ping_interval: PING_INTERVAL,
        }
    }
}

impl NatsConfig {
    fn inbox_stream_config(&self) -> stream::Config {
        stream::Config {
            name: self.inbox_stream.clone(),
            subjects: vec![format!("{INBOX_SUBJECT_PREFIX}.>")],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::WorkQueue,
            duplicate_window: self.duplicate_window,
            num_replicas: self.replicas,
            ..stream::Config::default()
        }
    }

    fn ledger_stream_config(&self) -> stream::Config {
        // The server refuses a duplicate window longer than max_age.
        let duplicate_window = if self.ledger_max_age.is_zero() {
            self.duplicate_window
        } else {
            self.duplicate_window.min(self.ledger_max_age)
        };
        stream::Config {
            name: self.ledger_stream.clone(),
            subjects: vec![format!("{LEDGER_SUBJECT_PREFIX}.>")],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            max_age: self.ledger_max_age,
            duplicate_window,
            num_replicas: self.replicas,
            ..stream::Config::default()
        }
    }

    fn consumer_config(&self) -> consumer::pull::Config {
        consumer::pull::Config {
            durable_name: Some(self.consumer.clone()),
            ack_policy: consumer::AckPolicy::Explicit,
            deliver_policy: consumer::DeliverPolicy::All,
            ack_wait: self.ack_wait,
            max_ack_pending: self.max_ack_pending,
            filter_subject: self.inbox_filter.clone().unwrap_or_default(),
            ..consumer::pull::Config::default()
        }
    }
}

/// The [`Bus`] on NATS JetStream.
pub struct NatsBus {
    client: Client,
    js: jetstream::Context,
    config: NatsConfig,
    /// Where one ledger's commits (no partition) go in `WFL_LEDGER`: the stream sequence of
    /// ledger sequence `q` is `q + offset`, learned from the stream's last message
    /// ([`Bus::last_published`]) and forgotten after a failed send. Each such message carries
    /// `Nats-Expected-Last-Sequence` = its predecessor's stream sequence, so the stream refuses
    /// a message whose predecessor is not its last: after a message lost mid-chunk (a broken
    /// connection drops what was buffered), the ones after it are refused rather than stored
    /// past a hole, and sending again from the first one missing puts everything in order. What
    /// the stream holds is never sent again: nats-server 2.9 would drop it as a duplicate, but
    /// 2.10+ checks the predecessor before `Nats-Msg-Id` and would refuse it.
    order: Arc<std::sync::Mutex<Option<End>>>,
}

/// The stream's end as [`NatsBus::order`] knows it.
#[derive(Debug, Clone, Copy)]
enum End {
    /// No message (a new stream, or a purged one, whose sequences go on after this one): the
    /// first message sent there sets the offset.
    Empty(u64),
    Last(Order),
}

/// What [`NatsBus::order`] knows of the stream's end.
#[derive(Debug, Clone, Copy)]
struct Order {
    /// Stream sequence minus ledger sequence.
    offset: i64,
    /// The ledger sequence of the stream's last message when learned: the stream holds every
    /// message up to it, which is not sent again.
    known: u64,
}

/// Provisioning steps answered `Unavailable` are tried again this many times...
const PROVISION_RETRIES: u32 = 5;
/// ...waiting this long times the attempt number in between (3 s in all).
const PROVISION_BACKOFF: Duration = Duration::from_millis(200);

impl NatsBus {
    /// Most events one inbox message frames (see [`Bus::publish_inbox`]).
    pub const FRAME_EVENTS: usize = 1_000;

    /// Connects to `url` as `config.auth` and, when `config.provision`, creates (or updates) the
    /// inbox and ledger streams. Idempotent: safe to call from every process start.
    ///
    /// # Errors
    /// [`Error::Unavailable`] if the server cannot be reached or JetStream does not answer in
    /// time; [`Error::Rejected`] if the server refuses the credentials, a stream or consumer
    /// configuration (for example an existing stream with a different retention policy), or
    /// the creds file cannot be read.
    pub async fn connect(url: &str, config: NatsConfig) -> Result<NatsBus, Error> {
        let mut options = match &config.auth {
            NatsAuth::Anonymous => async_nats::ConnectOptions::new(),
            NatsAuth::UserPassword { user, password } => {
                async_nats::ConnectOptions::with_user_and_password(user.clone(), password.clone())
            }
            NatsAuth::CredsFile(path) => async_nats::ConnectOptions::with_credentials_file(path)
                .await
                .map_err(|e| {
                    Error::rejected(&format!("read NATS creds file {}", path.display()), e)
                })?,
        };
        let prefix = config.inbox_prefix.clone().or_else(|| {
            config
                .auth
                .user()
                .map(|user| format!("{DEFAULT_INBOX_PREFIX}.{user}"))
        });
        if let Some(prefix) = prefix {
            options = options.custom_inbox_prefix(prefix);
        }
        let client = options
            .name("wfl")
            .connection_timeout(CONNECT_TIMEOUT)
            .ping_interval(config.ping_interval.max(MIN_PING_INTERVAL))
            .reconnect_delay_callback(reconnect_delay)
            .request_timeout(Some(PUBLISH_TIMEOUT))
            .event_callback(|event| async move {
                match event {
                    async_nats::Event::Connected => tracing::info!("nats connected"),
                    async_nats::Event::Disconnected => tracing::warn!("nats disconnected"),
                    // Permission violations arrive here: a refused publish or subscribe is
                    // otherwise silent on the client side.
                    async_nats::Event::ServerError(e) => {
                        tracing::error!(error = %e, "nats server error")
                    }
                    other => tracing::debug!(event = %other, "nats event"),
                }
            })
            // A cluster's nodes as one comma-separated list, each tried in turn.
            .connect(
                url.split(',')
                    .map(str::trim)
                    .filter(|u| !u.is_empty())
                    .map(str::to_owned)
                    .collect::<Vec<String>>(),
            )
            .await
            .map_err(|e| match e.kind() {
                async_nats::ConnectErrorKind::AuthorizationViolation
                | async_nats::ConnectErrorKind::Authentication => {
                    Error::rejected(&format!("connect to {url} as {:?}", config.auth), e)
                }
                _ => Error::unavailable(&format!("connect to {url}"), e),
            })?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(PUBLISH_TIMEOUT);
        let bus = NatsBus {
            client,
            js,
            config,
            order: Arc::default(),
        };
        if bus.config.provision {
            // Processes start together: a stream update racing another process's may be answered
            // with something the client cannot parse, a transient `Unavailable`.
            let mut attempt = 0u32;
            loop {
                match bus.provision().await {
                    Ok(()) => break,
                    Err(Error::Unavailable(why)) if attempt < PROVISION_RETRIES => {
                        attempt += 1;
                        tracing::warn!(%why, attempt, "provisioning the streams failed; retrying");
                        tokio::time::sleep(PROVISION_BACKOFF * attempt).await;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(bus)
    }

    /// Creates or updates both streams.
    async fn provision(&self) -> Result<(), Error> {
        self.ensure_stream(self.config.inbox_stream_config())
            .await?;
        self.ensure_stream(self.config.ledger_stream_config())
            .await?;
        Ok(())
    }

    /// The underlying client (for diagnostics and tests).
    #[must_use]
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Cluster mode for a gateway: route each org's inbox messages to its partition's range
    /// (`wfl.inbox.<partition>.<org>`).
    #[must_use]
    pub fn with_partitions(mut self, map: crate::cluster::LiveMap) -> NatsBus {
        self.config.partitions = Some(map);
        self
    }

    /// The configuration the bus was connected with.
    #[must_use]
    pub fn config(&self) -> &NatsConfig {
        &self.config
    }

    /// Updates the stream to `config`, creating it when it does not exist.
    async fn ensure_stream(&self, config: stream::Config) -> Result<(), Error> {
        let name = config.name.clone();
        match self.js.update_stream(&config).await {
            Ok(_) => Ok(()),
            Err(e) if is_stream_not_found(&e) => match self.js.create_stream(config).await {
                Ok(_) => Ok(()),
                Err(e) => Err(map_create_stream(&format!("create stream {name}"), &e)),
            },
            Err(e) => Err(map_create_stream(&format!("update stream {name}"), &e)),
        }
    }

    /// Creates the durable consumer, or updates it in place (nats-server treats a create with
    /// an existing durable name as create-or-update).
    async fn ensure_consumer(&self) -> Result<consumer::PullConsumer, Error> {
        create_consumer(&self.js, &self.config).await
    }

    async fn ledger_stream(&self) -> Result<stream::Stream, Error> {
        get_stream(&self.js, &self.config.ledger_stream).await
    }
}

async fn get_stream(js: &jetstream::Context, name: &str) -> Result<stream::Stream, Error> {
    js.get_stream(name).await.map_err(|e| match e.kind() {
        context::GetStreamErrorKind::JetStream(api) => {
            Error::rejected(&format!("get stream {name}"), api)
        }
        context::GetStreamErrorKind::EmptyName | context::GetStreamErrorKind::InvalidStreamName => {
            Error::rejected(&format!("get stream {name}"), &e)
        }
        context::GetStreamErrorKind::Request => {
            Error::unavailable(&format!("get stream {name}"), &e)
        }
    })
}

async fn create_consumer(
    js: &jetstream::Context,
    config: &NatsConfig,
) -> Result<consumer::PullConsumer, Error> {
    let stream = get_stream(js, &config.inbox_stream).await?;
    stream
        .create_consumer(config.consumer_config())
        .await
        .map_err(|e| {
            let what = format!("create consumer {}", config.consumer);
            match e.kind() {
                stream::ConsumerErrorKind::JetStream(api) => Error::rejected(&what, api),
                stream::ConsumerErrorKind::InvalidConsumerType
                | stream::ConsumerErrorKind::InvalidName => Error::rejected(&what, &e),
                stream::ConsumerErrorKind::TimedOut
                | stream::ConsumerErrorKind::Request
                | stream::ConsumerErrorKind::Other => Error::unavailable(&what, &e),
            }
        })
}

fn is_stream_not_found(e: &context::CreateStreamError) -> bool {
    matches!(e.kind(), context::CreateStreamErrorKind::JetStream(api)
        if api.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND)
}

fn map_create_stream(what: &str, e: &context::CreateStreamError) -> Error {
    use context::CreateStreamErrorKind as K;
    match e.kind() {
        K::JetStream(api) => Error::rejected(what, api),
        K::EmptyStreamName | K::InvalidStreamName | K::DomainAndExternalSet => {
            Error::rejected(what, e)
        }
        // No responders: JetStream is not (yet) enabled on the server.
        K::JetStreamUnavailable | K::TimedOut | K::Response | K::ResponseParse => {
            Error::unavailable(what, e)
        }
    }
}

fn map_publish(what: &str, e: &context::PublishError) -> Error {
    use context::PublishErrorKind as K;
    match e.kind() {
        // No responders: the stream is gone or JetStream is not up; retryable by an operator.
        K::StreamNotFound | K::TimedOut | K::BrokenPipe => Error::unavailable(what, e),
        K::WrongLastMessageId | K::WrongLastSequence => Error::rejected(what, e),
        K::Other => {
            let api_error = std::error::Error::source(e)
                .is_some_and(|source| source.downcast_ref::<jetstream::Error>().is_some());
            if api_error {
                Error::rejected(what, e)
            } else {
                Error::unavailable(what, e)
            }
        }
    }
}

/// Core publish shared by [`Bus::publish`] and [`Request::reply`].
pub(crate) async fn core_publish(
    client: &Client,
    subject: async_nats::Subject,
    payload: Bytes,
) -> Result<(), Error> {
    check_size(max_payload(client), payload.len())?;
    client
        .publish(subject, payload)
        .await
        .map_err(|e| match e.kind() {
            async_nats::client::PublishErrorKind::MaxPayloadExceeded => {
                Error::rejected("publish", &e)
            }
            async_nats::client::PublishErrorKind::Send => Error::Closed,
        })
}

/// The server's maximum message size (headers + payload); 0 when unknown.
fn max_payload(client: &Client) -> usize {
    client.server_info().max_payload
}

/// Refuses messages the server would answer by closing the connection.
fn check_size(max: usize, len: usize) -> Result<(), Error> {
    if max > 0 && len > max {
        Err(Error::Rejected(format!(
            "message of {len} bytes exceeds the server's max_payload of {max} bytes"
        )))
    } else {
        Ok(())
    }
}

/// Size of `headers` on the wire (`NATS/1.0\r\n`, `Name: value\r\n` each, `\r\n`).
fn headers_len(headers: &HeaderMap) -> usize {
    let fields: usize = headers
        .iter()
        .map(|(name, values)| {
            let name: &str = name.as_ref();
            values
                .iter()
                .map(|v| name.len() + 2 + v.as_str().len() + 2)
                .sum::<usize>()
        })
        .sum();
    "NATS/1.0\r\n".len() + fields + 2
}

/// The payload a frame may fill: the server's `max_payload` less room for the headers.
fn frame_limit(max_payload: usize) -> usize {
    let max = if max_payload == 0 {
        DEFAULT_MAX_PAYLOAD
    } else {
        max_payload
    };
    max.saturating_sub(FRAME_HEADROOM)
}

/// Groups consecutive messages for one subject into frames of at most
/// [`NatsBus::FRAME_EVENTS`] events and `limit` bytes; returns the broker messages and how
/// many events each holds, in order. A run of one, or a message too large to share a frame,
/// goes as it is (headers `Nats-Msg-Id` = event id and `Wfl-Submission`).
fn frames(
    valid: Vec<(String, HeaderMap, InboxMessage)>,
    limit: usize,
) -> (Vec<(String, HeaderMap, Bytes)>, Vec<usize>) {
    let mut messages = Vec::new();
    let mut sizes = Vec::new();
    let mut run: Vec<(String, HeaderMap, InboxMessage)> = Vec::new();
    let mut bytes = 0;
    let close = |run: &mut Vec<(String, HeaderMap, InboxMessage)>,
                 messages: &mut Vec<(String, HeaderMap, Bytes)>,
                 sizes: &mut Vec<usize>| {
        match run.len() {
            0 => {}
            1 => {
                let (subject, headers, msg) = run.pop().expect("one");
                messages.push((subject, headers, msg.payload));
                sizes.push(1);
            }
            n => {
                let subject = run[0].0.clone();
                let mut headers = HeaderMap::new();
                headers.insert(
                    async_nats::header::NATS_MESSAGE_ID,
                    crate::frame::frame_id(run.iter().map(|(_, _, m)| &m.event_id)),
                );
                headers.insert(HEADER_BATCH, n.to_string());
                let payload = crate::frame::frame(
                    run.iter()
                        .map(|(_, _, m)| (m.event_id, m.submission, m.payload.as_ref())),
                );
                messages.push((subject, headers, payload));
                sizes.push(n);
                run.clear();
            }
        }
    };
    for item in valid {
        let size = crate::frame::PER_EVENT + item.2.payload.len();
        let fits = run.first().is_some_and(|first| first.0 == item.0)
            && run.len() < NatsBus::FRAME_EVENTS
            && bytes + size <= limit;
        if !fits {
            close(&mut run, &mut messages, &mut sizes);
            bytes = 0;
        }
        bytes += size;
        run.push(item);
    }
    close(&mut run, &mut messages, &mut sizes);
    (messages, sizes)
}

/// Sends every publish first (stopping at the first connection failure, so a dead connection
/// costs one timeout, not one per message), then awaits all acks concurrently.
async fn publish_pipelined(
    js: &jetstream::Context,
    client: &Client,
    msgs: Vec<(String, HeaderMap, Bytes)>,
) -> Vec<Result<jetstream::publish::PublishAck, Error>> {
    await_acks(send_pipelined(js, client, msgs).await).await
}

/// Waits for the acks of messages [`send_pipelined`] sent, each with its result.
async fn await_acks(
    pending: Vec<Result<context::PublishAckFuture, Error>>,
) -> Vec<Result<jetstream::publish::PublishAck, Error>> {
    futures::future::join_all(pending.into_iter().map(|p| async move {
        match p {
            Ok(ack) => ack.await.map_err(|e| map_publish("publish ack", &e)),
            Err(e) => Err(e),
        }
    }))
    .await
}

/// Records the stream's end in `order` (`ledger_last` `None`: it holds no message).
fn learn(order: &std::sync::Mutex<Option<End>>, stream_last: u64, ledger_last: Option<u64>) {
    let end = match ledger_last {
        None => End::Empty(stream_last),
        Some(ledger_last) => End::Last(Order {
            offset: i64::try_from(stream_last).unwrap_or(i64::MAX)
                - i64::try_from(ledger_last).unwrap_or(i64::MAX),
            known: ledger_last,
        }),
    };
    *order
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(end);
}

/// Where the messages from ledger sequence `first` on go, from what `order` knows (an empty
/// stream takes `first` as its first message); `None` when it knows nothing.
fn settle(order: &std::sync::Mutex<Option<End>>, first: u64) -> Option<Order> {
    let mut end = order
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match *end {
        Some(End::Last(order)) => Some(order),
        Some(End::Empty(stream_last)) => {
            let settled = Order {
                offset: i64::try_from(stream_last).unwrap_or(i64::MAX)
                    - (i64::try_from(first).unwrap_or(i64::MAX) - 1),
                known: 0,
            };
            *end = Some(End::Last(settled));
            Some(settled)
        }
        None => None,
    }
}

/// Where the messages from ledger sequence `first` on go: from what `order` knows, or from the
/// stream `name` when it knows nothing or `refresh` (after a chunk not stored whole).
async fn end_of(
    js: &jetstream::Context,
    name: &str,
    order: &std::sync::Mutex<Option<End>>,
    first: u64,
    refresh: bool,
) -> Result<Order, Error> {
    let unknown = order
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .is_none();
    if refresh || unknown {
        let (stream_last, held) = stream_end(js, name).await?;
        learn(order, stream_last, held.map(|h| h.sequence));
    }
    settle(order, first)
        .ok_or_else(|| Error::Unavailable("the ledger stream's end is unknown".into()))
}

/// After a failed send (part of it may have gone out) the stream's end is unknown: the next
/// send reads it again.
fn forget(order: &std::sync::Mutex<Option<End>>) {
    *order
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
}

/// The ledger stream's last stream sequence and, when it holds a message, that message's
/// `Wfl-Sequence` and `Wfl-Hash`.
async fn stream_end(
    js: &jetstream::Context,
    name: &str,
) -> Result<(u64, Option<crate::LastPublished>), Error> {
    let mut stream = get_stream(js, name).await?;
    // The last message may expire (max_age) between reading the info and fetching it.
    for _ in 0..3 {
        let info = stream
            .info()
            .await
            .map_err(|e| Error::unavailable("ledger stream info", e))?;
        let last = info.state.last_sequence;
        if info.state.messages == 0 {
            // Empty (new, or purged: its sequences go on from the last one it held).
            return Ok((last, None));
        }
        match stream.get_raw_message(last).await {
            Ok(msg) => {
                let value = msg.headers.get(HEADER_SEQUENCE).ok_or_else(|| {
                    Error::Rejected(format!(
                        "last ledger message (stream sequence {last}) has no {HEADER_SEQUENCE} header"
                    ))
                })?;
                let sequence = value.as_str().parse::<u64>().map_err(|e| {
                    Error::rejected(&format!("invalid {HEADER_SEQUENCE} header"), e)
                })?;
                let hash = msg.headers.get(HEADER_HASH).and_then(|h| {
                    let mut out = [0u8; 32];
                    hex::decode_to_slice(h.as_str(), &mut out).ok()?;
                    Some(out)
                });
                return Ok((last, Some(crate::LastPublished { sequence, hash })));
            }
            Err(e) => match e.kind() {
                stream::LastRawMessageErrorKind::NoMessageFound => continue,
                stream::LastRawMessageErrorKind::JetStream(api)
                    if api.error_code() == jetstream::ErrorCode::NO_MESSAGE_FOUND =>
                {
                    continue
                }
                _ => return Err(Error::unavailable("get last ledger message", e)),
            },
        }
    }
    Err(Error::Unavailable(
        "the ledger stream's last message kept disappearing".to_owned(),
    ))
}

/// A committed message's subject, headers and payload; with `order` (one ledger's commits, see
/// [`NatsBus::order`]), the stream sequence its predecessor must hold.
fn committed_parts(msg: &CommittedMessage, order: Option<Order>) -> (String, HeaderMap, Bytes) {
    let mut headers = HeaderMap::new();
    if let Some(Order { offset, .. }) =
        order.filter(|o| msg.partition.is_none() && msg.sequence > o.known)
    {
        let before = i64::try_from(msg.sequence).unwrap_or(i64::MAX) + offset - 1;
        // 0 asks nothing of the server: the first message of a stream never written to.
        if before > 0 {
            headers.insert(
                async_nats::header::NATS_EXPECTED_LAST_SEQUENCE,
                before.to_string(),
            );
        }
    }
    headers.insert(
        async_nats::header::NATS_MESSAGE_ID,
        msg.msg_id
            .clone()
            .unwrap_or_else(|| msg.event_id.to_string()),
    );
    headers.insert(HEADER_SEQUENCE, msg.sequence.to_string());
    headers.insert(HEADER_HASH, hex::encode(msg.hash));
    headers.insert(HEADER_EVENT_TYPE, msg.event_type.as_str());
    if let Some(p) = msg.partition {
        headers.insert(HEADER_PARTITION, p.to_string());
    }
    (
        ledger_subject(&msg.org_id, &msg.event_type),
        headers,
        msg.payload.clone(),
    )
}

/// Sends every message, in order, without waiting for acks: the future of each one's ack, or
/// why it was not sent (too large; the connection broke, which fails the rest too).
async fn send_pipelined(
    js: &jetstream::Context,
    client: &Client,
    msgs: Vec<(String, HeaderMap, Bytes)>,
) -> Vec<Result<context::PublishAckFuture, Error>> {
    let max = max_payload(client);
    let mut pending = Vec::with_capacity(msgs.len());
    let mut broken: Option<Error> = None;
    for (subject, headers, payload) in msgs {
        if let Some(err) = &broken {
            pending.push(Err(err.clone()));
            continue;
        }
        if let Err(e) = check_size(max, headers_len(&headers) + payload.len()) {
            pending.push(Err(e));
            continue;
        }
        let publish = context::Publish::build().payload(payload).headers(headers);
        // Bounded: while the server is away the client's queue fills (see `send_committed`).
        match tokio::time::timeout(PUBLISH_TIMEOUT, js.send_publish(subject, publish))
            .await
            .unwrap_or_else(|_| Err(context::PublishErrorKind::TimedOut.into()))
        {
            Ok(ack) => pending.push(Ok(ack)),
            Err(e) => {
                let err = map_publish("publish", &e);
                if matches!(err, Error::Unavailable(_) | Error::Closed) {
                    broken = Some(err.clone());
                }
                pending.push(Err(err));
            }
        }
    }
    pending
}

#[async_trait::async_trait]
impl Bus for NatsBus {
    fn durable_inbox(&self) -> bool {
        true
    }

    fn max_message(&self) -> Option<usize> {
        Some(max_payload(&self.client)).filter(|max| *max > 0)
    }

    fn health(&self) -> Result<(), String> {
        match self.client.connection_state() {
            async_nats::connection::State::Connected => Ok(()),
            state => Err(format!("NATS connection state {state:?}")),
        }
    }

    async fn publish_inbox(&self, msgs: Vec<InboxMessage>) -> Vec<Result<PublishAck, Error>> {
        let mut invalid = Vec::with_capacity(msgs.len());
        // Each valid message with its subject and headers, in order.
        let mut valid: Vec<(String, HeaderMap, InboxMessage)> = Vec::with_capacity(msgs.len());
        // One map for the whole call.
        let map = self
            .config
            .partitions
            .as_ref()
            .map(crate::cluster::LiveMap::current);
        for msg in msgs {
            // An org being placed takes nothing new until its placement ends (seconds): what a
            // writer would only hold meanwhile is refused as retryable here instead.
            let moving = map
                .as_ref()
                .and_then(|(_, m)| m.moving.get(&msg.org_id))
                .map(|to| {
                    Error::Unavailable(format!(
                        "org {} is being placed on partition {to} (wfl cluster place); retry in a moment",
                        msg.org_id
                    ))
                });
            match check_org(&msg.org_id).and(moving.map_or(Ok(()), Err)) {
                Err(e) => invalid.push(Some(e)),
                Ok(()) => {
                    invalid.push(None);
                    let mut headers = HeaderMap::new();
                    headers.insert(
                        async_nats::header::NATS_MESSAGE_ID,
                        msg.event_id.to_string(),
                    );
                    headers.insert(HEADER_SUBMISSION, msg.submission.to_string());
                    let subject = match &map {
                        Some((revision, map)) => {
                            headers.insert(HEADER_MAP_REVISION, revision.to_string());
                            crate::cluster::partition_inbox_subject(
                                map.partition_of(&msg.org_id),
                                &msg.org_id,
                            )
                        }
                        None => inbox_subject(&msg.org_id),
                    };
                    valid.push((subject, headers, msg));
                }
            }
        }
        // Cluster mode routes, defers and forwards event by event: one message each there.
        let (messages, sizes) = if map.is_some() {
            let sizes = vec![1; valid.len()];
            let messages = valid
                .into_iter()
                .map(|(subject, headers, msg)| (subject, headers, msg.payload))
                .collect();
            (messages, sizes)
        } else {
            frames(valid, frame_limit(max_payload(&self.client)))
        };
        // One result per message, each frame's given to every event it holds.
        let mut acks = publish_pipelined(&self.js, &self.client, messages)
            .await
            .into_iter()
            .zip(sizes)
            .flat_map(|(ack, n)| std::iter::repeat_n(ack, n));
        invalid
            .into_iter()
            .map(|invalid| match invalid {
                Some(e) => Err(e),
                None => match acks.next() {
                    Some(ack) => ack.map(|a| PublishAck {
                        duplicate: a.duplicate,
                    }),
                    None => Err(Error::Unavailable("publish result missing".to_owned())),
                },
            })
            .collect()
    }

    async fn inbox(&self) -> Result<Box<dyn Inbox>, Error> {
        let consumer = self.ensure_consumer().await?;
        let mut inbox = NatsInbox {
            client: self.client.clone(),
            js: self.js.clone(),
            config: self.config.clone(),
            consumer: Some(consumer),
            messages: None,
            pending: std::collections::VecDeque::new(),
        };
        inbox.open().await?;
        Ok(Box::new(inbox))
    }

    async fn publish_committed(&self, msgs: Vec<CommittedMessage>) -> Result<(), Error> {
        self.send_committed(msgs).await?.await
    }

    async fn send_committed(&self, msgs: Vec<CommittedMessage>) -> Result<crate::Acks, Error> {
        for msg in &msgs {
            check_org(&msg.org_id)?;
            check_event_type(&msg.event_type)?;
        }
        let max = max_payload(&self.client);
        // One ledger's commits: what the stream holds already is not sent again (it would be
        // refused, or stored twice past the duplicate window), the rest follows it in order.
        let (msgs, order) = match msgs.iter().find(|m| m.partition.is_none()) {
            Some(first) => {
                let order = end_of(
                    &self.js,
                    &self.config.ledger_stream,
                    &self.order,
                    first.sequence,
                    false,
                )
                .await?;
                let rest: Vec<CommittedMessage> = msgs
                    .into_iter()
                    .filter(|m| m.partition.is_some() || m.sequence > order.known)
                    .collect();
                (rest, Some(order))
            }
            None => (msgs, None),
        };
        if msgs.is_empty() {
            return Ok(Box::pin(async { Ok(()) }));
        }
        let parts: Vec<_> = msgs.iter().map(|m| committed_parts(m, order)).collect();
        // One ledger's chunk of its own commits (not cluster mode, where every partition's
        // ledger publishes to the stream) whose messages all fit: acknowledged as a whole.
        let whole = msgs.len() >= 3
            && msgs.iter().all(|m| m.partition.is_none())
            && parts
                .iter()
                .all(|(_, h, p)| check_size(max, headers_len(h) + p.len()).is_ok());
        let known = Arc::clone(&self.order);
        let failed = move |result: Result<(), Error>| {
            if result.is_err() {
                forget(&known);
            }
            result
        };
        if !whole {
            let pending = send_pipelined(&self.js, &self.client, parts).await;
            return Ok(Box::pin(async move {
                failed(
                    async {
                        for result in await_acks(pending).await {
                            result?;
                        }
                        Ok(())
                    }
                    .await,
                )
            }));
        }
        // The first and the last message ask for the stream's ack, the ones between are plain
        // publishes: the server stores a connection's messages in the order sent, so the last
        // ack comes after every message before it was stored or refused, and the stream
        // sequences of the two acks say whether each message between was stored once, as a new
        // message (a chunk of n messages spans exactly n stream sequences). Anything else (a
        // message lost with the connection, or refused; and with it every later one, which
        // names its predecessor) sends the rest of the chunk again, after what the stream holds
        // then, with an ack for each message. This saves the broker and this client an ack
        // message per event.
        let n = parts.len();
        // The acks of the first and the last message. Handing the chunk to the connection is
        // bounded too: while the server is away the client's queue fills, and a send would wait
        // for it as long as the outage lasts.
        let sending = async {
            let mut acks = Vec::with_capacity(2);
            for (i, (subject, headers, payload)) in parts.into_iter().enumerate() {
                if i == 0 || i + 1 == n {
                    let publish = context::Publish::build().payload(payload).headers(headers);
                    let ack = self.js.send_publish(subject, publish).await;
                    acks.push(ack.map_err(|e| map_publish("publish", &e))?);
                } else {
                    self.client
                        .publish_with_headers(subject, headers, payload)
                        .await
                        .map_err(|e| Error::unavailable("publish", e))?;
                }
            }
            <[_; 2]>::try_from(acks).map_err(|a| {
                Error::Rejected(format!(
                    "a chunk of {n} messages asked for {} acks, not 2",
                    a.len()
                ))
            })
        };
        let sent = tokio::time::timeout(PUBLISH_TIMEOUT, sending)
            .await
            .unwrap_or_else(|_| {
                Err(Error::Unavailable(format!(
                    "the connection took no chunk of {n} committed messages within {PUBLISH_TIMEOUT:?}"
                )))
            });
        let [first, last] = match sent {
            Ok(acks) => acks,
            Err(e) => {
                forget(&self.order);
                return Err(e);
            }
        };
        let (js, client) = (self.js.clone(), self.client.clone());
        let (order, stream_name) = (Arc::clone(&self.order), self.config.ledger_stream.clone());
        Ok(Box::pin(async move {
            let first = first.await.map_err(|e| map_publish("publish ack", &e));
            let last = last.await.map_err(|e| map_publish("publish ack", &e));
            if let (Ok(a), Ok(b)) = (&first, &last) {
                if !a.duplicate && !b.duplicate && b.sequence == a.sequence + (n as u64 - 1) {
                    return Ok(());
                }
                tracing::warn!(
                    messages = n,
                    first = a.sequence,
                    last = b.sequence,
                    "a WFL_LEDGER chunk was not stored as sent; sending the rest of it again with an ack per message"
                );
            }
            // The stream holds a prefix of the history: what of the chunk comes after its last
            // message goes again, each after its predecessor.
            let resent = async {
                let now = end_of(&js, &stream_name, &order, msgs[0].sequence, true).await?;
                let resend = msgs
                    .iter()
                    .filter(|m| m.sequence > now.known)
                    .map(|m| committed_parts(m, Some(now)))
                    .collect();
                for result in await_acks(send_pipelined(&js, &client, resend).await).await {
                    result?;
                }
                Ok(())
            }
            .await;
            failed(resent)
        }))
    }

    async fn last_published(&self) -> Result<Option<crate::LastPublished>, Error> {
        let (stream_last, last) = stream_end(&self.js, &self.config.ledger_stream).await?;
        learn(&self.order, stream_last, last.as_ref().map(|l| l.sequence));
        Ok(last)
    }

    async fn committed_holds(
        &self,
        partition: u32,
        org_id: &str,
        event_type: &str,
        sequence: u64,
    ) -> Result<bool, Error> {
        check_org(org_id)?;
        check_event_type(event_type)?;
        let stream = self.ledger_stream().await?;
        let msg = match stream
            .get_last_raw_message_by_subject(&ledger_subject(org_id, event_type))
            .await
        {
            Ok(msg) => msg,
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => {
                return Ok(false)
            }
            Err(e) => return Err(Error::unavailable("ledger stream last message", e)),
        };
        let header = |name: &str| {
            msg.headers
                .get(name)
                .and_then(|v| v.as_str().parse::<u64>().ok())
        };
        let Some(found) = header(HEADER_SEQUENCE) else {
            return Err(Error::Rejected(format!(
                "last ledger message on {} has no valid {HEADER_SEQUENCE} header",
                ledger_subject(org_id, event_type)
            )));
        };
        Ok(header(HEADER_PARTITION) == Some(u64::from(partition)) && found >= sequence)
    }

    async fn committed_holes(&self) -> Result<crate::StreamHoles, Error> {
        let stream = self.ledger_stream().await?;
        let state = stream
            .info_builder()
            .with_deleted(true)
            .fetch()
            .await
            .map_err(|e| Error::unavailable("ledger stream info", e))?
            .info
            .state;
        let mut holes = crate::StreamHoles::default();
        if state.messages == 0 {
            return Ok(holes);
        }
        let wfl = |seq: u64| {
            let stream = &stream;
            async move {
                let msg = stream
                    .get_raw_message(seq)
                    .await
                    .map_err(|e| Error::unavailable("get ledger message", e))?;
                msg.headers
                    .get(HEADER_SEQUENCE)
                    .and_then(|v| v.as_str().parse::<u64>().ok())
                    .ok_or_else(|| {
                        Error::Rejected(format!(
                            "ledger message (stream sequence {seq}) has no valid {HEADER_SEQUENCE} header"
                        ))
                    })
            }
        };
        // Without max_age the stream keeps everything: it must start at ledger sequence 1.
        if self.config.ledger_max_age.is_zero() {
            let first = wfl(state.first_sequence).await?;
            if first > 1 {
                holes.ranges.push((1, first - 1));
                holes.missing += first - 1;
            }
        }
        // Deleted stream sequences between the first and the last message, as runs.
        let mut deleted = state.deleted.unwrap_or_default();
        deleted.sort_unstable();
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for seq in deleted {
            match runs.last_mut() {
                Some((_, end)) if *end + 1 == seq => *end = seq,
                _ => runs.push((seq, seq)),
            }
        }
        for (start, end) in runs {
            if start <= state.first_sequence || end >= state.last_sequence {
                continue;
            }
            if holes.ranges.len() >= crate::StreamHoles::LISTED {
                holes.missing += end - start + 1;
                continue;
            }
            let (before, after) = (wfl(start - 1).await?, wfl(end + 1).await?);
            if after > before + 1 {
                holes.ranges.push((before + 1, after - 1));
                holes.missing += after - before - 1;
            }
        }
        Ok(holes)
    }

    async fn purge_committed(&self) -> Result<(), Error> {
        let stream = self.ledger_stream().await?;
        stream
            .purge()
            .await
            .map_err(|e| Error::unavailable("purge the ledger stream", e))?;
        Ok(())
    }

    async fn request(
        &self,
        subject: &str,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, Error> {
        check_subject(subject)?;
        check_size(max_payload(&self.client), payload.len())?;
        let request = async_nats::Request::new()
            .payload(payload)
            .timeout(Some(timeout));
        match self.client.send_request(subject.to_owned(), request).await {
            Ok(msg) => Ok(msg.payload),
            Err(e) => Err(match e.kind() {
                async_nats::RequestErrorKind::NoResponders => {
                    Error::Unavailable(format!("no responders on {subject}"))
                }
                async_nats::RequestErrorKind::TimedOut => {
                    Error::Unavailable(format!("request on {subject} timed out"))
                }
                async_nats::RequestErrorKind::Other => {
                    Error::unavailable(&format!("request on {subject}"), e)
                }
            }),
        }
    }

    async fn serve(&self, subject: &str) -> Result<Box<dyn Requests>, Error> {
        check_subject(subject)?;
        let subscriber = self
            .client
            .subscribe(subject.to_owned())
            .await
            .map_err(|e| Error::unavailable(&format!("subscribe to {subject}"), e))?;
        Ok(Box::new(NatsRequests {
            client: self.client.clone(),
            subscriber,
        }))
    }

    async fn publish(&self, subject: &str, payload: Bytes) -> Result<(), Error> {
        check_subject(subject)?;
        core_publish(&self.client, subject.to_owned().into(), payload).await
    }

    async fn subscribe(&self, subject: &str) -> Result<Box<dyn Subscription>, Error> {
        check_subject(subject)?;
        let subscriber = self
            .client
            .subscribe(subject.to_owned())
            .await
            .map_err(|e| Error::unavailable(&format!("subscribe to {subject}"), e))?;
        // The SUB reaches the server before anything this client sends later, and the flush
        // waits for it to leave: a publish made after this returns is delivered.
        self.client
            .flush()
            .await
            .map_err(|e| Error::unavailable(&format!("subscribe to {subject}"), e))?;
        Ok(Box::new(NatsSubscription { subscriber }))
    }
}

/// Messages of one core subscription.
struct NatsSubscription {
    subscriber: async_nats::Subscriber,
}

#[async_trait::async_trait]
impl Subscription for NatsSubscription {
    async fn next(&mut self) -> Option<Result<Bytes, Error>> {
        self.subscriber.next().await.map(|msg| Ok(msg.payload))
    }
}

/// The durable pull consumer of the inbox, read through one long-lived pull stream.
struct NatsInbox {
    client: Client,
    js: jetstream::Context,
    config: NatsConfig,
    /// Taken by [`NatsInbox::open`] when it has to be (re)created.
    consumer: Option<consumer::PullConsumer>,
    messages: Option<consumer::pull::Stream>,
    /// Events of a frame not yet handed over (a frame may hold more than one `next_batch` takes).
    pending: std::collections::VecDeque<Delivery>,
}

impl NatsInbox {
    /// Opens the pull stream on the durable consumer as it is on the server (looked up by name,
    /// so a reopen never changes its configuration), creating it only when it is gone.
    async fn open(&mut self) -> Result<(), Error> {
        self.messages = None;
        // What the old pull held comes again once unacknowledged (a re-created consumer hands
        // it out at once).
        self.pending.clear();
        let consumer = match self.consumer.take() {
            Some(consumer) => consumer,
            None => {
                let stream = get_stream(&self.js, &self.config.inbox_stream).await?;
                match stream
                    .get_consumer::<consumer::pull::Config>(&self.config.consumer)
                    .await
                {
                    Ok(consumer) => consumer,
                    Err(e) if is_consumer_not_found(&*e) => {
                        tracing::warn!(consumer = %self.config.consumer, "inbox consumer is gone; creating it");
                        create_consumer(&self.js, &self.config).await?
                    }
                    Err(e) => return Err(Error::unavailable("get inbox consumer", e)),
                }
            }
        };
        let mut pull = consumer
            .stream()
            .max_messages_per_batch(PULL_BATCH)
            .expires(PULL_EXPIRES);
        if self.config.inbox_filter.is_none() {
            // Frames (several events a message) come only outside cluster mode: bound the pull
            // in bytes too, with room for two of the largest messages the server takes, so no
            // single message is larger than a pull may bring.
            pull = pull.max_bytes_per_batch(PULL_BYTES.max(2 * max_payload(&self.client)));
        }
        let messages = pull
            .messages()
            .await
            .map_err(|e| Error::unavailable("open inbox pull stream", e))?;
        self.messages = Some(messages);
        Ok(())
    }

    fn not_connected(&self) -> Option<Error> {
        match self.client.connection_state() {
            async_nats::connection::State::Connected => None,
            state => Some(Error::Unavailable(format!("nats connection is {state}"))),
        }
    }
}

/// Acknowledges the inbox's deliveries on the inbox's connection (acks on one connection are
/// processed in order).
struct NatsAcker {
    client: Client,
    js: jetstream::Context,
}

#[async_trait::async_trait]
impl Acker for NatsAcker {
    async fn ack(&self, deliveries: Vec<Delivery>) -> Result<(), Error> {
        let subjects: Vec<async_nats::Subject> = deliveries
            .into_iter()
            .filter_map(|d| match d.handle {
                AckHandle::Nats(subject) => Some(subject),
                // A frame's message once its last event is acknowledged.
                AckHandle::NatsPart(frame, index) => {
                    frame.acknowledge(index).then(|| frame.subject.clone())
                }
                AckHandle::None => None,
            })
            .collect();
        let Some((last, rest)) = subjects.split_last() else {
            return Ok(());
        };
        for subject in rest {
            self.client
                .publish(subject.clone(), Bytes::new())
                .await
                .map_err(|e| Error::unavailable("ack", e))?;
        }
        // The last ack waits for the server's confirmation; acks on one connection are
        // processed in order, so this confirms the whole batch.
        let request = async_nats::Request::new()
            .payload(Bytes::new())
            .timeout(Some(PUBLISH_TIMEOUT));
        self.client
            .send_request(last.clone(), request)
            .await
            .map_err(|e| Error::unavailable("ack confirmation", e))?;
        Ok(())
    }

    async fn defer(&self, deliveries: Vec<Delivery>, delay: Duration) -> Result<(), Error> {
        let nak = Bytes::from(format!("-NAK {{\"delay\":{}}}", delay.as_nanos()));
        let mut subjects: Vec<async_nats::Subject> = Vec::new();
        for d in deliveries {
            match d.handle {
                AckHandle::Nats(subject) => subjects.push(subject),
                // The whole frame comes again (its committed events are told apart by the
                // ledger's event-id check); its message is handed back once.
                AckHandle::NatsPart(frame, _) => {
                    if !subjects.contains(&frame.subject) {
                        subjects.push(frame.subject.clone());
                    }
                }
                AckHandle::None => {}
            }
        }
        for subject in subjects {
            self.client
                .publish(subject, nak.clone())
                .await
                .map_err(|e| Error::unavailable("nak", e))?;
        }
        self.client
            .flush()
            .await
            .map_err(|e| Error::unavailable("nak", e))
    }

    async fn redirect(
        &self,
        moves: Vec<(Delivery, String)>,
        map_revision: u64,
    ) -> Result<(), Error> {
        let mut publishes = Vec::with_capacity(moves.len());
        let mut originals = Vec::with_capacity(moves.len());
        for (d, subject) in moves {
            let mut headers = HeaderMap::new();
            // Without one (a publisher that set none), a fresh id: the ledger's event-id check
            // still keeps a repeated forward from committing twice.
            let id = d
                .msg_id
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            headers.insert(
                async_nats::header::NATS_MESSAGE_ID,
                format!("{id}@{subject}"),
            );
            if let Some(s) = d.submission {
                headers.insert(HEADER_SUBMISSION, s.to_string());
            }
            headers.insert(HEADER_MAP_REVISION, map_revision.to_string());
            publishes.push((subject, headers, d.payload.clone()));
            originals.push(d);
        }
        for result in publish_pipelined(&self.js, &self.client, publishes).await {
            result?;
        }
        self.ack(originals).await
    }
}

/// The acknowledgement of a message that framed several events: which of them the ledger has
/// acknowledged, so the message is acknowledged once, when the last one is.
#[derive(Debug)]
pub(crate) struct FrameAck {
    subject: async_nats::Subject,
    /// Per event: acknowledged yet; and how many are not.
    acked: std::sync::Mutex<(Vec<bool>, usize)>,
}

impl FrameAck {
    fn new(subject: async_nats::Subject, events: usize) -> Self {
        Self {
            subject,
            acked: std::sync::Mutex::new((vec![false; events], events)),
        }
    }

    /// Marks event `index` acknowledged (again is harmless); true exactly once, when this
    /// acknowledges the last of them.
    fn acknowledge(&self, index: u32) -> bool {
        let mut guard = self
            .acked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (acked, left) = &mut *guard;
        match acked.get_mut(index as usize) {
            Some(done) if !*done => {
                *done = true;
                *left -= 1;
                *left == 0
            }
            _ => false,
        }
    }
}

/// Turns one JetStream message into its deliveries: one, or one per event it frames (each
/// acknowledging its part of the message), appended to `out`. A frame that cannot be read is
/// handed over whole as one delivery, so the ledger refuses it as an undecodable event instead
/// of it coming back for ever.
fn deliveries(msg: jetstream::Message, out: &mut std::collections::VecDeque<Delivery>) {
    let framed = msg
        .headers
        .as_ref()
        .and_then(|h| h.get(HEADER_BATCH))
        .and_then(|v| v.as_str().parse::<usize>().ok());
    let Some(count) = framed else {
        out.push_back(delivery(msg));
        return;
    };
    let whole = delivery(msg);
    let Some(events) = crate::frame::unframe(&whole.payload, count) else {
        tracing::warn!(msg_id = ?whole.msg_id, count, "inbox frame cannot be read; handed over whole");
        out.push_back(whole);
        return;
    };
    // Without an ack subject (not from a consumer) there is nothing to count.
    let frame = match &whole.handle {
        AckHandle::Nats(subject) => Some(Arc::new(FrameAck::new(subject.clone(), events.len()))),
        _ => None,
    };
    out.extend(events.into_iter().zip(0u32..).map(|(e, index)| {
        Delivery {
            payload: e.payload,
            decoded: None,
            submission: Some(e.submission),
            msg_id: Some(e.event_id.to_string()),
            redelivered: whole.redelivered,
            org_id: whole.org_id.clone(),
            map_revision: whole.map_revision,
            handle: frame
                .as_ref()
                .map_or(AckHandle::None, |f| AckHandle::NatsPart(f.clone(), index)),
        }
    }));
}

/// Moves deliveries from `pending` to `batch` until it holds `max`.
fn take(pending: &mut std::collections::VecDeque<Delivery>, batch: &mut Vec<Delivery>, max: usize) {
    let n = pending.len().min(max.saturating_sub(batch.len()));
    batch.extend(pending.drain(..n));
}

/// Turns one JetStream message into a [`Delivery`].
fn delivery(msg: jetstream::Message) -> Delivery {
    let redelivered = msg.info().map(|info| info.delivered > 1).unwrap_or(false);
    let jetstream::Message { message, .. } = msg;
    let async_nats::Message {
        subject,
        reply,
        payload,
        headers,
        ..
    } = message;
    // Looked up by the parsed name: a standard header (`Nats-Msg-Id`) is stored under its
    // standard form, which a plain `&str` key (always a custom name) would miss.
    let header = |name: &str| {
        let name: async_nats::header::HeaderName = name.parse().ok()?;
        headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_owned())
    };
    // `wfl.inbox.<partition>.<org>` in cluster mode.
    let mut tokens = subject.split('.');
    let org_id = match (tokens.nth(2), tokens.next(), tokens.next()) {
        (Some(_), Some(org), None) => Some(org.to_owned()),
        _ => None,
    };
    Delivery {
        submission: header(HEADER_SUBMISSION).and_then(|v| uuid::Uuid::parse_str(&v).ok()),
        map_revision: header(HEADER_MAP_REVISION)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        msg_id: header(async_nats::header::NATS_MESSAGE_ID.as_ref()),
        payload,
        decoded: None,
        redelivered,
        org_id,
        handle: match reply {
            Some(reply) => AckHandle::Nats(reply),
            None => AckHandle::None,
        },
    }
}

#[async_trait::async_trait]
impl Inbox for NatsInbox {
    async fn next_batch(&mut self, max: usize, idle: Duration) -> Result<Vec<Delivery>, Error> {
        let max = max.max(1);
        let mut batch = Vec::with_capacity(max.min(PULL_BATCH));
        // A frame's events left over from the last call go first.
        take(&mut self.pending, &mut batch, max);
        if batch.len() == max {
            return Ok(batch);
        }
        if self.messages.is_none() {
            if !batch.is_empty() {
                return Ok(batch);
            }
            self.open().await?;
        }
        let Some(messages) = self.messages.as_mut() else {
            return Err(Error::Unavailable("inbox pull stream not open".to_owned()));
        };
        if batch.is_empty() {
            let first = match tokio::time::timeout(idle, messages.next()).await {
                Err(_) => {
                    // Nothing within `idle`: say so only if the connection is healthy, so an
                    // outage surfaces as Unavailable instead of an endless series of empty
                    // batches.
                    return match self.not_connected() {
                        Some(e) => Err(e),
                        None => Ok(Vec::new()),
                    };
                }
                Ok(None) => {
                    // The pull stream ended (consumer deleted, client closed): reopen next
                    // call.
                    self.messages = None;
                    return Err(match self.not_connected() {
                        Some(e) => e,
                        None => Error::Unavailable("inbox pull stream ended".to_owned()),
                    });
                }
                Ok(Some(Err(e))) => {
                    tracing::warn!(error = %e, "inbox pull failed");
                    return Err(Error::unavailable("inbox pull", e));
                }
                Ok(Some(Ok(msg))) => msg,
            };
            deliveries(first, &mut self.pending);
            take(&mut self.pending, &mut batch, max);
        }
        // Group commit: after the first message, take what is ready and linger briefly for more,
        // so the writer flushes once for many events rather than once for a few.
        let linger_until = tokio::time::Instant::now() + BATCH_LINGER;
        while batch.len() < max {
            let next = match messages.next().now_or_never() {
                Some(next) => next,
                None => match tokio::time::timeout_at(linger_until, messages.next()).await {
                    Ok(next) => next,
                    Err(_) => break,
                },
            };
            match next {
                Some(Ok(msg)) => {
                    deliveries(msg, &mut self.pending);
                    take(&mut self.pending, &mut batch, max);
                }
                Some(Err(e)) => {
                    // Hand over what we have; the error will be seen on a later call if it
                    // persists.
                    tracing::warn!(error = %e, "inbox pull failed mid-batch");
                    break;
                }
                None => break,
            }
        }
        Ok(batch)
    }

    fn acker(&self) -> Arc<dyn Acker> {
        Arc::new(NatsAcker {
            client: self.client.clone(),
            js: self.js.clone(),
        })
    }

    async fn state(&mut self) -> Result<Option<InboxState>, Error> {
        let stream = get_stream(&self.js, &self.config.inbox_stream).await?;
        let info = stream
            .consumer_info(&self.config.consumer)
            .await
            .map_err(|e| {
                if is_consumer_not_found(&*e) {
                    Error::Rejected(format!("inbox consumer {} not found", self.config.consumer))
                } else {
                    Error::unavailable("inbox consumer info", e)
                }
            })?;
        Ok(Some(InboxState {
            num_pending: info.num_pending,
            num_ack_pending: info.num_ack_pending as u64,
            num_redelivered: info.num_redelivered as u64,
            num_waiting: info.num_waiting as u64,
            delivered_stream_sequence: info.delivered.stream_sequence,
            ack_floor_stream_sequence: info.ack_floor.stream_sequence,
            ack_wait: info.config.ack_wait,
        }))
    }

    async fn reopen(&mut self) -> Result<(), Error> {
        self.messages = None;
        self.consumer = None;
        self.open().await
    }

    async fn recreate(&mut self) -> Result<(), Error> {
        self.messages = None;
        self.consumer = None;
        let stream = get_stream(&self.js, &self.config.inbox_stream).await?;
        match stream.delete_consumer(&self.config.consumer).await {
            Ok(_) => {}
            Err(e) if is_consumer_not_found(&e) => {}
            Err(e) => return Err(Error::unavailable("delete inbox consumer", e)),
        }
        self.consumer = Some(create_consumer(&self.js, &self.config).await?);
        self.open().await
    }
}

/// True when a JetStream API error says the consumer does not exist (code 10014).
fn is_consumer_not_found(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(api) = err.downcast_ref::<jetstream::Error>() {
            return api.error_code() == jetstream::ErrorCode::CONSUMER_NOT_FOUND;
        }
        source = err.source();
    }
    e.to_string().contains("consumer not found")
}

/// Requests arriving on one core subscription.
struct NatsRequests {
    client: Client,
    subscriber: async_nats::Subscriber,
}

#[async_trait::async_trait]
impl Requests for NatsRequests {
    async fn next(&mut self) -> Option<Request> {
        loop {
            let msg = self.subscriber.next().await?;
            match msg.reply {
                Some(subject) => {
                    return Some(Request {
                        payload: msg.payload,
                        reply: ReplyHandle::Nats {
                            client: self.client.clone(),
                            subject,
                        },
                    })
                }
                None => {
                    tracing::debug!(subject = %msg.subject, "ignoring a message without reply subject");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redialling_starts_at_once_and_backs_off_to_two_seconds() {
        let delays: Vec<u128> = (0..14).map(|a| reconnect_delay(a).as_millis()).collect();
        assert_eq!(
            delays,
            [0, 0, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2000, 2000]
        );
        assert_eq!(reconnect_delay(usize::MAX), MAX_RECONNECT_DELAY);
    }

    #[test]
    fn headers_len_matches_the_wire_format() {
        let mut headers = HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, "0123456789");
        headers.insert(HEADER_SEQUENCE, "42");
        // "NATS/1.0\r\n" + "Nats-Msg-Id: 0123456789\r\n" + "Wfl-Sequence: 42\r\n" + "\r\n"
        assert_eq!(headers_len(&headers), 10 + 25 + 18 + 2);
    }

    #[test]
    fn auth_from_flags() {
        use std::path::PathBuf;
        assert_eq!(
            NatsAuth::from_flags(None, None, None),
            Ok(NatsAuth::Anonymous)
        );
        let auth = NatsAuth::from_flags(Some("ledger".into()), Some("pw".into()), None)
            .expect("user and password");
        assert_eq!(auth.user(), Some("ledger"));
        assert!(
            !format!("{auth:?}").contains("pw"),
            "the password is never printed"
        );
        assert_eq!(
            NatsAuth::from_flags(None, None, Some(PathBuf::from("x.creds"))),
            Ok(NatsAuth::CredsFile(PathBuf::from("x.creds")))
        );
        for (user, password, creds) in [
            (Some("u"), None, None),
            (None, Some("p"), None),
            (Some("u"), Some("p"), Some("x.creds")),
        ] {
            let r = NatsAuth::from_flags(
                user.map(str::to_owned),
                password.map(str::to_owned),
                creds.map(PathBuf::from),
            );
            assert!(matches!(r, Err(Error::Rejected(_))), "{r:?}");
        }
    }

    #[test]
    fn size_check() {
        assert!(check_size(0, usize::MAX).is_ok());
        assert!(check_size(10, 10).is_ok());
        assert!(matches!(check_size(10, 11), Err(Error::Rejected(_))));
    }

    #[test]
    fn ledger_duplicate_window_never_exceeds_max_age() {
        let config = NatsConfig {
            ledger_max_age: Duration::from_secs(60),
            ..NatsConfig::default()
        };
        assert_eq!(
            config.ledger_stream_config().duplicate_window,
            Duration::from_secs(60)
        );
        let forever = NatsConfig::default().ledger_stream_config();
        assert_eq!(forever.max_age, Duration::ZERO);
        assert_eq!(forever.duplicate_window, Duration::from_secs(120));
    }
}
