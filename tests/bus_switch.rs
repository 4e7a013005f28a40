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
    // History on the embedded bus: more than two of the publisher's chunks of 1,000, so its
    // republish has two in flight.
    let mut embedded = common::up(dir.path(), &[]);
    let ch = common::connect(&embedded.grpc).await;
    common::record_batch(&ch, &hires(2500, 0)).await;
    assert!(embedded.terminate().success(), "{}", embedded.log_text());
    drop(ch);

    // The same data dir on NATS: the history is republished, then new events follow.
    let nats = NatsServer::start();
    let node = common::up(dir.path(), &["--nats-url", &nats.url()]);
    let ch = common::connect(&node.grpc).await;
    common::record_batch(&ch, &hires(5, 2500)).await;
    let seqs = stream_sequences(&nats.url(), 2505).await;
    assert_eq!(
        seqs,
        (1..=2505).collect::<Vec<u64>>(),
        "WFL_LEDGER holds every sequence once, in order"
    );
    assert!(
        node.log_text()
            .contains("the committed stream lacks sequences 1..=2500"),
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

/// Polls `/healthz` of `node` until its status is `code` and its body contains `needle`.
fn wait_healthz(node: &common::Proc, code: u16, needle: &str) -> String {
    let http = node.http.as_deref().expect("an http address");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (got, body) = common::http_get_status(http, "/healthz");
        if got == code && body.contains(needle) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{http}/healthz stayed {got} {body:?}; wanted {code} containing {needle:?}\n{}",
            node.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hole_in_the_middle_of_the_stream_is_named_and_republish_stream_fills_it() {
    let dir = wfl_testkit::temp_dir();
    let nats = NatsServer::start();
    let mut node = common::up(dir.path(), &["--nats-url", &nats.url()]);
    let ch = common::connect(&node.grpc).await;
    common::record_batch(&ch, &hires(20, 0)).await;
    assert_eq!(
        stream_sequences(&nats.url(), 20).await,
        (1..=20).collect::<Vec<u64>>()
    );
    assert!(node.terminate().success(), "{}", node.log_text());
    drop(ch);

    // Delete ledger sequence 10 (stream sequence 10) through the JetStream API, as an operator
    // or a retention mistake would: `$JS.API.STREAM.MSG.DELETE.WFL_LEDGER`.
    let client = async_nats::connect(nats.url()).await.expect("nats");
    let reply = client
        .request(
            "$JS.API.STREAM.MSG.DELETE.WFL_LEDGER",
            r#"{"seq":10,"no_erase":true}"#.into(),
        )
        .await
        .expect("delete request");
    let reply = String::from_utf8_lossy(&reply.payload).into_owned();
    assert!(reply.contains("\"success\":true"), "{reply}");

    // A restart names the hole: one ERROR, the readiness probe, the metric.
    let mut node = common::up(dir.path(), &["--nats-url", &nats.url()]);
    let body = wait_healthz(
        &node,
        503,
        "committed_stream: WFL_LEDGER lacks 1 committed sequence(s)",
    );
    assert!(body.contains("(10..=10)"), "{body}");
    assert!(body.contains("--republish-stream"), "{body}");
    let metrics = common::http_get(node.http.as_deref().unwrap(), "/metrics");
    assert!(
        metrics.contains("wfl_publisher_stream_missing 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("wfl_ready_probe{probe=\"committed_stream\"} 0\n"),
        "{metrics}"
    );
    let log = node.log_text();
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ERROR") && l.contains("WFL_LEDGER lacks"))
        .collect();
    assert_eq!(errors.len(), 1, "one ERROR line naming the hole:\n{log}");
    assert!(errors[0].contains("10..=10"), "{}", errors[0]);
    // Ingest still works: the hole is in the output stream, not in the ledger.
    let ch = common::connect(&node.grpc).await;
    assert_eq!(common::record_batch(&ch, &hires(1, 20)).await.committed, 1);
    assert!(node.terminate().success(), "{}", node.log_text());
    drop(ch);

    // The backfill: the stream is purged and every sequence republished, in order.
    let node = common::up(
        dir.path(),
        &["--nats-url", &nats.url(), "--republish-stream"],
    );
    wait_healthz(&node, 200, "ok");
    assert_eq!(
        stream_sequences(&nats.url(), 21).await,
        (1..=21).collect::<Vec<u64>>(),
        "{}",
        node.log_text()
    );
    assert!(
        node.log_text()
            .contains("--republish-stream: purged WFL_LEDGER"),
        "{}",
        node.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resuming_from_its_cursor_does_not_say_the_stream_lacks_sequences() {
    let dir = wfl_testkit::temp_dir();
    let nats = NatsServer::start();
    let mut node = common::up(dir.path(), &["--nats-url", &nats.url()]);
    let ch = common::connect(&node.grpc).await;
    common::record_batch(&ch, &hires(5, 0)).await;
    stream_sequences(&nats.url(), 5).await;
    assert!(node.terminate().success(), "{}", node.log_text());
    drop(ch);
    let node = common::up(dir.path(), &["--nats-url", &nats.url()]);
    wait_healthz(&node, 200, "ok");
    let log = node.log_text();
    assert!(!log.contains("lacks"), "{log}");
}

/// A ledger whose data dir did not write `WFL_LEDGER` (a data dir replaced or restored from an
/// older backup, a second ledger on the same NATS) publishes nothing to it: its events would be
/// skipped as already there, or numbered among the other history's. It says so (one ERROR, the
/// readiness probe), whether the stream is ahead of it or merely different, and
/// `--republish-stream` makes the stream its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_written_by_another_ledger_is_named_and_not_published_to() {
    let nats = NatsServer::start();
    let first = wfl_testkit::temp_dir();
    let mut node = common::up(first.path(), &["--nats-url", &nats.url()]);
    let ch = common::connect(&node.grpc).await;
    common::record_batch(&ch, &hires(20, 0)).await;
    assert_eq!(stream_sequences(&nats.url(), 20).await.len(), 20);
    assert!(node.terminate().success(), "{}", node.log_text());
    drop(ch);

    // A new data dir on the same NATS: the stream is ahead of it.
    let second = wfl_testkit::temp_dir();
    let mut node = common::up(second.path(), &["--nats-url", &nats.url()]);
    let body = wait_healthz(
        &node,
        503,
        "WFL_LEDGER's last message is sequence 20, beyond this ledger's head 0",
    );
    assert!(body.contains("--republish-stream"), "{body}");
    let ch = common::connect(&node.grpc).await;
    assert_eq!(
        common::record_batch(&ch, &hires(25, 100)).await.committed,
        25,
        "ingest goes on"
    );
    let log = node.log_text();
    let errors = log
        .lines()
        .filter(|l| l.contains("ERROR") && l.contains("another ledger's history"))
        .count();
    assert_eq!(errors, 1, "one ERROR line:\n{log}");
    let metrics = common::http_get(node.http.as_deref().unwrap(), "/metrics");
    assert!(
        metrics.contains("wfl_publisher_cursor_sequence 0\n"),
        "{metrics}"
    );
    assert!(node.terminate().success(), "{}", node.log_text());
    drop(ch);

    // Restarted past the stream's end, the hashes tell the histories apart.
    let node = common::up(second.path(), &["--nats-url", &nats.url()]);
    let body = wait_healthz(
        &node,
        503,
        "WFL_LEDGER's message for sequence 20 carries hash",
    );
    assert!(body.contains("--republish-stream"), "{body}");
    assert_eq!(
        stream_sequences(&nats.url(), 20).await.len(),
        20,
        "nothing of this ledger was published"
    );
    drop(node);

    // The operator chooses this data dir: the stream becomes its history.
    let node = common::up(
        second.path(),
        &["--nats-url", &nats.url(), "--republish-stream"],
    );
    wait_healthz(&node, 200, "ok");
    assert_eq!(
        stream_sequences(&nats.url(), 25).await,
        (1..=25).collect::<Vec<u64>>(),
        "{}",
        node.log_text()
    );
}
