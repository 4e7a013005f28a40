//! The in-process bus: order, batching, request/serve, backpressure, committed fan-out.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use wfl_bus::{Bus, CommittedMessage, Error, InboxMessage, MemoryBus};

fn msg(i: usize) -> InboxMessage {
    InboxMessage {
        event_id: uuid::Uuid::new_v4(),
        org_id: ["org-a", "org-b"][i % 2].to_owned(),
        submission: uuid::Uuid::from_u128(i as u128 + 1),
        payload: Bytes::from(i.to_string()),
        decoded: None,
    }
}

fn committed(sequence: u64) -> CommittedMessage {
    CommittedMessage {
        org_id: "org-a".to_owned(),
        event_type: "shift.started".to_owned(),
        sequence,
        hash: [sequence as u8; 32],
        event_id: uuid::Uuid::new_v4(),
        payload: Bytes::from(format!("c{sequence}")),
        msg_id: None,
        partition: None,
    }
}

/// What the publisher decoded is handed over with the bytes, the same value (no copy), so the
/// ledger need not decode them again; a message without one is delivered without one.
#[tokio::test]
async fn what_the_publisher_decoded_is_handed_over_with_the_bytes() {
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new());
    assert!(bus.hands_over_decoded());
    let decoded = wfl_bus::Decoded(Arc::new(String::from("decoded 0")));
    let with = InboxMessage {
        decoded: Some(decoded.clone()),
        ..msg(0)
    };
    let acks = bus.publish_inbox(vec![with, msg(1)]).await;
    assert!(acks.iter().all(Result::is_ok));
    let mut inbox = bus.inbox().await.expect("inbox");
    let batch = inbox
        .next_batch(2, Duration::from_secs(5))
        .await
        .expect("next_batch");
    assert_eq!(batch.len(), 2);
    assert_eq!(batch[0].decoded.as_ref(), Some(&decoded));
    assert_eq!(
        batch[0]
            .decoded
            .as_ref()
            .and_then(|d| d.0.downcast_ref::<String>())
            .map(String::as_str),
        Some("decoded 0")
    );
    assert_eq!(batch[0].payload, Bytes::from("0"));
    assert!(batch[1].decoded.is_none());
}

#[tokio::test]
async fn inbox_preserves_order_and_respects_batch_max() {
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new());
    assert!(!bus.durable_inbox());
    let n = 1_000;
    let acks = bus.publish_inbox((0..n).map(msg).collect()).await;
    assert_eq!(acks.len(), n);
    for ack in acks {
        assert!(!ack.expect("publish").duplicate);
    }

    let mut inbox = bus.inbox().await.expect("inbox");
    let mut received = Vec::new();
    while received.len() < n {
        let batch = inbox
            .next_batch(64, Duration::from_secs(5))
            .await
            .expect("next_batch");
        assert!(!batch.is_empty(), "messages were published but none came");
        assert!(batch.len() <= 64, "batch of {} exceeds max", batch.len());
        for d in &batch {
            assert!(!d.redelivered);
            assert_eq!(
                d.submission,
                Some(uuid::Uuid::from_u128(received.len() as u128 + 1))
            );
            received.push(String::from_utf8(d.payload.to_vec()).expect("utf8"));
        }
        inbox.ack(batch).await.expect("ack");
    }
    let expected: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    assert_eq!(received, expected);

    // Nothing left: the idle timeout elapses with an empty batch.
    let empty = inbox
        .next_batch(64, Duration::from_millis(50))
        .await
        .expect("idle");
    assert!(empty.is_empty());
}

#[tokio::test]
async fn max_zero_is_treated_as_one() {
    let bus = MemoryBus::new();
    let _ = bus.publish_inbox(vec![msg(0), msg(1)]).await;
    let mut inbox = bus.inbox().await.expect("inbox");
    let batch = inbox
        .next_batch(0, Duration::from_secs(5))
        .await
        .expect("batch");
    assert_eq!(batch.len(), 1);
}

#[tokio::test]
async fn publish_waits_for_space_instead_of_dropping() {
    let bus = MemoryBus::with_capacity(4);
    for ack in bus.publish_inbox((0..4).map(msg).collect()).await {
        ack.expect("fits");
    }

    // The inbox is full: the next publish must wait, not fail and not drop.
    let mut blocked = bus.publish_inbox(vec![msg(4), msg(5)]);
    assert!(
        futures::poll!(&mut blocked).is_pending(),
        "publish into a full inbox must wait"
    );

    let mut inbox = bus.inbox().await.expect("inbox");
    let first = inbox
        .next_batch(10, Duration::from_secs(5))
        .await
        .expect("batch");
    assert_eq!(first.len(), 4);

    for ack in blocked.await {
        assert!(!ack.expect("published after space freed").duplicate);
    }
    let mut all: Vec<Bytes> = first.into_iter().map(|d| d.payload).collect();
    while all.len() < 6 {
        let batch = inbox
            .next_batch(10, Duration::from_secs(5))
            .await
            .expect("batch");
        assert!(!batch.is_empty());
        all.extend(batch.into_iter().map(|d| d.payload));
    }
    let expected: Vec<Bytes> = (0..6).map(|i| Bytes::from(i.to_string())).collect();
    assert_eq!(all, expected);
}

#[tokio::test]
async fn invalid_org_is_rejected_per_message() {
    let bus = MemoryBus::new();
    let mut bad = msg(1);
    bad.org_id = "has.dot".to_owned();
    let results = bus.publish_inbox(vec![msg(0), bad, msg(2)]).await;
    assert!(results[0].is_ok());
    assert!(matches!(results[1], Err(Error::Rejected(_))));
    assert!(results[2].is_ok());
}

#[tokio::test]
async fn request_serve_round_trip() {
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new());
    let mut requests = bus.serve("wfl.test.echo").await.expect("serve");
    let server = tokio::spawn(async move {
        while let Some(request) = requests.next().await {
            let mut answer = b"echo:".to_vec();
            answer.extend_from_slice(&request.payload);
            request.reply(Bytes::from(answer)).await.expect("reply");
        }
    });

    let reply = bus
        .request(
            "wfl.test.echo",
            Bytes::from_static(b"hi"),
            Duration::from_secs(5),
        )
        .await
        .expect("request");
    assert_eq!(reply, Bytes::from_static(b"echo:hi"));

    let none = bus
        .request("wfl.test.nobody", Bytes::new(), Duration::from_secs(5))
        .await;
    assert!(matches!(none, Err(Error::Unavailable(_))), "{none:?}");

    let invalid = bus
        .request("wfl.*", Bytes::new(), Duration::from_secs(5))
        .await;
    assert!(matches!(invalid, Err(Error::Rejected(_))), "{invalid:?}");

    drop(bus);
    server.await.expect("server task ends once the bus is gone");
}

#[tokio::test]
async fn request_times_out_when_the_server_does_not_reply() {
    let bus = MemoryBus::new();
    let mut requests = bus.serve("wfl.test.silent").await.expect("serve");
    let (reply, held) = tokio::join!(
        bus.request("wfl.test.silent", Bytes::new(), Duration::from_millis(100)),
        requests.next()
    );
    assert!(matches!(reply, Err(Error::Unavailable(_))), "{reply:?}");
    // Replying after the requester gave up is not an error.
    held.expect("request arrived")
        .reply(Bytes::new())
        .await
        .expect("late reply");
}

#[tokio::test]
async fn committed_messages_fan_out_and_track_last_sequence() {
    let bus = MemoryBus::new();
    assert_eq!(bus.last_published().await.expect("last"), None);
    let mut live = bus.subscribe_committed();
    bus.publish_committed(vec![committed(1), committed(2), committed(3)])
        .await
        .expect("publish");
    let third = Some(wfl_bus::LastPublished {
        sequence: 3,
        hash: Some(committed(3).hash),
    });
    assert_eq!(bus.last_published().await.expect("last"), third);
    for expected in 1..=3 {
        let got = live.recv().await.expect("live");
        assert_eq!(got.sequence, expected);
    }

    let mut bad = committed(4);
    bad.event_type = "a.>".to_owned();
    assert!(matches!(
        bus.publish_committed(vec![bad]).await,
        Err(Error::Rejected(_))
    ));
    assert_eq!(bus.last_published().await.expect("last"), third);
}

#[tokio::test]
async fn core_publish_reaches_subscribers() {
    let bus = MemoryBus::new();
    let mut published = bus.subscribe_published();
    let boxed: Box<dyn Bus> = Box::new(bus.clone());
    boxed
        .publish("wfl.alerts.org-a.rule-1", Bytes::from_static(b"alert"))
        .await
        .expect("publish");
    let (subject, payload) = published.recv().await.expect("published");
    assert_eq!(subject, "wfl.alerts.org-a.rule-1");
    assert_eq!(payload, Bytes::from_static(b"alert"));
}
