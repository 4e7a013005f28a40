//! The examples in `examples/` run as their users would run them, against a real node: the Rust
//! subscriber over gRPC with its checkpoint file, the Python subscriber (nats-py) on WFL_LEDGER
//! with decoding generated from `proto/`, and the Python gRPC client (reflection, Record,
//! Subscribe, Views) with stubs generated from `proto/`. Reflection is served in both versions
//! with the `.proto` comments in its descriptors.

mod common;

use std::process::Command;

use common::{record_batch, replay, Mode, Node};
use wfl_testkit::scenario;

fn hires(n: usize, offset: usize) -> Vec<wfl_domain::Event> {
    (offset..offset + n)
        .map(|i| scenario::hire("acme", &format!("w-{i}")))
        .collect()
}

fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_subscriber_resumes_from_its_checkpoint() {
    let node = Node::start(Mode::Memory);
    let ch = node.channel().await;
    record_batch(&ch, &hires(300, 0)).await;
    let checkpoint = node.dir.path().join("position");
    let run = |count: u64| {
        let out = Command::new(common::bin("wfl-example-subscriber"))
            .args([
                "--addr",
                &node.proc.grpc,
                "--checkpoint",
                checkpoint.to_str().expect("path"),
                "--count",
                &count.to_string(),
            ])
            .output()
            .expect("example runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.split(' ').next().expect("seq").parse::<u64>().expect("n"))
            .collect::<Vec<u64>>()
    };
    assert_eq!(run(100), (1..=100).collect::<Vec<_>>());
    assert_eq!(
        std::fs::read_to_string(&checkpoint)
            .expect("checkpoint")
            .trim(),
        "100"
    );
    assert_eq!(
        run(200),
        (101..=300).collect::<Vec<_>>(),
        "resumes right after the checkpoint"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_subscriber_decodes_the_committed_stream_and_resumes_durably() {
    let here = repo().join("examples/python-subscriber");
    let gen = Command::new("bash")
        .arg(here.join("generate.sh"))
        .output()
        .expect("bash runs");
    assert!(
        gen.status.success(),
        "generating the Python decoding failed (scripts/test.sh installs examples/python-subscriber/requirements.txt): {}",
        String::from_utf8_lossy(&gen.stderr)
    );
    let node = Node::start(Mode::Nats);
    let url = node.nats.as_ref().expect("nats").url();
    let ch = node.channel().await;
    record_batch(&ch, &hires(200, 0)).await;
    let run = |count: usize| {
        let out = Command::new("python3")
            .arg(here.join("subscriber.py"))
            .args([
                "--nats-url",
                &url,
                "--durable",
                "py-test",
                "--count",
                &count.to_string(),
            ])
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json line"))
            .collect::<Vec<_>>()
    };
    let first = run(200);
    let ledger = replay(&ch).await;
    assert_eq!(first.len(), 200);
    for (line, c) in first.iter().zip(&ledger) {
        assert_eq!(line["sequence"], c.sequence);
        assert_eq!(line["hash"], hex::encode(&c.hash));
        assert_eq!(line["event_type"], "WorkerHired");
        assert_eq!(line["payload_kind"], "worker_hired");
        assert_eq!(
            line["event_id"].as_str(),
            c.event.as_ref().map(|e| e.event_id.as_str())
        );
    }
    record_batch(&ch, &hires(50, 200)).await;
    let second = run(50);
    let seqs: Vec<u64> = second
        .iter()
        .map(|l| l["sequence"].as_u64().expect("seq"))
        .collect();
    assert_eq!(
        seqs,
        (201..=250).collect::<Vec<_>>(),
        "the durable consumer resumes after its last ack"
    );
}

fn python(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new("python3")
        .arg(dir.join("client.py"))
        .args(args)
        .output()
        .expect("python3 runs")
}

fn stdout_ok(what: &str, out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_discovers_records_follows_and_reads_views() {
    let here = repo().join("examples/python-client");
    let gen = Command::new("bash")
        .arg(here.join("generate.sh"))
        .output()
        .expect("bash runs");
    assert!(
        gen.status.success(),
        "generating the Python stubs failed (scripts/test.sh installs examples/python-client/requirements.txt): {}",
        String::from_utf8_lossy(&gen.stderr)
    );
    let node = Node::start(Mode::Memory);
    let addr = node.proc.grpc.trim_start_matches("http://").to_owned();

    // The standard Python reflection client (grpc.reflection.v1alpha) lists every service.
    let services = stdout_ok("services", &python(&here, &["--addr", &addr, "services"]));
    for expected in [
        "wfl.v1.Ingest",
        "wfl.v1.Ledger",
        "wfl.v1.Views",
        "grpc.health.v1.Health",
    ] {
        assert!(
            services.lines().any(|l| l == expected),
            "{expected} not listed: {services}"
        );
    }
    // ... and the descriptors it gets carry the .proto comments.
    let described = json_lines(&stdout_ok(
        "describe",
        &python(&here, &["--addr", &addr, "describe", "wfl.v1.Ingest"]),
    ));
    let record = described
        .iter()
        .find(|l| l["method"] == "Record")
        .expect("Record is described");
    assert!(
        record["comment"]
            .as_str()
            .is_some_and(|c| c.starts_with("Records one event")),
        "{record}"
    );

    // Record an event written in protobuf JSON ...
    let recorded = json_lines(&stdout_ok(
        "record",
        &python(
            &here,
            &[
                "--addr",
                &addr,
                "record",
                here.join("hire.json").to_str().expect("path"),
            ],
        ),
    ));
    assert_eq!(recorded[0]["sequence"], "1", "{}", recorded[0]);
    assert_eq!(
        recorded[0]["event_id"],
        "0192f0c4-8a7e-7cc0-9a51-0000000000a1"
    );
    let hash = recorded[0]["hash"].as_str().expect("hash").to_owned();
    assert_eq!(hash.len(), 64);
    // ... and the same event in the CLI's JSON dialect: the ledger sees the same content
    // (a duplicate at the same sequence, not ALREADY_EXISTS), so the two dialects agree.
    let cli = Command::new(common::bin("wfl"))
        .args(["record", "--addr", &addr])
        .arg(here.join("hire.cli.json"))
        .output()
        .expect("wfl runs");
    let cli_out = stdout_ok("wfl record", &cli);
    assert_eq!(
        cli_out.trim(),
        format!(
            "already committed: event 0192f0c4-8a7e-7cc0-9a51-0000000000a1 at sequence 1 hash {hash}"
        )
    );

    // Subscribe from the start: the event, with the hash Record returned.
    let followed = json_lines(&stdout_ok(
        "subscribe",
        &python(
            &here,
            &["--addr", &addr, "subscribe", "--from", "1", "--count", "1"],
        ),
    ));
    assert_eq!(followed.len(), 1);
    assert_eq!(followed[0]["sequence"], 1);
    assert_eq!(followed[0]["hash"], hash.as_str());
    assert_eq!(followed[0]["payload_kind"], "worker_hired");

    // A view, reading its own write.
    let view = json_lines(&stdout_ok(
        "view",
        &python(
            &here,
            &[
                "--addr",
                &addr,
                "view",
                "headcount",
                "--org",
                "acme-cn",
                "--min-sequence",
                "1",
            ],
        ),
    ));
    assert_eq!(view[0]["as_of_sequence"], "1", "{}", view[0]);
    // A typed answer: the HeadcountView in the field named after it, each figure with its
    // evidence path (proto JSON leaves out zero counts).
    let total = &view[0]["headcount"]["rows"][0]["total"];
    assert_eq!(total["closing"], "1", "{}", view[0]);
    assert_eq!(total["evidence"], "/rows/0/total", "{}", view[0]);
    // (Lower-cased: a typed view may carry the cohort as a protobuf enum name.)
    let shown = view[0].to_string().to_lowercase();
    assert!(
        shown.contains("graduate"),
        "the headcount view shows the graduate hire: {}",
        view[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_v1alpha_serves_descriptors_with_the_proto_comments() {
    use prost::Message;
    use tonic_reflection::pb::v1alpha::{
        server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        ServerReflectionRequest,
    };
    let node = Node::start(Mode::Memory);
    let mut reflection = ServerReflectionClient::new(node.channel().await);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(
            "wfl.v1.Ingest".to_owned(),
        )),
    };
    let resp = reflection
        .server_reflection_info(futures::stream::iter(vec![req]))
        .await
        .expect("v1alpha reflection is served")
        .into_inner()
        .message()
        .await
        .expect("reply")
        .expect("one reply");
    let Some(MessageResponse::FileDescriptorResponse(files)) = resp.message_response else {
        panic!("unexpected reflection reply: {resp:?}")
    };
    let ingest = files
        .file_descriptor_proto
        .iter()
        .map(|b| prost_types::FileDescriptorProto::decode(b.as_slice()).expect("descriptor"))
        .find(|f| f.name() == "wfl/v1/ingest.proto")
        .expect("ingest.proto is served");
    let comments: Vec<String> = ingest
        .source_code_info
        .expect("source info is kept")
        .location
        .into_iter()
        .filter_map(|l| l.leading_comments)
        .collect();
    assert!(
        comments.iter().any(|c| c.contains("Records one event")),
        "the Record method's comment is in the descriptor: {comments:?}"
    );
}

/// A client that calls the wrong process (here `wfl record` at `wfl-ledger`'s port, and a
/// Python-style raw call) is told which service lives where, not a bare UNIMPLEMENTED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_to_the_wrong_services_port_says_where_it_lives() {
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
        ],
        &dir.path().join("logs"),
    );
    let hire = repo().join("examples/python-client/hire.cli.json");
    let out = Command::new(common::bin("wfl"))
        .args(["record", "--addr", &ledger.grpc])
        .arg(&hire)
        .output()
        .expect("wfl runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains("this port does not serve wfl.v1.Ingest; it serves wfl.v1.Ledger")
            && stderr.contains("wfl-gateway serves Ingest"),
        "{stderr}"
    );
    // The same through the generated client: the status carries the message.
    let mut views =
        wfl_proto::pb::views_client::ViewsClient::new(common::connect(&ledger.grpc).await);
    let status = views
        .separations(wfl_proto::pb::ViewRequest::default())
        .await
        .expect_err("the ledger serves no Views");
    assert_eq!(status.code(), tonic::Code::Unimplemented);
    assert!(
        status
            .message()
            .starts_with("this port does not serve wfl.v1.Views; it serves wfl.v1.Ledger."),
        "{status:?}"
    );
}
