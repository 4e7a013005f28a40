//! Catch-up subscriptions: history then live with no gap and no duplicate, resuming from a
//! checkpoint, slow subscribers served from disk with a bounded queue, the JetStream committed
//! stream agreeing with gRPC, and subscribers surviving a SIGKILL of the ledger.

mod common;

use std::collections::HashMap;

use common::{next_event, record_batch, subscribe, Mode, Node, Proc};
use wfl_proto::pb;
use wfl_testkit::{scenario, NatsServer};

fn hires(n: usize, offset: usize) -> Vec<wfl_domain::Event> {
    (offset..offset + n)
        .map(|i| scenario::hire("acme", &format!("w-{i}")))
        .collect()
}

/// Collects `n` events from a subscription, asserting they are exactly `from..from+n` in order.
async fn expect_sequences(stream: &mut tonic::Streaming<pb::SubscribeResponse>, from: u64, n: u64) {
    for want in from..from + n {
        let c = next_event(stream)
            .await
            .expect("stream open")
            .expect("no error");
        assert_eq!(c.sequence, want, "gap, duplicate or disorder");
        assert_eq!(c.hash.len(), 32);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_get_every_event_exactly_once_in_order_during_and_after_ingest() {
    const TOTAL: usize = 100_000;
    const BATCH: usize = 5_000;
    let node = Node::start(Mode::Memory);
    let ch = node.channel().await;
    record_batch(&ch, &hires(BATCH, 0)).await;

    // Started while ingestion is under way: sees history, then live, then nothing more.
    let live = {
        let ch = ch.clone();
        tokio::spawn(async move {
            let mut s = subscribe(&ch, 1).await;
            expect_sequences(&mut s, 1, TOTAL as u64).await;
        })
    };
    // Disconnects at an arbitrary point and resumes from its checkpoint.
    let resuming = {
        let ch = ch.clone();
        tokio::spawn(async move {
            let cut = 37_123u64;
            let mut s = subscribe(&ch, 1).await;
            expect_sequences(&mut s, 1, cut).await;
            drop(s);
            let mut s = subscribe(&ch, cut + 1).await;
            expect_sequences(&mut s, cut + 1, TOTAL as u64 - cut).await;
        })
    };
    for b in 1..TOTAL / BATCH {
        let r = record_batch(&ch, &hires(BATCH, b * BATCH)).await;
        assert_eq!(r.committed as usize, BATCH);
    }
    live.await.expect("live subscriber");
    resuming.await.expect("resuming subscriber");

    // From the start after ingestion: the whole history.
    let mut s = subscribe(&ch, 0).await;
    expect_sequences(&mut s, 1, TOTAL as u64).await;
    // And a heartbeat carrying the head once caught up.
    let beat = match s.message().await.expect("stream").expect("open").kind {
        Some(pb::subscribe_response::Kind::Heartbeat(h)) => h,
        other => panic!("only heartbeats expected after the head, got {other:?}"),
    };
    assert_eq!(
        (beat.head_sequence, beat.position),
        (TOTAL as u64, TOTAL as u64)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscriber_is_served_from_disk_with_a_bounded_queue() {
    let node = Node::start(Mode::Memory);
    let ch = node.channel().await;
    let http = node.proc.http.clone().expect("http address");
    let mut slow = subscribe(&ch, 1).await;
    let mut max_queued = 0u64;
    let mut max_lag = 0u64;
    let mut received = Vec::new();
    for b in 0..20 {
        record_batch(&ch, &hires(2_000, b * 2_000)).await;
        // A deliberately slow reader: a few events per batch, with a pause per event.
        for _ in 0..5 {
            let c = next_event(&mut slow).await.expect("open").expect("ok");
            received.push(c.sequence);
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let metrics = common::http_get(&http, "/metrics");
        for line in metrics.lines() {
            let value = || {
                line.rsplit(' ')
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            if line.starts_with("wfl_subscriber_queued{") {
                max_queued = max_queued.max(value());
            } else if line.starts_with("wfl_subscriber_lag{") {
                max_lag = max_lag.max(value());
            }
        }
    }
    // The HTTP/2 stream window (2 MiB for tonic clients) holds some events beyond the queue.
    assert!(
        max_lag >= 20_000,
        "the subscriber fell far behind (lag {max_lag})"
    );
    assert!(
        max_queued < wfl_ledger::subscribe::QUEUE as u64,
        "server-side queue stays bounded ({max_queued} >= {})",
        wfl_ledger::subscribe::QUEUE
    );
    // It still receives everything, in order.
    while received.len() < 40_000 {
        received.push(
            next_event(&mut slow)
                .await
                .expect("open")
                .expect("ok")
                .sequence,
        );
    }
    assert_eq!(received, (1..=40_000).collect::<Vec<u64>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_committed_stream_matches_grpc_subscribe_and_resumes_durably() {
    use futures::StreamExt;
    let node = Node::start(Mode::Nats);
    let nats_url = node.nats.as_ref().expect("nats").url();
    let ch = node.channel().await;
    for b in 0..4 {
        record_batch(&ch, &hires(500, b * 500)).await;
    }
    let mut grpc = Vec::new();
    let mut s = subscribe(&ch, 1).await;
    for _ in 0..2_000 {
        grpc.push(next_event(&mut s).await.expect("open").expect("ok"));
    }

    let client = async_nats::connect(&nats_url).await.expect("nats");
    let js = async_nats::jetstream::new(client);
    let consumer_config = async_nats::jetstream::consumer::pull::Config {
        durable_name: Some("analytics".into()),
        ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
        ..Default::default()
    };
    let stream = js
        .get_stream("WFL_LEDGER")
        .await
        .expect("WFL_LEDGER exists");
    let consumer = stream
        .get_or_create_consumer("analytics", consumer_config.clone())
        .await
        .expect("consumer");
    let mut seen: Vec<(u64, pb::CommittedEvent, String, String)> = Vec::new();
    let mut messages = consumer.messages().await.expect("messages");
    while seen.len() < 2_000 {
        let m = messages.next().await.expect("open").expect("message");
        let headers = m.headers.clone().expect("headers");
        let seq: u64 = headers
            .get("Wfl-Sequence")
            .expect("Wfl-Sequence")
            .as_str()
            .parse()
            .expect("number");
        let hash = headers
            .get("Wfl-Hash")
            .expect("Wfl-Hash")
            .as_str()
            .to_owned();
        let c = <pb::CommittedEvent as prost::Message>::decode(m.payload.as_ref())
            .expect("payload is a CommittedEvent");
        seen.push((seq, c, m.subject.to_string(), hash));
        m.ack().await.expect("ack");
    }
    let hashes: HashMap<u64, String> = grpc
        .iter()
        .map(|c| (c.sequence, hex::encode(&c.hash)))
        .collect();
    assert_eq!(seen.len(), 2_000);
    for ((seq, c, subject, hash), g) in seen.iter().zip(&grpc) {
        assert_eq!(*seq, g.sequence);
        assert_eq!(
            c, g,
            "the NATS payload is the same CommittedEvent as gRPC serves"
        );
        assert_eq!(subject, "wfl.ledger.acme.WorkerHired");
        assert_eq!(
            Some(hash),
            hashes.get(seq),
            "Wfl-Hash header is the record's hash"
        );
    }
    drop(messages);

    // The durable consumer resumes where it stopped: only the new events arrive.
    record_batch(&ch, &hires(300, 10_000)).await;
    let consumer = stream
        .get_or_create_consumer("analytics", consumer_config)
        .await
        .expect("consumer again");
    let mut messages = consumer.messages().await.expect("messages");
    for want in 2_001..=2_300u64 {
        let m = messages.next().await.expect("open").expect("message");
        let seq: u64 = m
            .headers
            .as_ref()
            .and_then(|h| h.get("Wfl-Sequence"))
            .expect("header")
            .as_str()
            .parse()
            .expect("n");
        assert_eq!(seq, want);
        m.ack().await.expect("ack");
    }
    assert_eq!(hashes.len(), 2_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_resume_from_their_checkpoint_after_the_ledger_is_killed() {
    let dir = wfl_testkit::temp_dir();
    let logs = dir.path().join("logs");
    let data = dir.path().join("data").display().to_string();
    let nats = NatsServer::start();
    let ledger_args = vec![
        "--data-dir".into(),
        data,
        "--grpc-addr".into(),
        "127.0.0.1:0".into(),
        "--nats-url".into(),
        nats.url(),
    ];
    let mut ledger = Proc::start("wfl-ledger", &ledger_args, &logs);
    let gateway = Proc::start(
        "wfl-gateway",
        &[
            "--grpc-addr".into(),
            "127.0.0.1:0".into(),
            "--nats-url".into(),
            nats.url(),
        ],
        &logs,
    );
    let gw = common::connect(&gateway.grpc).await;
    record_batch(&gw, &hires(1_000, 0)).await;

    let mut checkpoint = 0u64;
    let mut s = subscribe(&common::connect(&ledger.grpc).await, 1).await;
    while checkpoint < 1_000 {
        let c = next_event(&mut s).await.expect("open").expect("ok");
        assert_eq!(c.sequence, checkpoint + 1);
        checkpoint = c.sequence;
    }
    ledger.kill();
    // The subscriber is told: its stream ends with an error rather than hanging silently.
    match next_event(&mut s).await {
        Some(Err(_)) | None => {}
        Some(Ok(c)) => panic!("no event can arrive from a dead ledger: {c:?}"),
    }
    ledger = Proc::start("wfl-ledger", &ledger_args, &logs);
    record_batch(&gw, &hires(500, 1_000)).await;
    let mut s = subscribe(&common::connect(&ledger.grpc).await, checkpoint + 1).await;
    expect_sequences(&mut s, 1_001, 500).await;
}

/// The next `batch` message of a subscription, skipping heartbeats; a single-event message fails.
async fn next_batch(
    stream: &mut tonic::Streaming<pb::SubscribeResponse>,
) -> Vec<pb::CommittedEvent> {
    loop {
        match stream
            .message()
            .await
            .expect("stream ok")
            .expect("stream open")
            .kind
        {
            Some(pb::subscribe_response::Kind::Batch(b)) => return b.events,
            Some(pb::subscribe_response::Kind::Heartbeat(_)) => continue,
            other => panic!("a batched subscriber gets batches, got {other:?}"),
        }
    }
}

/// Receives batches until sequence `to`, checking order and the cap; returns the biggest batch.
async fn receive_batches(
    s: &mut tonic::Streaming<pb::SubscribeResponse>,
    from: u64,
    to: u64,
    cap: usize,
) -> usize {
    let mut next = from;
    let mut biggest = 0usize;
    while next <= to {
        let events = next_batch(s).await;
        assert!(!events.is_empty(), "a batch is never empty");
        assert!(events.len() <= cap, "{} events > {cap}", events.len());
        biggest = biggest.max(events.len());
        for c in events {
            assert_eq!(c.sequence, next, "gap, duplicate or disorder");
            assert_eq!(c.hash.len(), 32);
            next += 1;
        }
    }
    biggest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batched_subscriber_gets_every_event_once_in_order_in_bounded_batches() {
    let node = Node::start(Mode::Memory);
    let ch = node.channel().await;
    record_batch(&ch, &hires(3_000, 0)).await;
    let subscribe_batched = |max_batch| {
        let ch = ch.clone();
        async move {
            common::ledger(&ch)
                .subscribe(pb::SubscribeRequest {
                    from_sequence: 1,
                    heartbeat_ms: 200,
                    max_batch,
                    ..Default::default()
                })
                .await
                .expect("Subscribe")
                .into_inner()
        }
    };
    // History, then events committed while subscribed, then only heartbeats naming the head.
    let mut s = subscribe_batched(300).await;
    let biggest = receive_batches(&mut s, 1, 3_000, 300).await;
    assert!(biggest > 1, "history travels several events per message");
    record_batch(&ch, &hires(700, 3_000)).await;
    receive_batches(&mut s, 3_001, 3_700, 300).await;
    loop {
        match s.message().await.expect("stream").expect("open").kind {
            Some(pb::subscribe_response::Kind::Heartbeat(h)) => {
                if h.position == 3_700 {
                    assert_eq!(h.head_sequence, 3_700);
                    break;
                }
            }
            other => panic!("only heartbeats after the head, got {other:?}"),
        }
    }

    // More than the cap asked for: served in batches of the cap.
    let cap = wfl_ledger::subscribe::MAX_BATCH;
    let mut s = subscribe_batched(50_000).await;
    assert_eq!(receive_batches(&mut s, 1, 3_700, cap).await, cap);
}
