//! The in-process bus: gateway and ledger in one process, no broker.
//!
//! Owns: a bounded inbox channel (publishers wait for space: backpressure, never drops), a
//! broadcast of committed events (for live fan-out), a broadcast of core publishes, and a
//! subject → handler map for request/serve.
//!
//! Must not: claim durability ([`MemoryBus::durable_inbox`] is false: callers wait for the
//! ledger's commit), de-duplicate (the ledger does), or drop an inbox message.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{broadcast, mpsc, oneshot, Mutex};
use tokio::time::Instant;

use crate::subject::{check_event_type, check_org, check_subject};
use crate::{
    AckHandle, Acker, Bus, CommittedMessage, Decoded, Delivery, Error, Inbox, InboxMessage,
    PublishAck, ReplyHandle, Request, Requests, Subscription,
};

/// One inbox message in the queue: its payload, submission id and what its publisher decoded.
type Queued = (Bytes, uuid::Uuid, Option<Decoded>);

/// Default inbox capacity (messages) of [`MemoryBus::new`].
pub const DEFAULT_INBOX_CAPACITY: usize = 65_536;
/// Capacity of the committed-event and core-publish broadcasts (slow receivers lag).
const BROADCAST_CAPACITY: usize = 4_096;
/// Queue length of one served subject.
const SERVE_CAPACITY: usize = 1_024;

/// The in-process [`Bus`]. Cloning gives another handle to the same bus.
#[derive(Clone)]
pub struct MemoryBus {
    inner: Arc<Inner>,
}

struct Inner {
    inbox_tx: mpsc::Sender<Queued>,
    /// Shared by every [`Inbox`] handed out: they compete for messages, like NATS pullers.
    inbox_rx: Arc<Mutex<mpsc::Receiver<Queued>>>,
    committed: broadcast::Sender<CommittedMessage>,
    published: broadcast::Sender<(String, Bytes)>,
    last_published: Mutex<Option<crate::LastPublished>>,
    handlers: Mutex<HashMap<String, mpsc::Sender<Request>>>,
    /// Event ids published within the duplicate window, like JetStream's `Nats-Msg-Id` window.
    dedup: std::sync::Mutex<DedupWindow>,
}

/// Remembers ids for a fixed window, so a resubmission inside it is flagged `duplicate` (and not
/// delivered again), exactly as JetStream does on the NATS bus.
struct DedupWindow {
    window: std::time::Duration,
    seen: foldhash::HashSet<uuid::Uuid>,
    order: std::collections::VecDeque<(std::time::Instant, uuid::Uuid)>,
}

impl DedupWindow {
    fn new(window: std::time::Duration) -> Self {
        Self {
            window,
            seen: foldhash::HashSet::default(),
            order: std::collections::VecDeque::new(),
        }
    }

    /// True when `id` was already seen inside the window; records it otherwise.
    fn check(&mut self, id: uuid::Uuid) -> bool {
        let now = std::time::Instant::now();
        while let Some((at, old)) = self.order.front() {
            if now.duration_since(*at) < self.window {
                break;
            }
            self.seen.remove(old);
            self.order.pop_front();
        }
        if self.seen.insert(id) {
            self.order.push_back((now, id));
            false
        } else {
            true
        }
    }
}

impl Default for MemoryBus {
    fn default() -> Self {
        MemoryBus::new()
    }
}

impl MemoryBus {
    /// A bus whose inbox holds up to 65,536 messages.
    #[must_use]
    pub fn new() -> MemoryBus {
        MemoryBus::with_capacity(DEFAULT_INBOX_CAPACITY)
    }

    /// A bus whose inbox holds up to `capacity` messages (at least 1); publishers wait when
    /// it is full.
    #[must_use]
    pub fn with_capacity(capacity: usize) -> MemoryBus {
        let (inbox_tx, inbox_rx) = mpsc::channel(capacity.max(1));
        let (committed, _) = broadcast::channel(BROADCAST_CAPACITY);
        let (published, _) = broadcast::channel(BROADCAST_CAPACITY);
        MemoryBus {
            inner: Arc::new(Inner {
                inbox_tx,
                inbox_rx: Arc::new(Mutex::new(inbox_rx)),
                committed,
                published,
                last_published: Mutex::new(None),
                handlers: Mutex::new(HashMap::new()),
                dedup: std::sync::Mutex::new(DedupWindow::new(crate::DEFAULT_DUPLICATE_WINDOW)),
            }),
        }
    }

    /// Receives every committed event published from now on (live fan-out). A receiver that
    /// falls more than 4,096 messages behind lags (see [`broadcast::Receiver::recv`]).
    #[must_use]
    pub fn subscribe_committed(&self) -> broadcast::Receiver<CommittedMessage> {
        self.inner.committed.subscribe()
    }

    /// Receives every core publish (`subject`, `payload`) made from now on.
    #[must_use]
    pub fn subscribe_published(&self) -> broadcast::Receiver<(String, Bytes)> {
        self.inner.published.subscribe()
    }
}

#[async_trait::async_trait]
impl Bus for MemoryBus {
    fn durable_inbox(&self) -> bool {
        false
    }

    fn hands_over_decoded(&self) -> bool {
        true
    }

    async fn publish_inbox(&self, msgs: Vec<InboxMessage>) -> Vec<Result<PublishAck, Error>> {
        let mut results = Vec::with_capacity(msgs.len());
        for msg in msgs {
            // Reserve queue space first, so a publish cancelled while waiting for space never
            // marks its id as seen; then check the window and send with nothing awaited between.
            let result = match check_org(&msg.org_id) {
                Err(e) => Err(e),
                Ok(()) => match self.inner.inbox_tx.reserve().await {
                    Err(_) => Err(Error::Closed),
                    Ok(permit) => {
                        let duplicate = self
                            .inner
                            .dedup
                            .lock()
                            .map(|mut d| d.check(msg.event_id))
                            .unwrap_or(false);
                        if duplicate {
                            Ok(PublishAck { duplicate: true })
                        } else {
                            permit.send((msg.payload, msg.submission, msg.decoded));
                            Ok(PublishAck { duplicate: false })
                        }
                    }
                },
            };
            results.push(result);
        }
        results
    }

    async fn inbox(&self) -> Result<Box<dyn Inbox>, Error> {
        Ok(Box::new(MemoryInbox {
            rx: Arc::clone(&self.inner.inbox_rx),
        }))
    }

    fn committed_listened(&self) -> bool {
        self.inner.committed.receiver_count() > 0
    }

    async fn publish_committed(&self, msgs: Vec<CommittedMessage>) -> Result<(), Error> {
        for msg in &msgs {
            check_org(&msg.org_id)?;
            check_event_type(&msg.event_type)?;
        }
        let Some(last) = msgs.last().map(|m| crate::LastPublished {
            sequence: m.sequence,
            hash: Some(m.hash),
        }) else {
            return Ok(());
        };
        for msg in msgs {
            // No receiver is not an error: live fan-out is optional.
            let _ = self.inner.committed.send(msg);
        }
        *self.inner.last_published.lock().await = Some(last);
        Ok(())
    }

    async fn last_published(&self) -> Result<Option<crate::LastPublished>, Error> {
        Ok(*self.inner.last_published.lock().await)
    }

    async fn request(
        &self,
        subject: &str,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, Error> {
        check_subject(subject)?;
        let handler = self.inner.handlers.lock().await.get(subject).cloned();
        let Some(handler) = handler else {
            return Err(Error::Unavailable(format!("no responders on {subject}")));
        };
        let (tx, rx) = oneshot::channel();
        let request = Request {
            payload,
            reply: ReplyHandle::Memory(tx),
        };
        let exchange = async {
            handler
                .send(request)
                .await
                .map_err(|_| Error::Unavailable(format!("no responders on {subject}")))?;
            rx.await
                .map_err(|_| Error::Unavailable(format!("no reply on {subject}")))
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| Error::Unavailable(format!("request on {subject} timed out")))?
    }

    async fn serve(&self, subject: &str) -> Result<Box<dyn Requests>, Error> {
        check_subject(subject)?;
        let (tx, rx) = mpsc::channel(SERVE_CAPACITY);
        let mut handlers = self.inner.handlers.lock().await;
        handlers.retain(|_, sender| !sender.is_closed());
        handlers.insert(subject.to_owned(), tx);
        Ok(Box::new(MemoryRequests { rx }))
    }

    async fn publish(&self, subject: &str, payload: Bytes) -> Result<(), Error> {
        check_subject(subject)?;
        // No receiver is not an error: core publish is fire-and-forget.
        let _ = self.inner.published.send((subject.to_owned(), payload));
        Ok(())
    }

    async fn subscribe(&self, subject: &str) -> Result<Box<dyn Subscription>, Error> {
        check_subject(subject)?;
        Ok(Box::new(MemorySubscription {
            subject: subject.to_owned(),
            rx: self.inner.published.subscribe(),
        }))
    }
}

/// One subject's share of the in-process publish broadcast.
struct MemorySubscription {
    subject: String,
    rx: broadcast::Receiver<(String, Bytes)>,
}

#[async_trait::async_trait]
impl Subscription for MemorySubscription {
    async fn next(&mut self) -> Option<Result<Bytes, Error>> {
        loop {
            match self.rx.recv().await {
                Ok((subject, payload)) if subject == self.subject => return Some(Ok(payload)),
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    return Some(Err(Error::Unavailable(format!(
                        "subscriber of {} fell behind: {n} messages lost",
                        self.subject
                    ))))
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

/// An in-process inbox consumer.
struct MemoryInbox {
    rx: Arc<Mutex<mpsc::Receiver<Queued>>>,
}

#[async_trait::async_trait]
impl Inbox for MemoryInbox {
    async fn next_batch(&mut self, max: usize, idle: Duration) -> Result<Vec<Delivery>, Error> {
        let max = max.max(1);
        let deadline = Instant::now() + idle;
        let Ok(mut rx) = tokio::time::timeout_at(deadline, self.rx.lock()).await else {
            return Ok(Vec::new());
        };
        let first = match tokio::time::timeout_at(deadline, rx.recv()).await {
            Err(_) => return Ok(Vec::new()),
            Ok(None) => return Err(Error::Closed),
            Ok(Some(payload)) => payload,
        };
        let mut batch = Vec::with_capacity(max.min(rx.len() + 1));
        batch.push(delivery(first));
        while batch.len() < max {
            match rx.try_recv() {
                Ok(payload) => batch.push(delivery(payload)),
                Err(_) => break,
            }
        }
        Ok(batch)
    }

    fn acker(&self) -> Arc<dyn Acker> {
        Arc::new(NoAck)
    }
}

/// In-process deliveries need no acknowledgement: the channel handed them over.
struct NoAck;

#[async_trait::async_trait]
impl Acker for NoAck {
    async fn ack(&self, _deliveries: Vec<Delivery>) -> Result<(), Error> {
        Ok(())
    }
}

fn delivery((payload, submission, decoded): Queued) -> Delivery {
    Delivery {
        payload,
        decoded,
        submission: Some(submission),
        redelivered: false,
        org_id: None,
        map_revision: 0,
        msg_id: None,
        handle: AckHandle::None,
    }
}

/// Requests for one served subject, in-process.
struct MemoryRequests {
    rx: mpsc::Receiver<Request>,
}

#[async_trait::async_trait]
impl Requests for MemoryRequests {
    async fn next(&mut self) -> Option<Request> {
        self.rx.recv().await
    }
}
