//! The `Bus` conformance suite: the same behaviour checked against both implementations
//! (`MemoryBus` in-process, `NatsBus` on a real nats-server), as the store's `Log` suite does
//! for its logs. What a caller may rely on whichever bus it is given.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use wfl_bus::{Bus, Error, InboxMessage, MemoryBus, NatsBus, NatsConfig, OUTCOME_SUBJECT};
use wfl_testkit::NatsServer;

/// Upper bound for any single step that waits on the bus.
const STEP: Duration = Duration::from_secs(30);

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(STEP, fut).await {
        Ok(value) => value,
        Err(_) => panic!("{what} did not finish within {STEP:?}"),
    }
}

fn msg(i: usize) -> InboxMessage {
    InboxMessage {
        event_id: uuid::Uuid::new_v4(),
        org_id: ["org-a", "org-b"][i % 2].to_owned(),
        submission: uuid::Uuid::from_u128(i as u128 + 1),
        payload: Bytes::from(format!("payload-{i:05}")),
        decoded: None,
    }
}

/// A subscriber receives every publish on its subject made after `subscribe` returned, in
/// order, and nothing published on other subjects; two subscribers each receive everything.
async fn subscribe_fans_out_in_order(bus: &dyn Bus) {
    let mut first = within("subscribe", bus.subscribe(OUTCOME_SUBJECT))
        .await
        .expect("subscribe");
    let mut second = within("subscribe", bus.subscribe(OUTCOME_SUBJECT))
        .await
        .expect("subscribe");
    bus.publish("wfl.other", Bytes::from_static(b"not for you"))
        .await
        .expect("publish elsewhere");
    for i in 0..100u32 {
        bus.publish(OUTCOME_SUBJECT, Bytes::from(i.to_be_bytes().to_vec()))
            .await
            .expect("publish");
    }
    for sub in [&mut first, &mut second] {
        for i in 0..100u32 {
            let got = within("next", sub.next())
                .await
                .expect("subscription open")
                .expect("no message lost");
            assert_eq!(got.as_ref(), i.to_be_bytes(), "message {i} in order");
        }
    }
}

/// Wildcards and empty tokens are refused for every core operation, the same way.
async fn invalid_subjects_are_rejected(bus: &dyn Bus) {
    for bad in ["", "wfl.*", "wfl.>", "a..b"] {
        assert!(
            matches!(bus.subscribe(bad).await, Err(Error::Rejected(_))),
            "subscribe {bad:?}"
        );
        assert!(
            matches!(
                bus.publish(bad, Bytes::new()).await,
                Err(Error::Rejected(_))
            ),
            "publish {bad:?}"
        );
        assert!(
            matches!(
                bus.request(bad, Bytes::new(), Duration::from_millis(100))
                    .await,
                Err(Error::Rejected(_))
            ),
            "request {bad:?}"
        );
    }
}

/// A request is answered by the server of its subject; with none it is `Unavailable`.
async fn request_reply(bus: Arc<dyn Bus>) {
    let subject = "wfl.ctl.conformance";
    assert!(matches!(
        bus.request(subject, Bytes::new(), Duration::from_millis(200))
            .await,
        Err(Error::Unavailable(_))
    ));
    let mut requests = within("serve", bus.serve(subject)).await.expect("serve");
    let server = tokio::spawn(async move {
        while let Some(r) = requests.next().await {
            let mut answer = r.payload.to_vec();
            answer.reverse();
            r.reply(Bytes::from(answer)).await.expect("reply");
        }
    });
    for i in 0..10u8 {
        let answer = within(
            "request",
            bus.request(subject, Bytes::from(vec![i, 1, 2]), STEP),
        )
        .await
        .expect("answered");
        assert_eq!(answer.as_ref(), [2, 1, i]);
    }
    server.abort();
}

/// The inbox hands over every message once, in order, with its submission id, and flags a
/// resubmission of an event id inside the duplicate window.
async fn inbox_in_order_with_submissions_and_dedup(bus: &dyn Bus) {
    let msgs: Vec<InboxMessage> = (0..50).map(msg).collect();
    let again = msgs[7].clone();
    let acks = within("publish_inbox", bus.publish_inbox(msgs.clone())).await;
    assert!(acks.iter().all(|a| matches!(a, Ok(a) if !a.duplicate)));
    let dup = within("publish_inbox", bus.publish_inbox(vec![again])).await;
    assert!(matches!(dup.as_slice(), [Ok(a)] if a.duplicate), "{dup:?}");
    let mut inbox = within("inbox", bus.inbox()).await.expect("inbox");
    let mut got = Vec::new();
    while got.len() < msgs.len() {
        let batch = within("next_batch", inbox.next_batch(20, STEP))
            .await
            .expect("next_batch");
        assert!(batch.len() <= 20, "at most max per batch");
        got.extend(batch);
    }
    for (d, m) in got.iter().zip(&msgs) {
        assert_eq!(d.payload, m.payload);
        assert_eq!(d.submission, Some(m.submission));
    }
    within("ack", inbox.ack(got)).await.expect("ack");
    nothing_more(inbox.as_mut(), "the duplicate was not delivered").await;
}

/// Nothing more is delivered within 300 ms.
async fn nothing_more(inbox: &mut dyn wfl_bus::Inbox, why: &str) {
    let more = within(
        "next_batch",
        inbox.next_batch(20, Duration::from_millis(300)),
    )
    .await
    .expect("next_batch");
    assert!(more.is_empty(), "{why}");
}

/// An inbox's acker acknowledges from another task while the inbox fetches the next batch (the
/// ledger's pipeline): every message is delivered once and, where the broker keeps state, none
/// is left pending acknowledgement.
async fn acker_acknowledges_beside_the_next_fetch(bus: &dyn Bus) {
    let msgs: Vec<InboxMessage> = (100..130).map(msg).collect();
    let acks = within("publish_inbox", bus.publish_inbox(msgs.clone())).await;
    assert!(acks.iter().all(|a| matches!(a, Ok(a) if !a.duplicate)));
    let mut inbox = within("inbox", bus.inbox()).await.expect("inbox");
    // As the ledger does at start: a pull the previous case's inbox left open on the broker
    // may have taken some of these messages (they would come back only after the ack wait);
    // re-creating the consumer delivers everything unacknowledged to this inbox, in order.
    within("recreate", inbox.recreate())
        .await
        .expect("recreate");
    let acker = inbox.acker();
    let mut got = Vec::new();
    let mut acking = Vec::new();
    while got.len() < msgs.len() {
        let batch = within("next_batch", inbox.next_batch(10, STEP))
            .await
            .expect("next_batch");
        got.extend(batch.iter().map(|d| d.payload.clone()));
        let acker = acker.clone();
        acking.push(tokio::spawn(async move { acker.ack(batch).await }));
    }
    for a in acking {
        within("ack", a).await.expect("ack task").expect("ack");
    }
    let expected: Vec<Bytes> = msgs.iter().map(|m| m.payload.clone()).collect();
    assert_eq!(got, expected, "each message once, in order");
    if let Some(state) = within("state", inbox.state()).await.expect("state") {
        assert_eq!(state.num_ack_pending, 0, "{state:?}");
    }
}

/// Many events for one org published in one call (the NATS bus frames them into few broker
/// messages) come out one delivery per event, in order, each with its own submission, at most
/// `max` per batch even when a frame holds more; the same run published again is flagged
/// duplicate and not delivered again; acknowledging every event leaves nothing pending.
async fn one_orgs_run_is_delivered_event_by_event(bus: &dyn Bus) {
    let msgs: Vec<InboxMessage> = (0..2_500)
        .map(|i| InboxMessage {
            org_id: "org-run".to_owned(),
            ..msg(10_000 + i)
        })
        .collect();
    let acks = within("publish_inbox", bus.publish_inbox(msgs.clone())).await;
    assert_eq!(acks.len(), msgs.len(), "one result per event");
    assert!(acks.iter().all(|a| matches!(a, Ok(a) if !a.duplicate)));
    let again = within("publish_inbox", bus.publish_inbox(msgs.clone())).await;
    assert!(
        again.iter().all(|a| matches!(a, Ok(a) if a.duplicate)),
        "the same run again is a duplicate"
    );
    let mut inbox = within("inbox", bus.inbox()).await.expect("inbox");
    within("recreate", inbox.recreate())
        .await
        .expect("recreate");
    let acker = inbox.acker();
    let mut got = Vec::new();
    while got.len() < msgs.len() {
        let batch = within("next_batch", inbox.next_batch(300, STEP))
            .await
            .expect("next_batch");
        assert!(!batch.is_empty() && batch.len() <= 300, "{}", batch.len());
        got.extend(batch.iter().map(|d| (d.payload.clone(), d.submission)));
        // Acknowledged a batch at a time: a frame's events are split across batches.
        within("ack", acker.ack(batch)).await.expect("ack");
    }
    let expected: Vec<_> = msgs
        .iter()
        .map(|m| (m.payload.clone(), Some(m.submission)))
        .collect();
    assert_eq!(
        got, expected,
        "each event once, in order, with its submission"
    );
    nothing_more(inbox.as_mut(), "nothing delivered twice").await;
    if let Some(state) = within("state", inbox.state()).await.expect("state") {
        assert_eq!(state.num_ack_pending, 0, "{state:?}");
        assert_eq!(state.num_pending, 0, "{state:?}");
    }
}

async fn suite(bus: Arc<dyn Bus>) {
    subscribe_fans_out_in_order(bus.as_ref()).await;
    invalid_subjects_are_rejected(bus.as_ref()).await;
    request_reply(bus.clone()).await;
    inbox_in_order_with_submissions_and_dedup(bus.as_ref()).await;
    acker_acknowledges_beside_the_next_fetch(bus.as_ref()).await;
    one_orgs_run_is_delivered_event_by_event(bus.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_bus_conforms() {
    suite(Arc::new(MemoryBus::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_bus_conforms() {
    let server = NatsServer::start();
    let bus = within(
        "connect",
        NatsBus::connect(&server.url(), NatsConfig::default()),
    )
    .await
    .expect("connect");
    suite(Arc::new(bus)).await;
}
