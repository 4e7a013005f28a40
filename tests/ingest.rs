//! End to end through `wfl up` over real gRPC on loopback, once on the in-process bus and once on
//! a real nats-server: exactly-once commits, per-item validation, lifecycle conflicts, replay with
//! a valid hash chain, and a SIGKILL restart of the node.

mod common;

use std::collections::HashSet;

use common::{assert_valid_chain, err, ok, record_batch, replay, Mode, Node};
use tonic_types::StatusExt;
use wfl_proto::pb;
use wfl_testkit::scenario;

fn hires(org: &str, n: usize, offset: usize) -> Vec<wfl_domain::Event> {
    (0..n)
        .map(|i| scenario::hire(org, &format!("w-{}", offset + i)))
        .collect()
}

async fn ten_thousand_exactly_once(mode: Mode) {
    let node = Node::start(mode);
    let ch = node.channel().await;
    let mut sequences = Vec::new();
    let batches: Vec<Vec<wfl_domain::Event>> =
        (0..10).map(|b| hires("acme", 1000, b * 1000)).collect();
    for batch in &batches {
        let r = record_batch(&ch, batch).await;
        assert_eq!(r.committed, 1000, "every event of the batch commits");
        assert_eq!(r.rejected, 0);
        for (item, event) in r.results.iter().zip(batch) {
            let o = ok(item);
            assert_eq!(o.event_id, event.event_id.to_string());
            assert!(!o.duplicate);
            assert_eq!(o.hash.len(), 32);
            sequences.push(o.sequence);
        }
    }
    let unique: HashSet<u64> = sequences.iter().copied().collect();
    assert_eq!(unique.len(), 10_000, "each event gets its own sequence");
    assert_eq!(
        sequences,
        (1..=10_000).collect::<Vec<u64>>(),
        "sequences follow submission order"
    );

    // The same batch again: nothing new, the original sequences back.
    let again = record_batch(&ch, &batches[3]).await;
    assert_eq!(again.duplicates, 1000);
    for (i, item) in again.results.iter().enumerate() {
        let o = ok(item);
        assert!(o.duplicate, "resubmission is flagged as a duplicate");
        assert_eq!(
            o.sequence,
            3001 + i as u64,
            "resubmission returns the original sequence"
        );
    }

    let head = common::ledger(&ch)
        .head(pb::HeadRequest {})
        .await
        .expect("Head")
        .into_inner();
    assert_eq!(head.sequence, 10_000);
    let all = replay(&ch).await;
    assert_eq!(all.len(), 10_000);
    assert_valid_chain(&all);
    assert_eq!(head.hash, all[9_999].hash, "Head returns the last hash");
    let ids: HashSet<&str> = all
        .iter()
        .map(|c| c.event.as_ref().map_or("", |e| e.event_id.as_str()))
        .collect();
    assert_eq!(ids.len(), 10_000, "no event id appears twice in the ledger");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_events_commit_exactly_once_in_process() {
    ten_thousand_exactly_once(Mode::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_events_commit_exactly_once_over_nats() {
    ten_thousand_exactly_once(Mode::Nats).await;
}

async fn invalid_events_are_refused_per_item(mode: Mode) {
    let node = Node::start(mode);
    let ch = node.channel().await;
    let good = scenario::hire("acme", "w-good");
    let mut bad_worker = scenario::hire("acme", "John Smith");
    bad_worker.jurisdiction = "china".into();
    let mut wire_bad_date = common::wire(&scenario::hire("acme", "w-date"));
    wire_bad_date.effective_date = "2026-02-30".into();
    let mut wire_no_payload = common::wire(&scenario::hire("acme", "w-none"));
    wire_no_payload.payload = None;
    let events = vec![
        common::wire(&good),
        common::wire(&bad_worker),
        wire_bad_date,
        wire_no_payload,
    ];
    let r = common::ingest(&ch)
        .record_batch(pb::RecordBatchRequest {
            events,
            ack: 0,
            include_proof: false,
        })
        .await
        .expect("a batch with bad items still succeeds as a call")
        .into_inner();
    assert_eq!((r.committed, r.rejected), (1, 3));
    assert_eq!(ok(&r.results[0]).sequence, 1);
    let fields = |i: usize| -> Vec<String> {
        let e = err(&r.results[i]);
        assert_eq!(e.code, tonic::Code::InvalidArgument as i32);
        e.field_violations.iter().map(|v| v.field.clone()).collect()
    };
    let f1 = fields(1);
    assert!(
        f1.contains(&"payload.worker_hired.worker_ref".to_owned()),
        "{f1:?}"
    );
    assert!(f1.contains(&"jurisdiction".to_owned()), "{f1:?}");
    assert_eq!(fields(2), vec!["effective_date".to_owned()]);
    assert_eq!(fields(3), vec!["payload".to_owned()]);

    // Unary Record: INVALID_ARGUMENT with google.rpc.BadRequest naming the field.
    let mut bad = scenario::hire("acme", "w-x");
    bad.org_id = wfl_domain::OrgId::from("acme.eu");
    let status = common::ingest(&ch)
        .record(pb::RecordRequest {
            event: Some(common::wire(&bad)),
            ack: 0,
            include_proof: false,
        })
        .await
        .expect_err("an invalid event is refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    let details = status
        .get_details_bad_request()
        .expect("BadRequest details");
    assert_eq!(details.field_violations[0].field, "org_id");

    // Too many events in one batch: the call itself is refused.
    let too_many = vec![common::wire(&good); wfl_domain::MAX_BATCH + 1];
    let status = common::ingest(&ch)
        .record_batch(pb::RecordBatchRequest {
            events: too_many,
            ack: 0,
            include_proof: false,
        })
        .await
        .expect_err("oversized batch refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        status
            .get_details_bad_request()
            .expect("details")
            .field_violations[0]
            .field,
        "events"
    );

    let all = replay(&ch).await;
    assert_eq!(all.len(), 1, "refused events never enter the ledger");
    assert_eq!(
        all[0].event.as_ref().map(|e| e.event_id.clone()),
        Some(good.event_id.to_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_events_are_refused_per_item_in_process() {
    invalid_events_are_refused_per_item(Mode::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_events_are_refused_per_item_over_nats() {
    invalid_events_are_refused_per_item(Mode::Nats).await;
}

async fn lifecycle_conflicts(mode: Mode) {
    let node = Node::start(mode);
    let ch = node.channel().await;
    let mut client = common::ingest(&ch);
    let record = |e: &wfl_domain::Event| pb::RecordRequest {
        event: Some(common::wire(e)),
        ack: 0,
        include_proof: false,
    };

    // Separating a worker the ledger has never seen.
    let s = client
        .record(record(&scenario::resign("acme", "ghost")))
        .await
        .expect_err("no such worker");
    assert_eq!(s.code(), tonic::Code::FailedPrecondition, "{s:?}");

    // Baseline load, then a separation, then a second separation.
    client
        .record(record(&scenario::baseline("acme", "w-1")))
        .await
        .expect("baseline loads");
    let first = client
        .record(record(&scenario::resign("acme", "w-1")))
        .await
        .expect("separation")
        .into_inner();
    assert_eq!(first.sequence, 2);
    let s = client
        .record(record(&scenario::resign("acme", "w-1")))
        .await
        .expect_err("double separation");
    assert_eq!(s.code(), tonic::Code::FailedPrecondition);
    assert!(s.message().contains("already separated"), "{}", s.message());

    // Hiring someone already employed.
    client
        .record(record(&scenario::hire("acme", "w-2")))
        .await
        .expect("hire");
    let s = client
        .record(record(&scenario::hire("acme", "w-2")))
        .await
        .expect_err("already employed");
    assert_eq!(s.code(), tonic::Code::FailedPrecondition);

    // The same worker ref in another org is another worker.
    client
        .record(record(&scenario::hire("globex", "w-2")))
        .await
        .expect("other org");

    // Expected version: w-2 has one event.
    let mut stale = scenario::resign("acme", "w-2");
    stale.expected_version = Some(0);
    let s = client
        .record(record(&stale))
        .await
        .expect_err("stale version");
    assert_eq!(s.code(), tonic::Code::Aborted);
    let mut current = scenario::resign("acme", "w-2");
    current.expected_version = Some(1);
    client
        .record(record(&current))
        .await
        .expect("matching version commits");

    // The same event id twice in one batch: one commit, the second answered as its duplicate.
    let twice = scenario::hire("acme", "w-twice");
    let r = record_batch(&ch, &[twice.clone(), twice]).await;
    let (a, b) = (ok(&r.results[0]), ok(&r.results[1]));
    assert_eq!(a.sequence, b.sequence);
    assert!(!a.duplicate && b.duplicate, "{r:?}");

    // A refused event id stays refused: resubmitting it returns the original refusal.
    let again = client
        .record(record(&stale))
        .await
        .expect_err("still refused");
    assert_eq!(again.code(), tonic::Code::Aborted);

    let all = replay(&ch).await;
    assert_eq!(all.len(), 6, "only the accepted events are in the ledger");
    assert_valid_chain(&all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_conflicts_in_process() {
    lifecycle_conflicts(Mode::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_conflicts_over_nats() {
    lifecycle_conflicts(Mode::Nats).await;
}

async fn restart_keeps_the_chain(mode: Mode) {
    let mut node = Node::start(mode);
    let ch = node.channel().await;
    let first = hires("acme", 500, 0);
    record_batch(&ch, &first).await;
    let before = replay(&ch).await;
    node.restart_hard();
    let ch = node.channel().await;
    // State survived: separating a worker hired before the restart works, hiring them again does not.
    let r = record_batch(
        &ch,
        &[
            scenario::resign("acme", "w-7"),
            scenario::hire("acme", "w-8"),
        ],
    )
    .await;
    assert_eq!(ok(&r.results[0]).sequence, 501);
    assert_eq!(
        err(&r.results[1]).code,
        tonic::Code::FailedPrecondition as i32
    );
    // Exactly once across the restart.
    let again = record_batch(&ch, &first[..10]).await;
    assert_eq!(again.duplicates, 10);
    let after = replay(&ch).await;
    assert_eq!(after.len(), 501);
    assert_eq!(
        &after[..500],
        &before[..],
        "history is unchanged by the restart"
    );
    assert_valid_chain(&after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_state_and_chain_in_process() {
    restart_keeps_the_chain(Mode::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_state_and_chain_over_nats() {
    restart_keeps_the_chain(Mode::Nats).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection_are_served() {
    let node = Node::start(Mode::Memory);
    let ch = node.channel().await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(ch.clone());
    // Readiness is mirrored into gRPC health; the whole node (`""`) is ready once the projector
    // follows the ledger, moments after start.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    for service in ["", "wfl.v1.Ingest", "wfl.v1.Ledger", "wfl.v1.Views"] {
        loop {
            let r = health
                .check(tonic_health::pb::HealthCheckRequest {
                    service: service.into(),
                })
                .await
                .unwrap_or_else(|s| panic!("health of {service:?}: {s:?}"))
                .into_inner();
            if r.status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{service:?} not SERVING within 30 s: {r:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    use tonic_reflection::pb::v1::{
        server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        ServerReflectionRequest,
    };
    let mut reflection = ServerReflectionClient::new(ch);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = reflection
        .server_reflection_info(futures::stream::iter(vec![req]))
        .await
        .expect("reflection")
        .into_inner();
    let resp = stream
        .message()
        .await
        .expect("reflection reply")
        .expect("one reply");
    let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
        panic!("unexpected reflection reply")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in ["wfl.v1.Ingest", "wfl.v1.Ledger", "grpc.health.v1.Health"] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} not listed in {names:?}"
        );
    }
}

async fn accepted_ack_level(mode: Mode) {
    let node = Node::start(mode);
    let ch = node.channel().await;
    let event = scenario::hire("acme", "w-accepted");
    let r = common::ingest(&ch)
        .record(pb::RecordRequest {
            event: Some(common::wire(&event)),
            ack: pb::AckLevel::Accepted as i32,
            include_proof: false,
        })
        .await
        .expect("ACCEPTED record")
        .into_inner();
    match mode {
        // Durable in JetStream: answered before the ledger commits, without a sequence.
        Mode::Nats => assert_eq!((r.ack, r.sequence), (pb::AckLevel::Accepted as i32, 0)),
        // No durable inbox in-process: served as COMMITTED.
        Mode::Memory => assert_eq!((r.ack, r.sequence), (pb::AckLevel::Committed as i32, 1)),
    }
    // It is committed all the same, exactly once.
    let mut s = common::subscribe(&ch, 1).await;
    let c = common::next_event(&mut s).await.expect("open").expect("ok");
    assert_eq!(
        c.event.map(|e| e.event_id),
        Some(event.event_id.to_string())
    );
    let again = common::ingest(&ch)
        .record(pb::RecordRequest {
            event: Some(common::wire(&event)),
            ack: pb::AckLevel::Committed as i32,
            include_proof: false,
        })
        .await
        .expect("COMMITTED resubmission")
        .into_inner();
    assert_eq!((again.sequence, again.duplicate), (1, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_ack_level_over_nats() {
    accepted_ack_level(Mode::Nats).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_ack_level_in_process() {
    accepted_ack_level(Mode::Memory).await;
}

/// Polls `proc`'s log until it holds `needle` (panics with the log after 30 s).
async fn log_shows(proc: &common::Proc, needle: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let text = proc.log_text();
        if let Some(line) = text.lines().find(|l| l.contains(needle)) {
            return line.to_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the log never showed {needle:?}:\n{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Records 300 hires and then 50 separations on a node, for the restart tests below.
async fn hire_300_separate_50(node: &common::Proc) {
    let ch = common::connect(&node.grpc).await;
    record_batch(&ch, &hires("acme", 300, 0)).await;
    let resigns: Vec<_> = (0..50)
        .map(|i| scenario::resign("acme", &format!("w-{i}")))
        .collect();
    let r = record_batch(&ch, &resigns).await;
    assert!(r
        .results
        .iter()
        .all(|i| matches!(i.outcome, Some(pb::item_result::Outcome::Ok(_)))));
}

/// A field `name=value` of a log line.
fn log_field<'a>(line: &'a str, name: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name} in {line}"))
}

/// After `hire_300_separate_50`, a node decides as a fold of that whole history would:
/// employment and versions from before and after the separations both hold.
async fn decides_like_the_whole_history(node: &common::Proc) {
    let ch = common::connect(&node.grpc).await;
    let mut stale = scenario::resign("acme", "w-150");
    stale.expected_version = Some(0);
    let mut current = scenario::resign("acme", "w-151");
    current.expected_version = Some(1);
    let r = record_batch(
        &ch,
        &[
            // Separated: a second separation is refused.
            scenario::resign("acme", "w-10"),
            // Employed: a separation commits, a hire is refused.
            scenario::resign("acme", "w-100"),
            scenario::hire("acme", "w-200"),
            // Separated: may be hired again.
            scenario::hire("acme", "w-5"),
            // Versions: w-150 and w-151 have one event each.
            stale,
            current,
        ],
    )
    .await;
    let code = |i: usize| match &r.results[i].outcome {
        Some(pb::item_result::Outcome::Ok(_)) => tonic::Code::Ok as i32,
        Some(pb::item_result::Outcome::Error(e)) => e.code,
        None => -1,
    };
    let failed = tonic::Code::FailedPrecondition as i32;
    let ok_code = tonic::Code::Ok as i32;
    assert_eq!(
        (0..6).map(code).collect::<Vec<_>>(),
        vec![
            failed,
            ok_code,
            failed,
            ok_code,
            tonic::Code::Aborted as i32,
            ok_code
        ],
        "{r:?}"
    );
    assert_valid_chain(&replay(&ch).await);
}

/// The writer's state is stored keyed with every batch, so a restart (after a SIGKILL) reads it
/// back, folds no event at all, and decides exactly as a fold of the whole history would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_reads_the_keyed_state_folds_nothing_and_decides_the_same() {
    let dir = wfl_testkit::temp_dir();
    let mut node = common::up(dir.path(), &[]);
    hire_300_separate_50(&node).await;
    node.kill();
    let node = common::up(dir.path(), &[]);
    let rebuilt = log_shows(&node, "ledger state rebuilt").await;
    assert_eq!(log_field(&rebuilt, "head="), "350", "{rebuilt}");
    assert_eq!(log_field(&rebuilt, "source="), "keyed", "{rebuilt}");
    assert_eq!(log_field(&rebuilt, "through="), "350", "{rebuilt}");
    assert_eq!(log_field(&rebuilt, "folded="), "0", "{rebuilt}");
    // 300 workers.
    assert_eq!(log_field(&rebuilt, "entries="), "300", "{rebuilt}");
    decides_like_the_whole_history(&node).await;
}

/// A stored state value with a flipped bit is not trusted: the restart says so with a WARN,
/// rebuilds the state from sequence 1, decides exactly the same, and rewrites the state, so the
/// restart after it folds nothing again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_state_value_is_rebuilt_from_the_history_with_a_warning() {
    let dir = wfl_testkit::temp_dir();
    let mut node = common::up(dir.path(), &[]);
    hire_300_separate_50(&node).await;
    node.kill();
    {
        use wfl_store::Log;
        let store = wfl_store::SledLog::open(&dir.path().join("data").join("ledger")).unwrap();
        let (key, mut value) = store
            .meta_scan("ledger-keyed/w/", None, 1)
            .unwrap()
            .pop()
            .expect("a stored worker");
        value[0] ^= 0x02;
        store.meta_write(&[(key, Some(value))]).unwrap();
    }
    let mut node = common::up(dir.path(), &[]);
    let warned = log_shows(&node, "the stored ledger state is not used").await;
    assert!(
        warned.contains("WARN") && warned.contains("does not verify"),
        "{warned}"
    );
    let rebuilt = log_shows(&node, "ledger state rebuilt").await;
    assert_eq!(log_field(&rebuilt, "source="), "history", "{rebuilt}");
    assert_eq!(log_field(&rebuilt, "folded="), "350", "{rebuilt}");
    decides_like_the_whole_history(&node).await;
    node.kill();
    let node = common::up(dir.path(), &[]);
    let rebuilt = log_shows(&node, "ledger state rebuilt").await;
    assert_eq!(log_field(&rebuilt, "source="), "keyed", "{rebuilt}");
    assert_eq!(log_field(&rebuilt, "folded="), "0", "{rebuilt}");
    assert_eq!(log_field(&rebuilt, "head="), "353", "{rebuilt}");
}

/// A store written by a build that kept the chunked state snapshot (marker `ledger-state`) is
/// migrated at its first start: the snapshot is read, only the events after it are folded, the
/// state is written keyed and the chunks are deleted; decisions are the same, and the next
/// restart reads the keyed state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_state_snapshot_of_an_earlier_build_is_migrated_to_the_keyed_state() {
    use sha2::Digest;
    use wfl_store::Log;
    let dir = wfl_testkit::temp_dir();
    let mut node = common::up(dir.path(), &[]);
    hire_300_separate_50(&node).await;
    node.kill();
    let path = dir.path().join("data").join("ledger");
    {
        // What an earlier build wrote after the 300 hires (layout in the ledger's `snapshot`
        // module doc), and no keyed state.
        let store = wfl_store::SledLog::open(&path).unwrap();
        let keyed: Vec<_> = store
            .meta_scan("ledger-keyed/", None, 10_000)
            .unwrap()
            .into_iter()
            .map(|(k, _)| (k, None))
            .collect();
        store.meta_write(&keyed).unwrap();
        let mut chunk = Vec::new();
        for i in 0..300 {
            let worker = format!("w-{i}");
            chunk.push(1u8);
            for s in ["acme", worker.as_str()] {
                chunk.extend_from_slice(&u16::try_from(s.len()).unwrap().to_be_bytes());
                chunk.extend_from_slice(s.as_bytes());
            }
            chunk.push(1); // employed, no last lifecycle event
            chunk.extend_from_slice(&1u64.to_be_bytes());
        }
        let mut marker = Vec::new();
        marker.extend_from_slice(&1u64.to_be_bytes());
        marker.extend_from_slice(&300u64.to_be_bytes());
        marker.extend_from_slice(&1u32.to_be_bytes());
        marker.extend_from_slice(&sha2::Sha256::digest(&chunk));
        store
            .meta_write(&[
                (
                    "ledger-state/0000000000000001/00000000".to_owned(),
                    Some(chunk),
                ),
                ("ledger-state".to_owned(), Some(marker)),
            ])
            .unwrap();
    }
    let mut node = common::up(dir.path(), &[]);
    let rebuilt = log_shows(&node, "ledger state rebuilt").await;
    assert_eq!(log_field(&rebuilt, "source="), "snapshot", "{rebuilt}");
    assert_eq!(log_field(&rebuilt, "through="), "300", "{rebuilt}");
    assert_eq!(log_field(&rebuilt, "folded="), "50", "{rebuilt}");
    decides_like_the_whole_history(&node).await;
    node.kill();
    {
        let store = wfl_store::SledLog::open(&path).unwrap();
        assert_eq!(store.meta_get("ledger-state").unwrap(), None);
        assert!(store
            .meta_scan("ledger-state/", None, 1)
            .unwrap()
            .is_empty());
    }
    let node = common::up(dir.path(), &[]);
    let rebuilt = log_shows(&node, "ledger state rebuilt").await;
    assert_eq!(log_field(&rebuilt, "source="), "keyed", "{rebuilt}");
    assert_eq!(log_field(&rebuilt, "folded="), "0", "{rebuilt}");
}

/// Outcomes reach every gateway, however it came to wait: a second gateway recording alongside,
/// a gateway killed (SIGKILL) in the middle of a 10,000-event batch and restarted, and the
/// restarted one asking again for the whole batch (most of it committed by its predecessor's
/// submission: answered from the store, `duplicate` exact).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_restarted_mid_batch_and_a_second_gateway_get_every_outcome() {
    use common::{connect, ingest, Proc};
    use std::collections::HashMap;
    use std::time::{Duration, Instant};

    let dir = wfl_testkit::temp_dir();
    let logs = dir.path().join("logs");
    let nats = wfl_testkit::NatsServer::start();
    let ledger = Proc::start(
        "wfl-ledger",
        &[
            "--data-dir".to_owned(),
            dir.path().join("ledger").display().to_string(),
            "--grpc-addr".to_owned(),
            "127.0.0.1:0".to_owned(),
            "--nats-url".to_owned(),
            nats.url(),
        ],
        &logs,
    );
    let gateway_args = [
        "--grpc-addr".to_owned(),
        "127.0.0.1:0".to_owned(),
        "--nats-url".to_owned(),
        nats.url(),
    ];
    let mut a = Proc::start("wfl-gateway", &gateway_args, &logs);
    let b = Proc::start("wfl-gateway", &gateway_args, &logs);
    let lg = connect(&ledger.grpc).await;
    let head = || {
        let lg = lg.clone();
        async move {
            common::ledger(&lg)
                .head(pb::HeadRequest {})
                .await
                .expect("Head")
                .into_inner()
                .sequence
        }
    };

    let first = hires("acme", 10_000, 0);
    let second = hires("globex", 2_000, 0);
    let on_a = {
        let ch = connect(&a.grpc).await;
        let events: Vec<pb::Event> = first.iter().map(common::wire).collect();
        tokio::spawn(async move {
            ingest(&ch)
                .record_batch(pb::RecordBatchRequest {
                    events,
                    ack: pb::AckLevel::Committed as i32,
                    include_proof: false,
                })
                .await
        })
    };
    // Gateway A dies once the ledger has committed part of its batch, just as B starts one.
    let deadline = Instant::now() + Duration::from_secs(60);
    let at_kill = loop {
        let h = head().await;
        if h > 0 {
            break h;
        }
        assert!(Instant::now() < deadline, "nothing committed within 60 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let b_ch = connect(&b.grpc).await;
    let on_b = {
        let (ch, events) = (b_ch.clone(), second.clone());
        tokio::spawn(async move { record_batch(&ch, &events).await })
    };
    a.kill();
    assert!(
        at_kill < 10_000,
        "gateway A was killed mid-batch (head {at_kill})"
    );
    let lost = on_a.await.expect("task");
    assert!(lost.is_err(), "the killed gateway's call fails: {lost:?}");

    // B, recording alongside, heard every one of its outcomes.
    let r_b = tokio::time::timeout(Duration::from_secs(60), on_b)
        .await
        .expect("B answers within 60 s")
        .expect("task");
    assert_eq!(r_b.committed, 2_000, "{:?}", r_b.results.first());
    assert_eq!(r_b.duplicates, 0);

    // A restarted: the same batch again gets every outcome; the events its predecessor had
    // submitted are duplicates (committed by that submission), each with its ledger sequence.
    a = Proc::start("wfl-gateway", &gateway_args, &logs);
    let a_ch = connect(&a.grpc).await;
    let r_a = tokio::time::timeout(Duration::from_secs(60), record_batch(&a_ch, &first))
        .await
        .expect("the restarted gateway answers within 60 s");
    assert_eq!(r_a.committed, 10_000, "{:?}", r_a.results.first());
    assert!(
        r_a.duplicates >= 1,
        "events committed before the kill are another submission's"
    );

    let all = replay(&lg).await;
    assert_valid_chain(&all);
    assert_eq!(all.len(), 12_000, "every event exactly once");
    let by_id: HashMap<&str, (u64, &[u8])> = all
        .iter()
        .filter_map(|c| {
            c.event
                .as_ref()
                .map(|e| (e.event_id.as_str(), (c.sequence, c.hash.as_slice())))
        })
        .collect();
    assert_eq!(by_id.len(), 12_000, "no event id twice");
    for item in r_a.results.iter().chain(&r_b.results) {
        let o = ok(item);
        assert_eq!(
            by_id.get(o.event_id.as_str()),
            Some(&(o.sequence, o.hash.as_slice())),
            "the answered sequence and hash are the ledger's"
        );
    }

    // The second gateway asked for A's batch: every outcome, all duplicates, same sequences.
    let again = record_batch(&b_ch, &first).await;
    assert_eq!(again.duplicates, 10_000);
    for (x, y) in again.results.iter().zip(&r_a.results) {
        assert_eq!(ok(x).sequence, ok(y).sequence);
    }
}

async fn proofs_in_replies(mode: Mode) {
    use prost::Message;
    use serde_json::json;

    let node = Node::start(mode);
    let ch = node.channel().await;
    let mut client = common::ingest(&ch);
    let mut answered: Vec<pb::RecordResponse> = Vec::new();
    let mut recorded = 0;
    let mut batches = Vec::new();
    // Uneven batches, so the proofs are taken against many tree sizes.
    for n in [1, 2, 3, 8, 1, 16, 5] {
        let events = hires("proof-org", n, recorded);
        batches.push(events.clone());
        recorded += n;
        let r = client
            .record_batch(pb::RecordBatchRequest {
                events: events.iter().map(common::wire).collect(),
                ack: pb::AckLevel::Committed as i32,
                include_proof: true,
            })
            .await
            .expect("RecordBatch")
            .into_inner();
        assert_eq!(r.committed as usize, n);
        answered.extend(r.results.iter().map(|i| ok(i).clone()));
    }
    let single = scenario::hire("proof-org", "w-single");
    let r = client
        .record(pb::RecordRequest {
            event: Some(common::wire(&single)),
            ack: pb::AckLevel::Committed as i32,
            include_proof: true,
        })
        .await
        .expect("Record")
        .into_inner();
    answered.push(r);
    // A resubmission (a duplicate) is proven too, at its original sequence.
    let again = &batches[1];
    let r = client
        .record_batch(pb::RecordBatchRequest {
            events: again.iter().map(common::wire).collect(),
            ack: pb::AckLevel::Committed as i32,
            include_proof: true,
        })
        .await
        .expect("RecordBatch")
        .into_inner();
    assert_eq!(r.duplicates, 2);
    answered.extend(r.results.iter().map(|i| ok(i).clone()));
    // Without the flag, no proof.
    let plain = record_batch(&ch, &hires("proof-org", 1, 1000)).await;
    assert!(ok(&plain.results[0]).inclusion_proof.is_none());

    let events = replay(&ch).await;
    assert_valid_chain(&events);
    let mut inclusion = Vec::new();
    for r in &answered {
        let p = r
            .inclusion_proof
            .as_ref()
            .unwrap_or_else(|| panic!("no proof for sequence {}", r.sequence));
        assert_eq!(p.sequence, r.sequence);
        assert!(p.tree_size >= r.sequence, "{p:?}");
        assert!(p.tree_size <= events.len() as u64);
        inclusion.push(json!({
            "sequence": p.sequence, "tree_size": p.tree_size,
            "leaf_hash": hex::encode(&p.leaf_hash), "root_hash": hex::encode(&p.root_hash),
            "proof": p.proof.iter().map(hex::encode).collect::<Vec<_>>(),
        }));
    }
    let stored = |c: &pb::CommittedEvent| {
        let mut s = c.clone();
        s.prev_hash.clear();
        s.hash.clear();
        s.encode_to_vec()
    };
    let input = json!({
        "leaves": events.iter().map(|c| hex::encode(stored(c))).collect::<Vec<_>>(),
        "chain": events.iter().map(|c| hex::encode(&c.hash)).collect::<Vec<_>>(),
        "inclusion": inclusion,
        "consistency": [],
        "checkpoints": [],
    });
    let dir = wfl_testkit::temp_dir();
    let file = dir.path().join("proofs.json");
    std::fs::write(&file, serde_json::to_vec(&input).expect("json")).expect("write");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("audit/verify_proofs.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(&file)
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.starts_with("ok "),
        "independent verifier: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{} reply proofs verified: {stdout}", answered.len());

    // A proof needs a sequence: with ACCEPTED the flag is the caller's mistake.
    let e = client
        .record(pb::RecordRequest {
            event: Some(common::wire(&scenario::hire("proof-org", "w-accepted"))),
            ack: pb::AckLevel::Accepted as i32,
            include_proof: true,
        })
        .await
        .expect_err("include_proof with ACCEPTED is refused");
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    let field = e
        .get_details_bad_request()
        .and_then(|b| b.field_violations.first().map(|v| v.field.clone()));
    assert_eq!(field.as_deref(), Some("include_proof"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_carry_inclusion_proofs_an_independent_verifier_accepts_in_process() {
    proofs_in_replies(Mode::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_carry_inclusion_proofs_an_independent_verifier_accepts_over_nats() {
    proofs_in_replies(Mode::Nats).await;
}
