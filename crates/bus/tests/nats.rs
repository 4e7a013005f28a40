//! The NATS bus against a real nats-server (one per test, see `wfl_testkit::NatsServer`).

use std::collections::BTreeSet;
use std::future::Future;
use std::path::Path;
use std::time::Duration;

use async_nats::jetstream;
use bytes::Bytes;
use futures::StreamExt;
use tokio::time::Instant;
use wfl_bus::{Bus, CommittedMessage, Delivery, Error, Inbox, InboxMessage, NatsBus, NatsConfig};
use wfl_testkit::NatsServer;

/// Upper bound for any single test step that waits on the broker.
const STEP: Duration = Duration::from_secs(30);

async fn within<T>(what: &str, limit: Duration, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, fut).await {
        Ok(value) => value,
        Err(_) => panic!("{what} did not finish within {limit:?}"),
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

fn text(d: &Delivery) -> String {
    String::from_utf8(d.payload.to_vec()).expect("utf8 payload")
}

async fn connect(server: &NatsServer, config: NatsConfig) -> NatsBus {
    within("connect", STEP, NatsBus::connect(&server.url(), config))
        .await
        .expect("connect to the test server")
}

async fn publish_all(bus: &dyn Bus, msgs: Vec<InboxMessage>) -> Vec<bool> {
    let n = msgs.len();
    let results = within("publish_inbox", STEP, bus.publish_inbox(msgs)).await;
    assert_eq!(results.len(), n, "one result per message");
    results
        .into_iter()
        .map(|r| r.expect("publish acked").duplicate)
        .collect()
}

/// Pulls until `n` deliveries arrived, checking every batch against `max`.
async fn pull(inbox: &mut dyn Inbox, n: usize, max: usize) -> Vec<Delivery> {
    let deadline = Instant::now() + STEP;
    let mut got = Vec::new();
    while got.len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} deliveries arrived",
            got.len()
        );
        let batch = inbox
            .next_batch(max, Duration::from_secs(5))
            .await
            .expect("next_batch");
        assert!(
            batch.len() <= max,
            "batch of {} exceeds max {max}",
            batch.len()
        );
        got.extend(batch);
    }
    got
}

/// Waits until the broker wrote `needle` into the stream's block files (the file store acks
/// before its asynchronous flush; SIGKILL before the flush would lose the message).
async fn wait_on_disk(store: &Path, stream: &str, needle: &[u8]) {
    fn contains(dir: &Path, stream: &str, needle: &[u8], inside: bool) -> bool {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return false;
        };
        entries.flatten().any(|entry| {
            let path = entry.path();
            let name = entry.file_name();
            if path.is_dir() {
                contains(&path, stream, needle, inside || name == stream)
            } else {
                inside
                    && path.extension().is_some_and(|e| e == "blk")
                    && std::fs::read(&path)
                        .map(|data| data.windows(needle.len()).any(|w| w == needle))
                        .unwrap_or(false)
            }
        })
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !contains(store, stream, needle, false) {
        assert!(Instant::now() < deadline, "message never reached the disk");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbox_delivers_everything_in_order_in_bounded_batches_and_dedups() {
    let server = NatsServer::start();
    let bus = connect(&server, NatsConfig::default()).await;
    assert!(bus.durable_inbox());

    let n = 5_000;
    let msgs: Vec<InboxMessage> = (0..n).map(msg).collect();
    let duplicates = publish_all(&bus, msgs.clone()).await;
    assert!(
        duplicates.iter().all(|d| !d),
        "fresh ids are not duplicates"
    );

    let mut inbox = bus.inbox().await.expect("inbox");
    let max = 256;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut received = Vec::with_capacity(n);
    while received.len() < n {
        assert!(Instant::now() < deadline, "only {} of {n}", received.len());
        let batch = inbox
            .next_batch(max, Duration::from_secs(5))
            .await
            .expect("next_batch");
        assert!(batch.len() <= max, "batch of {} exceeds {max}", batch.len());
        for d in &batch {
            assert!(!d.redelivered, "nothing should be redelivered here");
            let i = received.len();
            assert_eq!(
                d.submission,
                Some(uuid::Uuid::from_u128(i as u128 + 1)),
                "Wfl-Submission travels with message {i}"
            );
            received.push(text(d));
        }
        inbox.ack(batch).await.expect("ack");
    }
    let expected: Vec<String> = (0..n).map(|i| format!("payload-{i:05}")).collect();
    assert_eq!(received, expected, "order preserved");

    // Same event ids again: the broker reports duplicates and stores nothing new.
    let again = publish_all(&bus, msgs).await;
    assert!(again.iter().all(|d| *d), "republished ids are duplicates");
    let nothing = inbox
        .next_batch(max, Duration::from_millis(500))
        .await
        .expect("idle");
    assert!(nothing.is_empty(), "duplicates must not be delivered");

    // Work-queue retention: acked messages are gone from the stream.
    let js = jetstream::new(bus.client().clone());
    let mut stream = js.get_stream("WFL_INBOX").await.expect("stream");
    let info = stream.info().await.expect("info");
    assert_eq!(info.state.messages, 0);
    assert_eq!(
        info.config.retention,
        jetstream::stream::RetentionPolicy::WorkQueue
    );
    assert_eq!(info.config.storage, jetstream::stream::StorageType::File);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacked_deliveries_are_redelivered_after_ack_wait() {
    let server = NatsServer::start();
    let config = NatsConfig {
        ack_wait: Duration::from_secs(1),
        ..NatsConfig::default()
    };
    let bus = connect(&server, config).await;
    publish_all(&bus, (0..10).map(msg).collect()).await;

    let mut first = bus.inbox().await.expect("inbox");
    let mut delivered = pull(first.as_mut(), 10, 100).await;
    assert!(delivered.iter().all(|d| !d.redelivered));
    let unacked = delivered.split_off(5);
    first.ack(delivered).await.expect("ack first five");
    let unacked_payloads: BTreeSet<String> = unacked.iter().map(text).collect();
    drop(unacked);
    drop(first);

    // A new consumer handle gets the five unacked ones again once ack_wait (1s) elapsed.
    let mut second = bus.inbox().await.expect("inbox again");
    let again = pull(second.as_mut(), 5, 100).await;
    assert!(
        again.iter().all(|d| d.redelivered),
        "flagged as redelivered"
    );
    let again_payloads: BTreeSet<String> = again.iter().map(text).collect();
    assert_eq!(again_payloads, unacked_payloads);
    second.ack(again).await.expect("ack the rest");

    // Everything is acked now: nothing comes back, even after more than ack_wait.
    let nothing = second
        .next_batch(100, Duration::from_millis(2_500))
        .await
        .expect("idle");
    assert!(
        nothing.is_empty(),
        "acked deliveries came back: {:?}",
        nothing.iter().map(text).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_messages_carry_subject_and_headers() {
    let server = NatsServer::start();
    let bus = connect(&server, NatsConfig::default()).await;
    assert_eq!(bus.last_published().await.expect("last"), None);

    let msgs: Vec<CommittedMessage> = (1..=3u64)
        .map(|seq| CommittedMessage {
            org_id: format!("org-{seq}"),
            event_type: if seq == 2 {
                "shift.started"
            } else {
                "clock_in"
            }
            .to_owned(),
            sequence: 100 + seq,
            hash: [seq as u8 * 17; 32],
            event_id: uuid::Uuid::new_v4(),
            payload: Bytes::from(format!("committed-{seq}")),
            msg_id: None,
            // Cluster mode names the partition (one message here is from partition 4).
            partition: (seq == 3).then_some(4),
        })
        .collect();
    within(
        "publish_committed",
        STEP,
        bus.publish_committed(msgs.clone()),
    )
    .await
    .expect("publish committed");
    assert_eq!(
        bus.last_published().await.expect("last"),
        Some(wfl_bus::LastPublished {
            sequence: 103,
            hash: Some([3 * 17; 32]),
        }),
        "the last message's sequence and hash, read back from its headers"
    );

    // Republishing (a restarted ledger catching up) is de-duplicated by event id.
    within("republish", STEP, bus.publish_committed(msgs.clone()))
        .await
        .expect("republish");

    // Read them back with a plain async-nats JetStream consumer.
    let client = async_nats::connect(server.url())
        .await
        .expect("plain client");
    let js = jetstream::new(client);
    let mut stream = js.get_stream("WFL_LEDGER").await.expect("ledger stream");
    let info = stream.info().await.expect("info");
    assert_eq!(info.state.messages, 3, "duplicates were not stored");
    assert_eq!(
        info.config.retention,
        jetstream::stream::RetentionPolicy::Limits
    );
    assert_eq!(info.config.storage, jetstream::stream::StorageType::File);
    assert_eq!(info.config.subjects, vec!["wfl.ledger.>".to_owned()]);

    let consumer = stream
        .create_consumer(jetstream::consumer::pull::Config {
            ack_policy: jetstream::consumer::AckPolicy::None,
            ..Default::default()
        })
        .await
        .expect("ephemeral consumer");
    let mut batch = consumer
        .batch()
        .max_messages(3)
        .expires(Duration::from_secs(5))
        .messages()
        .await
        .expect("batch");
    for expected in &msgs {
        let got = within("read back", STEP, batch.next())
            .await
            .expect("a message")
            .expect("no error");
        assert_eq!(
            got.subject.as_str(),
            format!("wfl.ledger.{}.{}", expected.org_id, expected.event_type)
        );
        let headers = got.headers.as_ref().expect("headers");
        let header = |name: &str| {
            // Parse the name: standard names (Nats-Msg-Id) are stored as such by async-nats.
            let name: async_nats::HeaderName = name.parse().expect("header name");
            headers
                .get(name.clone())
                .unwrap_or_else(|| panic!("header {name}"))
                .as_str()
                .to_owned()
        };
        assert_eq!(header("Nats-Msg-Id"), expected.event_id.to_string());
        assert_eq!(header("Wfl-Sequence"), expected.sequence.to_string());
        assert_eq!(header("Wfl-Hash"), hex::encode(expected.hash));
        assert_eq!(header("Wfl-Event-Type"), expected.event_type);
        assert_eq!(
            headers.get("Wfl-Partition").map(|v| v.as_str().to_owned()),
            expected.partition.map(|p| p.to_string())
        );
        assert_eq!(got.payload, expected.payload);
    }
}

/// The `Wfl-Sequence` of every message on `WFL_LEDGER`, in stream order.
async fn stream_sequences(server: &NatsServer) -> Vec<u64> {
    let client = async_nats::connect(server.url())
        .await
        .expect("plain client");
    let js = jetstream::new(client);
    let mut stream = js.get_stream("WFL_LEDGER").await.expect("ledger stream");
    let count = stream.info().await.expect("info").state.messages;
    let mut out = Vec::new();
    for seq in 1..=count {
        let m = stream.get_raw_message(seq).await.expect("message");
        out.push(
            m.headers
                .get("Wfl-Sequence")
                .expect("Wfl-Sequence")
                .as_str()
                .parse()
                .expect("a number"),
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_is_stored_once_whether_acknowledged_whole_or_sent_again() {
    let server = NatsServer::start();
    let bus = connect(&server, NatsConfig::default()).await;
    let ids: Vec<uuid::Uuid> = (0..40).map(|_| uuid::Uuid::new_v4()).collect();
    let chunk = |range: std::ops::RangeInclusive<u64>| -> Vec<CommittedMessage> {
        range
            .map(|seq| CommittedMessage {
                org_id: format!("org-{}", seq % 3),
                event_type: "hire".to_owned(),
                sequence: seq,
                hash: [seq as u8; 32],
                event_id: ids[seq as usize],
                payload: Bytes::from(format!("committed-{seq}")),
                msg_id: None,
                partition: None,
            })
            .collect()
    };
    // A chunk of new messages: acknowledged by its first and last.
    within("chunk", STEP, bus.publish_committed(chunk(1..=10)))
        .await
        .expect("publish");
    assert_eq!(
        stream_sequences(&server).await,
        (1..=10).collect::<Vec<_>>()
    );
    // A chunk that overlaps what the stream holds, sent by a bus that knew an older end of the
    // stream: its first message is dropped as a duplicate (nats-server 2.9) or refused for not
    // following the stream's last message (servers that check that first), and what the stream
    // does not hold after it is stored once, in order.
    within(
        "overlapping chunk",
        STEP,
        bus.publish_committed(chunk(6..=20)),
    )
    .await
    .expect("publish");
    // Two chunks in flight, the second sent before the first is acknowledged.
    let a = bus.send_committed(chunk(21..=30)).await.expect("send");
    let b = bus.send_committed(chunk(31..=39)).await.expect("send");
    within("acks", STEP, a).await.expect("first chunk");
    within("acks", STEP, b).await.expect("second chunk");
    assert_eq!(
        stream_sequences(&server).await,
        (1..=39).collect::<Vec<_>>(),
        "every sequence once, in order"
    );
    assert_eq!(
        bus.last_published().await.expect("last"),
        Some(wfl_bus::LastPublished {
            sequence: 39,
            hash: Some([39; 32]),
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_the_stream_refuses_in_the_middle_of_a_chunk_fails_it_and_no_later_one_passes_it()
{
    let server = NatsServer::start();
    let bus = connect(&server, NatsConfig::default()).await;
    let message = |seq: u64, payload: Bytes| CommittedMessage {
        org_id: "org".to_owned(),
        event_type: "hire".to_owned(),
        sequence: seq,
        hash: [seq as u8; 32],
        event_id: uuid::Uuid::new_v4(),
        payload,
        msg_id: None,
        partition: None,
    };
    within(
        "first",
        STEP,
        bus.publish_committed(vec![message(1, Bytes::from_static(b"one"))]),
    )
    .await
    .expect("publish");
    // The stream now refuses messages over 1,000 bytes (the client would send up to 1 MiB).
    let client = async_nats::connect(server.url())
        .await
        .expect("plain client");
    let js = jetstream::new(client);
    let mut config = js
        .get_stream("WFL_LEDGER")
        .await
        .expect("ledger stream")
        .info()
        .await
        .expect("info")
        .config
        .clone();
    config.max_message_size = 1_000;
    js.update_stream(config.clone())
        .await
        .expect("update stream");
    // The middle message of a chunk is refused: sent without an ack of its own, its loss shows
    // in the stream sequences of the chunk's first and last acks, and the chunk fails.
    let chunk: Vec<CommittedMessage> = (2..=6)
        .map(|seq| {
            let size = if seq == 4 { 2_000 } else { 10 };
            message(seq, Bytes::from(vec![b'x'; size]))
        })
        .collect();
    let sent = within("chunk", STEP, bus.publish_committed(chunk.clone())).await;
    assert!(
        matches!(sent, Err(Error::Rejected(_))),
        "a refused message fails the chunk: {sent:?}"
    );
    // Nor are 5 and 6: each must follow its predecessor on the stream, so none is stored past
    // the missing one (a consumer reading in order would never go back for it).
    assert_eq!(
        stream_sequences(&server).await,
        vec![1, 2, 3],
        "the stream holds a prefix of the history, and the call said it is not all there"
    );
    // Once the stream takes it, sending the chunk again puts every sequence in order, once.
    config.max_message_size = -1;
    js.update_stream(config).await.expect("update stream");
    within("chunk again", STEP, bus.publish_committed(chunk))
        .await
        .expect("sent again");
    assert_eq!(stream_sequences(&server).await, vec![1, 2, 3, 4, 5, 6]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_serve_round_trip() {
    let server = NatsServer::start();
    let bus = connect(&server, NatsConfig::default()).await;
    let mut requests = bus.serve("wfl.test.echo").await.expect("serve");
    let responder = tokio::spawn(async move {
        let request = requests.next().await.expect("a request");
        let mut answer = b"echo:".to_vec();
        answer.extend_from_slice(&request.payload);
        request.reply(Bytes::from(answer)).await.expect("reply");
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
    within("responder", STEP, responder)
        .await
        .expect("responder task");

    let started = Instant::now();
    let none = bus
        .request("wfl.test.nobody", Bytes::new(), Duration::from_secs(5))
        .await;
    assert!(matches!(none, Err(Error::Unavailable(_))), "{none:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no responders is immediate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_publish_is_delivered_to_subscribers() {
    let server = NatsServer::start();
    let bus = connect(&server, NatsConfig::default()).await;
    // Subscribe on the bus' own connection so the subscription is in place before the publish.
    let mut sub = bus
        .client()
        .subscribe("wfl.alerts.>")
        .await
        .expect("subscribe");
    bus.publish("wfl.alerts.org-a.rule-1", Bytes::from_static(b"alert"))
        .await
        .expect("publish");
    let got = within("alert", STEP, sub.next()).await.expect("a message");
    assert_eq!(got.subject.as_str(), "wfl.alerts.org-a.rule-1");
    assert_eq!(got.payload, Bytes::from_static(b"alert"));

    let invalid = bus.publish("wfl.alerts.*", Bytes::new()).await;
    assert!(matches!(invalid, Err(Error::Rejected(_))), "{invalid:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_server_makes_publish_unavailable_and_restart_keeps_acked_messages() {
    let mut server = NatsServer::start();
    let bus = connect(&server, NatsConfig::default()).await;
    let n = 100;
    publish_all(&bus, (0..n).map(msg).collect()).await;
    let last = format!("payload-{:05}", n - 1);
    wait_on_disk(&server.store_dir(), "WFL_INBOX", last.as_bytes()).await;

    server.kill();
    let started = Instant::now();
    let results = within(
        "publish_inbox against a dead server",
        Duration::from_secs(20),
        bus.publish_inbox((n..n + 3).map(msg).collect()),
    )
    .await;
    assert_eq!(results.len(), 3);
    for result in &results {
        assert!(matches!(result, Err(Error::Unavailable(_))), "{result:?}");
    }
    assert!(started.elapsed() < Duration::from_secs(20));

    server.restart();
    // Readiness polling: the client reconnects with backoff; inbox() succeeds once it has.
    let deadline = Instant::now() + STEP;
    let mut inbox = loop {
        match bus.inbox().await {
            Ok(inbox) => break inbox,
            Err(Error::Unavailable(e)) => {
                assert!(Instant::now() < deadline, "never reconnected: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("inbox after restart: {e}"),
        }
    };

    // Everything acked before the kill survived (file storage). The three publishes that
    // reported Unavailable may or may not have landed: at-least-once, callers retry.
    let mut seen = BTreeSet::new();
    let wanted: BTreeSet<String> = (0..n).map(|i| format!("payload-{i:05}")).collect();
    let deadline = Instant::now() + STEP;
    while !wanted.is_subset(&seen) {
        assert!(
            Instant::now() < deadline,
            "missing after restart: {:?}",
            wanted.difference(&seen).collect::<Vec<_>>()
        );
        match inbox.next_batch(500, Duration::from_secs(1)).await {
            Ok(batch) => {
                seen.extend(batch.iter().map(text));
                inbox.ack(batch).await.expect("ack after restart");
            }
            Err(Error::Unavailable(_)) => {}
            Err(e) => panic!("next_batch after restart: {e}"),
        }
    }

    // And the bus publishes again.
    let after = publish_all(&bus, vec![msg(1_000)]).await;
    assert_eq!(after, vec![false]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_inbox_reports_outage_as_unavailable_and_resumes_after_restart() {
    let mut server = NatsServer::start();
    let bus = connect(&server, NatsConfig::default()).await;
    let mut inbox = bus.inbox().await.expect("inbox");
    let idle = inbox
        .next_batch(10, Duration::from_millis(100))
        .await
        .expect("idle while connected");
    assert!(idle.is_empty());

    server.kill();
    // Each call is bounded by its idle time; once the client noticed, it reports the outage.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let result = within(
            "next_batch during outage",
            Duration::from_secs(5),
            inbox.next_batch(10, Duration::from_millis(100)),
        )
        .await;
        match result {
            Err(Error::Unavailable(_)) => break,
            Ok(batch) => assert!(batch.is_empty()),
            Err(e) => panic!("unexpected error during outage: {e}"),
        }
        assert!(
            Instant::now() < deadline,
            "outage never surfaced as Unavailable"
        );
    }

    server.restart();
    // Readiness polling: publish until the reconnected client gets an ack.
    let deadline = Instant::now() + STEP;
    let event = msg(7);
    loop {
        let result = bus.publish_inbox(vec![event.clone()]).await;
        match &result[0] {
            Ok(_) => break,
            Err(Error::Unavailable(e)) => {
                assert!(Instant::now() < deadline, "never reconnected: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("publish after restart: {e}"),
        }
    }

    // The same inbox handle resumes.
    let deadline = Instant::now() + STEP;
    loop {
        assert!(Instant::now() < deadline, "inbox never resumed");
        match inbox.next_batch(10, Duration::from_secs(1)).await {
            Ok(batch) if !batch.is_empty() => {
                assert!(batch.iter().any(|d| d.payload == event.payload));
                inbox.ack(batch).await.expect("ack");
                break;
            }
            Ok(_) | Err(Error::Unavailable(_)) => {}
            Err(e) => panic!("next_batch after restart: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_is_idempotent_and_fails_fast_without_a_server() {
    let server = NatsServer::start();
    let first = connect(&server, NatsConfig::default()).await;
    publish_all(&first, vec![msg(0)]).await;
    // A second process start re-applies the same configuration and keeps the data.
    let second = connect(&server, NatsConfig::default()).await;
    let mut inbox = second.inbox().await.expect("inbox");
    let got = pull(inbox.as_mut(), 1, 10).await;
    assert_eq!(text(&got[0]), "payload-00000");
    inbox.ack(got).await.expect("ack");

    // Updating the consumer in place (ack_wait, max_ack_pending) is allowed.
    let tuned = NatsConfig {
        ack_wait: Duration::from_secs(10),
        max_ack_pending: 500,
        ..NatsConfig::default()
    };
    connect(&server, tuned).await;

    drop(server);
    let port = wfl_testkit::free_port();
    let result = within(
        "connect to nothing",
        Duration::from_secs(15),
        NatsBus::connect(&format!("nats://127.0.0.1:{port}"), NatsConfig::default()),
    )
    .await;
    assert!(matches!(result, Err(Error::Unavailable(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_invalid_messages_are_rejected_without_breaking_the_batch() {
    let server = NatsServer::start();
    let bus = connect(&server, NatsConfig::default()).await;
    let max = bus.client().server_info().max_payload;
    let mut huge = msg(1);
    huge.payload = Bytes::from(vec![b'x'; max]);
    let mut bad_org = msg(2);
    bad_org.org_id = "org.with.dots".to_owned();
    let results = within(
        "publish_inbox",
        STEP,
        bus.publish_inbox(vec![msg(0), huge, bad_org, msg(3)]),
    )
    .await;
    assert!(results[0].is_ok(), "{:?}", results[0]);
    assert!(
        matches!(results[1], Err(Error::Rejected(_))),
        "{:?}",
        results[1]
    );
    assert!(
        matches!(results[2], Err(Error::Rejected(_))),
        "{:?}",
        results[2]
    );
    assert!(results[3].is_ok(), "{:?}", results[3]);

    let mut inbox = bus.inbox().await.expect("inbox");
    let got = pull(inbox.as_mut(), 2, 10).await;
    let payloads: Vec<String> = got.iter().map(text).collect();
    assert_eq!(payloads, vec!["payload-00000", "payload-00003"]);
    inbox.ack(got).await.expect("ack");
}

/// The stall-recovery surface: consumer state, reopen, and recreate from the ack floor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbox_state_reopen_and_recreate_from_the_ack_floor() {
    let server = NatsServer::start();
    // A long ack wait: only `recreate` can bring unacknowledged deliveries back within the test.
    let config = NatsConfig {
        ack_wait: Duration::from_secs(600),
        ..NatsConfig::default()
    };
    let bus = connect(&server, config).await;
    publish_all(&bus, (0..10).map(msg).collect()).await;
    let mut inbox = bus.inbox().await.expect("inbox");
    let mut delivered = pull(inbox.as_mut(), 10, 100).await;
    let unacked = delivered.split_off(4);
    let unacked_payloads: BTreeSet<String> = unacked.iter().map(text).collect();
    inbox.ack(delivered).await.expect("ack four");
    drop(unacked);

    let state = within("state", STEP, inbox.state())
        .await
        .expect("state")
        .expect("NATS reports consumer state");
    assert_eq!(state.num_pending, 0, "{state}");
    assert_eq!(state.num_ack_pending, 6, "{state}");
    assert_eq!(state.ack_wait, Duration::from_secs(600));
    assert_eq!(state.delivered_stream_sequence, 10, "{state}");

    // Reopen keeps the consumer: the six stay held, new messages still arrive.
    within("reopen", STEP, inbox.reopen())
        .await
        .expect("reopen");
    publish_all(&bus, vec![msg(10)]).await;
    let fresh = pull(inbox.as_mut(), 1, 100).await;
    assert_eq!(text(&fresh[0]), "payload-00010");
    inbox.ack(fresh).await.expect("ack");

    // Recreate starts from the ack floor: the six come back at once, not after the ack wait.
    within("recreate", STEP, inbox.recreate())
        .await
        .expect("recreate");
    let again = pull(inbox.as_mut(), 6, 100).await;
    let again_payloads: BTreeSet<String> = again.iter().map(text).collect();
    assert_eq!(again_payloads, unacked_payloads);
    inbox.ack(again).await.expect("ack the rest");
    let state = within("state", STEP, inbox.state())
        .await
        .expect("state")
        .expect("state");
    assert_eq!(
        (state.num_pending, state.num_ack_pending),
        (0, 0),
        "{state}"
    );
}

/// Cluster mode: whether `WFL_LEDGER` holds a partition's commit is read off its subject's last
/// message (an org's commits come from its partition alone, in order).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_holds_reads_a_partitions_progress_off_the_subject() {
    let server = NatsServer::start();
    let bus = connect(&server, NatsConfig::default()).await;
    let msg = |sequence: u64| CommittedMessage {
        org_id: "o1".to_owned(),
        event_type: "clock_in".to_owned(),
        sequence,
        hash: [1; 32],
        event_id: uuid::Uuid::new_v4(),
        payload: Bytes::from_static(b"c"),
        msg_id: None,
        partition: Some(2),
    };
    within(
        "publish_committed",
        STEP,
        bus.publish_committed(vec![msg(5), msg(7)]),
    )
    .await
    .expect("publish committed");
    for (partition, org, sequence, holds) in [
        (2, "o1", 5, true),
        (2, "o1", 7, true),
        (2, "o1", 8, false),
        (3, "o1", 5, false),
        (2, "o2", 1, false),
    ] {
        assert_eq!(
            bus.committed_holds(partition, org, "clock_in", sequence)
                .await
                .expect("committed_holds"),
            holds,
            "partition {partition}, org {org}, sequence {sequence}"
        );
    }
}

/// Cluster mode's inbox: a gateway routes each org by the partition map it follows and says
/// which revision; a delivery names its org, that revision and its message id; a writer can
/// hand deliveries back for later (an org being placed) or forward them to another partition's
/// range (an org placed elsewhere), which stores each once however often it is forwarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_deliveries_name_their_route_and_can_be_deferred_or_forwarded() {
    use wfl_bus::cluster::{
        partition_inbox_filter, partition_inbox_subject, Cluster, PartitionMap,
    };
    let server = NatsServer::start();
    let client = async_nats::connect(server.url()).await.expect("connect");
    let cluster = Cluster::open(&client, wfl_bus::cluster::ClusterConfig::default())
        .await
        .expect("cluster");
    let created = PartitionMap::new(2, Default::default()).expect("map");
    cluster.partition_map(Some(&created)).await.expect("create");
    let live = cluster.live_map().await.expect("live map");
    let (revision, map) = live.current();
    let home = map.partition_of("org-a");
    let other = 1 - home;
    let gateway = connect(&server, NatsConfig::default())
        .await
        .with_partitions(live.clone());
    let partition = |p: u32| NatsConfig {
        consumer: format!("p{p}"),
        inbox_filter: Some(partition_inbox_filter(p)),
        ..NatsConfig::default()
    };
    let here = connect(&server, partition(home)).await;
    let there = connect(&server, partition(other)).await;
    let mut inbox = here.inbox().await.expect("inbox");
    let mut elsewhere = there.inbox().await.expect("inbox");

    // An org being placed is refused, retryable, by a gateway that knows it.
    let mut closed = (*map).clone();
    closed.moving.insert("org-a".to_owned(), other);
    let refusing = connect(&server, NatsConfig::default())
        .await
        .with_partitions(wfl_bus::cluster::LiveMap::fixed(closed));
    let refused = refusing.publish_inbox(vec![msg(0)]).await;
    match &refused[0] {
        Err(Error::Unavailable(why)) => assert!(why.contains("being placed"), "{why}"),
        other => panic!("published while being placed: {other:?}"),
    }

    let sent = msg(0);
    let id = sent.event_id.to_string();
    publish_all(&gateway, vec![sent]).await;
    let d = pull(inbox.as_mut(), 1, 10).await.remove(0);
    assert_eq!(d.org_id.as_deref(), Some("org-a"));
    assert_eq!(d.map_revision, revision);
    assert_eq!(d.msg_id.as_deref(), Some(id.as_str()));

    // Handed back: delivered again after the delay, and only then.
    let acker = inbox.acker();
    let handed = Instant::now();
    acker
        .defer(vec![d], Duration::from_millis(500))
        .await
        .expect("defer");
    let again = pull(inbox.as_mut(), 1, 10).await.remove(0);
    assert!(again.redelivered && handed.elapsed() >= Duration::from_millis(450));

    // Forwarded twice (a writer that died before its ack): stored once on the other range,
    // with the forwarder's revision; the original is acknowledged.
    let subject = partition_inbox_subject(other, "org-a");
    let copy = again.clone();
    acker
        .redirect(vec![(again, subject.clone())], revision + 1)
        .await
        .expect("redirect");
    acker
        .redirect(vec![(copy, subject.clone())], revision + 1)
        .await
        .expect("redirect again");
    let moved = pull(elsewhere.as_mut(), 1, 10).await;
    assert_eq!(
        moved[0].msg_id.as_deref(),
        Some(format!("{id}@{subject}").as_str())
    );
    assert_eq!(moved[0].map_revision, revision + 1);
    assert_eq!(text(&moved[0]), "payload-00000");
    assert_eq!(moved[0].submission, Some(uuid::Uuid::from_u128(1)));
    elsewhere.ack(moved).await.expect("ack");
    for (name, inbox) in [("origin", &mut inbox), ("target", &mut elsewhere)] {
        let left = inbox
            .next_batch(10, Duration::from_secs(2))
            .await
            .expect("next_batch");
        assert!(left.is_empty(), "{name}: {} more deliveries", left.len());
    }
}

/// Events for one org, `first..first + n`.
fn run(first: usize, n: usize) -> Vec<InboxMessage> {
    (first..first + n)
        .map(|i| InboxMessage {
            org_id: "org-run".to_owned(),
            ..msg(i)
        })
        .collect()
}

/// How many messages the inbox stream holds.
async fn stored(bus: &NatsBus) -> u64 {
    let js = jetstream::new(bus.client().clone());
    let mut stream = js.get_stream("WFL_INBOX").await.expect("stream");
    stream.info().await.expect("info").state.messages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_for_one_org_is_framed_into_few_broker_messages() {
    let server = NatsServer::start();
    let bus = connect(&server, NatsConfig::default()).await;
    let n = 2 * NatsBus::FRAME_EVENTS + 500;
    let msgs = run(0, n);
    assert!(publish_all(&bus, msgs.clone()).await.iter().all(|d| !d));
    assert_eq!(
        stored(&bus).await,
        3,
        "frames of 1,000, 1,000 and 500 events"
    );
    // A frame is sized to the server's max_payload: large events share fewer to a frame.
    let max = bus.client().server_info().max_payload;
    let mut big = run(n, 10);
    for m in &mut big {
        m.payload = Bytes::from(vec![b'b'; max / 4]);
    }
    assert!(publish_all(&bus, big).await.iter().all(|d| !d));
    assert_eq!(
        stored(&bus).await,
        3 + 4,
        "three to a frame, then one alone"
    );

    // One of a frame's events published alone is new to the broker (it de-duplicates the run,
    // not its events): it is delivered again, and the ledger's event-id check decides it.
    let alone = msgs[7].clone();
    assert_eq!(publish_all(&bus, vec![alone.clone()]).await, vec![false]);
    let mut inbox = bus.inbox().await.expect("inbox");
    let got = pull(inbox.as_mut(), n + 11, 256).await;
    assert_eq!(text(&got[n + 10]), text(&got[7]));
    for (d, m) in got.iter().zip(&msgs) {
        assert_eq!((&d.payload, d.submission), (&m.payload, Some(m.submission)));
        assert_eq!(
            d.msg_id,
            Some(m.event_id.to_string()),
            "the event id travels too"
        );
        assert_eq!(d.org_id, None, "no partition in the subject");
    }
    inbox.ack(got).await.expect("ack");
    let nothing = inbox
        .next_batch(256, Duration::from_millis(300))
        .await
        .expect("idle");
    assert!(nothing.is_empty());
    assert_eq!(
        stored(&bus).await,
        0,
        "every frame acknowledged once all its events were"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partly_acknowledged_frame_comes_again_whole() {
    let server = NatsServer::start();
    let config = NatsConfig {
        ack_wait: Duration::from_secs(1),
        ..NatsConfig::default()
    };
    let bus = connect(&server, config).await;
    let msgs = run(0, 10);
    publish_all(&bus, msgs.clone()).await;
    let mut first = bus.inbox().await.expect("inbox");
    let mut delivered = pull(first.as_mut(), 10, 100).await;
    let unacked = delivered.split_off(6);
    // Acknowledged twice (a clone acknowledges the same event): still six of ten.
    first.ack(delivered.clone()).await.expect("ack six");
    first.ack(delivered).await.expect("ack six again");
    drop(unacked);
    drop(first);

    // The frame was not acknowledged: after the ack wait all ten come again, flagged.
    let mut second = bus.inbox().await.expect("inbox again");
    let again = pull(second.as_mut(), 10, 100).await;
    assert!(
        again.iter().all(|d| d.redelivered),
        "flagged as redelivered"
    );
    let payloads: Vec<Bytes> = again.iter().map(|d| d.payload.clone()).collect();
    let expected: Vec<Bytes> = msgs.iter().map(|m| m.payload.clone()).collect();
    assert_eq!(payloads, expected);
    second.ack(again).await.expect("ack all");
    let nothing = second
        .next_batch(100, Duration::from_millis(2_500))
        .await
        .expect("idle");
    assert!(nothing.is_empty(), "the frame was acknowledged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_that_cannot_be_read_is_handed_over_whole() {
    let server = NatsServer::start();
    let bus = connect(&server, NatsConfig::default()).await;
    // Provision the stream with one ordinary event first.
    publish_all(&bus, vec![msg(0)]).await;
    let js = jetstream::new(bus.client().clone());
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(wfl_bus::HEADER_BATCH, "3");
    js.publish_with_headers(
        "wfl.inbox.org-a",
        headers,
        Bytes::from_static(b"not a frame"),
    )
    .await
    .expect("publish")
    .await
    .expect("stored");
    let mut inbox = bus.inbox().await.expect("inbox");
    let got = pull(inbox.as_mut(), 2, 10).await;
    assert_eq!(text(&got[0]), "payload-00000");
    assert_eq!(
        text(&got[1]),
        "not a frame",
        "one delivery, the message as it is"
    );
    inbox.ack(got).await.expect("ack");
    let nothing = inbox
        .next_batch(10, Duration::from_millis(300))
        .await
        .expect("idle");
    assert!(nothing.is_empty());
}
