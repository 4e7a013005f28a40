//! `Ledger.ReadBatches` against `Ledger.Read` on a real `wfl up` over loopback gRPC: for ranges,
//! org and type filters, `to_sequence`, `limit` and `as_of_recorded_at_micros` (each across the
//! ledger's read chunks), the batches hold exactly the events `Read` streams, in the same order,
//! never more per message than asked, never an empty one; bad input is refused by both with the
//! same INVALID_ARGUMENT naming the field; `wfl replay` prints every event once, in order, across
//! its batches. (A caller restricted to one org: `tests/auth.rs`.)

mod common;

use tonic::transport::Channel;
use tonic::Code;
use wfl_proto::pb;
use wfl_testkit::scenario;

const ORGS: [&str; 3] = ["acme", "orgb", "orgc"];

async fn read(
    ch: &Channel,
    request: pb::ReadRequest,
) -> Result<Vec<pb::CommittedEvent>, tonic::Status> {
    let mut stream = common::ledger(ch).read(request).await?.into_inner();
    let mut out = Vec::new();
    while let Some(c) = stream.message().await? {
        out.push(c);
    }
    Ok(out)
}

/// The events of every batch, in order, checking each batch is non-empty and at most `most` long.
async fn read_batches(
    ch: &Channel,
    request: pb::ReadRequest,
    most: usize,
) -> Result<Vec<pb::CommittedEvent>, tonic::Status> {
    let mut stream = common::ledger(ch).read_batches(request).await?.into_inner();
    let mut out = Vec::new();
    while let Some(batch) = stream.message().await? {
        assert!(!batch.events.is_empty(), "an empty batch");
        assert!(
            batch.events.len() <= most,
            "{} > {most}",
            batch.events.len()
        );
        out.extend(batch.events);
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_batches_returns_exactly_what_read_returns() {
    let dir = wfl_testkit::temp_dir();
    let node = common::up(dir.path(), &[]);
    let ch = common::connect(&node.grpc).await;
    // 2,800 events over three orgs and two kinds, in batches (so several recorded-at instants):
    // more than two of the ledger's 1,000-record read chunks.
    for b in 0..4 {
        let mut events = Vec::new();
        for i in b * 500..(b + 1) * 500 {
            events.push(scenario::hire(ORGS[i % 3], &format!("w-{i}")));
        }
        for i in (b * 500..(b + 1) * 500).step_by(3) {
            events.push(scenario::resign(ORGS[i % 3], &format!("w-{i}")));
        }
        for item in &common::record_batch(&ch, &events).await.results {
            common::ok(item);
        }
    }
    let all = read(&ch, pb::ReadRequest::default()).await.expect("Read");
    common::assert_valid_chain(&all);
    let head = all.len() as u64;
    assert!(head > 2_600, "{head}");
    let middle = all[all.len() / 2].recorded_at_micros;

    let requests = [
        pb::ReadRequest::default(),
        pb::ReadRequest {
            from_sequence: 517,
            to_sequence: 2_043,
            ..Default::default()
        },
        pb::ReadRequest {
            from_sequence: 999,
            to_sequence: head + 1_000,
            ..Default::default()
        },
        pb::ReadRequest {
            from_sequence: head + 1,
            ..Default::default()
        },
        pb::ReadRequest {
            org_ids: vec!["orgb".into()],
            ..Default::default()
        },
        pb::ReadRequest {
            org_ids: vec!["orgc".into(), "acme".into()],
            event_types: vec!["worker_hired".into()],
            from_sequence: 300,
            ..Default::default()
        },
        pb::ReadRequest {
            event_types: vec!["Resignation".into()],
            ..Default::default()
        },
        pb::ReadRequest {
            org_ids: vec!["nobody".into()],
            ..Default::default()
        },
        pb::ReadRequest {
            limit: 1,
            ..Default::default()
        },
        pb::ReadRequest {
            limit: 1_001,
            from_sequence: 10,
            ..Default::default()
        },
        pb::ReadRequest {
            org_ids: vec!["acme".into()],
            limit: 700,
            from_sequence: 200,
            to_sequence: 2_500,
            ..Default::default()
        },
        pb::ReadRequest {
            as_of_recorded_at_micros: middle,
            ..Default::default()
        },
        pb::ReadRequest {
            as_of_recorded_at_micros: middle,
            org_ids: vec!["orgb".into()],
            limit: 400,
            ..Default::default()
        },
    ];
    // 0 = the most (1,000); above 1,000 is served as 1,000.
    for (max_batch, most) in [(0, 1_000), (1, 1), (7, 7), (1_000, 1_000), (50_000, 1_000)] {
        for request in &requests {
            let request = pb::ReadRequest {
                max_batch,
                ..request.clone()
            };
            let want = read(&ch, request.clone()).await.expect("Read");
            let got = read_batches(&ch, request.clone(), most)
                .await
                .expect("ReadBatches");
            assert_eq!(got.len(), want.len(), "{request:?}");
            assert!(got == want, "different events for {request:?}");
        }
    }
    // A type named many times filters as once; a range that ends before it starts is the
    // caller's mistake, named.
    let once = read(
        &ch,
        pb::ReadRequest {
            event_types: vec!["worker_hired".into()],
            ..Default::default()
        },
    )
    .await
    .expect("Read");
    let repeated = read(
        &ch,
        pb::ReadRequest {
            event_types: vec!["worker_hired".into(); 5_000],
            ..Default::default()
        },
    )
    .await
    .expect("Read");
    assert!(once == repeated, "a repeated type reads as once");
    let backwards = pb::ReadRequest {
        from_sequence: 20,
        to_sequence: 10,
        ..Default::default()
    };
    for refused in [
        read(&ch, backwards.clone()).await.expect_err("Read"),
        read_batches(&ch, backwards.clone(), 1_000)
            .await
            .expect_err("ReadBatches"),
    ] {
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
        assert!(refused.message().starts_with("to_sequence:"), "{refused:?}");
    }
    // `wfl replay`: every event once, in order, across its batches (made into lines on several
    // threads), each line the event `Read` streams.
    let out = std::process::Command::new(common::bin("wfl"))
        .args(["replay", "--addr", &node.grpc])
        .output()
        .expect("wfl replay runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), all.len());
    for (line, c) in lines.iter().zip(&all) {
        assert_eq!(line["sequence"], c.sequence);
        assert_eq!(line["hash"].as_str(), Some(hex::encode(&c.hash).as_str()));
        let id = c.event.as_ref().map(|e| e.event_id.as_str());
        assert_eq!(line["event"]["event_id"].as_str(), id);
    }

    // The requests select what they say (so the comparison is not of two empty answers).
    let orgb = read(&ch, requests[4].clone()).await.expect("Read");
    assert!(orgb.len() > 800);
    assert!(orgb
        .iter()
        .all(|c| c.event.as_ref().is_some_and(|e| e.org_id == "orgb")));
    let limited = read(&ch, requests[10].clone()).await.expect("Read");
    assert_eq!(limited.len(), 700);
    let known = read(&ch, requests[11].clone()).await.expect("Read");
    assert!(!known.is_empty() && known.len() < all.len());

    // Bad input: the same INVALID_ARGUMENT naming the field from both.
    for (request, field) in [
        (
            pb::ReadRequest {
                event_types: vec!["WorkerHired".into(), "Nope".into()],
                ..Default::default()
            },
            "event_types[1]",
        ),
        (
            pb::ReadRequest {
                as_of_recorded_at_micros: -1,
                ..Default::default()
            },
            "as_of_recorded_at_micros",
        ),
        (
            pb::ReadRequest {
                org_ids: vec!["a".repeat(65)],
                ..Default::default()
            },
            "org_ids[0]",
        ),
    ] {
        let a = read(&ch, request.clone()).await.expect_err("Read refuses");
        let b = read_batches(&ch, request, 1_000)
            .await
            .expect_err("ReadBatches refuses");
        assert_eq!(a.code(), Code::InvalidArgument, "{a:?}");
        assert!(a.message().starts_with(&format!("{field}: ")), "{a:?}");
        assert_eq!((b.code(), b.message()), (a.code(), a.message()));
    }
}
