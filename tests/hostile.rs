//! Hostile input over gRPC: every method of every wfl service (listed from the served
//! descriptor set, so a new method is covered without editing this file) receives random
//! bytes, truncated and mutated valid messages, invalid UTF-8 in string fields and nesting deeper
//! than the decoder's recursion limit. No answer may be INTERNAL or UNKNOWN (those say "our
//! fault" about the caller's bytes); undecodable requests are INVALID_ARGUMENT.
//!
//! `HOSTILE_CASES` sets the number of messages per method (default 150); a long run:
//! `HOSTILE_CASES=20000 cargo nextest run -p wfl-tests --test hostile`.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Code, Status};

/// Sends and receives raw message bytes, so the test can send what no client would.
#[derive(Debug, Clone, Copy, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Bytes;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// xorshift64*: deterministic per seed, so a failure can be replayed (`HOSTILE_SEED`).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// One hostile message of kind `kind` (0..6).
fn hostile(rng: &mut Rng, kind: usize, valid: &[u8]) -> Vec<u8> {
    match kind {
        // Random bytes.
        0 => {
            let len = rng.below(256);
            rng.bytes(len)
        }
        // A string/bytes field (1..=8) holding invalid UTF-8.
        1 => {
            let field = 1 + rng.below(8) as u64;
            let mut out = Vec::new();
            varint((field << 3) | 2, &mut out);
            out.extend_from_slice(&[3, 0xff, 0xfe, 0xc0]);
            out
        }
        // Nested groups of an unknown field, deeper than prost's recursion limit (100).
        2 => {
            let mut out = Vec::new();
            for _ in 0..(101 + rng.below(400)) {
                varint((999 << 3) | 3, &mut out);
            }
            out
        }
        // Nested length-delimited fields (field 3 of Event is a message; elsewhere whatever
        // field 1..=8 is), 200 deep.
        3 => {
            let field = 1 + rng.below(8) as u64;
            let mut inner: Vec<u8> = Vec::new();
            for _ in 0..200 {
                let mut out = Vec::new();
                varint((field << 3) | 2, &mut out);
                varint(inner.len() as u64, &mut out);
                out.extend_from_slice(&inner);
                inner = out;
            }
            inner
        }
        // A valid message, truncated.
        4 => valid[..rng.below(valid.len())].to_vec(),
        // A valid message with a few bytes flipped.
        _ => {
            let mut out = valid.to_vec();
            for _ in 0..=rng.below(4) {
                let i = rng.below(out.len());
                out[i] ^= rng.next() as u8 | 1;
            }
            out
        }
    }
}

/// (path, server streaming) of every method of the wfl.v1 services.
fn methods() -> Vec<(String, bool)> {
    let set = prost_types::FileDescriptorSet::decode(wfl_proto::FILE_DESCRIPTOR_SET)
        .expect("descriptor set");
    let mut out = Vec::new();
    for file in set.file {
        let package = file.package().to_owned();
        for service in file.service {
            for m in &service.method {
                out.push((
                    format!("/{package}.{}/{}", service.name(), m.name()),
                    m.server_streaming(),
                ));
            }
        }
    }
    out
}

async fn call(
    grpc: &mut tonic::client::Grpc<tonic::transport::Channel>,
    path: &str,
    streaming: bool,
    body: Bytes,
) -> Code {
    grpc.ready().await.expect("channel ready");
    let path: tonic::codegen::http::uri::PathAndQuery = path.parse().expect("path");
    let mut request = tonic::Request::new(body);
    // A valid request may wait (Subscribe follows the head, min_sequence waits): that is an
    // answer too; only its first message or status counts.
    request.set_timeout(Duration::from_secs(5));
    if streaming {
        match grpc.server_streaming(request, path, Raw).await {
            Err(status) => status.code(),
            Ok(response) => {
                let mut stream = response.into_inner();
                match tokio::time::timeout(Duration::from_secs(5), stream.message()).await {
                    Err(_) | Ok(Ok(_)) => Code::Ok,
                    Ok(Err(status)) => status.code(),
                }
            }
        }
    } else {
        match grpc.unary(request, path, Raw).await {
            Ok(_) => Code::Ok,
            Err(status) => status.code(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_hostile_message_is_answered_internal() {
    let dir = wfl_testkit::temp_dir();
    let node = common::up(dir.path(), &[]);
    let channel = common::connect(&node.grpc).await;
    let mut grpc = tonic::client::Grpc::new(channel);
    let cases: usize = std::env::var("HOSTILE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150);
    let seed: u64 = std::env::var("HOSTILE_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_1234_abcd_0001);
    let mut rng = Rng(seed);
    // A valid event to mutate (and a valid request wrapping it, for Ingest).
    let event = common::wire(&wfl_testkit::scenario::hire("acme", "w-1"));
    let valid_event = event.encode_to_vec();
    let valid_batch = wfl_proto::pb::RecordBatchRequest {
        events: vec![event.clone(), event],
        ..Default::default()
    }
    .encode_to_vec();

    let methods = methods();
    assert!(methods.len() >= 10, "methods found: {methods:?}");
    let mut codes: BTreeMap<String, usize> = BTreeMap::new();
    let mut bad: Vec<String> = Vec::new();
    let mut undecodable_not_invalid: Vec<String> = Vec::new();
    let mut sent = 0usize;
    for (path, streaming) in &methods {
        for i in 0..cases {
            let kind = i % 6;
            let valid = if path.contains("RecordBatch") {
                &valid_batch
            } else {
                &valid_event
            };
            let body = hostile(&mut rng, kind, valid);
            let code = call(&mut grpc, path, *streaming, Bytes::from(body.clone())).await;
            sent += 1;
            *codes.entry(format!("{code:?}")).or_default() += 1;
            if matches!(code, Code::Internal | Code::Unknown) {
                bad.push(format!("{path} kind {kind}: {code:?} for {body:02x?}"));
            }
            // Invalid UTF-8 and over-deep groups never decode, whatever the message type.
            if kind == 2 && code != Code::InvalidArgument {
                undecodable_not_invalid.push(format!("{path} kind {kind}: {code:?}"));
            }
        }
    }
    println!(
        "hostile messages sent: {sent} to {} methods; answers by code: {codes:?}",
        methods.len()
    );
    assert!(
        bad.is_empty(),
        "{} of {sent} hostile messages answered INTERNAL/UNKNOWN, e.g.:\n{}",
        bad.len(),
        bad.iter().take(10).cloned().collect::<Vec<_>>().join("\n")
    );
    assert!(
        undecodable_not_invalid.is_empty(),
        "undecodable requests must be INVALID_ARGUMENT:\n{}",
        undecodable_not_invalid
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(codes.get("InvalidArgument").copied().unwrap_or(0) > 0);
}

#[test]
fn import_sends_every_valid_line_and_reports_each_bad_one_by_number() {
    let dir = wfl_testkit::temp_dir();
    let node = common::up(dir.path(), &[]);
    let file = dir.path().join("events.jsonl");
    let json = |e: &wfl_domain::Event| serde_json::to_string(e).expect("json");
    let mut typo: serde_json::Value =
        serde_json::to_value(wfl_testkit::scenario::hire("acme", "w-typo")).expect("json");
    typo["payload"]["reason_cod"] = serde_json::json!("x");
    let mut content: Vec<u8> = Vec::new();
    content.extend(json(&wfl_testkit::scenario::hire("acme", "w-1")).bytes());
    content.push(b'\n');
    // Line 2: invalid UTF-8 inside an otherwise valid event.
    let mut bad_utf8 = json(&wfl_testkit::scenario::hire("acme", "w-utf8")).into_bytes();
    let at = bad_utf8.len() - 2;
    bad_utf8.insert(at, 0xff);
    content.extend(&bad_utf8);
    content.push(b'\n');
    // Line 3: 3 MB on one line.
    content.extend(std::iter::repeat_n(b'x', 3_000_000));
    content.push(b'\n');
    // Line 4: an unknown field.
    content.extend(typo.to_string().bytes());
    content.push(b'\n');
    content.extend(json(&wfl_testkit::scenario::hire("acme", "w-2")).bytes());
    content.push(b'\n');
    std::fs::write(&file, &content).expect("write");

    let out = std::process::Command::new(common::bin("wfl"))
        .args([
            "import",
            file.to_str().expect("path"),
            "--addr",
            &node.grpc,
            "--verbose",
        ])
        .output()
        .expect("wfl import runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}{stderr}");
    assert_eq!(out.status.code(), Some(2), "refused lines exit 2: {stderr}");
    assert!(stdout.contains("line 1: committed"), "{stdout}");
    assert!(stdout.contains("line 2: rejected: not UTF-8"), "{stdout}");
    assert!(
        stdout.contains("line 3: rejected: line of 3000000 bytes; at most 1048576 bytes"),
        "{stdout}"
    );
    assert!(
        stdout.contains("line 4: rejected: unknown field payload.reason_cod"),
        "{stdout}"
    );
    assert!(stdout.contains("line 5: committed"), "{stdout}");
    assert!(
        stderr.contains("5 lines: 2 committed, 0 accepted, 0 duplicates, 3 rejected"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_and_org_filter_limits_are_enforced_and_named() {
    let dir = wfl_testkit::temp_dir();
    let nats = wfl_testkit::NatsServer::start();
    let ledger = common::Proc::start(
        "wfl-ledger",
        &[
            "--data-dir".into(),
            dir.path().join("data").display().to_string(),
            "--grpc-addr".into(),
            "127.0.0.1:0".into(),
            "--nats-url".into(),
            nats.url(),
            "--max-subscribers".into(),
            "2".into(),
            "--max-org-filter".into(),
            "5".into(),
        ],
        &dir.path().join("logs"),
    );
    let ch = common::connect(&ledger.grpc).await;
    let first = common::subscribe(&ch, 1).await;
    let _second = common::subscribe(&ch, 1).await;
    let third = common::ledger(&ch)
        .subscribe(wfl_proto::pb::SubscribeRequest {
            from_sequence: 1,
            ..Default::default()
        })
        .await
        .expect_err("a third subscriber is refused");
    assert_eq!(third.code(), Code::ResourceExhausted, "{third:?}");
    assert!(third.message().contains("max_subscribers"), "{third:?}");
    assert!(third.message().contains("limit is 2"), "{third:?}");

    // A subscriber that leaves frees its place (the server notices the stream is gone).
    drop(first);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let again = common::ledger(&ch)
            .subscribe(wfl_proto::pb::SubscribeRequest {
                from_sequence: 1,
                heartbeat_ms: 100,
                ..Default::default()
            })
            .await;
        match again {
            Ok(_) => break,
            Err(s) if s.code() == Code::ResourceExhausted => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the place of a gone subscriber is never freed"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(s) => panic!("unexpected {s:?}"),
        }
    }

    // org_ids longer than max_org_filter, or with an over-long id, is INVALID_ARGUMENT naming it.
    let many: Vec<String> = (0..6).map(|i| format!("org-{i}")).collect();
    let read = common::ledger(&ch)
        .read(wfl_proto::pb::ReadRequest {
            org_ids: many.clone(),
            ..Default::default()
        })
        .await
        .expect_err("too many orgs");
    assert_eq!(read.code(), Code::InvalidArgument);
    assert!(
        read.message().starts_with("org_ids: 6 entries; at most 5"),
        "{read:?}"
    );
    let long = common::ledger(&ch)
        .read(wfl_proto::pb::ReadRequest {
            org_ids: vec!["a".repeat(65)],
            ..Default::default()
        })
        .await
        .expect_err("over-long org id");
    assert_eq!(long.code(), Code::InvalidArgument);
    assert!(
        long.message().starts_with("org_ids[0]: 65 bytes"),
        "{long:?}"
    );
    // ReadBatches checks its request as Read does, with the same answers.
    for (org_ids, refused) in [(many, read), (vec!["a".repeat(65)], long)] {
        let batches = common::ledger(&ch)
            .read_batches(wfl_proto::pb::ReadRequest {
                org_ids,
                ..Default::default()
            })
            .await
            .expect_err("refused as Read refuses it");
        assert_eq!(
            (batches.code(), batches.message()),
            (refused.code(), refused.message())
        );
    }
}

/// `--max-message-mb` bounds an Ingest request; a bigger one is refused with its size and the
/// limit named, and nothing of it is committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingest_message_limit_is_configurable_and_named() {
    let dir = wfl_testkit::temp_dir();
    let node = common::up(dir.path(), &["--max-message-mb", "1"]);
    let ch = common::connect(&node.grpc).await;
    // About 2 MiB of valid events.
    let events: Vec<wfl_proto::pb::Event> = (0..4000)
        .map(|i| {
            let mut w = common::wire(&wfl_testkit::scenario::hire("acme", &format!("w-{i}")));
            w.correlation_id = "x".repeat(400);
            w
        })
        .collect();
    let err = common::ingest(&ch)
        .record_batch(wfl_proto::pb::RecordBatchRequest {
            events,
            ack: wfl_proto::pb::AckLevel::Committed as i32,
            include_proof: false,
        })
        .await
        .expect_err("over the limit");
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    assert!(err.message().contains("1048576"), "{err:?}");
    let head = common::ledger(&ch)
        .head(wfl_proto::pb::HeadRequest::default())
        .await
        .expect("head")
        .into_inner();
    assert_eq!(
        head.sequence, 0,
        "nothing of a refused request is committed"
    );
}

/// The batch and free-text limits are configurable: over either, the caller is told which field
/// broke which limit, and nothing of the refused part is committed; a limit out of range stops
/// the process with one line naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_and_text_limits_are_configurable_and_named() {
    let dir = wfl_testkit::temp_dir();
    let node = common::up(
        dir.path(),
        &["--max-batch-events", "3", "--max-text-chars", "20"],
    );
    let ch = common::connect(&node.grpc).await;
    let hires: Vec<wfl_proto::pb::Event> = (0..4)
        .map(|i| common::wire(&wfl_testkit::scenario::hire("acme", &format!("w-{i}"))))
        .collect();
    let err = common::ingest(&ch)
        .record_batch(wfl_proto::pb::RecordBatchRequest {
            events: hires.clone(),
            ack: wfl_proto::pb::AckLevel::Committed as i32,
            include_proof: false,
        })
        .await
        .expect_err("four events over a limit of three");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().contains("at most 3") && err.message().contains("max_batch_events"),
        "{err:?}"
    );

    // 21 characters of free text: refused naming the field and the limit; its neighbours commit.
    let mut long = hires[0].clone();
    long.correlation_id = "c".repeat(21);
    let mut fits = hires[1].clone();
    fits.correlation_id = "c".repeat(20);
    let r = common::ingest(&ch)
        .record_batch(wfl_proto::pb::RecordBatchRequest {
            events: vec![long, fits],
            ack: wfl_proto::pb::AckLevel::Committed as i32,
            include_proof: false,
        })
        .await
        .expect("a batch within the event limit")
        .into_inner();
    assert_eq!((r.committed, r.rejected), (1, 1), "{r:?}");
    let refused = common::err(&r.results[0]);
    assert_eq!(refused.code, Code::InvalidArgument as i32, "{refused:?}");
    let violation = &refused.field_violations[0];
    assert_eq!(violation.field, "correlation_id", "{refused:?}");
    assert!(
        violation.description.contains("at most 20")
            && violation.description.contains("max_text_chars"),
        "{refused:?}"
    );
    drop(node);

    // Out of range: one line, non-zero exit.
    let out = std::process::Command::new(common::bin("wfl"))
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .args(["up", "--max-text-chars", "1000", "--data-dir"])
        .arg(dir.path().join("other"))
        .output()
        .expect("run wfl up");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--max-text-chars must be 1 to 256"),
        "{stderr}"
    );
}
