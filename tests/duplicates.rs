//! Exactly-once answers, end to end through `wfl up`: `duplicate` is derived from the ledger's
//! store (the submission that committed an event id), so it is exact across ledger restarts and
//! whatever the broker's duplicate window remembers; the same event id with different content is
//! refused with `ALREADY_EXISTS` naming the id and the sequence it holds.

mod common;

use std::time::{Duration, Instant};

use common::{err, ok, record_batch, replay, Mode, Node};
use prost::Message;
use wfl_proto::pb;
use wfl_testkit::scenario;

fn hires(org: &str, n: usize, offset: usize) -> Vec<wfl_domain::Event> {
    (0..n)
        .map(|i| scenario::hire(org, &format!("w-{}", offset + i)))
        .collect()
}

/// First submissions are not duplicates; every resubmission after a SIGKILL restart of the node
/// (in process: the bus's duplicate window is gone with it, so only the store can tell) is.
async fn resubmissions_after_restart(mode: Mode) {
    let mut node = Node::start(mode);
    let ch = node.channel().await;
    let events = hires("acme", 300, 0);
    let first = record_batch(&ch, &events).await;
    assert_eq!((first.committed, first.duplicates), (300, 0), "{first:?}");
    let sequences: Vec<u64> = first.results.iter().map(|r| ok(r).sequence).collect();

    node.restart_hard();
    let ch = node.channel().await;
    for round in 0..2 {
        let again = record_batch(&ch, &events).await;
        assert_eq!(again.duplicates, 300, "round {round}: {again:?}");
        for (item, seq) in again.results.iter().zip(&sequences) {
            let o = ok(item);
            assert!(o.duplicate, "round {round}: {o:?}");
            assert_eq!(o.sequence, *seq, "the original sequence comes back");
        }
    }
    // A new event after all that is still fresh.
    let fresh = record_batch(&ch, &hires("acme", 1, 300)).await;
    assert!(!ok(&fresh.results[0]).duplicate);
    assert_eq!(ok(&fresh.results[0]).sequence, 301);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubmissions_after_a_restart_are_duplicates_in_process() {
    resubmissions_after_restart(Mode::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubmissions_after_a_restart_are_duplicates_over_nats() {
    resubmissions_after_restart(Mode::Nats).await;
}

/// An event committed from a message the broker's duplicate window does not know (published
/// straight to the inbox without `Nats-Msg-Id`, as a message older than the window would be):
/// the gateway's publish is fresh to the broker, yet the answer is `duplicate = true`, before and
/// after a ledger restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_committed_outside_the_broker_window_is_a_duplicate_over_nats() {
    let mut node = Node::start(Mode::Nats);
    let ch = node.channel().await;
    // Through the gateway first: the node has its streams once this commits.
    let mine = record_batch(&ch, &hires("acme", 1, 0)).await;
    assert!(!ok(&mine.results[0]).duplicate, "{mine:?}");
    let url = node.nats.as_ref().expect("nats").url();
    let client = async_nats::connect(url).await.expect("connect to nats");
    let js = async_nats::jetstream::new(client);
    let outside = scenario::hire("acme", "w-outside");
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(wfl_bus::HEADER_SUBMISSION, uuid::Uuid::new_v4().to_string());
    js.publish_with_headers(
        "wfl.inbox.acme",
        headers,
        common::wire(&outside).encode_to_vec().into(),
    )
    .await
    .expect("publish")
    .await
    .expect("inbox ack");
    // Wait (with a deadline) until the ledger committed it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while replay(&ch).await.len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the ledger did not commit the inbox message"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for restart in [false, true] {
        if restart {
            node.restart_hard();
        }
        let ch = node.channel().await;
        let r = record_batch(&ch, std::slice::from_ref(&outside)).await;
        let o = ok(&r.results[0]);
        assert_eq!(o.sequence, 2);
        assert!(o.duplicate, "restart {restart}: {o:?}");
    }
    let ch = node.channel().await;
    let fresh = record_batch(&ch, &hires("acme", 1, 1)).await;
    assert!(!ok(&fresh.results[0]).duplicate, "{fresh:?}");
    assert_eq!(ok(&fresh.results[0]).sequence, 3);
}

async fn same_id_other_content(mode: Mode) {
    let node = Node::start(mode);
    let ch = node.channel().await;
    let original = scenario::hire("acme", "w-1");
    let r = record_batch(&ch, std::slice::from_ref(&original)).await;
    assert_eq!(ok(&r.results[0]).sequence, 1);

    // Same id, different content: refused with the id and the sequence it holds, per item...
    let mut other = scenario::hire("acme", "w-2");
    other.event_id = original.event_id;
    let r = record_batch(&ch, std::slice::from_ref(&other)).await;
    let e = err(&r.results[0]);
    assert_eq!(e.code, tonic::Code::AlreadyExists as i32, "{e:?}");
    assert!(
        e.message.contains(&original.event_id.to_string()) && e.message.contains("sequence 1"),
        "{e:?}"
    );
    assert_eq!((r.rejected, r.duplicates), (1, 0));
    // ... and as the status of the unary call.
    let status = common::ingest(&ch)
        .record(pb::RecordRequest {
            event: Some(common::wire(&other)),
            ack: pb::AckLevel::Committed as i32,
            include_proof: false,
        })
        .await
        .expect_err("different content under a committed id");
    assert_eq!(status.code(), tonic::Code::AlreadyExists, "{status:?}");
    // The same content again is a plain duplicate.
    let r = record_batch(&ch, std::slice::from_ref(&original)).await;
    assert!(ok(&r.results[0]).duplicate);

    // Both in one batch: the first commits, the second is refused.
    let first = scenario::hire("acme", "w-3");
    let mut second = scenario::hire("acme", "w-4");
    second.event_id = first.event_id;
    let r = record_batch(&ch, &[first, second]).await;
    assert!(!ok(&r.results[0]).duplicate);
    assert_eq!(err(&r.results[1]).code, tonic::Code::AlreadyExists as i32);

    // A refused id keeps its refusal for its own content, and says ALREADY_EXISTS for other content.
    let rehire = scenario::hire("acme", "w-1");
    let r = record_batch(&ch, std::slice::from_ref(&rehire)).await;
    assert_eq!(
        err(&r.results[0]).code,
        tonic::Code::FailedPrecondition as i32
    );
    let r = record_batch(&ch, std::slice::from_ref(&rehire)).await;
    assert_eq!(
        err(&r.results[0]).code,
        tonic::Code::FailedPrecondition as i32
    );
    let mut fixed = scenario::hire("acme", "w-5");
    fixed.event_id = rehire.event_id;
    let r = record_batch(&ch, std::slice::from_ref(&fixed)).await;
    let e = err(&r.results[0]);
    assert_eq!(e.code, tonic::Code::AlreadyExists as i32, "{e:?}");
    assert!(e.message.contains("refused"), "{e:?}");

    // The ledger holds the first content only.
    let all = replay(&ch).await;
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].event.as_ref(), Some(&common::wire(&original)));
    common::assert_valid_chain(&all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_id_with_other_content_is_already_exists_in_process() {
    same_id_other_content(Mode::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_id_with_other_content_is_already_exists_over_nats() {
    same_id_other_content(Mode::Nats).await;
}
