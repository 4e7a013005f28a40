//! Switching a data dir from the embedded bus to NATS leaves no gap: the first start on NATS
//! republishes the history the committed stream `WFL_LEDGER` lacks, so a JetStream consumer sees
//! every sequence from 1, in order, exactly once.

mod common;

use std::time::{Duration, Instant};

use futures::StreamExt;
use wfl_testkit::{scenario, NatsServer};

fn hires(n: usize, offset: usize) -> Vec<wfl_domain::Event> {
    (offset..offset + n)
        .map(|i| scenario::hire("acme", &format!("w-{i}")))
        .collect()
}

/// Every `Wfl-Sequence` in `WFL_LEDGER`, in stream order, once the stream holds `expected`
/// messages (polled with a deadline).
async fn stream_sequences(url: &str, expected: u64) -> Vec<u64> {
    let client = async_nats::connect(url).await.expect("nats");
    let js = async_nats::jetstream::new(client);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut stream = loop {
        if let Ok(s) = js.get_stream("WFL_LEDGER").await {
            break s;
        }
        assert!(Instant::now() < deadline, "WFL_LEDGER never appeared");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    loop {
        let held = stream.info().await.expect("stream info").state.messages;
        if held >= expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "WFL_LEDGER holds {held} of {expected} events"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            deliver_policy: async_nats::jetstream::consumer::DeliverPolicy::All,
            ack_policy: async_nats::jetstream::consumer::AckPolicy::None,
            ..Default::default()
        })
        .await
        .expect("consumer");
    let held = stream.info().await.expect("stream info").state.messages;
    let mut messages = consumer.messages().await.expect("messages");
    let mut seqs = Vec::new();
    while (seqs.len() as u64) < held {
        let m = tokio::time::timeout(Duration::from_secs(30), messages.next())
            .await
            .expect("the stream delivers what it holds")
            .expect("open")
            .expect("message");
        let headers = m.headers.clone().expect("headers");
        seqs.push(
            headers
                .get("Wfl-Sequence")
                .expect("Wfl-Sequence")
                .as_str()
                .parse()
                .expect("a number"),
        );
    }
    seqs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_on_nats_with_embedded_history_republishes_every_sequence() {
    let dir = wfl_testkit::temp_dir();
    // History on the embedded bus.
    let mut embedded = common::up(dir.path(), &[]);
    let ch = common::connect(&embedded.grpc).await;
    common::record_batch(&ch, &hires(300, 0)).await;
    assert!(embedded.terminate().success(), "{}", embedded.log_text());
    drop(ch);

    // The same data dir on NATS: the history is republished, then new events follow.
    let nats = NatsServer::start();
    let node = common::up(dir.path(), &["--nats-url", &nats.url()]);
    let ch = common::connect(&node.grpc).await;
    common::record_batch(&ch, &hires(5, 300)).await;
    let seqs = stream_sequences(&nats.url(), 305).await;
    assert_eq!(
        seqs,
        (1..=305).collect::<Vec<u64>>(),
        "WFL_LEDGER holds every sequence once, in order"
    );
    assert!(
        node.log_text()
            .contains("the committed stream lacks sequences 1..=300"),
        "the republish is logged: {}",
        node.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_empty_stream_is_filled_from_the_ledger() {
    // A node on NATS, then the same data dir against another (empty) nats-server: the cursor of
    // the first stream must not make the second skip the history.
    let dir = wfl_testkit::temp_dir();
    let first = NatsServer::start();
    let mut node = common::up(dir.path(), &["--nats-url", &first.url()]);
    let ch = common::connect(&node.grpc).await;
    common::record_batch(&ch, &hires(200, 0)).await;
    assert_eq!(
        stream_sequences(&first.url(), 200).await,
        (1..=200).collect::<Vec<u64>>()
    );
    assert!(node.terminate().success(), "{}", node.log_text());
    drop(ch);

    let second = NatsServer::start();
    let node = common::up(dir.path(), &["--nats-url", &second.url()]);
    let ch = common::connect(&node.grpc).await;
    common::record_batch(&ch, &hires(3, 200)).await;
    assert_eq!(
        stream_sequences(&second.url(), 203).await,
        (1..=203).collect::<Vec<u64>>()
    );
}
